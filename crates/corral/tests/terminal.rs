//! Terminals: a sandboxed interactive shell gets the real terminal (size, resizes, Ctrl-C, a name
//! for `tty`), corral exits with the command's status, gives the terminal back as it found it, and
//! job control of the shell that started corral keeps working (Ctrl-Z, `fg`, and returning to the
//! prompt when the sandboxed shell exits).
//!
//! Each test drives a detached tmux session on a socket of its own (`-L`), reads the screen with
//! `capture-pane`, and polls with a bound of [`STEP`] per step. The tmux server is killed by a
//! guard, also when the test fails. Text to wait for is built at run time (`X=SZ; echo "$X:..."`)
//! so that the echoed command line never matches what the test waits for.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const TMUX: &str = "/usr/bin/tmux";
/// Bound of every wait for the screen or a process.
const STEP: Duration = Duration::from_secs(10);
/// The first step also waits for the sandbox to start on a slow, shared machine.
const FIRST_STEP: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Single-quotes `s` for sh.
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A sh command line that runs `argv` as the sandbox user from the workspace, with a small clean
/// environment (as the harness's `corral()` does, plus TERM for a terminal).
fn as_user(fx: &Fixture, argv: &[&str]) -> String {
    let mut words = vec![
        "cd".to_string(),
        q(&fx.ws.display().to_string()),
        "&&".into(),
        "exec".into(),
        "env".into(),
        "-i".into(),
        q(&format!("HOME={}", fx.home.display())),
        q(&format!("USER={TEST_USER}")),
        q("PATH=/usr/local/bin:/usr/bin:/bin"),
        q("LANG=C.UTF-8"),
        q("TERM=xterm-256color"),
        // An outer bash must not write its history into the fixture as it is being removed.
        q("HISTFILE="),
    ];
    if fx.ids.drop {
        words.extend([
            "setpriv".to_string(),
            format!("--reuid={}", fx.ids.uid),
            format!("--regid={}", fx.ids.gid),
            "--clear-groups".into(),
        ]);
    }
    words.extend(argv.iter().map(|a| q(a)));
    words.join(" ")
}

/// Host pids of live `sleep MARKER` processes.
fn sleep_pids(marker: &str) -> Vec<i32> {
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
        let is_sleep = argv
            .first()
            .is_some_and(|a0| a0 == b"sleep" || a0.ends_with(b"/sleep"));
        if is_sleep && argv.get(1) == Some(&marker.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

/// The state letter of `/proc/PID/stat`.
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// A detached tmux session (`t`) on a private server socket, killed on drop along with every
/// `sleep MARKER` a test started in it.
struct Tmux {
    sock: String,
    conf: PathBuf,
    markers: Vec<String>,
    /// The server's socket file, removed on drop (kill-server leaves it behind).
    socket_path: Option<PathBuf>,
    /// The pane's process, waited for on drop so that nothing writes into the fixture afterwards.
    pane_pid: Option<i32>,
}

impl Tmux {
    /// Starts the server with a 100x30 window running `pane_cmd`; None (after `skip`) without tmux.
    fn start(fx: &Fixture, name: &str, pane_cmd: &str) -> Option<Tmux> {
        if !Path::new(TMUX).exists() {
            skip(&format!("{TMUX} is not installed (apt-get install tmux)"));
            return None;
        }
        let conf = fx.root.join("tmux.conf");
        // No status line (the pane gets the whole window); a dead pane stays to report its status.
        std::fs::write(
            &conf,
            "set -g status off\nset -g remain-on-exit on\nset -g history-limit 5000\n",
        )
        .unwrap();
        let mut t = Tmux {
            sock: format!("corral-{name}-{}", std::process::id()),
            conf,
            markers: Vec::new(),
            socket_path: None,
            pane_pid: None,
        };
        let o = t.tmux(&["new-session", "-d", "-s", "t", "-x", "100", "-y", "30", pane_cmd]);
        assert!(o.status.success(), "tmux new-session: {}", stderr(&o));
        let info = t.display("#{socket_path} #{pane_pid}");
        let (path, pid) = info.rsplit_once(' ').unwrap_or_default();
        t.socket_path = Some(PathBuf::from(path)).filter(|p| p.is_absolute());
        t.pane_pid = pid.parse().ok();
        Some(t)
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new(TMUX)
            .arg("-L")
            .arg(&self.sock)
            .arg("-f")
            .arg(&self.conf)
            .args(args)
            .env_remove("TMUX")
            .env("SHELL", "/bin/sh")
            .output()
            .unwrap()
    }

    /// Types `text` literally, then Enter.
    fn line(&self, text: &str) {
        assert!(self.tmux(&["send-keys", "-t", "t", "-l", text]).status.success());
        self.key("Enter");
    }

    /// Sends one key by tmux name (`C-c`, `C-z`, `Enter`).
    fn key(&self, key: &str) {
        assert!(self.tmux(&["send-keys", "-t", "t", key]).status.success());
    }

    /// The whole pane, history included, wrapped lines joined.
    fn screen(&self) -> String {
        stdout(&self.tmux(&["capture-pane", "-p", "-J", "-S", "-", "-t", "t"]))
    }

    /// Waits (bounded) until the screen contains `needle`; panics with the screen otherwise.
    #[track_caller]
    fn wait_for(&self, needle: &str, limit: Duration) -> String {
        let mut screen = String::new();
        if wait_until(limit, || {
            screen = self.screen();
            screen.contains(needle)
        }) {
            return screen;
        }
        panic!("waited {limit:?} for {needle:?}; the pane shows:\n{screen}");
    }

    fn display(&self, format: &str) -> String {
        stdout(&self.tmux(&["display-message", "-p", "-t", "t", format]))
            .trim()
            .to_string()
    }

    /// A `sleep` argument unique to this test (and remembered for clean-up).
    fn marker(&mut self, base: &str) -> String {
        let m = format!("{base}{}", std::process::id());
        self.markers.push(m.clone());
        m
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
        // The pane's process gets SIGHUP; let it finish (bounded) before the fixture goes.
        if let Some(pid) = self.pane_pid {
            let gone = wait_until(Duration::from_secs(5), || {
                proc_state(pid).is_none_or(|s| s == 'Z')
            });
            if !gone {
                if let Some(p) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                }
            }
        }
        if let Some(p) = &self.socket_path {
            let _ = std::fs::remove_file(p);
        }
        for m in &self.markers {
            for pid in sleep_pids(m) {
                if let Some(p) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                }
            }
        }
    }
}

fn sandbox_or_skip() -> bool {
    if userns_available() {
        return true;
    }
    skip("cannot create a sandbox here (user namespaces unavailable for the test user)");
    false
}

/// `corral run -- bash --norc` directly in the pane; returns once the inner shell answers.
///
/// A non-interactive `sh` around corral prints corral's exit code (`SZ:exit:N`) and the pane then
/// stays dead (remain-on-exit) with status 0: tmux 3.3 sometimes marks a pane dead without ever
/// recording its process's status (seen with a plain bash too), so `#{pane_dead_status}` of
/// corral itself cannot be relied on.
fn sandboxed_bash(fx: &Fixture, name: &str) -> Option<Tmux> {
    fx.chown();
    let bin = corral_bin().display().to_string();
    let wrapper = r#""$0" run --yes -- bash --norc; echo "SZ:exit:$?""#;
    let t = Tmux::start(fx, name, &as_user(fx, &["sh", "-c", wrapper, &bin]))?;
    t.line(r#"X=SZ; echo "$X:up:$CORRAL_SANDBOX""#);
    t.wait_for("SZ:up:1", FIRST_STEP);
    Some(t)
}

/// An unsandboxed `bash --norc` as the test user in the pane, to start corral from.
fn outer_bash(fx: &Fixture, name: &str) -> Option<Tmux> {
    fx.chown();
    let t = Tmux::start(fx, name, &as_user(fx, &["bash", "--norc"]))?;
    t.line(r#"X=SZ; echo "$X:up""#);
    t.wait_for("SZ:up", FIRST_STEP);
    Some(t)
}

#[test]
fn window_size_resize_ctrl_c_and_exit_status_reach_the_sandboxed_shell() {
    if !sandbox_or_skip() {
        return;
    }
    let fx = Fixture::new();
    let Some(mut t) = sandboxed_bash(&fx, "size") else {
        return;
    };
    t.line(r#"echo "$X:size1:$(stty size)""#);
    t.wait_for("SZ:size1:30 100", STEP);

    // A resize reaches the terminal (stty reads it) and the shell (SIGWINCH updates COLUMNS).
    let o = t.tmux(&["resize-window", "-t", "t", "-x", "120", "-y", "40"]);
    assert!(o.status.success(), "{}", stderr(&o));
    t.line(r#"echo "$X:size2:$(stty size)""#);
    t.wait_for("SZ:size2:40 120", STEP);
    t.line(r#"echo "$X:cols:$COLUMNS:$LINES""#);
    t.wait_for("SZ:cols:120:40", STEP);

    // Ctrl-C ends the foreground command inside; the shell survives and reports 130.
    let m = t.marker("100.1");
    t.line(&format!("sleep {m}"));
    assert!(
        wait_until(STEP, || !sleep_pids(&m).is_empty()),
        "`sleep {m}` did not start; pane:\n{}",
        t.screen()
    );
    t.key("C-c");
    assert!(
        wait_until(STEP, || sleep_pids(&m).is_empty()),
        "Ctrl-C did not end `sleep {m}`; pane:\n{}",
        t.screen()
    );
    t.line(r#"echo "$X:rc:$?""#);
    t.wait_for("SZ:rc:130", STEP);

    // The shell's exit status is corral's, and then the pane's process ends.
    t.line("exit 5");
    t.wait_for("SZ:exit:5", STEP);
    let mut dead = String::new();
    assert!(
        wait_until(STEP, || {
            dead = t.display("#{pane_dead}");
            dead == "1"
        }),
        "pane_dead = {dead:?}; pane:\n{}",
        t.screen()
    );
}

#[test]
fn tty_inside_names_the_terminal() {
    if !sandbox_or_skip() {
        return;
    }
    let fx = Fixture::new();
    let Some(t) = sandboxed_bash(&fx, "tty") else {
        return;
    };
    // The name must be a path inside the sandbox that is the very terminal on stdin.
    t.line(r#"n=$(tty); [ "$n" -ef /proc/self/fd/0 ] && s=same || s=other; echo "$X:tty:$n:$s""#);
    let screen = t.wait_for("SZ:tty:", STEP);
    let got = screen
        .lines()
        .find_map(|l| l.strip_prefix("SZ:tty:"))
        .unwrap_or_default()
        .to_string();
    // A pts path, or /dev/console when the host's pts is bound there (bubblewrap's trick): the
    // host's devpts is not mounted inside.
    assert!(
        (got.starts_with("/dev/pts/") || got.starts_with("/dev/console:")) && got.ends_with(":same"),
        "`tty` inside printed {got:?} (want a /dev path naming stdin's terminal)"
    );
    eprintln!("tty inside: {got}");
}

/// The terminal flags `echo` / `icanon` as `stty -a` shows them in the outer shell.
fn stty_flags(t: &Tmux, tag: &str) -> String {
    t.line(&format!(
        r#"f=; for w in $(stty -a); do case $w in echo|-echo|icanon|-icanon) f="$f $w";; esac; done; echo "$X:{tag}:$f""#
    ));
    let screen = t.wait_for(&format!("SZ:{tag}: "), STEP);
    screen
        .lines()
        .find_map(|l| l.strip_prefix(&format!("SZ:{tag}: ")))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn the_terminal_is_restored_after_the_command_is_killed() {
    if !sandbox_or_skip() {
        return;
    }
    let fx = Fixture::new();
    let Some(t) = outer_bash(&fx, "termios") else {
        return;
    };
    assert_eq!(stty_flags(&t, "start"), "icanon echo");
    // Control: bash keeps the modes a command that exits normally leaves behind.
    t.line("sh -c 'stty -echo -icanon; exit 3'");
    assert_eq!(stty_flags(&t, "control"), "-icanon -echo");
    t.line("stty sane");

    let bin = corral_bin().display().to_string();
    t.line(&format!(
        "{} run --yes -- sh -c 'stty raw -echo; kill -9 $$'",
        q(&bin)
    ));
    t.line(r#"echo "$X:rc:$?""#);
    t.wait_for("SZ:rc:137", FIRST_STEP);
    assert_eq!(stty_flags(&t, "after"), "icanon echo", "pane:\n{}", t.screen());
}

#[test]
fn ctrl_z_stops_corral_and_fg_resumes_it() {
    if !sandbox_or_skip() {
        return;
    }
    let fx = Fixture::new();
    let Some(mut t) = outer_bash(&fx, "ctrlz") else {
        return;
    };
    let m = t.marker("100.2");
    let bin = corral_bin().display().to_string();
    t.line(&format!("{} run --yes -- sleep {m}", q(&bin)));
    assert!(
        wait_until(FIRST_STEP, || !sleep_pids(&m).is_empty()),
        "`sleep {m}` did not start; pane:\n{}",
        t.screen()
    );
    let pid = sleep_pids(&m)[0];
    t.key("C-z");
    t.wait_for("Stopped", STEP);
    // The outer shell has the terminal back.
    t.line(r#"echo "$X:back""#);
    t.wait_for("SZ:back", STEP);
    assert_eq!(proc_state(pid), Some('T'), "the sandboxed sleep is not stopped");

    t.line("fg");
    assert!(
        wait_until(STEP, || proc_state(pid).is_some_and(|s| s != 'T')),
        "`fg` did not resume the sandboxed sleep; pane:\n{}",
        t.screen()
    );
    t.key("C-c");
    assert!(
        wait_until(STEP, || sleep_pids(&m).is_empty()),
        "Ctrl-C after fg did not end `sleep {m}`; pane:\n{}",
        t.screen()
    );
    t.line(r#"echo "$X:rc:$?""#);
    t.wait_for("SZ:rc:130", STEP);
}

#[test]
fn exiting_a_sandboxed_shell_returns_to_the_outer_prompt() {
    if !sandbox_or_skip() {
        return;
    }
    let fx = Fixture::new();
    let Some(t) = outer_bash(&fx, "leave") else {
        return;
    };
    // `corral run` with no command starts the profile's interactive bash: the usual way in.
    let bin = corral_bin().display().to_string();
    t.line(&format!("{} run --yes -- bash --norc", q(&bin)));
    t.line(r#"X=SZ; echo "$X:inside:$CORRAL_SANDBOX""#);
    t.wait_for("SZ:inside:1", FIRST_STEP);
    t.line("exit 3");
    t.line(r#"echo "$X:rc:$?""#);
    let screen = t.wait_for("SZ:rc:", STEP);
    assert!(
        screen.contains("SZ:rc:3") && !screen.contains("Stopped"),
        "after the sandboxed shell exited, corral should exit 3 and the outer shell get its \
         prompt back; pane:\n{screen}"
    );
}

#[test]
fn ctrl_c_reaches_only_the_terminals_foreground_group_not_a_second_time_via_init() {
    if !sandbox_or_skip() {
        return;
    }
    let fx = Fixture::new();
    // Counts SIGINTs for 3 s after leaving its parent's process group (so the terminal's Ctrl-C,
    // which goes to the foreground group, does not reach it). Argument: a tag for its output.
    fx.ws_file(
        "count_int.pl",
        r#"$| = 1; setpgrp(0, 0); my $n = 0; $SIG{INT} = sub { $n++ }; my $t = "SZ:$ARGV[0]";
print "$t:ready\n"; my $end = time + 3; while (time < $end) { select(undef, undef, undef, 0.05) }
print "$t:ints:$n\n";
"#,
    );
    let Some(t) = outer_bash(&fx, "ctrlc") else {
        return;
    };
    // Control, outside: under a shell in the foreground group, Ctrl-C does not reach it.
    t.line("sh -c 'perl count_int.pl control; :'");
    t.wait_for("SZ:control:ready", STEP);
    t.key("C-c");
    let screen = t.wait_for("SZ:control:ints:", STEP);
    assert!(
        screen.contains("SZ:control:ints:0"),
        "control failed; pane:\n{screen}"
    );
    // Inside, corral and its init are the foreground group. Any SIGINT the command counts was
    // added on the way: init passing on a signal the terminal already delivered, which for a
    // command in the foreground group (the usual case) means every Ctrl-C arrives twice.
    let bin = corral_bin().display().to_string();
    t.line(&format!("{} run --yes -- perl count_int.pl sandbox", q(&bin)));
    t.wait_for("SZ:sandbox:ready", FIRST_STEP);
    t.key("C-c");
    let screen = t.wait_for("SZ:sandbox:ints:", STEP);
    assert!(
        screen.contains("SZ:sandbox:ints:0"),
        "one Ctrl-C reached a command outside the terminal's foreground group; pane:\n{screen}"
    );
}
