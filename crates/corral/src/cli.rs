//! The command line: subcommands and their flags.

use clap::{Args, Parser, Subcommand};

/// Run AI coding agents with full autonomy inside a layered, unprivileged Linux sandbox.
#[derive(Debug, Parser)]
#[command(name = "corral", version, about, propagate_version = true)]
pub struct Cli {
    /// Do not ask: launch without the environment-audit prompt (variables that look like secrets
    /// stay withheld unless a profile's env.allow_secrets names them).
    #[arg(short = 'y', long, global = true)]
    pub yes: bool,
    /// Quiet: only warnings and errors on stderr (no exit report, network summary or list of
    /// changed files; they are in the audit log).
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
    /// Without a subcommand: `corral claude`.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a command (default: the profile's) inside the sandbox, for the current project.
    Run(RunArgs),
    /// Claude Code with --dangerously-skip-permissions in the `claude` profile (arguments after
    /// `--` go to claude). Also what plain `corral` runs.
    Claude(RunArgs),
    /// OpenAI Codex CLI in the `codex` profile (arguments after `--` go to codex).
    Codex(RunArgs),
    /// Gemini CLI in the `gemini` profile (arguments after `--` go to gemini).
    Gemini(RunArgs),
    /// aider in the `aider` profile (arguments after `--` go to aider).
    Aider(RunArgs),
    /// opencode in the `opencode` profile (arguments after `--` go to opencode).
    Opencode(RunArgs),
    /// Inside a sandbox: one line of what is really enforced (for Claude Code's statusLine).
    Statusline,
    /// Keep an agent's API key (or Claude's OAuth token) for the gateway, outside every sandbox.
    Login {
        /// The agent (claude, codex, gemini, aider, opencode).
        agent: String,
    },
    /// Say, layer by layer, what this machine can enforce, and why not where it cannot.
    Check(CheckArgs),
    /// Clean up after sessions that were killed: placeholders in workspaces, session directories;
    /// and the agent state of projects that no longer exist.
    Gc,
    /// Show a session's audit log (default: the most recent session).
    Logs(LogsArgs),
    /// Explain whether an access from inside is allowed, and which rule decides: a path
    /// (`/etc/shadow`, `~/.ssh/id_ed25519`, `./.env`) or a host (`example.com:443`).
    Why(WhyArgs),
    /// End a running session: SIGTERM to its command (--force: SIGKILL to the whole sandbox).
    Kill {
        /// The session id (or a unique prefix), from `corral ps`.
        id: String,
        /// SIGKILL instead of SIGTERM.
        #[arg(long)]
        force: bool,
    },
    /// List the sessions running now: what they run, how they are confined, what they use.
    Ps {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A live dashboard of the running sessions: their network decisions, denied system calls,
    /// programs started and layers (↑↓ select, K kill, q quit).
    Top,
    /// Review the project's .corral.toml (and .corral.env) and trust that exact content, so it may
    /// widen the policy; a changed file needs trusting again.
    Trust(crate::cmd_trust::TrustArgs),
    /// List, show (merged, with where each value came from) or validate profiles.
    Profile {
        #[command(subcommand)]
        cmd: crate::cmd_profile::ProfileCmd,
    },
    /// Write a commented .corral.toml for this project (it may only tighten the built-in policy).
    Init(crate::cmd_profile::InitArgs),
    /// As root, once: delegate a cgroup to a user (memory, pids, CPU limits) and allow user
    /// namespaces where Ubuntu's AppArmor restricts them; --undo reverts.
    Setup(crate::cmd_setup::SetupArgs),
    /// Archive the agents' state kept outside projects (~/.local/share/corral: each project's
    /// agent config, such as the sandbox's ~/.claude, and the per-user part they share).
    Backup(crate::cmd_backup::BackupArgs),
    /// Put back agent state from a `corral backup` archive; local state with newer files is not
    /// replaced without --force.
    Restore(crate::cmd_backup::RestoreArgs),
    /// List the review-mode sessions kept for review: project, age, running or ended, and what
    /// they changed.
    Sessions(crate::cmd_review::SessionsArgs),
    /// Show what a review-mode session changed in its project (exec triggers first, marked).
    Diff(crate::cmd_review::DiffArgs),
    /// Write a review-mode session's changes into its project (exec triggers only when named or
    /// with --include-triggers, after confirmation); nothing on a conflict without --force.
    Apply(crate::cmd_review::ApplyArgs),
    /// Throw away a review-mode session's changes.
    Discard(crate::cmd_review::DiscardArgs),
    /// Attack a sandbox made from your profile, on this machine, with bait of its own (fake keys,
    /// loopback services, a sentinel process): a matrix of what was blocked, by which layer, and
    /// what escaped. Every attack is first run without the sandbox, to show it would notice.
    Selftest(crate::selftest::SelftestArgs),
    /// (Internal) The attacker of `corral selftest`: runs the attacks a brief lists.
    #[command(name = "__selftest-probe", hide = true)]
    SelftestProbe {
        /// The brief (JSON) written by `corral selftest`.
        brief: std::path::PathBuf,
    },
}

/// Flags of `corral run`.
#[derive(Debug, Default, Args)]
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
    /// Pass a variable in: NAME (its host value) or NAME=VALUE. Repeatable.
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,
    /// Memory limit (limits.memory_mb), e.g. 2G or 512M.
    #[arg(long, value_name = "SIZE", value_parser = corral_core::profile::parse_size_mb)]
    pub memory: Option<u64>,
    /// Process limit (limits.pids).
    #[arg(long, value_name = "N")]
    pub pids: Option<u64>,
    /// Wall-clock limit for the session (limits.wall_seconds), e.g. 90s, 30m, 2h.
    #[arg(long, value_name = "DURATION", value_parser = corral_core::profile::parse_duration_s)]
    pub timeout: Option<u64>,
    /// Network mode (network.mode): none, proxy (egress only through corral's filtering proxy)
    /// or host (no isolation).
    #[arg(long, value_name = "MODE", value_parser = ["none", "proxy", "host"])]
    pub network: Option<String>,
    /// Review mode (sandbox.review): the agent works on a copy-on-write view of the project; its
    /// changes land only when you apply them (`corral diff`, `corral apply`, `corral discard`).
    #[arg(long)]
    pub review: bool,
    /// A host the proxy may reach (network.allow; repeatable): example.com, *.example.com,
    /// example.com:8443.
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_host: Vec<String>,
    /// The command and its arguments (after `--`); for an agent subcommand, more arguments for
    /// the agent.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
    /// Set for the agent subcommands: `command` holds arguments appended to the profile's command.
    #[arg(skip)]
    pub agent_args: bool,
    /// (For `corral selftest`.) Bind corral's own executable read-only at ~/.corral/bin/corral,
    /// where the selftest's attacker runs from.
    #[arg(long, hide = true)]
    pub with_corral: bool,
}

/// Flags of `corral why`.
#[derive(Debug, Args)]
pub struct WhyArgs {
    /// A path or `host[:port]`.
    pub target: String,
    /// Explain from this running or past session's plan (default: the plan a launch here would use).
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// The profile a launch here would use (as for `corral run`).
    #[arg(long, value_name = "NAME|PATH", conflicts_with = "session")]
    pub profile: Option<String>,
}

/// Flags of `corral logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The session id (or a unique prefix); default: the most recent.
    pub id: Option<String>,
    /// Print the records as JSON lines.
    #[arg(long)]
    pub json: bool,
    /// Check the hash chain: detects an edited, reordered, removed or cut-off record.
    #[arg(long, conflicts_with = "follow")]
    pub verify: bool,
    /// Only these kinds of event: the part of the name before the dot (`session`, `env`, `exec`, `syscall`,
    /// `fs`, `net`, `api`, `dns`, `limit`, `log`), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub kind: Vec<String>,
    /// Keep printing new records until the session ends.
    #[arg(short, long)]
    pub follow: bool,
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
/// An agent subcommand: its built-in profile (unless --profile names another), the rest as given.
fn agent(name: &str, mut args: RunArgs, yes: bool) -> anyhow::Result<i32> {
    args.profile.get_or_insert_with(|| name.to_string());
    args.agent_args = true;
    crate::run::run(&args, yes)
}

pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    crate::ui::set_quiet(cli.quiet);
    let Some(command) = cli.command else {
        return agent("claude", RunArgs::default(), cli.yes);
    };
    match command {
        Command::Run(args) => crate::run::run(&args, cli.yes),
        Command::Claude(args) => agent("claude", args, cli.yes),
        Command::Codex(args) => agent("codex", args, cli.yes),
        Command::Statusline => crate::cmd_statusline::statusline(),
        Command::Login { agent } => {
            let home = crate::context::invocation(Vec::new(), false, Vec::new())?.home;
            crate::agent::login(&agent, &home)
        }
        Command::Gemini(args) => agent("gemini", args, cli.yes),
        Command::Aider(args) => agent("aider", args, cli.yes),
        Command::Opencode(args) => agent("opencode", args, cli.yes),
        Command::Check(args) => crate::run::check(&args),
        Command::Gc => crate::run::gc(),
        Command::Why(args) => crate::run::why(&args),
        Command::Kill { id, force } => crate::run::kill(&id, force),
        Command::Ps { json } => {
            let home = crate::context::invocation(Vec::new(), false, Vec::new())?.home;
            let root = crate::run::sessions_root()?;
            let logs = [crate::auditlog::sessions_dir(&home), root.join("logs")];
            crate::cmd_ps::ps(&root, &logs, json)
        }
        Command::Top => {
            let home = crate::context::invocation(Vec::new(), false, Vec::new())?.home;
            let root = crate::run::sessions_root()?;
            let logs = [crate::auditlog::sessions_dir(&home), root.join("logs")];
            crate::cmd_top::top(&root, &logs)
        }
        Command::Logs(args) => {
            let home = crate::context::invocation(Vec::new(), false, Vec::new())?.home;
            let view = crate::auditlog::View {
                json: args.json,
                kinds: args.kind.clone(),
                follow: args.follow,
            };
            crate::auditlog::logs(&home, args.id.as_deref(), &view, args.verify)
        }
        Command::Trust(args) => crate::cmd_trust::trust(&args, cli.yes),
        Command::Profile { cmd } => crate::cmd_profile::profile(&cmd),
        Command::Init(args) => crate::cmd_profile::init(&args),
        Command::Setup(args) => crate::cmd_setup::setup(&args),
        Command::Backup(args) => crate::cmd_backup::backup(&args),
        Command::Restore(args) => crate::cmd_backup::restore(&args),
        Command::Sessions(args) => {
            let home = crate::context::invocation(Vec::new(), false, Vec::new())?.home;
            crate::cmd_review::sessions(&home, &args)
        }
        Command::Diff(args) => {
            let inv = crate::context::invocation(Vec::new(), false, Vec::new())?;
            crate::cmd_review::diff(&inv.home, &inv.cwd, &args)
        }
        Command::Apply(args) => {
            let inv = crate::context::invocation(Vec::new(), false, Vec::new())?;
            let root = crate::run::sessions_root().ok();
            crate::cmd_review::apply(&inv.home, &inv.cwd, root.as_deref(), &args, cli.yes)
        }
        Command::Selftest(args) => crate::selftest::selftest(&args),
        Command::SelftestProbe { brief } => crate::selftest::probe::run(&brief),
        Command::Discard(args) => {
            let home = crate::context::invocation(Vec::new(), false, Vec::new())?.home;
            let root = crate::run::sessions_root().ok();
            crate::cmd_review::discard(&home, root.as_deref(), &args)
        }
    }
}
