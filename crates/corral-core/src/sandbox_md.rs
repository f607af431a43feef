//! SANDBOX.md: what the agent is told about its sandbox, generated from the plan at each launch
//! and imported by the agent's instructions file. Facts only, taken from the plan the sandbox is
//! built from, so it cannot drift from what is enforced.

use crate::agents::AgentSpec;
use crate::plan::{Access, MountOp, Plan};
use crate::profile::NetworkMode;
use std::fmt::Write;

/// The text of SANDBOX.md for `plan` (before the agent's own mounts are added).
/// `credential_outside`: the gateway holds the agent's API credential (else the agent signed in
/// inside and holds it itself).
pub fn render(plan: &Plan, spec: &AgentSpec, credential_outside: bool) -> String {
    let mut s = String::new();
    let home = plan
        .env
        .iter()
        .find(|v| v.name == "HOME")
        .map(|v| v.value.clone())
        .unwrap_or_default();
    let _ = writeln!(s, "# You are running inside a corral sandbox\n");
    let _ = writeln!(
        s,
        "corral is on: every process you start runs in it, with no way to turn it off or widen it from inside. \
         Work within it; when something you need is not allowed, say so to the user (what, and why) and go on with what you can do.\n"
    );
    let _ = writeln!(s, "## Files\n");
    let _ = writeln!(
        s,
        "- Writable: the project `{}`, `/tmp` (private to this sandbox), and `{home}` (a throwaway home: gone when the session ends, except `{home}/{}`, which is kept per project).",
        plan.workspace.display(),
        spec.config_dir
    );
    let read_only: Vec<String> = plan
        .mounts
        .iter()
        .filter_map(|m| match m {
            MountOp::Bind {
                dst,
                access: Access::ReadOnly,
                why,
                ..
            } if why != "system" && why != "device" => Some(format!("`{}`", dst.display())),
            _ => None,
        })
        .collect();
    if !read_only.is_empty() {
        let _ = writeln!(s, "- Read-only tools and toolchains: {}.", read_only.join(", "));
    }
    let _ = writeln!(s, "- `/usr`, `/etc`, `/opt` are read-only. Installing system packages is not possible; install into the project or `{home}` instead (pip `--user`, `npm` local, `cargo install --root`).");
    let protected: Vec<String> = plan
        .mounts
        .iter()
        .filter_map(|m| match m {
            MountOp::Rebind {
                dst,
                access: Access::ReadOnly,
                why,
            } if why == "protect" => Some(format!(
                "`{}`",
                dst.strip_prefix(&plan.workspace).unwrap_or(dst).display()
            )),
            _ => None,
        })
        .collect();
    if !protected.is_empty() {
        let _ = writeln!(
            s,
            "- Read-only in the project (files your user's own tools run or obey; they cannot be created either): {}.",
            protected.join(", ")
        );
    }
    let _ = writeln!(
        s,
        "- Hidden: secrets (ssh and cloud keys, tokens, browser profiles) do not exist here, and files matching {} read as empty. Do not try to find them.",
        plan.deny.iter().map(|d| format!("`{d}`")).collect::<Vec<_>>().join(", ")
    );
    // The agent's own policy files, as its spec lists them (they differ per agent).
    let policy: Vec<String> = spec
        .policy
        .iter()
        .map(|(p, kind)| match kind {
            crate::plan::FileKind::Dir => format!("`{p}/`"),
            _ => format!("`{p}`"),
        })
        .collect();
    if policy.is_empty() {
        let _ = writeln!(s, "- The project's agent settings are read-only.\n");
    } else {
        let _ = writeln!(
            s,
            "- Your own settings and policy files in `{home}/{}` ({}) and the project's agent settings are read-only.\n",
            spec.config_dir,
            policy.join(", ")
        );
    }

    let _ = writeln!(s, "## Network\n");
    match plan.network.mode {
        NetworkMode::None => {
            let _ = writeln!(s, "- No network: only this sandbox's own loopback. Downloads and package installs from the internet fail.");
        }
        NetworkMode::Host => {
            let _ = writeln!(s, "- The host's network is shared (no filtering).");
        }
        NetworkMode::Proxy => {
            let allow = if plan.network.allow.is_empty() {
                "none".to_string()
            } else {
                plan.network
                    .allow
                    .iter()
                    .map(|h| format!("`{h}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                s,
                "- Only through corral's proxy (already configured: `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`), and only to these hosts: {allow}. Other hosts are refused with HTTP 403 and an `X-Corral-Reason` header; retrying will not help.\n\
                 - DNS does not resolve anything here (every query is refused): tools must use the proxy, which resolves names itself."
            );
            if plan.network.allow_cidrs.is_empty() {
                let _ = writeln!(
                    s,
                    "- Local addresses (your user's network, `localhost` services outside) are never reachable."
                );
            } else {
                let _ = writeln!(
                    s,
                    "- Local addresses are reachable through the proxy only in {}; others (your user's network, `localhost` services outside) are not.",
                    plan.network.allow_cidrs.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
                );
            }
        }
    }
    if credential_outside {
        let _ = writeln!(
            s,
            "- Your API credential is not in this sandbox: requests to your API go through corral's gateway, which adds it. Do not look for keys."
        );
    } else if spec.api.is_some() {
        let _ = writeln!(
            s,
            "- Your API credential is held inside this sandbox (in `{home}/{}`), because the user has not given it to corral: every program here could read it. Do not copy it anywhere.",
            spec.config_dir
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "## Tools and limits\n");
    let path = plan
        .env
        .iter()
        .find(|v| v.name == "PATH")
        .map(|v| v.value.clone())
        .unwrap_or_default();
    let _ = writeln!(s, "- PATH: `{path}`.");
    let mut limits = Vec::new();
    if let Some(m) = plan.limits.memory_mb {
        limits.push(format!("memory {m} MiB"));
    }
    limits.push(format!("{} processes", plan.limits.pids));
    if let Some(w) = plan.limits.wall_seconds {
        limits.push(format!("{w} s wall clock"));
    }
    let _ = writeln!(s, "- Limits: {}.", limits.join(", "));
    let _ = writeln!(
        s,
        "- git works on the project with your user's name and email; pushing needs credentials this sandbox does not have: leave pushing to the user.\n"
    );
    let _ = writeln!(s, "## Asking for more\n");
    let _ = writeln!(
        s,
        "You cannot change this sandbox. If the task needs a host, a path or a tool that is not here, tell the user exactly what and why; they can add it to their corral configuration (`~/.config/corral/config.toml`, or the project's `.corral.toml` followed by `corral trust`) and restart the session. {}",
        if plan.audit_exec {
            "Every program you start and every connection is recorded in the session's audit log."
        } else {
            "Every connection is recorded in the session's audit log."
        }
    );
    s
}
