//! `corral ps`: the sessions running now, with what they run, how they are confined (from their
//! audit log's `session.start`), what their network did (its `net.decision` records) and what they
//! use (from their session cgroup). The log is read by `sessionlog`, as `corral top` reads it.

use crate::sessionlog::{self, SessionLog};
use corral_sys::session::{self, SessionState};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One running session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRow {
    /// Session id.
    pub id: String,
    /// Supervisor pid.
    pub pid: u32,
    /// The workspace.
    pub workspace: PathBuf,
    /// Seconds since it started.
    pub uptime_s: Option<u64>,
    /// Profile name, from the audit log.
    pub profile: Option<String>,
    /// The agent it runs (its profile is an agent's: claude, codex, …), from the audit log.
    pub agent: Option<String>,
    /// The command, from the audit log.
    pub command: Vec<String>,
    /// Layers not fully in effect (`name=achieved`), from the audit log.
    pub degraded: Vec<String>,
    /// Memory in use (bytes), from the session cgroup, else the processes' resident memory.
    pub memory_bytes: Option<u64>,
    /// Processes, from the session cgroup, else counted in /proc.
    pub processes: Option<u64>,
    /// CPU time used so far (milliseconds), by the sandbox's processes and their reaped children.
    pub cpu_ms: Option<u64>,
    /// Connections the proxy allowed so far, from the audit log.
    pub net_allowed: u64,
    /// Connections the proxy refused so far, from the audit log.
    pub net_denied: u64,
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn row(state: &SessionState, logs: &[PathBuf]) -> SessionRow {
    row_from(state, &sessionlog::read_session_log(logs, &state.id))
}

/// The row of `state`, with what its log (read so far) says.
pub fn row_from(state: &SessionState, log: &SessionLog) -> SessionRow {
    let start = log.start.as_ref();
    let mut r = SessionRow {
        id: state.id.clone(),
        pid: state.pid,
        workspace: state.workspace.clone(),
        uptime_s: session::uptime_s(state.start_ticks),
        profile: start.map(|s| s.profile.clone()),
        agent: start.and_then(|s| s.agent()).map(str::to_string),
        command: start.map(|s| s.command.clone()).unwrap_or_default(),
        degraded: start.map(|s| s.degraded()).unwrap_or_default(),
        memory_bytes: None,
        processes: None,
        cpu_ms: None,
        net_allowed: log.net_allowed,
        net_denied: log.net_denied,
    };
    for dir in &state.cgroups {
        r.memory_bytes = r.memory_bytes.or_else(|| {
            read_u64(&dir.join("memory.usage_in_bytes")).or_else(|| read_u64(&dir.join("memory.current")))
        });
        r.processes = r.processes.or_else(|| read_u64(&dir.join("pids.current")));
    }
    // Without a session cgroup (none delegated), the processes themselves say.
    if let Some(u) = session::sandbox_usage(state.pid) {
        r.cpu_ms = Some(u.cpu_ms);
        r.memory_bytes = r.memory_bytes.or(Some(u.rss_bytes));
        r.processes = r.processes.or(Some(u.processes));
    }
    r
}

/// CPU time as `ps` shows it: `12.3s`, `4m05s`.
pub fn cpu_time(ms: u64) -> String {
    if ms < 60_000 {
        format!("{}.{}s", ms / 1000, (ms % 1000) / 100)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// `corral ps`.
pub fn ps(runtime_root: &Path, logs: &[PathBuf], json: bool) -> anyhow::Result<i32> {
    let rows: Vec<SessionRow> = session::live_sessions(runtime_root)
        .iter()
        .map(|s| row(s, logs))
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    if rows.is_empty() {
        println!("no corral session is running");
        return Ok(0);
    }
    println!(
        "{:<16}  {:>7}  {:>7}  {:>8}  {:>9}  {:>5}  {:<8}  {:<8}  {:>10}  WORKSPACE / COMMAND",
        "ID", "PID", "UPTIME", "CPU", "MEMORY", "PROCS", "PROFILE", "AGENT", "ALLOW/DENY"
    );
    for r in rows {
        let mem = r
            .memory_bytes
            .map_or("-".to_string(), |b| format!("{}M", b / (1024 * 1024)));
        let procs = r.processes.map_or("-".to_string(), |p| p.to_string());
        let cpu = r.cpu_ms.map_or("-".to_string(), cpu_time);
        let up = r.uptime_s.map_or("-".to_string(), |s| format!("{s}s"));
        let degraded = if r.degraded.is_empty() {
            String::new()
        } else {
            format!("  [degraded: {}]", r.degraded.join(" "))
        };
        println!(
            "{:<16}  {:>7}  {:>7}  {:>8}  {:>9}  {:>5}  {:<8}  {:<8}  {:>10}  {}: {}{degraded}",
            r.id,
            r.pid,
            up,
            cpu,
            mem,
            procs,
            r.profile.as_deref().unwrap_or("?"),
            r.agent.as_deref().unwrap_or("-"),
            format!("{}/{}", r.net_allowed, r.net_denied),
            r.workspace.display(),
            corral_core::render::shell_words(&r.command)
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use corral_core::audit::{Chain, Event};
    use corral_core::layer::{Achieved, Layer, LayerReport, Level};
    use pretty_assertions::assert_eq;

    fn net(decision: &str) -> Event {
        Event::NetDecision {
            proto: "connect".into(),
            host: "example.com".into(),
            port: 443,
            addr: None,
            decision: decision.into(),
            reason: if decision == "allowed" {
                "allowed"
            } else {
                "not_in_allowlist"
            }
            .into(),
            rule: None,
            detail: None,
            bytes_up: 0,
            bytes_down: 0,
            duration_ms: 0,
        }
    }

    #[test]
    fn a_row_has_the_agent_and_the_network_counts_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("sessions");
        let cgroup = dir.path().join("cgroup");
        std::fs::create_dir_all(logs.join("0123456789abcdef")).unwrap();
        std::fs::create_dir_all(&cgroup).unwrap();
        std::fs::write(cgroup.join("memory.current"), "1048576\n").unwrap();
        std::fs::write(cgroup.join("pids.current"), "3\n").unwrap();
        let mut chain = Chain::default();
        let mut text = chain.line(
            1,
            Event::SessionStart {
                version: "0.1.0".into(),
                // A profile file of the user's: the agent comes from session.start's `agent`.
                profile: "/home/u/codex-strict.toml".into(),
                profile_digest: None,
                plan_digest: "ab".into(),
                workspace: "/home/u/proj".into(),
                command: vec!["codex".into(), "--full-auto".into()],
                layers: vec![
                    LayerReport {
                        layer: Layer::Userns,
                        level: Level::Required,
                        achieved: Achieved::Full,
                        detail: String::new(),
                    },
                    LayerReport {
                        layer: Layer::Cgroup,
                        level: Level::BestEffort,
                        achieved: Achieved::None,
                        detail: "no delegation".into(),
                    },
                ],
                agent: Some("codex".into()),
            },
        );
        for d in ["allowed", "allowed", "denied", "allowed"] {
            text += &chain.line(2, net(d));
        }
        std::fs::write(logs.join("0123456789abcdef/audit.jsonl"), text).unwrap();
        let state = SessionState {
            id: "0123456789abcdef".into(),
            pid: 4242,
            // Later than now: the uptime comes out 0 whatever the machine's uptime.
            start_ticks: u64::MAX,
            workspace: PathBuf::from("/home/u/proj"),
            placeholders: Vec::new(),
            finished: false,
            cgroups: vec![cgroup],
        };
        let json = serde_json::to_value(row(&state, &[dir.path().join("none"), logs])).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "0123456789abcdef",
                "pid": 4242,
                "workspace": "/home/u/proj",
                "uptime_s": 0,
                "profile": "/home/u/codex-strict.toml",
                "agent": "codex",
                "command": ["codex", "--full-auto"],
                "degraded": ["cgroup=none"],
                "memory_bytes": 1048576,
                "cpu_ms": null,
                "processes": 3,
                "net_allowed": 3,
                "net_denied": 1,
            })
        );
    }

    #[test]
    fn a_session_without_a_log_yet_has_no_agent_and_no_counts() {
        let state = SessionState {
            id: "feedface".into(),
            pid: 1,
            start_ticks: u64::MAX,
            workspace: PathBuf::from("/w"),
            placeholders: Vec::new(),
            finished: false,
            cgroups: Vec::new(),
        };
        let r = row(&state, &[PathBuf::from("/nonexistent-corral-logs")]);
        assert_eq!(
            (r.profile, r.agent, r.net_allowed, r.net_denied),
            (None, None, 0, 0)
        );
    }
}
