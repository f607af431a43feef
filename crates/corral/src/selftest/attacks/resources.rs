//! Resource exhaustion, each attack sized just past the sandbox's limit and never further, so a
//! limit that fails cannot hurt the machine: processes, memory, file size, /tmp, CPU time. They
//! run in a sandbox of their own with small limits (`corral selftest` sets them).

use super::{errno_name, Attack};
use crate::selftest::brief::{Brief, Probe};
use corral_sys::attack as sys;
use std::io::Write;

/// The largest amount selftest will allocate or write to prove a limit (MiB): a limit above it is
/// skipped rather than exhausted.
pub const MAX_MB: u64 = 512;

fn too_big(what: &str, mb: u64) -> Probe {
    Probe::Skipped(format!(
        "{what} is {mb} MiB, more than selftest will exhaust ({MAX_MB} MiB)"
    ))
}

/// Writes `mb` MiB + 1 to `path` in 1 MiB chunks: blocked at the first refusal.
fn fill(path: &std::path::Path, mb: u64) -> Probe {
    let r = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(path)?;
        let chunk = vec![0x5au8; 1 << 20];
        for _ in 0..=mb {
            f.write_all(&chunk)?;
        }
        f.sync_all()
    })();
    let _ = std::fs::remove_file(path);
    match r {
        Ok(()) => Probe::Escaped(format!("wrote {} MiB", mb + 1)),
        Err(e) => Probe::Blocked(errno_name(&e)),
    }
}

pub fn attacks(_brief: &Brief) -> Vec<Attack> {
    vec![
        Attack::new(
            "resources",
            "fork bomb",
            "start more processes than limits.pids (64 past it, then stop)",
            "cgroup pids.max and RLIMIT_NPROC",
            |b| {
                let Some(limit) = b.limits.pids else {
                    return Probe::Skipped("no limits.pids".into());
                };
                let n = usize::try_from(limit + 64).unwrap_or(usize::MAX);
                match sys::fork_many(n) {
                    Ok((made, None)) => Probe::Escaped(format!("started {made} processes")),
                    Ok((made, Some(e))) => {
                        Probe::Blocked(format!("{} after {made} processes", errno_name(&e)))
                    }
                    Err(e) => Probe::Blocked(errno_name(&e)),
                }
            },
        ),
        Attack::new(
            "resources",
            "memory",
            "allocate and touch 64 MiB more than limits.memory_mb, in a child",
            "cgroup memory.max (the OOM killer ends the child)",
            |b| {
                let Some(mb) = b.limits.memory_mb else {
                    return Probe::Skipped("no limits.memory_mb".into());
                };
                if mb > MAX_MB {
                    return too_big("limits.memory_mb", mb);
                }
                let bytes = usize::try_from((mb + 64) << 20).unwrap_or(usize::MAX);
                match sys::in_child(|| {
                    // Filled, not just reserved: every page is touched (a memset, fast in any build).
                    let v = vec![1u8; bytes];
                    i32::from(std::hint::black_box(&v)[bytes / 2] != 1)
                }) {
                    Ok(0) => Probe::Escaped(format!("a child used {} MiB", mb + 64)),
                    Ok(code) if code > 128 => {
                        Probe::Blocked(format!("the child was killed by signal {}", code - 128))
                    }
                    Ok(code) => Probe::Blocked(format!("the child could not allocate (exit {code})")),
                    Err(e) => Probe::Blocked(errno_name(&e)),
                }
            },
        ),
        Attack::new(
            "resources",
            "file size",
            "write a file 1 MiB larger than limits.file_mb",
            "RLIMIT_FSIZE (EFBIG)",
            |b| {
                let Some(mb) = b.limits.file_mb else {
                    return Probe::Skipped("no limits.file_mb".into());
                };
                if mb > MAX_MB {
                    return too_big("limits.file_mb", mb);
                }
                fill(&b.workspace.join("selftest-big-file"), mb)
            },
        ),
        Attack::new(
            "resources",
            "fill /tmp",
            "write 1 MiB more than limits.tmp_mb into /tmp",
            "a size-capped tmpfs on /tmp (ENOSPC)",
            |b| {
                let Some(mb) = b.limits.tmp_mb else {
                    return Probe::Skipped("no limits.tmp_mb".into());
                };
                if mb > MAX_MB {
                    return too_big("limits.tmp_mb", mb);
                }
                // In the control run /tmp is the host's: write in the scratch directory instead
                // (the same filesystem, no cap).
                let dir = match b.mode {
                    crate::selftest::brief::Mode::Control => b.outside.clone(),
                    crate::selftest::brief::Mode::Sandbox => std::path::PathBuf::from("/tmp"),
                };
                // Split in files below limits.file_mb, which also holds.
                let per = b.limits.file_mb.unwrap_or(mb).max(2) - 1;
                let mut left = mb + 1;
                let mut i = 0;
                let mut made = Vec::new();
                let result = loop {
                    if left == 0 {
                        break Probe::Escaped(format!("wrote {} MiB", mb + 1));
                    }
                    let n = left.min(per);
                    let path = dir.join(format!("selftest-fill-{i}"));
                    let r = (|| -> std::io::Result<()> {
                        let mut f = std::fs::File::create(&path)?;
                        let chunk = vec![0x5au8; 1 << 20];
                        for _ in 0..n {
                            f.write_all(&chunk)?;
                        }
                        f.sync_all()
                    })();
                    made.push(path);
                    if let Err(e) = r {
                        break Probe::Blocked(format!("{} after {} MiB", errno_name(&e), mb + 1 - left));
                    }
                    left -= n;
                    i += 1;
                };
                for p in made {
                    let _ = std::fs::remove_file(p);
                }
                result
            },
        ),
        Attack::new(
            "resources",
            "cpu time",
            "spin a child 2 s past limits.cpu_seconds",
            "RLIMIT_CPU (SIGXCPU, then SIGKILL)",
            |b| {
                let Some(s) = b.limits.cpu_seconds else {
                    return Probe::Skipped("no limits.cpu_seconds".into());
                };
                if s > 10 {
                    return Probe::Skipped(format!(
                        "limits.cpu_seconds is {s}, more than selftest will spin (10 s)"
                    ));
                }
                let until = std::time::Duration::from_secs(s + 2);
                match sys::in_child(|| {
                    let start = std::time::Instant::now();
                    let mut x: u64 = 0;
                    while start.elapsed() < until {
                        x = std::hint::black_box(x.wrapping_add(1));
                    }
                    0
                }) {
                    Ok(0) => Probe::Escaped(format!("a child used {} s of CPU", s + 2)),
                    Ok(code) if code > 128 => {
                        Probe::Blocked(format!("the child was killed by signal {}", code - 128))
                    }
                    Ok(code) => Probe::Blocked(format!("exit {code}")),
                    Err(e) => Probe::Blocked(errno_name(&e)),
                }
            },
        ),
    ]
}
