//! Network: direct TCP and UDP to the host's loopback services (IPv4, IPv6, IPv4-mapped), DNS to
//! the configured resolver and to a raw address, unix sockets outside (abstract, pathname, the
//! ssh agent), and the proxy: private and metadata addresses, an allowed name that resolves to
//! loopback, odd IP literal forms, NUL, CRLF and userinfo tricks, names that only look allowed,
//! the proxy itself, absolute-form requests.

use super::{errno_name, message, received, Attack};
use crate::selftest::brief::{Brief, Mode, Probe};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

const NETNS: &str = "network namespace: the sandbox has only its own loopback";
const UNIX: &str =
    "new root and Landlock: no socket outside is in the sandbox's tree; abstract sockets are scoped";
const PROXY: &str = "corral's proxy: allowlist, address checks, strict parsing";
const TIMEOUT: Duration = Duration::from_secs(2);

fn tcp_send(addr: SocketAddr, msg: &str) -> Probe {
    match TcpStream::connect_timeout(&addr, TIMEOUT) {
        Ok(mut s) => match s.write_all(format!("{msg}\n").as_bytes()) {
            Ok(()) => Probe::Attempted(format!("connected to {addr} and sent the message")),
            Err(e) => Probe::Blocked(format!("send: {}", errno_name(&e))),
        },
        Err(e) => Probe::Blocked(format!("connect {addr}: {}", errno_name(&e))),
    }
}

fn unix_send(addr: &std::os::unix::net::SocketAddr, what: &str, msg: &str) -> Probe {
    match std::os::unix::net::UnixStream::connect_addr(addr) {
        Ok(mut s) => match s.write_all(format!("{msg}\n").as_bytes()) {
            Ok(()) => Probe::Attempted(format!("connected to {what} and sent the message")),
            Err(e) => Probe::Blocked(format!("send: {}", errno_name(&e))),
        },
        Err(e) => Probe::Blocked(format!("connect {what}: {}", errno_name(&e))),
    }
}

/// A DNS query for `name`, type A, recursion desired.
pub fn dns_query(name: &str) -> Vec<u8> {
    let mut q = vec![0x5e, 0x1f, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(u8::try_from(label.len().min(63)).unwrap_or(63));
        q.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

fn dns_ask(server: SocketAddr, name: &str) -> Probe {
    let sock = match UdpSocket::bind(if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }) {
        Ok(s) => s,
        Err(e) => return Probe::Blocked(format!("socket: {}", errno_name(&e))),
    };
    let _ = sock.set_read_timeout(Some(TIMEOUT));
    if let Err(e) = sock.send_to(&dns_query(name), server) {
        return Probe::Blocked(format!("send to {server}: {}", errno_name(&e)));
    }
    let mut buf = [0u8; 512];
    match sock.recv(&mut buf) {
        Ok(n) if n >= 12 => {
            let rcode = buf[3] & 0x0f;
            let answers = u16::from_be_bytes([buf[6], buf[7]]);
            if rcode == 0 && answers > 0 {
                Probe::Escaped(format!("{server} answered with {answers} address(es)"))
            } else {
                Probe::Attempted(format!("{server} answered rcode {rcode}, no address"))
            }
        }
        Ok(_) => Probe::Attempted("a short answer".into()),
        Err(e) => Probe::Attempted(format!("no answer from {server}: {}", errno_name(&e))),
    }
}

/// The first `nameserver` of /etc/resolv.conf.
fn resolver() -> Option<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    let ip: std::net::IpAddr = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("nameserver"))?
        .trim()
        .parse()
        .ok()?;
    Some(SocketAddr::new(ip, 53))
}

fn dns_received(tag: &'static str) -> impl Fn(&Brief, &super::HostView) -> Option<String> {
    move |b, h| {
        let name = message(b, tag);
        h.received
            .iter()
            .any(|r| r.eq_ignore_ascii_case(&format!("dns {name}.selftest.invalid")))
            .then(|| "the bait DNS server on the host got the query".to_string())
    }
}

/// The proxy's address: the sandbox's from its environment, the open one in the control run.
fn proxy_addr(b: &Brief) -> Option<String> {
    let url = match b.mode {
        Mode::Control => b.proxy.clone()?,
        Mode::Sandbox => std::env::var("HTTPS_PROXY")
            .or_else(|_| std::env::var("https_proxy"))
            .ok()?,
    };
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    Some(rest.trim_end_matches('/').to_string())
}

/// Sends `head` (a request head, raw bytes) to the proxy and then `msg`; what the proxy answered.
fn via_proxy(b: &Brief, head: &[u8], msg: &str) -> Probe {
    let Some(addr) = proxy_addr(b) else {
        return Probe::Skipped("no proxy in this sandbox: the profile's network.mode is not proxy".into());
    };
    let mut s = match TcpStream::connect(&addr) {
        Ok(s) => s,
        Err(e) => return Probe::Blocked(format!("connect to the proxy {addr}: {}", errno_name(&e))),
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(8)));
    if let Err(e) = s.write_all(head) {
        return Probe::Blocked(format!("send: {}", errno_name(&e)));
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16384 {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => {
                if buf.is_empty() {
                    return Probe::Blocked(format!("no answer: {}", errno_name(&e)));
                }
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let status = text.split_whitespace().nth(1).unwrap_or("").to_string();
    let reason = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("X-Corral-Reason:")
                .or_else(|| l.strip_prefix("x-corral-reason:"))
        })
        .map(|r| r.trim().to_string())
        .unwrap_or_default();
    if status == "200" {
        let _ = s.write_all(format!("{msg}\n").as_bytes());
        return Probe::Escaped("the proxy answered 200".into());
    }
    // Refused only after it tried to resolve or dial: the policy let it through.
    if reason == "resolve_failed" || reason == "connect_failed" {
        return Probe::Escaped(format!(
            "the proxy's policy let it through ({status} {reason} at the dial)"
        ));
    }
    if status.is_empty() {
        Probe::Blocked("the proxy closed the connection".into())
    } else {
        Probe::Blocked(format!("{status} {reason}"))
    }
}

/// A TLS 1.3 ClientHello (RFC 8446 §4.1.2) naming `server` in its `server_name` extension
/// (RFC 6066 §3): enough for a proxy that reads the name, not for a handshake.
pub fn client_hello(server: &str) -> Vec<u8> {
    fn be16(n: usize) -> [u8; 2] {
        u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes()
    }
    let name = server.as_bytes();
    let mut sni = Vec::new();
    sni.extend_from_slice(&be16(name.len() + 3));
    sni.push(0); // host_name
    sni.extend_from_slice(&be16(name.len()));
    sni.extend_from_slice(name);
    let mut exts = vec![0, 0]; // server_name
    exts.extend_from_slice(&be16(sni.len()));
    exts.extend_from_slice(&sni);
    exts.extend_from_slice(&[0, 43, 0, 3, 2, 3, 4]); // supported_versions: TLS 1.3
    let mut body = vec![3, 3];
    body.extend_from_slice(&[0x5a; 32]); // random
    body.push(0); // legacy_session_id
    body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]); // TLS_AES_128_GCM_SHA256; null compression
    body.extend_from_slice(&be16(exts.len()));
    body.extend_from_slice(&exts);
    let len = u32::try_from(body.len()).unwrap_or(0).to_be_bytes();
    let mut hs = vec![1, len[1], len[2], len[3]];
    hs.extend_from_slice(&body);
    let mut record = vec![22, 3, 1];
    record.extend_from_slice(&be16(hs.len()));
    record.extend_from_slice(&hs);
    record
}

/// The TLS set: a tunnel to a host the proxy may dial (the bait on the host's loopback), whose
/// ClientHello names another server. The proxy must close it before a byte reaches the host.
pub fn tls_attacks(_brief: &Brief) -> Vec<Attack> {
    vec![Attack::new(
        "proxy",
        "sni-mismatch",
        "a tunnel to an allowed host whose TLS ClientHello names another server (domain fronting)",
        "corral's proxy: the ClientHello's server name must be the host the tunnel was opened to",
        |b| {
            let head = connect_head(format!("localhost:{}", b.tcp_port).as_bytes());
            let Some(addr) = proxy_addr(b) else {
                return Probe::Skipped(
                    "no proxy in this sandbox: the profile's network.mode is not proxy".into(),
                );
            };
            let mut s = match TcpStream::connect(&addr) {
                Ok(s) => s,
                Err(e) => return Probe::Blocked(format!("connect to the proxy {addr}: {}", errno_name(&e))),
            };
            let _ = s.set_read_timeout(Some(Duration::from_secs(8)));
            let mut answer = [0u8; 512];
            let n = s.write_all(&head).and_then(|()| s.read(&mut answer)).unwrap_or(0);
            let answer = String::from_utf8_lossy(&answer[..n]);
            if !answer.starts_with("HTTP/1.1 200") {
                return Probe::Skipped(format!(
                    "the proxy would not open the tunnel to the bait ({}): nothing to front",
                    answer.lines().next().unwrap_or("no answer")
                ));
            }
            let name = format!("{}.selftest.invalid", message(b, "sni"));
            match s.write_all(&client_hello(&name)) {
                Ok(()) => Probe::Attempted(format!("sent a ClientHello naming {name}")),
                Err(e) => Probe::Blocked(format!("send: {}", errno_name(&e))),
            }
        },
    )
    .verified(received("sni".into()))]
}

fn connect_head(target: &[u8]) -> Vec<u8> {
    let mut h = b"CONNECT ".to_vec();
    h.extend_from_slice(target);
    h.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    h.extend_from_slice(target);
    h.extend_from_slice(b"\r\n\r\n");
    h
}

pub fn attacks(brief: &Brief) -> Vec<Attack> {
    let mut v = Vec::new();
    let p = brief.tcp_port;
    let direct: Vec<(&str, &str, Option<String>)> = vec![
        (
            "tcp",
            "TCP to a service on the host's 127.0.0.1",
            Some(format!("127.0.0.1:{p}")),
        ),
        (
            "tcp6",
            "TCP to a service on the host's [::1]",
            brief.tcp6_port.map(|p6| format!("[::1]:{p6}")),
        ),
        (
            "tcp4mapped",
            "TCP to the host's 127.0.0.1 as an IPv4-mapped IPv6 address",
            brief.tcp6_port.map(|_| format!("[::ffff:127.0.0.1]:{p}")),
        ),
    ];
    for (tag, what, addr) in direct {
        let run = move |b: &Brief| match addr.as_deref().map(str::parse::<SocketAddr>) {
            Some(Ok(a)) => tcp_send(a, &message(b, tag)),
            _ => Probe::Skipped("this machine has no IPv6 loopback".into()),
        };
        v.push(Attack::new("network", tag, what, NETNS, run).verified(received(tag.into())));
    }
    v.push(
        Attack::new(
            "network",
            "udp",
            "a UDP datagram to the host's 127.0.0.1",
            NETNS,
            |b| {
                let a = SocketAddr::from(([127, 0, 0, 1], b.udp_port));
                match UdpSocket::bind("127.0.0.1:0").and_then(|s| s.send_to(message(b, "udp").as_bytes(), a))
                {
                    Ok(_) => Probe::Attempted(format!("sent to {a}")),
                    Err(e) => Probe::Blocked(errno_name(&e)),
                }
            },
        )
        .verified(received("udp".into())),
    );
    v.push(
        Attack::new(
            "network",
            "dns resolver",
            "a DNS query carrying data, to the configured resolver",
            "DNS sink: corral's resolver answers REFUSED and forwards nothing",
            |b| {
                let server = match b.mode {
                    Mode::Control => Some(SocketAddr::from(([127, 0, 0, 1], b.dns_port))),
                    Mode::Sandbox => resolver(),
                };
                match server {
                    Some(s) => dns_ask(s, &format!("{}.selftest.invalid", message(b, "resolver"))),
                    None => Probe::Blocked("no nameserver in /etc/resolv.conf".into()),
                }
            },
        )
        .verified(dns_received("resolver")),
    );
    v.push(
        Attack::new(
            "network",
            "dns raw",
            "a DNS query straight to a server on the host's 127.0.0.1",
            NETNS,
            |b| {
                dns_ask(
                    SocketAddr::from(([127, 0, 0, 1], b.dns_port)),
                    &format!("{}.selftest.invalid", message(b, "raw")),
                )
            },
        )
        .verified(dns_received("raw")),
    );
    v.push(
        Attack::new(
            "unix",
            "abstract",
            "connect to an abstract unix socket on the host",
            UNIX,
            |b| {
                use std::os::linux::net::SocketAddrExt;
                match std::os::unix::net::SocketAddr::from_abstract_name(b.abstract_name.as_bytes()) {
                    Ok(a) => unix_send(&a, &format!("@{}", b.abstract_name), &message(b, "abstract")),
                    Err(e) => Probe::Blocked(errno_name(&e)),
                }
            },
        )
        .verified(received("abstract".into())),
    );
    for (tag, what) in [
        (
            "pathname",
            "connect to a unix socket in a directory outside the project",
        ),
        (
            "ssh-agent",
            "connect to the ssh agent's socket (SSH_AUTH_SOCK on the host)",
        ),
    ] {
        v.push(
            Attack::new("unix", tag, what, UNIX, move |b| {
                let path = if tag == "pathname" {
                    &b.unix_path
                } else {
                    &b.ssh_agent
                };
                match std::os::unix::net::SocketAddr::from_pathname(path) {
                    Ok(a) => unix_send(&a, &path.display().to_string(), &message(b, tag)),
                    Err(e) => Probe::Blocked(errno_name(&e)),
                }
            })
            .verified(received(tag.into())),
        );
    }

    // Through the proxy. Targets aimed at the host's loopback listener are judged by what it
    // received too; the others by the proxy's answer alone.
    let allowed = brief.allowed_host.clone().unwrap_or_else(|| "example.com".into());
    let connects: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "proxy-loopback",
            "CONNECT to the host's 127.0.0.1",
            format!("127.0.0.1:{p}").into_bytes(),
        ),
        (
            "proxy-localhost",
            "CONNECT to `localhost`, an allowed name that resolves to loopback",
            format!("localhost:{p}").into_bytes(),
        ),
        (
            "proxy-decimal",
            "CONNECT to 127.0.0.1 written as one number (2130706433)",
            format!("2130706433:{p}").into_bytes(),
        ),
        (
            "proxy-hex",
            "CONNECT to 127.0.0.1 written in hex (0x7f000001)",
            format!("0x7f000001:{p}").into_bytes(),
        ),
        (
            "proxy-short",
            "CONNECT to 127.0.0.1 written short (127.1)",
            format!("127.1:{p}").into_bytes(),
        ),
        (
            "proxy-octal",
            "CONNECT to 127.0.0.1 written in octal (0177.0.0.1)",
            format!("0177.0.0.1:{p}").into_bytes(),
        ),
        (
            "proxy-mapped",
            "CONNECT to [::ffff:127.0.0.1]",
            format!("[::ffff:127.0.0.1]:{p}").into_bytes(),
        ),
        (
            "proxy-ipv6",
            "CONNECT to [::1]",
            format!("[::1]:{p}").into_bytes(),
        ),
        (
            "proxy-zero",
            "CONNECT to 0.0.0.0 (this host)",
            format!("0.0.0.0:{p}").into_bytes(),
        ),
        (
            "proxy-nul",
            "CONNECT to a loopback target with a NUL and an allowed name after it",
            format!("127.0.0.1:{p}\0.{allowed}:443").into_bytes(),
        ),
        (
            "proxy-crlf",
            "CONNECT with CRLF injected into the target",
            format!("127.0.0.1:{p}\r\nX-Allowed: {allowed}:443").into_bytes(),
        ),
        (
            "proxy-userinfo",
            "CONNECT to allowed@loopback (URL userinfo confusion)",
            format!("{allowed}@127.0.0.1:{p}").into_bytes(),
        ),
        (
            "proxy-self",
            "CONNECT to the proxy itself",
            b"127.0.0.1:3128".to_vec(),
        ),
        (
            "proxy-metadata",
            "CONNECT to the cloud metadata address",
            b"169.254.169.254:80".to_vec(),
        ),
        (
            "proxy-unlisted",
            "CONNECT to a name not on the allowlist",
            b"selftest.invalid:443".to_vec(),
        ),
        (
            "proxy-suffix",
            "CONNECT to an allowed name with another domain after it",
            format!("{allowed}.selftest.invalid:443").into_bytes(),
        ),
        (
            "proxy-prefix",
            "CONNECT to an allowed name with letters before it",
            format!("selftest{allowed}:443").into_bytes(),
        ),
    ];
    for (tag, what, target) in connects {
        let head = connect_head(&target);
        v.push(
            Attack::new("proxy", tag, what, PROXY, move |b| {
                via_proxy(b, &head, &message(b, tag))
            })
            .verified(received(tag.into())),
        );
    }
    v.push(
        Attack::new(
            "proxy",
            "proxy-absolute",
            "a plain GET http://127.0.0.1/… through the proxy",
            PROXY,
            move |b| {
                let head = format!(
                    "GET http://127.0.0.1:{p}/{m} HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\n\r\n",
                    m = message(b, "proxy-absolute")
                );
                via_proxy(b, head.as_bytes(), "")
            },
        )
        .verified(received("proxy-absolute".into())),
    );
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_client_hello_names_its_server_for_the_proxys_parser() {
        let hello = super::client_hello("abc-sni.selftest.invalid");
        assert_eq!(
            corral_net::tls::client_hello_sni(&hello),
            Ok(corral_net::tls::Hello::ClientHello {
                sni: Some("abc-sni.selftest.invalid".into())
            })
        );
    }
}
