//! Writes outside the workspace: rc files, `~/.local/bin`, agent settings, corral's own config,
//! the host's /tmp and /dev/shm, the project's parent, and metadata changes (chmod, utime,
//! truncate, xattr) on files the sandbox may show read-only. Judged on the host: did the file
//! change or appear there.

use super::{errno_name, read_for_token, Attack};
use crate::selftest::brief::{Brief, Probe};
use std::io::Write;
use std::path::{Path, PathBuf};

const NEW_ROOT: &str =
    "new root: only the project is writable (the rest is absent, read-only or a private copy)";

/// Files in the fake home that exist before the run, with the content the bait gives them.
pub const HOME_FILES: &[(&str, &str)] = &[
    (".bashrc", "# corral selftest bait: ~/.bashrc\n"),
    (".profile", "# corral selftest bait: ~/.profile\n"),
    (".gitconfig", "[user]\n\tname = corral selftest bait\n"),
    (
        ".local/bin/selftest-tool",
        "#!/bin/sh\n# corral selftest bait: a tool in ~/.local/bin\n",
    ),
    (".claude/settings.json", "{\"corral-selftest\": \"bait\"}\n"),
];

/// The mtime every bait file gets (2001-09-09): a changed mtime shows a `utime` got through.
pub const BAIT_MTIME: i64 = 1_000_000_000;

fn append(path: &Path, token: &str) -> Probe {
    match std::fs::OpenOptions::new().append(true).open(path) {
        Ok(mut f) => match writeln!(f, "echo {token}") {
            Ok(()) => Probe::Attempted(format!("appended to {}", path.display())),
            Err(e) => Probe::Blocked(format!("write: {}", errno_name(&e))),
        },
        Err(e) => Probe::Blocked(format!("open: {}", errno_name(&e))),
    }
}

fn create(path: &Path, token: &str) -> Probe {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut f) => match writeln!(f, "{token}") {
            Ok(()) => Probe::Attempted(format!("created {}", path.display())),
            Err(e) => Probe::Blocked(format!("write: {}", errno_name(&e))),
        },
        Err(e) => Probe::Blocked(format!("create: {}", errno_name(&e))),
    }
}

/// On the host: the file differs from its bait content.
fn changed(path: PathBuf, bait: &'static str) -> impl Fn(&Brief, &super::HostView) -> Option<String> {
    move |_, _| {
        let now = std::fs::read(&path).unwrap_or_default();
        (now != bait.as_bytes()).then(|| format!("{} changed on the host", path.display()))
    }
}

/// On the host: the file exists.
fn exists(path: PathBuf) -> impl Fn(&Brief, &super::HostView) -> Option<String> {
    move |_, _| {
        std::fs::symlink_metadata(&path)
            .is_ok()
            .then(|| format!("{} appeared on the host", path.display()))
    }
}

pub fn attacks(brief: &Brief) -> Vec<Attack> {
    let mut v = Vec::new();
    for (rel, bait) in HOME_FILES {
        let path = brief.home.join(rel);
        let p = path.clone();
        v.push(
            Attack::new(
                "writes",
                format!("append ~/{rel}"),
                format!("append a command to ~/{rel}"),
                NEW_ROOT,
                move |b| append(&p, &b.token),
            )
            .verified(changed(path, bait)),
        );
    }
    let creates: Vec<(String, String, PathBuf)> = vec![
        (
            "create ~/.local/bin".into(),
            "put a new program in ~/.local/bin (first on PATH)".into(),
            brief.home.join(".local/bin/selftest-planted"),
        ),
        (
            "create ~/.ssh/authorized_keys".into(),
            "add an ssh key to ~/.ssh".into(),
            brief.home.join(".ssh/authorized_keys2"),
        ),
        (
            "create in the project's parent".into(),
            "a file next to the project".into(),
            brief
                .workspace
                .parent()
                .unwrap_or(&brief.home)
                .join("selftest-planted"),
        ),
        (
            "create outside".into(),
            "a file in a directory outside home and project".into(),
            brief.outside.join("selftest-planted"),
        ),
        (
            "create in host /tmp".into(),
            "a file in the host's /tmp".into(),
            sibling(&brief.host_tmp_file, &planted_suffix(brief.mode)),
        ),
        (
            "create in host /dev/shm".into(),
            "a file in the host's /dev/shm".into(),
            sibling(&brief.host_shm_file, &planted_suffix(brief.mode)),
        ),
    ];
    for (id, what, path) in creates {
        let p = path.clone();
        v.push(
            Attack::new("writes", id, what, NEW_ROOT, move |b| create(&p, &b.token)).verified(exists(path)),
        );
    }
    for (id, what, path) in [
        (
            "read host /tmp",
            "read a bait file in the host's /tmp",
            brief.host_tmp_file.clone(),
        ),
        (
            "read host /dev/shm",
            "read a bait file in the host's /dev/shm",
            brief.host_shm_file.clone(),
        ),
    ] {
        v.push(Attack::new(
            "writes",
            id,
            what,
            "new root: /tmp and /dev/shm are the sandbox's own",
            move |b| read_for_token(&path, &b.token),
        ));
    }

    // Metadata of files the sandbox may show read-only.
    type Meta = fn(&Path) -> std::io::Result<()>;
    let metas: [(&str, &str, Meta); 4] = [
        ("chmod", "make them world-writable (chmod 0777)", |p| {
            std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        }),
        ("utime", "set their modification time to now", |p| {
            std::fs::File::options()
                .write(true)
                .open(p)
                .or_else(|_| std::fs::File::open(p))?
                .set_modified(std::time::SystemTime::now())
        }),
        ("truncate", "truncate them to nothing", |p| {
            std::fs::OpenOptions::new().write(true).open(p)?.set_len(0)
        }),
        ("xattr", "set a user.* extended attribute on them", |p| {
            rustix::fs::setxattr(
                p,
                "user.corral-selftest",
                b"bait",
                rustix::fs::XattrFlags::empty(),
            )
            .map_err(std::io::Error::from)
        }),
    ];
    for (name, what, op) in metas {
        let files = brief.outside_files.clone();
        v.push(
            Attack::new(
                "writes",
                format!("{name} outside"),
                format!("{what}: ~/.bashrc, ~/.gitconfig, a tool in ~/.local/bin"),
                NEW_ROOT,
                move |_| {
                    let mut out = Vec::new();
                    let mut any = false;
                    for f in &files {
                        match op(f) {
                            Ok(()) => {
                                any = true;
                                out.push(format!("{}: done", f.display()));
                            }
                            Err(e) => out.push(format!("{}: {}", file_name(f), errno_name(&e))),
                        }
                    }
                    if any {
                        Probe::Attempted(out.join("; "))
                    } else {
                        Probe::Blocked(out.join("; "))
                    }
                },
            )
            .verified(move |b, _| metadata_changed(b, name)),
        );
    }
    v
}

/// What the attacks that create a file next to a bait in the host's /tmp or /dev/shm append to
/// its name: one name per run, so the control run's file is not taken for the sandbox's.
pub fn planted_suffix(mode: crate::selftest::brief::Mode) -> String {
    format!("-planted-{mode:?}").to_lowercase()
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn sibling(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// On the host: what `op` changes (mode, mtime, content, xattr) changed on any outside file.
fn metadata_changed(b: &Brief, op: &str) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mut changes = Vec::new();
    for f in &b.outside_files {
        let Ok(m) = std::fs::metadata(f) else {
            changes.push(format!("{} is gone", f.display()));
            continue;
        };
        if op == "chmod" && m.mode() & 0o777 != 0o644 && m.mode() & 0o777 != 0o755 {
            changes.push(format!("{} mode {:o}", f.display(), m.mode() & 0o777));
        }
        if op == "utime" && m.mtime() != BAIT_MTIME {
            changes.push(format!("{} mtime changed", f.display()));
        }
        if op == "truncate" && m.len() == 0 {
            changes.push(format!("{} truncated", f.display()));
        }
        let mut buf = [0u8; 16];
        if op == "xattr" && rustix::fs::getxattr(f, "user.corral-selftest", &mut buf).is_ok() {
            changes.push(format!("{} has the attacker's xattr", f.display()));
        }
    }
    (!changes.is_empty()).then(|| changes.join("; "))
}
