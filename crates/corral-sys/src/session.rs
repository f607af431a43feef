//! A session's bookkeeping on the host: its private directory, and the placeholders it puts in the
//! workspace so that protected paths that do not exist yet cannot be created.
//!
//! The state file is written *before* any placeholder is created, and lists each placeholder with
//! its device and inode, so that a session killed with SIGKILL leaves a record that `corral gc`
//! (also run quietly at every launch) uses to remove exactly what the session created, and nothing
//! the user has since put in its place.

use corral_core::plan::{FileKind, Placeholder};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A failure of the session's bookkeeping.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path:?}: {source}")]
pub struct SessionError {
    /// What was being done.
    pub op: &'static str,
    /// On what.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

fn serr(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SessionError {
    let path = path.to_path_buf();
    move |source| SessionError { op, path, source }
}

/// A placeholder as created, identified by device and inode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedPlaceholder {
    /// Where.
    pub path: PathBuf,
    /// File or directory.
    pub kind: FileKind,
    /// Device of the created entry.
    pub dev: u64,
    /// Inode of the created entry.
    pub ino: u64,
}

/// What a session records on disk while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    /// Session id.
    pub id: String,
    /// The supervisor's pid.
    pub pid: u32,
    /// Its start time in clock ticks since boot (field 22 of /proc/PID/stat), against pid reuse.
    pub start_ticks: u64,
    /// The workspace.
    pub workspace: PathBuf,
    /// Placeholders created.
    pub placeholders: Vec<CreatedPlaceholder>,
    /// The session ended normally; its placeholders wait only for the other sessions in the same
    /// workspace to end.
    #[serde(default)]
    pub finished: bool,
    /// The session cgroup's directories (removed by `gc` if the supervisor was killed).
    #[serde(default)]
    pub cgroups: Vec<PathBuf>,
}

/// A running session's directory and state.
#[derive(Debug)]
pub struct Session {
    /// `$XDG_RUNTIME_DIR/corral/<id>` or `/tmp/corral-<uid>/<id>`.
    pub dir: PathBuf,
    /// The recorded state.
    pub state: SessionState,
    /// How many state files were written.
    version: u32,
}

/// True when this process's uid owns `dir` (and so could chmod it writable).
fn dir_is_ours(dir: &Path) -> bool {
    dir.symlink_metadata()
        .is_ok_and(|m| m.uid() == rustix::process::geteuid().as_raw())
}

/// The latest state recorded in a session directory.
fn read_state(dir: &Path) -> Option<SessionState> {
    let latest = fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix("state-")?
                .strip_suffix(".json")?
                .parse::<u32>()
                .ok()
        })
        .max()?;
    serde_json::from_str(&fs::read_to_string(dir.join(format!("state-{latest}.json"))).ok()?).ok()
}

/// The directory holding all live sessions of this user, created 0700 and checked to be ours.
pub fn sessions_root(xdg_runtime_dir: Option<&Path>, uid: u32) -> Result<PathBuf, SessionError> {
    let root = match xdg_runtime_dir {
        Some(d) if d.is_absolute() && d.is_dir() => d.join("corral"),
        _ => PathBuf::from(format!("/tmp/corral-{uid}")),
    };
    match fs::DirBuilder::new().mode(0o700).recursive(false).create(&root) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(serr("mkdir", &root)(e)),
    }
    // In a shared /tmp someone else could have made it first (or a symlink): refuse anything that is
    // not a real directory owned by us with no access for others.
    let meta = root.symlink_metadata().map_err(serr("lstat", &root))?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return Err(serr(
            "refusing session directory (not ours, or not mode 0700)",
            &root,
        )(std::io::Error::from_raw_os_error(libc::EPERM)));
    }
    Ok(root)
}

/// 16 random hex digits: a session id, a scope name.
pub fn random_id() -> String {
    let mut b = [0u8; 8];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The start time of `pid` in clock ticks, from `/proc/PID/stat`.
pub fn start_ticks(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|s| s.start_ticks)
}

/// The fields of `/proc/<pid>/stat` corral reads (proc(5)). The one parser of that file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: `R`, `S`, `Z`, …
    pub state: char,
    /// Field 4: the parent's pid.
    pub ppid: u32,
    /// Fields 14–17: utime + stime + cutime + cstime, in clock ticks.
    pub cpu_ticks: u64,
    /// Field 22: start time in clock ticks since boot.
    pub start_ticks: u64,
    /// Field 24: resident set size in pages.
    pub rss_pages: u64,
}

/// `/proc/<pid>/stat` of `pid`, None when it is gone or unreadable.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: fields after its last ')'
    // start at field 3, index N - 3.
    let f: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let num = |n: usize| -> Option<u64> { f.get(n - 3)?.parse().ok() };
    Some(ProcStat {
        state: f.first()?.chars().next()?,
        ppid: u32::try_from(num(4)?).ok()?,
        cpu_ticks: num(14)? + num(15)? + num(16)? + num(17)?,
        start_ticks: num(22)?,
        rss_pages: num(24)?,
    })
}

/// What a session's processes use, read from `/proc` (so it is there without a session cgroup).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time in milliseconds: every live process of the sandbox (user + system), plus what
    /// their reaped children used.
    pub cpu_ms: u64,
    /// Resident memory in bytes, summed over the processes (pages shared between them counted
    /// once per process: an upper bound).
    pub rss_bytes: u64,
    /// Processes.
    pub processes: u64,
}

/// Whether `pid` is the first process of a pid namespace below ours (its `NSpid` has a 1 after
/// its own number): a supervisor's child that is that is the sandbox's init.
fn is_namespace_init(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .is_some_and(|ns| ns.split_whitespace().nth(1) == Some("1"))
    })
}

/// What the sandbox of the supervisor `supervisor` uses now: its init and every descendant.
/// None when no init is found (the session is starting or ending).
pub fn sandbox_usage(supervisor: u32) -> Option<Usage> {
    let stats: Vec<(u32, ProcStat)> = fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, proc_stat(pid)?)))
        .collect();
    let init = stats
        .iter()
        .find(|(pid, s)| s.ppid == supervisor && is_namespace_init(*pid))?
        .0;
    let mut tree = vec![init];
    let mut i = 0;
    while let Some(parent) = tree.get(i).copied() {
        tree.extend(stats.iter().filter(|(_, s)| s.ppid == parent).map(|(p, _)| *p));
        i += 1;
    }
    let page = u64::try_from(rustix::param::page_size()).unwrap_or(4096);
    let hz = rustix::param::clock_ticks_per_second().max(1);
    let mut u = Usage::default();
    for (_, s) in stats.iter().filter(|(p, _)| tree.contains(p)) {
        u.cpu_ms += s.cpu_ticks * 1000 / hz;
        u.rss_bytes += s.rss_pages * page;
        u.processes += 1;
    }
    Some(u)
}

/// A session is live while its supervisor runs (same pid *and* start time, not a zombie) and it
/// has not finished.
fn live(s: &SessionState) -> bool {
    !s.finished
        && proc_stat(s.pid)
            .is_some_and(|p| p.start_ticks == s.start_ticks && p.state != 'Z' && p.state != 'X')
}

impl Session {
    /// Creates the session directory and writes the initial state.
    pub fn create(root: &Path, workspace: &Path) -> Result<Session, SessionError> {
        let id = random_id();
        let dir = root.join(&id);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(serr("mkdir", &dir))?;
        let pid = std::process::id();
        let state = SessionState {
            id,
            pid,
            start_ticks: start_ticks(pid).unwrap_or(0),
            workspace: workspace.to_path_buf(),
            placeholders: Vec::new(),
            finished: false,
            cgroups: Vec::new(),
        };
        let mut s = Session {
            dir,
            state,
            version: 0,
        };
        s.save()?;
        Ok(s)
    }

    /// Records the state as a *new* file `state-N.json` (readers take the highest N). Never
    /// replacing a file matters on ext4, where a rename or truncate over an existing file forces
    /// its data to disk (`auto_da_alloc`): that cost milliseconds per launch on a disk-backed /tmp.
    fn save(&mut self) -> Result<(), SessionError> {
        self.version += 1;
        let path = self.dir.join(format!("state-{}.json", self.version));
        let body = serde_json::to_vec_pretty(&self.state).map_err(|e| serr("serialise", &path)(e.into()))?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(serr("create", &path))?;
        f.write_all(&body).map_err(serr("write", &path))
    }

    /// Creates the placeholders. The whole list is recorded first (one write), so a kill at any
    /// point leaves a record `gc` can act on; a second write adds each one's device and inode and
    /// drops any that already existed (made by someone else meanwhile: not ours to remove).
    ///
    /// Returns the placeholders that were not needed: those whose directory this uid cannot write
    /// and does not own (so nothing in the sandbox, running as this uid, could create the path
    /// either, nor chmod its way there). The caller drops their mounts from the plan.
    pub fn create_placeholders(&mut self, wanted: &[Placeholder]) -> Result<Vec<PathBuf>, SessionError> {
        let mut unneeded = Vec::new();
        if wanted.is_empty() {
            return Ok(unneeded);
        }
        self.state.placeholders = wanted
            .iter()
            .map(|p| CreatedPlaceholder {
                path: p.path.clone(),
                kind: p.kind,
                dev: 0,
                ino: 0,
            })
            .collect();
        self.save()?;
        let mut created = Vec::with_capacity(wanted.len());
        let mut failure = None;
        for p in wanted {
            let made = match p.kind {
                FileKind::Dir => fs::DirBuilder::new().mode(0o755).create(&p.path),
                FileKind::File | FileKind::Other => fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .open(&p.path)
                    .map(drop),
            };
            match made.and_then(|()| p.path.symlink_metadata()) {
                Ok(meta) => created.push(CreatedPlaceholder {
                    path: p.path.clone(),
                    kind: p.kind,
                    dev: meta.dev(),
                    ino: meta.ino(),
                }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM | libc::EROFS))
                        && p.path.parent().is_some_and(|d| !dir_is_ours(d)) =>
                {
                    unneeded.push(p.path.clone());
                }
                Err(e) => {
                    failure = Some(serr("create placeholder", &p.path)(e));
                    break;
                }
            }
        }
        self.state.placeholders = created;
        self.save()?;
        failure.map_or(Ok(unneeded), Err)
    }

    /// Records the session cgroup's directories.
    pub fn record_cgroups(&mut self, paths: &[PathBuf]) -> Result<(), SessionError> {
        self.state.cgroups = paths.to_vec();
        self.save()
    }

    /// Ends the session: marks it finished, then removes the placeholders of every ended session in
    /// this workspace, unless another session there is still live. A placeholder is a mount point
    /// in every live sandbox of the workspace, and removing it on the host would detach their
    /// protection (Linux ≥ 3.18 detaches mounts on an unlinked dentry in other namespaces); the
    /// last session to end removes them all. Returns notes about placeholders left in place.
    pub fn finish(mut self) -> Vec<String> {
        let root = self.dir.parent().map(Path::to_path_buf).unwrap_or_default();
        if self.state.placeholders.is_empty() {
            // Nothing to hand over: just go, and free the placeholders others left waiting for us.
            let _ = fs::remove_dir_all(&self.dir);
            return collect(&root).notes;
        }
        self.state.finished = true;
        if self.save().is_err() {
            // Cannot record the hand-over: clean our own now rather than leave them behind.
            let notes = remove_placeholders(&self.state.placeholders);
            let _ = fs::remove_dir_all(&self.dir);
            return notes;
        }
        collect(&root).notes
    }
}

/// Removes each placeholder that is still the empty entry corral created, deepest first.
pub fn remove_placeholders(list: &[CreatedPlaceholder]) -> Vec<String> {
    let mut list: Vec<&CreatedPlaceholder> = list.iter().collect();
    list.sort_by(|a, b| b.path.cmp(&a.path));
    let mut notes = Vec::new();
    for p in list {
        let Ok(meta) = p.path.symlink_metadata() else {
            continue;
        };
        if p.ino != 0 && (meta.dev() != p.dev || meta.ino() != p.ino) {
            continue; // replaced by something else: not ours
        }
        let removed = match p.kind {
            FileKind::Dir if meta.is_dir() => fs::remove_dir(&p.path),
            FileKind::File | FileKind::Other if meta.is_file() && meta.len() == 0 => fs::remove_file(&p.path),
            _ => Err(std::io::Error::from_raw_os_error(libc::ENOTEMPTY)),
        };
        match removed {
            // Another session's clean-up got there first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => notes.push(format!("left placeholder {} in place: {e}", p.path.display())),
            Ok(()) => {}
        }
    }
    notes
}

/// What a collection pass did.
struct Collected {
    /// Lines about sessions that had been killed (not finished normally).
    killed: Vec<String>,
    /// Notes about placeholders left in place.
    notes: Vec<String>,
}

/// Removes the placeholders and directories of every ended session whose workspace has no live
/// session left.
fn collect(root: &Path) -> Collected {
    let mut out = Collected {
        killed: Vec::new(),
        notes: Vec::new(),
    };
    let Ok(rd) = fs::read_dir(root) else { return out };
    let mut states: Vec<(PathBuf, SessionState)> = Vec::new();
    for e in rd.flatten() {
        let dir = e.path();
        if let Some(state) = read_state(&dir) {
            states.push((dir, state));
        }
    }
    let busy: Vec<PathBuf> = states
        .iter()
        .filter(|(_, s)| live(s))
        .map(|(_, s)| s.workspace.clone())
        .collect();
    let ended: Vec<&(PathBuf, SessionState)> = states
        .iter()
        .filter(|(_, s)| !live(s) && !busy.contains(&s.workspace))
        .collect();
    let all: Vec<CreatedPlaceholder> = ended
        .iter()
        .flat_map(|(_, s)| s.placeholders.iter().cloned())
        .collect();
    for (_, s) in &ended {
        if !s.finished {
            for p in s
                .placeholders
                .iter()
                .filter(|p| p.path.symlink_metadata().is_ok())
            {
                out.killed.push(format!(
                    "session {}: removing placeholder {}",
                    s.id,
                    p.path.display()
                ));
            }
        }
    }
    out.notes = remove_placeholders(&all);
    // The cgroup of a killed session: empty (its processes died with its pid namespace); rmdir.
    for (_, s) in &ended {
        for dir in &s.cgroups {
            if std::fs::remove_dir(dir).is_ok() && !s.finished {
                out.killed
                    .push(format!("session {}: removed cgroup {}", s.id, dir.display()));
            }
        }
    }
    for (dir, s) in ended {
        if fs::remove_dir_all(dir).is_ok() && !s.finished {
            out.killed
                .push(format!("session {}: removed {}", s.id, dir.display()));
        }
    }
    out
}

/// Cleans up after sessions that were killed (and any ended ones whose workspace is now free):
/// The sessions of this user that are running now (supervisor alive, not finished).
pub fn live_sessions(root: &Path) -> Vec<SessionState> {
    let Ok(rd) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<SessionState> = rd
        .flatten()
        .filter_map(|e| read_state(&e.path()))
        .filter(live)
        .collect();
    out.sort_by_key(|s| s.start_ticks);
    out
}

/// Seconds since `start_ticks` (clock ticks since boot), from /proc/uptime.
pub fn uptime_s(start_ticks: u64) -> Option<u64> {
    let up: f64 = fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    // _SC_CLK_TCK is 100 on every Linux architecture corral supports.
    let started = start_ticks / 100;
    // uptime is a small positive number of seconds.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let up = up as u64;
    Some(up.saturating_sub(started))
}

/// their placeholders and directories. Returns one line per thing removed of a killed session.
pub fn gc(root: &Path) -> Vec<String> {
    let c = collect(root);
    c.killed.into_iter().chain(c.notes).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_reads_this_process() {
        let me = proc_stat(std::process::id()).unwrap();
        // The main thread's state: the test harness's waits for this one.
        assert!(matches!(me.state, 'R' | 'S'), "{me:?}");
        assert_eq!(
            Some(me.ppid),
            rustix::process::getppid().map(|p| p.as_raw_nonzero().get().unsigned_abs())
        );
        assert!(me.start_ticks > 0 && me.rss_pages > 0);
        assert_eq!(proc_stat(u32::MAX), None);
    }
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn placeholders_are_removed_only_when_still_ours() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("runtime");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();
        let ws = t.path().join("ws");
        fs::create_dir(&ws).unwrap();
        let mut s = Session::create(&root, &ws).unwrap();
        s.create_placeholders(&[
            Placeholder {
                path: ws.join(".envrc"),
                kind: FileKind::File,
            },
            Placeholder {
                path: ws.join(".vscode"),
                kind: FileKind::Dir,
            },
            Placeholder {
                path: ws.join(".idea"),
                kind: FileKind::Dir,
            },
        ])
        .unwrap();
        fs::write(ws.join(".idea/workspace.xml"), "user data").unwrap();
        let notes = s.finish();
        assert!(!ws.join(".envrc").exists() && !ws.join(".vscode").exists());
        assert!(
            ws.join(".idea/workspace.xml").exists(),
            "a placeholder the user filled is kept"
        );
        assert_eq!(notes.len(), 1, "{notes:?}");
    }

    #[test]
    fn gc_cleans_a_dead_session() {
        let t = tempfile::tempdir().unwrap();
        let ws = t.path().join("ws");
        fs::create_dir(&ws).unwrap();
        let root = t.path().join("runtime");
        fs::create_dir(&root).unwrap();
        let mut s = Session::create(&root, &ws).unwrap();
        s.create_placeholders(&[Placeholder {
            path: ws.join(".envrc"),
            kind: FileKind::File,
        }])
        .unwrap();
        // Pretend the supervisor died: a start time that cannot match.
        s.state.start_ticks = u64::MAX;
        s.save().unwrap();
        let done = gc(&root);
        assert!(!ws.join(".envrc").exists());
        assert!(!s.dir.exists());
        assert_eq!(done.len(), 2, "{done:?}");
    }
}
