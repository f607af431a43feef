//! Who is running corral, where, with which profile: the inputs of the pure planner, gathered from
//! the process (ids, environment, cwd) and the profile files.

use anyhow::{bail, Context};
use corral_core::plan::Invocation;
use corral_core::profile::{self, Profile};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The uid and gid corral runs the sandbox as when started by root: the user who ran sudo, else
/// `nobody`. Root's own uid is never used inside: a process with host uid 0 can read every
/// root-owned file through any bind, namespaces or not.
pub const NOBODY: u32 = 65534;

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
    Ok(Some(format!(
        "started as root: the sandbox runs as uid {uid} ({who}), never as root"
    )))
}

/// Reads the invocation from the process.
pub fn invocation(command: Vec<String>, shell: bool) -> anyhow::Result<Invocation> {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let pw = corral_sys::ll::passwd_entry(uid);
    let home_raw = match std::env::var_os("HOME") {
        Some(h) if Path::new(&h).is_absolute() && !rustix::process::getuid().is_root() => PathBuf::from(h),
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
    Ok(Invocation {
        cwd,
        home,
        user,
        uid,
        gid,
        host_env,
        command: if command.is_empty() { None } else { Some(command) },
        shell,
    })
}

/// Loads `default`, then the chosen profile (a built-in name, or a file when it contains `/` or
/// ends in `.toml`) over it.
pub fn load_profile(choice: Option<&str>) -> anyhow::Result<Profile> {
    let base = profile::parse("builtin:default", profile::builtin("default")?)?;
    let Some(choice) = choice else {
        return Ok(profile::resolve("default", &[base])?);
    };
    let over = if choice.contains('/') || choice.ends_with(".toml") {
        let text = std::fs::read_to_string(choice).with_context(|| format!("reading profile {choice}"))?;
        profile::parse(choice, &text)?
    } else {
        profile::parse(&format!("builtin:{choice}"), profile::builtin(choice)?)?
    };
    if choice.is_empty() {
        bail!("--profile needs a name or a path");
    }
    Ok(profile::resolve(choice, &[base, over])?)
}
