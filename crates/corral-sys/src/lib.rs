//! corral's Linux executor. Everything that talks to the kernel lives here, and only here may
//! `unsafe` appear, each block under a `// SAFETY:` comment naming the invariant it relies on.

pub mod landlock;
pub mod probe;
pub mod seccomp;
