//! Secrets on disk and in the environment: every built-in secret path, the same secret through a
//! symlink, a hard link, `/proc/self/root` and an inherited descriptor; bait variables in the
//! probe's own environment, its ancestors' and every visible process's.

use super::{contains, errno_name, read_for_token, Attack};
use crate::selftest::brief::{Brief, Probe};
use std::path::{Path, PathBuf};

/// Bait variables set in the launcher's environment: names that look like secrets, and one that
/// does not (the environment must be cleared, not just filtered by name).
pub const BAIT_VARS: &[&str] = &[
    "AWS_SECRET_ACCESS_KEY",
    "GITHUB_TOKEN",
    "ANTHROPIC_API_KEY",
    "NPM_TOKEN",
    "CORRAL_SELFTEST_CANARY",
];

const ABSENT: &str = "new root: the secret is not in the sandbox's file tree";

pub fn attacks(brief: &Brief) -> Vec<Attack> {
    let mut v: Vec<Attack> = brief
        .secrets
        .iter()
        .map(|s| {
            let file = s.file.clone();
            Attack::new(
                "secrets",
                format!("read {}", s.name),
                format!("read the bait in {}", s.name),
                ABSENT,
                move |b| read_for_token(&file, &b.token),
            )
        })
        .collect();
    let first = brief.secrets.first().map(|s| s.file.clone()).unwrap_or_default();

    let f = first.clone();
    v.push(Attack::new(
        "secrets",
        "symlink",
        "a symlink in the project pointing at a secret",
        ABSENT,
        move |b| {
            let link = b.workspace.join(".selftest-secret-link");
            let _ = std::fs::remove_file(&link);
            if let Err(e) = std::os::unix::fs::symlink(&f, &link) {
                return Probe::Blocked(format!("symlink: {}", errno_name(&e)));
            }
            let r = read_for_token(&link, &b.token);
            let _ = std::fs::remove_file(&link);
            r
        },
    ));
    let f = first.clone();
    v.push(Attack::new(
        "secrets",
        "hard link",
        "a hard link in the project to a secret",
        ABSENT,
        move |b| {
            let link = b.workspace.join(".selftest-secret-hardlink");
            let _ = std::fs::remove_file(&link);
            if let Err(e) = std::fs::hard_link(&f, &link) {
                return Probe::Blocked(format!("link: {}", errno_name(&e)));
            }
            let r = read_for_token(&link, &b.token);
            let _ = std::fs::remove_file(&link);
            r
        },
    ));
    let f = first;
    v.push(Attack::new(
        "secrets",
        "/proc/self/root",
        "the secret's path under /proc/self/root",
        ABSENT,
        move |b| {
            read_for_token(
                &Path::new("/proc/self/root").join(f.strip_prefix("/").unwrap_or(&f)),
                &b.token,
            )
        },
    ));
    v.push(Attack::new(
        "secrets",
        "inherited descriptor",
        "a descriptor on a secret that corral's caller left open",
        "launch: every descriptor but stdin, stdout and stderr is closed",
        |b| {
            read_for_token(
                &PathBuf::from(format!("/proc/self/fd/{}", b.inherited_fd)),
                &b.token,
            )
        },
    ));

    v.push(Attack::new(
        "secrets",
        "environment",
        format!("bait variables in its own environment ({})", BAIT_VARS.join(", ")),
        "environment: cleared, only audited variables go in",
        |b| {
            let found: Vec<String> = std::env::vars_os()
                .filter(|(_, val)| contains(val.as_encoded_bytes(), &b.token))
                .map(|(k, _)| k.to_string_lossy().into_owned())
                .collect();
            if found.is_empty() {
                Probe::Blocked("no bait variable in the environment".into())
            } else {
                Probe::Escaped(format!("has {}", found.join(", ")))
            }
        },
    ));
    v.push(Attack::new(
        "secrets",
        "ancestors' environment",
        "the bait in /proc/<pid>/environ of its parent, grandparent … (corral's init inside)",
        "init: corral's init holds no host environment and is not dumpable",
        |b| {
            let mut seen = Vec::new();
            let mut pid = std::process::id();
            for _ in 0..16 {
                let Some(ppid) = corral_sys::session::proc_stat(pid).map(|s| s.ppid) else {
                    break;
                };
                if ppid == 0 {
                    break;
                }
                match std::fs::read(format!("/proc/{ppid}/environ")) {
                    Ok(env) if contains(&env, &b.token) => {
                        return Probe::Escaped(format!("pid {ppid}'s environment has the bait"))
                    }
                    Ok(_) => seen.push(format!("{ppid}: no bait")),
                    Err(e) => seen.push(format!("{ppid}: {}", errno_name(&e))),
                }
                pid = ppid;
            }
            Probe::Blocked(if seen.is_empty() {
                "no parent visible".into()
            } else {
                seen.join("; ")
            })
        },
    ));
    v.push(Attack::new(
        "secrets",
        "other processes' environment",
        "the bait in /proc/<pid>/environ of every process it can see (a sentinel outside has it)",
        "pid namespace: no process outside is visible",
        |b| {
            let me = std::process::id();
            let mut looked = 0;
            for pid in pids() {
                if pid == me {
                    continue;
                }
                looked += 1;
                if std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| contains(&env, &b.token)) {
                    return Probe::Escaped(format!("pid {pid}'s environment has the bait"));
                }
            }
            Probe::Blocked(format!("{looked} other processes visible, none with the bait"))
        },
    ));
    v
}

/// Every pid in `/proc`.
pub fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}
