//! The host probe behind `corral check`: gathers the raw facts of a [`HostProbe`] and nothing else
//! (no judgement, no formatting: that is `corral_core::host::assess` and `render_check`).
//!
//! What it probes, and how:
//! - the kernel release, from `uname(2)`;
//! - the sysctls that switch unprivileged user namespaces off, read under `<proc_root>/sys`
//!   (an absent file is `None`);
//! - the Landlock ABI, through [`crate::landlock::abi_version`];
//! - seccomp: `prctl(PR_GET_SECCOMP)`, `prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, NULL)` (which
//!   fails with `EFAULT` when filter mode is compiled in, and installs nothing), and the `Seccomp:`
//!   and `Seccomp_filters:` lines of `<proc_root>/self/status`;
//! - for each namespace kind, whether this process's credentials can create it: a forked child
//!   calls `unshare(CLONE_NEWUSER | kind)`, denies `setgroups` and writes its own one-line uid and
//!   gid maps, exactly as the sandbox will (Ubuntu's AppArmor restriction lets `unshare` succeed and
//!   only fails the map write);
//! - overlayfs in a user namespace: a forked child unshares a user and a mount namespace and mounts
//!   overlay with `userxattr` on directories the parent prepared in the temporary directory;
//! - cgroups: `<proc_root>/self/cgroup` and `<proc_root>/self/mountinfo` (or `<proc_root>/mounts`)
//!   give the v1 hierarchies and the v2 mount; `cgroup.controllers` of this process's v2 cgroup;
//!   whether the effective uid may write this process's cgroup directories (`faccessat(W_OK,
//!   AT_EACCESS)`). Mount points under `/sys` are looked up under `sys_root` instead.
//!
//! Invariant: the probe changes nothing on the host. Each namespace lives in a child that exits at
//! once; the overlay's temporary directory is removed. Probe children run only raw syscalls on memory
//! prepared before `fork` and end in `_exit`, so `probe_host` is sound in a multi-threaded process
//! (fork(2): after a fork in a multi-threaded program the child may only call async-signal-safe
//! functions).
//!
//! Limits: the namespace probes use this process's credentials. Run as root, they succeed where an
//! unprivileged user may be refused ([`HostProbe::euid`] records who asked).

use std::ffi::{CStr, CString};
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use corral_core::host::{
    Attempt, CgroupProbe, CgroupV1Hierarchy, CgroupV2Hierarchy, HostProbe, NamespaceProbes, SeccompProbe,
    Step, UsernsSysctls,
};
use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{Access, AtFlags, Mode, OFlags, CWD};
use rustix::io::Errno;
use rustix::mount::{MountFlags, MountPropagationFlags};
use rustix::pipe::PipeFlags;
use rustix::process::{Pid, WaitOptions};
use rustix::thread::UnshareFlags;

/// Gathers every fact of a [`HostProbe`]. `proc_root` is where procfs is mounted (`/proc`),
/// `sys_root` where sysfs is (`/sys`); both are parameters so the file parsing runs against
/// fixtures. Never fails: a fact that cannot be established is recorded as absent or not run.
pub fn probe_host(proc_root: &Path, sys_root: &Path) -> HostProbe {
    let ids = IdMaps::new(proc_root);
    HostProbe {
        kernel_release: rustix::system::uname().release().to_string_lossy().into_owned(),
        euid: rustix::process::geteuid().as_raw(),
        sysctls: read_userns_sysctls(proc_root),
        landlock_abi: crate::landlock::abi_version(),
        seccomp: probe_seccomp(proc_root),
        namespaces: NamespaceProbes {
            user: probe_unshare(&ids, UnshareFlags::NEWUSER),
            mount: probe_unshare(&ids, UnshareFlags::NEWUSER | UnshareFlags::NEWNS),
            pid: probe_unshare(&ids, UnshareFlags::NEWUSER | UnshareFlags::NEWPID),
            ipc: probe_unshare(&ids, UnshareFlags::NEWUSER | UnshareFlags::NEWIPC),
            uts: probe_unshare(&ids, UnshareFlags::NEWUSER | UnshareFlags::NEWUTS),
            cgroup: probe_unshare(&ids, UnshareFlags::NEWUSER | UnshareFlags::NEWCGROUP),
            net: probe_unshare(&ids, UnshareFlags::NEWUSER | UnshareFlags::NEWNET),
        },
        overlay_in_userns: probe_overlay(&ids),
        cgroups: probe_cgroups(proc_root, sys_root),
    }
}

/// Whether this process can create a user namespace together with the namespace of `flag` (a
/// `CLONE_NEW*` value), as the sandbox would: a forked child tries, nothing remains. Used when a
/// launch's clone was refused, to keep each optional namespace that works on its own.
pub fn namespace_attempt(flag: u64) -> Attempt {
    let Some(kind) = u32::try_from(flag).ok().and_then(UnshareFlags::from_bits) else {
        return not_run(format!("not a namespace flag: {flag:#x}"));
    };
    probe_unshare(&IdMaps::new(Path::new("/proc")), UnshareFlags::NEWUSER | kind)
}

// ---------------------------------------------------------------------------------------------
// sysctls and seccomp

/// Reads the user-namespace sysctls under `<proc_root>/sys`.
fn read_userns_sysctls(proc_root: &Path) -> UsernsSysctls {
    let sys = proc_root.join("sys");
    UsernsSysctls {
        unprivileged_userns_clone: read_integer(&sys.join("kernel/unprivileged_userns_clone")),
        max_user_namespaces: read_integer(&sys.join("user/max_user_namespaces")),
        apparmor_restrict_unprivileged_userns: read_integer(
            &sys.join("kernel/apparmor_restrict_unprivileged_userns"),
        ),
    }
}

/// An integer file such as a sysctl; `None` when absent, unreadable or not an integer.
fn read_integer(path: &Path) -> Option<i64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// An unused `prctl` argument. prctl(2) reads every argument as an `unsigned long`, so pass one
/// of that width rather than an `int` whose upper register half is unspecified.
const NO_ARG: libc::c_ulong = 0;

/// `seccomp(SECCOMP_GET_ACTION_AVAIL, 0, &SECCOMP_RET_USER_NOTIF)`: a query, nothing installed.
fn user_notif_available() -> bool {
    const SECCOMP_GET_ACTION_AVAIL: libc::c_ulong = 2;
    let action: u32 = libc::SECCOMP_RET_USER_NOTIF;
    // SAFETY: the kernel reads one u32 from the live `action`; the call changes nothing.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_GET_ACTION_AVAIL,
            0,
            std::ptr::from_ref(&action),
        )
    };
    r == 0
}

fn probe_seccomp(proc_root: &Path) -> SeccompProbe {
    // SAFETY: PR_GET_SECCOMP takes no pointer; it only returns the calling thread's mode (it
    // cannot be strict mode, which would not let this code run).
    let mode = unsafe { libc::prctl(libc::PR_GET_SECCOMP, NO_ARG, NO_ARG, NO_ARG, NO_ARG) };
    // SAFETY: the filter pointer is NULL, so the kernel fails with EFAULT while copying the
    // program, before it checks no_new_privs or installs anything; a kernel without filter mode
    // answers EINVAL. This is how runc detected seccomp support (libcontainer/seccomp IsEnabled).
    let set = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::c_ulong::from(libc::SECCOMP_MODE_FILTER),
            std::ptr::null::<libc::c_void>(),
            NO_ARG,
            NO_ARG,
        )
    };
    let filter_mode = set == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT);
    let (status_mode, status_filters) = fs::read_to_string(proc_root.join("self/status"))
        .map(|s| parse_status_seccomp(&s))
        .unwrap_or((None, None));
    SeccompProbe {
        current_mode: u32::try_from(mode).ok(),
        filter_mode,
        status_mode,
        status_filters,
        user_notif: Some(user_notif_available()),
    }
}

/// The values of the `Seccomp:` and `Seccomp_filters:` lines of `/proc/<pid>/status`.
fn parse_status_seccomp(status: &str) -> (Option<u32>, Option<u32>) {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|value| value.trim().parse().ok())
    };
    (field("Seccomp"), field("Seccomp_filters"))
}

// ---------------------------------------------------------------------------------------------
// namespaces and overlayfs, each in a forked child

/// The id-map writes a probe child makes after `unshare`, prepared before `fork` so the child does
/// not allocate.
#[derive(Debug)]
struct IdMaps {
    setgroups: CString,
    uid_map: CString,
    gid_map: CString,
    /// `<euid> <euid> 1`: the uid maps to itself, as in the sandbox.
    uid_line: Vec<u8>,
    /// `<egid> <egid> 1`.
    gid_line: Vec<u8>,
}

impl IdMaps {
    fn new(proc_root: &Path) -> IdMaps {
        let path = |name: &str| path_cstring(&proc_root.join("self").join(name));
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        IdMaps {
            setgroups: path("setgroups"),
            uid_map: path("uid_map"),
            gid_map: path("gid_map"),
            uid_line: format!("{uid} {uid} 1\n").into_bytes(),
            gid_line: format!("{gid} {gid} 1\n").into_bytes(),
        }
    }
}

/// A path as a C string; a path with an interior NUL (impossible from `Path::join` of NUL-free
/// parts) becomes an empty string, which the kernel rejects with ENOENT.
fn path_cstring(path: &Path) -> CString {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).unwrap_or_default()
}

/// An overlay mount for a probe child: `mount("overlay", target, "overlay", 0, data)`.
#[derive(Debug)]
struct OverlayMount<'a> {
    target: &'a CStr,
    data: &'a CStr,
}

/// Everything a probe child does, prepared before `fork`.
#[derive(Debug)]
struct ChildPlan<'a> {
    flags: UnshareFlags,
    ids: &'a IdMaps,
    overlay: Option<OverlayMount<'a>>,
}

/// The steps in the order of their code on the report pipe.
const STEPS: [Step; 6] = [
    Step::Unshare,
    Step::Setgroups,
    Step::UidMap,
    Step::GidMap,
    Step::MakePrivate,
    Step::MountOverlay,
];
/// A failure report on the pipe: the step's index in [`STEPS`], then the errno (native endian).
const REPORT_LEN: usize = 5;
/// The child's exit status when it wrote a failure report.
const EXIT_REPORTED: i32 = 1;

fn probe_unshare(ids: &IdMaps, flags: UnshareFlags) -> Attempt {
    run_probe_child(&ChildPlan {
        flags,
        ids,
        overlay: None,
    })
}

/// Forks a child that runs `plan`, waits for it and reads what failed, if anything.
fn run_probe_child(plan: &ChildPlan<'_>) -> Attempt {
    // Non-blocking: a sibling child forked by another thread may hold a copy of the write end, and
    // the report (if any) is in the pipe before our child exits.
    let (read_end, write_end) = match rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK) {
        Ok(ends) => ends,
        Err(e) => return not_run(format!("pipe2: {}", errno_name(e.raw_os_error()))),
    };
    // SAFETY: the child runs only `child_main`, which makes raw syscalls (rustix's linux_raw
    // backend: no allocation, no locks, no libc state) on memory prepared before the fork and ends
    // in `_exit`; that is sound even when this process has other threads.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return not_run(format!("fork: {}", errno_name(last_errno())));
    }
    if pid == 0 {
        child_main(plan, write_end.as_fd());
    }
    drop(write_end);
    let Some(pid) = Pid::from_raw(pid) else {
        return not_run("fork returned pid 0 in the parent".to_string());
    };
    let status = loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => break status,
            Ok(None) | Err(Errno::INTR) => continue,
            Err(e) => return not_run(format!("waitpid: {}", errno_name(e.raw_os_error()))),
        }
    };
    match (status.exit_status(), status.terminating_signal()) {
        (Some(0), _) => Attempt::Works,
        (Some(EXIT_REPORTED), _) => read_report(read_end.as_fd()),
        (Some(code), _) => not_run(format!("probe child exited with status {code}")),
        (None, Some(signal)) => not_run(format!("probe child killed by signal {signal}")),
        (None, None) => not_run("probe child ended without a status".to_string()),
    }
}

fn read_report(read_end: BorrowedFd<'_>) -> Attempt {
    let mut buf = [0_u8; REPORT_LEN];
    match rustix::io::read(read_end, &mut buf) {
        Ok(REPORT_LEN) => {
            let [index, e0, e1, e2, e3] = buf;
            match STEPS.get(usize::from(index)) {
                Some(&step) => Attempt::Failed {
                    step,
                    errno: errno_name(i32::from_ne_bytes([e0, e1, e2, e3])),
                },
                None => not_run(format!("probe child reported unknown step {index}")),
            }
        }
        Ok(n) => not_run(format!("probe child wrote a {n}-byte report")),
        Err(e) => not_run(format!(
            "reading the probe report: {}",
            errno_name(e.raw_os_error())
        )),
    }
}

/// The forked child: runs the plan's steps, reports the first failure on `report`, and exits.
/// Only raw syscalls and stack memory from here on (see `run_probe_child`).
fn child_main(plan: &ChildPlan<'_>, report: BorrowedFd<'_>) -> ! {
    let code = match child_steps(plan) {
        Ok(()) => 0,
        Err((step, errno)) => {
            let index = STEPS.iter().position(|s| *s == step).unwrap_or(usize::MAX);
            let [e0, e1, e2, e3] = errno.raw_os_error().to_ne_bytes();
            let msg = [u8::try_from(index).unwrap_or(u8::MAX), e0, e1, e2, e3];
            // A failed write leaves the pipe empty; the parent then says the report is missing.
            let _ = rustix::io::write(report, &msg);
            EXIT_REPORTED
        }
    };
    // SAFETY: `_exit` ends the child at once, without running atexit handlers or flushing stdio
    // buffers copied from the parent (which would print the parent's output twice).
    unsafe { libc::_exit(code) }
}

fn child_steps(plan: &ChildPlan<'_>) -> Result<(), (Step, Errno)> {
    // SAFETY: the flags only ever create namespaces (never CLONE_FILES or CLONE_FS), so no file
    // descriptor table is unshared under another thread; this child is single-threaded anyway.
    unsafe { rustix::thread::unshare_unsafe(plan.flags) }.map_err(|e| (Step::Unshare, e))?;
    // setgroups must be denied before an unprivileged gid_map write (user_namespaces(7)); the file
    // is missing before Linux 3.19, where no denial is needed.
    match write_file(&plan.ids.setgroups, b"deny") {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err((Step::Setgroups, e)),
    }
    write_file(&plan.ids.uid_map, &plan.ids.uid_line).map_err(|e| (Step::UidMap, e))?;
    write_file(&plan.ids.gid_map, &plan.ids.gid_line).map_err(|e| (Step::GidMap, e))?;
    if let Some(overlay) = &plan.overlay {
        // Keep the probe's mount from propagating anywhere, whatever the host's propagation.
        rustix::mount::mount_change(c"/", MountPropagationFlags::REC | MountPropagationFlags::PRIVATE)
            .map_err(|e| (Step::MakePrivate, e))?;
        rustix::mount::mount(
            c"overlay",
            overlay.target,
            c"overlay",
            MountFlags::empty(),
            overlay.data,
        )
        .map_err(|e| (Step::MountOverlay, e))?;
    }
    Ok(())
}

/// `open(path, O_WRONLY)` + one `write`: how `/proc/self/{setgroups,uid_map,gid_map}` are set.
fn write_file(path: &CStr, content: &[u8]) -> Result<(), Errno> {
    let fd = rustix::fs::open(path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
    let written = rustix::io::write(&fd, content)?;
    if written == content.len() {
        Ok(())
    } else {
        Err(Errno::IO)
    }
}

/// Directory names of the overlay probe under its temporary directory.
const OVERLAY_DIRS: [&str; 4] = ["lower", "upper", "work", "merged"];

fn probe_overlay(ids: &IdMaps) -> Attempt {
    let dir = match make_temp_dir() {
        Ok(dir) => dir,
        Err(e) => return not_run(format!("creating a temporary directory: {e}")),
    };
    let attempt = overlay_in(&dir, ids);
    // Best-effort cleanup of a private temporary directory. overlayfs leaves `work/work` with mode
    // 000, which `remove_dir_all` cannot list as non-root: remove that (empty) directory first.
    let _ = fs::remove_dir(dir.join("work/work"));
    let _ = fs::remove_dir_all(&dir);
    attempt
}

fn overlay_in(dir: &Path, ids: &IdMaps) -> Attempt {
    for name in OVERLAY_DIRS {
        if let Err(e) = fs::create_dir(dir.join(name)) {
            return not_run(format!("mkdir {}: {e}", dir.join(name).display()));
        }
    }
    let Some(base) = dir.to_str() else {
        return not_run(format!("temporary directory {} is not UTF-8", dir.display()));
    };
    // The option parser splits on ',' (and lowerdir on ':'): such a path cannot be passed.
    if base.contains([',', ':', '\\']) {
        return not_run(format!("temporary directory {base} contains ',', ':' or '\\'"));
    }
    let data = format!("lowerdir={base}/lower,upperdir={base}/upper,workdir={base}/work,userxattr");
    let (Ok(data), Ok(target)) = (CString::new(data), CString::new(format!("{base}/merged"))) else {
        return not_run(format!("temporary directory {base} contains a NUL byte"));
    };
    run_probe_child(&ChildPlan {
        flags: UnshareFlags::NEWUSER | UnshareFlags::NEWNS,
        ids,
        overlay: Some(OverlayMount {
            target: &target,
            data: &data,
        }),
    })
}

/// Creates a fresh, private (0700) directory under the temporary directory.
fn make_temp_dir() -> io::Result<PathBuf> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    /// How many names to try before giving up on collisions with leftovers.
    const ATTEMPTS: u32 = 100;
    let base = std::env::temp_dir();
    let pid = std::process::id();
    let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
    for _ in 0..ATTEMPTS {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("corral-probe-{pid}-{n}"));
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

fn not_run(reason: String) -> Attempt {
    Attempt::NotRun { reason }
}

fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The C name of an errno the probes can meet, or `errno <n>`.
fn errno_name(code: i32) -> String {
    crate::ll::errno_name(code)
}

// ---------------------------------------------------------------------------------------------
// cgroups

/// One line of `/proc/self/cgroup`: `hierarchy-ID:controller-list:cgroup-path`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Membership {
    hierarchy_id: u32,
    controllers: Vec<String>,
    path: String,
}

/// A `cgroup` or `cgroup2` mount.
use crate::mountinfo::{
    cgroup_mounts as parse_mountinfo, cgroup_mounts_from_proc_mounts as parse_proc_mounts, CgroupMount,
    CgroupVersion,
};

fn probe_cgroups(proc_root: &Path, sys_root: &Path) -> CgroupProbe {
    let memberships = fs::read_to_string(proc_root.join("self/cgroup"))
        .map(|s| parse_proc_cgroup(&s))
        .unwrap_or_default();
    let mounts = match fs::read_to_string(proc_root.join("self/mountinfo")) {
        Ok(s) => parse_mountinfo(&s),
        Err(_) => fs::read_to_string(proc_root.join("mounts"))
            .map(|s| parse_proc_mounts(&s))
            .unwrap_or_default(),
    };
    let v1 = memberships
        .iter()
        .filter(|m| m.hierarchy_id != 0)
        .map(|m| {
            let mount = mounts.iter().find(|mnt| {
                mnt.version == CgroupVersion::V1
                    && m.controllers.iter().all(|c| mnt.super_options.contains(c))
            });
            let dir = mount.and_then(|mnt| cgroup_dir(sys_root, mnt, &m.path));
            CgroupV1Hierarchy {
                controllers: m.controllers.clone(),
                path: m.path.clone(),
                mount_point: mount.map(|mnt| mnt.mount_point.clone()),
                writable: dir.is_some_and(|d| writable(&d)),
            }
        })
        .collect();
    let v2 = memberships
        .iter()
        .find(|m| m.hierarchy_id == 0 && m.controllers.is_empty())
        .and_then(|m| {
            let (mount, dir) = mounts
                .iter()
                .filter(|mnt| mnt.version == CgroupVersion::V2)
                .find_map(|mnt| Some((mnt, cgroup_dir(sys_root, mnt, &m.path)?)))?;
            Some(CgroupV2Hierarchy {
                path: m.path.clone(),
                mount_point: mount.mount_point.clone(),
                controllers: fs::read_to_string(dir.join("cgroup.controllers"))
                    .ok()
                    .map(|s| s.split_whitespace().map(str::to_string).collect()),
                writable: writable(&dir),
            })
        });
    CgroupProbe { v1, v2 }
}

/// Parses `/proc/<pid>/cgroup`; malformed lines are skipped.
fn parse_proc_cgroup(text: &str) -> Vec<Membership> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let hierarchy_id = parts.next()?.parse().ok()?;
            let controllers = parts
                .next()?
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            let path = parts.next()?.to_string();
            Some(Membership {
                hierarchy_id,
                controllers,
                path,
            })
        })
        .collect()
}

/// The directory of cgroup `path` in `mount`, with a mount point under `/sys` looked up under
/// `sys_root`; `None` when the cgroup lies outside the mounted subtree.
fn cgroup_dir(sys_root: &Path, mount: &CgroupMount, path: &str) -> Option<PathBuf> {
    let relative = if mount.root == "/" {
        path
    } else {
        let rest = path.strip_prefix(mount.root.as_str())?;
        if !rest.is_empty() && !rest.starts_with('/') {
            return None;
        }
        rest
    };
    let mount_point = Path::new(&mount.mount_point);
    let base = match mount_point.strip_prefix("/sys") {
        Ok(rest) => sys_root.join(rest),
        Err(_) => mount_point.to_path_buf(),
    };
    Some(base.join(relative.trim_start_matches('/')))
}

/// Whether the effective uid may write `dir` (create a child cgroup in it).
fn writable(dir: &Path) -> bool {
    rustix::fs::accessat(CWD, dir, Access::WRITE_OK, AtFlags::EACCESS).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    /// This machine's `/proc/self/cgroup`: hybrid, v1 memory in a sub-cgroup, v2 with hugetlb.
    const PROC_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
4:memory:/process_api/ef1f
1:cpu,cpuacct:/
0::/
";

    /// This machine's cgroup mounts, plus unrelated lines.
    const MOUNTINFO: &str = "\
22 1 0:21 / / rw,relatime - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:5 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn probe_cgroups_from_fixture() {
        let proc_root = tempfile::tempdir().unwrap();
        let sys_root = tempfile::tempdir().unwrap();
        write(&proc_root.path().join("self/cgroup"), PROC_CGROUP);
        write(&proc_root.path().join("self/mountinfo"), MOUNTINFO);
        let cg = sys_root.path().join("fs/cgroup");
        // memory and v2 exist (and are writable: the test owns them); pids, cpu and systemd do not.
        fs::create_dir_all(cg.join("memory/process_api/ef1f")).unwrap();
        write(&cg.join("unified/cgroup.controllers"), "hugetlb\n");
        let v1 = |ctrl: &[&str], path: &str, mount: &str, writable: bool| CgroupV1Hierarchy {
            controllers: ctrl.iter().map(|s| s.to_string()).collect(),
            path: path.to_string(),
            mount_point: Some(mount.to_string()),
            writable,
        };
        assert_eq!(
            probe_cgroups(proc_root.path(), sys_root.path()),
            CgroupProbe {
                v1: vec![
                    v1(&["name=systemd"], "/", "/sys/fs/cgroup/systemd", false),
                    v1(&["pids"], "/", "/sys/fs/cgroup/pids", false),
                    v1(&["memory"], "/process_api/ef1f", "/sys/fs/cgroup/memory", true),
                    v1(&["cpu", "cpuacct"], "/", "/sys/fs/cgroup/cpu,cpuacct", false),
                ],
                v2: Some(CgroupV2Hierarchy {
                    path: "/".to_string(),
                    mount_point: "/sys/fs/cgroup/unified".to_string(),
                    controllers: Some(vec!["hugetlb".to_string()]),
                    writable: true,
                }),
            }
        );
    }

    #[test]
    fn probe_cgroups_v2_only_from_proc_mounts_with_escaped_mount_point() {
        let proc_root = tempfile::tempdir().unwrap();
        let sys_root = tempfile::tempdir().unwrap();
        write(
            &proc_root.path().join("self/cgroup"),
            "0::/user.slice/user-1000.slice/session-2.scope\n",
        );
        let elsewhere = tempfile::tempdir().unwrap();
        let mount_point = elsewhere.path().join("my cgroup");
        let escaped = mount_point.display().to_string().replace(' ', "\\040");
        write(
            &proc_root.path().join("mounts"),
            &format!("cgroup2 {escaped} cgroup2 rw,nosuid,nodev,noexec 0 0\n"),
        );
        write(
            &mount_point.join("user.slice/user-1000.slice/session-2.scope/cgroup.controllers"),
            "memory pids\n",
        );
        assert_eq!(
            probe_cgroups(proc_root.path(), sys_root.path()),
            CgroupProbe {
                v1: vec![],
                v2: Some(CgroupV2Hierarchy {
                    path: "/user.slice/user-1000.slice/session-2.scope".to_string(),
                    mount_point: mount_point.display().to_string(),
                    controllers: Some(vec!["memory".to_string(), "pids".to_string()]),
                    writable: true,
                }),
            }
        );
    }

    #[test]
    fn probe_cgroup_dir_respects_the_mounted_subtree() {
        let mount = CgroupMount {
            version: CgroupVersion::V2,
            root: "/docker/abc".to_string(),
            mount_point: "/sys/fs/cgroup".to_string(),
            super_options: vec!["rw".to_string()],
        };
        let sys = Path::new("/fixture/sys");
        assert_eq!(
            cgroup_dir(sys, &mount, "/docker/abc/init"),
            Some(PathBuf::from("/fixture/sys/fs/cgroup/init"))
        );
        assert_eq!(
            cgroup_dir(sys, &mount, "/docker/abc"),
            Some(PathBuf::from("/fixture/sys/fs/cgroup/"))
        );
        assert_eq!(cgroup_dir(sys, &mount, "/docker/abcdef"), None);
        assert_eq!(cgroup_dir(sys, &mount, "/"), None);
    }

    #[test]
    fn probe_sysctls_from_fixture() {
        let proc_root = tempfile::tempdir().unwrap();
        write(&proc_root.path().join("sys/user/max_user_namespaces"), "15000\n");
        write(
            &proc_root
                .path()
                .join("sys/kernel/apparmor_restrict_unprivileged_userns"),
            "1\n",
        );
        assert_eq!(
            read_userns_sysctls(proc_root.path()),
            UsernsSysctls {
                unprivileged_userns_clone: None,
                max_user_namespaces: Some(15000),
                apparmor_restrict_unprivileged_userns: Some(1),
            }
        );
    }

    #[test]
    fn probe_parses_status_seccomp_lines() {
        let status = "Name:\tcat\nNoNewPrivs:\t0\nSeccomp:\t2\nSeccomp_filters:\t1\nSpeculation_Store_Bypass:\tthread vulnerable\n";
        assert_eq!(parse_status_seccomp(status), (Some(2), Some(1)));
        assert_eq!(parse_status_seccomp("Seccomp:\t0\n"), (Some(0), None));
        assert_eq!(parse_status_seccomp("Name:\tcat\n"), (None, None));
    }

    #[test]
    fn probe_errno_names() {
        assert_eq!(
            [libc::EPERM, libc::ENOSPC, libc::EUSERS, 4000].map(errno_name),
            ["EPERM", "ENOSPC", "EUSERS", "errno 4000"].map(String::from)
        );
    }

    /// T1: the real kernel. On these machines Landlock and user namespaces are there; elsewhere the
    /// test says why it skips, unless CORRAL_TEST_REQUIRE=1.
    #[test]
    fn probe_host_on_this_kernel() {
        let probe = probe_host(Path::new("/proc"), Path::new("/sys"));
        eprintln!("{probe:#?}");
        let reports = corral_core::host::assess(&probe, &std::collections::BTreeMap::new());
        eprintln!("{}", corral_core::host::render_check(&probe, &reports));
        let required = std::env::var("CORRAL_TEST_REQUIRE").as_deref() == Ok("1");
        let missing = match (probe.landlock_abi, &probe.namespaces.user) {
            (None, _) => Some("Landlock is not available on this kernel".to_string()),
            (Some(_), Attempt::Works) => None,
            (Some(_), other) => Some(format!("user namespaces are not creatable here: {other:?}")),
        };
        if let Some(why) = missing {
            assert!(!required, "CORRAL_TEST_REQUIRE=1 but {why}");
            eprintln!("skipping: {why}");
            return;
        }
        assert!(probe.landlock_abi >= Some(1), "{probe:?}");
        assert!(!probe.kernel_release.is_empty());
        assert!(probe.seccomp.current_mode.is_some(), "{:?}", probe.seccomp);
        assert!(probe.seccomp.filter_mode, "{:?}", probe.seccomp);
        assert!(probe.seccomp.status_mode.is_some(), "{:?}", probe.seccomp);
        assert_eq!(probe.euid, rustix::process::geteuid().as_raw());
        // The probe must leave nothing behind in the temporary directory.
        let prefix = format!("corral-probe-{}-", std::process::id());
        let leftovers: Vec<_> = fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
