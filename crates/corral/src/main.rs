//! corral: run AI coding agents with full autonomy inside a layered, unprivileged Linux sandbox.
#![forbid(unsafe_code)]

mod agent;
mod agentstate;
mod auditlog;
mod cli;
mod cmd_backup;
mod cmd_profile;
mod cmd_ps;
mod cmd_review;
mod cmd_setup;
mod cmd_statusline;
mod cmd_top;
mod cmd_trust;
mod context;
mod net;
mod review;
mod run;
mod scope;
mod selftest;
mod sessionlog;
mod trust;
mod ui;

use clap::Parser;

/// The error and its causes, each cause added only if the text so far does not already say it
/// (our errors name their OS error in their own message, strace-style).
fn error_chain(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}

fn main() {
    // `corral __init` is the sandbox's PID 1, exec'd by corral itself: no CLI parsing, no output.
    if std::env::args_os().nth(1).is_some_and(|a| a == "__init") {
        corral_sys::init::main();
    }
    let cli = cli::Cli::parse();
    let code = match cli::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            crate::say!("corral: error: {}", error_chain(&e));
            run::EXIT_LAUNCH_ERROR
        }
    };
    std::process::exit(code);
}
