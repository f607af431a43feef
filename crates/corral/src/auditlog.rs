//! The audit log on disk: `~/.local/state/corral/sessions/<id>/audit.jsonl` (mode 0600, directory
//! 0700), one `write(2)` per record with `O_APPEND`, so a supervisor killed with SIGKILL loses at
//! most the record it was writing and everything before it still verifies. The records and their
//! hash chain are `corral_core::audit`; `corral logs` reads them back.

use anyhow::{bail, Context};
use corral_core::audit::{self, Chain, Event, Record};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// `~/.local/state/corral/sessions` (or `$XDG_STATE_HOME/corral/sessions`).
pub fn sessions_dir(home: &Path) -> PathBuf {
    let state = match std::env::var_os("XDG_STATE_HOME") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        _ => home.join(".local/state"),
    };
    state.join("corral/sessions")
}

/// An open audit log. Records come from the supervisor's thread and from the proxy's (network
/// decisions): the lock keeps the hash chain in one order, one line at a time.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    inner: std::sync::Mutex<Writer>,
}

#[derive(Debug)]
struct Writer {
    file: File,
    chain: Chain,
    failed: bool,
    /// Bytes written so far.
    written: u64,
    /// Records left out since the log reached [`LOG_MAX_BYTES`].
    dropped: u64,
}

/// The most a session's log may hold. A session that fills it (a storm the rate caps do not
/// catch, a very long run) keeps only its end and summaries from then on, and counts the rest.
pub const LOG_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Kept free below the bound for the records every log must end with.
const LOG_RESERVE_BYTES: u64 = 1024 * 1024;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A plan as `plan.json` holds it and `session.start`'s `plan_digest` hashes it: redacted (no
/// environment value in full), as `corral run --dry-run --json` prints it.
pub fn plan_bytes(plan: &corral_core::plan::Plan) -> Vec<u8> {
    let mut body = serde_json::to_vec_pretty(&plan.redacted()).unwrap_or_default();
    body.push(b'\n');
    body
}

impl AuditLog {
    /// Creates the session's log (the directory must not exist yet: one log per session).
    pub fn create(sessions: &Path, id: &str) -> anyhow::Result<AuditLog> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(sessions)
            .with_context(|| format!("creating {}", sessions.display()))?;
        let dir = sessions.join(id);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("audit.jsonl");
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating the audit log {}", path.display()))?;
        Ok(AuditLog {
            path,
            inner: std::sync::Mutex::new(Writer {
                file,
                chain: Chain::default(),
                failed: false,
                written: 0,
                dropped: 0,
            }),
        })
    }

    /// Saves the session's plan ([`plan_bytes`]) beside the log as `plan.json`, for `corral why
    /// --session` and to check `session.start`'s `plan_digest` against (`sha256sum plan.json`).
    pub fn save_plan(&self, plan: &corral_core::plan::Plan) {
        let path = self.path.with_file_name("plan.json");
        let body = plan_bytes(plan);
        let saved = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(&body));
        if let Err(e) = saved {
            crate::say!("corral: warning: saving the plan {}: {e}", path.display());
        }
    }

    /// Appends one record. A failed write is reported once and never stops the sandbox: the log
    /// then ends early, which `corral logs --verify` shows (no `session.end`).
    pub fn write(&self, event: Event) {
        self.write_bounded(event, LOG_MAX_BYTES);
    }

    /// [`AuditLog::write`] with the size bound given (tests use a small one).
    fn write_bounded(&self, mut event: Event, max: u64) {
        // A panic while holding the lock cannot leave a half-written line (one write per record):
        // go on with the chain as it is.
        let mut w = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The end and the summaries always go in (from the reserve); the rest only below the
        // bound, then counted.
        let essential = matches!(
            event,
            Event::SessionEnd { .. }
                | Event::NetSummary { .. }
                | Event::ExecSummary { .. }
                | Event::LimitHit { .. }
        );
        if let Event::SessionEnd { records_dropped, .. } = &mut event {
            *records_dropped = w.dropped;
        }
        if !essential && w.written >= max.saturating_sub(LOG_RESERVE_BYTES) {
            if w.dropped == 0 {
                let note = w.chain.line(now_ms(), Event::LogFull { limit_bytes: max });
                if w.file.write_all(note.as_bytes()).is_ok() {
                    w.written += note.len() as u64;
                }
            }
            w.dropped += 1;
            return;
        }
        let line = w.chain.line(now_ms(), event);
        w.written += line.len() as u64;
        if let Err(e) = w.file.write_all(line.as_bytes()) {
            if !w.failed {
                crate::say!(
                    "corral: warning: writing the audit log {}: {e}",
                    self.path.display()
                );
            }
            w.failed = true;
        }
    }
}

/// The session directory for `id` (an id or a unique prefix), or the most recent session.
fn find(sessions: &Path, id: Option<&str>) -> anyhow::Result<PathBuf> {
    let mut all: Vec<(std::time::SystemTime, PathBuf, String)> = fs::read_dir(sessions)
        .with_context(|| format!("reading {}", sessions.display()))?
        .flatten()
        .filter_map(|e| {
            let log = e.path().join("audit.jsonl");
            let modified = log.metadata().and_then(|m| m.modified()).ok()?;
            Some((modified, e.path(), e.file_name().to_string_lossy().into_owned()))
        })
        .collect();
    all.sort();
    match id {
        None => all
            .pop()
            .map(|(_, p, _)| p)
            .context("no session has an audit log yet"),
        Some(id) => {
            let hits: Vec<&(std::time::SystemTime, PathBuf, String)> =
                all.iter().filter(|(_, _, name)| name.starts_with(id)).collect();
            match hits.as_slice() {
                [one] => Ok(one.1.clone()),
                [] => bail!("no session {id:?} in {}", sessions.display()),
                _ => bail!("{id:?} names {} sessions: give more of the id", hits.len()),
            }
        }
    }
}

/// How `corral logs` prints.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// JSON lines as written.
    pub json: bool,
    /// Only these kinds (`session`, `env`, `exec`, `syscall`, `fs`, `net`, `api`, `dns`, `limit`, `log`); empty: all.
    pub kinds: Vec<String>,
    /// Keep printing until `session.end`.
    pub follow: bool,
}

/// How often `--follow` looks for new records.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// The plan a session saved (`corral why --session`).
pub fn session_plan(home: &Path, id: &str) -> anyhow::Result<corral_core::plan::Plan> {
    let dir = find(&sessions_dir(home), Some(id))?;
    let path = dir.join("plan.json");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// `corral logs`.
pub fn logs(home: &Path, id: Option<&str>, view: &View, verify: bool) -> anyhow::Result<i32> {
    if let Some(k) = view.kinds.iter().find(|k| !audit::KINDS.contains(&k.as_str())) {
        anyhow::bail!(
            "--kind {k:?}: not a kind of event (kinds: {})",
            audit::KINDS.join(", ")
        );
    }
    let dir = find(&sessions_dir(home), id)?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = dir.join("audit.jsonl");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    if verify {
        return Ok(match audit::verify(&text) {
            Ok(v) => {
                let end = if v.ended {
                    "the session's end is recorded"
                } else {
                    "no session.end: still running, or corral was killed"
                };
                println!("{name}: {} records, chain intact; {end}", v.records);
                0
            }
            Err(e) => {
                println!("{name}: {} does not verify: {e}", path.display());
                1
            }
        });
    }
    let mut done = 0usize;
    let mut ended = print_new(&text, &mut done, view);
    while view.follow && !ended {
        std::thread::sleep(FOLLOW_POLL);
        let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        ended = print_new(&text, &mut done, view);
    }
    Ok(0)
}

/// Prints the complete lines of `text` after the first `done`; returns whether `session.end` was
/// among them.
fn print_new(text: &str, done: &mut usize, view: &View) -> bool {
    let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
    let mut ended = false;
    for line in complete.lines().skip(*done) {
        *done += 1;
        let record = serde_json::from_str::<Record>(line).ok();
        ended |= record
            .as_ref()
            .is_some_and(|r| matches!(r.event, Event::SessionEnd { .. }));
        let kind = record
            .as_ref()
            .map(|r| r.event.name().split('.').next().unwrap_or_default().to_string());
        if !view.kinds.is_empty() && !kind.is_some_and(|k| view.kinds.contains(&k)) {
            continue;
        }
        match (view.json, record) {
            (true, _) => println!("{line}"),
            (false, Some(r)) => println!("{:>4}  {}  {}", r.seq, r.event.name(), summary(&r.event)),
            (false, None) => println!("      (not a record) {line}"),
        }
    }
    ended
}

fn summary(e: &Event) -> String {
    match e {
        Event::SessionStart {
            profile,
            workspace,
            command,
            layers,
            ..
        } => {
            let degraded: Vec<String> = layers
                .iter()
                .filter(|l| l.achieved != corral_core::layer::Achieved::Full)
                .map(|l| format!("{}={}", l.layer, l.achieved))
                .collect();
            let layers = if degraded.is_empty() {
                "every layer full".to_string()
            } else {
                degraded.join(" ")
            };
            format!(
                "profile {profile}, {workspace}: {} ({layers})",
                corral_core::render::shell_words(command)
            )
        }
        Event::EnvAudit {
            passed,
            withheld,
            left_out,
        } => format!(
            "{} in, {} withheld{}, {} left out",
            passed.len(),
            withheld.len(),
            if withheld.is_empty() {
                String::new()
            } else {
                format!(" ({})", withheld.join(", "))
            },
            left_out.len()
        ),
        Event::FsWatch { note } | Event::LimitHit { message: note } => note.clone(),
        Event::SyscallDenied {
            pid,
            program,
            syscall,
            detail,
        } => match detail {
            Some(d) => format!("denied {syscall} ({d}) to {program} (pid {pid})"),
            None => format!("denied {syscall} to {program} (pid {pid})"),
        },
        Event::LogFull { limit_bytes } => format!(
            "the log reached {} MiB: from here on only the end and summaries are written, the rest counted",
            limit_bytes / (1024 * 1024)
        ),
        Event::NetDecision {
            proto,
            host,
            port,
            addr,
            decision,
            reason,
            rule,
            detail,
            bytes_up,
            bytes_down,
            duration_ms,
        } => {
            let mut s = format!("{decision} {proto} {host}:{port}");
            if let Some(a) = addr {
                s.push_str(&format!(" via {a}"));
            }
            s.push_str(&format!(" [{reason}]"));
            if let Some(r) = rule {
                s.push_str(&format!(" rule {r:?}"));
            }
            if let Some(d) = detail {
                s.push_str(&format!(": {d}"));
            }
            s.push_str(&format!(" ↑{bytes_up} ↓{bytes_down} bytes, {duration_ms} ms"));
            s
        }
        Event::DnsQuery {
            name,
            qtype,
            transport,
        } => format!("refused {qtype} {name} ({transport})"),
        Event::ApiRequest {
            method,
            path,
            status,
            bytes_up,
            bytes_down,
            duration_ms,
            error,
        } => format!(
            "{method} {path} → {} ↑{bytes_up} ↓{bytes_down} bytes, {duration_ms} ms{}",
            status.map_or("no answer".to_string(), |s| s.to_string()),
            error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        ),
        Event::NetSummary { line, unrecorded, .. } => {
            if *unrecorded > 0 {
                format!("{line} ({unrecorded} record(s) not written one by one: too many at once)")
            } else {
                line.clone()
            }
        }
        Event::ExecSummary { suppressed, programs } => format!(
            "{suppressed} more exec(s) not listed one by one (exec storm): {}",
            programs
                .iter()
                .map(|(p, n)| format!("{p} ×{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Event::Exec {
            pid, path, missing, ..
        } if *missing => format!("pid {pid}: {path}: not found (no program started)"),
        Event::Exec {
            pid,
            ppid,
            path,
            argv,
            ..
        } => {
            format!(
                "pid {pid} (parent {ppid}): {path}: {}",
                corral_core::render::shell_words(argv)
            )
        }
        Event::FsChanged {
            exec_triggers,
            others,
            truncated,
        } => format!(
            "{} file(s) changed{}{}",
            exec_triggers.len() + others.len(),
            if exec_triggers.is_empty() {
                String::new()
            } else {
                format!("; exec triggers: {}", exec_triggers.join(", "))
            },
            if *truncated { " (and more)" } else { "" }
        ),
        Event::SessionEnd {
            exit_code,
            duration_ms,
            error,
            execs,
            denied_syscalls,
            records_dropped,
        } => format!(
            "exit {exit_code} after {duration_ms} ms; {execs} program(s) run{}{}",
            if denied_syscalls.is_empty() {
                String::new()
            } else {
                format!(
                    "; denied: {}",
                    denied_syscalls
                        .iter()
                        .map(|(k, v)| format!("{k} ×{v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            if *records_dropped > 0 {
                format!("; {records_dropped} record(s) not written (log full)")
            } else {
                String::new()
            } + &error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod bound_tests {
    use super::*;

    #[test]
    #[allow(clippy::unwrap_used)]
    fn a_full_log_keeps_its_end_counts_the_rest_and_still_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::create(dir.path(), "s1").unwrap();
        let max = LOG_RESERVE_BYTES + 64 * 1024;
        let exec = || Event::Exec {
            pid: 7,
            ppid: 1,
            path: "/bin/true".into(),
            argv: vec!["true".into(); 20],
            missing: false,
        };
        for _ in 0..2000 {
            log.write_bounded(exec(), max);
        }
        log.write_bounded(
            Event::SessionEnd {
                exit_code: 0,
                duration_ms: 1,
                error: None,
                execs: 2000,
                denied_syscalls: Default::default(),
                records_dropped: 0,
            },
            max,
        );
        let text = std::fs::read_to_string(dir.path().join("s1/audit.jsonl")).unwrap();
        assert!(text.len() as u64 <= max, "{} bytes", text.len());
        let events: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let full: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "log.full").collect();
        assert_eq!(full.len(), 1);
        let written = events.iter().filter(|e| e["event"] == "exec").count() as u64;
        let end = events.last().unwrap();
        assert_eq!(end["event"], "session.end");
        assert_eq!(end["records_dropped"].as_u64().unwrap() + written, 2000);
        assert!(written > 0 && written < 2000);
        assert_eq!(audit::verify(&text).unwrap().records, events.len());
    }
}
