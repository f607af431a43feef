//! What each corral-net fuzz target checks, one function per target (`fuzz_targets/<name>.rs`
//! calls `<name>(data)`). The same file is compiled into `crates/corral-net/tests/fuzz_regressions.rs`,
//! which replays every input under `regressions/<name>/` on stable, so a crash once found stays
//! fixed in every CI run.
//!
//! Beyond "no panic", each check asserts invariants that hold for every input, so the fuzzer
//! finds wrong answers too, not only crashes. A failed assertion is a crash to libFuzzer.
// A failed check must panic: that is how libFuzzer (and the replay test) sees it.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use corral_net::dns::{formerr, parse_query, qtype_name, refused};
use corral_net::gateway::{GatewayError, Upstream};
use corral_net::head::{
    body_framing, origin_request, parse_request_head, RequestTarget, MAX_HEAD, MAX_HEADERS,
};
use corral_net::policy::{self, AddrCheck, Decision, Policy};
use corral_net::reason::Reason;
use corral_net::socks::{parse_greeting, parse_request, rep, reply, SocksAddr};
use corral_net::target::{canonical_host, parse_authority, Host};
use corral_net::tls::{client_hello_sni, Hello};
use std::net::IpAddr;

/// Longest DNS name in text form (RFC 1035 §2.3.4), as `target.rs` enforces it.
const MAX_NAME_LEN: usize = 253;
/// Longest DNS label (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;

/// The HTTP/1.x request head parser and what the proxy does with a parsed head: the rebuilt head
/// must re-parse with the same body framing.
pub fn head(data: &[u8]) {
    let Ok(Some(head)) = parse_request_head(data) else {
        return;
    };
    assert!(head.len <= data.len() && head.len <= MAX_HEAD);
    let framing = body_framing(&head);
    let RequestTarget::Absolute { path, authority, .. } = &head.target else {
        return;
    };
    let rebuilt = origin_request(&head, path, authority);
    // The rebuilt head is one the proxy itself would accept, with the same body framing: the
    // origin server cannot be made to see a different body length (request smuggling).
    let fields = head.headers.len() + 2;
    if rebuilt.len() <= MAX_HEAD && fields <= MAX_HEADERS {
        let again = parse_request_head(&rebuilt)
            .expect("rebuilt head parses")
            .expect("rebuilt head is complete");
        assert_eq!(again.len, rebuilt.len());
        assert_eq!(again.method, head.method);
        assert_eq!(again.target, RequestTarget::Origin(path.clone()));
        if let Ok(framing) = framing {
            assert_eq!(body_framing(&again), Ok(framing));
        }
    }
}

/// The SOCKS5 greeting and request parsers, and the host the proxy makes of a request's address.
pub fn socks(data: &[u8]) {
    if let Ok(Some((methods, consumed))) = parse_greeting(data) {
        assert!(consumed <= data.len() && consumed == methods.len() + 2);
    }
    match parse_request(data) {
        Ok(Some(req)) => {
            assert!(req.len <= data.len());
            let _ = reply(rep::SUCCEEDED);
            // As serve.rs turns the address into a host.
            match &req.addr {
                SocksAddr::Domain(name) => {
                    assert!(!name.is_empty() && name.len() <= usize::from(u8::MAX));
                    if let Ok(Ok(host)) = std::str::from_utf8(name).map(canonical_host) {
                        check_host(&host);
                    }
                }
                SocksAddr::V4(_) => {}
                SocksAddr::V6(a) => {
                    let host = canonical_host(&a.to_string()).expect("an IPv6 address as text is a host");
                    check_host(&host);
                }
            }
        }
        Ok(None) => {}
        Err(e) => {
            let _ = reply(e.reply_code());
        }
    }
}

/// The TLS ClientHello server-name extractor, and the host the tunnel compares the name with.
pub fn tls(data: &[u8]) {
    if let Ok(Hello::ClientHello { sni: Some(name) }) = client_hello_sni(data) {
        assert!(!name.is_empty() && name.bytes().all(|b| b != 0 && b.is_ascii()));
        if let Ok(host) = canonical_host(&name) {
            check_host(&host);
        }
    }
}

/// The DNS sink's query parser and its answers.
pub fn dns(data: &[u8]) {
    match parse_query(data) {
        Ok(q) => {
            let answer = refused(data, &q);
            assert_eq!(answer.len(), q.question_end);
            assert_eq!(&answer[12..], &data[12..q.question_end]);
            assert!(q.name.bytes().all(|b| b.is_ascii_graphic()));
            let _ = qtype_name(q.qtype);
        }
        Err(_) => {
            if let Some(answer) = formerr(data) {
                assert_eq!(answer.len(), 12);
            }
        }
    }
}

/// Host canonicalisation ([`canonical_host`], [`parse_authority`]) of a `CONNECT` target, `Host`
/// field or SOCKS name: what it accepts is canonical and re-reads as itself; IP literals agree
/// with the standard library's strict parsers and the IPv4 forms with glibc's `inet_aton`.
pub fn host(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match canonical_host(text) {
        Ok(host) => check_host(&host),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    // A strict dotted quad or an IPv6 address (bracketed or not) is that address; `target.rs`
    // accepts more IPv4 forms (inet_aton's), never fewer.
    let unbracketed = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
    if let Ok(ip) = unbracketed.unwrap_or(text).parse::<IpAddr>() {
        let want = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            IpAddr::V4(v4) => IpAddr::V4(v4),
        };
        if unbracketed.is_none() || ip.is_ipv6() {
            assert_eq!(canonical_host(text), Ok(Host::Ip(want)), "{text:?}");
        }
    }
    // Every inet_aton(3) form, against glibc's algorithm written out below: a host whose last
    // label starts with a digit is the address glibc reads, or refused when glibc refuses it.
    let last_label = text.rsplit('.').next().unwrap_or_default();
    if last_label.starts_with(|c: char| c.is_ascii_digit()) && !text.contains([':', '[', '%']) {
        let want = glibc_inet_aton(text).map(|v4| Host::Ip(IpAddr::V4(v4)));
        assert_eq!(canonical_host(text).ok(), want, "{text:?}");
    }
    for default_port in [None, Some(443)] {
        if let Ok((host, port)) = parse_authority(text, default_port) {
            assert_ne!(port, 0);
            check_host(&host);
            assert_eq!(parse_authority(&host.authority(port), None), Ok((host, port)));
        }
    }
}

/// glibc's `inet_aton_exact` (`resolv/inet_addr.c`, `inet_aton_end` with nothing after the
/// address), as an independent oracle: parts are read like `strtoul(cp, &end, 0)` (`0x` hex,
/// leading-`0` octal, else decimal), at most four, each before the last at most 255, the last at
/// most what its position leaves.
fn glibc_inet_aton(text: &str) -> Option<std::net::Ipv4Addr> {
    let bytes = text.as_bytes();
    let mut parts: Vec<u32> = Vec::new();
    let mut at = 0;
    let last = loop {
        // `if (!isdigit (c)) goto ret_0;`
        if !bytes.get(at)?.is_ascii_digit() {
            return None;
        }
        // strtoul, base 0: `0x`/`0X` then hex digits, `0` then octal digits, else decimal; it
        // stops at the first byte that is not a digit of its base.
        let (radix, digits_from) = match (bytes[at], bytes.get(at + 1)) {
            (b'0', Some(b'x' | b'X')) if bytes.get(at + 2).is_some_and(u8::is_ascii_hexdigit) => (16, at + 2),
            (b'0', _) => (8, at),
            _ => (10, at),
        };
        let mut value: u64 = 0;
        at = digits_from;
        while let Some(digit) = bytes.get(at).and_then(|&b| char::from(b).to_digit(radix)) {
            // Past 0xffffffff glibc refuses the part, however long it goes on.
            value = (value * u64::from(radix) + u64::from(digit)).min(u64::from(u32::MAX) + 1);
            at += 1;
        }
        let value = u32::try_from(value).ok()?;
        if bytes.get(at) == Some(&b'.') {
            // `if (pp > parts + 2 || val > 0xff) goto ret_0;`
            if parts.len() > 2 || value > 0xff {
                return None;
            }
            parts.push(value);
            at += 1;
        } else {
            break value;
        }
    };
    // inet_aton_exact: nothing may follow the address.
    if at != bytes.len() {
        return None;
    }
    let limit = match parts.len() {
        0 => u32::MAX,
        1 => 0x00ff_ffff,
        2 => 0x0000_ffff,
        _ => 0x0000_00ff,
    };
    if last > limit {
        return None;
    }
    let mut address = last;
    for (i, part) in parts.iter().enumerate() {
        address |= part << (24 - 8 * i);
    }
    Some(std::net::Ipv4Addr::from(address))
}

/// What holds for every host [`canonical_host`] returns.
fn check_host(host: &Host) {
    let shown = host.to_string();
    assert_eq!(
        canonical_host(&shown).as_ref(),
        Ok(host),
        "{shown:?} re-reads as itself"
    );
    assert_eq!(parse_authority(&host.authority(1), None), Ok((host.clone(), 1)));
    assert_eq!(
        parse_authority(&host.authority(u16::MAX), None),
        Ok((host.clone(), u16::MAX))
    );
    match host {
        Host::Name(name) => {
            assert!(!name.is_empty() && name.len() <= MAX_NAME_LEN, "{name:?}");
            for label in name.split('.') {
                assert!((1..=MAX_LABEL_LEN).contains(&label.len()), "{name:?}");
                assert!(
                    label
                        .bytes()
                        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_')),
                    "{name:?}"
                );
            }
            let last = name.rsplit('.').next().unwrap_or_default();
            assert!(
                !last.starts_with(|c: char| c.is_ascii_digit()),
                "{name:?} is an IPv4 form"
            );
        }
        Host::Ip(IpAddr::V6(v6)) => assert!(v6.to_ipv4_mapped().is_none(), "{v6} is stored as IPv4"),
        Host::Ip(IpAddr::V4(_)) => {}
    }
}

/// The egress policy: `network.allow` / `network.deny` / `network.allow_cidrs` entries and the
/// decisions on targets. One item per line: `a<entry>` an allow rule, `d<entry>` a deny rule,
/// `c<entry>` an `allow_cidrs` entry, anything else (`t<authority>`) a target.
///
/// Checked: an entry that reads means what it names (an exact allow rule allows its host and
/// port, a deny rule denies it, a `*.` rule covers a subdomain, a range contains its network
/// address); the whole policy's decision is the one its rules give one at a time (deny first,
/// then the first allow, then the first allow on another port); a non-canonical host is
/// refused; the address check agrees with [`policy::classify`].
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (mut allow, mut deny, mut cidrs, mut targets) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for line in text.split('\n') {
        let mut chars = line.chars();
        let Some(kind) = chars.next() else {
            continue;
        };
        let entry = chars.as_str().to_owned();
        match kind {
            'a' => allow.push(entry),
            'd' => deny.push(entry),
            'c' => cidrs.push(entry),
            _ => targets.push(entry),
        }
    }
    // Entries that read on their own; the policy of those must read as a whole.
    let alone =
        |list: &[String], make: fn(&String) -> Result<Policy, policy::RuleError>| -> Vec<(String, Policy)> {
            list.iter()
                .filter_map(|e| make(e).ok().map(|p| (e.clone(), p)))
                .collect()
        };
    let allow = alone(&allow, |e| Policy::new(std::slice::from_ref(e), &[], &[], &[]));
    let deny = alone(&deny, |e| Policy::new(&[], std::slice::from_ref(e), &[], &[]));
    let cidrs = alone(&cidrs, |e| Policy::new(&[], &[], std::slice::from_ref(e), &[]));
    let texts = |v: &[(String, Policy)]| v.iter().map(|(e, _)| e.clone()).collect::<Vec<_>>();
    let whole = Policy::new(&texts(&allow), &texts(&deny), &texts(&cidrs), &[])
        .expect("entries that read alone read together");

    for (entry, only) in &allow {
        check_host_rule(entry, only, Reason::Allowed);
        let as_deny =
            Policy::new(&[], std::slice::from_ref(entry), &[], &[]).expect("an allow entry is a deny entry");
        check_host_rule(entry, &as_deny, Reason::Denylisted);
    }
    for (entry, only) in &cidrs {
        let addr = entry
            .split('/')
            .next()
            .unwrap_or_default()
            .parse::<IpAddr>()
            .expect("a range reads");
        assert_eq!(
            only.check_addr(addr),
            AddrCheck::AllowedByCidr(entry.clone()),
            "{entry:?}"
        );
    }

    for raw in &targets {
        if let Ok((host, port)) = parse_authority(raw, Some(80)) {
            let got = whole.decide(&host, port);
            let one = |rules: &[(String, Policy)], want: Reason| {
                rules
                    .iter()
                    .find(|(_, p)| p.decide(&host, port).reason == want)
                    .map(|(e, _)| Decision {
                        reason: want,
                        rule: Some(e.clone()),
                    })
            };
            let want = one(&deny, Reason::Denylisted)
                .or_else(|| one(&allow, Reason::Allowed))
                .or_else(|| one(&allow, Reason::PortNotAllowed))
                .unwrap_or(Decision {
                    reason: Reason::NotInAllowlist,
                    rule: None,
                });
            assert_eq!(got, want, "{raw:?} under {text:?}");
            if let Host::Ip(addr) = host {
                check_addr(&whole, addr, &texts(&cidrs));
            }
        }
        // A hand-built host that is not canonical is refused, whatever the rules.
        if canonical_host(raw).as_ref() != Ok(&Host::Name(raw.clone())) {
            assert_eq!(
                whole.decide(&Host::Name(raw.clone()), 443).reason,
                Reason::BadHost,
                "{raw:?}"
            );
        }
    }
}

/// An allow or deny entry, alone in a policy (`policy`), gives `want` for what it names.
fn check_host_rule(entry: &str, policy: &Policy, want: Reason) {
    let decided = |host: &Host, port: u16| policy.decide(host, port);
    let hit = Decision {
        reason: want,
        rule: Some(entry.to_owned()),
    };
    if entry == "*" || entry.starts_with("*:") {
        return;
    }
    let (rest, subdomains) = match entry.strip_prefix("*.") {
        Some(rest) => (rest, true),
        None => (entry, false),
    };
    let (host, port) = parse_authority(rest, Some(443)).expect("a rule's host and port read as an authority");
    if subdomains {
        let Host::Name(name) = &host else {
            panic!("{entry:?}: `*.` took an IP address");
        };
        if let Ok(sub) = canonical_host(&format!("a.{name}")) {
            assert_eq!(decided(&sub, port), hit, "{entry:?} covers {sub}");
        }
        assert_ne!(
            decided(&host, port),
            hit,
            "{entry:?} does not cover {name} itself"
        );
    } else {
        assert_eq!(decided(&host, port), hit, "{entry:?} names {host}:{port}");
    }
}

/// The address check agrees with the classification and the ranges.
fn check_addr(policy: &Policy, addr: IpAddr, cidrs: &[String]) {
    let class = policy::classify(addr);
    match policy.check_addr(addr) {
        AddrCheck::Public => assert_eq!(class, None, "{addr}"),
        AddrCheck::Forbidden(c) => assert_eq!(Some(c), class, "{addr}"),
        AddrCheck::AllowedByCidr(entry) => assert!(cidrs.contains(&entry), "{addr}: {entry:?}"),
    }
    // An IPv4 address and its IPv4-mapped and NAT64 forms are one class.
    if let IpAddr::V4(v4) = addr {
        let nat64 = std::net::Ipv6Addr::from_bits((0x64_ff9b_u128 << 96) | u128::from(v4.to_bits()));
        assert_eq!(policy::classify(IpAddr::V6(v4.to_ipv6_mapped())), class, "{addr}");
        assert_eq!(policy::classify(IpAddr::V6(nat64)), class, "{addr}");
    }
}

/// The API gateway's upstream URL (`sandbox.api_upstream`): what reads is a host and port that
/// read back the same from the gateway's own `Host` field, and an error never shows userinfo.
pub fn upstream(data: &[u8]) {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    match Upstream::parse(url) {
        Ok(up) => {
            assert!(!up.host.is_empty() && up.port != 0, "{up:?}");
            assert_eq!(up.host, up.host.to_ascii_lowercase());
            let scheme = if up.tls { "https" } else { "http" };
            let again = Upstream::parse(&format!("{scheme}://{}", up.host_field()));
            assert_eq!(again.as_ref().ok(), Some(&up), "{url:?}");
        }
        Err(GatewayError::BadUpstream { url: shown, .. }) => {
            // Userinfo (a password, perhaps) is shown as `…@`: the authority shows at most one
            // `@`, right after `…`.
            if let Some((_, rest)) = shown.split_once("://") {
                let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
                if let Some(at) = authority.find('@') {
                    assert_eq!(&authority[..at], "…", "{shown:?}");
                    assert!(!authority[at + 1..].contains('@'), "{shown:?}");
                }
            }
        }
        Err(other) => panic!("parsing a URL gave {other:?}"),
    }
}
