//! `corral ps`: the sessions running now, with what they run, how they are confined (from their
//! audit log's `session.start`) and what they use (from their session cgroup).

use corral_core::audit::{Event, Record};
use corral_core::layer::Achieved;
use corral_sys::session::{self, SessionState};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One running session.
#[derive(Debug, Serialize)]
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
    /// The command, from the audit log.
    pub command: Vec<String>,
    /// Layers not fully in effect (`name=achieved`), from the audit log.
    pub degraded: Vec<String>,
    /// Memory in use (bytes), from the session cgroup.
    pub memory_bytes: Option<u64>,
    /// Processes, from the session cgroup.
    pub processes: Option<u64>,
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn row(state: &SessionState, logs: &[PathBuf]) -> SessionRow {
    let mut r = SessionRow {
        id: state.id.clone(),
        pid: state.pid,
        workspace: state.workspace.clone(),
        uptime_s: session::uptime_s(state.start_ticks),
        profile: None,
        command: Vec::new(),
        degraded: Vec::new(),
        memory_bytes: None,
        processes: None,
    };
    let text = logs
        .iter()
        .find_map(|d| std::fs::read_to_string(d.join(&state.id).join("audit.jsonl")).ok());
    for line in text.unwrap_or_default().lines() {
        if let Ok(Record {
            event:
                Event::SessionStart {
                    profile,
                    command,
                    layers,
                    ..
                },
            ..
        }) = serde_json::from_str(line)
        {
            r.profile = Some(profile);
            r.command = command;
            r.degraded = layers
                .iter()
                .filter(|l| l.achieved != Achieved::Full)
                .map(|l| format!("{}={}", l.layer, l.achieved))
                .collect();
        }
    }
    for dir in &state.cgroups {
        r.memory_bytes = r.memory_bytes.or_else(|| {
            read_u64(&dir.join("memory.usage_in_bytes")).or_else(|| read_u64(&dir.join("memory.current")))
        });
        r.processes = r.processes.or_else(|| read_u64(&dir.join("pids.current")));
    }
    r
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
        "{:<16}  {:>7}  {:>7}  {:>9}  {:>5}  {:<8}  WORKSPACE / COMMAND",
        "ID", "PID", "UPTIME", "MEMORY", "PROCS", "PROFILE"
    );
    for r in rows {
        let mem = r
            .memory_bytes
            .map_or("-".to_string(), |b| format!("{}M", b / (1024 * 1024)));
        let procs = r.processes.map_or("-".to_string(), |p| p.to_string());
        let up = r.uptime_s.map_or("-".to_string(), |s| format!("{s}s"));
        let degraded = if r.degraded.is_empty() {
            String::new()
        } else {
            format!("  [degraded: {}]", r.degraded.join(" "))
        };
        println!(
            "{:<16}  {:>7}  {:>7}  {:>9}  {:>5}  {:<8}  {}: {}{degraded}",
            r.id,
            r.pid,
            up,
            mem,
            procs,
            r.profile.as_deref().unwrap_or("?"),
            r.workspace.display(),
            corral_core::render::shell_words(&r.command)
        );
    }
    Ok(0)
}
