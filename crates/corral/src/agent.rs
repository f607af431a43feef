//! The binary's side of running an agent: what the planner needs to know about the agent's state
//! and credential (found without changing anything, so `--dry-run` stays read-only), and the state
//! directories created just before a real launch.

use crate::agentstate;
use anyhow::Context;
use corral_core::agents::{self, AgentInput, AgentSpec, CredentialKind, CredentialSource};
use corral_core::plan::Invocation;
use corral_core::profile::Profile;
use std::path::{Path, PathBuf};

/// The agent's input for the planner, when the profile names a known agent. Reads only.
pub fn input(profile: &Profile, inv: &Invocation, workspace: &Path) -> anyhow::Result<Option<AgentInput>> {
    let Some(spec) = profile.agent.as_deref().and_then(agents::spec) else {
        return Ok(None);
    };
    let data = agentstate::data_dir(&inv.home);
    let root = agentstate::project_root(workspace);
    let key = agentstate::project_key(&root);
    let project_dir = data.join("projects").join(&key).join(spec.name);
    let shared_dir = data.join("agents").join(spec.name);
    // The user's own instructions file in the shared directory (same name as the agent's).
    let user_instructions = spec
        .instructions
        .map(|f| std::fs::read_to_string(shared_dir.join(f)).unwrap_or_default())
        .unwrap_or_default();
    let upstream = match (&profile.api_upstream, spec.api) {
        (Some(u), _) => u.clone(),
        (None, Some(api)) => api.upstream.to_string(),
        (None, None) => String::new(),
    };
    let (credential, credential_source) = credential(spec, profile, inv)?;
    Ok(Some(AgentInput {
        project_dir,
        shared_dir,
        user_instructions,
        git_identity: git_identity(&inv.home),
        credential,
        credential_source,
        corral_exe: std::env::current_exe()
            .ok()
            .and_then(|p| std::fs::canonicalize(p).ok()),
        upstream,
    }))
}

/// Which credential the host has for the agent's API, and where: the key in corral's own
/// environment, else a long-lived OAuth token there, else `sandbox.api_key_file`, else what
/// `corral login` stored. Only the name or path goes into the plan; the secret is read by the
/// supervisor for the gateway and goes nowhere else.
fn credential(
    spec: &AgentSpec,
    profile: &Profile,
    inv: &Invocation,
) -> anyhow::Result<(CredentialKind, Option<CredentialSource>)> {
    let Some(api) = spec.api else {
        return Ok((CredentialKind::InsideClient, None));
    };
    let set = |name: &str| inv.host_env.get(name).is_some_and(|v| !v.trim().is_empty());
    let env = |name: &str| {
        Some(CredentialSource::Env {
            name: name.to_string(),
        })
    };
    if set(api.key_env) {
        return Ok((CredentialKind::ApiKey, env(api.key_env)));
    }
    if let Some(var) = api.oauth_env.filter(|v| set(v)) {
        return Ok((CredentialKind::OauthToken, env(var)));
    }
    let file = match &profile.api_key_file {
        Some(f) => Some(corral_core::plan::expand(
            "sandbox.api_key_file",
            f,
            &inv.home,
            None,
        )?),
        None => {
            let stored = login_store(&inv.home, spec.name);
            stored.exists().then_some(stored)
        }
    };
    let Some(path) = file else {
        return Ok((CredentialKind::InsideClient, None));
    };
    let secret = read_secret_file(&path)?;
    // Claude's long-lived OAuth tokens are recognisable; they go as a bearer token.
    let kind = if secret.starts_with("sk-ant-oat") {
        CredentialKind::OauthToken
    } else {
        CredentialKind::ApiKey
    };
    Ok((kind, Some(CredentialSource::File { path })))
}

/// Where `corral login AGENT` keeps the credential: `~/.local/share/corral/credentials/AGENT`.
pub fn login_store(home: &Path, agent: &str) -> PathBuf {
    agentstate::data_dir(home).join("credentials").join(agent)
}

/// The secret in a credential file: refused unless it is a regular file only its owner can
/// read (another user could otherwise read what corral keeps out of the sandbox).
pub fn read_secret_file(path: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let meta =
        std::fs::symlink_metadata(path).with_context(|| format!("the API key file {}", path.display()))?;
    anyhow::ensure!(
        meta.is_file(),
        "the API key file {}: not a regular file",
        path.display()
    );
    anyhow::ensure!(
        meta.mode() & 0o077 == 0,
        "the API key file {}: readable by others (mode {:o}); hint: chmod 600 {}",
        path.display(),
        meta.mode() & 0o777,
        path.display()
    );
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let secret = text.trim().to_string();
    anyhow::ensure!(
        !secret.is_empty() && secret.bytes().all(|b| b.is_ascii_graphic()),
        "the API key file {}: empty, or not one line of visible ASCII",
        path.display()
    );
    Ok(secret)
}

/// `git config --global user.name` / `user.email` on the host (None if unset, or if either holds
/// a control character: it goes into a generated config file).
fn git_identity(home: &Path) -> Option<(String, String)> {
    let get = |key: &str| -> Option<String> {
        let out = std::process::Command::new("git")
            .args(["config", "--global", "--get", key])
            .env_clear()
            .env("HOME", home)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        let v = String::from_utf8(out.stdout).ok()?;
        let v = v.trim_end_matches('\n').to_string();
        (out.status.success() && !v.is_empty() && !v.chars().any(char::is_control)).then_some(v)
    };
    Some((get("user.name")?, get("user.email")?))
}

/// Creates the agent's state directories for a launch (project and shared), at the paths the plan
/// binds. Fails when they would differ (a race with another corral) rather than bind elsewhere.
pub fn ensure_state(profile: &Profile, inv: &Invocation, workspace: &Path) -> anyhow::Result<()> {
    let (Some(spec), Some(input)) = (profile.agent.as_deref().and_then(agents::spec), &inv.agent) else {
        return Ok(());
    };
    let root = agentstate::project_root(workspace);
    let project = agentstate::ensure_project(&inv.home, &root, spec.name)
        .with_context(|| format!("the {} state of this project", spec.name))?;
    let made: PathBuf = project.dir.join(spec.name);
    anyhow::ensure!(
        made == input.project_dir,
        "the {} state directory moved ({} vs {})",
        spec.name,
        made.display(),
        input.project_dir.display()
    );
    let shared = agentstate::ensure_shared(&inv.home, spec.name)?;
    anyhow::ensure!(
        shared == input.shared_dir,
        "the shared {} directory moved",
        spec.name
    );
    if spec.name == "claude" {
        seed_claude_state(&made, workspace)?;
    }
    Ok(())
}

/// Claude Code's first-run dialogs answered for the sandbox: onboarding done (it would try to
/// reach api.anthropic.com directly), and the workspace trusted (corral is the trust boundary).
/// Merged into its state file, everything else kept; written beside and renamed over.
fn seed_claude_state(config: &Path, workspace: &Path) -> anyhow::Result<()> {
    let path = config.join(".claude.json");
    // The agent writes this directory from inside: it may have made the file a symlink to a host
    // file (a JSON secret), which a read here would follow and the write below would copy into
    // the sandbox's view. Never follow one: O_NOFOLLOW, and a regular file only.
    let mut state: serde_json::Value = match read_no_follow(&path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{}: not JSON (move it aside to start afresh)", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("reading {} (a symlink or not a regular file?)", path.display()))
        }
    };
    let Some(obj) = state.as_object_mut() else {
        anyhow::bail!("{}: not a JSON object", path.display());
    };
    obj.insert("hasCompletedOnboarding".into(), true.into());
    let projects = obj.entry("projects").or_insert_with(|| serde_json::json!({}));
    if let Some(projects) = projects.as_object_mut() {
        let entry = projects
            .entry(workspace.display().to_string())
            .or_insert_with(|| serde_json::json!({}));
        if let Some(entry) = entry.as_object_mut() {
            entry.insert("hasTrustDialogAccepted".into(), true.into());
        }
    }
    write_private(&path, state.to_string().as_bytes())
}

/// A regular file's text, refusing a symlink at `path` (ELOOP) or anything but a regular file.
fn read_no_follow(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: a FIFO planted there must not hang the launch (no effect on a regular file).
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(open_flags(
            rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK,
        ))
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > STATE_FILE_MAX {
        return Err(std::io::Error::other(format!(
            "larger than {STATE_FILE_MAX} bytes"
        )));
    }
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    Ok(text)
}

/// Open flags for `custom_flags`, from rustix (no libc dependency in the binary).
fn open_flags(flags: rustix::fs::OFlags) -> i32 {
    i32::try_from(flags.bits()).unwrap_or(0)
}

/// The largest agent state file corral reads on the host (it is written from inside).
const STATE_FILE_MAX: u64 = 64 * 1024 * 1024;

/// Writes `bytes` to `path` (mode 600): beside it first, then renamed over, so a reader never sees
/// half a file and a crash leaves the old one.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().context("a file without a directory")?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.corral-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// `corral login AGENT`: keeps the agent's API key (or Claude's long-lived OAuth token, from
/// `claude setup-token`) in corral's credential store, owner-only, for the gateway. Read from the
/// terminal without echo, or one line of stdin.
pub fn login(agent: &str, home: &Path) -> anyhow::Result<i32> {
    use std::io::{BufRead, Write};
    let spec = agents::spec(agent).with_context(|| {
        format!(
            "no agent named {agent:?} (agents: {})",
            agents::AGENTS
                .iter()
                .map(|a| a.name)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    anyhow::ensure!(
        spec.api.is_some(),
        "{agent}: corral keeps no API credential for it"
    );
    let stdin = rustix::stdio::stdin();
    let tty = rustix::termios::isatty(stdin);
    let saved = if tty {
        rustix::termios::tcgetattr(stdin).ok()
    } else {
        None
    };
    if let Some(t) = &saved {
        eprint!("corral: paste the API key (or OAuth token) for {agent}; it is not shown: ");
        let _ = std::io::stderr().flush();
        let mut quiet = t.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        let _ = rustix::termios::tcsetattr(stdin, rustix::termios::OptionalActions::Now, &quiet);
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if let Some(t) = &saved {
        let _ = rustix::termios::tcsetattr(stdin, rustix::termios::OptionalActions::Now, t);
        crate::say!();
    }
    read.context("reading the credential")?;
    let secret = line.trim();
    anyhow::ensure!(
        !secret.is_empty() && secret.bytes().all(|b| b.is_ascii_graphic()),
        "the credential must be one line of visible ASCII; nothing was stored"
    );
    let path = login_store(home, agent);
    let dir = path
        .parent()
        .context("the credential store has no parent directory")?;
    agentstate::create_dir_all_private(dir)?;
    write_private(&path, format!("{secret}\n").as_bytes())?;
    crate::say!(
        "corral: stored in {} (mode 600). The gateway uses it when corral's environment has no key; it never enters the sandbox. Remove the file to forget it.",
        path.display()
    );
    Ok(0)
}
