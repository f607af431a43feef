//! SOCKS5 (RFC 1928) messages a sandboxed client sends to the proxy, parsed sans-I/O.
//!
//! Accepts the method-selection greeting (§3) and the request (§4); builds the reply (§6). Only
//! "no authentication required" (method `0x00`) is offered by the proxy; the caller picks it from
//! [`parse_greeting`]'s list or answers [`NO_ACCEPTABLE`]. Every command value is returned (the
//! caller answers [`rep::COMMAND_NOT_SUPPORTED`] for anything but [`CMD_CONNECT`]); domain names are
//! returned as raw bytes for the caller's strict canonicalisation (remote resolution: the sandbox
//! never resolves names itself).
//!
//! Bounded by construction: a greeting is at most 2 + 255 bytes, a request at most 4 + 1 + 255 + 2.
//! A field is checked as soon as its byte has arrived, so a bad version fails on the first byte.
//! `Ok(None)` means "read more"; the returned length is what the message consumed.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The SOCKS protocol version byte (RFC 1928 §3).
pub const VERSION: u8 = 5;
/// Method "no authentication required" (RFC 1928 §3).
pub const NO_AUTH: u8 = 0;
/// Method reply "no acceptable methods": the client must close (RFC 1928 §3).
pub const NO_ACCEPTABLE: u8 = 0xFF;
/// The `CONNECT` command (RFC 1928 §4); `BIND` (2) and `UDP ASSOCIATE` (3) are refused by the caller.
pub const CMD_CONNECT: u8 = 1;

/// Address type IPv4, 4 bytes (RFC 1928 §5).
const ATYP_V4: u8 = 1;
/// Address type domain name, one length byte then the name (RFC 1928 §5).
const ATYP_DOMAIN: u8 = 3;
/// Address type IPv6, 16 bytes (RFC 1928 §5).
const ATYP_V6: u8 = 4;

/// Reply codes, the `REP` field (RFC 1928 §6).
pub mod rep {
    /// Succeeded.
    pub const SUCCEEDED: u8 = 0;
    /// General SOCKS server failure.
    pub const GENERAL_FAILURE: u8 = 1;
    /// Connection not allowed by ruleset.
    pub const NOT_ALLOWED: u8 = 2;
    /// Network unreachable.
    pub const NETWORK_UNREACHABLE: u8 = 3;
    /// Host unreachable.
    pub const HOST_UNREACHABLE: u8 = 4;
    /// Connection refused.
    pub const CONNECTION_REFUSED: u8 = 5;
    /// TTL expired.
    pub const TTL_EXPIRED: u8 = 6;
    /// Command not supported.
    pub const COMMAND_NOT_SUPPORTED: u8 = 7;
    /// Address type not supported.
    pub const ADDRESS_TYPE_NOT_SUPPORTED: u8 = 8;
}

/// What is wrong with a SOCKS5 message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SocksError {
    /// The version byte is not 5.
    #[error("SOCKS version {0} is not 5")]
    BadVersion(u8),
    /// A greeting that offers no method (`NMETHODS` is 0; RFC 1928 §3 says 1 to 255).
    #[error("SOCKS5 greeting offers no authentication method")]
    NoMethods,
    /// The reserved byte of a request is not 0.
    #[error("SOCKS5 request reserved byte is 0x{0:02x}, not 0")]
    Reserved(u8),
    /// An address type other than 1 (IPv4), 3 (domain), 4 (IPv6).
    #[error("SOCKS5 address type {0} is not supported (1, 3 or 4)")]
    AddressType(u8),
    /// A domain-name address of length 0.
    #[error("SOCKS5 request names an empty domain")]
    EmptyDomain,
}

impl SocksError {
    /// The `REP` code to answer this error with before closing (RFC 1928 §6).
    pub fn reply_code(&self) -> u8 {
        match self {
            SocksError::AddressType(_) => rep::ADDRESS_TYPE_NOT_SUPPORTED,
            SocksError::BadVersion(_)
            | SocksError::NoMethods
            | SocksError::Reserved(_)
            | SocksError::EmptyDomain => rep::GENERAL_FAILURE,
        }
    }
}

/// Parses the greeting `VER NMETHODS METHODS…` (RFC 1928 §3).
///
/// Returns the offered methods and the bytes consumed, or `Ok(None)` to read more.
pub fn parse_greeting(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, SocksError> {
    let Some(&ver) = buf.first() else {
        return Ok(None);
    };
    if ver != VERSION {
        return Err(SocksError::BadVersion(ver));
    }
    let Some(&n) = buf.get(1) else {
        return Ok(None);
    };
    if n == 0 {
        return Err(SocksError::NoMethods);
    }
    let end = 2 + usize::from(n);
    Ok(buf.get(2..end).map(|methods| (methods.to_vec(), end)))
}

/// A request's destination address (RFC 1928 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocksAddr {
    /// A domain name, raw bytes as sent (1 to 255 of them), not yet checked.
    Domain(Vec<u8>),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address.
    V6(Ipv6Addr),
}

/// A parsed request `VER CMD RSV ATYP DST.ADDR DST.PORT` (RFC 1928 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocksRequest {
    /// The command, any value (only [`CMD_CONNECT`] is served).
    pub cmd: u8,
    /// The destination address.
    pub addr: SocksAddr,
    /// The destination port.
    pub port: u16,
    /// Bytes the request consumed.
    pub len: usize,
}

/// Parses a request, or `Ok(None)` to read more.
///
/// Errors: version not 5, reserved byte not 0, unknown address type (the error carries it: answer
/// with [`SocksError::reply_code`]), empty domain.
pub fn parse_request(buf: &[u8]) -> Result<Option<SocksRequest>, SocksError> {
    let Some(&ver) = buf.first() else {
        return Ok(None);
    };
    if ver != VERSION {
        return Err(SocksError::BadVersion(ver));
    }
    let Some(&cmd) = buf.get(1) else {
        return Ok(None);
    };
    let Some(&rsv) = buf.get(2) else {
        return Ok(None);
    };
    if rsv != 0 {
        return Err(SocksError::Reserved(rsv));
    }
    let Some(&atyp) = buf.get(3) else {
        return Ok(None);
    };
    // The address starts at byte 4; for a domain, after its length byte.
    let addr_len = match atyp {
        ATYP_V4 => 4,
        ATYP_V6 => 16,
        ATYP_DOMAIN => match buf.get(4) {
            None => return Ok(None),
            Some(0) => return Err(SocksError::EmptyDomain),
            Some(&n) => 1 + usize::from(n),
        },
        other => return Err(SocksError::AddressType(other)),
    };
    let port_at = 4 + addr_len;
    let len = port_at + 2;
    let (Some(addr), Some(&[hi, lo])) = (buf.get(4..port_at), buf.get(port_at..len)) else {
        return Ok(None);
    };
    // `addr` has exactly the length chosen above, so the conversions cannot fall back.
    let addr = match atyp {
        ATYP_V4 => SocksAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(addr).unwrap_or_default())),
        ATYP_V6 => SocksAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(addr).unwrap_or_default())),
        // ATYP_DOMAIN: skip the length byte.
        _ => SocksAddr::Domain(addr.get(1..).unwrap_or_default().to_vec()),
    };
    Ok(Some(SocksRequest {
        cmd,
        addr,
        port: u16::from_be_bytes([hi, lo]),
        len,
    }))
}

/// The reply `VER REP RSV ATYP BND.ADDR BND.PORT` (RFC 1928 §6) with `code` and a zero IPv4 bound
/// address: the proxy never tells the sandbox which host address it dialled from.
pub fn reply(code: u8) -> [u8; 10] {
    [VERSION, code, 0, ATYP_V4, 0, 0, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use proptest::prelude::*;

    fn encode(req: &SocksRequest) -> Vec<u8> {
        let mut out = vec![VERSION, req.cmd, 0];
        match &req.addr {
            SocksAddr::V4(a) => {
                out.push(ATYP_V4);
                out.extend_from_slice(&a.octets());
            }
            SocksAddr::V6(a) => {
                out.push(ATYP_V6);
                out.extend_from_slice(&a.octets());
            }
            SocksAddr::Domain(d) => {
                out.push(ATYP_DOMAIN);
                out.push(u8::try_from(d.len()).unwrap());
                out.extend_from_slice(d);
            }
        }
        out.extend_from_slice(&req.port.to_be_bytes());
        out
    }

    #[test]
    fn greeting() {
        assert_eq!(parse_greeting(&[5, 2, 0, 2, 0xAA]), Ok(Some((vec![0, 2], 4))));
        let full = [5u8, 3, 0, 1, 2];
        for cut in 0..full.len() {
            assert_eq!(parse_greeting(&full[..cut]), Ok(None), "prefix {cut}");
        }
        assert_eq!(parse_greeting(&[4, 1, 0]), Err(SocksError::BadVersion(4)));
        assert_eq!(parse_greeting(&[0x16]), Err(SocksError::BadVersion(0x16)));
        assert_eq!(parse_greeting(&[5, 0]), Err(SocksError::NoMethods));
        let mut max = vec![5u8, 255];
        max.extend(0..=254u8);
        assert_eq!(parse_greeting(&max), Ok(Some(((0..=254u8).collect(), 257))));
    }

    #[test]
    fn requests() {
        let domain = b"\x05\x01\x00\x03\x0bexample.com\x01\xbbtrailing";
        assert_eq!(
            parse_request(domain),
            Ok(Some(SocksRequest {
                cmd: CMD_CONNECT,
                addr: SocksAddr::Domain(b"example.com".to_vec()),
                port: 443,
                len: 18,
            }))
        );
        assert_eq!(
            parse_request(&[5, 1, 0, 1, 10, 0, 0, 1, 0, 80]),
            Ok(Some(SocksRequest {
                cmd: 1,
                addr: SocksAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                port: 80,
                len: 10,
            }))
        );
        let mut v6 = vec![5u8, 3, 0, 4];
        v6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        v6.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(
            parse_request(&v6),
            Ok(Some(SocksRequest {
                cmd: 3,
                addr: SocksAddr::V6(Ipv6Addr::LOCALHOST),
                port: 65535,
                len: 22,
            }))
        );
    }

    #[test]
    fn request_prefixes_need_more() {
        for full in [
            &b"\x05\x01\x00\x03\x0bexample.com\x01\xbb"[..],
            &[5, 1, 0, 1, 10, 0, 0, 1, 0, 80],
            &[5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80],
        ] {
            for cut in 0..full.len() {
                assert_eq!(parse_request(&full[..cut]), Ok(None), "prefix {cut}");
            }
        }
    }

    #[test]
    fn request_errors() {
        let cases: [(&[u8], SocksError, u8); 5] = [
            (&[4, 1, 0, 1], SocksError::BadVersion(4), rep::GENERAL_FAILURE),
            (&[5, 1, 1], SocksError::Reserved(1), rep::GENERAL_FAILURE),
            (
                &[5, 1, 0, 2, 0, 0],
                SocksError::AddressType(2),
                rep::ADDRESS_TYPE_NOT_SUPPORTED,
            ),
            (
                &[5, 1, 0, 0],
                SocksError::AddressType(0),
                rep::ADDRESS_TYPE_NOT_SUPPORTED,
            ),
            (
                &[5, 1, 0, 3, 0, 0, 80],
                SocksError::EmptyDomain,
                rep::GENERAL_FAILURE,
            ),
        ];
        for (buf, want, code) in cases {
            let err = parse_request(buf).unwrap_err();
            assert_eq!(err.reply_code(), code);
            assert_eq!(err, want);
        }
        assert_eq!(
            SocksError::AddressType(2).to_string(),
            "SOCKS5 address type 2 is not supported (1, 3 or 4)"
        );
    }

    #[test]
    fn replies() {
        assert_eq!(reply(rep::SUCCEEDED), [5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(reply(rep::NOT_ALLOWED), [5, 2, 0, 1, 0, 0, 0, 0, 0, 0]);
    }

    fn arb_request() -> impl Strategy<Value = SocksRequest> {
        let addr = prop_oneof![
            proptest::collection::vec(any::<u8>(), 1..=255).prop_map(SocksAddr::Domain),
            any::<[u8; 4]>().prop_map(|o| SocksAddr::V4(Ipv4Addr::from(o))),
            any::<[u8; 16]>().prop_map(|o| SocksAddr::V6(Ipv6Addr::from(o))),
        ];
        (any::<u8>(), addr, any::<u16>()).prop_map(|(cmd, addr, port)| {
            let len = 6 + match &addr {
                SocksAddr::Domain(d) => 1 + d.len(),
                SocksAddr::V4(_) => 4,
                SocksAddr::V6(_) => 16,
            };
            SocksRequest { cmd, addr, port, len }
        })
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_greeting(&buf);
            let _ = parse_request(&buf);
        }

        #[test]
        fn roundtrip(req in arb_request(), tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut raw = encode(&req);
            raw.extend_from_slice(&tail);
            prop_assert_eq!(parse_request(&raw), Ok(Some(req)));
        }
    }
}
