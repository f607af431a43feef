//! Processes, privileges, the terminal and kernel information: signal or read a process outside,
//! ptrace and process_vm_readv, `/proc/<pid>/mem` of corral's init; no_new_privs and a setuid
//! binary; new namespaces (unshare, clone, clone3), mount, keyctl, bpf, perf, userfaultfd,
//! io_uring; TIOCSTI and TIOCLINUX; dmesg, /proc/kcore, /sys/firmware, the host's hostname, the
//! host's /proc/net.

use super::{errno_name, Attack};
use crate::selftest::brief::{Brief, Mode, Probe};
use corral_sys::attack as sys;

const PIDNS: &str = "pid namespace: nothing outside is visible";
const SECCOMP: &str = "seccomp: the call is denied";
const NNP: &str = "no_new_privs: exec cannot gain privileges";
const KERNEL: &str = "new root: /proc and /sys show only the sandbox's";

/// A sysctl this machine sets that already refuses the call to unprivileged users: the attack
/// cannot show anything in the control run then.
fn sysctl_refuses(path: &str, refuse_from: i64) -> Option<String> {
    let v: i64 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    (v >= refuse_from)
        .then(|| format!("this machine already refuses it to unprivileged users ({path} = {v})"))
}

/// A call's result as an attack outcome: success got through, an errno was refused.
fn outcome<T>(r: std::io::Result<T>, what: &str) -> Probe {
    match r {
        Ok(_) => Probe::Escaped(format!("{what} succeeded")),
        Err(e) => Probe::Blocked(errno_name(&e)),
    }
}

/// In a forked child: `f` returns an errno (0: success).
fn child_outcome(what: &str, f: impl FnOnce() -> i32) -> Probe {
    match sys::in_child(f) {
        Ok(0) => Probe::Escaped(format!("{what} succeeded")),
        Ok(code) if code < 128 => Probe::Blocked(errno_name(&std::io::Error::from_raw_os_error(code))),
        Ok(code) => Probe::Blocked(format!("killed by signal {}", code - 128)),
        Err(e) => Probe::Blocked(format!("fork: {}", errno_name(&e))),
    }
}

/// A child to attack: `sleep 30`, killed when dropped.
struct Victim(std::process::Child);

impl Victim {
    fn spawn() -> std::io::Result<Victim> {
        std::process::Command::new("sleep")
            .arg("30")
            .stdin(std::process::Stdio::null())
            .spawn()
            .map(Victim)
    }
    fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).unwrap_or(-1)
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The start of the first readable mapping of `pid`.
fn first_readable(pid: i32) -> Option<usize> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    maps.lines()
        .find(|l| l.split_whitespace().nth(1).is_some_and(|p| p.starts_with('r')))
        .and_then(|l| usize::from_str_radix(l.split('-').next()?, 16).ok())
}

fn read_mem(pid: i32) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(format!("/proc/{pid}/mem"))?;
    let at = first_readable(pid).ok_or_else(|| std::io::Error::from_raw_os_error(libc::EACCES))?;
    let mut buf = [0u8; 16];
    f.read_at(&mut buf, u64::try_from(at).unwrap_or(0))
}

pub fn attacks(_brief: &Brief) -> Vec<Attack> {
    let mut v = vec![
        Attack::new("process", "see outside", "find the sentinel process outside in /proc", PIDNS, |b| {
            match std::fs::read(format!("/proc/{}/cmdline", b.sentinel_pid)) {
                Ok(c) if c.starts_with(b"sleep") => Probe::Escaped("the sentinel is visible".into()),
                Ok(_) => Probe::Blocked("that pid is another process here".into()),
                Err(e) => Probe::Blocked(errno_name(&e)),
            }
        }),
        Attack::new(
            "process",
            "/proc/<pid>/mem",
            "read the memory of a process it did not start (corral's init inside, the sentinel in the control run)",
            "init is not dumpable; the pid namespace hides the rest",
            |b| {
                let pid = match b.mode {
                    Mode::Control => b.sentinel_pid,
                    Mode::Sandbox => 1,
                };
                outcome(read_mem(pid), &format!("reading /proc/{pid}/mem"))
            },
        ),
        Attack::new("process", "ptrace", "PTRACE_ATTACH to a child it started", SECCOMP, |_| {
            match Victim::spawn() {
                Ok(v) => outcome(sys::ptrace_attach(v.pid()), "ptrace"),
                Err(e) => Probe::Skipped(format!("cannot start sleep: {}", errno_name(&e))),
            }
        }),
        Attack::new("process", "process_vm_readv", "read a child's memory with process_vm_readv", SECCOMP, |_| {
            match Victim::spawn() {
                Ok(v) => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    match first_readable(v.pid()) {
                        Some(at) => outcome(sys::process_vm_read(v.pid(), at, 16), "process_vm_readv"),
                        None => Probe::Skipped("cannot read the child's maps".into()),
                    }
                }
                Err(e) => Probe::Skipped(format!("cannot start sleep: {}", errno_name(&e))),
            }
        }),
        // Last of its group: it kills the sentinel when it gets through.
        Attack::new("process", "signal outside", "SIGTERM to a sentinel process outside", PIDNS, |b| {
            match corral_sys::ll::kill(b.sentinel_pid, libc::SIGTERM) {
                Ok(()) => Probe::Attempted(format!("kill({}) returned 0", b.sentinel_pid)),
                Err(e) => Probe::Blocked(errno_name(&e)),
            }
        })
        .verified(|_, h| (!h.sentinel_alive).then(|| "the sentinel outside is dead".to_string())),
        Attack::new("privileges", "no_new_privs", "run with no_new_privs unset", NNP, |_| match sys::no_new_privs() {
            Ok(true) => Probe::Blocked("no_new_privs is set".into()),
            Ok(false) => Probe::Escaped("no_new_privs is not set".into()),
            Err(e) => Probe::Blocked(errno_name(&e)),
        }),
        Attack::new("privileges", "setuid", "run a setuid-root program and catch it with euid 0", NNP, |_| setuid()),
        Attack::new("privileges", "unshare user", "a new user namespace (unshare)", SECCOMP, |_| {
            child_outcome("unshare(CLONE_NEWUSER)", || sys::code_of(sys::unshare(libc::CLONE_NEWUSER)))
        }),
        Attack::new("privileges", "mount", "a new user and mount namespace, then mount a tmpfs", SECCOMP, |_| {
            child_outcome("mount", || {
                if let Err(e) = sys::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) {
                    return sys::code_of::<()>(Err(e));
                }
                sys::code_of(sys::mount_tmpfs(c"/tmp"))
            })
        }),
        Attack::new("privileges", "clone newuser", "clone(CLONE_NEWUSER)", SECCOMP, |_| {
            child_outcome("clone(CLONE_NEWUSER)", || {
                sys::code_of(sys::clone_with(u64::try_from(libc::CLONE_NEWUSER).unwrap_or(0)))
            })
        }),
        Attack::new(
            "privileges",
            "clone3 newuser",
            "clone3 with CLONE_NEWUSER (its flags are in memory, where a filter cannot read them)",
            "seccomp: clone3 answers ENOSYS so libc falls back to clone, whose flags are checked",
            |_| {
                child_outcome("clone3(CLONE_NEWUSER)", || {
                    sys::code_of(sys::clone3_with(u64::try_from(libc::CLONE_NEWUSER).unwrap_or(0)))
                })
            },
        ),
        Attack::new("privileges", "keyctl", "a new session keyring (keyctl)", SECCOMP, |_| {
            outcome(sys::keyctl_join(c"corral-selftest"), "keyctl")
        }),
        Attack::new("privileges", "bpf", "create a BPF map", SECCOMP, |b| {
            if b.mode == Mode::Control {
                if let Some(why) = sysctl_refuses("/proc/sys/kernel/unprivileged_bpf_disabled", 1) {
                    return Probe::Skipped(why);
                }
            }
            outcome(sys::bpf_map_create(), "bpf")
        }),
        Attack::new("privileges", "perf_event_open", "a perf event on itself", SECCOMP, |b| {
            if b.mode == Mode::Control {
                if let Some(why) = sysctl_refuses("/proc/sys/kernel/perf_event_paranoid", 3) {
                    return Probe::Skipped(why);
                }
            }
            outcome(sys::perf_event_open_self(), "perf_event_open")
        }),
        Attack::new("privileges", "userfaultfd", "a userfaultfd (a tool for kernel race exploits)", SECCOMP, |_| {
            outcome(sys::userfaultfd(), "userfaultfd")
        }),
        Attack::new("privileges", "io_uring", "an io_uring (syscalls that seccomp never sees)", SECCOMP, |b| {
            if b.mode == Mode::Control {
                if let Some(why) = sysctl_refuses("/proc/sys/kernel/io_uring_disabled", 2) {
                    return Probe::Skipped(why);
                }
            }
            outcome(sys::io_uring_setup(), "io_uring_setup")
        }),
        Attack::new(
            "terminal",
            "TIOCSTI",
            "push a command into its terminal's input (TIOCSTI), on a pty of its own",
            SECCOMP,
            |b| {
                if b.mode == Mode::Control {
                    if let Some(why) = std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti")
                        .ok()
                        .filter(|v| v.trim() == "0")
                    {
                        let _ = why;
                        return Probe::Skipped("this kernel already refuses TIOCSTI (dev.tty.legacy_tiocsti = 0)".into());
                    }
                }
                match sys::open_pty() {
                    Ok((master, slave)) => match sys::tiocsti_on_own_terminal(&slave, b'#') {
                        Ok(0) => {
                            let mut buf = [0u8; 8];
                            let got = rustix::io::read(&master, &mut buf).unwrap_or(0);
                            Probe::Escaped(format!("TIOCSTI pushed a byte ({got} read back)"))
                        }
                        Ok(code) if code < 128 => Probe::Blocked(errno_name(&std::io::Error::from_raw_os_error(code))),
                        Ok(code) => Probe::Blocked(format!("killed by signal {}", code - 128)),
                        Err(e) => Probe::Blocked(errno_name(&e)),
                    },
                    Err(e) => Probe::Skipped(format!("no pty: {}", errno_name(&e))),
                }
            },
        ),
        Attack::new(
            "terminal",
            "TIOCLINUX",
            "TIOCLINUX on a virtual console (read the screen, paste a selection)",
            SECCOMP,
            |b| {
                let console = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty0");
                match console {
                    Ok(f) => outcome(sys::tty_ioctl_byte(&f, libc::TIOCLINUX, 7), "TIOCLINUX"),
                    Err(e) if b.mode == Mode::Control => {
                        Probe::Skipped(format!("no virtual console to attack here (/dev/tty0: {})", errno_name(&e)))
                    }
                    Err(e) => Probe::Blocked(errno_name(&e)),
                }
            },
        ),
        Attack::new("kernel", "dmesg", "read the kernel log (syslog)", SECCOMP, |b| {
            if b.mode == Mode::Control {
                if let Some(why) = sysctl_refuses("/proc/sys/kernel/dmesg_restrict", 1) {
                    return Probe::Skipped(why);
                }
            }
            outcome(sys::syslog_read_all(), "syslog(READ_ALL)")
        }),
        Attack::new("kernel", "/proc/kcore", "read kernel memory through /proc/kcore", KERNEL, |b| {
            match std::fs::File::open("/proc/kcore") {
                Err(e) if b.mode == Mode::Control => Probe::Skipped(format!(
                    "this machine already refuses it (/proc/kcore: {}; only root may read it where it exists)",
                    errno_name(&e)
                )),
                r => outcome(r, "opening /proc/kcore"),
            }
        }),
        Attack::new("kernel", "/sys/firmware", "list the machine's firmware tables", KERNEL, |_| {
            match std::fs::read_dir("/sys/firmware") {
                Ok(d) => match d.count() {
                    0 => Probe::Blocked("empty".into()),
                    n => Probe::Escaped(format!("{n} entries")),
                },
                Err(e) => Probe::Blocked(errno_name(&e)),
            }
        }),
        Attack::new("kernel", "hostname", "learn the host's hostname", "UTS namespace: a hostname of its own", |b| {
            match rustix::system::uname().nodename().to_str() {
                Ok(n) if n == b.host_hostname => Probe::Escaped(format!("hostname is {n}")),
                Ok(n) => Probe::Blocked(format!("hostname is {n}")),
                Err(_) => Probe::Blocked("not UTF-8".into()),
            }
        }),
        Attack::new(
            "kernel",
            "/proc/net",
            "see the host's sockets in /proc/net/tcp (the bait listener)",
            "network namespace: /proc/net is the sandbox's",
            |b| {
                let needle = format!(":{:04X} ", b.tcp_port);
                match std::fs::read_to_string("/proc/net/tcp") {
                    Ok(t) if t.contains(&needle) => Probe::Escaped("the host's listener is listed".into()),
                    Ok(_) => Probe::Blocked("only the sandbox's sockets".into()),
                    Err(e) => Probe::Blocked(errno_name(&e)),
                }
            },
        ),
    ];
    v.shrink_to_fit();
    v
}

/// Starts a setuid-root program that waits on its input (`su`, `passwd`) and looks at its
/// effective uid while it waits.
fn setuid() -> Probe {
    use std::os::unix::fs::PermissionsExt;
    let Some(prog) = ["/usr/bin/su", "/bin/su", "/usr/bin/passwd"]
        .into_iter()
        .find(|p| {
            // The owner is not checked: inside a user namespace root shows as the overflow uid.
            std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o4000 != 0)
        })
    else {
        return Probe::Skipped("no setuid su or passwd on this machine".into());
    };
    let child = std::process::Command::new(prog)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Probe::Blocked(format!("exec {prog}: {}", errno_name(&e))),
    };
    let mut euid = None;
    for _ in 0..40 {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", child.id())) {
            euid = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|u| u.split_whitespace().nth(1)?.parse::<u32>().ok());
            if euid == Some(0) {
                break;
            }
        }
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    match euid {
        Some(0) => Probe::Escaped(format!("{prog} ran with euid 0")),
        Some(u) => Probe::Blocked(format!("{prog} ran with euid {u}")),
        None => Probe::Blocked(format!("{prog} could not be observed")),
    }
}
