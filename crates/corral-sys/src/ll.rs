//! Thin wrappers over the system calls that rustix does not cover (clone with namespace flags,
//! `mount_setattr`, ambient capabilities, `close_range`, signalfd, bringing `lo` up). Each wrapper is
//! the only place its `unsafe` appears, under a `// SAFETY:` comment; callers get safe functions.
//!
//! The functions marked "async-signal-safe" allocate nothing and take no locks: they are the ones
//! the freshly cloned child may call before it execs.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `MOUNT_ATTR_RDONLY` from `<linux/mount.h>`.
pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
/// `MOUNT_ATTR_NOSUID`.
pub const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
/// `MOUNT_ATTR_NODEV`.
pub const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
/// `MOUNT_ATTR_NOEXEC`.
pub const MOUNT_ATTR_NOEXEC: u64 = 0x0000_0008;

/// Capabilities the sandbox's init keeps across its exec (as ambient capabilities) to build the
/// sandbox, all inside its own user namespace: mounts and `pivot_root` (`CAP_SYS_ADMIN`), bringing
/// `lo` up (`CAP_NET_ADMIN`), emptying the bounding set (`CAP_SETPCAP`), binding port 53 for the DNS
/// sink (`CAP_NET_BIND_SERVICE`). Init drops them all before it starts the command.
pub const INIT_CAPS: [u32; 4] = [
    21, // CAP_SYS_ADMIN
    12, // CAP_NET_ADMIN
    8,  // CAP_SETPCAP
    10, // CAP_NET_BIND_SERVICE
];

/// Added in review mode: overlayfs records its mounter's credentials and does its own work (the
/// mode-0 `work/work` directory, whiteouts, copy-up) with them, which needs these inside the
/// sandbox's user namespace — where only the user's own uid and gid are mapped, so they reach
/// only the user's own files. Dropped with the rest before the command starts.
pub const REVIEW_CAPS: [u32; 2] = [
    1, // CAP_DAC_OVERRIDE
    3, // CAP_FOWNER
];

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit capability sets as two 32-bit words.
const CAP_VERSION_3: u32 = 0x2008_0522;

fn errno() -> io::Error {
    io::Error::last_os_error()
}

/// `clone(flags | SIGCHLD)` without a new stack: returns twice like `fork`, 0 in the child.
///
/// # Safety
/// The caller must be single-threaded, or the child must restrict itself to async-signal-safe
/// operations until it execs (as after `fork`).
pub unsafe fn clone_process(flags: u64) -> io::Result<i32> {
    let flags = flags | libc::SIGCHLD as u64;
    // SAFETY: a stack pointer of 0 makes clone behave like fork (the child runs on a copy of the
    // parent's stack); the tid pointers are 0 because no CLONE_*TID flag is set. The caller upholds
    // the fork-safety contract above.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    if ret < 0 {
        Err(errno())
    } else {
        i32::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))
    }
}

/// `mount_setattr(dirfd, path, flags, {attr_set, attr_clr})`.
pub fn mount_setattr(dirfd: BorrowedFd<'_>, path: &CStr, flags: u32, set: u64, clr: u64) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `path` is a valid NUL-terminated string, `attr` a live, correctly sized mount_attr
    // (size passed alongside), and the fd is borrowed for the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd.as_raw_fd(),
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// Makes `caps` inheritable and ambient, so they survive the next `execve` of a binary without file
/// capabilities even though our uid is not 0. Async-signal-safe.
pub fn raise_ambient(caps: &[u32]) -> io::Result<()> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and data are live, writable and of the layout capget expects for version 3.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header as *mut CapHeader, data.as_mut_ptr()) } < 0 {
        return Err(errno());
    }
    for cap in caps {
        data[0].inheritable |= 1 << cap;
    }
    // SAFETY: as above; capset reads the same structures.
    if unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) } < 0 {
        return Err(errno());
    }
    for cap in caps {
        // SAFETY: prctl with integer arguments only.
        let r = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                *cap as libc::c_ulong,
                0,
                0,
            )
        };
        if r < 0 {
            return Err(errno());
        }
    }
    Ok(())
}

/// Empties every capability set: ambient, bounding (needs `CAP_SETPCAP`), then effective, permitted
/// and inheritable. Nothing can be regained afterwards: exec of a file with capabilities grants
/// nothing once the bounding set is empty and `no_new_privs` is set.
pub fn drop_all_caps() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    } < 0
    {
        return Err(errno());
    }
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(63);
    for cap in 0..=last {
        // SAFETY: prctl with integer arguments only. EINVAL for a capability this kernel does not
        // know is expected and ignored.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if r < 0 && errno().raw_os_error() != Some(libc::EINVAL) {
            return Err(errno());
        }
    }
    let header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: live structures of the version-3 layout; all-zero sets.
    if unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) } < 0 {
        return Err(errno());
    }
    Ok(())
}

/// True when the calling thread's effective capability set is empty (for reports and tests).
pub fn effective_caps_empty() -> io::Result<bool> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: live, writable structures of the version-3 layout.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header as *mut CapHeader, data.as_mut_ptr()) } < 0 {
        return Err(errno());
    }
    Ok(data.iter().all(|d| d.effective == 0 && d.permitted == 0))
}

/// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`: every descriptor from `first` up is closed at the
/// next exec. Async-signal-safe.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: integer arguments only; marks descriptors close-on-exec without closing any now.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// Closes every descriptor except `keep`. Async-signal-safe.
pub fn close_all_but(keep: RawFd) {
    let keep = u32::try_from(keep).unwrap_or(0);
    // SAFETY: integer arguments only; closing descriptors this process owns.
    unsafe {
        if keep > 0 {
            libc::syscall(libc::SYS_close_range, 0u32, keep - 1, 0u32);
        }
        libc::syscall(libc::SYS_close_range, keep + 1, u32::MAX, 0u32);
    }
}

/// `dup2(fd, target)` that also clears close-on-exec when `fd == target`. Async-signal-safe.
pub fn dup_to(fd: RawFd, target: RawFd) -> io::Result<()> {
    // SAFETY: integer arguments only; both are descriptor numbers owned by this process.
    let r = unsafe {
        if fd == target {
            libc::fcntl(fd, libc::F_SETFD, 0)
        } else {
            libc::dup2(fd, target)
        }
    };
    if r < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// `execve(path, argv, envp)`; returns only on failure. Async-signal-safe.
pub fn execve(path: &CStr, argv: &[*const libc::c_char], envp: &[*const libc::c_char]) -> io::Error {
    debug_assert!(argv.last().is_some_and(|p| p.is_null()) && envp.last().is_some_and(|p| p.is_null()));
    // SAFETY: path is NUL-terminated; argv and envp are NULL-terminated arrays of pointers to
    // NUL-terminated strings that outlive the call (checked above in debug builds, built so by the
    // callers).
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    errno()
}

/// `_exit(code)`: leaves without running destructors or atexit handlers (a forked child must not
/// flush the parent's buffers twice).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always safe to call and does not return.
    unsafe { libc::_exit(code) }
}

/// Sets `sig`'s disposition back to the default (e.g. SIGPIPE, which the Rust runtime ignores, so a
/// child would otherwise inherit the ignored state across exec).
pub fn default_signal(sig: i32) {
    // SAFETY: installing SIG_DFL involves no handler code.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

/// Sets the calling thread's signal mask to `sigs` (`block`) or unblocks them, returning nothing.
pub fn set_sigmask(sigs: &[i32], how: libc::c_int) -> io::Result<()> {
    // SAFETY: `set` is initialised by sigemptyset before use; pointers are to live locals.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        if libc::pthread_sigmask(how, &set, std::ptr::null_mut()) != 0 {
            return Err(errno());
        }
    }
    Ok(())
}

/// Unblocks every signal (a process exec'd by a parent that blocked signals inherits the mask).
pub fn unblock_all_signals() -> io::Result<()> {
    // SAFETY: `set` is initialised by sigemptyset; pointers are to live locals.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        if libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
            return Err(errno());
        }
    }
    Ok(())
}

/// A signalfd for `sigs` (which the caller has blocked).
pub fn signalfd(sigs: &[i32]) -> io::Result<OwnedFd> {
    // SAFETY: `set` is initialised by sigemptyset; signalfd returns a new descriptor we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(errno());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// One signal read from a signalfd: (signal number, `si_code`, sender pid).
pub fn read_signal(fd: BorrowedFd<'_>) -> io::Result<(i32, i32, u32)> {
    // SAFETY: signalfd_siginfo is plain data; we read exactly its size into it.
    unsafe {
        let mut info: libc::signalfd_siginfo = std::mem::zeroed();
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        let n = libc::read(
            fd.as_raw_fd(),
            (&mut info as *mut libc::signalfd_siginfo).cast(),
            size,
        );
        if n < 0 {
            return Err(errno());
        }
        if usize::try_from(n).ok() != Some(size) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        Ok((info.ssi_signo as i32, info.ssi_code, info.ssi_pid))
    }
}

/// Brings the loopback interface up (`SIOCSIFFLAGS` with `IFF_UP`): it starts down in a new
/// network namespace.
pub fn loopback_up() -> io::Result<()> {
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )?;
    // SAFETY: ifreq is plain data; the name is NUL-terminated within IFNAMSIZ; both ioctls read
    // and write only this struct.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(errno());
        }
        // IFF_UP is 0x1: it fits the short flags field.
        req.ifr_ifru.ifru_flags |= 0x1 as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(errno());
        }
    }
    Ok(())
}

/// `getpwuid_r`: the name and home directory of `uid` from the system's user database.
pub fn passwd_entry(uid: u32) -> Option<(String, String)> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: pwd and result are live locals; buf is a writable buffer of the given length that
    // outlives the reads of pw_name / pw_dir below.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let r = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut result);
        if r != 0 || result.is_null() {
            return None;
        }
        let name = CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned();
        let dir = CStr::from_ptr(pwd.pw_dir).to_string_lossy().into_owned();
        Some((name, dir))
    }
}

/// Becomes `uid`:`gid` for good, with no supplementary groups (used when started as root).
pub fn become_user(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: integer arguments / empty group list only.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) < 0
            || libc::setresgid(gid, gid, gid) < 0
            || libc::setresuid(uid, uid, uid) < 0
        {
            return Err(errno());
        }
    }
    Ok(())
}

/// `prctl(PR_SET_DUMPABLE, 1)`. Async-signal-safe.
pub fn set_dumpable() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1 as libc::c_ulong, 0, 0, 0) } < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// True when this process is in the initial user namespace (its uid map covers every uid), where
/// uid 0 is the machine's root; false inside a user namespace (a rootless container), where uid 0
/// maps to an unprivileged uid outside.
pub fn in_initial_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| {
        let f: Vec<&str> = m.split_whitespace().collect();
        f.as_slice() == ["0", "0", "4294967295"]
    })
}

/// `waitpid(pid, WNOHANG)` (pid -1: any child): `Some((pid, raw status))` for a reaped child.
pub fn wait_nohang(pid: i32) -> io::Result<Option<(i32, i32)>> {
    let mut status = 0;
    // SAFETY: status is a live local.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    match r {
        0 => Ok(None),
        r if r < 0 => Err(errno()),
        r => Ok(Some((r, status))),
    }
}

/// `waitpid(pid, 0)`, retrying on EINTR: the raw status.
pub fn wait_blocking(pid: i32) -> io::Result<i32> {
    loop {
        let mut status = 0;
        // SAFETY: status is a live local.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r >= 0 {
            return Ok(status);
        }
        let e = errno();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// `kill(pid, sig)`.
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    if unsafe { libc::kill(pid, sig) } < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// `fork()`.
///
/// # Safety
/// As for [`clone_process`]: single-threaded caller, or an async-signal-safe child.
pub unsafe fn fork() -> io::Result<i32> {
    // SAFETY: upheld by the caller.
    let r = unsafe { libc::fork() };
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

/// The exit code a shell would show for a raw wait status: the code, or 128 + signal.
pub fn exit_code_of(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        128
    }
}

/// The symbolic name of an errno (strace style: `ENOENT`), `errno N` for the rare ones. One table
/// for every message corral writes.
pub fn errno_name(code: i32) -> String {
    const NAMES: &[(i32, &str)] = &[
        (libc::EPERM, "EPERM"),
        (libc::ENOENT, "ENOENT"),
        (libc::ESRCH, "ESRCH"),
        (libc::EINTR, "EINTR"),
        (libc::EIO, "EIO"),
        (libc::ENXIO, "ENXIO"),
        (libc::E2BIG, "E2BIG"),
        (libc::EBADF, "EBADF"),
        (libc::ECHILD, "ECHILD"),
        (libc::EAGAIN, "EAGAIN"),
        (libc::ENOMEM, "ENOMEM"),
        (libc::EACCES, "EACCES"),
        (libc::EFAULT, "EFAULT"),
        (libc::EBUSY, "EBUSY"),
        (libc::EEXIST, "EEXIST"),
        (libc::EXDEV, "EXDEV"),
        (libc::ENODEV, "ENODEV"),
        (libc::ENOTDIR, "ENOTDIR"),
        (libc::EISDIR, "EISDIR"),
        (libc::EINVAL, "EINVAL"),
        (libc::ENFILE, "ENFILE"),
        (libc::EMFILE, "EMFILE"),
        (libc::ENOTTY, "ENOTTY"),
        (libc::EFBIG, "EFBIG"),
        (libc::ENOSPC, "ENOSPC"),
        (libc::EROFS, "EROFS"),
        (libc::ERANGE, "ERANGE"),
        (libc::EDEADLK, "EDEADLK"),
        (libc::ENAMETOOLONG, "ENAMETOOLONG"),
        (libc::ENOSYS, "ENOSYS"),
        (libc::ENOTEMPTY, "ENOTEMPTY"),
        (libc::ELOOP, "ELOOP"),
        (libc::EOVERFLOW, "EOVERFLOW"),
        (libc::EBADFD, "EBADFD"),
        (libc::EOPNOTSUPP, "EOPNOTSUPP"),
        (libc::EUSERS, "EUSERS"),
        (libc::EAFNOSUPPORT, "EAFNOSUPPORT"),
        (libc::EADDRINUSE, "EADDRINUSE"),
        (libc::EADDRNOTAVAIL, "EADDRNOTAVAIL"),
        (libc::ENETUNREACH, "ENETUNREACH"),
        (libc::ECONNRESET, "ECONNRESET"),
        (libc::ETIMEDOUT, "ETIMEDOUT"),
        (libc::ECONNREFUSED, "ECONNREFUSED"),
        (libc::EHOSTUNREACH, "EHOSTUNREACH"),
    ];
    NAMES
        .iter()
        .find(|(n, _)| *n == code)
        .map_or_else(|| format!("errno {code}"), |(_, name)| (*name).to_string())
}

/// [`errno_name`] of an I/O error's errno, or its text when it has none.
pub fn io_errno_name(error: &io::Error) -> String {
    error.raw_os_error().map_or_else(|| error.to_string(), errno_name)
}
