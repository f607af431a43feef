//! `corral run`, `corral check`, `corral gc`: gather the inputs, plan (pure), launch, report.

use crate::cli::{CheckArgs, RunArgs};
use crate::context;
use anyhow::Context;
use corral_core::layer::{Achieved, LayerReport};
use corral_core::plan;
use corral_core::render::render_plan;
use corral_sys::session::{self, Session};
use std::path::Path;

/// Exit code for corral's own failures (like env(1) and docker run).
pub const EXIT_LAUNCH_ERROR: i32 = 125;

fn sessions_root() -> anyhow::Result<std::path::PathBuf> {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").map(std::path::PathBuf::from);
    let uid = rustix::process::getuid().as_raw();
    Ok(session::sessions_root(xdg.as_deref(), uid)?)
}

/// `corral run`.
pub fn run(args: &RunArgs) -> anyhow::Result<i32> {
    if let Some(note) = context::drop_root_if_needed()? {
        eprintln!("corral: {note}");
    }
    let profile = context::load_profile(args.profile.as_deref())?;
    let inv = context::invocation(args.command.clone(), args.shell)?;
    let git_root = corral_sys::facts::git_root(&inv.cwd);
    let workspace = plan::choose_workspace(&profile, &inv, git_root.as_deref())?;
    let workspace = std::fs::canonicalize(&workspace)
        .with_context(|| format!("workspace {}: cannot resolve it", workspace.display()))?;
    let deny = plan::deny_globset(&profile.deny)?;
    let probe = plan::probe_paths(&profile, &inv, &workspace);
    let secret_patterns = plan::secret_paths(&inv.home, inv.uid);
    let facts = corral_sys::facts::gather(&probe, &secret_patterns, &workspace, &deny)?;
    let plan = plan::build(&profile, &inv, &workspace, &facts)?;

    if args.dry_run {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&plan)?);
        } else {
            print!("{}", render_plan(&plan));
        }
        return Ok(0);
    }
    for w in &plan.warnings {
        eprintln!("corral: warning: {w}");
    }

    let root = sessions_root()?;
    for line in session::gc(&root) {
        eprintln!("corral: cleaned up after a killed session: {line}");
    }
    let mut session = Session::create(&root, &workspace)?;
    let mut plan = plan;
    let result = session
        .create_placeholders(&plan.placeholders)
        .map_err(anyhow::Error::from)
        .and_then(|unneeded| {
            plan.drop_placeholders(&unneeded);
            corral_sys::launch::launch(
                &plan,
                &mut Reporter {
                    verbose: args.verbose,
                },
            )
            .map_err(anyhow::Error::from)
        });
    // Placeholders and the session directory go on every path out, success or not.
    for note in session.finish() {
        eprintln!("corral: {note}");
    }
    let outcome = result?;
    if let Some(err) = &outcome.error {
        eprintln!("corral: error: {err}");
    }
    Ok(outcome.exit_code)
}

/// What the user sees while the sandbox runs.
struct Reporter {
    verbose: bool,
}

impl corral_sys::launch::Observer for Reporter {
    fn layers(&mut self, layers: &[LayerReport]) {
        report_layers(layers, self.verbose);
    }
    fn note(&mut self, line: &str) {
        eprintln!("corral: {line}");
    }
}

/// Tells the user about every layer that is not fully in effect (always), or every layer
/// (`--verbose`). Never silent about a degradation.
fn report_layers(layers: &[LayerReport], verbose: bool) {
    for r in layers {
        if r.achieved != Achieved::Full {
            eprintln!(
                "corral: warning: layer {} is {} ({}): {}",
                r.layer,
                r.achieved,
                level_name(r),
                r.detail
            );
        } else if verbose {
            eprintln!(
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

/// `corral check`.
pub fn check(args: &CheckArgs) -> anyhow::Result<i32> {
    let profile = context::load_profile(args.profile.as_deref())?;
    let probe = corral_sys::probe::probe_host(Path::new("/proc"), Path::new("/sys"));
    let reports = corral_core::host::assess(&probe, &profile.layers);
    if args.json {
        let out = serde_json::json!({ "host": probe, "layers": reports });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", corral_core::host::render_check(&probe, &reports));
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
    let done = session::gc(&root);
    if done.is_empty() {
        println!("nothing to clean up");
    }
    for line in done {
        println!("{line}");
    }
    Ok(0)
}
