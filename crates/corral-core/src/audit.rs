//! The session audit log: JSON lines with stable event names, each record carrying the SHA-256 of
//! the previous line, so an edited, reordered or truncated log is detected (`corral logs --verify`).
//! Pure: the writer (one `write(2)` per record, `O_APPEND`) and the reader live elsewhere.
//!
//! Invariants: a record is one line; `seq` starts at 0 and increases by one; `prev` is the hex
//! SHA-256 of the previous line's exact bytes (without its newline), or [`GENESIS`] for the first.
//! A writer killed with SIGKILL loses at most the record it was writing; every complete line
//! before it still verifies. No value of an environment variable is ever recorded (names only).

use crate::layer::LayerReport;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Most "other" changed files one `fs.changed` record lists.
pub const FS_CHANGED_MAX: usize = 1000;

/// What happened. Serialized with `"event": "<name>"`; names are stable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event")]
pub enum Event {
    /// The sandbox started: what it is and every layer's achieved level.
    #[serde(rename = "session.start")]
    SessionStart {
        /// corral's version.
        version: String,
        /// Profile name.
        profile: String,
        /// SHA-256 of the resolved profile (every layer merged, as JSON): the same profile gives
        /// the same digest, whatever files it came from.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        profile_digest: Option<String>,
        /// SHA-256 of the plan as launched, as `plan.json` beside the log holds it (redacted, as
        /// `--dry-run --json` prints it): `sha256sum plan.json` gives it back.
        plan_digest: String,
        /// The workspace.
        workspace: String,
        /// The command.
        command: Vec<String>,
        /// Every layer.
        layers: Vec<LayerReport>,
        /// The agent the profile runs (`sandbox.agent`), also for a profile of another name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
    },
    /// The environment that went in (names only).
    #[serde(rename = "env.audit")]
    EnvAudit {
        /// Variables passed in.
        passed: Vec<String>,
        /// Variables withheld as secrets.
        withheld: Vec<String>,
        /// Host variables left out.
        left_out: Vec<String>,
    },
    /// A protection or mask re-applied, or a file quarantined, during the session.
    #[serde(rename = "fs.watch")]
    FsWatch {
        /// What corral did, in words.
        note: String,
    },
    /// Files changed in the workspace during the session, exec triggers listed apart.
    #[serde(rename = "fs.changed")]
    FsChanged {
        /// Changed files the user's own tools may execute or obey.
        exec_triggers: Vec<String>,
        /// The other changed files (at most [`FS_CHANGED_MAX`]).
        others: Vec<String>,
        /// More files changed than listed.
        truncated: bool,
    },
    /// A program started inside the sandbox. Arguments that look like secrets are masked.
    #[serde(rename = "exec")]
    Exec {
        /// Its pid, as the host sees it.
        pid: i32,
        /// Its parent's pid, as the host sees it (0: unknown).
        ppid: i32,
        /// The path given to execve, as given (not resolved).
        path: String,
        /// Its arguments, secrets masked, long ones cut.
        argv: Vec<String>,
        /// Nothing was at that path when the call was made (a shell or libc trying each PATH
        /// directory in turn): the call failed and started no program. Its arguments are not
        /// read then.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        missing: bool,
    },
    /// Exec records left out under an exec storm (more than [`EXEC_RECORDS_PER_WINDOW`] in one
    /// window): counted per program, never silently dropped.
    #[serde(rename = "exec.summary")]
    ExecSummary {
        /// How many exec calls were not recorded one by one.
        suppressed: u64,
        /// Per program (argv[0]), how many; at most [`SUMMARY_PROGRAMS`] names, the rest under
        /// `(others)`.
        programs: std::collections::BTreeMap<String, u64>,
    },
    /// A connection through the egress proxy ended: what was asked, what was decided and why,
    /// where it went and what it moved. Written when it closes.
    #[serde(rename = "net.decision")]
    NetDecision {
        /// `connect`, `http`, `socks5` (or `unknown`: no request came).
        proto: String,
        /// The host asked for, canonical (or as sent, escaped, when it did not parse).
        host: String,
        /// The port asked for.
        port: u16,
        /// The address dialled.
        addr: Option<String>,
        /// `allowed` or `denied`.
        decision: String,
        /// The stable reason code (`allowed`, `not_in_allowlist`, `sni_mismatch`, …).
        reason: String,
        /// The rule that matched, as written in the profile.
        rule: Option<String>,
        /// More words (the refused address class, the SNI seen, the error).
        detail: Option<String>,
        /// Bytes from the sandbox to the host.
        bytes_up: u64,
        /// Bytes from the host to the sandbox.
        bytes_down: u64,
        /// From accept to close.
        duration_ms: u64,
    },
    /// A request from the agent through corral's API gateway (the real credential added outside).
    #[serde(rename = "api.request")]
    ApiRequest {
        /// HTTP method.
        method: String,
        /// Path, without the query string.
        path: String,
        /// The upstream's status (none: it failed before answering).
        status: Option<u16>,
        /// Bytes from the agent.
        bytes_up: u64,
        /// Bytes to the agent.
        bytes_down: u64,
        /// From request to the response's end.
        duration_ms: u64,
        /// What failed, if anything.
        error: Option<String>,
    },
    /// A DNS query from inside, refused by the sink (nothing is forwarded).
    #[serde(rename = "dns.query")]
    DnsQuery {
        /// The name asked for (odd bytes escaped like dig).
        name: String,
        /// The record type.
        qtype: String,
        /// `udp` or `tcp`.
        transport: String,
    },
    /// The session's network in totals, at its end.
    #[serde(rename = "net.summary")]
    NetSummary {
        /// The summary in one line, as shown to the user.
        line: String,
        /// Connections allowed.
        allowed: u64,
        /// Connections refused.
        denied: u64,
        /// DNS queries refused.
        dns_queries: u64,
        /// Bytes up.
        bytes_up: u64,
        /// Bytes down.
        bytes_down: u64,
        /// Records left out under a connection or DNS storm (counted here, and in the totals).
        unrecorded: u64,
    },
    /// A dangerous system call attempted inside, denied (EPERM).
    #[serde(rename = "syscall.denied")]
    SyscallDenied {
        /// The caller's pid, as the host sees it.
        pid: i32,
        /// The caller's program name.
        program: String,
        /// The call.
        syscall: String,
        /// For a call refused for its arguments: which (`CLONE_NEWUSER`, `TIOCSTI`, `family 17
        /// (AF_PACKET)`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// A resource limit that ended or hurt the session.
    #[serde(rename = "limit.hit")]
    LimitHit {
        /// In words, naming the limit.
        message: String,
    },
    /// The session ended.
    #[serde(rename = "session.end")]
    SessionEnd {
        /// corral's exit code.
        exit_code: i32,
        /// How long it ran, in milliseconds.
        duration_ms: u64,
        /// corral's own failure, if any.
        error: Option<String>,
        /// Programs started inside (exec calls seen, recorded or summarised).
        #[serde(default)]
        execs: u64,
        /// Denied system calls, per call name.
        #[serde(default)]
        denied_syscalls: std::collections::BTreeMap<String, u64>,
        /// Records not written because the log reached its size bound (counted here).
        #[serde(default)]
        records_dropped: u64,
    },
    /// The log reached its size bound: from here on only the session's end and its summaries are
    /// written; everything else is counted in `session.end`'s `records_dropped`.
    #[serde(rename = "log.full")]
    LogFull {
        /// The bound, in bytes.
        limit_bytes: u64,
    },
}

/// The kinds of event (each name's part before the dot), for `corral logs --kind`.
pub const KINDS: &[&str] = &[
    "session", "env", "exec", "syscall", "fs", "net", "api", "dns", "limit", "log",
];

impl Event {
    /// `fs.changed` for these changes: the exec triggers all, the other files up to
    /// [`FS_CHANGED_MAX`]; `truncated` when some were left out (or `more` says the list was
    /// already incomplete).
    pub fn fs_changed(exec_triggers: Vec<String>, mut others: Vec<String>, more: bool) -> Event {
        let truncated = more || others.len() > FS_CHANGED_MAX;
        others.truncate(FS_CHANGED_MAX);
        Event::FsChanged {
            exec_triggers,
            others,
            truncated,
        }
    }

    /// The stable event name.
    pub fn name(&self) -> &'static str {
        match self {
            Event::SessionStart { .. } => "session.start",
            Event::EnvAudit { .. } => "env.audit",
            Event::FsWatch { .. } => "fs.watch",
            Event::FsChanged { .. } => "fs.changed",
            Event::Exec { .. } => "exec",
            Event::ExecSummary { .. } => "exec.summary",
            Event::NetDecision { .. } => "net.decision",
            Event::ApiRequest { .. } => "api.request",
            Event::DnsQuery { .. } => "dns.query",
            Event::NetSummary { .. } => "net.summary",
            Event::SyscallDenied { .. } => "syscall.denied",
            Event::LimitHit { .. } => "limit.hit",
            Event::SessionEnd { .. } => "session.end",
            Event::LogFull { .. } => "log.full",
        }
    }
}

/// An argument as it may be written to the log: every word in it (a `sh -c` script holds many)
/// that looks like a secret is masked, alone or after `NAME=` / `--name=`; the rest is kept.
pub fn mask_arg(arg: &str) -> String {
    let mut out = String::with_capacity(arg.len());
    for piece in arg.split_inclusive(char::is_whitespace) {
        let word = piece.trim_end_matches(char::is_whitespace);
        let ws = &piece[word.len()..];
        // Quotes and shell punctuation around a word are not part of the value.
        let inner = word.trim_matches(|c| matches!(c, '\'' | '"' | '`' | ';' | '(' | ')' | '&' | '|'));
        let lead = word.find(inner).unwrap_or(0);
        out.push_str(&word[..lead]);
        out.push_str(&mask_word(inner));
        out.push_str(&word[lead + inner.len()..]);
        out.push_str(ws);
    }
    out
}

fn mask_word(word: &str) -> String {
    use crate::envaudit::{classify, classify_content, mask};
    if let Some((name, value)) = word.split_once('=') {
        let bare = name.trim_start_matches('-');
        if !value.is_empty() && classify(bare, value).is_some() {
            return format!("{name}={}", mask(value));
        }
    }
    if classify_content(word).is_some() {
        return mask(word);
    }
    word.to_string()
}

/// Most `exec` records written one by one per [`EXEC_WINDOW_MS`]; beyond, they are counted into
/// an `exec.summary` (a build runs a few hundred execs a second; a storm runs thousands).
pub const EXEC_RECORDS_PER_WINDOW: u32 = 500;
/// The window of [`EXEC_RECORDS_PER_WINDOW`], in milliseconds.
pub const EXEC_WINDOW_MS: u64 = 1000;
/// Most program names an `exec.summary` lists.
pub const SUMMARY_PROGRAMS: usize = 20;

/// Decides which exec records are written whole and counts the rest (pure: the caller gives the
/// time), so the log keeps up with an exec storm without losing count of anything.
#[derive(Debug, Default)]
pub struct ExecThrottle {
    window_start_ms: u64,
    in_window: u32,
    suppressed: u64,
    programs: std::collections::BTreeMap<String, u64>,
}

impl ExecThrottle {
    /// For one exec at `now_ms` running `program`: the summary to write first (when a window
    /// with suppressed records has ended), and whether to write this exec's own record.
    pub fn admit(&mut self, now_ms: u64, program: &str) -> (Option<Event>, bool) {
        let mut summary = None;
        if now_ms.saturating_sub(self.window_start_ms) >= EXEC_WINDOW_MS {
            summary = self.flush();
            self.window_start_ms = now_ms;
            self.in_window = 0;
        }
        if self.in_window < EXEC_RECORDS_PER_WINDOW {
            self.in_window += 1;
            return (summary, true);
        }
        self.suppressed += 1;
        let known = self.programs.len() < SUMMARY_PROGRAMS || self.programs.contains_key(program);
        let name = if known { program } else { "(others)" };
        *self.programs.entry(name.to_string()).or_default() += 1;
        (summary, false)
    }

    /// The summary of what is counted and not yet written (at the session's end).
    pub fn flush(&mut self) -> Option<Event> {
        if self.suppressed == 0 {
            return None;
        }
        Some(Event::ExecSummary {
            suppressed: std::mem::take(&mut self.suppressed),
            programs: std::mem::take(&mut self.programs),
        })
    }
}

/// One record as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// 0, 1, 2, …
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// SHA-256 (hex) of the previous line, or [`GENESIS`].
    pub prev: String,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The chain state of a writer: the next sequence number and the previous line's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    next_seq: u64,
    prev: String,
}

impl Default for Chain {
    fn default() -> Self {
        Chain {
            next_seq: 0,
            prev: GENESIS.to_string(),
        }
    }
}

impl Chain {
    /// The next line to write (with its newline), and advances the chain.
    pub fn line(&mut self, time_ms: u64, event: Event) -> String {
        let record = Record {
            seq: self.next_seq,
            time_ms,
            prev: self.prev.clone(),
            event,
        };
        // A record of owned strings and numbers always serialises.
        let line = serde_json::to_string(&record).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        self.prev = sha256_hex(line.as_bytes());
        self.next_seq += 1;
        format!("{line}\n")
    }
}

/// Why a log does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A line is not a record.
    #[error("line {line}: not an audit record: {reason}")]
    NotARecord {
        /// 1-based line.
        line: usize,
        /// Parser message.
        reason: String,
    },
    /// `seq` out of order (a record removed or reordered).
    #[error("line {line}: seq {found}, expected {expected} (a record was removed or reordered)")]
    Seq {
        /// 1-based line.
        line: usize,
        /// Found.
        found: u64,
        /// Expected.
        expected: u64,
    },
    /// `prev` does not match the previous line (an earlier line was edited).
    #[error("line {line}: prev does not match the hash of line {} (that line was edited)", line - 1)]
    Chain {
        /// 1-based line.
        line: usize,
    },
    /// The last line has no newline: cut off while being written, or truncated.
    #[error("line {line}: incomplete (the log was cut off here)")]
    Incomplete {
        /// 1-based line.
        line: usize,
    },
}

/// What a successful verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Records that verified.
    pub records: usize,
    /// Whether the session's end was recorded (false: still running, or the supervisor was killed).
    pub ended: bool,
}

/// Verifies a whole log.
pub fn verify(text: &str) -> Result<Verified, VerifyError> {
    let mut prev = GENESIS.to_string();
    let mut ended = false;
    let mut count = 0;
    let complete = text.ends_with('\n') || text.is_empty();
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        if i + 1 == lines.len() && !complete {
            return Err(VerifyError::Incomplete { line: n });
        }
        let record: Record = serde_json::from_str(line).map_err(|e| VerifyError::NotARecord {
            line: n,
            reason: e.to_string(),
        })?;
        let expected = u64::try_from(i).unwrap_or(u64::MAX);
        if record.seq != expected {
            return Err(VerifyError::Seq {
                line: n,
                found: record.seq,
                expected,
            });
        }
        if record.prev != prev {
            return Err(VerifyError::Chain { line: n });
        }
        ended = matches!(record.event, Event::SessionEnd { .. });
        prev = sha256_hex(line.as_bytes());
        count += 1;
    }
    Ok(Verified {
        records: count,
        ended,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn log() -> String {
        let mut c = Chain::default();
        let mut s = String::new();
        s += &c.line(
            1,
            Event::EnvAudit {
                passed: vec!["TERM".into()],
                withheld: vec![],
                left_out: vec!["AWS_SECRET_ACCESS_KEY".into()],
            },
        );
        s += &c.line(
            2,
            Event::FsWatch {
                note: ".git/config: protection re-applied".into(),
            },
        );
        s += &c.line(
            3,
            Event::SessionEnd {
                exit_code: 0,
                duration_ms: 12,
                error: None,
                execs: 0,
                denied_syscalls: Default::default(),
                records_dropped: 0,
            },
        );
        s
    }

    #[test]
    fn a_written_log_verifies() {
        assert_eq!(
            verify(&log()),
            Ok(Verified {
                records: 3,
                ended: true
            })
        );
        assert_eq!(
            verify(""),
            Ok(Verified {
                records: 0,
                ended: false
            })
        );
    }

    #[test]
    fn records_have_stable_names_and_fields() {
        let first = log().lines().next().unwrap().to_string();
        assert_eq!(
            first,
            format!("{{\"seq\":0,\"time_ms\":1,\"prev\":\"{GENESIS}\",\"event\":\"env.audit\",\"passed\":[\"TERM\"],\"withheld\":[],\"left_out\":[\"AWS_SECRET_ACCESS_KEY\"]}}")
        );
    }

    #[test]
    fn an_edited_line_breaks_the_chain_at_the_next_one() {
        let edited = log().replacen("re-applied", "skipped", 1);
        assert_eq!(verify(&edited), Err(VerifyError::Chain { line: 3 }));
    }

    #[test]
    fn a_removed_or_reordered_record_is_detected() {
        let full = log();
        let lines: Vec<&str> = full.lines().collect();
        let removed = format!("{}\n{}\n", lines[0], lines[2]);
        assert_eq!(
            verify(&removed),
            Err(VerifyError::Seq {
                line: 2,
                found: 2,
                expected: 1
            })
        );
        let reordered = format!("{}\n{}\n{}\n", lines[1], lines[0], lines[2]);
        assert_eq!(
            verify(&reordered),
            Err(VerifyError::Seq {
                line: 1,
                found: 1,
                expected: 0
            })
        );
    }

    #[test]
    fn a_cut_off_log_verifies_up_to_the_cut_and_says_so() {
        let full = log();
        let cut = &full[..full.len() - 10];
        assert_eq!(verify(cut), Err(VerifyError::Incomplete { line: 3 }));
        let two: String = full.lines().take(2).map(|l| format!("{l}\n")).collect();
        assert_eq!(
            verify(&two),
            Ok(Verified {
                records: 2,
                ended: false
            })
        );
    }

    #[test]
    fn fs_changed_lists_every_trigger_and_at_most_so_many_others() {
        let others: Vec<String> = (0..FS_CHANGED_MAX + 3).map(|i| format!("f{i}")).collect();
        let Event::FsChanged {
            exec_triggers,
            others: listed,
            truncated,
        } = Event::fs_changed(vec![".envrc".into()], others, false)
        else {
            panic!("not fs.changed");
        };
        assert_eq!(exec_triggers, [".envrc"]);
        assert_eq!((listed.len(), truncated), (FS_CHANGED_MAX, true));
        assert_eq!(
            Event::fs_changed(vec![], vec!["a".into()], false),
            Event::FsChanged {
                exec_triggers: vec![],
                others: vec!["a".into()],
                truncated: false
            }
        );
        assert_eq!(
            Event::fs_changed(vec![], vec![], true),
            Event::FsChanged {
                exec_triggers: vec![],
                others: vec![],
                truncated: true
            }
        );
    }

    #[test]
    fn secrets_in_arguments_are_masked_word_by_word() {
        let key = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789";
        for arg in [
            key.to_string(),
            format!("--token={key}"),
            format!("API_TOKEN={key}"),
            format!("curl -H 'x-api-key: {key}' https://example.com; echo ok"),
        ] {
            let m = mask_arg(&arg);
            assert!(!m.contains(&key[8..]), "{arg:?} → {m:?}");
        }
        // Ordinary arguments, and the shape of a script, stay as they were.
        for arg in [
            "-c",
            "ls -l /usr/lib/x86_64-linux-gnu/libc.so.6",
            "make -j2 test",
            "--color=auto",
        ] {
            assert_eq!(mask_arg(arg), arg);
        }
        assert!(mask_arg(&format!("echo {key} | wc")).starts_with("echo sk-ant-"));
        assert!(mask_arg(&format!("echo {key} | wc")).ends_with(" | wc"));
    }

    #[test]
    fn every_event_kind_is_listed() {
        let events = [
            Event::Exec {
                pid: 1,
                ppid: 0,
                path: String::new(),
                argv: vec![],
                missing: false,
            },
            Event::ExecSummary {
                suppressed: 0,
                programs: std::collections::BTreeMap::new(),
            },
            Event::FsWatch { note: String::new() },
            Event::LimitHit {
                message: String::new(),
            },
            Event::SessionEnd {
                exit_code: 0,
                duration_ms: 0,
                error: None,
                execs: 0,
                denied_syscalls: Default::default(),
                records_dropped: 0,
            },
            Event::EnvAudit {
                passed: vec![],
                withheld: vec![],
                left_out: vec![],
            },
            Event::FsChanged {
                exec_triggers: vec![],
                others: vec![],
                truncated: false,
            },
        ];
        for e in events {
            let kind = e.name().split('.').next().unwrap();
            assert!(KINDS.contains(&kind), "{kind}");
        }
    }

    #[test]
    fn an_exec_storm_is_summarised_with_every_call_counted() {
        let mut t = ExecThrottle::default();
        let mut written = 0u64;
        let mut summarised = 0u64;
        // 2000 execs in the first window, then one in the next.
        for i in 0..2000u64 {
            let program = if i % 2 == 0 { "cc" } else { "as" };
            let (summary, write) = t.admit(10 + i / 100, program);
            assert!(summary.is_none());
            written += u64::from(write);
        }
        assert_eq!(written, u64::from(EXEC_RECORDS_PER_WINDOW));
        let (summary, write) = t.admit(10 + EXEC_WINDOW_MS, "ld");
        assert!(write, "a new window writes again");
        match summary {
            Some(Event::ExecSummary { suppressed, programs }) => {
                assert_eq!(programs.values().sum::<u64>(), suppressed);
                assert_eq!(programs.get("cc"), Some(&750));
                summarised += suppressed;
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(written + summarised, 2000, "nothing lost");
        assert!(t.flush().is_none(), "nothing left to summarise");
    }

    #[test]
    fn a_summary_names_at_most_so_many_programs() {
        let mut t = ExecThrottle::default();
        for i in 0..(EXEC_RECORDS_PER_WINDOW as usize + 100) {
            t.admit(0, &format!("p{i}"));
        }
        let Some(Event::ExecSummary { suppressed, programs }) = t.flush() else {
            panic!("no summary");
        };
        assert_eq!(suppressed, 100);
        assert_eq!(programs.len(), SUMMARY_PROGRAMS + 1);
        assert_eq!(programs.get("(others)"), Some(&80));
    }
}
