//! What the supervisor and the sandbox's init say to each other over their socketpair.
//!
//! Supervisor → init: the [`Plan`](corral_core::plan::Plan) as one JSON line. Init → supervisor: JSON
//! lines of [`InitMsg`]. Before init runs (between clone and exec) the child can only report a
//! failure as raw bytes: [`EARLY_FAILURE_MAGIC`], a stage byte and the errno (little-endian i32).
//! EOF on the socket means the other side is gone: init then kills the sandbox.

use corral_core::layer::LayerReport;
use serde::{Deserialize, Serialize};

/// First byte of an early-failure record (never the first byte of a JSON line).
pub const EARLY_FAILURE_MAGIC: u8 = 0xFF;

/// Stages of the cloned child before it execs init, for early-failure records.
pub const EARLY_STAGES: [&str; 8] = [
    "?",
    "write /proc/self/setgroups",
    "write /proc/self/uid_map",
    "write /proc/self/gid_map",
    "raise ambient capabilities",
    "set up the control descriptor",
    "prctl(PR_SET_PDEATHSIG)",
    "execve(/proc/self/exe __init)",
];

/// Words in the seccomp layer's detail when the kernel refused the exec listener (the session
/// runs without `exec` records; corral warns about it).
pub const EXEC_AUDIT_OFF: &str = "exec events NOT recorded";

/// A message from the sandbox's init.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InitMsg {
    /// What init achieved for the layers it applies (mounts, no_new_privs, Landlock, seccomp,
    /// rlimits); the supervisor adds the namespace layers it got from clone.
    Layers {
        /// One report per layer.
        reports: Vec<LayerReport>,
    },
    /// Sent with the exec listener attached (SCM_RIGHTS): from now on every execve inside waits
    /// for the supervisor to read it (see [`crate::execwatch`]).
    ExecListener,
    /// Sent with descriptors attached (SCM_RIGHTS), all bound on 127.0.0.1 of the sandbox's
    /// network namespace, in this order: when `proxy` (`network.mode = "proxy"`), the proxy's
    /// listening TCP socket, the DNS sink's UDP socket and its listening TCP socket; when
    /// `gateway` (an agent's API gateway), its listening TCP socket. Init keeps no copy.
    NetSockets {
        /// The three proxy and DNS sockets come first.
        proxy: bool,
        /// The gateway's socket comes last.
        gateway: bool,
    },
    /// The command is running.
    Started {
        /// Its pid inside the sandbox.
        pid: i32,
    },
    /// The launch failed; init exits with `code` (125, 126 or 127).
    Error {
        /// Exit code.
        code: i32,
        /// What failed, for the user.
        message: String,
    },
}
