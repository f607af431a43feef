//! One connection from the sandbox: which protocol (a first byte of 5 is SOCKS5, anything else
//! HTTP), the request, the decision, the answer, then the tunnel or the single HTTP exchange.
//!
//! Plain HTTP requests are forwarded one per connection: the request goes upstream in origin form
//! with `Connection: close`, its body exactly as framed by `Content-Length` (chunked request
//! bodies are refused: their end cannot be found without decoding, and anything after it would
//! reach the host unchecked), then the response comes back until the host closes. A second
//! request on the same connection is never read: each request is decided on its own connection.

use crate::head::{
    body_framing, origin_request, parse_request_head, BodyFraming, RequestHead, RequestTarget, MAX_HEAD,
};
use crate::proxy::Shared;
use crate::reason::Reason;
use crate::record::{ConnRecord, Proto};
use crate::socks::{self, parse_greeting, parse_request, SocksAddr, CMD_CONNECT, NO_ACCEPTABLE, NO_AUTH};
use crate::target::{canonical_host, parse_authority, Host};
use crate::tunnel::{self, Counters, End, Refusal};
use std::sync::atomic::Ordering;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Serves one connection and returns its record (bytes and duration filled by the caller's
/// clock, reason and target here). Ends early, recording what it has, when the proxy stops.
pub(crate) async fn serve_conn(s: &Shared, mut client: TcpStream) -> ConnRecord {
    let mut rec = ConnRecord::new();
    let counters = Counters::default();
    let mut stop = s.stop.clone();
    if !*stop.borrow() {
        tokio::select! {
            () = front(s, &mut client, &mut rec, &counters) => {}
            _ = stop.wait_for(|v| *v) => {}
        }
    }
    rec.up = counters.up.load(Ordering::Relaxed);
    rec.down = counters.down.load(Ordering::Relaxed);
    rec
}

/// Reads more bytes into `buf` before `deadline`; false on EOF, error, timeout or a full head.
async fn read_more(client: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> bool {
    if buf.len() > MAX_HEAD {
        return false;
    }
    let mut chunk = [0u8; 4096];
    match tokio::time::timeout_at(deadline, client.read(&mut chunk)).await {
        Ok(Ok(n)) if n > 0 => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
        _ => false,
    }
}

/// Why [`read_parsed`] gave up.
enum ReadFail<E> {
    /// The bytes are malformed.
    Parse(E),
    /// EOF, the deadline, or more than a head's worth of bytes without a complete message.
    Incomplete,
}

/// Reads into `buf` until `parse` finds a complete message in it.
async fn read_parsed<T, E>(
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    parse: impl Fn(&[u8]) -> Result<Option<T>, E>,
) -> Result<T, ReadFail<E>> {
    loop {
        match parse(buf) {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => return Err(ReadFail::Parse(e)),
        }
        if !read_more(client, buf, deadline).await {
            return Err(ReadFail::Incomplete);
        }
    }
}

async fn front(s: &Shared, client: &mut TcpStream, rec: &mut ConnRecord, c: &Counters) {
    let deadline = Instant::now() + s.cfg.head_timeout;
    let mut buf = Vec::with_capacity(1024);
    if !read_more(client, &mut buf, deadline).await {
        rec.detail = Some("no request before the deadline".into());
        return;
    }
    if buf[0] == socks::VERSION {
        rec.proto = Proto::Socks5;
        socks5(s, client, buf, deadline, rec, c).await;
    } else {
        http(s, client, buf, deadline, rec, c).await;
    }
}

/// Sets the record's outcome.
fn refuse(rec: &mut ConnRecord, (reason, detail): Refusal) {
    rec.reason = reason;
    rec.detail = Some(detail);
}

/// The HTTP status a refusal is answered with.
fn status(reason: Reason) -> (u16, &'static str) {
    match reason {
        Reason::BadHost | Reason::BadRequest => (400, "Bad Request"),
        Reason::NotInAllowlist
        | Reason::Denylisted
        | Reason::PortNotAllowed
        | Reason::ForbiddenAddress
        | Reason::HostMismatch
        | Reason::EgressLimit
        | Reason::SniMismatch
        | Reason::SniMissing
        | Reason::NotTls => (403, "Forbidden"),
        Reason::Unsupported => (501, "Not Implemented"),
        Reason::ResolveFailed | Reason::ConnectFailed => (502, "Bad Gateway"),
        Reason::TooManyConnections => (503, "Service Unavailable"),
        Reason::Allowed => (200, "OK"),
    }
}

/// Answers a refused HTTP request: the status, `X-Corral-Reason` with the stable code, and a body
/// in words.
async fn answer_refusal(client: &mut TcpStream, target: &str, reason: Reason, detail: &str) {
    let (code, text) = status(reason);
    let body = format!(
        "corral: {target} refused: {} ({}){}\n",
        reason.words(),
        reason.code(),
        if detail.is_empty() {
            String::new()
        } else {
            format!(": {detail}")
        }
    );
    let head = format!(
        "HTTP/1.1 {code} {text}\r\nX-Corral-Reason: {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason.code(),
        body.len()
    );
    let _ = client.write_all(head.as_bytes()).await;
    let _ = client.write_all(body.as_bytes()).await;
    linger_close(client).await;
}

/// Bytes read and thrown away after a refusal, at most.
const LINGER_BYTES: usize = 256 * 1024;
/// Time spent doing so, at most.
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// Half-closes, then reads and discards what the client is still sending (bounded), so that
/// closing with unread data does not reset the connection and destroy the answer before the
/// client reads it (the "lingering close" of web servers).
pub(crate) async fn linger_close(client: &mut TcpStream) {
    let _ = client.shutdown().await;
    let mut chunk = [0u8; 4096];
    let mut left = LINGER_BYTES;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while left > 0 {
            match client.read(&mut chunk).await {
                Ok(n) if n > 0 => left = left.saturating_sub(n),
                _ => break,
            }
        }
    })
    .await;
}

/// A name as the sandbox sent it, for records when it does not canonicalise: escaped, cut.
fn shown(raw: &str) -> String {
    const MAX: usize = 256;
    let s: String = raw.escape_debug().collect();
    s.chars().take(MAX).collect()
}

/// The path at which the proxy tells the sandbox its totals (`GET /corral/status`, origin form,
/// straight to the proxy's port): connections allowed and denied, DNS queries, API requests.
pub const STATUS_PATH: &str = "/corral/status";

fn status_json(s: &crate::record::Summary) -> String {
    format!(
        "{{\"allowed\":{},\"denied\":{},\"dns_queries\":{},\"api_requests\":{},\"bytes_up\":{},\"bytes_down\":{}}}",
        s.allowed, s.denied, s.dns_queries, s.api_requests, s.up, s.down
    )
}

/// What an HTTP request asks for.
enum HttpTarget {
    Tunnel,
    Plain { path: String },
}

async fn http(
    s: &Shared,
    client: &mut TcpStream,
    mut buf: Vec<u8>,
    deadline: Instant,
    rec: &mut ConnRecord,
    c: &Counters,
) {
    let head: RequestHead = match read_parsed(client, &mut buf, deadline, parse_request_head).await {
        Ok(h) => h,
        Err(ReadFail::Parse(e)) => {
            refuse(rec, (Reason::BadRequest, e.to_string()));
            answer_refusal(client, "request", Reason::BadRequest, &e.to_string()).await;
            return;
        }
        Err(ReadFail::Incomplete) => {
            rec.detail = Some("request head incomplete before the deadline".into());
            return;
        }
    };
    let connect = head.method.eq_ignore_ascii_case("CONNECT");
    let (raw, kind) = match &head.target {
        RequestTarget::Authority(a) if connect => (a.clone(), HttpTarget::Tunnel),
        RequestTarget::Absolute {
            scheme,
            authority,
            path,
        } if !connect && scheme == "http" => (authority.clone(), HttpTarget::Plain { path: path.clone() }),
        RequestTarget::Absolute { scheme, .. } if !connect => {
            let why = format!("{scheme}:// URLs are not fetched by the proxy: use CONNECT (HTTPS_PROXY)");
            refuse(rec, (Reason::Unsupported, why.clone()));
            answer_refusal(client, "request", Reason::Unsupported, &why).await;
            return;
        }
        RequestTarget::Origin(path) if path == STATUS_PATH && head.method == "GET" => {
            // The sandbox's own status line asks the proxy what it has decided so far. Not a
            // connection anywhere: not recorded.
            rec.proto = Proto::Status;
            let body = status_json(&s.summary_now());
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(reply.as_bytes()).await;
            return;
        }
        _ => {
            let why = "not a proxy request: use CONNECT host:port or an absolute http:// URL".to_string();
            refuse(rec, (Reason::BadRequest, why.clone()));
            answer_refusal(client, "request", Reason::BadRequest, &why).await;
            return;
        }
    };
    rec.proto = if connect { Proto::Connect } else { Proto::Http };
    let default_port = if connect { None } else { Some(80) };
    let (host, port) = match parse_authority(&raw, default_port) {
        Ok(hp) => hp,
        Err(e) => {
            rec.host = shown(&raw);
            refuse(rec, (Reason::BadHost, e.to_string()));
            answer_refusal(client, &shown(&raw), Reason::BadHost, &e.to_string()).await;
            return;
        }
    };
    rec.host = host.to_string();
    rec.port = port;
    let target = host.authority(port);

    if let HttpTarget::Plain { .. } = kind {
        // The Host header must name the URL's host: a host that routes by Host (a CDN) would
        // otherwise serve another site than the one decided on.
        if let Some(h) = head.header("host") {
            let same = std::str::from_utf8(h)
                .ok()
                .and_then(|h| parse_authority(h.trim(), Some(80)).ok())
                .is_some_and(|hp| hp == (host.clone(), port));
            if !same {
                let why = format!("Host: {}", shown(&String::from_utf8_lossy(h)));
                refuse(rec, (Reason::HostMismatch, why.clone()));
                answer_refusal(client, &target, Reason::HostMismatch, &why).await;
                return;
            }
        }
    }
    let framing = match &kind {
        HttpTarget::Tunnel => BodyFraming::None,
        HttpTarget::Plain { .. } => match body_framing(&head) {
            Ok(BodyFraming::Chunked) => {
                let why = "chunked request bodies are not forwarded over plain HTTP (send Content-Length, or use HTTPS)".to_string();
                refuse(rec, (Reason::Unsupported, why.clone()));
                answer_refusal(client, &target, Reason::Unsupported, &why).await;
                return;
            }
            Ok(f) => f,
            Err(e) => {
                refuse(rec, (Reason::BadRequest, e.to_string()));
                answer_refusal(client, &target, Reason::BadRequest, &e.to_string()).await;
                return;
            }
        },
    };

    let mut upstream = match decide_and_dial(s, &host, port, rec).await {
        Ok(u) => u,
        Err((reason, detail)) => {
            answer_refusal(client, &target, reason, &detail).await;
            return;
        }
    };
    let rest = buf.split_off(head.len.min(buf.len()));
    match kind {
        HttpTarget::Tunnel => {
            if client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await
                .is_err()
            {
                return;
            }
            if let Some(refusal) = tunnel::run(s, client, &mut upstream, rest, &host, port, c).await {
                refuse(rec, refusal);
            }
        }
        HttpTarget::Plain { path } => {
            let authority = target.strip_suffix(":80").unwrap_or(&target).to_string();
            let request = origin_request(&head, &path, &authority);
            if let Err(End::Refused(refusal)) =
                forward_plain(s, client, &mut upstream, &request, rest, framing, c).await
            {
                refuse(rec, refusal);
                // The response has not started: the sandbox can still be told.
                answer_refusal(client, &target, rec.reason, rec.detail.as_deref().unwrap_or("")).await;
            }
        }
    }
}

/// Decides on `host:port`, then dials it; fills the record either way.
async fn decide_and_dial(
    s: &Shared,
    host: &Host,
    port: u16,
    rec: &mut ConnRecord,
) -> Result<TcpStream, Refusal> {
    let d = s.cfg.policy.decide(host, port);
    rec.reason = d.reason;
    rec.rule = d.rule.clone();
    if !d.allowed() {
        // The rule that matched (an allowed host on another port, a deny entry) is the one to
        // edit: say which.
        let detail = d.rule.as_ref().map(|r| format!("rule {r:?}")).unwrap_or_default();
        rec.detail = None;
        return Err((d.reason, detail));
    }
    if s.egress_exhausted() {
        let r = (Reason::EgressLimit, "network.max_egress_mb reached".to_string());
        refuse(rec, r.clone());
        return Err(r);
    }
    match tunnel::dial(s, host, port).await {
        Ok(dialled) => {
            rec.addr = Some(dialled.addr.to_string());
            if let Some(cidr) = dialled.cidr {
                rec.detail = Some(format!("address allowed by network.allow_cidrs {cidr}"));
            }
            Ok(dialled.stream)
        }
        Err(r) => {
            refuse(rec, r.clone());
            Err(r)
        }
    }
}

/// Sends one plain HTTP request (head and exactly its framed body) and carries the response back
/// until the host closes.
async fn forward_plain(
    s: &Shared,
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    request: &[u8],
    rest: Vec<u8>,
    framing: BodyFraming,
    c: &Counters,
) -> Result<(), End> {
    {
        let (mut cr, _) = client.split();
        let (_, mut uw) = upstream.split();
        tunnel::send_up(s, &mut uw, request, c).await?;
        let mut left = match framing {
            BodyFraming::Length(n) => n,
            BodyFraming::None | BodyFraming::Chunked => 0,
        };
        let now = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
        tunnel::send_up(s, &mut uw, &rest[..now], c).await?;
        left -= now as u64;
        let mut chunk = vec![0u8; tunnel::TUNNEL_BUF];
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(chunk.len());
            let n = cr.read(&mut chunk[..want]).await.map_err(|_| End::Io)?;
            if n == 0 {
                return Err(End::Io);
            }
            tunnel::send_up(s, &mut uw, &chunk[..n], c).await?;
            left -= n as u64;
        }
    }
    // Nothing after the body is read: a second request waits for a connection of its own.
    tunnel::direction(s, upstream, client, &c.down, false).await
}

async fn socks5(
    s: &Shared,
    client: &mut TcpStream,
    mut buf: Vec<u8>,
    deadline: Instant,
    rec: &mut ConnRecord,
    c: &Counters,
) {
    let (methods, used) = match read_parsed(client, &mut buf, deadline, parse_greeting).await {
        Ok(g) => g,
        Err(ReadFail::Parse(e)) => {
            refuse(rec, (Reason::BadRequest, e.to_string()));
            return;
        }
        Err(ReadFail::Incomplete) => {
            rec.detail = Some("SOCKS5 greeting incomplete before the deadline".into());
            return;
        }
    };
    if !methods.contains(&NO_AUTH) {
        let _ = client.write_all(&[socks::VERSION, NO_ACCEPTABLE]).await;
        refuse(
            rec,
            (Reason::Unsupported, "SOCKS5 without the no-auth method".into()),
        );
        return;
    }
    if client.write_all(&[socks::VERSION, NO_AUTH]).await.is_err() {
        return;
    }
    buf.drain(..used);
    let req = match read_parsed(client, &mut buf, deadline, parse_request).await {
        Ok(r) => r,
        Err(ReadFail::Parse(e)) => {
            let _ = client.write_all(&socks::reply(e.reply_code())).await;
            refuse(rec, (Reason::BadRequest, e.to_string()));
            return;
        }
        Err(ReadFail::Incomplete) => {
            rec.detail = Some("SOCKS5 request incomplete before the deadline".into());
            return;
        }
    };
    rec.port = req.port;
    let host = match &req.addr {
        SocksAddr::Domain(d) => {
            let raw = String::from_utf8_lossy(d).into_owned();
            rec.host = shown(&raw);
            std::str::from_utf8(d)
                .map_err(|_| "host name is not UTF-8".to_string())
                .and_then(|n| canonical_host(n).map_err(|e| e.to_string()))
        }
        SocksAddr::V4(a) => Ok(Host::Ip((*a).into())),
        SocksAddr::V6(a) => canonical_host(&a.to_string()).map_err(|e| e.to_string()),
    };
    if req.cmd != CMD_CONNECT {
        let _ = client
            .write_all(&socks::reply(socks::rep::COMMAND_NOT_SUPPORTED))
            .await;
        refuse(
            rec,
            (
                Reason::Unsupported,
                format!("SOCKS5 command {} (only CONNECT)", req.cmd),
            ),
        );
        return;
    }
    let host = match host {
        Ok(h) => h,
        Err(e) => {
            let _ = client.write_all(&socks::reply(socks::rep::NOT_ALLOWED)).await;
            refuse(rec, (Reason::BadHost, e));
            return;
        }
    };
    rec.host = host.to_string();
    let mut upstream = match decide_and_dial(s, &host, req.port, rec).await {
        Ok(u) => u,
        Err((reason, _)) => {
            let code = match reason {
                Reason::ResolveFailed => socks::rep::HOST_UNREACHABLE,
                Reason::ConnectFailed => socks::rep::CONNECTION_REFUSED,
                _ => socks::rep::NOT_ALLOWED,
            };
            let _ = client.write_all(&socks::reply(code)).await;
            return;
        }
    };
    if client
        .write_all(&socks::reply(socks::rep::SUCCEEDED))
        .await
        .is_err()
    {
        return;
    }
    let rest = buf.split_off(req.len.min(buf.len()));
    if let Some(refusal) = tunnel::run(s, client, &mut upstream, rest, &host, req.port, c).await {
        refuse(rec, refusal);
    }
}
