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
    }
}

fn paint(v: &Verdict, color: bool) -> String {
    let l = label(v);
    if !color {
        return format!("{l:<8}");
    }
    let code = match v {
        Verdict::Blocked => "32",
        Verdict::Skipped => "33",
        _ => "1;31",
    };
    format!("\x1b[{code}m{l:<8}\x1b[0m")
}

fn counts(rows: &[Row]) -> [(Verdict, usize); 5] {
    [
        Verdict::Blocked,
        Verdict::Escaped,
        Verdict::Skipped,
        Verdict::Unproven,
        Verdict::Error,
    ]
    .map(|v| {
        let n = rows.iter().filter(|r| r.result == v).count();
        (v, n)
    })
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
    for r in rows {
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
        };
        let _ = writeln!(out, "  {:<width$}  {}  {}", r.id, paint(&r.result, color), why);
    }
    let c = counts(rows);
    let _ = writeln!(
        out,
        "\n{} blocked, {} escaped, {} skipped, {} unproven, {} errors in {:.1} s",
        c[0].1,
        c[1].1,
        c[2].1,
        c[3].1,
        c[4].1,
        elapsed.as_secs_f64()
    );
    if c[1].1 + c[3].1 + c[4].1 == 0 {
        let _ = writeln!(
            out,
            "the sandbox held: every attack that could be tried here was blocked"
        );
    } else {
        let _ = writeln!(
            out,
            "FAILED: {} escaped, {} could not be proven to detect an escape, {} gave no answer",
            c[1].1, c[3].1, c[4].1
        );
    }
    out
}

/// The JSON document.
pub fn json(profile: &str, rows: &[Row], notes: &[String], elapsed: Duration) -> anyhow::Result<String> {
    let c = counts(rows);
    let doc = serde_json::json!({
        "profile": profile,
        "attacks": rows,
        "notes": notes,
        "summary": {
            "total": rows.len(),
            "blocked": c[0].1,
            "escaped": c[1].1,
            "skipped": c[2].1,
            "unproven": c[3].1,
            "errors": c[4].1,
            "seconds": elapsed.as_secs_f64(),
        },
        "ok": c[1].1 + c[3].1 + c[4].1 == 0,
    });
    Ok(serde_json::to_string_pretty(&doc)?)
}
