//! What a project file (`.corral.toml`) gives the sandbox beyond what the user's own layers give it.
//!
//! A project file sits in the repository, so an attacker may have written it. Unless the user
//! trusted that exact file (by hash), it may only *tighten* the policy. [`widenings`] compares the
//! profile resolved without the file (`before`) with the one resolved with it (`after`) and lists,
//! as data, every way `after` is wider. An empty list means the file only tightens (or changes
//! nothing that matters).
//!
//! What counts as wider, per key: `sandbox.command` / `sandbox.workspace` / `env.path` changed at
//! all (the user would run something else, somewhere else); `allow_home_workspace` and
//! `capabilities.allow_shell` false → true; `sandbox.audit_exec` true → false (less is seen);
//! `sandbox.agent` or `sandbox.api_upstream` changed at all (the API credential would go elsewhere); entries added to an allowlist (`filesystem.read_only`,
//! `filesystem.read_write`, `filesystem.expose_secrets`, `network.local_ports`, `network.allow`,
//! `network.allow_cidrs`, `env.pass`, `env.files`, `env.allow_secrets`, `capabilities.exec`); entries removed from a
//! denylist (`filesystem.deny`, `filesystem.protect`, `network.deny`); `env.set` names added or
//! given another value; `network.mode` moved up `none < proxy < host`; `limits.pids` raised;
//! `network.max_egress_mb` raised or removed; a layer lowered from `required` (to `best_effort`, or unset).
//!
//! Limits: entries compare as written, not by meaning. A deny glob replaced by a broader one
//! (`**/.env` → `**/.env*`) is reported as removed, and `~/x` → `/home/u/x` as added: the report
//! errs towards widening, never towards silence. A path that moves from `read_write` to
//! `read_only` is a tightening and is not reported; one that moves the other way is. Removing an
//! `env.set` entry is not reported.
//!
//! Order: by key, then by entry (paths and names as strings, ports as numbers), so the output is
//! stable for snapshot tests and for the `corral trust` prompt. Pure: no I/O.

use crate::layer::Level;
use crate::profile::{NetworkMode, Profile};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;

/// One way a project file widens the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Widening {
    /// The profile key, as written in TOML (`filesystem.read_write`, `layers.landlock`, …).
    pub key: String,
    /// What changed, naming the exact entry (`adds "~/.ssh-backup"`). Never holds an `env.set`
    /// value: those may be secrets.
    pub detail: String,
}

impl fmt::Display for Widening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.detail)
    }
}

/// Every way `after` (resolved with the project file) gives the sandbox more than `before`
/// (resolved without it), sorted by key then entry. Empty when the file only tightens.
pub fn widenings(before: &Profile, after: &Profile) -> Vec<Widening> {
    let mut out = Vec::new();
    let mut push = |key: &str, detail: String| {
        out.push(Widening {
            key: key.to_string(),
            detail,
        })
    };

    // [sandbox]
    if before.command != after.command {
        push(
            "sandbox.command",
            format!("changes {:?} to {:?}", before.command, after.command),
        );
    }
    if before.workspace != after.workspace {
        push(
            "sandbox.workspace",
            format!("changes {:?} to {:?}", before.workspace, after.workspace),
        );
    }
    if !before.allow_home_workspace && after.allow_home_workspace {
        push("sandbox.allow_home_workspace", "changes false to true".into());
    }
    if before.audit_exec && !after.audit_exec {
        push("sandbox.audit_exec", "turns the exec audit off".into());
    }
    if before.agent != after.agent {
        push(
            "sandbox.agent",
            format!("changes {:?} to {:?}", before.agent, after.agent),
        );
    }
    if before.review && !after.review {
        push(
            "sandbox.review",
            "turns review mode off (changes would land directly)".into(),
        );
    }
    if before.api_key_file != after.api_key_file {
        push(
            "sandbox.api_key_file",
            format!("changes {:?} to {:?}", before.api_key_file, after.api_key_file),
        );
    }
    if before.api_upstream != after.api_upstream {
        // The real API credential goes wherever this points.
        push(
            "sandbox.api_upstream",
            format!("changes {:?} to {:?}", before.api_upstream, after.api_upstream),
        );
    }

    // [filesystem]: a path is visible if it is bound either way; writable only via read_write.
    let ro_before = paths(&before.read_only);
    let rw_before = paths(&before.read_write);
    for p in added(&ro_before, &paths(&after.read_only)) {
        if !rw_before.contains(p) {
            push("filesystem.read_only", format!("adds {p:?}"));
        }
    }
    for p in added(&rw_before, &paths(&after.read_write)) {
        let detail = if ro_before.contains(p) {
            format!("moves {p:?} from read_only to read_write")
        } else {
            format!("adds {p:?}")
        };
        push("filesystem.read_write", detail);
    }
    for d in removed(&before.deny, &after.deny) {
        push("filesystem.deny", format!("removes {d:?}"));
    }
    for p in removed(&before.protect, &after.protect) {
        push("filesystem.protect", format!("removes {p:?}"));
    }
    for s in added(&before.expose_secrets, &after.expose_secrets) {
        push("filesystem.expose_secrets", format!("adds {s:?}"));
    }

    // [network]
    if network_rank(after.network_mode) > network_rank(before.network_mode) {
        push(
            "network.mode",
            format!(
                "widens {} to {}",
                network_name(before.network_mode),
                network_name(after.network_mode)
            ),
        );
    }
    if before.loopback == crate::profile::Loopback::Ports && after.loopback == crate::profile::Loopback::Open
    {
        push("network.loopback", "widens \"ports\" to \"open\"".to_string());
    }
    for port in added(&before.local_ports, &after.local_ports) {
        push("network.local_ports", format!("adds {port}"));
    }
    for h in added(&before.network_allow, &after.network_allow) {
        push("network.allow", format!("adds {h:?}"));
    }
    for h in removed(&before.network_deny, &after.network_deny) {
        push("network.deny", format!("removes {h:?}"));
    }
    for c in added(&before.network_allow_cidrs, &after.network_allow_cidrs) {
        push("network.allow_cidrs", format!("adds {c:?}"));
    }
    match (before.max_egress_mb, after.max_egress_mb) {
        (Some(b), None) => push("network.max_egress_mb", format!("removes the cap of {b} MiB")),
        (Some(b), Some(a)) if a > b => push("network.max_egress_mb", format!("raises {b} to {a} MiB")),
        _ => {}
    }

    // [env]
    for v in added(&before.env_pass, &after.env_pass) {
        push("env.pass", format!("adds {v:?}"));
    }
    for (name, value) in &after.env_set {
        // Names only: a value may be a secret (and the key, from an attacker's file, may hold
        // control characters, hence `env_name`).
        match before.env_set.get(name) {
            None => push("env.set", format!("sets {}", env_name(name))),
            Some(old) if old != value => push("env.set", format!("changes {}", env_name(name))),
            Some(_) => {}
        }
    }
    if before.env_path != after.env_path {
        push(
            "env.path",
            format!("changes {:?} to {:?}", before.env_path, after.env_path),
        );
    }
    for f in added(&before.env_files, &after.env_files) {
        push("env.files", format!("adds {f:?}"));
    }
    for v in added(&before.env_allow_secrets, &after.env_allow_secrets) {
        push("env.allow_secrets", format!("adds {v:?}"));
    }

    // [limits]: a higher limit, or none where there was one, gives more.
    if after.pids > before.pids {
        push("limits.pids", format!("raises {} to {}", before.pids, after.pids));
    }
    if after.tmp_mb > before.tmp_mb {
        push(
            "limits.tmp_mb",
            format!("raises {} to {}", before.tmp_mb, after.tmp_mb),
        );
    }
    for (key, b, a) in [
        ("limits.memory_mb", before.memory_mb, after.memory_mb),
        ("limits.cpu_seconds", before.cpu_seconds, after.cpu_seconds),
        ("limits.wall_seconds", before.wall_seconds, after.wall_seconds),
        ("limits.file_mb", before.file_mb, after.file_mb),
        ("limits.open_files", before.open_files, after.open_files),
        ("limits.review_mb", before.review_mb, after.review_mb),
        (
            "limits.address_space_mb",
            before.address_space_mb,
            after.address_space_mb,
        ),
    ] {
        match (b, a) {
            (Some(b), Some(a)) if a > b => push(key, format!("raises {b} to {a}")),
            (Some(b), None) => push(key, format!("removes the limit of {b}")),
            _ => {}
        }
    }
    match (before.cpus, after.cpus) {
        (Some(b), Some(a)) if a > b => push("limits.cpus", format!("raises {b} to {a}")),
        (Some(b), None) => push("limits.cpus", format!("removes the limit of {b}")),
        _ => {}
    }

    // [layers]
    for (layer, level) in &before.layers {
        let key = format!("layers.{layer}");
        match (level, after.layers.get(layer)) {
            (Level::Required, Some(Level::BestEffort)) => push(&key, "lowers required to best_effort".into()),
            (Level::Required, None) => push(&key, "lowers required to unset".into()),
            (Level::Required, Some(Level::Required)) | (Level::BestEffort, _) => {}
        }
    }

    // [capabilities]
    if !before.allow_shell && after.allow_shell {
        push("capabilities.allow_shell", "changes false to true".into());
    }
    for e in added(&before.exec_allow, &after.exec_allow) {
        push("capabilities.exec", format!("adds {e:?}"));
    }

    // Each key's entries were pushed in entry order; a stable sort by key keeps that.
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// The paths of `read_only` / `read_write` entries (the `optional` flag does not matter: an
/// optional bind is still a bind when the path exists).
fn paths(entries: &[crate::profile::PathTableCfg]) -> Vec<String> {
    entries.iter().map(|e| e.path.clone()).collect()
}

/// The entries of `after` that `before` lacks, sorted and deduplicated.
fn added<'a, T: Ord>(before: &[T], after: &'a [T]) -> BTreeSet<&'a T> {
    after.iter().filter(|x| !before.contains(x)).collect()
}

/// The entries of `before` that `after` lacks, sorted and deduplicated.
fn removed<'a, T: Ord>(before: &'a [T], after: &[T]) -> BTreeSet<&'a T> {
    added(after, before)
}

/// Position of a network mode in `none < proxy < host`: higher reaches more.
fn network_rank(mode: NetworkMode) -> u8 {
    match mode {
        NetworkMode::None => 0,
        NetworkMode::Proxy => 1,
        NetworkMode::Host => 2,
    }
}

/// A network mode as written in TOML.
fn network_name(mode: NetworkMode) -> &'static str {
    match mode {
        NetworkMode::None => "none",
        NetworkMode::Proxy => "proxy",
        NetworkMode::Host => "host",
    }
}

/// An env name as shown: bare when it is a plain identifier, else quoted and escaped (an
/// attacker's TOML key may hold terminal control sequences).
fn env_name(name: &str) -> String {
    let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("{name:?}")
    }
}
