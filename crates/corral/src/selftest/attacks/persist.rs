//! Persistence inside the workspace: the files that make the user's own tools run commands later
//! (git hooks and config, `.envrc`, editor tasks, agent settings …), written directly, after
//! renaming an ancestor aside, through a symlink swap, and through `git config`. Judged on the
//! host: is the protected path as it was.

use super::{describe, errno_name, Attack, HostView};
use crate::selftest::brief::{Brief, Probe};
use std::io::Write;
use std::path::Path;

const PROTECT: &str = "protected paths: read-only mounts and placeholders in the project";

/// Where the attack on `.git` renames it.
const GIT_ASIDE: &str = ".git-selftest-aside";

/// The file an attack writes into a protected directory.
const PLANTED: &str = "selftest-planted";

/// A protected path is written as a directory when the plan protects it as one (the brief's
/// entries end with `/` then).
fn plant(ws: &Path, rel: &str, token: &str) -> Probe {
    let (rel, dir) = match rel.strip_suffix('/') {
        Some(r) => (r, true),
        None => (rel, false),
    };
    let path = ws.join(rel);
    let target = if dir {
        if let Err(e) = std::fs::create_dir_all(&path) {
            return Probe::Blocked(format!("mkdir {rel}: {}", errno_name(&e)));
        }
        path.join(PLANTED)
    } else {
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        path
    };
    let r = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&target)
        .and_then(|mut f| writeln!(f, "#!/bin/sh\necho {token}"));
    match r {
        Ok(()) => Probe::Attempted(format!("wrote {}", target.display())),
        Err(e) => Probe::Blocked(errno_name(&e)),
    }
}

/// On the host: any of `rels` differs from before the run.
fn unchanged(rels: Vec<String>) -> impl Fn(&Brief, &HostView) -> Option<String> {
    move |b, h| {
        let changed: Vec<String> = rels
            .iter()
            .filter_map(|rel| {
                let rel = rel.trim_end_matches('/');
                let before = h
                    .protected_before
                    .get(rel)
                    .map(String::as_str)
                    .unwrap_or("absent");
                let mut now = describe(&b.workspace.join(rel));
                // When .git itself was renamed aside (a later attack that got through), what was
                // planted in it moved along.
                if now == before {
                    if let Some(rest) = rel.strip_prefix(".git/") {
                        let aside = b.workspace.join(GIT_ASIDE).join(rest);
                        if aside.symlink_metadata().is_ok() {
                            now = describe(&aside);
                        }
                    }
                }
                (now != before).then(|| format!("{rel}: was {before}, now {now}"))
            })
            .collect();
        (!changed.is_empty()).then(|| changed.join("; "))
    }
}

pub fn attacks(brief: &Brief) -> Vec<Attack> {
    let mut v = Vec::new();
    for rel in &brief.protected {
        let r = rel.clone();
        let shown = rel.trim_end_matches('/');
        v.push(
            Attack::new(
                "persist",
                format!("write {shown}"),
                format!("plant a command in {rel}"),
                PROTECT,
                move |b| plant(&b.workspace, &r, &b.token),
            )
            .verified(unchanged(vec![rel.clone()])),
        );
    }
    let git = |rel: &str| vec![rel.to_string()];
    v.push(
        Attack::new(
            "persist",
            "git config core.fsmonitor",
            "`git config core.fsmonitor CMD`: host git would run CMD on the next status",
            PROTECT,
            |b| {
                let out = std::process::Command::new("git")
                    .args(["config", "core.fsmonitor"])
                    .arg(format!("echo {}", b.token))
                    .current_dir(&b.workspace)
                    .stdin(std::process::Stdio::null())
                    .output();
                match out {
                    Ok(o) if o.status.success() => Probe::Attempted("git config exited 0".into()),
                    Ok(o) => Probe::Blocked(String::from_utf8_lossy(&o.stderr).trim().to_string()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        Probe::Skipped("git is not installed".into())
                    }
                    Err(e) => Probe::Blocked(errno_name(&e)),
                }
            },
        )
        .verified(unchanged(git(".git/config"))),
    );
    v.push(
        Attack::new(
            "persist",
            "symlink swap .vscode",
            "replace .vscode with a symlink to a directory holding tasks.json",
            PROTECT,
            |b| {
                let ws = &b.workspace;
                let decoy = ws.join("selftest-decoy");
                let _ = std::fs::create_dir_all(&decoy);
                let _ = std::fs::write(decoy.join("tasks.json"), format!("{{\"x\": \"{}\"}}", b.token));
                let vscode = ws.join(".vscode");
                let removed = std::fs::remove_dir_all(&vscode).or_else(|_| std::fs::remove_file(&vscode));
                match std::os::unix::fs::symlink("selftest-decoy", &vscode) {
                    Ok(()) => Probe::Attempted("swapped .vscode for a symlink".into()),
                    Err(e) => Probe::Blocked(format!(
                        "remove: {}; symlink: {}",
                        removed
                            .err()
                            .map(|e| errno_name(&e))
                            .unwrap_or_else(|| "done".into()),
                        errno_name(&e)
                    )),
                }
            },
        )
        .verified(unchanged(git(".vscode"))),
    );
    v.push(
        Attack::new(
            "persist",
            "rename .git/hooks aside",
            "rename .git/hooks, make a new one with a pre-commit hook",
            PROTECT,
            |b| {
                let hooks = b.workspace.join(".git/hooks");
                if let Err(e) = std::fs::rename(&hooks, b.workspace.join(".git/hooks-aside")) {
                    return Probe::Blocked(format!("rename .git/hooks: {}", errno_name(&e)));
                }
                plant(&b.workspace, ".git/hooks/pre-commit", &b.token)
            },
        )
        .verified(unchanged(git(".git/hooks"))),
    );
    v.push(
        Attack::new(
            "persist",
            "rename .git aside",
            "rename .git aside and make a new one with a pre-commit hook",
            PROTECT,
            |b| {
                let ws = &b.workspace;
                let aside = ws.join(GIT_ASIDE);
                if let Err(e) = std::fs::rename(ws.join(".git"), &aside) {
                    return Probe::Blocked(format!("rename .git: {}", errno_name(&e)));
                }
                // Left as an attacker leaves it: the host's next git command would use it.
                plant(ws, ".git/hooks/pre-commit", &b.token)
            },
        )
        .verified(unchanged(git(".git"))),
    );
    v
}
