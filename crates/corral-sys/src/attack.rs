//! The system calls `corral selftest` makes to attack its own sandbox: each one a thing a hostile
//! agent would try (a new namespace, a keyring, ptrace, a BPF map, TIOCSTI …), wrapped so the
//! attack code in the binary stays free of `unsafe`. Every call returns what the kernel answered;
//! none of them is used by the sandbox itself.
//!
//! Calls that would change the calling process (a new namespace, a mount, a tracee) run in a
//! forked child ([`in_child`]) so the attacker goes on from where it was.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

fn errno() -> io::Error {
    io::Error::last_os_error()
}

fn check(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

fn fd_of(r: libc::c_long) -> io::Result<OwnedFd> {
    let fd = libc::c_int::try_from(check(r)?).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|d| d.count() == 1)
}

/// Runs `f` in a forked child and returns its exit code (`128 + signal` when killed). `f`'s
/// return value is the child's exit code. Refused (`EDEADLK`) when the caller has more than one
/// thread: a forked child of a threaded process may only make async-signal-safe calls.
pub fn in_child(f: impl FnOnce() -> i32) -> io::Result<i32> {
    if !single_threaded() {
        return Err(io::Error::from_raw_os_error(libc::EDEADLK));
    }
    // SAFETY: the process has one thread (checked above), so the child may run ordinary code.
    match unsafe { crate::ll::fork() }? {
        0 => crate::ll::exit_now(f()),
        pid => crate::ll::wait_blocking(pid).map(crate::ll::exit_code_of),
    }
}

/// The errno of `r` as a child exit code: 0 for success.
pub fn code_of<T>(r: io::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(255).min(255),
    }
}

/// `unshare(flags)`.
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: integer argument only; the caller runs this in a child it does not mind changing.
    check(libc::c_long::from(unsafe { libc::unshare(flags) })).map(drop)
}

/// `mount("none", target, "tmpfs", 0, NULL)`.
pub fn mount_tmpfs(target: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: valid NUL-terminated strings and a NULL data pointer.
    let r = unsafe {
        libc::mount(
            c"none".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    check(libc::c_long::from(r)).map(drop)
}

/// The namespace flags `clone_with` and `clone3_with` accept: with only these (and no stack)
/// the child runs on a copy of the caller's memory, as after fork. Anything else (`CLONE_VM`,
/// `CLONE_SETTLS`, …) could make the child share or corrupt the caller's.
const NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP) as u64
    | 0x80; // CLONE_NEWTIME

fn only_namespaces(flags: u64) -> io::Result<()> {
    if flags & !NAMESPACE_FLAGS == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(libc::EINVAL))
    }
}

/// The parent's side of a fork-like clone: the child (0) exits at once; the parent reaps it.
fn reap_forked(r: libc::c_long) -> io::Result<()> {
    match check(r)? {
        0 => crate::ll::exit_now(0),
        pid => {
            let pid = i32::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
            crate::ll::wait_blocking(pid).map(drop)
        }
    }
}

/// `clone(flags | SIGCHLD)` with a child that exits at once: whether the kernel lets this process
/// make a child with these namespace flags (EINVAL for any other flag).
pub fn clone_with(flags: u64) -> io::Result<()> {
    only_namespaces(flags)?;
    let flags = flags | u64::try_from(libc::SIGCHLD).unwrap_or(17);
    // SAFETY: only namespace flags and SIGCHLD (checked above), and a NULL stack: the child runs
    // on a copy of our memory, like after fork, and calls only _exit.
    reap_forked(unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) })
}

/// `struct clone_args` from `<linux/sched.h>` (the first version, 64 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// `clone3` with namespace `flags` (EINVAL for any other flag), a child that exits at once.
pub fn clone3_with(flags: u64) -> io::Result<()> {
    only_namespaces(flags)?;
    let args = CloneArgs {
        flags,
        exit_signal: u64::try_from(libc::SIGCHLD).unwrap_or(17),
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args of the size passed, with only namespace flags (checked
    // above) and no stack: the child runs on a copy of our memory, like after fork, and calls
    // only _exit.
    reap_forked(unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::from_ref(&args),
            std::mem::size_of::<CloneArgs>(),
        )
    })
}

/// `ptrace(PTRACE_ATTACH, pid)` then detach: whether this process may trace `pid`.
pub fn ptrace_attach(pid: i32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0usize, 0usize) })?;
    let _ = crate::ll::wait_blocking(pid);
    // SAFETY: as above.
    let _ = unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0usize, 0usize) };
    Ok(())
}

/// `process_vm_readv` of `len` bytes at `addr` in `pid`.
pub fn process_vm_read(pid: i32, addr: usize, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: `local` points at `len` writable bytes we own; the remote side is read by the kernel
    // from the other process, never dereferenced here.
    let r = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    let n = usize::try_from(check(r as libc::c_long)?).unwrap_or(0);
    buf.truncate(n);
    Ok(buf)
}

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, name)`: a new session keyring.
pub fn keyctl_join(name: &std::ffi::CStr) -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: a valid NUL-terminated name.
    check(unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) }).map(drop)
}

/// `union bpf_attr` for BPF_MAP_CREATE (the fields up to `max_entries`, zero-padded).
#[repr(C)]
#[derive(Default)]
struct BpfMapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    pad: [u64; 12],
}

/// `bpf(BPF_MAP_CREATE)` of a one-entry array map.
pub fn bpf_map_create() -> io::Result<OwnedFd> {
    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_MAP_TYPE_ARRAY: u32 = 2;
    let attr = BpfMapCreate {
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        ..BpfMapCreate::default()
    };
    // SAFETY: `attr` is a zero-padded bpf_attr of the size passed.
    fd_of(unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            std::ptr::from_ref(&attr),
            std::mem::size_of::<BpfMapCreate>(),
        )
    })
}

/// `struct perf_event_attr` (PERF_ATTR_SIZE_VER0 is 64 bytes; this is 128 with zeros).
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    rest: [u64; 10],
}

/// `perf_event_open` of a software CPU clock on this process, user space only (what
/// `perf_event_paranoid` = 2 still allows an unprivileged user).
pub fn perf_event_open_self() -> io::Result<OwnedFd> {
    const PERF_TYPE_SOFTWARE: u32 = 1;
    const EXCLUDE_KERNEL_HV: u64 = (1 << 5) | (1 << 6);
    let attr = PerfEventAttr {
        type_: PERF_TYPE_SOFTWARE,
        size: u32::try_from(std::mem::size_of::<PerfEventAttr>()).unwrap_or(128),
        flags: EXCLUDE_KERNEL_HV | 1, // disabled, exclude_kernel, exclude_hv
        ..PerfEventAttr::default()
    };
    // SAFETY: `attr` is a zeroed perf_event_attr whose size field says its size.
    fd_of(unsafe { libc::syscall(libc::SYS_perf_event_open, std::ptr::from_ref(&attr), 0, -1, -1, 0) })
}

/// `userfaultfd(UFFD_USER_MODE_ONLY | O_CLOEXEC)`.
pub fn userfaultfd() -> io::Result<OwnedFd> {
    const UFFD_USER_MODE_ONLY: libc::c_long = 1;
    // SAFETY: integer argument only.
    fd_of(unsafe {
        libc::syscall(
            libc::SYS_userfaultfd,
            UFFD_USER_MODE_ONLY | libc::c_long::from(libc::O_CLOEXEC),
        )
    })
}

/// `io_uring_setup(1, &params)`.
pub fn io_uring_setup() -> io::Result<OwnedFd> {
    // struct io_uring_params is 120 bytes; zeroed asks for defaults.
    let mut params = [0u64; 15];
    // SAFETY: `params` is 120 zeroed, writable bytes the kernel fills in.
    fd_of(unsafe { libc::syscall(libc::SYS_io_uring_setup, 1, params.as_mut_ptr()) })
}

/// `klogctl(SYSLOG_ACTION_READ_ALL)` into a small buffer: bytes read.
pub fn syslog_read_all() -> io::Result<usize> {
    const SYSLOG_ACTION_READ_ALL: libc::c_int = 3;
    let mut buf = vec![0u8; 4096];
    let len = libc::c_int::try_from(buf.len()).unwrap_or(4096);
    // SAFETY: `buf` is `len` writable bytes.
    let r = unsafe { libc::klogctl(SYSLOG_ACTION_READ_ALL, buf.as_mut_ptr().cast(), len) };
    Ok(usize::try_from(check(libc::c_long::from(r))?).unwrap_or(0))
}

/// `prctl(PR_GET_NO_NEW_PRIVS)`.
pub fn no_new_privs() -> io::Result<bool> {
    // SAFETY: integer arguments only.
    let r = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
    Ok(check(libc::c_long::from(r))? == 1)
}

/// `ioctl(fd, request, &byte)`: the terminal ioctls that push input (TIOCSTI) or talk to the
/// virtual console (TIOCLINUX) both take a pointer to one byte.
pub fn tty_ioctl_byte(fd: &impl AsRawFd, request: libc::c_ulong, byte: u8) -> io::Result<()> {
    let b = byte;
    // SAFETY: `b` is one readable byte, all either request reads.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), request, std::ptr::from_ref(&b)) };
    check(libc::c_long::from(r)).map(drop)
}

/// In a forked child: a new session whose controlling terminal is `slave` (a pty), then `TIOCSTI`
/// of `byte` into it. Returns the child's errno (0: the byte was pushed into the terminal's input).
pub fn tiocsti_on_own_terminal(slave_path: &std::ffi::CStr, byte: u8) -> io::Result<i32> {
    in_child(|| {
        // SAFETY: no arguments; makes the child a session leader without a terminal.
        if unsafe { libc::setsid() } < 0 {
            return code_of::<()>(Err(errno()));
        }
        // SAFETY: a valid NUL-terminated path.
        let fd = unsafe { libc::open(slave_path.as_ptr(), libc::O_RDWR) };
        if fd < 0 {
            return code_of::<()>(Err(errno()));
        }
        // SAFETY: a pty slave we just opened; TIOCSCTTY takes an integer.
        if unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) } < 0 {
            return code_of::<()>(Err(errno()));
        }
        // SAFETY: the descriptor is ours and open; wrapped only for the duration of the call.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        code_of(tty_ioctl_byte(&owned, libc::TIOCSTI, byte))
    })
}

/// Forks up to `n` children that each wait for the parent to go away (a pipe closing), and
/// returns how many forks succeeded before the first refusal, with that refusal. Bounded by `n`;
/// every child is reaped before returning.
pub fn fork_many(n: usize) -> io::Result<(usize, Option<io::Error>)> {
    if !single_threaded() {
        return Err(io::Error::from_raw_os_error(libc::EDEADLK));
    }
    let (r, w) = rustix::pipe::pipe().map_err(io::Error::from)?;
    let mut pids = Vec::new();
    let mut refused = None;
    for _ in 0..n {
        // SAFETY: single-threaded (checked above); the child only reads a pipe and exits.
        match unsafe { crate::ll::fork() } {
            Ok(0) => {
                drop(w);
                let mut b = [0u8; 1];
                let _ = rustix::io::read(&r, &mut b);
                crate::ll::exit_now(0);
            }
            Ok(pid) => pids.push(pid),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    drop(w);
    for pid in &pids {
        let _ = crate::ll::wait_blocking(*pid);
    }
    Ok((pids.len(), refused))
}

/// Ignores `sig` (SIG_IGN), e.g. SIGXFSZ, so that a write past RLIMIT_FSIZE fails with EFBIG.
pub fn ignore_signal(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: SIG_IGN is a valid disposition; no handler code runs.
    if unsafe { libc::signal(sig, libc::SIG_IGN) } == libc::SIG_ERR {
        Err(errno())
    } else {
        Ok(())
    }
}

/// Opens a new pseudo-terminal: the master and the slave's path.
pub fn open_pty() -> io::Result<(OwnedFd, std::ffi::CString)> {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    Ok((master, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_refuses_flags_that_would_share_memory() {
        let vm = u64::try_from(libc::CLONE_VM).unwrap();
        assert_eq!(clone_with(vm).unwrap_err().raw_os_error(), Some(libc::EINVAL));
        assert_eq!(clone3_with(vm).unwrap_err().raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn code_of_maps_success_and_errno() {
        assert_eq!(code_of::<()>(Ok(())), 0);
        assert_eq!(
            code_of::<()>(Err(io::Error::from_raw_os_error(libc::EPERM))),
            libc::EPERM
        );
    }
}
