//! `corral selftest` as a user runs it (T3): the whole adversarial suite against sandboxes from
//! the shipped profiles, every attack asserted one by one (blocked, or skipped only for a reason
//! this machine gives), the control run proven able to see each escape, an escape reported when a
//! profile really lets one through, and nothing left behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::sync::{Mutex, OnceLock};

fn ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(userns_available)
}

/// The selftests share the machine's /tmp and /dev/shm (what they leave is checked) and load
/// both cores: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Attacks this machine itself refuses to an unprivileged user, so the control run cannot show
/// them (the selftest skips them, with the sysctl or device that refuses).
const MACHINE_SKIPS: &[&str] = &[
    "privileges.bpf",     // kernel.unprivileged_bpf_disabled
    "kernel.dmesg",       // kernel.dmesg_restrict
    "kernel./proc/kcore", // root only, or absent
    "terminal.TIOCLINUX", // no virtual console
];

fn leftovers() -> Vec<String> {
    ["/tmp", "/dev/shm"]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .map(|e| e.path().display().to_string())
        .filter(|p| p.contains("corral-selftest-"))
        .collect()
}

/// Runs `corral selftest --json ARGS` as the test user; (exit code, document).
fn selftest(fx: &Fixture, args: &[&str]) -> (i32, serde_json::Value) {
    fx.chown();
    let o = fx
        .corral()
        .arg("selftest")
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "selftest --json: {e}\nstdout: {}\nstderr: {}",
            stdout(&o),
            stderr(&o)
        )
    });
    (o.status.code().unwrap_or(-1), doc)
}

fn results(doc: &serde_json::Value) -> Vec<(String, String, String)> {
    doc["attacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap().to_string(),
                a["result"].as_str().unwrap().to_string(),
                a["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Every attack blocked, or skipped for a reason of this machine (or `also_skipped`); the rest
/// listed in one failure message.
fn assert_all_blocked(doc: &serde_json::Value, also_skipped: &dyn Fn(&str) -> bool) {
    let mut wrong = Vec::new();
    for (id, result, detail) in results(doc) {
        let ok = match result.as_str() {
            "blocked" => true,
            "skipped" => MACHINE_SKIPS.contains(&id.as_str()) || also_skipped(&id),
            _ => false,
        };
        if !ok {
            wrong.push(format!("{id}: {result}: {detail}"));
        }
    }
    assert!(wrong.is_empty(), "attacks not blocked:\n{}", wrong.join("\n"));
}

#[test]
fn default_profile_blocks_every_attack_and_leaves_nothing_behind() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ready() {
        return skip("cannot start a sandbox here (user namespaces unavailable?)");
    }
    let before = leftovers();
    let fx = Fixture::new();
    let (code, doc) = selftest(&fx, &[]);
    let total = doc["summary"]["total"].as_u64().unwrap();
    assert!(total >= 50, "only {total} attacks");
    // The default profile has no network at all: there is no proxy to attack.
    assert_all_blocked(&doc, &|id| id.starts_with("proxy."));
    assert_eq!(doc["ok"], true);
    assert_eq!(code, 0);
    // Each family the issue names is there.
    let ids: Vec<String> = results(&doc).into_iter().map(|r| r.0).collect();
    for id in [
        "secrets.read ~/.ssh",
        "secrets.symlink",
        "secrets.hard link",
        "secrets./proc/self/root",
        "secrets.inherited descriptor",
        "secrets.other processes' environment",
        "writes.append ~/.bashrc",
        "writes.create in host /tmp",
        "writes.xattr outside",
        "persist.write .git/hooks",
        "persist.rename .git aside",
        "persist.symlink swap .vscode",
        "persist.git config core.fsmonitor",
        "network.udp",
        "network.dns raw",
        "unix.abstract",
        "unix.ssh-agent",
        "process./proc/<pid>/mem",
        "privileges.clone3 newuser",
        "terminal.TIOCSTI",
        "kernel.hostname",
        "resources.fork bomb",
        "resources.memory",
        "resources.file size",
        "resources.fill /tmp",
        "resources.cpu time",
    ] {
        assert!(ids.iter().any(|i| i == id), "no attack {id}");
    }
    let after = leftovers();
    let new: Vec<&String> = after.iter().filter(|p| !before.contains(p)).collect();
    assert!(new.is_empty(), "left behind: {new:?}");
}

#[test]
fn claude_profile_blocks_every_proxy_trick() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ready() {
        return skip("cannot start a sandbox here (user namespaces unavailable?)");
    }
    let fx = Fixture::new();
    let (code, doc) = selftest(&fx, &["--profile", "claude"]);
    assert_all_blocked(&doc, &|_| false);
    let proxy = results(&doc)
        .into_iter()
        .filter(|r| r.0.starts_with("proxy."))
        .count();
    assert!(proxy >= 15, "only {proxy} proxy attacks");
    assert_eq!(code, 0);
}

#[test]
fn a_profile_that_shares_the_host_network_fails_the_selftest() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ready() {
        return skip("cannot start a sandbox here (user namespaces unavailable?)");
    }
    let fx = Fixture::new();
    let profile = fx.home_file(
        "host-net.toml",
        "extends = \"default\"\n[network]\nmode = \"host\"\n",
    );
    let (code, doc) = selftest(&fx, &["--profile", profile.to_str().unwrap()]);
    assert_eq!(code, 1, "an escape must fail the selftest");
    assert_eq!(doc["ok"], false);
    let r = results(&doc);
    for id in ["network.tcp", "network.udp", "kernel./proc/net"] {
        let (_, result, detail) = r.iter().find(|x| x.0 == id).unwrap();
        assert_eq!(result, "escaped", "{id}: {detail}");
    }
    // The rest of the sandbox still holds.
    let (_, result, _) = r.iter().find(|x| x.0 == "secrets.read ~/.ssh").unwrap();
    assert_eq!(result, "blocked");
}

#[test]
fn the_control_run_alone_gets_through_with_every_attack() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ready() {
        return skip("cannot start a sandbox here (user namespaces unavailable?)");
    }
    let fx = Fixture::new();
    let (code, doc) = selftest(&fx, &["--control"]);
    let mut wrong = Vec::new();
    for (id, result, detail) in results(&doc) {
        let ok = result == "detected" || (result == "skipped" && MACHINE_SKIPS.contains(&id.as_str()));
        if !ok {
            wrong.push(format!("{id}: {result}: {detail}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "not detected without the sandbox:\n{}",
        wrong.join("\n")
    );
    assert_eq!(doc["summary"]["blocked"], 0, "nothing ran in a sandbox");
    assert_eq!(code, 0);
}

#[test]
fn bad_input_is_refused_before_any_bait_is_planted() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ready() {
        return skip("cannot start a sandbox here (user namespaces unavailable?)");
    }
    let before = leftovers();
    let fx = Fixture::new();
    fx.chown();
    let o = fx
        .corral()
        .args(["selftest", "--profile", "no-such-profile"])
        .output()
        .unwrap();
    assert_code(&o, 125);
    assert!(stderr(&o).contains("no-such-profile"), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    // As root: refused, with the reason (the sandbox would run as another user).
    if rustix::process::geteuid().is_root() {
        let o = std::process::Command::new(corral_bin())
            .arg("selftest")
            .current_dir(&fx.ws)
            .output()
            .unwrap();
        assert_code(&o, 125);
        assert!(stderr(&o).contains("not as root"), "{}", stderr(&o));
    }
    let after = leftovers();
    let new: Vec<&String> = after.iter().filter(|p| !before.contains(p)).collect();
    assert!(new.is_empty(), "left behind: {new:?}");
}
