//! The trust store: which project files (`.corral.toml`, `.corral.env`) the user has read and
//! trusted, each by its canonical path and the SHA-256 of its exact bytes.
//!
//! What it enforces: a file is trusted only at the path it was trusted at and only with the bytes
//! it had then; one changed byte, or the same bytes at another path, is untrusted. An untrusted
//! project file may only tighten the policy (see `corral_core::tighten`).
//!
//! Where: `~/.local/share/corral/trusted.json` ([`store_path`]), a JSON object
//! `{"version": 1, "trusted": {"/canonical/path": "sha256 hex"}}`. [`TrustStore::save`] writes a
//! new file (mode 0600) beside it and renames it over the old one, so a reader sees the old store
//! or the new one, never half of one; the directories it creates are mode 0700.
//!
//! Limits: two `corral trust` running at once may lose one's entry (last rename wins); nothing is
//! locked. Paths that are not UTF-8 cannot be trusted (JSON keys are strings).

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The store's format version; a store of another version is refused rather than misread.
const STORE_VERSION: u32 = 1;
/// Mode of the directories [`TrustStore::save`] creates: the user's alone.
const DIR_MODE: u32 = 0o700;
/// Mode of the store file: another user must neither read nor (above all) write it.
const FILE_MODE: u32 = 0o600;

/// The store's location under the home directory.
pub fn store_path(home: &Path) -> PathBuf {
    home.join(".local/share/corral/trusted.json")
}

/// The SHA-256 of `content`, as 64 lower-case hex digits.
pub fn sha256_hex(content: &[u8]) -> String {
    Sha256::digest(content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The file as written on disk.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    version: u32,
    trusted: BTreeMap<String, String>,
}

/// The trusted files: canonical path → SHA-256 hex of the trusted bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustStore {
    /// Where it is loaded from and saved to.
    path: PathBuf,
    /// Canonical file path → sha256 hex.
    entries: BTreeMap<String, String>,
}

impl TrustStore {
    /// Reads the store at `path`. A missing file is an empty store; an unreadable or corrupt one is
    /// an error naming the file (never silently empty: the user would lose every trust, and a
    /// file that only looks empty must not be overwritten blindly).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(TrustStore {
                    path: path.to_path_buf(),
                    entries: BTreeMap::new(),
                })
            }
            Err(e) => return Err(e).with_context(|| format!("reading the trust store {}", path.display())),
        };
        let file: StoreFile = serde_json::from_str(&text).with_context(|| {
            format!(
                "the trust store {} is corrupt (hint: move it away, then run `corral trust` again in each \
                 project you trust)",
                path.display()
            )
        })?;
        if file.version != STORE_VERSION {
            bail!(
                "the trust store {} has version {}, this corral reads version {STORE_VERSION} \
                 (hint: it was written by another corral; upgrade, or move it away and trust again)",
                path.display(),
                file.version
            );
        }
        Ok(TrustStore {
            path: path.to_path_buf(),
            entries: file.trusted,
        })
    }

    /// True when `file` (resolved to its canonical path) was trusted with exactly `content`.
    pub fn is_trusted(&self, file: &Path, content: &[u8]) -> bool {
        canonical_key(file).is_some_and(|k| self.entries.get(&k).is_some_and(|h| *h == sha256_hex(content)))
    }

    /// Records `file` (by canonical path) as trusted with exactly `content`, replacing an earlier
    /// hash. Not saved until [`TrustStore::save`]. Fails for a path that is not UTF-8.
    pub fn trust(&mut self, file: &Path, content: &[u8]) -> anyhow::Result<()> {
        let Some(key) = canonical_key(file) else {
            bail!(
                "cannot trust {}: its path is not UTF-8 (hint: rename the directory)",
                file.display()
            );
        };
        self.entries.insert(key, sha256_hex(content));
        Ok(())
    }

    /// Forgets `file` (by canonical path). Returns whether it was trusted. Not saved until
    /// [`TrustStore::save`].
    pub fn revoke(&mut self, file: &Path) -> bool {
        canonical_key(file).is_some_and(|k| self.entries.remove(&k).is_some())
    }

    /// The canonical path `file` is recorded under, as shown to the user.
    pub fn key_of(file: &Path) -> Option<String> {
        canonical_key(file)
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the store: parent directories created mode 0700, a new file (mode 0600) written and
    /// synced beside the store, then renamed over it (rename(2) is atomic within a directory).
    pub fn save(&self) -> anyhow::Result<()> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .with_context(|| format!("mkdir -p {} (mode 0700)", dir.display()))?;
        let Some(name) = self.path.file_name() else {
            bail!("the trust store path {} names no file", self.path.display());
        };
        // Same directory as the store, so the rename cannot cross filesystems; the pid keeps two
        // corral processes off each other's temporary file.
        let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
        let mut text = serde_json::to_string_pretty(&StoreFile {
            version: STORE_VERSION,
            trusted: self.entries.clone(),
        })?;
        text.push('\n');
        let written = write_new(&tmp, text.as_bytes()).and_then(|()| {
            fs::rename(&tmp, &self.path)
                .with_context(|| format!("rename({} → {})", tmp.display(), self.path.display()))
        });
        if written.is_err() {
            // Best effort: the error being returned is the one that matters.
            let _ = fs::remove_file(&tmp);
        }
        written
    }
}

/// Creates `path` anew (mode 0600) with `bytes`, synced to disk. A leftover of a crashed run with
/// the same pid is replaced.
fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let open = || {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(path)
    };
    let mut f = match open() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            fs::remove_file(path)
                .with_context(|| format!("unlink({}) (a stale temporary file)", path.display()))?;
            open()
        }
        r => r,
    }
    .with_context(|| format!("open({}, O_CREAT|O_EXCL, 0600)", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("write({})", path.display()))?;
    f.sync_all()
        .with_context(|| format!("fsync({})", path.display()))?;
    Ok(())
}

/// The key a file is stored under: its canonical path (symlinks resolved), or its absolute path
/// when it does not exist; None when that is not UTF-8.
fn canonical_key(file: &Path) -> Option<String> {
    let abs = fs::canonicalize(file)
        .or_else(|_| std::path::absolute(file))
        .ok()?;
    abs.into_os_string().into_string().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const TOML: &[u8] = b"[limits]\npids = 64\n";

    /// A project dir with a `.corral.toml`, and a store path in a not-yet-existing directory.
    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let project = tmp.path().join("project");
        fs::create_dir(&project).unwrap();
        let file = project.join(".corral.toml");
        fs::write(&file, TOML).unwrap();
        let store = store_path(&tmp.path().join("home"));
        (tmp, file, store)
    }

    #[test]
    fn trusted_after_trust_save_load() {
        let (_tmp, file, store_file) = setup();
        let mut store = TrustStore::load(&store_file).unwrap();
        assert!(!store.is_trusted(&file, TOML), "an empty store trusts nothing");
        store.trust(&file, TOML).unwrap();
        store.save().unwrap();

        let loaded = TrustStore::load(&store_file).unwrap();
        assert!(loaded.is_trusted(&file, TOML));
        assert_eq!(loaded, store);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&store_file), 0o600);
        assert_eq!(mode(store_file.parent().unwrap()), 0o700);
        let leftovers: Vec<_> = fs::read_dir(store_file.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("trusted.json")]);
    }

    #[test]
    fn a_changed_byte_is_untrusted() {
        let (_tmp, file, store_file) = setup();
        let mut store = TrustStore::load(&store_file).unwrap();
        store.trust(&file, TOML).unwrap();
        store.save().unwrap();
        let loaded = TrustStore::load(&store_file).unwrap();
        let mut changed = TOML.to_vec();
        changed[TOML.len() - 2] = b'5';
        assert!(!loaded.is_trusted(&file, &changed));
    }

    #[test]
    fn the_same_content_at_another_path_is_untrusted() {
        let (tmp, file, store_file) = setup();
        let mut store = TrustStore::load(&store_file).unwrap();
        store.trust(&file, TOML).unwrap();
        store.save().unwrap();
        let other = tmp.path().join("other/.corral.toml");
        fs::create_dir(other.parent().unwrap()).unwrap();
        fs::write(&other, TOML).unwrap();
        let loaded = TrustStore::load(&store_file).unwrap();
        assert!(!loaded.is_trusted(&other, TOML));
    }

    #[test]
    fn a_symlink_resolves_to_the_trusted_file() {
        let (tmp, file, store_file) = setup();
        let mut store = TrustStore::load(&store_file).unwrap();
        store.trust(&file, TOML).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(file.parent().unwrap(), &link).unwrap();
        assert!(store.is_trusted(&link.join(".corral.toml"), TOML));
    }

    #[test]
    fn revoke_forgets() {
        let (_tmp, file, store_file) = setup();
        let mut store = TrustStore::load(&store_file).unwrap();
        store.trust(&file, TOML).unwrap();
        assert!(store.revoke(&file));
        assert!(!store.revoke(&file), "already gone");
        store.save().unwrap();
        assert!(!TrustStore::load(&store_file).unwrap().is_trusted(&file, TOML));
    }

    #[test]
    fn a_corrupt_store_is_an_error_naming_the_file() {
        let (_tmp, _file, store_file) = setup();
        fs::create_dir_all(store_file.parent().unwrap()).unwrap();
        fs::write(&store_file, "{\"version\": 1, \"trusted\": [").unwrap();
        let err = TrustStore::load(&store_file).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the trust store {} is corrupt (hint: move it away, then run `corral trust` again in each \
                 project you trust)",
                store_file.display()
            )
        );
    }

    #[test]
    fn sha256_of_a_known_input() {
        // FIPS 180-2, appendix B.1.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
