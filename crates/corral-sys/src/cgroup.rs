//! The per-session cgroup: memory, pids and cpu limits for everything the sandbox runs.
//!
//! What it enforces: for one session it makes a cgroup `corral-<id>` in every hierarchy that
//! carries a controller it needs, writes the limits of a [`CgroupLimits`], moves the sandbox's
//! first process in before it runs anything ([`SessionCgroup::attach`]; children inherit the
//! cgroup), reads the counters at the end ([`SessionCgroup::events`]), kills what is left
//! ([`SessionCgroup::kill_all`]) and removes the directories ([`SessionCgroup::remove`]).
//! - memory: v2 `memory.max` and `memory.swap.max` = 0; v1 `memory.limit_in_bytes` and
//!   `memory.memsw.limit_in_bytes` with the same value (memory + swap, so no swap at all);
//! - pids: `pids.max` (both versions): a fork bomb gets `EAGAIN` from `fork`;
//! - cpu: v2 `cpu.max` "quota period"; v1 `cpu.cfs_period_us`, then `cpu.cfs_quota_us`.
//!
//! Which hierarchy serves a controller: a v1 hierarchy whose mount lists it (on a hybrid host,
//! such as these Debian 12 machines, memory and pids live in v1), else the cgroup2 mount. The
//! memory and pids hierarchies are always used (their counters feed [`CgroupEvents`] and their
//! `cgroup.procs` lets `kill_all` find every process); the cpu hierarchy only when a quota is
//! asked for, because a v1 cpu cgroup changes how the scheduler shares the CPU even without one.
//!
//! Delegation model — where this process may make a cgroup, decided for the `uid` passed in (the
//! effective uid of the caller) from owner and mode bits, so fixtures can pretend any uid:
//! - v2: only below the process's own cgroup, when that directory and its `cgroup.procs` are
//!   writable by `uid` (a delegated cgroup, cgroups(7) "Cgroup delegation"). v2 forbids processes
//!   in a cgroup that enables controllers for its children ("no internal processes", cgroup-v2.rst),
//!   so the session is a leaf `corral-<id>`, and a controller that the parent's
//!   `cgroup.subtree_control` lacks is enabled there only when a limit needs it; when that fails
//!   (typically `EBUSY`: this process lives in the parent) the outcome is `partial`.
//! - v1, per hierarchy, the first of: the process's own cgroup directory when `uid` may write it;
//!   a delegated `corral-<uid>` directly under the hierarchy's mount point (made once by root,
//!   `corral setup`: mkdir + chown); the mount point itself when `uid` is 0. Root therefore nests
//!   the session below its own cgroup when it has one, so limits set above it still apply.
//!
//! Nothing here fails the caller for a missing cgroup: the [`CgroupOutcome`] says what was
//! achieved (`full`, `partial`, `none`) and why, with the fix. Errors are for an invalid id and for
//! unexpected I/O once creation starts (`mkdir` other than a permission refusal, e.g. `EEXIST`; a
//! limit write other than `ENOENT`, e.g. `EINVAL`), and then everything made so far is removed.
//!
//! Seams: [`CgroupHost`] carries `/proc/self/mountinfo`, `/proc/self/cgroup` and a prefix for
//! every mount point, so tests run against a tree in a temporary directory; directory creation
//! and removal go through a private trait so a fixture can fill a new directory with interface
//! files, as kernfs does.
//!
//! Limits: a v2 cgroup whose own processes sit in it cannot enable controllers for a child, so
//! under a systemd-style delegated scope the limits stay unwritten (`partial`) unless the scope's
//! `cgroup.subtree_control` already has them. Writability ignores group permissions and ACLs
//! (delegate by owner). Controllers enabled in a parent's `cgroup.subtree_control` stay enabled
//! after `remove`. On v1 `kill_all` signals the pids it reads from `cgroup.procs` (through a
//! pidfd, re-checking membership after opening it, so a recycled pid is not hit) for at most 100
//! rounds; a fork bomb without a pids limit could outrun it. The caller must call `remove`:
//! nothing is removed on drop.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use corral_core::layer::Achieved;
use rustix::process::{Pid, PidfdFlags, Signal};

/// `kill_all` on v1 reads `cgroup.procs` and kills at most this many times.
const MAX_KILL_ROUNDS: u32 = 100;
/// Pause between two `kill_all` rounds: killed processes need a moment to leave `cgroup.procs`.
const KILL_ROUND_PAUSE: Duration = Duration::from_millis(10);
/// `remove` retries `rmdir` on `EBUSY` this many times (processes still exiting)…
const RMDIR_ATTEMPTS: u32 = 50;
/// … this long apart: one second in all.
const RMDIR_PAUSE: Duration = Duration::from_millis(20);
/// The fix when an unprivileged user has no cgroup.
const SETUP_HINT: &str = "fix: run `sudo corral setup` to delegate a cgroup to this user";
/// The fix when root finds no usable hierarchy.
const MOUNT_HINT: &str =
    "fix: mount the cgroup v1 memory and pids hierarchies, or cgroup2 with those controllers";

/// Set by `corral run` for the corral it re-runs in a transient systemd scope: the scope's unit
/// name (`corral-….scope`), whose cgroup then serves as the session's.
pub const SYSTEMD_SCOPE_ENV: &str = "CORRAL_SYSTEMD_SCOPE";

/// Limits to enforce through the cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupLimits {
    /// Memory in bytes; when set, swap is capped at zero too.
    pub memory_bytes: Option<u64>,
    /// The most processes and threads at once.
    pub pids: Option<u64>,
    /// CPU bandwidth: `quota` microseconds of CPU time in each `period` microseconds.
    pub cpu_quota_us_per_period: Option<(u64, u64)>,
}

/// Where cgroups live on this host: seams, so tests use a temporary directory.
#[derive(Debug, Clone)]
pub struct CgroupHost {
    /// The content of `/proc/self/mountinfo`.
    pub mountinfo: String,
    /// The content of `/proc/self/cgroup`.
    pub self_cgroup: String,
    /// Prepended to every mount point: `/` normally, the temporary directory in tests.
    pub root_prefix: PathBuf,
}

impl CgroupHost {
    /// This process's view: `/proc/self/mountinfo`, `/proc/self/cgroup`, prefix `/`.
    pub fn current() -> io::Result<CgroupHost> {
        Ok(CgroupHost {
            mountinfo: fs::read_to_string("/proc/self/mountinfo")?,
            self_cgroup: fs::read_to_string("/proc/self/cgroup")?,
            root_prefix: PathBuf::from("/"),
        })
    }

    /// The real path of a host path (`/sys/fs/cgroup/...`) under `root_prefix`.
    fn real(&self, host_path: &Path) -> PathBuf {
        self.root_prefix
            .join(host_path.strip_prefix("/").unwrap_or(host_path))
    }
}

/// Counters read at the end of a session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupEvents {
    /// Processes the OOM killer killed in the cgroup.
    pub oom_kills: u64,
    /// Forks refused because `pids.max` was reached.
    pub pids_max_hits: u64,
    /// The highest memory use seen, in bytes, when the kernel reports it.
    pub memory_peak: Option<u64>,
}

/// What [`SessionCgroup::create`] achieved, for reports: which controllers, v1 or v2, and why
/// something is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupOutcome {
    /// `full` when every requested limit was written, `partial` when some, `none` when no cgroup
    /// could be made.
    pub achieved: Achieved,
    /// The directories and the files written, then what is missing and why (with the fix).
    pub detail: String,
}

/// A cgroup operation that failed, named like strace would show it.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The session id cannot name a cgroup directory.
    #[error("invalid session id {id:?} for a cgroup name: use letters, digits, `-` and `_`")]
    InvalidId {
        /// The id as given.
        id: String,
    },
    /// `mkdir` failed unexpectedly (not a permission problem, which is reported as an outcome).
    #[error("mkdir(\"{}\"): {}", .path.display(), errno_name(.source))]
    Mkdir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Writing a cgroup file failed.
    #[error("write(\"{}\", \"{value}\"): {}", .path.display(), errno_name(.source))]
    Write {
        /// The file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `rmdir` failed (after retries while the cgroup was busy).
    #[error("rmdir(\"{}\"): {}", .path.display(), errno_name(.source))]
    Rmdir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// The cgroup of one session: one directory per hierarchy it lives in.
#[derive(Debug)]
pub struct SessionCgroup {
    dirs: Vec<SessionDir>,
    /// The directory is the systemd scope this process runs in ([`SessionCgroup::systemd_scope`]):
    /// systemd made it and removes it, and this process is in it, so it is neither killed whole
    /// (`cgroup.kill`) nor removed.
    scope: bool,
}

/// One `corral-<id>` directory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SessionDir {
    version: Version,
    /// The controllers in effect in this directory.
    controllers: Vec<Controller>,
    /// The directory as the process sees it (under `root_prefix`).
    path: PathBuf,
}

use crate::mountinfo::{cgroup_mounts as parse_mountinfo, CgroupMount, CgroupVersion as Version};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Controller {
    Memory,
    Pids,
    Cpu,
}

impl Controller {
    fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
        }
    }

    /// Whether `limits` asks for something this controller enforces.
    fn requested(self, limits: &CgroupLimits) -> bool {
        match self {
            Controller::Memory => limits.memory_bytes.is_some(),
            Controller::Pids => limits.pids.is_some(),
            Controller::Cpu => limits.cpu_quota_us_per_period.is_some(),
        }
    }
}

fn names(controllers: &[Controller]) -> String {
    controllers.iter().map(|c| c.name()).collect::<Vec<_>>().join(",")
}

/// How cgroup directories are made and removed: cgroupfs in production; tests substitute a fake
/// that fills a new directory with interface files, as kernfs does.
trait CgroupFs {
    fn mkdir(&self, path: &Path) -> io::Result<()>;
    fn rmdir(&self, path: &Path) -> io::Result<()>;
}

/// The kernel's cgroup filesystem.
struct Kernfs;

impl CgroupFs for Kernfs {
    fn mkdir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir(path)
    }
}

impl SessionCgroup {
    /// Creates `corral-<id>` where `uid` (the caller's effective uid) may, and writes `limits`
    /// (see the module docs for where and what). A missing cgroup is not an error: it returns
    /// `Ok((None, outcome))` with the reason and the fix in `outcome.detail`. `Err` is for an
    /// invalid id and for unexpected I/O errors once creation started; then whatever was made is
    /// removed.
    pub fn create(
        host: &CgroupHost,
        uid: u32,
        id: &str,
        limits: &CgroupLimits,
    ) -> Result<(Option<SessionCgroup>, CgroupOutcome), CgroupError> {
        create_with(host, uid, id, limits, &Kernfs)
    }

    /// The systemd scope this process runs in, named `unit` (`corral-….scope`, made by `corral
    /// run` through `systemd-run --user --scope`, the limits set on it with `systemctl --user
    /// set-property`): its cgroup2 directory, when this process's own cgroup is it and it has the
    /// memory and pids files. None otherwise. The outcome is `full` when the kernel shows every
    /// limit of `limits` there, else `partial`, naming what it shows.
    pub fn systemd_scope(
        host: &CgroupHost,
        unit: &str,
        limits: &CgroupLimits,
    ) -> Option<(SessionCgroup, CgroupOutcome)> {
        let own = parse_proc_cgroup(&host.self_cgroup)
            .into_iter()
            .find(|m| m.hierarchy_id == 0)?
            .path;
        if own.rsplit('/').next() != Some(unit) {
            return None;
        }
        let mount = parse_mountinfo(&host.mountinfo)
            .into_iter()
            .find(|m| m.version == Version::V2)?;
        let dir = host.real(&under(
            Path::new(&mount.mount_point),
            &relative(&mount.root, &own)?,
        ));
        let read = |file: &str| {
            fs::read_to_string(dir.join(file))
                .ok()
                .map(|v| v.trim().to_string())
        };
        let mut controllers = Vec::new();
        let mut shown = Vec::new();
        for (c, file) in [
            (Controller::Memory, "memory.max"),
            (Controller::Pids, "pids.max"),
            (Controller::Cpu, "cpu.max"),
        ] {
            if let Some(v) = read(file) {
                controllers.push(c);
                shown.push(format!("{file}={v}"));
            }
        }
        if !controllers.contains(&Controller::Memory) || !controllers.contains(&Controller::Pids) {
            return None;
        }
        if let Some(v) = read("memory.swap.max") {
            shown.push(format!("memory.swap.max={v}"));
        }
        // Every file a v2 session cgroup of ours would have written, with the value it would hold.
        let held = [Controller::Memory, Controller::Pids, Controller::Cpu]
            .into_iter()
            .flat_map(|c| limit_files(c, Version::V2, limits))
            .all(|f| read(f.name).as_deref() == Some(f.value.as_str()));
        let outcome = CgroupOutcome {
            achieved: if held { Achieved::Full } else { Achieved::Partial },
            detail: format!(
                "v2 systemd scope {} ({}){}",
                dir.display(),
                shown.join(", "),
                if held {
                    ""
                } else {
                    "; not every limit of the plan is set there"
                }
            ),
        };
        let cg = SessionCgroup {
            dirs: vec![SessionDir {
                version: Version::V2,
                controllers,
                path: dir,
            }],
            scope: true,
        };
        Some((cg, outcome))
    }

    /// Moves `pid` into the session cgroup in every hierarchy (writes `cgroup.procs`). Call it
    /// before the process runs anything: its children inherit the cgroup.
    pub fn attach(&self, pid: i32) -> Result<(), CgroupError> {
        for dir in &self.dirs {
            write_file(&dir.path.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// The session's directories, as this process sees them.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|d| d.path.as_path())
    }

    /// Counters read at the end: OOM kills (v2 `memory.events` `oom_kill`, v1 `memory.oom_control`
    /// `oom_kill`), forks refused at the pids limit (`pids.events` `max`), peak memory (v2
    /// `memory.peak`, v1 `memory.max_usage_in_bytes`). A file the kernel lacks counts as zero (or
    /// no peak).
    pub fn events(&self) -> CgroupEvents {
        let mut events = CgroupEvents::default();
        for dir in &self.dirs {
            let read = |file: &str| fs::read_to_string(dir.path.join(file)).ok();
            if dir.controllers.contains(&Controller::Memory) {
                let (oom_file, peak_file) = match dir.version {
                    Version::V1 => ("memory.oom_control", "memory.max_usage_in_bytes"),
                    Version::V2 => ("memory.events", "memory.peak"),
                };
                events.oom_kills += read(oom_file)
                    .and_then(|text| keyed_value(&text, "oom_kill"))
                    .unwrap_or(0);
                if let Some(peak) = read(peak_file).and_then(|text| text.trim().parse::<u64>().ok()) {
                    events.memory_peak = Some(events.memory_peak.map_or(peak, |p| p.max(peak)));
                }
            }
            if dir.controllers.contains(&Controller::Pids) {
                events.pids_max_hits += read("pids.events")
                    .and_then(|text| keyed_value(&text, "max"))
                    .unwrap_or(0);
            }
        }
        events
    }

    /// Kills every process left in the cgroup: v2 writes `cgroup.kill` (Linux 5.14); v1 (and v2
    /// without `cgroup.kill`) reads `cgroup.procs` and sends `SIGKILL` to each, until it reads
    /// empty, at most 100 rounds. Never signals this process. Best effort: errors are ignored, and
    /// `remove` reports a cgroup that is still busy.
    pub fn kill_all(&self) {
        let mut procs_files = Vec::new();
        for dir in &self.dirs {
            // In a systemd scope this process is in the cgroup too: signal the others only.
            if !self.scope
                && dir.version == Version::V2
                && write_file(&dir.path.join("cgroup.kill"), "1").is_ok()
            {
                continue;
            }
            procs_files.push(dir.path.join("cgroup.procs"));
        }
        if procs_files.is_empty() {
            return;
        }
        let me = i32::try_from(std::process::id()).unwrap_or(0);
        for _ in 0..MAX_KILL_ROUNDS {
            let listed = read_pids(&procs_files, me);
            if listed.is_empty() {
                return;
            }
            // Pin each process with a pidfd, then check it is still listed: a pid read above may
            // have exited and been recycled by an unrelated process in between; a pidfd opened on
            // the recycled pid would then not be listed (or, if it is, is really in the cgroup).
            let pinned: Vec<(i32, Pin)> = listed.iter().map(|&pid| (pid, pin(pid))).collect();
            let still = read_pids(&procs_files, me);
            for (pid, pinned) in pinned {
                if still.contains(&pid) {
                    pinned.kill(pid);
                }
            }
            std::thread::sleep(KILL_ROUND_PAUSE);
        }
    }

    /// Removes the cgroup directories (`rmdir`, retried for up to a second while processes are
    /// still exiting). Call it at the end, after [`SessionCgroup::kill_all`]. Tries every
    /// directory and returns the first error.
    pub fn remove(self) -> Result<(), CgroupError> {
        self.remove_with(&Kernfs)
    }

    fn remove_with(self, fs: &dyn CgroupFs) -> Result<(), CgroupError> {
        // systemd removes its scope once this process has left it.
        if self.scope {
            return Ok(());
        }
        let mut first_error = None;
        for dir in self.dirs.iter().rev() {
            if let Err(e) = rmdir_retrying(fs, &dir.path) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

fn rmdir_retrying(fs: &dyn CgroupFs, path: &Path) -> Result<(), CgroupError> {
    let mut attempts = 0;
    loop {
        match fs.rmdir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempts < RMDIR_ATTEMPTS => {
                attempts += 1;
                std::thread::sleep(RMDIR_PAUSE);
            }
            Err(source) => {
                return Err(CgroupError::Rmdir {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
}

/// A process held for `kill_all`.
enum Pin {
    /// A pidfd on it.
    Fd(OwnedFd),
    /// No pidfds on this kernel (before 5.3): signal by pid.
    Pid,
    /// It is gone.
    Gone,
}

fn pin(pid: i32) -> Pin {
    let Some(raw) = Pid::from_raw(pid) else {
        return Pin::Gone;
    };
    match rustix::process::pidfd_open(raw, PidfdFlags::empty()) {
        Ok(fd) => Pin::Fd(fd),
        Err(rustix::io::Errno::NOSYS) => Pin::Pid,
        Err(_) => Pin::Gone,
    }
}

impl Pin {
    fn kill(&self, pid: i32) {
        // Errors mean the process is already gone; the next round re-reads cgroup.procs.
        match self {
            Pin::Fd(fd) => {
                let _ = rustix::process::pidfd_send_signal(fd, Signal::KILL);
            }
            Pin::Pid => {
                if let Some(raw) = Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(raw, Signal::KILL);
                }
            }
            Pin::Gone => {}
        }
    }
}

/// The pids listed in `files` (deduplicated, sorted), without `me`.
fn read_pids(files: &[PathBuf], me: i32) -> Vec<i32> {
    let mut pids: Vec<i32> = files
        .iter()
        .filter_map(|f| fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
                .collect::<Vec<_>>()
        })
        .filter(|&p| p > 0 && p != me)
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// The value of `key` in a flat-keyed file (`oom_kill 3` lines).
fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Writes `value` to an existing cgroup file in one `write` (no `O_CREAT`: an absent file is
/// `ENOENT`, a controller that is not there).
fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    write_raw(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

fn write_raw(path: &Path, value: &str) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).truncate(true).open(path)?;
    file.write_all(value.as_bytes())
}

// ---------------------------------------------------------------------------------------------
// create

/// Where one group of controllers lives: a hierarchy's mount and this process's cgroup in it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placement {
    version: Version,
    /// The mount point on the host, e.g. `/sys/fs/cgroup/memory`.
    mount_point: PathBuf,
    /// This process's cgroup relative to the mount point (`""`: the mount point itself); `None`
    /// when `/proc/self/cgroup` has no line for it or it lies outside the mounted subtree.
    own: Option<String>,
    controllers: Vec<Controller>,
}

/// What one creation pass gathered.
#[derive(Debug, Default)]
struct Progress {
    made: Vec<SessionDir>,
    /// Per made directory (same index): the files written, `name=value`.
    written: Vec<Vec<String>>,
    /// What is missing and why.
    notes: Vec<String>,
    /// Some hierarchy had no directory writable by an unprivileged uid.
    not_delegated: bool,
    /// The controllers whose limit files were all written.
    satisfied: Vec<Controller>,
}

fn create_with(
    host: &CgroupHost,
    uid: u32,
    id: &str,
    limits: &CgroupLimits,
    fs: &dyn CgroupFs,
) -> Result<(Option<SessionCgroup>, CgroupOutcome), CgroupError> {
    let valid = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(CgroupError::InvalidId { id: id.to_string() });
    }
    let leaf = format!("corral-{id}");
    let mut wanted = vec![Controller::Memory, Controller::Pids];
    if limits.cpu_quota_us_per_period.is_some() {
        wanted.push(Controller::Cpu);
    }
    let mounts = parse_mountinfo(&host.mountinfo);
    let memberships = parse_proc_cgroup(&host.self_cgroup);
    let (placements, notes) = place(&mounts, &memberships, &wanted);
    let mut progress = Progress {
        notes,
        ..Progress::default()
    };
    let pure_v2 = placements.iter().all(|p| p.version == Version::V2);

    let maker = Maker {
        host,
        uid,
        leaf,
        limits,
        pure_v2,
        fs,
    };
    let made = maker
        .make_dirs(&placements, &mut progress)
        .and_then(|()| write_limits(limits, &mut progress));
    if let Err(e) = made {
        for dir in progress.made.iter().rev() {
            let _ = fs.rmdir(&dir.path);
        }
        return Err(e);
    }

    let requested: Vec<Controller> = [Controller::Memory, Controller::Pids, Controller::Cpu]
        .into_iter()
        .filter(|c| c.requested(limits))
        .collect();
    Ok(conclude(host, uid, &requested, progress))
}

/// What every directory creation needs to know.
struct Maker<'a> {
    host: &'a CgroupHost,
    /// Whose writability decides where the cgroup may go.
    uid: u32,
    /// `corral-<id>`.
    leaf: String,
    limits: &'a CgroupLimits,
    /// Every wanted controller lives in the cgroup2 hierarchy.
    pure_v2: bool,
    fs: &'a dyn CgroupFs,
}

impl Maker<'_> {
    /// Makes the session directory of each placement, where possible; pushes each into
    /// `progress.made` at once, so a later error removes it.
    fn make_dirs(&self, placements: &[Placement], progress: &mut Progress) -> Result<(), CgroupError> {
        for placement in placements {
            let dir = match placement.version {
                Version::V1 => self.make_v1(placement, progress)?,
                Version::V2 => self.make_v2(placement, progress)?,
            };
            if let Some(dir) = dir {
                progress.made.push(dir);
                progress.written.push(Vec::new());
            }
        }
        Ok(())
    }

    /// v1: the own cgroup, a delegated `corral-<uid>`, or (root) the hierarchy root.
    fn make_v1(
        &self,
        placement: &Placement,
        progress: &mut Progress,
    ) -> Result<Option<SessionDir>, CgroupError> {
        let (host, uid, leaf, fs) = (self.host, self.uid, self.leaf.as_str(), self.fs);
        let root = placement.mount_point.as_path();
        let mut candidates: Vec<(PathBuf, &str)> = Vec::new();
        if let Some(own) = &placement.own {
            candidates.push((under(root, own), "own cgroup"));
        }
        candidates.push((root.join(format!("corral-{uid}")), "delegated"));
        if uid == 0 {
            candidates.push((root.to_path_buf(), "hierarchy root"));
        }
        let mut why_not = Vec::new();
        let mut seen: Vec<PathBuf> = Vec::new();
        for (candidate, role) in candidates {
            if seen.contains(&candidate) {
                continue;
            }
            seen.push(candidate.clone());
            let real = host.real(&candidate);
            if !real.is_dir() {
                why_not.push(format!("{role} {} does not exist", candidate.display()));
                continue;
            }
            if !writable_by(&real, uid) {
                why_not.push(format!("{role} {} is not writable", candidate.display()));
                continue;
            }
            let path = real.join(leaf);
            match fs.mkdir(&path) {
                Ok(()) => {
                    return Ok(Some(SessionDir {
                        version: Version::V1,
                        controllers: placement.controllers.clone(),
                        path,
                    }))
                }
                Err(e) if refused(&e) => {
                    why_not.push(format!(
                        "mkdir(\"{}\"): {}",
                        candidate.join(leaf).display(),
                        errno_name(&e)
                    ));
                }
                Err(source) => return Err(CgroupError::Mkdir { path, source }),
            }
        }
        if uid != 0 {
            progress.not_delegated = true;
        }
        progress.notes.push(format!(
            "v1 {}: no cgroup writable by uid {uid} ({})",
            names(&placement.controllers),
            why_not.join("; ")
        ));
        Ok(None)
    }

    /// v2: a leaf below the own cgroup when it is delegated.
    fn make_v2(
        &self,
        placement: &Placement,
        progress: &mut Progress,
    ) -> Result<Option<SessionDir>, CgroupError> {
        let (host, uid, leaf, fs) = (self.host, self.uid, self.leaf.as_str(), self.fs);
        let (limits, pure_v2) = (self.limits, self.pure_v2);
        let label = format!("v2 {}", names(&placement.controllers));
        let Some(own) = &placement.own else {
            progress.notes.push(format!(
                "{label}: this process's cgroup is not below the cgroup2 mount {}",
                placement.mount_point.display()
            ));
            return Ok(None);
        };
        let parent = under(&placement.mount_point, own);
        let real = host.real(&parent);
        if !(real.is_dir() && writable_by(&real, uid) && writable_by(&real.join("cgroup.procs"), uid)) {
            if uid != 0 {
                progress.not_delegated = true;
            }
            progress.notes.push(format!(
                "{label}: own cgroup {} is not writable by uid {uid} (not delegated)",
                parent.display()
            ));
            return Ok(None);
        }
        let words = |file: &str| -> Vec<String> {
            fs::read_to_string(real.join(file))
                .map(|text| text.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        let available = words("cgroup.controllers");
        let enabled = words("cgroup.subtree_control");
        let mut usable = Vec::new();
        for &c in &placement.controllers {
            if available.iter().any(|a| a == c.name()) {
                usable.push(c);
            } else {
                progress.notes.push(format!(
                    "v2 {}: not available in {} (cgroup.controllers: {})",
                    c.name(),
                    parent.display(),
                    if available.is_empty() {
                        "empty".to_string()
                    } else {
                        available.join(" ")
                    }
                ));
            }
        }
        if usable.is_empty() && !pure_v2 {
            return Ok(None);
        }
        let is_enabled = |c: &Controller| enabled.iter().any(|e| e == c.name());
        let to_enable: Vec<Controller> = usable
            .iter()
            .copied()
            .filter(|c| c.requested(limits) && !is_enabled(c))
            .collect();
        let mut active: Vec<Controller> = usable.iter().copied().filter(is_enabled).collect();
        if !to_enable.is_empty() {
            // One write for all: the kernel applies it whole or not at all.
            let value = to_enable
                .iter()
                .map(|c| format!("+{}", c.name()))
                .collect::<Vec<_>>()
                .join(" ");
            match write_raw(&real.join("cgroup.subtree_control"), &value) {
                Ok(()) => active.extend(to_enable.iter().copied()),
                Err(e) => {
                    let why = if e.raw_os_error() == Some(libc::EBUSY) {
                        format!(
                            " (processes live in {}: cgroup v2 lets only a cgroup without processes \
                         enable controllers for its children)",
                            parent.display()
                        )
                    } else {
                        String::new()
                    };
                    progress.notes.push(format!(
                        "v2 {}: not enabled: write(\"{}\", \"{value}\"): {}{why}",
                        names(&to_enable),
                        parent.join("cgroup.subtree_control").display(),
                        errno_name(&e)
                    ));
                }
            }
        }
        active.retain(|c| placement.controllers.contains(c));
        let order = |c: &Controller| placement.controllers.iter().position(|p| p == c);
        active.sort_by_key(order);
        let path = real.join(leaf);
        match fs.mkdir(&path) {
            Ok(()) => Ok(Some(SessionDir {
                version: Version::V2,
                controllers: active,
                path,
            })),
            Err(e) if refused(&e) => {
                progress.notes.push(format!(
                    "{label}: mkdir(\"{}\"): {}",
                    parent.join(leaf).display(),
                    errno_name(&e)
                ));
                Ok(None)
            }
            Err(source) => Err(CgroupError::Mkdir { path, source }),
        }
    }
}

/// `mkdir` errors that mean "not here" rather than "something is broken".
fn refused(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EACCES | libc::EPERM | libc::EROFS | libc::EAGAIN | libc::ENOSPC)
    )
}

/// Whether `uid` may write `path`, by owner and mode bits (root may write anything that exists).
fn writable_by(path: &Path, uid: u32) -> bool {
    fs::metadata(path)
        .is_ok_and(|m| uid == 0 || (m.uid() == uid && m.mode() & 0o200 != 0) || m.mode() & 0o002 != 0)
}

fn under(base: &Path, relative: &str) -> PathBuf {
    if relative.is_empty() {
        base.to_path_buf()
    } else {
        base.join(relative)
    }
}

/// One limit file to write, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LimitFile {
    name: &'static str,
    value: String,
    /// What to report when the file is absent; `None`: the file is the limit itself, so the
    /// controller is not there (and the files after it are skipped).
    absent_note: Option<&'static str>,
}

const MEMSW_ABSENT: &str = "memory: no swap cap: memory.memsw.limit_in_bytes is absent \
     (swap accounting is off; boot with swapaccount=1)";
const SWAP_MAX_ABSENT: &str = "memory: no swap cap: memory.swap.max is absent \
     (swap accounting is off; boot with swapaccount=1)";

/// The files that enforce `controller`'s part of `limits`, in the order they must be written.
fn limit_files(controller: Controller, version: Version, limits: &CgroupLimits) -> Vec<LimitFile> {
    let file = |name, value: String| LimitFile {
        name,
        value,
        absent_note: None,
    };
    match (controller, version) {
        (Controller::Memory, _) => {
            let Some(bytes) = limits.memory_bytes else {
                return Vec::new();
            };
            let (limit, swap, swap_value, note) = match version {
                Version::V1 => (
                    "memory.limit_in_bytes",
                    "memory.memsw.limit_in_bytes",
                    bytes.to_string(),
                    MEMSW_ABSENT,
                ),
                Version::V2 => ("memory.max", "memory.swap.max", "0".to_string(), SWAP_MAX_ABSENT),
            };
            // v1: memsw counts memory + swap and may not be set below the memory limit, so the
            // memory limit goes first (memory.txt, "memsw").
            vec![
                file(limit, bytes.to_string()),
                LimitFile {
                    name: swap,
                    value: swap_value,
                    absent_note: Some(note),
                },
            ]
        }
        (Controller::Pids, _) => limits
            .pids
            .map(|max| vec![file("pids.max", max.to_string())])
            .unwrap_or_default(),
        (Controller::Cpu, Version::V1) => limits
            .cpu_quota_us_per_period
            .map(|(quota, period)| {
                // The period first: the kernel checks the quota against it.
                vec![
                    file("cpu.cfs_period_us", period.to_string()),
                    file("cpu.cfs_quota_us", quota.to_string()),
                ]
            })
            .unwrap_or_default(),
        (Controller::Cpu, Version::V2) => limits
            .cpu_quota_us_per_period
            .map(|(quota, period)| vec![file("cpu.max", format!("{quota} {period}"))])
            .unwrap_or_default(),
    }
}

/// Writes each requested limit into the directory whose controller enforces it, and records
/// which controllers got all their files. An absent file is a note, any other failure an error.
fn write_limits(limits: &CgroupLimits, progress: &mut Progress) -> Result<(), CgroupError> {
    for controller in [Controller::Memory, Controller::Pids, Controller::Cpu] {
        let Some(index) = progress
            .made
            .iter()
            .position(|d| d.controllers.contains(&controller))
        else {
            continue;
        };
        let Some((version, path)) = progress.made.get(index).map(|d| (d.version, d.path.clone())) else {
            continue;
        };
        let files = limit_files(controller, version, limits);
        if files.is_empty() {
            continue;
        }
        let mut complete = true;
        for file in files {
            let target = path.join(file.name);
            match write_raw(&target, &file.value) {
                Ok(()) => {
                    if let Some(written) = progress.written.get_mut(index) {
                        written.push(format!("{}={}", file.name, file.value));
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    complete = false;
                    match file.absent_note {
                        Some(note) => progress.notes.push(note.to_string()),
                        None => {
                            progress.notes.push(format!(
                                "{}: {} is absent (controller not enabled)",
                                controller.name(),
                                file.name
                            ));
                            break;
                        }
                    }
                }
                Err(source) => {
                    return Err(CgroupError::Write {
                        path: target,
                        value: file.value,
                        source,
                    })
                }
            }
        }
        if complete {
            progress.satisfied.push(controller);
        }
    }
    Ok(())
}

/// The outcome, from what was made and written.
fn conclude(
    host: &CgroupHost,
    uid: u32,
    requested: &[Controller],
    progress: Progress,
) -> (Option<SessionCgroup>, CgroupOutcome) {
    let mut parts: Vec<String> = Vec::new();
    for (dir, written) in progress.made.iter().zip(&progress.written) {
        let shown = dir.path.strip_prefix(&host.root_prefix).map_or_else(
            |_| dir.path.display().to_string(),
            |p| format!("/{}", p.display()),
        );
        let label = if dir.controllers.is_empty() {
            format!("{} (no controllers)", dir.version)
        } else {
            format!("{} {}", dir.version, names(&dir.controllers))
        };
        if written.is_empty() {
            parts.push(format!("{label}: {shown}"));
        } else {
            parts.push(format!("{label}: {shown} ({})", written.join(", ")));
        }
    }
    let all_written = requested.iter().all(|c| progress.satisfied.contains(c));
    let achieved = if progress.made.is_empty() {
        Achieved::None
    } else if all_written {
        Achieved::Full
    } else {
        Achieved::Partial
    };
    if progress.made.is_empty() {
        parts.push("no cgroup".to_string());
    }
    parts.extend(progress.notes);
    if progress.not_delegated || (progress.made.is_empty() && uid != 0) {
        parts.push(SETUP_HINT.to_string());
    } else if progress.made.is_empty() {
        parts.push(MOUNT_HINT.to_string());
    }
    let outcome = CgroupOutcome {
        achieved,
        detail: parts.join("; "),
    };
    let cgroup = (!progress.made.is_empty()).then_some(SessionCgroup {
        dirs: progress.made,
        scope: false,
    });
    (cgroup, outcome)
}

/// Groups the `wanted` controllers by the hierarchy that carries them: a v1 mount listing the
/// controller, else the cgroup2 mount. Returns the placements and a note per controller that no
/// hierarchy carries.
fn place(
    mounts: &[CgroupMount],
    memberships: &[Membership],
    wanted: &[Controller],
) -> (Vec<Placement>, Vec<String>) {
    let mut placements: Vec<Placement> = Vec::new();
    let mut notes = Vec::new();
    for &c in wanted {
        let v1_member = memberships
            .iter()
            .find(|m| m.hierarchy_id != 0 && m.controllers.iter().any(|x| x == c.name()));
        let v1_mounts: Vec<&CgroupMount> = mounts
            .iter()
            .filter(|m| m.version == Version::V1 && m.super_options.iter().any(|o| o == c.name()))
            .collect();
        let v2_member = memberships
            .iter()
            .find(|m| m.hierarchy_id == 0 && m.controllers.is_empty());
        let v2_mounts: Vec<&CgroupMount> = mounts.iter().filter(|m| m.version == Version::V2).collect();
        let (version, candidates, member) = if v1_mounts.is_empty() {
            (Version::V2, v2_mounts, v2_member)
        } else {
            (Version::V1, v1_mounts, v1_member)
        };
        // Prefer a mount whose subtree holds this process's cgroup.
        let chosen = candidates
            .iter()
            .find_map(|m| Some((*m, relative(&m.root, &member?.path)?)))
            .map(|(m, own)| (m, Some(own)))
            .or_else(|| candidates.first().map(|m| (*m, None)));
        let Some((mount, own)) = chosen else {
            notes.push(format!(
                "{}: no cgroup hierarchy on this host has the {0} controller",
                c.name()
            ));
            continue;
        };
        let mount_point = PathBuf::from(&mount.mount_point);
        match placements
            .iter_mut()
            .find(|p| p.version == version && p.mount_point == mount_point)
        {
            Some(p) => p.controllers.push(c),
            None => placements.push(Placement {
                version,
                mount_point,
                own,
                controllers: vec![c],
            }),
        }
    }
    (placements, notes)
}

/// `path` relative to a mount's `root` (no leading `/`), `None` when it lies outside.
fn relative(root: &str, path: &str) -> Option<String> {
    let rest = if root == "/" {
        path
    } else {
        let rest = path.strip_prefix(root)?;
        if !rest.is_empty() && !rest.starts_with('/') {
            return None;
        }
        rest
    };
    Some(rest.trim_start_matches('/').to_string())
}

// ---------------------------------------------------------------------------------------------
// parsing

/// One line of `/proc/self/cgroup`: `hierarchy-ID:controller-list:cgroup-path` (cgroups(7));
/// the v2 line is `0::/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Membership {
    hierarchy_id: u32,
    controllers: Vec<String>,
    path: String,
}

/// Parses `/proc/<pid>/cgroup`; malformed lines are skipped.
fn parse_proc_cgroup(text: &str) -> Vec<Membership> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let hierarchy_id = parts.next()?.parse().ok()?;
            let controllers = parts
                .next()?
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            let path = parts.next()?.to_string();
            Some(Membership {
                hierarchy_id,
                controllers,
                path,
            })
        })
        .collect()
}

/// The symbolic name of an OS error (strace style), `errno N` for the rare ones.
fn errno_name(error: &io::Error) -> String {
    crate::ll::io_errno_name(error)
}

/// Creates and removes a throwaway session cgroup with a memory and a pids limit, as a launch
/// would, to tell `corral check` what a launch would get.
pub fn try_session_cgroup() -> (corral_core::layer::Achieved, String) {
    let host = match CgroupHost::current() {
        Ok(h) => h,
        Err(e) => {
            return (
                corral_core::layer::Achieved::None,
                format!("cannot read /proc/self/cgroup: {e}"),
            )
        }
    };
    let limits = CgroupLimits {
        memory_bytes: Some(1 << 30),
        pids: Some(1024),
        cpu_quota_us_per_period: None,
    };
    let id = format!("check-{}", std::process::id());
    match SessionCgroup::create(&host, rustix::process::geteuid().as_raw(), &id, &limits) {
        Ok((Some(cg), outcome)) => {
            let _ = cg.remove();
            (outcome.achieved, outcome.detail)
        }
        Ok((None, outcome)) => (outcome.achieved, outcome.detail),
        Err(e) => (corral_core::layer::Achieved::None, e.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;

    /// A hybrid host like this machine, without a cpu hierarchy: v1 memory and pids, a named
    /// systemd hierarchy, cgroup2 with only hugetlb.
    const MOUNTINFO_HYBRID: &str = "\
22 1 8:1 / / rw,relatime - ext4 /dev/root rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime shared:7 - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    /// This machine's `/proc/self/cgroup` (as root): memory in a sub-cgroup, the rest at the root.
    const SELF_HYBRID: &str = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/462f\n0::/\n";
    /// A pure cgroup2 host.
    const MOUNTINFO_V2: &str = "\
22 1 8:1 / / rw,relatime - ext4 /dev/root rw
31 23 0:28 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
";
    const SELF_V2: &str = "0::/user.slice/user-1000.slice/session-2.scope\n";
    const MIB_64: u64 = 64 << 20;

    const V1_MEMORY_FILES: &[&str] = &[
        "cgroup.procs",
        "memory.limit_in_bytes",
        "memory.memsw.limit_in_bytes",
        "memory.max_usage_in_bytes",
        "memory.oom_control",
    ];
    const V1_MEMORY_FILES_NO_SWAP: &[&str] = &[
        "cgroup.procs",
        "memory.limit_in_bytes",
        "memory.max_usage_in_bytes",
        "memory.oom_control",
    ];
    const V1_PIDS_FILES: &[&str] = &["cgroup.procs", "pids.events", "pids.max"];
    const V1_CPU_FILES: &[&str] = &["cgroup.procs", "cpu.cfs_period_us", "cpu.cfs_quota_us"];
    const V2_FILES: &[&str] = &[
        "cgroup.kill",
        "cgroup.procs",
        "cpu.max",
        "memory.events",
        "memory.max",
        "memory.peak",
        "memory.swap.max",
        "pids.events",
        "pids.max",
    ];

    /// Fake kernfs: a directory made below a hierarchy gets that hierarchy's interface files,
    /// empty; `rmdir` removes them with it.
    struct FakeFs {
        templates: Vec<(PathBuf, &'static [&'static str])>,
    }

    impl CgroupFs for FakeFs {
        fn mkdir(&self, path: &Path) -> io::Result<()> {
            fs::create_dir(path)?;
            let files = self
                .templates
                .iter()
                .find(|(root, _)| path.starts_with(root))
                .map_or(&[][..], |(_, files)| *files);
            for file in files {
                match file.strip_suffix('/') {
                    // A directory where kernfs would have a file: writes to it fail (EISDIR).
                    Some(dir) => fs::create_dir(path.join(dir))?,
                    None => fs::write(path.join(file), "")?,
                }
            }
            Ok(())
        }

        fn rmdir(&self, path: &Path) -> io::Result<()> {
            fs::remove_dir_all(path)
        }
    }

    /// A fake cgroup tree in a temporary directory. Every directory starts unwritable for the
    /// test user ([`user`]); [`Fixture::give`] hands one over.
    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new(dirs: &[&str], files: &[(&str, &str)]) -> Fixture {
            let fixture = Fixture {
                dir: tempfile::tempdir().unwrap(),
            };
            for dir in dirs {
                fs::create_dir_all(fixture.path(dir)).unwrap();
            }
            for (file, content) in files {
                fs::write(fixture.path(file), content).unwrap();
            }
            for dir in dirs {
                // Lock every level below the temporary directory, parents included.
                let mut p = fixture.path(dir);
                while p != fixture.root() {
                    fs::set_permissions(&p, fs::Permissions::from_mode(0o555)).unwrap();
                    p.pop();
                }
            }
            fixture
        }

        fn root(&self) -> &Path {
            self.dir.path()
        }

        fn path(&self, relative: &str) -> PathBuf {
            self.root().join(relative)
        }

        /// Makes `relative` (a directory or a file) writable by [`user`].
        fn give(&self, relative: &str) {
            let path = self.path(relative);
            let mode = if path.is_dir() { 0o755 } else { 0o644 };
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            if rustix::process::geteuid().is_root() {
                std::os::unix::fs::chown(&path, Some(user()), None).unwrap();
            }
        }

        fn host(&self, mountinfo: &str, self_cgroup: &str) -> CgroupHost {
            CgroupHost {
                mountinfo: mountinfo.to_string(),
                self_cgroup: self_cgroup.to_string(),
                root_prefix: self.root().to_path_buf(),
            }
        }

        fn fake_fs(&self, templates: &[(&str, &'static [&'static str])]) -> FakeFs {
            FakeFs {
                templates: templates
                    .iter()
                    .map(|(dir, files)| (self.path(dir), *files))
                    .collect(),
            }
        }

        /// Every directory (`path/`) and file (`path` → content) below the root.
        fn tree(&self) -> BTreeMap<String, String> {
            fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
                for entry in fs::read_dir(dir).unwrap() {
                    let path = entry.unwrap().path();
                    let name = path.strip_prefix(root).unwrap().display().to_string();
                    if path.is_dir() {
                        out.insert(format!("{name}/"), String::new());
                        walk(root, &path, out);
                    } else {
                        out.insert(name, fs::read_to_string(&path).unwrap());
                    }
                }
            }
            let mut out = BTreeMap::new();
            walk(self.root(), self.root(), &mut out);
            out
        }
    }

    impl Fixture {
        /// Makes every directory writable by its owner again (for tests that act as root, run
        /// by whoever runs the tests).
        fn unlock_all(&self) {
            fn unlock(dir: &Path) {
                let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
                for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
                    if entry.path().is_dir() {
                        unlock(&entry.path());
                    }
                }
            }
            unlock(self.root());
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            // So an unprivileged test run can delete the tree.
            self.unlock_all();
        }
    }

    /// The unprivileged uid the tests act as: this one, or 1000 when the tests run as root.
    fn user() -> u32 {
        match rustix::process::geteuid().as_raw() {
            0 => 1000,
            uid => uid,
        }
    }

    /// `base` plus `entries`.
    fn with(base: &BTreeMap<String, String>, entries: &[(String, &str)]) -> BTreeMap<String, String> {
        let mut out = base.clone();
        out.extend(entries.iter().map(|(k, v)| (k.clone(), v.to_string())));
        out
    }

    /// What a session cgroup with memory (64 MiB, swap included) and pids (20) limits leaves in
    /// the fake v1 tree.
    fn v1_memory_and_pids_files(mem: &str, pids: &str) -> Vec<(String, &'static str)> {
        vec![
            (format!("{mem}/"), ""),
            (format!("{mem}/cgroup.procs"), ""),
            (format!("{mem}/memory.limit_in_bytes"), "67108864"),
            (format!("{mem}/memory.memsw.limit_in_bytes"), "67108864"),
            (format!("{mem}/memory.max_usage_in_bytes"), ""),
            (format!("{mem}/memory.oom_control"), ""),
            (format!("{pids}/"), ""),
            (format!("{pids}/cgroup.procs"), ""),
            (format!("{pids}/pids.events"), ""),
            (format!("{pids}/pids.max"), "20"),
        ]
    }

    fn memory_and_pids() -> CgroupLimits {
        CgroupLimits {
            memory_bytes: Some(MIB_64),
            pids: Some(20),
            cpu_quota_us_per_period: None,
        }
    }

    /// The hybrid host, acted on as root (uid 0).
    fn hybrid_fixture() -> Fixture {
        let fx = Fixture::new(
            &[
                "sys/fs/cgroup/memory/process_api/462f",
                "sys/fs/cgroup/pids",
                "sys/fs/cgroup/unified",
            ],
            &[
                ("sys/fs/cgroup/unified/cgroup.controllers", "hugetlb\n"),
                ("sys/fs/cgroup/unified/cgroup.subtree_control", ""),
                ("sys/fs/cgroup/unified/cgroup.procs", ""),
            ],
        );
        fx.unlock_all();
        fx
    }

    // -- parsing --------------------------------------------------------------------------

    #[test]
    fn parses_proc_self_cgroup() {
        let m = |id: u32, controllers: &[&str], path: &str| Membership {
            hierarchy_id: id,
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
            path: path.to_string(),
        };
        assert_eq!(
            parse_proc_cgroup(
                "9:name=systemd:/\n2:cpu,cpuacct:/a:b\n4:memory:/process_api/462f\n0::/\nbad\n"
            ),
            vec![
                m(9, &["name=systemd"], "/"),
                m(2, &["cpu", "cpuacct"], "/a:b"),
                m(4, &["memory"], "/process_api/462f"),
                m(0, &[], "/"),
            ]
        );
    }

    #[test]
    fn parses_cgroup_mounts_from_mountinfo() {
        let text = format!(
            "{MOUNTINFO_HYBRID}42 31 0:39 /sub /mnt/cg\\040space rw shared:9 master:2 - cgroup cgroup rw,cpu,cpuacct\n"
        );
        let m = |version, root: &str, mount_point: &str, opts: &[&str]| CgroupMount {
            version,
            root: root.to_string(),
            mount_point: mount_point.to_string(),
            super_options: opts.iter().map(|o| o.to_string()).collect(),
        };
        assert_eq!(
            parse_mountinfo(&text),
            vec![
                m(Version::V1, "/", "/sys/fs/cgroup/memory", &["rw", "memory"]),
                m(Version::V1, "/", "/sys/fs/cgroup/pids", &["rw", "pids"]),
                m(
                    Version::V1,
                    "/",
                    "/sys/fs/cgroup/systemd",
                    &["rw", "name=systemd"]
                ),
                m(Version::V2, "/", "/sys/fs/cgroup/unified", &["rw"]),
                m(Version::V1, "/sub", "/mnt/cg space", &["rw", "cpu", "cpuacct"]),
            ]
        );
    }

    #[test]
    fn places_controllers_by_hierarchy() {
        let mounts = parse_mountinfo(
            "1 0 0:1 /sub /cg/cpu rw - cgroup cgroup rw,cpu,cpuacct\n2 0 0:2 / /cg/unified rw - cgroup2 cgroup2 rw\n",
        );
        let memberships = parse_proc_cgroup("3:cpu,cpuacct:/sub/me\n0::/x\n");
        let (placements, notes) = place(
            &mounts,
            &memberships,
            &[Controller::Memory, Controller::Pids, Controller::Cpu],
        );
        assert_eq!(
            placements,
            vec![
                Placement {
                    version: Version::V2,
                    mount_point: PathBuf::from("/cg/unified"),
                    own: Some("x".to_string()),
                    controllers: vec![Controller::Memory, Controller::Pids],
                },
                Placement {
                    version: Version::V1,
                    mount_point: PathBuf::from("/cg/cpu"),
                    own: Some("me".to_string()),
                    controllers: vec![Controller::Cpu],
                },
            ]
        );
        assert_eq!(notes, Vec::<String>::new());
        let (placements, notes) = place(&[], &memberships, &[Controller::Memory]);
        assert_eq!(placements, vec![]);
        assert_eq!(
            notes,
            vec!["memory: no cgroup hierarchy on this host has the memory controller"]
        );
    }

    // -- v1 -------------------------------------------------------------------------------

    #[test]
    fn v1_as_root_in_own_memory_cgroup_and_pids_root() {
        let fx = hybrid_fixture();
        let before = fx.tree();
        let fake = fx.fake_fs(&[
            ("sys/fs/cgroup/memory", V1_MEMORY_FILES),
            ("sys/fs/cgroup/pids", V1_PIDS_FILES),
        ]);
        let (cgroup, outcome) = create_with(
            &fx.host(MOUNTINFO_HYBRID, SELF_HYBRID),
            0,
            "ab12",
            &memory_and_pids(),
            &fake,
        )
        .unwrap();
        assert_eq!(
            outcome,
            CgroupOutcome {
                achieved: Achieved::Full,
                detail: "v1 memory: /sys/fs/cgroup/memory/process_api/462f/corral-ab12 \
                         (memory.limit_in_bytes=67108864, memory.memsw.limit_in_bytes=67108864); \
                         v1 pids: /sys/fs/cgroup/pids/corral-ab12 (pids.max=20)"
                    .to_string(),
            }
        );
        let mem = "sys/fs/cgroup/memory/process_api/462f/corral-ab12";
        let pids = "sys/fs/cgroup/pids/corral-ab12";
        let expected = with(&before, &v1_memory_and_pids_files(mem, pids));
        assert_eq!(fx.tree(), expected);

        let cgroup = cgroup.unwrap();
        cgroup.attach(4242).unwrap();
        fs::write(
            fx.path(&format!("{mem}/memory.oom_control")),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        )
        .unwrap();
        fs::write(fx.path(&format!("{mem}/memory.max_usage_in_bytes")), "777\n").unwrap();
        fs::write(fx.path(&format!("{pids}/pids.events")), "max 9\n").unwrap();
        assert_eq!(
            cgroup.events(),
            CgroupEvents {
                oom_kills: 3,
                pids_max_hits: 9,
                memory_peak: Some(777),
            }
        );
        assert_eq!(
            fx.tree(),
            with(
                &expected,
                &[
                    (format!("{mem}/cgroup.procs"), "4242"),
                    (format!("{pids}/cgroup.procs"), "4242"),
                    (
                        format!("{mem}/memory.oom_control"),
                        "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"
                    ),
                    (format!("{mem}/memory.max_usage_in_bytes"), "777\n"),
                    (format!("{pids}/pids.events"), "max 9\n"),
                ]
            )
        );
        cgroup.remove_with(&fake).unwrap();
        assert_eq!(fx.tree(), before);
    }

    #[test]
    fn v1_cpu_quota_without_a_cpu_hierarchy_is_partial() {
        let fx = hybrid_fixture();
        let before = fx.tree();
        let fake = fx.fake_fs(&[
            ("sys/fs/cgroup/memory", V1_MEMORY_FILES),
            ("sys/fs/cgroup/pids", V1_PIDS_FILES),
        ]);
        let limits = CgroupLimits {
            cpu_quota_us_per_period: Some((50_000, 100_000)),
            ..memory_and_pids()
        };
        let (cgroup, outcome) =
            create_with(&fx.host(MOUNTINFO_HYBRID, SELF_HYBRID), 0, "ab12", &limits, &fake).unwrap();
        assert_eq!(
            outcome,
            CgroupOutcome {
                achieved: Achieved::Partial,
                detail: "v1 memory: /sys/fs/cgroup/memory/process_api/462f/corral-ab12 \
                         (memory.limit_in_bytes=67108864, memory.memsw.limit_in_bytes=67108864); \
                         v1 pids: /sys/fs/cgroup/pids/corral-ab12 (pids.max=20); \
                         v2 cpu: not available in /sys/fs/cgroup/unified (cgroup.controllers: hugetlb)"
                    .to_string(),
            }
        );
        // Nothing in the unified hierarchy: a leaf there would enforce nothing.
        let created: Vec<String> = fx
            .tree()
            .into_keys()
            .filter(|k| !before.contains_key(k))
            .collect();
        assert!(created.iter().all(|k| !k.contains("unified")), "{created:?}");
        cgroup.unwrap().remove_with(&fake).unwrap();
        assert_eq!(fx.tree(), before);
    }

    #[test]
    fn v1_without_swap_accounting_is_partial_and_says_so() {
        let fx = hybrid_fixture();
        let before = fx.tree();
        let fake = fx.fake_fs(&[
            ("sys/fs/cgroup/memory", V1_MEMORY_FILES_NO_SWAP),
            ("sys/fs/cgroup/pids", V1_PIDS_FILES),
        ]);
        let (_cgroup, outcome) = create_with(
            &fx.host(MOUNTINFO_HYBRID, SELF_HYBRID),
            0,
            "ab12",
            &memory_and_pids(),
            &fake,
        )
        .unwrap();
        assert_eq!(
            outcome,
            CgroupOutcome {
                achieved: Achieved::Partial,
                detail: "v1 memory: /sys/fs/cgroup/memory/process_api/462f/corral-ab12 \
                         (memory.limit_in_bytes=67108864); \
                         v1 pids: /sys/fs/cgroup/pids/corral-ab12 (pids.max=20); \
                         memory: no swap cap: memory.memsw.limit_in_bytes is absent \
                         (swap accounting is off; boot with swapaccount=1)"
                    .to_string(),
            }
        );
        let mem = "sys/fs/cgroup/memory/process_api/462f/corral-ab12";
        let pids = "sys/fs/cgroup/pids/corral-ab12";
        assert_eq!(
            fx.tree(),
            with(
                &before,
                &[
                    (format!("{mem}/"), ""),
                    (format!("{mem}/cgroup.procs"), ""),
                    (format!("{mem}/memory.limit_in_bytes"), "67108864"),
                    (format!("{mem}/memory.max_usage_in_bytes"), ""),
                    (format!("{mem}/memory.oom_control"), ""),
                    (format!("{pids}/"), ""),
                    (format!("{pids}/cgroup.procs"), ""),
                    (format!("{pids}/pids.events"), ""),
                    (format!("{pids}/pids.max"), "20"),
                ]
            )
        );
    }

    #[test]
    fn a_systemd_scope_with_the_limits_on_it_is_the_session_cgroup() {
        let scope = "sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/corral-ab12.scope";
        let file = |f: &str| format!("{scope}/{f}");
        let limits = memory_and_pids();
        let fx = Fixture::new(
            &[scope],
            &[
                (&file("memory.max"), "67108864\n"),
                (&file("memory.swap.max"), "0\n"),
                (&file("pids.max"), "20\n"),
                (&file("cgroup.procs"), ""),
            ],
        );
        let own = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/corral-ab12.scope\n";
        let host = fx.host(MOUNTINFO_V2, own);
        let (cg, outcome) = SessionCgroup::systemd_scope(&host, "corral-ab12.scope", &limits).unwrap();
        assert_eq!(outcome.achieved, Achieved::Full, "{}", outcome.detail);
        assert_eq!(
            outcome.detail,
            format!(
                "v2 systemd scope {} (memory.max=67108864, pids.max=20, memory.swap.max=0)",
                fx.path(scope).display()
            )
        );
        // Never removed by corral: systemd removes its scope.
        let before = fx.tree();
        cg.remove().unwrap();
        assert_eq!(fx.tree(), before);
        // Another unit's scope, or the user's session: not ours.
        assert!(SessionCgroup::systemd_scope(&host, "corral-ffff.scope", &limits).is_none());
        let session = fx.host(MOUNTINFO_V2, SELF_V2);
        assert!(SessionCgroup::systemd_scope(&session, "corral-ab12.scope", &limits).is_none());
        // A limit systemd did not set there: partial, and said.
        let more = CgroupLimits {
            pids: Some(21),
            ..limits
        };
        let (_, outcome) = SessionCgroup::systemd_scope(&host, "corral-ab12.scope", &more).unwrap();
        assert_eq!(outcome.achieved, Achieved::Partial);
        assert!(outcome
            .detail
            .ends_with("; not every limit of the plan is set there"));
    }

    #[test]
    fn v1_user_uses_the_delegated_corral_uid_dir() {
        let uid = user();
        let delegated_mem = format!("sys/fs/cgroup/memory/corral-{uid}");
        let delegated_pids = format!("sys/fs/cgroup/pids/corral-{uid}");
        let fx = Fixture::new(
            &[
                "sys/fs/cgroup/memory/user.slice",
                "sys/fs/cgroup/pids/user.slice",
                &delegated_mem,
                &delegated_pids,
            ],
            &[],
        );
        fx.give(&delegated_mem);
        fx.give(&delegated_pids);
        let before = fx.tree();
        let fake = fx.fake_fs(&[
            ("sys/fs/cgroup/memory", V1_MEMORY_FILES),
            ("sys/fs/cgroup/pids", V1_PIDS_FILES),
        ]);
        let host = fx.host(
            MOUNTINFO_HYBRID,
            "8:pids:/user.slice\n4:memory:/user.slice\n0::/user.slice\n",
        );
        let (cgroup, outcome) = create_with(&host, uid, "ab12", &memory_and_pids(), &fake).unwrap();
        assert_eq!(
            outcome,
            CgroupOutcome {
                achieved: Achieved::Full,
                detail: format!(
                    "v1 memory: /{delegated_mem}/corral-ab12 \
                     (memory.limit_in_bytes=67108864, memory.memsw.limit_in_bytes=67108864); \
                     v1 pids: /{delegated_pids}/corral-ab12 (pids.max=20)"
                ),
            }
        );
        let mem = format!("{delegated_mem}/corral-ab12");
        let pids = format!("{delegated_pids}/corral-ab12");
        assert_eq!(fx.tree(), with(&before, &v1_memory_and_pids_files(&mem, &pids)));
        cgroup.unwrap().remove_with(&fake).unwrap();
        assert_eq!(fx.tree(), before);
    }

    #[test]
    fn v1_user_uses_its_own_writable_cgroups_including_cpu() {
        let uid = user();
        let fx = Fixture::new(
            &[
                "sys/fs/cgroup/memory/user/u",
                "sys/fs/cgroup/pids/user/u",
                "sys/fs/cgroup/cpu,cpuacct/user/u",
            ],
            &[],
        );
        for dir in ["memory", "pids", "cpu,cpuacct"] {
            fx.give(&format!("sys/fs/cgroup/{dir}/user/u"));
        }
        let before = fx.tree();
        let fake = fx.fake_fs(&[
            ("sys/fs/cgroup/memory", V1_MEMORY_FILES),
            ("sys/fs/cgroup/pids", V1_PIDS_FILES),
            ("sys/fs/cgroup/cpu,cpuacct", V1_CPU_FILES),
        ]);
        let mountinfo = format!(
            "{MOUNTINFO_HYBRID}32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
        );
        let host = fx.host(
            &mountinfo,
            "8:pids:/user/u\n4:memory:/user/u\n2:cpu,cpuacct:/user/u\n0::/user/u\n",
        );
        let limits = CgroupLimits {
            cpu_quota_us_per_period: Some((50_000, 100_000)),
            ..memory_and_pids()
        };
        let (cgroup, outcome) = create_with(&host, uid, "ab12", &limits, &fake).unwrap();
        assert_eq!(
            outcome,
            CgroupOutcome {
                achieved: Achieved::Full,
                detail: "v1 memory: /sys/fs/cgroup/memory/user/u/corral-ab12 \
                         (memory.limit_in_bytes=67108864, memory.memsw.limit_in_bytes=67108864); \
                         v1 pids: /sys/fs/cgroup/pids/user/u/corral-ab12 (pids.max=20); \
                         v1 cpu: /sys/fs/cgroup/cpu,cpuacct/user/u/corral-ab12 \
                         (cpu.cfs_period_us=100000, cpu.cfs_quota_us=50000)"
                    .to_string(),
            }
        );
        let mem = "sys/fs/cgroup/memory/user/u/corral-ab12";
        let pids = "sys/fs/cgroup/pids/user/u/corral-ab12";
        let cpu = "sys/fs/cgroup/cpu,cpuacct/user/u/corral-ab12";
        let mut files = v1_memory_and_pids_files(mem, pids);
        files.extend([
            (format!("{cpu}/"), ""),
            (format!("{cpu}/cgroup.procs"), ""),
            (format!("{cpu}/cpu.cfs_period_us"), "100000"),
            (format!("{cpu}/cpu.cfs_quota_us"), "50000"),
        ]);
        assert_eq!(fx.tree(), with(&before, &files));
        cgroup.unwrap().remove_with(&fake).unwrap();
        assert_eq!(fx.tree(), before);
    }

    #[test]
    fn v1_user_without_delegation_gets_none_and_the_setup_hint() {
        let uid = user();
        let fx = Fixture::new(
            &["sys/fs/cgroup/memory/user.slice", "sys/fs/cgroup/pids/user.slice"],
            &[],
        );
        let before = fx.tree();
        let fake = fx.fake_fs(&[]);
        let host = fx.host(
            MOUNTINFO_HYBRID,
            "8:pids:/user.slice\n4:memory:/user.slice\n0::/user.slice\n",
        );
        let (cgroup, outcome) = create_with(&host, uid, "ab12", &memory_and_pids(), &fake).unwrap();
        assert!(cgroup.is_none());
        assert_eq!(
            outcome,
            CgroupOutcome {
                achieved: Achieved::None,
                detail: format!(
                    "no cgroup; \
                     v1 memory: no cgroup writable by uid {uid} (own cgroup /sys/fs/cgroup/memory/user.slice \
                     is not writable; delegated /sys/fs/cgroup/memory/corral-{uid} does not exist); \
                     v1 pids: no cgroup writable by uid {uid} (own cgroup /sys/fs/cgroup/pids/user.slice \
                     is not writable; delegated /sys/fs/cgroup/pids/corral-{uid} does not exist); \
                     fix: run `sudo corral setup` to delegate a cgroup to this user"
                ),
            }
        );
        assert_eq!(fx.tree(), before);
    }

    #[test]
    fn unexpected_mkdir_error_removes_what_was_made() {
        let fx = hybrid_fixture();
        // A leftover with the same name: EEXIST is not a permission problem.
        fs::create_dir(fx.path("sys/fs/cgroup/pids/corral-ab12")).unwrap();
        let before = fx.tree();
        let fake = fx.fake_fs(&[
            ("sys/fs/cgroup/memory", V1_MEMORY_FILES),
            ("sys/fs/cgroup/pids", V1_PIDS_FILES),
        ]);
        let error = create_with(
            &fx.host(MOUNTINFO_HYBRID, SELF_HYBRID),
            0,
            "ab12",
            &memory_and_pids(),
            &fake,
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "mkdir(\"{}/sys/fs/cgroup/pids/corral-ab12\"): EEXIST",
                fx.root().display()
            )
        );
        assert_eq!(fx.tree(), before);
    }

    #[test]
    fn unexpected_write_error_removes_what_was_made() {
        let fx = hybrid_fixture();
        let before = fx.tree();
        let fake = fx.fake_fs(&[
            (
                "sys/fs/cgroup/memory",
                &["cgroup.procs", "memory.limit_in_bytes/"],
            ),
            ("sys/fs/cgroup/pids", V1_PIDS_FILES),
        ]);
        let error = create_with(
            &fx.host(MOUNTINFO_HYBRID, SELF_HYBRID),
            0,
            "ab12",
            &memory_and_pids(),
            &fake,
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "write(\"{}/sys/fs/cgroup/memory/process_api/462f/corral-ab12/memory.limit_in_bytes\", \
                 \"67108864\"): EISDIR",
                fx.root().display()
            )
        );
        assert_eq!(fx.tree(), before);
    }

    #[test]
    fn rejects_ids_that_are_not_plain_names() {
        let fx = hybrid_fixture();
        let fake = fx.fake_fs(&[]);
        for id in ["", "../x", "a/b", ".", "a b"] {
            let error = create_with(
                &fx.host(MOUNTINFO_HYBRID, SELF_HYBRID),
                0,
                id,
                &memory_and_pids(),
                &fake,
            )
            .unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("invalid session id {id:?} for a cgroup name: use letters, digits, `-` and `_`")
            );
        }
    }

    #[test]
    fn error_messages_read_like_strace() {
        let error = CgroupError::Write {
            path: PathBuf::from("/sys/fs/cgroup/memory/corral-1000/corral-ab12/memory.limit_in_bytes"),
            value: "4294967296".to_string(),
            source: io::Error::from_raw_os_error(libc::EBUSY),
        };
        assert_eq!(
            error.to_string(),
            "write(\"/sys/fs/cgroup/memory/corral-1000/corral-ab12/memory.limit_in_bytes\", \"4294967296\"): EBUSY"
        );
        assert!(std::error::Error::source(&error).is_some());
        let error = CgroupError::Rmdir {
            path: PathBuf::from("/sys/fs/cgroup/pids/corral-ab12"),
            source: io::Error::from_raw_os_error(libc::EBUSY),
        };
        assert_eq!(
            error.to_string(),
            "rmdir(\"/sys/fs/cgroup/pids/corral-ab12\"): EBUSY"
        );
    }

    // -- v2 -------------------------------------------------------------------------------

    const SCOPE: &str = "sys/fs/cgroup/user.slice/user-1000.slice/session-2.scope";

    fn v2_fixture(subtree_control: &str) -> Fixture {
        let fx = Fixture::new(
            &[SCOPE],
            &[
                (
                    &format!("{SCOPE}/cgroup.controllers"),
                    "cpuset cpu io memory pids\n",
                ),
                (&format!("{SCOPE}/cgroup.subtree_control"), subtree_control),
                (&format!("{SCOPE}/cgroup.procs"), ""),
            ],
        );
        fx
    }

    #[test]
    fn v2_delegated_own_cgroup_gets_a_leaf_and_enables_what_it_needs() {
        let uid = user();
        let fx = v2_fixture("memory\n");
        fx.give(SCOPE);
        fx.give(&format!("{SCOPE}/cgroup.procs"));
        fx.give(&format!("{SCOPE}/cgroup.subtree_control"));
        let before = fx.tree();
        let fake = fx.fake_fs(&[("sys/fs/cgroup", V2_FILES)]);
        let limits = CgroupLimits {
            cpu_quota_us_per_period: Some((50_000, 100_000)),
            ..memory_and_pids()
        };
        let (cgroup, outcome) =
            create_with(&fx.host(MOUNTINFO_V2, SELF_V2), uid, "ab12", &limits, &fake).unwrap();
        assert_eq!(
            outcome,
            CgroupOutcome {
                achieved: Achieved::Full,
                detail: format!(
                    "v2 memory,pids,cpu: /{SCOPE}/corral-ab12 (memory.max=67108864, memory.swap.max=0, \
                     pids.max=20, cpu.max=50000 100000)"
                ),
            }
        );
        let leaf = format!("{SCOPE}/corral-ab12");
        let expected = with(
            &before,
            &[
                // Only what the limits need and the parent did not have yet.
                (format!("{SCOPE}/cgroup.subtree_control"), "+pids +cpu"),
                (format!("{leaf}/"), ""),
                (format!("{leaf}/cgroup.kill"), ""),
                (format!("{leaf}/cgroup.procs"), ""),
                (format!("{leaf}/cpu.max"), "50000 100000"),
                (format!("{leaf}/memory.events"), ""),
                (format!("{leaf}/memory.max"), "67108864"),
                (format!("{leaf}/memory.peak"), ""),
                (format!("{leaf}/memory.swap.max"), "0"),
                (format!("{leaf}/pids.events"), ""),
                (format!("{leaf}/pids.max"), "20"),
            ],
        );
        assert_eq!(fx.tree(), expected);

        let cgroup = cgroup.unwrap();
        cgroup.attach(4242).unwrap();
        fs::write(
            fx.path(&format!("{leaf}/memory.events")),
            "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n",
        )
        .unwrap();
        fs::write(fx.path(&format!("{leaf}/memory.peak")), "1234\n").unwrap();
        fs::write(fx.path(&format!("{leaf}/pids.events")), "max 5\n").unwrap();
        assert_eq!(
            cgroup.events(),
            CgroupEvents {
                oom_kills: 2,
                pids_max_hits: 5,
                memory_peak: Some(1234),
            }
        );
        cgroup.kill_all();
        let after = fx.tree();
        assert_eq!(
            after.get(&format!("{leaf}/cgroup.kill")).map(String::as_str),
            Some("1")
        );
        assert_eq!(
            after.get(&format!("{leaf}/cgroup.procs")).map(String::as_str),
            Some("4242")
        );
        cgroup.remove_with(&fake).unwrap();
        assert_eq!(
            fx.tree(),
            with(
                &before,
                &[(format!("{SCOPE}/cgroup.subtree_control"), "+pids +cpu")]
            )
        );
    }

    #[test]
    fn v2_controllers_that_cannot_be_enabled_make_it_partial() {
        let uid = user();
        let fx = v2_fixture("");
        fx.give(SCOPE);
        fx.give(&format!("{SCOPE}/cgroup.procs"));
        // A directory where the file should be: the write fails (EISDIR), as EBUSY would.
        fs::set_permissions(fx.path(SCOPE), fs::Permissions::from_mode(0o755)).unwrap();
        fs::remove_file(fx.path(&format!("{SCOPE}/cgroup.subtree_control"))).unwrap();
        fs::create_dir(fx.path(&format!("{SCOPE}/cgroup.subtree_control"))).unwrap();
        let before = fx.tree();
        let fake = fx.fake_fs(&[("sys/fs/cgroup", V2_FILES)]);
        let (cgroup, outcome) = create_with(
            &fx.host(MOUNTINFO_V2, SELF_V2),
            uid,
            "ab12",
            &memory_and_pids(),
            &fake,
        )
        .unwrap();
        assert_eq!(
            outcome,
            CgroupOutcome {
                achieved: Achieved::Partial,
                detail: format!(
                    "v2 (no controllers): /{SCOPE}/corral-ab12; \
                     v2 memory,pids: not enabled: write(\"/{SCOPE}/cgroup.subtree_control\", \"+memory +pids\"): EISDIR"
                ),
            }
        );
        let cgroup = cgroup.unwrap();
        assert_eq!(cgroup.events(), CgroupEvents::default());
        cgroup.remove_with(&fake).unwrap();
        assert_eq!(fx.tree(), before);
    }

    #[test]
    fn v2_not_delegated_gets_none_and_the_setup_hint() {
        let uid = user();
        let fx = v2_fixture("");
        let before = fx.tree();
        let fake = fx.fake_fs(&[("sys/fs/cgroup", V2_FILES)]);
        let (cgroup, outcome) = create_with(
            &fx.host(MOUNTINFO_V2, SELF_V2),
            uid,
            "ab12",
            &memory_and_pids(),
            &fake,
        )
        .unwrap();
        assert!(cgroup.is_none());
        assert_eq!(
            outcome,
            CgroupOutcome {
                achieved: Achieved::None,
                detail: format!(
                    "no cgroup; v2 memory,pids: own cgroup /{SCOPE} is not writable by uid {uid} (not delegated); \
                     fix: run `sudo corral setup` to delegate a cgroup to this user"
                ),
            }
        );
        assert_eq!(fx.tree(), before);
    }

    // -- the real thing -------------------------------------------------------------------

    /// Skips (out loud) unless `CORRAL_TEST_REQUIRE=1`, which turns the skip into a failure.
    fn skip(why: &str) {
        if std::env::var_os("CORRAL_TEST_REQUIRE").is_some_and(|v| v == "1") {
            panic!("{why} (CORRAL_TEST_REQUIRE=1)");
        }
        eprintln!("skipping: {why}");
    }

    #[test]
    fn real_v1_session_cgroup_limits_kills_and_goes_away() {
        if !rustix::process::geteuid().is_root() {
            return skip("the real cgroup test needs root (v1 cgroups are not delegated here)");
        }
        let host = CgroupHost::current().unwrap();
        let has_v1_memory = parse_mountinfo(&host.mountinfo)
            .iter()
            .any(|m| m.version == Version::V1 && m.super_options.iter().any(|o| o == "memory"));
        if !has_v1_memory {
            return skip("no cgroup v1 memory hierarchy on this host");
        }
        let id = format!("test-{}", std::process::id());
        let (cgroup, outcome) = SessionCgroup::create(&host, 0, &id, &memory_and_pids()).unwrap();
        let cgroup = cgroup.unwrap_or_else(|| panic!("no cgroup: {}", outcome.detail));
        let dirs: Vec<PathBuf> = cgroup.paths().map(Path::to_path_buf).collect();
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let attached = cgroup.attach(pid);
        let read = |file: &str| {
            dirs.iter()
                .map(|d| d.join(file))
                .find(|f| f.exists())
                .map(|f| fs::read_to_string(f).unwrap())
        };
        let seen = (
            read("memory.limit_in_bytes"),
            read("memory.memsw.limit_in_bytes"),
            read("pids.max"),
            dirs.iter().all(|d| {
                fs::read_to_string(d.join("cgroup.procs"))
                    .unwrap()
                    .contains(&pid.to_string())
            }),
        );
        let started = std::time::Instant::now();
        cgroup.kill_all();
        let kill_time = started.elapsed();
        let status = child.wait().unwrap();
        let events = cgroup.events();
        let removed = cgroup.remove();

        attached.unwrap();
        assert_eq!(outcome.achieved, Achieved::Full, "{}", outcome.detail);
        assert_eq!(
            seen,
            (
                Some("67108864\n".to_string()),
                Some("67108864\n".to_string()),
                Some("20\n".to_string()),
                true
            )
        );
        eprintln!("kill_all took {kill_time:?}; {events:?}; {}", outcome.detail);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
        assert!(events.memory_peak.is_some(), "{events:?}");
        removed.unwrap();
        for dir in &dirs {
            assert!(!dir.exists(), "{} is still there", dir.display());
        }
    }

    /// The limits bite: a memory hog is OOM-killed (no swap to escape to), forks beyond
    /// `pids.max` fail, and `kill_all` kills orphans that are not our children.
    #[test]
    fn real_v1_limits_are_enforced() {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        if !rustix::process::geteuid().is_root() {
            return skip("the real cgroup test needs root (v1 cgroups are not delegated here)");
        }
        let host = CgroupHost::current().unwrap();
        let has_v1 = |name: &str| {
            parse_mountinfo(&host.mountinfo)
                .iter()
                .any(|m| m.version == Version::V1 && m.super_options.iter().any(|o| o == name))
        };
        if !has_v1("memory") || !has_v1("pids") {
            return skip("no cgroup v1 memory and pids hierarchies on this host");
        }
        let id = format!("enforce-{}", std::process::id());
        let limits = CgroupLimits {
            memory_bytes: Some(MIB_64),
            pids: Some(8),
            cpu_quota_us_per_period: None,
        };
        let (cgroup, outcome) = SessionCgroup::create(&host, 0, &id, &limits).unwrap();
        let cgroup = cgroup.unwrap_or_else(|| panic!("no cgroup: {}", outcome.detail));
        let dirs: Vec<PathBuf> = cgroup.paths().map(Path::to_path_buf).collect();
        // The shell waits for a line, so it is attached before it runs anything. `tail` keeps a
        // line whole, and /dev/zero has no newline: it grows until the OOM killer stops it.
        let script = "read go; head -c 300000000 /dev/zero | tail >/dev/null; \
                      for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 >/dev/null & done; echo done";
        let mut child = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let attached = cgroup.attach(i32::try_from(child.id()).unwrap());
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(b"go\n");
        drop(stdin);
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        let _ = child.wait();
        let left: usize = dirs
            .iter()
            .map(|d| {
                fs::read_to_string(d.join("cgroup.procs"))
                    .unwrap()
                    .lines()
                    .count()
            })
            .sum();
        let events = cgroup.events();
        cgroup.kill_all();
        let emptied = dirs
            .iter()
            .all(|d| fs::read_to_string(d.join("cgroup.procs")).unwrap().is_empty());
        let removed = cgroup.remove();

        attached.unwrap();
        eprintln!("{events:?}; {left} processes left before kill_all");
        assert!(events.oom_kills >= 1, "{events:?}");
        assert!(events.pids_max_hits >= 1, "{events:?}");
        assert!(events.memory_peak.is_some_and(|p| p > MIB_64 / 2), "{events:?}");
        assert!(left >= 1, "the orphaned sleeps should still be there");
        assert!(emptied, "kill_all left processes behind");
        removed.unwrap();
        for dir in &dirs {
            assert!(!dir.exists(), "{} is still there", dir.display());
        }
    }
}
