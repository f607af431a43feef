//! The attacker: `corral __selftest-probe BRIEF` runs every attack of the brief's set, in order,
//! and prints one JSON line per attack (flushed at once, so a run cut short still reports what it
//! did).

use super::attacks;
use super::brief::{Brief, Probe, ProbeLine};
use std::io::Write;

/// Runs the attacks of the brief at `path`. Exit 0 when every attack reported.
pub fn run(path: &std::path::Path) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("selftest probe: reading the brief {}: {e}", path.display()))?;
    let brief: Brief = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("selftest probe: the brief {} does not parse: {e}", path.display()))?;
    // A write past limits.file_mb must fail with EFBIG, not end the attacker with SIGXFSZ.
    corral_sys::attack::ignore_signal(libc::SIGXFSZ)?;
    let mut out = std::io::stdout().lock();
    for attack in attacks::all(&brief) {
        let probe = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (attack.run)(&brief)))
            .unwrap_or_else(|_| Probe::Failed("the attack panicked".into()));
        let line = ProbeLine {
            id: attack.id.clone(),
            probe,
        };
        writeln!(out, "{}", serde_json::to_string(&line)?)?;
        out.flush()?;
    }
    Ok(0)
}
