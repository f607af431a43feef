//! A cgroup through the systemd user manager, where the user has none delegated: `corral run`
//! runs itself again in a transient scope (`systemd-run --user --scope -p Delegate=yes`), and the
//! corral in there writes the plan's limits on its scope (`systemctl --user set-property`), whose
//! cgroup then serves as the session's (`corral_sys::cgroup::SessionCgroup::systemd_scope`).
//!
//! When: not root; a user manager runs (`$XDG_RUNTIME_DIR/systemd/private`); `systemd-run` is on
//! PATH; and no session cgroup could be made otherwise (`CORRAL_SCOPE=always` skips that last
//! test, `CORRAL_SCOPE=never` turns all of this off). If `systemd-run` fails before starting the
//! inner corral (no user bus, a policy), this corral says so and goes on without a scope: the
//! inner one marks that it started (a file named by `CORRAL_SYSTEMD_SCOPE_READY`), so a command's
//! own failure is never mistaken for systemd-run's.
//!
//! The scope holds the supervisor too (its proxy, its threads): the limits cover it with the
//! sandbox, a few MiB and a few dozen threads. Not exercised against a real systemd in CI (the
//! CI machines have none): the tests drive fake `systemd-run` and `systemctl` programs.

use corral_sys::cgroup::SYSTEMD_SCOPE_ENV;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the inner corral marks that it started.
const READY_ENV: &str = "CORRAL_SYSTEMD_SCOPE_READY";
/// `auto` (default), `always` or `never`.
const MODE_ENV: &str = "CORRAL_SCOPE";

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// `systemd-run`, when this launch should go through a transient scope.
fn wanted() -> Option<PathBuf> {
    if std::env::var_os(SYSTEMD_SCOPE_ENV).is_some() || rustix::process::geteuid().is_root() {
        return None;
    }
    let mode = std::env::var(MODE_ENV).unwrap_or_default();
    if mode == "never" {
        return None;
    }
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from)?;
    if !runtime.join("systemd/private").exists() {
        return None;
    }
    let systemd_run = on_path("systemd-run")?;
    if mode != "always" && corral_sys::cgroup::try_session_cgroup().0 != corral_core::layer::Achieved::None {
        return None;
    }
    Some(systemd_run)
}

/// The inner corral: says it started (see the module docs).
pub fn mark_started() {
    if let Some(path) = std::env::var_os(READY_ENV) {
        // A fresh name the outer corral chose: never an existing file.
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path);
    }
}

/// Runs this very command again in a transient scope when [`wanted`], and waits for it: its exit
/// status, or None to go on here (not wanted, or systemd-run could not start it).
pub fn rerun_in_scope() -> anyhow::Result<Option<i32>> {
    let Some(systemd_run) = wanted() else {
        return Ok(None);
    };
    let id = corral_sys::session::random_id();
    let unit = format!("corral-{id}.scope");
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_default();
    let ready = runtime.join(format!("corral-scope-{id}"));
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(&systemd_run);
    cmd.args([
        "--user",
        "--scope",
        "--quiet",
        "--collect",
        "--property=Delegate=yes",
    ])
    .arg(format!("--unit={unit}"))
    .arg("--")
    .arg(&exe)
    .args(std::env::args_os().skip(1))
    .env(SYSTEMD_SCOPE_ENV, &unit)
    .env(READY_ENV, &ready);
    // Ctrl-C reaches the inner corral from the terminal (one process group); a signal sent to
    // this one is passed on.
    let signals = [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ];
    let flags: Vec<_> = signals
        .iter()
        .map(|s| {
            let f = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            signal_hook::flag::register(*s, f.clone()).map(|_| (*s, f))
        })
        .collect::<Result<_, _>>()?;
    let mut child = cmd
        .spawn()
        .map_err(|e| anyhow::anyhow!("starting {}: {e}", systemd_run.display()))?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        for (sig, flag) in &flags {
            if flag.swap(false, std::sync::atomic::Ordering::Relaxed) && *sig != signal_hook::consts::SIGINT {
                let _ = corral_sys::ll::kill(i32::try_from(child.id()).unwrap_or(0), *sig);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let started = std::fs::remove_file(&ready).is_ok();
    if !started {
        crate::say!(
            "corral: warning: systemd-run could not start a scope ({status}); going on without one: the memory and CPU limits are not enforced (fix: `sudo corral setup`, or CORRAL_SCOPE=never to skip this)"
        );
        return Ok(None);
    }
    Ok(Some(status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
    })))
}

/// In the scope: writes the plan's limits on it (memory without swap, processes, CPU rate). On
/// failure the session's cgroup layer says what the scope holds.
pub fn set_limits(limits: &corral_core::plan::LimitsPlan) {
    let Ok(unit) = std::env::var(SYSTEMD_SCOPE_ENV) else {
        return;
    };
    let mut props = Vec::new();
    if let Some(mb) = limits.memory_mb {
        props.push(format!("MemoryMax={}", mb.saturating_mul(1024 * 1024)));
        props.push("MemorySwapMax=0".to_string());
    }
    props.push(format!("TasksMax={}", limits.pids));
    if let Some(cpus) = limits.cpus {
        // A rate such as 1.5 CPUs: 150%.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let pct = (cpus.clamp(0.01, 4096.0) * 100.0).round() as u64;
        props.push(format!("CPUQuota={pct}%"));
    }
    let out = Command::new("systemctl")
        .args(["--user", "set-property", "--runtime", &unit])
        .args(&props)
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => crate::say!(
            "corral: warning: systemctl --user set-property {unit}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => crate::say!("corral: warning: systemctl: {e}"),
    }
}
