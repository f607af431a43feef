//! `corral statusline`: one compact line of what is really enforced, read from inside the sandbox
//! (for Claude Code's `statusLine` setting, which runs it with a JSON description of the session
//! on stdin). Each part is a reading, not a claim from the plan: `no_new_privs` and seccomp from
//! `/proc/self/status`, the network from the interfaces and from the proxy's own totals, Landlock
//! from the level init reports after enforcing it (`CORRAL_LANDLOCK`).

use std::io::{Read, Write};
use std::time::Duration;

/// How long the proxy has to answer (the status line must not hang the agent's prompt).
const PROXY_TIMEOUT: Duration = Duration::from_millis(300);

/// Prints the line; always exits 0 (a status line that fails shows nothing useful).
pub fn statusline() -> anyhow::Result<i32> {
    // Claude Code writes a JSON document to stdin; we do not need it, but read it so the writer
    // never blocks on a full pipe.
    let mut sink = Vec::new();
    let _ = std::io::stdin().take(1 << 20).read_to_end(&mut sink);
    println!("{}", line());
    Ok(0)
}

fn line() -> String {
    if std::env::var_os("CORRAL_SANDBOX").is_none() {
        return "corral ▸ NOT in a corral sandbox".to_string();
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_default()
    };
    let mut parts = vec![network()];
    // Set by the sandbox's init after it enforced Landlock (not by the plan).
    parts.push(match std::env::var(corral_sys::init::LANDLOCK_ENV).as_deref() {
        Ok(v) if v.starts_with("full") => format!("LL{}", v.trim_start_matches("full abi")),
        Ok(v) if v.starts_with("partial") => format!("LL{} partial", v.trim_start_matches("partial abi")),
        _ => "LL OFF".into(),
    });
    parts.push(if field("NoNewPrivs:") == "1" {
        "nnp".into()
    } else {
        "nnp OFF".into()
    });
    parts.push(if field("Seccomp:") == "2" {
        "seccomp".into()
    } else {
        "seccomp OFF".into()
    });
    format!("corral ▸ {}", parts.join(" · "))
}

/// `net:none` (only lo), `net:proxy N✓ M✗` (the proxy's totals), or `net:host`.
fn network() -> String {
    let devs = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
    let only_lo = devs
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .all(|name| name.trim() == "lo");
    if !only_lo {
        return "net:host".into();
    }
    match proxy_totals() {
        Some((allowed, denied)) => format!("net:proxy {allowed}✓ {denied}✗"),
        None if std::env::var_os("HTTPS_PROXY").is_some() => "net:proxy".into(),
        None => "net:none".into(),
    }
}

/// The proxy's allowed and denied counts, from `GET /corral/status` on its port.
fn proxy_totals() -> Option<(u64, u64)> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], corral_core::plan::PROXY_PORT));
    let mut s = std::net::TcpStream::connect_timeout(&addr, PROXY_TIMEOUT).ok()?;
    s.set_read_timeout(Some(PROXY_TIMEOUT)).ok()?;
    s.write_all(b"GET /corral/status HTTP/1.1\r\nHost: corral\r\n\r\n")
        .ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    let body = reply.split("\r\n\r\n").nth(1)?;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    Some((v["allowed"].as_u64()?, v["denied"].as_u64()?))
}
