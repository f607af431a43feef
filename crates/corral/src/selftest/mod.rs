//! `corral selftest`: the adversarial escape suite, run on the user's own machine against a sandbox
//! made from the user's own profile.
//!
//! It plants bait outside the sandbox (a fake home with fake keys at every built-in secret path, a
//! project with a git repository, loopback services, unix sockets, a sentinel process), runs
//! corral itself as the attacker (`__selftest-probe`) once without the sandbox (the control run:
//! every attack must get through there, or it could not tell an escape) and once inside, then
//! judges each attack from what the attacker saw and what reached the bait. Resource exhaustion
//! runs in a second pair with small limits. Everything it planted is removed at the end.

pub mod attacks;
mod bait;
pub mod brief;
pub mod probe;
mod report;
mod runner;
mod setup;

use anyhow::Context;
use bait::{Scratch, Services, Tree};
use brief::{Brief, Mode, Probe, SecretBait, Set};
use runner::{attack_run, text};
use setup::{dry_run, limits_of, protected, run_flags, RES_MEMORY, RES_PIDS};
use std::path::Path;
use std::time::Instant;

/// Flags of `corral selftest`.
#[derive(Debug, clap::Args)]
pub struct SelftestArgs {
    /// The profile to attack (a built-in name or a file), as for `corral run`; default: what
    /// `corral run` uses.
    #[arg(long, value_name = "NAME|PATH")]
    pub profile: Option<String>,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Only the control run: every attack without the sandbox, where each must get through (it
    /// shows the attacks can see an escape on this machine). Nothing runs in a sandbox.
    #[arg(long)]
    pub control: bool,
}

/// One attack's verdict.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Refused inside, got through in the control run.
    Blocked,
    /// Got through inside.
    Escaped,
    /// Cannot be tried here (why in the detail).
    Skipped,
    /// Did not get through in the control run either: it cannot tell an escape here.
    Unproven,
    /// The attacker gave no answer for it.
    Error,
    /// `--control`: it got through without the sandbox, as it must.
    Detected,
}

/// One row of the matrix.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// Attack id.
    pub id: String,
    /// Group.
    pub group: String,
    /// What it tried.
    pub what: String,
    /// What should stop it.
    pub layer: String,
    /// The verdict.
    pub result: Verdict,
    /// What happened inside (or why it was skipped).
    pub detail: String,
    /// What happened in the control run.
    pub control: String,
}

/// `corral selftest`.
pub fn selftest(args: &SelftestArgs) -> anyhow::Result<i32> {
    if rustix::process::getuid().is_root() {
        anyhow::bail!(
            "corral selftest: run it as the user who runs agents, not as root (as root, corral's sandboxes run as another user, who cannot see the bait)"
        );
    }
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .context("finding corral's own executable")?;
    // Ctrl-C and SIGTERM end the run in progress (the sandbox gets them too), then the bait is
    // removed as on any other exit.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing a signal handler")?;
    }
    let token = bait::token()?;
    let mut scratch = Scratch::create(&token)?;
    let env = Services::start(&mut scratch, &token)?;
    let started = Instant::now();

    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for set in [Set::Main, Set::Tls, Set::Resources] {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            anyhow::bail!("corral selftest: interrupted; the bait was removed");
        }
        let (r, n) = run_pair(args, &exe, &scratch, &env, set, &token)?;
        rows.extend(r);
        notes.extend(n);
    }
    let profile = args.profile.clone().unwrap_or_else(|| "default".into());
    let elapsed = started.elapsed();
    drop(env);
    drop(scratch);
    if args.json {
        println!("{}", report::json(&profile, &rows, &notes, elapsed)?);
    } else {
        print!(
            "{}",
            report::table(&profile, &rows, &notes, elapsed, crate::ui::color())
        );
    }
    let bad = rows
        .iter()
        .any(|r| matches!(r.result, Verdict::Escaped | Verdict::Unproven | Verdict::Error));
    Ok(if bad { 1 } else { 0 })
}

/// One attack's verdict from its control run and its sandbox run: blocked only when the control
/// run got through and the sandbox run was refused.
fn verdict(control: &Probe, inside: &Probe) -> (Verdict, String) {
    match (control, inside) {
        (Probe::Skipped(why), _) => (Verdict::Skipped, why.clone()),
        (Probe::Escaped(_), Probe::Escaped(how)) => (Verdict::Escaped, how.clone()),
        (Probe::Escaped(_), Probe::Skipped(why)) => (Verdict::Skipped, why.clone()),
        (Probe::Escaped(_), Probe::Blocked(how)) => (Verdict::Blocked, how.clone()),
        (Probe::Escaped(_), Probe::Attempted(none) | Probe::Failed(none)) => (Verdict::Error, none.clone()),
        (other, _) => (
            Verdict::Unproven,
            format!("the control run did not get through: {}", text(other)),
        ),
    }
}

/// The control run and the sandbox run of one set, judged.
fn run_pair(
    args: &SelftestArgs,
    exe: &Path,
    scratch: &Scratch,
    s: &Services,
    set: Set,
    token: &str,
) -> anyhow::Result<(Vec<Row>, Vec<String>)> {
    let name = match set {
        Set::Main => "main",
        Set::Tls => "tls",
        Set::Resources => "resources",
    };
    let control_tree = bait::plant(&scratch.root.join(format!("{name}-control")), token)?;
    let sandbox_tree = bait::plant(&scratch.root.join(format!("{name}-sandbox")), token)?;
    let probe_flags = run_flags(set, args, scratch, false, s.tcp_port)?;
    let mut plan = dry_run(exe, &sandbox_tree, &probe_flags)?;
    let proxy_mode = plan["network"]["mode"] == "proxy";
    let flags = run_flags(set, args, scratch, proxy_mode, s.tcp_port)?;
    if proxy_mode {
        plan = dry_run(exe, &sandbox_tree, &flags)?;
    }
    let mut notes = Vec::new();
    if proxy_mode && set == Set::Main {
        notes.push(format!(
            "the proxy attacks add --allow-host localhost:{} (an allowed name that resolves to loopback)",
            s.tcp_port
        ));
    }
    if set == Set::Tls && proxy_mode {
        notes.push(format!(
            "the TLS name check is attacked in a sandbox whose proxy may dial a bait on the host's loopback (network.allow_cidrs = 127.0.0.1/32, --allow-host localhost:{})",
            s.tcp_port
        ));
    }
    if set == Set::Resources {
        notes.push(format!(
            "resources are attacked in a sandbox of their own with small limits: --memory {RES_MEMORY} --pids {RES_PIDS}, file_mb 32, tmp_mb 64, cpu_seconds 2"
        ));
    }
    let allowed_host = plan["network"]["allow"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h.as_str())
        .find(|h| !h.contains('*') && !h.starts_with("localhost"))
        .map(|h| h.split(':').next().unwrap_or(h).to_string());
    let protected = protected(&plan, &sandbox_tree.workspace);
    let limits = limits_of(&plan);
    let hostname = rustix::system::uname().nodename().to_string_lossy().into_owned();
    let brief_of = |tree: &Tree, mode: Mode| Brief {
        mode,
        set,
        token: token.to_string(),
        home: tree.home.clone(),
        workspace: tree.workspace.clone(),
        outside: tree.outside.clone(),
        secrets: tree
            .secrets
            .iter()
            .map(|(n, f)| SecretBait {
                name: n.clone(),
                file: f.clone(),
            })
            .collect(),
        protected: protected.clone(),
        outside_files: [".bashrc", ".gitconfig", ".local/bin/selftest-tool"]
            .iter()
            .map(|r| tree.home.join(r))
            .collect(),
        host_tmp_file: s.host_tmp_file.clone(),
        host_shm_file: s.host_shm_file.clone(),
        tcp_port: s.tcp_port,
        tcp6_port: s.tcp6_port,
        udp_port: s.udp_port,
        dns_port: s.dns_port,
        abstract_name: s.abstract_name.clone(),
        unix_path: s.unix_path.clone(),
        ssh_agent: s.ssh_agent.clone(),
        sentinel_pid: 0,
        inherited_fd: -1,
        host_hostname: hostname.clone(),
        proxy: (mode == Mode::Control).then(|| format!("http://127.0.0.1:{}", s.proxy_port)),
        allowed_host: allowed_host.clone(),
        limits,
    };
    let control = attack_run(
        exe,
        s,
        brief_of(&control_tree, Mode::Control),
        &control_tree,
        None,
    )?;
    if args.control {
        let rows = attacks::all(&control.brief)
            .iter()
            .map(|a| {
                let c = control.judge(a);
                let result = match &c {
                    Probe::Escaped(_) => Verdict::Detected,
                    Probe::Skipped(_) => Verdict::Skipped,
                    _ => Verdict::Unproven,
                };
                Row {
                    id: a.id.clone(),
                    group: a.group.to_string(),
                    what: a.what.clone(),
                    layer: a.layer.to_string(),
                    result,
                    detail: text(&c),
                    control: text(&c),
                }
            })
            .collect();
        return Ok((rows, notes));
    }
    let sandbox = attack_run(
        exe,
        s,
        brief_of(&sandbox_tree, Mode::Sandbox),
        &sandbox_tree,
        Some(&flags),
    )?;
    if let Some(why) = &sandbox.failed {
        notes.push(why.clone());
    }
    // Each run is judged by its own attack list: the host checks look at that run's bait.
    let control_list = attacks::all(&control.brief);
    let list = attacks::all(&sandbox.brief);
    let rows = list
        .iter()
        .map(|a| {
            let c = control_list.iter().find(|ca| ca.id == a.id).map_or_else(
                || Probe::Attempted("not in the control run".into()),
                |ca| control.judge(ca),
            );
            let (result, detail) = verdict(&c, &sandbox.judge(a));
            Row {
                id: a.id.clone(),
                group: a.group.to_string(),
                what: a.what.clone(),
                layer: a.layer.to_string(),
                result,
                detail,
                control: text(&c),
            }
        })
        .collect();
    Ok((rows, notes))
}

#[cfg(test)]
mod tests {
    use super::{verdict, Probe, Verdict};

    #[test]
    fn only_an_attack_that_got_through_outside_and_was_refused_inside_is_blocked() {
        let p = |s: &str| s.to_string();
        let through = Probe::Escaped(p("read the bait"));
        let refused = Probe::Blocked(p("ENOENT"));
        assert_eq!(verdict(&through, &refused).0, Verdict::Blocked);
        assert_eq!(verdict(&through, &through).0, Verdict::Escaped);
        // An attack that cannot tell an escape proves nothing, however it ends inside.
        assert_eq!(verdict(&refused, &refused).0, Verdict::Unproven);
        assert_eq!(
            verdict(&Probe::Attempted(p("not in the control run")), &refused).0,
            Verdict::Unproven
        );
        assert_eq!(
            verdict(&Probe::Failed(p("the attack panicked")), &refused).0,
            Verdict::Unproven
        );
        // An attack that broke or gave no answer inside is an error, never "blocked".
        assert_eq!(
            verdict(&through, &Probe::Failed(p("the attack panicked"))).0,
            Verdict::Error
        );
        assert_eq!(
            verdict(&through, &Probe::Attempted(p("no answer"))).0,
            Verdict::Error
        );
        // Skipped, with the reason, on either side.
        assert_eq!(
            verdict(&Probe::Skipped(p("no VT")), &refused),
            (Verdict::Skipped, p("no VT"))
        );
        assert_eq!(
            verdict(&through, &Probe::Skipped(p("no proxy"))).0,
            Verdict::Skipped
        );
    }
}
