//! The upstream side: resolve, check every address, dial only a checked one, then carry bytes
//! both ways with counters, the egress cap and the TLS server-name check.
//!
//! No DNS rebinding: the name is resolved once, here, and the connection goes to an address from
//! that answer that passed [`crate::policy::Policy::check_addr`]; nothing resolves it again.
//!
//! The server-name check never delays the host's side: bytes from the host flow to the sandbox at
//! once (protocols where the server speaks first, e.g. SSH, work), while the sandbox's first bytes
//! are held until they are known to be a TLS ClientHello naming the host asked for, or known not
//! to be TLS (refused on ports 80 and 443: see [`plain_tunnel_allowed`]).

use crate::policy::AddrCheck;
use crate::proxy::Shared;
use crate::reason::Reason;
use crate::target::{canonical_host, Host};
use crate::tls::{client_hello_sni, Hello, MAX_HELLO};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes read at once per direction of a tunnel when bytes pass through the proxy's memory (the
/// ClientHello check, and the fallback where splice(2) is refused).
pub const TUNNEL_BUF: usize = 32 * 1024;
/// Bytes moved by one splice(2) into a direction's pipe (and the size asked for that pipe).
pub const SPLICE_CHUNK: usize = 256 * 1024;

/// Bytes moved by one connection, updated as they move.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) up: AtomicU64,
    pub(crate) down: AtomicU64,
}

/// A refusal: why, and in more words.
pub(crate) type Refusal = (Reason, String);

/// How one direction of a tunnel ended, when not by EOF.
#[derive(Debug)]
pub(crate) enum End {
    /// A read or write failed (reset, broken pipe): the tunnel is over.
    Io,
    /// The proxy ended it.
    Refused(Refusal),
}

/// A connection to a checked address.
#[derive(Debug)]
pub(crate) struct Dialled {
    pub(crate) stream: TcpStream,
    pub(crate) addr: SocketAddr,
    /// The `network.allow_cidrs` entry that let a private address through.
    pub(crate) cidr: Option<String>,
}

/// Resolves `host` (once), keeps the addresses the policy allows, dials them in order.
pub(crate) async fn dial(s: &Shared, host: &Host, port: u16) -> Result<Dialled, Refusal> {
    let addrs: Vec<IpAddr> = match host {
        Host::Ip(ip) => vec![*ip],
        Host::Name(name) => {
            let lookup = tokio::net::lookup_host((name.as_str(), port));
            match tokio::time::timeout(s.cfg.resolve_timeout, lookup).await {
                Ok(Ok(it)) => it.map(|sa| sa.ip()).collect(),
                Ok(Err(e)) => return Err((Reason::ResolveFailed, format!("{name}: {e}"))),
                Err(_) => return Err((Reason::ResolveFailed, format!("{name}: timed out"))),
            }
        }
    };
    let mut allowed: Vec<(IpAddr, Option<String>)> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    for a in addrs {
        match s.cfg.policy.check_addr(a) {
            AddrCheck::Public => allowed.push((a, None)),
            AddrCheck::AllowedByCidr(c) => allowed.push((a, Some(c))),
            AddrCheck::Forbidden(class) => refused.push(format!("{a} is {}", class.as_str())),
        }
    }
    if allowed.is_empty() {
        let detail = if refused.is_empty() {
            "no address".to_string()
        } else {
            refused.join(", ")
        };
        return Err((Reason::ForbiddenAddress, detail));
    }
    let mut last = String::new();
    for (ip, cidr) in allowed {
        let addr = SocketAddr::new(ip, port);
        match tokio::time::timeout(s.cfg.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(Dialled { stream, addr, cidr });
            }
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: timed out"),
        }
    }
    Err((Reason::ConnectFailed, last))
}

/// Sends `bytes` up, within the egress cap.
pub(crate) async fn send_up<W: AsyncWrite + Unpin>(
    s: &Shared,
    w: &mut W,
    bytes: &[u8],
    c: &Counters,
) -> Result<(), End> {
    if bytes.is_empty() {
        return Ok(());
    }
    if !s.take_egress(bytes.len() as u64) {
        return Err(End::Refused(egress_refusal(s)));
    }
    w.write_all(bytes).await.map_err(|_| End::Io)?;
    c.up.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    Ok(())
}

fn egress_refusal(s: &Shared) -> Refusal {
    let cap = s.cfg.max_egress_bytes.unwrap_or(0) / (1024 * 1024);
    (
        Reason::EgressLimit,
        format!("network.max_egress_mb = {cap} reached"),
    )
}

/// Holds the sandbox's first bytes until they are known: a ClientHello whose server name is the
/// host asked for passes, as do non-TLS bytes on a port other than 443. Returns the bytes to send
/// first.
async fn gate<R: AsyncRead + Unpin>(
    s: &Shared,
    r: &mut R,
    mut buf: Vec<u8>,
    host: &Host,
    port: u16,
) -> Result<Vec<u8>, End> {
    let mut chunk = vec![0u8; 4096];
    if buf.is_empty() {
        // The sandbox speaks when it wants (after the host's greeting, say): no deadline yet.
        let n = r.read(&mut chunk).await.map_err(|_| End::Io)?;
        if n == 0 {
            return Ok(buf);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let deadline = tokio::time::Instant::now() + s.cfg.head_timeout;
    loop {
        match client_hello_sni(&buf) {
            Ok(Hello::NotTls) if !plain_tunnel_allowed(port) => {
                return Err(End::Refused((
                    Reason::NotTls,
                    "the first bytes are not a TLS handshake".into(),
                )))
            }
            Ok(Hello::NotTls) => return Ok(buf),
            Ok(Hello::ClientHello { sni }) => return check_sni(host, sni.as_deref()).map(|()| buf),
            Ok(Hello::NeedMore) => {}
            Err(e) => {
                return Err(End::Refused((
                    Reason::BadRequest,
                    format!("malformed TLS ClientHello: {e}"),
                )))
            }
        }
        if buf.len() > MAX_HELLO {
            return Err(End::Refused((
                Reason::BadRequest,
                "TLS ClientHello too large".into(),
            )));
        }
        match tokio::time::timeout_at(deadline, r.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            Ok(Ok(_)) | Ok(Err(_)) => return Err(End::Io),
            Err(_) => {
                return Err(End::Refused((
                    Reason::BadRequest,
                    "TLS ClientHello incomplete (timed out)".into(),
                )))
            }
        }
    }
}

/// Whether a tunnel to `port` may carry something other than TLS. Not on the web ports: a plain
/// HTTP request in a tunnel to an allowed CDN host could name another site in its `Host` header
/// (domain fronting without TLS), which the proxy checks only on the plain-HTTP path; clients
/// send `http://` URLs as plain requests anyway. Other ports (SSH, databases) carry their own
/// protocols, and a port is allowed only when a rule names it.
pub(crate) fn plain_tunnel_allowed(port: u16) -> bool {
    !matches!(port, 80 | 443)
}

/// The server name in a ClientHello against the host the tunnel was opened to.
fn check_sni(host: &Host, sni: Option<&str>) -> Result<(), End> {
    let refuse = |reason, detail: String| Err(End::Refused((reason, detail)));
    match (host, sni) {
        (Host::Name(_), None) => refuse(Reason::SniMissing, "ClientHello without server_name".into()),
        (Host::Ip(_), None) => Ok(()),
        (_, Some(name)) => match canonical_host(name) {
            Ok(ref seen) if seen == host => Ok(()),
            _ => refuse(
                Reason::SniMismatch,
                format!("ClientHello names {:?}", name.escape_debug().to_string()),
            ),
        },
    }
}

/// A pipe for one direction of a tunnel: bytes go socket → pipe → socket with splice(2), never
/// through the proxy's memory. None if the kernel refuses one (then the copy loop is used).
fn splice_pipe() -> Option<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use rustix::pipe::{fcntl_setpipe_size, pipe_with, PipeFlags};
    let (r, w) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).ok()?;
    // A larger pipe moves more per system call; the default (64 KiB) still works.
    let _ = fcntl_setpipe_size(&w, SPLICE_CHUNK);
    Some((r, w))
}

/// Moves `from` → `to` with splice(2) until EOF (then half-closes `to`), counting into `counter`
/// and, for the sandbox's side (`egress`), within the session's egress cap.
async fn splice_pump(
    s: &Shared,
    from: &TcpStream,
    to: &TcpStream,
    pipe: (std::os::fd::OwnedFd, std::os::fd::OwnedFd),
    counter: &AtomicU64,
    egress: bool,
) -> Result<(), End> {
    use rustix::pipe::{splice, SpliceFlags};
    use tokio::io::Interest;
    let (pr, pw) = pipe;
    let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
    loop {
        let want = if egress {
            match s.reserve_egress(SPLICE_CHUNK as u64) {
                0 => return Err(End::Refused(egress_refusal(s))),
                n => usize::try_from(n).unwrap_or(SPLICE_CHUNK),
            }
        } else {
            SPLICE_CHUNK
        };
        // Fill: the pipe is empty here (drained below), so EAGAIN means "no data yet".
        let n = loop {
            from.readable().await.map_err(|_| End::Io)?;
            match from.try_io(Interest::READABLE, || {
                splice(from, None, &pw, None, want, flags).map_err(std::io::Error::from)
            }) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return Err(End::Io),
            }
        };
        if egress {
            s.release_egress((want - n) as u64);
        }
        if n == 0 {
            let _ = rustix::net::shutdown(to, rustix::net::Shutdown::Write);
            return Ok(());
        }
        // Drain it all before the next fill.
        let mut left = n;
        while left > 0 {
            to.writable().await.map_err(|_| End::Io)?;
            match to.try_io(Interest::WRITABLE, || {
                splice(&pr, None, to, None, left, flags).map_err(std::io::Error::from)
            }) {
                Ok(m) => left -= m,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return Err(End::Io),
            }
        }
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Carries a tunnel until both sides are done. `first`: bytes the sandbox sent after its request
/// (already read). Returns the refusal that ended it, if the proxy ended it.
pub(crate) async fn run(
    s: &Shared,
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    first: Vec<u8>,
    host: &Host,
    port: u16,
    c: &Counters,
) -> Option<Refusal> {
    // The sandbox's first bytes are checked through memory, the rest spliced.
    let first = {
        let (mut cr, _) = client.split();
        match gate(s, &mut cr, first, host, port).await {
            Ok(bytes) => bytes,
            Err(End::Refused(refusal)) => return Some(refusal),
            Err(End::Io) => return None,
        }
    };
    {
        let (_, mut uw) = upstream.split();
        match send_up(s, &mut uw, &first, c).await {
            Ok(()) => {}
            Err(End::Refused(refusal)) => return Some(refusal),
            Err(End::Io) => return None,
        }
    }
    let client: &TcpStream = client;
    let upstream: &TcpStream = upstream;
    carry(s, client, upstream, c).await
}

/// Carries both directions until both are done. Returns the refusal that ended it, if the proxy
/// ended it.
async fn carry(s: &Shared, client: &TcpStream, upstream: &TcpStream, c: &Counters) -> Option<Refusal> {
    let up = direction(s, client, upstream, &c.up, true);
    let down = direction(s, upstream, client, &c.down, false);
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        tokio::select! {
            r = &mut up, if !up_done => match r {
                Ok(()) => up_done = true,
                Err(End::Refused(refusal)) => return Some(refusal),
                Err(End::Io) => return None,
            },
            r = &mut down, if !down_done => match r {
                Ok(()) => down_done = true,
                Err(_) => return None,
            },
        }
    }
    None
}

/// One direction: splice(2) when the kernel gives a pipe, else a copy through a buffer.
pub(crate) async fn direction(
    s: &Shared,
    from: &TcpStream,
    to: &TcpStream,
    counter: &AtomicU64,
    egress: bool,
) -> Result<(), End> {
    match splice_pipe() {
        Some(pipe) => splice_pump(s, from, to, pipe, counter, egress).await,
        None => copy_pump(s, from, to, counter, egress).await,
    }
}

/// The copy fallback of [`direction`].
async fn copy_pump(
    s: &Shared,
    from: &TcpStream,
    to: &TcpStream,
    counter: &AtomicU64,
    egress: bool,
) -> Result<(), End> {
    use tokio::io::Interest;
    let mut buf = vec![0u8; TUNNEL_BUF];
    loop {
        let n = loop {
            from.readable().await.map_err(|_| End::Io)?;
            match from.try_read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return Err(End::Io),
            }
        };
        if n == 0 {
            let _ = rustix::net::shutdown(to, rustix::net::Shutdown::Write);
            return Ok(());
        }
        if egress && !s.take_egress(n as u64) {
            return Err(End::Refused(egress_refusal(s)));
        }
        let mut done = 0;
        while done < n {
            to.ready(Interest::WRITABLE).await.map_err(|_| End::Io)?;
            match to.try_write(&buf[done..n]) {
                Ok(m) => done += m,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return Err(End::Io),
            }
        }
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> Host {
        Host::Name(n.into())
    }

    fn reason(r: Result<(), End>) -> Option<Reason> {
        match r {
            Ok(()) => None,
            Err(End::Refused((reason, _))) => Some(reason),
            Err(End::Io) => Some(Reason::BadRequest),
        }
    }

    #[test]
    fn sni_must_name_the_connect_host() {
        assert_eq!(reason(check_sni(&name("example.com"), Some("example.com"))), None);
        // Canonicalised first: case and the trailing dot do not matter.
        assert_eq!(
            reason(check_sni(&name("example.com"), Some("EXAMPLE.com."))),
            None
        );
        assert_eq!(
            reason(check_sni(&name("example.com"), Some("evil.example"))),
            Some(Reason::SniMismatch)
        );
        assert_eq!(
            reason(check_sni(&name("example.com"), Some("www.example.com"))),
            Some(Reason::SniMismatch)
        );
        assert_eq!(
            reason(check_sni(&name("example.com"), None)),
            Some(Reason::SniMissing)
        );
        assert_eq!(
            reason(check_sni(&name("example.com"), Some("exa\0mple.com"))),
            Some(Reason::SniMismatch)
        );
    }

    #[test]
    fn tunnels_to_the_web_ports_must_carry_tls() {
        assert!(!plain_tunnel_allowed(80));
        assert!(!plain_tunnel_allowed(443));
        assert!(plain_tunnel_allowed(22));
        assert!(plain_tunnel_allowed(5432));
    }

    #[test]
    fn sni_with_an_ip_target() {
        let ip = Host::Ip(IpAddr::from([93, 184, 216, 34]));
        assert_eq!(reason(check_sni(&ip, None)), None);
        assert_eq!(
            reason(check_sni(&ip, Some("example.com"))),
            Some(Reason::SniMismatch)
        );
    }
}
