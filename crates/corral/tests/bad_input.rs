//! Bad input is refused before anything happens: a typo'd profile key, a relative, `..` or missing
//! path, a workspace that is the whole home, an unknown built-in profile. Each error exits 125,
//! names what is wrong and where (file:line:column, the profile key, the path) and the fix, and
//! leaves the fake home and workspace exactly as they were. An empty command name or a pids limit
//! too low to start anything get the same treatment. `--dry-run` and `corral check` only report:
//! they exit 0 and change nothing either.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Output;

/// A fixture with a small project and a home secret, so that "changed nothing" means something.
fn fixture() -> Fixture {
    let fx = Fixture::new();
    fx.ws_file("src/main.rs", "fn main() {}\n");
    fx.ws_file(".env", "TOKEN=not-a-real-token\n");
    fx.home_file(".ssh/id_ed25519", "not a real key\n");
    fx
}

/// Writes a profile file in the fixture root (outside the home); returns its path.
fn profile(fx: &Fixture, name: &str, text: &str) -> PathBuf {
    let p = fx.root.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs `corral ARGS` from `cwd` and asserts the fake home (workspace included) is unchanged.
#[track_caller]
fn run_unchanged(fx: &Fixture, cwd: &Path, args: &[&str]) -> Output {
    fx.chown();
    // corral's own state (a launched session's audit log) is not the user's files.
    let users = |home: &Path| -> Vec<String> {
        listing(home)
            .into_iter()
            .filter(|l| !l.starts_with(".local"))
            .collect()
    };
    let before = users(&fx.home);
    let o = fx.corral_in(cwd).args(args).output().unwrap();
    assert_eq!(
        users(&fx.home),
        before,
        "`corral {}` changed the home or workspace; stderr:\n{}",
        args.join(" "),
        stderr(&o)
    );
    o
}

/// Asserts a refusal: exit 125, nothing on stdout, stderr contains every one of `needles`.
#[track_caller]
fn assert_refused(o: &Output, needles: &[&str]) {
    assert_code(o, 125);
    assert_eq!(stdout(o), "", "a refusal should print nothing on stdout");
    for n in needles {
        assert!(stderr(o).contains(n), "stderr lacks {n:?}:\n{}", stderr(o));
    }
}

#[test]
fn a_typod_profile_key_names_file_line_column_and_the_right_key() {
    let fx = fixture();
    let p = profile(&fx, "typo.toml", "[filesystem]\nread_onyl = []\n");
    let ps = p.display().to_string();
    let o = run_unchanged(&fx, &fx.ws, &["run", "--yes", "--profile", &ps, "--", "true"]);
    assert_refused(
        &o,
        &[
            &format!("{ps}:2:1: unknown field `read_onyl`"),
            "did you mean `read_only`",
        ],
    );
}

#[test]
fn a_relative_read_write_path_is_refused_naming_the_key() {
    let fx = fixture();
    let p = profile(&fx, "rel.toml", "[filesystem]\nread_write = [\"relative/dir\"]\n");
    let o = run_unchanged(
        &fx,
        &fx.ws,
        &[
            "run",
            "--yes",
            "--profile",
            &p.display().to_string(),
            "--",
            "true",
        ],
    );
    assert_refused(
        &o,
        &["filesystem.read_write", "\"relative/dir\"", "must be absolute"],
    );
}

#[test]
fn a_dotdot_read_write_path_is_refused_naming_the_key() {
    let fx = fixture();
    for (name, path) in [("dotdot1.toml", "/tmp/../etc"), ("dotdot2.toml", "~/../x")] {
        let p = profile(&fx, name, &format!("[filesystem]\nread_write = [\"{path}\"]\n"));
        let o = run_unchanged(
            &fx,
            &fx.ws,
            &[
                "run",
                "--yes",
                "--profile",
                &p.display().to_string(),
                "--",
                "true",
            ],
        );
        assert_refused(
            &o,
            &["filesystem.read_write", &format!("{path:?}"), "contain no `..`"],
        );
    }
}

#[test]
fn a_missing_read_write_path_is_refused_naming_it_and_the_fix() {
    let fx = fixture();
    let missing = fx.root.join("no-such-dir");
    let p = profile(
        &fx,
        "missing.toml",
        &format!("[filesystem]\nread_write = [\"{}\"]\n", missing.display()),
    );
    let o = run_unchanged(
        &fx,
        &fx.ws,
        &[
            "run",
            "--yes",
            "--profile",
            &p.display().to_string(),
            "--",
            "true",
        ],
    );
    assert_refused(
        &o,
        &[
            &format!("filesystem.read_write: {} does not exist", missing.display()),
            "optional = true",
        ],
    );
    assert!(!missing.exists(), "corral created the missing path");
}

#[test]
fn the_whole_home_as_workspace_is_refused() {
    let fx = fixture();
    // The home is not a git repository, so the workspace would be the home itself.
    let o = run_unchanged(&fx, &fx.home, &["run", "--yes", "--", "true"]);
    assert_refused(
        &o,
        &[
            &format!("refusing workspace {}", fx.home.display()),
            "would expose your secrets",
            "allow_home_workspace",
        ],
    );
}

#[test]
fn an_unknown_builtin_profile_lists_the_builtin_ones() {
    let fx = fixture();
    let o = run_unchanged(
        &fx,
        &fx.ws,
        &["run", "--yes", "--profile", "nosuch", "--", "true"],
    );
    assert_refused(&o, &["no built-in profile named \"nosuch\"", "built-in: default"]);
}

#[test]
fn dry_run_prints_the_plan_and_creates_nothing() {
    let fx = fixture();
    let ws = fx.ws.display().to_string();
    let o = run_unchanged(&fx, &fx.ws, &["run", "--yes", "--dry-run"]);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(
        out.lines().any(|l| l.contains(&format!("bind     {ws}  rw dir"))),
        "no workspace bind in:\n{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("mask") && l.contains(&format!("{ws}/.env"))),
        "the workspace's .env is not masked in:\n{out}"
    );
    assert!(
        !out.contains("not-a-real-token"),
        "the plan printed a secret's content"
    );

    let o = run_unchanged(&fx, &fx.ws, &["run", "--yes", "--dry-run", "--json"]);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("--dry-run --json is not JSON ({e}):\n{}", stdout(&o)));
    for k in ["mounts", "env", "landlock", "seccomp", "command"] {
        assert!(v.get(k).is_some(), "--dry-run --json lacks {k:?}");
    }
    assert_eq!(v["command"], serde_json::json!(["bash"]));
}

#[test]
fn check_reports_every_layer_and_parses_as_json() {
    // `check` exits 1 where a required layer is missing (no user namespaces for this user).
    if !userns_available() {
        return skip("cannot create a sandbox here: `corral check` would rightly exit 1");
    }
    let fx = fixture();
    let o = run_unchanged(&fx, &fx.ws, &["check"]);
    assert_code(&o, 0);
    let out = stdout(&o);
    for layer in ["landlock", "userns"] {
        assert!(
            out.lines().any(|l| l.starts_with(layer)),
            "no line starting with {layer:?}:\n{out}"
        );
    }
    let o = run_unchanged(&fx, &fx.ws, &["check", "--json"]);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("check --json is not JSON ({e}):\n{}", stdout(&o)));
    assert!(v.get("host").is_some() && v.get("layers").is_some(), "{v:#}");
}

#[test]
fn an_empty_command_name_is_not_found_like_env1() {
    if !userns_available() {
        return skip("cannot create a sandbox here (user namespaces unavailable for the test user)");
    }
    let fx = fixture();
    // env(1) and execvp(3): an empty name is ENOENT, "not found", 127.
    let o = run_unchanged(&fx, &fx.ws, &["run", "--yes", "--", ""]);
    assert_code(&o, 127);
    assert!(
        stderr(&o).contains("command not found: \"\""),
        "stderr:\n{}",
        stderr(&o)
    );
}

#[test]
fn a_pids_limit_too_low_to_start_the_command_names_limits_pids() {
    if !userns_available() {
        return skip("cannot create a sandbox here (user namespaces unavailable for the test user)");
    }
    let fx = fixture();
    let p = profile(&fx, "pids1.toml", "[limits]\npids = 1\n");
    let o = run_unchanged(
        &fx,
        &fx.ws,
        &[
            "run",
            "--yes",
            "--profile",
            &p.display().to_string(),
            "--",
            "true",
        ],
    );
    assert_refused(&o, &["limits.pids"]);
}

#[test]
fn user_namespaces_blocked_names_the_failure_and_the_fix() {
    // Simulated in a throwaway user namespace whose own user.max_user_namespaces is 0 (the limit
    // applies to that namespace and its descendants only): corral's clone of a new user namespace
    // then fails as it does on a host that allows none.
    let fx = Fixture::new();
    fx.chown();
    let before = listing(&fx.ws);
    let script = format!(
        "echo 0 > /proc/sys/user/max_user_namespaces && exec {} run --yes -- true",
        corral_bin().display()
    );
    let mut c = std::process::Command::new("setpriv");
    c.arg(format!("--reuid={}", fx.ids.uid))
        .arg(format!("--regid={}", fx.ids.gid))
        .arg("--clear-groups")
        .args(["unshare", "--user", "--map-root-user", "sh", "-c", &script]);
    if !fx.ids.drop {
        c = std::process::Command::new("unshare");
        c.args(["--user", "--map-root-user", "sh", "-c", &script]);
    }
    let o = c
        .current_dir(&fx.ws)
        .env_clear()
        .env("HOME", &fx.home)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    if stderr(&o).contains("unshare failed") {
        return skip(&format!(
            "cannot create the throwaway user namespace: {}",
            stderr(&o)
        ));
    }
    assert_code(&o, 125);
    let err = stderr(&o);
    assert!(err.contains("clone(CLONE_NEWIPC|CLONE_NEWNET|CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWUSER|CLONE_NEWUTS): No space left on device"), "{err}");
    assert!(
        err.contains("hint: the per-user namespace limit is reached: raise user.max_user_namespaces"),
        "{err}"
    );
    assert_eq!(
        err.matches("No space left on device").count(),
        1,
        "the OS error is said once: {err}"
    );
    assert_eq!(listing(&fx.ws), before);
}

#[test]
fn logs_refuses_an_unknown_kind_naming_the_kinds() {
    let fx = fixture();
    let o = run_unchanged(&fx, &fx.ws, &["logs", "--kind", "exec,proc"]);
    assert_refused(
        &o,
        &["--kind \"proc\": not a kind of event (kinds: session, env, exec, syscall, fs, net, api, dns, limit, log)"],
    );
}
