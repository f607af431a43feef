//! `corral run`, `corral check`, `corral gc`: gather the inputs, plan (pure), launch, report.

use crate::cli::{CheckArgs, RunArgs};
use crate::context;
use anyhow::Context;
use corral_core::audit::Event;
use corral_core::layer::{Achieved, LayerReport};
use corral_core::plan;
use corral_core::render::render_plan;
use corral_sys::session::{self, Session};
use std::path::Path;

/// Exit code for corral's own failures (like env(1) and docker run).
pub const EXIT_LAUNCH_ERROR: i32 = 125;

pub fn sessions_root() -> anyhow::Result<std::path::PathBuf> {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").map(std::path::PathBuf::from);
    let uid = rustix::process::getuid().as_raw();
    Ok(session::sessions_root(xdg.as_deref(), uid)?)
}

/// `corral run`.
pub fn run(args: &RunArgs, yes: bool) -> anyhow::Result<i32> {
    if let Some(note) = context::drop_root_if_needed()? {
        crate::say!("corral: {note}");
    }
    // Without a delegated cgroup, through a systemd scope when the user manager can make one.
    crate::scope::mark_started();
    if !args.dry_run {
        if let Some(code) = crate::scope::rerun_in_scope()? {
            return Ok(code);
        }
    }
    let Prepared {
        mut plan,
        profile,
        inv,
        workspace,
        proxy,
    } = prepare(args)?;

    if args.dry_run {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&plan.redacted())?);
        } else {
            print!("{}", render_plan(&plan));
        }
        return Ok(0);
    }
    // The agent's gateway (its credential read, its upstream parsed) before anything is made or
    // asked: a bad credential or upstream changes nothing.
    let gateway = crate::net::gateway_config(&plan)?.map(std::sync::Arc::new);
    for w in &plan.warnings {
        crate::say!("corral: warning: {w}");
    }
    if !confirm_environment(&mut plan, &profile, &inv, yes)? {
        crate::say!("corral: not launched; nothing was changed");
        return Ok(EXIT_NOT_CONFIRMED);
    }
    crate::agent::ensure_state(&profile, &inv, &workspace)?;
    crate::scope::set_limits(&plan.limits);
    let profile_digest = serde_json::to_vec(&profile)
        .ok()
        .map(|j| corral_core::audit::sha256_hex(&j));
    launch_session(
        args,
        plan,
        (proxy, gateway),
        &inv,
        &workspace,
        SessionFacts {
            agent: profile.agent.clone(),
            profile_digest,
        },
    )
}

/// A plan and what it was made from.
struct Prepared {
    plan: plan::Plan,
    /// The network runtime's configuration (proxy mode or an agent gateway).
    proxy: Option<corral_net::proxy::Config>,
    profile: corral_core::profile::Profile,
    inv: plan::Invocation,
    workspace: std::path::PathBuf,
}

/// Everything before the launch: profile layers, workspace, project files, env files, host facts,
/// and the plan. Changes nothing.
fn prepare(args: &RunArgs) -> anyhow::Result<Prepared> {
    let mut inv = context::invocation(args.command.clone(), args.shell, args.env.clone())?;
    let (name, mut layers) = context::base_layers(args.profile.as_deref(), &inv.home)?;
    let base = corral_core::profile::resolve(&name, &layers)?;
    let git_root = corral_sys::facts::git_root(&inv.cwd);
    let workspace = plan::choose_workspace(&base, &inv, git_root.as_deref())?;
    let workspace = std::fs::canonicalize(&workspace)
        .with_context(|| format!("sandbox.workspace {}: cannot resolve it", workspace.display()))?;
    let project = context::project(&workspace, &name, &layers, &inv.home)?;
    layers.extend(project.layer);
    // --allow-host adds to the allowlist the profiles give (a layer's list replaces the one below).
    let before_flags = corral_core::profile::resolve(&name, &layers)?;
    layers.extend(flag_layer(args, &before_flags.network_allow));
    let profile = corral_core::profile::resolve(&name, &layers)?;
    for note in &project.notes {
        crate::say!("corral: {note}");
    }
    inv.env_files = context::env_files(&profile, &inv.home, project.env)?;

    let deny = plan::deny_globset(&profile.deny)?;
    let probe = plan::probe_paths(&profile, &inv, &workspace);
    let secret_patterns = plan::secret_paths(&inv.home, inv.uid);
    let facts = corral_sys::facts::gather(&probe, &secret_patterns, &workspace, &deny)?;
    // An agent's command with the arguments given after `--` (`corral claude -- -p "hi"`).
    if args.agent_args {
        if let Some(extra) = inv.command.take() {
            inv.command = Some([profile.command.clone(), extra].concat());
        }
    }
    inv.agent = crate::agent::input(&profile, &inv, &workspace)?;
    let mut plan = plan::build(&profile, &inv, &workspace, &facts)?;
    if args.with_corral {
        let exe = std::env::current_exe()
            .and_then(std::fs::canonicalize)
            .context("finding corral's own executable")?;
        plan::bind_corral_exe(&mut plan, &exe, &inv.home);
    }
    // The network policy must parse before anything happens (also for --dry-run); the launch
    // uses this one.
    let proxy = crate::net::proxy_config(&plan)?;
    Ok(Prepared {
        plan,
        profile,
        inv,
        workspace,
        proxy,
    })
}

/// What `session.start` says of the profile beyond the plan.
#[derive(Debug, Clone, Default)]
struct SessionFacts {
    /// The agent the profile runs (`sandbox.agent`).
    agent: Option<String>,
    /// SHA-256 of the resolved profile.
    profile_digest: Option<String>,
}

/// The session: gc, session state, audit log, placeholders, the launch, the exit report.
fn launch_session(
    args: &RunArgs,
    mut plan: plan::Plan,
    (proxy_config, gateway): (
        Option<corral_net::proxy::Config>,
        Option<std::sync::Arc<corral_net::gateway::GatewayConfig>>,
    ),
    inv: &plan::Invocation,
    workspace: &std::path::Path,
    facts: SessionFacts,
) -> anyhow::Result<i32> {
    let root = sessions_root()?;
    for line in session::gc(&root) {
        crate::ui::info(&format!("cleaned up after a killed session: {line}"));
    }
    let mut session = Session::create(&root, workspace)?;
    let started = std::time::Instant::now();
    // The audit log lives in the user's state directory; a user without a writable home (corral
    // started as root runs as `nobody`) gets it in corral's runtime directory, and is told so.
    let primary = crate::auditlog::sessions_dir(&inv.home);
    let log = crate::auditlog::AuditLog::create(&primary, &session.state.id).or_else(|first| {
        let fallback = root.join("logs");
        let log = crate::auditlog::AuditLog::create(&fallback, &session.state.id)?;
        crate::say!(
            "corral: warning: {first:#}; the audit log is in {} instead (`corral logs` reads {} only)",
            fallback.display(),
            primary.display()
        );
        Ok::<_, anyhow::Error>(log)
    });
    let log = match log {
        Ok(log) => std::sync::Arc::new(log),
        Err(e) => {
            session.finish();
            return Err(e);
        }
    };
    let since = corral_sys::facts::file_clock_now();
    // Review mode: the session's upper and work directories, kept after the session for
    // `corral diff` / `apply` / `discard`; the workspace becomes an overlay over the project.
    let review_dir = if plan.review {
        match start_review(&plan, inv, workspace, &session.state.id, since) {
            Ok(dir) => {
                plan.enable_review(&dir.join("upper"), &dir.join("work"));
                Some(dir)
            }
            Err(e) => {
                session.finish();
                return Err(e);
            }
        }
    } else {
        None
    };
    log.write(env_audit_event(&plan));
    let mut totals = Totals::default();
    let result = match session.create_placeholders(&plan.placeholders) {
        Ok(unneeded) => {
            plan.drop_placeholders(&unneeded);
            // The plan as launched: session.start's digest is of these very bytes.
            log.save_plan(&plan);
            let mut reporter = Reporter {
                verbose: args.verbose,
                session: &mut session,
                log: log.clone(),
                plan: &plan,
                facts: facts.clone(),
                throttle: corral_core::audit::ExecThrottle::default(),
                clock: std::time::Instant::now(),
                totals: Totals::default(),
                proxy_config,
                gateway,
                proxy: None,
            };
            let launched = corral_sys::launch::launch(&plan, &mut reporter).map_err(anyhow::Error::from);
            // What an exec storm left counted but not yet written.
            if let Some(summary) = reporter.throttle.flush() {
                reporter.log.write(summary);
            }
            // The sandbox is gone: close what the proxy still carries, and sum it up.
            if let Some(proxy) = reporter.proxy.take() {
                let summary = proxy.stop();
                crate::ui::info(&format!("network: {}", summary.line()));
                reporter.log.write(crate::net::summary_event(&summary));
            }
            totals = std::mem::take(&mut reporter.totals);
            launched
        }
        Err(e) => {
            log.save_plan(&plan);
            Err(anyhow::Error::from(e))
        }
    };
    // What the session changed in the workspace (before the placeholders go: they are skipped);
    // in review mode, what waits for review (the project itself is untouched).
    match &review_dir {
        Some(dir) => report_review(dir, workspace, &session.state.id, &log),
        None => {
            let placeholders: Vec<std::path::PathBuf> =
                plan.placeholders.iter().map(|p| p.path.clone()).collect();
            report_changes(workspace, since, &placeholders, &log);
        }
    }
    // Placeholders and the session directory go on every path out, success or not.
    let session_id = session.state.id.clone();
    for note in session.finish() {
        crate::ui::info(&note);
    }
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            log.write(Event::SessionEnd {
                exit_code: EXIT_LAUNCH_ERROR,
                duration_ms,
                error: Some(format!("{e:#}")),
                execs: totals.execs,
                denied_syscalls: totals.denied.clone(),
                records_dropped: 0,
            });
            return Err(e);
        }
    };
    if let Some(err) = &outcome.error {
        crate::say!("corral: error: {err}");
    }
    if let Some(limit) = &outcome.limit_hit {
        crate::say!("corral: {limit}");
        log.write(Event::LimitHit {
            message: limit.clone(),
        });
    }
    // The exit report: on a terminal, with -v, or when something was denied; a script that pipes
    // stderr gets nothing when all went well (and -q silences it always).
    let notable = !totals.denied.is_empty();
    if notable || args.verbose || rustix::termios::isatty(rustix::stdio::stderr()) {
        crate::ui::info(&exit_report(&session_id, outcome.exit_code, duration_ms, &totals));
    }
    log.write(Event::SessionEnd {
        exit_code: outcome.exit_code,
        duration_ms,
        error: outcome.error.clone(),
        execs: totals.execs,
        denied_syscalls: totals.denied,
        records_dropped: 0,
    });
    Ok(outcome.exit_code)
}

/// What a session did, counted by the observer.
#[derive(Debug, Default)]
struct Totals {
    /// Programs started inside.
    execs: u64,
    /// Denied system calls per call name.
    denied: std::collections::BTreeMap<String, u64>,
    /// `syscall.denied` records written (the rest are counted only).
    denied_written: u64,
}

/// Most `syscall.denied` records written one by one in a session (a loop calling ptrace would
/// flood the log; the rest are counted in `session.end`).
const DENIED_RECORDS_MAX: u64 = 1000;

/// The exit report's line: `session 1a2b3c4d ended: exit 0 after 12.3 s; 42 programs run;
/// 3 denied system calls (ptrace ×2, bpf)`.
fn exit_report(id: &str, exit_code: i32, duration_ms: u64, t: &Totals) -> String {
    let short: String = id.chars().take(8).collect();
    let mut s = format!(
        "session {short} ended: exit {exit_code} after {:.1} s; {} program(s) run",
        duration_ms as f64 / 1000.0,
        t.execs
    );
    let denied: u64 = t.denied.values().sum();
    if denied > 0 {
        let list: Vec<String> = t
            .denied
            .iter()
            .map(|(name, n)| {
                if *n == 1 {
                    name.clone()
                } else {
                    format!("{name} ×{n}")
                }
            })
            .collect();
        s.push_str(&format!("; {denied} denied system call(s) ({})", list.join(", ")));
    }
    s
}

/// Creates the session's review directory (`~/.local/state/corral/reviews/<id>/`).
fn start_review(
    plan: &plan::Plan,
    inv: &plan::Invocation,
    workspace: &Path,
    id: &str,
    since: std::time::SystemTime,
) -> anyhow::Result<std::path::PathBuf> {
    let at = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let started = at(since);
    let meta = crate::review::ReviewMeta {
        id: id.to_string(),
        workspace: workspace.to_path_buf(),
        profile: plan.profile.clone(),
        started_unix_ms: u64::try_from(at(std::time::SystemTime::now()).as_millis()).unwrap_or(u64::MAX),
        started_ctime: (
            i64::try_from(started.as_secs()).unwrap_or(i64::MAX),
            i64::from(started.subsec_nanos()),
        ),
        ended: false,
    };
    crate::review::create(&inv.home, &meta)
}

/// Review mode's end: the session is marked ended (its changes can be applied now), and what it
/// changed is said and recorded, exec triggers first.
fn report_review(dir: &Path, workspace: &Path, id: &str, log: &crate::auditlog::AuditLog) {
    if let Err(e) = crate::review::mark_ended(dir) {
        crate::say!("corral: warning: marking the review session ended: {e:#}");
    }
    let changes = match crate::review::changes(&dir.join("upper"), workspace) {
        Ok(c) => c,
        Err(e) => {
            crate::say!(
                "corral: warning: reading the session's changes in {}: {e}",
                dir.display()
            );
            return;
        }
    };
    let short: String = id.chars().take(12).collect();
    let triggers: Vec<String> = changes
        .iter()
        .filter(|c| c.trigger)
        .map(|c| c.path.display().to_string())
        .collect();
    let others: Vec<String> = changes
        .iter()
        .filter(|c| !c.trigger)
        .map(|c| c.path.display().to_string())
        .collect();
    if changes.is_empty() {
        crate::ui::info(&format!(
            "review: the session changed nothing (corral discard {short} to remove it)"
        ));
    } else {
        crate::ui::info(&format!(
            "review: {} change(s){} wait in {} — the project is untouched: corral diff {short} · corral apply {short} · corral discard {short}",
            changes.len(),
            if triggers.is_empty() {
                String::new()
            } else {
                // The agent chose these names: escaped for the terminal.
                format!(
                    ", {} to files your tools run or obey ({})",
                    triggers.len(),
                    crate::cmd_trust::printable(&triggers.join(", "))
                )
            },
            dir.display()
        ));
    }
    log.write(Event::fs_changed(triggers, others, false));
}

/// Lists what the session changed in the workspace (exec triggers first) on stderr, when anything
/// changed, and records it in the audit log.
fn report_changes(
    workspace: &std::path::Path,
    since: std::time::SystemTime,
    skip: &[std::path::PathBuf],
    log: &crate::auditlog::AuditLog,
) {
    let (changed, walk_truncated) = corral_sys::facts::changed_since(workspace, since, skip);
    if changed.is_empty() && !walk_truncated {
        return;
    }
    let (triggers, others) = corral_core::changes::classify(&changed);
    let names = |v: &[std::path::PathBuf]| v.iter().map(|p| p.display().to_string()).collect::<Vec<_>>();
    if !triggers.is_empty() {
        // The agent chose these names: escaped, they cannot move the cursor or clear the screen.
        crate::say!(
            "corral: warning: the session changed files your own tools run or obey (review them before you use them): {}",
            crate::cmd_trust::printable(&names(&triggers).join(", "))
        );
    }
    crate::ui::info(&format!(
        "{} file(s) changed in {}{}",
        changed.len(),
        workspace.display(),
        if walk_truncated {
            " (the workspace is too large to list every change)"
        } else {
            ""
        }
    ));
    log.write(Event::fs_changed(
        names(&triggers),
        names(&others),
        walk_truncated,
    ));
}

/// The environment as the audit log records it: names only.
fn env_audit_event(plan: &plan::Plan) -> Event {
    use corral_core::envaudit::Decision;
    let names = |keep: fn(Decision) -> bool| -> Vec<String> {
        plan.env_audit
            .entries
            .iter()
            .filter(|e| keep(e.decision))
            .map(|e| e.name.clone())
            .collect()
    };
    Event::EnvAudit {
        passed: names(|d| !matches!(d, Decision::Withheld)),
        withheld: names(|d| matches!(d, Decision::Withheld)),
        left_out: plan.env_left_out.clone(),
    }
}

/// The command-line flags that set profile values, as the last layer.
fn flag_layer(args: &RunArgs, allow_before: &[String]) -> Option<corral_core::profile::ProfileLayer> {
    use corral_core::profile::{LimitsCfg, NetworkCfg, NetworkMode, ProfileCfg, ProfileLayer};
    if args.memory.is_none()
        && args.pids.is_none()
        && args.timeout.is_none()
        && args.network.is_none()
        && args.allow_host.is_empty()
        && !args.review
    {
        return None;
    }
    let network = NetworkCfg {
        mode: args.network.as_deref().map(|m| match m {
            "proxy" => NetworkMode::Proxy,
            "host" => NetworkMode::Host,
            _ => NetworkMode::None,
        }),
        allow: (!args.allow_host.is_empty()).then(|| [allow_before, &args.allow_host].concat()),
        ..NetworkCfg::default()
    };
    let limits = LimitsCfg {
        memory_mb: args.memory,
        pids: args.pids,
        wall_seconds: args.timeout,
        ..LimitsCfg::default()
    };
    Some(ProfileLayer {
        origin: "command line".into(),
        cfg: ProfileCfg {
            limits: Some(limits),
            network: Some(network),
            sandbox: args.review.then(|| corral_core::profile::SandboxCfg {
                review: Some(true),
                ..corral_core::profile::SandboxCfg::default()
            }),
            ..ProfileCfg::default()
        },
    })
}

/// Exit code when the user declines the launch at the environment prompt.
pub const EXIT_NOT_CONFIRMED: i32 = 1;

/// The environment audit before launch. On a terminal (stdin and stderr), without `--yes`: show
/// the audit, ask about each withheld variable one by one, then confirm the launch. With `--yes`:
/// no questions; say what was withheld. Neither a terminal nor `--yes`: refuse. Returns whether
/// to launch.
fn confirm_environment(
    plan: &mut plan::Plan,
    profile: &corral_core::profile::Profile,
    inv: &plan::Invocation,
    yes: bool,
) -> anyhow::Result<bool> {
    use corral_core::envaudit::Decision;
    let withheld: Vec<(String, String, String)> = plan
        .env_audit
        .entries
        .iter()
        .filter(|e| e.decision == Decision::Withheld)
        .map(|e| {
            (
                e.name.clone(),
                e.masked.clone(),
                e.flagged.as_ref().map(|r| r.text()).unwrap_or_default(),
            )
        })
        .collect();
    if yes {
        for (name, masked, why) in &withheld {
            crate::say!(
                "corral: withheld {name} ({masked}): it looks like a secret ({why}); let it in with env.allow_secrets in a profile, or answer the prompt (without --yes)"
            );
        }
        return Ok(true);
    }
    let interactive =
        rustix::termios::isatty(rustix::stdio::stdin()) && rustix::termios::isatty(rustix::stdio::stderr());
    if !interactive {
        anyhow::bail!(
            "no terminal to show the environment audit on: run with --yes to launch without asking (variables that look like secrets stay withheld unless a profile's env.allow_secrets names them), or --dry-run to see the audit"
        );
    }
    crate::say!(
        "corral: the environment of {}:",
        corral_core::render::shell_words(&plan.command)
    );
    for line in corral_core::envaudit::render_audit(&plan.env_audit).lines() {
        crate::say!("  {line}");
    }
    let (candidates, _) = plan::env_candidates(profile, inv);
    for (name, masked, why) in &withheld {
        if ask(&format!("let {name} ({masked}, {why}) into the sandbox? [y/N] "))? {
            if let Some((_, value, source)) = candidates.iter().find(|(n, _, _)| n == name) {
                plan.accept_env(name, value, *source);
            }
        }
    }
    ask("launch with this environment? [y/N] ")
}

/// Asks on the terminal; true only for an explicit yes.
fn ask(question: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, Write};
    eprint!("corral: {question}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the answer from the terminal")?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// What the user sees while the sandbox runs.
struct Reporter<'a> {
    verbose: bool,
    session: &'a mut Session,
    log: std::sync::Arc<crate::auditlog::AuditLog>,
    plan: &'a plan::Plan,
    /// For `session.start`.
    facts: SessionFacts,
    /// Keeps exec records to a rate the log can take, counting the rest.
    throttle: corral_core::audit::ExecThrottle,
    /// The throttle's time base.
    clock: std::time::Instant,
    /// What the session did, for the exit report and `session.end`.
    totals: Totals,
    /// `network.mode = "proxy"`: the proxy's configuration, until init hands over its sockets.
    proxy_config: Option<corral_net::proxy::Config>,
    /// The agent API gateway's configuration (with the real credential), until init hands over
    /// its socket.
    gateway: Option<std::sync::Arc<corral_net::gateway::GatewayConfig>>,
    /// The running proxy.
    proxy: Option<corral_net::proxy::Proxy>,
}

impl corral_sys::launch::Observer for Reporter<'_> {
    fn cgroup(&mut self, paths: &[std::path::PathBuf]) {
        // Recorded so that `corral gc` can remove it if this supervisor is killed.
        if let Err(e) = self.session.record_cgroups(paths) {
            crate::say!("corral: warning: could not record the session cgroup for `corral gc`: {e}");
        }
    }
    fn layers(&mut self, layers: &[LayerReport]) {
        report_layers(layers, self.verbose);
        let exec_audit_off = corral_sys::protocol::EXEC_AUDIT_OFF;
        if let Some(r) = layers.iter().find(|r| r.detail.contains(exec_audit_off)) {
            crate::say!(
                "corral: warning: this session's audit log will not list the programs started: {}",
                r.detail
            );
        }
        self.log.write(Event::SessionStart {
            version: env!("CARGO_PKG_VERSION").to_string(),
            profile: self.plan.profile.clone(),
            profile_digest: self.facts.profile_digest.clone(),
            plan_digest: corral_core::audit::sha256_hex(&crate::auditlog::plan_bytes(self.plan)),
            workspace: self.plan.workspace.display().to_string(),
            command: self
                .plan
                .command
                .iter()
                .map(|a| corral_core::audit::mask_arg(a))
                .collect(),
            layers: layers.to_vec(),
            agent: self.facts.agent.clone(),
        });
    }
    fn denied(&mut self, seen: &corral_sys::execwatch::DeniedSeen) {
        *self.totals.denied.entry(seen.syscall.clone()).or_default() += 1;
        if self.totals.denied_written < DENIED_RECORDS_MAX {
            self.totals.denied_written += 1;
            self.log.write(Event::SyscallDenied {
                pid: seen.pid,
                program: corral_core::audit::mask_arg(&seen.program),
                syscall: seen.syscall.clone(),
                detail: seen.detail.clone(),
            });
        }
    }
    fn exec(&mut self, seen: &corral_sys::execwatch::ExecSeen) {
        // A PATH search's misses are recorded, but started no program.
        if !seen.missing {
            self.totals.execs += 1;
        }
        let now_ms = u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX);
        use corral_core::audit::mask_arg;
        let program = mask_arg(seen.argv.first().map_or(seen.path.as_str(), String::as_str));
        let (summary, write) = self.throttle.admit(now_ms, &program);
        if let Some(summary) = summary {
            self.log.write(summary);
        }
        if !write {
            return;
        }
        self.log.write(Event::Exec {
            pid: seen.pid,
            ppid: seen.ppid,
            path: mask_arg(&seen.path),
            // argv[0] is masked already: it is `program`.
            argv: seen
                .argv
                .iter()
                .enumerate()
                .map(|(i, a)| if i == 0 { program.clone() } else { mask_arg(a) })
                .collect(),
            missing: seen.missing,
        });
    }
    fn net_sockets(&mut self, sockets: corral_sys::launch::NetSockets) {
        let Some(cfg) = self.proxy_config.take() else {
            return;
        };
        let log = self.log.clone();
        let sink: corral_net::proxy::Sink = Box::new(move |ev| log.write(crate::net::event(ev)));
        let listeners = crate::net::listeners(sockets, self.gateway.take());
        match corral_net::proxy::Proxy::start(cfg, listeners, sink) {
            Ok(p) => self.proxy = Some(p),
            Err(e) => self.note(&format!(
                "warning: {e}; the sandbox has no network (nothing answers its proxy)"
            )),
        }
    }
    fn note(&mut self, line: &str) {
        crate::say!("corral: {line}");
        self.log.write(Event::FsWatch {
            note: line.to_string(),
        });
    }
}

/// Tells the user about every layer that is not fully in effect (always), or every layer
/// (`--verbose`). Never silent about a degradation.
fn report_layers(layers: &[LayerReport], verbose: bool) {
    for r in layers {
        if r.achieved != Achieved::Full {
            crate::say!(
                "corral: warning: layer {} is {} ({}): {}",
                r.layer,
                r.achieved,
                level_name(r),
                r.detail
            );
        } else if verbose {
            crate::say!(
                "corral: layer {:<13} {}  {}",
                r.layer.name(),
                r.achieved,
                r.detail
            );
        }
    }
}

fn level_name(r: &LayerReport) -> &'static str {
    match r.level {
        corral_core::layer::Level::Required => "required",
        corral_core::layer::Level::BestEffort => "best effort",
    }
}

/// `corral why`: explains an access from the plan a launch here would use, or from a session's.
pub fn why(args: &crate::cli::WhyArgs) -> anyhow::Result<i32> {
    let (plan, home) = match &args.session {
        Some(id) => {
            let home = context::invocation(Vec::new(), false, Vec::new())?.home;
            (crate::auditlog::session_plan(&home, id)?, home)
        }
        None => {
            let run_args = RunArgs {
                profile: args.profile.clone(),
                shell: false,
                dry_run: true,
                json: false,
                verbose: false,
                env: Vec::new(),
                memory: None,
                pids: None,
                timeout: None,
                network: None,
                allow_host: Vec::new(),
                review: false,
                agent_args: false,
                command: Vec::new(),
                with_corral: false,
            };
            let p = prepare(&run_args)?;
            (p.plan, p.inv.home)
        }
    };
    let mut lines = corral_core::why::why(&plan, &args.target, &home);
    if lines.is_empty() {
        // Proxy mode, a host outside the sandbox: the proxy's own policy answers.
        lines = crate::net::why_host(&plan, &args.target)?;
    }
    for line in lines {
        println!("{line}");
    }
    Ok(0)
}

/// `corral kill`: ends a running session (its supervisor forwards the signal to the sandbox).
pub fn kill(id: &str, force: bool) -> anyhow::Result<i32> {
    let root = sessions_root()?;
    let live = session::live_sessions(&root);
    let hits: Vec<&session::SessionState> = live.iter().filter(|s| s.id.starts_with(id)).collect();
    let s = match hits.as_slice() {
        [one] => *one,
        [] => anyhow::bail!("no running session {id:?} (see `corral ps`)"),
        _ => anyhow::bail!(
            "{id:?} names {} running sessions: give more of the id",
            hits.len()
        ),
    };
    let (sig, name) = if force {
        (rustix::process::Signal::KILL, "SIGKILL")
    } else {
        (rustix::process::Signal::TERM, "SIGTERM")
    };
    let pid = rustix::process::Pid::from_raw(i32::try_from(s.pid).unwrap_or(0)).context("session pid")?;
    rustix::process::kill_process(pid, sig).with_context(|| format!("kill({}, {name})", s.pid))?;
    println!("sent {name} to session {} (pid {})", s.id, s.pid);
    Ok(0)
}

/// `corral check`.
pub fn check(args: &CheckArgs) -> anyhow::Result<i32> {
    let home = context::invocation(Vec::new(), false, Vec::new())?.home;
    let (name, layers) = context::base_layers(args.profile.as_deref(), &home)?;
    let profile = corral_core::profile::resolve(&name, &layers)?;
    let probe = corral_sys::probe::probe_host(Path::new("/proc"), Path::new("/sys"));
    let mut reports = corral_core::host::assess(&probe, &profile.layers);
    // The cgroup layer from a live attempt: it also finds a cgroup delegated by `corral setup`.
    if let Some(r) = reports
        .iter_mut()
        .find(|r| r.layer == corral_core::layer::Layer::Cgroup)
    {
        let (achieved, detail) = corral_sys::cgroup::try_session_cgroup();
        r.achieved = achieved;
        r.detail = detail;
    }
    if args.json {
        let out = serde_json::json!({ "host": probe, "layers": reports });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", corral_core::host::render_check(&probe, &reports));
        // What the machine can do is one thing; that the sandbox holds on it is another.
        println!("prove it    `corral selftest` attacks a sandbox from your profile on this machine");
    }
    Ok(if reports.iter().any(LayerReport::refuses_launch) {
        1
    } else {
        0
    })
}

/// `corral gc`.
pub fn gc() -> anyhow::Result<i32> {
    let root = sessions_root()?;
    let mut done = session::gc(&root);
    if let Some(home) = std::env::var_os("HOME").filter(|h| Path::new(h).is_absolute()) {
        done.extend(crate::agentstate::gc(Path::new(&home)));
    }
    if done.is_empty() {
        println!("nothing to clean up");
    }
    for line in done {
        println!("{line}");
    }
    Ok(0)
}
