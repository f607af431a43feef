//! What the host can give the sandbox: the facts `corral_sys::probe::probe_host` gathers
//! ([`HostProbe`]), what they mean for each [`Layer`] ([`assess`]), and the text of `corral check`
//! ([`render_check`]).
//!
//! Pure: the probe is data, so every host (Ubuntu with its AppArmor restriction, a kernel without
//! Landlock, a container) is a test fixture. A detail that is not `full` says why and, where the
//! fix is known, names it.
//!
//! Invariant: [`assess`] returns exactly one report per layer, in [`Layer::ALL`] order; a layer the
//! probe could not establish is `none`, never assumed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::layer::{Achieved, Layer, LayerReport, Level};

/// Raw facts about the host, as `corral_sys::probe::probe_host` found them. No interpretation:
/// that is [`assess`]'s job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostProbe {
    /// `uname -r`, e.g. `6.8.0-51-generic`.
    pub kernel_release: String,
    /// The effective uid the probe ran as. Root is spared restrictions that bind unprivileged users.
    pub euid: u32,
    /// The sysctls that switch unprivileged user namespaces off.
    pub sysctls: UsernsSysctls,
    /// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`; `None` when Landlock is
    /// not compiled in or not enabled at boot.
    pub landlock_abi: Option<u32>,
    /// What the kernel offers of seccomp.
    pub seccomp: SeccompProbe,
    /// Which namespaces a process with the probe's credentials can create.
    pub namespaces: NamespaceProbes,
    /// Mounting overlayfs (option `userxattr`) inside a new user + mount namespace, with its upper
    /// and work directories in the temporary directory.
    pub overlay_in_userns: Attempt,
    /// The cgroup hierarchies this process belongs to.
    pub cgroups: CgroupProbe,
}

/// Sysctls under `/proc/sys` that decide whether unprivileged user namespaces exist. `None`: the
/// file is absent (the kernel has no such knob) or unreadable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsernsSysctls {
    /// `kernel.unprivileged_userns_clone` (Debian and Ubuntu kernels only); `0` forbids them.
    pub unprivileged_userns_clone: Option<i64>,
    /// `user.max_user_namespaces`; `0` forbids user namespaces to everybody.
    pub max_user_namespaces: Option<i64>,
    /// `kernel.apparmor_restrict_unprivileged_userns` (Ubuntu ≥ 23.10); `1` leaves unconfined
    /// programs' user namespaces without capabilities.
    pub apparmor_restrict_unprivileged_userns: Option<i64>,
}

/// seccomp facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeccompProbe {
    /// `prctl(PR_GET_SECCOMP)`: this process's mode (0 off, 2 filter); `None` when the call
    /// failed (a kernel without `CONFIG_SECCOMP`).
    pub current_mode: Option<u32>,
    /// `prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, NULL)` failed with `EFAULT` (the kernel tried
    /// to read the program) rather than `EINVAL`: filter mode is compiled in. Nothing is installed.
    pub filter_mode: bool,
    /// The `Seccomp:` line of `/proc/self/status`, when present.
    pub status_mode: Option<u32>,
    /// The `Seccomp_filters:` line of `/proc/self/status` (filters already stacked on this
    /// process, e.g. a container's), when present.
    pub status_filters: Option<u32>,
    /// `seccomp(SECCOMP_GET_ACTION_AVAIL, SECCOMP_RET_USER_NOTIF)` succeeded: the exec audit's
    /// user notification is available (Linux 5.0+). `None` when not asked (older probe files).
    #[serde(default)]
    pub user_notif: Option<bool>,
}

/// One probe per namespace kind: `unshare(CLONE_NEWUSER | kind)` in a forked child, then its own
/// one-line uid and gid maps (`setgroups` denied first), as the sandbox will do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceProbes {
    /// `CLONE_NEWUSER` alone.
    pub user: Attempt,
    /// `CLONE_NEWUSER | CLONE_NEWNS`.
    pub mount: Attempt,
    /// `CLONE_NEWUSER | CLONE_NEWPID`.
    pub pid: Attempt,
    /// `CLONE_NEWUSER | CLONE_NEWIPC`.
    pub ipc: Attempt,
    /// `CLONE_NEWUSER | CLONE_NEWUTS`.
    pub uts: Attempt,
    /// `CLONE_NEWUSER | CLONE_NEWCGROUP`.
    pub cgroup: Attempt,
    /// `CLONE_NEWUSER | CLONE_NEWNET`.
    pub net: Attempt,
}

/// The outcome of one probe that runs a few steps in a throwaway child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "result", deny_unknown_fields)]
pub enum Attempt {
    /// Every step succeeded.
    Works,
    /// A step failed with an errno.
    Failed {
        /// The step that failed.
        step: Step,
        /// The errno by its C name (`EPERM`), or `errno <n>` for one without a known name.
        errno: String,
    },
    /// The probe itself could not run (fork failed, the child was killed, no temp dir, …).
    NotRun {
        /// What went wrong, e.g. `fork: EAGAIN`.
        reason: String,
    },
}

/// A step of a probe child, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// `unshare(2)` with the namespace flags.
    Unshare,
    /// Writing `deny` to `/proc/self/setgroups`.
    Setgroups,
    /// Writing the one-line `/proc/self/uid_map`.
    UidMap,
    /// Writing the one-line `/proc/self/gid_map`.
    GidMap,
    /// `mount(NULL, "/", NULL, MS_REC|MS_PRIVATE)`.
    MakePrivate,
    /// `mount("overlay", …, "lowerdir=…,upperdir=…,workdir=…,userxattr")`.
    MountOverlay,
}

impl Step {
    /// The call as a user would read it in strace.
    pub fn call(self) -> &'static str {
        match self {
            Step::Unshare => "unshare",
            Step::Setgroups => "write /proc/self/setgroups",
            Step::UidMap => "write /proc/self/uid_map",
            Step::GidMap => "write /proc/self/gid_map",
            Step::MakePrivate => "mount(\"/\", MS_REC|MS_PRIVATE)",
            Step::MountOverlay => "mount(\"overlay\", userxattr)",
        }
    }
}

/// The cgroup hierarchies of this process, from `/proc/self/cgroup` and `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CgroupProbe {
    /// cgroup v1 hierarchies, in `/proc/self/cgroup` order.
    pub v1: Vec<CgroupV1Hierarchy>,
    /// The unified (v2) hierarchy, when a `cgroup2` filesystem is mounted.
    pub v2: Option<CgroupV2Hierarchy>,
}

/// One cgroup v1 hierarchy this process belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CgroupV1Hierarchy {
    /// Its controllers as `/proc/self/cgroup` lists them, e.g. `["cpu", "cpuacct"]`; a named
    /// hierarchy without controllers reads `["name=systemd"]`.
    pub controllers: Vec<String>,
    /// This process's cgroup in it, e.g. `/user.slice`.
    pub path: String,
    /// Where the hierarchy is mounted, when it is.
    pub mount_point: Option<String>,
    /// This process's cgroup directory exists and the effective uid may write to it (create a
    /// child cgroup).
    pub writable: bool,
}

/// The cgroup v2 (unified) hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CgroupV2Hierarchy {
    /// This process's cgroup, e.g. `/user.slice/user-1000.slice/session-2.scope`.
    pub path: String,
    /// Where `cgroup2` is mounted, e.g. `/sys/fs/cgroup` or `/sys/fs/cgroup/unified`.
    pub mount_point: String,
    /// `cgroup.controllers` of this process's cgroup; `None` when unreadable.
    pub controllers: Option<Vec<String>>,
    /// This process's cgroup directory exists and the effective uid may write to it (a delegated
    /// cgroup).
    pub writable: bool,
}

/// The layer levels for every layer in [`Layer::ALL`] (missing from `levels`: `required`), with what
/// this host achieves of each and why.
pub fn assess(probe: &HostProbe, levels: &BTreeMap<Layer, Level>) -> Vec<LayerReport> {
    Layer::ALL
        .iter()
        .map(|&layer| {
            let (achieved, detail) = assess_layer(probe, layer);
            LayerReport {
                layer,
                level: levels.get(&layer).copied().unwrap_or(Level::Required),
                achieved,
                detail,
            }
        })
        .collect()
}

fn assess_layer(probe: &HostProbe, layer: Layer) -> (Achieved, String) {
    let ns = &probe.namespaces;
    match layer {
        Layer::Userns => assess_userns(probe),
        Layer::Mountns => assess_namespace(ns, &MOUNT_NS, &ns.mount),
        Layer::Pidns => assess_namespace(ns, &PID_NS, &ns.pid),
        Layer::Ipcns => assess_namespace(ns, &IPC_NS, &ns.ipc),
        Layer::Utsns => assess_namespace(ns, &UTS_NS, &ns.uts),
        Layer::Cgroupns => assess_namespace(ns, &CGROUP_NS, &ns.cgroup),
        Layer::Netns => assess_namespace(ns, &NET_NS, &ns.net),
        // prctl(PR_SET_NO_NEW_PRIVS) exists since Linux 3.5; dropping capabilities always works.
        Layer::NoNewPrivs => (
            Achieved::Full,
            "no_new_privs set, capability sets cleared".to_string(),
        ),
        Layer::Landlock => assess_landlock(probe),
        Layer::Seccomp => assess_seccomp(&probe.seccomp),
        // setrlimit(2) is as old as Linux.
        Layer::Rlimits => (
            Achieved::Full,
            "setrlimit: core, nproc, fsize, nofile, cpu".to_string(),
        ),
        // From the probe alone: is this user's own cgroup writable? (`corral check` replaces this
        // with a live attempt, which also finds a cgroup delegated by `corral setup`.)
        Layer::Cgroup => {
            let d = cgroup_delegation(&probe.cgroups, probe.euid);
            if d.starts_with("yes") {
                (Achieved::Full, d)
            } else {
                (Achieved::None, "no cgroup this user may write: memory and CPU limits are not enforced, pids falls back to RLIMIT_NPROC; fix: run `sudo corral setup` once".to_string())
            }
        }
    }
}

/// A sysctl that keeps unprivileged users out of user namespaces: the cause, and the fix.
fn userns_sysctl_blocker(s: &UsernsSysctls) -> Option<(&'static str, &'static str)> {
    if s.apparmor_restrict_unprivileged_userns == Some(1) {
        Some((
            "kernel.apparmor_restrict_unprivileged_userns=1",
            "run `sudo corral setup` or `sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0`",
        ))
    } else if s.unprivileged_userns_clone == Some(0) {
        Some((
            "kernel.unprivileged_userns_clone=0",
            "`sudo sysctl kernel.unprivileged_userns_clone=1`",
        ))
    } else if s.max_user_namespaces == Some(0) {
        Some((
            "user.max_user_namespaces=0",
            "`sudo sysctl user.max_user_namespaces=16384`",
        ))
    } else {
        None
    }
}

fn assess_userns(probe: &HostProbe) -> (Achieved, String) {
    let blocker = userns_sysctl_blocker(&probe.sysctls);
    match &probe.namespaces.user {
        Attempt::Works => {
            let mut detail = "no host capabilities, uid and gid mapped 1:1".to_string();
            if let (0, Some((cause, _))) = (probe.euid, blocker) {
                detail.push_str(&format!(" (as root; unprivileged users are blocked by {cause})"));
            }
            (Achieved::Full, detail)
        }
        Attempt::Failed { step, errno } => {
            let detail = match blocker {
                Some((cause, fix)) => format!("blocked by {cause}; fix: {fix}"),
                None => userns_failure(*step, errno, probe.sysctls.max_user_namespaces),
            };
            (Achieved::None, detail)
        }
        Attempt::NotRun { reason } => (Achieved::None, format!("could not be probed: {reason}")),
    }
}

/// Why `unshare(CLONE_NEWUSER)` or the id maps failed when no sysctl explains it.
fn userns_failure(step: Step, errno: &str, max_user_namespaces: Option<i64>) -> String {
    let call = step.call();
    match (step, errno) {
        (Step::Unshare, "EPERM") => format!(
            "user namespaces are not permitted here (EPERM from {call}): are you inside a container? \
             fix: run corral on the host, or let the container create user namespaces \
             (Docker: `--security-opt seccomp=unconfined --security-opt apparmor=unconfined`)"
        ),
        (_, "EPERM" | "EACCES") => format!(
            "user namespaces are created without capabilities ({errno} from {call}): a security \
             module (AppArmor, SELinux) restricts them; fix: allow corral user namespaces in its policy"
        ),
        (Step::Unshare, "ENOSPC") => match max_user_namespaces {
            Some(n) => format!(
                "all {n} user namespaces of user.max_user_namespaces are in use (ENOSPC from {call}); \
                 fix: raise it with `sudo sysctl user.max_user_namespaces=<more>`"
            ),
            None => format!("the user namespace limit is reached (ENOSPC from {call})"),
        },
        (Step::Unshare, "EINVAL") => format!(
            "kernel built without user namespaces (EINVAL from {call}); fix: a kernel with CONFIG_USER_NS=y"
        ),
        (Step::Unshare, "EUSERS") => {
            format!("too deeply nested: 32 levels of user namespaces already (EUSERS from {call})")
        }
        (_, _) => format!("{call} failed: {errno}"),
    }
}

/// What a namespace layer needs to be explained.
struct NsKind {
    /// The `unshare` flags as strace prints them.
    flags: &'static str,
    /// The per-user-namespace limit sysctl.
    max_sysctl: &'static str,
    /// The kernel option that builds it, when it can be left out.
    config: Option<&'static str>,
    /// What the layer enforces, for the `full` detail.
    enforces: &'static str,
}

const MOUNT_NS: NsKind = NsKind {
    flags: "CLONE_NEWUSER|CLONE_NEWNS",
    max_sysctl: "user.max_mnt_namespaces",
    config: None,
    enforces: "own filesystem view: new root, explicit binds",
};
const PID_NS: NsKind = NsKind {
    flags: "CLONE_NEWUSER|CLONE_NEWPID",
    max_sysctl: "user.max_pid_namespaces",
    config: Some("CONFIG_PID_NS"),
    enforces: "host processes invisible, fresh /proc",
};
const IPC_NS: NsKind = NsKind {
    flags: "CLONE_NEWUSER|CLONE_NEWIPC",
    max_sysctl: "user.max_ipc_namespaces",
    config: Some("CONFIG_IPC_NS"),
    enforces: "private System V IPC and POSIX message queues",
};
const UTS_NS: NsKind = NsKind {
    flags: "CLONE_NEWUSER|CLONE_NEWUTS",
    max_sysctl: "user.max_uts_namespaces",
    config: Some("CONFIG_UTS_NS"),
    enforces: "own hostname",
};
const CGROUP_NS: NsKind = NsKind {
    flags: "CLONE_NEWUSER|CLONE_NEWCGROUP",
    max_sysctl: "user.max_cgroup_namespaces",
    config: Some("CONFIG_CGROUPS"),
    enforces: "cgroup tree rooted at the sandbox",
};
const NET_NS: NsKind = NsKind {
    flags: "CLONE_NEWUSER|CLONE_NEWNET",
    max_sysctl: "user.max_net_namespaces",
    config: Some("CONFIG_NET_NS"),
    enforces: "only lo; egress through corral's proxy",
};

fn assess_namespace(ns: &NamespaceProbes, kind: &NsKind, attempt: &Attempt) -> (Achieved, String) {
    if ns.user != Attempt::Works {
        return (
            Achieved::None,
            "needs a user namespace, which is unavailable (see userns)".to_string(),
        );
    }
    let flags = kind.flags;
    match attempt {
        Attempt::Works => (Achieved::Full, kind.enforces.to_string()),
        Attempt::Failed { step, errno } => {
            let detail = match (step, errno.as_str(), kind.config) {
                (Step::Unshare, "EPERM", _) => format!(
                    "{flags} refused (EPERM from unshare): a security policy here (a container's \
                     seccomp profile or an LSM) forbids it"
                ),
                (Step::Unshare, "ENOSPC", _) => format!(
                    "{} is 0 or used up (ENOSPC from unshare); fix: raise it with `sudo sysctl {}=<more>`",
                    kind.max_sysctl, kind.max_sysctl
                ),
                (Step::Unshare, "EINVAL", Some(config)) => {
                    format!("kernel built without {config} (EINVAL from unshare({flags}))")
                }
                (step, errno, _) => format!("{} with {flags} failed: {errno}", step.call()),
            };
            (Achieved::None, detail)
        }
        Attempt::NotRun { reason } => (Achieved::None, format!("could not be probed: {reason}")),
    }
}

/// Landlock ABI that brings abstract-socket and signal scoping, the last piece corral plans for.
const LANDLOCK_ABI_SCOPING: u32 = 6;
/// Landlock ABI that brings TCP bind/connect rules.
const LANDLOCK_ABI_NET: u32 = 4;
/// What each ABI below [`LANDLOCK_ABI_SCOPING`] lacks, with the ABI that adds it.
const LANDLOCK_LATER: [(u32, &str); 5] = [
    (2, "cross-directory rename and link (ABI 2)"),
    (3, "truncate control (ABI 3)"),
    (4, "TCP connect rules (ABI 4)"),
    (5, "device ioctl control (ABI 5)"),
    (6, "abstract-socket and signal scoping (ABI 6)"),
];
/// The first kernel with Landlock (ABI 1).
const LANDLOCK_FIRST_KERNEL: (u32, u32) = (5, 13);

fn assess_landlock(probe: &HostProbe) -> (Achieved, String) {
    match probe.landlock_abi {
        Some(abi) if abi >= LANDLOCK_ABI_SCOPING => (
            Achieved::Full,
            format!("ABI {abi}: filesystem, TCP connect, scoping"),
        ),
        Some(abi) if abi >= 1 => {
            let have = if abi >= LANDLOCK_ABI_NET {
                "filesystem, TCP connect"
            } else {
                "filesystem"
            };
            let missing: Vec<&str> = LANDLOCK_LATER
                .iter()
                .filter(|(since, _)| abi < *since)
                .map(|(_, what)| *what)
                .collect();
            (
                Achieved::Partial,
                format!(
                    "ABI {abi}: {have}; missing {}; fix: kernel 6.12 or later",
                    missing.join(", ")
                ),
            )
        }
        Some(_) | None => {
            let detail = match kernel_version(&probe.kernel_release) {
                Some(v) if v < LANDLOCK_FIRST_KERNEL => format!(
                    "Landlock not available: kernel {} predates it (5.13); fix: kernel 6.12 or later",
                    probe.kernel_release
                ),
                Some(_) | None => {
                    "Landlock not enabled: add `landlock` to the lsm= kernel parameter".to_string()
                }
            };
            (Achieved::None, detail)
        }
    }
}

/// `(major, minor)` of a release string such as `6.8.0-51-generic`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn assess_seccomp(s: &SeccompProbe) -> (Achieved, String) {
    match (s.current_mode, s.filter_mode) {
        (Some(_), true) => {
            let mut detail = "filter mode: deny list returning EPERM".to_string();
            if let Some(n @ 1..) = s.status_filters {
                detail.push_str(&format!(
                    " (stacked on {n} filter(s) this process already has, e.g. a container's)"
                ));
            }
            match s.user_notif {
                Some(true) => detail.push_str("; user notification: programs started and denied calls are recorded"),
                Some(false) => detail.push_str(
                    "; NO user notification (Linux < 5.0 or refused): programs started and denied calls are NOT recorded in the audit log",
                ),
                None => {}
            }
            (Achieved::Full, detail)
        }
        (Some(_), false) => (
            Achieved::None,
            "kernel built without CONFIG_SECCOMP_FILTER".to_string(),
        ),
        (None, _) => (
            Achieved::None,
            "kernel built without CONFIG_SECCOMP (prctl(PR_GET_SECCOMP) failed)".to_string(),
        ),
    }
}

/// Width of the first column of `corral check`.
const NAME_WIDTH: usize = 12;
/// Width of the achieved column of `corral check`.
const ACHIEVED_WIDTH: usize = 8;
/// The v1 controllers whose delegation gives corral its resource limits.
const V1_LIMIT_CONTROLLERS: [&str; 2] = ["memory", "pids"];

/// The text of `corral check`: the kernel, one line per layer report (name, achieved, detail; a
/// level in brackets when not `full`), the cgroup mode and delegation, overlayfs in a user
/// namespace, and a closing line saying whether every required layer is available.
pub fn render_check(probe: &HostProbe, reports: &[LayerReport]) -> String {
    let mut out = String::new();
    let who = match probe.euid {
        0 => "probed as root: unprivileged users may get less".to_string(),
        uid => format!("probed as uid {uid}"),
    };
    push_info(&mut out, "kernel", &format!("{} ({who})", probe.kernel_release));
    for r in reports {
        let level = match (r.achieved, r.level) {
            (Achieved::Full, _) => "",
            (Achieved::Partial | Achieved::None, Level::Required) => " [required]",
            (Achieved::Partial | Achieved::None, Level::BestEffort) => " [best effort]",
        };
        out.push_str(&format!(
            "{:<NAME_WIDTH$} {:<ACHIEVED_WIDTH$} {}{level}\n",
            r.layer.name(),
            r.achieved.to_string(),
            r.detail
        ));
    }
    push_info(&mut out, "cgroups", &cgroup_mode(&probe.cgroups));
    // A cgroup layer that was had (`corral check` makes a live attempt, which also finds a
    // directory delegated by `corral setup`) answers the question better than the probe.
    let delegated = match reports.iter().find(|r| r.layer == Layer::Cgroup) {
        Some(r) if r.achieved != Achieved::None => {
            "yes: a session cgroup can be made (see the cgroup layer)".to_string()
        }
        _ => cgroup_delegation(&probe.cgroups, probe.euid),
    };
    push_info(&mut out, "delegated", &delegated);
    push_info(&mut out, "overlayfs", &overlay_line(&probe.overlay_in_userns));
    push_info(&mut out, "result", &result_line(reports));
    out
}

/// One information line of `corral check`, its text aligned with the layers' achieved column.
fn push_info(out: &mut String, label: &str, text: &str) {
    out.push_str(&format!("{label:<NAME_WIDTH$} {text}\n"));
}

fn cgroup_mode(c: &CgroupProbe) -> String {
    let mut v1: Vec<&str> =
        c.v1.iter()
            .filter(|h| h.mount_point.is_some())
            .flat_map(|h| h.controllers.iter().map(String::as_str))
            .filter(|name| !name.starts_with("name="))
            .collect();
    v1.sort_unstable();
    v1.dedup();
    let v2 = c.v2.as_ref().map(|h| match &h.controllers {
        Some(list) if !list.is_empty() => list.join(", "),
        Some(_) => "no controllers".to_string(),
        None => "controllers unknown".to_string(),
    });
    match (v1.is_empty(), v2) {
        (false, Some(v2)) => format!("hybrid: v1 {}; v2 {v2}", v1.join(", ")),
        (true, Some(v2)) => format!("v2: {v2}"),
        (false, None) => format!("v1: {}", v1.join(", ")),
        (true, None) => "none mounted".to_string(),
    }
}

fn cgroup_delegation(c: &CgroupProbe, euid: u32) -> String {
    let mut writable: Vec<String> = V1_LIMIT_CONTROLLERS
        .iter()
        .filter(|ctrl| {
            c.v1.iter()
                .any(|h| h.writable && h.controllers.iter().any(|x| x == *ctrl))
        })
        .map(|ctrl| format!("v1 {ctrl}"))
        .collect();
    if c.v2.as_ref().is_some_and(|h| h.writable) {
        writable.push("v2".to_string());
    }
    if writable.is_empty() {
        format!(
            "no: no cgroup is writable by uid {euid}, so memory and pids limits fall back to \
             rlimits; fix: run `sudo corral setup` once"
        )
    } else {
        format!("yes: {} writable by uid {euid}", writable.join(", "))
    }
}

fn overlay_line(a: &Attempt) -> String {
    match a {
        Attempt::Works => "works in a user namespace (userxattr)".to_string(),
        Attempt::Failed { step, errno } => {
            format!("fails in a user namespace: {}: {errno}", step.call())
        }
        Attempt::NotRun { reason } => format!("not probed: {reason}"),
    }
}

fn result_line(reports: &[LayerReport]) -> String {
    let refused: Vec<&str> = reports
        .iter()
        .filter(|r| r.refuses_launch())
        .map(|r| r.layer.name())
        .collect();
    let degraded: Vec<&str> = reports
        .iter()
        .filter(|r| !r.refuses_launch() && r.achieved != Achieved::Full)
        .map(|r| r.layer.name())
        .collect();
    match (refused.is_empty(), degraded.is_empty()) {
        (true, true) => "ok: every required layer is available".to_string(),
        (true, false) => format!(
            "ok: every required layer is available; degraded (best effort): {}",
            degraded.join(", ")
        ),
        (false, _) => format!(
            "refused: required layer(s) unavailable: {}; a launch stops until they are fixed \
             (see above) or set to best_effort",
            refused.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn failed(step: Step, errno: &str) -> Attempt {
        Attempt::Failed {
            step,
            errno: errno.to_string(),
        }
    }

    fn all_ns(a: &Attempt) -> NamespaceProbes {
        NamespaceProbes {
            user: a.clone(),
            mount: a.clone(),
            pid: a.clone(),
            ipc: a.clone(),
            uts: a.clone(),
            cgroup: a.clone(),
            net: a.clone(),
        }
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn report(layer: Layer, level: Level, achieved: Achieved, detail: &str) -> LayerReport {
        LayerReport {
            layer,
            level,
            achieved,
            detail: detail.to_string(),
        }
    }

    fn seccomp_ok() -> SeccompProbe {
        SeccompProbe {
            current_mode: Some(0),
            filter_mode: true,
            status_mode: Some(0),
            status_filters: Some(0),
            user_notif: None,
        }
    }

    /// The development VM: Debian 12 userland, kernel 6.18, Landlock ABI 7, hybrid cgroups, root.
    fn this_machine() -> HostProbe {
        let v1 = |ctrl: &[&str], path: &str, mount: &str| CgroupV1Hierarchy {
            controllers: strings(ctrl),
            path: path.to_string(),
            mount_point: Some(mount.to_string()),
            writable: true,
        };
        HostProbe {
            kernel_release: "6.18.44-fc-v669".to_string(),
            euid: 0,
            sysctls: UsernsSysctls {
                unprivileged_userns_clone: None,
                max_user_namespaces: Some(96365),
                apparmor_restrict_unprivileged_userns: None,
            },
            landlock_abi: Some(7),
            seccomp: seccomp_ok(),
            namespaces: all_ns(&Attempt::Works),
            overlay_in_userns: Attempt::Works,
            cgroups: CgroupProbe {
                v1: vec![
                    v1(&["name=systemd"], "/", "/sys/fs/cgroup/systemd"),
                    v1(&["pids"], "/", "/sys/fs/cgroup/pids"),
                    v1(&["blkio"], "/", "/sys/fs/cgroup/blkio"),
                    v1(&["freezer"], "/", "/sys/fs/cgroup/freezer"),
                    v1(&["devices"], "/", "/sys/fs/cgroup/devices"),
                    v1(&["memory"], "/process_api/ef1f", "/sys/fs/cgroup/memory"),
                    v1(&["cpuset"], "/", "/sys/fs/cgroup/cpuset"),
                    v1(&["cpuacct"], "/", "/sys/fs/cgroup/cpuacct"),
                    v1(&["cpu"], "/", "/sys/fs/cgroup/cpu"),
                ],
                v2: Some(CgroupV2Hierarchy {
                    path: "/".to_string(),
                    mount_point: "/sys/fs/cgroup/unified".to_string(),
                    controllers: Some(strings(&["hugetlb"])),
                    writable: true,
                }),
            },
        }
    }

    /// Ubuntu 24.04 as an unprivileged user: AppArmor leaves new user namespaces without
    /// capabilities, so the uid map cannot be written and no other namespace can be created.
    fn ubuntu_2404() -> HostProbe {
        HostProbe {
            kernel_release: "6.8.0-51-generic".to_string(),
            euid: 1000,
            sysctls: UsernsSysctls {
                unprivileged_userns_clone: Some(1),
                max_user_namespaces: Some(127455),
                apparmor_restrict_unprivileged_userns: Some(1),
            },
            landlock_abi: Some(4),
            seccomp: seccomp_ok(),
            namespaces: NamespaceProbes {
                user: failed(Step::UidMap, "EPERM"),
                ..all_ns(&failed(Step::Unshare, "EPERM"))
            },
            overlay_in_userns: failed(Step::Unshare, "EPERM"),
            cgroups: CgroupProbe {
                v1: vec![],
                v2: Some(CgroupV2Hierarchy {
                    path: "/user.slice/user-1000.slice/user@1000.service/app.slice/vte-spawn.scope"
                        .to_string(),
                    mount_point: "/sys/fs/cgroup".to_string(),
                    controllers: Some(strings(&["cpu", "memory", "pids"])),
                    writable: true,
                }),
            },
        }
    }

    /// Debian 11 with the hardening sysctl: a 5.10 kernel, before Landlock existed.
    fn debian_without_landlock() -> HostProbe {
        HostProbe {
            kernel_release: "5.10.0-28-amd64".to_string(),
            euid: 1000,
            sysctls: UsernsSysctls {
                unprivileged_userns_clone: Some(0),
                max_user_namespaces: Some(63444),
                apparmor_restrict_unprivileged_userns: None,
            },
            landlock_abi: None,
            seccomp: seccomp_ok(),
            namespaces: all_ns(&failed(Step::Unshare, "EPERM")),
            overlay_in_userns: failed(Step::Unshare, "EPERM"),
            cgroups: CgroupProbe {
                v1: vec![],
                v2: Some(CgroupV2Hierarchy {
                    path: "/user.slice/user-1000.slice/session-2.scope".to_string(),
                    mount_point: "/sys/fs/cgroup".to_string(),
                    controllers: Some(strings(&["memory", "pids"])),
                    writable: false,
                }),
            },
        }
    }

    /// Fedora 39 on kernel 6.5: everything but Landlock's network and scoping rules.
    fn fedora_landlock_abi3() -> HostProbe {
        HostProbe {
            kernel_release: "6.5.12-300.fc39.x86_64".to_string(),
            euid: 1000,
            sysctls: UsernsSysctls {
                unprivileged_userns_clone: None,
                max_user_namespaces: Some(62756),
                apparmor_restrict_unprivileged_userns: None,
            },
            landlock_abi: Some(3),
            seccomp: seccomp_ok(),
            namespaces: all_ns(&Attempt::Works),
            overlay_in_userns: Attempt::Works,
            cgroups: CgroupProbe {
                v1: vec![],
                v2: Some(CgroupV2Hierarchy {
                    path: "/user.slice/user-1000.slice/user@1000.service/app.slice".to_string(),
                    mount_point: "/sys/fs/cgroup".to_string(),
                    controllers: Some(strings(&["cpu", "io", "memory", "pids"])),
                    writable: true,
                }),
            },
        }
    }

    fn all_required() -> BTreeMap<Layer, Level> {
        BTreeMap::new()
    }

    /// The full reports for namespace layers that all work.
    fn namespaces_full() -> Vec<LayerReport> {
        use Achieved::Full;
        use Level::Required;
        vec![
            report(
                Layer::Mountns,
                Required,
                Full,
                "own filesystem view: new root, explicit binds",
            ),
            report(
                Layer::Pidns,
                Required,
                Full,
                "host processes invisible, fresh /proc",
            ),
            report(
                Layer::Ipcns,
                Required,
                Full,
                "private System V IPC and POSIX message queues",
            ),
            report(Layer::Utsns, Required, Full, "own hostname"),
            report(
                Layer::Cgroupns,
                Required,
                Full,
                "cgroup tree rooted at the sandbox",
            ),
            report(
                Layer::Netns,
                Required,
                Full,
                "only lo; egress through corral's proxy",
            ),
        ]
    }

    fn namespaces_blocked() -> Vec<LayerReport> {
        let why = "needs a user namespace, which is unavailable (see userns)";
        [
            Layer::Mountns,
            Layer::Pidns,
            Layer::Ipcns,
            Layer::Utsns,
            Layer::Cgroupns,
            Layer::Netns,
        ]
        .into_iter()
        .map(|layer| report(layer, Level::Required, Achieved::None, why))
        .collect()
    }

    fn tail(landlock: LayerReport) -> Vec<LayerReport> {
        vec![
            report(
                Layer::NoNewPrivs,
                Level::Required,
                Achieved::Full,
                "no_new_privs set, capability sets cleared",
            ),
            landlock,
            report(
                Layer::Seccomp,
                Level::Required,
                Achieved::Full,
                "filter mode: deny list returning EPERM",
            ),
            report(
                Layer::Rlimits,
                Level::Required,
                Achieved::Full,
                "setrlimit: core, nproc, fsize, nofile, cpu",
            ),
        ]
    }

    /// The cgroup row depends on the fixture's cgroup writability; `cgroup_layer_follows_delegation`
    /// checks it on its own.
    fn without_cgroup(reports: Vec<LayerReport>) -> Vec<LayerReport> {
        reports.into_iter().filter(|r| r.layer != Layer::Cgroup).collect()
    }

    #[test]
    fn cgroup_layer_follows_delegation() {
        let mut probe = this_machine();
        for h in &mut probe.cgroups.v1 {
            h.writable = false;
        }
        if let Some(v2) = &mut probe.cgroups.v2 {
            v2.writable = false;
        }
        let none = assess(&probe, &all_required())
            .into_iter()
            .find(|r| r.layer == Layer::Cgroup)
            .unwrap();
        assert_eq!(
            (none.achieved, none.detail.as_str()),
            (Achieved::None, "no cgroup this user may write: memory and CPU limits are not enforced, pids falls back to RLIMIT_NPROC; fix: run `sudo corral setup` once")
        );
        for h in &mut probe.cgroups.v1 {
            h.writable = true;
        }
        let full = assess(&probe, &all_required())
            .into_iter()
            .find(|r| r.layer == Layer::Cgroup)
            .unwrap();
        assert_eq!(full.achieved, Achieved::Full);
    }

    fn expected(userns: LayerReport, ns: Vec<LayerReport>, landlock: LayerReport) -> Vec<LayerReport> {
        let mut all = vec![userns];
        all.extend(ns);
        all.extend(tail(landlock));
        all
    }

    #[test]
    fn host_this_machine_is_full_everywhere() {
        let probe = this_machine();
        let reports = without_cgroup(assess(&probe, &all_required()));
        assert_eq!(
            reports,
            expected(
                report(
                    Layer::Userns,
                    Level::Required,
                    Achieved::Full,
                    "no host capabilities, uid and gid mapped 1:1",
                ),
                namespaces_full(),
                report(
                    Layer::Landlock,
                    Level::Required,
                    Achieved::Full,
                    "ABI 7: filesystem, TCP connect, scoping",
                ),
            )
        );
        assert_eq!(
            render_check(&probe, &reports),
            "\
kernel       6.18.44-fc-v669 (probed as root: unprivileged users may get less)
userns       full     no host capabilities, uid and gid mapped 1:1
mountns      full     own filesystem view: new root, explicit binds
pidns        full     host processes invisible, fresh /proc
ipcns        full     private System V IPC and POSIX message queues
utsns        full     own hostname
cgroupns     full     cgroup tree rooted at the sandbox
netns        full     only lo; egress through corral's proxy
no_new_privs full     no_new_privs set, capability sets cleared
landlock     full     ABI 7: filesystem, TCP connect, scoping
seccomp      full     filter mode: deny list returning EPERM
rlimits      full     setrlimit: core, nproc, fsize, nofile, cpu
cgroups      hybrid: v1 blkio, cpu, cpuacct, cpuset, devices, freezer, memory, pids; v2 hugetlb
delegated    yes: v1 memory, v1 pids, v2 writable by uid 0
overlayfs    works in a user namespace (userxattr)
result       ok: every required layer is available
"
        );
    }

    #[test]
    fn host_ubuntu_2404_apparmor_restriction_names_the_fix() {
        let probe = ubuntu_2404();
        let reports = without_cgroup(assess(&probe, &all_required()));
        assert_eq!(
            reports,
            expected(
                report(
                    Layer::Userns,
                    Level::Required,
                    Achieved::None,
                    "blocked by kernel.apparmor_restrict_unprivileged_userns=1; fix: run `sudo corral \
                     setup` or `sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0`",
                ),
                namespaces_blocked(),
                report(
                    Layer::Landlock,
                    Level::Required,
                    Achieved::Partial,
                    "ABI 4: filesystem, TCP connect; missing device ioctl control (ABI 5), \
                     abstract-socket and signal scoping (ABI 6); fix: kernel 6.12 or later",
                ),
            )
        );
        assert_eq!(
            render_check(&probe, &reports),
            "\
kernel       6.8.0-51-generic (probed as uid 1000)
userns       none     blocked by kernel.apparmor_restrict_unprivileged_userns=1; fix: run `sudo corral setup` or `sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0` [required]
mountns      none     needs a user namespace, which is unavailable (see userns) [required]
pidns        none     needs a user namespace, which is unavailable (see userns) [required]
ipcns        none     needs a user namespace, which is unavailable (see userns) [required]
utsns        none     needs a user namespace, which is unavailable (see userns) [required]
cgroupns     none     needs a user namespace, which is unavailable (see userns) [required]
netns        none     needs a user namespace, which is unavailable (see userns) [required]
no_new_privs full     no_new_privs set, capability sets cleared
landlock     partial  ABI 4: filesystem, TCP connect; missing device ioctl control (ABI 5), abstract-socket and signal scoping (ABI 6); fix: kernel 6.12 or later [required]
seccomp      full     filter mode: deny list returning EPERM
rlimits      full     setrlimit: core, nproc, fsize, nofile, cpu
cgroups      v2: cpu, memory, pids
delegated    yes: v2 writable by uid 1000
overlayfs    fails in a user namespace: unshare: EPERM
result       refused: required layer(s) unavailable: userns, mountns, pidns, ipcns, utsns, cgroupns, netns, landlock; a launch stops until they are fixed (see above) or set to best_effort
"
        );
    }

    #[test]
    fn host_ubuntu_2404_as_root_is_full_with_a_note() {
        let probe = HostProbe {
            euid: 0,
            namespaces: all_ns(&Attempt::Works),
            ..ubuntu_2404()
        };
        let reports = without_cgroup(assess(&probe, &all_required()));
        assert_eq!(
            reports[0],
            report(
                Layer::Userns,
                Level::Required,
                Achieved::Full,
                "no host capabilities, uid and gid mapped 1:1 (as root; unprivileged users are \
                 blocked by kernel.apparmor_restrict_unprivileged_userns=1)",
            )
        );
    }

    #[test]
    fn host_without_landlock_and_debian_sysctl() {
        let probe = debian_without_landlock();
        let levels = BTreeMap::from([(Layer::Landlock, Level::BestEffort)]);
        let reports = without_cgroup(assess(&probe, &levels));
        assert_eq!(
            reports,
            expected(
                report(
                    Layer::Userns,
                    Level::Required,
                    Achieved::None,
                    "blocked by kernel.unprivileged_userns_clone=0; fix: `sudo sysctl \
                     kernel.unprivileged_userns_clone=1`",
                ),
                namespaces_blocked(),
                report(
                    Layer::Landlock,
                    Level::BestEffort,
                    Achieved::None,
                    "Landlock not available: kernel 5.10.0-28-amd64 predates it (5.13); fix: kernel \
                     6.12 or later",
                ),
            )
        );
        assert_eq!(
            render_check(&probe, &reports),
            "\
kernel       5.10.0-28-amd64 (probed as uid 1000)
userns       none     blocked by kernel.unprivileged_userns_clone=0; fix: `sudo sysctl kernel.unprivileged_userns_clone=1` [required]
mountns      none     needs a user namespace, which is unavailable (see userns) [required]
pidns        none     needs a user namespace, which is unavailable (see userns) [required]
ipcns        none     needs a user namespace, which is unavailable (see userns) [required]
utsns        none     needs a user namespace, which is unavailable (see userns) [required]
cgroupns     none     needs a user namespace, which is unavailable (see userns) [required]
netns        none     needs a user namespace, which is unavailable (see userns) [required]
no_new_privs full     no_new_privs set, capability sets cleared
landlock     none     Landlock not available: kernel 5.10.0-28-amd64 predates it (5.13); fix: kernel 6.12 or later [best effort]
seccomp      full     filter mode: deny list returning EPERM
rlimits      full     setrlimit: core, nproc, fsize, nofile, cpu
cgroups      v2: memory, pids
delegated    no: no cgroup is writable by uid 1000, so memory and pids limits fall back to rlimits; fix: run `sudo corral setup` once
overlayfs    fails in a user namespace: unshare: EPERM
result       refused: required layer(s) unavailable: userns, mountns, pidns, ipcns, utsns, cgroupns, netns; a launch stops until they are fixed (see above) or set to best_effort
"
        );
    }

    #[test]
    fn host_landlock_compiled_in_but_not_enabled_names_lsm_parameter() {
        let probe = HostProbe {
            kernel_release: "6.1.0-18-amd64".to_string(),
            landlock_abi: None,
            ..this_machine()
        };
        let reports = without_cgroup(assess(&probe, &all_required()));
        assert_eq!(
            reports[8],
            report(
                Layer::Landlock,
                Level::Required,
                Achieved::None,
                "Landlock not enabled: add `landlock` to the lsm= kernel parameter",
            )
        );
    }

    #[test]
    fn host_old_kernel_with_landlock_abi_3() {
        let probe = fedora_landlock_abi3();
        let levels = BTreeMap::from([(Layer::Landlock, Level::BestEffort)]);
        let reports = without_cgroup(assess(&probe, &levels));
        assert_eq!(
            reports,
            expected(
                report(
                    Layer::Userns,
                    Level::Required,
                    Achieved::Full,
                    "no host capabilities, uid and gid mapped 1:1",
                ),
                namespaces_full(),
                report(
                    Layer::Landlock,
                    Level::BestEffort,
                    Achieved::Partial,
                    "ABI 3: filesystem; missing TCP connect rules (ABI 4), device ioctl control \
                     (ABI 5), abstract-socket and signal scoping (ABI 6); fix: kernel 6.12 or later",
                ),
            )
        );
        assert_eq!(
            render_check(&probe, &reports),
            "\
kernel       6.5.12-300.fc39.x86_64 (probed as uid 1000)
userns       full     no host capabilities, uid and gid mapped 1:1
mountns      full     own filesystem view: new root, explicit binds
pidns        full     host processes invisible, fresh /proc
ipcns        full     private System V IPC and POSIX message queues
utsns        full     own hostname
cgroupns     full     cgroup tree rooted at the sandbox
netns        full     only lo; egress through corral's proxy
no_new_privs full     no_new_privs set, capability sets cleared
landlock     partial  ABI 3: filesystem; missing TCP connect rules (ABI 4), device ioctl control (ABI 5), abstract-socket and signal scoping (ABI 6); fix: kernel 6.12 or later [best effort]
seccomp      full     filter mode: deny list returning EPERM
rlimits      full     setrlimit: core, nproc, fsize, nofile, cpu
cgroups      v2: cpu, io, memory, pids
delegated    yes: v2 writable by uid 1000
overlayfs    works in a user namespace (userxattr)
result       ok: every required layer is available; degraded (best effort): landlock
"
        );
    }

    #[test]
    fn host_landlock_abi_1_lists_every_missing_piece() {
        let probe = HostProbe {
            landlock_abi: Some(1),
            ..fedora_landlock_abi3()
        };
        assert_eq!(
            assess_landlock(&probe),
            (
                Achieved::Partial,
                "ABI 1: filesystem; missing cross-directory rename and link (ABI 2), truncate \
                 control (ABI 3), TCP connect rules (ABI 4), device ioctl control (ABI 5), \
                 abstract-socket and signal scoping (ABI 6); fix: kernel 6.12 or later"
                    .to_string()
            )
        );
    }

    #[test]
    fn host_userns_in_a_container_and_other_failures() {
        let base = fedora_landlock_abi3();
        let userns = |user: Attempt, max: Option<i64>| {
            let probe = HostProbe {
                namespaces: NamespaceProbes {
                    user,
                    ..base.namespaces.clone()
                },
                sysctls: UsernsSysctls {
                    max_user_namespaces: max,
                    ..base.sysctls.clone()
                },
                ..base.clone()
            };
            assess_userns(&probe).1
        };
        assert_eq!(
            userns(failed(Step::Unshare, "EPERM"), Some(62756)),
            "user namespaces are not permitted here (EPERM from unshare): are you inside a \
             container? fix: run corral on the host, or let the container create user namespaces \
             (Docker: `--security-opt seccomp=unconfined --security-opt apparmor=unconfined`)"
        );
        assert_eq!(
            userns(failed(Step::Unshare, "ENOSPC"), Some(0)),
            "blocked by user.max_user_namespaces=0; fix: `sudo sysctl user.max_user_namespaces=16384`"
        );
        assert_eq!(
            userns(failed(Step::Unshare, "ENOSPC"), Some(10)),
            "all 10 user namespaces of user.max_user_namespaces are in use (ENOSPC from unshare); \
             fix: raise it with `sudo sysctl user.max_user_namespaces=<more>`"
        );
        assert_eq!(
            userns(failed(Step::UidMap, "EPERM"), Some(62756)),
            "user namespaces are created without capabilities (EPERM from write /proc/self/uid_map): \
             a security module (AppArmor, SELinux) restricts them; fix: allow corral user \
             namespaces in its policy"
        );
        assert_eq!(
            userns(
                Attempt::NotRun {
                    reason: "fork: EAGAIN".to_string()
                },
                None
            ),
            "could not be probed: fork: EAGAIN"
        );
    }

    #[test]
    fn host_single_namespace_failures_name_the_cause() {
        let base = fedora_landlock_abi3();
        let probe = HostProbe {
            namespaces: NamespaceProbes {
                net: failed(Step::Unshare, "EPERM"),
                pid: failed(Step::Unshare, "EINVAL"),
                ipc: failed(Step::Unshare, "ENOSPC"),
                ..base.namespaces.clone()
            },
            ..base
        };
        let reports = without_cgroup(assess(&probe, &all_required()));
        let details: Vec<(Layer, Achieved, &str)> = reports[1..7]
            .iter()
            .map(|r| (r.layer, r.achieved, r.detail.as_str()))
            .collect();
        assert_eq!(
            details,
            vec![
                (
                    Layer::Mountns,
                    Achieved::Full,
                    "own filesystem view: new root, explicit binds"
                ),
                (
                    Layer::Pidns,
                    Achieved::None,
                    "kernel built without CONFIG_PID_NS (EINVAL from unshare(CLONE_NEWUSER|CLONE_NEWPID))"
                ),
                (
                    Layer::Ipcns,
                    Achieved::None,
                    "user.max_ipc_namespaces is 0 or used up (ENOSPC from unshare); fix: raise it \
                     with `sudo sysctl user.max_ipc_namespaces=<more>`"
                ),
                (Layer::Utsns, Achieved::Full, "own hostname"),
                (
                    Layer::Cgroupns,
                    Achieved::Full,
                    "cgroup tree rooted at the sandbox"
                ),
                (
                    Layer::Netns,
                    Achieved::None,
                    "CLONE_NEWUSER|CLONE_NEWNET refused (EPERM from unshare): a security policy \
                     here (a container's seccomp profile or an LSM) forbids it"
                ),
            ]
        );
    }

    #[test]
    fn host_seccomp_levels() {
        assert_eq!(
            assess_seccomp(&SeccompProbe {
                status_mode: Some(2),
                status_filters: Some(1),
                ..seccomp_ok()
            }),
            (
                Achieved::Full,
                "filter mode: deny list returning EPERM (stacked on 1 filter(s) this process \
                 already has, e.g. a container's)"
                    .to_string()
            )
        );
        assert_eq!(
            assess_seccomp(&SeccompProbe {
                filter_mode: false,
                status_filters: None,
                ..seccomp_ok()
            }),
            (
                Achieved::None,
                "kernel built without CONFIG_SECCOMP_FILTER".to_string()
            )
        );
        assert_eq!(
            assess_seccomp(&SeccompProbe {
                current_mode: None,
                filter_mode: false,
                status_mode: None,
                status_filters: None,
                user_notif: None,
            }),
            (
                Achieved::None,
                "kernel built without CONFIG_SECCOMP (prctl(PR_GET_SECCOMP) failed)".to_string()
            )
        );
    }

    #[test]
    fn host_seccomp_says_whether_the_exec_audit_can_record() {
        let (level, detail) = assess_seccomp(&SeccompProbe {
            user_notif: Some(true),
            ..seccomp_ok()
        });
        assert_eq!(level, Achieved::Full);
        assert!(
            detail.ends_with("; user notification: programs started and denied calls are recorded"),
            "{detail}"
        );
        let (_, detail) = assess_seccomp(&SeccompProbe {
            user_notif: Some(false),
            ..seccomp_ok()
        });
        assert!(detail.contains("are NOT recorded in the audit log"), "{detail}");
    }

    #[test]
    fn host_probe_round_trips_through_json() {
        let probe = ubuntu_2404();
        let json = serde_json::to_string(&probe).expect("serialize");
        let back: HostProbe = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, probe);
        assert!(
            json.contains(r#""user":{"result":"failed","step":"uid_map","errno":"EPERM"}"#),
            "{json}"
        );
    }
}
