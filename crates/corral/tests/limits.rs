//! Resource limits of real sandboxes: a fork bomb stops at `limits.pids`, memory past
//! `limits.memory_mb` kills only the sandbox's process and corral says which limit it was, a file
//! past `limits.file_mb` fails with EFBIG, `/tmp` and `/dev/shm` fill at `limits.tmp_mb`,
//! `limits.wall_seconds` and `limits.cpu_seconds` end the session with the reason. The agent cannot
//! reach its cgroup's limit files (no `/sys/fs/cgroup`, a cgroup namespace rooted at the session),
//! `corral check` reports the delegated cgroup, and the session cgroup is removed after the session,
//! also after a `--timeout` kill or a SIGKILLed supervisor (with `corral gc`).
//!
//! That a daemon started with `setsid` does not outlive the session is tested in `process.rs`
//! (`a_daemon_started_inside_does_not_outlive_the_session`).
//!
//! The cgroup-dependent tests need a cgroup delegated to the test user (`corral setup --user
//! corral-test`, as `scripts/test.sh` does); without it they say `skipping: ..` (or fail under
//! `CORRAL_TEST_REQUIRE=1`). Every launch carries `--timeout` as a safety net and every loop inside
//! is capped, so a limit that fails to hold costs at most a few hundred MiB and a few seconds inside
//! a sandbox that dies at the end anyway.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The safety net on every launch that does not test the wall-clock limit itself.
const SAFETY_TIMEOUT: &str = "30s";
/// How long a process or a cgroup may take to disappear once its session is gone.
const GONE_WITHIN: Duration = Duration::from_secs(5);
/// How long a sandbox may take to start a command (slow, shared machines).
const START_WITHIN: Duration = Duration::from_secs(20);
/// Bytes in a MiB.
const MIB: u64 = 1024 * 1024;
/// The exit code of a command killed by SIGKILL (128 + 9).
const KILLED: i32 = 128 + 9;
/// The exit code of a command killed by SIGXCPU (128 + 24).
const XCPU: i32 = 128 + 24;
/// The exit code of a command killed by SIGXFSZ (128 + 25).
const XFSZ: i32 = 128 + 25;
/// The skip reason of every cgroup-dependent test.
const NO_CGROUP: &str = "no cgroup delegated to the test user: run `corral setup --user corral-test` as root";

/// `corral run --yes [--timeout 30s] OPTS -- CMD..` from the workspace (the safety-net timeout is
/// left out when `opts` sets its own).
fn run(fx: &Fixture, opts: &[&str], cmd: &[&str]) -> Output {
    fx.chown();
    let mut c = fx.corral();
    c.args(["run", "--yes"]);
    if !opts.contains(&"--timeout") {
        c.args(["--timeout", SAFETY_TIMEOUT]);
    }
    c.args(opts).arg("--").args(cmd).output().unwrap()
}

/// Writes a profile holding `toml` into the fixture root; returns its path.
fn profile(fx: &Fixture, name: &str, toml: &str) -> PathBuf {
    let p = fx.root.join(name);
    std::fs::write(&p, toml).unwrap();
    p
}

/// True when the sandbox can start here at all; otherwise the caller returns `skip(..)`.
fn sandbox_or_skip() -> bool {
    if userns_available() {
        return true;
    }
    skip("cannot create a sandbox here (user namespaces unavailable for the test user)");
    false
}

/// The `corral: layer cgroup ...` line of a `-v` launch's stderr.
fn cgroup_layer_line(stderr: &str) -> Option<&str> {
    stderr
        .lines()
        .find(|l| l.split_whitespace().take(3).eq(["corral:", "layer", "cgroup"]))
}

/// True when a launch achieves the cgroup layer fully (a delegated cgroup); otherwise the test
/// should return (it has already skipped, or panicked under `CORRAL_TEST_REQUIRE=1`).
fn cgroup_or_skip() -> bool {
    if !sandbox_or_skip() {
        return false;
    }
    let fx = Fixture::new();
    let o = run(&fx, &["-v"], &["true"]);
    let err = stderr(&o);
    let full = !err.contains("layer cgroup is none")
        && cgroup_layer_line(&err).is_some_and(|l| l.split_whitespace().nth(3) == Some("full"));
    if !full {
        skip(NO_CGROUP);
    }
    full
}

/// Skips (returning false) when python3 is not installed: the sandbox sees the host's /usr.
fn python_or_skip() -> bool {
    if Path::new("/usr/bin/python3").exists() {
        return true;
    }
    skip("python3 is not installed");
    false
}

/// Host pids of live python3 processes whose argv holds `marker` (not corral's own argv, which
/// merely passes the marker on).
fn python_pids(marker: &str) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        let is_python = argv
            .first()
            .is_some_and(|a0| a0.starts_with(b"python3") || a0.ends_with(b"/python3"));
        if is_python && argv.contains(&marker.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

/// SIGKILLs every host process in `pids`.
fn sigkill_all(pids: &[i32]) {
    for &pid in pids {
        if let Some(p) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
        }
    }
}

/// Kills every host python3 carrying the marker on drop (whatever a failed test left running).
struct KillPythons(String);

impl Drop for KillPythons {
    fn drop(&mut self) {
        sigkill_all(&python_pids(&self.0));
    }
}

/// The session cgroup directories named in a `corral: layer cgroup` line (`v1 memory:
/// /sys/fs/cgroup/memory/corral-1001/corral-<pid>-<n> (memory.limit_in_bytes=..); v1 pids: ..`).
fn session_cgroup_paths(layer_line: &str) -> Vec<PathBuf> {
    layer_line
        .split_whitespace()
        .map(|w| w.trim_end_matches([',', ';', ':']))
        .filter(|w| w.starts_with('/') && w.contains("/corral-"))
        .map(PathBuf::from)
        .collect()
}

/// Entries of `dir` named `corral-<pid>-*`: cgroups of the session whose supervisor is `pid`.
fn cgroups_of_supervisor(dir: &Path, pid: i32) -> BTreeSet<String> {
    let prefix = format!("corral-{pid}-");
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// The `corral: layer cgroup` line of a running `-v` session's stderr. -v prints every layer
/// before the command starts, but stderr is read on its own thread: waits for it (bounded).
fn reported_cgroup_line(err: &mpsc::Receiver<String>) -> String {
    match wait_line_where(err, |l| cgroup_layer_line(l).is_some(), START_WITHIN) {
        Ok(mut seen) => seen.pop().unwrap(),
        Err(seen) => panic!("no `layer cgroup` line in corral's notes: {seen:#?}"),
    }
}

/// A session started in the background with `-v`: its supervisor, its stdout lines, and the
/// session cgroup directories corral reported. On drop (also when a test fails) the supervisor is
/// SIGKILLed and reaped and whatever session cgroup it left is removed, so that no test leaks one.
struct Session {
    corral: Reaped,
    out: mpsc::Receiver<String>,
    cgroups: Vec<PathBuf>,
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.corral.0.kill();
        let _ = self.corral.0.wait();
        // The sandbox dies with its supervisor; a cgroup is removable once it is empty.
        wait_until(GONE_WITHIN, || {
            self.cgroups.iter().all(|p| match std::fs::remove_dir(p) {
                Ok(()) => true,
                Err(e) => e.kind() == std::io::ErrorKind::NotFound,
            })
        });
    }
}

/// Starts `corral run --yes -v [--timeout 30s] OPTS -- sh -c SCRIPT` with `env` added; returns once
/// the script has printed `ready`, having checked that the session cgroups corral reported exist
/// and are named after the supervisor.
fn start_session(fx: &Fixture, env: &[(&str, &Path)], opts: &[&str], script: &str) -> Session {
    fx.chown();
    let mut c = fx.corral();
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(["run", "--yes", "-v"]);
    if !opts.contains(&"--timeout") {
        c.args(["--timeout", SAFETY_TIMEOUT]);
    }
    let mut corral = Reaped(
        c.args(opts)
            .args(["--", "sh", "-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out = lines_from(corral.0.stdout.take().unwrap());
    let err = lines_from(corral.0.stderr.take().unwrap());
    let mut session = Session {
        corral,
        out,
        cgroups: Vec::new(),
    };
    if let Err(seen) = wait_line_where(&session.out, |l| l == "ready", START_WITHIN) {
        let notes: Vec<String> = err.try_iter().collect();
        panic!("the session never said ready; stdout {seen:?}; stderr {notes:?}");
    }
    let line = reported_cgroup_line(&err);
    session.cgroups = session_cgroup_paths(&line);
    assert!(!session.cgroups.is_empty(), "no session cgroup named in {line:?}");
    let prefix = format!("corral-{}-", session.corral.pid());
    for p in &session.cgroups {
        assert!(
            p.is_dir(),
            "the reported session cgroup {} does not exist: {line}",
            p.display()
        );
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with(&prefix),
            "the session cgroup {name} is not named after its supervisor ({prefix}*)"
        );
    }
    session
}

/// Asserts that none of the session's cgroups (nor any other `corral-<supervisor pid>-*` entry
/// beside them) is left, waiting up to [`GONE_WITHIN`].
#[track_caller]
fn assert_cgroups_gone(paths: &[PathBuf], supervisor: i32, when: &str) {
    let left = || -> Vec<String> {
        paths
            .iter()
            .flat_map(|p| {
                let parent = p.parent().unwrap();
                cgroups_of_supervisor(parent, supervisor)
                    .into_iter()
                    .map(move |n| parent.join(n).display().to_string())
            })
            .collect()
    };
    let gone = wait_until(GONE_WITHIN, || left().is_empty());
    assert!(gone, "session cgroups left {when}: {:?}", left());
}

/// A python3 fork loop (at most 100 children, each sleeping 30 s): prints how many forks
/// succeeded before one raised, then exits 0. argv[1] is a marker to find its processes by.
const FORK_LOOP: &str = "\
import os, sys, time
n = 0
err = None
for i in range(100):
    try:
        pid = os.fork()
    except OSError as e:
        err = e.errno
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    n += 1
print('forked', n, 'errno', err, flush=True)
";

#[test]
fn a_fork_bomb_stops_at_the_pids_limit() {
    if !cgroup_or_skip() || !python_or_skip() {
        return;
    }
    let fx = Fixture::new();
    let marker = format!("fork-bomb-{}", std::process::id());
    let _guard = KillPythons(marker.clone());
    let o = run(&fx, &["--pids", "40"], &["python3", "-c", FORK_LOOP, &marker]);
    assert_code(&o, 0);
    let out = stdout(&o);
    let mut words = out.split_whitespace();
    let (forked, errno) = match (words.next(), words.next(), words.next(), words.next()) {
        (Some("forked"), Some(n), Some("errno"), Some(e)) => (n.parse::<u32>().unwrap(), e.to_string()),
        _ => panic!("unexpected output:\n{out}\nstderr:\n{}", stderr(&o)),
    };
    // init, python3 and its children share the 40.
    assert!(
        (20..40).contains(&forked),
        "pids = 40 let {forked} of 100 forks succeed:\n{out}"
    );
    assert_eq!(
        errno,
        libc_eagain().to_string(),
        "fork failed otherwise than EAGAIN:\n{out}"
    );
    let gone = wait_until(GONE_WITHIN, || python_pids(&marker).is_empty());
    assert!(
        gone,
        "the fork bomb's processes outlived the session (host pids {:?})",
        python_pids(&marker)
    );
}

/// EAGAIN, what fork(2) fails with at RLIMIT_NPROC and at pids.max.
fn libc_eagain() -> i32 {
    rustix::io::Errno::AGAIN.raw_os_error()
}

/// python3 allocating (and touching) 200 × 1 MiB, then printing `allocated`.
const ALLOCATE_200M: &str = "\
bufs = []
for i in range(200):
    b = bytearray(1024 * 1024)
    for j in range(0, len(b), 4096):
        b[j] = 1
    bufs.append(b)
print('allocated', flush=True)
";

#[test]
fn allocating_past_the_memory_limit_kills_only_the_sandboxs_process_and_says_so() {
    if !cgroup_or_skip() || !python_or_skip() {
        return;
    }
    let fx = Fixture::new();
    let o = run(&fx, &["--memory", "64M"], &["python3", "-c", ALLOCATE_200M]);
    // corral itself exits normally (a code, not a signal) with the code of a SIGKILLed command.
    assert_code(&o, KILLED);
    assert!(!stdout(&o).contains("allocated"), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains("the memory limit was hit") && err.contains("limits.memory_mb"),
        "corral did not say the memory limit was hit:\n{err}"
    );

    // Control: the same allocation fits in 1 GiB.
    let o = run(&fx, &["--memory", "1G"], &["python3", "-c", ALLOCATE_200M]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "allocated\n");
    assert!(!stderr(&o).contains("memory limit"), "{}", stderr(&o));
}

#[test]
fn a_shell_writing_past_file_mb_is_stopped_by_sigxfsz() {
    if !sandbox_or_skip() {
        return;
    }
    let fx = Fixture::new();
    let p = profile(&fx, "file8.toml", "[limits]\nfile_mb = 8\n");
    let p = p.to_str().unwrap();
    let o = run(
        &fx,
        &["--profile", p],
        &["sh", "-c", "head -c 20M /dev/zero > big"],
    );
    assert_code(&o, XFSZ);
    let err = stderr(&o);
    assert!(
        err.contains("File size limit exceeded"),
        "the shell did not report SIGXFSZ:\n{err}"
    );
    assert!(
        err.contains("limits.file_mb"),
        "corral did not name the limit:\n{err}"
    );
    let len = std::fs::metadata(fx.ws.join("big")).unwrap().len();
    assert_eq!(len, 8 * MIB, "the file on the host");
}

#[test]
fn a_write_past_file_mb_fails_with_efbig_when_sigxfsz_is_ignored() {
    if !sandbox_or_skip() || !python_or_skip() {
        return;
    }
    let fx = Fixture::new();
    let p = profile(&fx, "file8.toml", "[limits]\nfile_mb = 8\n");
    let script = "\
import os, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
fd = os.open('big', os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
chunk = b'\\0' * (1024 * 1024)
try:
    for i in range(20):
        os.write(fd, chunk)
    print('wrote 20 MiB')
except OSError as e:
    print('errno', e.errno, 'after', i)
";
    let o = run(
        &fx,
        &["--profile", p.to_str().unwrap()],
        &["python3", "-c", script],
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "errno 27 after 8\n", "stderr:\n{}", stderr(&o));
    let len = std::fs::metadata(fx.ws.join("big")).unwrap().len();
    assert_eq!(len, 8 * MIB, "the file on the host");
}

/// Writes 32 MiB to DIR/x, then reports the exit status, the file's size and `df -m DIR`.
fn fill_script(dir: &str) -> String {
    format!(
        "head -c 32M /dev/zero 2>&1 > {dir}/x; echo rc=$?; echo size=$(wc -c < {dir}/x); \
         df -m {dir} | tail -n 1"
    )
}

/// The size in MiB (`1M-blocks`, field 2) of the last line of `df -m` in `out`.
fn df_total_mb(out: &str) -> Option<u64> {
    out.lines().last()?.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn tmp_and_dev_shm_fill_at_tmp_mb() {
    if !sandbox_or_skip() {
        return;
    }
    let fx = Fixture::new();
    let p = profile(&fx, "tmp16.toml", "[limits]\ntmp_mb = 16\n");
    let p = p.to_str().unwrap();
    for dir in ["/tmp", "/dev/shm"] {
        let o = run(&fx, &["--profile", p], &["sh", "-c", &fill_script(dir)]);
        assert_code(&o, 0);
        let out = stdout(&o);
        assert!(
            out.contains("No space left on device") && out.contains("rc=1"),
            "writing 32 MiB to {dir} with tmp_mb = 16 did not fail with ENOSPC:\n{out}"
        );
        let size: u64 = out
            .lines()
            .find_map(|l| l.strip_prefix("size="))
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("no size in:\n{out}"));
        assert!(
            (15 * MIB..=16 * MIB).contains(&size),
            "{dir}/x holds {size} bytes:\n{out}"
        );
        assert_eq!(df_total_mb(&out), Some(16), "df -m {dir}:\n{out}");
    }

    // Control: without the profile (tmp_mb = 2048), 32 MiB fit.
    let o = run(&fx, &[], &["sh", "-c", &fill_script("/tmp")]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("rc=0"), "{}", stdout(&o));
}

#[test]
fn wall_seconds_ends_the_session_and_says_why() {
    if !sandbox_or_skip() {
        return;
    }
    let fx = Fixture::new();
    let start = Instant::now();
    let o = run(&fx, &["--timeout", "2s"], &["sleep", "30"]);
    let took = start.elapsed();
    assert_code(&o, KILLED);
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(10),
        "--timeout 2s ended `sleep 30` after {took:?}"
    );
    let err = stderr(&o);
    assert!(
        err.contains("the wall-clock limit (limits.wall_seconds)"),
        "corral did not say the wall-clock limit ended the session:\n{err}"
    );
}

#[test]
fn cpu_seconds_ends_a_busy_process_and_says_why() {
    if !sandbox_or_skip() || !python_or_skip() {
        return;
    }
    let fx = Fixture::new();
    let p = profile(&fx, "cpu1.toml", "[limits]\ncpu_seconds = 1\n");
    // Busy for at most 15 s of wall-clock time; --timeout 20s behind that.
    let busy = "import time\nt = time.time() + 15\nwhile time.time() < t: pass\nprint('not stopped')";
    let start = Instant::now();
    let o = run(
        &fx,
        &["--timeout", "20s", "--profile", p.to_str().unwrap()],
        &["python3", "-c", busy],
    );
    let took = start.elapsed();
    assert_code(&o, XCPU);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let err = stderr(&o);
    assert!(
        err.contains("limits.cpu_seconds"),
        "corral did not name the CPU-time limit:\n{err}"
    );
}

#[test]
fn the_agent_cannot_reach_its_cgroups_limit_files() {
    if !cgroup_or_skip() {
        return;
    }
    let fx = Fixture::new();
    let o = fx.sh("test -e /sys/fs/cgroup; echo sysfs=$?; cat /proc/self/cgroup");
    assert_code(&o, 0);
    let out = stdout(&o);
    let (first, cgroups) = out.split_once('\n').unwrap();
    assert_eq!(first, "sysfs=1", "/sys/fs/cgroup exists inside:\n{out}");
    let delegated = format!("corral-{}", fx.ids.uid);
    // In a cgroup namespace created after joining the session cgroup, every hierarchy shows the
    // namespace root.
    let outside: Vec<&str> = cgroups
        .lines()
        .filter(|l| !l.ends_with(":/") || l.contains(&delegated))
        .collect();
    assert!(
        outside.is_empty(),
        "/proc/self/cgroup inside names cgroups outside the namespace root (the host's cgroup tree, \
         the delegated {delegated}): {outside:#?}\n/proc/self/cgroup inside:\n{cgroups}"
    );
}

#[test]
fn corral_check_shows_the_delegated_cgroup_as_full() {
    if !cgroup_or_skip() {
        return;
    }
    let fx = Fixture::new();
    fx.chown();
    let o = fx.corral().arg("check").output().unwrap();
    let out = stdout(&o);
    let line = out
        .lines()
        .find(|l| l.starts_with("cgroup "))
        .unwrap_or_else(|| panic!("no cgroup line in `corral check`:\n{out}"));
    assert!(line.starts_with("cgroup       full "), "{line}\n\n{out}");
}

#[test]
fn corral_check_does_not_call_a_delegated_cgroup_undelegated() {
    if !cgroup_or_skip() {
        return;
    }
    let fx = Fixture::new();
    fx.chown();
    let o = fx.corral().arg("check").output().unwrap();
    let out = stdout(&o);
    let line = out
        .lines()
        .find(|l| l.starts_with("delegated "))
        .unwrap_or_else(|| panic!("no delegated line in `corral check`:\n{out}"));
    assert!(
        !line.contains("delegated    no"),
        "`corral check` says the cgroup layer is full and, on the next lines, that no cgroup is \
         delegated (with the fix `sudo corral setup`):\n{out}"
    );
}

#[test]
fn the_session_cgroup_is_removed_after_the_session() {
    if !cgroup_or_skip() {
        return;
    }
    let fx = Fixture::new();
    // Runs until its stdin closes.
    let mut session = start_session(&fx, &[], &[], "echo ready; read x; exit 0");
    drop(session.corral.0.stdin.take());
    let st = session
        .corral
        .wait_for_exit(Duration::from_secs(15))
        .expect("the session did not end");
    assert!(st.success(), "{st:?}");
    assert_cgroups_gone(&session.cgroups, session.corral.pid(), "after the session ended");
}

#[test]
fn the_session_cgroup_is_removed_after_a_timeout_kill() {
    if !cgroup_or_skip() {
        return;
    }
    let fx = Fixture::new();
    let mut session = start_session(&fx, &[], &["--timeout", "2s"], "echo ready; sleep 30");
    let st = session
        .corral
        .wait_for_exit(Duration::from_secs(10))
        .expect("--timeout 2s did not end the session within 10 s");
    assert_eq!(st.code(), Some(KILLED), "{st:?}");
    assert_cgroups_gone(&session.cgroups, session.corral.pid(), "after a --timeout kill");
}

#[test]
fn gc_removes_the_session_cgroup_of_a_sigkilled_supervisor() {
    if !cgroup_or_skip() {
        return;
    }
    let fx = Fixture::new();
    // A runtime dir of this test's own, so that gc sees only this session.
    let xdg = fx.root.join("xdg");
    std::fs::create_dir(&xdg).unwrap();
    let mut session = start_session(&fx, &[("XDG_RUNTIME_DIR", &xdg)], &[], "echo ready; sleep 30");
    // setpriv execs corral, so the child's pid is the supervisor's.
    sigkill_all(&[session.corral.pid()]);
    session
        .corral
        .wait_for_exit(GONE_WITHIN)
        .expect("corral survived SIGKILL");
    // The sandbox dies with its supervisor; gc runs once the cgroups are empty.
    let procs = |p: &PathBuf| std::fs::read_to_string(p.join("cgroup.procs")).unwrap_or_default();
    assert!(
        wait_until(GONE_WITHIN, || session
            .cgroups
            .iter()
            .all(|p| procs(p).trim().is_empty())),
        "the sandbox outlived its SIGKILLed supervisor: {:?}",
        session.cgroups.iter().map(procs).collect::<Vec<_>>()
    );
    let o = fx
        .corral()
        .env("XDG_RUNTIME_DIR", &xdg)
        .arg("gc")
        .output()
        .unwrap();
    assert_code(&o, 0);
    // (Whatever is left is removed by the guard, so that the leak does not outlive the test.)
    let left: Vec<&PathBuf> = session.cgroups.iter().filter(|p| p.exists()).collect();
    assert!(
        left.is_empty(),
        "the SIGKILLed session's cgroups are left after `corral gc` (its output:\n{}): {left:?}",
        stdout(&o)
    );
}

/// Allocates (and touches) 512 MiB in one piece; prints `allocated` or `MemoryError`.
const ALLOCATE_512M_AT_ONCE: &str = "\
try:
    b = bytearray(512 << 20)
    print('allocated')
except MemoryError:
    print('MemoryError')
";

#[test]
fn address_space_mb_is_opt_in_and_caps_a_process() {
    if !sandbox_or_skip() || !python_or_skip() {
        return;
    }
    let fx = Fixture::new();
    // Control: not set by default (it would break JITs), so 512 MiB can be mapped.
    let o = run(&fx, &[], &["python3", "-c", ALLOCATE_512M_AT_ONCE]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "allocated\n", "control");
    let p = profile(&fx, "as.toml", "[limits]\naddress_space_mb = 256\n");
    let o = run(
        &fx,
        &["--profile", &p.display().to_string()],
        &["python3", "-c", ALLOCATE_512M_AT_ONCE],
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "MemoryError\n");
}

/// Burns CPU for 1.5 s of wall time; prints the CPU seconds it got, to two decimals.
const BURN_1_5S: &str = "\
import time
end = time.monotonic() + 1.5
while time.monotonic() < end:
    pass
print('%.2f' % time.process_time())
";

#[test]
fn cpus_caps_the_cpu_rate_through_the_cgroup() {
    if !cgroup_or_skip() || !python_or_skip() {
        return;
    }
    let fx = Fixture::new();
    // cpus = 0.1: a quota of 10 ms per 100 ms period, so at most ~0.15 s of CPU in 1.5 s (the
    // bound leaves room for start-up and accounting granularity).
    let p = profile(&fx, "cpus.toml", "[limits]\ncpus = 0.1\n");
    let o = run(
        &fx,
        &["--profile", &p.display().to_string()],
        &["python3", "-c", BURN_1_5S],
    );
    assert_code(&o, 0);
    let cpu: f64 = stdout(&o).trim().parse().unwrap();
    assert!(
        cpu <= 0.4,
        "a process limited to 0.1 CPU got {cpu} s of CPU in 1.5 s"
    );
}

#[test]
fn the_sandboxs_pid_max_follows_the_pids_limit_and_the_hosts_is_untouched() {
    if !sandbox_or_skip() {
        return;
    }
    let host_before = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap();
    let fx = Fixture::new();
    let o = run(
        &fx,
        &["-v", "--pids", "1000"],
        &["cat", "/proc/sys/kernel/pid_max"],
    );
    assert_code(&o, 0);
    if stderr(&o).contains("no per-namespace pid_max on this kernel") {
        return skip("this kernel has no per-pid-namespace pid_max (Linux >= 6.14)");
    }
    assert!(
        stderr(&o).contains("pid_max=1002 for the pid namespace"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "1002\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap(),
        host_before
    );
}

/// A fake systemd for the scope path: `systemd-run` and `systemctl` that log their arguments;
/// `systemd-run` either starts the command after `--` (as `--scope` does, in place) or fails as
/// it does without a user bus. Returns (fixture, log file, the launch command).
fn with_fake_systemd(systemd_run_works: bool) -> (Fixture, PathBuf, std::process::Command) {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let bin = fx.root.join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = fx.root.join("fake.log");
    let run = if systemd_run_works {
        "#!/bin/sh\necho \"systemd-run $*\" >>\"$FAKE_LOG\"\nwhile [ \"$1\" != -- ]; do shift; done\nshift\nexec \"$@\"\n"
    } else {
        "#!/bin/sh\necho \"systemd-run $*\" >>\"$FAKE_LOG\"\necho 'Failed to connect to bus: No medium found' >&2\nexit 1\n"
    };
    std::fs::write(bin.join("systemd-run"), run).unwrap();
    std::fs::write(
        bin.join("systemctl"),
        "#!/bin/sh\necho \"systemctl $*\" >>\"$FAKE_LOG\"\n",
    )
    .unwrap();
    for p in ["systemd-run", "systemctl"] {
        std::fs::set_permissions(bin.join(p), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // A user manager's socket (its presence is what corral looks for).
    let runtime = fx.root.join("run");
    std::fs::create_dir_all(runtime.join("systemd")).unwrap();
    std::fs::write(runtime.join("systemd/private"), "").unwrap();
    std::fs::write(&log, "").unwrap();
    fx.chown();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).unwrap();
    let mut c = fx.corral();
    c.env("PATH", format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()))
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("FAKE_LOG", &log)
        // Also where a cgroup is delegated (as on CI), to drive this path.
        .env("CORRAL_SCOPE", "always")
        .args(["run", "--yes", "--", "sh", "-c", "echo inside; exit 3"]);
    (fx, log, c)
}

#[test]
fn without_a_delegated_cgroup_corral_runs_in_a_systemd_scope_with_the_limits_on_it() {
    if !userns_available() {
        return skip("cannot create a sandbox here");
    }
    let (fx, log, mut c) = with_fake_systemd(true);
    let o = c.output().unwrap();
    assert_code(&o, 3);
    assert_eq!(stdout(&o), "inside\n", "the command ran once: {}", stderr(&o));
    let calls = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(lines.len(), 2, "{calls}");
    let unit = lines[0]
        .split_whitespace()
        .find_map(|w| w.strip_prefix("--unit="))
        .unwrap_or_else(|| panic!("{calls}"));
    assert!(unit.starts_with("corral-") && unit.ends_with(".scope"), "{calls}");
    assert!(
        lines[0].starts_with(
            "systemd-run --user --scope --quiet --collect --property=Delegate=yes --unit=corral-"
        ) && lines[0].ends_with(" run --yes -- sh -c echo inside; exit 3"),
        "{calls}"
    );
    assert_eq!(
        lines[1],
        format!("systemctl --user set-property --runtime {unit} MemoryMax=4294967296 MemorySwapMax=0 TasksMax=1024")
    );
    // The mark the inner corral left for the outer one is gone.
    let left: Vec<_> = std::fs::read_dir(fx.root.join("run"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("corral-scope-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn when_systemd_run_fails_corral_goes_on_without_a_scope_and_says_so() {
    if !userns_available() {
        return skip("cannot create a sandbox here");
    }
    let (_fx, log, mut c) = with_fake_systemd(false);
    let o = c.output().unwrap();
    assert_code(&o, 3);
    assert_eq!(stdout(&o), "inside\n");
    assert!(
        stderr(&o).contains("corral: warning: systemd-run could not start a scope"),
        "{}",
        stderr(&o)
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls.lines().count(), 1, "no systemctl without a scope: {calls}");
}
