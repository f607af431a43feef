//! Sandbox layers, the level a profile asks for (`required` / `best_effort`) and the level a launch
//! achieved (`full` / `partial` / `none`).
//!
//! Invariant: a layer is never weakened silently. Every achieved level travels as a [`LayerReport`]
//! to `corral check`, the run's warnings and (later) the audit log.

use serde::{Deserialize, Serialize};

/// One kernel-dependent protection layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// `CLONE_NEWUSER`: no host capabilities; the uid is mapped 1:1.
    Userns,
    /// `CLONE_NEWNS` + new root: the filesystem view.
    Mountns,
    /// `CLONE_NEWPID` + fresh `/proc`: host processes are invisible.
    Pidns,
    /// `CLONE_NEWIPC`: System V IPC and POSIX message queues are private.
    Ipcns,
    /// `CLONE_NEWUTS`: hostname `corral`.
    Utsns,
    /// `CLONE_NEWCGROUP`: the cgroup tree is rooted at the sandbox.
    Cgroupns,
    /// `CLONE_NEWNET`: only `lo`.
    Netns,
    /// `PR_SET_NO_NEW_PRIVS` and cleared capability sets.
    NoNewPrivs,
    /// Landlock filesystem, TCP and scope rules.
    Landlock,
    /// seccomp-bpf deny list.
    Seccomp,
    /// rlimits (core, nproc, fsize, nofile, cpu).
    Rlimits,
    /// A cgroup for the session: memory, pids and CPU limits, and killing the whole session.
    Cgroup,
}

impl Layer {
    /// Every layer, in the order the launch applies them.
    pub const ALL: [Layer; 12] = [
        Layer::Userns,
        Layer::Mountns,
        Layer::Pidns,
        Layer::Ipcns,
        Layer::Utsns,
        Layer::Cgroupns,
        Layer::Netns,
        Layer::NoNewPrivs,
        Layer::Landlock,
        Layer::Seccomp,
        Layer::Rlimits,
        Layer::Cgroup,
    ];

    /// The name used in profiles, reports and errors.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Userns => "userns",
            Layer::Mountns => "mountns",
            Layer::Pidns => "pidns",
            Layer::Ipcns => "ipcns",
            Layer::Utsns => "utsns",
            Layer::Cgroupns => "cgroupns",
            Layer::Netns => "netns",
            Layer::NoNewPrivs => "no_new_privs",
            Layer::Landlock => "landlock",
            Layer::Seccomp => "seccomp",
            Layer::Rlimits => "rlimits",
            Layer::Cgroup => "cgroup",
        }
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a profile demands of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// The launch is refused when the layer cannot be had in full.
    Required,
    /// The launch proceeds without it; the degradation is reported everywhere.
    BestEffort,
}

/// What a launch actually got for a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Achieved {
    /// Not in effect.
    None,
    /// In effect, but weaker than the plan asked (e.g. an older Landlock ABI).
    Partial,
    /// In effect as planned.
    Full,
}

impl std::fmt::Display for Achieved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Achieved::None => "none",
            Achieved::Partial => "partial",
            Achieved::Full => "full",
        })
    }
}

/// The outcome for one layer, with the reason when it is not `full`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerReport {
    /// Which layer.
    pub layer: Layer,
    /// What the profile asked for.
    pub level: Level,
    /// What the launch (or the probe) got.
    pub achieved: Achieved,
    /// Why it is not `full`, or a short description of what is enforced.
    pub detail: String,
}

impl LayerReport {
    /// True when this report must stop the launch: a required layer that is not fully in effect.
    pub fn refuses_launch(&self) -> bool {
        self.level == Level::Required && self.achieved != Achieved::Full
    }
}
