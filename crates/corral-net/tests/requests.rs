//! Plain HTTP requests through the proxy, end to end on loopback (the proxy allowed to dial a test
//! upstream on 127.0.0.1): what it refuses before anything reaches the upstream, and that it
//! forwards one request per connection. These are the proxy's own checks, without a sandbox.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use corral_net::policy::Policy;
use corral_net::proxy::{Config, Listeners, Proxy, ProxyListeners};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An upstream on 127.0.0.1 that records what each connection sends (until it closes or stays
/// quiet for a moment) and answers every request `200` with an empty body.
struct Upstream {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    fn start() -> Upstream {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                    if got.windows(4).any(|w| w == b"\r\n\r\n") {
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                    }
                }
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&got).into_owned());
            }
        });
        Upstream { port, seen }
    }

    fn seen(&self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(500));
        self.seen.lock().unwrap().clone()
    }
}

/// The proxy with `allow` (and 127.0.0.1 dialable), and its address.
fn proxy(allow: &[String]) -> (Proxy, String) {
    let policy = Policy::new(allow, &[], &["127.0.0.1/32".to_string()], &[]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let listeners = Listeners {
        proxy: Some(ProxyListeners {
            proxy: listener,
            dns_udp: UdpSocket::bind("127.0.0.1:0").unwrap(),
            dns_tcp: TcpListener::bind("127.0.0.1:0").unwrap(),
        }),
        gateway: None,
    };
    let proxy = Proxy::start(Config::new(policy, None), listeners, Box::new(|_| {})).unwrap();
    (proxy, addr)
}

/// Sends `request` to the proxy and returns everything it answers.
fn ask(proxy: &str, request: &str) -> String {
    let mut c = TcpStream::connect(proxy).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_host_header_naming_another_host_is_refused_before_the_upstream() {
    let up = Upstream::start();
    let (_p, addr) = proxy(&[format!("localhost:{}", up.port)]);
    let answer = ask(
        &addr,
        &format!(
            "GET http://localhost:{}/ HTTP/1.1\r\nHost: attacker.example\r\n\r\n",
            up.port
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 403 "), "{answer}");
    assert!(answer.contains("X-Corral-Reason: host_mismatch"), "{answer}");
    assert_eq!(up.seen(), Vec::<String>::new());
}

#[test]
fn a_chunked_request_body_is_refused_before_the_upstream() {
    let up = Upstream::start();
    let (_p, addr) = proxy(&[format!("localhost:{}", up.port)]);
    let answer = ask(
        &addr,
        &format!(
            "POST http://localhost:{p}/ HTTP/1.1\r\nHost: localhost:{p}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            p = up.port
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 501 "), "{answer}");
    assert!(answer.contains("X-Corral-Reason: unsupported"), "{answer}");
    assert_eq!(up.seen(), Vec::<String>::new());
}

#[test]
fn one_request_per_connection_reaches_the_upstream() {
    // A second, pipelined request (here after an exact Content-Length body) is never read: it
    // would reach the upstream without a decision of its own.
    let up = Upstream::start();
    let (_p, addr) = proxy(&[format!("localhost:{}", up.port)]);
    let p = up.port;
    let answer = ask(
        &addr,
        &format!(
            "POST http://localhost:{p}/a HTTP/1.1\r\nHost: localhost:{p}\r\nContent-Length: 2\r\n\r\nokGET http://localhost:{p}/b HTTP/1.1\r\nHost: localhost:{p}\r\n\r\n"
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let seen = up.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with("POST /a HTTP/1.1\r\n"), "{seen:?}");
    assert!(seen[0].ends_with("\r\n\r\nok"), "{seen:?}");
    assert!(!seen[0].contains("/b"), "{seen:?}");
}

#[test]
fn a_port_not_allowed_names_the_rule_that_matched() {
    let up = Upstream::start();
    // Allowed by name, on the default ports only.
    let (_p, addr) = proxy(&["localhost".to_string()]);
    let answer = ask(
        &addr,
        &format!(
            "CONNECT localhost:{p} HTTP/1.1\r\nHost: localhost:{p}\r\n\r\n",
            p = up.port
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 403 "), "{answer}");
    assert!(answer.contains("X-Corral-Reason: port_not_allowed"), "{answer}");
    assert!(answer.contains("rule \"localhost\""), "{answer}");
    assert_eq!(up.seen(), Vec::<String>::new());
}
