//! The binary's side of running an agent: what the planner needs to know about the agent's state
//! and credential (found without changing anything, so `--dry-run` stays read-only), and the state
//! directories created just before a real launch.

use crate::agentstate;
use anyhow::Context;
use corral_core::agents::{self, AgentInput, AgentSpec, CredentialKind};
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
    Ok(Some(AgentInput {
        project_dir,
        shared_dir,
        user_instructions,
        git_identity: git_identity(&inv.home),
        credential: credential_kind(spec, &inv.host_env),
        corral_exe: std::env::current_exe()
            .ok()
            .and_then(|p| std::fs::canonicalize(p).ok()),
        upstream,
    }))
}

/// Which credential the host has for the agent's API: the key, else a long-lived OAuth token, in
/// corral's own environment. Never copied anywhere but into the gateway.
fn credential_kind(spec: &AgentSpec, env: &std::collections::BTreeMap<String, String>) -> CredentialKind {
    let set = |name: &str| env.get(name).is_some_and(|v| !v.trim().is_empty());
    match spec.api {
        Some(api) if set(api.key_env) => CredentialKind::ApiKey,
        Some(api) if api.oauth_env.is_some_and(set) => CredentialKind::OauthToken,
        _ => CredentialKind::InsideClient,
    }
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
    let mut state: serde_json::Value = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{}: not JSON (move it aside to start afresh)", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
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
    let tmp = config.join(format!(".claude.json.corral-{}", std::process::id()));
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(state.to_string().as_bytes())
            .with_context(|| format!("writing {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}
