//! How the selftest's sandboxes are launched: the `corral run` flags of each set (the user's
//! profile; for the TLS and resource sets a profile file derived from it), the plan a launch
//! would use (its `--dry-run --json`), the launcher's environment (the fake home, the user's own
//! corral config), and what the attacks need from that plan (protected paths, limits).

use super::bait::{Scratch, Tree};
use super::brief::{Limits, Set};
use super::SelftestArgs;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The limits of the resource run: small, so exhausting them is cheap and harmless.
pub(super) const RES_MEMORY: &str = "256M";
pub(super) const RES_PIDS: &str = "128";
pub(super) const RES_TOML: &str = "[limits]\nfile_mb = 32\ntmp_mb = 64\ncpu_seconds = 2\n";
/// The TLS run's addition: the proxy may dial the bait on the host's loopback.
pub(super) const TLS_TOML: &str = "[network]\nallow_cidrs = [\"127.0.0.1/32\"]\n";
/// `corral run` flags for a set.
pub(super) fn run_flags(
    set: Set,
    args: &SelftestArgs,
    scratch: &Scratch,
    proxy_mode: bool,
    tcp_port: u16,
) -> anyhow::Result<Vec<String>> {
    let mut f = Vec::new();
    match set {
        Set::Main => {
            if let Some(p) = &args.profile {
                f.extend(["--profile".to_string(), p.clone()]);
            }
            if proxy_mode {
                // An allowed name that resolves to loopback: the proxy must still refuse it.
                f.extend(["--allow-host".to_string(), format!("localhost:{tcp_port}")]);
            }
        }
        Set::Tls => {
            let file = scratch.root.join("tls.toml");
            std::fs::write(&file, derived_profile(args.profile.as_deref(), TLS_TOML)?)
                .with_context(|| format!("writing {}", file.display()))?;
            f.extend(["--profile".to_string(), file.display().to_string()]);
            if proxy_mode {
                f.extend(["--allow-host".to_string(), format!("localhost:{tcp_port}")]);
            }
        }
        Set::Resources => {
            let file = scratch.root.join("resources.toml");
            std::fs::write(&file, derived_profile(args.profile.as_deref(), RES_TOML)?)
                .with_context(|| format!("writing {}", file.display()))?;
            f.extend(["--profile".to_string(), file.display().to_string()]);
            f.extend([
                "--memory".to_string(),
                RES_MEMORY.into(),
                "--pids".into(),
                RES_PIDS.into(),
            ]);
        }
    }
    Ok(f)
}

/// The user's profile (a built-in name or a file) with `extra` (TOML tables) set over it.
pub(super) fn derived_profile(choice: Option<&str>, extra: &str) -> anyhow::Result<String> {
    let is_file = choice.is_some_and(|c| c.contains('/') || c.ends_with(".toml"));
    if !is_file {
        return Ok(format!("extends = {:?}\n{extra}", choice.unwrap_or("default")));
    }
    let path = choice.unwrap_or_default();
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the profile {path}"))?;
    let mut table: toml::Table = text
        .parse()
        .with_context(|| format!("the profile {path} does not parse"))?;
    let ours: toml::Table = extra.parse().context("selftest's profile additions")?;
    for (section, values) in ours {
        let into = table
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let (Some(into), toml::Value::Table(values)) = (into.as_table_mut(), values) {
            into.extend(values);
        }
    }
    Ok(toml::to_string(&table)?)
}

/// The plan `corral run` would use for `tree` (its --dry-run --json).
pub(super) fn dry_run(exe: &Path, tree: &Tree, flags: &[String]) -> anyhow::Result<serde_json::Value> {
    let mut cmd = Command::new(exe);
    cmd.args(["run", "--with-corral", "--dry-run", "--json"])
        .args(flags)
        .args(["--", "true"]);
    sandbox_env(&mut cmd, tree);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .context("running corral run --dry-run")?;
    if !out.status.success() {
        anyhow::bail!(
            "corral selftest: the profile does not make a plan: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("reading corral run --dry-run --json")
}

/// The sandbox launcher's environment: the fake home, the user's own corral config.
pub(super) fn sandbox_env(cmd: &mut Command, tree: &Tree) {
    let real_home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let config = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        _ => real_home.join(".config"),
    };
    cmd.env("HOME", &tree.home)
        .env("XDG_CONFIG_HOME", config)
        .current_dir(&tree.workspace);
}

/// Protected paths of the project (relative; directories end with `/`), from the plan.
pub(super) fn protected(plan: &serde_json::Value, ws: &Path) -> Vec<String> {
    let dirs: Vec<PathBuf> = plan["placeholders"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["kind"] == "dir")
        .filter_map(|p| p["path"].as_str().map(PathBuf::from))
        .collect();
    let mut out: Vec<String> = plan["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["op"] == "rebind" && m["why"] == "protect")
        .filter_map(|m| m["dst"].as_str().map(PathBuf::from))
        .filter_map(|p| {
            let rel = p.strip_prefix(ws).ok()?.display().to_string();
            let dir = dirs.contains(&p) || p.is_dir();
            Some(if dir { format!("{rel}/") } else { rel })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

pub(super) fn limits_of(plan: &serde_json::Value) -> Limits {
    let l = &plan["limits"];
    Limits {
        pids: l["pids"].as_u64(),
        memory_mb: l["memory_mb"].as_u64(),
        file_mb: l["file_mb"].as_u64(),
        tmp_mb: l["tmp_mb"].as_u64(),
        cpu_seconds: l["cpu_seconds"].as_u64(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_resource_profile_keeps_the_users_choice_and_sets_small_limits() {
        let t = super::derived_profile(Some("claude"), super::RES_TOML).unwrap();
        assert!(t.starts_with("extends = \"claude\"\n"), "{t}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mine.toml");
        std::fs::write(
            &p,
            "extends = \"default\"\n[limits]\nmemory_mb = 9000\nfile_mb = 4096\n",
        )
        .unwrap();
        let t: toml::Table = super::derived_profile(Some(p.to_str().unwrap()), super::RES_TOML)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(t["limits"]["file_mb"].as_integer(), Some(32));
        assert_eq!(t["limits"]["memory_mb"].as_integer(), Some(9000));
    }
}
