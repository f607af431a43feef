//! One run of the attacker (without the sandbox, or inside it) and what it produced: the
//! sentinel, the inherited descriptor, the brief, the attacker's JSON lines, the host's view
//! after it, and each attack judged from both.

use super::attacks::{self, HostView};
use super::bait::{bait_env, Services, Tree};
use super::brief::{Brief, Probe, ProbeLine};
use super::setup::sandbox_env;
use anyhow::Context;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one run may take before it is killed (the attacks bound themselves well below).
pub(super) const RUN_DEADLINE: Duration = Duration::from_secs(300);

/// A process killed and reaped when dropped, on every way out.
pub(super) struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A sentinel process outside: `sleep` with the token in its environment.
pub(super) fn sentinel(token: &str) -> anyhow::Result<Reaped> {
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

pub(super) fn text(p: &Probe) -> String {
    match p {
        Probe::Escaped(t) => format!("got through: {t}"),
        Probe::Blocked(t) => format!("refused: {t}"),
        Probe::Skipped(t) => format!("skipped: {t}"),
        Probe::Attempted(t) => format!("no answer: {t}"),
        Probe::Failed(t) => format!("failed: {t}"),
    }
}

/// What one run of the attacker produced.
pub(super) struct RunOutput {
    pub(super) brief: Brief,
    pub(super) lines: BTreeMap<String, Probe>,
    pub(super) view: HostView,
    /// Why the run did not finish, when it did not.
    pub(super) failed: Option<String>,
}

impl RunOutput {
    /// An attack's outcome: the host's evidence first, then what the attacker saw. An attempt the
    /// host saw no trace of was refused somewhere on the way.
    pub(super) fn judge(&self, a: &attacks::Attack) -> Probe {
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
pub(super) fn attack_run(
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
