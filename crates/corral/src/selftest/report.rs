//! The selftest's matrix, for people (a table grouped by attack family) and for CI (JSON).

use super::{Row, Verdict};
use std::fmt::Write;
use std::time::Duration;

fn label(v: &Verdict) -> &'static str {
    match v {
        Verdict::Blocked => "BLOCKED",
        Verdict::Escaped => "ESCAPED",
        Verdict::Skipped => "SKIPPED",
        Verdict::Unproven => "UNPROVEN",
        Verdict::Error => "ERROR",
        Verdict::Detected => "DETECTED",
    }
}

fn paint(v: &Verdict, color: bool) -> String {
    let l = label(v);
    if !color {
        return format!("{l:<8}");
    }
    let code = match v {
        Verdict::Blocked | Verdict::Detected => "32",
        Verdict::Skipped => "33",
        _ => "1;31",
    };
    format!("\x1b[{code}m{l:<8}\x1b[0m")
}

fn count(rows: &[Row], v: &Verdict) -> usize {
    rows.iter().filter(|r| r.result == *v).count()
}

/// The human table: one line per attack (what stopped it, or why it was skipped), then the
/// summary line.
pub fn table(profile: &str, rows: &[Row], notes: &[String], elapsed: Duration, color: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "corral selftest: {} attacks on a sandbox from profile `{profile}`",
        rows.len()
    );
    for n in notes {
        let _ = writeln!(out, "  note: {n}");
    }
    let width = rows.iter().map(|r| r.id.len()).max().unwrap_or(10).min(44);
    let mut group = "";
    // Groups in the order they first appear (a group may run in more than one sandbox).
    let mut groups: Vec<&str> = Vec::new();
    for r in rows {
        if !groups.contains(&r.group.as_str()) {
            groups.push(&r.group);
        }
    }
    for r in groups
        .iter()
        .flat_map(|g| rows.iter().filter(move |r| r.group == *g))
    {
        if r.group != group {
            group = &r.group;
            let _ = writeln!(out, "\n{}", group.to_uppercase());
        }
        let why = match r.result {
            Verdict::Blocked => format!("{} — {}", r.layer, r.detail),
            Verdict::Escaped => format!("{} (should have been stopped by {})", r.detail, r.layer),
            Verdict::Skipped => r.detail.clone(),
            Verdict::Unproven => r.detail.clone(),
            Verdict::Error => format!("{} (control: {})", r.detail, r.control),
            Verdict::Detected => r.detail.clone(),
        };
        let _ = writeln!(out, "  {:<width$}  {}  {}", r.id, paint(&r.result, color), why);
    }
    let n = |v: Verdict| count(rows, &v);
    let bad = n(Verdict::Escaped) + n(Verdict::Unproven) + n(Verdict::Error);
    let _ = write!(out, "\n{} blocked, ", n(Verdict::Blocked));
    if n(Verdict::Detected) > 0 {
        let _ = write!(out, "{} detected without the sandbox, ", n(Verdict::Detected));
    }
    let _ = writeln!(
        out,
        "{} escaped, {} skipped, {} unproven, {} errors in {:.1} s",
        n(Verdict::Escaped),
        n(Verdict::Skipped),
        n(Verdict::Unproven),
        n(Verdict::Error),
        elapsed.as_secs_f64()
    );
    if bad > 0 {
        let _ = writeln!(
            out,
            "FAILED: {} escaped, {} could not be proven to detect an escape, {} gave no answer",
            n(Verdict::Escaped),
            n(Verdict::Unproven),
            n(Verdict::Error)
        );
    } else if n(Verdict::Detected) > 0 {
        let _ = writeln!(
            out,
            "control run: every attack that could be tried here got through without the sandbox"
        );
    } else {
        let _ = writeln!(
            out,
            "the sandbox held: every attack that could be tried here was blocked"
        );
    }
    out
}

/// The JSON document.
pub fn json(profile: &str, rows: &[Row], notes: &[String], elapsed: Duration) -> anyhow::Result<String> {
    let n = |v: Verdict| count(rows, &v);
    let bad = n(Verdict::Escaped) + n(Verdict::Unproven) + n(Verdict::Error);
    let doc = serde_json::json!({
        "profile": profile,
        "attacks": rows,
        "notes": notes,
        "summary": {
            "total": rows.len(),
            "blocked": n(Verdict::Blocked),
            "escaped": n(Verdict::Escaped),
            "skipped": n(Verdict::Skipped),
            "unproven": n(Verdict::Unproven),
            "errors": n(Verdict::Error),
            "detected": n(Verdict::Detected),
            "seconds": elapsed.as_secs_f64(),
        },
        "ok": bad == 0,
    });
    Ok(serde_json::to_string_pretty(&doc)?)
}
