//! Gathers the [`HostFacts`] the pure planner asks for: which paths exist, what they resolve to,
//! which secret-pattern paths exist, and which workspace files match `filesystem.deny`.
//!
//! Reads only; never follows a symlink out of the workspace when walking it. The walk skips the
//! inside of `.git` (object files cannot match a secret-file glob in a useful way, and a large
//! history would make every launch slow).

use corral_core::plan::{FileKind, HostFacts, PathFact};
use globset::GlobSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Upper bound on directory entries visited by the deny-glob walk, so that a launch in a huge tree
/// stays bounded; reaching it is an error rather than a silent partial mask.
pub const MAX_WALK_ENTRIES: usize = 2_000_000;

/// The walk of the workspace for deny globs could not be completed, so masks cannot be promised.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// More than [`MAX_WALK_ENTRIES`] entries.
    #[error("workspace {0} has more than {MAX_WALK_ENTRIES} entries: corral cannot check it for filesystem.deny matches; choose a smaller workspace")]
    TooLarge(PathBuf),
    /// A directory you own that corral cannot list: the agent could chmod it and read what is
    /// inside, so corral refuses rather than skip it.
    #[error("cannot list {path} while looking for filesystem.deny matches: {source}; it is yours, so the agent could open it up: fix its permissions (chmod u+rx) or move it out of the workspace")]
    Unreadable {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The git top-level containing `cwd`: the nearest ancestor with a `.git` directory or file.
pub fn git_root(cwd: &Path) -> Option<PathBuf> {
    cwd.ancestors()
        .find(|d| d.join(".git").symlink_metadata().is_ok())
        .map(Path::to_path_buf)
}

fn kind_of(meta: &fs::Metadata) -> FileKind {
    if meta.is_dir() {
        FileKind::Dir
    } else if meta.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    }
}

/// The terminal device on standard input, if it is one (its path in the host's /dev).
pub fn stdin_tty() -> Option<PathBuf> {
    if !rustix::termios::isatty(rustix::stdio::stdin()) {
        return None;
    }
    let p = fs::read_link("/proc/self/fd/0").ok()?;
    p.starts_with("/dev/").then_some(p)
}

/// Facts for one path, or None when nothing is there.
pub fn path_fact(p: &Path) -> Option<PathFact> {
    let lmeta = p.symlink_metadata().ok()?;
    let link = if lmeta.file_type().is_symlink() {
        fs::read_link(p).ok()
    } else {
        None
    };
    match fs::canonicalize(p) {
        Ok(canonical) => {
            let kind = fs::metadata(&canonical)
                .map(|m| kind_of(&m))
                .unwrap_or(FileKind::Other);
            Some(PathFact {
                canonical,
                kind,
                link,
            })
        }
        // A dangling symlink still exists as a name (it matters for protected paths).
        Err(_) => link.map(|l| PathFact {
            canonical: p.to_path_buf(),
            kind: FileKind::Other,
            link: Some(l),
        }),
    }
}

/// Gathers facts for `paths`, expands the `*` patterns among `secret_patterns` (only in the last
/// component), and walks `workspace` for `deny` matches.
pub fn gather(
    paths: &[PathBuf],
    secret_patterns: &[PathBuf],
    workspace: &Path,
    deny: &GlobSet,
) -> Result<HostFacts, WalkError> {
    let mut facts = HostFacts {
        tty: stdin_tty(),
        ..HostFacts::default()
    };
    for p in paths {
        if let Some(f) = path_fact(p) {
            facts.paths.insert(p.clone(), f);
        }
    }
    for pat in secret_patterns
        .iter()
        .filter(|p| p.to_string_lossy().contains('*'))
    {
        let (Some(dir), Some(name)) = (pat.parent(), pat.file_name()) else {
            continue;
        };
        let Ok(glob) = globset::Glob::new(&name.to_string_lossy()) else {
            continue;
        };
        let m = glob.compile_matcher();
        let Ok(rd) = fs::read_dir(dir) else { continue };
        for e in rd.flatten() {
            if m.is_match(e.file_name()) {
                let p = e.path();
                if let Some(f) = path_fact(&p) {
                    facts.paths.insert(p.clone(), f);
                    facts.secret_matches.push(p);
                }
            }
        }
    }
    if !deny.is_empty() {
        let mut seen = 0usize;
        walk(workspace, workspace, deny, &mut facts.deny_matches, &mut seen)?;
        facts.deny_matches.sort();
        facts.deny_matches.dedup();
    }
    Ok(facts)
}

fn owned_by_us(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    p.symlink_metadata()
        .is_ok_and(|m| m.uid() == rustix::process::geteuid().as_raw())
}

fn walk(
    root: &Path,
    dir: &Path,
    deny: &GlobSet,
    out: &mut Vec<(PathBuf, FileKind)>,
    seen: &mut usize,
) -> Result<(), WalkError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        // Not ours and not readable: the agent (running as us) cannot open it either.
        Err(e) if !owned_by_us(dir) && e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(()),
        Err(source) => {
            return Err(WalkError::Unreadable {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    for e in rd.flatten() {
        *seen += 1;
        if *seen > MAX_WALK_ENTRIES {
            return Err(WalkError::TooLarge(root.to_path_buf()));
        }
        let path = e.path();
        let Ok(ft) = e.file_type() else { continue };
        let rel = path.strip_prefix(root).unwrap_or(&path);
        if deny.is_match(rel) {
            if ft.is_symlink() {
                // Mask what the link leads to when that is inside the workspace: masking the name
                // alone would leave the content one hop away.
                if let Ok(target) = fs::canonicalize(&path) {
                    if target.starts_with(root) {
                        if let Ok(m) = fs::metadata(&target) {
                            out.push((target, kind_of(&m)));
                        }
                    }
                }
            } else {
                out.push((
                    path.clone(),
                    if ft.is_dir() {
                        FileKind::Dir
                    } else {
                        FileKind::File
                    },
                ));
            }
            continue;
        }
        if ft.is_dir() && !(e.file_name() == ".git" && dir == root) {
            walk(root, &path, deny, out, seen)?;
        }
    }
    Ok(())
}

/// Now, by the clock the kernel stamps file times with (`CLOCK_REALTIME_COARSE`, which can lag
/// `SystemTime::now()` by a tick): a start time that no later change can predate.
pub fn file_clock_now() -> std::time::SystemTime {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    std::time::UNIX_EPOCH
        + std::time::Duration::new(
            u64::try_from(t.tv_sec).unwrap_or(0),
            u32::try_from(t.tv_nsec).unwrap_or(0),
        )
}

/// Files (and symlinks) in `root` whose status changed at or after `since` (take it with
/// [`file_clock_now`]), relative to `root`.
///
/// Uses the inode change time (ctime): the kernel sets it on every change of content or metadata,
/// and, unlike the modification time, no system call can set it back. Skips `.git/objects` (git's
/// content-addressed store) and the paths in `skip` (corral's own placeholders). Deletions are not
/// listed (nothing is left to stat). Returns the paths and whether the walk stopped early at
/// [`MAX_WALK_ENTRIES`].
pub fn changed_since(root: &Path, since: std::time::SystemTime, skip: &[PathBuf]) -> (Vec<PathBuf>, bool) {
    use std::os::unix::fs::MetadataExt;
    let since = since.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let changed = |m: &fs::Metadata| {
        let t = std::time::Duration::new(
            u64::try_from(m.ctime()).unwrap_or(0),
            u32::try_from(m.ctime_nsec()).unwrap_or(0),
        );
        t >= since
    };
    let mut out = Vec::new();
    let mut seen = 0usize;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            seen += 1;
            if seen > MAX_WALK_ENTRIES {
                return (out, true);
            }
            let path = e.path();
            if skip.contains(&path) || path == root.join(".git/objects") {
                continue;
            }
            let Ok(m) = path.symlink_metadata() else { continue };
            if m.is_dir() {
                stack.push(path);
            } else if changed(&m) {
                out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
            }
        }
    }
    out.sort();
    (out, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn walk_finds_deny_matches_and_follows_symlinks_inside_only() {
        let ws = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(ws.path()).unwrap();
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join(".env"), "X=1").unwrap();
        fs::write(root.join("a/b/server.key"), "k").unwrap();
        fs::write(root.join("a/prod.txt"), "p").unwrap();
        std::os::unix::fs::symlink(root.join("a/prod.txt"), root.join("a/.env")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", root.join("a/b/.env.local")).unwrap();
        let deny =
            corral_core::plan::deny_globset(&["**/.env".into(), "**/.env.*".into(), "**/*.key".into()])
                .unwrap();
        let facts = gather(&[], &[], &root, &deny).unwrap();
        assert_eq!(
            facts.deny_matches,
            vec![
                (root.join(".env"), FileKind::File),
                (root.join("a/b/server.key"), FileKind::File),
                (root.join("a/prod.txt"), FileKind::File),
            ]
        );
    }

    #[test]
    fn changed_since_lists_files_changed_after_the_start_even_with_an_old_mtime() {
        let ws = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(ws.path()).unwrap();
        fs::create_dir_all(root.join("src")).unwrap();
        fs::write(root.join("src/old.rs"), "old").unwrap();
        fs::write(root.join("skipped"), "").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let start = file_clock_now();
        fs::write(root.join("src/new.rs"), "new").unwrap();
        fs::write(root.join("Makefile"), "all:").unwrap();
        // Backdating the modification time does not hide a change: ctime moves anyway.
        let f = fs::File::options()
            .write(true)
            .open(root.join("Makefile"))
            .unwrap();
        f.set_modified(std::time::UNIX_EPOCH).unwrap();
        fs::write(root.join("skipped"), "x").unwrap();
        let (changed, truncated) = changed_since(&root, start, &[root.join("skipped")]);
        assert_eq!(
            (changed, truncated),
            (
                vec![PathBuf::from("Makefile"), PathBuf::from("src/new.rs")],
                false
            )
        );
    }

    #[test]
    fn git_root_is_nearest_dot_git() {
        let ws = tempfile::tempdir().unwrap();
        fs::create_dir_all(ws.path().join("repo/.git")).unwrap();
        fs::create_dir_all(ws.path().join("repo/src/deep")).unwrap();
        assert_eq!(
            git_root(&ws.path().join("repo/src/deep")),
            Some(ws.path().join("repo"))
        );
    }
}
