//! The attacks: what a hostile agent inside would try, each with the layer that should stop it.
//! The probe runs them (inside the sandbox, and without it for the control run); some can only be
//! judged from the host (a file planted outside, a message that reached a listener), and carry a
//! `verify` that `corral selftest` runs after the probe is gone.

pub mod net;
mod persist;
mod procs;
mod resources;
pub mod secrets;
pub mod writes;

use super::brief::{Brief, Probe, Set};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// What the host saw after a run, for `verify`.
#[derive(Debug, Default)]
pub struct HostView {
    /// Lines the bait listeners (TCP, UDP, DNS, unix sockets, the control proxy) received.
    pub received: Vec<String>,
    /// Whether the sentinel process is still alive.
    pub sentinel_alive: bool,
    /// Protected paths in the workspace, as they were before the run ([`describe`]).
    pub protected_before: BTreeMap<String, String>,
}

/// The probe's side of an attack.
pub type RunFn = Box<dyn Fn(&Brief) -> Probe>;
/// The host's side: `Some(evidence)` when the attack got through.
pub type VerifyFn = Box<dyn Fn(&Brief, &HostView) -> Option<String>>;

/// One attack.
pub struct Attack {
    /// Stable id (`secrets.read ~/.ssh`).
    pub id: String,
    /// The group it is listed under.
    pub group: &'static str,
    /// What it tries, in words.
    pub what: String,
    /// What should stop it.
    pub layer: &'static str,
    /// Inside.
    pub run: RunFn,
    /// On the host, after the run.
    pub verify: Option<VerifyFn>,
}

impl std::fmt::Debug for Attack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attack")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Attack {
    fn new(
        group: &'static str,
        id: impl Into<String>,
        what: impl Into<String>,
        layer: &'static str,
        run: impl Fn(&Brief) -> Probe + 'static,
    ) -> Attack {
        Attack {
            id: format!("{group}.{}", id.into()),
            group,
            what: what.into(),
            layer,
            run: Box::new(run),
            verify: None,
        }
    }

    fn verified(mut self, verify: impl Fn(&Brief, &HostView) -> Option<String> + 'static) -> Attack {
        self.verify = Some(Box::new(verify));
        self
    }
}

/// Every attack of `brief`'s set, in the order they run.
pub fn all(brief: &Brief) -> Vec<Attack> {
    match brief.set {
        Set::Main => {
            let mut v = secrets::attacks(brief);
            v.extend(writes::attacks(brief));
            v.extend(persist::attacks(brief));
            v.extend(net::attacks(brief));
            v.extend(procs::attacks(brief));
            v
        }
        Set::Tls => net::tls_attacks(brief),
        Set::Resources => resources::attacks(brief),
    }
}

/// A short name for an errno (`ENOENT`), else the number.
pub fn errno_name(e: &std::io::Error) -> String {
    corral_sys::ll::io_errno_name(e)
}

/// Reads `path`: escaped when it holds the token.
pub fn read_for_token(path: &Path, token: &str) -> Probe {
    let mut buf = Vec::new();
    match std::fs::File::open(path).and_then(|mut f| f.by_ref().take(1 << 20).read_to_end(&mut buf)) {
        Ok(_) if contains(&buf, token) => Probe::Escaped(format!("read the bait from {}", path.display())),
        Ok(n) => Probe::Blocked(format!("readable, but not the bait ({n} bytes: masked)")),
        Err(e) => Probe::Blocked(errno_name(&e)),
    }
}

/// Whether `hay` contains `needle`.
pub fn contains(hay: &[u8], needle: &str) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// How a path looks now, to compare before and after a run: absent, a file's content hash, a
/// directory's names, a symlink's target.
pub fn describe(path: &Path) -> String {
    use sha2::Digest;
    match std::fs::symlink_metadata(path) {
        Err(_) => "absent".into(),
        Ok(m) if m.file_type().is_symlink() => {
            format!(
                "symlink to {}",
                std::fs::read_link(path).unwrap_or_default().display()
            )
        }
        Ok(m) if m.is_dir() => {
            let mut names: Vec<String> = std::fs::read_dir(path)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            format!("directory [{}]", names.join(", "))
        }
        Ok(m) => {
            let bytes = std::fs::read(path).unwrap_or_default();
            let hash = sha2::Sha256::digest(&bytes);
            format!(
                "file of {} bytes, mode {:o}, sha256 {:x}",
                m.len(),
                std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777,
                hash
            )
        }
    }
}

/// The message an attack sends to a bait listener: the token and a tag for the attack (a word
/// that fits in a URL path and a DNS label).
pub fn message(brief: &Brief, tag: &str) -> String {
    format!("{}-{tag}", brief.token)
}

/// Host side of a message attack: escaped when a listener got `message(id)`.
pub fn received(tag: String) -> impl Fn(&Brief, &HostView) -> Option<String> {
    move |b, h| {
        let m = message(b, &tag);
        h.received
            .iter()
            .any(|r| r.contains(&m))
            .then(|| "the bait listener on the host received the attack's message".to_string())
    }
}
