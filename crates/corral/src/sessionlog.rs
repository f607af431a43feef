//! A running session's audit log, read for display by `corral ps` and `corral top`: what the
//! session is (`session.start`), how many connections the proxy allowed and refused
//! (`net.decision`), and the recent events worth watching live.
//!
//! Reading is incremental: a [`LogFollower`] keeps the byte offset of the end of the last complete
//! line it read, so each refresh reads only what was appended since. A line still being written (no
//! newline yet) is left for the next read; the writer appends one record per `write(2)`
//! (`auditlog`), so a complete line is a complete record.
//!
//! Parsing is lenient, unlike `corral logs --verify`: a record of a kind not shown here, of a kind
//! newer than this binary, or a line that is not a record is skipped. The hash chain is not checked
//! (that is `corral logs --verify`'s job); only the fields shown are read.
//!
//! Limits: memory is bounded ([`FEED_MAX`] recent events); counts cover the whole log, read once
//! from the start when the follower is created.

use corral_core::layer::{Achieved, LayerReport};
use serde::Deserialize;
use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Most recent events kept per session (older ones are dropped as new ones arrive).
pub const FEED_MAX: usize = 500;

/// What a session is, from its `session.start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Profile name.
    pub profile: String,
    /// The workspace.
    pub workspace: String,
    /// The command.
    pub command: Vec<String>,
    /// Every layer: what was asked and what was achieved.
    pub layers: Vec<LayerReport>,
    /// The agent, as `session.start` recorded it (logs written before it did: none).
    pub agent: Option<String>,
}

impl SessionInfo {
    /// The agent the session runs, when its profile is an agent's.
    pub fn agent(&self) -> Option<&str> {
        self.agent
            .as_deref()
            .or_else(|| corral_core::agents::spec(&self.profile).map(|s| s.name))
    }

    /// Layers not fully in effect, as `name=achieved`.
    pub fn degraded(&self) -> Vec<String> {
        self.layers
            .iter()
            .filter(|l| l.achieved != Achieved::Full)
            .map(|l| format!("{}={}", l.layer, l.achieved))
            .collect()
    }
}

/// A proxy's verdict on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let through.
    Allowed,
    /// Refused.
    Denied,
}

/// Something that happened inside a session, as the live feed shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    /// `net.decision`: a connection through the proxy.
    Net {
        /// Allowed or denied (a decision other than `allowed` counts as denied).
        verdict: Verdict,
        /// `connect`, `http`, `socks5`, `unknown`.
        proto: String,
        /// The host asked for.
        host: String,
        /// The port asked for.
        port: u16,
        /// The stable reason code.
        reason: String,
    },
    /// `syscall.denied`: a dangerous system call, answered EPERM.
    SyscallDenied {
        /// The caller's pid, as the host sees it.
        pid: i32,
        /// The caller's program name.
        program: String,
        /// The call.
        syscall: String,
    },
    /// `api.request`: a request through the API gateway.
    Api {
        /// HTTP method.
        method: String,
        /// Path.
        path: String,
        /// The upstream's status (none: no answer).
        status: Option<u16>,
        /// What failed, if anything.
        error: Option<String>,
    },
    /// `limit.hit`: a resource limit that ended or hurt the session.
    LimitHit {
        /// In words.
        message: String,
    },
    /// `exec`: a program started.
    Exec {
        /// Its pid, as the host sees it.
        pid: i32,
        /// The path given to execve.
        path: String,
        /// Its arguments (secrets already masked by the writer).
        argv: Vec<String>,
    },
}

/// One event of the feed, with its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedItem {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// What happened.
    pub activity: Activity,
}

/// What one line of the log means to the dashboards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    /// `session.start`.
    Start(SessionInfo),
    /// An event for the feed.
    Feed(FeedItem),
    /// `session.end`.
    End,
}

/// A record as read here: only the fields shown. Unknown fields are ignored, unknown kinds are
/// [`EventCfg::Other`].
#[derive(Debug, Deserialize)]
struct RecordCfg {
    #[serde(default)]
    time_ms: u64,
    #[serde(flatten)]
    event: EventCfg,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "event")]
enum EventCfg {
    #[serde(rename = "session.start")]
    SessionStart {
        profile: String,
        workspace: String,
        command: Vec<String>,
        layers: Vec<LayerReport>,
        #[serde(default)]
        agent: Option<String>,
    },
    #[serde(rename = "net.decision")]
    NetDecision {
        proto: String,
        host: String,
        port: u16,
        decision: String,
        reason: String,
    },
    #[serde(rename = "syscall.denied")]
    SyscallDenied {
        pid: i32,
        program: String,
        syscall: String,
    },
    #[serde(rename = "api.request")]
    ApiRequest {
        method: String,
        path: String,
        status: Option<u16>,
        error: Option<String>,
    },
    #[serde(rename = "limit.hit")]
    LimitHit { message: String },
    #[serde(rename = "exec")]
    Exec {
        pid: i32,
        path: String,
        argv: Vec<String>,
        #[serde(default)]
        missing: bool,
    },
    #[serde(rename = "session.end")]
    SessionEnd,
    /// Every other kind (env.audit, fs.*, dns.query, summaries, and kinds newer than this binary).
    #[serde(other)]
    Other,
}

/// What `line` means here; None for a kind not shown or a line that is not a record.
pub fn parse_line(line: &str) -> Option<LogEntry> {
    let record: RecordCfg = serde_json::from_str(line).ok()?;
    let time_ms = record.time_ms;
    let activity = match record.event {
        EventCfg::SessionStart {
            profile,
            workspace,
            command,
            layers,
            agent,
        } => {
            return Some(LogEntry::Start(SessionInfo {
                profile,
                workspace,
                command,
                layers,
                agent,
            }))
        }
        EventCfg::SessionEnd => return Some(LogEntry::End),
        EventCfg::Other => return None,
        EventCfg::NetDecision {
            proto,
            host,
            port,
            decision,
            reason,
        } => Activity::Net {
            verdict: if decision == "allowed" {
                Verdict::Allowed
            } else {
                Verdict::Denied
            },
            proto,
            host,
            port,
            reason,
        },
        EventCfg::SyscallDenied {
            pid,
            program,
            syscall,
        } => Activity::SyscallDenied {
            pid,
            program,
            syscall,
        },
        EventCfg::ApiRequest {
            method,
            path,
            status,
            error,
        } => Activity::Api {
            method,
            path,
            status,
            error,
        },
        EventCfg::LimitHit { message } => Activity::LimitHit { message },
        // A PATH search's miss started nothing: not in the feed.
        EventCfg::Exec { missing: true, .. } => return None,
        EventCfg::Exec { pid, path, argv, .. } => Activity::Exec { pid, path, argv },
    };
    Some(LogEntry::Feed(FeedItem { time_ms, activity }))
}

/// Everything read so far from one session's log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionLog {
    /// From `session.start` (None: not written yet).
    pub start: Option<SessionInfo>,
    /// `session.end` was read.
    pub ended: bool,
    /// Connections the proxy allowed.
    pub net_allowed: u64,
    /// Connections the proxy refused.
    pub net_denied: u64,
    /// The last [`FEED_MAX`] events, oldest first.
    pub feed: VecDeque<FeedItem>,
}

impl SessionLog {
    /// Takes in one entry.
    pub fn apply(&mut self, entry: LogEntry) {
        match entry {
            LogEntry::Start(info) => self.start = Some(info),
            LogEntry::End => self.ended = true,
            LogEntry::Feed(item) => {
                if let Activity::Net { verdict, .. } = &item.activity {
                    match verdict {
                        Verdict::Allowed => self.net_allowed += 1,
                        Verdict::Denied => self.net_denied += 1,
                    }
                }
                if self.feed.len() == FEED_MAX {
                    self.feed.pop_front();
                }
                self.feed.push_back(item);
            }
        }
    }
}

/// The complete lines at the start of `bytes` and how many bytes they take (newlines included):
/// a last line without its newline is still being written and is not among them.
pub fn complete_lines(bytes: &[u8]) -> (Vec<&str>, usize) {
    let Some(end) = bytes.iter().rposition(|b| *b == b'\n') else {
        return (Vec::new(), 0);
    };
    let lines = bytes[..end]
        .split(|b| *b == b'\n')
        // A line that is not UTF-8 is not a record: skipped like any other.
        .filter_map(|l| std::str::from_utf8(l).ok())
        .collect();
    (lines, end + 1)
}

/// Reads the complete lines appended to `path` after byte `offset`, and advances `offset` past
/// them. A file shorter than `offset` was replaced: it is read again from the start.
pub fn read_new_lines(path: &Path, offset: &mut u64) -> std::io::Result<Vec<String>> {
    let mut file = std::fs::File::open(path)?;
    if file.metadata()?.len() < *offset {
        *offset = 0;
    }
    file.seek(SeekFrom::Start(*offset))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let (lines, used) = complete_lines(&bytes);
    *offset += u64::try_from(used).unwrap_or(u64::MAX);
    Ok(lines.into_iter().map(str::to_string).collect())
}

/// Where session `id`'s log is: the first of `dirs` that has `<id>/audit.jsonl`.
pub fn find_log(dirs: &[PathBuf], id: &str) -> Option<PathBuf> {
    dirs.iter()
        .map(|d| d.join(id).join("audit.jsonl"))
        .find(|p| p.is_file())
}

/// One session's log, read as it grows.
#[derive(Debug)]
pub struct LogFollower {
    path: PathBuf,
    offset: u64,
    /// What was read so far.
    pub log: SessionLog,
}

impl LogFollower {
    /// A follower of the log at `path`, nothing read yet.
    pub fn new(path: PathBuf) -> LogFollower {
        LogFollower {
            path,
            offset: 0,
            log: SessionLog::default(),
        }
    }

    /// Reads what was appended since the last call. A log that cannot be read (yet) changes
    /// nothing: the next call tries again.
    pub fn poll(&mut self) {
        let Ok(lines) = read_new_lines(&self.path, &mut self.offset) else {
            return;
        };
        for entry in lines.iter().filter_map(|l| parse_line(l)) {
            self.log.apply(entry);
        }
    }
}

/// Session `id`'s log as it is now, read whole (empty when there is none yet).
pub fn read_session_log(dirs: &[PathBuf], id: &str) -> SessionLog {
    match find_log(dirs, id) {
        Some(path) => {
            let mut f = LogFollower::new(path);
            f.poll();
            f.log
        }
        None => SessionLog::default(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use corral_core::audit::{Chain, Event};
    use corral_core::layer::{Layer, Level};
    use pretty_assertions::assert_eq;
    use std::io::Write;

    fn line(event: Event) -> String {
        Chain::default().line(1_000, event)
    }

    fn net(decision: &str, reason: &str) -> Event {
        Event::NetDecision {
            proto: "connect".into(),
            host: "example.com".into(),
            port: 443,
            addr: Some("93.184.216.34:443".into()),
            decision: decision.into(),
            reason: reason.into(),
            rule: None,
            detail: None,
            bytes_up: 10,
            bytes_down: 20,
            duration_ms: 5,
        }
    }

    #[test]
    fn each_kind_shown_is_parsed_whole() {
        let start = Event::SessionStart {
            version: "0.1.0".into(),
            profile: "claude".into(),
            profile_digest: None,
            plan_digest: "ab".into(),
            workspace: "/home/u/proj".into(),
            command: vec!["claude".into()],
            layers: vec![LayerReport {
                layer: Layer::Landlock,
                level: Level::BestEffort,
                achieved: Achieved::Partial,
                detail: "ABI 3".into(),
            }],
            agent: None,
        };
        let info = SessionInfo {
            profile: "claude".into(),
            workspace: "/home/u/proj".into(),
            command: vec!["claude".into()],
            layers: vec![LayerReport {
                layer: Layer::Landlock,
                level: Level::BestEffort,
                achieved: Achieved::Partial,
                detail: "ABI 3".into(),
            }],
            agent: None,
        };
        assert_eq!(parse_line(&line(start)), Some(LogEntry::Start(info.clone())));
        // No `agent` recorded (a log from before it was): the profile's name says.
        assert_eq!(info.agent(), Some("claude"));
        let custom = SessionInfo {
            profile: "/home/u/strict.toml".into(),
            agent: Some("gemini".into()),
            ..info.clone()
        };
        assert_eq!(custom.agent(), Some("gemini"));
        assert_eq!(info.degraded(), vec!["landlock=partial".to_string()]);

        let feed = |activity| {
            Some(LogEntry::Feed(FeedItem {
                time_ms: 1_000,
                activity,
            }))
        };
        assert_eq!(
            parse_line(&line(net("allowed", "allowed"))),
            feed(Activity::Net {
                verdict: Verdict::Allowed,
                proto: "connect".into(),
                host: "example.com".into(),
                port: 443,
                reason: "allowed".into(),
            })
        );
        assert_eq!(
            parse_line(&line(net("denied", "not_in_allowlist"))),
            feed(Activity::Net {
                verdict: Verdict::Denied,
                proto: "connect".into(),
                host: "example.com".into(),
                port: 443,
                reason: "not_in_allowlist".into(),
            })
        );
        // Written by hand: the record kind is new, and this reader must not depend on the enum.
        let denied = r#"{"seq":3,"time_ms":1000,"prev":"x","event":"syscall.denied","pid":42,"program":"gdb","syscall":"ptrace"}"#;
        assert_eq!(
            parse_line(denied),
            feed(Activity::SyscallDenied {
                pid: 42,
                program: "gdb".into(),
                syscall: "ptrace".into(),
            })
        );
        let api = Event::ApiRequest {
            method: "POST".into(),
            path: "/v1/messages".into(),
            status: Some(200),
            bytes_up: 1,
            bytes_down: 2,
            duration_ms: 3,
            error: None,
        };
        assert_eq!(
            parse_line(&line(api)),
            feed(Activity::Api {
                method: "POST".into(),
                path: "/v1/messages".into(),
                status: Some(200),
                error: None,
            })
        );
        let limit = Event::LimitHit {
            message: "memory limit (512 MB) reached".into(),
        };
        assert_eq!(
            parse_line(&line(limit)),
            feed(Activity::LimitHit {
                message: "memory limit (512 MB) reached".into()
            })
        );
        let exec = Event::Exec {
            pid: 7,
            ppid: 1,
            path: "/usr/bin/git".into(),
            argv: vec!["git".into(), "status".into()],
            missing: false,
        };
        assert_eq!(
            parse_line(&line(exec)),
            feed(Activity::Exec {
                pid: 7,
                path: "/usr/bin/git".into(),
                argv: vec!["git".into(), "status".into()],
            })
        );
        // By hand too: session.end gains fields; any of them is fine here.
        let end = r#"{"seq":9,"time_ms":1000,"prev":"x","event":"session.end","exit_code":0,"duration_ms":1,"error":null,"execs":3}"#;
        assert_eq!(parse_line(end), Some(LogEntry::End));
    }

    #[test]
    fn unknown_kinds_and_bad_lines_are_skipped() {
        let fs = Event::FsWatch {
            note: "re-applied".into(),
        };
        for l in [
            line(fs),
            r#"{"seq":0,"time_ms":1,"prev":"x","event":"from.the.future","x":1}"#.to_string(),
            r#"{"seq":0,"time_ms":1,"prev":"x","event":"exec","pid":"not a number"}"#.to_string(),
            "not json".to_string(),
            String::new(),
        ] {
            assert_eq!(parse_line(&l), None, "{l}");
        }
        let mut log = SessionLog::default();
        for e in [net("allowed", "allowed"), net("denied", "sni_mismatch")] {
            log.apply(parse_line(&line(e)).unwrap());
        }
        assert_eq!((log.net_allowed, log.net_denied, log.feed.len()), (1, 1, 2));
    }

    #[test]
    fn the_feed_keeps_the_last_events_only() {
        let mut log = SessionLog::default();
        for i in 0..(FEED_MAX + 10) {
            log.apply(LogEntry::Feed(FeedItem {
                time_ms: u64::try_from(i).unwrap(),
                activity: Activity::LimitHit {
                    message: String::new(),
                },
            }));
        }
        assert_eq!(log.feed.len(), FEED_MAX);
        assert_eq!(log.feed.front().map(|f| f.time_ms), Some(10));
        assert_eq!(
            log.feed.back().map(|f| f.time_ms),
            Some(u64::try_from(FEED_MAX + 9).unwrap())
        );
    }

    #[test]
    fn incremental_reads_return_only_new_complete_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(b"one\ntwo\nthr").unwrap();
        let mut offset = 0;
        assert_eq!(read_new_lines(&path, &mut offset).unwrap(), ["one", "two"]);
        assert_eq!(offset, 8);
        assert_eq!(
            read_new_lines(&path, &mut offset).unwrap(),
            Vec::<String>::new(),
            "the half-written line waits"
        );
        f.write_all(b"ee\nfour\n").unwrap();
        assert_eq!(read_new_lines(&path, &mut offset).unwrap(), ["three", "four"]);
        assert_eq!(offset, 19);
        assert_eq!(read_new_lines(&path, &mut offset).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_follower_counts_across_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s1").join("audit.jsonl");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut chain = Chain::default();
        let first = chain.line(1, net("allowed", "allowed"));
        let second = chain.line(2, net("denied", "not_in_allowlist"));
        std::fs::write(&path, format!("{first}{}", &second[..10])).unwrap();
        assert_eq!(
            find_log(&[dir.path().join("nope"), dir.path().to_path_buf()], "s1"),
            Some(path.clone())
        );
        let mut f = LogFollower::new(path.clone());
        f.poll();
        assert_eq!((f.log.net_allowed, f.log.net_denied), (1, 0));
        std::fs::write(&path, format!("{first}{second}")).unwrap();
        f.poll();
        assert_eq!((f.log.net_allowed, f.log.net_denied), (1, 1));
        assert_eq!(read_session_log(&[dir.path().to_path_buf()], "s1"), f.log);
        assert_eq!(
            read_session_log(&[dir.path().to_path_buf()], "s2"),
            SessionLog::default()
        );
    }
}
