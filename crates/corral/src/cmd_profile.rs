//! `corral profile list|show|validate` and `corral init`: look at, check and start profiles.
//!
//! `show` layers exactly what `corral run` would use in the current directory
//! ([`context::base_layers`]: the built-in `default`, then a named built-in or a file with its
//! `extends` chain, then the user config `~/.config/corral/config.toml`; then the project's
//! `.corral.toml` in the workspace `corral run` would choose, by default the nearest ancestor with
//! `.git`, else the current directory), and prints every resolved value with the layer it came
//! from ([`Profile::origins`]). It does not apply the trust rule: that is `corral run`'s.
//!
//! `validate` goes beyond the schema: it flags values that parse but cannot mean what was written
//! (relative host paths, `..`, protect entries outside the workspace, deny globs that do not
//! compile), each as `FILE:line:col: key: what is wrong`, the position found by searching the text
//! for the quoted value.
//!
//! `init` writes a commented `.corral.toml` whose every key is commented out with its value in the
//! built-in `default` profile, so that the file as written changes nothing (a test pins this),
//! except `sandbox.workspace`, which a project file may not set.
//!
//! Every key of the schema has one row in [`KEYS`] (a test fails when the schema grows a key
//! without one): its explanation for `init` and how to read its resolved value for `show`.

use crate::context::{self, PROJECT_PROFILE};
use anyhow::Context as _;
use corral_core::layer::Layer;
use corral_core::plan::{self, Invocation, PlanError};
use corral_core::profile::{self, PathTableCfg, Profile, ProfileCfg, ProfileLayer};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// `corral profile …`
#[derive(Debug, clap::Subcommand)]
pub enum ProfileCmd {
    /// List the built-in profiles (and the user config file, if present).
    List,
    /// Print the merged profile with, for each value, the layer it came from.
    Show {
        /// A built-in name or a profile file; default: what `corral run` would use here
        name: Option<String>,
        /// Print `{"profile": …, "layers": […]}` as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a profile file: syntax, unknown keys (with file:line:col and the nearest key), values.
    Validate {
        /// The profile file (TOML).
        file: PathBuf,
    },
}

/// Runs `corral profile …`; returns the exit code (1: the profile is invalid).
pub fn profile(cmd: &ProfileCmd) -> anyhow::Result<i32> {
    match cmd {
        ProfileCmd::List => {
            print!("{}", list_text(&here()?.home));
            Ok(0)
        }
        ProfileCmd::Show { name, json } => show(name.as_deref(), *json),
        ProfileCmd::Validate { file } => {
            let origin = file.display().to_string();
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("{origin}: cannot read: {e}");
                    return Ok(1);
                }
            };
            let problems = validate_text(&origin, &text);
            if problems.is_empty() {
                println!("{origin}: ok");
                return Ok(0);
            }
            for p in &problems {
                eprintln!("{p}");
            }
            Ok(1)
        }
    }
}

/// Flags of `corral init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Overwrite an existing .corral.toml
    #[arg(long)]
    pub force: bool,
}

/// Writes a commented `.corral.toml` at the project root; returns the exit code (1: it exists).
pub fn init(args: &InitArgs) -> anyhow::Result<i32> {
    let path = project_file(&here()?)?;
    let template = init_template(&default_profile()?);
    let exists = path.symlink_metadata().is_ok();
    if exists && !args.force {
        eprintln!(
            "corral: {} already exists; use `corral init --force` to overwrite it",
            path.display()
        );
        return Ok(1);
    }
    if exists {
        // Remove, then create anew: a symlink planted at .corral.toml is replaced, never written
        // through to its target.
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut f, template.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// The keys of the schema, in schema order.

/// A resolved value, kept in the order it is written (serde_json would sort table keys).
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(String),
    Bool(bool),
    Int(i64),
    Float(f64),
    List(Vec<Val>),
    Table(Vec<(String, Val)>),
}

impl Val {
    /// Any serialisable value (`null` → `None`, and dropped inside lists and tables).
    fn of<T: Serialize>(v: &T) -> Option<Val> {
        serde_json::to_value(v).ok().and_then(Val::from_json)
    }

    fn from_json(v: serde_json::Value) -> Option<Val> {
        use serde_json::Value as J;
        match v {
            J::Null => None,
            J::Bool(b) => Some(Val::Bool(b)),
            J::Number(n) => n.as_i64().map(Val::Int).or_else(|| n.as_f64().map(Val::Float)),
            J::String(s) => Some(Val::Str(s)),
            J::Array(a) => Some(Val::List(a.into_iter().filter_map(Val::from_json).collect())),
            J::Object(o) => Some(Val::Table(
                o.into_iter()
                    .filter_map(|(k, v)| Some((k, Val::from_json(v)?)))
                    .collect(),
            )),
        }
    }

    /// Path entries as one writes them: a plain string unless `optional`.
    fn paths(entries: &[PathTableCfg]) -> Option<Val> {
        Some(Val::List(
            entries
                .iter()
                .map(|e| {
                    if e.optional {
                        Val::Table(vec![
                            ("path".into(), Val::Str(e.path.clone())),
                            ("optional".into(), Val::Bool(true)),
                        ])
                    } else {
                        Val::Str(e.path.clone())
                    }
                })
                .collect(),
        ))
    }

    /// Inline TOML: `["a", "b"]`, `{ path = "~/x", optional = true }`.
    fn toml(&self) -> String {
        match self {
            Val::Str(s) => toml_string(s),
            Val::Bool(b) => b.to_string(),
            Val::Int(i) => i.to_string(),
            Val::Float(f) => f.to_string(),
            Val::List(items) => {
                format!("[{}]", items.iter().map(Val::toml).collect::<Vec<_>>().join(", "))
            }
            Val::Table(kv) if kv.is_empty() => "{}".into(),
            Val::Table(kv) => format!(
                "{{ {} }}",
                kv.iter()
                    .map(|(k, v)| format!("{} = {}", toml_key(k), v.toml()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// A TOML basic string: JSON's escapes (`\"`, `\\`, `\n`, `\u001f`, …) are all valid TOML.
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

fn toml_key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        k.to_string()
    } else {
        toml_string(k)
    }
}

/// One key of the schema.
#[derive(Debug)]
struct KeyDoc {
    /// `section.field`.
    key: &'static str,
    /// One line for the `init` template.
    about: &'static str,
    /// Its value in a resolved profile; `None`: unset.
    value: fn(&Profile) -> Option<Val>,
    /// Written (commented out) by `init` when the default profile leaves the key unset.
    example: &'static str,
    /// Part of [`Profile`]: false for keys only checked at parse time (`allow_sudo`).
    resolved: bool,
    /// May be set by a project file (`sandbox.workspace` may not: see `context::project`).
    project: bool,
}

/// The sections of the schema, in order (`layers` is written per [`Layer`], after `limits`).
const SECTIONS: [&str; 7] = [
    "sandbox",
    "filesystem",
    "network",
    "env",
    "limits",
    "layers",
    "capabilities",
];

/// Every key but `extends` and `layers.*`, in schema order.
const KEYS: &[KeyDoc] = &[
    KeyDoc {
        key: "sandbox.command",
        about: "what `corral run` starts when no command is given after `--`",
        value: |p| Val::of(&p.command),
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "sandbox.workspace",
        about: "the project: \"git-root\", \"cwd\" or an absolute path",
        value: |p| Val::of(&p.workspace),
        example: "",
        resolved: true,
        project: false,
    },
    KeyDoc {
        key: "sandbox.allow_home_workspace",
        about: "allow a workspace that is /, $HOME or a parent of $HOME",
        value: |p| Val::of(&p.allow_home_workspace),
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "sandbox.audit_exec",
        about: "record every program started inside (path, argv) in the audit log; false: not recorded",
        value: |p| Val::of(&p.audit_exec),
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "sandbox.agent",
        about: "the agent this profile is for: its per-project state, read-only policy files, API gateway",
        value: |p| Val::of(&p.agent),
        example: "\"claude\"",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "sandbox.review",
        about: "review mode: the agent works on a copy-on-write workspace; `corral diff` / `apply` / `discard`",
        value: |p| Val::of(&p.review),
        example: "true",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "sandbox.api_key_file",
        about: "a file (owner-only) holding the agent's API key, when corral's environment has none",
        value: |p| Val::of(&p.api_key_file),
        example: "\"~/.config/corral/anthropic.key\"",
        resolved: true,
        project: false,
    },
    KeyDoc {
        key: "sandbox.api_upstream",
        about: "where the agent's API gateway sends requests with the real credential (default: the agent's API)",
        value: |p| Val::of(&p.api_upstream),
        example: "\"https://api.anthropic.com\"",
        resolved: true,
        project: false,
    },
    KeyDoc {
        key: "filesystem.read_only",
        about: "extra host paths visible read-only (`optional = true`: skipped when absent)",
        value: |p| Val::paths(&p.read_only),
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "filesystem.read_write",
        about: "host paths visible read-write, besides the workspace",
        value: |p| Val::paths(&p.read_write),
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "filesystem.deny",
        about: "globs in the workspace whose matches are masked (read as empty)",
        value: |p| Val::of(&p.deny),
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "filesystem.protect",
        about: "workspace paths kept read-only and uncreatable (trailing `/`: a directory)",
        value: |p| Val::of(&p.protect),
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "filesystem.expose_secrets",
        about: "built-in secret paths made visible anyway (reported loudly)",
        value: |p| Val::of(&p.expose_secrets),
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "network.mode",
        about: "\"none\": only the sandbox's own loopback; \"proxy\": egress only through corral's filtering proxy; \"host\": no isolation",
        value: |p| Val::of(&p.network_mode),
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "network.loopback",
        about: "\"open\": programs inside may connect to any port of the sandbox's own loopback (its own network namespace); \"ports\": only network.local_ports and corral's (Landlock)",
        value: |p| Val::of(&p.loopback),
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "network.local_ports",
        about: "with network.loopback = \"ports\": the loopback TCP ports programs inside may connect to (your dev server's)",
        value: |p| Val::of(&p.local_ports),
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "network.allow",
        about: "hosts the egress proxy may reach (`example.com`, `*.example.com`, `:port`)",
        value: |p| Val::of(&p.network_allow),
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "network.deny",
        about: "hosts the egress proxy may never reach (deny wins)",
        value: |p| Val::of(&p.network_deny),
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "network.allow_cidrs",
        about: "private, loopback, link-local, … ranges the proxy may dial anyway (`10.0.0.0/8`)",
        value: |p| Val::of(&p.network_allow_cidrs),
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "network.max_egress_mb",
        about: "most MiB the session may send out through the proxy",
        value: |p| Val::of(&p.max_egress_mb),
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "env.pass",
        about: "host variables passed in by name (globs allowed); everything else is left out",
        value: |p| Val::of(&p.env_pass),
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "env.set",
        about: "variables set inside, whatever the host has",
        // Values masked: env.set may hold what should not be printed.
        value: |p| {
            let masked: std::collections::BTreeMap<&String, String> = p
                .env_set
                .iter()
                .map(|(k, v)| (k, corral_core::envaudit::mask(v)))
                .collect();
            Val::of(&masked)
        },
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "env.path",
        about: "PATH inside, in order (`~` is the home directory)",
        value: |p| Val::of(&p.env_path),
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "env.files",
        about: "extra env files (`KEY=VALUE` lines), read after the global and project ones",
        value: |p| Val::of(&p.env_files),
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "env.allow_secrets",
        about: "variables let in even though their value looks like a secret",
        value: |p| Val::of(&p.env_allow_secrets),
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "limits.memory_mb",
        about: "memory in MiB, no swap (cgroup)",
        value: |p| Val::of(&p.memory_mb),
        example: "2048",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "limits.pids",
        about: "most processes inside (cgroup pids.max; RLIMIT_NPROC per user namespace)",
        value: |p| Val::of(&p.pids),
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "limits.cpus",
        about: "CPU rate in CPUs, e.g. 1.5 (cgroup cpu quota)",
        value: |p| Val::of(&p.cpus),
        example: "1.5",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "limits.cpu_seconds",
        about: "CPU time per process in seconds (RLIMIT_CPU)",
        value: |p| Val::of(&p.cpu_seconds),
        example: "3600",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "limits.wall_seconds",
        about: "wall-clock limit for the whole session, seconds",
        value: |p| Val::of(&p.wall_seconds),
        example: "1800",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "limits.tmp_mb",
        about: "size of the sandbox's /tmp and /dev/shm in MiB",
        value: |p| Val::of(&p.tmp_mb),
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "limits.file_mb",
        about: "largest single file in MiB (RLIMIT_FSIZE)",
        value: |p| Val::of(&p.file_mb),
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "limits.address_space_mb",
        about: "address space per process in MiB (RLIMIT_AS; opt-in: breaks JITs)",
        value: |p| Val::of(&p.address_space_mb),
        example: "8192",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "limits.open_files",
        about: "most open files per process (RLIMIT_NOFILE)",
        value: |p| Val::of(&p.open_files),
        example: "4096",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "limits.review_mb",
        about: "review mode: most MiB the session's changes may take (checked every 2 s; the session is stopped past it)",
        value: |p| Val::of(&p.review_mb),
        example: "2048",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "capabilities.allow_shell",
        about: "false: only the command itself and `exec` may be executed",
        value: |p| Val::of(&p.allow_shell),
        example: "",
        resolved: true,
        project: true,
    },
    KeyDoc {
        key: "capabilities.allow_sudo",
        about: "only false is accepted: nothing inside can turn the sandbox off",
        value: |_| Some(Val::Bool(false)),
        example: "",
        resolved: false,
        project: true,
    },
    KeyDoc {
        key: "capabilities.exec",
        about: "what may be executed when allow_shell = false, besides the command",
        value: |p| Val::of(&p.exec_allow),
        example: "",
        resolved: true,
        project: true,
    },
];

/// One line on each layer, for the `init` template.
fn layer_about(layer: Layer) -> &'static str {
    match layer {
        Layer::Userns => "user namespace: no host capabilities",
        Layer::Mountns => "mount namespace and new root: the filesystem view",
        Layer::Pidns => "PID namespace: host processes are invisible",
        Layer::Ipcns => "IPC namespace: System V IPC and message queues are private",
        Layer::Utsns => "UTS namespace: hostname `corral`",
        Layer::Cgroupns => "cgroup namespace: the cgroup tree is rooted at the sandbox",
        Layer::Netns => "network namespace: only `lo`",
        Layer::NoNewPrivs => "no_new_privs and cleared capability sets",
        Layer::Landlock => "Landlock filesystem, TCP and scope rules",
        Layer::Seccomp => "seccomp-bpf deny list",
        Layer::Rlimits => "rlimits (core dumps, processes, file size, open files, CPU time)",
        Layer::Cgroup => "a session cgroup: memory, pids and CPU limits (needs `sudo corral setup` once)",
    }
}

fn keys_of(section: &str) -> impl Iterator<Item = &'static KeyDoc> + '_ {
    KEYS.iter()
        .filter(move |k| k.key.split_once('.').is_some_and(|(s, _)| s == section))
}

// ---------------------------------------------------------------------------------------------
// show

/// Shown as the origin of a value no layer sets.
const FALLBACK: &str = "not set by any layer: corral's fallback";

/// The resolved profile as `key = value   # from origin` lines, sections in schema order.
fn show_text(p: &Profile, layers: &[String]) -> String {
    let mut out = format!("# profile {}: {}\n", p.name, layers.join(" < "));
    let mut line = |key: &str, value: Option<Val>| {
        let value = value.map_or_else(|| "<unset>".to_string(), |v| v.toml());
        let from = p
            .origins
            .get(key)
            .map_or_else(|| FALLBACK.to_string(), |o| format!("from {o}"));
        let _ = writeln!(out, "{key} = {value}   # {from}");
    };
    for section in SECTIONS {
        if section == "layers" {
            for (layer, level) in &p.layers {
                line(&format!("layers.{layer}"), Val::of(level));
            }
        }
        for k in keys_of(section).filter(|k| k.resolved) {
            line(k.key, (k.value)(p));
        }
    }
    out
}

/// The layers `corral run` would use here: [`context::base_layers`], then the project file in
/// the workspace `corral run` would choose, if it exists (labelled `<path> (project)`, as `corral
/// run` does). Returns the profile's name, the layers and the project file's path when present.
fn show_layers(
    choice: Option<&str>,
    inv: &Invocation,
) -> anyhow::Result<(String, Vec<ProfileLayer>, Option<PathBuf>)> {
    let (name, mut layers) = context::base_layers(choice, &inv.home)?;
    let base = profile::resolve(&name, &layers)?;
    let path = workspace_file(&base, inv)?;
    if !path.exists() {
        return Ok((name, layers, None));
    }
    let origin = format!("{} (project)", path.display());
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    layers.push(ProfileLayer::parse(&origin, &text)?);
    Ok((name, layers, Some(path)))
}

fn show(name: Option<&str>, json: bool) -> anyhow::Result<i32> {
    let (name, layers, project) = show_layers(name, &here()?)?;
    let p = profile::resolve(&name, &layers)?;
    let origins: Vec<String> = layers.iter().map(|l| l.origin.clone()).collect();
    if json {
        let v = serde_json::json!({ "profile": p, "layers": origins });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", show_text(&p, &origins));
    }
    if let Some(project) = project {
        eprintln!(
            "corral: note: {} is layered in; whether it may widen the policy beyond the built-in \
             one depends on `corral trust`",
            project.display()
        );
    }
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// list

fn list_text(home: &Path) -> String {
    let width = profile::BUILTIN.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (name, text) in profile::BUILTIN {
        let about = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with('#'))
            .map(|l| l.trim_start_matches('#').trim())
            .unwrap_or("");
        let _ = writeln!(out, "{name:width$}  {about}");
    }
    let user = user_config(home);
    let state = if user.exists() { "present" } else { "absent" };
    let _ = writeln!(out, "user config: {} ({state})", user.display());
    out
}

// ---------------------------------------------------------------------------------------------
// validate

/// Every problem with a profile file's text; empty when it is valid.
fn validate_text(origin: &str, text: &str) -> Vec<String> {
    let layer = match ProfileLayer::parse(origin, text) {
        Ok(l) => l,
        Err(e) => return vec![e.to_string()],
    };
    let mut layers = match profile::extends_chain(origin, &layer.cfg) {
        Ok(chain) => chain,
        Err(e) => return vec![e.to_string()],
    };
    let cfg = layer.cfg.clone();
    layers.push(layer);
    if let Err(e) = profile::resolve(origin, &layers) {
        return vec![e.to_string()];
    }
    lint(origin, text, &cfg)
}

/// Values that parse but are wrong in meaning, as `origin:line:col: key: problem`.
fn lint(origin: &str, text: &str, cfg: &ProfileCfg) -> Vec<String> {
    let mut out = Vec::new();
    let Some(fs) = &cfg.filesystem else {
        return out;
    };
    let mut flag = |field: &str, value: &str, problem: &str| {
        let (line, col) = locate(text, "filesystem", field, value);
        out.push(format!(
            "{origin}:{line}:{col}: filesystem.{field}: {value:?} {problem}"
        ));
    };
    let entries = |v: &Option<Vec<profile::PathEntryCfg>>| -> Vec<String> {
        v.iter()
            .flatten()
            .map(|e| match e {
                profile::PathEntryCfg::Plain(p) => p.clone(),
                profile::PathEntryCfg::Table(t) => t.path.clone(),
            })
            .collect()
    };
    let host_paths = [
        ("read_only", entries(&fs.read_only)),
        ("read_write", entries(&fs.read_write)),
        ("expose_secrets", fs.expose_secrets.clone().unwrap_or_default()),
    ];
    for (field, paths) in &host_paths {
        for p in paths {
            // The forms plan::expand accepts: absolute, `~`, `~/…`, `{workspace}…`.
            if p.starts_with('~') && p != "~" && !p.starts_with("~/") {
                flag(
                    field,
                    p,
                    "uses `~user`, which does not expand: write `~/…` or an absolute path",
                );
            } else if !(p.starts_with('/') || p.starts_with('~') || p.starts_with("{workspace}")) {
                flag(field, p, "is relative: start it with `/`, `~/` or `{workspace}/`");
            }
            if has_parent(p) {
                flag(field, p, "has a `..` component: write the path without it");
            }
        }
    }
    for p in fs.protect.iter().flatten() {
        if p.starts_with('/') {
            flag(
                "protect",
                p,
                "is absolute: protect entries are relative to the workspace",
            );
        }
        if has_parent(p) {
            flag(
                "protect",
                p,
                "has a `..` component: protect entries must stay inside the workspace",
            );
        }
    }
    for g in fs.deny.iter().flatten() {
        if let Err(e) = plan::deny_globset(std::slice::from_ref(g)) {
            let why = if let PlanError::BadGlob { reason, .. } = &e {
                reason.clone()
            } else {
                e.to_string()
            };
            flag("deny", g, &format!("is not a valid glob: {why}"));
        }
    }
    out
}

fn has_parent(p: &str) -> bool {
    p.split('/').any(|c| c == "..")
}

/// Where `value` is written as a quoted string under `field` of `[section]`: the first quoted
/// occurrence after the key, else anywhere, else the key itself, else 1:1.
fn locate(text: &str, section: &str, field: &str, value: &str) -> (usize, usize) {
    let sec = text.find(&format!("[{section}]")).unwrap_or(0);
    let key = find_key(text, sec, field).unwrap_or(sec);
    let quoted = [format!("\"{value}\""), format!("'{value}'")];
    let at = quoted
        .iter()
        .find_map(|q| text[key..].find(q.as_str()).map(|i| key + i))
        .or_else(|| quoted.iter().find_map(|q| text.find(q.as_str())))
        .unwrap_or(key);
    line_col(text, at)
}

/// The byte offset of `field` written as a key (`field =`) at or after `from`.
fn find_key(text: &str, from: usize, field: &str) -> Option<usize> {
    text[from..]
        .match_indices(field)
        .map(|(i, _)| from + i)
        .find(|&i| {
            let before = text[..i].chars().next_back();
            let after = text[i + field.len()..].trim_start_matches([' ', '\t']);
            before.is_none_or(|c| c.is_whitespace() || c == '.') && after.starts_with('=')
        })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

// ---------------------------------------------------------------------------------------------
// init

/// Beyond this many characters a list is written one item per line.
const INLINE_MAX: usize = 60;

/// The commented `.corral.toml`: every section, every key commented out with its value in
/// `default` (the resolved built-in profile) and a line on what it does.
fn init_template(default: &Profile) -> String {
    let mut out = String::from(
        "# corral project profile: layered over the built-in profile and ~/.config/corral/config.toml\n\
         # whenever `corral run` starts in this project.\n\
         #\n\
         # A project file may only TIGHTEN the built-in policy (fewer paths, ports and hosts, more\n\
         # protected paths) unless you run `corral trust` in this project: otherwise an agent could\n\
         # widen its own sandbox by editing this file. Inside the sandbox this file is protected\n\
         # read-only (it is in filesystem.protect).\n\
         #\n\
         # Every key below is commented out and shows its value in the built-in `default` profile.\n\
         # A list you set replaces the inherited list as a whole: keep the entries you still want.\n\
         # Check your edits with `corral profile validate .corral.toml`, and see the result with\n\
         # `corral profile show`.\n",
    );
    for section in SECTIONS {
        let _ = write!(out, "\n[{section}]\n");
        if section == "layers" {
            out.push_str(
                "# `required`: refuse to launch without it. `best_effort`: launch, and report it.\n",
            );
            for layer in Layer::ALL {
                let level = default.layers.get(&layer).and_then(Val::of);
                let value = level.map_or_else(|| "\"required\"".to_string(), |v| v.toml());
                let _ = writeln!(out, "# {layer} = {value}   # {}", layer_about(layer));
            }
        }
        for k in keys_of(section) {
            let field = k.key.split_once('.').map_or(k.key, |(_, f)| f);
            if !k.project {
                let _ = writeln!(
                    out,
                    "# {field}: not settable by a project file (use the user config or --profile)"
                );
                continue;
            }
            match (k.value)(default) {
                Some(Val::List(items)) if Val::List(items.clone()).toml().len() > INLINE_MAX => {
                    let _ = writeln!(out, "# {field} = [   # {}", k.about);
                    for item in &items {
                        let _ = writeln!(out, "#   {},", item.toml());
                    }
                    out.push_str("# ]\n");
                }
                Some(v) => {
                    let _ = writeln!(out, "# {field} = {}   # {}", v.toml(), k.about);
                }
                None => {
                    let _ = writeln!(out, "# {field} = {}   # {}", k.example, k.about);
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The process's inputs.

/// Who runs corral, and where: read as `corral run` reads it.
fn here() -> anyhow::Result<Invocation> {
    context::invocation(Vec::new(), false, Vec::new())
}

/// The user config file `corral run` reads.
fn user_config(home: &Path) -> PathBuf {
    context::config_dir(home).join("config.toml")
}

/// `.corral.toml` in the workspace `corral run` would choose with the built-in and user layers.
fn project_file(inv: &Invocation) -> anyhow::Result<PathBuf> {
    let (name, layers) = context::base_layers(None, &inv.home)?;
    workspace_file(&profile::resolve(&name, &layers)?, inv)
}

/// `.corral.toml` in the workspace `base` chooses (as `corral run` chooses it: git root, else cwd).
fn workspace_file(base: &Profile, inv: &Invocation) -> anyhow::Result<PathBuf> {
    let git_root = corral_sys::facts::git_root(&inv.cwd);
    let workspace = plan::choose_workspace(base, inv, git_root.as_deref())?;
    let workspace = std::fs::canonicalize(&workspace)
        .with_context(|| format!("sandbox.workspace {}: cannot resolve it", workspace.display()))?;
    Ok(workspace.join(PROJECT_PROFILE))
}

fn default_profile() -> anyhow::Result<Profile> {
    let base = ProfileLayer::parse("builtin:default", profile::builtin("default")?)?;
    Ok(profile::resolve("default", &[base])?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use corral_core::profile::{CapabilitiesCfg, EnvCfg, FilesystemCfg, LimitsCfg, NetworkCfg, SandboxCfg};
    use pretty_assertions::assert_eq;
    use std::collections::BTreeSet;

    fn fields<T: Serialize + Default>() -> Vec<String> {
        match serde_json::to_value(T::default()).unwrap() {
            serde_json::Value::Object(o) => o.keys().cloned().collect(),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn every_schema_key_has_a_row() {
        let top: BTreeSet<String> = fields::<ProfileCfg>().into_iter().collect();
        let mut expect_top: BTreeSet<String> = SECTIONS.iter().map(|s| s.to_string()).collect();
        expect_top.insert("extends".into());
        assert_eq!(
            top, expect_top,
            "a new section needs rows in KEYS and a place in SECTIONS"
        );
        let mut schema = BTreeSet::new();
        for (section, names) in [
            ("sandbox", fields::<SandboxCfg>()),
            ("filesystem", fields::<FilesystemCfg>()),
            ("network", fields::<NetworkCfg>()),
            ("env", fields::<EnvCfg>()),
            ("limits", fields::<LimitsCfg>()),
            ("capabilities", fields::<CapabilitiesCfg>()),
        ] {
            schema.extend(names.into_iter().map(|n| format!("{section}.{n}")));
        }
        let rows: BTreeSet<String> = KEYS.iter().map(|k| k.key.to_string()).collect();
        assert_eq!(rows, schema);
    }

    #[test]
    fn validate_flags_values_wrong_in_meaning() {
        let text = r#"[filesystem]
read_only = ["/opt/tools", "relative/dir", { path = "~bob/x", optional = true }]
read_write = ["~/a/../b"]
deny = ["**/*.pem", "**/[ab"]
protect = ["/etc/passwd", "../outside", "ok/file"]
expose_secrets = ["~/.ssh"]
"#;
        assert_eq!(
            validate_text("p.toml", text),
            vec![
                "p.toml:2:28: filesystem.read_only: \"relative/dir\" is relative: start it with `/`, `~/` or `{workspace}/`",
                "p.toml:2:53: filesystem.read_only: \"~bob/x\" uses `~user`, which does not expand: write `~/…` or an absolute path",
                "p.toml:3:15: filesystem.read_write: \"~/a/../b\" has a `..` component: write the path without it",
                "p.toml:5:12: filesystem.protect: \"/etc/passwd\" is absolute: protect entries are relative to the workspace",
                "p.toml:5:27: filesystem.protect: \"../outside\" has a `..` component: protect entries must stay inside the workspace",
                "p.toml:4:21: filesystem.deny: \"**/[ab\" is not a valid glob: unclosed character class; missing ']'",
            ]
        );
    }

    #[test]
    fn validate_reports_parse_errors_and_passes_good_files() {
        assert_eq!(
            validate_text("p.toml", "[filesystem]\nread_onyl = []\n"),
            vec![
                "p.toml:2:1: unknown field `read_onyl`, expected one of `read_only`, `read_write`, \
                 `deny`, `protect`, `expose_secrets` (did you mean `read_only`?)"
            ]
        );
        let good = "[filesystem]\nread_only = [\"~/x\", \"{workspace}/../y\"]\n";
        assert_eq!(
            validate_text("p.toml", good),
            vec!["p.toml:2:21: filesystem.read_only: \"{workspace}/../y\" has a `..` component: write the path without it"]
        );
        assert_eq!(
            validate_text("p.toml", "[limits]\npids = 64\n"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn init_template_parses_and_changes_nothing() {
        let default = default_profile().unwrap();
        let text = init_template(&default);
        profile::parse(PROJECT_PROFILE, &text).unwrap();
        let base = ProfileLayer::parse("builtin:default", profile::builtin("default").unwrap()).unwrap();
        let project = ProfileLayer::parse(PROJECT_PROFILE, &text).unwrap();
        let with = profile::resolve("default", &[base, project]).unwrap();
        assert_eq!(with, default);
        assert_eq!(validate_text(PROJECT_PROFILE, &text), Vec::<String>::new());
    }

    /// Uncommented, every key of the template parses as written and still gives `default`.
    #[test]
    fn init_template_uncommented_is_the_default_profile() {
        let default = default_profile().unwrap();
        let text: String = init_template(&default)
            .lines()
            // Keys the default leaves unset are written with an example value.
            .filter(|l| {
                ![
                    "# agent =",
                    "# cpus =",
                    "# cpu_seconds =",
                    "# wall_seconds =",
                    "# open_files =",
                    "# review_mb =",
                    "# address_space_mb =",
                    "# max_egress_mb =",
                ]
                .iter()
                .any(|k| l.starts_with(k))
            })
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.contains(" = ") || rest.starts_with(' ') || rest.starts_with(']') => rest,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let project = ProfileLayer::parse(PROJECT_PROFILE, &text).unwrap();
        let mut got = profile::resolve("default", &[project]).unwrap();
        got.origins = default.origins.clone();
        assert_eq!(got, default);
    }

    #[test]
    fn init_template_lines() {
        let text = init_template(&default_profile().unwrap());
        for line in [
            "# read_write = []   # host paths visible read-write, besides the workspace",
            "# pids = 1024   # most processes inside (cgroup pids.max; RLIMIT_NPROC per user namespace)",
            "# cgroupns = \"best_effort\"   # cgroup namespace: the cgroup tree is rooted at the sandbox",
            "#   { path = \"~/.cargo\", optional = true },",
            "# agent = \"claude\"   # the agent this profile is for: its per-project state, read-only policy files, API gateway",
            "# api_key_file: not settable by a project file (use the user config or --profile)",
            "# api_upstream: not settable by a project file (use the user config or --profile)",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn show_formats_each_key_with_its_origin() {
        let base = ProfileLayer::parse(
            "builtin:x",
            "[sandbox]\ncommand = [\"bash\"]\n[env]\npath = [\"/bin\"]\nset = { A = \"1\", \"B C\" = \"x\\\"y\" }\n\
             [limits]\npids = 8\n[layers]\nuserns = \"required\"\n",
        )
        .unwrap();
        let over = ProfileLayer::parse(
            "p.toml (project)",
            "[filesystem]\nread_only = [\"/opt\", { path = \"~/.x\", optional = true }]\n[layers]\nlandlock = \"best_effort\"\n",
        )
        .unwrap();
        let layers = [base, over];
        let p = profile::resolve("x", &layers).unwrap();
        let origins: Vec<String> = layers.iter().map(|l| l.origin.clone()).collect();
        assert_eq!(
            show_text(&p, &origins),
            r#"# profile x: builtin:x < p.toml (project)
sandbox.command = ["bash"]   # from builtin:x
sandbox.workspace = "git-root"   # not set by any layer: corral's fallback
sandbox.allow_home_workspace = false   # not set by any layer: corral's fallback
sandbox.audit_exec = true   # not set by any layer: corral's fallback
sandbox.agent = <unset>   # not set by any layer: corral's fallback
sandbox.review = false   # not set by any layer: corral's fallback
sandbox.api_key_file = <unset>   # not set by any layer: corral's fallback
sandbox.api_upstream = <unset>   # not set by any layer: corral's fallback
filesystem.read_only = ["/opt", { path = "~/.x", optional = true }]   # from p.toml (project)
filesystem.read_write = []   # not set by any layer: corral's fallback
filesystem.deny = []   # not set by any layer: corral's fallback
filesystem.protect = []   # not set by any layer: corral's fallback
filesystem.expose_secrets = []   # not set by any layer: corral's fallback
network.mode = "none"   # not set by any layer: corral's fallback
network.loopback = "open"   # not set by any layer: corral's fallback
network.local_ports = []   # not set by any layer: corral's fallback
network.allow = []   # not set by any layer: corral's fallback
network.deny = []   # not set by any layer: corral's fallback
network.allow_cidrs = []   # not set by any layer: corral's fallback
network.max_egress_mb = <unset>   # not set by any layer: corral's fallback
env.pass = []   # not set by any layer: corral's fallback
env.set = { A = "…(1)", "B C" = "…(3)" }   # from builtin:x
env.path = ["/bin"]   # from builtin:x
env.files = []   # not set by any layer: corral's fallback
env.allow_secrets = []   # not set by any layer: corral's fallback
limits.memory_mb = <unset>   # not set by any layer: corral's fallback
limits.pids = 8   # from builtin:x
limits.cpus = <unset>   # not set by any layer: corral's fallback
limits.cpu_seconds = <unset>   # not set by any layer: corral's fallback
limits.wall_seconds = <unset>   # not set by any layer: corral's fallback
limits.tmp_mb = 2048   # not set by any layer: corral's fallback
limits.file_mb = <unset>   # not set by any layer: corral's fallback
limits.address_space_mb = <unset>   # not set by any layer: corral's fallback
limits.open_files = <unset>   # not set by any layer: corral's fallback
limits.review_mb = <unset>   # not set by any layer: corral's fallback
layers.userns = "required"   # from builtin:x
layers.landlock = "best_effort"   # from p.toml (project)
capabilities.allow_shell = true   # not set by any layer: corral's fallback
capabilities.exec = []   # not set by any layer: corral's fallback
"#
        );
    }

    #[test]
    fn show_layers_what_run_would_use() {
        let tmp = tempfile::tempdir().unwrap();
        let tmp = std::fs::canonicalize(tmp.path()).unwrap();
        let home = tmp.join("home");
        let proj = tmp.join("proj");
        let user = user_config(&home);
        std::fs::create_dir_all(user.parent().unwrap()).unwrap();
        std::fs::create_dir_all(proj.join(".git")).unwrap();
        std::fs::create_dir_all(proj.join("sub")).unwrap();
        std::fs::write(&user, "[limits]\npids = 64\n").unwrap();
        std::fs::write(proj.join(PROJECT_PROFILE), "[network]\nlocal_ports = [3000]\n").unwrap();
        let mut inv = here().unwrap();
        inv.home = home.clone();
        inv.cwd = proj.join("sub");
        let (name, layers, project) = show_layers(None, &inv).unwrap();
        let pfile = format!("{} (project)", proj.join(PROJECT_PROFILE).display());
        assert_eq!(
            layers.iter().map(|l| l.origin.clone()).collect::<Vec<_>>(),
            vec![
                "builtin:default".to_string(),
                user.display().to_string(),
                pfile.clone()
            ]
        );
        assert_eq!(project, Some(proj.join(PROJECT_PROFILE)));
        let p = profile::resolve(&name, &layers).unwrap();
        assert_eq!((p.pids, p.local_ports.clone()), (64, vec![3000]));
        assert_eq!(p.origins.get("network.local_ports"), Some(&pfile));

        let file = tmp.join("mine.toml");
        std::fs::write(&file, "[limits]\npids = 7\n").unwrap();
        inv.cwd = tmp.clone();
        let (name, layers, project) = show_layers(Some(file.to_str().unwrap()), &inv).unwrap();
        assert_eq!(
            (
                name,
                layers.iter().map(|l| l.origin.clone()).collect::<Vec<_>>(),
                project
            ),
            (
                file.display().to_string(),
                vec![
                    "builtin:default".to_string(),
                    file.display().to_string(),
                    user.display().to_string()
                ],
                None
            )
        );
    }

    #[test]
    fn list_names_builtins_and_the_user_config() {
        let home = Path::new("/nonexistent-home");
        assert_eq!(
            list_text(home),
            format!(
                "default   corral's built-in `default` profile: any command, no network, only the project writable.\n\
                 claude    corral's built-in `claude` profile: Claude Code with full autonomy inside the sandbox.\n\
                 codex     corral's built-in `codex` profile: OpenAI Codex CLI with full autonomy inside the sandbox.\n\
                 gemini    corral's built-in `gemini` profile: Gemini CLI with full autonomy inside the sandbox.\n\
                 aider     corral's built-in `aider` profile: aider with full autonomy inside the sandbox.\n\
                 opencode  corral's built-in `opencode` profile: opencode with full autonomy inside the sandbox.\n\
                 user config: {} (absent)\n",
                user_config(home).display()
            )
        );
    }
}
