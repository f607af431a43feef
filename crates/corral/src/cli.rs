//! The command line: subcommands and their flags.

use clap::{Args, Parser, Subcommand};

/// Run AI coding agents with full autonomy inside a layered, unprivileged Linux sandbox.
#[derive(Debug, Parser)]
#[command(name = "corral", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a command (default: the profile's) inside the sandbox, for the current project.
    Run(RunArgs),
    /// Say, layer by layer, what this machine can enforce, and why not where it cannot.
    Check(CheckArgs),
    /// Clean up after sessions that were killed: placeholders in workspaces, session directories.
    Gc,
}

/// Flags of `corral run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A built-in profile name or a path to a profile file (TOML); layered over `default`.
    #[arg(long, value_name = "NAME|PATH")]
    pub profile: Option<String>,
    /// Start an interactive bash instead of the profile's command.
    #[arg(long)]
    pub shell: bool,
    /// Print the whole plan and exit without launching.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print the plan as JSON.
    #[arg(long, requires = "dry_run")]
    pub json: bool,
    /// Print every layer's achieved level before the command starts.
    #[arg(short, long)]
    pub verbose: bool,
    /// The command and its arguments (after `--`).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Flags of `corral check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print the facts and layer reports as JSON.
    #[arg(long)]
    pub json: bool,
    /// Judge against this profile's required layers (default: `default`).
    #[arg(long, value_name = "NAME|PATH")]
    pub profile: Option<String>,
}

/// Runs the chosen subcommand; returns the process exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => crate::run::run(&args),
        Command::Check(args) => crate::run::check(&args),
        Command::Gc => crate::run::gc(),
    }
}
