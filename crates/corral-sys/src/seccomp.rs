//! Compiles the seccomp policy ([`SeccompPolicy`], pure data from corral-core) into BPF and installs
//! it on the calling thread.
//!
//! # What it enforces
//!
//! Two filters. Both answer with an errno rather than a kill, so that a program probing for a feature
//! (a runtime trying `io_uring_setup`, glibc trying `clone3`) falls back cleanly; only calls through a
//! foreign ABI kill.
//!
//! 1. The *prefilter*, a few hand-written instructions (see `build_prefilter`):
//!    - a call through another ABI than the native one (i386 `int 0x80` on x86_64, arm32 compat on
//!      aarch64) kills the process: its numbers name other calls, so no number-based rule applies;
//!    - on x86_64, an x32 call (number with bit 30 set) answers `ENOSYS`: it carries the native arch
//!      value but a different number, so it would slip past every rule of the deny list
//!      (seccompiler checks the arch, not this bit);
//!    - the calls in `enosys` (`clone3`) answer `ENOSYS`: `clone3` keeps its flags in memory, where
//!      BPF cannot read them, and `ENOSYS` makes libc fall back to `clone`, whose flags are checked;
//!    - everything else is allowed here (the second filter decides).
//! 2. The *deny list*, compiled by `seccompiler`: `EPERM` for every call in `deny`; for `clone` and
//!    `unshare` whose flags (arg 0) carry a namespace flag; for `ioctl` whose request (arg 1, low 32
//!    bits) is denied; for `socket`/`socketpair` whose family (arg 0) is not allowed, or whose family
//!    is `AF_NETLINK` and protocol (arg 2) is not allowed. Everything else is allowed.
//!
//! The kernel runs every filter and keeps the verdict of highest precedence (kill > errno > allow);
//! between equal actions the most recently installed filter wins (`seccomp_run_filters` in
//! `kernel/seccomp.c`). So the deny list is installed last: a call listed both under `deny` and
//! `enosys` answers `EPERM`.
//!
//! # Order it relies on
//!
//! - [`compile`] allocates, so it runs before fork; [`install`] does not allocate.
//! - `no_new_privs` is already set (the launcher does it): without it and without `CAP_SYS_ADMIN`
//!   the kernel answers `EACCES` ([`SeccompError::NoNewPrivs`]). This module never sets it.
//! - [`install`] is the last step before `execve`: the filters deny `mount`, `setns` and namespace
//!   flags, which the set-up itself needs. `execve` stays allowed; the filters are inherited across
//!   fork and execve and can never be removed.
//! - The filters apply to the calling thread only (no `SECCOMP_FILTER_FLAG_TSYNC`): the child is
//!   single-threaded at that point.
//!
//! # Limits
//!
//! - BPF sees registers, not memory: pointer arguments (`clone3`'s flags, `io_uring` submissions)
//!   cannot be inspected, hence `ENOSYS` for `clone3` and whole-call denial for `io_uring_*`.
//! - Only `ioctl`, `clone`, `unshare`, `socket` and `socketpair` have argument checks. Every other
//!   call's verdict depends on its number alone, so the kernel's per-filter action cache (Linux
//!   5.11+) answers it without running BPF: ~35–50 ns per call whatever the filter's size
//!   (DESIGN.md §8). Keep it that way.
//! - `ioctl` requests are compared on their low 32 bits, as the kernel truncates `cmd` to `unsigned
//!   int`; a caller setting high bits gains nothing.
//! - x86_64 and aarch64 only. A name that exists on the other of the two but not on the one being
//!   built (`uselib` on aarch64) denies nothing and is reported ([`CompiledSeccomp::not_on_this_arch`],
//!   [`summary`]); a name that exists on neither is an error.
//! - With `deny_x32 = false`, x32 calls are not filtered at all on a kernel that enables the x32 ABI.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;

use corral_core::seccomp_policy::SeccompPolicy;
use seccompiler::{
    sock_filter, BackendError, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

/// Filters compiled from a [`SeccompPolicy`]: built before fork (allocation allowed), installed in
/// the child right before `execve` by [`install`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledSeccomp {
    /// Installed first: arch check, x32, `ENOSYS` answers.
    prefilter: BpfProgram,
    /// Installed second: `EPERM` for the deny list and the argument checks.
    deny_list: BpfProgram,
    /// Policy names skipped because the call does not exist on this architecture.
    not_on_this_arch: Vec<String>,
}

impl CompiledSeccomp {
    /// Names from the policy that were skipped because the system call does not exist on this
    /// architecture (there is nothing to deny). Empty on x86_64 with the default policy.
    pub fn not_on_this_arch(&self) -> &[String] {
        &self.not_on_this_arch
    }

    /// The BPF programs in the order [`install`] installs them (prefilter, then deny list).
    pub fn programs(&self) -> [&BpfProgram; 2] {
        [&self.prefilter, &self.deny_list]
    }
}

/// Why the seccomp policy could not be compiled or installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// A name in the policy is a system call on neither x86_64 nor aarch64.
    #[error("seccomp: unknown system call {name:?} in policy")]
    UnknownSyscall {
        /// The name as written in the policy.
        name: String,
    },
    /// More `ENOSYS` answers than the prefilter's one-byte jump offsets can reach.
    #[error("seccomp: {count} system calls listed under `enosys`, more than the prefilter can hold ({max})")]
    TooManyEnosys {
        /// Distinct calls listed.
        count: usize,
        /// The most the prefilter can hold.
        max: usize,
    },
    /// More calls to watch than the observation filter's one-byte jumps can reach.
    #[error("seccomp: {count} denied system calls, more than the observation filter can hold")]
    TooManyWatched {
        /// Calls to watch.
        count: usize,
    },
    /// seccompiler refused the deny list (e.g. longer than the kernel's 4096 instructions).
    #[error("seccomp: compiling the deny list into BPF: {source}")]
    Compile {
        /// seccompiler's error.
        #[from]
        source: BackendError,
    },
    /// `seccomp(2)` answered `EACCES`: the thread has neither `no_new_privs` nor `CAP_SYS_ADMIN`.
    #[error("seccomp(SECCOMP_SET_MODE_FILTER): EACCES (no_new_privs is not set)")]
    NoNewPrivs {
        /// The `EACCES` from the kernel.
        #[source]
        source: io::Error,
    },
    /// `seccomp(2)` failed otherwise (`EINVAL`: no seccomp filter support, or a malformed program).
    #[error("seccomp(SECCOMP_SET_MODE_FILTER, 0, {{len={len}}}) for the {filter}: {}", ErrnoName(.source))]
    Install {
        /// Which filter: `prefilter` or `deny list`.
        filter: &'static str,
        /// Its length in instructions.
        len: usize,
        /// The error from the kernel.
        #[source]
        source: io::Error,
    },
}

/// seccompiler's name for the architecture being built.
#[cfg(target_arch = "x86_64")]
const TARGET_ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const TARGET_ARCH: TargetArch = TargetArch::aarch64;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("corral's seccomp layer supports x86_64 and aarch64 only");

/// `AUDIT_ARCH_X86_64` from `<linux/audit.h>`: `EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_NATIVE: u32 = 62 | 0x8000_0000 | 0x4000_0000;
/// `AUDIT_ARCH_AARCH64` from `<linux/audit.h>`: `EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`.
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_NATIVE: u32 = 183 | 0x8000_0000 | 0x4000_0000;

/// `__X32_SYSCALL_BIT` from `<asm/unistd.h>` (x86_64): x32 ABI calls have this bit set in `nr`.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// BPF opcodes from `<linux/bpf_common.h>` (libc has them as u32; `sock_filter.code` is u16).
const BPF_LD: u16 = 0x00;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_JMP: u16 = 0x05;
const BPF_JEQ: u16 = 0x10;
const BPF_JSET: u16 = 0x40;
const BPF_JA: u16 = 0x00;
// Used by the x32 check only.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const BPF_JGE: u16 = 0x30;
const BPF_RET: u16 = 0x06;
const BPF_K: u16 = 0x00;

// Offsets in `struct seccomp_data` (`<linux/seccomp.h>`): `int nr; __u32 arch; ...`.
const SECCOMP_DATA_NR: u32 = 0;
const SECCOMP_DATA_ARCH: u32 = 4;

const EPERM: u32 = libc::EPERM.unsigned_abs();
const ENOSYS: u32 = libc::ENOSYS.unsigned_abs();

/// `AF_NETLINK` from `<sys/socket.h>`.
const AF_NETLINK: u32 = libc::AF_NETLINK.unsigned_abs();

/// Argument positions (same on x86_64 and aarch64): `clone(flags, ...)`, `unshare(flags)`,
/// `ioctl(fd, request, ...)`, `socket(family, type, protocol)`, `socketpair(family, type, protocol, sv)`.
const ARG_FLAGS: u8 = 0;
const ARG_IOCTL_REQUEST: u8 = 1;
const ARG_SOCKET_FAMILY: u8 = 0;
const ARG_SOCKET_PROTOCOL: u8 = 2;

/// Compiles `policy` into the prefilter and the deny list. Pure apart from allocation: call it before
/// fork. Fails on a name that is a system call on no supported architecture.
pub fn compile(policy: &SeccompPolicy) -> Result<CompiledSeccomp, SeccompError> {
    let mut not_on_this_arch = Vec::new();
    let denied = resolve(&policy.deny, &mut not_on_this_arch)?;
    let enosys = resolve(&policy.enosys, &mut not_on_this_arch)?;
    let prefilter = build_prefilter(&enosys, policy.deny_x32)?;
    let filter = SeccompFilter::new(
        deny_list_rules(policy, &denied)?,
        SeccompAction::Allow,
        SeccompAction::Errno(EPERM),
        TARGET_ARCH,
    )?;
    let deny_list = BpfProgram::try_from(filter)?;
    Ok(CompiledSeccomp {
        prefilter,
        deny_list,
        not_on_this_arch,
    })
}

/// Installs every filter of `compiled` on the calling thread: the prefilter, then the deny list.
///
/// Precondition: `no_new_privs` is set on this thread (the launcher does it; this function does not).
/// Does not allocate, so it may run in a child between fork and execve. Call it last before `execve`.
pub fn install(compiled: &CompiledSeccomp) -> Result<(), SeccompError> {
    // The prefilter first, so that the deny list, installed last, wins ties between equal actions.
    install_filter("prefilter", &compiled.prefilter)?;
    install_filter("deny list", &compiled.deny_list)
}

/// Human summary of `policy` for `--dry-run` and `corral check`, one line per kind of rule, e.g.
/// `deny EPERM: ptrace, process_vm_readv, ...`. Names unknown on every supported architecture are
/// listed too (on which [`compile`] fails).
pub fn summary(policy: &SeccompPolicy) -> Vec<String> {
    let mut lines = vec![format!(
        "kill process: system calls through any ABI but the native {}",
        std::env::consts::ARCH
    )];
    #[cfg(target_arch = "x86_64")]
    lines.push(if policy.deny_x32 {
        "answer ENOSYS: x32 system calls (number with bit 0x40000000)".to_string()
    } else {
        "allow, NOT FILTERED: x32 system calls (deny_x32 = false)".to_string()
    });
    if !policy.enosys.is_empty() {
        lines.push(format!(
            "answer ENOSYS (libc falls back): {}",
            policy.enosys.join(", ")
        ));
    }
    if !policy.deny.is_empty() {
        lines.push(format!("deny EPERM: {}", policy.deny.join(", ")));
    }
    if !policy.deny_namespace_flags.is_empty() {
        let flags: Vec<&str> = policy
            .deny_namespace_flags
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        lines.push(format!(
            "deny EPERM: clone, unshare with any of {}",
            flags.join(", ")
        ));
    }
    if !policy.deny_ioctls.is_empty() {
        let requests: Vec<String> = policy
            .deny_ioctls
            .iter()
            .map(|d| format!("{} ({:#x})", d.name, d.request))
            .collect();
        lines.push(format!(
            "deny EPERM: ioctl {} (request compared on its low 32 bits)",
            requests.join(", ")
        ));
    }
    if policy.allow_socket_families.is_empty() {
        lines.push("deny EPERM: socket, socketpair (no family allowed)".to_string());
    } else {
        let families: Vec<String> = policy
            .allow_socket_families
            .iter()
            .map(|(name, n)| format!("{name} ({n})"))
            .collect();
        lines.push(format!(
            "deny EPERM: socket, socketpair unless the family is {}",
            families.join(", ")
        ));
    }
    if policy.allow_socket_families.iter().any(|(_, n)| *n == AF_NETLINK) {
        let protocols: Vec<String> = policy
            .allow_netlink_protocols
            .iter()
            .map(|(name, n)| format!("{name} ({n})"))
            .collect();
        lines.push(if protocols.is_empty() {
            "deny EPERM: AF_NETLINK sockets (no protocol allowed)".to_string()
        } else {
            format!(
                "deny EPERM: AF_NETLINK sockets unless the protocol is {}",
                protocols.join(", ")
            )
        });
    }
    let mut absent = Vec::new();
    let mut unknown = Vec::new();
    for name in policy.deny.iter().chain(&policy.enosys) {
        match lookup(name) {
            Syscall::Number(_) => {}
            Syscall::NotOnThisArch => absent.push(name.as_str()),
            Syscall::Unknown => unknown.push(name.as_str()),
        }
    }
    if !absent.is_empty() {
        lines.push(format!(
            "skipped, not on {}: {}",
            std::env::consts::ARCH,
            absent.join(", ")
        ));
    }
    if !unknown.is_empty() {
        lines.push(format!(
            "unknown system calls (the launch fails): {}",
            unknown.join(", ")
        ));
    }
    lines
}

/// The prefilter, written by hand because seccompiler checks the arch but not the x32 bit, and has a
/// single match action (here: `EPERM`) where these calls need `ENOSYS`:
///
/// ```text
///     ld  [arch]
///     jeq #AUDIT_ARCH_NATIVE, +1, +0
///     ret #KILL_PROCESS                 another ABI: its numbers name other calls
///     ld  [nr]
///     jge #0x40000000, enosys           x86_64 with deny_x32 only: x32 calls (and no native call)
///     jeq #nr(clone3), enosys           one per `enosys` entry
///     ret #ALLOW
/// enosys:
///     ret #ERRNO(ENOSYS)
/// ```
///
/// The verdict reads `arch` and `nr` only, never an argument, so the kernel's action cache holds.
fn build_prefilter(enosys: &BTreeSet<u32>, deny_x32: bool) -> Result<BpfProgram, SeccompError> {
    // Conditional jumps whose true branch answers ENOSYS.
    let mut to_enosys: Vec<(u16, u32)> = Vec::with_capacity(enosys.len() + 1);
    // x32 calls pass the arch check (they report AUDIT_ARCH_X86_64) but use numbers no rule of the deny
    // list names: answer them all ENOSYS. Any number at or above the bit is either x32 or no call at all.
    #[cfg(target_arch = "x86_64")]
    if deny_x32 {
        to_enosys.push((BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT));
    }
    // No x32 ABI elsewhere; a compat (arm32) call fails the arch check instead.
    #[cfg(not(target_arch = "x86_64"))]
    let _ = deny_x32;
    to_enosys.extend(enosys.iter().map(|nr| (BPF_JMP | BPF_JEQ | BPF_K, *nr)));

    let checks = to_enosys.len();
    let mut program = Vec::with_capacity(checks + 6);
    program.push(bpf_stmt(BPF_LD | BPF_W | BPF_ABS, SECCOMP_DATA_ARCH));
    program.push(bpf_jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_NATIVE, 1, 0));
    program.push(bpf_stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_KILL_PROCESS));
    program.push(bpf_stmt(BPF_LD | BPF_W | BPF_ABS, SECCOMP_DATA_NR));
    for (i, (code, k)) in to_enosys.into_iter().enumerate() {
        // From check i, the ENOSYS return lies past the remaining checks and the ALLOW return.
        let jt = u8::try_from(checks - i).map_err(|_| SeccompError::TooManyEnosys {
            count: enosys.len(),
            max: usize::from(u8::MAX) - (checks - enosys.len()),
        })?;
        program.push(bpf_jump(code, k, jt, 0));
    }
    program.push(bpf_stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW));
    program.push(bpf_stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ERRNO | ENOSYS));
    Ok(program)
}

/// The deny list's rules for seccompiler: syscall number → rules, any of which matching means `EPERM`.
/// An empty rule list means "whatever the arguments".
fn deny_list_rules(
    policy: &SeccompPolicy,
    denied: &BTreeSet<u32>,
) -> Result<BTreeMap<i64, Vec<SeccompRule>>, SeccompError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        denied.iter().map(|nr| (i64::from(*nr), Vec::new())).collect();

    // clone and unshare carrying any namespace flag: one rule per flag, as `flags & flag == flag`.
    // A zero flag would match every call; it names no namespace, so it denies nothing.
    let mut namespace_rules = Vec::new();
    for (_, flag) in policy.deny_namespace_flags.iter().filter(|(_, flag)| *flag != 0) {
        namespace_rules.push(rule(vec![condition(
            ARG_FLAGS,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(*flag),
            *flag,
        )?])?);
    }
    add_argument_rules(&mut rules, denied, libc::SYS_clone, namespace_rules.clone());
    add_argument_rules(&mut rules, denied, libc::SYS_unshare, namespace_rules);

    // ioctl requests on their low 32 bits: the kernel truncates `cmd` to `unsigned int`.
    let mut ioctl_rules = Vec::new();
    for deny in &policy.deny_ioctls {
        ioctl_rules.push(rule(vec![condition(
            ARG_IOCTL_REQUEST,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            u64::from(deny.request),
        )?])?);
    }
    add_argument_rules(&mut rules, denied, libc::SYS_ioctl, ioctl_rules);

    // socket and socketpair: a family (an `int`) that is none of the allowed ones; a netlink socket whose
    // protocol (an `int`) is none of the allowed ones.
    for nr in [libc::SYS_socket, libc::SYS_socketpair] {
        if policy.allow_socket_families.is_empty() {
            // No family allowed: the whole call is denied (a rule needs at least one condition).
            rules.insert(nr, Vec::new());
            continue;
        }
        let mut family_not_allowed = Vec::new();
        for (_, family) in &policy.allow_socket_families {
            family_not_allowed.push(condition(
                ARG_SOCKET_FAMILY,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Ne,
                u64::from(*family),
            )?);
        }
        let mut socket_rules = vec![rule(family_not_allowed)?];
        if policy
            .allow_socket_families
            .iter()
            .any(|(_, family)| *family == AF_NETLINK)
        {
            let mut netlink_not_allowed = vec![condition(
                ARG_SOCKET_FAMILY,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                u64::from(AF_NETLINK),
            )?];
            for (_, protocol) in &policy.allow_netlink_protocols {
                netlink_not_allowed.push(condition(
                    ARG_SOCKET_PROTOCOL,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Ne,
                    u64::from(*protocol),
                )?);
            }
            socket_rules.push(rule(netlink_not_allowed)?);
        }
        add_argument_rules(&mut rules, denied, nr, socket_rules);
    }
    Ok(rules)
}

/// Adds argument rules for `nr`, unless the call is denied outright (its empty rule list already
/// matches every call) or there are no rules (an empty list would deny the call outright).
fn add_argument_rules(
    rules: &mut BTreeMap<i64, Vec<SeccompRule>>,
    denied: &BTreeSet<u32>,
    nr: i64,
    new: Vec<SeccompRule>,
) {
    if new.is_empty() || denied.iter().any(|d| i64::from(*d) == nr) {
        return;
    }
    rules.entry(nr).or_default().extend(new);
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, SeccompError> {
    Ok(SeccompRule::new(conditions)?)
}

fn condition(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, SeccompError> {
    Ok(SeccompCondition::new(arg, len, op, value)?)
}

/// The observation filter (see [`crate::execwatch`]): `execve` and `execveat` go to the
/// user-notification listener (recorded, then let go), and so does every call the deny list would
/// answer EPERM (recorded, then answered EPERM by the supervisor): the plainly denied calls, and
/// `clone`/`unshare` with a namespace flag, a denied `ioctl` request, a `socket`/`socketpair`
/// family (or netlink protocol) that is not allowed — the same argument checks as the deny list,
/// on the same 32-bit words. With this filter installed, the deny list is [`compile_observed`]
/// (nothing of it left: its EPERM would outrank the notification, seccomp(2)). Everything else is
/// allowed, on its number alone. It checks no architecture: the prefilter, installed after it on
/// the command, kills any other ABI first (KILL outranks USER_NOTIF whatever the order of
/// filters).
pub(crate) fn exec_listener_program(policy: &SeccompPolicy) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let nr = |n: libc::c_long| u32::try_from(n).unwrap_or(u32::MAX);
    let mut skip = Vec::new();
    let denied = resolve(&policy.deny, &mut skip)?;
    let exec = [nr(libc::SYS_execve), nr(libc::SYS_execveat)];
    let mut watched = exec.to_vec();
    watched.extend(denied.iter().copied().filter(|n| !exec.contains(n)));
    let families: Vec<u32> = policy.allow_socket_families.iter().map(|(_, f)| *f).collect();
    let sockets = [nr(libc::SYS_socket), nr(libc::SYS_socketpair)];
    if families.is_empty() {
        // No family allowed: the whole call is denied, as in the deny list.
        watched.extend(
            sockets
                .iter()
                .filter(|n| !watched.contains(n))
                .copied()
                .collect::<Vec<_>>(),
        );
    }
    let is_plain = |n: u32| watched.contains(&n);

    let mut a = Asm::default();
    a.ld(SECCOMP_DATA_NR);
    for n in &watched {
        a.jeq(*n, "notify", "");
    }
    a.ja("args");
    a.label("notify");
    a.ret(libc::SECCOMP_RET_USER_NOTIF);
    a.label("args");
    // Each block starts with the number still in A (every block before it ends in a return).
    let mask = policy.deny_namespace_flags.iter().fold(0u64, |m, (_, f)| m | f);
    // clone truncates its flags to 32 bits (legacy clone), unshare takes an int: the low word is
    // what the kernel acts on, and every namespace flag lives there.
    let mask32 = u32::try_from(mask & 0xffff_ffff).unwrap_or(0);
    for (i, call) in [libc::SYS_clone, libc::SYS_unshare].into_iter().enumerate() {
        if mask32 == 0 || is_plain(nr(call)) {
            continue;
        }
        let next = format!("ns-next-{i}");
        a.jeq(nr(call), "", &next);
        a.ld(arg_low(ARG_FLAGS));
        a.jset(mask32, "notify2", "allow2");
        a.label(&next);
    }
    if !policy.deny_ioctls.is_empty() && !is_plain(nr(libc::SYS_ioctl)) {
        a.jeq(nr(libc::SYS_ioctl), "", "ioctl-next");
        a.ld(arg_low(ARG_IOCTL_REQUEST));
        for d in &policy.deny_ioctls {
            a.jeq(d.request, "notify2", "");
        }
        a.ja("allow2");
        a.label("ioctl-next");
    }
    if !families.is_empty() {
        let netlink = families.contains(&AF_NETLINK);
        for (i, call) in sockets.into_iter().enumerate() {
            if is_plain(call) {
                continue;
            }
            let next = format!("socket-next-{i}");
            a.jeq(call, "", &next);
            a.ld(arg_low(ARG_SOCKET_FAMILY));
            if netlink {
                a.jeq(AF_NETLINK, "netlink", "");
            }
            for f in families.iter().filter(|f| **f != AF_NETLINK) {
                a.jeq(*f, "allow2", "");
            }
            a.ja("notify2");
            a.label(&next);
        }
        if netlink {
            // Only reached from a socket block: AF_NETLINK, then its protocol.
            a.ja("allow2");
            a.label("netlink");
            a.ld(arg_low(ARG_SOCKET_PROTOCOL));
            for (_, p) in &policy.allow_netlink_protocols {
                a.jeq(*p, "allow2", "");
            }
            a.ja("notify2");
        }
    }
    a.label("allow2");
    a.ret(libc::SECCOMP_RET_ALLOW);
    a.label("notify2");
    a.ret(libc::SECCOMP_RET_USER_NOTIF);
    let prog = a
        .assemble()
        .ok_or(SeccompError::TooManyWatched { count: watched.len() })?;
    Ok(prog
        .into_iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect())
}

/// Offset in `struct seccomp_data` of the low 32 bits of argument `n` (little-endian: x86_64 and
/// aarch64).
fn arg_low(n: u8) -> u32 {
    16 + 8 * u32::from(n)
}

/// A tiny BPF assembler with labels, for the observation filter: jumps name their targets, and
/// [`Asm::assemble`] turns them into the one-byte forward offsets BPF has (None when a target is
/// behind, unknown, or more than 255 instructions ahead). An empty label falls through.
#[derive(Default)]
struct Asm {
    code: Vec<(sock_filter, String, String)>,
    labels: BTreeMap<String, usize>,
}

impl Asm {
    fn ld(&mut self, off: u32) {
        self.code.push((
            bpf_stmt(BPF_LD | BPF_W | BPF_ABS, off),
            String::new(),
            String::new(),
        ));
    }
    fn ret(&mut self, k: u32) {
        self.code
            .push((bpf_stmt(BPF_RET | BPF_K, k), String::new(), String::new()));
    }
    fn jeq(&mut self, k: u32, t: &str, f: &str) {
        self.code
            .push((bpf_jump(BPF_JMP | BPF_JEQ | BPF_K, k, 0, 0), t.into(), f.into()));
    }
    fn jset(&mut self, k: u32, t: &str, f: &str) {
        self.code
            .push((bpf_jump(BPF_JMP | BPF_JSET | BPF_K, k, 0, 0), t.into(), f.into()));
    }
    /// An unconditional jump (a JEQ that always takes its true branch would need A; `ja` does not).
    fn ja(&mut self, to: &str) {
        self.code
            .push((bpf_stmt(BPF_JMP | BPF_JA, 0), to.into(), String::new()));
    }
    fn label(&mut self, name: &str) {
        self.labels.insert(name.to_string(), self.code.len());
    }
    fn assemble(self) -> Option<Vec<sock_filter>> {
        let mut out = Vec::with_capacity(self.code.len());
        for (at, (mut insn, t, f)) in self.code.into_iter().enumerate() {
            let off = |label: &str| -> Option<usize> {
                if label.is_empty() {
                    return Some(0);
                }
                self.labels.get(label)?.checked_sub(at + 1)
            };
            if insn.code == BPF_JMP | BPF_JA {
                insn.k = u32::try_from(off(&t)?).ok()?;
            } else if insn.code & 0x07 == BPF_JMP {
                insn.jt = u8::try_from(off(&t)?).ok()?;
                insn.jf = u8::try_from(off(&f)?).ok()?;
            }
            out.push(insn);
        }
        Some(out)
    }
}

/// The filters for a command under the observation filter: the prefilter as [`compile`] makes it,
/// and a deny list that allows everything, because the observation filter sends every call the
/// deny list would refuse to the supervisor, which answers EPERM ([`exec_listener_program`]).
pub fn compile_observed(policy: &SeccompPolicy) -> Result<CompiledSeccomp, SeccompError> {
    let mut not_on_this_arch = Vec::new();
    let _ = resolve(&policy.deny, &mut not_on_this_arch)?;
    let enosys = resolve(&policy.enosys, &mut not_on_this_arch)?;
    Ok(CompiledSeccomp {
        prefilter: build_prefilter(&enosys, policy.deny_x32)?,
        deny_list: vec![bpf_stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW)],
        not_on_this_arch,
    })
}

/// The name of call `nr` on this architecture, for records.
pub fn syscall_name(nr: i64) -> Option<&'static str> {
    let tables: [&[(&str, i64)]; 4] = [SHARED, ARCH_ONLY, LIBC_GAPS, UNIFIED];
    tables
        .iter()
        .flat_map(|t| t.iter())
        .find(|(_, n)| *n == nr)
        .map(|(name, _)| name.strip_prefix("SYS_").unwrap_or(name))
}

fn bpf_stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn bpf_jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// `struct sock_fprog` from `<linux/filter.h>`, pointing at seccompiler's `sock_filter`, which is
/// `#[repr(C)]` with the kernel's layout (`u16 code; u8 jt; u8 jf; u32 k`).
#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const sock_filter,
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, 0, &prog)` on the calling thread. No allocation, also on error.
fn install_filter(filter: &'static str, program: &[sock_filter]) -> Result<(), SeccompError> {
    // Longer than a u16 cannot happen (seccompiler stops at 4096, the prefilter at ~260); the kernel
    // would answer EINVAL for anything above BPF_MAXINSNS anyway.
    let len = u16::try_from(program.len()).map_err(|_| SeccompError::Install {
        filter,
        len: program.len(),
        source: io::Error::from_raw_os_error(libc::EINVAL),
    })?;
    let prog = SockFprog {
        len,
        filter: program.as_ptr(),
    };
    let flags: libc::c_ulong = 0;
    // SAFETY: `prog` points at `program`, which is borrowed for the whole call and holds `len`
    // initialised instructions of the kernel's layout; the kernel copies them (copy_from_user) and
    // keeps no pointer into our memory. No other argument is a pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::c_ulong::from(libc::SECCOMP_SET_MODE_FILTER),
            flags,
            &prog as *const SockFprog,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let source = io::Error::last_os_error();
    if source.raw_os_error() == Some(libc::EACCES) {
        return Err(SeccompError::NoNewPrivs { source });
    }
    Err(SeccompError::Install {
        filter,
        len: program.len(),
        source,
    })
}

/// An errno printed the way strace prints it (`EINVAL`), for error messages.
struct ErrnoName<'a>(&'a io::Error);

impl fmt::Display for ErrnoName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0.raw_os_error() {
            Some(libc::EPERM) => "EPERM",
            Some(libc::EACCES) => "EACCES",
            Some(libc::EFAULT) => "EFAULT",
            Some(libc::EINVAL) => "EINVAL",
            Some(libc::ENOMEM) => "ENOMEM",
            Some(libc::ENOSYS) => "ENOSYS",
            Some(libc::EBUSY) => "EBUSY",
            Some(libc::ESRCH) => "ESRCH",
            Some(libc::E2BIG) => "E2BIG",
            Some(libc::EOPNOTSUPP) => "EOPNOTSUPP",
            Some(n) => return write!(f, "errno {n}"),
            None => return write!(f, "{}", self.0),
        };
        f.write_str(name)
    }
}

/// Numbers of the named calls, deduplicated. Names of calls that exist only on the other supported
/// architecture go to `not_on_this_arch`; any other unknown name is an error.
fn resolve(names: &[String], not_on_this_arch: &mut Vec<String>) -> Result<BTreeSet<u32>, SeccompError> {
    let mut numbers = BTreeSet::new();
    for name in names {
        match lookup(name) {
            Syscall::Number(nr) => {
                numbers.insert(nr);
            }
            Syscall::NotOnThisArch => {
                if !not_on_this_arch.contains(name) {
                    not_on_this_arch.push(name.clone());
                }
            }
            Syscall::Unknown => return Err(SeccompError::UnknownSyscall { name: name.clone() }),
        }
    }
    Ok(numbers)
}

/// What a system call name means on the architecture being built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syscall {
    /// Its number here.
    Number(u32),
    /// A call of the other supported architecture, absent here.
    NotOnThisArch,
    /// A call on no supported architecture.
    Unknown,
}

/// Looks `name` up in the tables below.
fn lookup(name: &str) -> Syscall {
    let tables: [&[(&str, i64)]; 4] = [SHARED, ARCH_ONLY, LIBC_GAPS, UNIFIED];
    for (entry, nr) in tables.iter().flat_map(|table| table.iter()) {
        if entry.strip_prefix("SYS_").unwrap_or(entry) == name {
            // No call has a negative number.
            return u32::try_from(*nr).map_or(Syscall::Unknown, Syscall::Number);
        }
    }
    if OTHER_ARCH_ONLY
        .iter()
        .any(|entry| entry.strip_prefix("SYS_").unwrap_or(entry) == name)
    {
        Syscall::NotOnThisArch
    } else {
        Syscall::Unknown
    }
}

/// `("SYS_name", libc::SYS_name)` pairs.
macro_rules! libc_table {
    ($($sys:ident),* $(,)?) => {
        &[$((stringify!($sys), libc::$sys)),*]
    };
}

/// Calls that x86_64 has and aarch64 lacks (aarch64 started from the generic table, without the
/// legacy path calls such as `open` or `stat`): numbers on x86_64, names only on aarch64.
macro_rules! x86_64_only {
    ($($sys:ident),* $(,)?) => {
        /// Calls only this architecture has, numbered by libc.
        #[cfg(target_arch = "x86_64")]
        const ARCH_ONLY: &[(&str, i64)] = libc_table![$($sys),*];
        /// Calls only this architecture has.
        #[cfg(target_arch = "aarch64")]
        const ARCH_ONLY: &[(&str, i64)] = &[];
        /// Calls the other supported architecture has and this one lacks: a policy naming them
        /// denies nothing here, and is not wrong.
        #[cfg(target_arch = "x86_64")]
        const OTHER_ARCH_ONLY: &[&str] = &[];
        /// Calls the other supported architecture has and this one lacks: a policy naming them
        /// denies nothing here, and is not wrong.
        #[cfg(target_arch = "aarch64")]
        const OTHER_ARCH_ONLY: &[&str] = &[$(stringify!($sys)),*];
    };
}

/// Calls both architectures have, numbered by libc (names in both glibc's and musl's lists of
/// libc 0.2 for x86_64 and aarch64).
#[rustfmt::skip]
const SHARED: &[(&str, i64)] = libc_table![
    SYS_accept, SYS_accept4, SYS_acct, SYS_add_key, SYS_adjtimex, SYS_bind, SYS_bpf, SYS_brk,
    SYS_capget, SYS_capset, SYS_chdir, SYS_chroot, SYS_clock_adjtime, SYS_clock_getres,
    SYS_clock_gettime, SYS_clock_nanosleep, SYS_clock_settime, SYS_clone, SYS_clone3, SYS_close,
    SYS_close_range, SYS_connect, SYS_copy_file_range, SYS_delete_module, SYS_dup, SYS_dup3,
    SYS_epoll_create1, SYS_epoll_ctl, SYS_epoll_pwait, SYS_epoll_pwait2, SYS_eventfd2, SYS_execve,
    SYS_execveat, SYS_exit, SYS_exit_group, SYS_faccessat, SYS_faccessat2, SYS_fadvise64,
    SYS_fallocate, SYS_fanotify_init, SYS_fanotify_mark, SYS_fchdir, SYS_fchmod, SYS_fchmodat,
    SYS_fchown, SYS_fchownat, SYS_fcntl, SYS_fdatasync, SYS_fgetxattr, SYS_finit_module,
    SYS_flistxattr, SYS_flock, SYS_fremovexattr, SYS_fsconfig, SYS_fsetxattr, SYS_fsmount, SYS_fsopen,
    SYS_fspick, SYS_fstat, SYS_fstatfs, SYS_fsync, SYS_ftruncate, SYS_futex, SYS_futex_waitv,
    SYS_get_mempolicy, SYS_get_robust_list, SYS_getcpu, SYS_getcwd, SYS_getdents64, SYS_getegid,
    SYS_geteuid, SYS_getgid, SYS_getgroups, SYS_getitimer, SYS_getpeername, SYS_getpgid, SYS_getpid,
    SYS_getppid, SYS_getpriority, SYS_getrandom, SYS_getresgid, SYS_getresuid, SYS_getrusage,
    SYS_getsid, SYS_getsockname, SYS_getsockopt, SYS_gettid, SYS_gettimeofday, SYS_getuid,
    SYS_getxattr, SYS_init_module, SYS_inotify_add_watch, SYS_inotify_init1, SYS_inotify_rm_watch,
    SYS_io_cancel, SYS_io_destroy, SYS_io_getevents, SYS_io_setup, SYS_io_submit, SYS_io_uring_enter,
    SYS_io_uring_register, SYS_io_uring_setup, SYS_ioctl, SYS_ioprio_get, SYS_ioprio_set, SYS_kcmp,
    SYS_kexec_load, SYS_keyctl, SYS_kill, SYS_landlock_add_rule, SYS_landlock_create_ruleset,
    SYS_landlock_restrict_self, SYS_lgetxattr, SYS_linkat, SYS_listen, SYS_listxattr, SYS_llistxattr,
    SYS_lookup_dcookie, SYS_lremovexattr, SYS_lseek, SYS_lsetxattr, SYS_madvise, SYS_mbind,
    SYS_membarrier, SYS_memfd_create, SYS_memfd_secret, SYS_migrate_pages, SYS_mincore, SYS_mkdirat,
    SYS_mknodat, SYS_mlock, SYS_mlock2, SYS_mlockall, SYS_mmap, SYS_mount, SYS_mount_setattr,
    SYS_move_mount, SYS_move_pages, SYS_mprotect, SYS_mq_getsetattr, SYS_mq_notify, SYS_mq_open,
    SYS_mq_timedreceive, SYS_mq_timedsend, SYS_mq_unlink, SYS_mremap, SYS_mseal, SYS_msgctl,
    SYS_msgget, SYS_msgrcv, SYS_msgsnd, SYS_msync, SYS_munlock, SYS_munlockall, SYS_munmap,
    SYS_name_to_handle_at, SYS_nanosleep, SYS_newfstatat, SYS_nfsservctl, SYS_open_by_handle_at,
    SYS_open_tree, SYS_openat, SYS_openat2, SYS_perf_event_open, SYS_personality, SYS_pidfd_getfd,
    SYS_pidfd_open, SYS_pidfd_send_signal, SYS_pipe2, SYS_pivot_root, SYS_pkey_alloc, SYS_pkey_free,
    SYS_pkey_mprotect, SYS_ppoll, SYS_prctl, SYS_pread64, SYS_preadv, SYS_preadv2, SYS_prlimit64,
    SYS_process_madvise, SYS_process_mrelease, SYS_process_vm_readv, SYS_process_vm_writev,
    SYS_pselect6, SYS_ptrace, SYS_pwrite64, SYS_pwritev, SYS_pwritev2, SYS_quotactl, SYS_quotactl_fd,
    SYS_read, SYS_readahead, SYS_readlinkat, SYS_readv, SYS_reboot, SYS_recvfrom, SYS_recvmmsg,
    SYS_recvmsg, SYS_remap_file_pages, SYS_removexattr, SYS_renameat2, SYS_request_key,
    SYS_restart_syscall, SYS_rseq, SYS_rt_sigaction, SYS_rt_sigpending, SYS_rt_sigprocmask,
    SYS_rt_sigqueueinfo, SYS_rt_sigreturn, SYS_rt_sigsuspend, SYS_rt_sigtimedwait,
    SYS_rt_tgsigqueueinfo, SYS_sched_get_priority_max, SYS_sched_get_priority_min,
    SYS_sched_getaffinity, SYS_sched_getattr, SYS_sched_getparam, SYS_sched_getscheduler,
    SYS_sched_rr_get_interval, SYS_sched_setaffinity, SYS_sched_setattr, SYS_sched_setparam,
    SYS_sched_setscheduler, SYS_sched_yield, SYS_seccomp, SYS_semctl, SYS_semget, SYS_semop,
    SYS_semtimedop, SYS_sendfile, SYS_sendmmsg, SYS_sendmsg, SYS_sendto, SYS_set_mempolicy,
    SYS_set_mempolicy_home_node, SYS_set_robust_list, SYS_set_tid_address, SYS_setdomainname,
    SYS_setfsgid, SYS_setfsuid, SYS_setgid, SYS_setgroups, SYS_sethostname, SYS_setitimer, SYS_setns,
    SYS_setpgid, SYS_setpriority, SYS_setregid, SYS_setresgid, SYS_setresuid, SYS_setreuid, SYS_setsid,
    SYS_setsockopt, SYS_settimeofday, SYS_setuid, SYS_setxattr, SYS_shmat, SYS_shmctl, SYS_shmdt,
    SYS_shmget, SYS_shutdown, SYS_sigaltstack, SYS_signalfd4, SYS_socket, SYS_socketpair, SYS_splice,
    SYS_statfs, SYS_statx, SYS_swapoff, SYS_swapon, SYS_symlinkat, SYS_sync, SYS_syncfs, SYS_sysinfo,
    SYS_syslog, SYS_tee, SYS_tgkill, SYS_timer_create, SYS_timer_delete, SYS_timer_getoverrun,
    SYS_timer_gettime, SYS_timer_settime, SYS_timerfd_create, SYS_timerfd_gettime, SYS_timerfd_settime,
    SYS_times, SYS_tkill, SYS_truncate, SYS_umask, SYS_umount2, SYS_uname, SYS_unlinkat, SYS_unshare,
    SYS_userfaultfd, SYS_utimensat, SYS_vhangup, SYS_vmsplice, SYS_wait4, SYS_waitid, SYS_write,
    SYS_writev];

#[rustfmt::skip]
x86_64_only! {
    SYS__sysctl, SYS_access, SYS_afs_syscall, SYS_alarm, SYS_arch_prctl, SYS_chmod, SYS_chown,
    SYS_creat, SYS_dup2, SYS_epoll_create, SYS_epoll_ctl_old, SYS_epoll_wait, SYS_epoll_wait_old,
    SYS_eventfd, SYS_fork, SYS_futimesat, SYS_get_thread_area, SYS_getdents, SYS_getpgrp, SYS_getpmsg,
    SYS_inotify_init, SYS_ioperm, SYS_iopl, SYS_lchown, SYS_link, SYS_lstat, SYS_mkdir, SYS_mknod,
    SYS_modify_ldt, SYS_open, SYS_pause, SYS_pipe, SYS_poll, SYS_putpmsg, SYS_readlink, SYS_rename,
    SYS_rmdir, SYS_security, SYS_select, SYS_set_thread_area, SYS_signalfd, SYS_stat, SYS_symlink,
    SYS_sysfs, SYS_time, SYS_tuxcall, SYS_unlink, SYS_uselib, SYS_ustat, SYS_utime, SYS_utimes,
    SYS_vfork, SYS_vserver}

/// Calls both architectures have but libc 0.2 numbers on x86_64 only (or for musl only).
/// aarch64 numbers from `<asm-generic/unistd.h>`.
#[cfg(target_arch = "x86_64")]
const LIBC_GAPS: &[(&str, i64)] = &[
    ("getrlimit", libc::SYS_getrlimit),
    ("io_pgetevents", 333),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("renameat", libc::SYS_renameat),
    ("setrlimit", libc::SYS_setrlimit),
    ("sync_file_range", libc::SYS_sync_file_range),
];
/// Calls both architectures have but libc 0.2 numbers on x86_64 only (or for musl only).
/// aarch64 numbers from `<asm-generic/unistd.h>`.
#[cfg(target_arch = "aarch64")]
const LIBC_GAPS: &[(&str, i64)] = &[
    ("getrlimit", 163),
    ("io_pgetevents", 292),
    ("kexec_file_load", 294),
    ("renameat", 38),
    ("setrlimit", 164),
    ("sync_file_range", 84),
];

/// Calls newer than libc 0.2's tables. Since Linux 5.1 (number 424) every architecture gives a new
/// call the same number (`scripts/syscall.tbl`), so one table serves both.
const UNIFIED: &[(&str, i64)] = &[
    ("cachestat", 451),
    ("fchmodat2", 452),
    ("map_shadow_stack", 453),
    ("futex_wake", 454),
    ("futex_wait", 455),
    ("futex_requeue", 456),
    ("statmount", 457),
    ("listmount", 458),
    ("lsm_get_self_attr", 459),
    ("lsm_set_self_attr", 460),
    ("lsm_list_modules", 461),
    ("setxattrat", 463),
    ("getxattrat", 464),
    ("listxattrat", 465),
    ("removexattrat", 466),
    ("open_tree_attr", 467),
    ("file_getattr", 468),
    ("file_setattr", 469),
];

#[cfg(test)]
mod tests {
    use super::*;
    use corral_core::seccomp_policy::IoctlDeny;
    use pretty_assertions::assert_eq;

    // ---- pure: compile ----

    #[test]
    fn compile_rejects_an_unknown_syscall_name() {
        let mut policy = SeccompPolicy::default_deny();
        policy.deny.push("foo".to_string());
        let err = compile(&policy).unwrap_err();
        assert_eq!(err.to_string(), r#"seccomp: unknown system call "foo" in policy"#);

        let mut policy = SeccompPolicy::default_deny();
        policy.enosys.push("clone4".to_string());
        assert_eq!(
            compile(&policy).unwrap_err().to_string(),
            r#"seccomp: unknown system call "clone4" in policy"#
        );
    }

    #[test]
    fn the_default_policy_compiles_and_every_name_exists_here() {
        let compiled = compile(&SeccompPolicy::default_deny()).unwrap();
        #[cfg(target_arch = "x86_64")]
        assert_eq!(compiled.not_on_this_arch(), &[] as &[String]);
        #[cfg(target_arch = "aarch64")]
        assert_eq!(compiled.not_on_this_arch(), &["uselib".to_string()]);
    }

    #[test]
    fn names_resolve_through_every_table() {
        assert_eq!(
            lookup("ptrace"),
            Syscall::Number(u32::try_from(libc::SYS_ptrace).unwrap())
        );
        assert_eq!(lookup("open_tree_attr"), Syscall::Number(467));
        assert_eq!(
            lookup("kexec_file_load"),
            Syscall::Number(u32::try_from(libc::SYS_kexec_file_load).unwrap())
        );
        assert_eq!(
            lookup("SYS_ptrace"),
            Syscall::Unknown,
            "the libc prefix is not part of a name"
        );
        assert_eq!(lookup(""), Syscall::Unknown);
        #[cfg(target_arch = "x86_64")]
        assert_eq!(lookup("open"), Syscall::Number(2));
        #[cfg(target_arch = "aarch64")]
        assert_eq!(lookup("open"), Syscall::NotOnThisArch);
    }

    #[test]
    fn no_name_has_two_numbers() {
        let mut seen: BTreeMap<&str, i64> = BTreeMap::new();
        for (entry, nr) in [SHARED, ARCH_ONLY, LIBC_GAPS, UNIFIED]
            .iter()
            .flat_map(|t| t.iter())
        {
            let name = entry.strip_prefix("SYS_").unwrap_or(entry);
            assert_eq!(seen.insert(name, *nr), None, "{name} is listed twice");
        }
        let mut numbers: BTreeMap<i64, &str> = BTreeMap::new();
        for (name, nr) in &seen {
            if let Some(other) = numbers.insert(*nr, name) {
                panic!("{name} and {other} share number {nr}");
            }
        }
    }

    #[test]
    fn too_many_enosys_entries_are_an_error_not_a_wrong_jump() {
        let enosys: BTreeSet<u32> = (0..300).collect();
        let err = build_prefilter(&enosys, true).unwrap_err();
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            err.to_string(),
            "seccomp: 300 system calls listed under `enosys`, more than the prefilter can hold (254)"
        );
        #[cfg(target_arch = "aarch64")]
        assert_eq!(
            err.to_string(),
            "seccomp: 300 system calls listed under `enosys`, more than the prefilter can hold (255)"
        );
        let enosys: BTreeSet<u32> = (0..254).collect();
        assert!(build_prefilter(&enosys, true).is_ok());
    }

    #[test]
    fn install_errors_read_like_strace() {
        let err = SeccompError::NoNewPrivs {
            source: io::Error::from_raw_os_error(libc::EACCES),
        };
        assert_eq!(
            err.to_string(),
            "seccomp(SECCOMP_SET_MODE_FILTER): EACCES (no_new_privs is not set)"
        );
        assert!(std::error::Error::source(&err).is_some());
        let err = SeccompError::Install {
            filter: "prefilter",
            len: 7,
            source: io::Error::from_raw_os_error(libc::EINVAL),
        };
        assert_eq!(
            err.to_string(),
            "seccomp(SECCOMP_SET_MODE_FILTER, 0, {len=7}) for the prefilter: EINVAL"
        );
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn summary_of_the_default_policy() {
        let lines = summary(&SeccompPolicy::default_deny());
        assert_eq!(
            lines,
            vec![
                "kill process: system calls through any ABI but the native x86_64",
                "answer ENOSYS: x32 system calls (number with bit 0x40000000)",
                "answer ENOSYS (libc falls back): clone3",
                "deny EPERM: ptrace, process_vm_readv, process_vm_writev, kcmp, pidfd_getfd, keyctl, \
                 add_key, request_key, bpf, perf_event_open, userfaultfd, io_uring_setup, io_uring_enter, \
                 io_uring_register, mount, umount2, pivot_root, chroot, open_tree, open_tree_attr, move_mount, fsopen, \
                 fsconfig, fsmount, fspick, mount_setattr, setns, kexec_load, kexec_file_load, \
                 init_module, finit_module, delete_module, swapon, swapoff, reboot, acct, quotactl, \
                 syslog, open_by_handle_at, name_to_handle_at, uselib, lookup_dcookie, \
                 vhangup",
                "deny EPERM: clone, unshare with any of CLONE_NEWTIME, CLONE_NEWNS, CLONE_NEWCGROUP, \
                 CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET",
                "deny EPERM: ioctl TIOCSTI (0x5412), TIOCLINUX (0x541c) \
                 (request compared on its low 32 bits)",
                "deny EPERM: socket, socketpair unless the family is AF_UNIX (1), AF_INET (2), \
                 AF_INET6 (10), AF_NETLINK (16)",
                "deny EPERM: AF_NETLINK sockets unless the protocol is NETLINK_ROUTE (0)",
            ]
        );
        let mut policy = SeccompPolicy::default_deny();
        policy.deny = vec!["foo".into()];
        policy.allow_socket_families.clear();
        policy.deny_x32 = false;
        let lines = summary(&policy);
        assert_eq!(
            lines[1],
            "allow, NOT FILTERED: x32 system calls (deny_x32 = false)"
        );
        assert_eq!(lines[6], "deny EPERM: socket, socketpair (no family allowed)");
        assert_eq!(
            lines.last().unwrap(),
            "unknown system calls (the launch fails): foo"
        );
    }

    // ---- pure: the compiled programs, run by a small interpreter of the BPF subset they use ----

    /// `struct seccomp_data`.
    #[derive(Clone, Copy)]
    struct Data {
        nr: u32,
        arch: u32,
        args: [u64; 6],
    }

    fn call(nr: i64, args: [u64; 6]) -> Data {
        Data {
            nr: u32::try_from(nr).unwrap(),
            arch: AUDIT_ARCH_NATIVE,
            args,
        }
    }

    /// Runs `program` on `data` like the kernel would; returns the verdict and whether an argument
    /// was read (a verdict that never reads one is what the kernel's action cache can remember).
    fn run(program: &[sock_filter], data: Data) -> (u32, bool) {
        const BPF_ALU_AND_K: u16 = 0x04 | 0x50;
        const BPF_JA: u16 = BPF_JMP;
        const BPF_JGT_K: u16 = BPF_JMP | 0x20;
        const BPF_JSET_K: u16 = BPF_JMP | 0x40;
        let (mut acc, mut pc, mut read_args) = (0u32, 0usize, false);
        loop {
            let ins = &program[pc];
            pc += 1;
            match ins.code {
                c if c == BPF_LD | BPF_W | BPF_ABS => {
                    acc = match ins.k {
                        0 => data.nr,
                        4 => data.arch,
                        k @ 16..=63 => {
                            read_args = true;
                            let arg = data.args[usize::try_from((k - 16) / 8).unwrap()];
                            let half = if k % 8 == 4 { arg >> 32 } else { arg & 0xffff_ffff };
                            u32::try_from(half).unwrap()
                        }
                        k => panic!("load from offset {k}"),
                    }
                }
                BPF_ALU_AND_K => acc &= ins.k,
                BPF_JA => pc += usize::try_from(ins.k).unwrap(),
                c if c == BPF_JMP | BPF_JEQ | BPF_K
                    || c == BPF_JGT_K
                    || c == BPF_JMP | BPF_JGE | BPF_K
                    || c == BPF_JSET_K =>
                {
                    let taken = match c {
                        c if c == BPF_JMP | BPF_JEQ | BPF_K => acc == ins.k,
                        c if c == BPF_JGT_K => acc > ins.k,
                        c if c == BPF_JSET_K => acc & ins.k != 0,
                        _ => acc >= ins.k,
                    };
                    pc += usize::from(if taken { ins.jt } else { ins.jf });
                }
                c if c == BPF_RET | BPF_K => return (ins.k, read_args),
                c => panic!("opcode {c:#x} at {}", pc - 1),
            }
        }
    }

    fn listener(policy: &SeccompPolicy) -> Vec<sock_filter> {
        exec_listener_program(policy)
            .unwrap()
            .into_iter()
            .map(|i| sock_filter {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect()
    }

    #[test]
    fn the_observation_filter_notifies_exec_and_the_denied_calls_only() {
        let denied = resolve(&SeccompPolicy::default_deny().deny, &mut Vec::new()).unwrap();
        assert!(denied.len() > 30, "{denied:?}");
        let prog = listener(&SeccompPolicy::default_deny());
        let notify = libc::SECCOMP_RET_USER_NOTIF;
        for nr in [
            libc::SYS_execve,
            libc::SYS_execveat,
            libc::SYS_ptrace,
            libc::SYS_bpf,
            libc::SYS_mount,
        ] {
            assert_eq!(run(&prog, call(nr, [0; 6])).0, notify, "{nr}");
        }
        // The last denied call in the list still reaches the notify return (jump offsets).
        let last = *denied.last().unwrap();
        assert_eq!(run(&prog, call(i64::from(last), [0; 6])).0, notify);
        for nr in [libc::SYS_read, libc::SYS_write, libc::SYS_clone, libc::SYS_openat] {
            assert_eq!(run(&prog, call(nr, [0; 6])).0, libc::SECCOMP_RET_ALLOW, "{nr}");
        }
    }

    /// With the observation filter on, the deny list is empty: the filter must send to the
    /// supervisor (which answers EPERM) exactly the calls the full deny list refuses, arguments
    /// included, and read no argument of any other call.
    #[test]
    fn the_observation_filter_refers_exactly_what_the_deny_list_denies() {
        let mut policies = vec![SeccompPolicy::default_deny()];
        let mut no_netlink = SeccompPolicy::default_deny();
        no_netlink.allow_socket_families.retain(|(_, f)| *f != AF_NETLINK);
        policies.push(no_netlink);
        let mut no_sockets = SeccompPolicy::default_deny();
        no_sockets.allow_socket_families.clear();
        no_sockets.deny_ioctls.clear();
        no_sockets.deny_namespace_flags.clear();
        policies.push(no_sockets);
        let args_to_try: Vec<[u64; 6]> = {
            let mut v = vec![[0; 6], [u64::MAX; 6]];
            for flag in [
                libc::CLONE_NEWUSER,
                libc::CLONE_NEWNS,
                libc::CLONE_NEWNET,
                libc::CLONE_NEWPID,
                libc::CLONE_NEWCGROUP,
                libc::CLONE_NEWIPC,
                libc::CLONE_NEWUTS,
                0x80,
                libc::CLONE_VM | libc::CLONE_THREAD | libc::SIGCHLD,
                libc::SIGCHLD,
            ] {
                v.push([flags(flag), 0, 0, 0, 0, 0]);
            }
            for req in [0x5412u64, 0x541C, 0x5401, 0x1_0000_5412, 0x8000_5412] {
                v.push([0, req, 0, 0, 0, 0]);
            }
            for family in 0..48u64 {
                for protocol in [0u64, 4, 9, 15, 16] {
                    v.push([family, 1, protocol, 0, 0, 0]);
                }
            }
            v
        };
        for policy in &policies {
            let compiled = compile(policy).unwrap();
            let observed = compile_observed(policy).unwrap();
            let prog = listener(policy);
            for nr in 0..=470 {
                if nr == libc::SYS_execve || nr == libc::SYS_execveat {
                    continue;
                }
                for args in &args_to_try {
                    let data = call(nr, *args);
                    let full = run(&compiled.deny_list, data).0;
                    let (watched, read) = run(&prog, data);
                    assert_eq!(
                        watched == libc::SECCOMP_RET_USER_NOTIF,
                        full == DENY,
                        "nr {nr} args {args:x?}: deny list {full:#x}, observation filter {watched:#x}"
                    );
                    assert!(
                        !read
                            || [
                                libc::SYS_ioctl,
                                libc::SYS_clone,
                                libc::SYS_unshare,
                                libc::SYS_socket,
                                libc::SYS_socketpair
                            ]
                            .contains(&nr),
                        "nr {nr} reads an argument"
                    );
                    // Observed, the deny list itself refuses nothing.
                    assert_eq!(run(&observed.deny_list, data).0, ALLOW);
                }
            }
        }
    }

    #[test]
    fn syscall_names_round_trip() {
        assert_eq!(syscall_name(libc::SYS_ptrace), Some("ptrace"));
        assert_eq!(syscall_name(libc::SYS_bpf), Some("bpf"));
        assert_eq!(syscall_name(99_999), None);
    }

    /// The verdict of both filters together: the one of highest precedence, the later filter on ties.
    fn verdict(compiled: &CompiledSeccomp, data: Data) -> u32 {
        let (pre, _) = run(&compiled.prefilter, data);
        let (deny, _) = run(&compiled.deny_list, data);
        // As `seccomp_run_filters`: precedence is ordered by the action as an s32, lowest first.
        let precedence = |v: u32| i32::from_ne_bytes((v & libc::SECCOMP_RET_ACTION_FULL).to_ne_bytes());
        if precedence(pre) < precedence(deny) {
            pre
        } else {
            deny
        }
    }

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const DENY: u32 = libc::SECCOMP_RET_ERRNO | EPERM;
    const NOSYS: u32 = libc::SECCOMP_RET_ERRNO | ENOSYS;
    const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;

    fn default_compiled() -> CompiledSeccomp {
        compile(&SeccompPolicy::default_deny()).unwrap()
    }

    fn flags(f: i32) -> u64 {
        u64::try_from(f).unwrap()
    }

    #[test]
    fn hot_syscall_verdicts_never_read_an_argument() {
        let compiled = default_compiled();
        let checked = [
            libc::SYS_ioctl,
            libc::SYS_clone,
            libc::SYS_unshare,
            libc::SYS_socket,
            libc::SYS_socketpair,
        ];
        let patterns = [
            [0; 6],
            [u64::MAX; 6],
            [0x1234_5678_9abc_def0, 1, 2, 3, 0x5412, 0x1000_0000],
        ];
        for nr in 0..=470 {
            let mut verdicts = BTreeSet::new();
            for args in patterns {
                let (pre, pre_read) = run(&compiled.prefilter, call(nr, args));
                let (deny, deny_read) = run(&compiled.deny_list, call(nr, args));
                assert_eq!(
                    (pre_read, deny_read),
                    (false, checked.contains(&nr)),
                    "syscall {nr}"
                );
                verdicts.insert((pre, deny));
            }
            if !checked.contains(&nr) {
                assert!(
                    verdicts.len() <= 2,
                    "syscall {nr}: at most one verdict per filter"
                );
            }
        }
        // A sample of hot calls is plainly allowed.
        for nr in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_openat,
            libc::SYS_futex,
            libc::SYS_execve,
        ] {
            assert_eq!(verdict(&compiled, call(nr, [u64::MAX; 6])), ALLOW);
        }
    }

    #[test]
    fn other_abis_are_killed_and_x32_answers_enosys() {
        let compiled = default_compiled();
        /// `AUDIT_ARCH_I386` / `AUDIT_ARCH_ARM`: the compat ABIs.
        const AUDIT_ARCH_COMPAT: u32 = if cfg!(target_arch = "x86_64") {
            0x4000_0003
        } else {
            0x4000_0028
        };
        let compat = Data {
            arch: AUDIT_ARCH_COMPAT,
            ..call(libc::SYS_getpid, [0; 6])
        };
        assert_eq!(
            (
                run(&compiled.prefilter, compat).0,
                run(&compiled.deny_list, compat).0
            ),
            (KILL, KILL)
        );
        #[cfg(target_arch = "x86_64")]
        {
            // ptrace through x32: the deny list does not know the number; the prefilter stops it.
            let x32_ptrace = call(0x4000_0000 | libc::SYS_ptrace, [0; 6]);
            assert_eq!(
                (
                    run(&compiled.prefilter, x32_ptrace).0,
                    run(&compiled.deny_list, x32_ptrace).0
                ),
                (NOSYS, ALLOW)
            );
            assert_eq!(verdict(&compiled, x32_ptrace), NOSYS);
            let mut policy = SeccompPolicy::default_deny();
            policy.deny_x32 = false;
            assert_eq!(verdict(&compile(&policy).unwrap(), x32_ptrace), ALLOW);
        }
        assert_eq!(verdict(&compiled, call(libc::SYS_clone3, [0; 6])), NOSYS);
        // Listed under both: the deny list, installed last, wins the tie between two errnos.
        let mut policy = SeccompPolicy::default_deny();
        policy.deny.push("clone3".into());
        assert_eq!(
            verdict(&compile(&policy).unwrap(), call(libc::SYS_clone3, [0; 6])),
            DENY
        );
    }

    #[test]
    fn clone_and_unshare_are_denied_any_namespace_flag() {
        let compiled = default_compiled();
        let thread_flags = flags(
            libc::CLONE_VM
                | libc::CLONE_FS
                | libc::CLONE_FILES
                | libc::CLONE_SIGHAND
                | libc::CLONE_THREAD
                | libc::CLONE_SYSVSEM
                | libc::CLONE_SETTLS
                | libc::CLONE_PARENT_SETTID
                | libc::CLONE_CHILD_CLEARTID,
        );
        for nr in [libc::SYS_clone, libc::SYS_unshare] {
            for (name, flag) in corral_core::seccomp_policy::NAMESPACE_CLONE_FLAGS {
                let args = [flag | flags(libc::SIGCHLD), 0, 0, 0, 0, 0];
                assert_eq!(verdict(&compiled, call(nr, args)), DENY, "{nr} with {name}");
                // High bits set too: the flag is still seen.
                let args = [flag | 0xffff_0000_0000_0000, 0, 0, 0, 0, 0];
                assert_eq!(verdict(&compiled, call(nr, args)), DENY, "{nr} with {name}");
            }
            assert_eq!(verdict(&compiled, call(nr, [thread_flags, 0, 0, 0, 0, 0])), ALLOW);
            assert_eq!(
                verdict(&compiled, call(nr, [flags(libc::SIGCHLD), 0, 0, 0, 0, 0])),
                ALLOW
            );
            assert_eq!(verdict(&compiled, call(nr, [0; 6])), ALLOW);
        }
    }

    #[test]
    fn ioctl_requests_are_compared_on_their_low_32_bits() {
        let compiled = default_compiled();
        let ioctl = |request: u64| verdict(&compiled, call(libc::SYS_ioctl, [0, request, 0, 0, 0, 0]));
        assert_eq!(
            [
                ioctl(0x5412),
                ioctl(0xffff_ffff_0000_5412),
                ioctl(0x541c),
                ioctl(0x1_0000_541c)
            ],
            [DENY; 4]
        );
        // FIONREAD, TCGETS, and a request sharing TIOCSTI's high bits only.
        assert_eq!(
            [ioctl(0x541b), ioctl(0x5401), ioctl(0x5412_0000_0000)],
            [ALLOW; 3]
        );
    }

    #[test]
    fn sockets_are_limited_to_allowed_families_and_netlink_protocols() {
        let compiled = default_compiled();
        const NETLINK_ROUTE: u64 = 0;
        const NETLINK_AUDIT: u64 = 9;
        for nr in [libc::SYS_socket, libc::SYS_socketpair] {
            let socket = |family: i32, protocol: u64| {
                verdict(
                    &compiled,
                    call(nr, [flags(family), flags(libc::SOCK_RAW), protocol, 0, 0, 0]),
                )
            };
            assert_eq!(
                [
                    socket(libc::AF_UNIX, 0),
                    socket(libc::AF_INET, 0),
                    socket(libc::AF_INET6, 0),
                    socket(libc::AF_NETLINK, NETLINK_ROUTE)
                ],
                [ALLOW; 4]
            );
            assert_eq!(
                [
                    socket(libc::AF_PACKET, 0),
                    socket(libc::AF_BLUETOOTH, 0),
                    socket(libc::AF_VSOCK, 0),
                    socket(libc::AF_NETLINK, NETLINK_AUDIT)
                ],
                [DENY; 4]
            );
            // The family is an int: high bits do not change it (the kernel ignores them too).
            let high = verdict(&compiled, call(nr, [0xffff_ffff_0000_0001, 1, 0, 0, 0, 0]));
            assert_eq!(high, ALLOW);
        }
        let mut policy = SeccompPolicy::default_deny();
        policy.allow_netlink_protocols.clear();
        let no_netlink = compile(&policy).unwrap();
        let route = call(
            libc::SYS_socket,
            [flags(libc::AF_NETLINK), 3, NETLINK_ROUTE, 0, 0, 0],
        );
        assert_eq!(verdict(&no_netlink, route), DENY);
        policy.allow_socket_families.clear();
        let no_sockets = compile(&policy).unwrap();
        assert_eq!(
            verdict(
                &no_sockets,
                call(libc::SYS_socket, [flags(libc::AF_UNIX), 1, 0, 0, 0, 0])
            ),
            DENY
        );
    }

    #[test]
    fn a_call_denied_outright_ignores_its_argument_rules_and_empty_lists_deny_nothing() {
        let mut policy = SeccompPolicy::default_deny();
        policy.deny.push("ioctl".into());
        policy.deny_namespace_flags.clear();
        policy.deny_ioctls.push(IoctlDeny {
            name: "FIONREAD".into(),
            request: 0x541b,
        });
        let compiled = compile(&policy).unwrap();
        assert_eq!(
            verdict(&compiled, call(libc::SYS_ioctl, [0, 0x5401, 0, 0, 0, 0])),
            DENY
        );
        let newuser = call(libc::SYS_unshare, [flags(libc::CLONE_NEWUSER), 0, 0, 0, 0, 0]);
        assert_eq!(verdict(&compiled, newuser), ALLOW);
        // A zero flag names no namespace: it must not deny every clone.
        policy.deny_namespace_flags = vec![("NONE".into(), 0)];
        assert_eq!(
            verdict(&compile(&policy).unwrap(), call(libc::SYS_clone, [0; 6])),
            ALLOW
        );
    }

    // ---- real kernel: each attack in a throwaway thread under no_new_privs and the default policy ----

    /// `CORRAL_TEST_REQUIRE=1` (CI) turns a skip into a failure.
    fn required() -> bool {
        std::env::var_os("CORRAL_TEST_REQUIRE").is_some_and(|v| v == "1")
    }

    /// Runs `attack` in a new thread that set no_new_privs and installed the default policy. Seccomp
    /// without TSYNC and no_new_privs both apply to the calling thread only, so the test process is
    /// untouched. `None` when the kernel cannot install filters (said out loud).
    fn sandboxed<T: Send + 'static>(attack: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let compiled = default_compiled();
        std::thread::spawn(move || {
            let (one, zero): (libc::c_ulong, libc::c_ulong) = (1, 0);
            // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) takes integers only and affects this thread only.
            let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, one, zero, zero, zero) };
            assert_eq!(
                rc,
                0,
                "prctl(PR_SET_NO_NEW_PRIVS): {}",
                io::Error::last_os_error()
            );
            match install(&compiled) {
                Ok(()) => Some(attack()),
                Err(e) if !required() => {
                    eprintln!("skipping: {e}");
                    None
                }
                Err(e) => panic!("{e}"),
            }
        })
        .join()
        .unwrap()
    }

    /// A raw system call: `Ok(return value)` or `Err(errno)`.
    fn sys(nr: libc::c_long, args: [u64; 6]) -> Result<libc::c_long, i32> {
        // SAFETY: the callers pass only integers, null pointers or pointers to live buffers of the
        // size the call expects; the kernel validates everything else.
        let rc = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]) };
        if rc == -1 {
            Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            Ok(rc)
        }
    }

    fn close(fd: libc::c_long) {
        let _ = sys(libc::SYS_close, [u64::try_from(fd).unwrap(), 0, 0, 0, 0, 0]);
    }

    /// Asserts that `nr(args)` fails with exactly `errno` inside the sandboxed thread.
    fn assert_blocked(name: &str, nr: libc::c_long, args: [u64; 6], errno: i32) {
        let Some(result) = sandboxed(move || {
            let result = sys(nr, args);
            if let Ok(fd) = result {
                close(fd);
            }
            result
        }) else {
            return;
        };
        assert_eq!(result, Err(errno), "{name}");
    }

    const ANY_FD: u64 = u64::MAX; // -1

    /// Runs `attack` in a forked child under no_new_privs and the default policy, for attacks whose
    /// success would harm the test process (PTRACE_TRACEME from a thread makes cargo its tracer, and the
    /// run hangs). `Some(Ok(()))` if the call succeeded, `Some(Err(errno))` if it failed.
    fn sandboxed_child(attack: fn() -> Result<libc::c_long, i32>) -> Option<Result<(), i32>> {
        /// Exit status of a child that could not install the filters.
        const NOT_INSTALLED: i32 = 255;
        let compiled = default_compiled();
        // SAFETY: fork in a multi-threaded test process: the child only makes async-signal-safe calls
        // (prctl, seccomp without allocation, the raw call under test, _exit) and never returns.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            let (one, zero): (libc::c_ulong, libc::c_ulong) = (1, 0);
            // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) takes integers only.
            unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, one, zero, zero, zero) };
            let code = match install(&compiled) {
                Ok(()) => attack().err().unwrap_or(0),
                Err(_) => NOT_INSTALLED,
            };
            // SAFETY: ends this child.
            unsafe { libc::_exit(code) }
        }
        let mut status = 0;
        // SAFETY: waitpid writes the status of our own child into a live local.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(rc, pid, "waitpid: {}", io::Error::last_os_error());
        assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
        match libc::WEXITSTATUS(status) {
            NOT_INSTALLED if !required() => {
                eprintln!("skipping: could not install the filters in the child");
                None
            }
            0 => Some(Ok(())),
            errno => Some(Err(errno)),
        }
    }

    #[test]
    fn kernel_denies_ptrace_traceme() {
        let attack = || sys(libc::SYS_ptrace, [u64::from(libc::PTRACE_TRACEME), 0, 0, 0, 0, 0]);
        if let Some(result) = sandboxed_child(attack) {
            assert_eq!(result, Err(libc::EPERM), "ptrace(PTRACE_TRACEME)");
        }
    }

    #[test]
    fn kernel_denies_bpf() {
        // bpf(BPF_MAP_CREATE, NULL, 0): EINVAL or EFAULT without the filter (as root).
        assert_blocked("bpf", libc::SYS_bpf, [0; 6], libc::EPERM);
    }

    #[test]
    fn kernel_denies_keyctl() {
        // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_PROCESS_KEYRING = -2, 0) succeeds without the filter.
        assert_blocked(
            "keyctl",
            libc::SYS_keyctl,
            [0, u64::MAX - 1, 0, 0, 0, 0],
            libc::EPERM,
        );
    }

    #[test]
    fn kernel_denies_perf_event_open() {
        assert_blocked(
            "perf_event_open",
            libc::SYS_perf_event_open,
            [0, 0, ANY_FD, ANY_FD, 0, 0],
            libc::EPERM,
        );
    }

    #[test]
    fn kernel_denies_userfaultfd() {
        assert_blocked("userfaultfd", libc::SYS_userfaultfd, [0; 6], libc::EPERM);
    }

    #[test]
    fn kernel_denies_io_uring_setup() {
        assert_blocked(
            "io_uring_setup",
            libc::SYS_io_uring_setup,
            [1, 0, 0, 0, 0, 0],
            libc::EPERM,
        );
    }

    #[test]
    fn kernel_denies_mount() {
        assert_blocked("mount", libc::SYS_mount, [0; 6], libc::EPERM);
    }

    #[test]
    fn kernel_denies_setns() {
        assert_blocked("setns", libc::SYS_setns, [ANY_FD, 0, 0, 0, 0, 0], libc::EPERM);
    }

    #[test]
    fn kernel_denies_unshare_newuser() {
        assert_blocked(
            "unshare(CLONE_NEWUSER)",
            libc::SYS_unshare,
            [flags(libc::CLONE_NEWUSER), 0, 0, 0, 0, 0],
            libc::EPERM,
        );
    }

    #[test]
    fn kernel_denies_unshare_newns() {
        assert_blocked(
            "unshare(CLONE_NEWNS)",
            libc::SYS_unshare,
            [flags(libc::CLONE_NEWNS), 0, 0, 0, 0, 0],
            libc::EPERM,
        );
    }

    #[test]
    fn kernel_denies_clone_newuser() {
        let Some(result) = sandboxed(|| {
            let result = sys(
                libc::SYS_clone,
                [flags(libc::CLONE_NEWUSER | libc::SIGCHLD), 0, 0, 0, 0, 0],
            );
            match result {
                Ok(0) => {
                    // The filter failed and this is the child: leave at once, the parent reports it.
                    // SAFETY: _exit only ends this (forked, single-threaded) child process.
                    unsafe { libc::_exit(0) }
                }
                Ok(pid) => {
                    let mut status = 0;
                    // SAFETY: waitpid writes the status of our own child into a live local.
                    unsafe { libc::waitpid(i32::try_from(pid).unwrap(), &mut status, 0) };
                }
                Err(_) => {}
            }
            result
        }) else {
            return;
        };
        assert_eq!(result, Err(libc::EPERM), "clone(CLONE_NEWUSER|SIGCHLD)");
    }

    #[test]
    fn kernel_answers_clone3_enosys() {
        // clone3(NULL, 0) would be EINVAL without the filter: ENOSYS proves the prefilter answered.
        assert_blocked("clone3", libc::SYS_clone3, [0; 6], libc::ENOSYS);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn kernel_answers_x32_calls_enosys() {
        assert_blocked("x32 getpid", 0x4000_0000 | libc::SYS_getpid, [0; 6], libc::ENOSYS);
    }

    /// `TIOCSTI` and `FIONREAD` from `<asm-generic/ioctls.h>` (the same on x86_64 and aarch64).
    const TIOCSTI: u64 = 0x5412;
    const FIONREAD: u64 = 0x541b;

    // fd -1 rather than 0: should the filter regress, TIOCSTI on a terminal stdin would type into the
    // developer's shell; on -1 the kernel answers EBADF instead. The filter runs before any fd lookup.
    #[test]
    fn kernel_denies_tiocsti() {
        assert_blocked(
            "ioctl(-1, TIOCSTI)",
            libc::SYS_ioctl,
            [ANY_FD, TIOCSTI, 0, 0, 0, 0],
            libc::EPERM,
        );
    }

    #[test]
    fn kernel_denies_tiocsti_with_high_bits_set() {
        let request = 0xFFFF_FFFF_0000_0000 | TIOCSTI;
        assert_blocked(
            "ioctl(-1, 0xffffffff00005412)",
            libc::SYS_ioctl,
            [ANY_FD, request, 0, 0, 0, 0],
            libc::EPERM,
        );
    }

    #[test]
    fn kernel_denies_packet_sockets() {
        let args = [flags(libc::AF_PACKET), flags(libc::SOCK_RAW), 0, 0, 0, 0];
        assert_blocked("socket(AF_PACKET, SOCK_RAW)", libc::SYS_socket, args, libc::EPERM);
    }

    #[test]
    fn kernel_denies_netlink_audit_sockets() {
        let args = [flags(libc::AF_NETLINK), flags(libc::SOCK_RAW), 9, 0, 0, 0];
        assert_blocked(
            "socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT)",
            libc::SYS_socket,
            args,
            libc::EPERM,
        );
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn kernel_kills_i386_calls() {
        let compiled = default_compiled();
        // SAFETY: fork in a multi-threaded test process: the child only makes async-signal-safe calls
        // (prctl, setrlimit, seccomp without allocation, int 0x80, _exit) and never returns.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            let (one, zero): (libc::c_ulong, libc::c_ulong) = (1, 0);
            // SAFETY: both calls take integers or a pointer to a live local; this child is ours.
            unsafe {
                libc::setrlimit(libc::RLIMIT_CORE, &no_core);
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, one, zero, zero, zero);
            }
            if install(&compiled).is_err() {
                // SAFETY: ends this child.
                unsafe { libc::_exit(2) }
            }
            // i386 getpid (20) through the compat entry: the arch check must kill before it runs.
            // SAFETY: int 0x80 with eax = 20 takes no arguments and touches no memory; r8-r11 are
            // declared clobbered for kernels that did not preserve them.
            unsafe {
                std::arch::asm!("int 0x80", inlateout("rax") 20_i64 => _, out("r8") _, out("r9") _,
                    out("r10") _, out("r11") _, options(nostack));
                libc::_exit(0)
            }
        }
        let mut status = 0;
        // SAFETY: waitpid writes the status of our own child into a live local.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(rc, pid);
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 2 && !required() {
            eprintln!("skipping: could not install the filters in the child");
            return;
        }
        if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV && !required() {
            eprintln!("skipping: int 0x80 is not available (ia32 emulation off)");
            return;
        }
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS,
            "expected death by SIGSYS, got status {status:#x}"
        );
    }

    #[test]
    fn kernel_still_allows_ordinary_calls() {
        let Some(results) = sandboxed(|| {
            let mut results = Vec::new();
            results.push(("getpid", sys(libc::SYS_getpid, [0; 6]).map(|_| 0)));
            results.push(("getppid", sys(libc::SYS_getppid, [0; 6]).map(|_| 0)));
            results.push(("unshare(0)", sys(libc::SYS_unshare, [0; 6])));
            for (name, family, kind, protocol) in [
                ("socket(AF_UNIX)", libc::AF_UNIX, libc::SOCK_STREAM, 0),
                ("socket(AF_INET)", libc::AF_INET, libc::SOCK_STREAM, 0),
                (
                    "socket(AF_NETLINK, NETLINK_ROUTE)",
                    libc::AF_NETLINK,
                    libc::SOCK_RAW,
                    0,
                ),
            ] {
                let fd = sys(libc::SYS_socket, [flags(family), flags(kind), protocol, 0, 0, 0]);
                if let Ok(fd) = fd {
                    close(fd);
                }
                results.push((name, fd.map(|_| 0)));
            }
            let mut fds = [0i32; 2];
            // SAFETY: pipe writes two fds into a live local array.
            let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
            assert_eq!(rc, 0);
            let mut pending: libc::c_int = -1;
            let read_end = u64::try_from(fds[0]).unwrap();
            let fionread = sys(
                libc::SYS_ioctl,
                [
                    read_end,
                    FIONREAD,
                    &mut pending as *mut libc::c_int as u64,
                    0,
                    0,
                    0,
                ],
            );
            results.push(("ioctl(pipe, FIONREAD)", fionread.map(|_| pending.into())));
            for fd in fds {
                close(fd.into());
            }
            // A fork-like clone without namespace flags still works.
            let child = sys(libc::SYS_clone, [flags(libc::SIGCHLD), 0, 0, 0, 0, 0]);
            match child {
                Ok(0) => {
                    // SAFETY: ends the forked, single-threaded child.
                    unsafe { libc::_exit(0) }
                }
                Ok(pid) => {
                    let mut status = 0;
                    // SAFETY: waitpid writes the status of our own child into a live local.
                    unsafe { libc::waitpid(i32::try_from(pid).unwrap(), &mut status, 0) };
                }
                Err(_) => {}
            }
            results.push(("clone(SIGCHLD)", child.map(|_| 0)));
            results
        }) else {
            return;
        };
        assert_eq!(
            results,
            vec![
                ("getpid", Ok(0)),
                ("getppid", Ok(0)),
                ("unshare(0)", Ok(0)),
                ("socket(AF_UNIX)", Ok(0)),
                ("socket(AF_INET)", Ok(0)),
                ("socket(AF_NETLINK, NETLINK_ROUTE)", Ok(0)),
                ("ioctl(pipe, FIONREAD)", Ok(0)),
                ("clone(SIGCHLD)", Ok(0)),
            ]
        );
    }

    #[test]
    fn install_without_no_new_privs_is_eacces() {
        /// `struct __user_cap_header_struct` / `__user_cap_data_struct` from `<linux/capability.h>`.
        #[repr(C)]
        struct CapHeader {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy, Default)]
        struct CapData {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
        const CAP_SYS_ADMIN: u32 = 21;

        let compiled = default_compiled();
        let outcome = std::thread::spawn(move || {
            // SAFETY: PR_GET_NO_NEW_PRIVS takes no pointer.
            if unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) } == 1 {
                return None; // inherited: cannot be unset
            }
            // CAP_SYS_ADMIN would let the install succeed without no_new_privs: drop it from this
            // thread's effective set (capabilities are per thread; pid 0 means this thread).
            let mut header = CapHeader {
                version: LINUX_CAPABILITY_VERSION_3,
                pid: 0,
            };
            let mut data = [CapData::default(); 2];
            // SAFETY: capget writes one header and two data structs, all live locals of the kernel's layout.
            let rc =
                unsafe { libc::syscall(libc::SYS_capget, &mut header as *mut CapHeader, data.as_mut_ptr()) };
            assert_eq!(rc, 0, "capget: {}", io::Error::last_os_error());
            data[0].effective &= !(1 << CAP_SYS_ADMIN);
            // SAFETY: capset reads the same live locals.
            let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut CapHeader, data.as_ptr()) };
            assert_eq!(rc, 0, "capset: {}", io::Error::last_os_error());
            Some(install(&compiled).map_err(|e| e.to_string()))
        })
        .join()
        .unwrap();
        let Some(outcome) = outcome else {
            assert!(!required(), "no_new_privs is already set on the test process");
            eprintln!("skipping: no_new_privs is already set on the test process");
            return;
        };
        assert_eq!(
            outcome,
            Err("seccomp(SECCOMP_SET_MODE_FILTER): EACCES (no_new_privs is not set)".to_string())
        );
    }
}
