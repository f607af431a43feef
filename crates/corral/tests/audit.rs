//! The audit log, for real: every session writes one, hash-chained; `corral logs --verify`
//! accepts it as written and rejects it edited; a secret's value never appears in it; a killed
//! supervisor leaves a log that verifies up to its last record.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::path::PathBuf;
use std::time::Duration;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// The session directories under the fixture's state dir.
fn logs_of(fx: &Fixture) -> Vec<PathBuf> {
    let dir = fx.home.join(".local/state/corral/sessions");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.flatten().map(|e| e.path().join("audit.jsonl")).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn events(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn a_session_writes_a_chained_log_with_names_only() {
    if !userns_available() {
        return skip("cannot create a sandbox here");
    }
    let fx = Fixture::new();
    fx.chown();
    let o = fx
        .corral()
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("CORRAL_EXTRA_ENV", "AWS_SECRET_ACCESS_KEY")
        .args(["run", "--yes", "--", "true"])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let logs = logs_of(&fx);
    assert_eq!(logs.len(), 1, "one log per session");
    assert_eq!(
        events(&logs[0]),
        ["env.audit", "session.start", "exec", "session.end"]
    );
    let text = std::fs::read_to_string(&logs[0]).unwrap();
    assert!(!text.contains(SECRET), "a secret's value reached the audit log");
    // session.start's plan digest is the digest of plan.json beside the log.
    let start: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["event"] == "session.start")
        .unwrap();
    let plan = std::fs::read(logs[0].with_file_name("plan.json")).unwrap();
    let digest: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&plan)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!(start["plan_digest"], digest);
    // And the resolved profile's: 64 hex digits, the same for the same profile.
    let profile_digest = start["profile_digest"].as_str().unwrap().to_string();
    assert_eq!(profile_digest.len(), 64, "{start}");
    assert!(
        text.contains("\"withheld\":[\"AWS_SECRET_ACCESS_KEY\"]"),
        "{text}"
    );
    let v = fx.corral().args(["logs", "--verify"]).output().unwrap();
    assert_code(&v, 0);
    assert!(
        stdout(&v).ends_with(": 4 records, chain intact; the session's end is recorded\n"),
        "{}",
        stdout(&v)
    );
    let h = fx.corral().args(["logs"]).output().unwrap();
    assert_code(&h, 0);
    assert!(
        stdout(&h).contains("session.end  exit 0 after "),
        "{}",
        stdout(&h)
    );
    // Another session with the same profile: the same profile digest.
    let again = fx.corral().args(["run", "--yes", "--", "true"]).output().unwrap();
    assert_code(&again, 0);
    let digests: Vec<String> = logs_of(&fx)
        .iter()
        .map(|l| {
            let text = std::fs::read_to_string(l).unwrap();
            let start: serde_json::Value = text
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .find(|r| r["event"] == "session.start")
                .unwrap();
            start["profile_digest"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(digests, vec![profile_digest.clone(), profile_digest]);
}

#[test]
fn an_edited_log_does_not_verify() {
    if !userns_available() {
        return skip("cannot create a sandbox here");
    }
    let fx = Fixture::new();
    assert_code(&fx.sh("exit 3"), 3);
    let log = logs_of(&fx).pop().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    // Rewrite history in the first record (every later record chains to it).
    let tampered = text.replacen("\"left_out\":[", "\"left_out\":[\"INJECTED\",", 1);
    assert_ne!(tampered, text);
    std::fs::write(&log, &tampered).unwrap();
    let v = fx.corral().args(["logs", "--verify"]).output().unwrap();
    assert_code(&v, 1);
    assert!(
        stdout(&v).contains("line 2: prev does not match the hash of line 1 (that line was edited)"),
        "{}",
        stdout(&v)
    );
}

#[test]
fn a_limit_hit_is_recorded() {
    if !userns_available() {
        return skip("cannot create a sandbox here");
    }
    let fx = Fixture::new();
    fx.chown();
    let o = fx
        .corral()
        .args(["run", "--yes", "--timeout", "1s", "--", "sleep", "10"])
        .output()
        .unwrap();
    assert_code(&o, 137);
    let log = logs_of(&fx).pop().unwrap();
    assert_eq!(
        events(&log),
        ["env.audit", "session.start", "exec", "limit.hit", "session.end"]
    );
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("limits.wall_seconds"));
}

#[test]
fn a_killed_supervisor_leaves_a_log_that_verifies_up_to_its_last_record() {
    if !userns_available() {
        return skip("cannot create a sandbox here");
    }
    let fx = Fixture::new();
    fx.chown();
    let child = fx
        .corral()
        .args(["run", "--yes", "--", "sleep", "30"])
        .spawn()
        .unwrap();
    let mut corral = Reaped(child);
    // Wait (bounded) until the session has started: its start and the command's exec are in
    // the log.
    let started = wait_until(Duration::from_secs(20), || {
        logs_of(&fx).pop().is_some_and(|l| {
            std::fs::read_to_string(l)
                .unwrap_or_default()
                .contains("\"event\":\"exec\"")
        })
    });
    assert!(started, "the session did not start");
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(corral.pid()).unwrap(),
        rustix::process::Signal::KILL,
    );
    assert!(corral.wait_for_exit(Duration::from_secs(10)).is_some());
    let v = fx.corral().args(["logs", "--verify"]).output().unwrap();
    assert_code(&v, 0);
    assert!(
        stdout(&v)
            .ends_with(": 3 records, chain intact; no session.end: still running, or corral was killed\n"),
        "{}",
        stdout(&v)
    );
}

#[test]
fn changed_files_are_reported_with_exec_triggers_first() {
    if !userns_available() {
        return skip("cannot create a sandbox here");
    }
    let fx = Fixture::new();
    fx.ws_file("src/lib.rs", "old");
    // A session that changes nothing says nothing about changes.
    let quiet = fx.sh("cat src/lib.rs > /dev/null");
    assert_code(&quiet, 0);
    assert!(!stderr(&quiet).contains("changed"), "{}", stderr(&quiet));
    let o = fx.sh("echo new > src/lib.rs; printf 'all:\\n' > Makefile; mkdir -p .github/workflows; echo on: > .github/workflows/ci.yml; touch -d 2001-01-01 Makefile");
    assert_code(&o, 0);
    let err = stderr(&o);
    assert!(
        err.contains("the session changed files your own tools run or obey (review them before you use them): .github/workflows/ci.yml, Makefile\n"),
        "{err}"
    );
    assert!(err.contains("3 file(s) changed in "), "{err}");
    let log = logs_of(&fx)
        .into_iter()
        .find(|l| events(l).contains(&"fs.changed".to_string()))
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("\"event\":\"fs.changed\",\"exec_triggers\":[\".github/workflows/ci.yml\",\"Makefile\"],\"others\":[\"src/lib.rs\"],\"truncated\":false"),
        "{text}"
    );
    let only_fs = fx.corral().args(["logs", "--kind", "fs"]).output().unwrap();
    assert_code(&only_fs, 0);
    let out = stdout(&only_fs);
    let kinds: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["fs.changed"], "{out}");
}

#[test]
fn ps_lists_a_running_session_and_forgets_it_when_it_ends() {
    if !userns_available() {
        return skip("cannot create a sandbox here");
    }
    let fx = Fixture::new();
    fx.chown();
    let mut corral = Reaped(
        fx.corral()
            .args(["run", "--yes", "--", "sleep", "30"])
            .spawn()
            .unwrap(),
    );
    let started = wait_until(Duration::from_secs(20), || {
        logs_of(&fx).pop().is_some_and(|l| {
            std::fs::read_to_string(l)
                .unwrap_or_default()
                .contains("session.start")
        })
    });
    assert!(started, "the session did not start");
    let ours = |fx: &Fixture| -> Vec<serde_json::Value> {
        let o = fx.corral().args(["ps", "--json"]).output().unwrap();
        assert_code(&o, 0);
        let all: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
        all.into_iter()
            .filter(|r| r["workspace"] == fx.ws.display().to_string())
            .collect()
    };
    let rows = ours(&fx);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["pid"], corral.pid());
    assert_eq!(rows[0]["profile"], "default");
    assert_eq!(rows[0]["command"], serde_json::json!(["sleep", "30"]));
    // What it uses: from its cgroup, or from /proc (init and sleep at least).
    assert!(rows[0]["cpu_ms"].is_u64(), "{rows:?}");
    assert!(rows[0]["processes"].as_u64().is_some_and(|n| n >= 2), "{rows:?}");
    assert!(
        rows[0]["memory_bytes"].as_u64().is_some_and(|n| n > 0),
        "{rows:?}"
    );
    let table = fx.corral().arg("ps").output().unwrap();
    assert!(stdout(&table).contains(" CPU "), "{}", stdout(&table));
    drop(corral.0.kill());
    assert!(corral.wait_for_exit(Duration::from_secs(10)).is_some());
    assert_eq!(ours(&fx), Vec::<serde_json::Value>::new());
}

#[test]
fn why_explains_a_path_and_kill_ends_a_session() {
    if !userns_available() {
        return skip("cannot create a sandbox here");
    }
    let fx = Fixture::new();
    fx.ws_file(".env", "A=1\n");
    fx.chown();
    let o = fx.corral().args(["why", "./.env"]).output().unwrap();
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o).lines().next().unwrap(),
        format!(
            "{0}/.env: hidden — {0}/.env is masked (empty, read-only) because it matches filesystem.deny",
            fx.ws.display()
        )
    );
    let mut corral = Reaped(
        fx.corral()
            .args(["run", "--yes", "--", "sleep", "30"])
            .spawn()
            .unwrap(),
    );
    let started = wait_until(Duration::from_secs(20), || {
        logs_of(&fx).pop().is_some_and(|l| {
            std::fs::read_to_string(l)
                .unwrap_or_default()
                .contains("session.start")
        })
    });
    assert!(started, "the session did not start");
    let id = logs_of(&fx)
        .pop()
        .unwrap()
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let w = fx
        .corral()
        .args(["why", "--session", &id, "/usr/bin/true"])
        .output()
        .unwrap();
    assert_code(&w, 0);
    assert_eq!(
        stdout(&w).lines().next().unwrap(),
        "/usr/bin/true: read-only — bind of /usr at /usr [system]"
    );
    let k = fx.corral().args(["kill", &id]).output().unwrap();
    assert_code(&k, 0);
    let status = corral
        .wait_for_exit(Duration::from_secs(10))
        .expect("the session did not end");
    assert_eq!(status.code(), Some(128 + 15));
    let log = logs_of(&fx).pop().unwrap();
    assert_eq!(events(&log).last().map(String::as_str), Some("session.end"));
}

#[test]
fn every_exec_inside_is_recorded_with_secrets_masked_and_the_listener_stays_outside() {
    if !userns_available() {
        return skip("cannot create a sandbox here");
    }
    let fx = Fixture::new();
    fx.chown();
    // The script runs programs directly, through a pipe, and from a child shell; it also lists
    // its own descriptors, where the seccomp listener must not appear.
    let script = format!(
        "/bin/true --token={SECRET} plain; echo x | cat >/dev/null; sh -c 'exec env true'; ls -l /proc/self/fd/"
    );
    let o = fx
        .corral()
        .args(["run", "--yes", "--", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert!(
        !stdout(&o).contains("seccomp"),
        "the listener leaked in: {}",
        stdout(&o)
    );
    let log = logs_of(&fx).pop().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains(SECRET),
        "a secret in an argument reached the log: {text}"
    );
    let all: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == "exec")
        .collect();
    // Every call is recorded. A PATH search's misses (env tries each directory before the one
    // holding `true`) say so, with no arguments read: they started nothing.
    let (misses, records): (Vec<_>, Vec<_>) = all.into_iter().partition(|v| v["missing"] == true);
    assert!(!misses.is_empty(), "env's PATH search left no miss");
    for m in &misses {
        let path = std::path::Path::new(m["path"].as_str().unwrap());
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(["sh", "cat", "env", "true", "ls"].contains(&name), "{m}");
        assert!(!path.exists() || !path.starts_with("/usr/bin"), "{m}");
        assert_eq!(m["argv"], serde_json::json!([]), "{m}");
    }
    let argvs: Vec<Vec<String>> = records
        .iter()
        .map(|v| serde_json::from_value(v["argv"].clone()).unwrap())
        .collect();
    let firsts: Vec<&str> = argvs.iter().map(|a| a[0].as_str()).collect();
    assert_eq!(
        firsts,
        ["sh", "/bin/true", "cat", "sh", "env", "true", "ls"],
        "{argvs:?}"
    );
    assert_eq!(argvs[1][2], "plain");
    // The programs the script starts are the script's children: parents are recorded.
    let shell = records[0]["pid"].as_i64().unwrap();
    assert_eq!(records[1]["ppid"].as_i64(), Some(shell), "{records:?}");
    assert!(argvs[1][1].starts_with("--token="), "{:?}", argvs[1]);
    // The session's totals (and so its exit report) count programs started, not calls.
    let end: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(end["event"], "session.end");
    assert_eq!(end["execs"], 7, "{end}");
    let h = fx.corral().args(["logs", "--kind", "exec"]).output().unwrap();
    assert_code(&h, 0);
    assert!(stdout(&h).contains("/bin/true '--token="), "{}", stdout(&h));
    assert_code(&fx.corral().args(["logs", "--verify"]).output().unwrap(), 0);
}

#[test]
fn audit_exec_false_records_no_exec_and_says_so() {
    if !userns_available() {
        return skip("cannot create a sandbox here");
    }
    let fx = Fixture::new();
    let profile = fx.home.join("quiet.toml");
    std::fs::write(&profile, "[sandbox]\naudit_exec = false\n").unwrap();
    fx.chown();
    let o = fx
        .corral()
        .args([
            "run",
            "--yes",
            "--profile",
            &profile.display().to_string(),
            "--",
            "sh",
            "-c",
            "true",
        ])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let log = logs_of(&fx).pop().unwrap();
    assert_eq!(events(&log), ["env.audit", "session.start", "session.end"]);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("exec audit off (sandbox.audit_exec = false)"),
        "{text}"
    );
}

#[test]
fn an_exec_storm_loses_no_count() {
    if !userns_available() {
        return skip("cannot create a sandbox here");
    }
    let fx = Fixture::new();
    fx.chown();
    // Faster than the per-second record budget on most machines: then some are summarised.
    let script = "i=0; while [ $i -lt 1500 ]; do /bin/true; i=$((i+1)); done";
    let o = fx
        .corral()
        .args(["run", "--yes", "--", "sh", "-c", script])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let log = logs_of(&fx).pop().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let mut listed = 0u64;
    let mut summarised = 0u64;
    for v in text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
    {
        if v["event"] == "exec" && v["argv"][0] == "/bin/true" {
            listed += 1;
        }
        if v["event"] == "exec.summary" {
            summarised += v["programs"]["/bin/true"].as_u64().unwrap_or(0);
        }
    }
    assert_eq!(
        listed + summarised,
        1500,
        "listed {listed}, summarised {summarised}"
    );
    assert_eq!(events(&log).last().map(String::as_str), Some("session.end"));
    assert_code(&fx.corral().args(["logs", "--verify"]).output().unwrap(), 0);
}

/// A Python script that calls ptrace, bpf and mount through libc and prints each errno name.
const DENIED_CALLS_PY: &str = r#"
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
for name, nr, args in [("ptrace", 101, (0, 0, 0, 0)), ("bpf", 321, (0, 0, 0)), ("mount", 165, (0, 0, 0, 0, 0))]:
    r = libc.syscall(nr, *args)
    print(name, r, errno.errorcode.get(ctypes.get_errno(), "?"))
"#;

#[test]
fn denied_system_calls_are_recorded_and_still_denied() {
    if !userns_available() {
        return skip("cannot create a sandbox here");
    }
    if !cfg!(target_arch = "x86_64") {
        return skip("the script uses x86_64 system call numbers");
    }
    let fx = Fixture::new();
    fx.chown();
    let o = fx
        .corral()
        .args(["run", "--yes", "--", "python3", "-c", DENIED_CALLS_PY])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "ptrace -1 EPERM\nbpf -1 EPERM\nmount -1 EPERM\n");
    let log = logs_of(&fx).pop().unwrap();
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let denied: Vec<(String, String)> = records
        .iter()
        .filter(|r| r["event"] == "syscall.denied")
        .map(|r| {
            assert!(r["pid"].as_i64().unwrap() > 1);
            (
                r["syscall"].as_str().unwrap().to_string(),
                r["program"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let p = "python3".to_string();
    assert_eq!(
        denied,
        [
            ("ptrace".to_string(), p.clone()),
            ("bpf".to_string(), p.clone()),
            ("mount".to_string(), p)
        ]
    );
    let end = records.last().unwrap();
    assert_eq!(end["event"], "session.end");
    assert_eq!(
        end["denied_syscalls"],
        serde_json::json!({"bpf": 1, "mount": 1, "ptrace": 1})
    );
    // The exit report says it; -q keeps it quiet.
    assert!(
        stderr(&o).contains("3 denied system call(s) (bpf, mount, ptrace)"),
        "{}",
        stderr(&o)
    );
    let quiet = fx
        .corral()
        .args(["-q", "run", "--yes", "--", "true"])
        .output()
        .unwrap();
    assert_code(&quiet, 0);
    assert_eq!(stderr(&quiet), "", "-q prints nothing when all is well");
}

/// unshare(CLONE_NEWUSER), ioctl(TIOCSTI), socket(AF_PACKET), socket(AF_NETLINK,
/// NETLINK_AUDIT), then an allowed call of each (unshare(0), socket(AF_UNIX)): errno names.
const ARG_DENIED_PY: &str = r#"
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
for name, nr, args in [
    ("unshare", 272, (0x10000000,)),
    ("ioctl", 16, (0, 0x5412, 0)),
    ("socket", 41, (17, 3, 0)),
    ("netlink", 41, (16, 3, 9)),
    ("unshare0", 272, (0,)),
    ("unix", 41, (1, 1, 0)),
]:
    ctypes.set_errno(0)
    r = libc.syscall(nr, *args)
    print(name, "ok" if r >= 0 else errno.errorcode.get(ctypes.get_errno(), "?"))
"#;

#[test]
fn calls_denied_for_their_arguments_are_recorded_with_which_argument() {
    if !userns_available() {
        return skip("cannot create a sandbox here");
    }
    if !cfg!(target_arch = "x86_64") {
        return skip("the script uses x86_64 system call numbers");
    }
    let fx = Fixture::new();
    fx.chown();
    let o = fx
        .corral()
        .args(["run", "--yes", "--", "python3", "-c", ARG_DENIED_PY])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        "unshare EPERM\nioctl EPERM\nsocket EPERM\nnetlink EPERM\nunshare0 ok\nunix ok\n"
    );
    let log = logs_of(&fx).pop().unwrap();
    let denied: Vec<(String, String)> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["event"] == "syscall.denied")
        .map(|r| {
            (
                r["syscall"].as_str().unwrap().to_string(),
                r["detail"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("unshare", "CLONE_NEWUSER"),
        ("ioctl", "TIOCSTI"),
        ("socket", "family 17 (AF_PACKET)"),
        ("socket", "family 16 (AF_NETLINK), protocol 9"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(denied, want);
    let shown = fx.corral().args(["logs", "--kind", "syscall"]).output().unwrap();
    assert!(
        stdout(&shown).contains("denied unshare (CLONE_NEWUSER) to python3"),
        "{}",
        stdout(&shown)
    );
}

#[test]
fn with_the_observation_off_denied_calls_are_still_denied() {
    // The deny list answers them itself when no listener takes them.
    if !userns_available() {
        return skip("cannot create a sandbox here");
    }
    if !cfg!(target_arch = "x86_64") {
        return skip("the script uses x86_64 system call numbers");
    }
    let fx = Fixture::new();
    let profile = fx.home.join("quiet.toml");
    std::fs::write(&profile, "[sandbox]\naudit_exec = false\n").unwrap();
    fx.chown();
    let o = fx
        .corral()
        .args(["run", "--yes", "--profile", &profile.display().to_string()])
        .args(["--", "python3", "-c", DENIED_CALLS_PY])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "ptrace -1 EPERM\nbpf -1 EPERM\nmount -1 EPERM\n");
    let log = logs_of(&fx).pop().unwrap();
    assert!(!events(&log).iter().any(|e| e == "syscall.denied"));
}

#[test]
fn a_program_behind_an_absolute_symlink_that_exists_only_inside_is_recorded_in_full() {
    // The supervisor looks a path up in the sandbox's tree, not its own: a link in the project to
    // the sandbox's private /tmp (absent on the host) must not make a real exec look like a
    // PATH-search miss, whose arguments are not read.
    if !userns_available() {
        return skip("cannot create a sandbox here");
    }
    let fx = Fixture::new();
    fx.chown();
    let script = "mkdir -p /tmp/only-inside && cp /bin/true /tmp/only-inside/prog \
                  && ln -s /tmp/only-inside link && \"$PWD/link/prog\" marker-argument";
    let o = fx
        .corral()
        .args(["run", "--yes", "--", "sh", "-c", script])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let log = logs_of(&fx).pop().unwrap();
    let record = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["event"] == "exec" && r["path"].as_str().is_some_and(|p| p.ends_with("/link/prog")))
        .expect("the exec of link/prog is recorded");
    assert_eq!(record["argv"][1], "marker-argument", "{record}");
    assert!(record.get("missing").is_none(), "{record}");
}

#[test]
fn changed_file_names_the_agent_chose_are_escaped_on_the_terminal() {
    // A name with an escape sequence (clear the screen) among the exec triggers: the warning shows
    // it escaped, in the direct and in the review report; the log keeps the real name.
    if !userns_available() {
        return skip("cannot create a sandbox here");
    }
    let fx = Fixture::new();
    for review in [false, true] {
        // A new name each time: the review session sees the project the direct one changed.
        let name = if review { "r" } else { "d" };
        let script = format!(
            "mkdir -p .github/workflows && : > \"$(printf '.github/workflows/{name}\\033[2Jb.yml')\""
        );
        fx.chown();
        let mut c = fx.corral();
        c.arg("run").arg("--yes");
        if review {
            c.arg("--review");
        }
        let o = c.args(["--", "sh", "-c", &script]).output().unwrap();
        assert_code(&o, 0);
        let err = stderr(&o);
        assert!(
            !err.contains('\u{1b}'),
            "review {review}: a raw escape reached the terminal: {err:?}"
        );
        assert!(
            err.contains(&format!(".github/workflows/{name}\\u{{1b}}[2Jb.yml")),
            "review {review}: {err}"
        );
    }
    let log = logs_of(&fx).into_iter().find(|l| {
        std::fs::read_to_string(l)
            .unwrap()
            .contains("\"event\":\"fs.changed\",\"exec_triggers\":[\".github/workflows/d\\u001b[2Jb.yml\"]")
    });
    assert!(log.is_some(), "the log keeps the real name (JSON-escaped)");
}
