//! Escape suite (T3), processes and privileges: an agent inside `corral run` cannot see, signal or
//! read host processes, cannot read a secret from the environment, gains no privilege (no
//! capabilities, no_new_privs, setuid binaries give nothing), cannot reach the kernel's riskier
//! interfaces (ptrace, process_vm_*, keyctl, bpf, perf, userfaultfd, io_uring, mount, new
//! namespaces, clone3, setns), cannot inject keystrokes into the terminal (TIOCSTI, TIOCLINUX), and
//! inherits no descriptor from the process that started corral.
//!
//! One attack per test: set up outside, attempt inside, assert the exact blocked outcome. Every test
//! also makes the same attempt **outside** the sandbox, as the same user, and asserts that it works
//! there (or, for a system call, that it reaches the kernel and gets the kernel's own answer rather
//! than the filter's), so a test that could not see an escape fails instead of passing vacuously.
//!
//! System calls are made from python3 with ctypes (x86_64 numbers). The seccomp filter answers
//! EPERM (1), and ENOSYS (38) for clone3.

// Helpers outside #[test] functions panic on a failed set-up, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// True when sandboxes can be started here; tests call `return skip(..)` otherwise.
fn ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(userns_available)
}

const NO_SANDBOX: &str = "cannot start a sandbox here (user namespaces unavailable?)";

/// EPERM: what the seccomp filter answers.
const EPERM: &str = "1\n";
/// ENOSYS: the filter's answer to clone3 (libc then falls back to clone).
const ENOSYS: &str = "38\n";

/// `sh -c SCRIPT` outside; asserts exit 0 and returns stdout.
#[track_caller]
fn outside_ok(fx: &Fixture, script: &str) -> String {
    let o = fx.sh_outside(script);
    assert_code(&o, 0);
    stdout(&o)
}

/// `corral run -- sh -c SCRIPT`; asserts exit 0 and returns stdout.
#[track_caller]
fn inside_ok(fx: &Fixture, script: &str) -> String {
    let o = fx.sh(script);
    assert_code(&o, 0);
    stdout(&o)
}

/// A program running as the sandbox user outside the sandbox; killed and reaped when dropped.
#[derive(Debug)]
struct HostProcess(Child);

impl HostProcess {
    /// `sleep 300` as the sandbox user (setpriv execs, so the child's pid is sleep's).
    fn sleeper(fx: &Fixture) -> HostProcess {
        let mut c = user_command(fx, "sleep");
        c.arg("300");
        let p = HostProcess(c.spawn().unwrap());
        // Until setpriv has exec'd sleep, the pid is setpriv's (and still root's): the controls
        // would look at the wrong process on a loaded machine.
        let cmdline = format!("/proc/{}/cmdline", p.pid());
        let execd = wait_until(std::time::Duration::from_secs(10), || {
            std::fs::read(&cmdline).is_ok_and(|c| c.starts_with(b"sleep\0"))
        });
        assert!(execd, "the sentinel did not start");
        p
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `program` as the sandbox user, outside, from the workspace, with a clean environment.
fn user_command(fx: &Fixture, program: &str) -> Command {
    fx.chown();
    let mut c = if fx.ids.drop {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", fx.ids.uid))
            .arg(format!("--regid={}", fx.ids.gid))
            .arg("--clear-groups")
            .arg(program);
        c
    } else {
        Command::new(program)
    };
    c.current_dir(&fx.ws)
        .env_clear()
        .env("HOME", &fx.home)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::null());
    c
}

/// Writes `probe.py` into the workspace: it makes one system call and prints the errno (0 for
/// success). `args` is a python tuple body, e.g. `"0, 0, 0, 0"`.
fn syscall_probe(fx: &Fixture, nr: u32, args: &str) {
    fx.ws_file(
        "probe.py",
        &format!(
            "import ctypes\n\
             libc = ctypes.CDLL(None, use_errno=True)\n\
             libc.syscall.restype = ctypes.c_long\n\
             ctypes.set_errno(0)\n\
             r = libc.syscall({nr}, {args})\n\
             print(0 if r >= 0 else ctypes.get_errno())\n"
        ),
    );
}

/// Makes system call `nr` outside and inside: asserts the kernel's own answer outside and the
/// filter's inside.
fn assert_syscall(nr: u32, args: &str, outside: &str, inside: &str) {
    let fx = Fixture::new();
    syscall_probe(&fx, nr, args);
    if !ready() {
        return skip(NO_SANDBOX);
    }
    assert_eq!(outside_ok(&fx, "exec python3 probe.py"), outside, "outside");
    assert_eq!(inside_ok(&fx, "exec python3 probe.py"), inside, "inside");
}

// x86_64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl).
const SYS_MOUNT: u32 = 165;
const SYS_PTRACE: u32 = 101;
const SYS_KEYCTL: u32 = 250;
const SYS_UNSHARE: u32 = 272;
const SYS_PERF_EVENT_OPEN: u32 = 298;
const SYS_SETNS: u32 = 308;
const SYS_PROCESS_VM_READV: u32 = 310;
const SYS_BPF: u32 = 321;
const SYS_USERFAULTFD: u32 = 323;
const SYS_IO_URING_SETUP: u32 = 425;
const SYS_CLONE3: u32 = 435;

// ---------------------------------------------------------------------------------------------
// Host processes.

#[test]
fn host_process_cannot_be_signalled() {
    let fx = Fixture::new();
    let sentinel = HostProcess::sleeper(&fx);
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let attack = format!("kill -0 {} 2>/dev/null; echo rc=$?", sentinel.pid());
    assert_eq!(outside_ok(&fx, &attack), "rc=0\n");
    assert_eq!(inside_ok(&fx, &attack), "rc=1\n");
}

#[test]
fn host_process_is_absent_from_proc() {
    let fx = Fixture::new();
    let sentinel = HostProcess::sleeper(&fx);
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let attack = format!(
        "cat /proc/{}/cmdline 2>/dev/null | tr '\\0' ' '; echo rc=$?",
        sentinel.pid()
    );
    assert_eq!(outside_ok(&fx, &attack), "sleep 300 rc=0\n");
    // `tr` succeeds on empty input: the pipeline's status is tr's; the text is what matters.
    assert_eq!(inside_ok(&fx, &attack), "rc=0\n");
    let exists = format!("[ -e /proc/{} ] && echo present || echo absent", sentinel.pid());
    assert_eq!(outside_ok(&fx, &exists), "present\n");
    assert_eq!(inside_ok(&fx, &exists), "absent\n");
}

#[test]
fn proc_lists_only_the_sandbox_pids() {
    let fx = Fixture::new();
    let sentinel = HostProcess::sleeper(&fx);
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let list =
        "exec python3 -c \"import os; print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\"";
    let outside = outside_ok(&fx, list);
    let pids: Vec<u32> = outside
        .trim()
        .trim_matches(|c| c == '[' || c == ']')
        .split(", ")
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(
        pids.contains(&sentinel.pid()),
        "control: the sentinel {} is not in {outside}",
        sentinel.pid()
    );
    // PID 1 is corral's init, PID 2 the command (sh exec'd python).
    assert_eq!(inside_ok(&fx, list), "[1, 2]\n");
}

#[test]
fn signal_to_own_process_group_does_not_reach_host() {
    // Process groups span pid namespaces: kill(0, sig) inside reaches every member of corral's
    // process group, including host processes started by the same shell (e.g. `corral run | tee`).
    let fx = Fixture::new();
    if !ready() {
        return skip(NO_SANDBOX);
    }
    // A fresh process group holding a host sentinel and corral; the sentinel reports whether it
    // still lives after the attack. Inside, sh ignores the signal itself.
    // (`\\$?`: expanded by the inner sh, not the outer one. The outer sh handles USR1 rather than
    // ignoring it, so that it survives while its children keep the default action. The sentinel is
    // attacked only once it runs `sleep`: before its exec it is a copy of the outer sh, which
    // would survive the signal on a loaded machine.)
    let attack = "trap '' USR1; kill -s USR1 0; echo kill=\\$?";
    let outer = |attempt: &str| {
        format!(
            "trap 'true' USR1; sleep 300 & S=$!; \
             i=0; until tr '\\0' ' ' < /proc/$S/cmdline 2>/dev/null | grep -q '^sleep'; do \
               i=$((i+1)); [ $i -gt 500 ] && break; sleep 0.01; done; \
             {attempt}; sleep 0.2; \
             if kill -0 $S 2>/dev/null; then echo alive; kill $S; else echo dead; fi; wait $S 2>/dev/null; true"
        )
    };
    let inside_cmd = format!("'{}' run --yes -- sh -c \"{attack}\"", corral_bin().display());
    let run = |script: String| {
        let mut c = user_command(&fx, "sh");
        c.args(["-c", &script]).process_group(0);
        let o = c.output().unwrap();
        assert_code(&o, 0);
        stdout(&o)
    };
    assert_eq!(run(outer(&format!("sh -c \"{attack}\""))), "kill=0\ndead\n");
    assert_eq!(run(outer(&inside_cmd)), "kill=0\nalive\n");
}

// ---------------------------------------------------------------------------------------------
// Environment.

/// The pids whose parent is `parent`, from /proc/*/stat (the field after the last `)` is the
/// state, then the parent pid).
fn children_of(parent: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rfind(')')
                    .and_then(|i| s[i + 1..].split_whitespace().nth(1)?.parse::<i32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}

#[test]
fn init_holds_no_host_environment() {
    const KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    // Inside, init's /proc/1/environ is unreadable (init is not dumpable); only root on the host
    // may read it, so this needs a root test run (CI's).
    if !rustix::process::geteuid().is_root() {
        return skip("reading the sandbox init's environment from the host needs a root test run");
    }
    let fx = Fixture::new();
    if !ready() {
        return skip(NO_SANDBOX);
    }
    fx.chown();
    let child = fx
        .corral()
        .env("AWS_SECRET_ACCESS_KEY", KEY)
        .args(["run", "--yes", "--", "sleep", "30"])
        .spawn()
        .unwrap();
    let corral = Reaped(child);
    // init is the supervisor's child that itself has a child (the command).
    let mut init = None;
    let found = wait_until(std::time::Duration::from_secs(20), || {
        init = children_of(corral.pid())
            .into_iter()
            .find(|p| !children_of(*p).is_empty());
        init.is_some()
    });
    assert!(found, "no sandbox init under the supervisor");
    let environ = |pid: i32| std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    // Control: the supervisor has the variable, and the read works.
    let outside = String::from_utf8_lossy(&environ(corral.pid())).into_owned();
    assert!(outside.contains(KEY), "control: {outside:?}");
    assert_eq!(environ(init.unwrap()), b"", "init's environment is not empty");
}

#[test]
fn secret_env_var_is_absent() {
    const KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let fx = Fixture::new();
    if !ready() {
        return skip(NO_SANDBOX);
    }
    // Count it in `env` and in our own /proc/self/environ, then look through every environ in
    // /proc (init's is unreadable inside: init is not dumpable; `init_holds_no_host_environment`
    // reads it from the host).
    let script = "env | grep -c EXAMPLEKEY; cat /proc/self/environ | tr '\\0' '\\n' | grep -c EXAMPLEKEY; \
                  if cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -q EXAMPLEKEY; \
                  then echo found; else echo none; fi";
    let o = user_command(&fx, "sh")
        .args(["-c", script])
        .env("AWS_SECRET_ACCESS_KEY", KEY)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "1\n1\nfound\n", "control");
    let o = fx
        .corral()
        .env("AWS_SECRET_ACCESS_KEY", KEY)
        .args(["run", "--yes", "--", "sh", "-c", script])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "0\n0\nnone\n");
}

// ---------------------------------------------------------------------------------------------
// Privileges.

#[test]
fn no_new_privs_is_set_and_every_capability_set_is_empty() {
    let fx = Fixture::new();
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let script = "grep -E '^(NoNewPrivs|CapPrm|CapEff|CapBnd|CapAmb):' /proc/self/status";
    let outside = outside_ok(&fx, script);
    assert!(
        outside.contains("NoNewPrivs:\t0\n") && !outside.contains("CapBnd:\t0000000000000000"),
        "control: {outside}"
    );
    assert_eq!(
        inside_ok(&fx, script),
        "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\n\
         CapAmb:\t0000000000000000\nNoNewPrivs:\t1\n"
    );
}

#[test]
fn setuid_passwd_reads_no_shadow() {
    // passwd is setuid root; with its privilege it reads /etc/shadow and prints the account's
    // status with the shadow fields (date of last change, ages). Without, only what /etc/passwd has.
    let fx = Fixture::new();
    if !ready() {
        return skip(NO_SANDBOX);
    }
    if !std::path::Path::new("/usr/bin/passwd").exists() {
        return skip("/usr/bin/passwd is missing");
    }
    let attack = format!("passwd -S {TEST_USER}");
    let outside = outside_ok(&fx, &attack);
    assert_eq!(
        outside.split_whitespace().count(),
        7,
        "control: passwd did not read /etc/shadow: {outside}"
    );
    let o = fx.sh(&attack);
    let inside = stdout(&o);
    assert_eq!(
        inside.split_whitespace().count(),
        2,
        "passwd read /etc/shadow inside: {inside}{}",
        stderr(&o)
    );
    assert_eq!(inside, format!("{TEST_USER} P\n"));
}

#[test]
fn ptrace_traceme_is_denied() {
    assert_syscall(SYS_PTRACE, "0, 0, 0, 0", "0\n", EPERM);
}

#[test]
fn process_vm_readv_is_denied() {
    // No iovecs, flags 0: the kernel answers EINVAL (liovcnt 0 with a NULL vector is refused).
    assert_syscall(
        SYS_PROCESS_VM_READV,
        "__import__('os').getpid(), 0, 0, 0, 0, 0",
        "22\n",
        EPERM,
    );
}

#[test]
fn keyctl_is_denied() {
    // KEYCTL_GET_KEYRING_ID (0) of KEY_SPEC_SESSION_KEYRING (-3), create 1.
    assert_syscall(SYS_KEYCTL, "0, -3, 1", "0\n", EPERM);
}

#[test]
fn bpf_is_denied() {
    // An unknown command: the kernel answers EINVAL (unprivileged BPF may be off as well).
    assert_syscall(SYS_BPF, "9999, 0, 0", "22\n", EPERM);
}

#[test]
fn perf_event_open_is_denied() {
    // attr = NULL: the kernel answers EFAULT.
    assert_syscall(SYS_PERF_EVENT_OPEN, "0, 0, -1, -1, 0", "14\n", EPERM);
}

#[test]
fn userfaultfd_is_denied() {
    // UFFD_USER_MODE_ONLY (1) is allowed to unprivileged users.
    assert_syscall(SYS_USERFAULTFD, "1", "0\n", EPERM);
}

#[test]
fn io_uring_setup_is_denied() {
    // params = NULL: the kernel answers EFAULT.
    assert_syscall(SYS_IO_URING_SETUP, "1, 0", "14\n", EPERM);
}

#[test]
fn mount_is_denied() {
    // Every pointer NULL: the kernel answers EFAULT before it looks at privileges.
    assert_syscall(SYS_MOUNT, "0, 0, 0, 0, 0", "14\n", EPERM);
}

#[test]
fn unshare_user_namespace_syscall_is_denied() {
    // CLONE_NEWUSER.
    assert_syscall(SYS_UNSHARE, "0x10000000", "0\n", EPERM);
}

#[test]
fn unshare_command_cannot_make_a_user_namespace() {
    let fx = Fixture::new();
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let attack = "unshare -U true 2>/dev/null; echo rc=$?";
    assert_eq!(outside_ok(&fx, attack), "rc=0\n");
    assert_eq!(inside_ok(&fx, attack), "rc=1\n");
}

#[test]
fn clone3_is_enosys() {
    // args = NULL, size 0: the kernel answers EINVAL.
    assert_syscall(SYS_CLONE3, "0, 0", "22\n", ENOSYS);
}

#[test]
fn setns_is_denied() {
    // fd 0 is /dev/null, not a namespace: the kernel answers EINVAL.
    assert_syscall(SYS_SETNS, "0, 0", "22\n", EPERM);
}

// ---------------------------------------------------------------------------------------------
// Terminal.

/// Runs `ioctl(0, request, b'x')` and prints the errno (0 for success).
fn assert_tty_ioctl_denied(request: u32) {
    let fx = Fixture::new();
    fx.ws_file(
        "ioctl.py",
        &format!(
            "import fcntl\n\
             try:\n    fcntl.ioctl(0, {request:#x}, b'x'); print(0)\n\
             except OSError as e:\n    print(e.errno)\n"
        ),
    );
    if !ready() {
        return skip(NO_SANDBOX);
    }
    // stdin is /dev/null: outside the kernel answers ENOTTY (25), which shows the call got there.
    assert_eq!(outside_ok(&fx, "exec python3 ioctl.py"), "25\n");
    assert_eq!(inside_ok(&fx, "exec python3 ioctl.py"), EPERM);
}

#[test]
fn tiocsti_is_denied() {
    const TIOCSTI: u32 = 0x5412;
    assert_tty_ioctl_denied(TIOCSTI);
}

#[test]
fn tioclinux_is_denied() {
    const TIOCLINUX: u32 = 0x541C;
    assert_tty_ioctl_denied(TIOCLINUX);
}

// ---------------------------------------------------------------------------------------------
// File descriptors.

#[test]
fn inherited_descriptor_to_a_secret_is_closed() {
    let fx = Fixture::new();
    let secret = fx.home_file(".ssh/id_ed25519", "PRIVATE KEY\n");
    if !ready() {
        return skip(NO_SANDBOX);
    }
    // `sh -c 'exec 7<"$0"; exec "$@"' SECRET PROGRAM ARGS...`: PROGRAM starts with fd 7 open on
    // the secret.
    const FD7: &str = "exec 7<\"$0\"; exec \"$@\"";
    let with_fd7 = |args: &[&str]| {
        let mut c = user_command(&fx, "sh");
        c.args(["-c", FD7]).arg(&secret).args(args);
        let o = c.output().unwrap();
        assert_code(&o, 0);
        stdout(&o)
    };
    // ls opens the directory it lists as fd 3. (Outside, descriptors the test harness itself
    // inherited, e.g. cargo's jobserver, show up too: the sandbox must close those as well.)
    let outside = with_fd7(&["ls", "/proc/self/fd"]);
    assert!(outside.lines().any(|l| l == "7"), "control: {outside}");
    assert_eq!(with_fd7(&["cat", "/proc/self/fd/7"]), "PRIVATE KEY\n");
    let bin = corral_bin().display().to_string();
    assert_eq!(
        with_fd7(&[&bin, "run", "--yes", "--", "ls", "/proc/self/fd"]),
        "0\n1\n2\n3\n"
    );
    let o = {
        let mut c = user_command(&fx, "sh");
        c.args(["-c", FD7])
            .arg(&secret)
            .args([bin.as_str(), "run", "--yes", "--", "cat", "/proc/self/fd/7"]);
        c.output().unwrap()
    };
    assert_code(&o, 1);
    assert_eq!(stdout(&o), "");
}
