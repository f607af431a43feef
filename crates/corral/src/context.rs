//! Who is running corral, where, with which profile: the inputs of the pure planner, gathered from
//! the process (ids, environment, cwd), the profile files, the env files and the trust store.
//!
//! Profile layers, earliest first: the built-in profile (`default`, or `--profile NAME|FILE` with
//! its `extends` chain), `~/.config/corral/config.toml`, the project's `.corral.toml`. The project
//! file sits in the repository, so an attacker may have written it: unless the user trusted that
//! exact file (`corral trust`, by hash), it may only tighten the policy, and the project's
//! `.corral.env` is not read at all.

use anyhow::{bail, Context};
use corral_core::envaudit::{parse_env_file, AuditSource};
use corral_core::plan::{EnvFileInput, Invocation};
use corral_core::profile::{self, extends_chain, Profile, ProfileLayer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The uid and gid corral runs the sandbox as when started by root: the user who ran sudo, else
/// `nobody`. Root's own uid is never used inside: a process with host uid 0 can read every
/// root-owned file through any bind, namespaces or not.
pub const NOBODY: u32 = 65534;
/// The project's profile file, at the workspace root.
pub const PROJECT_PROFILE: &str = ".corral.toml";
/// The project's env file, at the workspace root.
pub const PROJECT_ENV: &str = ".corral.env";

/// When started as root, become the unprivileged user the sandbox will run as (see [`NOBODY`]).
/// Returns a note for the user, if anything changed.
pub fn drop_root_if_needed() -> anyhow::Result<Option<String>> {
    if !rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    if !corral_sys::ll::in_initial_user_namespace() {
        // uid 0 of a user namespace (a rootless container) is an unprivileged uid on the host:
        // nothing to leave, and `nobody` is usually not even mapped there.
        return Ok(Some(
            "running as uid 0 of a user namespace (not the machine's root): the sandbox keeps that uid"
                .into(),
        ));
    }
    let parse = |k: &str| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|v| *v != 0)
    };
    let (uid, gid, who) = match (parse("SUDO_UID"), parse("SUDO_GID")) {
        (Some(u), Some(g)) => (u, g, "the user who ran sudo"),
        _ => (NOBODY, NOBODY, "nobody"),
    };
    corral_sys::ll::become_user(uid, gid).with_context(|| format!("setresuid({uid}) to leave root"))?;
    // root's $HOME and $USER are not this user's: take the user database's (corral is still
    // single-threaded here, so changing its environment is safe).
    let (user, home) = corral_sys::ll::passwd_entry(uid).unwrap_or_else(|| (uid.to_string(), "/".into()));
    std::env::set_var("HOME", home);
    std::env::set_var("USER", user);
    Ok(Some(format!(
        "started as root: the sandbox runs as uid {uid} ({who}), never as root"
    )))
}

/// Reads the invocation from the process (env files are added by [`env_files`]).
pub fn invocation(command: Vec<String>, shell: bool, env_flags: Vec<String>) -> anyhow::Result<Invocation> {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let pw = corral_sys::ll::passwd_entry(uid);
    let home_raw = match std::env::var_os("HOME") {
        Some(h) if Path::new(&h).is_absolute() => PathBuf::from(h),
        _ => PathBuf::from(pw.as_ref().map(|p| p.1.clone()).unwrap_or_else(|| "/".into())),
    };
    let home = std::fs::canonicalize(&home_raw).unwrap_or(home_raw);
    let user = std::env::var("USER")
        .ok()
        .filter(|u| pw.as_ref().is_none_or(|p| &p.0 == u))
        .or_else(|| pw.as_ref().map(|p| p.0.clone()))
        .unwrap_or_else(|| uid.to_string());
    let cwd = std::env::current_dir().context("getcwd")?;
    let cwd = std::fs::canonicalize(&cwd).with_context(|| format!("canonicalize {}", cwd.display()))?;
    let host_env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    check_env_flags(&env_flags, &host_env)?;
    let extra_env = host_env
        .get("CORRAL_EXTRA_ENV")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    Ok(Invocation {
        cwd,
        home,
        user,
        uid,
        gid,
        host_env,
        command: if command.is_empty() { None } else { Some(command) },
        shell,
        env_files: Vec::new(),
        extra_env,
        env_flags,
        agent: None,
    })
}

/// `~/.config/corral`.
pub fn config_dir(home: &Path) -> PathBuf {
    match std::env::var_os("XDG_CONFIG_HOME") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d).join("corral"),
        _ => home.join(".config/corral"),
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// The layers below the project's: the built-in profile (or `--profile`'s choice, with its
/// `extends` chain) and the user config. Returns the profile's name and the layers.
pub fn base_layers(choice: Option<&str>, home: &Path) -> anyhow::Result<(String, Vec<ProfileLayer>)> {
    let default = || ProfileLayer::parse("builtin:default", profile::builtin("default")?);
    let mut layers = Vec::new();
    let name = match choice {
        None => {
            layers.push(default()?);
            "default".to_string()
        }
        Some("") => bail!("--profile needs a built-in name or a path"),
        Some(c) if c.contains('/') || c.ends_with(".toml") => {
            let file = ProfileLayer::parse(c, &read(Path::new(c))?)?;
            layers.extend(extends_chain(c, &file.cfg)?);
            layers.push(file);
            c.to_string()
        }
        Some(c) => {
            let named = ProfileLayer::parse(&format!("builtin:{c}"), profile::builtin(c)?)?;
            if c != "default" {
                layers.push(default()?);
            }
            layers.push(named);
            c.to_string()
        }
    };
    let user = config_dir(home).join("config.toml");
    if user.exists() {
        let layer = ProfileLayer::parse(&user.display().to_string(), &read(&user)?)?;
        if layer.cfg.extends.is_some() {
            bail!(
                "{}: extends is not allowed in the user config (use --profile)",
                user.display()
            );
        }
        layers.push(layer);
    }
    Ok((name, layers))
}

/// What the project directory contributes.
#[derive(Debug)]
pub struct Project {
    /// The project's profile layer, when there is a `.corral.toml`.
    pub layer: Option<ProfileLayer>,
    /// The project's env file, when there is one and it is trusted.
    pub env: Option<EnvFileInput>,
    /// Things the user should know (e.g. an untrusted env file left unread).
    pub notes: Vec<String>,
}

/// Reads the project's `.corral.toml` and `.corral.env`. An untrusted profile that would widen the
/// policy is refused, naming each widening; an untrusted env file is left unread.
pub fn project(workspace: &Path, name: &str, base: &[ProfileLayer], home: &Path) -> anyhow::Result<Project> {
    let store = crate::trust::TrustStore::load(&crate::trust::store_path(home))?;
    let mut out = Project {
        layer: None,
        env: None,
        notes: Vec::new(),
    };
    let path = workspace.join(PROJECT_PROFILE);
    refuse_symlink(&path)?;
    if path.exists() {
        let text = read(&path)?;
        let origin = path.display().to_string();
        let layer = ProfileLayer::parse(&origin, &text)?;
        if layer.cfg.extends.is_some() {
            bail!("{origin}: extends is not allowed in a project file (use --profile)");
        }
        if layer.cfg.sandbox.as_ref().is_some_and(|s| s.workspace.is_some()) {
            bail!("{origin}: sandbox.workspace cannot be set by a project file");
        }
        if !store.is_trusted(&path, text.as_bytes()) {
            let before = profile::resolve(name, base)?;
            let mut with = base.to_vec();
            with.push(layer.clone());
            let after = profile::resolve(name, &with)?;
            let widenings = corral_core::tighten::widenings(&before, &after);
            if !widenings.is_empty() {
                let list: Vec<String> = widenings.iter().map(|w| format!("  - {w}")).collect();
                bail!(
                    "{} would widen the sandbox, and you have not trusted it:\n{}\nA project file may only tighten the policy unless you trust that exact file: review it with `corral trust` (it shows the file and records its hash).",
                    path.display(),
                    list.join("\n")
                );
            }
        }
        out.layer = Some(layer);
    }
    let env_path = workspace.join(PROJECT_ENV);
    refuse_symlink(&env_path)?;
    if env_path.exists() {
        let text = read(&env_path)?;
        if store.is_trusted(&env_path, text.as_bytes()) {
            out.env = Some(env_file(&env_path, &text, AuditSource::ProjectFile)?);
        } else {
            out.notes.push(format!(
                "{} not loaded: a project's env file is used only once you trust it (`corral trust`)",
                env_path.display()
            ));
        }
    }
    Ok(out)
}

/// A project's profile or env file must be a regular file at its own path: trust is recorded per
/// path, and a symlink could lead to another project's trusted file.
fn refuse_symlink(path: &Path) -> anyhow::Result<()> {
    if path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
        bail!("{} is a symlink: a project's corral files must be regular files (replace the link with the file)", path.display());
    }
    Ok(())
}

/// Checks `--env` arguments: a valid name, not one corral sets itself, and (without `=VALUE`) set
/// on the host.
pub fn check_env_flags(flags: &[String], host: &BTreeMap<String, String>) -> anyhow::Result<()> {
    const CORRAL_OWN: [&str; 7] = [
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "TMPDIR",
        "PATH",
        "CORRAL_SANDBOX",
    ];
    for f in flags {
        let name = f.split_once('=').map_or(f.as_str(), |(n, _)| n);
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            bail!("--env {name:?}: not a variable name (letters, digits and _, not starting with a digit)");
        }
        if CORRAL_OWN.contains(&name) {
            bail!("--env {name}: corral sets {name} itself inside the sandbox (PATH comes from env.path)");
        }
        if !f.contains('=') && !host.contains_key(name) {
            bail!("--env {name}: not set here; give a value with --env {name}=VALUE");
        }
    }
    Ok(())
}

fn env_file(path: &Path, text: &str, source: AuditSource) -> anyhow::Result<EnvFileInput> {
    let origin = path.display().to_string();
    let entries = parse_env_file(&origin, text)?
        .into_iter()
        .map(|e| (e.name, e.value))
        .collect();
    Ok(EnvFileInput {
        source,
        origin,
        entries,
    })
}

/// The env files of a launch, in the order they apply: the global `~/.config/corral/env`, the
/// (trusted) project file, then the profile's `env.files`.
pub fn env_files(
    profile: &Profile,
    home: &Path,
    project_env: Option<EnvFileInput>,
) -> anyhow::Result<Vec<EnvFileInput>> {
    let mut files = Vec::new();
    let global = config_dir(home).join("env");
    if global.exists() {
        files.push(env_file(&global, &read(&global)?, AuditSource::GlobalFile)?);
    }
    files.extend(project_env);
    for f in &profile.env_files {
        let path = corral_core::plan::expand("env.files", f, home, None)?;
        files.push(env_file(&path, &read(&path)?, AuditSource::ProfileFile)?);
    }
    Ok(files)
}
