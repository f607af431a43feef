//! Replays every input under `fuzz/regressions/<target>/` through the same checks the cargo-fuzz
//! target runs (`fuzz/src/lib.rs`, compiled in here), on stable: an input that once crashed a
//! fuzz target stays in this directory and is checked in every CI run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../fuzz/src/lib.rs"]
mod checks;

use std::path::Path;

/// Runs `check` on every file in `fuzz/regressions/<target>/` (dot files, such as the `.gitkeep`
/// of a target that never crashed, excepted) and fails naming each input that panics.
fn replay(target: &str, check: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    assert!(
        fuzz.join("fuzz_targets").join(format!("{target}.rs")).is_file(),
        "{target} is not a fuzz target"
    );
    let dir = fuzz.join("regressions").join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    inputs.sort();
    let failed: Vec<String> = inputs
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).unwrap();
            std::panic::catch_unwind(|| check(&data)).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(failed.is_empty(), "fuzz regressions fail again: {failed:#?}");
}

#[test]
fn head_regressions() {
    replay("head", checks::head);
}

#[test]
fn socks_regressions() {
    replay("socks", checks::socks);
}

#[test]
fn tls_regressions() {
    replay("tls", checks::tls);
}

#[test]
fn dns_regressions() {
    replay("dns", checks::dns);
}

#[test]
fn host_regressions() {
    replay("host", checks::host);
}

#[test]
fn policy_regressions() {
    replay("policy", checks::policy);
}

#[test]
fn upstream_regressions() {
    replay("upstream", checks::upstream);
}
