//! Applies a plan's mount steps to build the new root, then pivots into it.
//!
//! Runs in the sandbox's init, inside its own user and mount namespaces, after `/` was made
//! recursively private. Order it relies on:
//! 1. every host bind source is cloned (`open_tree(OPEN_TREE_CLONE|AT_RECURSIVE)`) before anything
//!    is mounted, so a source under a path the new root covers (e.g. a workspace in `/tmp`) stays
//!    reachable;
//! 2. the new root is a tmpfs mounted on the staging directory; steps apply in plan order, with
//!    flags set by `mount_setattr` on the detached clone *before* it is attached (recursive, and
//!    free of the flag-locking traps of `MS_REMOUNT`);
//! 3. `/proc` is mounted while the old root is still attached (the kernel only allows a new procfs
//!    where a full one is already visible), then `pivot_root(".", ".")` and a lazy unmount of the
//!    old root (the trick from pivot_root(2)).
//!
//! Mount points are created only where the plan says so (inside corral's own tmpfs mounts), never
//! inside a host bind, so building the sandbox never writes to the host.

use corral_core::plan::{Access, FileKind, MountOp};
use rustix::fs::{Mode, OFlags, CWD};
use rustix::mount::{
    mount, mount_change, move_mount, open_tree, unmount, MountFlags, MountPropagationFlags, MoveMountFlags,
    OpenTreeFlags, UnmountFlags,
};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::ll::{self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};

/// Size of the new root tmpfs: it holds only mount points and symlinks, and is read-only at the end.
const ROOT_TMPFS_OPTS: &str = "mode=0755,size=1m";
/// An empty read-only directory mask: tiny and unwritable.
const MASK_DIR_OPTS: &str = "mode=0555,size=4k,nr_inodes=2";
/// `AT_RECURSIVE` for `mount_setattr`.
const AT_RECURSIVE: u32 = 0x8000;
/// `AT_EMPTY_PATH`.
const AT_EMPTY_PATH: u32 = 0x1000;

/// A mount step that failed, named like strace would show it.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {source}")]
pub struct MountError {
    /// The operation with its arguments, e.g. `move_mount("/home/u/proj" → "/home/u/proj")`.
    pub op: String,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

fn err(op: impl Into<String>) -> impl FnOnce(io::Error) -> MountError {
    let op = op.into();
    move |source| MountError { op, source }
}

fn err_rx(op: impl Into<String>) -> impl FnOnce(rustix::io::Errno) -> MountError {
    let op = op.into();
    move |e| MountError { op, source: e.into() }
}

fn cstr(p: &Path) -> CString {
    // Paths from the plan come from OsStr and cannot contain NUL (the kernel gave them to us or
    // the profile parser would have had to accept a NUL, which TOML strings can hold): replace.
    CString::new(p.as_os_str().as_bytes().to_vec()).unwrap_or_else(|_| c"/nonexistent-nul-in-path".to_owned())
}

/// Makes every mount in this namespace private, so nothing below propagates to the host and
/// `pivot_root` accepts the tree (it refuses shared mounts with EINVAL, as on systemd hosts).
pub fn make_private() -> Result<(), MountError> {
    mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        .map_err(err_rx("mount(\"/\", MS_REC|MS_PRIVATE)"))
}

/// Builds the new root at `staging` from `ops`.
pub fn apply_mounts(ops: &[MountOp], staging: &Path) -> Result<(), MountError> {
    // Clone every host source first, and open the review layers (see the module docs).
    let mut clones: Vec<Pre> = Vec::with_capacity(ops.len());
    for op in ops {
        clones.push(match op {
            MountOp::Bind { src, .. } => Pre::Tree(clone_tree(src)?),
            MountOp::Overlay {
                lower, upper, work, ..
            } => Pre::Overlay {
                // An O_PATH descriptor, not a detached clone: overlayfs refuses a detached mount
                // as a layer (EACCES), and the descriptor keeps pointing at the project when the
                // new root covers its path.
                lower: open_dir(lower)?,
                upper: open_dir(upper)?,
                work: open_dir(work)?,
            },
            _ => Pre::Nothing,
        });
    }

    mount(
        "tmpfs",
        staging,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some(c"mode=0755,size=1m"),
    )
    .map_err(err_rx(format!(
        "mount(\"tmpfs\" → {staging:?}, \"{ROOT_TMPFS_OPTS}\")"
    )))?;

    // The source of every file mask: one empty regular file at the root, read-only with it. A bind
    // of it reads as empty and refuses writes with EROFS (where /dev/null would silently swallow
    // them), and it stays reachable for masks re-applied during the session.
    let empty = make_mask_source(staging)?;

    for (op, pre) in ops.iter().zip(clones) {
        match (op, pre) {
            (MountOp::Overlay { dst, .. }, Pre::Overlay { lower, upper, work }) => {
                let target = at(staging, dst);
                // The workspace's mount point, as its bind would have made it (inside corral's
                // own tmpfs; a read-only host bind refuses with EROFS, named).
                if std::fs::symlink_metadata(&target).is_err() {
                    mkdir_p(&target)?;
                }
                mount_overlay(&lower, &upper, &work, &target, dst)?;
            }
            (_, Pre::Tree(fd)) => apply_one(op, Some(fd), &empty, staging)?,
            (_, _) => apply_one(op, None, &empty, staging)?,
        }
    }
    Ok(())
}

/// What a mount step needs from the host before the new root covers anything.
enum Pre {
    /// Nothing.
    Nothing,
    /// A bind's source, cloned.
    Tree(OwnedFd),
    /// An overlay's layers.
    Overlay {
        lower: OwnedFd,
        upper: OwnedFd,
        work: OwnedFd,
    },
}

fn open_dir(path: &Path) -> Result<OwnedFd, MountError> {
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(err_rx(format!("open({path:?}, O_PATH|O_DIRECTORY)")))
}

/// Mounts an overlay with the new mount API, the layers given as descriptors (their paths may be
/// covered by the new root by now): `lowerdir+`, `upperdir`, `workdir`, `userxattr` (unprivileged
/// overlayfs keeps its whiteout and opaque marks in `user.` xattrs).
fn mount_overlay(
    lower: &OwnedFd,
    upper: &OwnedFd,
    work: &OwnedFd,
    target: &Path,
    dst: &Path,
) -> Result<(), MountError> {
    use rustix::mount::{
        fsconfig_create, fsconfig_set_fd, fsconfig_set_flag, fsmount, fsopen, FsMountFlags, FsOpenFlags,
        MountAttrFlags,
    };
    // Every failure says what review mode needs (the fix), after the call that failed.
    let what = |op: &str| {
        format!(
            "{op} (review overlay for {dst:?}; hint: review mode needs overlayfs in user namespaces (Linux ≥ 5.11, \"lowerdir+\" ≥ 6.8) and user xattrs on the filesystem of ~/.local/state; run without --review otherwise)"
        )
    };
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(err_rx(what("fsopen(\"overlay\")")))?;
    fsconfig_set_fd(&fs, "lowerdir+", lower).map_err(err_rx(what("fsconfig(lowerdir+)")))?;
    fsconfig_set_fd(&fs, "upperdir", upper).map_err(err_rx(what("fsconfig(upperdir)")))?;
    fsconfig_set_fd(&fs, "workdir", work).map_err(err_rx(what("fsconfig(workdir)")))?;
    fsconfig_set_flag(&fs, "userxattr").map_err(err_rx(what("fsconfig(userxattr)")))?;
    fsconfig_create(&fs).map_err(err_rx(what("fsconfig(FSCONFIG_CMD_CREATE)")))?;
    let mnt = fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV,
    )
    .map_err(err_rx(what("fsmount")))?;
    attach(&mnt, target, Path::new("(overlay)"), dst)
}

/// Path, inside the sandbox, of the empty read-only file every file mask is a bind of.
pub const MASK_SOURCE: &str = "/.corral-mask";

fn make_mask_source(staging: &Path) -> Result<OwnedFd, MountError> {
    let path = at(staging, Path::new(MASK_SOURCE));
    rustix::fs::open(
        &path,
        OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o444),
    )
    .map_err(err_rx(format!("creat({path:?})")))?;
    rustix::fs::open(&path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
        .map_err(err_rx(format!("open({path:?}, O_PATH)")))
}

/// Re-applies single mount steps inside a running sandbox's mount namespace (the caller has
/// entered it): used when the host replaced a protected or masked file, which detaches the mount
/// that was on it in every other namespace. Paths are the sandbox's own; `/` is its root.
pub fn reapply(ops: &[MountOp]) -> Result<(), MountError> {
    let empty = rustix::fs::open(MASK_SOURCE, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
        .map_err(err_rx(format!("open({MASK_SOURCE:?}, O_PATH)")))?;
    for op in ops {
        apply_one(op, None, &empty, Path::new("/"))?;
    }
    Ok(())
}

fn at(staging: &Path, dst: &Path) -> PathBuf {
    staging.join(dst.strip_prefix("/").unwrap_or(dst))
}

fn apply_one(
    op: &MountOp,
    clone: Option<OwnedFd>,
    empty: &OwnedFd,
    staging: &Path,
) -> Result<(), MountError> {
    match op {
        MountOp::Tmpfs {
            dst,
            mode,
            size_mb,
            create,
        } => {
            let target = at(staging, dst);
            if *create {
                mkdir_p(&target)?;
            }
            mount_tmpfs(&target, dst, &format!("mode={mode:o},size={size_mb}m"))
        }
        MountOp::Bind {
            src,
            dst,
            access,
            kind,
            create,
            ..
        } => {
            let target = at(staging, dst);
            if *create {
                make_mountpoint(&target, *kind)?;
            }
            let fd =
                clone.ok_or_else(|| err("bind without a cloned source")(io::Error::other("internal")))?;
            let mut set = MOUNT_ATTR_NOSUID;
            if *kind != FileKind::Other {
                set |= MOUNT_ATTR_NODEV;
            }
            if *access == Access::ReadOnly {
                set |= MOUNT_ATTR_RDONLY;
            }
            setattr_detached(&fd, set, src)?;
            attach(&fd, &target, src, dst)
        }
        MountOp::Rebind { dst, access, .. } => {
            let target = at(staging, dst);
            let fd = clone_tree(&target)?;
            let mut set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
            if *access == Access::ReadOnly {
                set |= MOUNT_ATTR_RDONLY;
            }
            setattr_detached(&fd, set, dst)?;
            attach(&fd, &target, dst, dst)
        }
        MountOp::Mask { dst, kind, .. } => {
            let target = at(staging, dst);
            match kind {
                FileKind::Dir => {
                    let flags =
                        MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
                    mount(
                        "tmpfs",
                        &target,
                        "tmpfs",
                        flags,
                        Some(c"mode=0555,size=4k,nr_inodes=2"),
                    )
                    .map_err(err_rx(format!(
                        "mount(\"tmpfs\" → {dst:?}, MS_RDONLY, \"{MASK_DIR_OPTS}\")"
                    )))
                }
                FileKind::File | FileKind::Other => {
                    let flags = OpenTreeFlags::OPEN_TREE_CLONE
                        | OpenTreeFlags::OPEN_TREE_CLOEXEC
                        | OpenTreeFlags::AT_EMPTY_PATH;
                    let fd = open_tree(empty, "", flags)
                        .map_err(err_rx(format!("open_tree(empty file → {dst:?})")))?;
                    let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
                    setattr_detached(&fd, attrs, dst)?;
                    attach(&fd, &target, Path::new("(empty file)"), dst)
                }
            }
        }
        MountOp::Symlink { dst, target } => {
            let link = at(staging, dst);
            if let Some(parent) = link.parent() {
                mkdir_p(parent)?;
            }
            rustix::fs::symlink(target, &link).map_err(err_rx(format!("symlink({target:?} ← {dst:?})")))
        }
        MountOp::Proc { dst } => {
            let target = at(staging, dst);
            mkdir_p(&target)?;
            let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
            mount("proc", &target, "proc", flags, None).map_err(err_rx(format!("mount(\"proc\" → {dst:?})")))
        }
        MountOp::Devpts { dst } => {
            let target = at(staging, dst);
            mkdir_p(&target)?;
            let flags = MountFlags::NOSUID | MountFlags::NOEXEC;
            // newinstance: a private set of ptys, invisible to and from the host's /dev/pts.
            mount(
                "devpts",
                &target,
                "devpts",
                flags,
                Some(c"newinstance,ptmxmode=0666,mode=0620"),
            )
            .map_err(err_rx(format!(
                "mount(\"devpts\" → {dst:?}, \"newinstance,ptmxmode=0666,mode=0620\")"
            )))
        }
        MountOp::File { dst, contents, .. } => {
            let src = write_generated(staging, dst, contents)?;
            let target = follow_in_root(staging, dst)?;
            if std::fs::symlink_metadata(&target).is_err() {
                // A symlink into a directory of corral's own tmpfs (systemd's /etc/resolv.conf →
                // /run/...): the file it names does not exist in the sandbox; create it there.
                // Inside a read-only host bind this fails with EROFS, and the error names it.
                make_mountpoint(&target, FileKind::File)?;
            }
            let flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
            let fd = open_tree(CWD, &src, flags)
                .map_err(err_rx(format!("open_tree({src:?}, OPEN_TREE_CLONE)")))?;
            let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
            setattr_detached(&fd, attrs, dst)?;
            attach(&fd, &target, Path::new("(generated file)"), dst)
        }
        MountOp::Generated { dst, files } => {
            let target = at(staging, dst);
            mkdir_p(&target)?;
            // Sized to what it holds (plus room for the mount points binds put in it).
            let bytes: usize = files.iter().map(|(_, c)| c.len()).sum();
            mount_tmpfs(&target, dst, &format!("mode=0755,size={}k", bytes / 1024 + 64))?;
            for (rel, contents) in files {
                let rel = Path::new(rel);
                if rel.is_absolute()
                    || rel
                        .components()
                        .any(|c| matches!(c, std::path::Component::ParentDir))
                {
                    return Err(err(format!("generated file {rel:?} under {dst:?}"))(
                        io::Error::from_raw_os_error(libc::EINVAL),
                    ));
                }
                let path = target.join(rel);
                if let Some(parent) = path.parent() {
                    mkdir_p(parent)?;
                }
                std::fs::write(&path, contents).map_err(err(format!("write({path:?})")))?;
                std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o444))
                    .map_err(err(format!("chmod({path:?}, 0444)")))?;
            }
            Ok(())
        }
        MountOp::Overlay { dst, .. } => Err(err(format!("overlay {dst:?} without its layers"))(
            io::Error::from_raw_os_error(libc::EINVAL),
        )),
        MountOp::ReadOnly { dst } => {
            let target = at(staging, dst);
            ll::mount_setattr(CWD, &cstr(&target), 0, MOUNT_ATTR_RDONLY, 0)
                .map_err(err(format!("mount_setattr({dst:?}, MOUNT_ATTR_RDONLY)")))
        }
    }
}

/// A `nosuid,nodev` tmpfs with `opts` at `target` (`dst` inside the sandbox, for the error).
fn mount_tmpfs(target: &Path, dst: &Path, opts: &str) -> Result<(), MountError> {
    let c = CString::new(opts).map_err(|e| err("tmpfs options")(io::Error::other(e)))?;
    mount(
        "tmpfs",
        target,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some(c.as_c_str()),
    )
    .map_err(err_rx(format!("mount(\"tmpfs\" → {dst:?}, \"{opts}\")")))
}

fn clone_tree(src: &Path) -> Result<OwnedFd, MountError> {
    let flags =
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_RECURSIVE;
    open_tree(CWD, src, flags).map_err(err_rx(format!(
        "open_tree({src:?}, OPEN_TREE_CLONE|AT_RECURSIVE)"
    )))
}

fn setattr_detached(fd: &OwnedFd, set: u64, what: &Path) -> Result<(), MountError> {
    ll::mount_setattr(fd.as_fd(), c"", AT_EMPTY_PATH | AT_RECURSIVE, set, 0).map_err(err(format!(
        "mount_setattr({what:?}, AT_RECURSIVE, {})",
        attr_names(set)
    )))
}

fn attach(fd: &OwnedFd, target: &Path, src: &Path, dst: &Path) -> Result<(), MountError> {
    move_mount(
        fd.as_fd(),
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(err_rx(format!("move_mount({src:?} → {dst:?})")))
}

fn attr_names(set: u64) -> String {
    let names = [
        (MOUNT_ATTR_RDONLY, "RDONLY"),
        (MOUNT_ATTR_NOSUID, "NOSUID"),
        (MOUNT_ATTR_NODEV, "NODEV"),
        (MOUNT_ATTR_NOEXEC, "NOEXEC"),
    ];
    names
        .iter()
        .filter(|(b, _)| set & b != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join("|")
}

/// Directory of the new root holding the files corral generates ([`MountOp::File`] sources).
const GENERATED_DIR: &str = "/.corral-files";
/// Most symlinks followed when placing a generated file (like the kernel's nested-link limit).
const MAX_LINKS: usize = 8;

/// Writes a generated file's contents under [`GENERATED_DIR`] in the new root (mode 0444) and
/// returns its path.
fn write_generated(staging: &Path, dst: &Path, contents: &str) -> Result<PathBuf, MountError> {
    let dir = at(staging, Path::new(GENERATED_DIR));
    mkdir_p(&dir)?;
    let name = dst.to_string_lossy().trim_start_matches('/').replace('/', "_");
    let path = dir.join(name);
    std::fs::write(&path, contents).map_err(err(format!("write({path:?})")))?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o444))
        .map_err(err(format!("chmod({path:?}, 0444)")))?;
    Ok(path)
}

/// `dst` inside the new root with symlinks in its last component followed *inside* that root
/// (an absolute link target means the new root's `/`, never the host's), lexically, at most
/// [`MAX_LINKS`] times.
fn follow_in_root(staging: &Path, dst: &Path) -> Result<PathBuf, MountError> {
    let mut p = dst.to_path_buf();
    for _ in 0..MAX_LINKS {
        let here = at(staging, &p);
        match std::fs::read_link(&here) {
            Ok(target) => {
                let joined = match p.parent() {
                    Some(parent) if target.is_relative() => parent.join(&target),
                    _ => target.clone(),
                };
                p = normalize(&joined);
            }
            Err(_) => return Ok(here),
        }
    }
    Err(err(format!("placing {dst:?}: more than {MAX_LINKS} symlinks"))(
        io::Error::from_raw_os_error(libc::ELOOP),
    ))
}

/// Resolves `.` and `..` lexically, never above `/`.
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

fn mkdir_p(path: &Path) -> Result<(), MountError> {
    std::fs::create_dir_all(path).map_err(err(format!("mkdir -p {path:?}")))
}

fn make_mountpoint(path: &Path, kind: FileKind) -> Result<(), MountError> {
    match kind {
        FileKind::Dir => mkdir_p(path),
        FileKind::File | FileKind::Other => {
            if let Some(parent) = path.parent() {
                mkdir_p(parent)?;
            }
            rustix::fs::open(
                path,
                OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            )
            .map(drop)
            .map_err(err_rx(format!("creat({path:?})")))
        }
    }
}

/// Switches the root to `staging` and detaches the old root (pivot_root(2): `pivot_root(".", ".")`
/// stacks the old root on the new one; the lazy unmount then removes it).
pub fn pivot_into(staging: &Path) -> Result<(), MountError> {
    rustix::process::chdir(staging).map_err(err_rx(format!("chdir({staging:?})")))?;
    rustix::process::pivot_root(".", ".").map_err(err_rx(format!("pivot_root({staging:?}, \".\")")))?;
    unmount(".", UnmountFlags::DETACH).map_err(err_rx("umount2(old root, MNT_DETACH)"))?;
    rustix::process::chdir("/").map_err(err_rx("chdir(\"/\")"))
}

/// The staging directory the new root is built on. Its host contents are irrelevant: every source
/// was cloned before the tmpfs covers it, and the mount is private to the sandbox's namespace.
pub fn staging_dir() -> &'static Path {
    Path::new("/tmp")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_never_climbs_above_the_root() {
        assert_eq!(normalize(Path::new("/etc/../run/x")), PathBuf::from("/run/x"));
        assert_eq!(normalize(Path::new("/../../x")), PathBuf::from("/x"));
        assert_eq!(normalize(Path::new("/a/./b/")), PathBuf::from("/a/b"));
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn generated_files_follow_symlinks_inside_the_new_root_only() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::create_dir_all(r.join("run/systemd/resolve")).unwrap();
        // systemd's layout: a relative link into /run.
        std::os::unix::fs::symlink(
            "../run/systemd/resolve/stub-resolv.conf",
            r.join("etc/resolv.conf"),
        )
        .unwrap();
        assert_eq!(
            follow_in_root(r, Path::new("/etc/resolv.conf")).unwrap(),
            r.join("run/systemd/resolve/stub-resolv.conf")
        );
        // An absolute link means the new root's `/`, never the host's.
        std::os::unix::fs::symlink("/etc/hosts", r.join("etc/abs")).unwrap();
        assert_eq!(
            follow_in_root(r, Path::new("/etc/abs")).unwrap(),
            r.join("etc/hosts")
        );
        // A loop is an error, not a hang.
        std::os::unix::fs::symlink("/etc/loop", r.join("etc/loop")).unwrap();
        let e = follow_in_root(r, Path::new("/etc/loop")).unwrap_err();
        assert_eq!(e.source.raw_os_error(), Some(libc::ELOOP));
        // The generated file lands in the root's own directory, read-only.
        let src = write_generated(r, Path::new("/etc/resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
        assert_eq!(src, r.join(".corral-files/etc_resolv.conf"));
        assert_eq!(std::fs::read_to_string(&src).unwrap(), "nameserver 127.0.0.1\n");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&src).unwrap().permissions().mode() & 0o777,
            0o444
        );
    }
}
