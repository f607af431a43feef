//! corral's Linux executor. Everything that talks to the kernel lives here, and only here may
//! `unsafe` appear, each block under a `// SAFETY:` comment naming the invariant it relies on.

pub mod attack;
pub mod cgroup;
pub mod execwatch;
pub mod facts;
pub mod init;
pub mod landlock;
pub mod launch;
pub mod ll;
pub mod mountinfo;
pub mod mounts;
pub mod netsock;
pub mod probe;
pub mod protocol;
pub mod seccomp;
pub mod session;
pub mod watch;
