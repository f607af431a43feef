//! The server name a sandboxed client asks for in its TLS ClientHello, read without terminating
//! TLS, sans-I/O.
//!
//! The proxy peeks at the first bytes of a `CONNECT` tunnel (or a SOCKS5 connection) to refuse
//! domain fronting: the ClientHello's `server_name` must match the host the tunnel was opened to.
//!
//! Accepts TLS records (RFC 8446 §5.1) of type handshake (22) with record-version major byte 3,
//! reassembling a handshake message fragmented over several consecutive handshake records (§5.1
//! allows it), then walks the ClientHello (§4.1.2): `legacy_version`, `random`,
//! `legacy_session_id` (at most 32 bytes), `cipher_suites` (non-empty, even), compression methods
//! (non-empty), and the extensions (§4.2), every length checked against its enclosing one. The
//! `server_name` extension (RFC 6066 §3) must appear at most once and list exactly one
//! `host_name` entry whose bytes are non-empty ASCII without NUL; it is returned as sent, not
//! lowercased (the caller canonicalises).
//!
//! Limits: the whole ClientHello, record headers included, must arrive within [`MAX_HELLO`] bytes;
//! a record is at most 2^14 bytes and never empty (§5.1). Bytes after the ClientHello are ignored.
//! Extensions other than `server_name` are skipped unread (no duplicate check for them): this is
//! a name extractor, the origin server still validates the handshake. ECH (an encrypted inner
//! hello) is not looked into: the outer, public name is what is returned.

/// The most bytes the records carrying one ClientHello may span, record headers included.
pub const MAX_HELLO: usize = 32 * 1024;

/// Record content type `handshake` (RFC 8446 §5.1).
const CONTENT_HANDSHAKE: u8 = 22;
/// Every TLS record version (1.0 to 1.3 on the wire) has major byte 3 (RFC 8446 §5.1).
const RECORD_MAJOR: u8 = 3;
/// Bytes of a record header: type, version (2), length (2).
const RECORD_HEADER: usize = 5;
/// The largest record fragment, 2^14 bytes (RFC 8446 §5.1).
const MAX_FRAGMENT: usize = 1 << 14;
/// Handshake type `client_hello` (RFC 8446 §4).
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
/// Bytes of a handshake header: type, length (3).
const HANDSHAKE_HEADER: usize = 4;
/// `legacy_session_id` is `opaque <0..32>` (RFC 8446 §4.1.2).
const MAX_SESSION_ID: usize = 32;
/// Extension type `server_name` (RFC 6066 §3).
const EXT_SERVER_NAME: u16 = 0;
/// `NameType` `host_name` (RFC 6066 §3).
const NAME_TYPE_HOST: u8 = 0;

/// What the first bytes of a connection are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// Too few bytes to tell yet (and fewer than [`MAX_HELLO`]): read more.
    NeedMore,
    /// Not TLS: the first byte is not a handshake record, or the record version is not 3.x.
    NotTls,
    /// A well-formed ClientHello.
    ClientHello {
        /// The `host_name` from `server_name`, as sent; `None` when the extension is absent.
        sni: Option<String>,
    },
}

/// What is wrong with a TLS ClientHello.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlsError {
    /// The ClientHello does not fit in [`MAX_HELLO`] bytes.
    #[error("TLS ClientHello does not fit in {limit} bytes")]
    TooLarge {
        /// [`MAX_HELLO`].
        limit: usize,
    },
    /// A record longer than 2^14 bytes.
    #[error("TLS record of {0} bytes exceeds the 16384-byte limit")]
    RecordTooLong(usize),
    /// A handshake record with no payload.
    #[error("empty TLS handshake record")]
    EmptyRecord,
    /// A record that is not a handshake record in the middle of a fragmented ClientHello.
    #[error("TLS record of type {0} inside a fragmented ClientHello (handshake expected)")]
    NotHandshakeRecord(u8),
    /// A later record whose version major byte is not 3.
    #[error("TLS record version major byte {0} is not 3")]
    RecordVersion(u8),
    /// The first handshake message is not a ClientHello.
    #[error("TLS handshake message of type {0} where a ClientHello (1) was expected")]
    NotClientHello(u8),
    /// A field runs past the end of what encloses it.
    #[error("TLS ClientHello is truncated in {0}")]
    Truncated(&'static str),
    /// Bytes left over after the last field of a structure.
    #[error("TLS ClientHello has trailing bytes after {0}")]
    Trailing(&'static str),
    /// `legacy_session_id` longer than 32 bytes.
    #[error("TLS legacy_session_id of {0} bytes exceeds 32")]
    SessionIdTooLong(usize),
    /// `cipher_suites` empty or of odd length.
    #[error("TLS cipher_suites of {0} bytes (must be non-empty and even)")]
    CipherSuites(usize),
    /// `legacy_compression_methods` empty.
    #[error("TLS ClientHello lists no compression method")]
    NoCompression,
    /// Two `server_name` extensions.
    #[error("TLS ClientHello carries the server_name extension twice")]
    DuplicateServerName,
    /// A `server_name` entry whose type is not `host_name` (0).
    #[error("TLS server_name entry of type {0} (only host_name, 0, is accepted)")]
    ServerNameType(u8),
    /// A `server_name` list without exactly one entry.
    #[error("TLS server_name lists {0} names (exactly one host_name is accepted)")]
    ServerNameCount(usize),
    /// An empty `host_name`.
    #[error("TLS server_name host_name is empty")]
    EmptyServerName,
    /// A `host_name` byte that is NUL or not ASCII.
    #[error("TLS server_name host_name holds byte 0x{0:02x} (ASCII without NUL required)")]
    ServerNameByte(u8),
}

/// Reads the server name from the ClientHello at the start of `buf`.
///
/// Only the first [`MAX_HELLO`] bytes are looked at. [`Hello::NeedMore`] only while `buf` is
/// shorter than that; an incomplete hello at that size is [`TlsError::TooLarge`].
pub fn client_hello_sni(buf: &[u8]) -> Result<Hello, TlsError> {
    let window = buf.get(..MAX_HELLO).unwrap_or(buf);
    let need_more = || {
        if window.len() < MAX_HELLO {
            Ok(Hello::NeedMore)
        } else {
            Err(TlsError::TooLarge { limit: MAX_HELLO })
        }
    };
    match (window.first(), window.get(1)) {
        (None, _) | (Some(&CONTENT_HANDSHAKE), None) => return need_more(),
        (Some(&CONTENT_HANDSHAKE), Some(&RECORD_MAJOR)) => {}
        (Some(_), _) => return Ok(Hello::NotTls),
    }

    // Reassemble the handshake message from consecutive handshake records (RFC 8446 §5.1).
    let mut msg: Vec<u8> = Vec::new();
    // Header plus body length of the handshake message, once its header has arrived.
    let mut total: Option<usize> = None;
    let mut pos = 0;
    while total.is_none_or(|t| msg.len() < t) {
        match window.get(pos) {
            None => return need_more(),
            Some(&CONTENT_HANDSHAKE) => {}
            Some(&other) => return Err(TlsError::NotHandshakeRecord(other)),
        }
        match window.get(pos + 1) {
            None => return need_more(),
            Some(&RECORD_MAJOR) => {}
            Some(&other) => return Err(TlsError::RecordVersion(other)),
        }
        let Some(&[hi, lo]) = window.get(pos + 3..pos + RECORD_HEADER) else {
            return need_more();
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len == 0 {
            return Err(TlsError::EmptyRecord);
        }
        if len > MAX_FRAGMENT {
            return Err(TlsError::RecordTooLong(len));
        }
        let start = pos + RECORD_HEADER;
        let end = start + len;
        let fragment = window.get(start..end.min(window.len())).unwrap_or_default();
        msg.extend_from_slice(fragment);
        // Judge the handshake header as soon as it has arrived.
        if let Some(&kind) = msg.first() {
            if kind != HANDSHAKE_CLIENT_HELLO {
                return Err(TlsError::NotClientHello(kind));
            }
        }
        if let (None, Some(&[_, a, b, c])) = (total, msg.get(..HANDSHAKE_HEADER)) {
            let t = HANDSHAKE_HEADER + ((usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c));
            // At least one record header precedes the message.
            if RECORD_HEADER + t > MAX_HELLO {
                return Err(TlsError::TooLarge { limit: MAX_HELLO });
            }
            total = Some(t);
        }
        if end > window.len() {
            return need_more();
        }
        pos = end;
    }
    let body = match total {
        Some(t) => msg.get(HANDSHAKE_HEADER..t).unwrap_or_default(),
        None => &[],
    };
    Ok(Hello::ClientHello {
        sni: walk_client_hello(body)?,
    })
}

/// Walks a ClientHello body (RFC 8446 §4.1.2) and returns its `host_name`, if any.
fn walk_client_hello(body: &[u8]) -> Result<Option<String>, TlsError> {
    let mut r = Reader(body);
    r.take(2, "legacy_version")?;
    r.take(32, "random")?;
    let session_id = r.vec8("legacy_session_id")?;
    if session_id.len() > MAX_SESSION_ID {
        return Err(TlsError::SessionIdTooLong(session_id.len()));
    }
    let suites = r.vec16("cipher_suites")?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(TlsError::CipherSuites(suites.len()));
    }
    if r.vec8("legacy_compression_methods")?.is_empty() {
        return Err(TlsError::NoCompression);
    }
    // A hello without extensions (TLS 1.2 and older) ends here.
    if r.0.is_empty() {
        return Ok(None);
    }
    let mut exts = Reader(r.vec16("extensions")?);
    r.end("extensions")?;
    let mut sni = None;
    while !exts.0.is_empty() {
        let kind = exts.u16("extension_type")?;
        let data = exts.vec16("extension_data")?;
        if kind == EXT_SERVER_NAME {
            if sni.is_some() {
                return Err(TlsError::DuplicateServerName);
            }
            sni = Some(server_name(data)?);
        }
    }
    Ok(sni)
}

/// Parses `ServerNameList` (RFC 6066 §3): exactly one `host_name`, ASCII without NUL.
fn server_name(data: &[u8]) -> Result<String, TlsError> {
    let mut r = Reader(data);
    let mut list = Reader(r.vec16("server_name_list")?);
    r.end("server_name_list")?;
    let mut names = Vec::with_capacity(1);
    while !list.0.is_empty() {
        let kind = list.u8("name_type")?;
        if kind != NAME_TYPE_HOST {
            return Err(TlsError::ServerNameType(kind));
        }
        names.push(list.vec16("host_name")?);
    }
    let [name] = names[..] else {
        return Err(TlsError::ServerNameCount(names.len()));
    };
    if name.is_empty() {
        return Err(TlsError::EmptyServerName);
    }
    if let Some(&b) = name.iter().find(|&&b| b == 0 || !b.is_ascii()) {
        return Err(TlsError::ServerNameByte(b));
    }
    Ok(name.iter().map(|&b| char::from(b)).collect())
}

/// A bounds-checked cursor; every read names the field for the error.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], TlsError> {
        if n > self.0.len() {
            return Err(TlsError::Truncated(field));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, TlsError> {
        match self.take(1, field)? {
            &[b] => Ok(b),
            _ => Err(TlsError::Truncated(field)),
        }
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, TlsError> {
        match self.take(2, field)? {
            &[hi, lo] => Ok(u16::from_be_bytes([hi, lo])),
            _ => Err(TlsError::Truncated(field)),
        }
    }

    /// `opaque field<0..2^8-1>`.
    fn vec8(&mut self, field: &'static str) -> Result<&'a [u8], TlsError> {
        let n = self.u8(field)?;
        self.take(usize::from(n), field)
    }

    /// `opaque field<0..2^16-1>`.
    fn vec16(&mut self, field: &'static str) -> Result<&'a [u8], TlsError> {
        let n = self.u16(field)?;
        self.take(usize::from(n), field)
    }

    fn end(&self, field: &'static str) -> Result<(), TlsError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(TlsError::Trailing(field))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use proptest::prelude::*;

    /// curl 8 / OpenSSL 3.0 connecting to `https://www.example.org:44333/`, captured on the wire:
    /// TLS 1.3 with server_name, ec_point_formats, supported_groups, ALPN (h2, http/1.1),
    /// encrypt_then_mac, extended_master_secret, post_handshake_auth, signature_algorithms,
    /// supported_versions, psk_key_exchange_modes, key_share (x25519) and padding.
    const CURL_HELLO: &str = "\
        1603010200010001fc0303c16107dc610c4bfda50780644a7267d5cdeb1218741564b10deab3b9b23f94d32090c06040\
        c1ee39ab298d56e728f289a52e2865580861b22335fd5c3afd41f24a003e130213031301c02cc030009fcca9cca8ccaa\
        c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff01000175\
        00000014001200000f7777772e6578616d706c652e6f7267000b000403000102000a00160014001d0017001e00190018\
        010001010102010301040010000e000c02683208687474702f312e31001600000017000000310000000d002a00280403\
        05030603080708080809080a080b080408050806040105010601030303010302040205020602002b0009080304030303\
        020301002d00020101003300260024001d00206c34df0b91cd2f342d3813408f862e73c3bc9a30f63addfd66ae3e573f\
        c06708001500ae0000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        00000000000000000000000000000000000000000000000000000000000000000000000000";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn be16(n: usize) -> [u8; 2] {
        u16::try_from(n).unwrap().to_be_bytes()
    }

    /// A record of `kind` carrying `payload`.
    fn record(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![kind, 3, 1];
        out.extend_from_slice(&be16(payload.len()));
        out.extend_from_slice(payload);
        out
    }

    /// A handshake message of `kind` with `body`.
    fn handshake(kind: u8, body: &[u8]) -> Vec<u8> {
        let n = u32::try_from(body.len()).unwrap().to_be_bytes();
        let mut out = vec![kind, n[1], n[2], n[3]];
        out.extend_from_slice(body);
        out
    }

    /// An extension block entry.
    fn ext(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut out = kind.to_be_bytes().to_vec();
        out.extend_from_slice(&be16(data.len()));
        out.extend_from_slice(data);
        out
    }

    /// `server_name` extension data from (name_type, name) entries.
    fn sni_data(entries: &[(u8, &[u8])]) -> Vec<u8> {
        let mut list = Vec::new();
        for (kind, name) in entries {
            list.push(*kind);
            list.extend_from_slice(&be16(name.len()));
            list.extend_from_slice(name);
        }
        let mut out = be16(list.len()).to_vec();
        out.extend_from_slice(&list);
        out
    }

    /// A ClientHello body; `exts: None` leaves the extensions block out entirely.
    fn hello_body(exts: Option<&[Vec<u8>]>) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[0xAB; 32]);
        b.push(32);
        b.extend_from_slice(&[0xCD; 32]);
        b.extend_from_slice(&[0, 4, 0x13, 0x01, 0x13, 0x02]);
        b.extend_from_slice(&[1, 0]);
        if let Some(exts) = exts {
            let all: Vec<u8> = exts.concat();
            b.extend_from_slice(&be16(all.len()));
            b.extend_from_slice(&all);
        }
        b
    }

    fn hello_with(exts: &[Vec<u8>]) -> Vec<u8> {
        record(22, &handshake(1, &hello_body(Some(exts))))
    }

    fn sni_hello(name: &[u8]) -> Vec<u8> {
        hello_with(&[
            ext(10, &[0, 2, 0, 29]),
            ext(0, &sni_data(&[(0, name)])),
            ext(16, b"\x00\x03\x02h2"),
        ])
    }

    fn sni(name: &str) -> Result<Hello, TlsError> {
        Ok(Hello::ClientHello {
            sni: Some(name.into()),
        })
    }

    #[test]
    fn captured_curl_hello() {
        let raw = unhex(CURL_HELLO);
        assert_eq!(raw.len(), 517);
        assert_eq!(client_hello_sni(&raw), sni("www.example.org"));
        for cut in 0..raw.len() {
            assert_eq!(client_hello_sni(&raw[..cut]), Ok(Hello::NeedMore), "prefix {cut}");
        }
        // Application data after the hello is not looked at.
        let mut more = raw.clone();
        more.extend_from_slice(&record(23, b"early"));
        assert_eq!(client_hello_sni(&more), sni("www.example.org"));
    }

    #[test]
    fn names_are_returned_as_sent() {
        assert_eq!(client_hello_sni(&sni_hello(b"Example.COM.")), sni("Example.COM."));
        assert_eq!(client_hello_sni(&sni_hello(b"a b%\x7f")), sni("a b%\x7f"));
    }

    #[test]
    fn no_server_name() {
        let none = Ok(Hello::ClientHello { sni: None });
        assert_eq!(client_hello_sni(&hello_with(&[])), none);
        assert_eq!(client_hello_sni(&hello_with(&[ext(43, &[2, 3, 4])])), none);
        let no_block = record(22, &handshake(1, &hello_body(None)));
        assert_eq!(client_hello_sni(&no_block), none);
    }

    #[test]
    fn fragmented_over_records() {
        let msg = handshake(
            1,
            &hello_body(Some(&[ext(0, &sni_data(&[(0, b"split.example")]))])),
        );
        // Split inside the handshake header, and in three pieces.
        for cuts in [vec![2], vec![40, 41], vec![msg.len() - 1]] {
            let mut raw = Vec::new();
            let mut from = 0;
            for &c in cuts.iter().chain([msg.len()].iter()) {
                raw.extend_from_slice(&record(22, &msg[from..c]));
                from = c;
            }
            assert_eq!(client_hello_sni(&raw), sni("split.example"), "{cuts:?}");
            for cut in 0..raw.len() {
                assert_eq!(
                    client_hello_sni(&raw[..cut]),
                    Ok(Hello::NeedMore),
                    "{cuts:?} {cut}"
                );
            }
        }
        // A non-handshake record in between.
        let mut raw = record(22, &msg[..10]);
        raw.extend_from_slice(&record(23, &msg[10..]));
        assert_eq!(client_hello_sni(&raw), Err(TlsError::NotHandshakeRecord(23)));
        let mut raw = record(22, &msg[..10]);
        raw.extend_from_slice(&[22, 2, 0, 1, 0]);
        assert_eq!(client_hello_sni(&raw), Err(TlsError::RecordVersion(2)));
    }

    #[test]
    fn not_tls() {
        for raw in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"\x16\x02\x00",
            b"\x17\x03\x03\x00\x01x",
            b"\x00",
        ] {
            assert_eq!(client_hello_sni(raw), Ok(Hello::NotTls), "{raw:?}");
        }
        assert_eq!(client_hello_sni(b""), Ok(Hello::NeedMore));
        assert_eq!(client_hello_sni(b"\x16"), Ok(Hello::NeedMore));
    }

    #[test]
    fn record_errors() {
        assert_eq!(client_hello_sni(&[22, 3, 1, 0, 0]), Err(TlsError::EmptyRecord));
        assert_eq!(
            client_hello_sni(&[22, 3, 1, 0x40, 1]),
            Err(TlsError::RecordTooLong(0x4001))
        );
        assert_eq!(
            client_hello_sni(&record(22, &handshake(2, &[0; 10]))),
            Err(TlsError::NotClientHello(2))
        );
        // Judged on its first byte.
        assert_eq!(
            client_hello_sni(&[22, 3, 1, 0, 9, 11]),
            Err(TlsError::NotClientHello(11))
        );
    }

    #[test]
    fn size_limit() {
        // A handshake length that cannot fit is refused as soon as its header arrives.
        let big = MAX_HELLO - RECORD_HEADER - HANDSHAKE_HEADER + 1;
        let n = u32::try_from(big).unwrap().to_be_bytes();
        assert_eq!(
            client_hello_sni(&[22, 3, 1, 0, 4, 1, n[1], n[2], n[3]]),
            Err(TlsError::TooLarge { limit: MAX_HELLO })
        );
        // One that fits in a single record's worth of header but whose 1-byte records overflow.
        let hs = handshake(1, &vec![0u8; 9000]);
        let mut raw = Vec::new();
        for b in &hs {
            raw.extend_from_slice(&record(22, &[*b]));
        }
        assert!(raw.len() > MAX_HELLO);
        assert_eq!(
            client_hello_sni(&raw),
            Err(TlsError::TooLarge { limit: MAX_HELLO })
        );
        assert_eq!(client_hello_sni(&raw[..MAX_HELLO - 1]), Ok(Hello::NeedMore));
        // The largest acceptable hello: two full records of header + padding.
        let pad = MAX_HELLO - 2 * RECORD_HEADER - HANDSHAKE_HEADER - hello_body(Some(&[])).len() - 4;
        let msg = handshake(1, &hello_body(Some(&[ext(21, &vec![0; pad])])));
        let mut raw = record(22, &msg[..MAX_FRAGMENT]);
        raw.extend_from_slice(&record(22, &msg[MAX_FRAGMENT..]));
        assert_eq!(raw.len(), MAX_HELLO);
        assert_eq!(client_hello_sni(&raw), Ok(Hello::ClientHello { sni: None }));
    }

    #[test]
    fn hello_errors() {
        let body = hello_body(Some(&[ext(0, &sni_data(&[(0, b"x")]))]));
        let with_body = |b: &[u8]| client_hello_sni(&record(22, &handshake(1, b)));
        // Truncate at every field boundary.
        for (len, field) in [
            (1, "legacy_version"),
            (20, "random"),
            (34, "legacy_session_id"),
            (40, "legacy_session_id"),
            (68, "cipher_suites"),
            (71, "cipher_suites"),
            (73, "legacy_compression_methods"),
            (76, "extensions"),
            (78, "extensions"),
        ] {
            assert_eq!(with_body(&body[..len]), Err(TlsError::Truncated(field)), "{len}");
        }
        let mut trailing = body.clone();
        trailing.push(0);
        assert_eq!(with_body(&trailing), Err(TlsError::Trailing("extensions")));

        let mut long_sid = body.clone();
        long_sid[34] = 33;
        assert_eq!(with_body(&long_sid), Err(TlsError::SessionIdTooLong(33)));
        let mut odd = hello_body(None);
        odd.splice(67..73, [0, 3, 0x13, 0x01, 0x13]);
        assert_eq!(with_body(&odd), Err(TlsError::CipherSuites(3)));
        let mut none = hello_body(None);
        none.splice(67..73, [0, 0]);
        assert_eq!(with_body(&none), Err(TlsError::CipherSuites(0)));
        let mut no_comp = hello_body(None);
        no_comp.splice(73..75, [0]);
        assert_eq!(with_body(&no_comp), Err(TlsError::NoCompression));

        let ext_cases: Vec<(Vec<Vec<u8>>, TlsError)> = vec![
            (vec![vec![0]], TlsError::Truncated("extension_type")),
            (vec![vec![0, 0, 0]], TlsError::Truncated("extension_data")),
            (vec![vec![0, 0, 0, 5, 0]], TlsError::Truncated("extension_data")),
            (
                vec![ext(0, &sni_data(&[(0, b"a")])), ext(0, &sni_data(&[(0, b"a")]))],
                TlsError::DuplicateServerName,
            ),
            (vec![ext(0, &[])], TlsError::Truncated("server_name_list")),
            (vec![ext(0, &[0, 5, 0])], TlsError::Truncated("server_name_list")),
            (
                vec![ext(0, &[sni_data(&[(0, b"a")]), vec![0]].concat())],
                TlsError::Trailing("server_name_list"),
            ),
            (vec![ext(0, &sni_data(&[]))], TlsError::ServerNameCount(0)),
            (
                vec![ext(0, &sni_data(&[(0, b"a"), (0, b"b")]))],
                TlsError::ServerNameCount(2),
            ),
            (vec![ext(0, &sni_data(&[(1, b"a")]))], TlsError::ServerNameType(1)),
            (vec![ext(0, &[0, 1, 0])], TlsError::Truncated("host_name")),
            (
                vec![ext(0, &[0, 4, 0, 0, 5, 0])],
                TlsError::Truncated("host_name"),
            ),
            (vec![ext(0, &sni_data(&[(0, b"")]))], TlsError::EmptyServerName),
            (
                vec![ext(0, &sni_data(&[(0, b"a\0b")]))],
                TlsError::ServerNameByte(0),
            ),
            (
                vec![ext(0, &sni_data(&[(0, "é".as_bytes())]))],
                TlsError::ServerNameByte(0xc3),
            ),
        ];
        for (exts, want) in ext_cases {
            let what = want.to_string();
            assert_eq!(client_hello_sni(&hello_with(&exts)), Err(want), "{what}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = client_hello_sni(&buf);
        }

        #[test]
        fn never_panics_on_hello_shaped_bytes(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = client_hello_sni(&record(22, &handshake(1, &body)));
            let _ = client_hello_sni(&hello_with(&[body]));
        }

        #[test]
        fn finds_the_name_in_any_fragmentation(
            name in "[!-~]{1,255}",
            before in proptest::collection::vec((any::<u16>().prop_filter("not sni", |k| *k != 0),
                proptest::collection::vec(any::<u8>(), 0..40)), 0..4),
            after in proptest::collection::vec((1u16..0xffff, proptest::collection::vec(any::<u8>(), 0..40)), 0..4),
            piece in 1usize..200,
        ) {
            let mut exts: Vec<Vec<u8>> = before.iter().map(|(k, d)| ext(*k, d)).collect();
            exts.push(ext(0, &sni_data(&[(0, name.as_bytes())])));
            exts.extend(after.iter().map(|(k, d)| ext(*k, d)));
            let msg = handshake(1, &hello_body(Some(&exts)));
            let raw: Vec<u8> = msg.chunks(piece).flat_map(|c| record(22, c)).collect();
            prop_assert_eq!(client_hello_sni(&raw), sni(&name));
        }
    }
}
