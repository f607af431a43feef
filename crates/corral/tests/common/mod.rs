//! Test harness for real sandboxes (T2): launches the built `corral` binary **as an unprivileged
//! user**. When the test process is root (as CI is), every launch drops to the test user
//! (`corral-test`, created by `.ci/run`) with `setpriv`; the binary is copied to a world-readable
//! directory and fixtures (workspace, fake home) live in directories that user owns.
//!
//! A test that needs a missing kernel feature calls [`skip`], which prints `skipping: <why>` and
//! returns, or panics when `CORRAL_TEST_REQUIRE=1` (set in CI) so nothing is skipped there.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The unprivileged user tests run sandboxes as when the test process is root.
pub const TEST_USER: &str = "corral-test";

/// True when `CORRAL_TEST_REQUIRE=1`: a missing feature fails the test instead of skipping it.
pub fn require() -> bool {
    std::env::var("CORRAL_TEST_REQUIRE").is_ok_and(|v| v == "1")
}

/// Says `skipping: <why>` (or fails under `CORRAL_TEST_REQUIRE=1`). Use as `return skip(..)`.
pub fn skip(why: &str) {
    if require() {
        panic!("CORRAL_TEST_REQUIRE=1 but this test would skip: {why}");
    }
    eprintln!("skipping: {why}");
}

/// The ids the sandbox runs as: the test user's when we are root, else our own.
#[derive(Debug, Clone, Copy)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    /// True when launches go through setpriv.
    pub drop: bool,
}

fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name)).then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))?
    })
}

/// The ids to run as; panics with the fix when root and the test user is missing.
pub fn ids() -> Ids {
    let uid = rustix::process::geteuid().as_raw();
    if uid != 0 {
        return Ids {
            uid,
            gid: rustix::process::getegid().as_raw(),
            drop: false,
        };
    }
    let (uid, gid) = lookup_user(TEST_USER).unwrap_or_else(|| {
        panic!("tests run as root need the unprivileged user {TEST_USER}: `useradd -m {TEST_USER}` (.ci/run does this)")
    });
    Ids { uid, gid, drop: true }
}

/// The corral binary, copied where the test user can execute it.
pub fn corral_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let built = PathBuf::from(env!("CARGO_BIN_EXE_corral"));
        if !ids().drop {
            return built;
        }
        let dir = PathBuf::from(format!("/tmp/corral-test-bin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dst = dir.join("corral");
        std::fs::copy(&built, &dst).unwrap();
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
        dst
    })
}

/// A fixture: a fake home (with whatever secrets a test plants) and a workspace inside it, both
/// owned by the user the sandbox runs as. Removed on drop.
#[derive(Debug)]
pub struct Fixture {
    pub root: PathBuf,
    pub home: PathBuf,
    pub ws: PathBuf,
    pub ids: Ids,
}

impl Fixture {
    /// A new fixture with an empty git-less workspace `<home>/proj`.
    pub fn new() -> Fixture {
        let ids = ids();
        // Under /tmp (world-traversable) rather than the test's own temp dir, which may sit below a
        // directory the test user cannot enter.
        let root = tempfile::Builder::new()
            .prefix("corral-fx-")
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        let home = root.join("home");
        let ws = home.join("proj");
        std::fs::create_dir_all(&ws).unwrap();
        Fixture { root, home, ws, ids }
    }

    /// Writes `content` at `rel` (relative to the fake home), creating parents.
    pub fn home_file(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.home.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    /// Writes `content` at `rel` (relative to the workspace), creating parents.
    pub fn ws_file(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.ws.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    /// Gives every fixture file to the sandbox user (call after planting, before launching).
    pub fn chown(&self) {
        if self.ids.drop {
            let st = Command::new("chown")
                .arg("-R")
                .arg(format!("{}:{}", self.ids.uid, self.ids.gid))
                .arg(&self.root)
                .status()
                .unwrap();
            assert!(st.success());
        }
    }

    /// A `corral` command, run as the sandbox user from `cwd` with HOME = the fake home and a
    /// small clean environment (plus whatever the test adds).
    pub fn corral_in(&self, cwd: &Path) -> Command {
        let mut c = if self.ids.drop {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={}", self.ids.uid))
                .arg(format!("--regid={}", self.ids.gid))
                .arg("--clear-groups")
                .arg(corral_bin());
            c
        } else {
            Command::new(corral_bin())
        };
        c.current_dir(cwd)
            .env_clear()
            .env("HOME", &self.home)
            .env("USER", TEST_USER)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null());
        c
    }

    /// `corral` run from the workspace.
    pub fn corral(&self) -> Command {
        self.corral_in(&self.ws)
    }

    /// `corral run -- sh -c SCRIPT` from the workspace; returns the output.
    pub fn sh(&self, script: &str) -> Output {
        self.chown();
        self.corral()
            .args(["run", "--yes", "--", "sh", "-c", script])
            .output()
            .unwrap()
    }

    /// Runs `script` with `sh -c` as the sandbox user **outside** the sandbox (a control: shows the
    /// attack works without corral).
    pub fn sh_outside(&self, script: &str) -> Output {
        self.chown();
        let mut c = if self.ids.drop {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={}", self.ids.uid))
                .arg(format!("--regid={}", self.ids.gid))
                .arg("--clear-groups");
            c.arg("sh");
            c
        } else {
            Command::new("sh")
        };
        c.args(["-c", script])
            .current_dir(&self.ws)
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the run exited with `code`, showing both streams otherwise.
#[track_caller]
pub fn assert_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

/// True when unprivileged user namespaces work for the sandbox user (else tests [`skip`]).
pub fn userns_available() -> bool {
    let fx = Fixture::new();
    let o = fx.sh("true");
    o.status.success()
}

/// Every entry under `dir`, recursively, as `relative-path kind size`, sorted (to show that a
/// refused launch changed nothing).
pub fn listing(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = p.symlink_metadata() else { continue };
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let kind = if m.is_dir() {
                "dir"
            } else if m.file_type().is_symlink() {
                "link"
            } else {
                "file"
            };
            out.push(format!("{rel} {kind} {}", if m.is_dir() { 0 } else { m.len() }));
            if m.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Poll interval of [`wait_until`].
pub const WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Polls `f` every [`WAIT_POLL`] until it holds or `limit` has passed; returns whether it held.
pub fn wait_until(limit: std::time::Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(WAIT_POLL);
    }
}

/// A child that is killed and reaped when dropped, whatever the test's outcome.
#[derive(Debug)]
pub struct Reaped(pub std::process::Child);

impl Reaped {
    /// Its pid.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).unwrap()
    }

    /// Waits up to `limit` for the exit; None if still running.
    pub fn wait_for_exit(&mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        wait_until(limit, || {
            status = self.0.try_wait().unwrap();
            status.is_some()
        });
        status
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads `out` line by line on a thread; lines arrive on the channel.
pub fn lines_from(out: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (bounded) for a line satisfying `hit`; returns every line seen up to it (`Err`: every
/// line seen before the time ran out).
pub fn wait_line_where(
    rx: &std::sync::mpsc::Receiver<String>,
    hit: impl Fn(&str) -> bool,
    limit: std::time::Duration,
) -> Result<Vec<String>, Vec<String>> {
    let deadline = std::time::Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                let found = hit(&l);
                seen.push(l);
                if found {
                    return Ok(seen);
                }
            }
            Err(_) => return Err(seen),
        }
    }
}
