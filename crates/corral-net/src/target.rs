//! Strict canonicalisation of the hosts a sandboxed client asks the proxy to reach.
//!
//! Hosts arrive from a client that may be hostile (a prompt-injected agent): `CONNECT` lines,
//! `Host` headers, SOCKS5 domain fields, TLS SNI. The policy ([`crate::policy`]) compares the
//! canonical form only, so two spellings of one destination must canonicalise to one [`Host`],
//! and anything a resolver or a libc could read differently from us is rejected outright. When in
//! doubt, reject: a refused exotic spelling costs a retry, an accepted one can cost a bypass.
//!
//! Names ([`Host::Name`]):
//! - ASCII only, lowercased. A client sends the punycode A-label (`xn--…`) of an
//!   internationalised name; raw UTF-8 is refused rather than converted, so no IDNA mapping
//!   table (whose versions disagree) sits between the user's rule and the client's host.
//! - Exactly one trailing dot is stripped (`example.com.` is `example.com`, the same DNS name);
//!   two are refused.
//! - Labels are 1..=63 bytes of `[a-z0-9-_]`, the whole name at most 253 bytes (RFC 1035 §2.3.4).
//! - NUL, CR, LF, other control bytes, space and tab are refused (header and log injection, C
//!   string truncation); so are `%` (we never percent-decode, so an escape can only be a
//!   disguise), `/`, `\`, `@` and `:` (URL and userinfo confusion).
//!
//! IPv4 literals ([`Host::Ip`]): every form `inet_aton(3)` accepts, because `getaddrinfo(3)`
//! would accept them too and dial the address: dotted decimal, octal parts (`0177.0.0.1`), hex
//! parts (`0x7f.0.0.1`), the short forms `a.b.c` and `a.b` (the last part fills the remaining
//! bytes: `127.1`), and a single 32-bit number (`2130706433`, `0x7f000001`). A name whose last
//! label starts with a digit is read as an IPv4 literal and refused if it is not a valid one
//! (`1.2.3.4.5`, `256.1.1.1`, `0x1g.1`, `example.123`): no top-level domain starts with a digit,
//! and treating such a host as a name would let `deny = ["1.2.3.4"]` be dodged by a spelling the
//! resolver turns into that address. The part rules follow glibc `resolv/inet_addr.c`
//! (`inet_aton_end`) and musl `src/network/inet_aton.c`: at most four parts, every part before
//! the last at most 255, the last part at most what its position leaves (32, 24, 16 or 8 bits),
//! a leading `0` means octal (so `08` is invalid), `0x` means hex and needs a digit after it.
//!
//! IPv6 literals: with or without brackets, parsed by the standard library's strict parser. Zone
//! ids (`fe80::1%eth0`, `%25eth0`) are refused: they name an interface of the proxy's host. An
//! IPv4-mapped address (`::ffff:a.b.c.d`) reaches the IPv4 address `a.b.c.d` and canonicalises to
//! it, so IPv4 rules and checks apply; other IPv6 addresses (NAT64 `64:ff9b::/96` included, which
//! reaches its IPv4 address only through a NAT64 gateway) stay IPv6, and
//! [`crate::policy::classify`] looks inside them.
//!
//! Limits: a name is only checked for shape, never resolved here; what it resolves to is checked
//! by [`crate::policy::Policy::check_addr`]. `xn--` labels are not checked to be valid punycode.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest DNS label, in bytes (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;
/// Longest DNS name in its dotted text form without the trailing dot (RFC 1035 §2.3.4: 255
/// octets on the wire, minus the length byte of the first label and the root label).
const MAX_NAME_LEN: usize = 253;
/// Most parts an `inet_aton(3)` literal may have (`a.b.c.d`).
const MAX_IPV4_PARTS: usize = 4;

/// A canonical host: what the policy compares and the proxy dials.
///
/// Build it with [`canonical_host`] or [`parse_authority`]; the variants are public for matching,
/// and [`crate::policy::Policy::decide`] refuses a hand-built value that is not canonical.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// A DNS name: lowercase ASCII, no trailing dot, labels of `[a-z0-9-_]`.
    Name(String),
    /// An IP literal; IPv4-mapped IPv6 addresses are stored as their IPv4 address.
    Ip(IpAddr),
}

impl Host {
    /// Whether this is a DNS name (not an IP literal).
    pub fn is_name(&self) -> bool {
        matches!(self, Host::Name(_))
    }

    /// `host:port` as written in a `CONNECT` line: `example.com:443`, `1.2.3.4:80`, `[::1]:443`.
    pub fn authority(&self, port: u16) -> String {
        match self {
            Host::Name(name) => format!("{name}:{port}"),
            Host::Ip(IpAddr::V4(v4)) => format!("{v4}:{port}"),
            Host::Ip(IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
        }
    }
}

impl std::fmt::Display for Host {
    /// The name as is; IP addresses in their standard text form, IPv6 without brackets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Why a host or authority was refused. Each message says exactly what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Nothing to canonicalise (also a lone `.`).
    #[error("host is empty")]
    Empty,
    /// A NUL byte (C string truncation).
    #[error("host name contains a NUL byte")]
    Nul,
    /// A CR or LF byte (header injection).
    #[error("host name contains a CR or LF byte")]
    LineBreak,
    /// A space or a tab.
    #[error("host name contains a space or a tab")]
    Whitespace,
    /// Another ASCII control byte.
    #[error("host name contains the control byte {0:#04x}")]
    Control(u8),
    /// A byte outside ASCII.
    #[error("host name is not ASCII: send its xn-- (punycode) form")]
    NonAscii,
    /// A `%` in a name: percent-escapes are never decoded.
    #[error("host name contains `%`: percent-escapes are not decoded")]
    Percent,
    /// A character that is not a letter, a digit, `-`, `_` or `.`.
    #[error("host name contains {0:?}: only letters, digits, `-`, `_` and `.` are allowed")]
    ForbiddenChar(char),
    /// A `:` in something that is not an IPv6 address.
    #[error("host contains `:` but is not an IPv6 address: a port does not belong in the host")]
    Colon,
    /// More than one trailing dot.
    #[error("host name ends in more than one dot")]
    TrailingDots,
    /// A leading dot or `..`.
    #[error("host name has an empty label (a leading dot or `..`)")]
    EmptyLabel,
    /// A label longer than 63 bytes.
    #[error("host name has a label of {0} bytes: at most 63 are allowed")]
    LabelTooLong(usize),
    /// A name longer than 253 bytes.
    #[error("host name is {0} bytes long: at most 253 are allowed")]
    NameTooLong(usize),
    /// The last label starts with a digit, so the host must be an IPv4 literal, and is not one.
    #[error("host ends in a numeric label but is not a valid IPv4 address: {0}")]
    BadIpv4(&'static str),
    /// An IPv6 address with a zone id.
    #[error("IPv6 address has a zone id (`%…`): zone ids are not accepted")]
    ZoneId,
    /// Text with `:` or in brackets that the IPv6 parser refuses.
    #[error("host is not a valid IPv6 address")]
    BadIpv6,
    /// Brackets around something that is not an IPv6 address.
    #[error("brackets may hold only an IPv6 address")]
    BracketedNonIpv6,
    /// `[` without `]`.
    #[error("`[` without a closing `]`")]
    UnclosedBracket,
    /// Something after `]` (in an authority: something other than `:port`).
    #[error("text follows `]`: only an authority may have `:port` there")]
    AfterBracket,
    /// An authority with more than one `:` outside brackets.
    #[error("IPv6 address in an authority must be in brackets: `[v6]:port`")]
    UnbracketedIpv6,
    /// No port in the authority and no default for this protocol.
    #[error("no port given and this protocol has no default port")]
    MissingPort,
    /// A port that is not 1..=65535 written in plain digits.
    #[error("port {0:?} is not a number from 1 to 65535 (digits only, no leading zero)")]
    BadPort(String),
}

/// Canonicalises a host from a client (or a rule): see the module doc for the rules.
pub fn canonical_host(raw: &str) -> Result<Host, HostError> {
    if raw.is_empty() {
        return Err(HostError::Empty);
    }
    // Bytes that are wrong in a host of any form, refused before the form is even looked at.
    for byte in raw.bytes() {
        match byte {
            0 => return Err(HostError::Nul),
            b'\r' | b'\n' => return Err(HostError::LineBreak),
            b' ' | b'\t' => return Err(HostError::Whitespace),
            0x01..=0x1f | 0x7f => return Err(HostError::Control(byte)),
            0x80..=0xff => return Err(HostError::NonAscii),
            _ => {}
        }
    }
    if let Some(inner) = raw.strip_prefix('[') {
        return match inner.strip_suffix(']') {
            Some(inner) => canonical_ipv6(inner, Brackets::Present),
            None if inner.contains(']') => Err(HostError::AfterBracket),
            None => Err(HostError::UnclosedBracket),
        };
    }
    if raw.contains(':') {
        return canonical_ipv6(raw, Brackets::Absent);
    }
    canonical_name_or_ipv4(raw)
}

/// Splits and canonicalises `host:port`, `[v6]:port` or a bare `host` (which takes
/// `default_port`, and is refused without one). Ports are 1..=65535 in plain digits.
pub fn parse_authority(raw: &str, default_port: Option<u16>) -> Result<(Host, u16), HostError> {
    let (host, port) = split_authority(raw)?;
    let host = canonical_host(host)?;
    match port.or(default_port) {
        None => Err(HostError::MissingPort),
        Some(0) => Err(HostError::BadPort("0".to_owned())),
        Some(port) => Ok((host, port)),
    }
}

/// Splits an authority into its host text and its port, if it has one. The host is not
/// canonicalised. An IPv6 host must be in brackets (`::1:443` is ambiguous).
pub(crate) fn split_authority(raw: &str) -> Result<(&str, Option<u16>), HostError> {
    if raw.starts_with('[') {
        let close = raw.find(']').ok_or(HostError::UnclosedBracket)?;
        let (host, rest) = raw.split_at(close + 1);
        if rest.is_empty() {
            return Ok((host, None));
        }
        let port = rest.strip_prefix(':').ok_or(HostError::AfterBracket)?;
        return Ok((host, Some(parse_port(port)?)));
    }
    match raw.split_once(':') {
        None => Ok((raw, None)),
        Some((_, port)) if port.contains(':') => Err(HostError::UnbracketedIpv6),
        Some((host, port)) => Ok((host, Some(parse_port(port)?))),
    }
}

/// A port: 1..=65535, ASCII digits only, no sign, no leading zero (no reader may take it for
/// octal, and `0` is no port).
pub(crate) fn parse_port(text: &str) -> Result<u16, HostError> {
    let bad = || HostError::BadPort(text.to_owned());
    if text.is_empty() || text.starts_with('0') || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse::<u16>().map_err(|_| bad())
}

/// Whether an IPv6 literal came in brackets (decides which error explains a parse failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Brackets {
    Present,
    Absent,
}

/// Parses an IPv6 literal (brackets already removed); an IPv4-mapped one becomes IPv4.
fn canonical_ipv6(text: &str, brackets: Brackets) -> Result<Host, HostError> {
    if text.contains('%') {
        return Err(HostError::ZoneId);
    }
    match text.parse::<Ipv6Addr>() {
        // An IPv4-mapped address (`::ffff:a.b.c.d`) is the IPv4 address it reaches.
        Ok(v6) => Ok(Host::Ip(IpAddr::V6(v6).to_canonical())),
        Err(_) => match brackets {
            Brackets::Present if !text.contains(':') => Err(HostError::BracketedNonIpv6),
            Brackets::Absent if text.matches(':').count() == 1 => Err(HostError::Colon),
            Brackets::Present | Brackets::Absent => Err(HostError::BadIpv6),
        },
    }
}

/// A host without `:` or brackets: a DNS name, or an IPv4 literal when its last label starts with
/// a digit.
fn canonical_name_or_ipv4(raw: &str) -> Result<Host, HostError> {
    let lower = raw.to_ascii_lowercase();
    for c in lower.chars() {
        match c {
            'a'..='z' | '0'..='9' | '-' | '_' | '.' => {}
            '%' => return Err(HostError::Percent),
            other => return Err(HostError::ForbiddenChar(other)),
        }
    }
    // One trailing dot is the same DNS name (fully qualified); more is not a name.
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    if name.is_empty() {
        return Err(HostError::Empty);
    }
    if name.ends_with('.') {
        return Err(HostError::TrailingDots);
    }
    if name.split('.').any(str::is_empty) {
        return Err(HostError::EmptyLabel);
    }
    // No top-level domain starts with a digit: such a host is an IPv4 literal or nothing
    // (inet_aton would read `0x7f.1` as 127.0.0.1; we must not read it as a name).
    let last = name.rsplit('.').next().unwrap_or(name);
    if last.starts_with(|c: char| c.is_ascii_digit()) {
        return parse_inet_aton(name)
            .map(|v4| Host::Ip(IpAddr::V4(v4)))
            .map_err(HostError::BadIpv4);
    }
    if let Some(label) = name.split('.').find(|l| l.len() > MAX_LABEL_LEN) {
        return Err(HostError::LabelTooLong(label.len()));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(HostError::NameTooLong(name.len()));
    }
    Ok(Host::Name(name.to_owned()))
}

/// Parses every IPv4 form `inet_aton(3)` accepts (glibc `resolv/inet_addr.c`, musl
/// `src/network/inet_aton.c`), lowercase input. The error says why the literal is invalid.
fn parse_inet_aton(text: &str) -> Result<Ipv4Addr, &'static str> {
    let parts = text.split('.').collect::<Vec<_>>();
    if parts.len() > MAX_IPV4_PARTS {
        return Err("more than four parts");
    }
    let values = parts
        .iter()
        .map(|part| parse_inet_aton_part(part))
        .collect::<Result<Vec<u32>, _>>()?;
    let Some((&last, leading)) = values.split_last() else {
        return Err("no parts");
    };
    // The last part fills the bytes the leading parts left: 32 bits alone, 24 after one part,
    // 16 after two, 8 after three.
    let last_max = match leading.len() {
        0 => u32::MAX,
        1 => 0x00ff_ffff,
        2 => 0x0000_ffff,
        _ => 0x0000_00ff,
    };
    if last > last_max {
        return Err("the last part is too large for its position");
    }
    // Its high bytes are zero, so the leading parts simply take their places.
    let mut octets = last.to_be_bytes();
    for (octet, &value) in octets.iter_mut().zip(leading) {
        *octet = u8::try_from(value).map_err(|_| "a part before the last is larger than 255")?;
    }
    Ok(Ipv4Addr::from(octets))
}

/// One part of an `inet_aton(3)` literal: `0x` hex, leading-`0` octal, or decimal; at most
/// `u32::MAX` (glibc refuses more than `0xffffffff`).
fn parse_inet_aton_part(part: &str) -> Result<u32, &'static str> {
    let (digits, radix) = if let Some(hex) = part.strip_prefix("0x") {
        if hex.is_empty() {
            return Err("`0x` without hex digits");
        }
        (hex, 16)
    } else if let Some(octal) = part.strip_prefix('0').filter(|rest| !rest.is_empty()) {
        (octal, 8)
    } else {
        (part, 10)
    };
    let mut value: u32 = 0;
    for c in digits.chars() {
        let digit = c.to_digit(radix).ok_or(match radix {
            16 => "a hex part (0x) has a character that is not a hex digit",
            8 => "an octal part (leading 0) has a character that is not 0-7",
            _ => "a part has a character that is not a decimal digit",
        })?;
        value = value
            .checked_mul(radix)
            .and_then(|v| v.checked_add(digit))
            .ok_or("a part is larger than 0xffffffff")?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use proptest::prelude::*;

    fn name(s: &str) -> Result<Host, HostError> {
        Ok(Host::Name(s.to_owned()))
    }

    fn v4(a: u8, b: u8, c: u8, d: u8) -> Result<Host, HostError> {
        Ok(Host::Ip(IpAddr::V4(Ipv4Addr::new(a, b, c, d))))
    }

    fn v6(s: &str) -> Result<Host, HostError> {
        Ok(Host::Ip(IpAddr::V6(s.parse().unwrap())))
    }

    /// `(input, canonical_host(input))` for each input, to compare with the expected table whole.
    fn run(inputs: &[&str]) -> Vec<(String, Result<Host, HostError>)> {
        inputs
            .iter()
            .map(|s| ((*s).to_owned(), canonical_host(s)))
            .collect()
    }

    fn table(rows: Vec<(&str, Result<Host, HostError>)>) -> Vec<(String, Result<Host, HostError>)> {
        rows.into_iter().map(|(s, r)| (s.to_owned(), r)).collect()
    }

    fn check(rows: Vec<(&str, Result<Host, HostError>)>) {
        let inputs = rows.iter().map(|(s, _)| *s).collect::<Vec<_>>();
        assert_eq!(run(&inputs), table(rows));
    }

    #[test]
    fn names_are_lowercased() {
        check(vec![
            ("ExAmPle.COM", name("example.com")),
            ("WWW.Example.Com", name("www.example.com")),
            ("a_b-c.example", name("a_b-c.example")),
        ]);
    }

    #[test]
    fn exactly_one_trailing_dot_is_stripped() {
        check(vec![
            ("example.com.", name("example.com")),
            ("example.com..", Err(HostError::TrailingDots)),
            (".", Err(HostError::Empty)),
            ("..", Err(HostError::TrailingDots)),
            (".example.com", Err(HostError::EmptyLabel)),
            ("a..example.com", Err(HostError::EmptyLabel)),
            ("", Err(HostError::Empty)),
        ]);
    }

    #[test]
    fn nul_is_rejected() {
        check(vec![
            ("example.com\0.evil.net", Err(HostError::Nul)),
            ("\0", Err(HostError::Nul)),
        ]);
    }

    #[test]
    fn cr_lf_and_control_bytes_are_rejected() {
        check(vec![
            ("example.com\r\nX-Evil: 1", Err(HostError::LineBreak)),
            ("example.com\n", Err(HostError::LineBreak)),
            ("example.com\r", Err(HostError::LineBreak)),
            ("exa\x1bmple.com", Err(HostError::Control(0x1b))),
            ("example.com\x7f", Err(HostError::Control(0x7f))),
        ]);
    }

    #[test]
    fn spaces_and_percent_escapes_are_rejected() {
        check(vec![
            ("example.com ", Err(HostError::Whitespace)),
            (" example.com", Err(HostError::Whitespace)),
            ("exa\tmple.com", Err(HostError::Whitespace)),
            ("example%2ecom", Err(HostError::Percent)),
            ("%65xample.com", Err(HostError::Percent)),
            ("127.0.0.1%00", Err(HostError::Percent)),
        ]);
    }

    #[test]
    fn url_punctuation_is_rejected() {
        check(vec![
            ("example.com/evil", Err(HostError::ForbiddenChar('/'))),
            ("example.com\\evil", Err(HostError::ForbiddenChar('\\'))),
            ("user@example.com", Err(HostError::ForbiddenChar('@'))),
            ("example.com:443", Err(HostError::Colon)),
            ("exa*mple.com", Err(HostError::ForbiddenChar('*'))),
            ("example.com]", Err(HostError::ForbiddenChar(']'))),
        ]);
    }

    #[test]
    fn non_ascii_is_rejected_and_xn_labels_are_accepted() {
        check(vec![
            ("bücher.de", Err(HostError::NonAscii)),
            ("example\u{3002}com", Err(HostError::NonAscii)),
            ("ｅxample.com", Err(HostError::NonAscii)),
            ("xn--bcher-kva.de", name("xn--bcher-kva.de")),
            ("XN--BCHER-KVA.DE", name("xn--bcher-kva.de")),
        ]);
    }

    #[test]
    fn label_and_name_lengths_are_limited() {
        let label63 = "a".repeat(63);
        let label64 = "a".repeat(64);
        // 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253.
        let name253 = format!("{label63}.{label63}.{label63}.{}", "a".repeat(61));
        let name254 = format!("{name253}a");
        let with_dot = format!("{name253}.");
        let ok63 = format!("{label63}.com");
        let bad64 = format!("{label64}.com");
        check(vec![
            (&ok63, name(&ok63)),
            (&bad64, Err(HostError::LabelTooLong(64))),
            (&name253, name(&name253)),
            (&with_dot, name(&name253)),
            (&name254, Err(HostError::NameTooLong(254))),
        ]);
    }

    #[test]
    fn ipv4_dotted_decimal() {
        check(vec![
            ("127.0.0.1", v4(127, 0, 0, 1)),
            ("255.255.255.255", v4(255, 255, 255, 255)),
            ("0.0.0.0", v4(0, 0, 0, 0)),
            ("1.2.3.4.", v4(1, 2, 3, 4)),
        ]);
    }

    #[test]
    fn ipv4_octal_parts() {
        check(vec![
            ("0177.0.0.1", v4(127, 0, 0, 1)),
            ("0177.00.000.01", v4(127, 0, 0, 1)),
            ("017700000001", v4(127, 0, 0, 1)),
            ("010.0.0.1", v4(8, 0, 0, 1)),
            (
                "08.0.0.1",
                Err(HostError::BadIpv4(
                    "an octal part (leading 0) has a character that is not 0-7",
                )),
            ),
        ]);
    }

    #[test]
    fn ipv4_hex_parts() {
        check(vec![
            ("0x7f.0.0.1", v4(127, 0, 0, 1)),
            ("0X7F.0x0.0x00.0x1", v4(127, 0, 0, 1)),
            ("0x7f000001", v4(127, 0, 0, 1)),
            ("0xA9FEA9FE", v4(169, 254, 169, 254)),
            (
                "0x1g.1",
                Err(HostError::BadIpv4(
                    "a hex part (0x) has a character that is not a hex digit",
                )),
            ),
            ("0x.1", Err(HostError::BadIpv4("`0x` without hex digits"))),
        ]);
    }

    #[test]
    fn ipv4_short_forms_and_single_number() {
        check(vec![
            ("127.1", v4(127, 0, 0, 1)),
            ("127.0.1", v4(127, 0, 0, 1)),
            ("10.65535", v4(10, 0, 255, 255)),
            ("10.16777215", v4(10, 255, 255, 255)),
            ("10.1.65535", v4(10, 1, 255, 255)),
            ("2130706433", v4(127, 0, 0, 1)),
            ("4294967295", v4(255, 255, 255, 255)),
            ("0", v4(0, 0, 0, 0)),
            ("0x7f.1", v4(127, 0, 0, 1)),
        ]);
    }

    #[test]
    fn numeric_hosts_that_are_not_ipv4_are_rejected() {
        let too_large = HostError::BadIpv4("the last part is too large for its position");
        check(vec![
            ("1.2.3.4.5", Err(HostError::BadIpv4("more than four parts"))),
            (
                "256.1.1.1",
                Err(HostError::BadIpv4("a part before the last is larger than 255")),
            ),
            ("1.2.3.256", Err(too_large.clone())),
            ("10.16777216", Err(too_large.clone())),
            ("10.1.65536", Err(too_large)),
            (
                "4294967296",
                Err(HostError::BadIpv4("a part is larger than 0xffffffff")),
            ),
            (
                "99999999999999999999999",
                Err(HostError::BadIpv4("a part is larger than 0xffffffff")),
            ),
            (
                "1.2.3.4x",
                Err(HostError::BadIpv4(
                    "a part has a character that is not a decimal digit",
                )),
            ),
            (
                "example.123",
                Err(HostError::BadIpv4(
                    "a part has a character that is not a decimal digit",
                )),
            ),
            (
                "example.0x7f",
                Err(HostError::BadIpv4(
                    "a part has a character that is not a decimal digit",
                )),
            ),
            ("123.example", name("123.example")),
            ("127.0.0.1.nip.io", name("127.0.0.1.nip.io")),
        ]);
    }

    #[test]
    fn ipv6_with_and_without_brackets() {
        check(vec![
            ("[::1]", v6("::1")),
            ("::1", v6("::1")),
            ("[2001:DB8::1]", v6("2001:db8::1")),
            ("2001:0db8:0000:0000:0000:0000:0000:0001", v6("2001:db8::1")),
            ("[::]", v6("::")),
            ("[::1", Err(HostError::UnclosedBracket)),
            ("[1.2.3.4]", Err(HostError::BracketedNonIpv6)),
            ("[example.com]", Err(HostError::BracketedNonIpv6)),
            ("[::1]:443", Err(HostError::AfterBracket)),
            ("1:2:3:4:5:6:7:8:9", Err(HostError::BadIpv6)),
            ("::g", Err(HostError::BadIpv6)),
        ]);
    }

    #[test]
    fn ipv4_mapped_becomes_ipv4_and_nat64_stays_ipv6() {
        check(vec![
            ("[::ffff:127.0.0.1]", v4(127, 0, 0, 1)),
            ("::ffff:7f00:1", v4(127, 0, 0, 1)),
            ("[::FFFF:A9FE:A9FE]", v4(169, 254, 169, 254)),
            ("64:ff9b::7f00:1", v6("64:ff9b::7f00:1")),
            ("[64:ff9b::127.0.0.1]", v6("64:ff9b::7f00:1")),
            ("::127.0.0.1", v6("::7f00:1")),
        ]);
    }

    #[test]
    fn zone_ids_are_rejected() {
        check(vec![
            ("fe80::1%eth0", Err(HostError::ZoneId)),
            ("[fe80::1%eth0]", Err(HostError::ZoneId)),
            ("[fe80::1%25eth0]", Err(HostError::ZoneId)),
            ("fe80::1%25eth0", Err(HostError::ZoneId)),
            ("fe80::1%", Err(HostError::ZoneId)),
        ]);
    }

    #[test]
    fn display_and_authority() {
        let hosts = [
            canonical_host("Example.COM.").unwrap(),
            canonical_host("0x01020304").unwrap(),
            canonical_host("[::1]").unwrap(),
        ];
        let shown = hosts
            .iter()
            .map(|h| (h.to_string(), h.authority(443), h.is_name()))
            .collect::<Vec<_>>();
        assert_eq!(
            shown,
            vec![
                ("example.com".to_owned(), "example.com:443".to_owned(), true),
                ("1.2.3.4".to_owned(), "1.2.3.4:443".to_owned(), false),
                ("::1".to_owned(), "[::1]:443".to_owned(), false),
            ]
        );
    }

    type AuthorityResult = Result<(Host, u16), HostError>;

    #[test]
    fn authorities() {
        let cases = [
            ("example.com:443", None),
            ("Example.com", Some(80)),
            ("example.com", None),
            ("[::1]:8080", None),
            ("[::1]", Some(443)),
            ("[::1]", None),
            ("1.2.3.4:80", None),
            ("[::ffff:1.2.3.4]:80", None),
            ("::1:443", None),
            ("::1", Some(443)),
            ("[::1]x", None),
            ("[::1]:", None),
            ("example.com:", None),
            ("example.com:0", None),
            ("example.com:65535", None),
            ("example.com:65536", None),
            ("example.com:0443", None),
            ("example.com:+443", None),
            ("example.com:http", None),
            ("example.com:443\r\n", None),
            ("exa mple.com:443", None),
            ("example.com", Some(0)),
        ];
        let got = cases
            .iter()
            .map(|(raw, default)| ((*raw).to_owned(), parse_authority(raw, *default)))
            .collect::<Vec<_>>();
        let ex = |s: &str| Host::Name(s.to_owned());
        let ip = |s: &str| Host::Ip(s.parse().unwrap());
        let bad_port = |s: &str| Err(HostError::BadPort(s.to_owned()));
        let want: Vec<(String, AuthorityResult)> = vec![
            ("example.com:443".into(), Ok((ex("example.com"), 443))),
            ("Example.com".into(), Ok((ex("example.com"), 80))),
            ("example.com".into(), Err(HostError::MissingPort)),
            ("[::1]:8080".into(), Ok((ip("::1"), 8080))),
            ("[::1]".into(), Ok((ip("::1"), 443))),
            ("[::1]".into(), Err(HostError::MissingPort)),
            ("1.2.3.4:80".into(), Ok((ip("1.2.3.4"), 80))),
            ("[::ffff:1.2.3.4]:80".into(), Ok((ip("1.2.3.4"), 80))),
            ("::1:443".into(), Err(HostError::UnbracketedIpv6)),
            ("::1".into(), Err(HostError::UnbracketedIpv6)),
            ("[::1]x".into(), Err(HostError::AfterBracket)),
            ("[::1]:".into(), bad_port("")),
            ("example.com:".into(), bad_port("")),
            ("example.com:0".into(), bad_port("0")),
            ("example.com:65535".into(), Ok((ex("example.com"), 65535))),
            ("example.com:65536".into(), bad_port("65536")),
            ("example.com:0443".into(), bad_port("0443")),
            ("example.com:+443".into(), bad_port("+443")),
            ("example.com:http".into(), bad_port("http")),
            ("example.com:443\r\n".into(), bad_port("443\r\n")),
            ("exa mple.com:443".into(), Err(HostError::Whitespace)),
            ("example.com".into(), bad_port("0")),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn error_messages() {
        let messages = [
            HostError::Nul,
            HostError::NonAscii,
            HostError::Control(0x1b),
            HostError::ForbiddenChar('@'),
            HostError::BadIpv4("more than four parts"),
            HostError::BadPort("443\r\n".to_owned()),
        ]
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>();
        assert_eq!(
            messages,
            vec![
                "host name contains a NUL byte",
                "host name is not ASCII: send its xn-- (punycode) form",
                "host name contains the control byte 0x1b",
                "host name contains '@': only letters, digits, `-`, `_` and `.` are allowed",
                "host ends in a numeric label but is not a valid IPv4 address: more than four parts",
                "port \"443\\r\\n\" is not a number from 1 to 65535 (digits only, no leading zero)",
            ]
        );
    }

    /// Strings that often canonicalise: names, inet_aton forms, IPv6 forms, and noise.
    fn hostish() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[a-zA-Z0-9._%:\\[\\]@/-]{0,24}",
            "([a-zA-Z0-9_-]{1,8}\\.){0,4}[a-zA-Z][a-zA-Z0-9-]{0,6}\\.?",
            "(0[xX][0-9a-fA-F]{1,9}|0[0-7]{0,12}|[1-9][0-9]{0,10})(\\.(0[xX][0-9a-fA-F]{1,3}|0[0-7]{0,4}|[1-9][0-9]{0,4})){0,4}\\.?",
            any::<Ipv6Addr>().prop_map(|a| a.to_string()),
            any::<Ipv6Addr>().prop_map(|a| format!("[{a}]")),
            any::<u32>().prop_map(|a| format!("::ffff:{}", Ipv4Addr::from(a))),
            any::<u32>().prop_map(|a| a.to_string()),
        ]
    }

    proptest! {
        #[test]
        fn canonical_host_is_idempotent(raw in hostish()) {
            if let Ok(host) = canonical_host(&raw) {
                prop_assert_eq!(canonical_host(&host.to_string()), Ok(host.clone()));
                let (again, port) = parse_authority(&host.authority(443), None).unwrap();
                prop_assert_eq!((again, port), (host, 443));
            }
        }

        #[test]
        fn dotted_decimal_agrees_with_std(a in any::<u32>()) {
            let addr = Ipv4Addr::from(a);
            prop_assert_eq!(canonical_host(&addr.to_string()), Ok(Host::Ip(IpAddr::V4(addr))));
            prop_assert_eq!(canonical_host(&a.to_string()), Ok(Host::Ip(IpAddr::V4(addr))));
            prop_assert_eq!(canonical_host(&format!("{a:#x}")), Ok(Host::Ip(IpAddr::V4(addr))));
            prop_assert_eq!(canonical_host(&format!("0{a:o}")), Ok(Host::Ip(IpAddr::V4(addr))));
        }
    }
}
