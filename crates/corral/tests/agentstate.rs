//! The agent state outside projects (`~/.local/share/corral`), through the built binary:
//! `corral backup` writes an archive that `corral restore` puts back as it was (modes included);
//! restore refuses to replace newer local state without `--force` and refuses a bad archive, in
//! both cases changing nothing; `corral gc` removes the state of a project that no longer exists
//! and keeps a live one's. No sandbox is started: these run everywhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use sha2::{Digest, Sha256};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The project key of `root`, computed independently of corral's code.
fn key(root: &Path) -> String {
    let d = Sha256::digest(root.as_os_str().as_encoded_bytes());
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The fixture's data dir (XDG_DATA_HOME is unset in the fixture's environment).
fn data(fx: &Fixture) -> PathBuf {
    fx.home.join(".local/share/corral")
}

/// Plants state for the fixture's workspace and Claude's shared state; returns the project dir.
fn plant(fx: &Fixture) -> PathBuf {
    let dir = data(fx).join("projects").join(key(&fx.ws));
    fs::create_dir_all(dir.join("claude/hooks")).unwrap();
    fs::write(dir.join("project-root"), format!("{}\n", fx.ws.display())).unwrap();
    let settings = dir.join("claude/settings.json");
    fs::write(&settings, "{\"model\":\"x\"}").unwrap();
    fs::set_permissions(&settings, fs::Permissions::from_mode(0o640)).unwrap();
    fs::create_dir_all(data(fx).join("agents/claude/skills")).unwrap();
    fs::write(data(fx).join("agents/claude/CLAUDE.md"), "be brief").unwrap();
    fx.chown();
    dir
}

/// Sets a file's mtime to an hour from now: newer than any archive made before.
fn make_newer(p: &Path) {
    fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(SystemTime::now() + Duration::from_secs(3600))
        .unwrap();
}

#[test]
fn backup_then_restore_puts_the_state_back() {
    let fx = Fixture::new();
    let dir = plant(&fx);
    let archive = fx.root.join("b.tar");
    let k = key(&fx.ws);

    let o = fx
        .corral()
        .arg("backup")
        .arg("-o")
        .arg(&archive)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        format!(
            "wrote {a}: 1 project(s), 1 agent(s)\n{ws} (projects/{k}, 2 files)\nshared claude (agents/claude, 1 files)\n",
            a = archive.display(),
            ws = fx.ws.display()
        )
    );
    let saved = fs::read(&archive).unwrap();

    // An existing archive is never overwritten.
    let o = fx
        .corral()
        .arg("backup")
        .arg("-o")
        .arg(&archive)
        .output()
        .unwrap();
    assert_code(&o, 125);
    assert_eq!(
        stderr(&o),
        format!(
            "corral: error: {} exists: refusing to overwrite it\n",
            archive.display()
        )
    );
    assert_eq!(fs::read(&archive).unwrap(), saved);

    let before = listing(&data(&fx));
    fs::remove_dir_all(data(&fx).join("projects")).unwrap();
    fs::remove_dir_all(data(&fx).join("agents")).unwrap();
    let o = fx.corral().arg("restore").arg(&archive).output().unwrap();
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        format!(
            "restored the agent state of {ws} (projects/{k}, 2 files)\n\
             restored the shared state of claude (agents/claude, 1 files)\n",
            ws = fx.ws.display()
        )
    );
    assert_eq!(listing(&data(&fx)), before);
    let settings = dir.join("claude/settings.json");
    assert_eq!(fs::read_to_string(&settings).unwrap(), "{\"model\":\"x\"}");
    assert_eq!(
        fs::metadata(&settings).unwrap().permissions().mode() & 0o7777,
        0o640
    );

    // --project: only that project (and the shared part).
    let one = fx.root.join("one.tar");
    let o = fx
        .corral()
        .arg("backup")
        .arg("--project")
        .arg(&fx.ws)
        .arg("-o")
        .arg(&one)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert!(stdout(&o).starts_with(&format!("wrote {}: 1 project(s)", one.display())));
}

#[test]
fn restore_does_not_replace_newer_state_without_force() {
    let fx = Fixture::new();
    let dir = plant(&fx);
    let archive = fx.root.join("b.tar");
    let o = fx
        .corral()
        .arg("backup")
        .arg("-o")
        .arg(&archive)
        .output()
        .unwrap();
    assert_code(&o, 0);

    let settings = dir.join("claude/settings.json");
    fs::write(&settings, "{\"edited\":true}").unwrap();
    make_newer(&settings);
    let before = listing(&data(&fx));
    let o = fx.corral().arg("restore").arg(&archive).output().unwrap();
    assert_code(&o, 125);
    let err = stderr(&o);
    assert!(
        err.contains(
            "local agent state has files newer than the archive's, not replaced (nothing was changed)"
        ),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "projects/{} ({}): a local file from",
            key(&fx.ws),
            fx.ws.display()
        )),
        "{err}"
    );
    assert!(err.contains("hint: --force replaces them anyway"), "{err}");
    assert_eq!(listing(&data(&fx)), before);
    assert_eq!(fs::read_to_string(&settings).unwrap(), "{\"edited\":true}");

    let o = fx
        .corral()
        .args(["restore", "--force"])
        .arg(&archive)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert!(stdout(&o).contains(", replacing the local one"), "{}", stdout(&o));
    assert_eq!(fs::read_to_string(&settings).unwrap(), "{\"model\":\"x\"}");
}

#[test]
fn restore_refuses_a_bad_archive_and_changes_nothing() {
    let fx = Fixture::new();
    plant(&fx);
    let junk = fx.root.join("junk.tar");
    fs::write(&junk, vec![b'x'; 2048]).unwrap();
    fx.chown();
    let before = listing(&data(&fx));
    let o = fx.corral().arg("restore").arg(&junk).output().unwrap();
    assert_code(&o, 125);
    assert!(
        stderr(&o).starts_with(&format!("corral: error: reading {}", junk.display())),
        "{}",
        stderr(&o)
    );
    assert_eq!(listing(&data(&fx)), before);

    let o = fx
        .corral()
        .arg("restore")
        .arg(fx.root.join("missing.tar"))
        .output()
        .unwrap();
    assert_code(&o, 125);
    assert!(stderr(&o).contains("opening"), "{}", stderr(&o));
    assert_eq!(listing(&data(&fx)), before);
}

#[test]
fn gc_removes_the_state_of_a_project_that_is_gone() {
    let fx = Fixture::new();
    let live = plant(&fx);
    let gone_root = fx.root.join("gone-project");
    let gone = data(&fx).join("projects").join(key(&gone_root));
    fs::create_dir_all(gone.join("claude")).unwrap();
    fs::write(gone.join("project-root"), format!("{}\n", gone_root.display())).unwrap();
    fs::write(gone.join("claude/settings.json"), "{}").unwrap();
    fx.chown();

    let o = fx.corral().arg("gc").output().unwrap();
    assert_code(&o, 0);
    let line = format!(
        "removed the agent state of {} (projects/{}, 2 files)",
        gone_root.display(),
        key(&gone_root)
    );
    assert!(stdout(&o).lines().any(|l| l == line), "{}", stdout(&o));
    assert!(!gone.exists());
    assert!(
        live.join("claude/settings.json").is_file(),
        "the live project's state was removed"
    );
}
