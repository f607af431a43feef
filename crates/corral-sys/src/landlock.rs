//! Landlock: applies a [`LandlockPolicy`] (filesystem rules, TCP connect ports, scopes) to the
//! calling thread; everything that thread forks afterwards inherits the restriction.
//!
//! What it enforces:
//! - every filesystem right the `landlock` crate knows (pinned at `CRATE_ABI`) is handled, so
//!   anything not beneath a rule of the policy is denied; each [`FsAccess`] maps to a fixed set of
//!   rights (`fs_rights`);
//! - with `restrict_tcp_connect`, TCP `connect(2)` only to `connect_ports` (ABI ≥ 4); TCP `bind(2)`
//!   is deliberately not handled (see [`restrict_landlock`]);
//! - abstract unix socket and signal scoping (ABI ≥ 6), when the policy asks for them.
//!
//! Ordering (the launcher's init, see DESIGN.md §8): after the last mount (a Landlock domain forbids
//! any further mount change) and after `no_new_privs` (required by `landlock_restrict_self` for an
//! unprivileged caller), before seccomp (whose filter may deny the Landlock syscalls) and exec.
//! `landlock_restrict_self` is called without `LANDLOCK_RESTRICT_SELF_TSYNC`: it restricts the
//! calling thread only, so the caller must not have started other threads that later run the agent.
//!
//! Limits: Landlock is an allow-list by hierarchy. A rule on a directory grants its rights to
//! everything beneath it, and no rule can carve an exception below an allowed directory: hiding a
//! secret inside an allowed tree is the mount plan's job (it masks the path). A kernel older than the
//! plan needs gets a weaker ruleset (best effort); [`LandlockOutcome`] says exactly what was lost,
//! and [`Level::Required`] turns any loss into an error before anything is restricted.

use std::io;
use std::path::PathBuf;

use ::landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, PathFd,
    PathFdError, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetError, RulesetStatus, Scope, ABI,
};
use corral_core::landlock_policy::{FsAccess, LandlockPolicy};
use corral_core::layer::{Achieved, Level};

/// The newest Landlock ABI whose rights are handed to the kernel: every filesystem right the
/// `landlock` crate (0.4.8) defines, up to `ResolveUnix` (ABI 9). Pinned rather than "whatever the
/// crate knows", so that upgrading the crate cannot add an untested right (the crate's own advice,
/// see `landlock::ABI`). Bump it deliberately, with the mapping in [`fs_rights`].
const CRATE_ABI: ABI = ABI::V10;

/// `LANDLOCK_CREATE_RULESET_VERSION` from `include/uapi/linux/landlock.h`: with a NULL attribute and
/// size 0, `landlock_create_ruleset` returns the highest supported ABI version instead of a ruleset.
const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1 << 0;

/// ABI that introduced `LANDLOCK_ACCESS_FS_REFER` (Linux 5.19): renames and links across
/// directories. Before it, such renames always fail with `EXDEV` inside a domain.
const REFER_ABI: u32 = 2;
/// ABI that introduced `LANDLOCK_ACCESS_FS_TRUNCATE` (Linux 6.2).
const TRUNCATE_ABI: u32 = 3;
/// ABI that introduced `LANDLOCK_ACCESS_NET_CONNECT_TCP` and `BIND_TCP` (Linux 6.7).
const TCP_ABI: u32 = 4;
/// ABI that introduced `LANDLOCK_ACCESS_FS_IOCTL_DEV` (Linux 6.10).
const IOCTL_DEV_ABI: u32 = 5;
/// ABI that introduced `LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET` and `LANDLOCK_SCOPE_SIGNAL` (Linux 6.12).
const SCOPE_ABI: u32 = 6;
/// ABI that introduced `LANDLOCK_ACCESS_FS_RESOLVE_UNIX` (connecting to pathname unix sockets).
/// Handled when the kernel has it, but not counted in [`Achieved`]: the plan does not rely on it.
const RESOLVE_UNIX_ABI: u32 = 9;

/// What Landlock achieved, for reports (`corral check`, the audit log, `corral ps`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandlockOutcome {
    /// `Full`: everything the policy relies on is enforced; `Partial`: the kernel's ABI lacks some
    /// of it (named in `detail`); `None`: Landlock is unavailable, nothing is enforced.
    pub achieved: Achieved,
    /// The running kernel's Landlock ABI version, `None` when Landlock is unsupported or disabled.
    pub abi: Option<u32>,
    /// What is enforced, or what is missing and why (e.g. `ABI 3: no ioctl_dev, no TCP rules, no
    /// scoping`).
    pub detail: String,
}

/// Why [`restrict_landlock`] failed. Each message names the operation and its input, strace-like.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    /// A rule's path could not be opened with `O_PATH` (the plan lists only paths that exist).
    #[error("landlock: open({path:?}) for a rule: {reason}")]
    OpenPath {
        /// The rule's path, inside the sandbox.
        path: PathBuf,
        /// The errno name (`ENOENT`), or the error text when there is no errno.
        reason: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A step of building or enforcing the ruleset failed (`handle_access`, `create`, `add_rule`,
    /// `restrict_self`).
    #[error("landlock: {op}: {reason}")]
    Ruleset {
        /// The step and its input, e.g. `add_rule("/usr", ReadExec)`.
        op: String,
        /// The errno name (`EBADF`), or the crate's description when no syscall failed.
        reason: String,
        /// The `landlock` crate's error.
        #[source]
        source: RulesetError,
    },
    /// The profile requires Landlock (`layers.landlock = "required"`) and this kernel cannot give
    /// all of it. Returned before anything is restricted.
    #[error("landlock is required but achieved {achieved}: {detail}; hint: {fix}")]
    Required {
        /// What the kernel can give (`partial` or `none`).
        achieved: Achieved,
        /// What is missing and why, as in [`LandlockOutcome::detail`].
        detail: String,
        /// How to fix it: the ABI needed, and the `best_effort` alternative.
        fix: String,
    },
}

/// Applies `policy` to the calling thread with Landlock, best effort on the running kernel's ABI.
///
/// With [`Level::Required`], a kernel that cannot enforce everything the policy relies on is an
/// error ([`LandlockError::Required`]), returned before any restriction. With
/// [`Level::BestEffort`], whatever the kernel supports is enforced and the outcome says what was
/// lost. Call it after the last mount and after `no_new_privs`, in the thread that forks the agent.
pub fn restrict_landlock(policy: &LandlockPolicy, level: Level) -> Result<LandlockOutcome, LandlockError> {
    // Decide first, restrict after: a required layer that cannot be had stops the launch here,
    // with nothing half-applied.
    let assessment = assess(policy, probe_abi());
    check_level(&assessment, level)?;

    // Open every rule path before creating the ruleset, even when Landlock is unavailable: a path
    // the plan lists but that does not exist is a plan bug on every kernel.
    let mut rule_fds = Vec::with_capacity(policy.rules.len());
    for rule in &policy.rules {
        let fd = PathFd::new(&rule.path).map_err(|error| open_error(&rule.path, error))?;
        rule_fds.push((rule, fd));
    }

    // No Landlock at all: nothing to build (the outcome already says why).
    if assessment.outcome.achieved == Achieved::None {
        return Ok(assessment.outcome);
    }

    // Every filesystem right the crate knows is handled, best effort: rights the kernel lacks are
    // dropped by the crate, and `assess` has already named the ones the plan relies on.
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(CRATE_ABI))
        .map_err(|source| ruleset_error("handle_access(filesystem: all rights)".into(), source))?;

    // TCP connect only, never bind: handling `BindTcp` with no rule denies every bind(2) and breaks
    // dev servers, while binding inside the sandbox's own network namespace (only `lo`) reaches
    // nobody outside; and the proxy port is already bound by init without SO_REUSEPORT, so no
    // process in the sandbox can take it over.
    if policy.restrict_tcp_connect {
        ruleset = ruleset
            .handle_access(AccessNet::ConnectTcp)
            .map_err(|source| ruleset_error("handle_access(connect_tcp)".into(), source))?;
    }

    let scopes = scopes(policy);
    if !scopes.is_empty() {
        ruleset = ruleset
            .scope(scopes)
            .map_err(|source| ruleset_error(format!("scope({scopes:?})"), source))?;
    }

    let mut created = ruleset
        .create()
        .map_err(|source| ruleset_error("landlock_create_ruleset".into(), source))?;

    for (rule, fd) in rule_fds {
        created = created
            .add_rule(PathBeneath::new(fd, fs_rights(rule.access)))
            .map_err(|source| {
                ruleset_error(format!("add_rule({:?}, {:?})", rule.path, rule.access), source)
            })?;
    }

    if policy.restrict_tcp_connect {
        for &port in &policy.connect_ports {
            created = created
                .add_rule(NetPort::new(port, AccessNet::ConnectTcp))
                .map_err(|source| ruleset_error(format!("add_rule(tcp port {port}, connect)"), source))?;
        }
    }

    // The crate also sets no_new_privs (again: the launcher already did) before restricting.
    let status = created
        .restrict_self()
        .map_err(|source| ruleset_error("landlock_restrict_self".into(), source))?;

    match status.ruleset {
        RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced => Ok(assessment.outcome),
        RulesetStatus::NotEnforced => {
            // Unexpected: the probe saw Landlock, but the crate found nothing it could enforce.
            let outcome = LandlockOutcome {
                achieved: Achieved::None,
                abi: assessment.outcome.abi,
                detail: format!(
                    "{}; but the landlock crate enforced nothing (ruleset NotEnforced)",
                    assessment.outcome.detail
                ),
            };
            match level {
                Level::Required => Err(LandlockError::Required {
                    achieved: outcome.achieved,
                    detail: outcome.detail,
                    fix: "report this as a corral bug, or set layers.landlock = \"best_effort\"".into(),
                }),
                Level::BestEffort => Ok(outcome),
            }
        }
    }
}

/// The running kernel's Landlock ABI version (`landlock_create_ruleset` with
/// `LANDLOCK_CREATE_RULESET_VERSION`), `None` when Landlock is not built in or disabled at boot.
/// Used by `corral check` and by the pure planner.
pub fn abi_version() -> Option<u32> {
    probe_abi().ok()
}

/// The kernel's Landlock ABI, or the errno of the version query (`EOPNOTSUPP`: built in but
/// disabled at boot; `ENOSYS`: not built in, or the syscall is filtered).
fn probe_abi() -> Result<u32, i32> {
    // SAFETY: the documented version query of landlock_create_ruleset(2): a NULL attribute with
    // size 0 and only the VERSION flag. The kernel reads and writes no user memory, and the call
    // creates no file descriptor, so there is nothing to free or to keep alive.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0_usize,
            libc::c_ulong::from(LANDLOCK_CREATE_RULESET_VERSION),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOSYS))
    } else {
        u32::try_from(ret).map_err(|_| libc::EOVERFLOW)
    }
}

/// The Landlock filesystem rights each access class grants beneath its path, intersected with
/// what is handled. `Full` includes `MakeChar`/`MakeBlock` (mknod is impossible in a user
/// namespace anyway) and `ResolveUnix` (connecting to pathname sockets, ABI 9). Only `Full`
/// grants `ResolveUnix`: on a kernel with ABI ≥ 9, a socket under a read-only rule cannot be
/// connected to.
fn fs_rights(access: FsAccess) -> BitFlags<AccessFs> {
    let handled = AccessFs::from_all(CRATE_ABI);
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let rights = match access {
        FsAccess::ListDir => BitFlags::from(AccessFs::ReadDir),
        FsAccess::Read => read,
        FsAccess::ReadExec => read | AccessFs::Execute,
        FsAccess::ReadWriteDev => read | AccessFs::WriteFile | AccessFs::Truncate | AccessFs::IoctlDev,
        FsAccess::ReadWriteFiles => read | AccessFs::WriteFile | AccessFs::Truncate,
        FsAccess::Full => handled,
        FsAccess::FullNoExec => handled & !BitFlags::from(AccessFs::Execute),
        FsAccess::Exec => BitFlags::from(AccessFs::ReadFile) | AccessFs::Execute,
    };
    rights & handled
}

/// The scopes the policy asks for.
fn scopes(policy: &LandlockPolicy) -> BitFlags<Scope> {
    let mut scopes = BitFlags::EMPTY;
    if policy.scope_abstract_unix {
        scopes |= Scope::AbstractUnixSocket;
    }
    if policy.scope_signals {
        scopes |= Scope::Signal;
    }
    scopes
}

/// A Landlock feature the policy relies on: its name in reports, and the ABI that brought it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Feature {
    name: &'static str,
    abi: u32,
}

/// The features `policy` relies on, in report order (filesystem, TCP, scoping). Basic filesystem
/// rules (ABI 1) are implied; rights beyond the plan (`resolve_unix`) are not listed.
fn planned_features(policy: &LandlockPolicy) -> Vec<Feature> {
    let mut features = vec![
        Feature {
            name: "refer",
            abi: REFER_ABI,
        },
        Feature {
            name: "truncate",
            abi: TRUNCATE_ABI,
        },
        Feature {
            name: "ioctl_dev",
            abi: IOCTL_DEV_ABI,
        },
    ];
    if policy.restrict_tcp_connect {
        features.push(Feature {
            name: "TCP rules",
            abi: TCP_ABI,
        });
    }
    let scope = match (policy.scope_abstract_unix, policy.scope_signals) {
        (true, true) => Some("scoping"),
        (true, false) => Some("abstract-unix scoping"),
        (false, true) => Some("signal scoping"),
        (false, false) => None,
    };
    if let Some(name) = scope {
        features.push(Feature { name, abi: SCOPE_ABI });
    }
    features
}

/// What applying `policy` achieves on a kernel whose version query returned `kernel`, and, when
/// that is not `Full`, how to get it. Pure: the kernel is a parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Assessment {
    outcome: LandlockOutcome,
    /// `Some` exactly when `outcome.achieved` is not `Full`.
    fix: Option<String>,
}

fn assess(policy: &LandlockPolicy, kernel: Result<u32, i32>) -> Assessment {
    let planned = planned_features(policy);
    let abi = match kernel {
        Ok(abi) => abi,
        Err(errno) => {
            let (detail, remedy) = match errno {
                libc::EOPNOTSUPP => (
                    "Landlock is built into this kernel but not enabled at boot \
                     (landlock_create_ruleset: EOPNOTSUPP)"
                        .to_string(),
                    "add landlock to the lsm= kernel parameter",
                ),
                libc::ENOSYS => (
                    "this kernel has no Landlock (landlock_create_ruleset: ENOSYS)".to_string(),
                    "upgrade the kernel",
                ),
                other => (
                    format!("landlock_create_ruleset(VERSION): {}", errno_name(other)),
                    "upgrade the kernel",
                ),
            };
            let needed = planned.iter().map(|f| f.abi).max().unwrap_or(1);
            return Assessment {
                outcome: LandlockOutcome {
                    achieved: Achieved::None,
                    abi: None,
                    detail,
                },
                fix: Some(format!(
                    "Landlock ABI ≥ {needed} ({}) needed; {remedy} or set \
                     layers.landlock = \"best_effort\"",
                    linux_for_abi(needed)
                )),
            };
        }
    };

    let missing: Vec<Feature> = planned.into_iter().filter(|f| f.abi > abi).collect();
    if missing.is_empty() {
        return Assessment {
            outcome: LandlockOutcome {
                achieved: Achieved::Full,
                abi: Some(abi),
                detail: describe_full(policy, abi),
            },
            fix: None,
        };
    }

    let names: Vec<&str> = missing.iter().map(|f| f.name).collect();
    let needed = missing.iter().map(|f| f.abi).max().unwrap_or(abi);
    let detail = format!(
        "ABI {abi}: {}",
        names
            .iter()
            .map(|name| format!("no {name}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Assessment {
        outcome: LandlockOutcome {
            achieved: Achieved::Partial,
            abi: Some(abi),
            detail,
        },
        fix: Some(format!(
            "Landlock ABI ≥ {needed} ({}) needed for {}; upgrade the kernel or set \
             layers.landlock = \"best_effort\"",
            linux_for_abi(needed),
            join_and(&names)
        )),
    }
}

/// The `detail` of a `Full` outcome: what is enforced, and which rights beyond the plan this
/// kernel lacks.
fn describe_full(policy: &LandlockPolicy, abi: u32) -> String {
    let mut parts = vec![match policy.rules.len() {
        1 => "filesystem (1 rule)".to_string(),
        n => format!("filesystem ({n} rules)"),
    }];
    if policy.restrict_tcp_connect {
        parts.push(match policy.connect_ports.as_slice() {
            [] => "no TCP connect".to_string(),
            [port] => format!("TCP connect only to port {port}"),
            ports => format!(
                "TCP connect only to ports {}",
                ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
            ),
        });
    }
    match (policy.scope_abstract_unix, policy.scope_signals) {
        (true, true) => parts.push("abstract-unix and signal scoping".into()),
        (true, false) => parts.push("abstract-unix scoping".into()),
        (false, true) => parts.push("signal scoping".into()),
        (false, false) => {}
    }
    let mut detail = format!("ABI {abi}: {}", parts.join(", "));
    if abi < RESOLVE_UNIX_ABI {
        detail.push_str(&format!(
            "; not on this kernel, beyond the plan: resolve_unix (ABI {RESOLVE_UNIX_ABI})"
        ));
    }
    detail
}

/// A required layer that is not `Full` becomes [`LandlockError::Required`].
fn check_level(assessment: &Assessment, level: Level) -> Result<(), LandlockError> {
    match level {
        Level::BestEffort => Ok(()),
        Level::Required => match &assessment.fix {
            None => Ok(()),
            Some(fix) => Err(LandlockError::Required {
                achieved: assessment.outcome.achieved,
                detail: assessment.outcome.detail.clone(),
                fix: fix.clone(),
            }),
        },
    }
}

/// The first Linux release with Landlock ABI `abi` (Documentation/userspace-api/landlock.rst).
fn linux_for_abi(abi: u32) -> &'static str {
    match abi {
        0 | 1 => "Linux ≥ 5.13",
        2 => "Linux ≥ 5.19",
        3 => "Linux ≥ 6.2",
        4 => "Linux ≥ 6.7",
        5 => "Linux ≥ 6.10",
        6 => "Linux ≥ 6.12",
        7 => "Linux ≥ 6.15",
        _ => "a newer Linux",
    }
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn open_error(path: &std::path::Path, error: PathFdError) -> LandlockError {
    let source = match error {
        PathFdError::OpenCall { source, .. } => source,
        // `PathFdError` is non-exhaustive; keep whatever a newer crate reports.
        other => io::Error::other(other.to_string()),
    };
    LandlockError::OpenPath {
        path: path.to_path_buf(),
        reason: io_reason(&source),
        source,
    }
}

fn ruleset_error(op: String, source: RulesetError) -> LandlockError {
    // The crate's errors are transparent wrappers; the failed syscall's io::Error, if any, is
    // somewhere down the source chain.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&source);
    let mut reason = None;
    while let Some(error) = cause {
        if let Some(io_error) = error.downcast_ref::<io::Error>() {
            reason = Some(io_reason(io_error));
            break;
        }
        cause = error.source();
    }
    LandlockError::Ruleset {
        op,
        reason: reason.unwrap_or_else(|| source.to_string()),
        source,
    }
}

fn io_reason(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(errno) => errno_name(errno),
        None => error.to_string(),
    }
}

/// The symbolic name of the errnos these syscalls return (strace style), `errno N` otherwise.
fn errno_name(errno: i32) -> String {
    crate::ll::errno_name(errno)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use corral_core::landlock_policy::LandlockRule;
    use pretty_assertions::assert_eq;
    use std::path::Path;

    fn policy(rules: Vec<LandlockRule>) -> LandlockPolicy {
        LandlockPolicy {
            rules,
            restrict_tcp_connect: false,
            connect_ports: vec![],
            scope_abstract_unix: false,
            scope_signals: false,
            exec_only: false,
        }
    }

    fn rule(path: impl Into<PathBuf>, access: FsAccess) -> LandlockRule {
        LandlockRule {
            path: path.into(),
            access,
        }
    }

    /// A policy asking for everything: TCP rules and both scopes.
    fn everything(ports: Vec<u16>) -> LandlockPolicy {
        LandlockPolicy {
            restrict_tcp_connect: true,
            connect_ports: ports,
            scope_abstract_unix: true,
            scope_signals: true,
            ..policy(vec![
                rule("/usr", FsAccess::ReadExec),
                rule("/work", FsAccess::Full),
            ])
        }
    }

    // ---- T0: pure ----------------------------------------------------------------------------

    #[test]
    fn landlock_fs_rights_per_access_class() {
        use AccessFs::*;
        let all: Vec<(FsAccess, BitFlags<AccessFs>)> = [
            FsAccess::ListDir,
            FsAccess::Read,
            FsAccess::ReadExec,
            FsAccess::ReadWriteDev,
            FsAccess::ReadWriteFiles,
            FsAccess::Full,
            FsAccess::Exec,
        ]
        .into_iter()
        .map(|access| (access, fs_rights(access)))
        .collect();
        let expected: Vec<(FsAccess, BitFlags<AccessFs>)> = vec![
            (FsAccess::ListDir, ReadDir.into()),
            (FsAccess::Read, ReadFile | ReadDir),
            (FsAccess::ReadExec, ReadFile | ReadDir | Execute),
            (
                FsAccess::ReadWriteDev,
                ReadFile | ReadDir | WriteFile | Truncate | IoctlDev,
            ),
            (
                FsAccess::ReadWriteFiles,
                ReadFile | ReadDir | WriteFile | Truncate,
            ),
            (
                FsAccess::Full,
                Execute
                    | WriteFile
                    | ReadFile
                    | ReadDir
                    | RemoveDir
                    | RemoveFile
                    | MakeChar
                    | MakeDir
                    | MakeReg
                    | MakeSock
                    | MakeFifo
                    | MakeBlock
                    | MakeSym
                    | Refer
                    | Truncate
                    | IoctlDev
                    | ResolveUnix,
            ),
            (FsAccess::Exec, ReadFile | Execute),
        ];
        assert_eq!(all, expected);
    }

    /// The ABI constants used in reports agree with the crate's own tables.
    #[test]
    fn landlock_feature_abis_match_the_crate() {
        let abi = |n: u32| ABI::from(i32::try_from(n).unwrap());
        let fs_since = |right: AccessFs, n: u32| {
            !AccessFs::from_all(abi(n - 1)).contains(right) && AccessFs::from_all(abi(n)).contains(right)
        };
        assert!(fs_since(AccessFs::Refer, REFER_ABI));
        assert!(fs_since(AccessFs::Truncate, TRUNCATE_ABI));
        assert!(fs_since(AccessFs::IoctlDev, IOCTL_DEV_ABI));
        assert!(fs_since(AccessFs::ResolveUnix, RESOLVE_UNIX_ABI));
        assert!(!AccessNet::from_all(abi(TCP_ABI - 1)).contains(AccessNet::ConnectTcp));
        assert!(AccessNet::from_all(abi(TCP_ABI)).contains(AccessNet::ConnectTcp));
        assert!(Scope::from_all(abi(SCOPE_ABI - 1)).is_empty());
        assert_eq!(
            Scope::from_all(abi(SCOPE_ABI)),
            Scope::AbstractUnixSocket | Scope::Signal
        );
    }

    #[test]
    fn landlock_assess_full_on_abi_7() {
        assert_eq!(
            assess(&everything(vec![3128, 8080]), Ok(7)),
            Assessment {
                outcome: LandlockOutcome {
                    achieved: Achieved::Full,
                    abi: Some(7),
                    detail: "ABI 7: filesystem (2 rules), TCP connect only to ports 3128, 8080, \
                             abstract-unix and signal scoping; not on this kernel, beyond the \
                             plan: resolve_unix (ABI 9)"
                        .into(),
                },
                fix: None,
            }
        );
        assert_eq!(
            assess(&everything(vec![]), Ok(9)).outcome.detail,
            "ABI 9: filesystem (2 rules), no TCP connect, abstract-unix and signal scoping"
        );
    }

    #[test]
    fn landlock_assess_without_tcp_and_scopes_is_full_on_abi_5() {
        let plain = policy(vec![rule("/usr", FsAccess::Read)]);
        let assessment = assess(&plain, Ok(5));
        assert_eq!(assessment.outcome.achieved, Achieved::Full);
        assert_eq!(assessment.fix, None);
        assert!(check_level(&assessment, Level::Required).is_ok());
    }

    #[test]
    fn landlock_assess_partial_on_abi_3_and_required_refuses() {
        let assessment = assess(&everything(vec![3128]), Ok(3));
        assert_eq!(
            assessment,
            Assessment {
                outcome: LandlockOutcome {
                    achieved: Achieved::Partial,
                    abi: Some(3),
                    detail: "ABI 3: no ioctl_dev, no TCP rules, no scoping".into(),
                },
                fix: Some(
                    "Landlock ABI ≥ 6 (Linux ≥ 6.12) needed for ioctl_dev, TCP rules and \
                     scoping; upgrade the kernel or set layers.landlock = \"best_effort\""
                        .into()
                ),
            }
        );
        assert!(check_level(&assessment, Level::BestEffort).is_ok());
        let error = check_level(&assessment, Level::Required).unwrap_err();
        assert_eq!(
            error.to_string(),
            "landlock is required but achieved partial: ABI 3: no ioctl_dev, no TCP rules, no \
             scoping; hint: Landlock ABI ≥ 6 (Linux ≥ 6.12) needed for ioctl_dev, TCP rules \
             and scoping; upgrade the kernel or set layers.landlock = \"best_effort\""
        );
    }

    #[test]
    fn landlock_assess_partial_names_single_scope() {
        let only_signals = LandlockPolicy {
            scope_signals: true,
            ..policy(vec![])
        };
        assert_eq!(
            assess(&only_signals, Ok(1)).outcome.detail,
            "ABI 1: no refer, no truncate, no ioctl_dev, no signal scoping"
        );
    }

    #[test]
    fn landlock_assess_none_when_disabled_at_boot() {
        let assessment = assess(&everything(vec![3128]), Err(libc::EOPNOTSUPP));
        assert_eq!(
            assessment,
            Assessment {
                outcome: LandlockOutcome {
                    achieved: Achieved::None,
                    abi: None,
                    detail: "Landlock is built into this kernel but not enabled at boot \
                             (landlock_create_ruleset: EOPNOTSUPP)"
                        .into(),
                },
                fix: Some(
                    "Landlock ABI ≥ 6 (Linux ≥ 6.12) needed; add landlock to the lsm= kernel \
                     parameter or set layers.landlock = \"best_effort\""
                        .into()
                ),
            }
        );
        assert_eq!(
            check_level(&assessment, Level::Required).unwrap_err().to_string(),
            "landlock is required but achieved none: Landlock is built into this kernel but not \
             enabled at boot (landlock_create_ruleset: EOPNOTSUPP); hint: Landlock ABI ≥ 6 \
             (Linux ≥ 6.12) needed; add landlock to the lsm= kernel parameter or set \
             layers.landlock = \"best_effort\""
        );
    }

    #[test]
    fn landlock_assess_none_without_landlock() {
        let assessment = assess(&policy(vec![]), Err(libc::ENOSYS));
        assert_eq!(
            (assessment.outcome.detail.as_str(), assessment.fix.as_deref()),
            (
                "this kernel has no Landlock (landlock_create_ruleset: ENOSYS)",
                Some(
                    "Landlock ABI ≥ 5 (Linux ≥ 6.10) needed; upgrade the kernel or set \
                     layers.landlock = \"best_effort\""
                )
            )
        );
    }

    // ---- T1: real kernel, each restriction in a throwaway thread -----------------------------

    /// The running ABI when it is at least `min`; otherwise says `skipping: <why>` and returns
    /// `None`, or fails when `CORRAL_TEST_REQUIRE=1`.
    fn abi_at_least(min: u32, what: &str) -> Option<u32> {
        match abi_version() {
            Some(abi) if abi >= min => Some(abi),
            found => {
                let why = format!("{what} needs Landlock ABI ≥ {min}, this kernel has {found:?}");
                if std::env::var("CORRAL_TEST_REQUIRE").as_deref() == Ok("1") {
                    panic!("{why} (CORRAL_TEST_REQUIRE=1)");
                }
                eprintln!("skipping: {why}");
                None
            }
        }
    }

    /// Restricts a fresh thread with `policy` (after `no_new_privs`, as the launcher does), then
    /// runs `attack` in it. The thread's domain dies with it; children it spawns inherit it.
    fn in_restricted_thread<R: Send>(
        policy: &LandlockPolicy,
        level: Level,
        attack: impl FnOnce() -> R + Send,
    ) -> (LandlockOutcome, R) {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    rustix::thread::set_no_new_privs(true).expect("PR_SET_NO_NEW_PRIVS");
                    let outcome = restrict_landlock(policy, level).expect("restrict_landlock");
                    (outcome, attack())
                })
                .join()
                .expect("restricted thread panicked")
        })
    }

    /// `Ok(())`, or the errno name: what a test asserts about an attempt.
    fn errno<T>(result: io::Result<T>) -> Result<(), String> {
        result.map(drop).map_err(|error| io_reason(&error))
    }

    #[test]
    fn landlock_abi_version_is_reported() {
        if let Some(abi) = abi_at_least(1, "abi_version") {
            assert_eq!(abi_version(), Some(abi));
            assert_eq!(abi_version(), probe_abi().ok());
        }
    }

    #[test]
    fn landlock_filesystem_rules_allow_only_what_is_listed() {
        let Some(abi) = abi_at_least(1, "filesystem rules") else {
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let dir = |name: &str| {
            let path = tmp.path().join(name);
            std::fs::create_dir(&path).unwrap();
            path
        };
        let (read_only, full, unlisted, read_exec) = (dir("a"), dir("b"), dir("c"), dir("exec"));
        std::fs::write(read_only.join("file"), "a").unwrap();
        std::fs::write(unlisted.join("file"), "c").unwrap();
        std::fs::copy("/bin/true", read_only.join("true")).unwrap();
        std::fs::copy("/bin/true", read_exec.join("true")).unwrap();

        let plan = policy(vec![
            rule(&read_only, FsAccess::Read),
            rule(&full, FsAccess::Full),
            rule(&read_exec, FsAccess::ReadExec),
            // The dynamic loader is opened like an executable (needs Execute), libc is read.
            rule("/usr", FsAccess::ReadExec),
            rule("/etc", FsAccess::Read),
        ]);
        let (outcome, attempts) = in_restricted_thread(&plan, Level::BestEffort, || {
            let write = |path: &Path| {
                errno(
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .open(path),
                )
            };
            let run = |path: &Path| errno(std::process::Command::new(path).status());
            vec![
                ("read A", errno(std::fs::read(read_only.join("file")))),
                ("list A", errno(std::fs::read_dir(&read_only))),
                ("write A", write(&read_only.join("file"))),
                ("create in A", write(&read_only.join("new"))),
                ("create in B", write(&full.join("new"))),
                ("mkdir in B", errno(std::fs::create_dir(full.join("sub")))),
                ("remove in B", errno(std::fs::remove_file(full.join("new")))),
                ("read C", errno(std::fs::read(unlisted.join("file")))),
                ("list C", errno(std::fs::read_dir(&unlisted))),
                ("exec in A (Read)", run(&read_only.join("true"))),
                ("exec in ReadExec dir", run(&read_exec.join("true"))),
            ]
        });
        let eacces = || Err("EACCES".to_string());
        assert_eq!(
            attempts,
            vec![
                ("read A", Ok(())),
                ("list A", Ok(())),
                ("write A", eacces()),
                ("create in A", eacces()),
                ("create in B", Ok(())),
                ("mkdir in B", Ok(())),
                ("remove in B", Ok(())),
                ("read C", eacces()),
                ("list C", eacces()),
                ("exec in A (Read)", eacces()),
                ("exec in ReadExec dir", Ok(())),
            ]
        );
        assert_eq!(outcome.abi, Some(abi));
        let expected = if abi >= IOCTL_DEV_ABI {
            Achieved::Full
        } else {
            Achieved::Partial
        };
        assert_eq!(outcome.achieved, expected, "{}", outcome.detail);
    }

    #[test]
    fn landlock_tcp_connect_only_to_listed_ports() {
        let Some(abi) = abi_at_least(TCP_ABI, "TCP connect rules") else {
            return;
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connect = || errno(std::net::TcpStream::connect(("127.0.0.1", port)));

        let no_ports = LandlockPolicy {
            restrict_tcp_connect: true,
            ..policy(vec![])
        };
        let (_, denied) = in_restricted_thread(&no_ports, Level::BestEffort, connect);
        assert_eq!(denied, Err("EACCES".to_string()));

        let its_port = LandlockPolicy {
            connect_ports: vec![port],
            ..no_ports
        };
        let (outcome, allowed) = in_restricted_thread(&its_port, Level::BestEffort, connect);
        assert_eq!(allowed, Ok(()));
        // TCP rules need ABI 4, but the plan's filesystem rights (ioctl_dev) need ABI 5 for Full.
        let expected = if abi >= IOCTL_DEV_ABI {
            Achieved::Full
        } else {
            Achieved::Partial
        };
        assert_eq!(outcome.achieved, expected, "{}", outcome.detail);
    }

    #[test]
    fn landlock_scope_blocks_abstract_unix_sockets_outside() {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
        if abi_at_least(SCOPE_ABI, "abstract unix socket scoping").is_none() {
            return;
        }
        let name = format!("corral-test-landlock-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let _listener = UnixListener::bind_addr(&addr).unwrap();
        let connect = || errno(UnixStream::connect_addr(&addr));

        // Control: the same (fully restricted filesystem) domain without the scope connects.
        let (_, unscoped) = in_restricted_thread(&policy(vec![]), Level::BestEffort, connect);
        assert_eq!(unscoped, Ok(()));

        let scoped = LandlockPolicy {
            scope_abstract_unix: true,
            ..policy(vec![])
        };
        let (outcome, attempt) = in_restricted_thread(&scoped, Level::Required, connect);
        assert_eq!(attempt, Err("EPERM".to_string()));
        assert_eq!(outcome.achieved, Achieved::Full, "{}", outcome.detail);
    }

    #[test]
    fn landlock_scope_blocks_signals_outside() {
        if abi_at_least(SCOPE_ABI, "signal scoping").is_none() {
            return;
        }
        // A process outside the domain: started before any restriction.
        let mut outside = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = rustix::process::Pid::from_child(&outside);
        let signal = || errno(rustix::process::test_kill_process(pid).map_err(io::Error::from));

        let (_, unscoped) = in_restricted_thread(&policy(vec![]), Level::BestEffort, signal);
        let scoped = LandlockPolicy {
            scope_signals: true,
            ..policy(vec![])
        };
        let (_, attempt) = in_restricted_thread(&scoped, Level::Required, signal);
        outside.kill().unwrap();
        outside.wait().unwrap();
        assert_eq!((unscoped, attempt), (Ok(()), Err("EPERM".to_string())));
    }

    #[test]
    fn landlock_missing_rule_path_is_an_error_naming_it() {
        // Fails while opening the rule paths, before any ruleset exists: nothing is restricted.
        let missing = policy(vec![
            rule("/usr", FsAccess::Read),
            rule("/nonexistent/corral-test", FsAccess::Read),
        ]);
        let error = restrict_landlock(&missing, Level::BestEffort).unwrap_err();
        assert_eq!(
            error.to_string(),
            "landlock: open(\"/nonexistent/corral-test\") for a rule: ENOENT"
        );
        let source = std::error::Error::source(&error).unwrap();
        assert_eq!(
            source.downcast_ref::<io::Error>().unwrap().raw_os_error(),
            Some(libc::ENOENT)
        );
    }
}
