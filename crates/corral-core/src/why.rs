//! `corral why`: explains, from a plan, whether an access is allowed and which rule decides it.
//! Pure: a plan and a path (or host) in, sentences out.

use crate::landlock_policy::FsAccess;
use crate::plan::{Access, MountOp, Plan};
use crate::profile::NetworkMode;
use std::path::Path;

fn covers(dst: &Path, path: &Path) -> bool {
    path.starts_with(dst)
}

fn mount_dst(op: &MountOp) -> Option<&Path> {
    match op {
        MountOp::Tmpfs { dst, .. }
        | MountOp::Bind { dst, .. }
        | MountOp::Rebind { dst, .. }
        | MountOp::Mask { dst, .. }
        | MountOp::Proc { dst }
        | MountOp::Devpts { dst }
        | MountOp::Symlink { dst, .. } => Some(dst),
        MountOp::ReadOnly { .. } => None,
    }
}

/// Why `path` (inside the sandbox) is visible, writable, hidden or absent.
pub fn why_path(plan: &Plan, path: &Path) -> Vec<String> {
    let mut out = Vec::new();
    // The last mount whose destination covers the path decides what is there (mounts apply in
    // order and later ones cover earlier ones); among equals, the deepest.
    let decisive = plan
        .mounts
        .iter()
        .filter(|m| mount_dst(m).is_some_and(|d| covers(d, path)))
        .max_by_key(|m| mount_dst(m).map(|d| d.components().count()).unwrap_or(0));
    let verdict = match decisive {
        None => format!("{}: absent — the sandbox's root holds only the mounts of the plan, and none covers it", path.display()),
        Some(MountOp::Mask { dst, why, .. }) => format!(
            "{}: hidden — {} is masked (empty, read-only) because {}",
            path.display(),
            dst.display(),
            match why.as_str() {
                "secret" => "it is a built-in secret path",
                "deny" => "it matches filesystem.deny",
                "proc" => "it exposes kernel internals",
                _ => "it appeared during the session",
            }
        ),
        Some(MountOp::Rebind { dst, access: Access::ReadOnly, why }) => format!(
            "{}: read-only — {} is {}",
            path.display(),
            dst.display(),
            if why == "protect" { "in filesystem.protect (your tools run it later, outside)" } else { "read-only by design" }
        ),
        Some(MountOp::Rebind { dst, access: Access::ReadWrite, .. }) => {
            format!("{}: writable — inside the workspace ({} is pinned: it cannot be renamed or removed)", path.display(), dst.display())
        }
        Some(MountOp::Bind { src, dst, access, why, .. }) => format!(
            "{}: {} — bind of {} at {} [{why}]",
            path.display(),
            match access {
                Access::ReadOnly => "read-only",
                Access::ReadWrite => "writable",
            },
            src.display(),
            dst.display()
        ),
        Some(MountOp::Tmpfs { dst, size_mb, .. }) => format!(
            "{}: writable, private — {} is a tmpfs of the sandbox ({size_mb} MiB), gone when it ends; nothing of the host is there",
            path.display(),
            dst.display()
        ),
        Some(MountOp::Proc { .. }) => format!("{}: the sandbox's own /proc (its processes only)", path.display()),
        Some(MountOp::Devpts { .. }) => format!("{}: the sandbox's private pseudo-terminals", path.display()),
        Some(MountOp::Symlink { dst, target }) => format!("{}: {} is a symlink to {}", path.display(), dst.display(), target.display()),
        Some(MountOp::ReadOnly { .. }) => String::new(),
    };
    out.push(verdict);
    let rule = plan
        .landlock
        .rules
        .iter()
        .filter(|r| covers(&r.path, path))
        .max_by_key(|r| r.path.components().count());
    match rule {
        Some(r) => out.push(format!(
            "landlock: {} beneath {}{}",
            match r.access {
                FsAccess::ListDir => "listing only",
                FsAccess::Read => "read",
                FsAccess::ReadExec => "read and execute",
                FsAccess::ReadWriteDev => "read, write, device ioctls",
                FsAccess::ReadWriteFiles => "read and write in place",
                FsAccess::Full => "everything",
                FsAccess::FullNoExec => "everything but execute",
                FsAccess::Exec => "read and execute (this file)",
            },
            r.path.display(),
            if plan.landlock.exec_only {
                " (capabilities.allow_shell = false: execute only the command)"
            } else {
                ""
            }
        )),
        None => out.push("landlock: no rule covers it: every access denied".to_string()),
    }
    out
}

/// Why a connection to `host[:port]` from inside is allowed or denied.
pub fn why_host(plan: &Plan, target: &str) -> Vec<String> {
    let (host, port) = match target.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => (h, p.parse::<u16>().ok()),
        _ => (target, None),
    };
    let loopback = matches!(host, "localhost" | "::1" | "[::1]") || host.starts_with("127.");
    match plan.network.mode {
        NetworkMode::None if loopback => {
            let allowed = port.is_some_and(|p| plan.landlock.connect_ports.contains(&p));
            vec![if allowed {
                format!("{target}: allowed — the sandbox's own loopback, port listed in network.local_ports")
            } else {
                format!(
                    "{target}: denied — the sandbox's own loopback (not the host's), and Landlock allows TCP connect only to network.local_ports ({})",
                    if plan.landlock.connect_ports.is_empty() { "none".to_string() } else { format!("{:?}", plan.landlock.connect_ports) }
                )
            }]
        }
        NetworkMode::None => vec![format!(
            "{target}: denied — network.mode = \"none\": the sandbox has its own network namespace with only lo; no packet can leave it"
        )],
    }
}

/// `why` for either kind of target: a path (starts with `/` or `~`) or a host.
pub fn why(plan: &Plan, target: &str, home: &Path) -> Vec<String> {
    let path = if target.starts_with('/') {
        Path::new(target).to_path_buf()
    } else if let Some(rest) = target.strip_prefix("~/") {
        home.join(rest)
    } else if target.starts_with('.') {
        plan.cwd.join(target.trim_start_matches("./"))
    } else {
        return why_host(plan, target);
    };
    let mut lines = why_path(plan, &path);
    if let Some(secret) = crate::plan::secret_paths(home, plan.uid)
        .into_iter()
        .find(|s| path.starts_with(s))
    {
        lines.push(format!(
            "{} is a built-in secret path (crates/corral-core/src/secrets.rs): the host's copy is never visible in the sandbox",
            secret.display()
        ));
    }
    lines
}
