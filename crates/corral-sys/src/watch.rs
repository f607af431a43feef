//! Keeps protections and masks in force when the *host* changes the workspace during a session.
//!
//! Why this exists: a mount sits on a dentry. When a process outside the sandbox renames a file
//! over a mount point (git rewrites `.git/config` through `config.lock`; editors save `.env` the
//! same way), Linux (≥ 3.18) detaches the mounts on that dentry in every other mount namespace, so
//! the sandbox would see the new file unprotected. Likewise a secret created during the session
//! below a bound directory (`cargo login` writing `~/.cargo/credentials.toml`) or a new `.env`
//! was not there to be masked at launch.
//!
//! How: the supervisor watches the directories the plan names (inotify, `IN_CREATE|IN_MOVED_TO`)
//! and, for each event, has a short-lived helper forked that enters the sandbox's user and mount
//! namespaces (`setns`; the supervisor's uid owns that user namespace, so the helper has
//! `CAP_SYS_ADMIN` there) and mounts the protection again. A `.git/commondir` that appears is moved
//! aside instead. Every event is reported to the user.
//!
//! The helpers are forked by a [`ForkServer`], itself forked right after the sandbox's clone while
//! the supervisor is still single-threaded: the supervisor may run threads later (the network
//! proxy), and a fork of a multi-threaded process may only make async-signal-safe calls, which
//! `setns` into a user namespace (it requires a single-threaded caller) and mounting from a plan
//! are not.
//!
//! Limit: between the host's rename and the re-mount there is a window (the inotify wake-up plus
//! a fork, well under a millisecond to a few milliseconds on an idle machine) in which a process
//! inside that polls for it could write to the new file. GUARANTEES.md states this.

use crate::ll;
use crate::mounts;
use corral_core::plan::{Access, FileKind, MountOp, Plan, WatchAction, WatchDir};
use globset::GlobSet;
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use std::io::Read;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The sandbox's user and mount namespaces, opened right after clone.
#[derive(Debug)]
pub struct SandboxNs {
    user: OwnedFd,
    mnt: OwnedFd,
}

impl SandboxNs {
    /// Opens `/proc/<pid>/ns/{user,mnt}` of the sandbox's init.
    pub fn open(pid: i32) -> std::io::Result<SandboxNs> {
        use rustix::fs::{open, Mode, OFlags};
        let flags = OFlags::RDONLY | OFlags::CLOEXEC;
        Ok(SandboxNs {
            user: open(format!("/proc/{pid}/ns/user"), flags, Mode::empty())?,
            mnt: open(format!("/proc/{pid}/ns/mnt"), flags, Mode::empty())?,
        })
    }
}

/// Applies `ops` inside the sandbox's mount namespace from a forked helper.
///
/// Only called in the [`ForkServer`], which is single-threaded (a precondition of `setns` into a
/// user namespace, and of running ordinary code after fork).
fn reapply_in(ns: &SandboxNs, ops: &[MountOp]) -> Result<(), String> {
    let (r, w) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| format!("pipe2: {e}"))?;
    // SAFETY: the fork server is single-threaded, so the child may run ordinary code until it exits.
    let pid = unsafe { ll::fork() }.map_err(|e| format!("fork: {e}"))?;
    if pid == 0 {
        drop(r);
        let result = rustix::thread::move_into_link_name_space(
            ns.user.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::User),
        )
        .map_err(|e| format!("setns(user): {e}"))
        .and_then(|()| {
            rustix::thread::move_into_link_name_space(
                ns.mnt.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Mount),
            )
            .map_err(|e| format!("setns(mnt): {e}"))
        })
        .and_then(|()| mounts::reapply(ops).map_err(|e| e.to_string()));
        if let Err(msg) = result {
            let _ = rustix::io::write(&w, msg.as_bytes());
            ll::exit_now(1);
        }
        ll::exit_now(0);
    }
    drop(w);
    let mut msg = String::new();
    let _ = std::fs::File::from(r).read_to_string(&mut msg);
    let status = ll::wait_blocking(pid).map_err(|e| format!("waitpid: {e}"))?;
    if status == 0 {
        Ok(())
    } else if msg.is_empty() {
        Err(format!("re-protect helper failed (wait status {status:#x})"))
    } else {
        Err(msg)
    }
}

/// A process that forks the re-protect helpers on the supervisor's behalf (see the module docs).
/// Requests are one JSON line each (the mount steps); the answer is one line, `ok` or the error.
/// It exits when the supervisor closes its end (or dies: EOF, and `PR_SET_PDEATHSIG`).
#[derive(Debug)]
pub struct ForkServer {
    sock: std::os::unix::net::UnixStream,
    pid: i32,
}

impl ForkServer {
    /// Forks the server for the sandbox whose init is `init` (an unreaped child of ours, so its
    /// pid cannot be reused while we run).
    ///
    /// # Safety
    ///
    /// The caller must be single-threaded: the child runs ordinary code.
    pub unsafe fn start(init: i32) -> std::io::Result<ForkServer> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        // SAFETY: the caller is single-threaded (this function's contract).
        let pid = unsafe { ll::fork() }?;
        if pid == 0 {
            drop(ours);
            // Hold nothing of the supervisor's (the control socket to init above all: init must
            // see EOF when the supervisor dies), only our own socket.
            ll::close_all_but(std::os::fd::AsRawFd::as_raw_fd(&theirs));
            let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
            serve_reapply(init, theirs);
            ll::exit_now(0);
        }
        drop(theirs);
        Ok(ForkServer { sock: ours, pid })
    }

    /// Applies `ops` inside the sandbox (through a helper the server forks).
    pub fn reapply(&self, ops: &[MountOp]) -> Result<(), String> {
        use std::io::{BufRead, Write};
        let mut line = serde_json::to_vec(ops).map_err(|e| e.to_string())?;
        line.push(b'\n');
        (&self.sock)
            .write_all(&line)
            .map_err(|e| format!("asking the re-protect server: {e}"))?;
        let mut answer = String::new();
        std::io::BufReader::new(&self.sock)
            .read_line(&mut answer)
            .map_err(|e| format!("reading the re-protect server's answer: {e}"))?;
        match answer.trim_end() {
            "ok" => Ok(()),
            "" => Err("the re-protect server is gone".into()),
            err => Err(err.to_string()),
        }
    }
}

impl Drop for ForkServer {
    fn drop(&mut self) {
        // EOF ends the server's loop; reap it so no zombie is left.
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
        let _ = ll::wait_blocking(self.pid);
    }
}

/// The server's loop: one request per line, answered in order.
fn serve_reapply(init: i32, sock: std::os::unix::net::UnixStream) {
    use std::io::{BufRead, Write};
    let mut reader = std::io::BufReader::new(&sock);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let result = serde_json::from_str::<Vec<MountOp>>(&line)
            .map_err(|e| format!("bad request: {e}"))
            .and_then(|ops| {
                let ns =
                    SandboxNs::open(init).map_err(|e| format!("opening the sandbox's namespaces: {e}"))?;
                reapply_in(&ns, &ops)
            });
        let answer = match result {
            Ok(()) => "ok\n".to_string(),
            Err(e) => format!("{}\n", e.replace('\n', " ")),
        };
        if (&sock).write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// The inotify watcher over the plan's watched directories.
#[derive(Debug)]
pub struct Watcher {
    fd: OwnedFd,
    dirs: Vec<(i32, WatchDir)>,
    deny: GlobSet,
    workspace: PathBuf,
}

impl Watcher {
    /// Watches every directory of `plan.watch` that exists now.
    pub fn new(plan: &Plan) -> std::io::Result<Watcher> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        let mut dirs = Vec::new();
        for d in &plan.watch {
            let flags =
                WatchFlags::CREATE | WatchFlags::MOVED_TO | WatchFlags::ONLYDIR | WatchFlags::DONT_FOLLOW;
            match inotify::add_watch(&fd, &d.host, flags) {
                Ok(wd) => dirs.push((wd, d.clone())),
                // A directory that does not exist has nothing to watch (yet).
                Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => {}
                // Anything else (the per-user watch limit): the launch must not go on unwatched.
                Err(e) => {
                    return Err(std::io::Error::other(format!(
                        "inotify_add_watch({:?}): {e}; raise fs.inotify.max_user_watches",
                        d.host
                    )))
                }
            }
        }
        let deny = corral_core::plan::deny_globset(&plan.deny).unwrap_or_else(|_| GlobSet::empty());
        Ok(Watcher {
            fd,
            dirs,
            deny,
            workspace: plan.workspace.clone(),
        })
    }

    /// The descriptor to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Reads pending events and acts on them inside the sandbox, through `server`. Returns one
    /// line per action.
    ///
    /// The namespaces are opened per event (by the server) rather than held for the session:
    /// holding them would move the mount namespace's teardown onto an exit path (milliseconds).
    ///
    /// `server` is `None` once the sandbox has ended: the last events are drained then, and only
    /// the host-side actions (quarantine) still apply.
    pub fn handle(&self, server: Option<&ForkServer>) -> Vec<String> {
        let mut todo: Vec<(WatchDir, String, WatchAction)> = Vec::new();
        let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
        let mut reader = inotify::Reader::new(&self.fd, &mut buf);
        let mut overflow = false;
        while let Ok(ev) = reader.next() {
            if ev.events().contains(ReadFlags::QUEUE_OVERFLOW) {
                overflow = true;
                continue;
            }
            let Some(name) = ev.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            let Some((_, dir)) = self.dirs.iter().find(|(wd, _)| *wd == ev.wd()) else {
                continue;
            };
            if let Some(action) = self.action_for(dir, &name) {
                todo.push((dir.clone(), name, action));
            }
        }
        let mut notes = Vec::new();
        if overflow {
            // Events were lost: re-apply every protection and mask that can be.
            for (_, dir) in &self.dirs {
                for (name, action) in &dir.names {
                    if dir.host.join(name).symlink_metadata().is_ok() {
                        todo.push((dir.clone(), name.clone(), *action));
                    }
                }
            }
            notes.push("too many changes at once in the workspace: every protection re-applied".to_string());
        }
        todo.sort_by(|a, b| (&a.0.host, &a.1).cmp(&(&b.0.host, &b.1)));
        todo.dedup_by(|a, b| a.0.host == b.0.host && a.1 == b.1);
        // Quarantine is a host-side move: it needs no sandbox, so it happens even when the sandbox
        // is gone (or going: init may already be a zombie whose namespaces cannot be opened).
        for (dir, name, action) in todo {
            match (server, action) {
                (_, WatchAction::Quarantine) => notes.push(quarantine(&dir.host.join(&name))),
                (Some(server), _) => notes.push(act(server, &dir, &name, action)),
                // The sandbox has ended: nothing inside to protect any more.
                (None, _) => {}
            }
        }
        notes
    }

    fn action_for(&self, dir: &WatchDir, name: &str) -> Option<WatchAction> {
        if let Some((_, a)) = dir.names.iter().find(|(n, _)| n == name) {
            return Some(*a);
        }
        if dir.deny_globs {
            let inside = dir.inside.join(name);
            let rel = inside.strip_prefix(&self.workspace).unwrap_or(&inside);
            if self.deny.is_match(rel) {
                return Some(WatchAction::Mask);
            }
        }
        None
    }
}

impl Drop for Watcher {
    /// Closing the last reference to an inotify instance that had watches waits for the kernel's
    /// mark reaper (an SRCU grace period: 7–16 ms measured on these machines), which would land on
    /// every launch's exit. So the last close happens in a detached grandchild that holds nothing
    /// else (every other descriptor closed first, so nobody reading corral's output waits for it);
    /// the supervisor's own close is then cheap. If the fork fails, the close simply happens here.
    fn drop(&mut self) {
        if self.dirs.is_empty() {
            return;
        }
        let keep = rustix::fd::AsRawFd::as_raw_fd(&self.fd);
        // SAFETY: the children only make raw, async-signal-safe system calls (fork, close,
        // _exit), which is all a child of a multi-threaded process may do (the proxy's threads
        // may be running).
        match unsafe { ll::fork() } {
            Ok(0) => {
                // SAFETY: as above.
                if let Ok(0) = unsafe { ll::fork() } {
                    ll::close_all_but(keep);
                }
                ll::exit_now(0);
            }
            // The intermediate child exits at once; reap it so no zombie is left.
            Ok(pid) => drop(ll::wait_blocking(pid)),
            Err(_) => {}
        }
    }
}

fn act(server: &ForkServer, dir: &WatchDir, name: &str, action: WatchAction) -> String {
    let host = dir.host.join(name);
    let inside = dir.inside.join(name);
    let Ok(meta) = host.symlink_metadata() else {
        return format!("{} appeared and went again on the host", host.display());
    };
    match action {
        WatchAction::Quarantine => quarantine(&host),
        WatchAction::Protect | WatchAction::Mask if meta.file_type().is_symlink() => format!(
            "warning: {} was replaced by a symlink on the host: corral cannot hold a symlink read-only or masked",
            host.display()
        ),
        WatchAction::Protect => {
            let op = MountOp::Rebind { dst: inside, access: Access::ReadOnly, why: "protect".into() };
            report(server.reapply(&[op]), &host, "protection re-applied (it was replaced on the host)")
        }
        WatchAction::Mask => {
            let kind = if meta.is_dir() { FileKind::Dir } else { FileKind::File };
            let op = MountOp::Mask { dst: inside, kind, why: "watch".into() };
            report(server.reapply(&[op]), &host, "masked (it appeared or was replaced on the host)")
        }
    }
}

fn report(r: Result<(), String>, host: &Path, done: &str) -> String {
    match r {
        Ok(()) => format!("{}: {done}", host.display()),
        Err(e) => format!(
            "warning: {}: could not re-apply its protection inside the sandbox: {e}",
            host.display()
        ),
    }
}

/// Moves a forbidden file aside (never deletes it: it may be evidence, and nothing is lost).
fn quarantine(host: &Path) -> String {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut aside = host.as_os_str().to_owned();
    aside.push(format!(".corral-quarantine-{stamp}"));
    match std::fs::rename(host, &aside) {
        Ok(()) => format!(
            "warning: {} was created during the session (it would redirect your git to other config and hooks); moved to {}",
            host.display(),
            Path::new(&aside).display()
        ),
        Err(e) => format!("warning: {} was created during the session and could not be moved aside: {e}", host.display()),
    }
}
