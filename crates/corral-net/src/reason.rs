//! Why the proxy let a connection through or refused it: one enum, stable codes.
//!
//! The code is what a denied client sees (`X-Corral-Reason`), what the audit log records and what
//! tests pin: never reword one, add a new variant instead.

use serde::{Deserialize, Serialize};

/// The reason behind a decision. `code()` is stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// An allow rule matched, no deny rule did, and every check after it passed.
    Allowed,
    /// No allow rule names this host (an empty allowlist allows nothing).
    NotInAllowlist,
    /// A deny rule matched (deny wins over allow).
    Denylisted,
    /// The host is allowed, but not on this port (80 and 443 unless a rule names the port).
    PortNotAllowed,
    /// The host name failed strict canonicalisation (NUL, CR/LF, spaces, `%`, non-ASCII, …).
    BadHost,
    /// Every address the name resolved to, or the literal address, is one the proxy never dials
    /// (loopback, private, link-local, metadata, CGNAT, ULA, multicast, reserved, this host's own)
    /// and no `network.allow_cidrs` entry allows it.
    ForbiddenAddress,
    /// The name did not resolve.
    ResolveFailed,
    /// No checked address accepted the connection.
    ConnectFailed,
    /// The TLS ClientHello in the tunnel names another server than the CONNECT host (domain
    /// fronting).
    SniMismatch,
    /// The TLS ClientHello in a tunnel to a named host carries no server name.
    SniMissing,
    /// A tunnel to port 80 or 443 whose first bytes are not a TLS ClientHello.
    NotTls,
    /// The `Host` header of a plain HTTP request names another host than its target.
    HostMismatch,
    /// The request head or SOCKS5 message is malformed, too large or too slow.
    BadRequest,
    /// A well-formed request the proxy does not carry (SOCKS5 BIND/UDP, chunked request bodies on
    /// plain HTTP, origin-form requests).
    Unsupported,
    /// The session's `network.max_egress_mb` is used up.
    EgressLimit,
    /// Too many connections are open at once.
    TooManyConnections,
}

impl Reason {
    /// Every reason, for documentation and tests.
    pub const ALL: [Reason; 16] = [
        Reason::Allowed,
        Reason::NotInAllowlist,
        Reason::Denylisted,
        Reason::PortNotAllowed,
        Reason::BadHost,
        Reason::ForbiddenAddress,
        Reason::ResolveFailed,
        Reason::ConnectFailed,
        Reason::SniMismatch,
        Reason::SniMissing,
        Reason::NotTls,
        Reason::HostMismatch,
        Reason::BadRequest,
        Reason::Unsupported,
        Reason::EgressLimit,
        Reason::TooManyConnections,
    ];

    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed",
            Reason::NotInAllowlist => "not_in_allowlist",
            Reason::Denylisted => "denylisted",
            Reason::PortNotAllowed => "port_not_allowed",
            Reason::BadHost => "bad_host",
            Reason::ForbiddenAddress => "forbidden_address",
            Reason::ResolveFailed => "resolve_failed",
            Reason::ConnectFailed => "connect_failed",
            Reason::SniMismatch => "sni_mismatch",
            Reason::SniMissing => "sni_missing",
            Reason::NotTls => "not_tls",
            Reason::HostMismatch => "host_mismatch",
            Reason::BadRequest => "bad_request",
            Reason::Unsupported => "unsupported",
            Reason::EgressLimit => "egress_limit",
            Reason::TooManyConnections => "too_many_connections",
        }
    }
}

impl Reason {
    /// The reason in words, for the body of a refusal and the user's summary.
    pub fn words(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed",
            Reason::NotInAllowlist => "the host is not in network.allow",
            Reason::Denylisted => "the host is in network.deny",
            Reason::PortNotAllowed => "the host is allowed, but not on this port (80 and 443 unless a rule names the port)",
            Reason::BadHost => "the host name is malformed",
            Reason::ForbiddenAddress => "the host resolves only to addresses the proxy never dials (loopback, private, link-local, metadata, …); network.allow_cidrs can allow a range",
            Reason::ResolveFailed => "the host name did not resolve",
            Reason::ConnectFailed => "no address of the host accepted the connection",
            Reason::SniMismatch => "the TLS ClientHello names another server than the one asked for (domain fronting)",
            Reason::SniMissing => "the TLS ClientHello names no server",
            Reason::NotTls => "a tunnel to port 80 or 443 must carry TLS (send http:// URLs as plain proxy requests)",
            Reason::HostMismatch => "the Host header names another host than the request's URL",
            Reason::BadRequest => "the request is malformed, too large or too slow",
            Reason::Unsupported => "the proxy does not carry this kind of request",
            Reason::EgressLimit => "the session's network.max_egress_mb is used up",
            Reason::TooManyConnections => "too many connections are open at once",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_match_serde() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.code()), "duplicate code {}", r.code());
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.code()));
        }
    }
}
