//! The real Claude Code CLI inside `corral claude`, offline: a fake Anthropic Messages API
//! (tests/fixtures/fake_anthropic.py) on the host's loopback is the gateway's upstream
//! (`sandbox.api_upstream`), and its script makes the real client call tools. The client comes
//! from the npm package `@anthropic-ai/claude-code`, installed by `.ci/run` into
//! `/opt/claude-cache` (or `CORRAL_TEST_CLAUDE_DIR`); without it these tests skip (and fail under
//! `CORRAL_TEST_REQUIRE=1`).
//!
//! What they prove: the agent works (files written through Bash and Write), what must stay outside
//! does (the key, `~/.ssh`, other processes' environment), and the real key appears only in the
//! headers the gateway sent upstream — never in a request body, a file of the workspace or of
//! the agent's state, or the environment inside.

// Helpers outside #[test] functions panic on a failed set-up, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use serde_json::Value;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The real key, as the host has it. Only the gateway may send it, only upstream.
const REAL_KEY: &str = "sk-ant-api03-REAL-KEY-never-inside-0123456789abcdef";

fn claude_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CORRAL_TEST_CLAUDE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/claude-cache/node_modules/.bin"));
    dir.join("claude").exists().then_some(dir)
}

/// The fake API, killed on drop.
struct FakeApi {
    child: std::process::Child,
    port: u16,
    log: PathBuf,
}

impl FakeApi {
    fn start(fx: &Fixture, script: &Value) -> FakeApi {
        let script_path = fx.root.join("script.json");
        std::fs::write(&script_path, script.to_string()).unwrap();
        let log = fx.root.join("api-log.jsonl");
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake_anthropic.py");
        let mut child = Command::new("python3")
            .arg(fixture)
            .args(["--port", "0", "--script"])
            .arg(&script_path)
            .arg("--log")
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let port = first.trim().strip_prefix("PORT ").unwrap().parse().unwrap();
        FakeApi { child, port, log }
    }

    /// Every request the fake API saw.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fixture with a fake API (running its `script`) whose user config points the claude profile
/// at it and finds the client. No retries: a failure shows at once.
fn fixture(script: &Value, claude: &Path) -> (Fixture, FakeApi) {
    let fx = Fixture::new();
    let api = FakeApi::start(&fx, script);
    fx.home_file(
        ".config/corral/config.toml",
        &format!(
            "[sandbox]\napi_upstream = \"http://127.0.0.1:{}\"\n[env]\npath = [\"{}\", \"/usr/local/bin\", \"/usr/bin\", \"/bin\"]\nset = {{ CLAUDE_CODE_MAX_RETRIES = \"0\" }}\n",
            api.port,
            claude.display()
        ),
    );
    // A secret the agent will try to read.
    fx.home_file(
        ".ssh/id_ed25519",
        "-----BEGIN OPENSSH PRIVATE KEY----- host-secret\n",
    );
    (fx, api)
}

/// Every file below `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                todo.push(p);
            } else if ft.is_file()
                && std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
            {
                hits.push(p);
            }
        }
    }
    hits
}

/// The tool results of the last main request, in order: (is_error, content).
fn tool_results(requests: &[Value]) -> Vec<(bool, String)> {
    let last = requests
        .iter()
        .rev()
        .find(|r| r["kind"] == "main")
        .expect("a main request");
    last["body"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .filter(|c| c["type"] == "tool_result")
        .map(|c| {
            let content = match &c["content"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (c["is_error"] == true, content)
        })
        .collect()
}

#[test]
fn claude_works_inside_and_the_real_key_never_enters() {
    let Some(claude) = claude_dir() else {
        return skip("Claude Code is not installed (.ci/run installs @anthropic-ai/claude-code into /opt/claude-cache)");
    };
    if !userns_available() {
        return skip("cannot start a sandbox here");
    }
    let script = serde_json::json!([
        {"tool_use": {"name": "Bash", "input": {"command": "echo hello > out.txt"}}},
        {"tool_use": {"name": "Write", "input": {"file_path": "note.txt", "content": "written by the agent\n"}}},
        {"tool_use": {"name": "Bash", "input": {"command": "cat ~/.ssh/id_ed25519"}}},
        {"tool_use": {"name": "Bash", "input": {"command": "cat /proc/1/environ"}}},
        {"tool_use": {"name": "Bash", "input": {"command": "env > env.txt; cat /proc/self/environ > self-environ.txt"}}},
        {"text": "done"}
    ]);
    let (fx, api) = fixture(&script, &claude);
    fx.chown();
    let o = fx
        .corral()
        .env("ANTHROPIC_API_KEY", REAL_KEY)
        .args([
            "claude",
            "--yes",
            "--",
            "-p",
            "do the task",
            "--output-format",
            "json",
        ])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let out: Value =
        serde_json::from_str(stdout(&o).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)));
    assert_eq!(out["is_error"], false, "{out}");
    assert_eq!(out["result"], "done");
    // The work happened, in the workspace.
    assert_eq!(std::fs::read_to_string(fx.ws.join("out.txt")).unwrap(), "hello\n");
    assert_eq!(
        std::fs::read_to_string(fx.ws.join("note.txt")).unwrap(),
        "written by the agent\n"
    );
    // The forbidden reads came back to the model as errors.
    let requests = api.requests();
    let results = tool_results(&requests);
    assert_eq!(results.len(), 5, "{results:?}");
    assert!(
        results[2].0 && results[2].1.contains("No such file or directory"),
        "{:?}",
        results[2]
    );
    assert!(
        results[3].0 && results[3].1.contains("Permission denied"),
        "{:?}",
        results[3]
    );
    assert!(!results[2].1.contains("host-secret"));
    // The real key: in every request's headers (the gateway put it there), nowhere else.
    let mains: Vec<&Value> = requests.iter().filter(|r| r["kind"] == "main").collect();
    assert_eq!(mains.len(), 6);
    for r in &requests {
        let headers = r["headers"].as_object().unwrap();
        let key = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-api-key"))
            .map(|(_, v)| v.as_str().unwrap_or(""));
        assert_eq!(key, Some(REAL_KEY), "{headers:?}");
        assert!(
            !headers
                .iter()
                .any(|(k, v)| k.eq_ignore_ascii_case("authorization")
                    || v.as_str().is_some_and(|v| v.contains("corral-dummy"))),
            "the dummy credential was forwarded: {headers:?}"
        );
        assert!(
            !r["body"].to_string().contains(REAL_KEY),
            "the key is in a request body"
        );
    }
    assert_eq!(files_containing(&fx.home, REAL_KEY), Vec::<PathBuf>::new());
    let env = std::fs::read_to_string(fx.ws.join("env.txt")).unwrap();
    assert!(
        !env.contains(REAL_KEY) && env.contains("corral-dummy-credential"),
        "{env}"
    );
    assert!(!std::fs::read_to_string(fx.ws.join("self-environ.txt"))
        .unwrap()
        .contains(REAL_KEY));
    // Its state is kept per project, outside the workspace; the gateway's requests are in the log.
    let projects = fx.home.join(".local/share/corral/projects");
    let keys: Vec<_> = std::fs::read_dir(&projects).unwrap().flatten().collect();
    assert_eq!(keys.len(), 1);
    let state = keys[0].path();
    assert_eq!(
        std::fs::read_to_string(state.join("project-root"))
            .unwrap()
            .trim(),
        fx.ws.display().to_string()
    );
    assert!(state.join("claude/.claude.json").exists());
    let log = fx
        .corral()
        .args(["logs", "--json", "--kind", "api"])
        .output()
        .unwrap();
    let api_records = stdout(&log)
        .lines()
        .filter(|l| l.contains("\"api.request\""))
        .count();
    assert_eq!(api_records, 6, "{}", stdout(&log));
    assert!(
        stderr(&o).contains("6 API request(s) through the gateway"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn claude_policy_files_are_read_only_and_sandbox_md_is_imported() {
    let Some(claude) = claude_dir() else {
        return skip("Claude Code is not installed (.ci/run installs @anthropic-ai/claude-code into /opt/claude-cache)");
    };
    if !userns_available() {
        return skip("cannot start a sandbox here");
    }
    let (fx, _api) = fixture(&serde_json::json!([]), &claude);
    fx.home_file(
        ".local/share/corral/agents/claude/CLAUDE.md",
        "Always answer in haiku.\n",
    );
    fx.chown();
    let o = fx
        .corral()
        .env("ANTHROPIC_API_KEY", REAL_KEY)
        .args(["run", "--profile", "claude", "--yes", "--", "sh", "-c"])
        .arg(
            "cat ~/.claude/CLAUDE.md; \
             for f in ~/.claude/settings.json ~/.claude/hooks/h ~/.claude/commands/c ~/.claude/agents/a ~/.corral/SANDBOX.md; do \
               (echo x > $f) 2>/dev/null && echo \"WROTE $f\"; done; \
             grep -c 'You are running inside a corral sandbox' ~/.corral/SANDBOX.md; \
             echo '{}' | ~/.corral/bin/corral statusline",
        )
        .output()
        .unwrap();
    assert_code(&o, 0);
    let out = stdout(&o);
    let home = fx.home.display().to_string();
    let (files, status) = out.rsplit_once("corral ▸").unwrap_or((&out, ""));
    assert_eq!(
        files,
        format!("@{home}/.corral/SANDBOX.md\n\nAlways answer in haiku.\n1\n"),
        "{}",
        stderr(&o)
    );
    // The status line as read inside: Landlock's level is what init achieved (ABI varies by kernel).
    let parts: Vec<&str> = status.trim().split(" · ").collect();
    assert_eq!(parts.len(), 4, "{status}");
    assert_eq!(parts[0], "net:proxy 0✓ 0✗");
    assert!(
        parts[1].starts_with("LL") && parts[1][2..].chars().all(|c| c.is_ascii_digit()),
        "Landlock not fully enforced: {status}"
    );
    assert_eq!(&parts[2..], ["nnp", "seccomp"]);
}

#[test]
fn claude_tui_comes_up_inside_with_the_status_line() {
    let Some(claude) = claude_dir() else {
        return skip("Claude Code is not installed (.ci/run installs @anthropic-ai/claude-code into /opt/claude-cache)");
    };
    if !userns_available() {
        return skip("cannot start a sandbox here");
    }
    if !Path::new("/usr/bin/tmux").exists() {
        return skip("tmux is not installed");
    }
    let (fx, _api) = fixture(
        &serde_json::json!([{"text": "hello from the fake model"}]),
        &claude,
    );
    fx.chown();
    let sock = format!("corral-claude-{}", std::process::id());
    let mut cmd = format!(
        "cd '{}' && exec env -i HOME='{}' USER={TEST_USER} PATH=/usr/bin:/bin LANG=C.UTF-8 TERM=xterm-256color ANTHROPIC_API_KEY={REAL_KEY} ",
        fx.ws.display(),
        fx.home.display()
    );
    if fx.ids.drop {
        cmd.push_str(&format!(
            "setpriv --reuid={} --regid={} --clear-groups ",
            fx.ids.uid, fx.ids.gid
        ));
    }
    cmd.push_str(&format!("'{}' claude --yes", corral_bin().display()));
    let tmux = |args: &[&str]| {
        Command::new("/usr/bin/tmux")
            .args(["-L", &sock, "-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .output()
            .unwrap()
    };
    let o = tmux(&["new-session", "-d", "-s", "t", "-x", "200", "-y", "50", &cmd]);
    assert!(o.status.success(), "{}", stderr(&o));
    let screen = || stdout(&tmux(&["capture-pane", "-p", "-t", "t"]));
    let up = wait_until(Duration::from_secs(30), || {
        let s = screen();
        s.contains("corral ▸") && s.contains("bypass permissions")
    });
    let shown = screen();
    let _ = tmux(&["send-keys", "-t", "t", "say hi", "Enter"]);
    let replied = wait_until(Duration::from_secs(30), || {
        screen().contains("hello from the fake model")
    });
    let last = screen();
    let _ = tmux(&["kill-server"]);
    assert!(up, "the TUI did not come up with corral's status line:\n{shown}");
    assert!(shown.contains("net:proxy"), "{shown}");
    assert!(replied, "no reply shown:\n{last}");
    assert!(!last.contains(REAL_KEY));
}

#[test]
fn a_key_from_corral_login_is_used_by_the_gateway_and_stays_outside() {
    let Some(claude) = claude_dir() else {
        return skip("Claude Code is not installed (.ci/run installs @anthropic-ai/claude-code into /opt/claude-cache)");
    };
    if !userns_available() {
        return skip("cannot start a sandbox here");
    }
    let script = serde_json::json!([
        // The agent looks for the stored key where `corral login` keeps it on the host.
        {"tool_use": {"name": "Bash", "input": {"command": "env > env.txt; cat ~/.local/share/corral/credentials/claude > store.txt 2>&1; echo \"exit $?\" >> store.txt"}}},
        {"text": "done"}
    ]);
    let (fx, api) = fixture(&script, &claude);
    fx.chown();
    // Stored from stdin (no terminal), then used with no key in the environment.
    let mut login = fx
        .corral()
        .args(["login", "claude"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    login
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{REAL_KEY}\n").as_bytes())
        .unwrap();
    let o = login.wait_with_output().unwrap();
    assert_code(&o, 0);
    let store = fx.home.join(".local/share/corral/credentials/claude");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&store).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let o = fx
        .corral()
        .args(["claude", "--yes", "--", "-p", "go", "--output-format", "json"])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let requests = api.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        let headers = r["headers"].as_object().unwrap();
        assert!(
            headers
                .iter()
                .any(|(k, v)| k.eq_ignore_ascii_case("x-api-key") && v == REAL_KEY),
            "{headers:?}"
        );
    }
    let env = std::fs::read_to_string(fx.ws.join("env.txt")).unwrap();
    assert!(!env.contains(REAL_KEY), "{env}");
    // The store is outside the sandbox: the agent's attempt to read it failed, and nothing in the
    // project holds the key.
    let store_seen = std::fs::read_to_string(fx.ws.join("store.txt")).unwrap();
    assert!(store_seen.ends_with("exit 1\n"), "{store_seen}");
    assert_eq!(files_containing(&fx.ws, REAL_KEY), Vec::<PathBuf>::new());
}

#[test]
fn a_key_file_readable_by_others_is_refused_before_launch() {
    if !userns_available() {
        return skip("cannot start a sandbox here");
    }
    let fx = Fixture::new();
    let key = fx.home_file(".config/corral/anthropic.key", &format!("{REAL_KEY}\n"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    fx.home_file(
        ".config/corral/config.toml",
        "[sandbox]\napi_key_file = \"~/.config/corral/anthropic.key\"\n",
    );
    fx.chown();
    let o = fx
        .corral()
        .args(["run", "--profile", "claude", "--yes", "--", "touch", "ran"])
        .output()
        .unwrap();
    assert_code(&o, 125);
    assert!(
        stderr(&o).contains("readable by others (mode 644); hint: chmod 600"),
        "{}",
        stderr(&o)
    );
    assert!(!fx.ws.join("ran").exists());
    // Refused before anything was made: no session, no log, no placeholder in the project.
    assert!(!fx.home.join(".local/state/corral/sessions").exists());
    assert_eq!(
        std::fs::read_dir(&fx.ws).unwrap().count(),
        0,
        "the project is untouched"
    );
}

#[test]
fn a_symlink_planted_in_the_agent_state_is_not_followed_on_the_host() {
    // The agent can write its own state directory from inside; a `.claude.json` turned into a
    // symlink to a host JSON secret must not be read (and copied back into the sandbox's view)
    // by the next launch.
    if !userns_available() {
        return skip("cannot start a sandbox here");
    }
    let fx = Fixture::new();
    let secret = fx.home_file(
        ".docker/config.json",
        "{\"auths\": {\"x\": \"SECRET-DOCKER-AUTH\"}}\n",
    );
    fx.chown();
    // A first launch makes the state directory.
    let o = fx
        .corral()
        .env("ANTHROPIC_API_KEY", REAL_KEY)
        .args(["run", "--profile", "claude", "--yes", "--", "true"])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let projects = fx.home.join(".local/share/corral/projects");
    let state = std::fs::read_dir(&projects)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let claude_json = state.join("claude/.claude.json");
    std::fs::remove_file(&claude_json).unwrap();
    std::os::unix::fs::symlink(&secret, &claude_json).unwrap();
    let o = fx
        .corral()
        .env("ANTHROPIC_API_KEY", REAL_KEY)
        .args(["run", "--profile", "claude", "--yes", "--", "true"])
        .output()
        .unwrap();
    assert_code(&o, 125);
    assert!(stderr(&o).contains(".claude.json"), "{}", stderr(&o));
    assert_eq!(
        files_containing(&state, "SECRET-DOCKER-AUTH"),
        Vec::<PathBuf>::new()
    );
    assert!(std::fs::symlink_metadata(&claude_json)
        .unwrap()
        .file_type()
        .is_symlink());
}
