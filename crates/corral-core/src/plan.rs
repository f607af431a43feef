//! The launch plan: a pure function from (profile, invocation, host facts) to everything the
//! executor will do, as data.
//!
//! `build` makes no syscalls and reads no environment: the invocation carries the host environment,
//! home, cwd and ids; [`HostFacts`] carries what the filesystem looks like (gathered by corral-sys
//! from the list [`probe_paths`] asks for). The executor applies the plan verbatim, so the plan
//! printed by `--dry-run` is exactly what runs.
//!
//! Mount order invariant: every mount comes after the mount of its closest ancestor; the planner
//! sorts binds, protections and masks by destination path (parents sort before children), and
//! decides for each whether its mount point may be created (only inside tmpfs mounts corral made,
//! never inside a host bind, where it would write to the host).

use crate::envaudit::{AuditSource, Decision, EnvAudit};
use crate::landlock_policy::{FsAccess, LandlockPolicy, LandlockRule};
use crate::layer::{Layer, Level};
use crate::profile::{NetworkMode, Profile};
use crate::seccomp_policy::SeccompPolicy;
use crate::secrets::SECRET_PATHS;
use globset::{Glob, GlobSetBuilder};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// The hostname inside every sandbox.
pub const HOSTNAME: &str = "corral";
/// System directories bound read-only when present (merged-/usr links are recreated as links).
pub const SYSTEM_DIRS: &[&str] = &[
    "/usr",
    "/etc",
    "/opt",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/nix/store",
    "/run/current-system",
    "/home/linuxbrew/.linuxbrew",
];
/// The port of corral's egress proxy on the sandbox's own loopback (`network.mode = "proxy"`).
/// Inside its own network namespace nothing else uses it; the supervisor holds the bound socket
/// for the whole session, so nothing inside can bind it.
pub const PROXY_PORT: u16 = 3128;
/// The DNS sink's port on the sandbox's loopback (UDP and TCP).
pub const DNS_PORT: u16 = 53;
/// `/etc/resolv.conf` inside in proxy mode: the sink only (`options` keep resolvers from waiting
/// long for answers that are always REFUSED).
pub const RESOLV_CONF: &str = "# corral: DNS answers come from nowhere: every query is refused and recorded.\n# Programs reach the network through the proxy (HTTP_PROXY), which resolves names itself.\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n";
/// Device nodes bound from the host into the sandbox's `/dev`.
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];
/// Files under `/proc` hidden behind `/dev/null` (kernel memory, key names, timer internals).
pub const PROC_MASKS: &[&str] = &[
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/sysrq-trigger",
];
/// Size of the sandbox's `/tmp` and `/dev/shm` when the profile sets none (MiB).
pub const DEFAULT_TMP_MB: u64 = 2048;
/// Size of the sandbox's throwaway home (MiB).
pub const HOME_TMPFS_MB: u64 = 1024;

/// Variables read from one env file (by the binary; the planner does no I/O).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFileInput {
    /// Global file, project file, or a profile's `env.files`.
    pub source: AuditSource,
    /// Its path, for reports.
    pub origin: String,
    /// Its `KEY=VALUE` entries in order.
    pub entries: Vec<(String, String)>,
}

/// What the user asked for on this launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The current directory (canonical).
    pub cwd: PathBuf,
    /// The home directory (canonical).
    pub home: PathBuf,
    /// The user's name.
    pub user: String,
    /// Uid the sandbox runs as (the user's own, mapped 1:1).
    pub uid: u32,
    /// Gid the sandbox runs as.
    pub gid: u32,
    /// The host environment.
    pub host_env: BTreeMap<String, String>,
    /// The command after `--`, if any.
    pub command: Option<Vec<String>>,
    /// `--shell`: an interactive bash instead of the profile's command.
    pub shell: bool,
    /// Env files, in the order they apply (global, trusted project file, `env.files`).
    pub env_files: Vec<EnvFileInput>,
    /// Host variables named in `CORRAL_EXTRA_ENV`.
    pub extra_env: Vec<String>,
    /// `--env NAME` (from the host) and `--env NAME=VALUE`.
    pub env_flags: Vec<String>,
    /// The agent's state and credential facts, when the profile names an agent
    /// (`sandbox.agent`) that corral knows.
    pub agent: Option<crate::agents::AgentInput>,
}

/// What kind of thing a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// Anything else (device, socket, fifo).
    Other,
}

/// Facts about one host path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathFact {
    /// The path with every symlink resolved.
    pub canonical: PathBuf,
    /// What the canonical path is.
    pub kind: FileKind,
    /// When the path itself is a symlink: its target as written.
    pub link: Option<PathBuf>,
}

/// What the host filesystem looks like, for the paths the planner asked about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    /// Every probed path that exists, keyed by the path as asked. Absent: does not exist.
    pub paths: BTreeMap<PathBuf, PathFact>,
    /// Existing paths matching secret patterns that contain `*` (expanded by the gatherer).
    pub secret_matches: Vec<PathBuf>,
    /// Paths in the workspace matching `filesystem.deny`, with their kind.
    pub deny_matches: Vec<(PathBuf, FileKind)>,
    /// The terminal on corral's standard input, when there is one (e.g. `/dev/pts/3`).
    pub tty: Option<PathBuf>,
}

/// Read-only or read-write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Writes fail with EROFS.
    ReadOnly,
    /// Writable.
    ReadWrite,
}

/// One step of the mount plan, applied in order by the sandbox's init before `pivot_root`.
/// Destinations are paths inside the new root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MountOp {
    /// A fresh tmpfs.
    Tmpfs {
        /// Where.
        dst: PathBuf,
        /// Mode of its root directory.
        mode: u32,
        /// Size cap in MiB.
        size_mb: u64,
        /// Create the mount point (a directory) first.
        create: bool,
    },
    /// A bind mount of a host path, cloned before any mount is made (so a source that the new root
    /// would cover is still reachable), with `nosuid,nodev`.
    Bind {
        /// Host path (canonical).
        src: PathBuf,
        /// Where.
        dst: PathBuf,
        /// Read-only or read-write (recursive).
        access: Access,
        /// Directory or file (decides the kind of mount point).
        kind: FileKind,
        /// Create the mount point first (only inside corral's own tmpfs).
        create: bool,
        /// Why this bind exists (`system`, `workspace`, `read_only`, `read_write`, `device`).
        why: String,
    },
    /// Bind a path of the new tree onto itself with new flags: pins it (a mount point cannot be
    /// renamed or removed) and, read-only, protects it.
    Rebind {
        /// Where (must exist).
        dst: PathBuf,
        /// Flags.
        access: Access,
        /// Why (`protect`, `pin`, `proc`).
        why: String,
    },
    /// Hide what is at `dst`: a file behind a read-only `/dev/null`, a directory behind an empty
    /// read-only tmpfs.
    Mask {
        /// Where (must exist).
        dst: PathBuf,
        /// File or directory.
        kind: FileKind,
        /// Why (`secret`, `deny`, `proc`).
        why: String,
    },
    /// A symlink (e.g. `/bin` → `usr/bin` on merged-/usr systems, `/dev/ptmx` → `pts/ptmx`).
    Symlink {
        /// The link.
        dst: PathBuf,
        /// What it points at.
        target: PathBuf,
    },
    /// A fresh procfs of the sandbox's pid namespace (`nosuid,nodev,noexec`).
    Proc {
        /// Where.
        dst: PathBuf,
    },
    /// A private devpts instance (`newinstance,ptmxmode=0666`).
    Devpts {
        /// Where.
        dst: PathBuf,
    },
    /// Review mode: an overlay at `dst` whose lower layer is the host directory `lower` (never
    /// written) and whose upper and work directories are the session's, on the host (`userxattr`:
    /// unprivileged). Replaces the workspace's bind.
    Overlay {
        /// Where (the workspace's path).
        dst: PathBuf,
        /// The real project (read-only layer).
        lower: PathBuf,
        /// Where the changes go.
        upper: PathBuf,
        /// overlayfs's work directory (same filesystem as `upper`).
        work: PathBuf,
    },
    /// A small file generated by corral (e.g. `/etc/resolv.conf` in proxy mode), read-only, bound
    /// over `dst`. A `dst` that is a symlink is followed inside the new root (on systemd hosts
    /// `/etc/resolv.conf` links into `/run`), and a missing target is created where corral's own
    /// tmpfs allows.
    File {
        /// Where.
        dst: PathBuf,
        /// Its contents.
        contents: String,
        /// Why (`resolv.conf`).
        why: String,
    },
    /// A fresh small tmpfs at `dst` holding files generated by corral (paths relative to `dst`,
    /// mode 0444); made read-only by a later [`MountOp::ReadOnly`] (binds may go in between).
    Generated {
        /// Where (created; inside corral's own tmpfs).
        dst: PathBuf,
        /// Relative path and contents of each file.
        files: Vec<(String, String)>,
    },
    /// Make a mount read-only (not recursively: mounts below keep their flags).
    ReadOnly {
        /// Which mount.
        dst: PathBuf,
    },
}

/// One variable of the sandbox's environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
    /// Source.
    pub source: AuditSource,
}

/// A resource limit set with `setrlimit` in the sandbox's init (inherited, only ever lowered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// `RLIMIT_*` name.
    pub resource: String,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// An empty file or directory that the supervisor creates in the workspace before launch, so that a
/// protected path that does not exist yet can be mounted read-only (and so not created). Removed at
/// exit; `corral gc` removes those of a killed session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placeholder {
    /// Host path.
    pub path: PathBuf,
    /// File or directory.
    pub kind: FileKind,
}

/// What to do when a watched name appears in a watched directory on the host during the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchAction {
    /// Mount it read-only again: the host replaced a protected path (git rewrites `.git/config`
    /// by renaming over it), which detaches the mount that was on it in the sandbox.
    Protect,
    /// Mask it again (or for the first time): a masked file replaced by an editor's save, or a
    /// secret created during the session below a bound directory.
    Mask,
    /// It must not exist: move it aside (e.g. `.git/commondir`, which would point the user's git at
    /// config and hooks the agent wrote, and which cannot get a placeholder: git fails on an empty one).
    Quarantine,
}

/// A directory the supervisor watches (inotify) for the whole session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchDir {
    /// The directory on the host.
    pub host: PathBuf,
    /// The same directory inside the sandbox.
    pub inside: PathBuf,
    /// Names in it and what to do when one appears (created or renamed into place).
    pub names: Vec<(String, WatchAction)>,
    /// Also mask new entries whose workspace-relative path matches `filesystem.deny`.
    pub deny_globs: bool,
}

/// The resource limits of a launch (`[limits]` after flags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitsPlan {
    /// Memory, MiB.
    pub memory_mb: Option<u64>,
    /// Processes.
    pub pids: u64,
    /// CPU rate, CPUs.
    pub cpus: Option<f64>,
    /// CPU time per process, seconds.
    pub cpu_seconds: Option<u64>,
    /// Wall clock, seconds.
    pub wall_seconds: Option<u64>,
    /// /tmp and /dev/shm, MiB.
    pub tmp_mb: u64,
    /// Largest file, MiB.
    pub file_mb: Option<u64>,
    /// Open files per process.
    pub open_files: Option<u64>,
    /// Review mode: most MiB of changes (the overlay's upper layer).
    #[serde(default)]
    pub review_mb: Option<u64>,
}

/// Bytes in a MiB.
const MIB: u64 = 1024 * 1024;
/// Seconds between SIGXCPU (soft CPU limit) and SIGKILL (hard): a process may save its work.
/// (RLIMIT_CPU with soft = hard would kill at once.)
const CPU_GRACE_S: u64 = 5;

/// The rlimits set in the sandbox's init (inherited by everything, only ever lowered).
fn rlimits(profile: &Profile) -> Vec<Rlimit> {
    let r = |resource: &str, v: u64| Rlimit {
        resource: resource.into(),
        soft: v,
        hard: v,
    };
    let mut out = vec![r("RLIMIT_CORE", 0), r("RLIMIT_NPROC", profile.pids)];
    if let Some(mb) = profile.file_mb {
        out.push(r("RLIMIT_FSIZE", mb.saturating_mul(MIB)));
    }
    if let Some(n) = profile.open_files {
        out.push(r("RLIMIT_NOFILE", n));
    }
    if let Some(mb) = profile.address_space_mb {
        out.push(r("RLIMIT_AS", mb.saturating_mul(MIB)));
    }
    if let Some(s) = profile.cpu_seconds {
        out.push(Rlimit {
            resource: "RLIMIT_CPU".into(),
            soft: s,
            hard: s.saturating_add(CPU_GRACE_S),
        });
    }
    out
}

/// The network part of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkPlan {
    /// Mode.
    pub mode: NetworkMode,
    /// Loopback ports connect(2) may reach.
    pub local_ports: Vec<u16>,
    /// Proxy mode: the hosts the proxy may reach (`network.allow`).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Proxy mode: hosts it never reaches (`network.deny`, wins over `allow`).
    #[serde(default)]
    pub deny: Vec<String>,
    /// Proxy mode: private ranges it may dial anyway (`network.allow_cidrs`).
    #[serde(default)]
    pub allow_cidrs: Vec<String>,
    /// Proxy mode: most bytes sent out per session, in MiB.
    #[serde(default)]
    pub max_egress_mb: Option<u64>,
    /// The agent's API gateway on the sandbox's loopback (the credential stays outside).
    #[serde(default)]
    pub gateway: Option<crate::agents::GatewayPlan>,
}

/// Everything a launch does, as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Profile name.
    pub profile: String,
    /// The project directory, mounted read-write at its real path.
    pub workspace: PathBuf,
    /// Working directory inside.
    pub cwd: PathBuf,
    /// Uid inside (= outside).
    pub uid: u32,
    /// Gid inside (= outside).
    pub gid: u32,
    /// Hostname inside.
    pub hostname: String,
    /// Level demanded per layer.
    pub layers: BTreeMap<Layer, Level>,
    /// Mount steps in order.
    pub mounts: Vec<MountOp>,
    /// Placeholders created in the workspace for the launch.
    pub placeholders: Vec<Placeholder>,
    /// Directories watched during the session, so that protections and masks survive changes made
    /// on the host.
    pub watch: Vec<WatchDir>,
    /// `filesystem.deny`, for masking matches that appear during the session.
    pub deny: Vec<String>,
    /// The whole environment of the command.
    pub env: Vec<EnvVar>,
    /// Host variables left out (names only).
    pub env_left_out: Vec<String>,
    /// The environment audit: every candidate with its source, masked value and decision. Not
    /// sent to the sandbox's init.
    #[serde(skip_deserializing, default)]
    pub env_audit: EnvAudit,
    /// Landlock rules.
    pub landlock: LandlockPolicy,
    /// seccomp policy.
    pub seccomp: SeccompPolicy,
    /// rlimits.
    pub rlimits: Vec<Rlimit>,
    /// The resource limits, for the cgroup, the wall clock and reports.
    pub limits: LimitsPlan,
    /// Network.
    pub network: NetworkPlan,
    /// The command and its arguments (argv[0] is looked up in PATH inside the sandbox).
    pub command: Vec<String>,
    /// Review mode (`sandbox.review`): the launch turns the workspace into an overlay
    /// ([`Plan::enable_review`]) once the session's review directory exists.
    #[serde(default)]
    pub review: bool,
    /// Record every exec inside in the audit log (`sandbox.audit_exec`). Plans saved before the
    /// switch existed had it on.
    #[serde(default = "yes")]
    pub audit_exec: bool,
    /// Things the user must be told at launch (exposed secrets, …).
    pub warnings: Vec<String>,
}

/// Why a plan could not be made. Each names the offending input and, where known, the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A path in the profile is relative or contains `..`.
    #[error("{key}: {path:?} must be absolute (or start with `~` or `{{workspace}}`) and contain no `..`")]
    BadPath {
        /// Profile key.
        key: String,
        /// The value.
        path: String,
    },
    /// A non-optional bind source does not exist.
    #[error(
        "{key}: {path} does not exist (create it, remove it from the profile, or mark it `optional = true`)"
    )]
    Missing {
        /// Profile key.
        key: String,
        /// Expanded path.
        path: PathBuf,
    },
    /// The workspace is `/`, `$HOME` or a parent of `$HOME`.
    #[error("refusing workspace {0}: a workspace of your whole home would expose your secrets; run corral in a project directory, or set sandbox.allow_home_workspace = true in a profile")]
    HomeWorkspace(PathBuf),
    /// A bind would expose a built-in secret path.
    #[error("{key}: {path} would expose the secret path {secret}; list it in filesystem.expose_secrets to do this on purpose")]
    SecretBound {
        /// Profile key.
        key: String,
        /// Bind path.
        path: PathBuf,
        /// The secret.
        secret: PathBuf,
    },
    /// A deny glob does not parse.
    #[error("filesystem.deny: bad glob {glob:?}: {reason}")]
    BadGlob {
        /// The glob.
        glob: String,
        /// Parser message.
        reason: String,
    },
    /// A protected path (or a directory above it) is a symlink.
    #[error("filesystem.protect: {path} is a symlink (to {target}), which corral cannot hold read-only; replace it with what it points to, or remove the entry from filesystem.protect")]
    ProtectedSymlink {
        /// The symlink.
        path: PathBuf,
        /// Its target as written.
        target: PathBuf,
    },
    /// Nothing to run.
    #[error("no command: give one after `--`, or set sandbox.command in the profile")]
    NoCommand,
}

/// Expands `~` and `{workspace}` and checks the result is absolute and has no `..`.
pub fn expand(key: &str, raw: &str, home: &Path, workspace: Option<&Path>) -> Result<PathBuf, PlanError> {
    let bad = || PlanError::BadPath {
        key: key.to_string(),
        path: raw.to_string(),
    };
    let path = if raw == "~" {
        home.to_path_buf()
    } else if let Some(rest) = raw.strip_prefix("~/") {
        home.join(rest)
    } else if let Some(rest) = raw.strip_prefix("{workspace}") {
        let ws = workspace.ok_or_else(bad)?;
        ws.join(rest.trim_start_matches('/'))
    } else {
        PathBuf::from(raw)
    };
    if !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(bad());
    }
    Ok(normalize(&path))
}

/// Removes `.` components and trailing slashes.
fn normalize(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// Secret paths with `~` and `{uid}` filled in.
pub fn secret_paths(home: &Path, uid: u32) -> Vec<PathBuf> {
    SECRET_PATHS
        .iter()
        .filter_map(|s| {
            let s = s.replace("{uid}", &uid.to_string());
            expand("secret", &s, home, None).ok()
        })
        .collect()
}

/// Chooses the workspace: the git root, the cwd, or the profile's absolute path.
pub fn choose_workspace(
    profile: &Profile,
    inv: &Invocation,
    git_root: Option<&Path>,
) -> Result<PathBuf, PlanError> {
    match profile.workspace.as_str() {
        "git-root" => Ok(git_root.unwrap_or(&inv.cwd).to_path_buf()),
        "cwd" => Ok(inv.cwd.clone()),
        other => expand("sandbox.workspace", other, &inv.home, None),
    }
}

/// Every host path whose facts `build` needs (the gatherer stats each, and expands the `*` ones).
pub fn probe_paths(profile: &Profile, inv: &Invocation, workspace: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = SYSTEM_DIRS.iter().map(PathBuf::from).collect();
    out.extend(DEVICES.iter().map(|d| Path::new("/dev").join(d)));
    out.extend(PROC_MASKS.iter().map(PathBuf::from));
    out.push(workspace.to_path_buf());
    out.push(inv.home.clone());
    for e in profile.read_only.iter().chain(&profile.read_write) {
        if let Ok(p) = expand("bind", &e.path, &inv.home, Some(workspace)) {
            out.push(p);
        }
    }
    out.extend(
        secret_paths(&inv.home, inv.uid)
            .into_iter()
            .filter(|p| !has_glob(p)),
    );
    for prot in &profile.protect {
        let rel = Path::new(prot.trim_end_matches('/'));
        let mut acc = workspace.to_path_buf();
        for c in rel.components() {
            acc.push(c);
            out.push(acc.clone());
        }
    }
    out.sort();
    out.dedup();
    out
}

fn has_glob(p: &Path) -> bool {
    p.to_string_lossy().contains('*')
}

/// Builds the plan. Pure.
pub fn build(
    profile: &Profile,
    inv: &Invocation,
    workspace: &Path,
    facts: &HostFacts,
) -> Result<Plan, PlanError> {
    let home = inv.home.clone();
    let mut warnings = Vec::new();

    if !profile.allow_home_workspace && (workspace == Path::new("/") || home.starts_with(workspace)) {
        return Err(PlanError::HomeWorkspace(workspace.to_path_buf()));
    }

    let mut mounts = Vec::new();
    let mut ll = Vec::new();

    // System directories: read-only at the same path; merged-/usr links recreated as links.
    for dir in SYSTEM_DIRS {
        let Some(fact) = facts.paths.get(Path::new(dir)) else {
            continue;
        };
        if let Some(target) = &fact.link {
            mounts.push(MountOp::Symlink {
                dst: PathBuf::from(dir),
                target: target.clone(),
            });
        } else if fact.kind == FileKind::Dir {
            mounts.push(bind(
                &fact.canonical,
                Path::new(dir),
                Access::ReadOnly,
                FileKind::Dir,
                true,
                "system",
            ));
            ll.push(rule(dir, FsAccess::ReadExec));
        }
    }

    // A fresh /proc of the new pid namespace, with kernel internals hidden.
    mounts.push(MountOp::Proc { dst: "/proc".into() });
    mounts.push(MountOp::Rebind {
        dst: "/proc/sys".into(),
        access: Access::ReadOnly,
        why: "proc".into(),
    });
    for m in PROC_MASKS {
        if facts.paths.contains_key(Path::new(m)) {
            mounts.push(MountOp::Mask {
                dst: PathBuf::from(m),
                kind: FileKind::File,
                why: "proc".into(),
            });
        }
    }
    ll.push(rule("/proc", FsAccess::ReadWriteFiles));

    // A minimal /dev: a few host devices bound onto files, a private devpts, a private /dev/shm.
    mounts.push(MountOp::Tmpfs {
        dst: "/dev".into(),
        mode: 0o755,
        size_mb: 1,
        create: true,
    });
    for d in DEVICES {
        let host = Path::new("/dev").join(d);
        if let Some(f) = facts.paths.get(&host) {
            mounts.push(bind(
                &f.canonical,
                &host,
                Access::ReadWrite,
                FileKind::Other,
                true,
                "device",
            ));
        }
    }
    // The inherited terminal lives in the host's devpts, which is not mounted inside: bound onto
    // /dev/console, glibc's ttyname() finds it by device number (the trick bubblewrap uses), so
    // `tty`, ssh and gpg prompts work.
    if let Some(tty) = &facts.tty {
        mounts.push(bind(
            tty,
            Path::new("/dev/console"),
            Access::ReadWrite,
            FileKind::Other,
            true,
            "terminal",
        ));
    }
    mounts.push(MountOp::Devpts {
        dst: "/dev/pts".into(),
    });
    mounts.push(MountOp::Symlink {
        dst: "/dev/ptmx".into(),
        target: "pts/ptmx".into(),
    });
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
    ] {
        mounts.push(MountOp::Symlink {
            dst: Path::new("/dev").join(name),
            target: target.into(),
        });
    }
    mounts.push(MountOp::Symlink {
        dst: "/dev/stderr".into(),
        target: "/proc/self/fd/2".into(),
    });
    mounts.push(MountOp::Tmpfs {
        dst: "/dev/shm".into(),
        mode: 0o1777,
        size_mb: profile.tmp_mb,
        create: true,
    });
    mounts.push(MountOp::ReadOnly { dst: "/dev".into() });
    ll.push(rule("/dev", FsAccess::ReadWriteDev));
    ll.push(rule("/dev/shm", FsAccess::Full));

    // A private /tmp and a throwaway home.
    mounts.push(MountOp::Tmpfs {
        dst: "/tmp".into(),
        mode: 0o1777,
        size_mb: profile.tmp_mb,
        create: true,
    });
    ll.push(rule("/tmp", FsAccess::Full));
    mounts.push(MountOp::Tmpfs {
        dst: home.clone(),
        mode: 0o700,
        size_mb: HOME_TMPFS_MB,
        create: true,
    });
    ll.push(LandlockRule {
        path: home.clone(),
        access: FsAccess::Full,
    });

    // Binds of the profile and the workspace, then protections and masks, all in path order.
    let mut binds: Vec<(PathBuf, PathBuf, Access, FileKind, String)> = Vec::new(); // (src, dst, ..)
    let ws_fact = facts.paths.get(workspace).ok_or_else(|| PlanError::Missing {
        key: "workspace".into(),
        path: workspace.to_path_buf(),
    })?;
    binds.push((
        ws_fact.canonical.clone(),
        workspace.to_path_buf(),
        Access::ReadWrite,
        FileKind::Dir,
        "workspace".into(),
    ));
    for (list, access, key) in [
        (&profile.read_only, Access::ReadOnly, "filesystem.read_only"),
        (&profile.read_write, Access::ReadWrite, "filesystem.read_write"),
    ] {
        for e in list {
            let dst = expand(key, &e.path, &home, Some(workspace))?;
            match facts.paths.get(&dst) {
                Some(f) => binds.push((f.canonical.clone(), dst, access, f.kind, key.to_string())),
                None if e.optional => {}
                None => {
                    return Err(PlanError::Missing {
                        key: key.to_string(),
                        path: dst,
                    })
                }
            }
        }
    }

    // Secrets: a bind inside a secret is refused; a secret inside a bind is masked.
    let exposed: Vec<PathBuf> = profile
        .expose_secrets
        .iter()
        .map(|s| expand("filesystem.expose_secrets", s, &home, Some(workspace)))
        .collect::<Result<_, _>>()?;
    let mut secrets: Vec<(PathBuf, PathFact)> = secret_paths(&home, inv.uid)
        .into_iter()
        .filter_map(|p| facts.paths.get(&p).map(|f| (p, f.clone())))
        .collect();
    for m in &facts.secret_matches {
        if let Some(f) = facts.paths.get(m) {
            secrets.push((m.clone(), f.clone()));
        }
    }
    let mut masks: Vec<(PathBuf, FileKind, &str)> = Vec::new();
    for (secret, fact) in &secrets {
        if exposed.iter().any(|e| e == secret) {
            warnings.push(format!(
                "secret path {} is exposed by filesystem.expose_secrets",
                secret.display()
            ));
            continue;
        }
        for (src, dst, _, _, key) in &binds {
            if src.starts_with(&fact.canonical) {
                return Err(PlanError::SecretBound {
                    key: key.clone(),
                    path: dst.clone(),
                    secret: secret.clone(),
                });
            }
            if let Ok(rest) = fact.canonical.strip_prefix(src) {
                masks.push((dst.join(rest), fact.kind, "secret"));
            }
        }
    }
    for (path, kind) in &facts.deny_matches {
        masks.push((path.clone(), *kind, "deny"));
    }

    // Protections: pin every ancestor inside the workspace (a mount point cannot be renamed or
    // removed, so the path cannot be moved aside), mount the path read-only, and give a path that
    // does not exist yet a placeholder so it cannot be created.
    let mut rebinds: Vec<(PathBuf, Access, &str)> = Vec::new();
    let mut placeholders = Vec::new();
    for prot in &profile.protect {
        let is_dir = prot.ends_with('/');
        let rel = Path::new(prot.trim_end_matches('/'));
        if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(PlanError::BadPath {
                key: "filesystem.protect".into(),
                path: prot.clone(),
            });
        }
        let full = workspace.join(rel);
        let mut acc = workspace.to_path_buf();
        for c in rel.components() {
            acc.push(c);
            let fact = facts.paths.get(&acc);
            if let Some(link) = fact.and_then(|f| f.link.as_ref()) {
                // A symlink cannot be a mount point, so it cannot be held in place: the agent could
                // replace it. Fail closed rather than protect nothing.
                return Err(PlanError::ProtectedSymlink {
                    path: acc.clone(),
                    target: link.clone(),
                });
            }
            let exists = fact.map(|f| f.kind);
            if acc == full || exists.is_none() {
                if exists.is_none() {
                    let kind = if acc == full && !is_dir {
                        FileKind::File
                    } else {
                        FileKind::Dir
                    };
                    placeholders.push(Placeholder {
                        path: acc.clone(),
                        kind,
                    });
                }
                rebinds.push((acc.clone(), Access::ReadOnly, "protect"));
                break;
            }
            if exists != Some(FileKind::Dir) {
                // An ancestor is a file, so the protected path cannot exist below it; but the file
                // itself must not change: a `.git` *file* (worktree, submodule checkout) names the
                // git directory, and rewriting it would redirect the user's git to the agent's
                // config and hooks.
                rebinds.push((acc.clone(), Access::ReadOnly, "protect"));
                break;
            }
            rebinds.push((acc.clone(), Access::ReadWrite, "pin"));
        }
    }
    // ReadOnly sorts before ReadWrite: a path both pinned and protected stays read-only.
    rebinds.sort();
    rebinds.dedup_by(|a, b| a.0 == b.0);
    placeholders.sort_by(|a, b| a.path.cmp(&b.path));
    placeholders.dedup();

    // Merge in path order; at equal paths: bind, then rebind, then mask.
    let mut tail: Vec<(PathBuf, u8, MountOp)> = Vec::new();
    for (src, dst, access, kind, key) in &binds {
        let why = if key == "workspace" {
            "workspace".to_string()
        } else {
            key.trim_start_matches("filesystem.").to_string()
        };
        tail.push((dst.clone(), 0, bind(src, dst, *access, *kind, false, &why)));
        let acc = match access {
            Access::ReadOnly => FsAccess::ReadExec,
            Access::ReadWrite => FsAccess::Full,
        };
        ll.push(LandlockRule {
            path: dst.clone(),
            access: acc,
        });
    }
    for (dst, access, why) in rebinds {
        tail.push((
            dst.clone(),
            1,
            MountOp::Rebind {
                dst,
                access,
                why: why.to_string(),
            },
        ));
    }
    for (dst, kind, why) in masks {
        tail.push((
            dst.clone(),
            2,
            MountOp::Mask {
                dst,
                kind,
                why: why.to_string(),
            },
        ));
    }
    tail.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    tail.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    // A bind's mount point may be created only when its closest mounted ancestor is a tmpfs of ours.
    let tmpfs_roots: Vec<PathBuf> = mounts
        .iter()
        .filter_map(|m| match m {
            MountOp::Tmpfs { dst, .. } => Some(dst.clone()),
            _ => None,
        })
        .chain([home.clone()])
        .collect();
    let mut placed: Vec<(PathBuf, bool)> = vec![(PathBuf::from("/"), true)];
    placed.extend(tmpfs_roots.iter().map(|p| (p.clone(), true)));
    for m in &mounts {
        if let MountOp::Bind { dst, .. } = m {
            placed.push((dst.clone(), false));
        }
    }
    for (_, _, op) in &mut tail {
        if let MountOp::Bind { dst, create, .. } = op {
            let owner = placed
                .iter()
                .filter(|(p, _)| dst.starts_with(p) && p != dst)
                .max_by_key(|(p, _)| p.as_os_str().len());
            *create = owner.is_some_and(|(_, ours)| *ours);
            placed.push((dst.clone(), false));
        }
    }
    let watch = plan_watches(
        &tail,
        &secrets,
        &secret_paths(&home, inv.uid),
        &binds,
        workspace,
        facts,
    );
    mounts.extend(tail.into_iter().map(|(_, _, op)| op));
    if profile.network_mode == NetworkMode::Proxy {
        // Resolvers ask the sink, which refuses everything: names are resolved by the proxy.
        mounts.push(MountOp::File {
            dst: "/etc/resolv.conf".into(),
            contents: RESOLV_CONF.to_string(),
            why: "resolv.conf".into(),
        });
    }
    mounts.push(MountOp::ReadOnly { dst: "/".into() });

    // Landlock: directory listing from the root down (names only), then the rules above.
    ll.insert(0, rule("/", FsAccess::ListDir));
    // capabilities.allow_shell = false: nothing may be executed but the command (init adds it and
    // its interpreter) and what capabilities.exec lists.
    let exec_only = !profile.allow_shell;
    if exec_only {
        for r in &mut ll {
            r.access = match r.access {
                FsAccess::ReadExec => FsAccess::Read,
                FsAccess::Full => FsAccess::FullNoExec,
                other => other,
            };
        }
        for e in &profile.exec_allow {
            ll.push(LandlockRule {
                path: expand("capabilities.exec", e, &home, Some(workspace))?,
                access: FsAccess::Exec,
            });
        }
    }
    // TCP connect, with network.loopback = "ports": in proxy mode the proxy and the DNS sink (TCP
    // fallback) are reachable, besides network.local_ports. With "open" (the default) the
    // sandbox's own network namespace is the wall: only its own processes and corral's listeners
    // are on its loopback. With the host's network shared there is nothing to scope.
    let mut connect_ports = profile.local_ports.clone();
    if profile.network_mode == NetworkMode::Proxy {
        connect_ports.extend([PROXY_PORT, DNS_PORT]);
        connect_ports.sort_unstable();
        connect_ports.dedup();
    }
    let landlock = LandlockPolicy {
        rules: ll,
        restrict_tcp_connect: profile.network_mode != NetworkMode::Host
            && profile.loopback == crate::profile::Loopback::Ports,
        connect_ports,
        scope_abstract_unix: true,
        scope_signals: true,
        exec_only,
    };

    // Deny globs must at least parse (the gatherer already matched them).
    deny_globset(&profile.deny)?;

    let (candidates, env_left_out) = env_candidates(profile, inv);
    let env_audit = crate::envaudit::audit(&candidates, &profile.env_allow_secrets, &env_left_out);
    let env = candidates
        .iter()
        .zip(&env_audit.entries)
        .filter(|(_, a)| {
            matches!(
                a.decision,
                Decision::Pass | Decision::AllowedByProfile | Decision::AcceptedByUser
            )
        })
        .map(|((name, value, source), _)| EnvVar {
            name: name.clone(),
            value: value.clone(),
            source: *source,
        })
        .collect();

    let command = match (&inv.command, inv.shell) {
        (Some(c), _) if !c.is_empty() => c.clone(),
        (_, true) => vec!["bash".to_string()],
        _ => profile.command.clone(),
    };
    if command.is_empty() {
        return Err(PlanError::NoCommand);
    }

    let mut layers = profile.layers.clone();
    if profile.network_mode == NetworkMode::Host {
        // The user asked for no network namespace: the layer cannot be required, and the launch
        // reports it as not achieved (the weakest network tier), every time.
        layers.insert(Layer::Netns, Level::BestEffort);
        warnings.push(
            "network.mode = \"host\": the sandbox shares this machine's network and can reach everything you can (localhost services, your LAN, cloud metadata), with no proxy, allowlist or record of connections".into(),
        );
    }

    let visible = |p: &Path| {
        mounts.iter().any(|m| match m {
            MountOp::Bind { dst, .. } | MountOp::Tmpfs { dst, .. } => p.starts_with(dst),
            _ => false,
        })
    };
    let cwd = if visible(&inv.cwd) {
        inv.cwd.clone()
    } else {
        workspace.to_path_buf()
    };

    let mut plan = Plan {
        profile: profile.name.clone(),
        workspace: workspace.to_path_buf(),
        cwd,
        uid: inv.uid,
        gid: inv.gid,
        hostname: HOSTNAME.to_string(),
        layers,
        mounts,
        placeholders,
        watch,
        deny: profile.deny.clone(),
        env,
        env_left_out,
        env_audit,
        landlock,
        seccomp: SeccompPolicy::default_deny(),
        rlimits: rlimits(profile),
        limits: LimitsPlan {
            memory_mb: profile.memory_mb,
            pids: profile.pids,
            cpus: profile.cpus,
            cpu_seconds: profile.cpu_seconds,
            wall_seconds: profile.wall_seconds,
            tmp_mb: profile.tmp_mb,
            file_mb: profile.file_mb,
            open_files: profile.open_files,
            review_mb: profile.review_mb,
        },
        network: NetworkPlan {
            mode: profile.network_mode,
            local_ports: profile.local_ports.clone(),
            allow: profile.network_allow.clone(),
            deny: profile.network_deny.clone(),
            allow_cidrs: profile.network_allow_cidrs.clone(),
            max_egress_mb: profile.max_egress_mb,
            gateway: None,
        },
        command,
        review: profile.review,
        audit_exec: profile.audit_exec,
        warnings,
    };
    add_agent(&mut plan, profile, inv);
    Ok(plan)
}

/// Binds corral's own executable (`exe`, on the host) read-only at `~/.corral/bin/corral` inside,
/// before the root goes read-only, unless an agent's plan already put it there. The home is
/// corral's own tmpfs, so the mount point can be made. Used by `corral selftest`, whose attacker
/// is corral itself.
pub fn bind_corral_exe(plan: &mut Plan, exe: &Path, home: &Path) {
    let dst = home.join(crate::agents::CORRAL_DIR).join("bin/corral");
    let present = plan
        .mounts
        .iter()
        .any(|m| matches!(m, MountOp::Bind { dst: d, .. } if *d == dst));
    if present {
        return;
    }
    let at = plan
        .mounts
        .iter()
        .rposition(|m| matches!(m, MountOp::ReadOnly { dst } if dst == Path::new("/")))
        .unwrap_or(plan.mounts.len());
    plan.mounts.insert(
        at,
        MountOp::Bind {
            src: exe.to_path_buf(),
            dst,
            access: Access::ReadOnly,
            kind: FileKind::File,
            create: true,
            why: "corral selftest".into(),
        },
    );
}

/// The agent's part of the plan (`sandbox.agent` names a known agent and the binary found its
/// state): its state and policy mounts, generated files (SANDBOX.md from the plan as it stands),
/// its variables (set by corral: nothing overrides them), the gateway and its Landlock port.
fn add_agent(plan: &mut Plan, profile: &Profile, inv: &Invocation) {
    let (Some(name), Some(input)) = (&profile.agent, &inv.agent) else {
        return;
    };
    let Some(spec) = crate::agents::spec(name) else {
        return;
    };
    // With the host's network shared, the gateway's loopback port would be the host's: anything
    // listening there would get every request (and could answer as the model). No gateway then:
    // the client holds its own credential, as without a key on the host.
    let mut input = input.clone();
    if plan.network.mode == NetworkMode::Host
        && input.credential != crate::agents::CredentialKind::InsideClient
    {
        input.credential = crate::agents::CredentialKind::InsideClient;
        input.credential_source = None;
        plan.warnings.push(format!(
            "network.mode = \"host\": corral's API gateway is not used (its loopback port would be shared with this machine); {} gets no API key from corral",
            spec.name
        ));
    }
    let outside = input.credential != crate::agents::CredentialKind::InsideClient;
    let sandbox_md = crate::sandbox_md::render(plan, spec, outside);
    let add = crate::agents::plan_agent(spec, &input, &inv.home, &plan.workspace, inv.uid, sandbox_md);
    // Before the root goes read-only (the last step).
    let at = plan
        .mounts
        .iter()
        .rposition(|m| matches!(m, MountOp::ReadOnly { dst } if dst == Path::new("/")))
        .unwrap_or(plan.mounts.len());
    plan.mounts.splice(at..at, add.mounts);
    for (k, v) in add.env {
        plan.env.retain(|e| e.name != k);
        // Shown in the audit like corral's other variables (the dummy credential included: it
        // is what the agent holds, and it is worthless).
        plan.env_audit.entries.retain(|e| e.name != k);
        plan.env_audit.entries.push(crate::envaudit::AuditEntry {
            name: k.clone(),
            source: AuditSource::Corral,
            masked: crate::envaudit::mask(&v),
            flagged: None,
            decision: Decision::Pass,
        });
        plan.env.push(EnvVar {
            name: k,
            value: v,
            source: AuditSource::Corral,
        });
    }
    if plan.network.mode == NetworkMode::Proxy {
        for h in add.allow_hosts {
            if !plan.network.allow.contains(&h) {
                plan.network.allow.push(h);
            }
        }
    }
    if add.gateway.is_some() && plan.landlock.restrict_tcp_connect {
        plan.landlock.connect_ports.push(crate::agents::GATEWAY_PORT);
        plan.landlock.connect_ports.sort_unstable();
        plan.landlock.connect_ports.dedup();
    }
    plan.network.gateway = add.gateway;
    plan.warnings.extend(add.warnings);
    // The agent's settings file from corral, when the command runs the agent itself.
    if let Some((flag, file)) = spec.settings_flag {
        let runs_agent = plan
            .command
            .first()
            .is_some_and(|c| Path::new(c).file_name().is_some_and(|n| n == spec.name));
        if runs_agent {
            let path = inv.home.join(crate::agents::CORRAL_DIR).join(file);
            plan.command
                .splice(1..1, [flag.to_string(), path.display().to_string()]);
        }
    }
}

fn yes() -> bool {
    true
}

impl Plan {
    /// Drops placeholders that turned out to be unneeded (their directory is not writable by the
    /// sandbox's uid, which cannot create the path either), with the mounts that would protect them.
    pub fn drop_placeholders(&mut self, paths: &[PathBuf]) {
        if paths.is_empty() {
            return;
        }
        self.placeholders.retain(|p| !paths.contains(&p.path));
        self.mounts
            .retain(|m| !matches!(m, MountOp::Rebind { dst, .. } if paths.contains(dst)));
    }
}

/// Names that must never appear in the workspace's `.git` directory during a session.
pub const GIT_QUARANTINE: &[&str] = &["commondir"];

/// Decides which host directories to watch and for which names: every protected path and masked
/// path (re-applied when the host replaces it), every secret path below a bind that does not exist
/// yet (masked when it appears), `.git/commondir` (quarantined), and, for new deny-glob matches,
/// the workspace root and every directory that had a match at launch.
fn plan_watches(
    tail: &[(PathBuf, u8, MountOp)],
    secrets: &[(PathBuf, PathFact)],
    all_secrets: &[PathBuf],
    binds: &[(PathBuf, PathBuf, Access, FileKind, String)],
    workspace: &Path,
    facts: &HostFacts,
) -> Vec<WatchDir> {
    let mut dirs: BTreeMap<PathBuf, WatchDir> = BTreeMap::new();
    // Inside path → host path, through the bind that contains it.
    let to_host = |inside: &Path| -> Option<PathBuf> {
        binds
            .iter()
            .filter(|(_, dst, ..)| inside.starts_with(dst))
            .max_by_key(|(_, dst, ..)| dst.as_os_str().len())
            .and_then(|(src, dst, ..)| inside.strip_prefix(dst).ok().map(|rest| src.join(rest)))
    };
    let mut add = |inside: &Path, action: WatchAction, deny_globs: bool| {
        let (Some(parent), Some(name)) = (inside.parent(), inside.file_name()) else {
            return;
        };
        let Some(host) = to_host(parent) else { return };
        let d = dirs.entry(parent.to_path_buf()).or_insert_with(|| WatchDir {
            host,
            inside: parent.to_path_buf(),
            names: Vec::new(),
            deny_globs: false,
        });
        d.deny_globs |= deny_globs;
        d.names.push((name.to_string_lossy().into_owned(), action));
    };
    for (_, _, op) in tail {
        match op {
            MountOp::Rebind {
                dst,
                access: Access::ReadOnly,
                ..
            } => add(dst, WatchAction::Protect, false),
            MountOp::Mask { dst, why, .. } => add(dst, WatchAction::Mask, why == "deny"),
            _ => {}
        }
    }
    // Secrets that do not exist yet, below a bound directory that does.
    let existing: Vec<&PathBuf> = secrets.iter().map(|(p, _)| p).collect();
    for (src, dst, ..) in binds {
        for s in all_secrets
            .iter()
            .filter(|s| s.starts_with(src) && !existing.contains(s) && !has_glob(s))
        {
            if let Ok(rest) = s.strip_prefix(src) {
                add(&dst.join(rest), WatchAction::Mask, false);
            }
        }
    }
    let git = workspace.join(".git");
    if facts
        .paths
        .get(&git)
        .is_some_and(|f| f.kind == FileKind::Dir && f.link.is_none())
    {
        for name in GIT_QUARANTINE {
            add(&git.join(name), WatchAction::Quarantine, false);
        }
    }
    // New deny matches in the workspace root.
    dirs.entry(workspace.to_path_buf())
        .or_insert_with(|| WatchDir {
            host: workspace.to_path_buf(),
            inside: workspace.to_path_buf(),
            names: Vec::new(),
            deny_globs: false,
        })
        .deny_globs = true;
    let mut out: Vec<WatchDir> = dirs.into_values().collect();
    for d in &mut out {
        d.names.sort();
        d.names.dedup();
    }
    out
}

/// Compiles `filesystem.deny` (patterns are matched against workspace-relative paths).
pub fn deny_globset(globs: &[String]) -> Result<globset::GlobSet, PlanError> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let glob = Glob::new(g).map_err(|e| PlanError::BadGlob {
            glob: g.clone(),
            reason: e.kind().to_string(),
        })?;
        b.add(glob);
    }
    b.build().map_err(|e| PlanError::BadGlob {
        glob: globs.join(", "),
        reason: e.to_string(),
    })
}

/// Every variable that could enter the sandbox, in the order sources apply (a later one for the
/// same name wins): the host allowlist (`env.pass`), `CORRAL_EXTRA_ENV`, env files, `env.set`,
/// `--env`, then corral's own (`HOME`, `PATH`, …), which nothing overrides. Also the names of the
/// host variables left out. Pure; values are only ever shown masked.
pub fn env_candidates(
    profile: &Profile,
    inv: &Invocation,
) -> (Vec<(String, String, AuditSource)>, Vec<String>) {
    let mut b = GlobSetBuilder::new();
    for p in &profile.env_pass {
        if let Ok(g) = Glob::new(p) {
            b.add(g);
        }
    }
    let pass = b.build().unwrap_or_else(|_| globset::GlobSet::empty());
    let mut out: Vec<(String, String, AuditSource)> = Vec::new();
    let mut left_out = Vec::new();
    for (k, v) in &inv.host_env {
        if pass.is_match(k) {
            out.push((k.clone(), v.clone(), AuditSource::Host));
        } else {
            left_out.push(k.clone());
        }
    }
    let from_host = |name: &str, source: AuditSource, out: &mut Vec<_>, left_out: &mut Vec<String>| {
        if let Some(v) = inv.host_env.get(name) {
            out.push((name.to_string(), v.clone(), source));
            left_out.retain(|n| n != name);
        }
    };
    for name in &inv.extra_env {
        from_host(name, AuditSource::ExtraEnv, &mut out, &mut left_out);
    }
    for f in &inv.env_files {
        out.extend(f.entries.iter().map(|(k, v)| (k.clone(), v.clone(), f.source)));
    }
    for (k, v) in &profile.env_set {
        out.push((k.clone(), v.clone(), AuditSource::ProfileSet));
    }
    for flag in &inv.env_flags {
        match flag.split_once('=') {
            Some((k, v)) => out.push((k.to_string(), v.to_string(), AuditSource::Flag)),
            None => from_host(flag, AuditSource::Flag, &mut out, &mut left_out),
        }
    }
    let path: Vec<String> = profile
        .env_path
        .iter()
        .map(|p| {
            expand("env.path", p, &inv.home, None)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| p.clone())
        })
        .collect();
    let home = inv.home.display().to_string();
    for (k, v) in [
        ("HOME", home.as_str()),
        ("USER", inv.user.as_str()),
        ("LOGNAME", inv.user.as_str()),
        ("SHELL", "/bin/bash"),
        ("TMPDIR", "/tmp"),
        ("PATH", &path.join(":")),
        ("CORRAL_SANDBOX", "1"),
    ] {
        out.push((k.to_string(), v.to_string(), AuditSource::Corral));
    }
    if profile.network_mode == NetworkMode::Proxy {
        out.extend(
            proxy_env()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v, AuditSource::Corral)),
        );
    }
    // Last one wins, at the position of its last occurrence.
    let mut seen = std::collections::BTreeSet::new();
    let mut dedup: Vec<_> = out
        .into_iter()
        .rev()
        .filter(|(k, _, _)| seen.insert(k.clone()))
        .collect();
    dedup.reverse();
    (dedup, left_out)
}

/// What points common tools at the proxy in `network.mode = "proxy"` (set by corral, so nothing
/// from the host or a profile overrides it): the usual proxy variables in both cases, `ALL_PROXY`
/// as SOCKS5 with remote resolution, and the tool-specific ones for tools that ignore those
/// (npm, cargo, Node's built-in fetch, the JVM).
pub fn proxy_env() -> Vec<(&'static str, String)> {
    let http = format!("http://127.0.0.1:{PROXY_PORT}");
    let socks = format!("socks5h://127.0.0.1:{PROXY_PORT}");
    let no_proxy = "localhost,127.0.0.1,::1".to_string();
    vec![
        ("HTTP_PROXY", http.clone()),
        ("HTTPS_PROXY", http.clone()),
        ("ALL_PROXY", socks.clone()),
        ("NO_PROXY", no_proxy.clone()),
        ("http_proxy", http.clone()),
        ("https_proxy", http.clone()),
        ("all_proxy", socks),
        ("no_proxy", no_proxy),
        ("npm_config_proxy", http.clone()),
        ("npm_config_https_proxy", http.clone()),
        ("CARGO_HTTP_PROXY", http.clone()),
        ("NODE_USE_ENV_PROXY", "1".to_string()),
        (
            "JAVA_TOOL_OPTIONS",
            format!(
                "-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort={PROXY_PORT} -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort={PROXY_PORT} -Dhttp.nonProxyHosts=localhost|127.0.0.1"
            ),
        ),
    ]
}

impl Plan {
    /// Review mode: the workspace becomes an overlay over the real project with the session's
    /// `upper` and `work` directories; placeholders are dropped (nothing is created in the real
    /// project: what the agent creates at a protected path lands in the upper layer, where
    /// `corral diff` marks it as an exec trigger).
    pub fn enable_review(&mut self, upper: &Path, work: &Path) {
        let ws = self.workspace.clone();
        for m in &mut self.mounts {
            if matches!(m, MountOp::Bind { dst, why, .. } if dst == &ws && why == "workspace") {
                *m = MountOp::Overlay {
                    dst: ws.clone(),
                    lower: ws.clone(),
                    upper: upper.to_path_buf(),
                    work: work.to_path_buf(),
                };
            }
        }
        let all: Vec<PathBuf> = self.placeholders.iter().map(|p| p.path.clone()).collect();
        self.drop_placeholders(&all);
    }

    /// Lets in a flagged variable the user accepted at the prompt.
    pub fn accept_env(&mut self, name: &str, value: &str, source: AuditSource) {
        for e in self.env_audit.entries.iter_mut().filter(|e| e.name == name) {
            e.decision = Decision::AcceptedByUser;
        }
        self.env.retain(|v| v.name != name);
        self.env.push(EnvVar {
            name: name.to_string(),
            value: value.to_string(),
            source,
        });
    }

    /// The plan with every environment value masked, for printing (`--dry-run --json`): values
    /// never appear in full anywhere but in what is sent to the sandbox.
    pub fn redacted(&self) -> Plan {
        let mut p = self.clone();
        for v in &mut p.env {
            if v.source != AuditSource::Corral {
                v.value = crate::envaudit::mask(&v.value);
            }
        }
        p
    }
}

fn bind(src: &Path, dst: &Path, access: Access, kind: FileKind, create: bool, why: &str) -> MountOp {
    MountOp::Bind {
        src: src.to_path_buf(),
        dst: dst.to_path_buf(),
        access,
        kind,
        create,
        why: why.to_string(),
    }
}

fn rule(path: &str, access: FsAccess) -> LandlockRule {
    LandlockRule {
        path: PathBuf::from(path),
        access,
    }
}
