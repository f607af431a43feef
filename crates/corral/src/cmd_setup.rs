//! `corral setup [--user NAME] [--undo]`: run once by root (through sudo) so that an
//! unprivileged user gets what corral cannot take by itself, and nothing more.
//!
//! What it changes, and only this:
//! - cgroup v1 (hybrid hosts such as these Debian 12 machines): for each mounted v1 hierarchy
//!   carrying memory, pids or cpu, a directory `corral-<uid>` directly under the mount point,
//!   mode 0755, owned by the user. That is where `corral_sys::cgroup` looks for a delegated
//!   cgroup. Only the directory is chowned, none of its interface files: write permission on the
//!   directory lets the user `mkdir` and `rmdir` children, whose files kernfs gives to their
//!   creator (kernel/cgroup/cgroup.c `cgroup_kn_set_ugid`), and moving a process into such a child
//!   needs write permission on the child's `cgroup.procs` and the same uid as the process
//!   (kernel/cgroup/cgroup-v1.c `__cgroup1_procs_write`). The limit files of `corral-<uid>` stay
//!   root's, so root may cap all of the user's sessions there and the user cannot lift that cap;
//!   its `cgroup.procs`, `tasks` and `cgroup.clone_children` (a cpuset-only knob) stay root's too,
//!   because no session puts a process into `corral-<uid>` itself. In the memory hierarchy
//!   `memory.use_hierarchy` must be 1 (a parent's limit covers its children); it is on every
//!   kernel since 5.16, and is written only where it reads 0.
//! - cgroup v2: nothing. Delegating a v2 subtree is useless unless the user's processes already
//!   live inside it (moving a process needs write access to the common ancestor of its old and new
//!   cgroup, cgroups(7) "Cgroup delegation"); systemd arranges that with `Delegate=yes`, and
//!   without systemd setup says so and stops there.
//! - AppArmor (Ubuntu 23.10+ sets `kernel.apparmor_restrict_unprivileged_userns` = 1): the file
//!   `/etc/apparmor.d/corral`, a profile that lets the running corral binary create user
//!   namespaces, loaded with `apparmor_parser -r`.
//!
//! The rest (unprivileged user namespaces, Landlock) is only checked and summarised. `--undo`
//! removes each empty `corral-<uid>` (one with child cgroups — a running session — is left and
//! reported) and unloads and removes the profile. Nothing else under `/sys/fs/cgroup` or
//! `/etc/apparmor.d` is ever touched.
//!
//! Shape: [`plan_setup`] and [`plan_undo`] read the machine through a [`Host`] (a root prefix,
//! so tests use a temporary tree) and return [`Action`] values; [`apply`] carries them out one by
//! one and prints one line per action: what changed, what was already done, what was left.
//!
//! Limits: users come from `/etc/passwd` only (not LDAP or other NSS sources). Ownership is
//! compared by uid and gid, not ACLs. The AppArmor profile names the binary's canonical path at
//! the time of setup: a corral moved elsewhere needs `corral setup` again.

use anyhow::{bail, Context};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The cgroup v1 controllers corral limits, in the order they are handled.
const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];
/// Mode of a delegated `corral-<uid>` directory: the owner may create children, others may look.
const DELEGATED_DIR_MODE: u32 = 0o755;
/// Mode of the AppArmor profile file (as the distribution's own profiles).
const PROFILE_MODE: u32 = 0o644;
/// The AppArmor profile, relative to the root.
const PROFILE_PATH: &str = "etc/apparmor.d/corral";
/// The first line of the profile we write: `--undo` removes only a file that starts with it.
const PROFILE_MARKER: &str =
    "# Written by `corral setup`, removed by `corral setup --undo`: lets corral create user namespaces.";
/// Ubuntu's sysctl: 1 means unprivileged processes need an AppArmor profile granting `userns`.
const APPARMOR_RESTRICT_SYSCTL: &str = "proc/sys/kernel/apparmor_restrict_unprivileged_userns";
/// The profiles the kernel has loaded, one `name (mode)` a line.
const APPARMOR_LOADED: &str = "sys/kernel/security/apparmor/profiles";
/// Debian's (and older Ubuntu's) sysctl: 0 forbids unprivileged user namespaces.
const USERNS_CLONE_SYSCTL: &str = "proc/sys/kernel/unprivileged_userns_clone";
/// Upstream's limit: 0 forbids user namespaces for everyone but the initial namespace's root.
const MAX_USERNS_SYSCTL: &str = "proc/sys/user/max_user_namespaces";
/// Exists when systemd is the init system (sd_booted(3)).
const SYSTEMD_MARKER: &str = "run/systemd/system";
/// What a non-root caller is told.
pub const NOT_ROOT: &str = "corral setup changes the machine: run it as root, e.g. `sudo corral setup`";

/// Flags of `corral setup`.
#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// The user to prepare (default: $SUDO_USER)
    #[arg(long)]
    pub user: Option<String>,
    /// Revert what setup did
    #[arg(long)]
    pub undo: bool,
}

/// Runs `corral setup`: plans, applies (printing one line per action), then prints a summary of
/// what this machine offers unprivileged corral. Returns the exit code: 0 when every step was
/// done (or already done), 1 when not root, the user is unknown, a step failed, or something was
/// left alone (a cgroup with a running session in it, a profile file that is not ours).
pub fn setup(args: &SetupArgs) -> anyhow::Result<i32> {
    if let Some(refusal) = refuse_unless_root(rustix::process::geteuid().as_raw()) {
        eprintln!("corral: {refusal}");
        return Ok(1);
    }
    let passwd = fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    let sudo_user = std::env::var("SUDO_USER").ok();
    let user = match resolve_user(args.user.as_deref(), sudo_user.as_deref(), &passwd) {
        Ok(user) => user,
        Err(why) => {
            eprintln!("corral: {why}");
            return Ok(1);
        }
    };
    let host = Host::current()?;
    let actions = if args.undo {
        plan_undo(&host, &user)
    } else {
        plan_setup(&host, &user)
    };

    let mut out = io::stdout().lock();
    let verb = if args.undo { "reverting setup" } else { "preparing" };
    writeln!(
        out,
        "{verb} for user {} (uid {}, gid {}):",
        user.name, user.uid, user.gid
    )?;
    let applied = match apply(&actions, &mut out) {
        Ok(applied) => applied,
        Err(e) => {
            out.flush()?;
            eprintln!("corral: setup stopped: {e:#}");
            if !args.undo {
                eprintln!("corral: the lines above were done; `sudo corral setup --undo` reverts them");
            }
            return Ok(1);
        }
    };
    if !args.undo {
        let landlock_abi = corral_sys::landlock::abi_version();
        writeln!(out, "summary:")?;
        for check in checks(&host, &user, landlock_abi) {
            writeln!(out, "  {check}")?;
        }
    }
    match applied {
        Applied::All => Ok(0),
        Applied::SomeLeft => {
            out.flush()?;
            eprintln!("corral: some steps were left alone (the `left alone:` lines above)");
            Ok(1)
        }
    }
}

/// `Some(message)` unless `euid` is root.
fn refuse_unless_root(euid: u32) -> Option<&'static str> {
    (euid != 0).then_some(NOT_ROOT)
}

/// The user to prepare: `--user`, else `$SUDO_USER`, looked up in `passwd` (the text of
/// `/etc/passwd`). The error is the sentence shown to the caller.
fn resolve_user(flag: Option<&str>, sudo_user: Option<&str>, passwd: &str) -> Result<User, String> {
    let name = match (flag, sudo_user) {
        (Some(name), _) => name,
        (None, Some(name)) if !name.is_empty() && name != "root" => name,
        (None, _) => {
            return Err(
                "no user to prepare: pass --user NAME (or run it through sudo, which sets \
                        SUDO_USER)"
                    .to_string(),
            )
        }
    };
    let user = lookup_user(passwd, name).ok_or_else(|| {
        format!("unknown user {name:?}: not in /etc/passwd (users from LDAP or other NSS sources are not looked up)")
    })?;
    if user.uid == 0 {
        return Err(format!(
            "user {name:?} is uid 0: root needs no setup (it uses the cgroup hierarchies' roots); \
             name the unprivileged user with --user"
        ));
    }
    Ok(user)
}

/// The user whose sessions get delegated cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The login name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
}

/// Finds `name` in the text of `/etc/passwd` (passwd(5): `name:password:uid:gid:gecos:home:shell`).
/// Malformed lines are skipped.
pub fn lookup_user(passwd: &str, name: &str) -> Option<User> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some(User {
            name: name.to_string(),
            uid,
            gid,
        })
    })
}

/// The machine as the planners see it: seams, so tests use a temporary tree.
#[derive(Debug, Clone)]
pub struct Host {
    /// Prepended to every absolute path read or changed: `/` normally, a temporary dir in tests.
    pub root: PathBuf,
    /// The content of `/proc/self/mountinfo` (its mount points are read under `root`).
    pub mountinfo: String,
    /// The canonical path of the corral binary, which the AppArmor profile attaches to.
    pub corral_exe: PathBuf,
}

impl Host {
    /// This machine: root `/`, this process's mountinfo, the running executable.
    pub fn current() -> anyhow::Result<Host> {
        let exe = std::env::current_exe().context("finding the running corral executable")?;
        let corral_exe =
            fs::canonicalize(&exe).with_context(|| format!("realpath(\"{}\")", exe.display()))?;
        Ok(Host {
            root: PathBuf::from("/"),
            mountinfo: fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?,
            corral_exe,
        })
    }

    /// The real path of a host path given without its leading `/`.
    fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative.trim_start_matches('/'))
    }
}

/// What to do when a step fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfFails {
    /// Stop: the steps after it depend on it, or the user must see it fail.
    Stop,
    /// Print a warning and go on (best-effort steps).
    Warn,
}

/// One step of setup or undo, decided by the planners and carried out by [`apply`]. Paths are
/// real paths (under the host's root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `mkdir(path, mode)`, then `chown(path, uid, gid)` and `chmod(path, mode)` (the umask does
    /// not decide the mode).
    MkdirChown {
        /// The directory to create.
        path: PathBuf,
        /// Its mode.
        mode: u32,
        /// Its owner.
        uid: u32,
        /// Its group.
        gid: u32,
    },
    /// `chown(path, uid, gid)` and `chmod(path, mode)` on something that exists.
    Chown {
        /// What to change.
        path: PathBuf,
        /// Its mode.
        mode: u32,
        /// Its owner.
        uid: u32,
        /// Its group.
        gid: u32,
    },
    /// Writes `value` into an existing kernel file (no `O_CREAT`); best effort.
    WriteKnob {
        /// The file.
        path: PathBuf,
        /// What to write.
        value: String,
    },
    /// Creates or replaces a regular file.
    WriteFile {
        /// The file.
        path: PathBuf,
        /// Its content.
        contents: String,
        /// Its mode.
        mode: u32,
    },
    /// Runs a program; a failure is reported with its stderr.
    Run {
        /// The program, looked up in `PATH`.
        program: String,
        /// Its arguments.
        args: Vec<String>,
        /// What a failure means.
        if_fails: IfFails,
    },
    /// Removes an empty directory.
    Rmdir(PathBuf),
    /// Removes a file.
    RemoveFile(PathBuf),
    /// Nothing to do: `path` is already as setup leaves it (`what` says how).
    AlreadyDone {
        /// What was checked.
        path: PathBuf,
        /// Its state.
        what: String,
    },
    /// Something setup would change but leaves alone, and why.
    Kept {
        /// What is left.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A fact the user should know (a step not needed here, and why).
    Note(String),
}

impl Action {
    /// The line printed once the action is done.
    fn done_line(&self) -> String {
        match self {
            Action::MkdirChown { path, mode, uid, gid } => {
                format!("created {} (mode {mode:04o}, owner {uid}:{gid})", path.display())
            }
            Action::Chown { path, mode, uid, gid } => {
                format!("changed {} to mode {mode:04o}, owner {uid}:{gid}", path.display())
            }
            Action::WriteKnob { path, value } => format!("wrote {value} to {}", path.display()),
            Action::WriteFile { path, mode, .. } => format!("wrote {} (mode {mode:04o})", path.display()),
            Action::Run { program, args, .. } => format!("ran `{}`", command_line(program, args)),
            Action::Rmdir(path) => format!("removed directory {}", path.display()),
            Action::RemoveFile(path) => format!("removed {}", path.display()),
            Action::AlreadyDone { path, what } => format!("already done: {} {what}", path.display()),
            Action::Kept { path, reason } => format!("left alone: {}: {reason}", path.display()),
            Action::Note(text) => format!("note: {text}"),
        }
    }
}

fn command_line(program: &str, args: &[String]) -> String {
    std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------------
// planning

/// What `corral setup` would do on `host` for `user`: cgroup delegation, then the AppArmor
/// profile. Reads the host; changes nothing.
pub fn plan_setup(host: &Host, user: &User) -> Vec<Action> {
    let mut actions = Vec::new();
    let mounts = parse_mountinfo(&host.mountinfo);
    let hierarchies = v1_hierarchies(&mounts);
    for hierarchy in &hierarchies {
        plan_delegate_v1(host, user, hierarchy, &mut actions);
    }
    plan_v2_note(host, &mounts, &hierarchies, &mut actions);
    plan_apparmor(host, &mut actions);
    actions
}

/// What `corral setup --undo` would do: remove each empty `corral-<uid>`, unload and remove the
/// profile we wrote.
pub fn plan_undo(host: &Host, user: &User) -> Vec<Action> {
    let mut actions = Vec::new();
    let mounts = parse_mountinfo(&host.mountinfo);
    for hierarchy in v1_hierarchies(&mounts) {
        let dir = delegated_dir(host, user, &hierarchy);
        match fs::symlink_metadata(&dir) {
            Err(_) => actions.push(Action::AlreadyDone {
                path: dir,
                what: "does not exist".to_string(),
            }),
            Ok(meta) if !meta.is_dir() => actions.push(Action::Kept {
                path: dir,
                reason: "not a directory, so not made by corral setup".to_string(),
            }),
            Ok(_) if has_subdirectory(&dir) => actions.push(Action::Kept {
                path: dir,
                reason: "it holds child cgroups (a running corral session?): end the sessions, \
                         then run `corral setup --undo` again"
                    .to_string(),
            }),
            Ok(_) => actions.push(Action::Rmdir(dir)),
        }
    }
    let profile = host.path(PROFILE_PATH);
    match fs::read_to_string(&profile) {
        Ok(text) if is_ours(&text) => {
            // Unload first: the file names the profile that `-R` removes from the kernel.
            actions.push(Action::Run {
                program: "apparmor_parser".to_string(),
                args: vec!["-R".to_string(), profile.display().to_string()],
                if_fails: IfFails::Warn,
            });
            actions.push(Action::RemoveFile(profile));
        }
        Ok(_) => actions.push(Action::Kept {
            path: profile,
            reason: "not written by corral setup".to_string(),
        }),
        Err(_) if profile.exists() => actions.push(Action::Kept {
            path: profile,
            reason: "unreadable, so not known to be ours".to_string(),
        }),
        Err(_) if host.path("etc/apparmor.d").is_dir() => actions.push(Action::AlreadyDone {
            path: profile,
            what: "does not exist".to_string(),
        }),
        Err(_) => {}
    }
    actions
}

/// A mounted v1 hierarchy carrying some of [`CONTROLLERS`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hierarchy {
    /// The mount point on the host, e.g. `/sys/fs/cgroup/memory`.
    mount_point: String,
    /// Which of [`CONTROLLERS`] it carries.
    controllers: Vec<&'static str>,
}

/// The v1 hierarchies carrying memory, pids or cpu, one per hierarchy (co-mounted controllers,
/// such as `cpu,cpuacct`, share one), in [`CONTROLLERS`] order. Of several mounts listing a
/// controller, one of the hierarchy's root (`/`) wins, else the first.
fn v1_hierarchies(mounts: &[CgroupMount]) -> Vec<Hierarchy> {
    let mut hierarchies: Vec<Hierarchy> = Vec::new();
    for controller in CONTROLLERS {
        let listing: Vec<&CgroupMount> = mounts
            .iter()
            .filter(|m| m.version == CgroupVersion::V1 && m.super_options.iter().any(|o| o == controller))
            .collect();
        let Some(mount) = listing.iter().find(|m| m.root == "/").or_else(|| listing.first()) else {
            continue;
        };
        match hierarchies
            .iter_mut()
            .find(|h| h.mount_point == mount.mount_point)
        {
            Some(h) => h.controllers.push(controller),
            None => hierarchies.push(Hierarchy {
                mount_point: mount.mount_point.clone(),
                controllers: vec![controller],
            }),
        }
    }
    hierarchies
}

/// `<mount point>/corral-<uid>`, where `corral_sys::cgroup` looks for it.
fn delegated_dir(host: &Host, user: &User, hierarchy: &Hierarchy) -> PathBuf {
    host.path(&hierarchy.mount_point)
        .join(format!("corral-{}", user.uid))
}

/// Delegates `corral-<uid>` in one v1 hierarchy.
fn plan_delegate_v1(host: &Host, user: &User, hierarchy: &Hierarchy, actions: &mut Vec<Action>) {
    let dir = delegated_dir(host, user, hierarchy);
    let fresh = match fs::symlink_metadata(&dir) {
        Err(_) => {
            actions.push(Action::MkdirChown {
                path: dir.clone(),
                mode: DELEGATED_DIR_MODE,
                uid: user.uid,
                gid: user.gid,
            });
            true
        }
        Ok(meta) if !meta.is_dir() => {
            actions.push(Action::Kept {
                path: dir,
                reason: "exists but is not a directory: cgroups cannot be delegated there".to_string(),
            });
            return;
        }
        Ok(meta)
            if meta.uid() == user.uid
                && meta.gid() == user.gid
                && meta.mode() & 0o7777 == DELEGATED_DIR_MODE =>
        {
            actions.push(Action::AlreadyDone {
                path: dir.clone(),
                what: format!(
                    "has mode {DELEGATED_DIR_MODE:04o}, owner {}:{}",
                    user.uid, user.gid
                ),
            });
            false
        }
        Ok(_) => {
            actions.push(Action::Chown {
                path: dir.clone(),
                mode: DELEGATED_DIR_MODE,
                uid: user.uid,
                gid: user.gid,
            });
            false
        }
    };
    if hierarchy.controllers.contains(&"memory") {
        // A new cgroup inherits use_hierarchy from its parent, so before it exists the parent's
        // value is the one it will get.
        let (knob, inherited) = if fresh {
            (
                host.path(&hierarchy.mount_point).join("memory.use_hierarchy"),
                true,
            )
        } else {
            (dir.join("memory.use_hierarchy"), false)
        };
        match fs::read_to_string(&knob).map(|v| v.trim().to_string()) {
            Ok(v) if v == "1" => actions.push(Action::AlreadyDone {
                path: knob,
                what: if inherited {
                    "is 1 (the new cgroup inherits it: limits cover child cgroups)".to_string()
                } else {
                    "is 1 (limits cover child cgroups)".to_string()
                },
            }),
            Ok(_) => actions.push(Action::WriteKnob {
                path: dir.join("memory.use_hierarchy"),
                value: "1".to_string(),
            }),
            Err(_) => {}
        }
    }
}

/// Explains what setup does not do in cgroup v2, and why.
fn plan_v2_note(host: &Host, mounts: &[CgroupMount], hierarchies: &[Hierarchy], actions: &mut Vec<Action>) {
    let in_v1 = |c: &str| hierarchies.iter().any(|h| h.controllers.contains(&c));
    let v2 = mounts
        .iter()
        .filter(|m| m.version == CgroupVersion::V2)
        .find(|m| m.root == "/")
        .or_else(|| mounts.iter().find(|m| m.version == CgroupVersion::V2));
    let Some(v2) = v2 else {
        let missing: Vec<&str> = CONTROLLERS.into_iter().filter(|c| !in_v1(c)).collect();
        if !missing.is_empty() {
            actions.push(Action::Note(format!(
                "cgroup: no hierarchy carries {}: nothing to delegate for it",
                missing.join(", ")
            )));
        }
        return;
    };
    let listed =
        fs::read_to_string(host.path(&v2.mount_point).join("cgroup.controllers")).unwrap_or_default();
    let available: Vec<&str> = listed.split_whitespace().collect();
    let in_v2: Vec<&str> = CONTROLLERS
        .into_iter()
        .filter(|c| available.contains(c))
        .collect();
    let missing: Vec<&str> = CONTROLLERS
        .into_iter()
        .filter(|c| !in_v1(c) && !in_v2.contains(c))
        .collect();
    if in_v2.is_empty() {
        let shown = if available.is_empty() {
            "none".to_string()
        } else {
            available.join(" ")
        };
        actions.push(Action::Note(format!(
            "cgroup v2 ({}) has none of memory, pids, cpu (its controllers: {shown}): nothing to delegate there",
            v2.mount_point
        )));
    } else if host.path(SYSTEMD_MARKER).is_dir() {
        actions.push(Action::Note(format!(
            "cgroup v2 ({}) has {}: systemd delegates it to user sessions (Delegate=yes on \
             user@.service): nothing to do there",
            v2.mount_point,
            in_v2.join(", ")
        )));
    } else {
        actions.push(Action::Note(format!(
            "cgroup v2 ({}) has {}, but this host has no systemd, so setup changed nothing there: \
             a delegated v2 cgroup is only usable when the user's session already runs inside it \
             (moving a process needs write access to the common ancestor of its old and new cgroup, \
             cgroups(7)), which systemd arranges with Delegate=yes; without it, run corral as root \
             for cgroup limits, or start the user's login inside a cgroup chowned to the user",
            v2.mount_point,
            in_v2.join(", ")
        )));
    }
    if !missing.is_empty() {
        actions.push(Action::Note(format!(
            "cgroup: no hierarchy carries {}: nothing to delegate for it",
            missing.join(", ")
        )));
    }
}

/// Ubuntu's restriction on unprivileged user namespaces: a profile for corral, where needed.
fn plan_apparmor(host: &Host, actions: &mut Vec<Action>) {
    const SYSCTL: &str = "kernel.apparmor_restrict_unprivileged_userns";
    let restrict = match fs::read_to_string(host.path(APPARMOR_RESTRICT_SYSCTL)) {
        Ok(text) => text.trim().to_string(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            actions.push(Action::Note(format!(
                "AppArmor profile: not needed here: {SYSCTL} does not exist (this kernel does not \
                 restrict user namespaces through AppArmor)"
            )));
            return;
        }
        Err(e) => {
            actions.push(Action::Note(format!(
                "AppArmor profile: not written: reading {SYSCTL}: {e}"
            )));
            return;
        }
    };
    if restrict != "1" {
        actions.push(Action::Note(format!(
            "AppArmor profile: not needed here: {SYSCTL} is {restrict} (unprivileged user namespaces \
             are not restricted by AppArmor)"
        )));
        return;
    }
    if !host.path("etc/apparmor.d").is_dir() {
        actions.push(Action::Note(format!(
            "AppArmor profile: not possible: {SYSCTL} is 1 but /etc/apparmor.d does not exist; \
             unprivileged corral gets no user namespace until root sets {SYSCTL}=0"
        )));
        return;
    }
    let profile_text = match render_profile(&host.corral_exe) {
        Ok(text) => text,
        Err(why) => {
            actions.push(Action::Note(format!("AppArmor profile: not written: {why}")));
            return;
        }
    };
    let profile = host.path(PROFILE_PATH);
    let load = Action::Run {
        program: "apparmor_parser".to_string(),
        args: vec!["-r".to_string(), profile.display().to_string()],
        if_fails: IfFails::Stop,
    };
    match fs::read_to_string(&profile) {
        Ok(text) if text == profile_text => {
            actions.push(Action::AlreadyDone {
                path: profile,
                what: format!("allows user namespaces for {}", host.corral_exe.display()),
            });
            let loaded_list = host.path(APPARMOR_LOADED);
            if profile_loaded(&fs::read_to_string(&loaded_list).unwrap_or_default()) {
                actions.push(Action::AlreadyDone {
                    path: loaded_list,
                    what: "lists the corral profile (loaded)".to_string(),
                });
            } else {
                actions.push(load);
            }
        }
        Ok(text) if !is_ours(&text) => actions.push(Action::Kept {
            path: profile,
            reason: format!(
                "not written by corral setup; for corral to create user namespaces, it needs \
                 `userns,` in a profile attached to {}",
                host.corral_exe.display()
            ),
        }),
        Err(e) if e.kind() != io::ErrorKind::NotFound => actions.push(Action::Kept {
            path: profile,
            reason: format!("unreadable ({e}), so not known to be ours"),
        }),
        Ok(_) | Err(_) => {
            actions.push(Action::WriteFile {
                path: profile,
                contents: profile_text,
                mode: PROFILE_MODE,
            });
            actions.push(load);
        }
    }
}

/// Whether the kernel's profile list (`/sys/kernel/security/apparmor/profiles`) has ours.
fn profile_loaded(list: &str) -> bool {
    list.lines()
        .any(|line| line.split_once(" (").is_some_and(|(name, _)| name == "corral"))
}

/// Whether a profile file is one `corral setup` wrote.
fn is_ours(text: &str) -> bool {
    text.lines().next() == Some(PROFILE_MARKER)
}

/// The AppArmor profile letting `exe` create user namespaces (Ubuntu's own profiles for
/// unprivileged-userns users, e.g. /etc/apparmor.d/bwrap-userns-restrict, have this shape).
/// Refuses paths with characters that AppArmor reads as globbing or syntax: the attachment must
/// match this one binary, nothing else.
fn render_profile(exe: &Path) -> Result<String, String> {
    let shown = exe.display().to_string();
    let Some(text) = exe.to_str() else {
        return Err(format!("the corral path {shown} is not UTF-8"));
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+@~,:=%".contains(c);
    if !text.starts_with('/') || !text.chars().all(|c| plain(c) || c == ' ') {
        return Err(format!(
            "the corral path {shown:?} has characters an AppArmor attachment would read as a pattern; \
             install corral under a plain path (such as /usr/local/bin/corral) and run setup again"
        ));
    }
    // A path with spaces is quoted; the other allowed characters are literal in AppArmor paths.
    let attachment = if text.contains(' ') {
        format!("\"{text}\"")
    } else {
        text.to_string()
    };
    Ok(format!(
        "{PROFILE_MARKER}\nabi <abi/4.0>,\ninclude <tunables/global>\nprofile corral {attachment} flags=(unconfined) {{\n  userns,\n  include if exists <local/corral>\n}}\n"
    ))
}

/// Whether `dir` has a subdirectory (in a cgroup: a child cgroup).
fn has_subdirectory(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.file_type().is_ok_and(|t| t.is_dir()))
    })
}

// ---------------------------------------------------------------------------------------------
// checks

/// Whether a checked feature is usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Usable by unprivileged corral.
    Ok,
    /// Not usable; the detail says why and the fix.
    Problem,
}

/// One line of the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The feature.
    pub name: &'static str,
    /// Usable or not.
    pub verdict: Verdict,
    /// What was read, and the fix for a problem.
    pub detail: String,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = match self.verdict {
            Verdict::Ok => "ok",
            Verdict::Problem => "PROBLEM",
        };
        write!(f, "{verdict:<8} {}: {}", self.name, self.detail)
    }
}

/// What this machine offers unprivileged corral: user namespaces, Landlock (`landlock_abi`, from
/// `corral_sys::landlock::abi_version`), and the delegated cgroups. Reads; changes nothing.
pub fn checks(host: &Host, user: &User, landlock_abi: Option<u32>) -> Vec<Check> {
    let read = |p: &str| {
        fs::read_to_string(host.path(p))
            .ok()
            .map(|t| t.trim().to_string())
    };
    let mut out = Vec::new();

    let clone = read(USERNS_CLONE_SYSCTL);
    let max = read(MAX_USERNS_SYSCTL);
    let clone_text = match clone.as_deref() {
        None => "kernel.unprivileged_userns_clone absent".to_string(),
        Some(v) => format!("kernel.unprivileged_userns_clone = {v}"),
    };
    let max_text = match max.as_deref() {
        None => "user.max_user_namespaces absent".to_string(),
        Some(v) => format!("user.max_user_namespaces = {v}"),
    };
    let (verdict, fix) = if clone.as_deref() == Some("0") {
        (
            Verdict::Problem,
            "; fix: sysctl -w kernel.unprivileged_userns_clone=1",
        )
    } else if max.as_deref() == Some("0") {
        (
            Verdict::Problem,
            "; fix: sysctl -w user.max_user_namespaces=15000",
        )
    } else {
        (Verdict::Ok, "")
    };
    out.push(Check {
        name: "unprivileged user namespaces",
        verdict,
        detail: format!("{clone_text}, {max_text}{fix}"),
    });

    let restrict = read(APPARMOR_RESTRICT_SYSCTL);
    let ours = fs::read_to_string(host.path(PROFILE_PATH)).is_ok_and(|t| is_ours(&t));
    out.push(match restrict.as_deref() {
        None => Check {
            name: "AppArmor userns restriction",
            verdict: Verdict::Ok,
            detail: "none in this kernel".to_string(),
        },
        Some("1") if ours => Check {
            name: "AppArmor userns restriction",
            verdict: Verdict::Ok,
            detail: "on; /etc/apparmor.d/corral exempts corral".to_string(),
        },
        Some("1") => Check {
            name: "AppArmor userns restriction",
            verdict: Verdict::Problem,
            detail: "on, and no corral profile exempts corral; fix: see the lines above".to_string(),
        },
        Some(v) => Check {
            name: "AppArmor userns restriction",
            verdict: Verdict::Ok,
            detail: format!("kernel.apparmor_restrict_unprivileged_userns = {v}"),
        },
    });

    out.push(match landlock_abi {
        Some(abi) => Check {
            name: "Landlock",
            verdict: Verdict::Ok,
            detail: format!("ABI {abi}"),
        },
        None => Check {
            name: "Landlock",
            verdict: Verdict::Problem,
            detail: "not available (not built in, or not in the lsm= boot parameter): corral's \
                     filesystem layer cannot be enforced"
                .to_string(),
        },
    });

    let hierarchies = v1_hierarchies(&parse_mountinfo(&host.mountinfo));
    let mut delegated = Vec::new();
    let mut missing = Vec::new();
    for hierarchy in &hierarchies {
        let dir = delegated_dir(host, user, hierarchy);
        let ok = fs::metadata(&dir).is_ok_and(|m| m.is_dir() && m.uid() == user.uid);
        let names = hierarchy.controllers.join(",");
        if ok {
            delegated.push(names);
        } else {
            missing.push(names);
        }
    }
    out.push(if hierarchies.is_empty() {
        Check {
            name: "cgroup limits",
            verdict: Verdict::Problem,
            detail: format!(
                "no cgroup v1 hierarchy for memory, pids or cpu: {} gets no cgroup limits",
                user.name
            ),
        }
    } else if missing.is_empty() {
        Check {
            name: "cgroup limits",
            verdict: Verdict::Ok,
            detail: format!("v1 {} delegated to {}", delegated.join(" "), user.name),
        }
    } else {
        Check {
            name: "cgroup limits",
            verdict: Verdict::Problem,
            detail: format!("v1 {} not delegated to {}", missing.join(" "), user.name),
        }
    });
    out
}

// ---------------------------------------------------------------------------------------------
// applying

/// Whether [`apply`] did everything it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Every step done, already done, or a note (best-effort warnings included).
    All,
    /// Something was left alone: planned as [`Action::Kept`], or a directory to remove was busy.
    SomeLeft,
}

/// Carries out `actions` in order, writing one line per action to `out` once it is done (or
/// found done, or left). A best-effort step that fails is a `warning:` line; any other failure
/// stops here and is returned, naming the operation.
pub fn apply(actions: &[Action], out: &mut dyn Write) -> anyhow::Result<Applied> {
    let mut applied = Applied::All;
    for action in actions {
        match action {
            Action::MkdirChown { path, mode, uid, gid } => {
                fs::DirBuilder::new()
                    .mode(*mode)
                    .create(path)
                    .with_context(|| format!("mkdir(\"{}\", {mode:04o})", path.display()))?;
                chown_chmod(path, *mode, *uid, *gid)?;
            }
            Action::Chown { path, mode, uid, gid } => chown_chmod(path, *mode, *uid, *gid)?,
            Action::WriteKnob { path, value } => {
                let written = fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(path)
                    .and_then(|mut f| f.write_all(value.as_bytes()));
                if let Err(e) = written {
                    writeln!(
                        out,
                        "warning: write(\"{}\", \"{value}\"): {} (left as it is)",
                        path.display(),
                        errno(&e)
                    )?;
                    continue;
                }
            }
            Action::WriteFile { path, contents, mode } => {
                fs::write(path, contents).with_context(|| format!("write(\"{}\")", path.display()))?;
                fs::set_permissions(path, fs::Permissions::from_mode(*mode))
                    .with_context(|| format!("chmod(\"{}\", {mode:04o})", path.display()))?;
            }
            Action::Run {
                program,
                args,
                if_fails,
            } => {
                if let Err(why) = run(program, args) {
                    match if_fails {
                        IfFails::Stop => bail!(why),
                        IfFails::Warn => {
                            writeln!(out, "warning: {why}")?;
                            continue;
                        }
                    }
                }
            }
            Action::Rmdir(path) => match fs::remove_dir(path) {
                Ok(()) => {}
                // A session started between planning and now: leave it, as planning would have.
                Err(e) if is_busy(&e) => {
                    applied = Applied::SomeLeft;
                    writeln!(
                        out,
                        "left alone: {}: rmdir: {} (child cgroups or processes in it)",
                        path.display(),
                        errno(&e)
                    )?;
                    continue;
                }
                Err(e) => return Err(e).with_context(|| format!("rmdir(\"{}\")", path.display())),
            },
            Action::RemoveFile(path) => {
                fs::remove_file(path).with_context(|| format!("unlink(\"{}\")", path.display()))?;
            }
            Action::Kept { .. } => applied = Applied::SomeLeft,
            Action::AlreadyDone { .. } | Action::Note(_) => {}
        }
        writeln!(out, "{}", action.done_line())?;
    }
    Ok(applied)
}

fn chown_chmod(path: &Path, mode: u32, uid: u32, gid: u32) -> anyhow::Result<()> {
    // lchown: never follow a symlink planted where the directory was expected.
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .with_context(|| format!("lchown(\"{}\", {uid}, {gid})", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod(\"{}\", {mode:04o})", path.display()))
}

/// Runs `program args`; the error names the command and carries its stderr.
fn run(program: &str, args: &[String]) -> Result<(), String> {
    let shown = command_line(program, args);
    let output = Command::new(program).args(args).output().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            format!("{shown}: {program} not found in PATH")
        } else {
            format!("{shown}: {e}")
        }
    })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(format!("{shown}: {}: {}", output.status, stderr.trim()))
}

fn is_busy(e: &io::Error) -> bool {
    let code = e.raw_os_error();
    code == Some(rustix::io::Errno::BUSY.raw_os_error())
        || code == Some(rustix::io::Errno::NOTEMPTY.raw_os_error())
}

/// The symbolic errno (strace style) of the errors these steps meet, else the OS message.
fn errno(e: &io::Error) -> String {
    use rustix::io::Errno;
    let names = [
        (Errno::PERM, "EPERM"),
        (Errno::NOENT, "ENOENT"),
        (Errno::ACCESS, "EACCES"),
        (Errno::BUSY, "EBUSY"),
        (Errno::EXIST, "EEXIST"),
        (Errno::INVAL, "EINVAL"),
        (Errno::NOTEMPTY, "ENOTEMPTY"),
        (Errno::ROFS, "EROFS"),
    ];
    names
        .iter()
        .find(|(errno, _)| e.raw_os_error() == Some(errno.raw_os_error()))
        .map_or_else(|| e.to_string(), |(_, name)| (*name).to_string())
}

// ---------------------------------------------------------------------------------------------
// mountinfo (corral_sys::cgroup parses it too, privately)

use corral_sys::mountinfo::{cgroup_mounts as parse_mountinfo, CgroupMount, CgroupVersion};

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    /// This host's layout: v1 cpu, memory, pids (and others), v2 with only hugetlb.
    const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const V2_MOUNTINFO: &str = "\
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    const EXE: &str = "/usr/local/bin/corral";

    struct Fixture {
        dir: tempfile::TempDir,
        user: User,
    }

    impl Fixture {
        /// An empty root; the user is the test's own uid and gid, so "already owned" needs no
        /// privilege.
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let meta = fs::metadata(dir.path()).unwrap();
            let user = User {
                name: "alice".to_string(),
                uid: meta.uid(),
                gid: meta.gid(),
            };
            Fixture { dir, user }
        }

        fn root(&self) -> &Path {
            self.dir.path()
        }

        fn p(&self, relative: &str) -> PathBuf {
            self.root().join(relative)
        }

        fn host(&self, mountinfo: &str) -> Host {
            Host {
                root: self.root().to_path_buf(),
                mountinfo: mountinfo.to_string(),
                corral_exe: PathBuf::from(EXE),
            }
        }

        fn write(&self, relative: &str, text: &str) {
            let path = self.p(relative);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }

        fn mkdir(&self, relative: &str) {
            fs::create_dir_all(self.p(relative)).unwrap();
        }

        /// A fake hybrid host: v1 cpu, memory, pids roots with a few interface files; v2 with
        /// only hugetlb.
        fn hybrid() -> Fixture {
            let f = Fixture::new();
            for c in ["cpu", "cpuacct", "memory", "pids"] {
                f.write(&format!("sys/fs/cgroup/{c}/cgroup.procs"), "1\n");
            }
            f.write("sys/fs/cgroup/memory/memory.use_hierarchy", "1\n");
            f.write("sys/fs/cgroup/unified/cgroup.controllers", "hugetlb\n");
            f
        }

        /// What a previous `corral setup` left: the delegated directories, as kernfs fills them.
        fn delegated(&self) {
            for c in ["cpu", "memory", "pids"] {
                let dir = self.p(&format!("sys/fs/cgroup/{c}/corral-{}", self.user.uid));
                fs::create_dir_all(&dir).unwrap();
                fs::set_permissions(&dir, fs::Permissions::from_mode(DELEGATED_DIR_MODE)).unwrap();
                fs::write(dir.join("cgroup.procs"), "").unwrap();
            }
            fs::write(
                self.p(&format!(
                    "sys/fs/cgroup/memory/corral-{}/memory.use_hierarchy",
                    self.user.uid
                )),
                "1\n",
            )
            .unwrap();
        }
    }

    fn no_apparmor_note() -> Action {
        Action::Note(
            "AppArmor profile: not needed here: kernel.apparmor_restrict_unprivileged_userns does \
             not exist (this kernel does not restrict user namespaces through AppArmor)"
                .to_string(),
        )
    }

    fn hybrid_v2_note() -> Action {
        Action::Note(
            "cgroup v2 (/sys/fs/cgroup/unified) has none of memory, pids, cpu (its controllers: \
             hugetlb): nothing to delegate there"
                .to_string(),
        )
    }

    #[test]
    fn hybrid_host_first_time_makes_one_directory_per_hierarchy() {
        let f = Fixture::hybrid();
        let u = &f.user;
        let actions = plan_setup(&f.host(HYBRID_MOUNTINFO), u);
        let mk = |c: &str| Action::MkdirChown {
            path: f.p(&format!("sys/fs/cgroup/{c}/corral-{}", u.uid)),
            mode: 0o755,
            uid: u.uid,
            gid: u.gid,
        };
        assert_eq!(
            actions,
            vec![
                mk("memory"),
                Action::AlreadyDone {
                    path: f.p("sys/fs/cgroup/memory/memory.use_hierarchy"),
                    what: "is 1 (the new cgroup inherits it: limits cover child cgroups)".to_string(),
                },
                mk("pids"),
                mk("cpu"),
                hybrid_v2_note(),
                no_apparmor_note(),
            ]
        );
    }

    #[test]
    fn hybrid_host_second_time_is_already_done() {
        let f = Fixture::hybrid();
        f.delegated();
        let u = &f.user;
        let actions = plan_setup(&f.host(HYBRID_MOUNTINFO), u);
        let done = |c: &str| Action::AlreadyDone {
            path: f.p(&format!("sys/fs/cgroup/{c}/corral-{}", u.uid)),
            what: format!("has mode 0755, owner {}:{}", u.uid, u.gid),
        };
        assert_eq!(
            actions,
            vec![
                done("memory"),
                Action::AlreadyDone {
                    path: f.p(&format!(
                        "sys/fs/cgroup/memory/corral-{}/memory.use_hierarchy",
                        u.uid
                    )),
                    what: "is 1 (limits cover child cgroups)".to_string(),
                },
                done("pids"),
                done("cpu"),
                hybrid_v2_note(),
                no_apparmor_note(),
            ]
        );
    }

    #[test]
    fn wrong_mode_and_use_hierarchy_zero_are_fixed() {
        let f = Fixture::hybrid();
        f.delegated();
        let u = &f.user;
        let memory = f.p(&format!("sys/fs/cgroup/memory/corral-{}", u.uid));
        fs::set_permissions(&memory, fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(memory.join("memory.use_hierarchy"), "0\n").unwrap();
        let actions = plan_setup(&f.host(HYBRID_MOUNTINFO), u);
        assert_eq!(
            actions.get(..2).unwrap(),
            &[
                Action::Chown {
                    path: memory.clone(),
                    mode: 0o755,
                    uid: u.uid,
                    gid: u.gid
                },
                Action::WriteKnob {
                    path: memory.join("memory.use_hierarchy"),
                    value: "1".to_string()
                },
            ]
        );
    }

    #[test]
    fn undo_removes_empty_directories_and_leaves_busy_ones() {
        let f = Fixture::hybrid();
        f.delegated();
        let u = &f.user;
        // pids holds a running session's child cgroup; cpu was never made.
        f.mkdir(&format!("sys/fs/cgroup/pids/corral-{}/corral-s1", u.uid));
        fs::remove_dir_all(f.p(&format!("sys/fs/cgroup/cpu/corral-{}", u.uid))).unwrap();
        // Only a real cgroupfs empties on rmdir; the fixture's directory holds plain files.
        let actions = plan_undo(&f.host(HYBRID_MOUNTINFO), u);
        assert_eq!(
            actions,
            vec![
                Action::Rmdir(f.p(&format!("sys/fs/cgroup/memory/corral-{}", u.uid))),
                Action::Kept {
                    path: f.p(&format!("sys/fs/cgroup/pids/corral-{}", u.uid)),
                    reason: "it holds child cgroups (a running corral session?): end the sessions, \
                             then run `corral setup --undo` again"
                        .to_string(),
                },
                Action::AlreadyDone {
                    path: f.p(&format!("sys/fs/cgroup/cpu/corral-{}", u.uid)),
                    what: "does not exist".to_string(),
                },
            ]
        );
    }

    #[test]
    fn v2_only_host_without_systemd_changes_nothing_and_says_why() {
        let f = Fixture::new();
        f.write(
            "sys/fs/cgroup/cgroup.controllers",
            "cpuset cpu io memory hugetlb pids rdma misc\n",
        );
        let actions = plan_setup(&f.host(V2_MOUNTINFO), &f.user);
        assert_eq!(
            actions,
            vec![
                Action::Note(
                    "cgroup v2 (/sys/fs/cgroup) has memory, pids, cpu, but this host has no systemd, so \
                     setup changed nothing there: a delegated v2 cgroup is only usable when the user's \
                     session already runs inside it (moving a process needs write access to the common \
                     ancestor of its old and new cgroup, cgroups(7)), which systemd arranges with \
                     Delegate=yes; without it, run corral as root for cgroup limits, or start the \
                     user's login inside a cgroup chowned to the user"
                        .to_string()
                ),
                no_apparmor_note(),
            ]
        );
        assert_eq!(plan_undo(&f.host(V2_MOUNTINFO), &f.user), vec![]);
    }

    #[test]
    fn v2_only_host_with_systemd_leaves_delegation_to_it() {
        let f = Fixture::new();
        f.write("sys/fs/cgroup/cgroup.controllers", "memory pids\n");
        f.mkdir(SYSTEMD_MARKER);
        let actions = plan_setup(&f.host(V2_MOUNTINFO), &f.user);
        assert_eq!(
            actions,
            vec![
                Action::Note(
                    "cgroup v2 (/sys/fs/cgroup) has memory, pids: systemd delegates it to user \
                     sessions (Delegate=yes on user@.service): nothing to do there"
                        .to_string()
                ),
                Action::Note("cgroup: no hierarchy carries cpu: nothing to delegate for it".to_string()),
                no_apparmor_note(),
            ]
        );
    }

    fn ubuntu() -> Fixture {
        let f = Fixture::new();
        f.write("sys/fs/cgroup/cgroup.controllers", "memory pids cpu\n");
        f.mkdir(SYSTEMD_MARKER);
        f.write(APPARMOR_RESTRICT_SYSCTL, "1\n");
        f.mkdir("etc/apparmor.d");
        f
    }

    fn systemd_note() -> Action {
        Action::Note(
            "cgroup v2 (/sys/fs/cgroup) has memory, pids, cpu: systemd delegates it to user \
             sessions (Delegate=yes on user@.service): nothing to do there"
                .to_string(),
        )
    }

    const EXPECTED_PROFILE: &str = "\
# Written by `corral setup`, removed by `corral setup --undo`: lets corral create user namespaces.
abi <abi/4.0>,
include <tunables/global>
profile corral /usr/local/bin/corral flags=(unconfined) {
  userns,
  include if exists <local/corral>
}
";

    #[test]
    fn ubuntu_restriction_gets_a_profile_loaded() {
        let f = ubuntu();
        let profile = f.p("etc/apparmor.d/corral");
        let actions = plan_setup(&f.host(V2_MOUNTINFO), &f.user);
        assert_eq!(
            actions,
            vec![
                systemd_note(),
                Action::WriteFile {
                    path: profile.clone(),
                    contents: EXPECTED_PROFILE.to_string(),
                    mode: 0o644,
                },
                Action::Run {
                    program: "apparmor_parser".to_string(),
                    args: vec!["-r".to_string(), profile.display().to_string()],
                    if_fails: IfFails::Stop,
                },
            ]
        );
    }

    #[test]
    fn ubuntu_second_time_is_already_done_when_loaded() {
        let f = ubuntu();
        let profile = f.p("etc/apparmor.d/corral");
        f.write("etc/apparmor.d/corral", EXPECTED_PROFILE);
        f.write(APPARMOR_LOADED, "firefox (unconfined)\ncorral (unconfined)\n");
        let actions = plan_setup(&f.host(V2_MOUNTINFO), &f.user);
        assert_eq!(
            actions,
            vec![
                systemd_note(),
                Action::AlreadyDone {
                    path: profile,
                    what: "allows user namespaces for /usr/local/bin/corral".to_string(),
                },
                Action::AlreadyDone {
                    path: f.p(APPARMOR_LOADED),
                    what: "lists the corral profile (loaded)".to_string(),
                },
            ]
        );
    }

    #[test]
    fn ubuntu_undo_unloads_then_removes_only_our_profile() {
        let f = ubuntu();
        let profile = f.p("etc/apparmor.d/corral");
        f.write("etc/apparmor.d/corral", EXPECTED_PROFILE);
        assert_eq!(
            plan_undo(&f.host(V2_MOUNTINFO), &f.user),
            vec![
                Action::Run {
                    program: "apparmor_parser".to_string(),
                    args: vec!["-R".to_string(), profile.display().to_string()],
                    if_fails: IfFails::Warn,
                },
                Action::RemoveFile(profile.clone()),
            ]
        );
        f.write("etc/apparmor.d/corral", "profile corral /opt/corral {}\n");
        assert_eq!(
            plan_undo(&f.host(V2_MOUNTINFO), &f.user),
            vec![Action::Kept {
                path: profile,
                reason: "not written by corral setup".to_string(),
            }]
        );
    }

    #[test]
    fn apparmor_not_needed_when_the_sysctl_is_zero() {
        let f = ubuntu();
        f.write(APPARMOR_RESTRICT_SYSCTL, "0\n");
        let actions = plan_setup(&f.host(V2_MOUNTINFO), &f.user);
        assert_eq!(
            actions.last(),
            Some(&Action::Note(
                "AppArmor profile: not needed here: kernel.apparmor_restrict_unprivileged_userns is 0 \
                 (unprivileged user namespaces are not restricted by AppArmor)"
                    .to_string()
            ))
        );
    }

    #[test]
    fn profile_refuses_paths_that_would_be_patterns() {
        assert_eq!(
            render_profile(Path::new("/opt/my tools/corral"))
                .unwrap()
                .lines()
                .nth(3),
            Some("profile corral \"/opt/my tools/corral\" flags=(unconfined) {")
        );
        for bad in [
            "/opt/*/corral",
            "/opt/c{a,b}",
            "/opt/x\"y",
            "relative/corral",
            "/a\nb",
        ] {
            assert!(render_profile(Path::new(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn checks_summarise_this_kind_of_host() {
        let f = Fixture::hybrid();
        f.delegated();
        f.write(MAX_USERNS_SYSCTL, "96365\n");
        let got = checks(&f.host(HYBRID_MOUNTINFO), &f.user, Some(7));
        let lines: Vec<String> = got.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            vec![
                "ok       unprivileged user namespaces: kernel.unprivileged_userns_clone absent, \
                 user.max_user_namespaces = 96365",
                "ok       AppArmor userns restriction: none in this kernel",
                "ok       Landlock: ABI 7",
                "ok       cgroup limits: v1 memory pids cpu delegated to alice",
            ]
        );
        f.write(USERNS_CLONE_SYSCTL, "0\n");
        let got = checks(&f.host(HYBRID_MOUNTINFO), &f.user, None);
        assert_eq!(got.first().map(|c| c.verdict), Some(Verdict::Problem));
        assert_eq!(got.get(2).map(|c| c.verdict), Some(Verdict::Problem));
    }

    #[test]
    fn users_resolve_from_passwd() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1001:Alice:/home/alice:/bin/bash\nbroken\n";
        let alice = User {
            name: "alice".to_string(),
            uid: 1000,
            gid: 1001,
        };
        assert_eq!(
            resolve_user(Some("alice"), Some("bob"), passwd),
            Ok(alice.clone())
        );
        assert_eq!(resolve_user(None, Some("alice"), passwd), Ok(alice));
        assert_eq!(
            resolve_user(Some("mallory"), None, passwd),
            Err(
                "unknown user \"mallory\": not in /etc/passwd (users from LDAP or other NSS sources are \
                 not looked up)"
                    .to_string()
            )
        );
        assert_eq!(
            resolve_user(None, None, passwd),
            Err(
                "no user to prepare: pass --user NAME (or run it through sudo, which sets SUDO_USER)"
                    .to_string()
            )
        );
        assert!(resolve_user(None, Some("root"), passwd).is_err());
        assert!(resolve_user(Some("root"), None, passwd)
            .unwrap_err()
            .contains("uid 0"));
        assert_eq!(refuse_unless_root(1000), Some(NOT_ROOT));
        assert_eq!(refuse_unless_root(0), None);
    }

    #[test]
    fn mountinfo_escapes_and_comounted_controllers() {
        let text = "\
1 0 0:1 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
2 0 0:2 / /mnt/my\\040cgroups rw - cgroup cgroup rw,memory,pids
3 0 0:3 /sub /elsewhere rw - cgroup cgroup rw,memory
";
        assert_eq!(
            v1_hierarchies(&parse_mountinfo(text)),
            vec![
                Hierarchy {
                    mount_point: "/mnt/my cgroups".to_string(),
                    controllers: vec!["memory", "pids"],
                },
                Hierarchy {
                    mount_point: "/sys/fs/cgroup/cpu,cpuacct".to_string(),
                    controllers: vec!["cpu"],
                },
            ]
        );
    }

    #[test]
    fn apply_prints_one_line_per_action_and_stops_on_failure() {
        let f = Fixture::new();
        let u = &f.user;
        let dir = f.p("corral-x");
        let file = f.p("profile");
        let actions = vec![
            Action::MkdirChown {
                path: dir.clone(),
                mode: 0o755,
                uid: u.uid,
                gid: u.gid,
            },
            Action::WriteKnob {
                path: f.p("absent-knob"),
                value: "1".to_string(),
            },
            Action::WriteFile {
                path: file.clone(),
                contents: "x\n".to_string(),
                mode: 0o644,
            },
            Action::Note("hello".to_string()),
            Action::RemoveFile(file.clone()),
            Action::Rmdir(dir.clone()),
        ];
        let mut out = Vec::new();
        assert_eq!(apply(&actions, &mut out).unwrap(), Applied::All);
        let root = f.root().display();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "created {root}/corral-x (mode 0755, owner {uid}:{gid})\n\
                 warning: write(\"{root}/absent-knob\", \"1\"): ENOENT (left as it is)\n\
                 wrote {root}/profile (mode 0644)\n\
                 note: hello\n\
                 removed {root}/profile\n\
                 removed directory {root}/corral-x\n",
                uid = u.uid,
                gid = u.gid
            )
        );
        assert!(!dir.exists() && !file.exists());

        // A directory that is not empty (a session's child cgroup) is left, and said so.
        f.mkdir("busy/child");
        let mut out = Vec::new();
        let left = vec![
            Action::Rmdir(f.p("busy")),
            Action::Kept {
                path: f.p("other"),
                reason: "not ours".to_string(),
            },
        ];
        assert_eq!(apply(&left, &mut out).unwrap(), Applied::SomeLeft);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "left alone: {root}/busy: rmdir: ENOTEMPTY (child cgroups or processes in it)\n\
                 left alone: {root}/other: not ours\n"
            )
        );
        assert!(f.p("busy/child").is_dir());

        let mut out = Vec::new();
        let failing = vec![
            Action::Run {
                program: "sh".to_string(),
                args: vec!["-c".to_string(), "echo oops >&2; exit 3".to_string()],
                if_fails: IfFails::Stop,
            },
            Action::Note("not reached".to_string()),
        ];
        let err = apply(&failing, &mut out).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sh -c echo oops >&2; exit 3: exit status: 3: oops"
        );
        assert!(out.is_empty());
    }

    /// Runs as root on a host with a v1 memory hierarchy: delegates to a throwaway system user,
    /// proves the user can make a child cgroup and move its own process into it, then undoes.
    #[test]
    fn real_setup_and_undo_for_a_throwaway_user() {
        const NAME: &str = "corral-setup-test";
        let require = std::env::var("CORRAL_TEST_REQUIRE").is_ok_and(|v| v == "1");
        let skip = |why: &str| {
            assert!(!require, "CORRAL_TEST_REQUIRE=1 but this test would skip: {why}");
            eprintln!("skipping: {why}");
        };
        if rustix::process::geteuid().as_raw() != 0 {
            return skip("not root");
        }
        let mut host = Host::current().unwrap();
        let has_v1_memory = v1_hierarchies(&parse_mountinfo(&host.mountinfo))
            .iter()
            .any(|h| h.controllers.contains(&"memory"));
        if !has_v1_memory {
            return skip("no cgroup v1 memory hierarchy on this host");
        }
        let found = |p: &str| {
            ["/usr/sbin", "/sbin", "/usr/bin"]
                .iter()
                .any(|d| Path::new(d).join(p).exists())
        };
        if !found("useradd") || !found("userdel") {
            return skip("useradd/userdel not installed");
        }
        // Keep AppArmor out of it: this test is about cgroups.
        host.corral_exe = PathBuf::from(EXE);
        let _ = Command::new("userdel").arg(NAME).output();
        let added = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                NAME,
            ])
            .output()
            .unwrap();
        assert!(
            added.status.success(),
            "useradd: {}",
            String::from_utf8_lossy(&added.stderr)
        );
        /// Whatever happens: the directories (children first) and the user go.
        struct Cleanup(Vec<PathBuf>);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                for dir in &self.0 {
                    let _ = fs::remove_dir(dir.join("corral-probe"));
                    let _ = fs::remove_dir(dir);
                }
                let _ = Command::new("userdel").arg(NAME).output();
            }
        }
        let user = lookup_user(&fs::read_to_string("/etc/passwd").unwrap(), NAME).unwrap();
        let hierarchies = v1_hierarchies(&parse_mountinfo(&host.mountinfo));
        let _cleanup = Cleanup(
            hierarchies
                .iter()
                .map(|h| delegated_dir(&host, &user, h))
                .collect(),
        );

        let planned = plan_setup(&host, &user);
        let mut out = Vec::new();
        assert_eq!(apply(&planned, &mut out).unwrap(), Applied::All);
        for h in &hierarchies {
            let dir = delegated_dir(&host, &user, h);
            let meta = fs::metadata(&dir).unwrap();
            assert_eq!(
                (meta.uid(), meta.gid(), meta.mode() & 0o7777),
                (user.uid, user.gid, 0o755),
                "{dir:?}"
            );
            // The interface files stay root's.
            assert_eq!(fs::metadata(dir.join("cgroup.procs")).unwrap().uid(), 0);
        }
        // A second run changes nothing.
        let again = plan_setup(&host, &user);
        assert!(
            again
                .iter()
                .all(|a| matches!(a, Action::AlreadyDone { .. } | Action::Note(_))),
            "{again:#?}"
        );

        // The user can make a child cgroup and move its own process in (setpriv from util-linux).
        if found("setpriv") {
            let memory = hierarchies
                .iter()
                .find(|h| h.controllers.contains(&"memory"))
                .unwrap();
            let child = delegated_dir(&host, &user, memory).join("corral-probe");
            let script = format!(
                "mkdir {c} && sh -c 'echo $$ > {c}/cgroup.procs' && rmdir {c}",
                c = child.display()
            );
            let probe = Command::new("setpriv")
                .args([
                    "--reuid",
                    &user.uid.to_string(),
                    "--regid",
                    &user.gid.to_string(),
                    "--clear-groups",
                ])
                .args(["sh", "-c", &script])
                .output()
                .unwrap();
            let _ = fs::remove_dir(&child);
            assert!(
                probe.status.success(),
                "as {NAME}: {}",
                String::from_utf8_lossy(&probe.stderr)
            );
        } else {
            eprintln!("setpriv not installed: not probing the delegated cgroup as the user");
        }

        let undo = plan_undo(&host, &user);
        let mut out = Vec::new();
        assert_eq!(apply(&undo, &mut out).unwrap(), Applied::All);
        for h in &hierarchies {
            let dir = delegated_dir(&host, &user, h);
            assert!(!dir.exists(), "{dir:?} still exists");
        }
    }
}
