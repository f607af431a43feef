//! What the proxy and the DNS sink tell the audit log: one record per connection (its decision,
//! where it went, bytes both ways, how long), one per DNS query, and the session's summary.
//!
//! Refusals and DNS queries reach the caller's sink at most [`RECORDS_PER_SECOND`] a second;
//! beyond that (a connection or DNS storm) they are counted in the summary's `unrecorded`, never
//! silently dropped. Allowed connections, and any that sent bytes, are always recorded. The
//! summary counts everything.

use crate::reason::Reason;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Records passed to the sink per second at most.
pub const RECORDS_PER_SECOND: u64 = 200;
/// Hosts listed one by one in the summary; the rest are counted under `(others)`.
pub const SUMMARY_HOSTS: usize = 200;

/// How a connection reached the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Proto {
    /// HTTP `CONNECT` tunnel.
    Connect,
    /// Absolute-form plain HTTP request.
    Http,
    /// SOCKS5 `CONNECT`.
    Socks5,
    /// Not known yet (the first bytes never came, or were neither).
    Unknown,
    /// The sandbox's status line asking for the totals (not a connection out; not recorded).
    Status,
}

/// One connection through the proxy, recorded when it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnRecord {
    /// How it came in.
    pub proto: Proto,
    /// The host asked for, canonical when it parsed (else as sent, escaped).
    pub host: String,
    /// The port asked for (0: unknown).
    pub port: u16,
    /// The address dialled, when one was.
    pub addr: Option<String>,
    /// Allowed, or why not. A tunnel refused after it opened (SNI, egress cap) carries that
    /// reason.
    pub reason: Reason,
    /// The rule that decided (allow/deny entry, `allow_cidrs` entry).
    pub rule: Option<String>,
    /// More words (the address class refused, the SNI seen, an error).
    pub detail: Option<String>,
    /// Bytes sent from the sandbox to the host.
    pub up: u64,
    /// Bytes sent from the host to the sandbox.
    pub down: u64,
    /// From accept to close, in milliseconds.
    pub duration_ms: u64,
}

impl ConnRecord {
    /// A record for a connection that has just come in.
    pub fn new() -> ConnRecord {
        ConnRecord {
            proto: Proto::Unknown,
            host: String::new(),
            port: 0,
            addr: None,
            reason: Reason::BadRequest,
            rule: None,
            detail: None,
            up: 0,
            down: 0,
            duration_ms: 0,
        }
    }
}

impl Default for ConnRecord {
    fn default() -> Self {
        ConnRecord::new()
    }
}

/// What the network layer reports to its caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum NetEvent {
    /// A connection ended.
    Conn(ConnRecord),
    /// A request through the agent API gateway.
    Api(crate::gateway::ApiRecord),
    /// The DNS sink refused a query.
    Dns {
        /// The name asked for, rendered like dig (odd bytes escaped).
        name: String,
        /// Record type (`A`, `TXT`, …).
        qtype: String,
        /// `udp` or `tcp`.
        transport: &'static str,
    },
}

/// Per-host totals in the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostTotals {
    /// Connections allowed.
    pub allowed: u64,
    /// Connections refused.
    pub denied: u64,
    /// Why they were refused.
    pub reasons: BTreeSet<Reason>,
    /// Bytes up.
    pub up: u64,
    /// Bytes down.
    pub down: u64,
}

/// The session's network, in totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Connections allowed.
    pub allowed: u64,
    /// Connections refused (before or after they opened).
    pub denied: u64,
    /// Per host (at most [`SUMMARY_HOSTS`], then `(others)`), `host:port`.
    pub hosts: BTreeMap<String, HostTotals>,
    /// DNS queries refused by the sink.
    pub dns_queries: u64,
    /// Distinct names asked of the sink (at most [`SUMMARY_HOSTS`]).
    pub dns_names: BTreeSet<String>,
    /// Bytes up, all connections.
    pub up: u64,
    /// Bytes down, all connections.
    pub down: u64,
    /// Records not passed to the sink (rate cap); counted here.
    pub unrecorded: u64,
    /// Requests through the agent API gateway.
    pub api_requests: u64,
}

impl Summary {
    /// Adds a connection.
    pub fn add_conn(&mut self, r: &ConnRecord) {
        let key = if r.host.is_empty() {
            "(no request)".to_string()
        } else if r.port == 0 {
            r.host.clone()
        } else {
            format!("{}:{}", r.host, r.port)
        };
        let key = if self.hosts.contains_key(&key) || self.hosts.len() < SUMMARY_HOSTS {
            key
        } else {
            "(others)".to_string()
        };
        let h = self.hosts.entry(key).or_default();
        if r.reason == Reason::Allowed {
            self.allowed += 1;
            h.allowed += 1;
        } else {
            self.denied += 1;
            h.denied += 1;
            h.reasons.insert(r.reason);
        }
        h.up += r.up;
        h.down += r.down;
        self.up += r.up;
        self.down += r.down;
    }

    /// Adds a DNS query.
    pub fn add_dns(&mut self, name: &str) {
        self.dns_queries += 1;
        if self.dns_names.len() < SUMMARY_HOSTS {
            self.dns_names.insert(name.to_string());
        }
    }

    /// One line for the user at the session's end, e.g. `12 allowed to 3 hosts, 2 denied:
    /// evil.example:443 (not_in_allowlist); 4 DNS queries refused`.
    pub fn line(&self) -> String {
        let allowed_hosts = self.hosts.values().filter(|h| h.allowed > 0).count();
        let mut s = format!(
            "{} allowed to {} host{}, {} denied",
            self.allowed,
            allowed_hosts,
            if allowed_hosts == 1 { "" } else { "s" },
            self.denied
        );
        let denied: Vec<String> = self
            .hosts
            .iter()
            .filter(|(_, h)| h.denied > 0)
            .map(|(name, h)| {
                let why: Vec<&str> = h.reasons.iter().map(|r| r.code()).collect();
                format!("{name} ({})", why.join(", "))
            })
            .collect();
        if !denied.is_empty() {
            const SHOWN: usize = 5;
            s.push_str(": ");
            s.push_str(&denied.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", "));
            if denied.len() > SHOWN {
                s.push_str(&format!(", and {} more", denied.len() - SHOWN));
            }
        }
        if self.api_requests > 0 {
            s.push_str(&format!(
                "; {} API request(s) through the gateway",
                self.api_requests
            ));
        }
        if self.dns_queries > 0 {
            s.push_str(&format!(
                "; {} DNS quer{} refused",
                self.dns_queries,
                if self.dns_queries == 1 { "y" } else { "ies" }
            ));
        }
        s
    }
}

/// Admits records to the sink at a bounded rate (fixed one-second windows).
#[derive(Debug, Default)]
pub struct RateCap {
    window: u64,
    used: u64,
}

impl RateCap {
    /// Whether a record at `now_s` (seconds on any monotonic clock) may go to the sink.
    pub fn admit(&mut self, now_s: u64) -> bool {
        if now_s != self.window {
            self.window = now_s;
            self.used = 0;
        }
        self.used += 1;
        self.used <= RECORDS_PER_SECOND
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn conn(host: &str, port: u16, reason: Reason, up: u64) -> ConnRecord {
        ConnRecord {
            host: host.into(),
            port,
            reason,
            up,
            ..ConnRecord::new()
        }
    }

    #[test]
    fn summary_line_names_denied_hosts_and_reasons() {
        let mut s = Summary::default();
        for _ in 0..3 {
            s.add_conn(&conn("pypi.org", 443, Reason::Allowed, 10));
        }
        s.add_conn(&conn("files.pythonhosted.org", 443, Reason::Allowed, 5));
        s.add_conn(&conn("evil.example", 443, Reason::NotInAllowlist, 0));
        s.add_conn(&conn("pypi.org", 443, Reason::SniMismatch, 7));
        s.add_dns("x.evil.example");
        assert_eq!(
            s.line(),
            "4 allowed to 2 hosts, 2 denied: evil.example:443 (not_in_allowlist), pypi.org:443 (sni_mismatch); 1 DNS query refused"
        );
        assert_eq!(s.up, 42);
    }

    #[test]
    fn summary_host_list_is_bounded() {
        let mut s = Summary::default();
        for i in 0..(SUMMARY_HOSTS + 50) {
            s.add_conn(&conn(&format!("h{i}.example"), 443, Reason::NotInAllowlist, 0));
        }
        assert_eq!(s.hosts.len(), SUMMARY_HOSTS + 1);
        assert_eq!(s.hosts["(others)"].denied, 50);
        assert_eq!(s.denied, (SUMMARY_HOSTS + 50) as u64);
    }

    #[test]
    fn rate_cap_admits_per_window() {
        let mut c = RateCap::default();
        let admitted = (0..RECORDS_PER_SECOND + 10).filter(|_| c.admit(7)).count() as u64;
        assert_eq!(admitted, RECORDS_PER_SECOND);
        assert!(c.admit(8));
    }
}
