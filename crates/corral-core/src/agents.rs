//! What corral knows about each coding agent it runs: where the agent keeps its state inside the
//! sandbox, which of its files are policy (read-only inside), how its API credential is kept
//! outside (the gateway), and what it needs from its environment. Pure data and the planning
//! step that turns it into mounts, variables and generated files.
//!
//! The agent's state lives outside the project, per project (`~/.local/share/corral/projects/
//! <key>/<agent>/`, see the binary's `agentstate`), and is bound as the agent's config directory
//! inside. Policy files in it (settings, hooks, commands, sub-agents) are bound read-only on top:
//! the agent cannot give itself new hooks or permissions. The per-user shared part (instructions,
//! skills, plugins, history) is bound from `~/.local/share/corral/agents/<agent>/`.
//!
//! The API credential never enters the sandbox: the agent gets a base URL pointing at corral's
//! API gateway on the sandbox's loopback ([`GATEWAY_PORT`]) and a dummy credential; the gateway, in
//! the supervisor, puts the real one on each request upstream.

use crate::plan::{Access, FileKind, MountOp};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The API gateway's port on the sandbox's loopback.
pub const GATEWAY_PORT: u16 = 3129;
/// The dummy credential the agent holds inside: recognisable, useless anywhere else.
pub const DUMMY_CREDENTIAL: &str = "corral-dummy-credential-the-real-one-stays-outside";
/// Where corral's generated files are, relative to the sandbox's home (a read-only tmpfs).
pub const CORRAL_DIR: &str = ".corral";

/// How the gateway presents the real credential upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyHeader {
    /// `x-api-key: KEY` (Anthropic).
    XApiKey,
    /// `authorization: Bearer KEY` (OpenAI, OAuth tokens).
    Bearer,
    /// `x-goog-api-key: KEY` (Gemini).
    XGoogApiKey,
}

/// An agent's API: where it goes and how the credential is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiSpec {
    /// The real API.
    pub upstream: &'static str,
    /// The variable that points the client at another base URL.
    pub base_url_env: &'static str,
    /// The variable holding the API key on the host.
    pub key_env: &'static str,
    /// The variable that carries the dummy inside, in the API-key case (for Claude Code,
    /// `ANTHROPIC_AUTH_TOKEN`: a custom `ANTHROPIC_API_KEY` makes it ask whether to use it).
    pub dummy_env: &'static str,
    /// How the key goes upstream.
    pub key_header: KeyHeader,
    /// A variable holding a long-lived OAuth token instead (sent as a bearer token), if the
    /// client has one.
    pub oauth_env: Option<&'static str>,
    /// The base URL as the client wants it (some append `/v1` themselves, some expect it).
    pub base_path: &'static str,
}

/// One shared entry, relative to the agent's config directory inside and to the per-user shared
/// directory outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shared {
    /// Relative path.
    pub path: &'static str,
    /// File or directory.
    pub kind: FileKind,
    /// Read-only or writable inside.
    pub access: Access,
}

/// Everything corral knows about one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentSpec {
    /// Name (`sandbox.agent`, `corral NAME`).
    pub name: &'static str,
    /// Its config directory inside, relative to the home (`.claude`).
    pub config_dir: &'static str,
    /// The variable that names the config directory, if the client has one (then its state file
    /// lives in the directory too: one bind, no single-file mounts an atomic rename would break).
    pub config_env: Option<&'static str>,
    /// Policy files and directories in the config directory, read-only inside.
    pub policy: &'static [(&'static str, FileKind)],
    /// Per-user parts shared by every project.
    pub shared: &'static [Shared],
    /// The instructions file in the config directory that imports SANDBOX.md (generated: the
    /// user's own instructions follow the import).
    pub instructions: Option<&'static str>,
    /// The API, when its client accepts another base URL.
    pub api: Option<ApiSpec>,
    /// Variables the client needs inside (values may use `{home}`).
    pub env: &'static [(&'static str, &'static str)],
    /// Hosts the client must reach through the proxy when it holds its own credential (no key
    /// or token on the host): its sign-in and API hosts.
    pub sign_in_hosts: &'static [&'static str],
    /// A flag taking a settings file, and the file corral generates for it (in `~/.corral`),
    /// inserted after the program name when the command runs this agent.
    pub settings_flag: Option<(&'static str, &'static str)>,
}

/// The agents corral ships profiles for.
pub const AGENTS: &[AgentSpec] = &[
    AgentSpec {
        name: "claude",
        config_dir: ".claude",
        config_env: Some("CLAUDE_CONFIG_DIR"),
        policy: &[
            ("settings.json", FileKind::File),
            ("settings.local.json", FileKind::File),
            ("hooks", FileKind::Dir),
            ("commands", FileKind::Dir),
            ("agents", FileKind::Dir),
        ],
        shared: &[
            Shared {
                path: "skills",
                kind: FileKind::Dir,
                access: Access::ReadOnly,
            },
            Shared {
                path: "plugins",
                kind: FileKind::Dir,
                access: Access::ReadOnly,
            },
            Shared {
                path: "history.jsonl",
                kind: FileKind::File,
                access: Access::ReadWrite,
            },
        ],
        instructions: Some("CLAUDE.md"),
        api: Some(ApiSpec {
            upstream: "https://api.anthropic.com",
            base_url_env: "ANTHROPIC_BASE_URL",
            key_env: "ANTHROPIC_API_KEY",
            dummy_env: "ANTHROPIC_AUTH_TOKEN",
            key_header: KeyHeader::XApiKey,
            oauth_env: Some("CLAUDE_CODE_OAUTH_TOKEN"),
            base_path: "",
        }),
        env: &[
            // The sandbox's /tmp is private; a directory of its own there, so a /tmp/claude-<uid>
            // owned by someone else (which makes `claude -p` exit 0 silently) cannot happen.
            ("CLAUDE_CODE_TMPDIR", "/tmp/claude"),
            ("DISABLE_AUTOUPDATER", "1"),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
        ],
        sign_in_hosts: &[
            "api.anthropic.com",
            "claude.ai",
            "console.anthropic.com",
            "platform.claude.com",
        ],
        // Claude Code reads managed settings only from /etc/claude-code (the variable naming
        // another folder is not honoured by 2.1.x), which cannot be created in the host's
        // read-only /etc; the `--settings` tier ranks above user and project settings.
        settings_flag: Some(("--settings", "claude-settings.json")),
    },
    AgentSpec {
        name: "codex",
        config_dir: ".codex",
        config_env: Some("CODEX_HOME"),
        policy: &[("config.toml", FileKind::File)],
        shared: &[Shared {
            path: "AGENTS.md",
            kind: FileKind::File,
            access: Access::ReadOnly,
        }],
        instructions: None,
        api: Some(ApiSpec {
            upstream: "https://api.openai.com",
            base_url_env: "OPENAI_BASE_URL",
            key_env: "OPENAI_API_KEY",
            dummy_env: "OPENAI_API_KEY",
            key_header: KeyHeader::Bearer,
            oauth_env: None,
            base_path: "/v1",
        }),
        env: &[],
        sign_in_hosts: &["api.openai.com", "auth.openai.com", "chatgpt.com"],
        settings_flag: None,
    },
    AgentSpec {
        name: "gemini",
        config_dir: ".gemini",
        config_env: None,
        policy: &[("settings.json", FileKind::File)],
        shared: &[Shared {
            path: "GEMINI.md",
            kind: FileKind::File,
            access: Access::ReadOnly,
        }],
        instructions: None,
        api: Some(ApiSpec {
            upstream: "https://generativelanguage.googleapis.com",
            base_url_env: "GOOGLE_GEMINI_BASE_URL",
            key_env: "GEMINI_API_KEY",
            dummy_env: "GEMINI_API_KEY",
            key_header: KeyHeader::XGoogApiKey,
            oauth_env: None,
            base_path: "",
        }),
        env: &[],
        sign_in_hosts: &[
            "generativelanguage.googleapis.com",
            "oauth2.googleapis.com",
            "accounts.google.com",
        ],
        settings_flag: None,
    },
    AgentSpec {
        name: "aider",
        config_dir: ".aider",
        config_env: None,
        policy: &[],
        shared: &[],
        instructions: None,
        api: Some(ApiSpec {
            upstream: "https://api.anthropic.com",
            base_url_env: "ANTHROPIC_BASE_URL",
            key_env: "ANTHROPIC_API_KEY",
            dummy_env: "ANTHROPIC_API_KEY",
            key_header: KeyHeader::XApiKey,
            oauth_env: None,
            base_path: "",
        }),
        env: &[("AIDER_CHECK_UPDATE", "false"), ("AIDER_ANALYTICS", "false")],
        sign_in_hosts: &["api.anthropic.com"],
        settings_flag: None,
    },
    AgentSpec {
        name: "opencode",
        config_dir: ".config/opencode",
        config_env: None,
        policy: &[("opencode.json", FileKind::File)],
        shared: &[],
        instructions: None,
        api: Some(ApiSpec {
            upstream: "https://api.anthropic.com",
            base_url_env: "ANTHROPIC_BASE_URL",
            key_env: "ANTHROPIC_API_KEY",
            dummy_env: "ANTHROPIC_API_KEY",
            key_header: KeyHeader::XApiKey,
            oauth_env: None,
            base_path: "",
        }),
        env: &[("OPENCODE_DISABLE_AUTOUPDATE", "1")],
        sign_in_hosts: &["api.anthropic.com", "opencode.ai"],
        settings_flag: None,
    },
];

/// The spec of `name`.
pub fn spec(name: &str) -> Option<&'static AgentSpec> {
    AGENTS.iter().find(|a| a.name == name)
}

/// Which credential the host has for the agent's API (the value itself never enters the plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// An API key: the gateway sends it.
    ApiKey,
    /// A long-lived OAuth token: the gateway sends it as a bearer token.
    OauthToken,
    /// None on the host: the client signs in inside and holds its credential itself.
    InsideClient,
}

/// What the binary found out for the agent before planning (paths exist; nothing here is secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInput {
    /// The per-project state directory for this agent (bound as its config directory).
    pub project_dir: PathBuf,
    /// The per-user shared directory.
    pub shared_dir: PathBuf,
    /// The user's own instructions (the shared instructions file), to follow the import.
    pub user_instructions: String,
    /// The user's git identity (name, email), from their git config.
    pub git_identity: Option<(String, String)>,
    /// Which credential the host has.
    pub credential: CredentialKind,
    /// Where the supervisor reads it (None: inside-client).
    pub credential_source: Option<CredentialSource>,
    /// corral's own executable (bound inside for `corral statusline`).
    pub corral_exe: Option<PathBuf>,
    /// The API upstream (the spec's, or the user's `agent.api_upstream`).
    pub upstream: String,
}

/// Where the real credential is on the host (a name or a path, never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum CredentialSource {
    /// A variable of corral's own environment.
    Env {
        /// Its name.
        name: String,
    },
    /// A file only its owner can read (`sandbox.api_key_file`, or `corral login`'s store).
    File {
        /// Its path.
        path: PathBuf,
    },
}

/// The gateway part of the plan (no credential in it: the plan reaches the sandbox).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayPlan {
    /// Where requests go.
    pub upstream: String,
    /// How the real credential goes upstream.
    pub key_header: KeyHeader,
    /// Which credential.
    pub credential: CredentialKind,
    /// Where the supervisor reads it.
    pub source: CredentialSource,
}

/// What planning for an agent adds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentAdditions {
    /// Mount steps, applied after the profile's (all below the home tmpfs).
    pub mounts: Vec<MountOp>,
    /// Variables set by corral.
    pub env: Vec<(String, String)>,
    /// The gateway, when the credential stays outside.
    pub gateway: Option<GatewayPlan>,
    /// Hosts the proxy must allow (sign-in, when the client holds its credential).
    pub allow_hosts: Vec<String>,
    /// Things the user must hear at launch.
    pub warnings: Vec<String>,
}

/// The generated files of `~/.corral` (SANDBOX.md is added by the planner, which knows the plan).
pub fn gitconfig(identity: Option<&(String, String)>, workspace: &Path) -> String {
    // Values are written quoted with `"` and `\` escaped; newlines cannot occur (the binary
    // drops an identity with control characters).
    let q = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut s = String::from(
        "# Generated by corral for this sandbox: your identity, nothing that runs programs\n\
         # (no credential helpers, sshCommand, includes, aliases or hooks paths).\n",
    );
    if let Some((name, email)) = identity {
        s.push_str(&format!(
            "[user]\n\tname = \"{}\"\n\temail = \"{}\"\n",
            q(name),
            q(email)
        ));
    }
    s.push_str(&format!(
        "[safe]\n\tdirectory = \"{}\"\n[credential]\n\thelper =\n[core]\n\tpager = cat\n",
        q(&workspace.display().to_string())
    ));
    s
}

/// Claude Code's settings from corral (read-only, passed with `--settings`): its own sandbox off
/// (corral is the sandbox, and the built-in one would replace corral's proxy settings), no
/// bypass-permissions warning (the sandbox is the permission layer), corral's status line.
pub fn claude_settings(home: &Path) -> String {
    let statusline = format!("{}/{CORRAL_DIR}/bin/corral statusline", home.display());
    serde_json::json!({
        "sandbox": { "enabled": false },
        "skipDangerousModePermissionPrompt": true,
        "statusLine": { "type": "command", "command": statusline, "padding": 0 },
    })
    .to_string()
}

/// Plans the agent's mounts, variables and gateway. `home` is the sandbox's home (= the user's).
pub fn plan_agent(
    spec: &AgentSpec,
    input: &AgentInput,
    home: &Path,
    workspace: &Path,
    uid: u32,
    sandbox_md: String,
) -> AgentAdditions {
    let mut add = AgentAdditions::default();
    let config = home.join(spec.config_dir);
    let corral = home.join(CORRAL_DIR);

    // The per-project state as the agent's config directory, writable.
    add.mounts.push(MountOp::Bind {
        src: input.project_dir.clone(),
        dst: config.clone(),
        access: Access::ReadWrite,
        kind: FileKind::Dir,
        create: true,
        why: "agent state".into(),
    });
    // Shared per-user parts on top.
    for sh in spec.shared {
        add.mounts.push(MountOp::Bind {
            src: input.shared_dir.join(sh.path),
            dst: config.join(sh.path),
            access: sh.access,
            kind: sh.kind,
            // The mount point is made in the agent's state directory (corral's own, on the host).
            create: true,
            why: "agent shared".into(),
        });
    }
    // Policy read-only: the agent cannot grant itself hooks, commands or permissions.
    for (p, _) in spec.policy {
        add.mounts.push(MountOp::Rebind {
            dst: config.join(p),
            access: Access::ReadOnly,
            why: "agent policy".into(),
        });
    }
    // The instructions file: SANDBOX.md imported first, then the user's own.
    if let Some(name) = spec.instructions {
        add.mounts.push(MountOp::File {
            dst: config.join(name),
            contents: format!("@{}/SANDBOX.md\n\n{}", corral.display(), input.user_instructions),
            why: "agent instructions".into(),
        });
    }

    // ~/.corral: generated files, read-only.
    let mut files = vec![
        ("SANDBOX.md".to_string(), sandbox_md),
        (
            "gitconfig".to_string(),
            gitconfig(input.git_identity.as_ref(), workspace),
        ),
    ];
    if let Some((_, file)) = spec.settings_flag {
        files.push((file.to_string(), claude_settings(home)));
    }
    add.mounts.push(MountOp::Generated {
        dst: corral.clone(),
        files,
    });
    if let Some(exe) = &input.corral_exe {
        add.mounts.push(MountOp::Bind {
            src: exe.clone(),
            dst: corral.join("bin/corral"),
            access: Access::ReadOnly,
            kind: FileKind::File,
            create: true,
            why: "corral statusline".into(),
        });
    }
    add.mounts.push(MountOp::ReadOnly { dst: corral.clone() });

    let home_s = home.display().to_string();
    if let Some(var) = spec.config_env {
        add.env.push((var.to_string(), config.display().to_string()));
    }
    for (k, v) in spec.env {
        add.env.push((k.to_string(), v.replace("{home}", &home_s)));
    }
    add.env.push((
        "GIT_CONFIG_GLOBAL".into(),
        corral.join("gitconfig").display().to_string(),
    ));
    add.env.push(("GIT_CONFIG_NOSYSTEM".into(), "1".into()));
    if uid == 0 && spec.name == "claude" {
        // Claude Code refuses --dangerously-skip-permissions as root unless told it is sandboxed.
        add.env.push(("IS_SANDBOX".into(), "1".into()));
    }

    match (spec.api, input.credential, &input.credential_source) {
        (Some(api), CredentialKind::ApiKey | CredentialKind::OauthToken, Some(source)) => {
            let oauth = input.credential == CredentialKind::OauthToken;
            let (dummy_var, header) = match (oauth, api.oauth_env) {
                (true, Some(var)) => (var, KeyHeader::Bearer),
                (true, None) => (api.dummy_env, KeyHeader::Bearer),
                (false, _) => (api.dummy_env, api.key_header),
            };
            add.env.push((
                api.base_url_env.to_string(),
                format!("http://127.0.0.1:{GATEWAY_PORT}{}", api.base_path),
            ));
            add.env
                .push((dummy_var.to_string(), DUMMY_CREDENTIAL.to_string()));
            add.gateway = Some(GatewayPlan {
                upstream: input.upstream.clone(),
                key_header: header,
                credential: input.credential,
                source: source.clone(),
            });
        }
        _ => {
            add.allow_hosts = spec.sign_in_hosts.iter().map(|h| h.to_string()).collect();
            add.warnings.push(format!(
                "no API key or token for {} on the host ({}): the agent signs in inside the sandbox and holds its credential itself, in {}/ (readable by everything in the sandbox; kept in this project's state only). Set the key on the host, or run `corral login {}`, to keep it outside.",
                spec.name,
                spec.api
                    .map(|a| [Some(a.key_env), a.oauth_env].into_iter().flatten().collect::<Vec<_>>().join(" or "))
                    .unwrap_or_default(),
                config.display(),
                spec.name
            ));
        }
    }
    add
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn every_agent_has_a_distinct_name_and_config_dir() {
        let mut names: Vec<&str> = AGENTS.iter().map(|a| a.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), AGENTS.len());
        for a in AGENTS {
            assert!(
                !a.config_dir.starts_with('/') && !a.config_dir.contains(".."),
                "{}",
                a.name
            );
        }
    }

    #[test]
    fn gitconfig_has_identity_and_nothing_that_runs_programs() {
        let g = gitconfig(
            Some(&("Ada \"L\"".into(), "ada@example.com".into())),
            Path::new("/home/ada/proj"),
        );
        assert!(g.contains("name = \"Ada \\\"L\\\"\""), "{g}");
        assert!(g.contains("directory = \"/home/ada/proj\""));
        let settings: String = g.lines().filter(|l| !l.starts_with('#')).collect();
        for bad in ["sshCommand", "include", "alias", "hooksPath", "fsmonitor"] {
            assert!(!settings.contains(bad), "{bad} in {g}");
        }
    }

    #[test]
    fn claude_settings_turn_its_sandbox_off_and_set_the_status_line() {
        let v: serde_json::Value = serde_json::from_str(&claude_settings(Path::new("/home/ada"))).unwrap();
        assert_eq!(v["skipDangerousModePermissionPrompt"], true);
        assert_eq!(v["sandbox"]["enabled"], false);
        assert_eq!(
            v["statusLine"]["command"],
            "/home/ada/.corral/bin/corral statusline"
        );
    }
}
