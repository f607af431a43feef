//! HTTP/1.x request heads as a sandboxed client sends them to the proxy: parsed strictly, sans-I/O.
//!
//! Accepts one request line plus header fields (RFC 9112 §2, §3, §5), tokenised by `httparse` and
//! then checked further here:
//!
//! - the head, including its final CRLFCRLF, fits in [`MAX_HEAD`] bytes and holds at most
//!   [`MAX_HEADERS`] fields; lines end in CRLF (a bare LF, which RFC 9112 §2.2 merely permits, is
//!   an error; `httparse` already rejects a bare CR, NUL and other controls);
//! - the request target is printable ASCII and takes one of the four forms of RFC 9112 §3.2:
//!   `CONNECT` needs authority-form (§3.2.3), every other method origin-form, absolute-form or `*`;
//!   absolute-form with userinfo (`http://user@host/`) is an error (RFC 9110 §4.2.4 deprecates it,
//!   and it is a classic way to make a URL read as another host);
//! - [`body_framing`] refuses every ambiguous framing that request smuggling relies on
//!   (RFC 9112 §6.1, §6.3): `Content-Length` together with `Transfer-Encoding`, differing
//!   duplicate lengths, a length that is not pure digits, any coding but a lone `chunked`, and
//!   `Transfer-Encoding` in HTTP/1.0.
//!
//! Limits: the scheme is parsed but not judged (the caller refuses everything but `http`), and the
//! authority is returned raw: host canonicalisation and the port live in `target.rs`. Leading empty
//! lines before the request line are skipped (RFC 9112 §2.2) and count towards [`RequestHead::len`].
//! [`origin_request`] rebuilds the head for the origin server (RFC 9110 §7.6.1: hop-by-hop fields
//! are dropped), it never forwards the client's bytes verbatim.

/// The largest request head accepted, in bytes, including the final CRLFCRLF: a head that is not
/// complete within this many bytes is [`HeadError::TooLarge`].
pub const MAX_HEAD: usize = 16 * 1024;

/// The most header fields a request head may carry.
pub const MAX_HEADERS: usize = 100;

/// The request target (RFC 9112 §3.2), classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestTarget {
    /// Authority-form, only for `CONNECT`: `host:port`, raw, as sent.
    Authority(String),
    /// Absolute-form, as a client talking to a proxy sends it.
    Absolute {
        /// The scheme, lowercased (`http`; other schemes parse but the caller refuses them).
        scheme: String,
        /// `host[:port]`, raw, without userinfo (userinfo is an error).
        authority: String,
        /// Path and query, `/` if empty; the fragment is stripped.
        path: String,
    },
    /// Origin-form, `/path?query`: a request meant for an origin server, which the proxy refuses.
    Origin(String),
    /// Asterisk-form, `*` (`OPTIONS *`).
    Asterisk,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method token, case preserved (methods are case-sensitive, RFC 9110 §9.1).
    pub method: String,
    /// The classified request target.
    pub target: RequestTarget,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor_version: u8,
    /// The header fields in order: name as sent (an RFC 9110 token), value without surrounding
    /// whitespace, raw bytes (obs-text is allowed).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Bytes of the head, including the final CRLFCRLF: the body (or tunnel data) starts here.
    pub len: usize,
}

impl RequestHead {
    /// The value of the first header field named `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// What is wrong with a request head.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeadError {
    /// No complete head within [`MAX_HEAD`] bytes.
    #[error("request head is not complete within {limit} bytes")]
    TooLarge {
        /// [`MAX_HEAD`].
        limit: usize,
    },
    /// More than [`MAX_HEADERS`] header fields.
    #[error("request head has more than {limit} header fields")]
    TooManyHeaders {
        /// [`MAX_HEADERS`].
        limit: usize,
    },
    /// The head is not HTTP/1.x syntax (`httparse` names the part).
    #[error("malformed request head: {0}")]
    Syntax(httparse::Error),
    /// A line ends in a bare LF instead of CRLF.
    #[error("request head line ends in a bare LF at byte {offset} (CRLF required)")]
    BareLf {
        /// Offset of the LF in the buffer.
        offset: usize,
    },
    /// The request target holds a byte outside printable ASCII.
    #[error("request target holds non-ASCII byte 0x{byte:02x}")]
    TargetByte {
        /// The offending byte.
        byte: u8,
    },
    /// `CONNECT` with a target that is not authority-form: `host:port`, both non-empty, the port
    /// decimal digits, no `/`, `?`, `#` or `@`.
    #[error("CONNECT needs an authority-form target (host:port), got {0:?}")]
    ConnectTarget(String),
    /// A non-`CONNECT` request whose target is not origin-form, absolute-form or `*`.
    #[error("request target {0:?} is not origin-form, absolute-form or \"*\"")]
    BadTarget(String),
    /// Absolute-form with an empty authority (`http:///path`).
    #[error("absolute-form target {0:?} has an empty authority")]
    EmptyAuthority(String),
    /// Absolute-form with userinfo (`http://user@host/`).
    #[error("absolute-form target {0:?} carries userinfo (user@host), which is refused")]
    Userinfo(String),
    /// Both `Content-Length` and `Transfer-Encoding`.
    #[error("request has both Content-Length and Transfer-Encoding (request smuggling)")]
    LengthAndChunked,
    /// Two `Content-Length` fields that differ.
    #[error("request has conflicting Content-Length values {first:?} and {second:?}")]
    ConflictingLength {
        /// The first value, lossily decoded.
        first: String,
        /// The first value that differs from it, lossily decoded.
        second: String,
    },
    /// A `Content-Length` that is not pure decimal digits or does not fit in 64 bits.
    #[error("Content-Length {0:?} is not a decimal number of at most 64 bits")]
    BadLength(String),
    /// A `Transfer-Encoding` other than a single field reading `chunked`.
    #[error("Transfer-Encoding {0:?} is not supported (only a single \"chunked\")")]
    BadTransferEncoding(String),
    /// `Transfer-Encoding` in an HTTP/1.0 request (RFC 9112 §6.1: faulty framing).
    #[error("Transfer-Encoding in an HTTP/1.0 request")]
    TransferEncodingHttp10,
}

/// Parses a request head from the start of `buf`.
///
/// `Ok(None)`: the head is not complete yet and `buf` is shorter than [`MAX_HEAD`], read more.
/// Only the first [`MAX_HEAD`] bytes are looked at; bytes after the head are left alone.
pub fn parse_request_head(buf: &[u8]) -> Result<Option<RequestHead>, HeadError> {
    let window = buf.get(..MAX_HEAD).unwrap_or(buf);
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let len = match req.parse(window) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if window.len() < MAX_HEAD => return Ok(None),
        Ok(httparse::Status::Partial) => return Err(HeadError::TooLarge { limit: MAX_HEAD }),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders { limit: MAX_HEADERS }),
        Err(e) => return Err(HeadError::Syntax(e)),
    };
    // httparse accepts a bare LF as a line end; the proxy insists on CRLF everywhere.
    if let Some(offset) = bare_lf(&window[..len]) {
        return Err(HeadError::BareLf { offset });
    }
    // A complete parse fills in method, path and version.
    let (Some(method), Some(raw_target), Some(minor_version)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Syntax(httparse::Error::Token));
    };
    let target = classify_target(method, raw_target)?;
    let headers = req
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), trim_ows(h.value).to_vec()))
        .collect();
    Ok(Some(RequestHead {
        method: method.to_owned(),
        target,
        minor_version,
        headers,
        len,
    }))
}

/// The offset of the first LF not preceded by CR.
fn bare_lf(head: &[u8]) -> Option<usize> {
    head.iter()
        .enumerate()
        .find(|&(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
        .map(|(i, _)| i)
}

/// Sorts the raw target into one of the forms of RFC 9112 §3.2.
fn classify_target(method: &str, raw: &str) -> Result<RequestTarget, HeadError> {
    // httparse lets UTF-8 through; a target on the wire is ASCII (RFC 3986 §2).
    if let Some(&byte) = raw.as_bytes().iter().find(|b| !b.is_ascii_graphic()) {
        return Err(HeadError::TargetByte { byte });
    }
    if method == "CONNECT" {
        // Authority-form (§3.2.3): `host:port`, the port mandatory; no path, query, fragment or
        // userinfo. The host itself and the port's range are judged by the caller.
        let authority_only = !raw.bytes().any(|b| b"/?#@".contains(&b))
            && raw.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
            });
        return if authority_only {
            Ok(RequestTarget::Authority(raw.to_owned()))
        } else {
            Err(HeadError::ConnectTarget(raw.to_owned()))
        };
    }
    if raw == "*" {
        return Ok(RequestTarget::Asterisk);
    }
    if raw.starts_with('/') {
        return Ok(RequestTarget::Origin(raw.to_owned()));
    }
    let Some((scheme, rest)) = raw.split_once("://") else {
        return Err(HeadError::BadTarget(raw.to_owned()));
    };
    // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 §3.1)
    let scheme_ok = scheme.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !scheme_ok {
        return Err(HeadError::BadTarget(raw.to_owned()));
    }
    // The authority ends at the first '/', '?' or '#' (RFC 3986 §3.2).
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err(HeadError::Userinfo(raw.to_owned()));
    }
    if authority.is_empty() {
        return Err(HeadError::EmptyAuthority(raw.to_owned()));
    }
    // The fragment is never sent to a server (RFC 9110 §4.2.4).
    let tail = tail.split_once('#').map_or(tail, |(before, _)| before);
    let path = if tail.starts_with('/') {
        tail.to_owned()
    } else {
        // Empty, or a bare query: the path is "/" (RFC 9112 §3.2.1).
        format!("/{tail}")
    };
    Ok(RequestTarget::Absolute {
        scheme: scheme.to_ascii_lowercase(),
        authority: authority.to_owned(),
        path,
    })
}

/// Strips optional whitespace (SP, HTAB) around a field value (RFC 9110 §5.5).
fn trim_ows(v: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = v.iter().position(|b| !is_ows(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    &v[start..end]
}

/// How the body after a request head is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Decides how the request body is delimited, refusing every ambiguous case (request smuggling).
///
/// Errors: `Content-Length` with `Transfer-Encoding`; `Content-Length` fields that differ (equal
/// duplicates are merged, RFC 9112 §6.3 item 5); a length that is not pure digits (so no list,
/// sign or blank); more than one `Transfer-Encoding` field or one that is not exactly `chunked`
/// (case-insensitive); `Transfer-Encoding` in HTTP/1.0.
pub fn body_framing(head: &RequestHead) -> Result<BodyFraming, HeadError> {
    let mut lengths = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.as_slice());
    let mut codings = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .map(|(_, v)| v.as_slice());
    match (lengths.next(), codings.next()) {
        (None, None) => Ok(BodyFraming::None),
        (Some(_), Some(_)) => Err(HeadError::LengthAndChunked),
        (Some(first), None) => {
            if let Some(second) = lengths.find(|v| *v != first) {
                return Err(HeadError::ConflictingLength {
                    first: lossy(first),
                    second: lossy(second),
                });
            }
            parse_length(first).map(BodyFraming::Length)
        }
        (None, Some(coding)) => {
            if head.minor_version == 0 {
                return Err(HeadError::TransferEncodingHttp10);
            }
            if let Some(other) = codings.next() {
                let mut both = coding.to_vec();
                both.extend_from_slice(b", ");
                both.extend_from_slice(other);
                return Err(HeadError::BadTransferEncoding(lossy(&both)));
            }
            if coding.eq_ignore_ascii_case(b"chunked") {
                Ok(BodyFraming::Chunked)
            } else {
                Err(HeadError::BadTransferEncoding(lossy(coding)))
            }
        }
    }
}

/// `1*DIGIT` (RFC 9110 §8.6) into a `u64`.
fn parse_length(v: &[u8]) -> Result<u64, HeadError> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err(HeadError::BadLength(lossy(v)));
    }
    v.iter()
        .try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
        .ok_or_else(|| HeadError::BadLength(lossy(v)))
}

fn lossy(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

/// Hop-by-hop fields (RFC 9110 §7.6.1, plus the de-facto `Proxy-Connection` and `Keep-Alive`) and
/// `Host`, which [`origin_request`] writes itself.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
    "host",
];

/// Fields a `Connection` token may not remove: the body is relayed as framed by
/// [`body_framing`], so dropping its framing field would let the body smuggle a second request to
/// the origin.
const FRAMING: [&str; 2] = ["content-length", "transfer-encoding"];

/// Rebuilds the head for the origin server: `METHOD path HTTP/1.1`, `Host: authority` first, then
/// the client's fields in order minus hop-by-hop ones (including every field named by a
/// `Connection` token, except `Content-Length` and `Transfer-Encoding`), then
/// `Connection: close` and the empty line.
///
/// `path` and `authority` come from the caller's checked target: they are written as given.
pub fn origin_request(head: &RequestHead, path: &str, authority: &str) -> Vec<u8> {
    let connection_tokens: Vec<&[u8]> = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .map(trim_ows)
        .filter(|t| !t.is_empty())
        .collect();
    let dropped = |name: &str| {
        HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
            || (!FRAMING.iter().any(|f| name.eq_ignore_ascii_case(f))
                && connection_tokens
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(name.as_bytes())))
    };
    let mut out = Vec::with_capacity(head.len + authority.len() + path.len() + 64);
    for part in [
        head.method.as_str(),
        " ",
        path,
        " HTTP/1.1\r\nHost: ",
        authority,
        "\r\n",
    ] {
        out.extend_from_slice(part.as_bytes());
    }
    for (name, value) in head.headers.iter().filter(|(n, _)| !dropped(n)) {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use proptest::prelude::*;

    fn hdrs(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    fn head_of(raw: &str) -> RequestHead {
        parse_request_head(raw.as_bytes()).unwrap().unwrap()
    }

    fn err_of(raw: &[u8]) -> HeadError {
        parse_request_head(raw).unwrap_err()
    }

    const CONNECT: &str = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";

    #[test]
    fn connect_head() {
        let mut buf = CONNECT.as_bytes().to_vec();
        buf.extend_from_slice(b"\x16\x03\x01 tunnel bytes");
        assert_eq!(
            parse_request_head(&buf).unwrap(),
            Some(RequestHead {
                method: "CONNECT".into(),
                target: RequestTarget::Authority("example.com:443".into()),
                minor_version: 1,
                headers: hdrs(&[("Host", "example.com:443")]),
                len: CONNECT.len(),
            })
        );
    }

    #[test]
    fn absolute_head() {
        // obs-text (0xff) in a value survives as bytes; the value is trimmed.
        let raw: &[u8] =
            b"GET HTTP://Example.com:8080?q=1#frag HTTP/1.0\r\nHost:  example.com \r\nX-A: \xff\r\n\r\n";
        assert_eq!(
            parse_request_head(raw).unwrap(),
            Some(RequestHead {
                method: "GET".into(),
                target: RequestTarget::Absolute {
                    scheme: "http".into(),
                    authority: "Example.com:8080".into(),
                    path: "/?q=1".into(),
                },
                minor_version: 0,
                headers: vec![
                    ("Host".into(), b"example.com".to_vec()),
                    ("X-A".into(), vec![0xff]),
                ],
                len: raw.len(),
            })
        );
    }

    #[test]
    fn target_forms() {
        let t = |raw: &str| head_of(raw).target;
        assert_eq!(
            t("GET http://h HTTP/1.1\r\n\r\n"),
            RequestTarget::Absolute {
                scheme: "http".into(),
                authority: "h".into(),
                path: "/".into()
            }
        );
        assert_eq!(
            t("GET ftp://h/a/b#x HTTP/1.1\r\n\r\n"),
            RequestTarget::Absolute {
                scheme: "ftp".into(),
                authority: "h".into(),
                path: "/a/b".into()
            }
        );
        assert_eq!(
            t("GET /a?b HTTP/1.1\r\n\r\n"),
            RequestTarget::Origin("/a?b".into())
        );
        assert_eq!(t("OPTIONS * HTTP/1.1\r\n\r\n"), RequestTarget::Asterisk);
        assert_eq!(
            t("CONNECT [::1]:443 HTTP/1.1\r\n\r\n"),
            RequestTarget::Authority("[::1]:443".into())
        );
        // Leading empty lines are skipped and counted.
        assert_eq!(head_of("\r\nGET / HTTP/1.1\r\n\r\n").len, 20);
    }

    #[test]
    fn target_errors() {
        let cases: Vec<(&[u8], HeadError)> = vec![
            (
                b"CONNECT http://h:443/ HTTP/1.1\r\n\r\n",
                HeadError::ConnectTarget("http://h:443/".into()),
            ),
            (
                b"CONNECT u@h:443 HTTP/1.1\r\n\r\n",
                HeadError::ConnectTarget("u@h:443".into()),
            ),
            (
                b"CONNECT * HTTP/1.1\r\n\r\n",
                HeadError::ConnectTarget("*".into()),
            ),
            (
                b"CONNECT h HTTP/1.1\r\n\r\n",
                HeadError::ConnectTarget("h".into()),
            ),
            (
                b"CONNECT [::1] HTTP/1.1\r\n\r\n",
                HeadError::ConnectTarget("[::1]".into()),
            ),
            (
                b"CONNECT h: HTTP/1.1\r\n\r\n",
                HeadError::ConnectTarget("h:".into()),
            ),
            (
                b"CONNECT :443 HTTP/1.1\r\n\r\n",
                HeadError::ConnectTarget(":443".into()),
            ),
            (
                b"CONNECT h:443x HTTP/1.1\r\n\r\n",
                HeadError::ConnectTarget("h:443x".into()),
            ),
            (
                b"CONNECT h:443/ HTTP/1.1\r\n\r\n",
                HeadError::ConnectTarget("h:443/".into()),
            ),
            (b"GET h:80 HTTP/1.1\r\n\r\n", HeadError::BadTarget("h:80".into())),
            (
                b"GET 1http://h/ HTTP/1.1\r\n\r\n",
                HeadError::BadTarget("1http://h/".into()),
            ),
            (
                b"GET ://h/ HTTP/1.1\r\n\r\n",
                HeadError::BadTarget("://h/".into()),
            ),
            (
                b"GET http:///p HTTP/1.1\r\n\r\n",
                HeadError::EmptyAuthority("http:///p".into()),
            ),
            (
                b"GET http://evil.com@good.com/ HTTP/1.1\r\n\r\n",
                HeadError::Userinfo("http://evil.com@good.com/".into()),
            ),
            (
                "GET http://h/\u{e9} HTTP/1.1\r\n\r\n".as_bytes(),
                HeadError::TargetByte { byte: 0xc3 },
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(err_of(raw), want, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn control_bytes_in_request_line_are_rejected() {
        for bad in [
            &b"GE\0T / HTTP/1.1\r\n\r\n"[..],
            b"GET /\0 HTTP/1.1\r\n\r\n",
            b"GET /\r HTTP/1.1\r\n\r\n",
            b"GET /\n HTTP/1.1\r\n\r\n",
            b"GET /a\rb HTTP/1.1\r\n\r\n",
            b"GET\r / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\0b\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
        ] {
            assert!(
                matches!(err_of(bad), HeadError::Syntax(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            err_of(b"GET  / HTTP/1.1\r\n\r\n"),
            HeadError::Syntax(httparse::Error::Token)
        );
        assert_eq!(
            err_of(b"GET / HTTP/2.0\r\n\r\n"),
            HeadError::Syntax(httparse::Error::Version)
        );
        assert_eq!(
            err_of(b"GET / HTTP/1.1\r\nX : y\r\n\r\n"),
            HeadError::Syntax(httparse::Error::HeaderName)
        );
        assert_eq!(
            err_of(b"GET / HTTP/1.1\r\n folded\r\n\r\n"),
            HeadError::Syntax(httparse::Error::HeaderName)
        );
    }

    #[test]
    fn bare_lf_is_rejected() {
        assert_eq!(
            err_of(b"GET / HTTP/1.1\nHost: h\r\n\r\n"),
            HeadError::BareLf { offset: 14 }
        );
        assert_eq!(
            err_of(b"GET / HTTP/1.1\r\nHost: h\r\n\n"),
            HeadError::BareLf { offset: 25 }
        );
        assert_eq!(
            err_of(b"\nGET / HTTP/1.1\r\n\r\n"),
            HeadError::BareLf { offset: 0 }
        );
    }

    #[test]
    fn every_prefix_needs_more() {
        let full = "\r\nPOST http://example.com/upload?x=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\nX-Empty:\r\n\r\n";
        for cut in 0..full.len() {
            assert_eq!(
                parse_request_head(&full.as_bytes()[..cut]),
                Ok(None),
                "prefix {cut}"
            );
        }
        assert!(parse_request_head(full.as_bytes()).unwrap().is_some());
    }

    #[test]
    fn size_limits() {
        // A head of exactly MAX_HEAD bytes parses; one byte more does not.
        let skeleton = "GET / HTTP/1.1\r\nX: \r\n\r\n".len();
        let exact = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD - skeleton));
        assert_eq!(head_of(&exact).len, MAX_HEAD);
        let over = format!(
            "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD - skeleton + 1)
        );
        assert_eq!(err_of(over.as_bytes()), HeadError::TooLarge { limit: MAX_HEAD });
        // Incomplete at MAX_HEAD bytes: too large, not "need more".
        assert_eq!(
            err_of(&over.as_bytes()[..MAX_HEAD]),
            HeadError::TooLarge { limit: MAX_HEAD }
        );
        assert_eq!(parse_request_head(&over.as_bytes()[..MAX_HEAD - 1]), Ok(None));

        let fields = |n: usize| {
            let mut s = String::from("GET / HTTP/1.1\r\n");
            for i in 0..n {
                s.push_str(&format!("X-{i}: v\r\n"));
            }
            s + "\r\n"
        };
        assert_eq!(head_of(&fields(MAX_HEADERS)).headers.len(), MAX_HEADERS);
        assert_eq!(
            err_of(fields(MAX_HEADERS + 1).as_bytes()),
            HeadError::TooManyHeaders { limit: MAX_HEADERS }
        );
    }

    #[test]
    fn header_lookup_is_case_insensitive_first_wins() {
        let h = head_of("GET / HTTP/1.1\r\nhOsT: a\r\nHost: b\r\n\r\n");
        assert_eq!(h.header("HOST"), Some(&b"a"[..]));
        assert_eq!(h.header("missing"), None);
    }

    fn framing(fields: &str) -> Result<BodyFraming, HeadError> {
        body_framing(&head_of(&format!("POST / HTTP/1.1\r\n{fields}\r\n")))
    }

    #[test]
    fn framing_accepts_unambiguous_bodies() {
        assert_eq!(framing(""), Ok(BodyFraming::None));
        assert_eq!(framing("Content-Length: 0\r\n"), Ok(BodyFraming::Length(0)));
        assert_eq!(
            framing("content-length: 18446744073709551615\r\nContent-Length: 18446744073709551615\r\n"),
            Ok(BodyFraming::Length(u64::MAX))
        );
        assert_eq!(
            framing("Transfer-Encoding: ChUnKeD \r\n"),
            Ok(BodyFraming::Chunked)
        );
    }

    #[test]
    fn framing_refuses_smuggling() {
        let cases = [
            (
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                HeadError::LengthAndChunked,
            ),
            (
                "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                HeadError::LengthAndChunked,
            ),
            (
                "Content-Length: 5\r\nContent-Length: 6\r\n",
                HeadError::ConflictingLength {
                    first: "5".into(),
                    second: "6".into(),
                },
            ),
            ("Content-Length: 5, 5\r\n", HeadError::BadLength("5, 5".into())),
            ("Content-Length: +5\r\n", HeadError::BadLength("+5".into())),
            ("Content-Length: -1\r\n", HeadError::BadLength("-1".into())),
            ("Content-Length: 0x10\r\n", HeadError::BadLength("0x10".into())),
            ("Content-Length:\r\n", HeadError::BadLength(String::new())),
            (
                "Content-Length: 18446744073709551616\r\n",
                HeadError::BadLength("18446744073709551616".into()),
            ),
            (
                "Transfer-Encoding: gzip, chunked\r\n",
                HeadError::BadTransferEncoding("gzip, chunked".into()),
            ),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                HeadError::BadTransferEncoding("chunked, chunked".into()),
            ),
            (
                "Transfer-Encoding: xchunked\r\n",
                HeadError::BadTransferEncoding("xchunked".into()),
            ),
            (
                "Transfer-Encoding: identity\r\n",
                HeadError::BadTransferEncoding("identity".into()),
            ),
        ];
        for (fields, want) in cases {
            assert_eq!(framing(fields), Err(want), "{fields:?}");
        }
        let http10 = head_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(body_framing(&http10), Err(HeadError::TransferEncodingHttp10));
    }

    #[test]
    fn origin_request_drops_hop_by_hop() {
        let h = head_of(
            "POST http://example.com/x HTTP/1.1\r\n\
             Host: other\r\n\
             Connection: keep-alive, X-Secret , content-length,, Transfer-Encoding\r\n\
             Proxy-Connection: keep-alive\r\n\
             Keep-Alive: 5\r\n\
             Proxy-Authorization: Basic eA==\r\n\
             Proxy-Authenticate: x\r\n\
             TE: trailers\r\n\
             Trailer: X\r\n\
             Upgrade: h2c\r\n\
             Accept: */*\r\n\
             x-secret: 1\r\n\
             Content-Length: 3\r\n\
             CONNECTION: X-Other\r\n\
             X-Other: 2\r\n\
             User-Agent: t\r\n\r\n",
        );
        assert_eq!(
            String::from_utf8(origin_request(&h, "/x", "example.com")).unwrap(),
            "POST /x HTTP/1.1\r\n\
             Host: example.com\r\n\
             Accept: */*\r\n\
             Content-Length: 3\r\n\
             User-Agent: t\r\n\
             Connection: close\r\n\r\n"
        );
    }

    fn encode(method: &str, target: &str, minor: u8, headers: &[(String, Vec<u8>)]) -> Vec<u8> {
        let mut out = format!("{method} {target} HTTP/1.{minor}\r\n").into_bytes();
        for (n, v) in headers {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    fn arb_target() -> impl Strategy<Value = (String, String, RequestTarget)> {
        let host = "[a-z0-9][a-z0-9.-]{0,20}(:[0-9]{1,5})?";
        let path = "(/[A-Za-z0-9._~%!$&'()*+,;=:@-]{0,10}){0,4}(\\?[A-Za-z0-9=&/?-]{0,10})?";
        prop_oneof![
            "[a-z0-9][a-z0-9.-]{0,20}:[0-9]{1,5}".prop_map(|a| (
                "CONNECT".to_owned(),
                a.clone(),
                RequestTarget::Authority(a)
            )),
            (
                "[A-Z]{1,8}".prop_filter("not CONNECT", |m| m != "CONNECT"),
                "[a-zA-Z][a-zA-Z0-9+.-]{0,6}",
                host,
                path
            )
                .prop_map(|(m, s, a, p)| {
                    let want = if p.starts_with('/') {
                        p.clone()
                    } else {
                        format!("/{p}")
                    };
                    (
                        m,
                        format!("{s}://{a}{p}"),
                        RequestTarget::Absolute {
                            scheme: s.to_ascii_lowercase(),
                            authority: a,
                            path: want,
                        },
                    )
                }),
            ("GET|POST|PUT", "/[!-~]{0,30}").prop_map(|(m, p)| (m, p.clone(), RequestTarget::Origin(p))),
            Just(("OPTIONS".to_owned(), "*".to_owned(), RequestTarget::Asterisk)),
        ]
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(Some(h)) = parse_request_head(&buf) {
                let _ = body_framing(&h);
                let _ = origin_request(&h, "/", "h");
            }
        }

        #[test]
        fn never_panics_on_near_heads(
            line in "[A-Z]{1,7} [!-~]{1,40} HTTP/1\\.[01]\r\n",
            fields in proptest::collection::vec(("[!-~]{1,10}", "[ -~\t]{0,20}"), 0..6),
            junk in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let mut buf = line.into_bytes();
            for (n, v) in fields {
                buf.extend_from_slice(format!("{n}:{v}\r\n").as_bytes());
            }
            buf.extend_from_slice(&junk);
            buf.extend_from_slice(b"\r\n");
            if let Ok(Some(h)) = parse_request_head(&buf) {
                let _ = body_framing(&h);
                let _ = origin_request(&h, "/", "h");
            }
        }

        #[test]
        fn parse_encode_roundtrip(
            (method, raw_target, target) in arb_target(),
            minor in 0u8..=1,
            fields in proptest::collection::vec(
                ("[A-Za-z0-9!#$%&'*+.^_`|~-]{1,16}", "([!-~]([ -~]{0,30}[!-~])?)?"),
                0..8,
            ),
        ) {
            let headers: Vec<(String, Vec<u8>)> =
                fields.into_iter().map(|(n, v)| (n, v.into_bytes())).collect();
            let raw = encode(&method, &raw_target, minor, &headers);
            let want = RequestHead { method, target, minor_version: minor, headers, len: raw.len() };
            prop_assert_eq!(parse_request_head(&raw), Ok(Some(want)));
        }
    }
}
