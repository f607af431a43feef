//! `corral trust [PATH]`: show the user a project's `.corral.toml` (and its `.corral.env`) and what
//! it widens, then record the exact bytes as trusted (or, with `--revoke`, forget them).
//!
//! Order: every byte shown, hashed and parsed comes from one read of each file, so what the user
//! approves is what gets recorded. The review goes to stderr, the terminal the question is asked
//! on, so it is seen even when stdout is redirected. Control and bidirectional-override characters
//! in the file are shown escaped: a file must not be able to repaint the screen it is reviewed on.
//! `.corral.env` values are never shown, only [`envaudit::mask`]ed.
//!
//! The widenings compare the built-in `default` plus `~/.config/corral/config.toml` (if present)
//! with the same plus this file; a `--profile` given to `corral run` is not taken into account.

use crate::trust::{self, TrustStore};
use anyhow::{bail, Context};
use corral_core::envaudit;
use corral_core::profile::{self, ProfileLayer};
use corral_core::tighten;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

/// The project policy file, in the project root.
pub const PROJECT_FILE: &str = ".corral.toml";
/// The project env file, beside [`PROJECT_FILE`].
pub const PROJECT_ENV_FILE: &str = ".corral.env";
/// Hex digits of a hash shown in the question (the full hash is printed when recorded).
const SHORT_HASH: usize = 12;

/// Flags of `corral trust`.
#[derive(Debug, clap::Args)]
pub struct TrustArgs {
    /// The project file (default: the .corral.toml of the current project)
    pub path: Option<PathBuf>,
    /// Remove the trust instead
    #[arg(long)]
    pub revoke: bool,
}

/// One file to trust, read once.
#[derive(Debug)]
struct Reviewed {
    path: PathBuf,
    bytes: Vec<u8>,
    hash: String,
}

/// Runs `corral trust`: review, ask (unless `yes`), record. Returns the exit code: 0 when
/// recorded (or revoked), 1 when the user declined or could not be asked.
pub fn trust(args: &TrustArgs, yes: bool) -> anyhow::Result<i32> {
    let home = PathBuf::from(
        std::env::var_os("HOME").context("HOME is not set: cannot find the trust store or your config")?,
    );
    let cwd = std::env::current_dir().context("getcwd")?;
    let file = project_file(args.path.as_deref(), &cwd)?;
    let mut store = TrustStore::load(&trust::store_path(&home))?;

    if args.revoke {
        print!("{}", revoke(&mut store, &file)?);
        return Ok(0);
    }

    // The review goes to stderr: the terminal the question is asked on.
    let review = review(&file, &home, &store)?;
    let mut err = std::io::stderr().lock();
    write!(err, "{}", review.text)?;
    if !yes {
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            writeln!(
                err,
                "corral: not a terminal, so nobody can be asked: nothing recorded. \
                 Read the above, then pass --yes to trust it."
            )?;
            return Ok(1);
        }
        write!(err, "{}", question(&review.files))?;
        err.flush()?;
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .context("reading the answer from stdin")?;
        if !is_yes(&answer) {
            writeln!(err, "not trusted: nothing recorded")?;
            return Ok(1);
        }
    }
    drop(err);
    print!("{}", record(&mut store, &review.files)?);
    Ok(0)
}

/// What the user is shown before being asked, and the bytes it was made from.
#[derive(Debug)]
struct Review {
    /// `.corral.toml`, then `.corral.env` if present.
    files: Vec<Reviewed>,
    /// The project file in full (numbered), the env file masked, and what the file widens.
    text: String,
}

/// Reads `file` and the `.corral.env` beside it (once each) and builds the review. `home` holds
/// the user's config, which the widenings are measured against.
fn review(file: &Path, home: &Path, store: &TrustStore) -> anyhow::Result<Review> {
    let toml = read_reviewed(file)?;
    let env = read_reviewed(&env_file_beside(file))?;
    if toml.is_none() && env.is_none() {
        bail!(
            "no project file at {} nor a {PROJECT_ENV_FILE} beside it (hint: give its path: `corral trust PATH`)",
            file.display()
        );
    }
    let mut text = Vec::new();
    if let Some(toml) = &toml {
        show_toml(&mut text, store, toml)?;
    }
    if let Some(env) = &env {
        show_env(&mut text, store, env)?;
    }
    if let Some(toml) = &toml {
        show_widenings(&mut text, home, toml)?;
    }
    Ok(Review {
        files: toml.into_iter().chain(env).collect(),
        text: String::from_utf8_lossy(&text).into_owned(),
    })
}

/// Reads a file to review; None when it does not exist.
fn read_reviewed(path: &Path) -> anyhow::Result<Option<Reviewed>> {
    // Trust is for a file at its own path: a symlink could point at another project's trusted
    // file (or change target later), so it is refused, as `corral run` refuses it.
    if path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
        bail!(
            "{} is a symlink: corral trusts only a regular file at its own path",
            path.display()
        );
    }
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(Reviewed {
            hash: trust::sha256_hex(&bytes),
            path: path.to_path_buf(),
            bytes,
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// `.corral.env` in the directory of `file`.
fn env_file_beside(file: &Path) -> PathBuf {
    file.parent()
        .map_or_else(|| PathBuf::from(PROJECT_ENV_FILE), |d| d.join(PROJECT_ENV_FILE))
}

/// The question, naming each file's hash by its first [`SHORT_HASH`] digits.
fn question(files: &[Reviewed]) -> String {
    let shorts: Vec<String> = files
        .iter()
        .map(|f| format!("{}…", f.hash.get(..SHORT_HASH).unwrap_or(&f.hash)))
        .collect();
    match files.len() {
        1 => format!("Trust this file (sha256 {})? [y/N] ", shorts.join(", ")),
        n => format!("Trust these {n} files (sha256 {})? [y/N] ", shorts.join(", ")),
    }
}

/// `y` or `yes`, any case; anything else (an empty line, EOF) is no.
fn is_yes(answer: &str) -> bool {
    let answer = answer.trim();
    answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes")
}

/// Records `files` as trusted and saves the store; returns what was recorded, one line each.
fn record(store: &mut TrustStore, files: &[Reviewed]) -> anyhow::Result<String> {
    for f in files {
        store.trust(&f.path, &f.bytes)?;
    }
    store.save()?;
    Ok(files
        .iter()
        .map(|f| {
            format!(
                "trusted {} (sha256 {}) in {}\n",
                shown_key(&f.path),
                f.hash,
                store.path().display()
            )
        })
        .collect())
}

/// The file to review: `path` (a directory means its `.corral.toml`), else the current project's
/// `.corral.toml`, where the project root is the nearest ancestor of `cwd` holding `.git`, else
/// `cwd`. Made absolute, so `.corral.env` is found beside it and messages name it fully.
fn project_file(path: Option<&Path>, cwd: &Path) -> anyhow::Result<PathBuf> {
    let file = match path {
        Some(p) if p.is_dir() => p.join(PROJECT_FILE),
        // Naming the env file means its project: the .corral.toml beside it (if any) and itself.
        Some(p) if p.file_name().is_some_and(|n| n == PROJECT_ENV_FILE) => {
            env_file_beside(p).with_file_name(PROJECT_FILE)
        }
        Some(p) => p.to_path_buf(),
        None => {
            let cwd =
                std::fs::canonicalize(cwd).with_context(|| format!("canonicalize {}", cwd.display()))?;
            corral_sys::facts::git_root(&cwd)
                .unwrap_or(cwd)
                .join(PROJECT_FILE)
        }
    };
    std::path::absolute(&file).with_context(|| format!("making {} absolute", file.display()))
}

/// `--revoke`: forgets `file` and the `.corral.env` beside it; the store is rewritten only if
/// something was removed. Returns what happened, one line per file.
fn revoke(store: &mut TrustStore, file: &Path) -> anyhow::Result<String> {
    let mut changed = false;
    let mut out = String::new();
    for f in [file.to_path_buf(), env_file_beside(file)] {
        if store.revoke(&f) {
            changed = true;
            out.push_str(&format!("revoked trust in {}\n", shown_key(&f)));
        } else {
            out.push_str(&format!("{} was not trusted\n", shown_key(&f)));
        }
    }
    if changed {
        store.save()?;
    }
    Ok(out)
}

/// The path a file is recorded under (canonical), for messages.
fn shown_key(f: &Path) -> String {
    TrustStore::key_of(f).unwrap_or_else(|| f.display().to_string())
}

/// The heading of a reviewed file: path, hash, and whether these bytes are already trusted.
fn heading(store: &TrustStore, f: &Reviewed, what: &str) -> String {
    let already = if store.is_trusted(&f.path, &f.bytes) {
        ", already trusted"
    } else {
        ""
    };
    format!(
        "── {} (sha256 {}{already}){what}",
        printable(&f.path.display().to_string()),
        f.hash
    )
}

/// The project file in full, each line numbered.
fn show_toml(out: &mut impl Write, store: &TrustStore, f: &Reviewed) -> anyhow::Result<()> {
    writeln!(out, "{}", heading(store, f, ":"))?;
    let text = String::from_utf8_lossy(&f.bytes);
    if text.is_empty() {
        writeln!(out, "     (empty)")?;
    }
    for (i, line) in text.lines().enumerate() {
        writeln!(out, "{:>4} │ {}", i + 1, printable(line))?;
    }
    writeln!(out)?;
    Ok(())
}

/// The env file: names and masked values, never a value in full.
fn show_env(out: &mut impl Write, store: &TrustStore, f: &Reviewed) -> anyhow::Result<()> {
    let origin = f.path.display().to_string();
    let text = std::str::from_utf8(&f.bytes).with_context(|| format!("{origin} is not UTF-8"))?;
    // The error names file, line and key, never a value.
    let entries = envaudit::parse_env_file(&origin, text)?;
    writeln!(out, "{}", heading(store, f, ", values masked:"))?;
    if entries.is_empty() {
        writeln!(out, "     (no variables)")?;
    }
    for e in &entries {
        writeln!(out, "{:>4} │ {}={}", e.line, e.name, envaudit::mask(&e.value))?;
    }
    writeln!(out)?;
    Ok(())
}

/// What the file gives the sandbox beyond the built-in default and the user's config.
fn show_widenings(out: &mut impl Write, home: &Path, f: &Reviewed) -> anyhow::Result<()> {
    let origin = f.path.display().to_string();
    let text = std::str::from_utf8(&f.bytes).with_context(|| format!("{origin} is not UTF-8"))?;
    let project = ProfileLayer::parse(&origin, text)?;
    let mut layers = vec![ProfileLayer::parse(
        "builtin:default",
        profile::builtin("default")?,
    )?];
    let config = home.join(".config/corral/config.toml");
    let base = match std::fs::read_to_string(&config) {
        Ok(t) => {
            layers.push(ProfileLayer::parse(&config.display().to_string(), &t)?);
            format!("the built-in default and {}", config.display())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "the built-in default".to_string(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", config.display())),
    };
    let before = profile::resolve("default", &layers)?;
    layers.push(project);
    let after = profile::resolve("default", &layers)?;
    let widenings = tighten::widenings(&before, &after);
    if widenings.is_empty() {
        writeln!(
            out,
            "Compared with {base}, this file only tightens the policy: it applies, trusted or not."
        )?;
    } else {
        writeln!(
            out,
            "Compared with {base}, this file WIDENS the policy ({} change(s)); only a trusted file may:",
            widenings.len()
        )?;
        for w in &widenings {
            writeln!(out, "  {}", printable(&w.to_string()))?;
        }
    }
    writeln!(out)?;
    Ok(())
}

/// `line` with control characters and bidirectional overrides escaped (`\u{1b}`), so the file
/// cannot move the cursor, recolour, or reorder what the user reads ("Trojan Source",
/// CVE-2021-42574). Tabs are kept.
pub(crate) fn printable(line: &str) -> String {
    line.chars()
        .map(|c| {
            if c != '\t' && (c.is_control() || is_bidi_control(c)) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Unicode's explicit directional formatting characters (UAX #9, table 1) and marks.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use pretty_assertions::assert_eq;
    use std::fs;

    const TOML: &str = "# build cache\n[filesystem]\nread_write = [\"~/.cache/sccache\"]\n[network]\n\
                        local_ports = [5432, 8080]\n[limits]\npids = 64\n";
    const ENV: &str = "API_TOKEN=abcdefghijklmnopqrstuvwxyz\nDEBUG=1\n";

    /// `<root>/home` with a user config, `<root>/project` (a git checkout) with both project files.
    fn setup() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        fs::create_dir_all(root.join("home/.config/corral")).unwrap();
        fs::write(
            root.join("home/.config/corral/config.toml"),
            "[network]\nlocal_ports = [5432]\n",
        )
        .unwrap();
        fs::create_dir_all(root.join("project/.git")).unwrap();
        fs::create_dir_all(root.join("project/src")).unwrap();
        fs::write(root.join("project/.corral.toml"), TOML).unwrap();
        fs::write(root.join("project/.corral.env"), ENV).unwrap();
        (tmp, root)
    }

    #[test]
    fn the_default_file_is_in_the_git_root_else_the_cwd() {
        let (_tmp, root) = setup();
        assert_eq!(
            project_file(None, &root.join("project/src")).unwrap(),
            root.join("project/.corral.toml")
        );
        assert_eq!(
            project_file(None, &root.join("home")).unwrap(),
            root.join("home/.corral.toml")
        );
        assert_eq!(
            project_file(Some(&root.join("project")), &root.join("home")).unwrap(),
            root.join("project/.corral.toml")
        );
    }

    #[test]
    fn review_shows_the_file_masked_env_and_widenings_then_records_and_revokes() {
        let (_tmp, root) = setup();
        let home = root.join("home");
        let file = root.join("project/.corral.toml");
        let mut store = TrustStore::load(&trust::store_path(&home)).unwrap();
        let (h1, h2) = (
            trust::sha256_hex(TOML.as_bytes()),
            trust::sha256_hex(ENV.as_bytes()),
        );
        let r = root.display();

        let review1 = review(&file, &home, &store).unwrap();
        assert_eq!(
            review1.text,
            format!(
                "── {r}/project/.corral.toml (sha256 {h1}):
   1 │ # build cache
   2 │ [filesystem]
   3 │ read_write = [\"~/.cache/sccache\"]
   4 │ [network]
   5 │ local_ports = [5432, 8080]
   6 │ [limits]
   7 │ pids = 64

── {r}/project/.corral.env (sha256 {h2}), values masked:
   1 │ API_TOKEN=abcd…(26)
   2 │ DEBUG=…(1)

Compared with the built-in default and {r}/home/.config/corral/config.toml, this file WIDENS the policy (2 change(s)); only a trusted file may:
  filesystem.read_write: adds \"~/.cache/sccache\"
  network.local_ports: adds 8080

"
            )
        );
        assert_eq!(
            question(&review1.files),
            format!(
                "Trust these 2 files (sha256 {}…, {}…)? [y/N] ",
                &h1[..12],
                &h2[..12]
            )
        );

        assert_eq!(
            record(&mut store, &review1.files).unwrap(),
            format!(
                "trusted {r}/project/.corral.toml (sha256 {h1}) in {r}/home/.local/share/corral/trusted.json\n\
                 trusted {r}/project/.corral.env (sha256 {h2}) in {r}/home/.local/share/corral/trusted.json\n"
            )
        );
        let store = TrustStore::load(&trust::store_path(&home)).unwrap();
        assert!(store.is_trusted(&file, TOML.as_bytes()));
        let review2 = review(&file, &home, &store).unwrap();
        assert!(review2.text.contains(&format!("(sha256 {h1}, already trusted):")));

        let mut store = store;
        assert_eq!(
            revoke(&mut store, &file).unwrap(),
            format!("revoked trust in {r}/project/.corral.toml\nrevoked trust in {r}/project/.corral.env\n")
        );
        let mut store = TrustStore::load(&trust::store_path(&home)).unwrap();
        assert!(!store.is_trusted(&file, TOML.as_bytes()));
        assert_eq!(
            revoke(&mut store, &file).unwrap(),
            format!("{r}/project/.corral.toml was not trusted\n{r}/project/.corral.env was not trusted\n")
        );
    }

    #[test]
    fn a_tightening_file_alone_says_so() {
        let (_tmp, root) = setup();
        fs::remove_file(root.join("project/.corral.env")).unwrap();
        fs::write(root.join("project/.corral.toml"), "").unwrap();
        let store = TrustStore::load(&trust::store_path(&root.join("home"))).unwrap();
        let r = review(&root.join("project/.corral.toml"), &root.join("nohome"), &store).unwrap();
        let h = trust::sha256_hex(b"");
        assert_eq!(
            r.text,
            format!(
                "── {}/project/.corral.toml (sha256 {h}):\n     (empty)\n\n\
                 Compared with the built-in default, this file only tightens the policy: it applies, trusted or not.\n\n",
                root.display()
            )
        );
        assert_eq!(
            question(&r.files),
            format!("Trust this file (sha256 {}…)? [y/N] ", &h[..12])
        );
    }

    #[test]
    fn a_missing_file_is_an_error_with_a_hint() {
        let (_tmp, root) = setup();
        let store = TrustStore::load(&trust::store_path(&root.join("home"))).unwrap();
        let err = review(&root.join("home/.corral.toml"), &root.join("home"), &store).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "no project file at {}/home/.corral.toml nor a .corral.env beside it (hint: give its path: `corral trust PATH`)",
                root.display()
            )
        );
    }

    #[test]
    fn only_y_or_yes_is_yes() {
        let got: Vec<bool> = ["y\n", "YES\n", " Yes ", "", "\n", "n", "yep", "ye"]
            .iter()
            .map(|a| is_yes(a))
            .collect();
        assert_eq!(got, vec![true, true, true, false, false, false, false, false]);
    }

    #[test]
    fn printable_escapes_terminal_control_and_bidi() {
        assert_eq!(
            printable("a\u{1b}[2Jb\rc\u{202E}d\te"),
            "a\\u{1b}[2Jb\\u{d}c\\u{202e}d\te"
        );
    }
}
