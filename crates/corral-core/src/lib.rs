//! corral's pure policy: the profile schema and merge, the launch [`plan::Plan`], layer levels, and
//! the seccomp and Landlock policies as data. No syscalls, no environment, no clock: every fact about
//! the host comes in as an argument, so all of it is testable anywhere.
#![forbid(unsafe_code)]

pub mod agents;
pub mod audit;
pub mod changes;
pub mod envaudit;
pub mod exe;
pub mod host;
pub mod landlock_policy;
pub mod layer;
pub mod plan;
pub mod profile;
pub mod render;
pub mod sandbox_md;
pub mod seccomp_policy;
pub mod secrets;
pub mod tighten;
pub mod why;
