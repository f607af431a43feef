//! What corral says on stderr: errors and warnings always; informational lines (the exit report,
//! the network summary, changed files, clean-ups) unless `-q` asked for quiet.

use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// `-q`: informational lines off from now on.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether stdout may carry colour: a terminal, and `NO_COLOR` unset or empty.
pub fn color() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Prints `corral: LINE` on stderr unless quiet.
pub fn info(line: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        crate::say!("corral: {line}");
    }
}

/// `eprintln!` that never panics: a closed stderr (a reader that went away) must not turn the
/// end of a session into a crash that skips its clean-up and its log's last records.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
