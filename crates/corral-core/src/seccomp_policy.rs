//! The seccomp policy as data: which system calls the sandboxed program may not make.
//!
//! The policy is a deny list answered with `EPERM` (not a kill: programs that probe for a feature,
//! e.g. a runtime trying `io_uring_setup`, fall back cleanly). A few calls answer `ENOSYS` instead so
//! that libc falls back to an older call we *can* filter: `clone3` keeps its flags in memory, where a
//! BPF filter cannot read them, so it must go through `clone`, whose flags are an argument.
//! corral-sys compiles this value into BPF; nothing here touches the kernel.

use serde::{Deserialize, Serialize};

/// Namespace flags that `clone` and `unshare` may not carry (from `<linux/sched.h>`).
pub const NAMESPACE_CLONE_FLAGS: [(&str, u64); 8] = [
    ("CLONE_NEWTIME", 0x0000_0080),
    ("CLONE_NEWNS", 0x0002_0000),
    ("CLONE_NEWCGROUP", 0x0200_0000),
    ("CLONE_NEWUTS", 0x0400_0000),
    ("CLONE_NEWIPC", 0x0800_0000),
    ("CLONE_NEWUSER", 0x1000_0000),
    ("CLONE_NEWPID", 0x2000_0000),
    ("CLONE_NEWNET", 0x4000_0000),
];

/// A denied `ioctl` request, compared on its low 32 bits (the kernel truncates `cmd` to `unsigned
/// int`, so a caller could otherwise set high bits to slip past a 64-bit comparison).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoctlDeny {
    /// Symbolic name, for reports.
    pub name: String,
    /// The request number.
    pub request: u32,
}

/// The whole seccomp policy for the sandboxed program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompPolicy {
    /// System calls denied outright with `EPERM`, by name (x86_64 / aarch64 names).
    pub deny: Vec<String>,
    /// System calls that answer `ENOSYS` so libc falls back (e.g. `clone3` → `clone`).
    pub enosys: Vec<String>,
    /// `clone` and `unshare` are denied with `EPERM` when their flags carry any of these.
    pub deny_namespace_flags: Vec<(String, u64)>,
    /// `ioctl` requests denied with `EPERM`.
    pub deny_ioctls: Vec<IoctlDeny>,
    /// `socket`/`socketpair` address families allowed (others get `EPERM`): numbers from
    /// `<sys/socket.h>`.
    pub allow_socket_families: Vec<(String, u32)>,
    /// When `AF_NETLINK` is allowed, the only netlink protocols allowed (`NETLINK_ROUTE` = 0).
    pub allow_netlink_protocols: Vec<(String, u32)>,
    /// x32 ABI system calls (nr with bit 30 set) answer `ENOSYS`; other architectures' calls kill.
    pub deny_x32: bool,
}

impl SeccompPolicy {
    /// The default policy every profile starts from (see GUARANTEES.md, "seccomp").
    pub fn default_deny() -> Self {
        let deny = [
            // Inspecting or changing other processes' memory.
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "kcmp",
            "pidfd_getfd",
            // Kernel keyrings: shared with the host user's session keyring.
            "keyctl",
            "add_key",
            "request_key",
            // Large kernel attack surface, not needed by build tools.
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            // Changing the filesystem view: the mount plan is final.
            "mount",
            "umount2",
            "pivot_root",
            "chroot",
            "open_tree",
            "open_tree_attr",
            "move_mount",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "mount_setattr",
            // Entering other namespaces.
            "setns",
            // Machine-wide operations.
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "swapon",
            "swapoff",
            "reboot",
            "acct",
            "quotactl",
            "syslog",
            // File handles bypass path-based checks (the "shocker" escape).
            "open_by_handle_at",
            "name_to_handle_at",
            // Old, rarely needed, historically buggy.
            "uselib",
            "lookup_dcookie",
            "vhangup",
        ];
        SeccompPolicy {
            deny: deny.iter().map(|s| (*s).to_string()).collect(),
            enosys: vec!["clone3".to_string()],
            deny_namespace_flags: NAMESPACE_CLONE_FLAGS
                .iter()
                .map(|(n, v)| ((*n).to_string(), *v))
                .collect(),
            deny_ioctls: vec![
                // Injects input into the terminal: would type commands into the user's shell.
                IoctlDeny {
                    name: "TIOCSTI".into(),
                    request: 0x5412,
                },
                // Console control (selection paste is another injection path).
                IoctlDeny {
                    name: "TIOCLINUX".into(),
                    request: 0x541C,
                },
            ],
            allow_socket_families: vec![
                ("AF_UNIX".into(), 1),
                ("AF_INET".into(), 2),
                ("AF_INET6".into(), 10),
                ("AF_NETLINK".into(), 16),
            ],
            allow_netlink_protocols: vec![("NETLINK_ROUTE".into(), 0)],
            deny_x32: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personality_is_denied_but_not_common_calls() {
        let p = SeccompPolicy::default_deny();
        for call in [
            "ptrace",
            "bpf",
            "io_uring_setup",
            "mount",
            "setns",
            "open_by_handle_at",
        ] {
            assert!(p.deny.iter().any(|d| d == call), "{call} must be denied");
        }
        for call in ["read", "write", "openat", "clone", "execve", "socket", "ioctl"] {
            assert!(
                !p.deny.iter().any(|d| d == call),
                "{call} must not be denied outright"
            );
        }
    }
}
