//! `corral sessions`, `corral diff`, `corral apply`, `corral discard`: the review-mode sessions
//! kept in `~/.local/state/corral/reviews`, what each changed, and putting those changes into the
//! project or throwing them away ([`crate::review`] does the work).
//!
//! Order in `apply`: the session must have ended (its upper layer no longer changes); the paths
//! named must be changes; exec triggers about to be applied are listed and confirmed on a terminal
//! (or `--yes`) before anything is written; then [`review::apply`] writes all or, on a conflict
//! without `--force`, nothing. Lists go to stdout; the question goes to stderr, the terminal it is
//! asked on.
//!
//! ID is optional everywhere (default: the most recent session). In `diff` and `apply` the first
//! argument is the ID when it starts a review session's id and names nothing in the current
//! directory; every other argument is a path (relative to the current directory when it is inside
//! the project, else to the project; `./NAME` forces a path).

use crate::review::{self, ApplyOpts, Change, ChangeKind, ReviewMeta};
use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Component, Path, PathBuf};

/// Characters of a session id shown in the list (ids are 16 hex digits; a prefix selects).
const SHORT_ID: usize = 12;

/// Flags of `corral sessions`.
#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `corral diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The session id (or a unique prefix; default: the most recent), then paths to show (a
    /// directory shows what is below it).
    #[arg(value_name = "ID|PATH")]
    pub args: Vec<String>,
    /// One line per changed path, and a total.
    #[arg(long)]
    pub stat: bool,
}

/// Flags of `corral apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The session id (or a unique prefix; default: the most recent), then the paths to apply
    /// (default: all; a directory applies what is below it). An exec trigger named here is applied.
    #[arg(value_name = "ID|PATH")]
    pub args: Vec<String>,
    /// Apply over paths changed on the host since the session started.
    #[arg(long)]
    pub force: bool,
    /// Apply exec triggers too (git hooks and config, .envrc, Makefiles, CI workflows, ...).
    #[arg(long)]
    pub include_triggers: bool,
}

/// Flags of `corral discard`.
#[derive(Debug, Args)]
pub struct DiscardArgs {
    /// The session id (or a unique prefix); default: the most recent.
    pub id: Option<String>,
}

/// A row of `corral sessions --json`.
#[derive(Debug, Serialize)]
struct SessionRow {
    id: String,
    workspace: PathBuf,
    profile: String,
    started_unix_ms: u64,
    ended: bool,
    changes: usize,
    triggers: usize,
    bytes: u64,
    dir: PathBuf,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `45s`, `12m`, `3h`, `2d`.
fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// `812B`, `3.4K`, `12.0M`.
fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["K", "M", "G", "T"];
    if b < 1024 {
        return format!("{b}B");
    }
    let mut v = b;
    let mut unit = 0;
    while v >= 1024 * 1024 && unit + 1 < UNITS.len() {
        v /= 1024;
        unit += 1;
    }
    format!("{}.{}{}", v / 1024, (v % 1024) * 10 / 1024, UNITS[unit])
}

fn short(id: &str) -> &str {
    id.get(..SHORT_ID).unwrap_or(id)
}

/// Runs `corral sessions`.
pub fn sessions(home: &Path, args: &SessionsArgs) -> anyhow::Result<i32> {
    let rows: Vec<SessionRow> = review::list(home)
        .into_iter()
        .map(|(dir, m, st)| SessionRow {
            id: m.id,
            workspace: m.workspace,
            profile: m.profile,
            started_unix_ms: m.started_unix_ms,
            ended: m.ended,
            changes: st.changes,
            triggers: st.triggers,
            bytes: st.bytes,
            dir,
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    if rows.is_empty() {
        println!("no review session in {}", review::reviews_dir(home).display());
        return Ok(0);
    }
    print!("{}", sessions_table(&rows, now_ms()));
    Ok(0)
}

fn sessions_table(rows: &[SessionRow], now: u64) -> String {
    let mut out = format!(
        "{:<12}  {:>4}  {:<7}  {:>7}  {:>8}  {:>7}  PROJECT\n",
        "ID", "AGE", "STATE", "CHANGES", "TRIGGERS", "BYTES"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<12}  {:>4}  {:<7}  {:>7}  {:>8}  {:>7}  {}\n",
            short(&r.id),
            age(now.saturating_sub(r.started_unix_ms)),
            if r.ended { "ended" } else { "running" },
            r.changes,
            r.triggers,
            human_bytes(r.bytes),
            crate::cmd_trust::printable(&r.workspace.to_string_lossy())
        ));
    }
    out
}

/// Splits `ID PATHS...`: the first argument is the id when it starts a review session's id and
/// names nothing in `cwd`.
fn split_id(ids: &[String], cwd: &Path, args: &[String]) -> (Option<String>, Vec<String>) {
    match args.split_first() {
        Some((first, rest))
            if !first.is_empty()
                && ids.iter().any(|id| id.starts_with(first.as_str()))
                && cwd.join(first).symlink_metadata().is_err() =>
        {
            (Some(first.clone()), rest.to_vec())
        }
        _ => (None, args.to_vec()),
    }
}

/// `arg` as a path relative to the project `workspace`: relative to `cwd` when `cwd` is inside the
/// project, else to the project; `.` and `..` resolved lexically.
fn workspace_rel(workspace: &Path, cwd: &Path, arg: &str) -> anyhow::Result<PathBuf> {
    let p = Path::new(arg);
    let full = if p.is_absolute() {
        p.to_path_buf()
    } else if cwd.starts_with(workspace) {
        cwd.join(p)
    } else {
        workspace.join(p)
    };
    let mut norm = PathBuf::new();
    for c in full.components() {
        match c {
            Component::ParentDir => {
                norm.pop();
            }
            Component::CurDir => {}
            other => norm.push(other),
        }
    }
    match norm.strip_prefix(workspace) {
        Ok(rel) => Ok(rel.to_path_buf()),
        Err(_) => bail!("{arg} is outside the session's project {}", workspace.display()),
    }
}

/// The session and the paths named on the command line.
fn session_and_paths(
    home: &Path,
    cwd: &Path,
    args: &[String],
) -> anyhow::Result<(PathBuf, ReviewMeta, Vec<PathBuf>)> {
    let (id, paths) = split_id(&review::ids(home), cwd, args);
    let (dir, meta) = review::load(home, id.as_deref())?;
    let only = paths
        .iter()
        .map(|p| workspace_rel(&meta.workspace, cwd, p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((dir, meta, only))
}

fn session_changes(dir: &Path, meta: &ReviewMeta) -> anyhow::Result<Vec<Change>> {
    review::changes(&dir.join(review::UPPER), &meta.workspace).with_context(|| {
        format!(
            "reading the changes of session {} (upper layer {})",
            meta.id,
            dir.join(review::UPPER).display()
        )
    })
}

/// Paths in `only` under which nothing changed.
fn unmatched<'a>(changes: &[Change], only: &'a [PathBuf]) -> Vec<&'a PathBuf> {
    only.iter()
        .filter(|o| !changes.iter().any(|c| c.path.starts_with(o)))
        .collect()
}

/// Refuses a session whose supervisor still runs: its upper layer may still change. One that did
/// not end cleanly (its supervisor was killed, so `ended` was never written) is over when no live
/// session under `runtime_root` has its id; without a runtime root, `ended` alone decides.
fn still_running(meta: &ReviewMeta, runtime_root: Option<&Path>, what: &str) -> anyhow::Result<()> {
    let live = runtime_root.is_none_or(|root| {
        corral_sys::session::live_sessions(root)
            .iter()
            .any(|s| s.id == meta.id)
    });
    if !meta.ended && live {
        bail!(
            "the session is still running; {what} after it ends (or corral kill {})",
            short(&meta.id)
        );
    }
    Ok(())
}

/// Runs `corral diff`.
pub fn diff(home: &Path, cwd: &Path, args: &DiffArgs) -> anyhow::Result<i32> {
    let (dir, meta, only) = session_and_paths(home, cwd, &args.args)?;
    let changes = session_changes(&dir, &meta)?;
    for p in unmatched(&changes, &only) {
        crate::say!(
            "corral: no change at {} in session {}",
            p.display(),
            short(&meta.id)
        );
    }
    if !meta.ended {
        crate::ui::info(&format!(
            "session {} is still running: its changes are still changing",
            short(&meta.id)
        ));
    }
    let text = review::render_diff(
        &changes,
        &dir.join(review::UPPER),
        &meta.workspace,
        args.stat,
        &only,
    );
    if changes.is_empty() {
        println!(
            "no changes in session {} ({})",
            short(&meta.id),
            meta.workspace.display()
        );
    } else {
        print!("{text}");
    }
    Ok(0)
}

fn letter(kind: ChangeKind) -> char {
    match kind {
        ChangeKind::Added => 'A',
        ChangeKind::Modified => 'M',
        ChangeKind::Deleted => 'D',
        ChangeKind::ModeChanged => 'm',
        ChangeKind::TypeChanged => 'T',
    }
}

fn shown(p: &Path) -> String {
    crate::cmd_trust::printable(&p.to_string_lossy())
}

/// Asks on the terminal whether to apply `triggers`; false when declined or nobody can be asked.
fn confirm_triggers(triggers: &[&Change], id: &str) -> anyhow::Result<bool> {
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "corral: about to apply {}:",
        plural(triggers.len(), "exec trigger")
    )?;
    for c in triggers {
        writeln!(err, "  {} {}", letter(c.kind), shown(&c.path))?;
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        writeln!(
            err,
            "corral: not a terminal, so nobody can be asked: nothing applied. Review them \
             (`corral diff {id} PATH`), then pass --yes."
        )?;
        return Ok(false);
    }
    write!(err, "apply these files your tools run or obey? [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer from stdin")?;
    let answer = answer.trim();
    let yes = answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes");
    if !yes {
        writeln!(err, "corral: nothing applied")?;
    }
    Ok(yes)
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("{n} {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Runs `corral apply`; exit code 1 on conflicts (nothing applied without --force) or when the
/// user did not confirm the exec triggers.
/// `runtime_root`: where live sessions are registered (`corral ps`), if known.
pub fn apply(
    home: &Path,
    cwd: &Path,
    runtime_root: Option<&Path>,
    args: &ApplyArgs,
    yes: bool,
) -> anyhow::Result<i32> {
    let (dir, meta, only) = session_and_paths(home, cwd, &args.args)?;
    still_running(&meta, runtime_root, "apply")?;
    let id = short(&meta.id).to_string();
    let changes = session_changes(&dir, &meta)?;
    if let Some(p) = unmatched(&changes, &only).first() {
        bail!(
            "no change at {} in session {id} (see `corral diff {id} --stat`)",
            p.display()
        );
    }
    if changes.is_empty() {
        println!("no changes in session {id}: nothing to apply");
        return Ok(0);
    }
    let opts = ApplyOpts {
        only: &only,
        force: args.force,
        include_triggers: args.include_triggers,
    };
    let triggers = review::triggers_to_apply(&changes, &opts);
    if !triggers.is_empty() && !yes && !confirm_triggers(&triggers, &id)? {
        return Ok(1);
    }
    let upper = dir.join(review::UPPER);
    let report = review::apply(&changes, &upper, &meta.workspace, meta.started_ctime, &opts)?;
    let kinds: std::collections::BTreeMap<&Path, ChangeKind> =
        changes.iter().map(|c| (c.path.as_path(), c.kind)).collect();
    if !report.conflicts.is_empty() {
        println!(
            "{} {} changed on the host since the session started:",
            if args.force {
                "applied over them (--force):"
            } else {
                "nothing applied:"
            },
            plural(report.conflicts.len(), "path")
        );
        for (p, why) in &report.conflicts {
            println!("  {}: {why}", shown(p));
        }
        if !args.force {
            println!("review them (`corral diff {id} PATH`), then `corral apply {id} --force` to overwrite");
            return Ok(1);
        }
    }
    if !report.applied.is_empty() {
        println!(
            "applied {} to {}:",
            plural(report.applied.len(), "change"),
            meta.workspace.display()
        );
        for p in &report.applied {
            let k = kinds.get(p.as_path()).map_or('?', |k| letter(*k));
            println!("  {k} {}", shown(p));
        }
    }
    if !report.skipped_triggers.is_empty() {
        println!(
            "skipped {} (files your tools run or obey; `corral diff {id} PATH`, then `corral apply {id} PATH` \
             or --include-triggers):",
            plural(report.skipped_triggers.len(), "exec trigger")
        );
        for p in &report.skipped_triggers {
            println!("  {}", shown(p));
        }
    }
    if !report.unsupported.is_empty() {
        println!("not applied:");
        for (p, why) in &report.unsupported {
            println!("  {}: {why}", shown(p));
        }
    }
    if only.is_empty() && report.skipped_triggers.is_empty() && report.unsupported.is_empty() {
        println!("everything applied; `corral discard {id}` removes the review session");
    }
    Ok(0)
}

/// Runs `corral discard`; `runtime_root` as for [`apply`].
pub fn discard(home: &Path, runtime_root: Option<&Path>, args: &DiscardArgs) -> anyhow::Result<i32> {
    let (dir, meta) = review::load(home, args.id.as_deref())?;
    still_running(&meta, runtime_root, "discard it")?;
    let stats = review::changes(&dir.join(review::UPPER), &meta.workspace)
        .map(|c| review::ChangeStats::of(&c))
        .ok();
    review::discard(&dir)?;
    let what = stats.map_or("its changes".to_string(), |s| {
        format!(
            "{} ({})",
            plural(s.changes, "change"),
            plural(s.triggers, "exec trigger")
        )
    });
    println!(
        "discarded session {} of {}: {what} not applied; removed {}",
        short(&meta.id),
        meta.workspace.display(),
        dir.display()
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn the_first_argument_is_an_id_only_when_it_starts_one_and_names_no_file() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("abc"), "").unwrap();
        let ids = vec!["abcdef0123456789".to_string(), "0123456789abcdef".to_string()];
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            split_id(&ids, tmp.path(), &s(&["0123", "src/a.rs"])),
            (Some("0123".to_string()), s(&["src/a.rs"]))
        );
        assert_eq!(
            split_id(&ids, tmp.path(), &s(&["src", "b"])),
            (None, s(&["src", "b"]))
        );
        // `abc` starts an id but is a file here: a path.
        assert_eq!(split_id(&ids, tmp.path(), &s(&["abc"])), (None, s(&["abc"])));
        assert_eq!(split_id(&ids, tmp.path(), &[]), (None, vec![]));
    }

    #[test]
    fn paths_are_made_relative_to_the_project() {
        let ws = Path::new("/home/u/proj");
        assert_eq!(
            workspace_rel(ws, Path::new("/home/u/proj/src"), "lib.rs").unwrap(),
            PathBuf::from("src/lib.rs")
        );
        assert_eq!(
            workspace_rel(ws, Path::new("/tmp"), "src/lib.rs").unwrap(),
            PathBuf::from("src/lib.rs")
        );
        assert_eq!(
            workspace_rel(ws, Path::new("/tmp"), "/home/u/proj/a/../b/.").unwrap(),
            PathBuf::from("b")
        );
        assert_eq!(
            workspace_rel(ws, Path::new("/home/u/proj"), ".").unwrap(),
            PathBuf::new()
        );
        assert_eq!(
            workspace_rel(ws, Path::new("/home/u/proj"), "../other")
                .unwrap_err()
                .to_string(),
            "../other is outside the session's project /home/u/proj"
        );
    }

    #[test]
    fn sessions_table_shows_short_ids_age_state_and_counts() {
        let row = |id: &str, ended, started| SessionRow {
            id: id.to_string(),
            workspace: PathBuf::from("/home/u/proj"),
            profile: "claude".into(),
            started_unix_ms: started,
            ended,
            changes: 12,
            triggers: 1,
            bytes: 3500,
            dir: PathBuf::from("/x"),
        };
        let rows = [
            row("0123456789abcdef", false, 1_000_000 - 5_000),
            row("fedcba9876543210", true, 0),
        ];
        assert_eq!(
            sessions_table(&rows, 1_000_000),
            "ID             AGE  STATE    CHANGES  TRIGGERS    BYTES  PROJECT\n\
             0123456789ab    5s  running       12         1     3.4K  /home/u/proj\n\
             fedcba987654   16m  ended         12         1     3.4K  /home/u/proj\n"
        );
    }

    #[test]
    fn sizes_and_ages_read_short() {
        assert_eq!(
            [0, 1023, 1024, 3500, 5 << 20, 3 << 30].map(human_bytes),
            ["0B", "1023B", "1.0K", "3.4K", "5.0M", "3.0G"].map(String::from)
        );
        assert_eq!(
            [999, 61_000, 7_200_000, 200_000_000].map(age),
            ["0s", "1m", "2h", "2d"].map(String::from)
        );
    }
}
