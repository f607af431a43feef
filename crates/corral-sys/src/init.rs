//! The sandbox's PID 1 (`corral __init`): builds the sandbox from the plan, starts the command,
//! then reaps orphans and forwards signals until the command exits.
//!
//! It is exec'd by the cloned child with an empty environment, so nothing of the supervisor's memory
//! (the host environment, later the API key) exists in the sandbox. It arrives in its own user,
//! mount, pid, ipc, uts, cgroup and network namespaces, with its uid mapped 1:1 and the capabilities
//! of [`crate::ll::INIT_CAPS`] kept as ambient capabilities. The set-up is one linear function,
//! [`set_up_and_start`]: each step says why it sits where it does.

use crate::landlock::restrict_landlock;
use crate::ll;
use crate::mounts::{apply_mounts, make_private, pivot_into, staging_dir};
use crate::protocol::InitMsg;
use crate::seccomp;
use corral_core::layer::{Achieved, Layer, LayerReport, Level};
use corral_core::plan::Plan;
use corral_core::profile::NetworkMode;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::process::{set_parent_process_death_signal, Signal};
use std::ffi::CString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// The descriptor of the control socket to the supervisor, placed there by the cloned child.
pub const CTL_FD: RawFd = 3;

/// The variable init sets in the command's environment to the Landlock level it achieved
/// (`full abi7`, `partial abi3`, `none`).
pub const LANDLOCK_ENV: &str = "CORRAL_LANDLOCK";

/// `si_code` of a signal the kernel generated itself (e.g. the terminal's Ctrl-C).
const SI_KERNEL: i32 = 0x80;

/// Signals init passes on to the command (sent to init by the supervisor, e.g. on `kill corral`).
const FORWARDED: [i32; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// A failure of the sandbox's set-up or of starting the command.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// Talking to the supervisor failed.
    #[error("sandbox init: {op}: {source}")]
    Protocol {
        /// What.
        op: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A mount step failed.
    #[error("building the sandbox's filesystem: {0}")]
    Mount(#[from] crate::mounts::MountError),
    /// Another set-up step failed.
    #[error("{op}: {source}")]
    Step {
        /// The operation, strace-style.
        op: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Landlock failed or is required and missing.
    #[error(transparent)]
    Landlock(#[from] crate::landlock::LandlockError),
    /// seccomp failed.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    /// The command is not in PATH.
    #[error("command not found: {command:?} (looked in {path} inside the sandbox)")]
    NotFound {
        /// argv[0].
        command: String,
        /// The PATH searched.
        path: String,
    },
    /// The command exists but cannot be executed.
    #[error("cannot execute {command:?}: {source}")]
    NotExecutable {
        /// Resolved path.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl InitError {
    /// The exit code corral reports for this failure (like env(1) and docker run).
    pub fn exit_code(&self) -> i32 {
        match self {
            InitError::NotFound { .. } => 127,
            InitError::NotExecutable { .. } => 126,
            _ => 125,
        }
    }
}

fn step(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> InitError {
    let op = op.into();
    move |source| InitError::Step { op, source }
}

/// Entry point of `corral __init`. Never returns.
pub fn main() -> ! {
    let ctl = ctl_socket();
    let code = match run(&ctl) {
        Ok(code) => code,
        Err(e) => {
            let code = e.exit_code();
            send(
                &ctl,
                &InitMsg::Error {
                    code,
                    message: error_chain(&e),
                },
            );
            code
        }
    };
    ll::exit_now(code)
}

fn ctl_socket() -> UnixStream {
    // SAFETY: the cloned child placed the control socket at CTL_FD right before exec, and nothing
    // else in this freshly exec'd process refers to that descriptor: taking ownership once is sound.
    let fd = unsafe { OwnedFd::from_raw_fd(CTL_FD) };
    // Close-on-exec so the command never inherits it (start_command also marks every fd >= 3).
    let _ = rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC);
    UnixStream::from(fd)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        src = cause.source();
    }
    s
}

fn send(ctl: &UnixStream, msg: &InitMsg) {
    if let Ok(mut line) = serde_json::to_vec(msg) {
        line.push(b'\n');
        // A supervisor that is gone cannot be told; init exits on its EOF anyway.
        let _ = (&*ctl).write_all(&line);
    }
}

/// Like [`send`], with descriptors attached (SCM_RIGHTS, at most 4). Unlike `send`, a failure
/// matters: without the exec listener nobody answers it and every exec inside would fail; without
/// the network sockets nothing inside reaches the proxy.
fn send_with_fds(
    ctl: &UnixStream,
    msg: &InitMsg,
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> std::io::Result<()> {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let mut line = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(std::io::Error::other("too many descriptors for one message"));
    }
    // One short line: a stream socket with room sends it whole.
    let sent = sendmsg(
        ctl,
        &[std::io::IoSlice::new(&line)],
        &mut control,
        SendFlags::empty(),
    )?;
    if sent != line.len() {
        return Err(std::io::Error::from(std::io::ErrorKind::WriteZero));
    }
    Ok(())
}

fn run(ctl: &UnixStream) -> Result<i32, InitError> {
    let started = set_up_and_start(ctl)?;
    reap(ctl, started)
}

/// What [`reap`] needs after the start.
struct Started {
    agent: i32,
}

/// Builds the sandbox and starts the command. The order is fixed; see the comment on each step.
fn set_up_and_start(ctl: &UnixStream) -> Result<Started, InitError> {
    // The supervisor blocked signals for its signalfd, and the mask survives exec: clear it, so
    // the command starts with nothing blocked.
    ll::unblock_all_signals().map_err(step("sigprocmask(SIG_SETMASK, {})"))?;

    // Die with the supervisor. Re-armed here because exec may clear it; the EOF on the control
    // socket (read below and polled later) covers the window before this call.
    set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(|e| step("prctl(PR_SET_PDEATHSIG)")(e.into()))?;

    // The plan: one JSON line. EOF means the supervisor is gone. The supervisor sends it only
    // after it moved this process into the session cgroup.
    let mut plan = read_plan(ctl)?;

    // The cgroup namespace now, not at clone: only after joining the session cgroup is the
    // namespace rooted there, so the sandbox sees `/` as its cgroup and nothing of the host tree.
    let cgroupns = unshare_cgroupns(&plan)?;

    // The pid namespace's own pid_max (Linux ≥ 6.14; written through the host's /proc, which
    // still sits at /proc, it applies to the writer's pid namespace): a floor under the pids
    // limit that needs neither a cgroup nor rlimits. Best effort: older kernels refuse.
    let pid_max = set_pid_max(plan.limits.pids);

    // Mounts made from here on must not propagate to the host, and pivot_root refuses a shared
    // root (EINVAL on systemd hosts, where `/` is shared).
    make_private()?;

    // Hostname first: it is only a uts-namespace change and cannot fail on a bad mount plan.
    // Without a UTS namespace of its own (optional, and refused at clone: the supervisor reports
    // it) the sandbox keeps the host's hostname, and the kernel refuses the change.
    match rustix::system::sethostname(plan.hostname.as_bytes()) {
        Ok(()) => {}
        Err(rustix::io::Errno::PERM) if level(&plan, Layer::Utsns) != Level::Required => {}
        Err(e) => return Err(step(format!("sethostname({:?})", plan.hostname))(e.into())),
    }

    // The new root: host sources cloned first, then tmpfs root, binds, protections, masks, /proc
    // (while the old root is still attached, as the kernel requires), /dev.
    apply_mounts(&plan.mounts, staging_dir())?;

    // Into the new root; the old one is detached and gone from this namespace.
    pivot_into(staging_dir())?;

    // `lo` starts down in a new network namespace: programs expect 127.0.0.1 to work. With the
    // host's network shared (network.mode = "host") there is no namespace of ours to touch.
    if plan.network.mode != NetworkMode::Host {
        ll::loopback_up().map_err(step("ioctl(SIOCSIFFLAGS, \"lo\", IFF_UP)"))?;
    }

    // The proxy's and the DNS sink's sockets, and the agent API gateway's, bound inside this
    // network namespace (after lo is up, while init still holds CAP_NET_BIND_SERVICE for port 53)
    // and handed to the supervisor, which accepts and dials out from the host's namespace: no
    // helper runs inside, and nothing outside the sandbox can reach these sockets. Init keeps no
    // copy.
    let proxy = plan.network.mode == NetworkMode::Proxy;
    let gateway = plan.network.gateway.is_some() && plan.network.mode != NetworkMode::Host;
    if proxy || gateway {
        let sock_err = |e: crate::netsock::SockError| InitError::Step {
            op: e.op,
            source: e.source,
        };
        let mut socks: Vec<OwnedFd> = Vec::new();
        if proxy {
            socks.extend(crate::netsock::bind_sandbox_sockets().map_err(sock_err)?);
        }
        if gateway {
            socks.push(crate::netsock::bind_gateway_socket().map_err(sock_err)?);
        }
        let fds: Vec<_> = socks.iter().map(AsFd::as_fd).collect();
        send_with_fds(ctl, &InitMsg::NetSockets { proxy, gateway }, &fds).map_err(step(
            "sendmsg(control socket, SCM_RIGHTS proxy, DNS and gateway sockets)",
        ))?;
    }

    // rlimits before the command exists, so it inherits them and can only lower them.
    set_rlimits(&plan)?;

    // no_new_privs before Landlock (which requires it without CAP_SYS_ADMIN) and seccomp; it also
    // makes setuid binaries and file capabilities grant nothing.
    rustix::thread::set_no_new_privs(true).map_err(|e| step("prctl(PR_SET_NO_NEW_PRIVS)")(e.into()))?;

    // Resolve the command in the sandbox's own view (before Landlock: with allow_shell = false its
    // rules depend on the resolved path).
    let path_var = plan
        .env
        .iter()
        .find(|v| v.name == "PATH")
        .map(|v| v.value.clone())
        .unwrap_or_default();
    let program = resolve(&plan.command[0], &path_var)?;

    // Landlock after the last mount: once enforced, it forbids mount changes.
    let ll_level = level(&plan, Layer::Landlock);
    let landlock = restrict_landlock(&landlock_policy(&plan, &program), ll_level)?;

    // Init needs no capability from here on; dropping them also protects it from a command that
    // could otherwise reach it (its memory is not dumpable either).
    ll::drop_all_caps().map_err(step("capset(all sets empty)"))?;
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| step("prctl(PR_SET_DUMPABLE, 0)")(e.into()))?;

    // The observation listener goes on init itself, so every process it starts inherits it, and
    // its descriptor reaches the supervisor before the first exec (which waits for the
    // supervisor). It also receives every call the deny list would refuse (plainly denied calls,
    // and the argument checks: namespace flags, ioctl requests, socket families), which the
    // supervisor records and answers EPERM. Without it the sandbox still runs: the log then says
    // exec events are not recorded, and the deny list keeps answering EPERM itself.
    let exec_listener = if plan.audit_exec {
        crate::execwatch::install_exec_listener(&plan.seccomp)
    } else {
        Err(std::io::Error::other("off"))
    };

    // seccomp is compiled here (allocation is fine: init is single-threaded) and installed in the
    // child as the very last step before execve. With the listener on, the deny list is left
    // empty: its EPERM would outrank the notification (seccomp(2): ERRNO takes precedence over
    // USER_NOTIF), and the listener's supervisor answers EPERM for all of it.
    let filter = if exec_listener.is_ok() {
        seccomp::compile_observed(&plan.seccomp)?
    } else {
        seccomp::compile(&plan.seccomp)?
    };

    let exec_audit = match &exec_listener {
        Ok(_) => "every exec and every denied call recorded".to_string(),
        Err(_) if !plan.audit_exec => "exec audit off (sandbox.audit_exec = false)".to_string(),
        Err(e) => format!(
            "{} (seccomp user notification: {e})",
            crate::protocol::EXEC_AUDIT_OFF
        ),
    };

    let reports = vec![
        cgroupns,
        report(
            &plan,
            Layer::Mountns,
            Achieved::Full,
            format!("{} mount steps, pivot_root done", plan.mounts.len()),
        ),
        report(
            &plan,
            Layer::NoNewPrivs,
            Achieved::Full,
            "no_new_privs set; every capability set empty".into(),
        ),
        report(&plan, Layer::Landlock, landlock.achieved, landlock.detail.clone()),
        report(
            &plan,
            Layer::Seccomp,
            Achieved::Full,
            format!("{}; {exec_audit}", seccomp_summary(&plan)),
        ),
        report(
            &plan,
            Layer::Rlimits,
            Achieved::Full,
            format!("{}; {pid_max}", rlimit_summary(&plan)),
        ),
    ];
    send(ctl, &InitMsg::Layers { reports });
    if let Ok(listener) = exec_listener {
        send_with_fds(ctl, &InitMsg::ExecListener, &[listener.as_fd()])
            .map_err(step("sendmsg(control socket, SCM_RIGHTS exec listener)"))?;
        // Init keeps no copy: only the supervisor may answer.
        drop(listener);
    }

    // What Landlock really achieved, for programs inside that report it (`corral statusline`):
    // known only now, after enforcement, and set by init, not by the plan.
    plan.env.retain(|v| v.name != LANDLOCK_ENV);
    plan.env.push(corral_core::plan::EnvVar {
        name: LANDLOCK_ENV.into(),
        value: match landlock.abi {
            Some(abi) => format!("{} abi{abi}", landlock.achieved),
            None => landlock.achieved.to_string(),
        },
        source: corral_core::envaudit::AuditSource::Corral,
    });
    let agent = start_command(&plan, &program, &filter)?;
    send(ctl, &InitMsg::Started { pid: agent });
    Ok(Started { agent })
}

/// The plan's Landlock policy, plus — when only the command may be executed — an `Exec` rule for
/// the command and for what the kernel must execute to start it (its ELF interpreter, or a
/// script's `#!` interpreter and that one's ELF interpreter).
fn landlock_policy(plan: &Plan, program: &Path) -> corral_core::landlock_policy::LandlockPolicy {
    use corral_core::landlock_policy::{FsAccess, LandlockRule};
    let mut policy = plan.landlock.clone();
    if !policy.exec_only {
        return policy;
    }
    let mut todo = vec![program.to_path_buf()];
    let mut seen: Vec<PathBuf> = Vec::new();
    while let Some(p) = todo.pop() {
        let Ok(real) = std::fs::canonicalize(&p) else {
            continue;
        };
        // A chain longer than script → interpreter → loader is not something to follow.
        if seen.contains(&real) || seen.len() > 4 {
            continue;
        }
        let mut head = vec![0u8; 4096];
        let n = std::fs::File::open(&real)
            .and_then(|mut f| f.read(&mut head))
            .unwrap_or(0);
        head.truncate(n);
        // The ELF header and program headers sit in the first page of any normal executable.
        let next = corral_core::exe::elf_interpreter(&head).or_else(|| corral_core::exe::shebang(&head));
        todo.extend(next.map(PathBuf::from));
        policy.rules.push(LandlockRule {
            path: real.clone(),
            access: FsAccess::Exec,
        });
        seen.push(real);
    }
    policy
}

/// `unshare(CLONE_NEWCGROUP)`, reported as the cgroupns layer; an error only when it is required.
fn unshare_cgroupns(plan: &Plan) -> Result<LayerReport, InitError> {
    // SAFETY: CLONE_NEWCGROUP only changes this process's cgroup namespace; it does not unshare
    // the file table or memory that the rest of this process relies on (the concern that made
    // rustix mark unshare unsafe).
    match unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWCGROUP) }
        .map_err(std::io::Error::from)
    {
        Ok(()) => Ok(report(
            plan,
            Layer::Cgroupns,
            Achieved::Full,
            "cgroup tree rooted at the session cgroup".into(),
        )),
        Err(e) if level(plan, Layer::Cgroupns) == Level::BestEffort => Ok(report(
            plan,
            Layer::Cgroupns,
            Achieved::None,
            format!("unshare(CLONE_NEWCGROUP): {e}"),
        )),
        Err(e) => Err(step("unshare(CLONE_NEWCGROUP)")(e)),
    }
}

/// The lowest pid_max the kernel accepts for a pid namespace.
const PID_MAX_MIN: u64 = 301;

/// Sets this pid namespace's pid_max to allow `pids` processes (and threads) plus init; returns a
/// line for the report.
fn set_pid_max(pids: u64) -> String {
    let value = pids.saturating_add(2).max(PID_MAX_MIN);
    match std::fs::write("/proc/sys/kernel/pid_max", value.to_string()) {
        Ok(()) => format!("pid_max={value} for the pid namespace"),
        Err(e) => format!("no per-namespace pid_max on this kernel ({e})"),
    }
}

fn level(plan: &Plan, layer: Layer) -> Level {
    plan.layers.get(&layer).copied().unwrap_or(Level::Required)
}

fn report(plan: &Plan, layer: Layer, achieved: Achieved, detail: String) -> LayerReport {
    LayerReport {
        layer,
        level: level(plan, layer),
        achieved,
        detail,
    }
}

fn seccomp_summary(plan: &Plan) -> String {
    format!(
        "{} calls denied (EPERM), {} ENOSYS, ioctl {} denied, x32 denied",
        plan.seccomp.deny.len(),
        plan.seccomp.enosys.join("/"),
        plan.seccomp
            .deny_ioctls
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join("/")
    )
}

fn rlimit_summary(plan: &Plan) -> String {
    plan.rlimits
        .iter()
        .map(|r| format!("{}={}", r.resource.trim_start_matches("RLIMIT_"), r.hard))
        .collect::<Vec<_>>()
        .join(" ")
}

fn read_plan(ctl: &UnixStream) -> Result<Plan, InitError> {
    let mut line = Vec::new();
    BufReader::new(ctl)
        .read_until(b'\n', &mut line)
        .map_err(|source| InitError::Protocol {
            op: "read plan",
            source,
        })?;
    if line.is_empty() {
        return Err(InitError::Protocol {
            op: "read plan",
            source: std::io::ErrorKind::UnexpectedEof.into(),
        });
    }
    serde_json::from_slice(&line).map_err(|e| InitError::Protocol {
        op: "parse plan",
        source: e.into(),
    })
}

fn set_rlimits(plan: &Plan) -> Result<(), InitError> {
    use rustix::process::{setrlimit, Resource, Rlimit};
    for r in &plan.rlimits {
        let resource = match r.resource.as_str() {
            "RLIMIT_CORE" => Resource::Core,
            "RLIMIT_NPROC" => Resource::Nproc,
            "RLIMIT_NOFILE" => Resource::Nofile,
            "RLIMIT_FSIZE" => Resource::Fsize,
            "RLIMIT_CPU" => Resource::Cpu,
            "RLIMIT_AS" => Resource::As,
            other => {
                return Err(step(format!("setrlimit({other})"))(
                    std::io::Error::from_raw_os_error(libc::EINVAL),
                ))
            }
        };
        setrlimit(
            resource,
            Rlimit {
                current: Some(r.soft),
                maximum: Some(r.hard),
            },
        )
        .map_err(|e| step(format!("setrlimit({}, {}, {})", r.resource, r.soft, r.hard))(e.into()))?;
    }
    Ok(())
}

/// Looks `command` up in `path_var` the way execvp does, inside the sandbox.
fn resolve(command: &str, path_var: &str) -> Result<PathBuf, InitError> {
    if command.is_empty() {
        return Err(InitError::NotFound {
            command: String::new(),
            path: path_var.to_string(),
        });
    }
    if command.contains('/') {
        return Ok(PathBuf::from(command));
    }
    let mut not_executable = None;
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(command);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
            not_executable.get_or_insert(candidate);
        }
    }
    match not_executable {
        Some(p) => Err(InitError::NotExecutable {
            command: p.display().to_string(),
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        }),
        None => Err(InitError::NotFound {
            command: command.to_string(),
            path: path_var.to_string(),
        }),
    }
}

fn cstring(s: &str) -> Result<CString, InitError> {
    CString::new(s)
        .map_err(|_| step(format!("argument {s:?}"))(std::io::Error::from_raw_os_error(libc::EINVAL)))
}

/// Forks the command: in the child, the last steps are the parent-death signal, closing inherited
/// descriptors, seccomp, and execve. An exec failure comes back over a close-on-exec pipe.
fn start_command(plan: &Plan, program: &Path, filter: &seccomp::CompiledSeccomp) -> Result<i32, InitError> {
    let path_c = cstring(&program.display().to_string())?;
    let argv_c: Vec<CString> = plan
        .command
        .iter()
        .map(|a| cstring(a))
        .collect::<Result<_, _>>()?;
    let env_c: Vec<CString> = plan
        .env
        .iter()
        .map(|v| cstring(&format!("{}={}", v.name, v.value)))
        .collect::<Result<_, _>>()?;
    let mut argv: Vec<*const libc::c_char> = argv_c.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env_c.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    let cwd = plan.cwd.clone();

    let (err_r, err_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| step("pipe2(O_CLOEXEC)")(e.into()))?;

    // SAFETY: init is single-threaded, so the child may run ordinary code until it execs.
    let pid = unsafe { ll::fork() }.map_err(|e| {
        let hint = if e.raw_os_error() == Some(libc::EAGAIN) {
            format!(
                " (limits.pids = {} is too low to start the command)",
                plan.rlimits
                    .iter()
                    .find(|r| r.resource == "RLIMIT_NPROC")
                    .map_or(0, |r| r.hard)
            )
        } else {
            String::new()
        };
        step(format!("fork(){hint}"))(e)
    })?;
    if pid == 0 {
        drop(err_r);
        let fail = |stage: u8, e: std::io::Error| -> ! {
            let errno = e.raw_os_error().unwrap_or(libc::EIO);
            let mut rec = [0u8; 5];
            rec[0] = stage;
            rec[1..].copy_from_slice(&errno.to_le_bytes());
            let _ = rustix::io::write(&err_w, &rec);
            ll::exit_now(if errno == libc::ENOENT { 127 } else { 126 })
        };
        // The Rust runtime ignores SIGPIPE; the command must get the default (`yes | head`).
        ll::default_signal(libc::SIGPIPE);
        if let Err(e) = rustix::process::chdir(&cwd) {
            fail(1, e.into());
        }
        // Re-armed just before exec: the command dies with init (and so with the sandbox).
        if let Err(e) = set_parent_process_death_signal(Some(Signal::KILL)) {
            fail(2, e.into());
        }
        // Nothing inherited leaks in: every descriptor above stderr closes at exec.
        if let Err(e) = ll::cloexec_from(3) {
            fail(3, e);
        }
        // Init made itself non-dumpable, and this copy of it inherited that; but the supervisor
        // must read this process's execve arguments (the exec audit), and a non-dumpable process
        // whose mm belongs to the host's user namespace (init's binary is owned by a uid not
        // mapped in here) refuses it. Nothing else runs in the sandbox yet to take advantage, and
        // exec is next. Failure only costs the record of this one exec.
        let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::Dumpable);
        // seccomp last: after it, only execve is left to do.
        if let Err(e) = seccomp::install(filter) {
            fail(4, std::io::Error::other(e.to_string()));
        }
        let e = ll::execve(&path_c, &argv, &envp);
        fail(5, e)
    }
    drop(err_w);
    let mut rec = Vec::new();
    let _ = std::fs::File::from(err_r).read_to_end(&mut rec);
    if rec.len() == 5 {
        let errno = i32::from_le_bytes([rec[1], rec[2], rec[3], rec[4]]);
        let source = std::io::Error::from_raw_os_error(errno);
        let _ = ll::wait_blocking(pid);
        let what = [
            "?",
            "chdir",
            "prctl(PR_SET_PDEATHSIG)",
            "close_range",
            "seccomp",
            "execve",
        ];
        let stage = what.get(usize::from(rec[0])).copied().unwrap_or("?");
        return Err(match (stage, errno) {
            ("execve", libc::ENOENT) => InitError::NotFound {
                command: program.display().to_string(),
                path: "(the path itself)".into(),
            },
            ("execve", _) => InitError::NotExecutable {
                command: program.display().to_string(),
                source,
            },
            ("chdir", _) => step(format!("chdir({:?})", plan.cwd))(source),
            _ => step(stage.to_string())(source),
        });
    }
    Ok(pid)
}

/// Waits for the command while reaping every orphan (PID 1's duty) and forwarding signals from the
/// supervisor. Returns the command's exit code (128 + N for signal N). When init exits, the kernel
/// kills everything left in the pid namespace, so no daemon outlives the session.
fn reap(ctl: &UnixStream, started: Started) -> Result<i32, InitError> {
    let mut sigs = FORWARDED.to_vec();
    sigs.push(libc::SIGCHLD);
    ll::set_sigmask(&sigs, libc::SIG_BLOCK).map_err(step("sigprocmask(SIG_BLOCK)"))?;
    let sfd = ll::signalfd(&sigs).map_err(step("signalfd"))?;
    loop {
        // Reap first: SIGCHLD may have arrived before the mask was set.
        while let Some((pid, status)) = ll::wait_nohang(-1).map_err(step("waitpid(-1, WNOHANG)"))? {
            if pid == started.agent {
                return Ok(ll::exit_code_of(status));
            }
        }
        let mut fds = [PollFd::new(&sfd, PollFlags::IN), PollFd::new(ctl, PollFlags::IN)];
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(step("poll")(e.into())),
        }
        if fds[1]
            .revents()
            .intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR)
        {
            let mut byte = [0u8; 1];
            if matches!(rustix::io::read(ctl.as_fd(), &mut byte), Ok(0) | Err(_)) {
                // The supervisor is gone: take the sandbox down with it. kill(-1) reaches every
                // process in init's pid namespace; outside one (never launched so: see launch.rs)
                // it would reach the user's own processes, so it is only done as PID 1.
                if rustix::process::getpid().is_init() {
                    let _ = ll::kill(-1, libc::SIGKILL);
                }
                return Ok(137);
            }
        }
        if fds[0].revents().contains(PollFlags::IN) {
            let (sig, code, _) = ll::read_signal(sfd.as_fd()).map_err(step("read(signalfd)"))?;
            // A terminal's Ctrl-C (si_code SI_KERNEL) already reached the command: init sits in
            // the same process group. Forward only what was sent to init (by the supervisor).
            if sig != libc::SIGCHLD && code != SI_KERNEL {
                let _ = ll::kill(started.agent, sig);
            }
        }
    }
}
