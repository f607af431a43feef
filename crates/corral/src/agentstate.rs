//! Per-project agent state, kept outside the project: `$XDG_DATA_HOME/corral` (default
//! `~/.local/share/corral`, DESIGN.md §5) holds
//!
//! - `projects/<key>/` per project, `<key>` the first 16 hex digits of the SHA-256 of the project's
//!   canonical root (every worktree of one repository has the main worktree's root, so they share
//!   it). `project-root` names the root (so [`gc`] can tell when the project is gone, and a key
//!   collision is caught); `<agent>/` is the agent's per-project config dir, bound into the
//!   sandbox (for Claude Code: its `~/.claude`, with `CLAUDE_CONFIG_DIR` pointing at it).
//! - `agents/<agent>/`, the per-user part every project shares (the user's own instructions,
//!   skills, history).
//!
//! Invariants: every directory is created 0700 and every file 0600; an entry of the layout that
//! exists as anything but what the layout says (a symlink, above all: the agent dir is writable
//! from inside a sandbox, and a symlink there would make a later bind mount expose a host path) is
//! refused, not followed. [`gc`] deletes without following symlinks (`remove_dir_all` unlinks a
//! symlink instead of descending into it) and only below `projects/`.
//!
//! Limits: the checks run before the sandbox starts; a sandbox of the same project running at the
//! same time could still swap an entry in between.

use anyhow::{anyhow, bail, Context};
use corral_core::agents::{self, AgentSpec};
use corral_core::plan::FileKind;
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Hex digits of a project key (64 bits of the SHA-256: collisions are caught by `project-root`).
pub const KEY_LEN: usize = 16;
/// The file in `projects/<key>/` that names the project's root.
pub const PROJECT_ROOT_FILE: &str = "project-root";
/// A project dir without `project-root` older than this is a half-made one that [`gc`] removes
/// (younger ones may be in the middle of being made).
pub const HALF_MADE_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// Prefix of `corral restore`'s temporary directory in the data dir (removed by [`gc`] when left
/// behind by a killed restore and older than [`HALF_MADE_AGE`]).
pub const RESTORE_TMP_PREFIX: &str = ".restore-";

/// The agent's spec: its layout is what the plan binds (`corral_core::agents::AgentSpec`: policy
/// files and directories in the per-project dir; shared parts and the user's instructions file in
/// the per-user dir), so the two cannot drift apart.
fn spec(agent: &str) -> anyhow::Result<&'static AgentSpec> {
    agents::spec(agent).ok_or_else(|| {
        let known: Vec<&str> = agents::AGENTS.iter().map(|a| a.name).collect();
        anyhow!("unknown agent {agent:?} (known: {})", known.join(", "))
    })
}

/// A layout file's initial content, written only when absent: `{}` for JSON (an empty file is
/// not valid JSON to the agents), empty otherwise (JSON lines, TOML, Markdown).
fn initial_content(name: &str) -> &'static [u8] {
    if name.ends_with(".json") {
        b"{}"
    } else {
        b""
    }
}

/// Creates `name` in `dir` as a directory or an (initially filled) file.
fn ensure_entry(dir: &Path, name: &str, kind: FileKind) -> anyhow::Result<()> {
    match kind {
        FileKind::Dir => ensure_dir(&dir.join(name)),
        FileKind::File | FileKind::Other => ensure_file(&dir.join(name), initial_content(name)).map(drop),
    }
}

/// `$XDG_DATA_HOME/corral` (absolute only) or `~/.local/share/corral`.
pub fn data_dir(home: &Path) -> PathBuf {
    data_dir_from(home, std::env::var_os("XDG_DATA_HOME").as_deref())
}

/// [`data_dir`] with the environment passed in.
fn data_dir_from(home: &Path, xdg_data_home: Option<&OsStr>) -> PathBuf {
    match xdg_data_home {
        Some(d) if Path::new(d).is_absolute() => Path::new(d).join("corral"),
        _ => home.join(".local/share/corral"),
    }
}

/// The canonical project root for `workspace`: the main worktree's top-level when `workspace` is
/// inside a git worktree (so all worktrees of one repository share state), else `workspace`
/// canonicalised. git's common dir is `<main top-level>/.git` for a normal repository; for a bare
/// repository or a submodule it is not named `.git`, and the workspace itself is the root.
pub fn project_root(workspace: &Path) -> PathBuf {
    let canonical = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    if let Some(common) = git_common_dir(workspace) {
        if common.file_name() == Some(OsStr::new(".git")) {
            if let Some(top) = common.parent() {
                let top = canonical(top);
                // Another repository's state only for a real worktree of it: a `.git` *file* can
                // name any repository (`gitdir: /home/u/secret/.git`), and an untrusted checkout
                // must not get that project's agent state. git records each worktree's `.git`
                // file in `<common>/worktrees/<name>/gitdir`: it must point back here.
                // (A directory inside the repository itself is that repository.)
                if canonical(workspace).starts_with(&top) || is_worktree_of(workspace, &common) {
                    return top;
                }
            }
        }
    }
    canonical(workspace)
}

/// Whether `workspace` is in one of the worktrees git recorded for the repository at `common`
/// (its nearest `.git` entry, walking up, is one git wrote a back-link for).
fn is_worktree_of(workspace: &Path, common: &Path) -> bool {
    let Some(dot_git) = workspace
        .ancestors()
        .map(|d| d.join(".git"))
        .find(|g| fs::symlink_metadata(g).is_ok())
        .and_then(|g| fs::canonicalize(g).ok())
    else {
        return false;
    };
    let Ok(entries) = fs::read_dir(common.join("worktrees")) else {
        return false;
    };
    entries.flatten().any(|e| {
        fs::read_to_string(e.path().join("gitdir"))
            .ok()
            .map(|t| PathBuf::from(t.trim_end_matches('\n')))
            .and_then(|p| fs::canonicalize(p).ok())
            .is_some_and(|p| p == dot_git)
    })
}

/// `git -C <workspace> rev-parse --path-format=absolute --git-common-dir`, with a cleared
/// environment except PATH and HOME (no `GIT_DIR` or `GIT_WORK_TREE` from the caller steers it).
/// None when git is missing or `workspace` is not in a repository.
fn git_common_dir(workspace: &Path) -> Option<PathBuf> {
    let mut cmd = std::process::Command::new("git");
    cmd.arg("-C")
        .arg(workspace)
        .args(["rev-parse", "--path-format=absolute", "--git-common-dir"])
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for var in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        return None;
    }
    let line = out.stdout.strip_suffix(b"\n").unwrap_or(&out.stdout);
    let path = PathBuf::from(OsStr::from_bytes(line));
    path.is_absolute().then_some(path)
}

/// First 16 hex digits of the SHA-256 of the root path's bytes.
pub fn project_key(root: &Path) -> String {
    let digest = Sha256::digest(root.as_os_str().as_bytes());
    let mut key = String::with_capacity(KEY_LEN);
    for b in digest.iter().take(KEY_LEN / 2) {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

/// True when `name` looks like a project key (what [`project_key`] makes).
pub fn is_key(name: &OsStr) -> bool {
    name.len() == KEY_LEN
        && name
            .as_bytes()
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// A project's state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectState {
    /// [`project_key`] of `root`.
    pub key: String,
    /// The project's canonical root ([`project_root`]).
    pub root: PathBuf,
    /// `data_dir/projects/<key>`.
    pub dir: PathBuf,
}

/// Creates (mode 0700) `projects/<key>/`, writes `project-root` (the root path + "\n") when absent,
/// and the agent's layout under `projects/<key>/<agent>/`; returns it. Refuses (error naming both
/// paths) if `project-root` exists and names another path (a key collision).
pub fn ensure_project(home: &Path, root: &Path, agent: &str) -> anyhow::Result<ProjectState> {
    ensure_project_in(&data_dir(home), root, agent)
}

/// [`ensure_project`] in the data dir `data`.
pub fn ensure_project_in(data: &Path, root: &Path, agent: &str) -> anyhow::Result<ProjectState> {
    let spec = spec(agent)?;
    if !root.is_absolute() {
        bail!("the project root {} is not an absolute path", root.display());
    }
    let key = project_key(root);
    let projects = data.join("projects");
    let dir = projects.join(&key);
    create_dir_all_private(&projects)?;
    ensure_dir(&dir)?;

    let root_file = dir.join(PROJECT_ROOT_FILE);
    let mut line = root.as_os_str().as_bytes().to_vec();
    line.push(b'\n');
    if !ensure_file(&root_file, &line)? {
        let named = read_project_root(&dir).with_context(|| format!("reading {}", root_file.display()))?;
        if named.as_deref() != Some(root) {
            let other = named.map_or_else(|| "nothing".to_string(), |p| p.display().to_string());
            bail!(
                "{} already holds the agent state of {other}, not of {} (a key collision): \
                 hint: move that directory aside to use corral with this project",
                dir.display(),
                root.display()
            );
        }
    }

    let agent_dir = dir.join(agent);
    ensure_dir(&agent_dir)?;
    for (name, kind) in spec.policy {
        ensure_entry(&agent_dir, name, *kind)?;
    }
    Ok(ProjectState {
        key,
        root: root.to_path_buf(),
        dir,
    })
}

/// `data_dir/agents/<agent>/`, the per-user part shared by every project (created 0700 with its
/// layout).
pub fn ensure_shared(home: &Path, agent: &str) -> anyhow::Result<PathBuf> {
    ensure_shared_in(&data_dir(home), agent)
}

/// [`ensure_shared`] in the data dir `data`.
pub fn ensure_shared_in(data: &Path, agent: &str) -> anyhow::Result<PathBuf> {
    let spec = spec(agent)?;
    let agents = data.join("agents");
    create_dir_all_private(&agents)?;
    let dir = agents.join(agent);
    ensure_dir(&dir)?;
    for sh in spec.shared {
        ensure_entry(&dir, sh.path, sh.kind)?;
    }
    if let Some(name) = spec.instructions {
        ensure_entry(&dir, name, FileKind::File)?;
    }
    Ok(dir)
}

/// Creates `dir` and its missing parents, mode 0700 (existing ones keep their mode).
pub fn create_dir_all_private(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Creates the directory `path` (0700) unless it exists; refuses anything else there (a symlink
/// is not followed).
fn ensure_dir(path: &Path) -> anyhow::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = fs::symlink_metadata(path).with_context(|| format!("lstat {}", path.display()))?;
            if meta.is_dir() {
                Ok(())
            } else {
                bail!(
                    "{} is a {}, not a directory: hint: remove it, corral recreates it",
                    path.display(),
                    kind(&meta)
                )
            }
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// Creates the file `path` (0600) with `content` unless it exists; true when created. Refuses
/// anything but a regular file there (`O_EXCL` does not follow a symlink).
fn ensure_file(path: &Path, content: &[u8]) -> anyhow::Result<bool> {
    use std::io::Write;
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut f) => {
            f.write_all(content)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = fs::symlink_metadata(path).with_context(|| format!("lstat {}", path.display()))?;
            if meta.is_file() {
                Ok(false)
            } else {
                bail!(
                    "{} is a {}, not a regular file: hint: remove it, corral recreates it",
                    path.display(),
                    kind(&meta)
                )
            }
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// What a directory entry is, in words.
fn kind(meta: &fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_symlink() {
        "symlink"
    } else if t.is_dir() {
        "directory"
    } else if t.is_file() {
        "regular file"
    } else {
        "special file"
    }
}

/// The root named by `dir/project-root`: None when there is no such regular file (a symlink is
/// not read) or it does not hold an absolute path.
pub fn read_project_root(dir: &Path) -> io::Result<Option<PathBuf>> {
    let file = dir.join(PROJECT_ROOT_FILE);
    match fs::symlink_metadata(&file) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    let bytes = fs::read(&file)?;
    let line = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    let root = PathBuf::from(OsStr::from_bytes(line));
    Ok(root.is_absolute().then_some(root))
}

/// Counts of a tree, walked without following symlinks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeStats {
    /// Regular files.
    pub files: u64,
    /// The newest modification time of its regular files, in whole seconds since the epoch (0 when
    /// there are none).
    pub newest_mtime: u64,
}

/// [`TreeStats`] of `dir` (unreadable parts are left out).
pub fn tree_stats(dir: &Path) -> TreeStats {
    let mut stats = TreeStats::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                stats.files += 1;
                stats.newest_mtime = stats.newest_mtime.max(mtime_secs(&meta));
            }
        }
    }
    stats
}

/// The modification time in whole seconds since the epoch (0 before it).
pub fn mtime_secs(meta: &fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// Removes `projects/<key>` whose `project-root` names a path that no longer exists (or that has
/// no project-root file and is older than a day: a half-made one), and temporary directories of
/// killed restores older than a day; returns one line per removal. Never follows symlinks out of
/// data_dir when deleting.
pub fn gc(home: &Path) -> Vec<String> {
    gc_in(&data_dir(home), SystemTime::now())
}

/// [`gc`] in the data dir `data`, at time `now`.
pub fn gc_in(data: &Path, now: SystemTime) -> Vec<String> {
    let old = |meta: &fs::Metadata| {
        meta.modified()
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > HALF_MADE_AGE)
    };
    let mut lines = Vec::new();
    let projects = data.join("projects");
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(&projects)
        .map(|rd| rd.flatten().collect())
        .unwrap_or_default();
    entries.sort_by_key(fs::DirEntry::file_name);
    for e in entries {
        let name = e.file_name();
        let path = e.path();
        // lstat: a symlink named like a key is not ours to follow (nor to remove).
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        if !is_key(&name) || !meta.is_dir() {
            continue;
        }
        let what = match read_project_root(&path) {
            Ok(Some(root)) => match root.symlink_metadata() {
                // Gone, while the directory that held it is still there: the project was removed.
                // A missing parent may be an unmounted drive or share: keep the state then.
                Err(err)
                    if err.kind() == io::ErrorKind::NotFound && root.parent().is_some_and(|p| p.is_dir()) =>
                {
                    format!("the agent state of {}", root.display())
                }
                // It exists, or cannot be told (EACCES, an unmounted parent's stale handle): keep.
                _ => continue,
            },
            Ok(None) if path.join(PROJECT_ROOT_FILE).symlink_metadata().is_err() && old(&meta) => {
                "a half-made agent state (no project-root)".to_string()
            }
            Ok(None) | Err(_) => continue,
        };
        let files = tree_stats(&path).files;
        let rel = format!("projects/{}", name.to_string_lossy());
        // remove_dir_all unlinks symlinks inside instead of following them (std, since 1.58.1).
        match fs::remove_dir_all(&path) {
            Ok(()) => lines.push(format!("removed {what} ({rel}, {files} files)")),
            Err(err) => lines.push(format!("could not remove {what} ({rel}): {err}")),
        }
    }

    let mut leftovers: Vec<fs::DirEntry> = fs::read_dir(data)
        .map(|rd| rd.flatten().collect())
        .unwrap_or_default();
    leftovers.sort_by_key(fs::DirEntry::file_name);
    for e in leftovers {
        let path = e.path();
        let ours = e
            .file_name()
            .as_bytes()
            .starts_with(RESTORE_TMP_PREFIX.as_bytes());
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        if !ours || !meta.is_dir() || !old(&meta) {
            continue;
        }
        match fs::remove_dir_all(&path) {
            Ok(()) => lines.push(format!(
                "removed the leftovers of an interrupted restore ({})",
                path.display()
            )),
            Err(err) => lines.push(format!("could not remove {}: {err}", path.display())),
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use pretty_assertions::assert_eq;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    /// Every entry below `dir` as `relative-path kind mode`, sorted.
    fn listing(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap().flatten() {
                let m = e.path().symlink_metadata().unwrap();
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                let mode = m.permissions().mode() & 0o7777;
                out.push(format!("{rel} {} {mode:o}", kind(&m)));
                if m.is_dir() {
                    stack.push(e.path());
                }
            }
        }
        out.sort();
        out
    }

    fn git(dir: &Path, args: &[&str]) {
        let st = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(["-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "git {args:?}");
    }

    #[test]
    fn project_key_is_stable_and_16_hex() {
        let key = project_key(Path::new("/home/u/src/corral"));
        assert_eq!(key, project_key(Path::new("/home/u/src/corral")));
        assert_eq!(key.len(), KEY_LEN);
        assert!(is_key(OsStr::new(&key)), "{key}");
        // sha256("/") = 8a5edab2 82632443 ...
        assert_eq!(project_key(Path::new("/")), "8a5edab282632443");
        assert_ne!(key, project_key(Path::new("/home/u/src/corral/")));
    }

    #[test]
    fn data_dir_honours_an_absolute_xdg_data_home_only() {
        let home = Path::new("/home/u");
        assert_eq!(
            data_dir_from(home, None),
            Path::new("/home/u/.local/share/corral")
        );
        assert_eq!(
            data_dir_from(home, Some(OsStr::new("/data"))),
            Path::new("/data/corral")
        );
        assert_eq!(
            data_dir_from(home, Some(OsStr::new("rel"))),
            Path::new("/home/u/.local/share/corral")
        );
    }

    #[test]
    fn worktrees_share_the_main_repositorys_root() {
        let tmp = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(tmp.path()).unwrap();
        let main = base.join("main");
        fs::create_dir_all(main.join("sub")).unwrap();
        fs::write(main.join("sub/f"), "x").unwrap();
        git(&main, &["init", "-q"]);
        git(&main, &["add", "."]);
        git(&main, &["commit", "-q", "-m", "one"]);
        git(&main, &["worktree", "add", "-q", "../wt"]);
        let wt = base.join("wt");
        assert!(wt.join(".git").is_file(), "a worktree has a .git file");

        assert_eq!(project_root(&main), main);
        assert_eq!(project_root(&main.join("sub")), main);
        assert_eq!(project_root(&wt), main);
        assert_eq!(project_root(&wt.join("sub")), main);
        assert_eq!(project_key(&project_root(&wt)), project_key(&main));

        let plain = base.join("plain");
        fs::create_dir(&plain).unwrap();
        // Through a symlink: canonicalised.
        std::os::unix::fs::symlink(&plain, base.join("link")).unwrap();
        assert_eq!(project_root(&base.join("link")), plain);
    }

    #[test]
    fn ensure_creates_the_claude_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let root = Path::new("/src/p");
        let st = ensure_project_in(&data, root, "claude").unwrap();
        let key = project_key(root);
        assert_eq!(
            st,
            ProjectState {
                key: key.clone(),
                root: root.to_path_buf(),
                dir: data.join("projects").join(&key),
            }
        );
        assert_eq!(
            fs::read_to_string(st.dir.join("project-root")).unwrap(),
            "/src/p\n"
        );
        assert_eq!(
            fs::read_to_string(st.dir.join("claude/settings.json")).unwrap(),
            "{}"
        );
        let shared = ensure_shared_in(&data, "claude").unwrap();
        assert_eq!(shared, data.join("agents/claude"));
        let k = &key;
        assert_eq!(
            listing(&data),
            [
                "agents directory 700".to_string(),
                "agents/claude directory 700".into(),
                "agents/claude/CLAUDE.md regular file 600".into(),
                "agents/claude/history.jsonl regular file 600".into(),
                "agents/claude/plugins directory 700".into(),
                "agents/claude/skills directory 700".into(),
                "projects directory 700".into(),
                format!("projects/{k} directory 700"),
                format!("projects/{k}/claude directory 700"),
                format!("projects/{k}/claude/agents directory 700"),
                format!("projects/{k}/claude/commands directory 700"),
                format!("projects/{k}/claude/hooks directory 700"),
                format!("projects/{k}/claude/settings.json regular file 600"),
                format!("projects/{k}/claude/settings.local.json regular file 600"),
                format!("projects/{k}/project-root regular file 600"),
            ]
        );

        // Again: nothing changes, the user's edits stay.
        fs::write(st.dir.join("claude/settings.json"), "{\"a\":1}").unwrap();
        assert_eq!(ensure_project_in(&data, root, "claude").unwrap(), st);
        assert_eq!(
            fs::read_to_string(st.dir.join("claude/settings.json")).unwrap(),
            "{\"a\":1}"
        );

        // Another agent: just its directories.
        ensure_project_in(&data, root, "codex").unwrap();
        ensure_shared_in(&data, "codex").unwrap();
        assert!(st.dir.join("codex").is_dir());
        assert!(data.join("agents/codex").is_dir());
        let e = ensure_project_in(&data, root, "../x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown agent \"../x\" (known: claude, codex, gemini, aider, opencode)"
        );
    }

    #[test]
    fn a_symlink_in_the_layout_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let st = ensure_project_in(&data, Path::new("/src/p"), "claude").unwrap();
        let hooks = st.dir.join("claude/hooks");
        fs::remove_dir(&hooks).unwrap();
        std::os::unix::fs::symlink(tmp.path(), &hooks).unwrap();
        let e = ensure_project_in(&data, Path::new("/src/p"), "claude").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{} is a symlink, not a directory: hint: remove it, corral recreates it",
                hooks.display()
            )
        );
    }

    #[test]
    fn a_key_collision_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let st = ensure_project_in(&data, Path::new("/src/p"), "claude").unwrap();
        // Pretend another root hashed to the same key.
        fs::write(st.dir.join("project-root"), "/src/other\n").unwrap();
        let before = listing(&data);
        let e = ensure_project_in(&data, Path::new("/src/p"), "claude").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{} already holds the agent state of /src/other, not of /src/p (a key collision): \
                 hint: move that directory aside to use corral with this project",
                st.dir.display()
            )
        );
        assert_eq!(listing(&data), before, "a refusal changes nothing");
    }

    #[test]
    fn gc_removes_the_state_of_a_gone_project_and_keeps_a_live_one() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let live = tmp.path().join("live");
        let gone = tmp.path().join("gone");
        fs::create_dir(&live).unwrap();
        fs::create_dir(&gone).unwrap();
        let live_st = ensure_project_in(&data, &live, "claude").unwrap();
        let gone_st = ensure_project_in(&data, &gone, "claude").unwrap();
        // A symlink inside the gone project's state pointing out of the data dir: not followed.
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, gone_st.dir.join("claude/link")).unwrap();
        // A half-made one (no project-root), new and old.
        let half = data.join("projects/0123456789abcdef");
        fs::create_dir(&half).unwrap();
        fs::remove_dir(&gone).unwrap();

        let now = SystemTime::now();
        assert_eq!(
            gc_in(&data, now),
            [format!(
                "removed the agent state of {} (projects/{}, 3 files)",
                gone.display(),
                gone_st.key
            )]
        );
        assert!(live_st.dir.join("claude/settings.json").is_file());
        assert!(half.is_dir(), "a young half-made dir may be in the making");
        assert!(outside.join("keep").is_file(), "gc followed a symlink");

        let later = now + HALF_MADE_AGE + Duration::from_secs(60);
        assert_eq!(
            gc_in(&data, later),
            ["removed a half-made agent state (no project-root) (projects/0123456789abcdef, 0 files)"]
        );
        assert!(live_st.dir.is_dir());
        assert_eq!(gc_in(&data, later), Vec::<String>::new());
    }

    #[test]
    fn a_git_file_naming_another_repository_does_not_get_its_state() {
        let tmp = tempfile::tempdir().unwrap();
        let secret = tmp.path().join("secret");
        std::fs::create_dir_all(&secret).unwrap();
        let ok = std::process::Command::new("git")
            .args(["init", "-q"])
            .current_dir(&secret)
            .status()
            .unwrap();
        assert!(ok.success());
        let evil = tmp.path().join("evil");
        std::fs::create_dir_all(&evil).unwrap();
        std::fs::write(
            evil.join(".git"),
            format!("gitdir: {}\n", secret.join(".git").display()),
        )
        .unwrap();
        assert_eq!(project_root(&evil), std::fs::canonicalize(&evil).unwrap());
    }
}
