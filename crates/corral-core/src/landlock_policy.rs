//! The Landlock policy as data: which paths (inside the new root) get which access, and which TCP
//! ports may be connected to.
//!
//! Landlock is the second line behind the mount plan: the rules mirror the mounts, so a mistake in
//! the mount plan (a path bound that should not be) is still unreadable. Rules are added after the
//! last mount (Landlock forbids mount changes once enforced) and after `no_new_privs`.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Filesystem access classes; corral-sys maps each to the Landlock rights the running ABI has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsAccess {
    /// List directories only (`ReadDir`).
    ListDir,
    /// Read files and list directories (`ReadFile`, `ReadDir`).
    Read,
    /// `Read` plus `Execute`.
    ReadExec,
    /// Read, write files in place, truncate, and `ioctl` on devices (for `/dev`): no create/remove.
    ReadWriteDev,
    /// Read and write files in place (for `/proc`): no create, no remove, no exec.
    ReadWriteFiles,
    /// Everything: read, write, create, remove, rename across directories (`Refer`), truncate, exec.
    Full,
    /// `Full` without `Execute` (writable trees when `capabilities.allow_shell = false`).
    FullNoExec,
    /// Read and execute one file (the command, its interpreter, `capabilities.exec`).
    Exec,
}

/// One Landlock path rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockRule {
    /// Path inside the sandbox (after `pivot_root`).
    pub path: PathBuf,
    /// What is allowed beneath it.
    pub access: FsAccess,
}

/// The Landlock part of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockPolicy {
    /// Path rules; everything not beneath one of them is denied every handled right.
    pub rules: Vec<LandlockRule>,
    /// When true, TCP connect is handled (ABI ≥ 4) and allowed only to `connect_ports`.
    pub restrict_tcp_connect: bool,
    /// TCP ports connect(2) may reach (the proxy port, `network.local_ports`).
    pub connect_ports: Vec<u16>,
    /// Scope abstract unix sockets to the sandbox (ABI ≥ 6).
    pub scope_abstract_unix: bool,
    /// Scope signals to the sandbox (ABI ≥ 6).
    pub scope_signals: bool,
    /// `capabilities.allow_shell = false`: no rule grants `Execute` except `Exec` rules, and init
    /// adds one for the resolved command and the interpreter it needs (ELF `PT_INTERP` or `#!`).
    #[serde(default)]
    pub exec_only: bool,
}
