//! The profile schema (TOML) and its resolution into a [`Profile`].
//!
//! Schema structs are `*Cfg`, every one `deny_unknown_fields`, every field optional so that layers
//! (built-in < `~/.config/corral/config.toml` < the project's `.corral.toml` < command-line flags)
//! merge by overlay: a later layer's value (a whole list included) replaces the earlier one's.
//! [`Profile`] is the resolved, fully-populated value the planner consumes, with the layer each
//! value came from.
//!
//! Errors name the file, line and column, and suggest the nearest valid key.

use crate::layer::{Layer, Level};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The built-in profiles, by name, as shipped TOML text.
pub const BUILTIN: [(&str, &str); 6] = [
    ("default", include_str!("../profiles/default.toml")),
    ("claude", include_str!("../profiles/claude.toml")),
    ("codex", include_str!("../profiles/codex.toml")),
    ("gemini", include_str!("../profiles/gemini.toml")),
    ("aider", include_str!("../profiles/aider.toml")),
    ("opencode", include_str!("../profiles/opencode.toml")),
];

/// A profile file as written: every key optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileCfg {
    /// A built-in profile this one starts from (its values come first).
    pub extends: Option<String>,
    /// `[sandbox]`
    pub sandbox: Option<SandboxCfg>,
    /// `[filesystem]`
    pub filesystem: Option<FilesystemCfg>,
    /// `[network]`
    pub network: Option<NetworkCfg>,
    /// `[env]`
    pub env: Option<EnvCfg>,
    /// `[limits]`
    pub limits: Option<LimitsCfg>,
    /// `[layers]`: `required` / `best_effort` per layer.
    pub layers: Option<BTreeMap<Layer, Level>>,
    /// `[capabilities]`
    pub capabilities: Option<CapabilitiesCfg>,
}

/// `[capabilities]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilitiesCfg {
    /// false: only the command's own binary and `exec` may be executed (Landlock's execute right).
    pub allow_shell: Option<bool>,
    /// Accepted only as `false`: corral has no way to turn its sandbox off from inside.
    pub allow_sudo: Option<bool>,
    /// Paths that may be executed when `allow_shell = false` (besides the command itself).
    pub exec: Option<Vec<String>>,
}

/// `[sandbox]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxCfg {
    /// The command run when none is given.
    pub command: Option<Vec<String>>,
    /// `git-root`, `cwd`, or an absolute path.
    pub workspace: Option<String>,
    /// Allow a workspace that is `/`, `$HOME` or a parent of it.
    pub allow_home_workspace: Option<bool>,
    /// Record every program started inside in the audit log (default true).
    pub audit_exec: Option<bool>,
    /// The agent this profile is for (e.g. `claude`): its state, policy files and API gateway.
    pub agent: Option<String>,
    /// Where the agent's API gateway sends requests (default: the agent's real API, e.g.
    /// `https://api.anthropic.com`). The real credential goes there.
    pub api_upstream: Option<String>,
    /// A file holding the agent's API key (or OAuth token), used when corral's environment has
    /// none; it must be readable by its owner only.
    pub api_key_file: Option<String>,
    /// Review mode: the workspace is a copy-on-write overlay; changes land in the project only
    /// when the user applies them (`corral diff`, `corral apply`, `corral discard`).
    pub review: Option<bool>,
}

/// A path entry in `read_only` / `read_write`: a plain string, or a table with options.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum PathEntryCfg {
    /// `"~/.cargo"`: must exist.
    Plain(String),
    /// `{ path = "~/.cargo", optional = true }`
    Table(PathTableCfg),
}

/// The table form of a path entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PathTableCfg {
    /// The path (`~` and `{workspace}` expand).
    pub path: String,
    /// Skip silently when the path does not exist.
    #[serde(default)]
    pub optional: bool,
}

/// `[filesystem]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemCfg {
    /// Host paths bound read-only.
    pub read_only: Option<Vec<PathEntryCfg>>,
    /// Host paths bound read-write.
    pub read_write: Option<Vec<PathEntryCfg>>,
    /// Globs in the workspace whose matches are masked.
    pub deny: Option<Vec<String>>,
    /// Workspace-relative paths kept read-only (and uncreatable).
    pub protect: Option<Vec<String>>,
    /// Built-in secret paths made visible anyway (reported loudly).
    pub expose_secrets: Option<Vec<String>>,
}

/// `[network]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkCfg {
    /// `none`, `proxy` or `host`.
    pub mode: Option<NetworkMode>,
    /// Which ports of the sandbox's own loopback programs inside may connect to.
    pub loopback: Option<Loopback>,
    /// Loopback TCP ports that may be connected to inside (with `loopback = "ports"`).
    pub local_ports: Option<Vec<u16>>,
    /// Hosts the egress proxy may reach (`example.com`, `*.example.com`, optional `:port`).
    pub allow: Option<Vec<String>>,
    /// Hosts it may never reach (deny wins).
    pub deny: Option<Vec<String>>,
    /// Address ranges the proxy may dial although they are private, loopback, link-local, … (e.g.
    /// `10.0.0.0/8` for a company mirror).
    pub allow_cidrs: Option<Vec<String>>,
    /// Most bytes the session may send out through the proxy, in MiB.
    pub max_egress_mb: Option<u64>,
}

/// How the sandbox reaches the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// Own network namespace with only `lo`: no route out at all.
    None,
    /// Own network namespace; egress only through corral's filtering proxy (HTTP CONNECT, HTTP,
    /// SOCKS5) in the supervisor, and a DNS sink that answers nothing.
    Proxy,
    /// The host's network namespace, shared: no network isolation at all (the weakest tier,
    /// reported as such everywhere).
    Host,
}

/// Which ports of the sandbox's own loopback (in its own network namespace: only the sandbox's
/// processes and corral's proxy, DNS sink and gateway listen there) TCP `connect` may reach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Loopback {
    /// Any port: a test suite's server on a random port, a local database, two services.
    #[default]
    Open,
    /// Only `network.local_ports` and corral's own (Landlock, ABI ≥ 4): a second wall should the
    /// network namespace ever be shared by mistake.
    Ports,
}

/// `[env]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EnvCfg {
    /// Host variable names (globs) passed through.
    pub pass: Option<Vec<String>>,
    /// Variables set inside.
    pub set: Option<BTreeMap<String, String>>,
    /// PATH entries inside.
    pub path: Option<Vec<String>>,
    /// Extra env files (`KEY=VALUE` lines), after the global and project ones.
    pub files: Option<Vec<String>>,
    /// Variables (names or globs) let in even though their value looks like a secret.
    pub allow_secrets: Option<Vec<String>>,
}

/// `[limits]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsCfg {
    /// Memory in MiB (cgroup; no swap).
    pub memory_mb: Option<u64>,
    /// Most processes (cgroup pids.max, and RLIMIT_NPROC per user namespace as a floor).
    pub pids: Option<u64>,
    /// CPU rate, in CPUs (cgroup cpu quota), e.g. 1.5.
    pub cpus: Option<f64>,
    /// CPU time in seconds (RLIMIT_CPU, per process).
    pub cpu_seconds: Option<u64>,
    /// Wall-clock time in seconds for the whole session.
    pub wall_seconds: Option<u64>,
    /// Size of the sandbox's /tmp and /dev/shm, in MiB.
    pub tmp_mb: Option<u64>,
    /// Largest single file, in MiB (RLIMIT_FSIZE).
    pub file_mb: Option<u64>,
    /// Most open files per process (RLIMIT_NOFILE).
    pub open_files: Option<u64>,
    /// Review mode: most MiB the session's changes (the overlay's upper layer) may take; the
    /// supervisor checks every few seconds and stops the session past it.
    pub review_mb: Option<u64>,
    /// Address space per process in MiB (RLIMIT_AS). Opt-in: it breaks JITs and runtimes that
    /// reserve large address ranges (V8, the JVM, Go), so no shipped profile sets it.
    pub address_space_mb: Option<u64>,
}

/// A fully resolved profile: what the planner consumes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    /// The agent the profile is for.
    pub agent: Option<String>,
    /// Where the agent's API gateway sends requests (None: the agent's real API).
    pub api_upstream: Option<String>,
    /// A file holding the agent's API credential.
    pub api_key_file: Option<String>,
    /// Review mode (copy-on-write workspace).
    pub review: bool,
    /// Hosts the egress proxy may reach.
    pub network_allow: Vec<String>,
    /// Hosts it may never reach.
    pub network_deny: Vec<String>,
    /// Private ranges the proxy may dial anyway.
    pub network_allow_cidrs: Vec<String>,
    /// Egress cap in MiB.
    pub max_egress_mb: Option<u64>,
    /// Extra env files.
    pub env_files: Vec<String>,
    /// Variables let in despite looking like secrets.
    pub env_allow_secrets: Vec<String>,
    /// Whether programs other than the command (and `exec_allow`) may be executed.
    pub allow_shell: bool,
    /// Executables allowed when `allow_shell` is false.
    pub exec_allow: Vec<String>,
    /// For each key (`filesystem.read_only`, …), the layer its value came from.
    pub origins: BTreeMap<String, String>,
    /// Name of the profile (built-in name or file path).
    pub name: String,
    /// Default command.
    pub command: Vec<String>,
    /// Workspace choice.
    pub workspace: String,
    /// See [`SandboxCfg::allow_home_workspace`].
    pub allow_home_workspace: bool,
    /// See [`SandboxCfg::audit_exec`].
    pub audit_exec: bool,
    /// Read-only binds.
    pub read_only: Vec<PathTableCfg>,
    /// Read-write binds.
    pub read_write: Vec<PathTableCfg>,
    /// Deny globs.
    pub deny: Vec<String>,
    /// Protected workspace paths.
    pub protect: Vec<String>,
    /// Secret paths exposed on purpose.
    pub expose_secrets: Vec<String>,
    /// Network mode.
    pub network_mode: NetworkMode,
    /// `network.loopback`.
    pub loopback: Loopback,
    /// Loopback ports connect(2) may reach (with `Loopback::Ports`).
    pub local_ports: Vec<u16>,
    /// Env allowlist.
    pub env_pass: Vec<String>,
    /// Env set inside.
    pub env_set: BTreeMap<String, String>,
    /// PATH entries.
    pub env_path: Vec<String>,
    /// Process cap.
    pub pids: u64,
    /// Memory cap in MiB.
    pub memory_mb: Option<u64>,
    /// CPU rate cap, in CPUs.
    pub cpus: Option<f64>,
    /// CPU time cap per process, seconds.
    pub cpu_seconds: Option<u64>,
    /// Wall-clock cap, seconds.
    pub wall_seconds: Option<u64>,
    /// /tmp and /dev/shm size, MiB.
    pub tmp_mb: u64,
    /// Largest file, MiB.
    pub file_mb: Option<u64>,
    /// Open files per process.
    pub open_files: Option<u64>,
    /// Review mode: the changes' size cap, MiB.
    pub review_mb: Option<u64>,
    /// Address space per process, MiB (opt-in).
    pub address_space_mb: Option<u64>,
    /// Level per layer.
    pub layers: BTreeMap<Layer, Level>,
}

/// A profile that could not be loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProfileError {
    /// TOML syntax or schema error, with position and suggestion.
    #[error("{origin}:{line}:{column}: {message}{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    Parse {
        /// File path or `builtin:NAME`.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
        /// The nearest valid key, for an unknown key.
        suggestion: Option<String>,
    },
    /// `--profile NAME` that is neither built in nor a file.
    #[error("no built-in profile named {0:?} (built-in: {1}); to use a file, give a path containing `/`")]
    UnknownBuiltin(String, String),
    /// A value missing from every layer (a built-in profile must define everything).
    #[error("profile {0}: `{1}` is not set by any layer")]
    Missing(String, &'static str),
    /// `capabilities.allow_sudo = true`.
    #[error("{origin}:{line}:{column}: capabilities.allow_sudo = true: corral has no way to turn its sandbox off from inside (no setuid, no_new_privs, an empty bounding set); remove it or set it to false")]
    Sudo {
        /// File.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// `extends` names something that is not a built-in profile, or extends itself.
    #[error("{origin}: extends = {name:?}: {why}")]
    Extends {
        /// File.
        origin: String,
        /// The value.
        name: String,
        /// What is wrong.
        why: String,
    },
}

/// One layer of configuration with the name it is reported under.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileLayer {
    /// Where it came from (`builtin:default`, a file path, `command line`).
    pub origin: String,
    /// Its values.
    pub cfg: ProfileCfg,
}

impl ProfileLayer {
    /// Parses `text` (from `origin`) into a layer.
    pub fn parse(origin: &str, text: &str) -> Result<ProfileLayer, ProfileError> {
        Ok(ProfileLayer {
            origin: origin.to_string(),
            cfg: parse(origin, text)?,
        })
    }
}

/// The built-in layers a profile file's `extends` pulls in before it: `default`, then the named
/// built-in (when not `default` itself).
pub fn extends_chain(origin: &str, cfg: &ProfileCfg) -> Result<Vec<ProfileLayer>, ProfileError> {
    let name = cfg.extends.as_deref().unwrap_or("default");
    let text = builtin(name).map_err(|e| ProfileError::Extends {
        origin: origin.to_string(),
        name: name.to_string(),
        why: e.to_string(),
    })?;
    let mut chain = Vec::new();
    if name != "default" {
        chain.push(ProfileLayer::parse("builtin:default", builtin("default")?)?);
    }
    let named = ProfileLayer::parse(&format!("builtin:{name}"), text)?;
    if named.cfg.extends.as_deref().is_some_and(|e| e != "default") {
        return Err(ProfileError::Extends {
            origin: origin.to_string(),
            name: name.to_string(),
            why: "a built-in profile may only extend `default`".into(),
        });
    }
    chain.push(named);
    Ok(chain)
}

/// Parses one profile file's text. `origin` names it in errors.
pub fn parse(origin: &str, text: &str) -> Result<ProfileCfg, ProfileError> {
    let cfg = parse_only(origin, text)?;
    if cfg.capabilities.as_ref().and_then(|c| c.allow_sudo) == Some(true) {
        let offset = text.find("allow_sudo").unwrap_or(0);
        let (line, column) = line_col(text, offset);
        return Err(ProfileError::Sudo {
            origin: origin.to_string(),
            line,
            column,
        });
    }
    Ok(cfg)
}

fn parse_only(origin: &str, text: &str) -> Result<ProfileCfg, ProfileError> {
    toml::from_str::<ProfileCfg>(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        let message = mask_quoted_values(e.message().trim());
        let suggestion = suggest_key(&message);
        ProfileError::Parse {
            origin: origin.to_string(),
            line,
            column,
            message,
            suggestion,
        }
    })
}

/// Returns the built-in profile text for `name`.
pub fn builtin(name: &str) -> Result<&'static str, ProfileError> {
    BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            ProfileError::UnknownBuiltin(
                name.to_string(),
                BUILTIN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
            )
        })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

/// A value quoted in a parser message (`invalid type: string "ghp_…", expected u64`) may be a
/// secret put in the wrong place: show it masked.
fn mask_quoted_values(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(start) = rest.find('"') {
        let Some(len) = rest[start + 1..].find('"') else {
            break;
        };
        out.push_str(&rest[..start]);
        let inner = &rest[start + 1..start + 1 + len];
        out.push('"');
        out.push_str(&crate::envaudit::mask(inner));
        out.push('"');
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// serde reports ``unknown field `x`, expected one of `a`, `b` ``: pick the closest expected key.
fn suggest_key(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    expected
        .into_iter()
        .map(|cand| (edit_distance(unknown, cand), cand))
        .filter(|(d, cand)| {
            // Close in spelling, or one is a prefix of the other (`enviroment` → `env`).
            *d <= (cand.len().max(unknown.len()) / 2).max(1)
                || unknown.starts_with(cand)
                || cand.starts_with(unknown)
        })
        .min()
        .map(|(_, c)| c.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn entry(e: PathEntryCfg) -> PathTableCfg {
    match e {
        PathEntryCfg::Plain(path) => PathTableCfg {
            path,
            optional: false,
        },
        PathEntryCfg::Table(t) => t,
    }
}

/// Overlays `layers` (earliest first) into a resolved profile named `name`, remembering which
/// layer each value came from.
pub fn resolve(name: &str, layers: &[ProfileLayer]) -> Result<Profile, ProfileError> {
    let mut origins = BTreeMap::new();
    macro_rules! pick {
        ($sec:ident . $field:ident) => {{
            let found = layers.iter().rev().find_map(|l| {
                l.cfg
                    .$sec
                    .as_ref()
                    .and_then(|s| s.$field.clone())
                    .map(|v| (v, &l.origin))
            });
            found.map(|(v, origin)| {
                origins.insert(
                    concat!(stringify!($sec), ".", stringify!($field)).to_string(),
                    origin.clone(),
                );
                v
            })
        }};
    }
    let missing = |what| ProfileError::Missing(name.to_string(), what);
    let mut levels = BTreeMap::new();
    for l in layers {
        if let Some(map) = &l.cfg.layers {
            for (k, v) in map {
                levels.insert(*k, *v);
                origins.insert(format!("layers.{k}"), l.origin.clone());
            }
        }
    }
    let entries = |v: Option<Vec<PathEntryCfg>>| v.unwrap_or_default().into_iter().map(entry).collect();
    Ok(Profile {
        name: name.to_string(),
        agent: pick!(sandbox.agent),
        api_upstream: pick!(sandbox.api_upstream),
        api_key_file: pick!(sandbox.api_key_file),
        review: pick!(sandbox.review).unwrap_or(false),
        command: pick!(sandbox.command).ok_or_else(|| missing("sandbox.command"))?,
        workspace: pick!(sandbox.workspace).unwrap_or_else(|| "git-root".to_string()),
        allow_home_workspace: pick!(sandbox.allow_home_workspace).unwrap_or(false),
        audit_exec: pick!(sandbox.audit_exec).unwrap_or(true),
        read_only: entries(pick!(filesystem.read_only)),
        read_write: entries(pick!(filesystem.read_write)),
        deny: pick!(filesystem.deny).unwrap_or_default(),
        protect: pick!(filesystem.protect).unwrap_or_default(),
        expose_secrets: pick!(filesystem.expose_secrets).unwrap_or_default(),
        network_mode: pick!(network.mode).unwrap_or(NetworkMode::None),
        loopback: pick!(network.loopback).unwrap_or_default(),
        local_ports: pick!(network.local_ports).unwrap_or_default(),
        network_allow: pick!(network.allow).unwrap_or_default(),
        network_deny: pick!(network.deny).unwrap_or_default(),
        network_allow_cidrs: pick!(network.allow_cidrs).unwrap_or_default(),
        max_egress_mb: pick!(network.max_egress_mb),
        env_pass: pick!(env.pass).unwrap_or_default(),
        env_set: pick!(env.set).unwrap_or_default(),
        env_path: pick!(env.path).ok_or_else(|| missing("env.path"))?,
        env_files: pick!(env.files).unwrap_or_default(),
        env_allow_secrets: pick!(env.allow_secrets).unwrap_or_default(),
        pids: pick!(limits.pids).ok_or_else(|| missing("limits.pids"))?,
        memory_mb: pick!(limits.memory_mb),
        cpus: pick!(limits.cpus),
        cpu_seconds: pick!(limits.cpu_seconds),
        wall_seconds: pick!(limits.wall_seconds),
        tmp_mb: pick!(limits.tmp_mb).unwrap_or(crate::plan::DEFAULT_TMP_MB),
        file_mb: pick!(limits.file_mb),
        open_files: pick!(limits.open_files),
        review_mb: pick!(limits.review_mb),
        address_space_mb: pick!(limits.address_space_mb),
        allow_shell: pick!(capabilities.allow_shell).unwrap_or(true),
        exec_allow: pick!(capabilities.exec).unwrap_or_default(),
        layers: levels,
        origins,
    })
}

/// Parses a size for `--memory`: a number with an optional `K`, `M`, `G` or `T` (binary units);
/// a bare number is MiB. Returns MiB.
pub fn parse_size_mb(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: f64 = match c.to_ascii_uppercase() {
                'K' => 1.0 / 1024.0,
                'M' => 1.0,
                'G' => 1024.0,
                'T' => 1024.0 * 1024.0,
                _ => return Err(format!("{s:?}: unknown unit (use K, M, G or T)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1.0),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: not a size (e.g. 512M, 2G)"))?;
    let mb = (n * mult).ceil();
    if !(1.0..=f64::from(u32::MAX)).contains(&mb) {
        return Err(format!("{s:?}: out of range"));
    }
    // In range and integral by the checks above.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(mb as u64)
}

/// Parses a duration for `--timeout`: a number with an optional `s`, `m`, `h` or `d`; a bare
/// number is seconds. Returns seconds.
pub fn parse_duration_s(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86400,
                _ => return Err(format!("{s:?}: unknown unit (use s, m, h or d)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: not a duration (e.g. 90s, 30m, 2h)"))?;
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("{s:?}: out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn every_builtin_parses_and_resolves() {
        for (name, text) in BUILTIN {
            // Agent profiles extend `default`, as `--profile NAME` loads them.
            let mut layers = Vec::new();
            if name != "default" {
                layers.push(ProfileLayer::parse("builtin:default", BUILTIN[0].1).unwrap());
            }
            layers.push(ProfileLayer::parse(&format!("builtin:{name}"), text).unwrap());
            let p = resolve(name, &layers).unwrap();
            if name != "default" {
                assert_eq!(p.agent.as_deref(), Some(name), "{name} names its agent");
                assert!(crate::agents::spec(name).is_some(), "{name} is a known agent");
                assert_eq!(p.network_mode, NetworkMode::Proxy, "{name} defaults to the proxy");
            }
            for layer in Layer::ALL {
                assert!(
                    p.layers.contains_key(&layer),
                    "{name} must set a level for {layer}"
                );
            }
        }
    }

    #[test]
    fn unknown_key_names_position_and_suggests() {
        let text = "[filesystem]\nread_onyl = []\n";
        let err = parse("p.toml", text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "p.toml:2:1: unknown field `read_onyl`, expected one of `read_only`, `read_write`, `deny`, \
             `protect`, `expose_secrets` (did you mean `read_only`?)"
        );
    }

    #[test]
    fn unknown_section_suggests() {
        let err = parse("p.toml", "[network]\nmode = \"none\"\n[enviroment]\n").unwrap_err();
        let ProfileError::Parse { line, suggestion, .. } = err else {
            panic!("{err:?}")
        };
        assert_eq!((line, suggestion.as_deref()), (3, Some("env")));
    }

    #[test]
    fn bad_value_is_located() {
        let err = parse("p.toml", "[network]\nmode = \"everywhere\"\n").unwrap_err();
        let ProfileError::Parse {
            line,
            column,
            suggestion,
            ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!((*line, *column, suggestion.clone()), (2, 8, None));
    }

    #[test]
    fn later_layer_overrides() {
        let base = ProfileLayer::parse("a", builtin("default").unwrap()).unwrap();
        let over =
            ProfileLayer::parse("b", "[limits]\npids = 64\n[sandbox]\ncommand = [\"true\"]\n").unwrap();
        let p = resolve("x", &[base, over]).unwrap();
        assert_eq!((p.pids, p.command), (64, vec!["true".to_string()]));
        assert_eq!(p.origins.get("limits.pids").map(String::as_str), Some("b"));
        assert_eq!(p.origins.get("filesystem.deny").map(String::as_str), Some("a"));
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size_mb("2G"), Ok(2048));
        assert_eq!(parse_size_mb("512M"), Ok(512));
        assert_eq!(parse_size_mb("4096"), Ok(4096));
        assert_eq!(parse_size_mb("1.5g"), Ok(1536));
        assert_eq!(parse_size_mb("64K"), Ok(1));
        assert_eq!(
            parse_size_mb("2X"),
            Err("\"2X\": unknown unit (use K, M, G or T)".into())
        );
        assert_eq!(
            parse_size_mb("x12"),
            Err("\"x12\": not a size (e.g. 512M, 2G)".into())
        );
        assert_eq!(parse_duration_s("30m"), Ok(1800));
        assert_eq!(parse_duration_s("90"), Ok(90));
        assert_eq!(parse_duration_s("2h"), Ok(7200));
        assert_eq!(parse_duration_s("0s"), Err("\"0s\": out of range".into()));
    }

    #[test]
    fn unknown_builtin_lists_the_known_ones() {
        assert_eq!(
            builtin("nope").unwrap_err().to_string(),
            "no built-in profile named \"nope\" (built-in: default, claude, codex, gemini, aider, opencode); to use a file, give a path containing `/`"
        );
    }
}
