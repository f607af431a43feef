//! Observation of every program started inside the sandbox, for the audit log: a seccomp filter
//! that sends `execve` and `execveat` to a user-notification listener, which the supervisor holds.
//!
//! Observation only: the supervisor reads the new program's path and arguments from the caller's
//! memory (`/proc/<pid>/mem`) and then always answers `SECCOMP_USER_NOTIF_FLAG_CONTINUE`, so the
//! kernel runs the call as if no filter were there. No decision depends on what was read, so
//! there is nothing to race for access. What the record can claim is limited accordingly
//! (seccomp_unotify(2)): every call is recorded, including ones that then fail (a PATH search
//! shows one per directory tried), and a hostile multi-threaded caller can change its memory
//! between the supervisor's read and the kernel's, so the record shows what the arguments were
//! when read. If the listener goes away (the supervisor dies), exec fails with ENOSYS: the
//! sandbox is being torn down then anyway.
//!
//! Denied calls: the same filter sends the deny list's plainly denied calls (ptrace, bpf, mount,
//! keyctl, …) here too, so each attempt is recorded (`syscall.denied`). Those are always answered
//! with EPERM, never CONTINUE, whatever was read: the caller's memory is not read at all for them
//! (only `/proc/<pid>/comm`, for the record). Without a supervisor they fail with ENOSYS.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;

/// Most arguments recorded per exec, and most bytes per argument (a huge command line is cut,
/// and says so).
const MAX_ARGS: usize = 256;
const MAX_ARG_BYTES: usize = 4096;

/// One program started inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSeen {
    /// Its pid, as the host sees it (the supervisor's pid namespace).
    pub pid: i32,
    /// Its parent's pid, as the host sees it (0 when unknown).
    pub ppid: i32,
    /// The path given to execve (not yet resolved).
    pub path: String,
    /// argv, possibly cut at [`MAX_ARGS`] entries of [`MAX_ARG_BYTES`] each (not read, and
    /// empty, when `missing`).
    pub argv: Vec<String>,
    /// Nothing was at `path`, as the caller sees its file tree, when the call was made: a PATH
    /// search's miss, which fails with ENOENT and starts nothing.
    pub missing: bool,
}

/// A denied call attempted inside (answered EPERM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeniedSeen {
    /// The caller's pid, as the host sees it.
    pub pid: i32,
    /// The call's name.
    pub syscall: String,
    /// The caller's program name (`comm`), as the kernel has it.
    pub program: String,
    /// For a call refused for its arguments: which ones (from the notification's copy of the
    /// registers, never from the caller's memory).
    pub detail: Option<String>,
}

/// What one notification was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A program started (let go).
    Exec(ExecSeen),
    /// A denied call (answered EPERM).
    Denied(DeniedSeen),
}

/// Installs the listener filter on the calling thread and returns the listener descriptor.
/// Precondition: no_new_privs is set (as for every seccomp filter).
pub fn install_exec_listener(policy: &corral_core::seccomp_policy::SeccompPolicy) -> io::Result<OwnedFd> {
    let prog = crate::seccomp::exec_listener_program(policy).map_err(io::Error::other)?;
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).unwrap_or(u16::MAX),
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: fprog points at a live, correctly sized BPF program for the duration of the call;
    // with SECCOMP_FILTER_FLAG_NEW_LISTENER the kernel returns a new descriptor we then own.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &fprog as *const libc::sock_fprog,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The supervisor's end: the listener (poll it for readability).
#[derive(Debug)]
pub struct ExecWatch {
    fd: OwnedFd,
    /// Names for what the policy's argument checks refuse: namespace flags, ioctl requests.
    names: ArgNames,
}

/// The names of the policy's argument checks, for `DeniedSeen::detail`.
#[derive(Debug, Default)]
struct ArgNames {
    namespace_flags: Vec<(String, u64)>,
    ioctls: Vec<(String, u32)>,
}

impl ExecWatch {
    /// Wraps a listener received from the sandbox.
    pub fn new(fd: OwnedFd, policy: &corral_core::seccomp_policy::SeccompPolicy) -> ExecWatch {
        ExecWatch {
            fd,
            names: ArgNames {
                namespace_flags: policy.deny_namespace_flags.clone(),
                ioctls: policy
                    .deny_ioctls
                    .iter()
                    .map(|d| (d.name.clone(), d.request))
                    .collect(),
            },
        }
    }

    /// Takes one pending notification: reads what is being executed, lets the call go on, and
    /// returns what was seen (None when the caller died meanwhile, or nothing was pending).
    /// Every notification is answered, whatever could be read.
    pub fn handle(&self) -> io::Result<Option<Seen>> {
        // SAFETY: seccomp_notif is plain data; the kernel fills it (it must be zeroed first).
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: the ioctl writes one seccomp_notif into the live, writable `req`.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) };
        if r < 0 {
            let e = io::Error::last_os_error();
            // ENOENT: the caller was killed before we read it.
            return if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EINTR | libc::EAGAIN)) {
                Ok(None)
            } else {
                Err(e)
            };
        }
        let pid = i32::try_from(req.pid).unwrap_or(0);
        let nr = i64::from(req.data.nr);
        if nr != libc::SYS_execve && nr != libc::SYS_execveat {
            return self.deny(&req, pid, nr).map(|d| Some(Seen::Denied(d)));
        }
        let args = req.data.args;
        let (path_ptr, argv_ptr) = if i64::from(req.data.nr) == libc::SYS_execveat {
            (args[1], args[2])
        } else {
            (args[0], args[1])
        };
        // Read before answering: once the exec goes on, that memory is gone.
        // An exec that could not be read is still recorded, saying so.
        let seen = read_exec(pid, nr == libc::SYS_execve, path_ptr, argv_ptr, || {
            self.id_valid(req.id)
        })
        .unwrap_or_else(|e| ExecSeen {
            pid,
            ppid: 0,
            path: format!("(not readable: {e})"),
            argv: Vec::new(),
            missing: false,
        });
        // A miss is answered ENOENT here, as the kernel would have: the record ("missing", no
        // program started) then holds even if a second thread puts a program there meanwhile.
        let resp = if seen.missing {
            libc::seccomp_notif_resp {
                id: req.id,
                val: 0,
                error: -libc::ENOENT,
                flags: 0,
            }
        } else {
            libc::seccomp_notif_resp {
                id: req.id,
                val: 0,
                error: 0,
                // libc declares the flag (bit 0) as an unsigned long; the field is a u32.
                flags: u32::try_from(libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE).unwrap_or(1),
            }
        };
        if let Err(e) = self.send(&resp) {
            // ENOENT: the caller is gone. Anything else (EINVAL from a kernel without the
            // CONTINUE flag, Linux < 5.5): the call must still be answered, or the caller waits
            // forever; it fails with ENOSYS, and the error is reported.
            if e.raw_os_error() != Some(libc::ENOENT) {
                let fail = libc::seccomp_notif_resp {
                    id: req.id,
                    val: 0,
                    error: -libc::ENOSYS,
                    flags: 0,
                };
                let _ = self.send(&fail);
                return Err(io::Error::new(
                    e.kind(),
                    format!("answering an exec (SECCOMP_IOCTL_NOTIF_SEND, CONTINUE): {e}; the exec failed with ENOSYS"),
                ));
            }
        }
        Ok(Some(Seen::Exec(seen)))
    }

    /// Answers a denied call with EPERM (the only answer it can get), then names it.
    fn deny(&self, req: &libc::seccomp_notif, pid: i32, nr: i64) -> io::Result<DeniedSeen> {
        // The program's name first, while the caller is still in the call (so the pid is its).
        let program = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim_end().to_string())
            .unwrap_or_else(|_| "?".into());
        let valid = self.id_valid(req.id).is_ok();
        let resp = libc::seccomp_notif_resp {
            id: req.id,
            val: 0,
            error: -libc::EPERM,
            flags: 0,
        };
        match self.send(&resp) {
            Ok(()) => {}
            // The caller is gone: nothing to answer.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        Ok(DeniedSeen {
            pid,
            syscall: crate::seccomp::syscall_name(nr).map_or_else(|| format!("syscall {nr}"), str::to_string),
            program: if valid { program } else { "?".into() },
            detail: argument_detail(&self.names, nr, &req.data.args),
        })
    }
}

/// What made a call with argument checks denied, from its registers: the namespace flags of
/// `clone`/`unshare`, the `ioctl` request, the `socket` family (and netlink protocol). None for
/// calls denied whatever their arguments.
fn argument_detail(names: &ArgNames, nr: i64, args: &[u64; 6]) -> Option<String> {
    let low = |i: usize| u32::try_from(args[i] & 0xffff_ffff).unwrap_or(0);
    match nr {
        libc::SYS_clone | libc::SYS_unshare => {
            let flags = u64::from(low(0));
            let set: Vec<&str> = names
                .namespace_flags
                .iter()
                .filter(|(_, f)| flags & f != 0)
                .map(|(n, _)| n.as_str())
                .collect();
            Some(if set.is_empty() {
                format!("flags {flags:#x}")
            } else {
                set.join("|")
            })
        }
        libc::SYS_ioctl => {
            let request = low(1);
            Some(
                names
                    .ioctls
                    .iter()
                    .find(|(_, r)| *r == request)
                    .map_or_else(|| format!("request {request:#x}"), |(n, _)| n.clone()),
            )
        }
        libc::SYS_socket | libc::SYS_socketpair => {
            let family = low(0);
            let name = match i32::try_from(family).unwrap_or(-1) {
                libc::AF_UNIX => "AF_UNIX",
                libc::AF_INET => "AF_INET",
                libc::AF_INET6 => "AF_INET6",
                libc::AF_NETLINK => "AF_NETLINK",
                libc::AF_PACKET => "AF_PACKET",
                libc::AF_VSOCK => "AF_VSOCK",
                libc::AF_BLUETOOTH => "AF_BLUETOOTH",
                libc::AF_ALG => "AF_ALG",
                libc::AF_KEY => "AF_KEY",
                libc::AF_XDP => "AF_XDP",
                _ => "",
            };
            let mut d = if name.is_empty() {
                format!("family {family}")
            } else {
                format!("family {family} ({name})")
            };
            if i32::try_from(family) == Ok(libc::AF_NETLINK) {
                d.push_str(&format!(", protocol {}", low(2)));
            }
            Some(d)
        }
        _ => None,
    }
}

impl ExecWatch {
    fn send(&self, resp: &libc::seccomp_notif_resp) -> io::Result<()> {
        // SAFETY: the ioctl reads one seccomp_notif_resp from the live `resp`.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, resp) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Whether the notification is still pending: its caller is alive and still in the call, so
    /// a `/proc/<pid>` opened before this check is that caller's, not a process that reused the pid.
    fn id_valid(&self, id: u64) -> io::Result<()> {
        // SAFETY: the ioctl reads one u64 from the live `id`.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl AsFd for ExecWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The caller's memory, read a page at a time and each page once: argv strings and the pointer
/// array mostly share a few pages, and every read of another process's memory is a system call
/// that pins pages (the cost that matters for a build's many execs).
struct Mem {
    file: File,
    pages: Vec<(u64, Vec<u8>)>,
}

const PAGE: u64 = 4096;
const PAGE_LEN: usize = 4096;

/// Where `at` falls in its page.
fn offset_in_page(at: u64) -> usize {
    usize::try_from(at % PAGE).unwrap_or(0)
}

impl Mem {
    fn page(&mut self, base: u64) -> io::Result<&[u8]> {
        if let Some(i) = self.pages.iter().position(|(b, _)| *b == base) {
            return Ok(&self.pages[i].1);
        }
        let mut buf = vec![0u8; PAGE_LEN];
        // A page is mapped whole or not at all; an unmapped one reads as EIO: it ends what is
        // readable (a string running into it is cut there), it does not lose the whole record.
        let n = match self.file.read_at(&mut buf, base) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::EIO) => 0,
            Err(e) => return Err(e),
        };
        buf.truncate(n);
        self.pages.push((base, buf));
        Ok(&self.pages[self.pages.len() - 1].1)
    }

    /// Up to `out.len()` bytes at `addr`; fewer where readable memory ends.
    fn read(&mut self, addr: u64, out: &mut [u8]) -> io::Result<usize> {
        let mut done = 0;
        while done < out.len() {
            let at = addr + done as u64;
            let page = self.page(at & !(PAGE - 1))?;
            let off = offset_in_page(at);
            if off >= page.len() {
                break;
            }
            let n = (page.len() - off).min(out.len() - done);
            out[done..done + n].copy_from_slice(&page[off..off + n]);
            done += n;
        }
        Ok(done)
    }

    fn cstring(&mut self, addr: u64) -> io::Result<String> {
        let mut bytes = Vec::new();
        let mut at = addr;
        // Page by page until the NUL, at most MAX_ARG_BYTES.
        while bytes.len() < MAX_ARG_BYTES {
            let page = self.page(at & !(PAGE - 1))?;
            let off = offset_in_page(at);
            if off >= page.len() {
                break;
            }
            let chunk = &page[off..];
            let want = MAX_ARG_BYTES - bytes.len();
            if let Some(nul) = chunk.iter().take(want).position(|b| *b == 0) {
                bytes.extend_from_slice(&chunk[..nul]);
                return Ok(String::from_utf8_lossy(&bytes).into_owned());
            }
            let n = chunk.len().min(want);
            bytes.extend_from_slice(&chunk[..n]);
            at += n as u64;
        }
        let mut s = String::from_utf8_lossy(&bytes).into_owned();
        s.push('…');
        Ok(s)
    }
}

fn read_exec(
    pid: i32,
    execve: bool,
    path_ptr: u64,
    argv_ptr: u64,
    still_valid: impl Fn() -> io::Result<()>,
) -> io::Result<ExecSeen> {
    let file = File::open(format!("/proc/{pid}/mem"))?;
    still_valid()?;
    let mut mem = Mem {
        file,
        pages: Vec::new(),
    };
    let path = mem.cstring(path_ptr)?;
    // A PATH search tries one directory after another: a miss is recorded without reading its
    // arguments (the cost of the audit is per call, and most of a shell's calls can be misses).
    if execve && missing(pid, &path) {
        return Ok(ExecSeen {
            pid,
            ppid: 0,
            path,
            argv: Vec::new(),
            missing: true,
        });
    }
    let mut argv = Vec::new();
    for i in 0..=MAX_ARGS as u64 {
        let mut ptr = [0u8; 8];
        if mem.read(argv_ptr + i * 8, &mut ptr)? != 8 {
            break;
        }
        let p = u64::from_ne_bytes(ptr);
        if p == 0 {
            break;
        }
        if argv.len() == MAX_ARGS {
            argv.push("…".to_string());
            break;
        }
        argv.push(mem.cstring(p)?);
    }
    // Before the answer: a short-lived program may be gone right after it.
    Ok(ExecSeen {
        pid,
        ppid: u32::try_from(pid)
            .ok()
            .and_then(crate::session::proc_stat)
            .and_then(|s| i32::try_from(s.ppid).ok())
            .unwrap_or(0),
        path,
        argv,
        missing: false,
    })
}

/// Whether nothing is at the absolute `path` as process `pid` sees its file tree: looked up with
/// `openat2(RESOLVE_IN_ROOT)` below `/proc/<pid>/root`, so `..` and absolute symlinks stay in the
/// sandbox's tree (a plain lookup through `/proc/<pid>/root` would follow an absolute symlink in
/// the supervisor's tree, where a program that exists inside may not: its arguments would go
/// unread). The final component is followed, as exec does. Only ENOENT counts as missing; a
/// relative path, a magic link or any other error counts as present (and is read in full).
fn missing(pid: i32, path: &str) -> bool {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let Some(rel) = path.strip_prefix('/') else {
        return false;
    };
    let flags = OFlags::PATH | OFlags::CLOEXEC;
    let Ok(root) = rustix::fs::open(
        format!("/proc/{pid}/root"),
        flags | OFlags::DIRECTORY,
        Mode::empty(),
    ) else {
        return false;
    };
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let rel = if rel.is_empty() { "." } else { rel };
    matches!(
        rustix::fs::openat2(&root, rel, flags, Mode::empty(), resolve),
        Err(rustix::io::Errno::NOENT)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> Mem {
        Mem {
            file: File::open("/proc/self/mem").unwrap(),
            pages: Vec::new(),
        }
    }

    #[test]
    fn strings_are_read_across_pages_and_cut_at_the_limit() {
        // A buffer spanning three pages; strings placed to cross the page boundaries.
        let mut buf = vec![b'a'; 3 * PAGE_LEN];
        let base = buf.as_ptr() as u64;
        let first_boundary = (base & !(PAGE - 1)) + PAGE;
        let start = usize::try_from(first_boundary - base).unwrap() - 3;
        buf[start + 10] = 0; // "aaaaaaaaaa", crossing the boundary
        let mut m = mem();
        assert_eq!(m.cstring(base + start as u64).unwrap(), "a".repeat(10));
        // No NUL within MAX_ARG_BYTES: cut, and says so.
        let long = m.cstring(base + start as u64 + 11).unwrap();
        assert_eq!(long, format!("{}…", "a".repeat(MAX_ARG_BYTES)));
        // Pointers read through the same pages.
        let ptrs: [u64; 2] = [0x1234_5678_9abc_def0, 0];
        let mut out = [0u8; 8];
        assert_eq!(m.read(ptrs.as_ptr() as u64, &mut out).unwrap(), 8);
        assert_eq!(u64::from_ne_bytes(out), ptrs[0]);
        drop(buf);
    }

    #[test]
    fn unmapped_memory_ends_a_string_instead_of_losing_the_record() {
        // Page 0 is never mapped: /proc/<pid>/mem answers EIO there.
        let mut m = mem();
        assert_eq!(m.cstring(16).unwrap(), "…");
        let mut out = [0u8; 8];
        assert_eq!(m.read(16, &mut out).unwrap(), 0);
    }
}
