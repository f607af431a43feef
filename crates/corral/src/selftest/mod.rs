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

use anyhow::Context;
use attacks::HostView;
use bait::{Inbox, Scratch, Tree};
use brief::{Brief, Limits, Mode, Probe, ProbeLine, SecretBait, Set};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// The limits of the resource run: small, so exhausting them is cheap and harmless.
const RES_MEMORY: &str = "256M";
const RES_PIDS: &str = "128";
const RES_TOML: &str = "[limits]\nfile_mb = 32\ntmp_mb = 64\ncpu_seconds = 2\n";
/// The TLS run's addition: the proxy may dial the bait on the host's loopback.
const TLS_TOML: &str = "[network]\nallow_cidrs = [\"127.0.0.1/32\"]\n";
/// How long one run may take before it is killed (the attacks bound themselves well below).
const RUN_DEADLINE: Duration = Duration::from_secs(300);

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

/// The bait services, shared by every run.
struct Services {
    inbox: Inbox,
    tcp_port: u16,
    tcp6_port: Option<u16>,
    udp_port: u16,
    dns_port: u16,
    proxy_port: u16,
    abstract_name: String,
    unix_path: PathBuf,
    ssh_agent: PathBuf,
    host_tmp_file: PathBuf,
    host_shm_file: PathBuf,
}

impl Services {
    fn start(scratch: &mut Scratch, token: &str) -> anyhow::Result<Services> {
        let inbox = Inbox::default();
        let tcp_port = bait::tcp_listener("127.0.0.1:0", &inbox).context("binding the bait TCP listener")?;
        let tcp6_port = bait::tcp_listener("[::1]:0", &inbox);
        let udp_port = bait::udp_listener(&inbox)?;
        let dns_port = bait::dns_server(&inbox)?;
        let proxy_port = bait::open_proxy(&inbox)?;
        let sockets = scratch.root.join("sockets");
        std::fs::create_dir(&sockets)?;
        let abstract_name = format!("corral-selftest-{}", &token[..12]);
        {
            use std::os::linux::net::SocketAddrExt;
            bait::unix_listener(
                &std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())?,
                &inbox,
            )?;
        }
        let unix_path = sockets.join("service.sock");
        bait::unix_listener(
            &std::os::unix::net::SocketAddr::from_pathname(&unix_path)?,
            &inbox,
        )?;
        let ssh_agent = sockets.join("agent.sock");
        bait::unix_listener(
            &std::os::unix::net::SocketAddr::from_pathname(&ssh_agent)?,
            &inbox,
        )?;
        let name = format!("corral-selftest-{}-bait", &token[..12]);
        let host_tmp_file = bait::plant_outside(scratch, "/tmp", &name, token)?;
        let host_shm_file = if Path::new("/dev/shm").is_dir() {
            bait::plant_outside(scratch, "/dev/shm", &name, token)?
        } else {
            bait::plant_outside(scratch, &scratch.root.display().to_string(), "shm-bait", token)?
        };
        Ok(Services {
            inbox,
            tcp_port,
            tcp6_port,
            udp_port,
            dns_port,
            proxy_port,
            abstract_name,
            unix_path,
            ssh_agent,
            host_tmp_file,
            host_shm_file,
        })
    }

    fn received(&self) -> Vec<String> {
        self.inbox.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// The variables the bait puts in the launcher's environment.
fn bait_env(cmd: &mut Command, token: &str, s: &Services) {
    for name in attacks::secrets::BAIT_VARS {
        cmd.env(name, format!("bait-{token}"));
    }
    cmd.env("SSH_AUTH_SOCK", &s.ssh_agent);
}

/// `corral run` flags for a set.
fn run_flags(
    set: Set,
    args: &SelftestArgs,
    scratch: &Scratch,
    proxy_mode: bool,
    tcp_port: u16,
) -> anyhow::Result<Vec<String>> {
    let mut f = Vec::new();
    match set {
        Set::Main => {
            if let Some(p) = &args.profile {
                f.extend(["--profile".to_string(), p.clone()]);
            }
            if proxy_mode {
                // An allowed name that resolves to loopback: the proxy must still refuse it.
                f.extend(["--allow-host".to_string(), format!("localhost:{tcp_port}")]);
            }
        }
        Set::Tls => {
            let file = scratch.root.join("tls.toml");
            std::fs::write(&file, derived_profile(args.profile.as_deref(), TLS_TOML)?)
                .with_context(|| format!("writing {}", file.display()))?;
            f.extend(["--profile".to_string(), file.display().to_string()]);
            if proxy_mode {
                f.extend(["--allow-host".to_string(), format!("localhost:{tcp_port}")]);
            }
        }
        Set::Resources => {
            let file = scratch.root.join("resources.toml");
            std::fs::write(&file, derived_profile(args.profile.as_deref(), RES_TOML)?)
                .with_context(|| format!("writing {}", file.display()))?;
            f.extend(["--profile".to_string(), file.display().to_string()]);
            f.extend([
                "--memory".to_string(),
                RES_MEMORY.into(),
                "--pids".into(),
                RES_PIDS.into(),
            ]);
        }
    }
    Ok(f)
}

/// The user's profile (a built-in name or a file) with `extra` (TOML tables) set over it.
fn derived_profile(choice: Option<&str>, extra: &str) -> anyhow::Result<String> {
    let is_file = choice.is_some_and(|c| c.contains('/') || c.ends_with(".toml"));
    if !is_file {
        return Ok(format!("extends = {:?}\n{extra}", choice.unwrap_or("default")));
    }
    let path = choice.unwrap_or_default();
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the profile {path}"))?;
    let mut table: toml::Table = text
        .parse()
        .with_context(|| format!("the profile {path} does not parse"))?;
    let ours: toml::Table = extra.parse().context("selftest's profile additions")?;
    for (section, values) in ours {
        let into = table
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let (Some(into), toml::Value::Table(values)) = (into.as_table_mut(), values) {
            into.extend(values);
        }
    }
    Ok(toml::to_string(&table)?)
}

/// The plan `corral run` would use for `tree` (its --dry-run --json).
fn dry_run(exe: &Path, tree: &Tree, flags: &[String]) -> anyhow::Result<serde_json::Value> {
    let mut cmd = Command::new(exe);
    cmd.args(["run", "--with-corral", "--dry-run", "--json"])
        .args(flags)
        .args(["--", "true"]);
    sandbox_env(&mut cmd, tree);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .context("running corral run --dry-run")?;
    if !out.status.success() {
        anyhow::bail!(
            "corral selftest: the profile does not make a plan: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("reading corral run --dry-run --json")
}

/// The sandbox launcher's environment: the fake home, the user's own corral config.
fn sandbox_env(cmd: &mut Command, tree: &Tree) {
    let real_home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let config = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        _ => real_home.join(".config"),
    };
    cmd.env("HOME", &tree.home)
        .env("XDG_CONFIG_HOME", config)
        .current_dir(&tree.workspace);
}

/// Protected paths of the project (relative; directories end with `/`), from the plan.
fn protected(plan: &serde_json::Value, ws: &Path) -> Vec<String> {
    let dirs: Vec<PathBuf> = plan["placeholders"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["kind"] == "dir")
        .filter_map(|p| p["path"].as_str().map(PathBuf::from))
        .collect();
    let mut out: Vec<String> = plan["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["op"] == "rebind" && m["why"] == "protect")
        .filter_map(|m| m["dst"].as_str().map(PathBuf::from))
        .filter_map(|p| {
            let rel = p.strip_prefix(ws).ok()?.display().to_string();
            let dir = dirs.contains(&p) || p.is_dir();
            Some(if dir { format!("{rel}/") } else { rel })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn limits_of(plan: &serde_json::Value) -> Limits {
    let l = &plan["limits"];
    Limits {
        pids: l["pids"].as_u64(),
        memory_mb: l["memory_mb"].as_u64(),
        file_mb: l["file_mb"].as_u64(),
        tmp_mb: l["tmp_mb"].as_u64(),
        cpu_seconds: l["cpu_seconds"].as_u64(),
    }
}

/// A process killed and reaped when dropped, on every way out.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A sentinel process outside: `sleep` with the token in its environment.
fn sentinel(token: &str) -> anyhow::Result<Reaped> {
    Command::new("sleep")
        .arg("600")
        .env("CORRAL_SELFTEST_CANARY", format!("bait-{token}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Reaped)
        .context("starting the sentinel process (sleep)")
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
                || Probe::Skipped("not in the control run".into()),
                |ca| control.judge(ca),
            );
            let x = sandbox.judge(a);
            let (result, detail) = match (&c, &x) {
                (Probe::Skipped(why), _) => (Verdict::Skipped, why.clone()),
                (Probe::Escaped(_), Probe::Escaped(how)) => (Verdict::Escaped, how.clone()),
                (Probe::Escaped(_), Probe::Skipped(why)) => (Verdict::Skipped, why.clone()),
                (Probe::Escaped(_), Probe::Blocked(how)) => (Verdict::Blocked, how.clone()),
                (Probe::Escaped(_), Probe::Attempted(none)) => (Verdict::Error, none.clone()),
                (other, _) => (
                    Verdict::Unproven,
                    format!("the control run did not get through: {}", text(other)),
                ),
            };
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

fn text(p: &Probe) -> String {
    match p {
        Probe::Escaped(t) => format!("got through: {t}"),
        Probe::Blocked(t) => format!("refused: {t}"),
        Probe::Skipped(t) => format!("skipped: {t}"),
        Probe::Attempted(t) => format!("no answer: {t}"),
    }
}

/// What one run of the attacker produced.
struct RunOutput {
    brief: Brief,
    lines: BTreeMap<String, Probe>,
    view: HostView,
    /// Why the run did not finish, when it did not.
    failed: Option<String>,
}

impl RunOutput {
    /// An attack's outcome: the host's evidence first, then what the attacker saw. An attempt the
    /// host saw no trace of was refused somewhere on the way.
    fn judge(&self, a: &attacks::Attack) -> Probe {
        let seen = self.lines.get(&a.id).cloned();
        if let Some(evidence) = a.verify.as_ref().and_then(|v| v(&self.brief, &self.view)) {
            return Probe::Escaped(evidence);
        }
        match seen {
            Some(Probe::Attempted(what)) if a.verify.is_some() => {
                Probe::Blocked(format!("{what}, but nothing reached the host"))
            }
            Some(p) => p,
            None => Probe::Attempted(format!(
                "the attacker gave no answer{}",
                self.failed
                    .as_deref()
                    .map(|f| format!(" ({f})"))
                    .unwrap_or_default()
            )),
        }
    }
}

/// Runs the attacker once: without the sandbox (`flags` is None) or inside it.
fn attack_run(
    exe: &Path,
    s: &Services,
    mut brief: Brief,
    tree: &Tree,
    flags: Option<&[String]>,
) -> anyhow::Result<RunOutput> {
    if let Ok(mut v) = s.inbox.lock() {
        v.clear();
    }
    let mut sentinel = sentinel(&brief.token)?;
    brief.sentinel_pid = i32::try_from(sentinel.0.id()).unwrap_or(0);
    // A descriptor on a secret left open for the launcher to inherit.
    let secret = std::fs::File::open(
        tree.secrets
            .first()
            .map(|(_, f)| f.as_path())
            .unwrap_or(Path::new("/")),
    )
    .context("opening the bait secret")?;
    rustix::io::fcntl_setfd(&secret, rustix::io::FdFlags::empty()).context("fcntl")?;
    brief.inherited_fd = std::os::fd::AsRawFd::as_raw_fd(&secret);
    let brief_path = tree.workspace.join(".selftest-brief.json");
    std::fs::write(&brief_path, serde_json::to_vec(&brief)?).context("writing the brief")?;
    let protected_before = brief
        .protected
        .iter()
        .chain(
            [
                ".git".to_string(),
                ".git/hooks".into(),
                ".git/config".into(),
                ".vscode".into(),
            ]
            .iter(),
        )
        .map(|r| {
            let r = r.trim_end_matches('/').to_string();
            let d = attacks::describe(&tree.workspace.join(&r));
            (r, d)
        })
        .collect();

    let mut cmd = match flags {
        None => {
            // Through a shell that waits, so the attacker has a parent outside holding the bait
            // variables (as corral's init would, inside, if it kept them).
            let mut c = Command::new("sh");
            c.args(["-c", "\"$@\"; exit $?", "sh"])
                .arg(exe)
                .arg("__selftest-probe")
                .arg(&brief_path)
                .current_dir(&tree.workspace);
            c
        }
        Some(flags) => {
            let inside = tree.home.join(corral_core::agents::CORRAL_DIR).join("bin/corral");
            let mut c = Command::new(exe);
            c.args(["-y", "-q", "run", "--with-corral"])
                .args(flags)
                .arg("--")
                .arg(inside)
                .arg("__selftest-probe")
                .arg(&brief_path);
            sandbox_env(&mut c, tree);
            c
        }
    };
    bait_env(&mut cmd, &brief.token, s);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the attacker")?;
    drop(secret);
    let stdout = child.stdout.take().context("the attacker's stdout")?;
    let stderr = child.stderr.take().context("the attacker's stderr")?;
    let err_reader = std::thread::spawn(move || {
        let mut t = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::BufReader::new(stderr), &mut t);
        t
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + RUN_DEADLINE;
    let mut lines = BTreeMap::new();
    let mut failed = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if let Ok(l) = serde_json::from_str::<ProbeLine>(&line) {
                    lines.insert(l.id, l.probe);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    failed = Some(format!(
                        "the attacker ran past {} s and was killed",
                        RUN_DEADLINE.as_secs()
                    ));
                    break;
                }
            }
        }
    }
    let status = child.wait().context("waiting for the attacker")?;
    let errors = err_reader.join().unwrap_or_default();
    if !status.success() && failed.is_none() {
        let why = errors
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string();
        failed = Some(format!(
            "the {} run ended with {status}{}",
            if flags.is_some() { "sandbox" } else { "control" },
            if why.is_empty() {
                String::new()
            } else {
                format!(": {why}")
            }
        ));
    }
    // Let in-flight messages land.
    std::thread::sleep(Duration::from_millis(300));
    let sentinel_alive = sentinel.0.try_wait().ok().flatten().is_none();
    drop(sentinel);
    let view = HostView {
        received: s.received(),
        sentinel_alive,
        protected_before,
    };
    Ok(RunOutput {
        brief,
        lines,
        view,
        failed,
    })
}
