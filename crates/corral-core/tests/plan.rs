//! T0: the pure planner. Every shipped profile's plan is pinned by a snapshot (human and JSON), and
//! each policy decision is compared as a whole value.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use corral_core::plan::{
    self, Access, FileKind, HostFacts, Invocation, MountOp, PathFact, Placeholder, PlanError,
};
use corral_core::profile::{self, Profile, ProfileLayer};
use pretty_assertions::assert_eq;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const HOME: &str = "/home/alice";
const WS: &str = "/home/alice/src/app";

fn inv() -> Invocation {
    let mut env = BTreeMap::new();
    for (k, v) in [
        ("TERM", "xterm-256color"),
        ("LANG", "en_US.UTF-8"),
        ("AWS_SECRET_ACCESS_KEY", "never-shown"),
        ("PATH", "/host/path"),
        ("LC_ALL", "C"),
    ] {
        env.insert(k.to_string(), v.to_string());
    }
    Invocation {
        cwd: PathBuf::from(format!("{WS}/sub")),
        home: PathBuf::from(HOME),
        user: "alice".into(),
        uid: 1000,
        gid: 1000,
        host_env: env,
        command: None,
        shell: false,
        env_files: Vec::new(),
        extra_env: Vec::new(),
        env_flags: Vec::new(),
        agent: None,
    }
}

fn dir(p: &str) -> (PathBuf, PathFact) {
    (
        PathBuf::from(p),
        PathFact {
            canonical: PathBuf::from(p),
            kind: FileKind::Dir,
            link: None,
        },
    )
}
fn file(p: &str) -> (PathBuf, PathFact) {
    (
        PathBuf::from(p),
        PathFact {
            canonical: PathBuf::from(p),
            kind: FileKind::File,
            link: None,
        },
    )
}
fn link(p: &str, target: &str, canonical: &str) -> (PathBuf, PathFact) {
    (
        PathBuf::from(p),
        PathFact {
            canonical: canonical.into(),
            kind: FileKind::Dir,
            link: Some(target.into()),
        },
    )
}
fn node(p: &str) -> (PathBuf, PathFact) {
    (
        PathBuf::from(p),
        PathFact {
            canonical: PathBuf::from(p),
            kind: FileKind::Other,
            link: None,
        },
    )
}

/// A Debian-like host with merged /usr, a workspace with .git, a .env, and ~/.cargo holding a token.
fn facts() -> HostFacts {
    let mut f = HostFacts::default();
    f.paths.extend([
        dir("/usr"),
        dir("/etc"),
        link("/bin", "usr/bin", "/usr/bin"),
        link("/lib", "usr/lib", "/usr/lib"),
        node("/dev/null"),
        node("/dev/zero"),
        node("/dev/full"),
        node("/dev/random"),
        node("/dev/urandom"),
        node("/dev/tty"),
        file("/proc/kcore"),
        dir(HOME),
        dir(WS),
        dir(&format!("{WS}/.git")),
        dir(&format!("{WS}/.git/hooks")),
        file(&format!("{WS}/.git/config")),
        dir(&format!("{HOME}/.cargo")),
        file(&format!("{HOME}/.cargo/credentials.toml")),
        dir(&format!("{HOME}/.ssh")),
    ]);
    f.deny_matches = vec![(PathBuf::from(format!("{WS}/.env")), FileKind::File)];
    f
}

fn default_layer() -> ProfileLayer {
    ProfileLayer::parse("builtin:default", profile::builtin("default").unwrap()).unwrap()
}

fn default_profile() -> Profile {
    profile::resolve("default", &[default_layer()]).unwrap()
}

fn with(extra: &str) -> Profile {
    let over = ProfileLayer::parse("test.toml", extra).unwrap();
    profile::resolve("test", &[default_layer(), over]).unwrap()
}

/// What the binary finds for an agent with an API key on the host.
fn agent_input(spec: &corral_core::agents::AgentSpec) -> corral_core::agents::AgentInput {
    let data = format!("{HOME}/.local/share/corral");
    corral_core::agents::AgentInput {
        project_dir: format!("{data}/projects/0123456789abcdef/{}", spec.name).into(),
        shared_dir: format!("{data}/agents/{}", spec.name).into(),
        user_instructions: "Prefer small commits.\n".into(),
        git_identity: Some(("Alice Example".into(), "alice@example.com".into())),
        credential: corral_core::agents::CredentialKind::ApiKey,
        credential_source: spec.api.map(|a| corral_core::agents::CredentialSource::Env {
            name: a.key_env.to_string(),
        }),
        corral_exe: Some("/usr/local/bin/corral".into()),
        upstream: spec.api.map(|a| a.upstream.to_string()).unwrap_or_default(),
    }
}

#[test]
fn every_shipped_profile_plan_is_pinned() {
    for (name, text) in profile::BUILTIN {
        let mut layers = vec![default_layer()];
        if name != "default" {
            layers.push(ProfileLayer::parse(name, text).unwrap());
        }
        let p = profile::resolve(name, &layers).unwrap();
        let mut inv = inv();
        if let Some(spec) = corral_core::agents::spec(name) {
            inv.agent = Some(agent_input(spec));
        }
        let plan = plan::build(&p, &inv, Path::new(WS), &facts()).unwrap();
        insta::assert_snapshot!(format!("{name}_dry_run"), corral_core::render::render_plan(&plan));
        insta::assert_json_snapshot!(format!("{name}_plan_json"), plan);
    }
}

#[test]
fn host_env_values_never_reach_the_rendered_plan() {
    let plan = plan::build(&default_profile(), &inv(), Path::new(WS), &facts()).unwrap();
    let text = corral_core::render::render_plan(&plan);
    assert!(!text.contains("never-shown") && !text.contains("xterm-256color"));
    assert!(text.contains("[-] AWS_SECRET_ACCESS_KEY"));
}

#[test]
fn secret_under_a_bound_parent_is_masked() {
    let plan = plan::build(&default_profile(), &inv(), Path::new(WS), &facts()).unwrap();
    let masks: Vec<&MountOp> = plan
        .mounts
        .iter()
        .filter(|m| matches!(m, MountOp::Mask { why, .. } if why != "proc"))
        .collect();
    assert_eq!(
        masks,
        vec![
            &MountOp::Mask {
                dst: format!("{HOME}/.cargo/credentials.toml").into(),
                kind: FileKind::File,
                why: "secret".into()
            },
            &MountOp::Mask {
                dst: format!("{WS}/.env").into(),
                kind: FileKind::File,
                why: "deny".into()
            },
        ]
    );
}

#[test]
fn binding_a_secret_directory_is_refused_unless_exposed() {
    let p = with("[filesystem]\nread_only = [\"~/.ssh\"]\n");
    assert_eq!(
        plan::build(&p, &inv(), Path::new(WS), &facts()).unwrap_err(),
        PlanError::SecretBound {
            key: "filesystem.read_only".into(),
            path: format!("{HOME}/.ssh").into(),
            secret: format!("{HOME}/.ssh").into()
        }
    );
    let p = with("[filesystem]\nread_only = [\"~/.ssh\"]\nexpose_secrets = [\"~/.ssh\"]\n");
    let plan = plan::build(&p, &inv(), Path::new(WS), &facts()).unwrap();
    assert_eq!(
        plan.warnings,
        vec![format!(
            "secret path {HOME}/.ssh is exposed by filesystem.expose_secrets"
        )]
    );
}

#[test]
fn home_and_root_workspaces_are_refused() {
    for ws in [HOME, "/", "/home"] {
        assert_eq!(
            plan::build(&default_profile(), &inv(), Path::new(ws), &facts()).unwrap_err(),
            PlanError::HomeWorkspace(ws.into())
        );
    }
}

#[test]
fn bad_and_missing_paths_are_named() {
    let p = with("[filesystem]\nread_write = [\"rel/dir\"]\n");
    assert_eq!(
        plan::build(&p, &inv(), Path::new(WS), &facts()).unwrap_err().to_string(),
        "filesystem.read_write: \"rel/dir\" must be absolute (or start with `~` or `{workspace}`) and contain no `..`"
    );
    let p = with("[filesystem]\nread_write = [\"~/../bob\"]\n");
    assert!(matches!(
        plan::build(&p, &inv(), Path::new(WS), &facts()),
        Err(PlanError::BadPath { .. })
    ));
    let p = with("[filesystem]\nread_write = [\"~/data\"]\n");
    assert_eq!(
        plan::build(&p, &inv(), Path::new(WS), &facts()).unwrap_err(),
        PlanError::Missing {
            key: "filesystem.read_write".into(),
            path: format!("{HOME}/data").into()
        }
    );
}

#[test]
fn protection_pins_ancestors_and_plans_placeholders() {
    let p = with(
        "[filesystem]\nprotect = [\".git/hooks/\", \".git/config\", \".envrc\", \".claude/settings.json\"]\n",
    );
    let plan = plan::build(&p, &inv(), Path::new(WS), &facts()).unwrap();
    let rebinds: Vec<(String, Access, String)> = plan
        .mounts
        .iter()
        .filter_map(|m| match m {
            MountOp::Rebind { dst, access, why } if why != "proc" => {
                Some((dst.display().to_string(), *access, why.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        rebinds,
        vec![
            (format!("{WS}/.claude"), Access::ReadOnly, "protect".into()),
            (format!("{WS}/.envrc"), Access::ReadOnly, "protect".into()),
            (format!("{WS}/.git"), Access::ReadWrite, "pin".into()),
            (format!("{WS}/.git/config"), Access::ReadOnly, "protect".into()),
            (format!("{WS}/.git/hooks"), Access::ReadOnly, "protect".into()),
        ]
    );
    assert_eq!(
        plan.placeholders,
        vec![
            Placeholder {
                path: format!("{WS}/.claude").into(),
                kind: FileKind::Dir
            },
            Placeholder {
                path: format!("{WS}/.envrc").into(),
                kind: FileKind::File
            },
        ]
    );
}

#[test]
fn a_symlinked_protected_path_fails_closed() {
    let mut f = facts();
    f.paths.insert(
        format!("{WS}/.git/hooks").into(),
        PathFact {
            canonical: format!("{WS}/scripts/hooks").into(),
            kind: FileKind::Dir,
            link: Some("../scripts/hooks".into()),
        },
    );
    assert_eq!(
        plan::build(&default_profile(), &inv(), Path::new(WS), &f).unwrap_err(),
        PlanError::ProtectedSymlink {
            path: format!("{WS}/.git/hooks").into(),
            target: "../scripts/hooks".into()
        }
    );
}

#[test]
fn binds_under_corral_tmpfs_create_mount_points_and_binds_elsewhere_do_not() {
    let mut f = facts();
    f.paths.extend([dir("/opt"), dir("/opt/proj")]);
    let plan = plan::build(&default_profile(), &inv(), Path::new("/opt/proj"), &f).unwrap();
    let ws_bind = plan.mounts.iter().find_map(|m| match m {
        MountOp::Bind { dst, create, .. } if dst == Path::new("/opt/proj") => Some(*create),
        _ => None,
    });
    assert_eq!(
        ws_bind,
        Some(false),
        "a workspace under the read-only /opt bind must not create its mount point"
    );
    let plan = plan::build(&default_profile(), &inv(), Path::new(WS), &facts()).unwrap();
    let ws_bind = plan.mounts.iter().find_map(|m| match m {
        MountOp::Bind { dst, create, .. } if dst == Path::new(WS) => Some(*create),
        _ => None,
    });
    assert_eq!(
        ws_bind,
        Some(true),
        "a workspace under the home tmpfs gets its mount point created"
    );
}

#[test]
fn explicit_command_and_shell() {
    let mut i = inv();
    i.command = Some(vec!["make".into(), "test".into()]);
    assert_eq!(
        plan::build(&default_profile(), &i, Path::new(WS), &facts())
            .unwrap()
            .command,
        ["make", "test"]
    );
    let mut i = inv();
    i.shell = true;
    assert_eq!(
        plan::build(&default_profile(), &i, Path::new(WS), &facts())
            .unwrap()
            .command,
        ["bash"]
    );
}

#[test]
fn cwd_outside_the_view_falls_back_to_the_workspace() {
    let mut i = inv();
    i.cwd = "/var/tmp".into();
    assert_eq!(
        plan::build(&default_profile(), &i, Path::new(WS), &facts())
            .unwrap()
            .cwd,
        Path::new(WS)
    );
}

#[test]
fn env_sources_apply_in_order_and_secrets_are_withheld() {
    use corral_core::envaudit::{AuditSource, Decision};
    use corral_core::plan::EnvFileInput;
    let mut i = inv();
    i.host_env.insert(
        "GITHUB_TOKEN".into(),
        format!("ghp_{}", "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"),
    );
    i.host_env.insert("MY_TOOL_HOME".into(), "/opt/tool".into());
    i.extra_env = vec!["MY_TOOL_HOME".into(), "GITHUB_TOKEN".into()];
    i.env_files = vec![EnvFileInput {
        source: AuditSource::GlobalFile,
        origin: "~/.config/corral/env".into(),
        entries: vec![("LANG".into(), "C.UTF-8".into()), ("EDITOR".into(), "vim".into())],
    }];
    i.env_flags = vec!["EDITOR=nano".into(), "HOME=/tmp/evil".into()];
    let p = with("[env]\nset = { RUST_LOG = \"debug\" }\n");
    let plan = plan::build(&p, &i, Path::new(WS), &facts()).unwrap();
    let got: Vec<(String, AuditSource, Decision)> = plan
        .env_audit
        .entries
        .iter()
        .map(|e| (e.name.clone(), e.source, e.decision))
        .collect();
    let want: Vec<(String, AuditSource, Decision)> = [
        ("LC_ALL", AuditSource::Host, Decision::Pass),
        ("TERM", AuditSource::Host, Decision::Pass),
        ("MY_TOOL_HOME", AuditSource::ExtraEnv, Decision::Pass),
        ("GITHUB_TOKEN", AuditSource::ExtraEnv, Decision::Withheld),
        ("LANG", AuditSource::GlobalFile, Decision::Pass),
        ("RUST_LOG", AuditSource::ProfileSet, Decision::Pass),
        ("EDITOR", AuditSource::Flag, Decision::Pass),
        ("HOME", AuditSource::Corral, Decision::Pass),
        ("USER", AuditSource::Corral, Decision::Pass),
        ("LOGNAME", AuditSource::Corral, Decision::Pass),
        ("SHELL", AuditSource::Corral, Decision::Pass),
        ("TMPDIR", AuditSource::Corral, Decision::Pass),
        ("PATH", AuditSource::Corral, Decision::Pass),
        ("CORRAL_SANDBOX", AuditSource::Corral, Decision::Pass),
    ]
    .into_iter()
    .map(|(n, s, d)| (n.to_string(), s, d))
    .collect();
    assert_eq!(got, want);
    assert!(
        plan.env.iter().all(|v| v.name != "GITHUB_TOKEN"),
        "a flagged value is withheld"
    );
    assert_eq!(
        plan.env
            .iter()
            .find(|v| v.name == "HOME")
            .map(|v| v.value.as_str()),
        Some(HOME),
        "corral's own win"
    );
    assert_eq!(plan.env_left_out, ["AWS_SECRET_ACCESS_KEY", "PATH"]);
    let redacted = serde_json::to_string(&plan.redacted()).unwrap();
    let token = format!("ghp_{}", "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A");
    assert!(
        !redacted.contains(&token) && !redacted.contains("\"nano\"") && !redacted.contains("/opt/tool"),
        "{redacted}"
    );
}

#[test]
fn why_names_the_rule_that_decides() {
    use corral_core::why::why;
    let plan = plan::build(&default_profile(), &inv(), Path::new(WS), &facts()).unwrap();
    let home = Path::new(HOME);
    let first = |t: &str| why(&plan, t, home).remove(0);
    assert_eq!(
        first(&format!("{WS}/.env")),
        format!(
            "{WS}/.env: hidden — {WS}/.env is masked (empty, read-only) because it matches filesystem.deny"
        )
    );
    assert_eq!(
        first("~/.ssh/id_ed25519"),
        format!("{HOME}/.ssh/id_ed25519: writable, private — {HOME} is a tmpfs of the sandbox (1024 MiB), gone when it ends; nothing of the host is there")
    );
    assert_eq!(
        why(&plan, "~/.ssh/id_ed25519", home).last().unwrap(),
        &format!("{HOME}/.ssh is a built-in secret path (crates/corral-core/src/secrets.rs): the host's copy is never visible in the sandbox")
    );
    assert_eq!(
        first("~/.cargo/credentials.toml"),
        format!("{HOME}/.cargo/credentials.toml: hidden — {HOME}/.cargo/credentials.toml is masked (empty, read-only) because it is a built-in secret path")
    );
    assert_eq!(
        first(&format!("{WS}/.git/hooks/pre-commit")),
        format!("{WS}/.git/hooks/pre-commit: read-only — {WS}/.git/hooks is in filesystem.protect (your tools run it later, outside)")
    );
    assert_eq!(
        why(&plan, &format!("{WS}/src/main.rs"), home),
        vec![
            format!("{WS}/src/main.rs: writable — bind of {WS} at {WS} [workspace]"),
            format!("landlock: everything beneath {WS}"),
        ]
    );
    assert_eq!(
        first("/usr/bin/ls"),
        "/usr/bin/ls: read-only — bind of /usr at /usr [system]"
    );
    assert_eq!(first("/var/lib/tailscale/x"), "/var/lib/tailscale/x: absent — the sandbox's root holds only the mounts of the plan, and none covers it");
    assert_eq!(
        why(&plan, "example.com:443", home),
        vec!["example.com:443: denied — network.mode = \"none\": the sandbox has its own network namespace with only lo; no packet can leave it"]
    );
    assert_eq!(
        why(&plan, "127.0.0.1:8080", home),
        vec!["127.0.0.1:8080: allowed — the sandbox's own loopback (not the host's: its own network namespace), any port (network.loopback = \"open\")"]
    );
    let ports = plan::build(
        &with("[network]\nloopback = \"ports\"\nlocal_ports = [5432]\n"),
        &inv(),
        Path::new(WS),
        &facts(),
    )
    .unwrap();
    assert_eq!(
        why(&ports, "127.0.0.1:8080", home),
        vec!["127.0.0.1:8080: denied — the sandbox's own loopback (not the host's), and with network.loopback = \"ports\" Landlock allows TCP connect only to network.local_ports ([5432])"]
    );
    assert_eq!(
        why(&ports, "localhost:5432", home),
        vec!["localhost:5432: allowed — the sandbox's own loopback, port listed in network.local_ports (or the proxy's)"]
    );
}

#[test]
fn proxy_mode_points_the_sandbox_at_the_proxy_and_the_dns_sink() {
    let p = with("[network]\nmode = \"proxy\"\nallow = [\"*.github.com\"]\nallow_cidrs = [\"10.1.0.0/16\"]\nmax_egress_mb = 50\n");
    let plan = plan::build(&p, &inv(), Path::new(WS), &facts()).unwrap();
    assert_eq!(
        plan.network,
        plan::NetworkPlan {
            mode: profile::NetworkMode::Proxy,
            local_ports: vec![],
            allow: vec!["*.github.com".into()],
            deny: vec![],
            allow_cidrs: vec!["10.1.0.0/16".into()],
            max_egress_mb: Some(50),
            gateway: None,
        }
    );
    // The sandbox's own loopback is open (network.loopback = "open", the default): its own
    // namespace is the wall.
    assert!(!plan.landlock.restrict_tcp_connect);
    // With "ports", Landlock lets TCP connect reach the proxy and the sink's TCP side, nothing else.
    let strict = plan::build(
        &with("[network]\nmode = \"proxy\"\nloopback = \"ports\"\n"),
        &inv(),
        Path::new(WS),
        &facts(),
    )
    .unwrap();
    assert!(strict.landlock.restrict_tcp_connect);
    assert_eq!(
        strict.landlock.connect_ports,
        vec![plan::DNS_PORT, plan::PROXY_PORT]
    );
    let env: BTreeMap<&str, &str> = plan
        .env
        .iter()
        .map(|v| (v.name.as_str(), v.value.as_str()))
        .collect();
    for (k, v) in [
        ("HTTP_PROXY", "http://127.0.0.1:3128"),
        ("https_proxy", "http://127.0.0.1:3128"),
        ("ALL_PROXY", "socks5h://127.0.0.1:3128"),
        ("NO_PROXY", "localhost,127.0.0.1,::1"),
        ("NODE_USE_ENV_PROXY", "1"),
        ("CARGO_HTTP_PROXY", "http://127.0.0.1:3128"),
    ] {
        assert_eq!(env.get(k), Some(&v), "{k}");
    }
    assert!(env["JAVA_TOOL_OPTIONS"].contains("-Dhttps.proxyPort=3128"));
    let resolv: Vec<&MountOp> = plan
        .mounts
        .iter()
        .filter(|m| matches!(m, MountOp::File { .. }))
        .collect();
    assert_eq!(
        resolv,
        [&MountOp::File {
            dst: "/etc/resolv.conf".into(),
            contents: plan::RESOLV_CONF.into(),
            why: "resolv.conf".into(),
        }]
    );
    // It comes after the /etc bind (or it would be covered) and before the root goes read-only.
    let at = |pred: &dyn Fn(&MountOp) -> bool| plan.mounts.iter().position(pred).unwrap();
    let etc = at(&|m| matches!(m, MountOp::Bind { dst, .. } if dst == Path::new("/etc")));
    let file = at(&|m| matches!(m, MountOp::File { .. }));
    let ro = at(&|m| matches!(m, MountOp::ReadOnly { dst } if dst == Path::new("/")));
    assert!(etc < file && file < ro, "{etc} {file} {ro}");
}

#[test]
fn proxy_variables_cannot_be_overridden_by_profiles() {
    let p =
        with("[network]\nmode = \"proxy\"\n[env]\nset = { HTTPS_PROXY = \"http://evil.example:8080\" }\n");
    let plan = plan::build(&p, &inv(), Path::new(WS), &facts()).unwrap();
    let v: Vec<&str> = plan
        .env
        .iter()
        .filter(|v| v.name == "HTTPS_PROXY")
        .map(|v| v.value.as_str())
        .collect();
    assert_eq!(v, ["http://127.0.0.1:3128"]);
}

#[test]
fn host_mode_is_best_effort_netns_with_a_warning_and_no_connect_rules() {
    use corral_core::layer::{Layer, Level};
    let p = with("[network]\nmode = \"host\"\n[layers]\nnetns = \"required\"\n");
    let plan = plan::build(&p, &inv(), Path::new(WS), &facts()).unwrap();
    assert_eq!(plan.layers.get(&Layer::Netns), Some(&Level::BestEffort));
    assert!(!plan.landlock.restrict_tcp_connect);
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("shares this machine's network")),
        "{:?}",
        plan.warnings
    );
    assert!(!plan.env.iter().any(|v| v.name == "HTTP_PROXY"));
    assert!(!plan.mounts.iter().any(|m| matches!(m, MountOp::File { .. })));
}

#[test]
fn host_mode_never_points_an_agent_at_the_gateway() {
    // The gateway's 127.0.0.1 port would be the host's in host mode.
    let claude = ProfileLayer::parse("builtin:claude", profile::builtin("claude").unwrap()).unwrap();
    let over = ProfileLayer::parse("t.toml", "[network]\nmode = \"host\"\n").unwrap();
    let p = profile::resolve("claude", &[default_layer(), claude, over]).unwrap();
    let mut inv = inv();
    inv.agent = Some(agent_input(corral_core::agents::spec("claude").unwrap()));
    let plan = plan::build(&p, &inv, Path::new(WS), &facts()).unwrap();
    assert_eq!(plan.network.gateway, None);
    assert!(!plan.env.iter().any(|v| v.name == "ANTHROPIC_BASE_URL"));
    assert!(
        plan.warnings.iter().any(|w| w.contains("gateway is not used")),
        "{:?}",
        plan.warnings
    );
}

/// SANDBOX.md, as the agent's plan generates it.
fn sandbox_md(plan: &plan::Plan) -> String {
    plan.mounts
        .iter()
        .find_map(|m| match m {
            MountOp::Generated { files, .. } => files
                .iter()
                .find(|(name, _)| name == "SANDBOX.md")
                .map(|(_, text)| text.clone()),
            _ => None,
        })
        .expect("the agent's plan generates SANDBOX.md")
}

#[test]
fn sandbox_md_tells_the_agent_what_this_plan_does_and_nothing_else() {
    let name = "codex";
    let spec = corral_core::agents::spec(name).unwrap();
    let layers = |extra: &str| {
        vec![
            default_layer(),
            ProfileLayer::parse(name, profile::builtin(name).unwrap()).unwrap(),
            ProfileLayer::parse("test.toml", extra).unwrap(),
        ]
    };
    let mut inv = inv();
    inv.agent = Some(agent_input(spec));
    let build = |extra: &str| {
        let p = profile::resolve(name, &layers(extra)).unwrap();
        plan::build(&p, &inv, Path::new(WS), &facts()).unwrap()
    };
    let plain = sandbox_md(&build(""));
    // Codex's own policy file, not Claude's.
    assert!(plain.contains("(`config.toml`)"), "{plain}");
    assert!(!plain.contains("settings*.json"), "{plain}");
    assert!(plain.contains(
        "Local addresses (your user's network, `localhost` services outside) are never reachable."
    ));
    assert!(plain.contains("Every program you start and every connection is recorded"));
    let opened = sandbox_md(&build(
        "[network]\nallow_cidrs = [\"10.1.0.0/16\"]\n[sandbox]\naudit_exec = false\n",
    ));
    assert!(
        opened.contains("reachable through the proxy only in `10.1.0.0/16`"),
        "{opened}"
    );
    assert!(!opened.contains("are never reachable"), "{opened}");
    assert!(!opened.contains("Every program you start"), "{opened}");
    assert!(opened.contains("Every connection is recorded"), "{opened}");
}
