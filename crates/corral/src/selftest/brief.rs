//! What `corral selftest` tells its probe (the attacker) about the bait it planted, and what the
//! probe answers. Both sides build the attack list from the same brief, so attack ids agree.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where the probe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Without the sandbox: every attack must succeed, or it cannot tell an escape.
    Control,
    /// Inside the sandbox made from the user's profile.
    Sandbox,
}

/// Which attacks a run makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Set {
    /// Everything but resource exhaustion.
    Main,
    /// The proxy's TLS server-name check, in a sandbox whose proxy may dial a bait on the host's
    /// loopback (a fronted ClientHello must never reach it).
    Tls,
    /// Resource exhaustion, in a sandbox with small limits of its own.
    Resources,
}

/// The limits the resource attacks exhaust (the sandbox's, as its plan says).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Limits {
    /// `limits.pids`.
    pub pids: Option<u64>,
    /// `limits.memory_mb`.
    pub memory_mb: Option<u64>,
    /// `limits.file_mb`.
    pub file_mb: Option<u64>,
    /// `limits.tmp_mb`.
    pub tmp_mb: Option<u64>,
    /// `limits.cpu_seconds`.
    pub cpu_seconds: Option<u64>,
}

/// A secret path and the bait planted there.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretBait {
    /// As the built-in list spells it (`~/.ssh`).
    pub name: String,
    /// The bait file (the secret itself, or a file inside the secret directory).
    pub file: PathBuf,
}

/// Everything the probe needs to know.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Brief {
    /// Control or sandbox.
    pub mode: Mode,
    /// Which attacks.
    pub set: Set,
    /// In every bait file, variable and message: finding it means the attack got through.
    pub token: String,
    /// The (fake) home directory with the bait.
    pub home: PathBuf,
    /// The project (the sandbox's workspace).
    pub workspace: PathBuf,
    /// A directory outside both (its unix sockets and files must be unreachable).
    pub outside: PathBuf,
    /// Secret paths with bait.
    pub secrets: Vec<SecretBait>,
    /// Protected paths in the workspace (relative), from the plan.
    pub protected: Vec<String>,
    /// Files outside the workspace that the sandbox may show read-only (rc files, tools):
    /// chmod, utime, truncate and xattr attacks aim at them.
    pub outside_files: Vec<PathBuf>,
    /// A bait file in the host's /tmp.
    pub host_tmp_file: PathBuf,
    /// A bait file in the host's /dev/shm.
    pub host_shm_file: PathBuf,
    /// TCP listener on the host's 127.0.0.1.
    pub tcp_port: u16,
    /// TCP listener on the host's ::1, when the host has IPv6 loopback.
    pub tcp6_port: Option<u16>,
    /// UDP socket on the host's 127.0.0.1.
    pub udp_port: u16,
    /// A DNS server on the host's 127.0.0.1 that answers everything.
    pub dns_port: u16,
    /// An abstract unix socket name (without the leading NUL) listening on the host.
    pub abstract_name: String,
    /// A pathname unix socket listening outside the workspace.
    pub unix_path: PathBuf,
    /// A fake ssh-agent socket (`SSH_AUTH_SOCK` on the host).
    pub ssh_agent: PathBuf,
    /// A process outside with the token in its environment.
    pub sentinel_pid: i32,
    /// A descriptor open on a secret that the probe's launcher inherited.
    pub inherited_fd: i32,
    /// The host's hostname.
    pub host_hostname: String,
    /// The proxy to attack: the sandbox's (from its environment) or, in the control run, an open
    /// proxy that lets everything through.
    pub proxy: Option<String>,
    /// A host the proxy allows (the profile's first allowlist entry), for SNI and suffix tricks.
    pub allowed_host: Option<String>,
    /// For the resource attacks.
    pub limits: Limits,
}

/// What an attack saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "snake_case")]
pub enum Probe {
    /// It got through (what it got).
    Escaped(String),
    /// It was refused (how).
    Blocked(String),
    /// It cannot be tried here (why).
    Skipped(String),
    /// It was tried; only the host can tell whether it got through (what was done).
    Attempted(String),
    /// The attack itself broke (it panicked): no verdict either way.
    Failed(String),
}

/// One line of the probe's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeLine {
    /// The attack id.
    pub id: String,
    /// What it saw.
    #[serde(flatten)]
    pub probe: Probe,
}
