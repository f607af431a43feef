//! corral: run AI coding agents with full autonomy inside a layered, unprivileged Linux sandbox.
#![forbid(unsafe_code)]

mod cli;
mod context;
mod run;

use clap::Parser;

fn main() {
    // `corral __init` is the sandbox's PID 1, exec'd by corral itself: no CLI parsing, no output.
    if std::env::args_os().nth(1).is_some_and(|a| a == "__init") {
        corral_sys::init::main();
    }
    let cli = cli::Cli::parse();
    let code = match cli::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("corral: error: {e:#}");
            run::EXIT_LAUNCH_ERROR
        }
    };
    std::process::exit(code);
}
