//! The egress decision: which hosts and ports a sandboxed client may reach, and which addresses
//! the proxy may dial. Pure: the proxy asks, this module answers with a value.
//!
//! Two checks, in this order:
//! 1. [`Policy::decide`] on the canonical host ([`crate::target`]) and port, from `network.allow`
//!    and `network.deny`.
//! 2. [`Policy::check_addr`] on every address the proxy is about to dial (the literal, or each
//!    address the name resolved to), from `network.allow_cidrs`, this host's own addresses and
//!    [`classify`]. A name the rules allow can still point at `127.0.0.1` (DNS rebinding); this
//!    check is what stops it.
//!
//! Host rule syntax (`network.allow` and `network.deny`), each with an optional `:port`:
//! - `example.com`: exactly that name (not `www.example.com`).
//! - `*.example.com`: its subdomains at any depth (`a.example.com`, `a.b.example.com`), not
//!   `example.com` itself. Matching is by whole labels: never `evil-example.com`,
//!   `xexample.com` or `example.com.evil.net`.
//! - `*`: any host, names and IP literals alike.
//! - `1.2.3.4`, `[2001:db8::1]`: exactly that address, as an IP-literal target. Name rules never
//!   match IP-literal targets, and IP rules never match names (whatever they resolve to).
//! - `example.com:8443`, `[::1]:8080`, `*.example.com:22`, `*:22`: the same, on that port only.
//!
//! Rule hosts are canonicalised exactly like targets (lowercase, one trailing dot stripped,
//! inet_aton IPv4 forms, IPv4-mapped IPv6 as IPv4), so a rule and a target that name one
//! destination compare equal. A `*` anywhere but as the whole first label is an error, as is any
//! host a target could not be; duplicates are harmless.
//!
//! Precedence: a deny rule that matches the host and the port wins ([`Reason::Denylisted`]; a deny
//! rule without a port denies every port). Otherwise an allow rule that matches the host and the
//! port allows ([`Reason::Allowed`]; an allow rule without a port allows [`DEFAULT_PORTS`] only).
//! Otherwise, if some allow rule matches the host on another port, [`Reason::PortNotAllowed`] with
//! the first such rule in `rule`, so the user sees which rule to add a port to; else
//! [`Reason::NotInAllowlist`]. An empty allowlist allows nothing. The first matching rule in the
//! user's order is the one reported.
//!
//! `network.allow_cidrs`: `10.0.0.0/8`, `fd00::/8`, a bare address (`/32` or `/128`). Host bits
//! may not be set (`10.0.0.1/8` is an error, not `10.0.0.0/8`), so an entry means what it says.
//! An IPv4-mapped entry with a prefix of at least 96 is stored as the IPv4 range it covers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::reason::Reason;
use crate::target::{canonical_host, parse_port, split_authority, Host, HostError};

/// The ports an allow rule without `:port` allows: plain HTTP and HTTPS.
pub const DEFAULT_PORTS: [u16; 2] = [80, 443];

/// Bits in an IPv4 address.
const V4_BITS: u8 = 32;
/// Bits in an IPv6 address.
const V6_BITS: u8 = 128;
/// Length of the IPv4-mapped prefix `::ffff:0:0/96` (the IPv4 address is the last 32 bits).
const MAPPED_PREFIX_LEN: u8 = 96;

/// `network.allow`, `network.deny` and `network.allow_cidrs`, parsed, and this host's own
/// addresses. Build it with [`Policy::new`].
#[derive(Debug, Clone)]
pub struct Policy {
    allow: Vec<HostRule>,
    deny: Vec<HostRule>,
    allow_cidrs: Vec<CidrRule>,
    host_addrs: Vec<IpAddr>,
}

/// A rule the policy could not read, naming its list, the entry as written and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("network.{list} entry {entry:?}: {why}")]
pub struct RuleError {
    /// `"allow"`, `"deny"` or `"allow_cidrs"`.
    pub list: &'static str,
    /// The entry as the user wrote it.
    pub entry: String,
    /// What is wrong with it, and the fix when it is known.
    pub why: String,
}

/// The answer to [`Policy::decide`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Why: [`Reason::Allowed`], [`Reason::Denylisted`], [`Reason::NotInAllowlist`],
    /// [`Reason::PortNotAllowed`] or [`Reason::BadHost`].
    pub reason: Reason,
    /// The rule text that matched, as the user wrote it: the allow rule (allowed), the deny rule
    /// (denylisted), the first allow rule matching the host on other ports (port not allowed);
    /// `None` otherwise.
    pub rule: Option<String>,
}

impl Decision {
    /// Whether the connection may go on to the address check.
    pub fn allowed(&self) -> bool {
        self.reason == Reason::Allowed
    }
}

/// Why an address is one the proxy never dials unless `network.allow_cidrs` contains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AddrClass {
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 ranges, local-use NAT64 `64:ff9b:1::/48`.
    Private,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// A cloud instance-metadata endpoint (credentials live there).
    Metadata,
    /// Carrier-grade NAT, `100.64.0.0/10`.
    Cgnat,
    /// IPv6 unique local addresses, `fc00::/7`.
    Ula,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// Reserved, benchmarking, discard, Teredo, site-local, IPv4-compatible IPv6.
    Reserved,
    /// Documentation ranges (never routed).
    Documentation,
    /// One of this host's own interface addresses.
    HostAddress,
}

impl AddrClass {
    /// The stable code (the same as its serde form).
    pub fn as_str(self) -> &'static str {
        match self {
            AddrClass::Unspecified => "unspecified",
            AddrClass::Loopback => "loopback",
            AddrClass::Private => "private",
            AddrClass::LinkLocal => "link_local",
            AddrClass::Metadata => "metadata",
            AddrClass::Cgnat => "cgnat",
            AddrClass::Ula => "ula",
            AddrClass::Multicast => "multicast",
            AddrClass::Reserved => "reserved",
            AddrClass::Documentation => "documentation",
            AddrClass::HostAddress => "host_address",
        }
    }
}

/// The answer to [`Policy::check_addr`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrCheck {
    /// An ordinary public address: dial it.
    Public,
    /// A forbidden address that this `network.allow_cidrs` entry (as written) allows.
    AllowedByCidr(String),
    /// Never dialled.
    Forbidden(AddrClass),
}

/// What a host pattern matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// `*`: every host.
    Any,
    /// One canonical host, name or address.
    Exact(Host),
    /// `*.example.com`, stored as `.example.com`: names that end in it, which have at least one
    /// label more (canonical names have no empty labels).
    Subdomains(String),
}

/// One `network.allow` or `network.deny` entry.
#[derive(Debug, Clone)]
struct HostRule {
    /// As the user wrote it, for [`Decision::rule`].
    text: String,
    pattern: Pattern,
    /// `None`: [`DEFAULT_PORTS`] in an allow rule, every port in a deny rule.
    port: Option<u16>,
}

impl HostRule {
    fn matches_host(&self, host: &Host) -> bool {
        match (&self.pattern, host) {
            (Pattern::Any, Host::Name(_) | Host::Ip(_)) => true,
            (Pattern::Exact(want), got) => want == got,
            (Pattern::Subdomains(dotted), Host::Name(name)) => name.ends_with(dotted.as_str()),
            (Pattern::Subdomains(_), Host::Ip(_)) => false,
        }
    }
}

/// An IP range, network address and prefix length, host bits clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Net {
    V4 { net: Ipv4Addr, len: u8 },
    V6 { net: Ipv6Addr, len: u8 },
}

impl Net {
    fn contains(self, addr: IpAddr) -> bool {
        match (self, addr) {
            (Net::V4 { net, len }, IpAddr::V4(a)) => a.to_bits() & v4_mask(len) == net.to_bits(),
            (Net::V6 { net, len }, IpAddr::V6(a)) => a.to_bits() & v6_mask(len) == net.to_bits(),
            (Net::V4 { .. }, IpAddr::V6(_)) | (Net::V6 { .. }, IpAddr::V4(_)) => false,
        }
    }
}

/// The network mask of an IPv4 prefix length (`/0` → 0).
fn v4_mask(len: u8) -> u32 {
    u32::MAX
        .checked_shl(u32::from(V4_BITS.saturating_sub(len)))
        .unwrap_or(0)
}

/// The network mask of an IPv6 prefix length (`/0` → 0).
fn v6_mask(len: u8) -> u128 {
    u128::MAX
        .checked_shl(u32::from(V6_BITS.saturating_sub(len)))
        .unwrap_or(0)
}

/// One `network.allow_cidrs` entry.
#[derive(Debug, Clone)]
struct CidrRule {
    text: String,
    net: Net,
}

impl Policy {
    /// Parses the rules; the first entry that cannot be read is the error. `host_addrs` are this
    /// host's own interface addresses, which the proxy never dials.
    pub fn new(
        allow: &[String],
        deny: &[String],
        allow_cidrs: &[String],
        host_addrs: &[IpAddr],
    ) -> Result<Policy, RuleError> {
        Ok(Policy {
            allow: allow
                .iter()
                .map(|e| parse_host_rule("allow", e))
                .collect::<Result<_, _>>()?,
            deny: deny
                .iter()
                .map(|e| parse_host_rule("deny", e))
                .collect::<Result<_, _>>()?,
            allow_cidrs: allow_cidrs
                .iter()
                .map(|e| parse_cidr_rule(e))
                .collect::<Result<_, _>>()?,
            host_addrs: host_addrs.iter().map(IpAddr::to_canonical).collect(),
        })
    }

    /// Decides whether `host:port` may be reached (see the module doc for precedence). `host`
    /// must be canonical ([`crate::target::canonical_host`]); one that is not is refused as
    /// [`Reason::BadHost`], so a hand-built `Host::Name("EVIL.com")` cannot slip past
    /// `deny = ["evil.com"]`.
    pub fn decide(&self, host: &Host, port: u16) -> Decision {
        if canonical_host(&host.to_string()).as_ref() != Ok(host) {
            return decision(Reason::BadHost, None);
        }
        // Deny wins: checked first, on its own port or on every port.
        if let Some(rule) = self
            .deny
            .iter()
            .find(|r| r.matches_host(host) && r.port.is_none_or(|p| p == port))
        {
            return decision(Reason::Denylisted, Some(rule));
        }
        let port_allowed = |rule: &HostRule| match rule.port {
            Some(p) => p == port,
            None => DEFAULT_PORTS.contains(&port),
        };
        if let Some(rule) = self
            .allow
            .iter()
            .find(|r| r.matches_host(host) && port_allowed(r))
        {
            return decision(Reason::Allowed, Some(rule));
        }
        match self.allow.iter().find(|r| r.matches_host(host)) {
            Some(rule) => decision(Reason::PortNotAllowed, Some(rule)),
            None => decision(Reason::NotInAllowlist, None),
        }
    }

    /// Whether the proxy may dial `addr`. An `allow_cidrs` entry containing it (or, for an
    /// IPv4-mapped or NAT64 `64:ff9b::/96` address, its embedded IPv4 address) allows it; else
    /// every class of [`classify`] is forbidden, then this host's own addresses.
    pub fn check_addr(&self, addr: IpAddr) -> AddrCheck {
        let embedded = mapped_or_nat64_v4(addr).map(IpAddr::V4);
        let forms = [Some(addr), embedded];
        let candidates = forms.iter().flatten();
        if let Some(rule) = self
            .allow_cidrs
            .iter()
            .find(|r| candidates.clone().any(|&a| r.net.contains(a)))
        {
            return AddrCheck::AllowedByCidr(rule.text.clone());
        }
        // The class first: "loopback" says more than "one of this host's addresses".
        if let Some(class) = classify(addr) {
            return AddrCheck::Forbidden(class);
        }
        if candidates.clone().any(|a| self.host_addrs.contains(a)) {
            return AddrCheck::Forbidden(AddrClass::HostAddress);
        }
        AddrCheck::Public
    }

    /// Whether there is no allow rule at all (then nothing is allowed).
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty()
    }
}

fn decision(reason: Reason, rule: Option<&HostRule>) -> Decision {
    Decision {
        reason,
        rule: rule.map(|r| r.text.clone()),
    }
}

/// The rule-author's version of a [`HostError`].
fn host_why(err: &HostError) -> String {
    match err {
        HostError::NonAscii => "not ASCII: write the xn-- (punycode) form".to_owned(),
        other => other.to_string(),
    }
}

/// Parses one `network.allow` / `network.deny` entry (syntax in the module doc).
fn parse_host_rule(list: &'static str, text: &str) -> Result<HostRule, RuleError> {
    let error = |why: String| RuleError {
        list,
        entry: text.to_owned(),
        why,
    };
    let rule = |pattern, port| HostRule {
        text: text.to_owned(),
        pattern,
        port,
    };
    if text == "*" {
        return Ok(rule(Pattern::Any, None));
    }
    if let Some(port) = text.strip_prefix("*:") {
        let port = parse_port(port).map_err(|e| error(host_why(&e)))?;
        return Ok(rule(Pattern::Any, Some(port)));
    }
    let (subdomains, rest) = match text.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if rest.contains('*') {
        return Err(error(
            "`*` is allowed only as a whole first label (`*.example.com`) or alone (`*`)".to_owned(),
        ));
    }
    let (host, port) = split_authority(rest).map_err(|e| error(host_why(&e)))?;
    let host = canonical_host(host).map_err(|e| error(host_why(&e)))?;
    let pattern = match (subdomains, host) {
        (false, host) => Pattern::Exact(host),
        (true, Host::Name(name)) => Pattern::Subdomains(format!(".{name}")),
        (true, Host::Ip(_)) => {
            return Err(error(
                "`*.` must be followed by a host name, not an IP address".to_owned(),
            ))
        }
    };
    Ok(rule(pattern, port))
}

/// Parses one `network.allow_cidrs` entry: `addr/len` or a bare address, host bits clear.
fn parse_cidr_rule(text: &str) -> Result<CidrRule, RuleError> {
    let error = |why: String| RuleError {
        list: "allow_cidrs",
        entry: text.to_owned(),
        why,
    };
    let (addr_text, len_text) = match text.split_once('/') {
        Some((addr, len)) => (addr, Some(len)),
        None => (text, None),
    };
    let addr = addr_text.parse::<IpAddr>().map_err(|_| {
        error(format!(
            "{addr_text:?} is not an IP address: write an address (10.1.2.3, fd00::1) or a \
             range (10.0.0.0/8, fd00::/8)"
        ))
    })?;
    let max = match addr {
        IpAddr::V4(_) => V4_BITS,
        IpAddr::V6(_) => V6_BITS,
    };
    let len = match len_text {
        None => max,
        Some(len) => {
            let bad_len = || error(format!("prefix length {len:?} is not a number from 0 to {max}"));
            let plain_digits = !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit());
            if !plain_digits || (len.starts_with('0') && len != "0") {
                return Err(bad_len());
            }
            let len = len.parse::<u8>().map_err(|_| bad_len())?;
            if len > max {
                return Err(error(format!("prefix /{len} is too long: at most /{max}")));
            }
            len
        }
    };
    let net = match addr {
        IpAddr::V4(a) => {
            let net = Ipv4Addr::from_bits(a.to_bits() & v4_mask(len));
            if net != a {
                return Err(error(format!("host bits set: did you mean {net}/{len}?")));
            }
            Net::V4 { net, len }
        }
        IpAddr::V6(a) => {
            let net = Ipv6Addr::from_bits(a.to_bits() & v6_mask(len));
            if net != a {
                return Err(error(format!("host bits set: did you mean {net}/{len}?")));
            }
            // An IPv4-mapped range is the IPv4 range it reaches (targets are canonicalised so).
            match (net.to_ipv4_mapped(), len.checked_sub(MAPPED_PREFIX_LEN)) {
                (Some(v4), Some(v4_len)) => Net::V4 { net: v4, len: v4_len },
                _ => Net::V6 { net, len },
            }
        }
    };
    Ok(CidrRule {
        text: text.to_owned(),
        net,
    })
}

/// An IPv4 range of [`classify`].
#[derive(Debug, Clone, Copy)]
struct V4Range {
    net: Ipv4Addr,
    len: u8,
    class: AddrClass,
}

const fn v4(net: [u8; 4], len: u8, class: AddrClass) -> V4Range {
    V4Range {
        net: Ipv4Addr::new(net[0], net[1], net[2], net[3]),
        len,
        class,
    }
}

/// Cloud instance-metadata endpoints, checked before the ranges that contain them.
const V4_METADATA: [Ipv4Addr; 3] = [
    // AWS, GCP, Azure IMDS, OpenStack, DigitalOcean, Oracle, … (inside 169.254.0.0/16).
    Ipv4Addr::new(169, 254, 169, 254),
    // Azure wireserver (a public-looking address; serves VM agent config and certificates).
    Ipv4Addr::new(168, 63, 129, 16),
    // Alibaba Cloud metadata (inside 100.64.0.0/10).
    Ipv4Addr::new(100, 100, 100, 200),
];

/// IPv4 ranges the proxy never dials (IANA IPv4 Special-Purpose Address Registry, RFC 6890).
/// The first range that contains an address decides its class.
const V4_RANGES: [V4Range; 14] = [
    // "This network" (RFC 791, RFC 1122 §3.2.1.3); Linux dials 0.0.0.0 as loopback.
    v4([0, 0, 0, 0], 8, AddrClass::Unspecified),
    // Loopback (RFC 1122 §3.2.1.3).
    v4([127, 0, 0, 0], 8, AddrClass::Loopback),
    // Private use (RFC 1918).
    v4([10, 0, 0, 0], 8, AddrClass::Private),
    v4([172, 16, 0, 0], 12, AddrClass::Private),
    v4([192, 168, 0, 0], 16, AddrClass::Private),
    // Link local (RFC 3927); 169.254.169.254 is caught by V4_METADATA first.
    v4([169, 254, 0, 0], 16, AddrClass::LinkLocal),
    // Shared address space, carrier-grade NAT (RFC 6598).
    v4([100, 64, 0, 0], 10, AddrClass::Cgnat),
    // Multicast (RFC 5771).
    v4([224, 0, 0, 0], 4, AddrClass::Multicast),
    // Reserved for future use (RFC 1112 §4), including limited broadcast 255.255.255.255.
    v4([240, 0, 0, 0], 4, AddrClass::Reserved),
    // IETF protocol assignments (RFC 6890 §2.1).
    v4([192, 0, 0, 0], 24, AddrClass::Reserved),
    // Benchmarking (RFC 2544).
    v4([198, 18, 0, 0], 15, AddrClass::Reserved),
    // Documentation TEST-NET-1, -2, -3 (RFC 5737).
    v4([192, 0, 2, 0], 24, AddrClass::Documentation),
    v4([198, 51, 100, 0], 24, AddrClass::Documentation),
    v4([203, 0, 113, 0], 24, AddrClass::Documentation),
];

/// An IPv6 range of [`classify`].
#[derive(Debug, Clone, Copy)]
struct V6Range {
    net: Ipv6Addr,
    len: u8,
    class: AddrClass,
}

const fn v6(net: [u16; 8], len: u8, class: AddrClass) -> V6Range {
    let [a, b, c, d, e, f, g, h] = net;
    V6Range {
        net: Ipv6Addr::new(a, b, c, d, e, f, g, h),
        len,
        class,
    }
}

/// Where an IPv6 range carries an IPv4 address.
#[derive(Debug, Clone, Copy)]
enum Embedding {
    /// In its last 32 bits.
    Last32,
    /// In bits 16..48 (6to4, RFC 3056 §2).
    SixToFour,
}

/// IPv6 ranges that lead to an IPv4 address; classified as that address.
const V6_EMBEDDING_V4: [(Ipv6Addr, u8, Embedding); 3] = [
    // IPv4-mapped (RFC 4291 §2.5.5.2): a socket connecting to it reaches the IPv4 address.
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96, Embedding::Last32),
    // NAT64 well-known prefix (RFC 6052 §2.1): the NAT64 gateway dials the IPv4 address.
    (
        Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0),
        96,
        Embedding::Last32,
    ),
    // 6to4 (RFC 3056): relays deliver to the IPv4 address in bits 16..48.
    (
        Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0),
        16,
        Embedding::SixToFour,
    ),
];

/// Cloud instance-metadata endpoints, checked before the ranges that contain them.
const V6_METADATA: [Ipv6Addr; 1] = [
    // AWS IMDS over IPv6 on Nitro instances (inside fc00::/7).
    Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
];

/// IPv6 ranges the proxy never dials (IANA IPv6 Special-Purpose Address Registry), checked after
/// [`V6_METADATA`] and [`V6_EMBEDDING_V4`]. The first range that contains an address decides.
const V6_RANGES: [V6Range; 11] = [
    // Unspecified (RFC 4291 §2.5.2).
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128, AddrClass::Unspecified),
    // Loopback (RFC 4291 §2.5.3).
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, AddrClass::Loopback),
    // IPv4-compatible, deprecated (RFC 4291 §2.5.5.1); after :: and ::1, which it contains.
    v6([0, 0, 0, 0, 0, 0, 0, 0], 96, AddrClass::Reserved),
    // Local-use NAT64 (RFC 8215): leads into a private IPv4 network.
    v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, AddrClass::Private),
    // Discard-only (RFC 6666).
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64, AddrClass::Reserved),
    // Teredo (RFC 4380): tunnels to an obfuscated IPv4 address.
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, AddrClass::Reserved),
    // Documentation (RFC 3849).
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, AddrClass::Documentation),
    // Unique local (RFC 4193); fd00:ec2::254 is caught by V6_METADATA first.
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, AddrClass::Ula),
    // Link local (RFC 4291 §2.5.6).
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, AddrClass::LinkLocal),
    // Site local, deprecated (RFC 3879).
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, AddrClass::Reserved),
    // Multicast (RFC 4291 §2.7).
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, AddrClass::Multicast),
];

/// The class of an address the proxy never dials on its own, or `None` for an ordinary public
/// address. IPv6 forms that lead to an IPv4 address (mapped, NAT64, 6to4) are classified as that
/// IPv4 address.
pub fn classify(addr: IpAddr) -> Option<AddrClass> {
    match addr {
        IpAddr::V4(a) => classify_v4(a),
        IpAddr::V6(a) => classify_v6(a),
    }
}

fn classify_v4(addr: Ipv4Addr) -> Option<AddrClass> {
    if V4_METADATA.contains(&addr) {
        return Some(AddrClass::Metadata);
    }
    let contains = |r: &&V4Range| {
        Net::V4 {
            net: r.net,
            len: r.len,
        }
        .contains(IpAddr::V4(addr))
    };
    V4_RANGES.iter().find(contains).map(|r| r.class)
}

fn classify_v6(addr: Ipv6Addr) -> Option<AddrClass> {
    if V6_METADATA.contains(&addr) {
        return Some(AddrClass::Metadata);
    }
    if let Some((_, v4)) = embedded_v4(addr) {
        return classify_v4(v4);
    }
    let contains = |r: &&V6Range| {
        Net::V6 {
            net: r.net,
            len: r.len,
        }
        .contains(IpAddr::V6(addr))
    };
    V6_RANGES.iter().find(contains).map(|r| r.class)
}

/// The IPv4 address an IPv6 address of [`V6_EMBEDDING_V4`] leads to, and how it is embedded.
fn embedded_v4(addr: Ipv6Addr) -> Option<(Embedding, Ipv4Addr)> {
    let (_, _, embedding) = V6_EMBEDDING_V4
        .iter()
        .find(|(net, len, _)| Net::V6 { net: *net, len: *len }.contains(IpAddr::V6(addr)))?;
    let [_, s1, s2, _, _, _, s6, s7] = addr.segments();
    let (high, low) = match embedding {
        Embedding::Last32 => (s6, s7),
        Embedding::SixToFour => (s1, s2),
    };
    Some((
        *embedding,
        Ipv4Addr::from((u32::from(high) << 16) | u32::from(low)),
    ))
}

/// The IPv4 address inside an IPv4-mapped or NAT64 (`64:ff9b::/96`) address: the forms to which
/// IPv4 `allow_cidrs` entries and IPv4 host addresses also apply. (6to4 is left out: an entry
/// allows what it says, not a relay's route to it.)
fn mapped_or_nat64_v4(addr: IpAddr) -> Option<Ipv4Addr> {
    match addr {
        IpAddr::V4(_) => None,
        IpAddr::V6(a) => match embedded_v4(a)? {
            (Embedding::Last32, v4) => Some(v4),
            (Embedding::SixToFour, _) => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use proptest::prelude::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn policy(allow: &[&str], deny: &[&str]) -> Policy {
        Policy::new(&strings(allow), &strings(deny), &[], &[]).unwrap()
    }

    fn host(s: &str) -> Host {
        canonical_host(s).unwrap()
    }

    fn yes(rule: &str) -> Decision {
        Decision {
            reason: Reason::Allowed,
            rule: Some(rule.to_owned()),
        }
    }

    fn no(reason: Reason, rule: Option<&str>) -> Decision {
        Decision {
            reason,
            rule: rule.map(str::to_owned),
        }
    }

    /// `(target, port, decision)` for each target, to compare with the expected table whole.
    fn decide_all(p: &Policy, targets: &[(&str, u16)]) -> Vec<(String, u16, Decision)> {
        targets
            .iter()
            .map(|&(t, port)| (t.to_owned(), port, p.decide(&host(t), port)))
            .collect()
    }

    fn table(rows: Vec<(&str, u16, Decision)>) -> Vec<(String, u16, Decision)> {
        rows.into_iter().map(|(t, p, d)| (t.to_owned(), p, d)).collect()
    }

    fn check(p: &Policy, rows: Vec<(&str, u16, Decision)>) {
        let targets = rows.iter().map(|&(t, port, _)| (t, port)).collect::<Vec<_>>();
        assert_eq!(decide_all(p, &targets), table(rows));
    }

    #[test]
    fn no_suffix_or_prefix_confusion() {
        let p = policy(&["*.example.com", "example.org"], &[]);
        let none = || no(Reason::NotInAllowlist, None);
        check(
            &p,
            vec![
                ("a.example.com", 443, yes("*.example.com")),
                ("a.b.example.com", 443, yes("*.example.com")),
                ("example.com", 443, none()),
                ("example.com.evil.net", 443, none()),
                ("evil-example.com", 443, none()),
                ("xexample.com", 443, none()),
                ("a.example.com.", 443, yes("*.example.com")),
                ("example.org", 443, yes("example.org")),
                ("www.example.org", 443, none()),
                ("xexample.org", 443, none()),
                ("example.org.evil.net", 443, none()),
            ],
        );
    }

    #[test]
    fn deny_wins_over_allow() {
        let p = policy(
            &["*.example.com", "example.net", "example.net:22"],
            &["bad.example.com", "*.bad.example.com", "example.net:22"],
        );
        check(
            &p,
            vec![
                (
                    "bad.example.com",
                    443,
                    no(Reason::Denylisted, Some("bad.example.com")),
                ),
                (
                    "x.bad.example.com",
                    80,
                    no(Reason::Denylisted, Some("*.bad.example.com")),
                ),
                ("good.example.com", 443, yes("*.example.com")),
                ("example.net", 22, no(Reason::Denylisted, Some("example.net:22"))),
                ("example.net", 443, yes("example.net")),
            ],
        );
    }

    #[test]
    fn deny_without_port_denies_every_port() {
        let p = policy(&["*"], &["evil.com"]);
        check(
            &p,
            vec![
                ("evil.com", 443, no(Reason::Denylisted, Some("evil.com"))),
                ("EVIL.com.", 8080, no(Reason::Denylisted, Some("evil.com"))),
                ("evil.com.example", 443, yes("*")),
            ],
        );
    }

    #[test]
    fn empty_allowlist_allows_nothing() {
        let p = policy(&[], &["evil.com"]);
        assert!(p.is_empty());
        assert!(!policy(&["*"], &[]).is_empty());
        check(
            &p,
            vec![
                ("example.com", 443, no(Reason::NotInAllowlist, None)),
                ("1.2.3.4", 80, no(Reason::NotInAllowlist, None)),
                ("evil.com", 443, no(Reason::Denylisted, Some("evil.com"))),
            ],
        );
    }

    #[test]
    fn allow_without_port_allows_80_and_443() {
        let p = policy(&["example.com", "*.example.com:22", "*.example.com"], &[]);
        let port = |rule| no(Reason::PortNotAllowed, Some(rule));
        check(
            &p,
            vec![
                ("example.com", 80, yes("example.com")),
                ("example.com", 443, yes("example.com")),
                ("example.com", 8443, port("example.com")),
                ("example.com", 22, port("example.com")),
                ("a.example.com", 22, yes("*.example.com:22")),
                ("a.example.com", 443, yes("*.example.com")),
                ("a.example.com", 8080, port("*.example.com:22")),
            ],
        );
        assert_eq!(DEFAULT_PORTS, [80, 443]);
    }

    #[test]
    fn port_rules_allow_only_their_port() {
        let p = policy(&["example.com:8443", "[::1]:8080", "10.0.0.1:5432"], &[]);
        let port = |rule| no(Reason::PortNotAllowed, Some(rule));
        check(
            &p,
            vec![
                ("example.com", 8443, yes("example.com:8443")),
                ("example.com", 443, port("example.com:8443")),
                ("example.com", 80, port("example.com:8443")),
                ("::1", 8080, yes("[::1]:8080")),
                ("[::1]", 443, port("[::1]:8080")),
                ("10.0.0.1", 5432, yes("10.0.0.1:5432")),
                ("10.1", 5432, yes("10.0.0.1:5432")),
                ("10.0.0.2", 5432, no(Reason::NotInAllowlist, None)),
            ],
        );
    }

    #[test]
    fn star_matches_every_host() {
        let p = policy(&["*", "*:22"], &[]);
        check(
            &p,
            vec![
                ("example.com", 443, yes("*")),
                ("1.2.3.4", 80, yes("*")),
                ("::1", 443, yes("*")),
                ("example.com", 22, yes("*:22")),
                ("example.com", 8080, no(Reason::PortNotAllowed, Some("*"))),
            ],
        );
    }

    #[test]
    fn ip_rules_match_ip_literals_only() {
        let p = policy(
            &[
                "1.2.3.4",
                "[2001:db8::1]",
                "[::ffff:5.6.7.8]",
                "0x09.1",
                "*.example.com",
            ],
            &[],
        );
        let none = || no(Reason::NotInAllowlist, None);
        check(
            &p,
            vec![
                ("1.2.3.4", 443, yes("1.2.3.4")),
                ("0x01020304", 443, yes("1.2.3.4")),
                ("[::ffff:1.2.3.4]", 443, yes("1.2.3.4")),
                ("1.2.3.5", 443, none()),
                ("2001:db8::1", 443, yes("[2001:db8::1]")),
                ("[2001:DB8:0::1]", 80, yes("[2001:db8::1]")),
                ("5.6.7.8", 443, yes("[::ffff:5.6.7.8]")),
                ("9.0.0.1", 443, yes("0x09.1")),
                ("1.2.3.4.example.com", 443, yes("*.example.com")),
                ("1-2-3-4.example.net", 443, none()),
            ],
        );
    }

    #[test]
    fn non_canonical_hosts_are_bad() {
        let p = policy(&["*"], &["evil.com"]);
        let mapped = Host::Ip("::ffff:127.0.0.1".parse().unwrap());
        let bad = no(Reason::BadHost, None);
        let got = [
            Host::Name("EVIL.com".to_owned()),
            Host::Name("evil.com.".to_owned()),
            mapped,
        ]
        .iter()
        .map(|h| p.decide(h, 443))
        .collect::<Vec<_>>();
        assert_eq!(got, vec![bad.clone(), bad.clone(), bad]);
    }

    #[test]
    fn rule_errors_say_why() {
        let errors = [
            ("allow", "bücher.de"),
            ("allow", "*.*.example.com"),
            ("allow", "foo*.example.com"),
            ("allow", "*example.com"),
            ("deny", "example.*"),
            ("deny", "*.1.2.3.4"),
            ("allow", "*."),
            ("allow", "example.com:0"),
            ("allow", "example.com:99999"),
            ("allow", "*:http"),
            ("allow", "example.com.."),
            ("allow", "exa mple.com"),
            ("allow", "2001:db8::1"),
            ("allow", "fe80::1%eth0"),
            ("allow", ""),
            ("deny", "1.2.3.4.5"),
        ]
        .iter()
        .map(|&(list, entry)| {
            let one = strings(&[entry]);
            let got = match list {
                "allow" => Policy::new(&one, &[], &[], &[]),
                _ => Policy::new(&[], &one, &[], &[]),
            };
            got.unwrap_err().to_string()
        })
        .collect::<Vec<_>>();
        let star = "`*` is allowed only as a whole first label (`*.example.com`) or alone (`*`)";
        assert_eq!(
            errors,
            vec![
                "network.allow entry \"bücher.de\": not ASCII: write the xn-- (punycode) form".to_owned(),
                format!("network.allow entry \"*.*.example.com\": {star}"),
                format!("network.allow entry \"foo*.example.com\": {star}"),
                format!("network.allow entry \"*example.com\": {star}"),
                format!("network.deny entry \"example.*\": {star}"),
                "network.deny entry \"*.1.2.3.4\": `*.` must be followed by a host name, not an IP address".to_owned(),
                "network.allow entry \"*.\": host is empty".to_owned(),
                "network.allow entry \"example.com:0\": port \"0\" is not a number from 1 to 65535 (digits only, no leading zero)".to_owned(),
                "network.allow entry \"example.com:99999\": port \"99999\" is not a number from 1 to 65535 (digits only, no leading zero)".to_owned(),
                "network.allow entry \"*:http\": port \"http\" is not a number from 1 to 65535 (digits only, no leading zero)".to_owned(),
                "network.allow entry \"example.com..\": host name ends in more than one dot".to_owned(),
                "network.allow entry \"exa mple.com\": host name contains a space or a tab".to_owned(),
                "network.allow entry \"2001:db8::1\": IPv6 address in an authority must be in brackets: `[v6]:port`".to_owned(),
                "network.allow entry \"fe80::1%eth0\": IPv6 address in an authority must be in brackets: `[v6]:port`".to_owned(),
                "network.allow entry \"\": host is empty".to_owned(),
                "network.deny entry \"1.2.3.4.5\": host ends in a numeric label but is not a valid IPv4 address: more than four parts".to_owned(),
            ]
        );
    }

    #[test]
    fn duplicate_rules_are_fine() {
        let p = policy(
            &["example.com", "example.com", "EXAMPLE.com."],
            &["x.com", "x.com"],
        );
        check(
            &p,
            vec![
                ("example.com", 443, yes("example.com")),
                ("x.com", 443, no(Reason::Denylisted, Some("x.com"))),
            ],
        );
    }

    #[test]
    fn cidr_errors_say_why() {
        let errors = [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "fd00::1/8",
            "fd00::/129",
            "10.0.0.0/08",
            "10.0.0.0/",
            "10.1/16",
            "example.com",
            "10.0.0.0/-1",
            "[::1]",
        ]
        .iter()
        .map(|e| Policy::new(&[], &[], &strings(&[e]), &[]).unwrap_err())
        .collect::<Vec<_>>();
        let err = |entry: &str, why: &str| RuleError {
            list: "allow_cidrs",
            entry: entry.to_owned(),
            why: why.to_owned(),
        };
        assert_eq!(
            errors,
            vec![
                err("10.0.0.1/8", "host bits set: did you mean 10.0.0.0/8?"),
                err("10.0.0.0/33", "prefix /33 is too long: at most /32"),
                err("fd00::1/8", "host bits set: did you mean fd00::/8?"),
                err("fd00::/129", "prefix /129 is too long: at most /128"),
                err("10.0.0.0/08", "prefix length \"08\" is not a number from 0 to 32"),
                err("10.0.0.0/", "prefix length \"\" is not a number from 0 to 32"),
                err("10.1/16", "\"10.1\" is not an IP address: write an address (10.1.2.3, fd00::1) or a range (10.0.0.0/8, fd00::/8)"),
                err("example.com", "\"example.com\" is not an IP address: write an address (10.1.2.3, fd00::1) or a range (10.0.0.0/8, fd00::/8)"),
                err("10.0.0.0/-1", "prefix length \"-1\" is not a number from 0 to 32"),
                err("[::1]", "\"[::1]\" is not an IP address: write an address (10.1.2.3, fd00::1) or a range (10.0.0.0/8, fd00::/8)"),
            ]
        );
        assert_eq!(
            errors[0].to_string(),
            "network.allow_cidrs entry \"10.0.0.1/8\": host bits set: did you mean 10.0.0.0/8?"
        );
    }

    fn check_addrs(p: &Policy, addrs: &[&str]) -> Vec<(String, AddrCheck)> {
        addrs
            .iter()
            .map(|a| ((*a).to_owned(), p.check_addr(a.parse().unwrap())))
            .collect()
    }

    fn rows(rows: Vec<(&str, AddrCheck)>) -> Vec<(String, AddrCheck)> {
        rows.into_iter().map(|(a, c)| (a.to_owned(), c)).collect()
    }

    #[test]
    fn allow_cidrs_open_loopback() {
        let cidrs = strings(&[
            "127.0.0.1",
            "::1",
            "10.0.0.0/8",
            "fd00::/8",
            "::ffff:192.168.1.0/120",
        ]);
        let p = Policy::new(&[], &[], &cidrs, &[]).unwrap();
        let by = |e: &str| AddrCheck::AllowedByCidr(e.to_owned());
        let addrs = [
            "127.0.0.1",
            "127.0.0.2",
            "::ffff:127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "::1",
            "::2",
            "10.255.255.255",
            "11.0.0.0",
            "fd12::1",
            "fe80::1",
            "192.168.1.7",
            "::ffff:192.168.1.7",
            "192.168.2.1",
            "8.8.8.8",
        ];
        assert_eq!(
            check_addrs(&p, &addrs),
            rows(vec![
                ("127.0.0.1", by("127.0.0.1")),
                ("127.0.0.2", AddrCheck::Forbidden(AddrClass::Loopback)),
                ("::ffff:127.0.0.1", by("127.0.0.1")),
                ("64:ff9b::7f00:1", by("127.0.0.1")),
                ("2002:7f00:1::", AddrCheck::Forbidden(AddrClass::Loopback)),
                ("::1", by("::1")),
                ("::2", AddrCheck::Forbidden(AddrClass::Reserved)),
                ("10.255.255.255", by("10.0.0.0/8")),
                ("11.0.0.0", AddrCheck::Public),
                ("fd12::1", by("fd00::/8")),
                ("fe80::1", AddrCheck::Forbidden(AddrClass::LinkLocal)),
                ("192.168.1.7", by("::ffff:192.168.1.0/120")),
                ("::ffff:192.168.1.7", by("::ffff:192.168.1.0/120")),
                ("192.168.2.1", AddrCheck::Forbidden(AddrClass::Private)),
                ("8.8.8.8", AddrCheck::Public),
            ])
        );
    }

    #[test]
    fn host_addresses_are_forbidden() {
        let own: [IpAddr; 3] = [
            "93.184.216.34".parse().unwrap(),
            "::ffff:10.1.2.3".parse().unwrap(),
            "2a00:1450::1".parse().unwrap(),
        ];
        let p = Policy::new(&[], &[], &strings(&["10.1.2.3/32"]), &own).unwrap();
        let own_addr = AddrCheck::Forbidden(AddrClass::HostAddress);
        let addrs = [
            "93.184.216.34",
            "::ffff:93.184.216.34",
            "64:ff9b::5db8:d822",
            "93.184.216.35",
            "10.1.2.3",
            "2a00:1450::1",
            "2a00:1450::2",
        ];
        assert_eq!(
            check_addrs(&p, &addrs),
            rows(vec![
                ("93.184.216.34", own_addr.clone()),
                ("::ffff:93.184.216.34", own_addr.clone()),
                ("64:ff9b::5db8:d822", own_addr.clone()),
                ("93.184.216.35", AddrCheck::Public),
                ("10.1.2.3", AddrCheck::AllowedByCidr("10.1.2.3/32".to_owned())),
                ("2a00:1450::1", own_addr),
                ("2a00:1450::2", AddrCheck::Public),
            ])
        );
    }

    fn classify_all(addrs: &[&str]) -> Vec<(String, Option<AddrClass>)> {
        addrs
            .iter()
            .map(|a| ((*a).to_owned(), classify(a.parse().unwrap())))
            .collect()
    }

    fn classes(rows: Vec<(&str, Option<AddrClass>)>) -> Vec<(String, Option<AddrClass>)> {
        rows.into_iter().map(|(a, c)| (a.to_owned(), c)).collect()
    }

    fn check_classes(rows: Vec<(&str, Option<AddrClass>)>) {
        let addrs = rows.iter().map(|&(a, _)| a).collect::<Vec<_>>();
        assert_eq!(classify_all(&addrs), classes(rows));
    }

    #[test]
    fn classify_v4_table_edges() {
        use AddrClass::*;
        check_classes(vec![
            ("0.0.0.0", Some(Unspecified)),
            ("0.255.255.255", Some(Unspecified)),
            ("1.0.0.0", None),
            ("126.255.255.255", None),
            ("127.0.0.0", Some(Loopback)),
            ("127.255.255.255", Some(Loopback)),
            ("128.0.0.0", None),
            ("9.255.255.255", None),
            ("10.0.0.0", Some(Private)),
            ("10.255.255.255", Some(Private)),
            ("11.0.0.0", None),
            ("172.15.255.255", None),
            ("172.16.0.0", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("172.32.0.0", None),
            ("192.167.255.255", None),
            ("192.168.0.0", Some(Private)),
            ("192.168.255.255", Some(Private)),
            ("192.169.0.0", None),
            ("169.253.255.255", None),
            ("169.254.0.0", Some(LinkLocal)),
            ("169.254.169.253", Some(LinkLocal)),
            ("169.254.169.254", Some(Metadata)),
            ("169.254.169.255", Some(LinkLocal)),
            ("169.254.255.255", Some(LinkLocal)),
            ("169.255.0.0", None),
            ("168.63.129.15", None),
            ("168.63.129.16", Some(Metadata)),
            ("168.63.129.17", None),
            ("100.63.255.255", None),
            ("100.64.0.0", Some(Cgnat)),
            ("100.100.100.199", Some(Cgnat)),
            ("100.100.100.200", Some(Metadata)),
            ("100.100.100.201", Some(Cgnat)),
            ("100.127.255.255", Some(Cgnat)),
            ("100.128.0.0", None),
            ("223.255.255.255", None),
            ("224.0.0.0", Some(Multicast)),
            ("239.255.255.255", Some(Multicast)),
            ("240.0.0.0", Some(Reserved)),
            ("255.255.255.254", Some(Reserved)),
            ("255.255.255.255", Some(Reserved)),
            ("191.255.255.255", None),
            ("192.0.0.0", Some(Reserved)),
            ("192.0.0.255", Some(Reserved)),
            ("192.0.1.0", None),
            ("192.0.1.255", None),
            ("192.0.2.0", Some(Documentation)),
            ("192.0.2.255", Some(Documentation)),
            ("192.0.3.0", None),
            ("198.17.255.255", None),
            ("198.18.0.0", Some(Reserved)),
            ("198.19.255.255", Some(Reserved)),
            ("198.20.0.0", None),
            ("198.51.99.255", None),
            ("198.51.100.0", Some(Documentation)),
            ("198.51.100.255", Some(Documentation)),
            ("198.51.101.0", None),
            ("203.0.112.255", None),
            ("203.0.113.0", Some(Documentation)),
            ("203.0.113.255", Some(Documentation)),
            ("203.0.114.0", None),
            ("8.8.8.8", None),
        ]);
    }

    #[test]
    fn classify_v6_table_edges() {
        use AddrClass::*;
        check_classes(vec![
            ("::", Some(Unspecified)),
            ("::1", Some(Loopback)),
            ("::2", Some(Reserved)),
            ("::ffff:ffff", Some(Reserved)),
            ("::1:0:0", None),
            ("::fffe:ffff:ffff", None),
            ("::ffff:0.0.0.0", Some(Unspecified)),
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:169.254.169.254", Some(Metadata)),
            ("::ffff:8.8.8.8", None),
            ("::ffff:255.255.255.255", Some(Reserved)),
            ("::1:0:0:0", None),
            ("64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff", None),
            ("64:ff9b::", Some(Unspecified)),
            ("64:ff9b::a00:1", Some(Private)),
            ("64:ff9b::808:808", None),
            ("64:ff9b::ffff:ffff", Some(Reserved)),
            ("64:ff9b::1:0:0", None),
            ("64:ff9b:0:ffff:ffff:ffff:ffff:ffff", None),
            ("64:ff9b:1::", Some(Private)),
            ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", Some(Private)),
            ("64:ff9b:2::", None),
            ("ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
            ("100::", Some(Reserved)),
            ("100::ffff:ffff:ffff:ffff", Some(Reserved)),
            ("100:0:0:1::", None),
            ("2001::", Some(Reserved)),
            ("2001:0:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
            ("2001:1::", None),
            ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", None),
            ("2001:db8::", Some(Documentation)),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", Some(Documentation)),
            ("2001:db9::", None),
            ("2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
            ("2002::", Some(Unspecified)),
            ("2002:7f00:1::", Some(Loopback)),
            ("2002:a9fe:a9fe::1", Some(Metadata)),
            ("2002:808:808::", None),
            ("2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
            ("2003::", None),
            ("2606:4700::1111", None),
            ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
            ("fc00::", Some(Ula)),
            ("fd00:ec2::253", Some(Ula)),
            ("fd00:ec2::254", Some(Metadata)),
            ("fd00:ec2::255", Some(Ula)),
            ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Ula)),
            ("fe00::", None),
            ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
            ("fe80::", Some(LinkLocal)),
            ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(LinkLocal)),
            ("fec0::", Some(Reserved)),
            ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
            ("ff00::", Some(Multicast)),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Multicast)),
        ]);
    }

    #[test]
    fn addr_class_codes_match_serde() {
        use AddrClass::*;
        let all = [
            Unspecified,
            Loopback,
            Private,
            LinkLocal,
            Metadata,
            Cgnat,
            Ula,
            Multicast,
            Reserved,
            Documentation,
            HostAddress,
        ];
        let got = all
            .iter()
            .map(|c| (c.as_str().to_owned(), serde_json::to_string(c).unwrap()))
            .collect::<Vec<_>>();
        let want = all
            .iter()
            .map(|c| (c.as_str().to_owned(), format!("\"{}\"", c.as_str())))
            .collect::<Vec<_>>();
        assert_eq!(got, want);
    }

    #[test]
    fn decision_serializes_with_reason_code() {
        let json = serde_json::to_string(&yes("example.com")).unwrap();
        assert_eq!(json, r#"{"reason":"allowed","rule":"example.com"}"#);
        assert!(yes("x").allowed());
        assert!(!no(Reason::PortNotAllowed, Some("x")).allowed());
    }

    /// Whether `labels` are `suffix` plus at least one more label in front.
    fn is_subdomain(labels: &[&str], suffix: &[&str]) -> bool {
        labels.len() > suffix.len() && labels.ends_with(suffix)
    }

    fn label() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["a", "b", "c", "ab", "ba", "b-a", "xn--a"])
    }

    proptest! {
        #[test]
        fn wildcard_matches_by_whole_labels(labels in prop::collection::vec(label(), 1..6), port in prop::sample::select(vec![22u16, 80, 443])) {
            let name = labels.join(".");
            let allow = policy(&["*.a.b", "c.a"], &[]);
            let deny = policy(&["*"], &["*.b.a"]);
            let h = host(&name);
            let allowed = (is_subdomain(&labels, &["a", "b"]) || labels == ["c", "a"]) && port != 22;
            prop_assert_eq!(allow.decide(&h, port).allowed(), allowed);
            prop_assert_eq!(deny.decide(&h, port).allowed(), !is_subdomain(&labels, &["b", "a"]) && port != 22);
        }

        #[test]
        fn decide_never_allows_outside_label_suffix(raw in "[a-cA-C0-9.:%\\[\\]-]{0,16}", port in any::<u16>()) {
            if let Ok(h) = canonical_host(&raw) {
                let p = policy(&["*.a.b", "b.c:8080", "[::1]"], &[]);
                let want = match &h {
                    Host::Name(n) => {
                        let labels = n.split('.').collect::<Vec<_>>();
                        (is_subdomain(&labels, &["a", "b"]) && DEFAULT_PORTS.contains(&port))
                            || (labels == ["b", "c"] && port == 8080)
                    }
                    Host::Ip(ip) => *ip == IpAddr::V6(Ipv6Addr::LOCALHOST) && DEFAULT_PORTS.contains(&port),
                };
                prop_assert_eq!(p.decide(&h, port).allowed(), want);
            }
        }

        #[test]
        fn v4_and_its_v6_forms_classify_alike(bits in any::<u32>(), low in any::<u64>()) {
            let a = Ipv4Addr::from(bits);
            let [o0, o1, o2, o3] = a.octets();
            let high = u16::from_be_bytes([o0, o1]);
            let lo = u16::from_be_bytes([o2, o3]);
            let mapped = a.to_ipv6_mapped();
            let nat64 = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, high, lo);
            let [l0, l1, l2, l3] = [low >> 48, low >> 32, low >> 16, low].map(|x| u16::try_from(x & 0xffff).unwrap());
            let six_to_four = Ipv6Addr::new(0x2002, high, lo, l0, l1, l2, l3, 0);
            let want = classify(IpAddr::V4(a));
            prop_assert_eq!(classify(IpAddr::V6(mapped)), want);
            prop_assert_eq!(classify(IpAddr::V6(nat64)), want);
            prop_assert_eq!(classify(IpAddr::V6(six_to_four)), want);
            let p = Policy::new(&[], &[], &strings(&["127.0.0.0/8"]), &[]).unwrap();
            prop_assert_eq!(p.check_addr(IpAddr::V6(mapped)), p.check_addr(IpAddr::V4(a)));
            prop_assert_eq!(p.check_addr(IpAddr::V6(nat64)), p.check_addr(IpAddr::V4(a)));
        }
    }
}
