//! The sandbox starts, runs the command with the right identity and environment, and reports exit
//! codes like env(1): the command's own, 128+N for a signal, 125/126/127 for corral's failures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

#[test]
fn runs_as_the_users_own_uid_with_hostname_corral() {
    let fx = Fixture::new();
    let o = fx.sh("id -u; id -g; hostname; pwd");
    if !o.status.success() && stderr(&o).contains("clone(") {
        return skip(&format!("cannot create namespaces here: {}", stderr(&o)));
    }
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("{}\n{}\ncorral\n{}\n", fx.ids.uid, fx.ids.gid, fx.ws.display())
    );
}

#[test]
fn exit_codes_follow_env1() {
    let fx = Fixture::new();
    assert_code(&fx.sh("exit 7"), 7);
    assert_code(&fx.sh("kill -TERM $$"), 128 + 15);
    fx.chown();
    let o = fx
        .corral()
        .args(["run", "--yes", "--", "no-such-command-xyz"])
        .output()
        .unwrap();
    assert_code(&o, 127);
    assert!(
        stderr(&o).contains("command not found: \"no-such-command-xyz\" (looked in "),
        "{}",
        stderr(&o)
    );
    let o = fx
        .corral()
        .args(["run", "--yes", "--", "/etc/hostname"])
        .output()
        .unwrap();
    assert_code(&o, 126);
}

#[test]
fn environment_is_cleared_to_the_allowlist() {
    let fx = Fixture::new();
    fx.chown();
    let o = fx
        .corral()
        .env(
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )
        .env("TERM", "xterm-256color")
        .env("LC_TIME", "C")
        .args(["run", "--yes", "--", "env"])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let mut names: Vec<String> = stdout(&o)
        .lines()
        .filter_map(|l| l.split('=').next().map(String::from))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "CORRAL_LANDLOCK",
            "CORRAL_SANDBOX",
            "HOME",
            "LANG",
            "LC_TIME",
            "LOGNAME",
            "PATH",
            "SHELL",
            "TERM",
            "TMPDIR",
            "USER"
        ]
    );
}

#[test]
fn started_as_root_the_command_runs_as_nobody_with_nothing() {
    if !rustix::process::geteuid().is_root() {
        // Not a kernel feature: only a root test run can check what corral does when run as root
        // (CI runs as root, and CORRAL_TEST_REQUIRE=1 turns this skip into a failure there).
        return skip("this test needs the test process to be root");
    }
    let fx = Fixture::new();
    fx.chown();
    let o = std::process::Command::new(corral_bin())
        .current_dir(&fx.ws)
        .env_clear()
        .env("HOME", "/root")
        .env("PATH", "/usr/bin:/bin")
        .args([
            "run",
            "--yes",
            "--",
            "sh",
            "-c",
            "id -u; id -g; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        "65534\n65534\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nNoNewPrivs:\t1\n"
    );
    assert!(
        stderr(&o).contains("started as root: the sandbox runs as uid 65534 (nobody), never as root"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn without_allow_shell_only_the_command_itself_may_be_executed() {
    // capabilities.allow_shell = false: Landlock's execute right covers the command, its ELF
    // interpreter and capabilities.exec. Control: the same script with the default profile runs
    // both children.
    let fx = Fixture::new();
    let profile = fx.root.join("noshell.toml");
    std::fs::write(
        &profile,
        "[capabilities]\nallow_shell = false\nexec = [\"/usr/bin/true\"]\n",
    )
    .unwrap();
    let script = "import subprocess\n\
        for argv in (['/usr/bin/true'], ['/bin/ls', '/']):\n\
        \x20   try:\n\
        \x20       print(argv[0], subprocess.run(argv, capture_output=True).returncode)\n\
        \x20   except PermissionError as e:\n\
        \x20       print(argv[0], 'EACCES' if e.errno == 13 else e)\n";
    fx.ws_file("probe.py", script);
    fx.chown();
    let control = fx
        .corral()
        .args(["run", "--yes", "--", "python3", "probe.py"])
        .output()
        .unwrap();
    assert_code(&control, 0);
    assert_eq!(stdout(&control), "/usr/bin/true 0\n/bin/ls 0\n", "control");
    let o = fx
        .corral()
        .args([
            "run",
            "--yes",
            "--profile",
            &profile.display().to_string(),
            "--",
            "python3",
            "probe.py",
        ])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "/usr/bin/true 0\n/bin/ls EACCES\n");
}

/// Runs `corral ARGS` under a seccomp filter that refuses `clone` and `unshare` with the flag in
/// `$REFUSED_FLAG` (EPERM), as a container's profile or an LSM might: x86_64 numbers.
const REFUSE_NS_PY: &str = r#"
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
def insn(code, k, jt=0, jf=0):
    return struct.pack("HBBI", code, jt, jf, k)
LD, JEQ, JSET, RET = 0x20, 0x15, 0x45, 0x06
prog = b"".join([
    insn(LD, 0),
    insn(JEQ, 56, 1, 0),            # clone
    insn(JEQ, 272, 0, 3),           # unshare
    insn(LD, 16),                   # arg 0, low word
    insn(JSET, int(os.environ["REFUSED_FLAG"], 0), 0, 1),
    insn(RET, 0x00050000 | 1),      # EPERM
    insn(RET, 0x7fff0000),          # allow
])
buf = ctypes.create_string_buffer(prog)
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
fprog = Fprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
assert libc.prctl(38, 1, 0, 0, 0) == 0
assert libc.prctl(22, 2, ctypes.byref(fprog)) == 0, ctypes.get_errno()
os.execv(sys.argv[1], sys.argv[1:])
"#;

/// `corral run -v --yes --profile PROFILE -- sh -c 'echo inside'` as the test user, under the
/// filter refusing `flag` (a CLONE_NEW* value).
fn run_refusing(fx: &Fixture, flag: u32, profile: &std::path::Path) -> std::process::Output {
    let bin = corral_bin().display().to_string();
    let c = fx.corral();
    // The same environment and user as fx.corral(), through python3 first.
    let program = c.get_program().to_owned();
    let mut args: Vec<std::ffi::OsString> = c.get_args().map(|a| a.to_owned()).collect();
    let at = args.iter().position(|a| a.to_str() == Some(bin.as_str()));
    let mut cmd = std::process::Command::new(program);
    match at {
        // setpriv … BIN: put python3 between setpriv and corral.
        Some(i) => {
            args.splice(i..i, ["python3".into(), "-c".into(), REFUSE_NS_PY.into()]);
            cmd.args(&args);
        }
        None => {
            cmd = std::process::Command::new("python3");
            cmd.args(["-c", REFUSE_NS_PY, &bin]);
        }
    }
    cmd.current_dir(&fx.ws)
        .env_clear()
        .envs(
            c.get_envs()
                .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
        )
        .env("REFUSED_FLAG", format!("{flag:#x}"))
        .args(["run", "-v", "--yes", "--profile", profile.to_str().unwrap()])
        .args(["--", "sh", "-c", "echo inside"])
        .stdin(std::process::Stdio::null());
    cmd.output().unwrap()
}

#[test]
fn a_namespace_the_host_refuses_is_dropped_alone_and_says_why() {
    if !userns_available() {
        return skip("cannot create a sandbox here");
    }
    if !cfg!(target_arch = "x86_64") {
        return skip("the filter uses x86_64 system call numbers");
    }
    let fx = Fixture::new();
    // The UTS namespace is optional in this profile (it is required in `default`).
    let profile = fx.home_file(
        "uts-optional.toml",
        "extends = \"default\"\n[layers]\nutsns = \"best_effort\"\n",
    );
    fx.chown();
    let o = run_refusing(&fx, 0x0400_0000, &profile);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "inside\n");
    let err = stderr(&o);
    let line = |layer: &str| {
        err.lines()
            .find(|l| l.split_whitespace().any(|w| w == layer))
            .unwrap_or_else(|| panic!("no {layer} line in: {err}"))
            .to_string()
    };
    let utsns = line("utsns");
    assert!(
        utsns.contains("clone with every namespace failed (EPERM); on its own: unshare failed: EPERM"),
        "{err}"
    );
    // Only it was dropped: the others are there.
    for kept in ["ipcns", "netns", "pidns"] {
        assert!(line(kept).contains("full"), "{kept}: {err}");
    }
}

#[test]
fn the_network_namespace_is_never_dropped_whatever_the_profile_says() {
    if !userns_available() {
        return skip("cannot create a sandbox here");
    }
    if !cfg!(target_arch = "x86_64") {
        return skip("the filter uses x86_64 system call numbers");
    }
    let fx = Fixture::new();
    // Asked optional: every network guarantee (and the proxy's sockets) stands on it anyway.
    let profile = fx.home_file(
        "net-optional.toml",
        "extends = \"default\"\n[network]\nmode = \"proxy\"\n[layers]\nnetns = \"best_effort\"\n",
    );
    fx.chown();
    let o = run_refusing(&fx, 0x4000_0000, &profile);
    assert_code(&o, 125);
    assert_eq!(stdout(&o), "", "nothing ran");
    assert!(stderr(&o).contains("CLONE_NEWNET"), "{}", stderr(&o));
}
