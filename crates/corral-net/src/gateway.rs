//! The API gateway: the model API endpoint the sandboxed agent talks to, run in the supervisor.
//!
//! The agent is given `ANTHROPIC_BASE_URL=http://127.0.0.1:3129` (or the like) and a dummy
//! credential. The sandbox's init binds that listener inside the sandbox's network namespace; this
//! module serves it from the host side. Each request is forwarded to the one configured
//! [`Upstream`] over its own connection (TLS via rustls unless the upstream is `http://`), with
//! every credential the client sent removed (`x-api-key`, `authorization`, `proxy-authorization`,
//! `cookie`) and the real one ([`Credential`]) added. The real credential therefore never enters
//! the sandbox, and the sandbox cannot pick the host it is sent to: only the path is the client's.
//!
//! Order, per request on a client connection (HTTP/1.1 keep-alive: requests are served one after
//! the other on the same connection):
//!
//! 1. the head is read within [`HEAD_TIMEOUT`], at most [`MAX_HEAD`] bytes, parsed strictly by
//!    [`parse_request_head`] and its body framing judged by [`body_framing`] (smuggling-safe);
//! 2. a declared body over [`GatewayConfig::max_body`] is refused (413) before anything is sent;
//! 3. the upstream is dialled (TCP and TLS within [`CONNECT_TIMEOUT`]); a failure is a 502 with
//!    `X-Corral-Reason: upstream_failed`;
//! 4. the head is rebuilt in origin-form (`upstream_head`), `Host` the upstream's, hop-by-hop
//!    and credential fields dropped, `Connection: close` (one upstream connection per request);
//! 5. the body is streamed: a `Content-Length` body byte for byte, a chunked body decoded and
//!    re-chunked (extensions and trailers dropped: a trailer could carry the dummy credential),
//!    the decoded size capped at `max_body` (413 mid-way);
//! 6. the response is streamed back as it arrives (server-sent events reach the client at once):
//!    `Content-Length` bytes exactly, chunked bodies copied verbatim while their framing is parsed
//!    to find their end, a close-delimited body until the upstream closes, after which the client
//!    connection is closed too (its head then says `Connection: close`).
//!
//! Bounded: at most [`MAX_CLIENTS`] client connections at once (more are accepted, closed and
//! recorded), heads of [`MAX_HEAD`] bytes, request bodies of `max_body` bytes, [`HEAD_TIMEOUT`] to
//! send a head and [`BODY_IDLE_TIMEOUT`] between body bytes. There is deliberately no timeout on the
//! response: a non-streaming completion sends its head only when done, a stream can run for
//! minutes. Each request is recorded once ([`ApiRecord`]), also when the gateway stops mid-way.
//!
//! Limits: HTTP/1.0 clients are refused (505): chunked responses could not be passed to them
//! as-is. Only origin-form targets are served (the gateway is not a proxy). Interim `1xx`
//! responses from the upstream are dropped; `Expect: 100-continue` is answered here.
//! The real credential appears in no error, record or `Debug` output.

use crate::head::{body_framing, parse_request_head, BodyFraming, RequestHead, RequestTarget, MAX_HEAD};
use serde::Serialize;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// Client connections served at once; more are accepted and closed at once.
pub const MAX_CLIENTS: usize = 64;
/// Time for a client to send a complete request head (also the idle time allowed between two
/// requests on a kept-alive connection).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed without a byte while a request body is being received (slowloris).
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time for the upstream TCP connect (name resolution included) and TLS handshake together.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// [`GatewayConfig::max_body`] by default: the Anthropic Messages API's own request limit.
pub const DEFAULT_MAX_BODY: usize = 32 * 1024 * 1024;
/// How long [`serve`], at stop, waits for open connections to record what they did.
const STOP_GRACE: Duration = Duration::from_millis(500);
/// Size of one read from either side.
const IO_CHUNK: usize = 16 * 1024;
/// The longest chunk-size line (size plus extensions) accepted in a chunked body.
const MAX_CHUNK_LINE: usize = 4096;
/// The most response header fields parsed.
const MAX_RESPONSE_HEADERS: usize = 128;

/// Request fields never forwarded: hop-by-hop ones (RFC 9110 §7.6.1, plus the de-facto
/// `Proxy-Connection` and `Keep-Alive`), `Host` (rewritten), the framing (rewritten from
/// [`body_framing`]), `Expect` (answered here) and every credential the client may send.
const DROPPED_REQUEST_FIELDS: [&str; 16] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "host",
    "content-length",
    "transfer-encoding",
    "expect",
    "x-api-key",
    "x-goog-api-key",
    "authorization",
    "proxy-authorization",
    "cookie",
];

/// Response fields never forwarded (hop-by-hop, RFC 9110 §7.6.1); the framing fields are kept,
/// the body is passed in its own framing.
const DROPPED_RESPONSE_FIELDS: [&str; 4] = ["connection", "proxy-connection", "keep-alive", "upgrade"];

/// Where requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// `https` (true) or `http`.
    pub tls: bool,
    /// The host: a lowercased DNS name or an IP address (IPv6 without brackets).
    pub host: String,
    /// The TCP port (443 or 80 when the URL gives none).
    pub port: u16,
}

impl Upstream {
    /// Parses `http[s]://host[:port]` with an empty path or `/`: `https://api.anthropic.com`,
    /// `http://127.0.0.1:8080`, `https://[::1]:8443/`. Userinfo, a path, a query or a fragment
    /// is an error naming the URL (userinfo masked).
    pub fn parse(url: &str) -> Result<Upstream, GatewayError> {
        let bad = |why: &'static str| GatewayError::BadUpstream {
            url: masked_url(url),
            why,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("no scheme: expected http:// or https://"))?;
        let tls = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else {
            return Err(bad("the scheme is not http or https"));
        };
        let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        if authority.contains('@') {
            return Err(bad("userinfo (user@host) is not allowed"));
        }
        if authority.contains(['?', '#']) || !(path.is_empty() || path == "/") {
            return Err(bad(
                "a path, query or fragment is not allowed (the client's path is used)",
            ));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (addr, after) = bracketed.split_once(']').ok_or_else(|| bad("'[' without ']'"))?;
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address between '[' and ']'"));
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
            };
            (addr.to_ascii_lowercase(), port)
        } else {
            let (host, port) = match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            };
            if host.is_empty() {
                return Err(bad("no host"));
            }
            if !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
            {
                return Err(bad("the host is not a DNS name or an IPv4 address"));
            }
            (host.to_ascii_lowercase(), port)
        };
        let port = match port {
            None if tls => 443,
            None => 80,
            Some(p) => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("the port is not a number"));
                }
                match p.parse::<u16>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(bad("the port is not in 1..=65535")),
                }
            }
        };
        Ok(Upstream { tls, host, port })
    }

    /// The `Host` field value: the host (bracketed if IPv6), with the port unless it is the
    /// scheme's default (RFC 9110 §7.2).
    pub fn host_field(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// The URL for an error message, with any userinfo masked (it may hold a password).
fn masked_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://…@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// The real credential and how it is sent.
#[derive(Clone)]
pub enum Credential {
    /// `x-api-key: KEY` (Anthropic API keys).
    ApiKey(String),
    /// `authorization: Bearer TOKEN` (OAuth tokens, OpenAI-style keys).
    Bearer(String),
    /// `x-goog-api-key: KEY` (Gemini API keys).
    GoogApiKey(String),
}

impl Credential {
    /// The header line carrying the credential, CRLF included. The secret must be visible ASCII
    /// (no space, CR or LF: it would end the field and inject others).
    fn field(&self) -> Result<String, GatewayError> {
        let (name, scheme, secret) = match self {
            Credential::ApiKey(k) => ("x-api-key", "", k),
            Credential::Bearer(t) => ("authorization", "Bearer ", t),
            Credential::GoogApiKey(k) => ("x-goog-api-key", "", k),
        };
        if secret.is_empty() || !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(GatewayError::BadCredential);
        }
        Ok(format!("{name}: {scheme}{secret}\r\n"))
    }
}

/// Shows the kind and the length, never the secret.
impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::ApiKey(k) => write!(f, "ApiKey(…({}))", k.len()),
            Credential::Bearer(t) => write!(f, "Bearer(…({}))", t.len()),
            Credential::GoogApiKey(k) => write!(f, "GoogApiKey(…({}))", k.len()),
        }
    }
}

/// The gateway's settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where requests go.
    pub upstream: Upstream,
    /// The credential added to every request.
    pub credential: Credential,
    /// DER certificates trusted as roots besides the webpki (Mozilla) roots (tests, local relays).
    pub extra_roots: Vec<Vec<u8>>,
    /// Request bodies larger than this many bytes are refused with 413.
    pub max_body: usize,
}

impl GatewayConfig {
    /// The defaults: webpki roots only, [`DEFAULT_MAX_BODY`].
    pub fn new(upstream: Upstream, credential: Credential) -> GatewayConfig {
        GatewayConfig {
            upstream,
            credential,
            extra_roots: Vec::new(),
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

/// One request through the gateway, recorded when it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiRecord {
    /// The method; empty when the head never parsed (or the connection was refused).
    pub method: String,
    /// The path, without the query string (which may carry anything); empty as for `method`.
    pub path: String,
    /// The status sent to the client: the upstream's, or the gateway's own (400, 413, 502, 505).
    pub status: Option<u16>,
    /// Bytes sent upstream: head and body as written (the credential included).
    pub bytes_up: u64,
    /// Bytes sent to the client: head and body as written.
    pub bytes_down: u64,
    /// From the complete request head to the end of the response, in milliseconds.
    pub duration_ms: u64,
    /// What went wrong, in words; `None` when the exchange completed.
    pub error: Option<String>,
}

impl ApiRecord {
    fn new(method: String, path: String) -> ApiRecord {
        ApiRecord {
            method,
            path,
            status: None,
            bytes_up: 0,
            bytes_down: 0,
            duration_ms: 0,
            error: None,
        }
    }
}

/// What went wrong with the upstream or the gateway's settings.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The upstream URL is not `http[s]://host[:port][/]`.
    #[error("gateway upstream {url:?}: {why} (expected http[s]://host[:port])")]
    BadUpstream {
        /// The URL, userinfo masked.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The credential holds bytes that cannot go in a header field.
    #[error("the gateway's credential is empty or holds bytes other than visible ASCII")]
    BadCredential,
    /// The TLS client could not be set up (an `extra_roots` certificate did not parse).
    #[error("setting up the gateway's TLS client: {0}")]
    TlsSetup(String),
    /// The upstream host is not a name TLS can verify.
    #[error("upstream host {0:?} is not a valid TLS server name")]
    ServerName(String),
    /// TCP connect (or name resolution) failed.
    #[error("connecting to {host}:{port}: {source}")]
    Connect {
        /// Upstream host.
        host: String,
        /// Upstream port.
        port: u16,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// TCP connect and TLS handshake did not finish within [`CONNECT_TIMEOUT`].
    #[error("connecting to {host}:{port}: no connection within {secs} s")]
    ConnectTimeout {
        /// Upstream host.
        host: String,
        /// Upstream port.
        port: u16,
        /// [`CONNECT_TIMEOUT`] in seconds.
        secs: u64,
    },
    /// The TLS handshake failed (certificate, protocol).
    #[error("TLS handshake with {host}:{port}: {source}")]
    Tls {
        /// Upstream host.
        host: String,
        /// Upstream port.
        port: u16,
        /// The rustls error, wrapped in an I/O error by tokio-rustls.
        #[source]
        source: std::io::Error,
    },
    /// Writing the request upstream failed.
    #[error("sending the request to {host}:{port}: {source}")]
    Send {
        /// Upstream host.
        host: String,
        /// Upstream port.
        port: u16,
        /// The OS or TLS error.
        #[source]
        source: std::io::Error,
    },
    /// Reading the response head failed or it is malformed.
    #[error("reading the response head from {host}:{port}: {why}")]
    BadResponse {
        /// Upstream host.
        host: String,
        /// Upstream port.
        port: u16,
        /// What is wrong.
        why: String,
    },
}

/// The upstream stream, plain or TLS.
trait UpstreamIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> UpstreamIo for T {}

/// The TLS client, built once per [`serve`].
enum TlsClient {
    /// `http://` upstream.
    Plain,
    /// `https://` upstream.
    Ready(tokio_rustls::TlsConnector),
    /// `https://` upstream, but the client could not be built: every request gets a 502.
    Broken(String),
}

impl TlsClient {
    /// rustls with the ring provider, webpki roots plus `extra_roots`, ALPN `http/1.1` only.
    fn new(cfg: &GatewayConfig) -> TlsClient {
        if !cfg.upstream.tls {
            return TlsClient::Plain;
        }
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for (i, der) in cfg.extra_roots.iter().enumerate() {
            let cert = rustls::pki_types::CertificateDer::from(der.clone());
            if let Err(e) = roots.add(cert) {
                return TlsClient::Broken(format!("extra root #{i}: {e}"));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = match rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
        {
            Ok(b) => b,
            Err(e) => return TlsClient::Broken(e.to_string()),
        };
        let mut config = builder.with_root_certificates(roots).with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsClient::Ready(tokio_rustls::TlsConnector::from(Arc::new(config)))
    }
}

/// State shared by the accept loop and every connection.
struct Shared {
    cfg: Arc<GatewayConfig>,
    tls: TlsClient,
    record: Arc<dyn Fn(ApiRecord) + Send + Sync>,
    /// Client connections being served.
    active: AtomicUsize,
}

/// Counts a connection as active until dropped (also when its task is cancelled).
struct Active(Arc<Shared>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves `listener` until `stop` turns true (or its sender is dropped). Each request is
/// forwarded on its own upstream connection; client connections are kept alive between requests.
/// At stop, open connections are ended and record what they did; this returns after they have
/// (or after a short grace).
pub async fn serve(
    listener: TcpListener,
    cfg: Arc<GatewayConfig>,
    record: Arc<dyn Fn(ApiRecord) + Send + Sync>,
    stop: watch::Receiver<bool>,
) {
    let shared = Arc::new(Shared {
        tls: TlsClient::new(&cfg),
        cfg,
        record,
        active: AtomicUsize::new(0),
    });
    let mut stopped = stop.clone();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stopped.wait_for(|s| *s) => break,
        };
        let Ok((stream, _)) = accepted else {
            // EMFILE and the like: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if shared.active.load(Ordering::Acquire) >= MAX_CLIENTS {
            drop(stream);
            let mut rec = ApiRecord::new(String::new(), String::new());
            rec.error = Some(format!(
                "too many client connections ({MAX_CLIENTS} open): connection closed"
            ));
            (shared.record)(rec);
            continue;
        }
        shared.active.fetch_add(1, Ordering::AcqRel);
        let active = Active(shared.clone());
        let stop = stop.clone();
        tokio::spawn(async move {
            client_conn(&active.0, stream, stop).await;
            drop(active);
        });
    }
    // Connections see the stop too; give them a moment to record.
    let deadline = Instant::now() + STOP_GRACE;
    while shared.active.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A request being served: its record so far and when its head was complete.
struct Inflight {
    rec: ApiRecord,
    started: Instant,
}

impl Shared {
    /// Emits a finished request's record.
    fn finish(&self, f: Inflight) {
        let mut rec = f.rec;
        rec.duration_ms = u64::try_from(f.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        (self.record)(rec);
    }
}

/// Serves one client connection until it closes, fails or the gateway stops.
async fn client_conn(s: &Shared, mut client: TcpStream, mut stop: watch::Receiver<bool>) {
    // Server-sent events are small writes that must leave at once.
    let _ = client.set_nodelay(true);
    let mut inflight = None;
    tokio::select! {
        () = requests(s, &mut client, &mut inflight) => {}
        _ = stop.wait_for(|v| *v) => {}
    }
    if let Some(mut f) = inflight.take() {
        f.rec
            .error
            .get_or_insert_with(|| "the gateway stopped".to_owned());
        s.finish(f);
    }
}

/// Whether the client connection carries on after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    KeepAlive,
    Close,
}

/// How reading a request head ended.
enum HeadRead {
    Head(RequestHead),
    /// EOF or the deadline before any byte of a next request: a normal end.
    Idle,
    /// EOF, an error or the deadline in the middle of a head.
    Incomplete,
    Malformed(String),
}

/// Reads a request head into `buf` (which may already hold bytes of it) within [`HEAD_TIMEOUT`].
async fn read_head(client: &mut TcpStream, buf: &mut Vec<u8>) -> HeadRead {
    let deadline = Instant::now() + HEAD_TIMEOUT;
    let mut chunk = [0u8; 4096];
    loop {
        match parse_request_head(buf) {
            Ok(Some(h)) => return HeadRead::Head(h),
            Ok(None) => {}
            Err(e) => return HeadRead::Malformed(e.to_string()),
        }
        match tokio::time::timeout_at(deadline, client.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ if buf.is_empty() => return HeadRead::Idle,
            _ => return HeadRead::Incomplete,
        }
    }
}

/// Serves the requests of one connection in turn. `inflight` holds the current request's record
/// so that a stop can still record it.
async fn requests(s: &Shared, client: &mut TcpStream, inflight: &mut Option<Inflight>) {
    let mut buf = Vec::with_capacity(4096);
    loop {
        let head = match read_head(client, &mut buf).await {
            HeadRead::Head(h) => h,
            HeadRead::Idle => return,
            HeadRead::Incomplete => {
                let mut rec = ApiRecord::new(String::new(), String::new());
                rec.error = Some("the request head was incomplete at EOF or after 30 s".to_owned());
                s.finish(Inflight {
                    rec,
                    started: Instant::now(),
                });
                return;
            }
            HeadRead::Malformed(why) => {
                let f = inflight.insert(Inflight {
                    rec: ApiRecord::new(String::new(), String::new()),
                    started: Instant::now(),
                });
                refuse(client, &mut f.rec, Refusal::BadRequest, &why).await;
                if let Some(f) = inflight.take() {
                    s.finish(f);
                }
                return;
            }
        };
        buf.drain(..head.len);
        let path = match &head.target {
            RequestTarget::Origin(t) => t.split('?').next().unwrap_or_default().to_owned(),
            RequestTarget::Absolute { .. } | RequestTarget::Authority(_) | RequestTarget::Asterisk => {
                String::new()
            }
        };
        let f = inflight.insert(Inflight {
            rec: ApiRecord::new(head.method.clone(), path),
            started: Instant::now(),
        });
        let next = exchange(s, client, &mut buf, &head, &mut f.rec).await;
        if let Some(f) = inflight.take() {
            s.finish(f);
        }
        match next {
            Next::KeepAlive => {}
            Next::Close => {
                crate::serve::linger_close(client).await;
                return;
            }
        }
    }
}

/// An answer of the gateway's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    BadRequest,
    TooLarge,
    UpstreamFailed,
    Version,
}

impl Refusal {
    /// Status code, reason phrase, `X-Corral-Reason` code.
    fn status(self) -> (u16, &'static str, &'static str) {
        match self {
            Refusal::BadRequest => (400, "Bad Request", "bad_request"),
            Refusal::TooLarge => (413, "Content Too Large", "body_too_large"),
            Refusal::UpstreamFailed => (502, "Bad Gateway", "upstream_failed"),
            Refusal::Version => (505, "HTTP Version Not Supported", "http_version"),
        }
    }
}

/// Answers the client with a status of the gateway's own and records it; the connection is then
/// closed by the caller.
async fn refuse(client: &mut TcpStream, rec: &mut ApiRecord, refusal: Refusal, what: &str) {
    let (code, text, reason) = refusal.status();
    let body = format!("corral gateway: {what}\n");
    let head = format!(
        "HTTP/1.1 {code} {text}\r\nX-Corral-Reason: {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    rec.status = Some(code);
    rec.error = Some(what.to_owned());
    if client.write_all(&out).await.is_ok() {
        rec.bytes_down += n64(out.len());
    }
}

fn n64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Whether the client asked to close after this request (`Connection: close`).
fn client_closes(head: &RequestHead) -> bool {
    head.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
}

/// One request and its response. Returns whether the client connection carries on.
async fn exchange(
    s: &Shared,
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
    head: &RequestHead,
    rec: &mut ApiRecord,
) -> Next {
    if head.minor_version != 1 {
        let what = "HTTP/1.0 is not supported: send HTTP/1.1";
        refuse(client, rec, Refusal::Version, what).await;
        return Next::Close;
    }
    let RequestTarget::Origin(target) = &head.target else {
        let what = "the gateway takes origin-form requests (/path): it is not a proxy";
        refuse(client, rec, Refusal::BadRequest, what).await;
        return Next::Close;
    };
    let framing = match body_framing(head) {
        Ok(f) => f,
        Err(e) => {
            refuse(client, rec, Refusal::BadRequest, &e.to_string()).await;
            return Next::Close;
        }
    };
    let max_body = n64(s.cfg.max_body);
    if let BodyFraming::Length(n) = framing {
        if n > max_body {
            let what = format!("request body of {n} bytes is over the limit of {max_body}");
            refuse(client, rec, Refusal::TooLarge, &what).await;
            return Next::Close;
        }
    }
    let up = &s.cfg.upstream;
    let dial = async {
        let field = s.cfg.credential.field()?;
        let conn = connect(s).await?;
        Ok::<_, GatewayError>((field, conn))
    };
    let (credential, mut conn) = match dial.await {
        Ok(v) => v,
        Err(e) => {
            refuse(client, rec, Refusal::UpstreamFailed, &e.to_string()).await;
            return Next::Close;
        }
    };
    let out = upstream_head(head, target, up, &credential, framing);
    if let Err(source) = write_flush(&mut conn, &out).await {
        let e = GatewayError::Send {
            host: up.host.clone(),
            port: up.port,
            source,
        };
        refuse(client, rec, Refusal::UpstreamFailed, &e.to_string()).await;
        return Next::Close;
    }
    rec.bytes_up += n64(out.len());
    let expects_continue = head
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
    if expects_continue && framing != BodyFraming::None && buf.is_empty() {
        // The upstream never sees `Expect`: the client is told to go on here, once the upstream
        // is reachable.
        let cont = b"HTTP/1.1 100 Continue\r\n\r\n";
        if client.write_all(cont).await.is_err() {
            rec.error = Some("the client went away".to_owned());
            return Next::Close;
        }
        rec.bytes_down += n64(cont.len());
    }
    let sent = match framing {
        BodyFraming::None => BodySent::Complete,
        BodyFraming::Length(n) => send_length(client, buf, &mut conn, n, rec).await,
        BodyFraming::Chunked => send_chunked(client, buf, &mut conn, max_body, rec).await,
    };
    let send_error = match sent {
        BodySent::Complete => None,
        BodySent::UpstreamFailed(source) => Some(GatewayError::Send {
            host: up.host.clone(),
            port: up.port,
            source,
        }),
        BodySent::Refused(refusal, what) => {
            refuse(client, rec, refusal, &what).await;
            return Next::Close;
        }
        BodySent::ClientFailed(what) => {
            rec.error = Some(what);
            return Next::Close;
        }
    };
    // The upstream may have answered (an early 4xx) before taking the whole body: its answer is
    // still passed on, and only if there is none does the send error become the 502.
    let mut ubuf = Vec::with_capacity(IO_CHUNK);
    let resp = match read_response_head(&mut conn, &mut ubuf).await {
        Ok(r) => r,
        Err(why) => {
            let e = send_error.unwrap_or(GatewayError::BadResponse {
                host: up.host.clone(),
                port: up.port,
                why,
            });
            refuse(client, rec, Refusal::UpstreamFailed, &e.to_string()).await;
            return Next::Close;
        }
    };
    let rframing = match response_framing(&head.method, &resp) {
        Ok(f) => f,
        Err(why) => {
            let e = GatewayError::BadResponse {
                host: up.host.clone(),
                port: up.port,
                why,
            };
            refuse(client, rec, Refusal::UpstreamFailed, &e.to_string()).await;
            return Next::Close;
        }
    };
    let next = if send_error.is_none() && !client_closes(head) && rframing != ResponseFraming::Close {
        Next::KeepAlive
    } else {
        Next::Close
    };
    let out = client_head(&resp, next);
    if client.write_all(&out).await.is_err() {
        rec.error = Some("the client went away".to_owned());
        return Next::Close;
    }
    rec.status = Some(resp.status);
    rec.bytes_down += n64(out.len());
    let relayed = match rframing {
        ResponseFraming::None => Ok(()),
        ResponseFraming::Length(n) => relay_length(&mut conn, &ubuf, client, n, rec).await,
        ResponseFraming::Chunked => relay_chunked(&mut conn, ubuf, client, rec).await,
        ResponseFraming::Close => relay_close(&mut conn, &ubuf, client, rec).await,
    };
    if let Err(why) = relayed {
        rec.error = Some(why);
        return Next::Close;
    }
    if let Some(e) = send_error {
        rec.error = Some(format!("{e} (the upstream answered anyway)"));
    }
    next
}

/// Dials the upstream: TCP, then TLS when configured, all within [`CONNECT_TIMEOUT`].
async fn connect(s: &Shared) -> Result<Box<dyn UpstreamIo>, GatewayError> {
    let up = &s.cfg.upstream;
    let dial = async {
        let tcp = TcpStream::connect((up.host.as_str(), up.port))
            .await
            .map_err(|source| GatewayError::Connect {
                host: up.host.clone(),
                port: up.port,
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        match &s.tls {
            TlsClient::Plain => Ok(Box::new(tcp) as Box<dyn UpstreamIo>),
            TlsClient::Broken(why) => Err(GatewayError::TlsSetup(why.clone())),
            TlsClient::Ready(connector) => {
                let name = rustls::pki_types::ServerName::try_from(up.host.clone())
                    .map_err(|_| GatewayError::ServerName(up.host.clone()))?;
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|source| GatewayError::Tls {
                        host: up.host.clone(),
                        port: up.port,
                        source,
                    })?;
                Ok(Box::new(tls) as Box<dyn UpstreamIo>)
            }
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, dial)
        .await
        .unwrap_or_else(|_| {
            Err(GatewayError::ConnectTimeout {
                host: up.host.clone(),
                port: up.port,
                secs: CONNECT_TIMEOUT.as_secs(),
            })
        })
}

async fn write_flush(conn: &mut Box<dyn UpstreamIo>, bytes: &[u8]) -> std::io::Result<()> {
    conn.write_all(bytes).await?;
    conn.flush().await
}

/// Rebuilds the request head for the upstream: `METHOD target HTTP/1.1`, `Host` the upstream's,
/// the client's fields in order minus [`DROPPED_REQUEST_FIELDS`] and any field a `Connection`
/// token names, the body's framing as the gateway sends it, the real credential, and
/// `Connection: close`.
///
/// `target` is the client's origin-form target (printable ASCII, checked by
/// [`parse_request_head`]), query included.
fn upstream_head(
    head: &RequestHead,
    target: &str,
    upstream: &Upstream,
    credential: &str,
    framing: BodyFraming,
) -> Vec<u8> {
    let tokens = connection_tokens(&head.headers);
    let dropped = |name: &str| {
        DROPPED_REQUEST_FIELDS
            .iter()
            .any(|d| name.eq_ignore_ascii_case(d))
            || tokens.iter().any(|t| t.eq_ignore_ascii_case(name.as_bytes()))
    };
    let mut out = Vec::with_capacity(head.len + 128);
    out.extend_from_slice(
        format!(
            "{} {target} HTTP/1.1\r\nHost: {}\r\n",
            head.method,
            upstream.host_field()
        )
        .as_bytes(),
    );
    for (name, value) in head.headers.iter().filter(|(n, _)| !dropped(n)) {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        BodyFraming::None => {}
        BodyFraming::Length(n) => out.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes()),
        BodyFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
    out.extend_from_slice(credential.as_bytes());
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out
}

/// The field names listed in `Connection` fields (RFC 9110 §7.6.1), trimmed, lowercase not
/// applied.
fn connection_tokens(headers: &[(String, Vec<u8>)]) -> Vec<&[u8]> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
        .collect()
}

/// How sending the request body ended.
enum BodySent {
    Complete,
    /// Writing upstream failed; the rest of the body was not read.
    UpstreamFailed(std::io::Error),
    /// The body is refused (malformed, too large): answer the client with this.
    Refused(Refusal, String),
    /// The client closed, failed or stalled mid-body.
    ClientFailed(String),
}

/// Reads from the client into `into`, at most [`BODY_IDLE_TIMEOUT`] for a byte.
async fn read_body(client: &mut TcpStream, into: &mut [u8]) -> Result<usize, String> {
    match tokio::time::timeout(BODY_IDLE_TIMEOUT, client.read(into)).await {
        Ok(Ok(0)) => Err("the client closed in the middle of the request body".to_owned()),
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(format!("reading the request body: {e}")),
        Err(_) => Err(format!(
            "no request body byte for {} s",
            BODY_IDLE_TIMEOUT.as_secs()
        )),
    }
}

/// Streams a `Content-Length` body of `n` bytes: what is already in `buf` first, then exactly
/// the rest (bytes after it belong to the client's next request and are not read).
async fn send_length(
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
    conn: &mut Box<dyn UpstreamIo>,
    n: u64,
    rec: &mut ApiRecord,
) -> BodySent {
    let have = usize::try_from(n).map_or(buf.len(), |n| n.min(buf.len()));
    if let Err(e) = conn.write_all(&buf[..have]).await {
        return BodySent::UpstreamFailed(e);
    }
    buf.drain(..have);
    rec.bytes_up += n64(have);
    let mut left = n - n64(have);
    let mut chunk = vec![0u8; IO_CHUNK];
    while left > 0 {
        let want = usize::try_from(left).map_or(IO_CHUNK, |l| l.min(IO_CHUNK));
        let got = match read_body(client, &mut chunk[..want]).await {
            Ok(got) => got,
            Err(why) => return BodySent::ClientFailed(why),
        };
        if let Err(e) = conn.write_all(&chunk[..got]).await {
            return BodySent::UpstreamFailed(e);
        }
        rec.bytes_up += n64(got);
        left -= n64(got);
    }
    match conn.flush().await {
        Ok(()) => BodySent::Complete,
        Err(e) => BodySent::UpstreamFailed(e),
    }
}

/// Streams a chunked body: decoded, each run of data re-sent as one chunk, extensions and
/// trailers dropped, the decoded size capped at `max_body`. Bytes after the last chunk stay in
/// `buf` (the client's next request).
async fn send_chunked(
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
    conn: &mut Box<dyn UpstreamIo>,
    max_body: u64,
    rec: &mut ApiRecord,
) -> BodySent {
    let mut dec = ChunkDecoder::new();
    let mut total = 0u64;
    let mut chunk = vec![0u8; IO_CHUNK];
    loop {
        let mut out = Vec::new();
        let mut off = 0;
        while off < buf.len() && !dec.done() {
            match dec.next(&buf[off..]) {
                Ok(Piece::Framing(n)) => off += n,
                Ok(Piece::Data(n)) => {
                    total += n64(n);
                    if total > max_body {
                        let what = format!("chunked request body is over the limit of {max_body} bytes");
                        return BodySent::Refused(Refusal::TooLarge, what);
                    }
                    out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                    out.extend_from_slice(&buf[off..off + n]);
                    out.extend_from_slice(b"\r\n");
                    off += n;
                }
                Err(e) => return BodySent::Refused(Refusal::BadRequest, e.to_string()),
            }
        }
        buf.drain(..off);
        if dec.done() {
            out.extend_from_slice(b"0\r\n\r\n");
        }
        if !out.is_empty() {
            if let Err(e) = write_flush(conn, &out).await {
                return BodySent::UpstreamFailed(e);
            }
            rec.bytes_up += n64(out.len());
        }
        if dec.done() {
            return BodySent::Complete;
        }
        match read_body(client, &mut chunk).await {
            Ok(got) => buf.extend_from_slice(&chunk[..got]),
            Err(why) => return BodySent::ClientFailed(why),
        }
    }
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ResponseHead {
    status: u16,
    reason: String,
    headers: Vec<(String, Vec<u8>)>,
}

/// Parses a response head at the start of `buf`: `Ok(None)` to read more, else the head and
/// its length.
fn parse_response_head(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, String> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut fields);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            let (Some(status), Some(_)) = (resp.code, resp.version) else {
                return Err("no status line".to_owned());
            };
            let head = ResponseHead {
                status,
                reason: resp.reason.unwrap_or_default().to_owned(),
                headers: resp
                    .headers
                    .iter()
                    .map(|h| (h.name.to_owned(), h.value.trim_ascii().to_vec()))
                    .collect(),
            };
            Ok(Some((head, len)))
        }
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => Ok(None),
        Ok(httparse::Status::Partial) => Err(format!("head larger than {MAX_HEAD} bytes")),
        Err(e) => Err(format!("malformed head: {e}")),
    }
}

/// Reads the final response head from the upstream, skipping interim `1xx` responses. On
/// return `buf` holds the bytes after the head (the start of the body).
async fn read_response_head(
    conn: &mut Box<dyn UpstreamIo>,
    buf: &mut Vec<u8>,
) -> Result<ResponseHead, String> {
    let mut chunk = vec![0u8; IO_CHUNK];
    loop {
        if let Some((head, len)) = parse_response_head(buf)? {
            buf.drain(..len);
            match head.status {
                101 => return Err("101 Switching Protocols is not supported".to_owned()),
                100..=199 => continue,
                _ => return Ok(head),
            }
        }
        match conn.read(&mut chunk).await {
            Ok(0) => return Err("the upstream closed before answering".to_owned()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseFraming {
    /// No body: `HEAD`, 1xx, 204, 304.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked (the final transfer coding).
    Chunked,
    /// Until the upstream closes.
    Close,
}

/// Decides the response's framing; conflicting or malformed `Content-Length` is an error.
fn response_framing(method: &str, resp: &ResponseHead) -> Result<ResponseFraming, String> {
    if method == "HEAD" || matches!(resp.status, 100..=199 | 204 | 304) {
        return Ok(ResponseFraming::None);
    }
    let codings: Vec<&[u8]> = resp
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty())
        .collect();
    if let Some(last) = codings.last() {
        // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3 item 3); chunked must be the
        // final coding, else the body runs to the close.
        return Ok(if last.eq_ignore_ascii_case(b"chunked") {
            ResponseFraming::Chunked
        } else {
            ResponseFraming::Close
        });
    }
    let mut lengths = resp
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.as_slice());
    let Some(first) = lengths.next() else {
        return Ok(ResponseFraming::Close);
    };
    if lengths.any(|v| v != first) {
        return Err("conflicting Content-Length fields".to_owned());
    }
    std::str::from_utf8(first)
        .ok()
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<u64>().ok())
        .map(ResponseFraming::Length)
        .ok_or_else(|| format!("bad Content-Length {:?}", String::from_utf8_lossy(first)))
}

/// The response head for the client: `HTTP/1.1 status reason`, the upstream's fields minus
/// hop-by-hop ones (and those a `Connection` token names, framing fields excepted), then
/// `Connection: close` when the client connection ends after this response.
fn client_head(resp: &ResponseHead, next: Next) -> Vec<u8> {
    let tokens = connection_tokens(&resp.headers);
    let chunked = response_framing("GET", resp) == Ok(ResponseFraming::Chunked);
    let dropped = |name: &str| {
        DROPPED_RESPONSE_FIELDS.iter().any(|d| name.eq_ignore_ascii_case(d))
            || (!name.eq_ignore_ascii_case("content-length")
                && !name.eq_ignore_ascii_case("transfer-encoding")
                && tokens.iter().any(|t| t.eq_ignore_ascii_case(name.as_bytes())))
            // With chunked, a Content-Length is wrong and must go (RFC 9112 §6.3 item 3).
            || (chunked && name.eq_ignore_ascii_case("content-length"))
    };
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, resp.reason).into_bytes();
    for (name, value) in resp.headers.iter().filter(|(n, _)| !dropped(n)) {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if next == Next::Close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Writes to the client and counts it.
async fn to_client(client: &mut TcpStream, bytes: &[u8], rec: &mut ApiRecord) -> Result<(), String> {
    if bytes.is_empty() {
        return Ok(());
    }
    client
        .write_all(bytes)
        .await
        .map_err(|e| format!("writing the response to the client: {e}"))?;
    rec.bytes_down += n64(bytes.len());
    Ok(())
}

/// Reads from the upstream for relaying.
async fn from_upstream(conn: &mut Box<dyn UpstreamIo>, chunk: &mut [u8]) -> std::io::Result<usize> {
    conn.read(chunk).await
}

/// Relays a `Content-Length` body: `first` (already read) then the rest, `n` bytes in all.
async fn relay_length(
    conn: &mut Box<dyn UpstreamIo>,
    first: &[u8],
    client: &mut TcpStream,
    n: u64,
    rec: &mut ApiRecord,
) -> Result<(), String> {
    let have = usize::try_from(n).map_or(first.len(), |n| n.min(first.len()));
    to_client(client, &first[..have], rec).await?;
    let mut left = n - n64(have);
    let mut chunk = vec![0u8; IO_CHUNK];
    while left > 0 {
        let want = usize::try_from(left).map_or(IO_CHUNK, |l| l.min(IO_CHUNK));
        let got = match from_upstream(conn, &mut chunk[..want]).await {
            Ok(0) => {
                return Err(format!(
                    "the upstream closed after {} of {n} body bytes",
                    n - left
                ))
            }
            Ok(got) => got,
            Err(e) => return Err(format!("reading the response body: {e}")),
        };
        to_client(client, &chunk[..got], rec).await?;
        left -= n64(got);
    }
    Ok(())
}

/// Relays a chunked body verbatim, parsing its framing to find the end (the last chunk and the
/// trailer section), so the client connection can be kept alive. Starts with `pending`.
async fn relay_chunked(
    conn: &mut Box<dyn UpstreamIo>,
    mut pending: Vec<u8>,
    client: &mut TcpStream,
    rec: &mut ApiRecord,
) -> Result<(), String> {
    let mut dec = ChunkDecoder::new();
    let mut chunk = vec![0u8; IO_CHUNK];
    loop {
        let end = dec
            .scan(&pending)
            .map_err(|e| format!("from the upstream: {e}"))?;
        // Each piece goes out as it arrives: a server-sent event is not held back.
        to_client(client, &pending[..end], rec).await?;
        if dec.done() {
            return Ok(());
        }
        pending.clear();
        match from_upstream(conn, &mut chunk).await {
            Ok(0) => return Err("the upstream closed before the last chunk".to_owned()),
            Ok(got) => pending.extend_from_slice(&chunk[..got]),
            Err(e) => return Err(format!("reading the response body: {e}")),
        }
    }
}

/// Relays a close-delimited body: `first`, then everything until the upstream closes.
async fn relay_close(
    conn: &mut Box<dyn UpstreamIo>,
    first: &[u8],
    client: &mut TcpStream,
    rec: &mut ApiRecord,
) -> Result<(), String> {
    to_client(client, first, rec).await?;
    let mut chunk = vec![0u8; IO_CHUNK];
    loop {
        match from_upstream(conn, &mut chunk).await {
            Ok(0) => return Ok(()),
            Ok(got) => to_client(client, &chunk[..got], rec).await?,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                // TLS closed without close_notify: the end cannot be told from a truncation.
                return Err(
                    "the upstream closed TLS without close_notify: the body may be truncated".to_owned(),
                );
            }
            Err(e) => return Err(format!("reading the response body: {e}")),
        }
    }
}

/// A chunked body is malformed (RFC 9112 §7.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body: {0}")]
struct ChunkError(&'static str);

/// Where a [`ChunkDecoder`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// In a chunk-size line: the size so far, its hex digits so far, whether in extensions.
    Size { size: u64, digits: u8, ext: bool },
    /// CR seen at the end of a chunk-size line.
    SizeLf { size: u64 },
    /// In chunk data, this many bytes left.
    Data(u64),
    /// After chunk data: CR expected.
    DataCr,
    /// After chunk data: LF expected.
    DataLf,
    /// In the trailer section, this many bytes into the current line.
    Trailer { line: usize },
    /// CR seen at the end of a trailer line this long.
    TrailerLf { line: usize },
    /// The body is complete.
    Done,
}

/// What [`ChunkDecoder::next`] found at the start of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    /// This many bytes of framing (size lines, CRLFs, trailers).
    Framing(usize),
    /// This many bytes of chunk data.
    Data(usize),
}

/// A sans-I/O chunked-body decoder (RFC 9112 §7.1), fed in pieces of any size. Strict: lines end
/// in CRLF, sizes are at most 16 hex digits, a size line is at most [`MAX_CHUNK_LINE`] bytes and
/// the trailer section at most [`MAX_HEAD`].
#[derive(Debug, Clone)]
struct ChunkDecoder {
    state: ChunkState,
    /// Bytes of the current size line.
    line: usize,
    /// Bytes of the trailer section.
    trailers: usize,
}

impl ChunkDecoder {
    fn new() -> ChunkDecoder {
        ChunkDecoder {
            state: ChunkState::Size {
                size: 0,
                digits: 0,
                ext: false,
            },
            line: 0,
            trailers: 0,
        }
    }

    /// Whether the last chunk and the trailer section have been read.
    fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes `input` up to the end of the body; returns how many bytes belong to it.
    fn scan(&mut self, input: &[u8]) -> Result<usize, ChunkError> {
        let mut off = 0;
        while off < input.len() && !self.done() {
            match self.next(&input[off..])? {
                Piece::Framing(n) | Piece::Data(n) => off += n,
            }
        }
        Ok(off)
    }

    /// Classifies the start of `input` (non-empty, body not done): a run of chunk data, or the
    /// framing up to the next data (or the end of the body, or of `input`).
    fn next(&mut self, input: &[u8]) -> Result<Piece, ChunkError> {
        if let ChunkState::Data(left) = self.state {
            let n = usize::try_from(left).map_or(input.len(), |l| l.min(input.len()));
            let left = left - n64(n);
            self.state = if left == 0 {
                ChunkState::DataCr
            } else {
                ChunkState::Data(left)
            };
            return Ok(Piece::Data(n));
        }
        let mut i = 0;
        while i < input.len() {
            self.byte(input[i])?;
            i += 1;
            if matches!(self.state, ChunkState::Data(_) | ChunkState::Done) {
                break;
            }
        }
        Ok(Piece::Framing(i))
    }

    /// One framing byte.
    fn byte(&mut self, b: u8) -> Result<(), ChunkError> {
        use ChunkState as S;
        self.state = match self.state {
            S::Size { size, digits, ext } => {
                self.line += 1;
                if self.line > MAX_CHUNK_LINE {
                    return Err(ChunkError("chunk-size line too long"));
                }
                match (b, ext) {
                    (b'\r', _) if digits > 0 => S::SizeLf { size },
                    (b'\n', _) => return Err(ChunkError("bare LF in a chunk-size line")),
                    (_, true) if b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80 => {
                        S::Size { size, digits, ext }
                    }
                    (_, false) if b.is_ascii_hexdigit() => {
                        if digits >= 16 {
                            return Err(ChunkError("chunk size over 16 hex digits"));
                        }
                        let d = match b {
                            b'0'..=b'9' => b - b'0',
                            b'a'..=b'f' => b - b'a' + 10,
                            _ => b - b'A' + 10,
                        };
                        S::Size {
                            size: (size << 4) | u64::from(d),
                            digits: digits + 1,
                            ext,
                        }
                    }
                    (b';' | b' ' | b'\t', false) if digits > 0 => S::Size {
                        size,
                        digits,
                        ext: true,
                    },
                    _ => return Err(ChunkError("bad byte in a chunk-size line")),
                }
            }
            S::SizeLf { size } => {
                if b != b'\n' {
                    return Err(ChunkError("CR without LF after a chunk size"));
                }
                self.line = 0;
                if size == 0 {
                    S::Trailer { line: 0 }
                } else {
                    S::Data(size)
                }
            }
            S::DataCr if b == b'\r' => S::DataLf,
            S::DataLf if b == b'\n' => S::Size {
                size: 0,
                digits: 0,
                ext: false,
            },
            S::DataCr | S::DataLf => return Err(ChunkError("chunk data not followed by CRLF")),
            S::Trailer { line } => {
                self.trailers += 1;
                if self.trailers > MAX_HEAD {
                    return Err(ChunkError("trailer section too large"));
                }
                match b {
                    b'\r' => S::TrailerLf { line },
                    b'\n' => return Err(ChunkError("bare LF in the trailer section")),
                    _ => S::Trailer { line: line + 1 },
                }
            }
            S::TrailerLf { line } => {
                if b != b'\n' {
                    return Err(ChunkError("CR without LF in the trailer section"));
                }
                if line == 0 {
                    S::Done
                } else {
                    S::Trailer { line: 0 }
                }
            }
            // `next` never feeds data bytes or bytes after the end here.
            S::Data(_) | S::Done => return Err(ChunkError("byte after the end of the body")),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use proptest::prelude::*;
    use std::net::SocketAddr;
    use std::sync::atomic::AtomicBool;
    use std::sync::Mutex;
    use tokio::sync::{mpsc, Notify};

    const REAL: &str = "sk-ant-REAL-0123456789";
    const DUMMY: &str = "sk-ant-DUMMY-abcdef";

    // ---- pure parts ----

    #[test]
    fn upstream_parse_accepts() {
        let ok = |url: &str, tls: bool, host: &str, port: u16| {
            assert_eq!(
                Upstream::parse(url).unwrap(),
                Upstream {
                    tls,
                    host: host.to_owned(),
                    port
                },
                "{url}"
            );
        };
        ok("https://api.anthropic.com", true, "api.anthropic.com", 443);
        ok("https://API.Anthropic.com/", true, "api.anthropic.com", 443);
        ok("http://127.0.0.1:8080", false, "127.0.0.1", 8080);
        ok("HTTP://localhost", false, "localhost", 80);
        ok("https://[::1]:8443/", true, "::1", 8443);
        ok("https://[::1]", true, "::1", 443);
    }

    #[test]
    fn upstream_parse_refuses_with_the_url_named() {
        let cases = [
            (
                "api.anthropic.com",
                r#"gateway upstream "api.anthropic.com": no scheme: expected http:// or https:// (expected http[s]://host[:port])"#,
            ),
            (
                "ftp://h",
                r#"gateway upstream "ftp://h": the scheme is not http or https (expected http[s]://host[:port])"#,
            ),
            (
                "https://h/v1",
                r#"gateway upstream "https://h/v1": a path, query or fragment is not allowed (the client's path is used) (expected http[s]://host[:port])"#,
            ),
            (
                "https://h?x=1",
                r#"gateway upstream "https://h?x=1": a path, query or fragment is not allowed (the client's path is used) (expected http[s]://host[:port])"#,
            ),
            (
                "https://user:hunter2@h",
                r#"gateway upstream "https://…@h": userinfo (user@host) is not allowed (expected http[s]://host[:port])"#,
            ),
            (
                "https://h:0",
                r#"gateway upstream "https://h:0": the port is not in 1..=65535 (expected http[s]://host[:port])"#,
            ),
            (
                "https://h:70000",
                r#"gateway upstream "https://h:70000": the port is not in 1..=65535 (expected http[s]://host[:port])"#,
            ),
            (
                "https://h:x",
                r#"gateway upstream "https://h:x": the port is not a number (expected http[s]://host[:port])"#,
            ),
            (
                "https://:443",
                r#"gateway upstream "https://:443": no host (expected http[s]://host[:port])"#,
            ),
            (
                "https://[zz]:1",
                r#"gateway upstream "https://[zz]:1": not an IPv6 address between '[' and ']' (expected http[s]://host[:port])"#,
            ),
            (
                "https://h h",
                r#"gateway upstream "https://h h": the host is not a DNS name or an IPv4 address (expected http[s]://host[:port])"#,
            ),
        ];
        for (url, want) in cases {
            assert_eq!(Upstream::parse(url).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn host_field() {
        let f = |url: &str| Upstream::parse(url).unwrap().host_field();
        assert_eq!(f("https://api.anthropic.com"), "api.anthropic.com");
        assert_eq!(f("https://h:8443"), "h:8443");
        assert_eq!(f("http://h:80"), "h");
        assert_eq!(f("http://[::1]:81"), "[::1]:81");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let cfg = GatewayConfig::new(
            Upstream::parse("https://api.anthropic.com").unwrap(),
            Credential::ApiKey(REAL.to_owned()),
        );
        let shown = format!("{cfg:?} {:#?}", Credential::Bearer(REAL.to_owned()));
        assert!(!shown.contains(REAL), "{shown}");
        assert!(!shown.contains("REAL"), "{shown}");
        assert_eq!(format!("{:?}", cfg.credential), "ApiKey(…(22))");
        assert_eq!(format!("{:?}", Credential::Bearer("t".into())), "Bearer(…(1))");
    }

    #[test]
    fn credential_field_refuses_injection() {
        assert_eq!(
            Credential::Bearer("a\r\nx-evil: 1".into())
                .field()
                .unwrap_err()
                .to_string(),
            "the gateway's credential is empty or holds bytes other than visible ASCII"
        );
        assert!(Credential::ApiKey(String::new()).field().is_err());
        assert_eq!(
            Credential::ApiKey("k".into()).field().unwrap(),
            "x-api-key: k\r\n"
        );
    }

    #[test]
    fn upstream_head_strips_credentials_and_hop_by_hop() {
        let raw = "POST /v1/messages?beta=true HTTP/1.1\r\n\
                   Host: 127.0.0.1:3129\r\n\
                   X-Api-Key: dummy\r\n\
                   Authorization: Bearer dummy\r\n\
                   Proxy-Authorization: Basic eA==\r\n\
                   Cookie: a=b\r\n\
                   Connection: keep-alive, X-Drop\r\n\
                   X-Drop: 1\r\n\
                   Keep-Alive: 5\r\n\
                   Expect: 100-continue\r\n\
                   anthropic-version: 2023-06-01\r\n\
                   Content-Length: 2\r\n\r\n";
        let head = parse_request_head(raw.as_bytes()).unwrap().unwrap();
        let up = Upstream::parse("https://api.anthropic.com").unwrap();
        let out = upstream_head(
            &head,
            "/v1/messages?beta=true",
            &up,
            "x-api-key: REAL\r\n",
            BodyFraming::Length(2),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /v1/messages?beta=true HTTP/1.1\r\n\
             Host: api.anthropic.com\r\n\
             anthropic-version: 2023-06-01\r\n\
             Content-Length: 2\r\n\
             x-api-key: REAL\r\n\
             Connection: close\r\n\r\n"
        );
    }

    fn resp(status: u16, headers: &[(&str, &str)]) -> ResponseHead {
        ResponseHead {
            status,
            reason: "R".into(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    #[test]
    fn response_framing_cases() {
        let f = |m: &str, s: u16, h: &[(&str, &str)]| response_framing(m, &resp(s, h));
        assert_eq!(
            f("GET", 200, &[("Content-Length", "5")]),
            Ok(ResponseFraming::Length(5))
        );
        assert_eq!(
            f("HEAD", 200, &[("Content-Length", "5")]),
            Ok(ResponseFraming::None)
        );
        assert_eq!(f("GET", 204, &[]), Ok(ResponseFraming::None));
        assert_eq!(
            f("GET", 304, &[("Content-Length", "5")]),
            Ok(ResponseFraming::None)
        );
        assert_eq!(f("GET", 200, &[]), Ok(ResponseFraming::Close));
        assert_eq!(
            f(
                "GET",
                200,
                &[("Transfer-Encoding", "chunked"), ("Content-Length", "5")]
            ),
            Ok(ResponseFraming::Chunked)
        );
        assert_eq!(
            f("GET", 200, &[("Transfer-Encoding", "gzip, Chunked")]),
            Ok(ResponseFraming::Chunked)
        );
        assert_eq!(
            f("GET", 200, &[("Transfer-Encoding", "chunked, gzip")]),
            Ok(ResponseFraming::Close)
        );
        assert_eq!(
            f("GET", 200, &[("Content-Length", "5"), ("Content-Length", "6")]),
            Err("conflicting Content-Length fields".to_owned())
        );
        assert_eq!(
            f("GET", 200, &[("Content-Length", "+5")]),
            Err("bad Content-Length \"+5\"".to_owned())
        );
    }

    #[test]
    fn client_head_drops_hop_by_hop() {
        let r = resp(
            200,
            &[
                ("Content-Type", "text/event-stream"),
                ("Connection", "keep-alive, X-Hop"),
                ("X-Hop", "1"),
                ("Keep-Alive", "timeout=5"),
                ("Transfer-Encoding", "chunked"),
                ("Content-Length", "9"),
            ],
        );
        assert_eq!(
            String::from_utf8(client_head(&r, Next::KeepAlive)).unwrap(),
            "HTTP/1.1 200 R\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        assert_eq!(
            String::from_utf8(client_head(&resp(200, &[]), Next::Close)).unwrap(),
            "HTTP/1.1 200 R\r\nConnection: close\r\n\r\n"
        );
    }

    /// Decodes `input` fed in pieces split at `cuts`: (data, bytes consumed) or the error.
    fn decode_split(input: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, usize, bool), ChunkError> {
        let mut dec = ChunkDecoder::new();
        let mut data = Vec::new();
        let mut consumed = 0;
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        bounds.push(input.len());
        bounds.sort_unstable();
        let mut start = 0;
        for end in bounds {
            let piece = &input[start..end];
            let mut off = 0;
            while off < piece.len() && !dec.done() {
                match dec.next(&piece[off..])? {
                    Piece::Framing(n) => off += n,
                    Piece::Data(n) => {
                        data.extend_from_slice(&piece[off..off + n]);
                        off += n;
                    }
                }
            }
            consumed += off;
            start = end;
            if dec.done() {
                break;
            }
        }
        Ok((data, consumed, dec.done()))
    }

    #[test]
    fn chunk_decoder_cases() {
        let body = b"5;ext=1\r\nhello\r\n6 \r\n world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
        assert_eq!(
            decode_split(body, &[]),
            Ok((b"hello world".to_vec(), body.len() - 4, true))
        );
        assert_eq!(
            decode_split(b"A\r\n0123456789\r\n0\r\n\r\n", &[]).unwrap().0,
            b"0123456789"
        );
        let bad: [(&[u8], &str); 7] = [
            (b"\r\n", "bad byte in a chunk-size line"),
            (b"g\r\n", "bad byte in a chunk-size line"),
            (b"5\nhello", "bare LF in a chunk-size line"),
            (b"1\r\nab\r\n", "chunk data not followed by CRLF"),
            (b"11111111111111111\r\n", "chunk size over 16 hex digits"),
            (b"0\r\nX: 1\n\r\n", "bare LF in the trailer section"),
            (b"5\rx", "CR without LF after a chunk size"),
        ];
        for (input, why) in bad {
            assert_eq!(decode_split(input, &[]), Err(ChunkError(why)), "{input:?}");
        }
        let incomplete = decode_split(b"5\r\nhel", &[]).unwrap();
        assert_eq!(incomplete, (b"hel".to_vec(), 6, false));
    }

    proptest! {
        #[test]
        fn chunk_decoder_is_split_invariant(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..6),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
            trailer in proptest::bool::ANY,
        ) {
            let mut body = Vec::new();
            let mut want = Vec::new();
            for c in &chunks {
                body.extend_from_slice(format!("{:X}\r\n", c.len()).as_bytes());
                body.extend_from_slice(c);
                body.extend_from_slice(b"\r\n");
                want.extend_from_slice(c);
            }
            body.extend_from_slice(b"0\r\n");
            if trailer {
                body.extend_from_slice(b"T: v\r\n");
            }
            body.extend_from_slice(b"\r\n");
            let len = body.len();
            body.extend_from_slice(b"GET / HTTP/1.1\r\n");
            prop_assert_eq!(decode_split(&body, &cuts), Ok((want, len, true)));
        }

        #[test]
        fn chunk_decoder_never_panics(input in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_split(&input, &[7, 3]);
        }
    }

    // ---- end to end, with a fake upstream ----

    /// One thing the fake upstream does.
    enum Step {
        Send(Vec<u8>),
        Sleep(u64),
        /// Waits for the test's signal (at most 5 s; a timeout sets the flag).
        Wait(Arc<Notify>, Arc<AtomicBool>),
    }

    fn send(s: &str) -> Step {
        Step::Send(s.as_bytes().to_vec())
    }

    /// Reads one request (head, then a Content-Length or chunked body) off `conn`.
    async fn read_request<S: AsyncRead + Unpin>(conn: &mut S) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let mut fields = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut fields);
            if let Ok(httparse::Status::Complete(len)) = req.parse(&buf) {
                let text = String::from_utf8_lossy(&buf[..len]).to_ascii_lowercase();
                let cl = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map(|v| v.trim().parse::<usize>().unwrap());
                let done = match cl {
                    Some(n) => buf.len() >= len + n,
                    None if text.contains("transfer-encoding: chunked") => buf.ends_with(b"0\r\n\r\n"),
                    None => true,
                };
                if done {
                    return buf;
                }
            }
            let n = conn.read(&mut chunk).await.unwrap();
            if n == 0 {
                return buf;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Runs `steps` on an accepted upstream connection after reading its request.
    async fn upstream_conn<S: AsyncRead + AsyncWrite + Unpin>(
        mut conn: S,
        steps: Vec<Step>,
        seen: mpsc::UnboundedSender<Vec<u8>>,
    ) {
        let req = read_request(&mut conn).await;
        let _ = seen.send(req);
        for step in steps {
            match step {
                Step::Send(b) => {
                    if conn.write_all(&b).await.is_err() || conn.flush().await.is_err() {
                        return;
                    }
                }
                Step::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                Step::Wait(n, timed_out) => {
                    if tokio::time::timeout(Duration::from_secs(5), n.notified())
                        .await
                        .is_err()
                    {
                        timed_out.store(true, Ordering::SeqCst);
                    }
                }
            }
        }
        let _ = conn.shutdown().await;
    }

    type Script = Arc<dyn Fn() -> Vec<Step> + Send + Sync>;

    /// A plain-HTTP fake upstream: every connection gets `script()`; raw requests come out of the
    /// receiver.
    async fn fake_upstream(script: Script) -> (SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((c, _)) = l.accept().await {
                tokio::spawn(upstream_conn(c, script(), tx.clone()));
            }
        });
        (addr, rx)
    }

    struct Gw {
        addr: SocketAddr,
        records: Arc<Mutex<Vec<ApiRecord>>>,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Gw {
        /// Stops the gateway and returns every record.
        async fn stop(self) -> Vec<ApiRecord> {
            self.stop.send(true).unwrap();
            self.task.await.unwrap();
            let mut recs = self.records.lock().unwrap().clone();
            for r in &mut recs {
                r.duration_ms = 0;
            }
            recs
        }
    }

    async fn gateway(cfg: GatewayConfig) -> Gw {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let records = Arc::new(Mutex::new(Vec::new()));
        let sink = records.clone();
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(serve(
            l,
            Arc::new(cfg),
            Arc::new(move |r| sink.lock().unwrap().push(r)),
            rx,
        ));
        Gw {
            addr,
            records,
            stop,
            task,
        }
    }

    fn plain_cfg(addr: SocketAddr, credential: Credential) -> GatewayConfig {
        GatewayConfig::new(Upstream::parse(&format!("http://{addr}")).unwrap(), credential)
    }

    /// A response as the test client saw it.
    #[derive(Debug)]
    struct Got {
        head: String,
        body: Vec<u8>,
    }

    /// Reads one response off `c` (Content-Length, chunked kept raw, or to EOF); `buf` keeps
    /// what follows.
    async fn read_response(c: &mut TcpStream, buf: &mut Vec<u8>) -> Got {
        let mut chunk = [0u8; 4096];
        let (head, len) = loop {
            let mut fields = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut fields);
            if let httparse::Status::Complete(len) = r.parse(buf).unwrap() {
                break (String::from_utf8_lossy(&buf[..len]).into_owned(), len);
            }
            let n = c.read(&mut chunk).await.unwrap();
            assert!(n > 0, "EOF before a response head: {buf:?}");
            buf.extend_from_slice(&chunk[..n]);
        };
        buf.drain(..len);
        let lower = head.to_ascii_lowercase();
        let cl = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map(|v| v.trim().parse::<usize>().unwrap());
        let chunked = lower.contains("transfer-encoding: chunked");
        loop {
            let complete = match (cl, chunked) {
                (_, true) => {
                    let mut d = ChunkDecoder::new();
                    let end = d.scan(buf).unwrap();
                    d.done().then_some(end)
                }
                (Some(n), false) => (buf.len() >= n).then_some(n),
                (None, false) => None,
            };
            if let Some(end) = complete {
                let body = buf.drain(..end).collect();
                return Got { head, body };
            }
            let n = c.read(&mut chunk).await.unwrap();
            if n == 0 {
                assert!(cl.is_none() && !chunked, "EOF inside a framed body");
                return Got {
                    head,
                    body: std::mem::take(buf),
                };
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn request(method: &str, path: &str, extra: &str, body: &str) -> Vec<u8> {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:3129\r\nx-api-key: {DUMMY}\r\n\
             Authorization: Bearer {DUMMY}\r\nCookie: session=c00kie\r\n{extra}\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn json_answer() -> Vec<Step> {
        vec![send(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}",
        )]
    }

    fn assert_swapped(raw: &[u8], real_field: &str) {
        let text = String::from_utf8_lossy(raw);
        assert!(text.contains(real_field), "{text}");
        assert!(!text.contains("DUMMY"), "{text}");
        assert!(!text.to_ascii_lowercase().contains("cookie"), "{text}");
    }

    #[tokio::test]
    async fn content_length_json_and_credential_swapped() {
        let (up, mut seen) = fake_upstream(Arc::new(json_answer)).await;
        let gw = gateway(plain_cfg(up, Credential::ApiKey(REAL.into()))).await;
        let mut c = TcpStream::connect(gw.addr).await.unwrap();
        let body = r#"{"model":"m","messages":[]}"#;
        c.write_all(&request(
            "POST",
            "/v1/messages?beta=true",
            "anthropic-version: 1\r\n",
            body,
        ))
        .await
        .unwrap();
        let mut buf = Vec::new();
        let got = read_response(&mut c, &mut buf).await;
        assert!(got.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", got.head);
        assert!(
            !got.head.to_ascii_lowercase().contains("connection:"),
            "{}",
            got.head
        );
        assert_eq!(got.body, br#"{"ok":true}"#);
        let raw = seen.recv().await.unwrap();
        assert_eq!(
            String::from_utf8(raw.clone()).unwrap(),
            format!(
                "POST /v1/messages?beta=true HTTP/1.1\r\nHost: {up}\r\nanthropic-version: 1\r\n\
                 Content-Length: {}\r\nx-api-key: {REAL}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        );
        assert_swapped(&raw, &format!("x-api-key: {REAL}\r\n"));
        drop(c);
        let recs = gw.stop().await;
        let up_len = u64::try_from(raw.len()).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].method, "POST");
        assert_eq!(recs[0].path, "/v1/messages");
        assert_eq!(recs[0].status, Some(200));
        assert_eq!(recs[0].bytes_up, up_len);
        assert!(recs[0].bytes_down > 11);
        assert_eq!(recs[0].error, None);
        let json = serde_json::to_string(&recs).unwrap();
        assert!(!json.contains(REAL), "{json}");
    }

    #[tokio::test]
    async fn keep_alive_serves_sequential_requests() {
        let (up, mut seen) = fake_upstream(Arc::new(json_answer)).await;
        let gw = gateway(plain_cfg(up, Credential::ApiKey(REAL.into()))).await;
        let mut c = TcpStream::connect(gw.addr).await.unwrap();
        let mut buf = Vec::new();
        for path in ["/v1/models", "/v1/messages"] {
            c.write_all(&request("POST", path, "", "{}")).await.unwrap();
            let got = read_response(&mut c, &mut buf).await;
            assert!(got.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", got.head);
            assert_eq!(got.body, br#"{"ok":true}"#);
            let raw = seen.recv().await.unwrap();
            assert!(raw.starts_with(format!("POST {path} HTTP/1.1\r\n").as_bytes()));
            assert_swapped(&raw, &format!("x-api-key: {REAL}\r\n"));
        }
        // Two requests written at once (pipelined) are served in turn too.
        let mut two = request("GET", "/a", "", "");
        two.extend_from_slice(&request("GET", "/b", "Connection: close\r\n", ""));
        c.write_all(&two).await.unwrap();
        for _ in 0..2 {
            let got = read_response(&mut c, &mut buf).await;
            assert!(got.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", got.head);
        }
        // The client asked to close: the gateway closes.
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"");
        let paths: Vec<_> = gw.stop().await.into_iter().map(|r| r.path).collect();
        assert_eq!(paths, ["/v1/models", "/v1/messages", "/a", "/b"]);
    }

    const EVENTS: [&str; 3] = [
        "event: one\ndata: first\n\n",
        "event: two\ndata: second\n\n",
        "event: three\ndata: last\n\n",
    ];

    /// `s` as one chunk.
    fn chunk(s: &str) -> String {
        format!("{:x}\r\n{s}\r\n", s.len())
    }

    #[tokio::test]
    async fn sse_streams_before_the_upstream_is_done() {
        let got_first = Arc::new(Notify::new());
        let timed_out = Arc::new(AtomicBool::new(false));
        let (n, t) = (got_first.clone(), timed_out.clone());
        let script: Script = Arc::new(move || {
            vec![
                send("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"),
                send(&chunk(EVENTS[0])),
                Step::Wait(n.clone(), t.clone()),
                Step::Sleep(20),
                send(&chunk(EVENTS[1])),
                Step::Sleep(20),
                send(&chunk(EVENTS[2])),
                Step::Sleep(20),
                send("0\r\n\r\n"),
            ]
        });
        let (up, mut seen) = fake_upstream(script).await;
        let gw = gateway(plain_cfg(up, Credential::Bearer(REAL.into()))).await;
        let mut c = TcpStream::connect(gw.addr).await.unwrap();
        c.write_all(&request("POST", "/v1/messages", "", r#"{"stream":true}"#))
            .await
            .unwrap();
        // The first event arrives while the upstream waits for us: nothing is buffered.
        let mut buf = Vec::new();
        let mut piece = [0u8; 4096];
        while !String::from_utf8_lossy(&buf).contains("data: first") {
            let n = tokio::time::timeout(Duration::from_secs(3), c.read(&mut piece))
                .await
                .expect("the first event did not stream")
                .unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&piece[..n]);
        }
        got_first.notify_one();
        // `buf` holds the head and the first chunk; re-read it whole from there.
        let got = read_response(&mut c, &mut buf).await;
        assert!(
            got.head.contains("Transfer-Encoding: chunked\r\n"),
            "{}",
            got.head
        );
        let want: String = EVENTS.iter().map(|e| chunk(e)).collect();
        assert_eq!(String::from_utf8(got.body).unwrap(), want + "0\r\n\r\n");
        assert!(!timed_out.load(Ordering::SeqCst), "the upstream waited in vain");
        assert_swapped(
            &seen.recv().await.unwrap(),
            &format!("authorization: Bearer {REAL}\r\n"),
        );
        // The connection is still usable after a chunked response (this upstream connection
        // finds its signal already given).
        got_first.notify_one();
        c.write_all(&request("GET", "/again", "", "")).await.unwrap();
        let again = read_response(&mut c, &mut Vec::new()).await;
        assert!(again.head.starts_with("HTTP/1.1 200 OK\r\n"));
        drop(c);
        let recs = gw.stop().await;
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].status, Some(200));
        assert_eq!(recs[0].error, None);
    }

    #[tokio::test]
    async fn close_delimited_body_closes_the_client() {
        let script: Script = Arc::new(|| {
            vec![
                send("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello "),
                Step::Sleep(20),
                send("world"),
            ]
        });
        let (up, _seen) = fake_upstream(script).await;
        let gw = gateway(plain_cfg(up, Credential::ApiKey(REAL.into()))).await;
        let mut c = TcpStream::connect(gw.addr).await.unwrap();
        c.write_all(&request("GET", "/v1/models", "", "")).await.unwrap();
        let got = read_response(&mut c, &mut Vec::new()).await;
        assert_eq!(
            got.head,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(got.body, b"hello world");
        let recs = gw.stop().await;
        assert_eq!(recs[0].status, Some(200));
        assert_eq!(recs[0].error, None);
    }

    #[tokio::test]
    async fn chunked_request_is_reframed_without_trailers() {
        let (up, mut seen) = fake_upstream(Arc::new(json_answer)).await;
        let gw = gateway(plain_cfg(up, Credential::ApiKey(REAL.into()))).await;
        let mut c = TcpStream::connect(gw.addr).await.unwrap();
        c.write_all(
            format!(
                "POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                 3;e=1\r\nabc\r\n2\r\nde\r\n0\r\nx-api-key: {DUMMY}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let got = read_response(&mut c, &mut Vec::new()).await;
        assert!(got.head.starts_with("HTTP/1.1 200 OK\r\n"));
        let raw = String::from_utf8(seen.recv().await.unwrap()).unwrap();
        assert_eq!(
            raw,
            format!(
                "POST /v1/messages HTTP/1.1\r\nHost: {up}\r\nTransfer-Encoding: chunked\r\n\
                 x-api-key: {REAL}\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            )
        );
        drop(c);
        gw.stop().await;
    }

    fn assert_refused(got: &Got, status: &str, reason: &str) {
        assert!(got.head.starts_with(status), "{}", got.head);
        assert!(
            got.head.contains(&format!("X-Corral-Reason: {reason}\r\n")),
            "{}",
            got.head
        );
        let body = String::from_utf8_lossy(&got.body);
        assert!(body.starts_with("corral gateway: "), "{body}");
        assert!(!body.contains(REAL), "{body}");
    }

    #[tokio::test]
    async fn upstream_down_is_502() {
        let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = gone.local_addr().unwrap();
        drop(gone);
        let gw = gateway(plain_cfg(addr, Credential::ApiKey(REAL.into()))).await;
        let mut c = TcpStream::connect(gw.addr).await.unwrap();
        c.write_all(&request("POST", "/v1/messages", "", "{}"))
            .await
            .unwrap();
        let got = read_response(&mut c, &mut Vec::new()).await;
        assert_refused(&got, "HTTP/1.1 502 Bad Gateway\r\n", "upstream_failed");
        let body = String::from_utf8(got.body).unwrap();
        assert!(body.starts_with(&format!(
            "corral gateway: connecting to 127.0.0.1:{}: ",
            addr.port()
        )));
        let recs = gw.stop().await;
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].status, Some(502));
        assert!(recs[0]
            .error
            .as_deref()
            .unwrap()
            .starts_with("connecting to 127.0.0.1:"));
    }

    #[tokio::test]
    async fn oversized_bodies_are_413() {
        let (up, mut seen) = fake_upstream(Arc::new(json_answer)).await;
        let mut cfg = plain_cfg(up, Credential::ApiKey(REAL.into()));
        cfg.max_body = 10;
        let gw = gateway(cfg).await;
        let mut c = TcpStream::connect(gw.addr).await.unwrap();
        c.write_all(&request("POST", "/v1/messages", "", &"x".repeat(11)))
            .await
            .unwrap();
        let got = read_response(&mut c, &mut Vec::new()).await;
        assert_refused(&got, "HTTP/1.1 413 Content Too Large\r\n", "body_too_large");
        assert_eq!(
            String::from_utf8(got.body).unwrap(),
            "corral gateway: request body of 11 bytes is over the limit of 10\n"
        );
        let mut c = TcpStream::connect(gw.addr).await.unwrap();
        c.write_all(b"POST /v1/messages HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n")
            .await
            .unwrap();
        let got = read_response(&mut c, &mut Vec::new()).await;
        assert_refused(&got, "HTTP/1.1 413 Content Too Large\r\n", "body_too_large");
        // The Content-Length one never reached the upstream.
        let recs = gw.stop().await;
        assert_eq!(
            recs.iter().map(|r| r.status).collect::<Vec<_>>(),
            [Some(413), Some(413)]
        );
        let mut partial = Vec::new();
        while let Ok(r) = seen.try_recv() {
            partial.push(r);
        }
        assert!(partial.len() <= 1);
    }

    #[tokio::test]
    async fn malformed_requests_are_400() {
        let gw = gateway(plain_cfg(
            "127.0.0.1:9".parse().unwrap(),
            Credential::ApiKey(REAL.into()),
        ))
        .await;
        for raw in [
            "GET /\r\nHost: x\r\n\r\n".to_owned(),
            "GET http://evil.example/ HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned(),
        ] {
            let mut c = TcpStream::connect(gw.addr).await.unwrap();
            c.write_all(raw.as_bytes()).await.unwrap();
            let got = read_response(&mut c, &mut Vec::new()).await;
            assert_refused(&got, "HTTP/1.1 400 Bad Request\r\n", "bad_request");
        }
        let mut c = TcpStream::connect(gw.addr).await.unwrap();
        c.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        let got = read_response(&mut c, &mut Vec::new()).await;
        assert_refused(
            &got,
            "HTTP/1.1 505 HTTP Version Not Supported\r\n",
            "http_version",
        );
        let recs = gw.stop().await;
        assert_eq!(
            recs.iter().map(|r| r.status).collect::<Vec<_>>(),
            [Some(400), Some(400), Some(400), Some(505)]
        );
    }

    #[tokio::test]
    async fn connections_over_the_cap_are_closed() {
        let gw = gateway(plain_cfg(
            "127.0.0.1:9".parse().unwrap(),
            Credential::ApiKey(REAL.into()),
        ))
        .await;
        let mut idle = Vec::new();
        for _ in 0..MAX_CLIENTS {
            idle.push(TcpStream::connect(gw.addr).await.unwrap());
        }
        let mut extra = TcpStream::connect(gw.addr).await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), extra.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rest, b"");
        drop(idle);
        let recs = gw.stop().await;
        assert_eq!(
            recs,
            [ApiRecord {
                error: Some("too many client connections (64 open): connection closed".into()),
                ..ApiRecord::new(String::new(), String::new())
            }]
        );
    }

    #[tokio::test]
    async fn stop_records_the_request_in_flight() {
        let script: Script = Arc::new(|| vec![Step::Sleep(10_000)]);
        let (up, mut seen) = fake_upstream(script).await;
        let gw = gateway(plain_cfg(up, Credential::ApiKey(REAL.into()))).await;
        let mut c = TcpStream::connect(gw.addr).await.unwrap();
        c.write_all(&request("GET", "/slow?x=1", "", "")).await.unwrap();
        seen.recv().await.unwrap();
        let recs = gw.stop().await;
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].path, "/slow");
        assert_eq!(recs[0].status, None);
        assert_eq!(recs[0].error.as_deref(), Some("the gateway stopped"));
    }

    /// Through the whole proxy runtime (as a session runs it): stopping it waits for the
    /// gateway's own grace, so a request cut off by the stop is in the summary.
    #[test]
    fn the_proxy_runtime_keeps_the_gateways_record_of_a_request_cut_off_by_the_stop() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let script: Script = Arc::new(|| vec![Step::Sleep(10_000)]);
        let (up, mut seen) = rt.block_on(fake_upstream(script));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let events = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink_events = events.clone();
        let proxy = crate::proxy::Proxy::start(
            crate::proxy::Config::new(crate::policy::Policy::new(&[], &[], &[], &[]).unwrap(), None),
            crate::proxy::Listeners {
                proxy: None,
                gateway: Some((listener, Arc::new(plain_cfg(up, Credential::ApiKey(REAL.into()))))),
            },
            Box::new(move |e| sink_events.lock().unwrap().push(format!("{e:?}"))),
        )
        .unwrap();
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        std::io::Write::write_all(&mut c, &request("GET", "/slow", "", "")).unwrap();
        rt.block_on(seen.recv()).unwrap();
        let summary = proxy.stop();
        assert_eq!(summary.api_requests, 1, "{summary:?}");
        let events = events.lock().unwrap();
        assert!(
            events.iter().any(|e| e.contains("the gateway stopped")),
            "{events:?}"
        );
    }

    // ---- TLS ----

    /// A TLS fake upstream for "localhost" with a fresh self-signed certificate: its address and
    /// the certificate's DER.
    async fn tls_upstream() -> (SocketAddr, Vec<u8>, mpsc::UnboundedReceiver<Vec<u8>>) {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let der = cert.der().to_vec();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone().into()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((c, _)) = l.accept().await {
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(c).await {
                        upstream_conn(tls, json_answer(), tx).await;
                    }
                });
            }
        });
        (addr, der, rx)
    }

    fn tls_cfg(addr: SocketAddr) -> GatewayConfig {
        let up = Upstream::parse(&format!("https://localhost:{}", addr.port())).unwrap();
        GatewayConfig::new(up, Credential::ApiKey(REAL.into()))
    }

    #[tokio::test]
    async fn tls_upstream_with_extra_root() {
        let (addr, der, mut seen) = tls_upstream().await;
        let mut cfg = tls_cfg(addr);
        cfg.extra_roots = vec![der];
        let gw = gateway(cfg).await;
        let mut c = TcpStream::connect(gw.addr).await.unwrap();
        c.write_all(&request("POST", "/v1/messages", "", "{}"))
            .await
            .unwrap();
        let got = read_response(&mut c, &mut Vec::new()).await;
        assert!(got.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", got.head);
        assert_eq!(got.body, br#"{"ok":true}"#);
        let raw = seen.recv().await.unwrap();
        assert!(raw.starts_with(
            format!(
                "POST /v1/messages HTTP/1.1\r\nHost: localhost:{}\r\n",
                addr.port()
            )
            .as_bytes()
        ));
        assert_swapped(&raw, &format!("x-api-key: {REAL}\r\n"));
        drop(c);
        gw.stop().await;
    }

    #[tokio::test]
    async fn tls_upstream_with_unknown_issuer_is_502() {
        let (addr, _der, _seen) = tls_upstream().await;
        let gw = gateway(tls_cfg(addr)).await;
        let mut c = TcpStream::connect(gw.addr).await.unwrap();
        c.write_all(&request("POST", "/v1/messages", "", "{}"))
            .await
            .unwrap();
        let got = read_response(&mut c, &mut Vec::new()).await;
        assert_refused(&got, "HTTP/1.1 502 Bad Gateway\r\n", "upstream_failed");
        let body = String::from_utf8(got.body).unwrap();
        assert!(
            body.starts_with(&format!(
                "corral gateway: TLS handshake with localhost:{}: ",
                addr.port()
            )),
            "{body}"
        );
        assert!(body.contains("UnknownIssuer"), "{body}");
        drop(c);
        gw.stop().await;
    }

    #[test]
    fn bad_extra_root_is_reported() {
        let mut cfg = tls_cfg("127.0.0.1:1".parse().unwrap());
        cfg.extra_roots = vec![b"not DER".to_vec()];
        let TlsClient::Broken(why) = TlsClient::new(&cfg) else {
            panic!("a bad root was accepted");
        };
        assert!(why.starts_with("extra root #0: "), "{why}");
    }
}
