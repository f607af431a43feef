//! `corral backup` and `corral restore`: the agent state kept outside projects
//! ([`crate::agentstate`]: `projects/<key>/` and `agents/<agent>/` in the data dir) to and from a
//! plain tar archive.
//!
//! The archive starts with `MANIFEST.json` ([`Manifest`]), then `projects/<key>/…` and
//! `agents/<agent>/…`: regular files and directories only, with their modes (setuid, setgid and
//! sticky bits are dropped on restore) and modification times. Symlinks, sockets, FIFOs and devices
//! are skipped on backup (and counted); an archive holding any entry but a regular file or a
//! directory is refused on restore.
//!
//! Restore is all or nothing: every check that can be made up front (the manifest, local state
//! newer than the archive's) is made before anything is written; the archive is then extracted
//! into a temporary directory inside the data dir (refusing `..`, absolute paths, links and
//! anything outside `projects/` and `agents/` as it goes), and only then is each directory renamed
//! into place, the old one moved aside first and removed after the last rename succeeded, or moved
//! back if one failed. Nothing extracted is a symlink, so no path written can lead out of the
//! temporary directory.
//!
//! Limits: a file changed while it is archived is archived as read (a file that shrinks fails the
//! backup); the manifest's counts are from the walk just before. A running session of a restored
//! project keeps the directory it had (moved aside and removed): restore between sessions.

use crate::agentstate::{self, TreeStats};
use anyhow::{bail, Context};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The archive's first entry.
pub const MANIFEST: &str = "MANIFEST.json";
/// The manifest's format version.
const MANIFEST_FORMAT: u32 = 1;
/// A manifest larger than this is not one `corral backup` wrote (about 100 bytes per project).
const MAX_MANIFEST_BYTES: u64 = 16 << 20;
/// Mode bits restored: the permission bits, without setuid, setgid and sticky.
const RESTORED_MODE_BITS: u32 = 0o777;

/// Flags of `corral backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Only the project at PATH (its repository's state, shared by its worktrees); default: every
    /// project's. The shared per-user part (agents/) is always included.
    #[arg(long, value_name = "PATH")]
    pub project: Option<PathBuf>,
    /// The archive to write (default: corral-backup-<UTC time>.tar in the current directory); an
    /// existing file is never overwritten.
    #[arg(short = 'o', long, value_name = "ARCHIVE")]
    pub output: Option<PathBuf>,
}

/// Flags of `corral restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// An archive written by `corral backup`.
    #[arg(value_name = "ARCHIVE")]
    pub archive: PathBuf,
    /// Replace local state even where it has files newer than the archive's.
    #[arg(long)]
    pub force: bool,
}

/// `MANIFEST.json`: what the archive holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// The version of corral that wrote it.
    pub corral_version: String,
    /// When it was written, RFC 3339 UTC.
    pub created: String,
    /// `projects/<key>/` in the archive.
    pub projects: Vec<ManifestProject>,
    /// `agents/<agent>/` in the archive.
    pub agents: Vec<ManifestAgent>,
}

/// One project in the [`Manifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestProject {
    /// Its key (the directory name).
    pub key: String,
    /// Its root, as its `project-root` names it.
    pub root: String,
    /// The newest modification time of its files, seconds since the epoch.
    pub newest_mtime: u64,
    /// How many regular files it has.
    pub files: u64,
}

/// One agent's shared state in the [`Manifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestAgent {
    /// The agent (the directory name).
    pub name: String,
    /// The newest modification time of its files, seconds since the epoch.
    pub newest_mtime: u64,
    /// How many regular files it has.
    pub files: u64,
}

/// Which side of the data dir an archived directory belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    /// `projects/<key>`.
    Projects,
    /// `agents/<agent>`.
    Agents,
}

impl Side {
    fn dir(self) -> &'static str {
        match self {
            Side::Projects => "projects",
            Side::Agents => "agents",
        }
    }
}

/// What restore may replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    /// Only local state none of whose files is newer than the archive's newest.
    OnlyOlder,
    /// Any local state (`--force`).
    Any,
}

/// `$HOME`, which must be absolute.
fn home() -> anyhow::Result<PathBuf> {
    match std::env::var_os("HOME") {
        Some(h) if Path::new(&h).is_absolute() => Ok(PathBuf::from(h)),
        _ => bail!("HOME is not set to an absolute path: cannot find the agent state"),
    }
}

/// Runs `corral backup`.
pub fn backup(args: &BackupArgs) -> anyhow::Result<i32> {
    let data = agentstate::data_dir(&home()?);
    let now = SystemTime::now();
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("corral-backup-{}.tar", compact_utc(now))));
    let root = match &args.project {
        Some(p) => {
            fs::metadata(p).with_context(|| format!("stat {} (--project)", p.display()))?;
            Some(agentstate::project_root(p))
        }
        None => None,
    };
    let report = write_backup(&data, root.as_deref(), &out, now)?;
    for line in report.lines(&out) {
        println!("{line}");
    }
    Ok(0)
}

/// Runs `corral restore`.
pub fn restore(args: &RestoreArgs) -> anyhow::Result<i32> {
    let data = agentstate::data_dir(&home()?);
    let replace = if args.force {
        Replace::Any
    } else {
        Replace::OnlyOlder
    };
    for line in restore_from(&data, &args.archive, replace)? {
        println!("{line}");
    }
    Ok(0)
}

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The manifest written first.
    pub manifest: Manifest,
    /// Entries left out: not regular files or directories.
    pub skipped: u64,
}

impl BackupReport {
    /// What to tell the user.
    pub fn lines(&self, out: &Path) -> Vec<String> {
        let m = &self.manifest;
        let mut lines: Vec<String> = m
            .projects
            .iter()
            .map(|p| format!("{} (projects/{}, {} files)", p.root, p.key, p.files))
            .chain(
                m.agents
                    .iter()
                    .map(|a| format!("shared {} (agents/{}, {} files)", a.name, a.name, a.files)),
            )
            .collect();
        lines.insert(
            0,
            format!(
                "wrote {}: {} project(s), {} agent(s)",
                out.display(),
                m.projects.len(),
                m.agents.len()
            ),
        );
        if self.skipped > 0 {
            lines.push(format!(
                "skipped {} entries that are not regular files or directories (symlinks, sockets, \
                 FIFOs, devices)",
                self.skipped
            ));
        }
        lines
    }
}

/// A directory or regular file to archive.
#[derive(Debug)]
struct Member {
    /// Its path in the archive.
    rel: PathBuf,
    /// Its path on disk.
    abs: PathBuf,
    is_dir: bool,
}

/// One `projects/<key>` or `agents/<agent>` directory to archive.
#[derive(Debug)]
struct Item {
    side: Side,
    name: OsString,
    root: Option<PathBuf>,
}

/// Writes the archive of `data` (only the project whose root is `project`, when given) to `out`,
/// which must not exist. On failure `out` is removed.
pub fn write_backup(
    data: &Path,
    project: Option<&Path>,
    out: &Path,
    now: SystemTime,
) -> anyhow::Result<BackupReport> {
    let items = backup_items(data, project)?;
    if items.is_empty() {
        bail!("no agent state to back up in {}", data.display());
    }
    let mut members = Vec::new();
    let mut skipped = 0;
    let mut manifest = Manifest {
        format: MANIFEST_FORMAT,
        corral_version: env!("CARGO_PKG_VERSION").to_string(),
        created: rfc3339_utc(now),
        projects: Vec::new(),
        agents: Vec::new(),
    };
    for item in &items {
        let rel = Path::new(item.side.dir()).join(&item.name);
        let abs = data.join(&rel);
        let first = members.len();
        members.push(Member {
            rel: rel.clone(),
            abs: abs.clone(),
            is_dir: true,
        });
        walk(&abs, &rel, &mut members, &mut skipped)?;
        let stats = members_stats(members.get(first..).unwrap_or_default())?;
        let name = item.name.to_string_lossy().into_owned();
        match item.side {
            Side::Projects => manifest.projects.push(ManifestProject {
                key: name,
                root: item
                    .root
                    .as_deref()
                    .map(|r| r.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                newest_mtime: stats.newest_mtime,
                files: stats.files,
            }),
            Side::Agents => manifest.agents.push(ManifestAgent {
                name,
                newest_mtime: stats.newest_mtime,
                files: stats.files,
            }),
        }
    }

    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                anyhow::anyhow!("{} exists: refusing to overwrite it", out.display())
            } else {
                anyhow::Error::new(e).context(format!("creating {}", out.display()))
            }
        })?;
    let written = write_archive(file, &manifest, &members, now);
    if let Err(e) = written {
        let _ = fs::remove_file(out);
        return Err(e.context(format!("writing {}", out.display())));
    }
    Ok(BackupReport { manifest, skipped })
}

/// The directories to archive: every project with a `project-root` (or only `project`'s) and every
/// agent's shared dir, sorted.
fn backup_items(data: &Path, project: Option<&Path>) -> anyhow::Result<Vec<Item>> {
    let mut items = Vec::new();
    let projects = data.join("projects");
    match project {
        Some(root) => {
            let key = agentstate::project_key(root);
            let dir = projects.join(&key);
            let named = agentstate::read_project_root(&dir)
                .with_context(|| format!("reading {}", dir.join(agentstate::PROJECT_ROOT_FILE).display()))?;
            if named.as_deref() != Some(root) || !is_real_dir(&dir) {
                bail!("no agent state for {} (no {})", root.display(), dir.display());
            }
            items.push(Item {
                side: Side::Projects,
                name: key.into(),
                root: Some(root.to_path_buf()),
            });
        }
        None => {
            for name in dir_names(&projects)? {
                let dir = projects.join(&name);
                if !agentstate::is_key(&name) || !is_real_dir(&dir) {
                    continue;
                }
                let root = agentstate::read_project_root(&dir).with_context(|| {
                    format!("reading {}", dir.join(agentstate::PROJECT_ROOT_FILE).display())
                })?;
                // Without project-root it is half-made (or not ours): nothing to restore it as.
                if let Some(root) = root {
                    items.push(Item {
                        side: Side::Projects,
                        name,
                        root: Some(root),
                    });
                }
            }
        }
    }
    let agents = data.join("agents");
    for name in dir_names(&agents)? {
        if valid_agent_name(&name) && is_real_dir(&agents.join(&name)) {
            items.push(Item {
                side: Side::Agents,
                name,
                root: None,
            });
        }
    }
    Ok(items)
}

/// The names in `dir`, sorted (none when it does not exist).
fn dir_names(dir: &Path) -> anyhow::Result<Vec<OsString>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut names = Vec::new();
    for e in rd {
        names.push(
            e.with_context(|| format!("reading {}", dir.display()))?
                .file_name(),
        );
    }
    names.sort();
    Ok(names)
}

/// A directory, not a symlink to one.
fn is_real_dir(p: &Path) -> bool {
    p.symlink_metadata().is_ok_and(|m| m.is_dir())
}

/// An agent directory name: what `corral_core::agents::AGENTS` names, and nothing that could be `.`,
/// `..` or hidden.
fn valid_agent_name(name: &OsStr) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && !b.starts_with(b".")
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
}

/// Appends the directories and regular files below `dir` (sorted, depth first), counting the rest
/// in `skipped`. Symlinks are not followed.
fn walk(dir: &Path, rel: &Path, out: &mut Vec<Member>, skipped: &mut u64) -> anyhow::Result<()> {
    for name in dir_names(dir)? {
        let abs = dir.join(&name);
        let meta = abs
            .symlink_metadata()
            .with_context(|| format!("lstat {}", abs.display()))?;
        let member = Member {
            rel: rel.join(&name),
            abs,
            is_dir: meta.is_dir(),
        };
        if meta.is_dir() {
            let (abs, rel) = (member.abs.clone(), member.rel.clone());
            out.push(member);
            walk(&abs, &rel, out, skipped)?;
        } else if meta.is_file() {
            out.push(member);
        } else {
            *skipped += 1;
        }
    }
    Ok(())
}

/// Files and newest mtime of `members`.
fn members_stats(members: &[Member]) -> anyhow::Result<TreeStats> {
    let mut stats = TreeStats::default();
    for m in members.iter().filter(|m| !m.is_dir) {
        let meta = m
            .abs
            .symlink_metadata()
            .with_context(|| format!("lstat {}", m.abs.display()))?;
        stats.files += 1;
        stats.newest_mtime = stats.newest_mtime.max(agentstate::mtime_secs(&meta));
    }
    Ok(stats)
}

/// The tar stream: the manifest, then every member.
fn write_archive(file: File, manifest: &Manifest, members: &[Member], now: SystemTime) -> anyhow::Result<()> {
    let mut builder = tar::Builder::new(BufWriter::new(file));
    let body = serde_json::to_vec_pretty(manifest)?;
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o600);
    h.set_mtime(secs(now));
    h.set_size(u64::try_from(body.len())?);
    builder
        .append_data(&mut h, MANIFEST, body.as_slice())
        .context("adding MANIFEST.json")?;
    for m in members {
        append_member(&mut builder, m).with_context(|| format!("archiving {}", m.abs.display()))?;
    }
    let w = builder.into_inner().context("finishing the archive")?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(())
}

/// One member: a directory header, or a regular file (opened without following a symlink put in
/// its place since the walk) and its bytes.
fn append_member(builder: &mut tar::Builder<BufWriter<File>>, m: &Member) -> anyhow::Result<()> {
    let mut h = tar::Header::new_gnu();
    if m.is_dir {
        let meta = m.abs.symlink_metadata()?;
        if !meta.is_dir() {
            bail!("no longer a directory");
        }
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(meta.mode() & 0o7777);
        h.set_mtime(agentstate::mtime_secs(&meta));
        h.set_size(0);
        builder.append_data(&mut h, &m.rel, io::empty())?;
        return Ok(());
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&m.abs)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        bail!("no longer a regular file");
    }
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(meta.mode() & 0o7777);
    h.set_mtime(agentstate::mtime_secs(&meta));
    h.set_size(meta.len());
    let exact = Exact {
        inner: file,
        left: meta.len(),
    };
    builder.append_data(&mut h, &m.rel, exact)?;
    Ok(())
}

/// Reads exactly `left` bytes (what the tar header says), failing if the file ends first: the
/// archive would be corrupt otherwise.
#[derive(Debug)]
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.left).unwrap_or(usize::MAX).min(buf.len());
        let n = self.inner.read(buf.get_mut(..want).unwrap_or_default())?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was archived",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Restores the archive into `data`; returns what was restored, one line each.
pub fn restore_from(data: &Path, archive: &Path, replace: Replace) -> anyhow::Result<Vec<String>> {
    let shown = archive.display();
    let file = File::open(archive).with_context(|| format!("opening {shown}"))?;
    let mut ar = tar::Archive::new(BufReader::new(file));
    let mut entries = ar.entries().with_context(|| format!("reading {shown}"))?;

    // The manifest first: it says what may follow.
    let manifest = match entries.next() {
        Some(e) => read_manifest(e.with_context(|| format!("reading {shown}"))?)
            .with_context(|| format!("reading {MANIFEST} of {shown}"))?,
        None => bail!("{shown} is empty: not a corral backup (no {MANIFEST})"),
    };
    let expected = expected_items(&manifest).with_context(|| format!("checking {MANIFEST} of {shown}"))?;

    // Local state newer than the archive's is not replaced without --force.
    let newer = newer_local(data, &manifest);
    if replace == Replace::OnlyOlder && !newer.is_empty() {
        bail!(
            "{shown}: local agent state has files newer than the archive's, not replaced (nothing \
             was changed):\n  {}\nhint: --force replaces them anyway",
            newer.join("\n  ")
        );
    }

    // Extract into a temporary directory beside the final places (same filesystem: renames).
    agentstate::create_dir_all_private(data)?;
    let tmp = TempDir::create(data)?;
    let present = extract(&mut entries, &tmp.path, &expected)
        .with_context(|| format!("restoring {shown} (nothing was changed)"))?;
    if let Some((side, name)) = expected.difference(&present).next() {
        bail!(
            "restoring {shown}: {MANIFEST} lists {}/{}, which the archive does not hold (nothing was \
             changed)",
            side.dir(),
            name.to_string_lossy()
        );
    }

    let placed = place(data, &tmp.path, &present).with_context(|| format!("restoring {shown}"))?;
    let mut lines = Vec::new();
    for (side, name) in &present {
        let n = name.to_string_lossy();
        let replaced = if placed.iter().any(|(s, m, _)| s == side && m == name) {
            ", replacing the local one"
        } else {
            ""
        };
        lines.push(match side {
            Side::Projects => {
                let p = manifest.projects.iter().find(|p| p.key == n);
                format!(
                    "restored the agent state of {} (projects/{n}, {} files){replaced}",
                    p.map_or("?", |p| p.root.as_str()),
                    p.map_or(0, |p| p.files)
                )
            }
            Side::Agents => {
                let a = manifest.agents.iter().find(|a| a.name == n);
                format!(
                    "restored the shared state of {n} (agents/{n}, {} files){replaced}",
                    a.map_or(0, |a| a.files)
                )
            }
        });
    }
    // The replaced state goes last, once everything is in place.
    for (_, _, aside) in placed {
        if let Err(e) = fs::remove_dir_all(&aside) {
            lines.push(format!(
                "warning: removing the replaced state {}: {e}",
                aside.display()
            ));
        }
    }
    Ok(lines)
}

/// Reads and checks the manifest entry.
fn read_manifest<R: Read>(mut entry: tar::Entry<'_, R>) -> anyhow::Result<Manifest> {
    let path = entry.path()?.into_owned();
    if path != Path::new(MANIFEST) || entry.header().entry_type() != tar::EntryType::Regular {
        bail!(
            "the archive does not start with {MANIFEST} (it starts with {}): not a corral backup",
            path.display()
        );
    }
    if entry.size() > MAX_MANIFEST_BYTES {
        bail!("it is larger than {MAX_MANIFEST_BYTES} bytes");
    }
    let mut body = Vec::new();
    entry.read_to_end(&mut body)?;
    let m: Manifest = serde_json::from_slice(&body)?;
    if m.format != MANIFEST_FORMAT {
        bail!("format {} (this corral reads format {MANIFEST_FORMAT})", m.format);
    }
    Ok(m)
}

/// The directories the manifest says the archive holds; refuses bad or repeated names.
fn expected_items(m: &Manifest) -> anyhow::Result<BTreeSet<(Side, OsString)>> {
    let mut set = BTreeSet::new();
    for p in &m.projects {
        if !agentstate::is_key(OsStr::new(&p.key)) {
            bail!("{:?} is not a project key", p.key);
        }
        if !set.insert((Side::Projects, OsString::from(&p.key))) {
            bail!("projects/{} is listed twice", p.key);
        }
    }
    for a in &m.agents {
        if !valid_agent_name(OsStr::new(&a.name)) {
            bail!("{:?} is not an agent name", a.name);
        }
        if !set.insert((Side::Agents, OsString::from(&a.name))) {
            bail!("agents/{} is listed twice", a.name);
        }
    }
    Ok(set)
}

/// Local directories the archive would replace that hold a file newer than the archive's newest
/// for them, one line each.
fn newer_local(data: &Path, m: &Manifest) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |rel: String, what: String, archived: u64| {
        let dir = data.join(&rel);
        if !dir.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            return;
        }
        let local = agentstate::tree_stats(&dir).newest_mtime;
        if local > archived {
            out.push(format!(
                "{rel} ({what}): a local file from {}, the archive's newest from {}",
                rfc3339_utc(UNIX_EPOCH + Duration::from_secs(local)),
                rfc3339_utc(UNIX_EPOCH + Duration::from_secs(archived))
            ));
        }
    };
    for p in &m.projects {
        check(format!("projects/{}", p.key), p.root.clone(), p.newest_mtime);
    }
    for a in &m.agents {
        check(
            format!("agents/{}", a.name),
            format!("shared {}", a.name),
            a.newest_mtime,
        );
    }
    out
}

/// `corral restore`'s temporary directory inside the data dir, removed when dropped (it holds only
/// what was extracted: directories and regular files).
#[derive(Debug)]
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn create(data: &Path) -> anyhow::Result<TempDir> {
        let now = SystemTime::now();
        let path = data.join(format!(
            "{}{}-{}-{}",
            agentstate::RESTORE_TMP_PREFIX,
            compact_utc(now),
            now.duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos()),
            std::process::id()
        ));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Where an archive entry goes: checks its path and returns the directory it belongs to and its
/// path relative to the data dir. Refuses absolute paths, `..`, anything outside `projects/` and
/// `agents/`, and directories the manifest does not list.
fn entry_target(
    path: &Path,
    expected: &BTreeSet<(Side, OsString)>,
) -> anyhow::Result<Option<((Side, OsString), PathBuf)>> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::CurDir => {}
            Component::ParentDir => bail!("{}: a `..` in the path", path.display()),
            Component::RootDir | Component::Prefix(_) => {
                bail!("{}: an absolute path", path.display())
            }
        }
    }
    let side = match parts.first().map(|p| p.as_bytes()) {
        Some(b"projects") => Side::Projects,
        Some(b"agents") => Side::Agents,
        _ => bail!("{}: outside projects/ and agents/", path.display()),
    };
    let Some(name) = parts.get(1) else {
        return Ok(None);
    };
    let item = (side, name.to_os_string());
    if !expected.contains(&item) {
        bail!(
            "{}: {}/{} is not listed in {MANIFEST}",
            path.display(),
            side.dir(),
            name.to_string_lossy()
        );
    }
    Ok(Some((item, parts.iter().collect())))
}

/// Extracts the entries after the manifest below `tmp`; returns the directories seen. Directory
/// modes and times are set last (a read-only directory would refuse its own files otherwise).
fn extract<R: Read>(
    entries: &mut tar::Entries<'_, R>,
    tmp: &Path,
    expected: &BTreeSet<(Side, OsString)>,
) -> anyhow::Result<BTreeSet<(Side, OsString)>> {
    let mut present = BTreeSet::new();
    let mut dirs: Vec<(PathBuf, u32, u64)> = Vec::new();
    for entry in entries {
        let mut entry = entry.context("reading an entry")?;
        let path = entry.path().context("reading an entry's path")?.into_owned();
        let kind = entry.header().entry_type();
        let is_dir = match kind {
            tar::EntryType::Regular => false,
            tar::EntryType::Directory => true,
            // A pax global header (as git archive writes) carries no file.
            tar::EntryType::XGlobalHeader => continue,
            tar::EntryType::Symlink => bail!("{}: a symlink entry", path.display()),
            tar::EntryType::Link => bail!("{}: a hard link entry", path.display()),
            other => bail!(
                "{}: an entry of type {other:?} (only regular files and directories)",
                path.display()
            ),
        };
        let Some((item, rel)) = entry_target(&path, expected)? else {
            if is_dir {
                continue; // `projects/` or `agents/` itself
            }
            bail!("{}: a file where a directory belongs", path.display());
        };
        if !is_dir && rel.components().count() == 2 {
            bail!("{}: a file where a directory belongs", path.display());
        }
        let mode = entry.header().mode().context("reading the mode")? & RESTORED_MODE_BITS;
        let mtime = entry.header().mtime().context("reading the time")?;
        let dst = tmp.join(&rel);
        present.insert(item);
        if let Some(parent) = dst.parent() {
            agentstate::create_dir_all_private(parent)?;
        }
        if is_dir {
            match fs::DirBuilder::new().mode(0o700).create(&dst) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && is_real_dir(&dst) => {}
                Err(e) => return Err(e).with_context(|| format!("creating {}", dst.display())),
            }
            dirs.push((dst, mode, mtime));
            continue;
        }
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&dst)
            .with_context(|| format!("creating {} (for {})", dst.display(), path.display()))?;
        io::copy(&mut entry, &mut f).with_context(|| format!("extracting {}", path.display()))?;
        f.set_permissions(fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {}", dst.display()))?;
        f.set_modified(UNIX_EPOCH + Duration::from_secs(mtime))
            .with_context(|| format!("setting the time of {}", dst.display()))?;
    }
    // Deepest first, so setting a parent's time comes after its children changed it.
    dirs.sort_by_key(|(p, _, _)| std::cmp::Reverse(p.components().count()));
    for (dir, mode, mtime) in dirs {
        let f = File::open(&dir).with_context(|| format!("opening {}", dir.display()))?;
        f.set_modified(UNIX_EPOCH + Duration::from_secs(mtime))
            .with_context(|| format!("setting the time of {}", dir.display()))?;
        f.set_permissions(fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {}", dir.display()))?;
    }
    Ok(present)
}

/// Renames each extracted directory into place, the local one moved aside first. Returns the
/// moved-aside ones (side, name, where) for the caller to remove; on failure moves everything back.
fn place(
    data: &Path,
    tmp: &Path,
    items: &BTreeSet<(Side, OsString)>,
) -> anyhow::Result<Vec<(Side, OsString, PathBuf)>> {
    let stamp = compact_utc(SystemTime::now());
    let mut asides: Vec<(Side, OsString, PathBuf)> = Vec::new();
    let mut placed: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut result = Ok(());
    for (side, name) in items {
        let parent = data.join(side.dir());
        let from = tmp.join(side.dir()).join(name);
        let to = parent.join(name);
        let mut aside_name = OsString::from(".");
        aside_name.push(name);
        aside_name.push(format!(".replaced-{stamp}"));
        let aside = parent.join(aside_name);
        let step = (|| -> anyhow::Result<()> {
            agentstate::create_dir_all_private(&parent)?;
            if to.symlink_metadata().is_ok() {
                fs::rename(&to, &aside)
                    .with_context(|| format!("rename {} → {}", to.display(), aside.display()))?;
                asides.push((*side, name.clone(), aside.clone()));
            }
            fs::rename(&from, &to)
                .with_context(|| format!("rename {} → {}", from.display(), to.display()))?;
            placed.push((to.clone(), from.clone()));
            Ok(())
        })();
        if let Err(e) = step {
            result = Err(e);
            break;
        }
    }
    let Err(e) = result else {
        return Ok(asides);
    };
    // Undo, newest first: the restored ones back into tmp, the moved-aside ones back in place.
    let mut undo_failed = Vec::new();
    for (to, from) in placed.iter().rev() {
        if let Err(u) = fs::rename(to, from) {
            undo_failed.push(format!("rename {} → {}: {u}", to.display(), from.display()));
        }
    }
    for (side, name, aside) in asides.iter().rev() {
        let to = data.join(side.dir()).join(name);
        if let Err(u) = fs::rename(aside, &to) {
            undo_failed.push(format!("rename {} → {}: {u}", aside.display(), to.display()));
        }
    }
    if undo_failed.is_empty() {
        Err(e.context("nothing was changed"))
    } else {
        Err(e.context(format!(
            "and undoing failed, move these back by hand: {}",
            undo_failed.join("; ")
        )))
    }
}

/// Whole seconds since the epoch (0 before it).
fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// (year, month, day, hour, minute, second) in UTC. Days to a civil date: Howard Hinnant's
/// `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>), for days ≥ 0.
fn utc_fields(t: SystemTime) -> (u64, u64, u64, u64, u64, u64) {
    let s = secs(t);
    let (days, rem) = (s / 86_400, s % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// RFC 3339 UTC, whole seconds: `2024-05-01T12:00:00Z`.
pub fn rfc3339_utc(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = utc_fields(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// The same for file names (no colons): `20240501T120000Z`.
pub fn compact_utc(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = utc_fields(t);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use pretty_assertions::assert_eq;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    /// Every entry below `dir`: path, kind, mode, and for files their content and mtime.
    fn tree(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap().flatten() {
                let m = e.path().symlink_metadata().unwrap();
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                let mode = m.mode() & 0o7777;
                if m.is_dir() {
                    out.push(format!("{rel}/ {mode:o}"));
                    stack.push(e.path());
                } else if m.is_file() {
                    let body = fs::read_to_string(e.path()).unwrap();
                    out.push(format!("{rel} {mode:o} {body:?} @{}", agentstate::mtime_secs(&m)));
                } else {
                    out.push(format!("{rel} other"));
                }
            }
        }
        out.sort();
        out
    }

    /// A data dir with two projects (one with odd modes, a symlink and a FIFO) and Claude's
    /// shared state.
    fn populate(data: &Path) -> (agentstate::ProjectState, agentstate::ProjectState) {
        let a = agentstate::ensure_project_in(data, Path::new("/src/a"), "claude").unwrap();
        let b = agentstate::ensure_project_in(data, Path::new("/src/b"), "codex").unwrap();
        agentstate::ensure_shared_in(data, "claude").unwrap();
        fs::write(a.dir.join("claude/settings.json"), "{\"model\":\"x\"}").unwrap();
        let script = a.dir.join("claude/hooks/pre.sh");
        fs::write(&script, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o750)).unwrap();
        let ro = a.dir.join("claude/readonly.txt");
        fs::write(&ro, "r").unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o400)).unwrap();
        fs::set_permissions(a.dir.join("claude/commands"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::write(b.dir.join("codex/log"), "b").unwrap();
        fs::write(data.join("agents/claude/CLAUDE.md"), "be brief").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", a.dir.join("claude/link")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            a.dir.join("claude/fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        // Whole-second, old mtimes (as restored).
        for f in [&script, &ro] {
            File::open(f).unwrap().set_modified(at(1_600_000_000)).unwrap();
        }
        (a, b)
    }

    #[test]
    fn round_trip_restores_an_identical_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let (a, b) = populate(&data);
        let before: Vec<String> = tree(&data)
            .into_iter()
            .filter(|l| !l.ends_with(" other"))
            .collect();
        let out = tmp.path().join("b.tar");
        let report = write_backup(&data, None, &out, at(1_700_000_000)).unwrap();
        assert_eq!(report.skipped, 2, "the symlink and the FIFO");
        assert_eq!(report.manifest.created, "2023-11-14T22:13:20Z");
        assert_eq!(
            report
                .manifest
                .projects
                .iter()
                .map(|p| (&*p.root, p.files))
                .collect::<Vec<_>>(),
            {
                // b: codex's config.toml (its layout) and the log the test wrote.
                let mut v = vec![("/src/a", 5), ("/src/b", 3)];
                v.sort_by_key(|(r, _)| agentstate::project_key(Path::new(r)));
                v
            }
        );
        assert_eq!(report.manifest.agents.len(), 1);
        assert_eq!(fs::metadata(&out).unwrap().mode() & 0o777, 0o600);

        // Refuses to overwrite.
        let e = write_backup(&data, None, &out, at(1_700_000_000)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{} exists: refusing to overwrite it", out.display())
        );

        fs::set_permissions(a.dir.join("claude/commands"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::remove_dir_all(data.join("projects")).unwrap();
        fs::remove_dir_all(data.join("agents")).unwrap();
        let lines = restore_from(&data, &out, Replace::OnlyOlder).unwrap();
        assert_eq!(tree(&data), before);
        let mut want = vec![
            (
                a.key.clone(),
                "restored the agent state of /src/a (projects/{k}, 5 files)",
            ),
            (
                b.key.clone(),
                "restored the agent state of /src/b (projects/{k}, 3 files)",
            ),
        ];
        want.sort();
        let mut want: Vec<String> = want.into_iter().map(|(k, l)| l.replace("{k}", &k)).collect();
        want.push("restored the shared state of claude (agents/claude, 2 files)".into());
        assert_eq!(lines, want);

        // Restoring over the same state: allowed (nothing newer), replaces, leaves nothing aside.
        let lines = restore_from(&data, &out, Replace::OnlyOlder).unwrap();
        assert!(
            lines.iter().all(|l| l.ends_with(", replacing the local one")),
            "{lines:?}"
        );
        assert_eq!(tree(&data), before);

        // Only one project.
        let out2 = tmp.path().join("one.tar");
        let r = write_backup(&data, Some(Path::new("/src/b")), &out2, at(0)).unwrap();
        assert_eq!(r.manifest.projects.len(), 1);
        assert_eq!(r.manifest.projects[0].key, b.key);
        let e = write_backup(
            &data,
            Some(Path::new("/src/none")),
            &tmp.path().join("x.tar"),
            at(0),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("no agent state for /src/none"), "{e}");
        assert!(!tmp.path().join("x.tar").exists(), "bad input left a file");
    }

    #[test]
    fn newer_local_state_is_not_replaced_without_force() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let (a, _) = populate(&data);
        let out = tmp.path().join("b.tar");
        write_backup(&data, None, &out, SystemTime::now()).unwrap();
        let settings = a.dir.join("claude/settings.json");
        fs::write(&settings, "{\"new\":true}").unwrap();
        File::options()
            .write(true)
            .open(&settings)
            .unwrap()
            .set_modified(SystemTime::now() + Duration::from_secs(3600))
            .unwrap();
        let before = tree(&data);
        let e = restore_from(&data, &out, Replace::OnlyOlder).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("local agent state has files newer than the archive's"),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("projects/{} (/src/a): a local file from", a.key)),
            "{msg}"
        );
        assert!(msg.contains("--force"), "{msg}");
        assert_eq!(tree(&data), before, "a refused restore changed something");

        let lines = restore_from(&data, &out, Replace::Any).unwrap();
        assert!(!lines.is_empty());
        assert_eq!(fs::read_to_string(&settings).unwrap(), "{\"model\":\"x\"}");
        assert!(
            !fs::read_dir(data.join("projects"))
                .unwrap()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with('.')),
            "a replaced dir was left behind"
        );
    }

    /// A tar with a valid manifest for `/src/a`, then `entries` (raw path bytes, type, link name),
    /// written with raw headers so nothing is sanitised.
    fn crafted(out: &Path, key: &str, entries: &[(&[u8], tar::EntryType, &str)]) {
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            corral_version: "0".into(),
            created: "2020-01-01T00:00:00Z".into(),
            projects: vec![ManifestProject {
                key: key.into(),
                root: "/src/a".into(),
                newest_mtime: 0,
                files: 1,
            }],
            agents: vec![],
        };
        let mut b = tar::Builder::new(File::create(out).unwrap());
        let body = serde_json::to_vec(&manifest).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o600);
        b.append_data(&mut h, MANIFEST, body.as_slice()).unwrap();
        let mut raw = |path: &[u8], t: tar::EntryType, link: &str, body: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.as_old_mut().name[..path.len()].copy_from_slice(path);
            h.set_entry_type(t);
            h.set_mode(0o644);
            h.set_size(body.len() as u64);
            if !link.is_empty() {
                h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
            h.set_cksum();
            b.append(&h, body).unwrap();
        };
        raw(
            format!("projects/{key}/ok").as_bytes(),
            tar::EntryType::Regular,
            "",
            b"fine",
        );
        for (path, t, link) in entries {
            let body: &[u8] = if *t == tar::EntryType::Regular {
                b"evil"
            } else {
                b""
            };
            raw(path, *t, link, body);
        }
        b.finish().unwrap();
    }

    #[test]
    fn crafted_archives_are_refused_and_change_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let (a, _) = populate(&data);
        let k = a.key.clone();
        let before = tree(&data);
        let reg = tar::EntryType::Regular;
        let up = format!("projects/{k}/../../../x");
        let file_as_dir = format!("projects/{k}");
        let sym = format!("projects/{k}/claude/hooks");
        let hard = format!("projects/{k}/h");
        let cases: Vec<(&[u8], tar::EntryType, &str, String)> = vec![
            (b"../x", reg, "", "../x: a `..` in the path".into()),
            (up.as_bytes(), reg, "", format!("{up}: a `..` in the path")),
            (
                b"/tmp/corral-evil",
                reg,
                "",
                "/tmp/corral-evil: an absolute path".into(),
            ),
            (
                b"other/x",
                reg,
                "",
                "other/x: outside projects/ and agents/".into(),
            ),
            (
                b"MANIFEST.json",
                reg,
                "",
                "MANIFEST.json: outside projects/ and agents/".into(),
            ),
            (
                b"projects/0000000000000000/x",
                reg,
                "",
                "projects/0000000000000000/x: projects/0000000000000000 is not listed in MANIFEST.json"
                    .into(),
            ),
            (
                file_as_dir.as_bytes(),
                reg,
                "",
                format!("{file_as_dir}: a file where a directory belongs"),
            ),
            (
                sym.as_bytes(),
                tar::EntryType::Symlink,
                "/etc",
                format!("{sym}: a symlink entry"),
            ),
            (
                hard.as_bytes(),
                tar::EntryType::Link,
                "/etc/passwd",
                format!("{hard}: a hard link entry"),
            ),
            (
                b"projects/x/fifo",
                tar::EntryType::Fifo,
                "",
                "projects/x/fifo: an entry of type Fifo (only regular files and directories)".into(),
            ),
        ];
        for (i, (path, t, link, want)) in cases.into_iter().enumerate() {
            let out = tmp.path().join(format!("evil{i}.tar"));
            crafted(&out, &k, &[(path, t, link)]);
            let e = restore_from(&data, &out, Replace::Any).unwrap_err();
            assert_eq!(
                format!("{e:#}"),
                format!("restoring {} (nothing was changed): {want}", out.display()),
                "case {i}"
            );
            assert_eq!(tree(&data), before, "case {i} changed something");
            assert!(!tmp.path().join("x").exists());
        }

        // No manifest at all.
        let out = tmp.path().join("plain.tar");
        let mut b = tar::Builder::new(File::create(&out).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        b.append_data(&mut h, format!("projects/{k}/x"), &b"x"[..])
            .unwrap();
        b.finish().unwrap();
        drop(b);
        let e = restore_from(&data, &out, Replace::Any).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            format!(
                "reading MANIFEST.json of {}: the archive does not start with MANIFEST.json (it \
                 starts with projects/{k}/x): not a corral backup",
                out.display()
            )
        );
        assert_eq!(tree(&data), before);
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(rfc3339_utc(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(at(1_700_000_000)), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_utc(at(4_102_444_799)), "2099-12-31T23:59:59Z");
        assert_eq!(compact_utc(at(1_700_000_000)), "20231114T221320Z");
    }
}
