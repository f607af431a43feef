//! Human-readable rendering of a [`Plan`] for `corral run --dry-run`. Pure; the JSON form is the
//! plan's serde serialisation. Host values of environment variables are never printed: only where
//! each came from.

use crate::landlock_policy::FsAccess;
use crate::plan::{Access, FileKind, MountOp, Plan};
use std::fmt::Write;

fn access(a: Access) -> &'static str {
    match a {
        Access::ReadOnly => "ro",
        Access::ReadWrite => "rw",
    }
}

fn kind(k: FileKind) -> &'static str {
    match k {
        FileKind::Dir => "dir",
        FileKind::File => "file",
        FileKind::Other => "node",
    }
}

fn fs_access(a: FsAccess) -> &'static str {
    match a {
        FsAccess::ListDir => "list",
        FsAccess::Read => "read",
        FsAccess::ReadExec => "read,exec",
        FsAccess::ReadWriteDev => "read,write,ioctl-dev",
        FsAccess::ReadWriteFiles => "read,write-in-place",
        FsAccess::Full => "all",
        FsAccess::FullNoExec => "all but exec",
        FsAccess::Exec => "read,exec (file)",
    }
}

/// One line describing a mount step.
pub fn mount_line(op: &MountOp) -> String {
    match op {
        MountOp::Tmpfs {
            dst, mode, size_mb, ..
        } => format!(
            "tmpfs    {}  mode={mode:o} size={size_mb}M nosuid,nodev",
            dst.display()
        ),
        MountOp::Bind {
            src,
            dst,
            access: a,
            kind: k,
            why,
            ..
        } => {
            let from = if src == dst {
                String::new()
            } else {
                format!("  <- {}", src.display())
            };
            format!(
                "bind     {}  {} {} nosuid  [{why}]{from}",
                dst.display(),
                access(*a),
                kind(*k)
            )
        }
        MountOp::Rebind { dst, access: a, why } => {
            format!("rebind   {}  {}  [{why}]", dst.display(), access(*a))
        }
        MountOp::Mask { dst, kind: k, why } => {
            format!("mask     {}  {} (empty, ro)  [{why}]", dst.display(), kind(*k))
        }
        MountOp::Symlink { dst, target } => format!("symlink  {} -> {}", dst.display(), target.display()),
        MountOp::Proc { dst } => format!("proc     {}  nosuid,nodev,noexec", dst.display()),
        MountOp::Devpts { dst } => format!("devpts   {}  newinstance,ptmxmode=0666", dst.display()),
        MountOp::Overlay { dst, upper, .. } => format!(
            "overlay  {}  review: changes go to {}, the project is not written",
            dst.display(),
            upper.display()
        ),
        MountOp::File { dst, contents, why } => format!(
            "file     {}  {} bytes, ro  [{why}]",
            dst.display(),
            contents.len()
        ),
        MountOp::Generated { dst, files } => format!(
            "files    {}  tmpfs of {} generated file(s): {}",
            dst.display(),
            files.len(),
            files
                .iter()
                .map(|(p, _)| p.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        MountOp::ReadOnly { dst } => format!("readonly {}", dst.display()),
    }
}

/// The whole plan, as `--dry-run` prints it.
pub fn render_plan(plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "profile    {}", plan.profile);
    let _ = writeln!(s, "workspace  {} (read-write)", plan.workspace.display());
    let _ = writeln!(s, "cwd        {}", plan.cwd.display());
    let _ = writeln!(s, "ids        uid {} gid {} (mapped 1:1)", plan.uid, plan.gid);
    let _ = writeln!(s, "hostname   {}", plan.hostname);
    let _ = writeln!(s, "command    {}", shell_words(&plan.command));
    let _ = writeln!(s, "\nlayers");
    for (layer, level) in &plan.layers {
        let lv = match level {
            crate::layer::Level::Required => "required",
            crate::layer::Level::BestEffort => "best_effort",
        };
        let _ = writeln!(s, "  {:<13}{lv}", layer.name());
    }
    let _ = writeln!(s, "\nmounts (in order, then pivot_root)");
    for (i, m) in plan.mounts.iter().enumerate() {
        let _ = writeln!(s, "  {:>3}  {}", i + 1, mount_line(m));
    }
    if !plan.placeholders.is_empty() {
        let _ = writeln!(
            s,
            "\nplaceholders (empty, created in the workspace for the session, removed at exit)"
        );
        for p in &plan.placeholders {
            let _ = writeln!(s, "  {}  {}", kind(p.kind), p.path.display());
        }
    }
    let _ = writeln!(s, "\nenvironment (starts empty; values masked)");
    for line in crate::envaudit::render_audit(&plan.env_audit).lines() {
        let _ = writeln!(s, "  {line}");
    }
    let _ = writeln!(s, "\nlandlock");
    for r in &plan.landlock.rules {
        let _ = writeln!(s, "  {:<28} {}", r.path.display(), fs_access(r.access));
    }
    let ports = if plan.landlock.connect_ports.is_empty() {
        "none".to_string()
    } else {
        plan.landlock
            .connect_ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let connect = if plan.landlock.restrict_tcp_connect {
        format!("tcp connect to ports: {ports}; tcp bind: not restricted (own network namespace)")
    } else if plan.network.mode == crate::profile::NetworkMode::Host {
        "tcp connect and bind: not restricted (network.mode = \"host\")".to_string()
    } else {
        "tcp connect and bind: not restricted (own network namespace; network.loopback = \"open\")"
            .to_string()
    };
    let _ = writeln!(s, "  {connect}");
    let _ = writeln!(
        s,
        "  scoping: abstract unix sockets {}, signals {}",
        on(plan.landlock.scope_abstract_unix),
        on(plan.landlock.scope_signals)
    );
    let sc = &plan.seccomp;
    let _ = writeln!(s, "\nseccomp");
    let _ = writeln!(s, "  EPERM: {}", sc.deny.join(" "));
    let _ = writeln!(
        s,
        "  ENOSYS: {}{}",
        sc.enosys.join(" "),
        if sc.deny_x32 { " and every x32 call" } else { "" }
    );
    let flags: Vec<&str> = sc.deny_namespace_flags.iter().map(|(n, _)| n.as_str()).collect();
    let _ = writeln!(s, "  EPERM: clone/unshare with {}", flags.join("|"));
    let ioctls: Vec<&str> = sc.deny_ioctls.iter().map(|i| i.name.as_str()).collect();
    let _ = writeln!(
        s,
        "  EPERM: ioctl {} (request compared on 32 bits)",
        ioctls.join(" ")
    );
    let fams: Vec<&str> = sc.allow_socket_families.iter().map(|(n, _)| n.as_str()).collect();
    let nl: Vec<&str> = sc
        .allow_netlink_protocols
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    let _ = writeln!(
        s,
        "  sockets: only {} (netlink: {})",
        fams.join(" "),
        nl.join(" ")
    );
    let _ = writeln!(s, "\nrlimits");
    for r in &plan.rlimits {
        let _ = writeln!(s, "  {:<13}soft {} hard {}", r.resource, r.soft, r.hard);
    }
    render_network(&mut s, &plan.network);
    for w in &plan.warnings {
        let _ = writeln!(s, "\nwarning: {w}");
    }
    s
}

fn render_network(s: &mut String, n: &crate::plan::NetworkPlan) {
    use crate::profile::NetworkMode;
    match n.mode {
        NetworkMode::None => {
            let _ = writeln!(s, "\nnetwork    none: own network namespace with only lo");
        }
        NetworkMode::Host => {
            let _ = writeln!(
                s,
                "\nnetwork    host: the host's network, shared (no isolation, no proxy, no record)"
            );
        }
        NetworkMode::Proxy => {
            let list = |v: &[String]| {
                if v.is_empty() {
                    "(none)".to_string()
                } else {
                    v.join(" ")
                }
            };
            let _ = writeln!(
                s,
                "\nnetwork    proxy: own network namespace; egress only through corral's proxy at 127.0.0.1:{}",
                crate::plan::PROXY_PORT
            );
            let _ = writeln!(s, "  allow: {}", list(&n.allow));
            let _ = writeln!(s, "  deny: {}", list(&n.deny));
            let _ = writeln!(s, "  private addresses allowed: {}", list(&n.allow_cidrs));
            let _ = writeln!(
                s,
                "  egress cap: {}",
                n.max_egress_mb.map_or("none".to_string(), |m| format!("{m} MiB"))
            );
            let _ = writeln!(
                s,
                "  dns: 127.0.0.1:{} answers REFUSED to everything (queries recorded)",
                crate::plan::DNS_PORT
            );
        }
    }
}

fn on(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// Joins argv for display, quoting words that need it.
pub fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
