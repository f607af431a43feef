//! What each corral-core fuzz target checks, one function per target (`fuzz_targets/<name>.rs`
//! calls `<name>(data)`). The same file is compiled into `crates/corral-core/tests/fuzz_regressions.rs`,
//! which replays every input under `regressions/<name>/` on stable, so a crash once found stays
//! fixed in every CI run.
//!
//! Beyond "no panic", each check asserts invariants that hold for every input, so the fuzzer
//! finds wrong answers too, not only crashes. A failed assertion is a crash to libFuzzer.
// A failed check must panic: that is how libFuzzer (and the replay test) sees it.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use corral_core::envaudit::{self, AuditSource, EnvFileError};
use corral_core::plan::{self, FileKind, HostFacts, Invocation, PathFact};
use corral_core::profile::{self, ProfileError, ProfileLayer};
use corral_core::{render, tighten};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The name fuzzed files are reported under.
const PROFILE_ORIGIN: &str = "fuzz/.corral.toml";
/// The name fuzzed env files are reported under.
const ENV_ORIGIN: &str = "fuzz/.corral.env";
/// The home directory of the invocation the planner is given.
const HOME: &str = "/home/u";
/// Its workspace.
const WORKSPACE: &str = "/home/u/src/app";
/// Values at least this long never appear in their [`envaudit::mask`] (shorter ones may, by
/// coincidence: `mask("(3)")` is `…(3)`).
const MASK_HIDES_FROM: usize = 8;

/// The built-in `default` layer, parsed once.
fn default_layer() -> &'static ProfileLayer {
    static DEFAULT: OnceLock<ProfileLayer> = OnceLock::new();
    DEFAULT.get_or_init(|| {
        let text = profile::builtin("default").expect("`default` is built in");
        ProfileLayer::parse("builtin:default", text).expect("the built-in `default` parses")
    })
}

/// Fuzzes a project file as `corral` reads one: [`ProfileLayer::parse`] (and [`profile::parse`]),
/// then, when it parses, [`profile::resolve`] over `default` and with it, the widening check of
/// an untrusted project file ([`tighten::widenings`]), the `extends` chain a `--profile FILE`
/// pulls in, and the planner and its rendering on the resolved profile.
pub fn profile(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let layer = ProfileLayer::parse(PROFILE_ORIGIN, text);
    let cfg = profile::parse(PROFILE_ORIGIN, text);
    match (&layer, &cfg) {
        (Ok(layer), Ok(cfg)) => assert_eq!(&layer.cfg, cfg),
        (Err(a), Err(b)) => assert_eq!(a, b),
        (Ok(_), Err(_)) | (Err(_), Ok(_)) => panic!("ProfileLayer::parse and profile::parse disagree"),
    }
    let layer = match layer {
        Ok(layer) => layer,
        Err(e) => return check_profile_error(&e, text),
    };

    // As `corral` reads a project file: resolved over `default`, then compared with `default`
    // alone. `default` sets every key a profile needs, so both must resolve.
    let base = default_layer().clone();
    let before = profile::resolve("fuzz", std::slice::from_ref(&base)).expect("default resolves");
    let after =
        profile::resolve("fuzz", &[base, layer.clone()]).expect("any parsed layer resolves over `default`");
    // The layer's own values win, and are reported as coming from it.
    if let Some(pids) = layer.cfg.limits.as_ref().and_then(|l| l.pids) {
        assert_eq!(after.pids, pids);
        assert_eq!(
            after.origins.get("limits.pids").map(String::as_str),
            Some(PROFILE_ORIGIN)
        );
    }
    if let Some(command) = layer.cfg.sandbox.as_ref().and_then(|s| s.command.as_ref()) {
        assert_eq!(&after.command, command);
    }
    serde_json::to_string(&after).expect("a resolved profile serialises");
    let _ = tighten::widenings(&before, &after);
    assert_eq!(
        tighten::widenings(&after, &after),
        Vec::new(),
        "a profile never widens itself"
    );
    if layer.cfg == profile::ProfileCfg::default() {
        assert_eq!(
            tighten::widenings(&before, &after),
            Vec::new(),
            "an empty file widens nothing"
        );
    }

    // As `--profile FILE` reads it: its `extends` chain first.
    match profile::extends_chain(PROFILE_ORIGIN, &layer.cfg) {
        Ok(mut chain) => {
            chain.push(layer);
            profile::resolve("fuzz", &chain).expect("a layer resolves over its extends chain");
        }
        Err(e) => check_profile_error(&e, text),
    }

    // The planner takes any resolved profile: a plan (which renders and serialises) or an error.
    let inv = invocation();
    let workspace = Path::new(WORKSPACE);
    let mut facts = HostFacts::default();
    for path in plan::probe_paths(&after, &inv, workspace) {
        let fact = PathFact {
            canonical: path.clone(),
            kind: FileKind::Dir,
            link: None,
        };
        facts.paths.insert(path, fact);
    }
    match plan::build(&after, &inv, workspace, &facts) {
        Ok(plan) => {
            let _ = render::render_plan(&plan);
            serde_json::to_string(&plan.redacted()).expect("a plan serialises");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// A profile error names the file and a position inside the text.
fn check_profile_error(e: &ProfileError, text: &str) {
    let shown = e.to_string();
    match e {
        ProfileError::Parse {
            origin, line, column, ..
        }
        | ProfileError::Sudo { origin, line, column } => {
            assert_eq!(origin, PROFILE_ORIGIN);
            assert!(
                shown.starts_with(&format!("{PROFILE_ORIGIN}:{line}:{column}: ")),
                "{shown}"
            );
            assert!(*line >= 1 && *line <= text.matches('\n').count() + 1, "{shown}");
            assert!(*column >= 1, "{shown}");
        }
        ProfileError::Extends { origin, .. } => assert_eq!(origin, PROFILE_ORIGIN),
        ProfileError::UnknownBuiltin(..) | ProfileError::Missing(..) => {
            panic!("parsing one file cannot give {e:?}")
        }
    }
}

/// A fixed invocation in [`WORKSPACE`].
fn invocation() -> Invocation {
    Invocation {
        cwd: PathBuf::from(WORKSPACE),
        home: PathBuf::from(HOME),
        user: "u".into(),
        uid: 1000,
        gid: 1000,
        host_env: BTreeMap::from([
            ("TERM".to_owned(), "xterm".to_owned()),
            ("PATH".to_owned(), "/usr/bin".to_owned()),
        ]),
        command: None,
        shell: false,
        env_files: Vec::new(),
        extra_env: Vec::new(),
        env_flags: Vec::new(),
        agent: None,
    }
}

/// Fuzzes an env file as `corral` reads one ([`envaudit::parse_env_file`]), then the secret
/// classifier ([`envaudit::classify`]) and [`envaudit::mask`] on every value and on the raw
/// text, and the audit of the file's entries.
pub fn envfile(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The classifier and the mask take any text, not only what parses.
    check_value("FUZZ", text);
    let entries = match envaudit::parse_env_file(ENV_ORIGIN, text) {
        Ok(entries) => entries,
        Err(e) => return check_env_error(&e, text),
    };
    let lines = text.matches('\n').count() + 1;
    let mut last_line = 0;
    for e in &entries {
        let mut chars = e.name.chars();
        assert!(
            chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_'),
            "{e:?}"
        );
        assert!(chars.all(|c| c.is_ascii_alphanumeric() || c == '_'), "{e:?}");
        assert!(
            e.line > last_line && e.line <= lines,
            "{e:?} after line {last_line}"
        );
        last_line = e.line;
        check_value(&e.name, &e.value);
    }

    // Written back with every value double-quoted and escaped, the file reads the same.
    let mut written = String::new();
    for e in &entries {
        written.push_str(&e.name);
        written.push_str("=\"");
        for c in e.value.chars() {
            match c {
                '\\' => written.push_str("\\\\"),
                '"' => written.push_str("\\\""),
                '\n' => written.push_str("\\n"),
                '\r' => written.push_str("\\r"),
                other => written.push(other),
            }
        }
        written.push_str("\"\n");
    }
    let again = envaudit::parse_env_file(ENV_ORIGIN, &written).expect("a written-back file parses");
    let pairs = |v: &[envaudit::EnvFileEntry]| -> Vec<(String, String)> {
        v.iter().map(|e| (e.name.clone(), e.value.clone())).collect()
    };
    assert_eq!(pairs(&again), pairs(&entries));

    // The audit holds masked values only.
    let candidates: Vec<(String, String, AuditSource)> = entries
        .iter()
        .map(|e| (e.name.clone(), e.value.clone(), AuditSource::ProjectFile))
        .collect();
    let audit = envaudit::audit(&candidates, &[], &[]);
    for (entry, (_, value, _)) in audit.entries.iter().zip(&candidates) {
        assert_eq!(entry.masked, envaudit::mask(value));
        let withheld = entry.decision == envaudit::Decision::Withheld;
        assert_eq!(withheld, entry.flagged.is_some(), "{entry:?}");
    }
    let _ = envaudit::render_audit(&audit);
}

/// What holds for any name and value: the classifier's rules agree with each other, and the mask
/// keeps at most a short prefix.
fn check_value(name: &str, value: &str) {
    let content = envaudit::classify_content(value);
    let reason = envaudit::classify(name, value);
    match (&content, &reason) {
        (Some(c), r) => assert_eq!(Some(c), r.as_ref(), "content rules come first"),
        (None, Some(envaudit::SecretReason::SecretName)) => assert!(envaudit::is_secret_name(name)),
        (None, Some(other)) => panic!("classify gave {other:?} with no content rule matching"),
        (None, None) => {}
    }
    if let Some(r) = &reason {
        let _ = (r.code(), r.text());
        serde_json::to_string(r).expect("a reason serialises");
    }

    let masked = envaudit::mask(value);
    let len = value.chars().count();
    let kept = masked
        .strip_suffix(&format!("…({len})"))
        .unwrap_or_else(|| panic!("{masked:?} does not end in the length {len}"));
    assert!(value.starts_with(kept), "{masked:?} keeps a prefix of the value");
    if len > 0 {
        assert!(kept.chars().count() < len, "{masked:?} keeps the whole value");
    }
    if len >= MASK_HIDES_FROM {
        assert!(!masked.contains(value), "{masked:?} shows the value");
    }
}

/// An env-file error names the file and a position inside the text.
fn check_env_error(e: &EnvFileError, text: &str) {
    let shown = e.to_string();
    let (origin, line, column) = match e {
        EnvFileError::ExpectedAssignment {
            origin, line, column, ..
        }
        | EnvFileError::BadKey {
            origin, line, column, ..
        }
        | EnvFileError::Unterminated {
            origin, line, column, ..
        }
        | EnvFileError::TrailingText {
            origin, line, column, ..
        }
        | EnvFileError::UnquotedMultiline {
            origin, line, column, ..
        } => (origin, *line, *column),
    };
    assert_eq!(origin, ENV_ORIGIN);
    assert!(
        shown.starts_with(&format!("{ENV_ORIGIN}:{line}:{column}: ")),
        "{shown}"
    );
    assert!(line >= 1 && line <= text.matches('\n').count() + 1, "{shown}");
    assert!(column >= 1, "{shown}");
}
