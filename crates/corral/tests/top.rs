//! `corral top` is a dashboard for a terminal: with stdout not a terminal (a pipe, a file) it says
//! what to use instead and exits 1, without touching the terminal modes. The dashboard itself is
//! tested in `cmd_top`'s snapshots.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

#[test]
fn top_without_a_terminal_points_to_ps_and_logs() {
    let fx = Fixture::new();
    fx.chown();
    // `output()` gives corral pipes for stdout and stderr, and stdin is /dev/null.
    let o = fx.corral().arg("top").output().unwrap();
    assert_code(&o, 1);
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        "corral top needs a terminal; use `corral ps --json` or `corral logs -f`\n"
    );
}
