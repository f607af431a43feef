//! The DNS sink's side of a query: parse what the sandbox asked, answer `REFUSED`, sans-I/O.
//!
//! The sandbox's resolver is pointed at the sink so that a program which resolves names itself
//! fails fast and visibly (the proxies resolve remotely); the sink logs the question and refuses.
//!
//! Accepts a query message (RFC 1035 §4.1): a 12-byte header (§4.1.1) with QR = 0 and
//! QDCOUNT = 1, then one question (§4.1.2) whose name is uncompressed labels (§3.1, §4.1.4: a
//! pointer in the question is an error, as are the reserved label types 0b01/0b10) of at most 63
//! bytes each and at most 255 wire bytes in all. Answer, authority and additional sections (an
//! EDNS OPT record, say) are ignored, as are opcode and QCLASS.
//!
//! The name is rendered for logs like `dig` does, so that it is unambiguous and printable: labels
//! joined by `.`, no trailing dot, the root as `.`; bytes outside `[A-Za-z0-9_-]` escaped as
//! `\DDD` (decimal), a `.` inside a label as `\.`. Case is kept (no lowercasing).

/// Bytes of the DNS header (RFC 1035 §4.1.1).
const HEADER_LEN: usize = 12;
/// Most wire bytes of a name, length bytes and the root's zero included (RFC 1035 §3.1).
const MAX_NAME: usize = 255;
/// Flags byte 2: QR, set in a response.
const FLAG_QR: u8 = 0x80;
/// Flags byte 2: the 4-bit opcode.
const MASK_OPCODE: u8 = 0x78;
/// Flags byte 2: RD, recursion desired.
const FLAG_RD: u8 = 0x01;
/// RCODE format error (RFC 1035 §4.1.1).
const RCODE_FORMERR: u8 = 1;
/// RCODE refused (RFC 1035 §4.1.1).
const RCODE_REFUSED: u8 = 5;
/// The top two bits of a label length byte: `00` label, `11` pointer, `01`/`10` reserved.
const MASK_LABEL_TYPE: u8 = 0xC0;

/// The largest DNS-over-TCP frame the sink reads (RFC 1035 §4.2.2): a 2-byte length prefix and a
/// message of at most 512 bytes; a length prefix announcing more is refused.
pub const MAX_TCP_MESSAGE: usize = 512 + 2;

/// The question of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The message ID, echoed in the answer.
    pub id: u16,
    /// QNAME rendered as described in the module documentation.
    pub name: String,
    /// QTYPE (see [`qtype_name`]).
    pub qtype: u16,
    /// Offset just past QCLASS: `pkt[12..question_end]` is the question, echoed in the answer.
    pub question_end: usize,
}

/// What is wrong with a DNS query.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DnsError {
    /// Fewer bytes than a header.
    #[error("DNS message of {0} bytes is shorter than the 12-byte header")]
    Short(usize),
    /// QR is set: a response, not a query.
    #[error("DNS message is a response (QR=1), not a query")]
    NotAQuery,
    /// QDCOUNT is not 1.
    #[error("DNS query has QDCOUNT {0} (exactly 1 is accepted)")]
    QuestionCount(u16),
    /// The question ends early.
    #[error("DNS question is truncated in {0}")]
    Truncated(&'static str),
    /// A compression pointer in the question.
    #[error("DNS question name holds a compression pointer at byte {0}")]
    CompressionPointer(usize),
    /// A label length byte of the reserved types `01`/`10` (RFC 6891 §5 retired extended labels).
    #[error("DNS question name has a label length byte 0x{0:02x} of a reserved type")]
    LabelType(u8),
    /// A name longer than 255 wire bytes.
    #[error("DNS question name exceeds 255 bytes")]
    NameTooLong,
}

/// Parses a query's header and question.
pub fn parse_query(pkt: &[u8]) -> Result<Query, DnsError> {
    let Some(&[id_hi, id_lo, flags, _, qd_hi, qd_lo, ..]) = pkt.get(..HEADER_LEN) else {
        return Err(DnsError::Short(pkt.len()));
    };
    if flags & FLAG_QR != 0 {
        return Err(DnsError::NotAQuery);
    }
    let qdcount = u16::from_be_bytes([qd_hi, qd_lo]);
    if qdcount != 1 {
        return Err(DnsError::QuestionCount(qdcount));
    }
    let mut name = String::new();
    let mut pos = HEADER_LEN;
    loop {
        let Some(&len_byte) = pkt.get(pos) else {
            return Err(DnsError::Truncated("QNAME"));
        };
        match len_byte & MASK_LABEL_TYPE {
            0 => {}
            MASK_LABEL_TYPE => return Err(DnsError::CompressionPointer(pos)),
            _ => return Err(DnsError::LabelType(len_byte)),
        }
        let len = usize::from(len_byte);
        // Wire bytes so far with this label, plus the root's zero still to come.
        let root_to_come = usize::from(len != 0);
        if pos + 1 + len + root_to_come - HEADER_LEN > MAX_NAME {
            return Err(DnsError::NameTooLong);
        }
        if len == 0 {
            pos += 1;
            break;
        }
        let Some(label) = pkt.get(pos + 1..pos + 1 + len) else {
            return Err(DnsError::Truncated("QNAME"));
        };
        if pos != HEADER_LEN {
            name.push('.');
        }
        render_label(label, &mut name);
        pos += 1 + len;
    }
    if name.is_empty() {
        name.push('.');
    }
    let Some(&[t_hi, t_lo]) = pkt.get(pos..pos + 2) else {
        return Err(DnsError::Truncated("QTYPE"));
    };
    if pkt.get(pos + 2..pos + 4).is_none() {
        return Err(DnsError::Truncated("QCLASS"));
    }
    Ok(Query {
        id: u16::from_be_bytes([id_hi, id_lo]),
        name,
        qtype: u16::from_be_bytes([t_hi, t_lo]),
        question_end: pos + 4,
    })
}

/// Appends a label, escaped like `dig` (RFC 4343 §2.1 presentation format).
fn render_label(label: &[u8], out: &mut String) {
    for &b in label {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => out.push(char::from(b)),
            b'.' => out.push_str("\\."),
            _ => {
                out.push('\\');
                out.push(char::from(b'0' + b / 100));
                out.push(char::from(b'0' + b / 10 % 10));
                out.push(char::from(b'0' + b % 10));
            }
        }
    }
}

/// The answer header: `id`, QR = 1, opcode and RD copied from the query, AA = TC = RA = 0, `rcode`.
fn answer_header(pkt: &[u8], id: [u8; 2], rcode: u8, qdcount: u16) -> Vec<u8> {
    let flags = pkt.get(2).copied().unwrap_or(0);
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(&id);
    out.push(FLAG_QR | (flags & MASK_OPCODE) | (flags & FLAG_RD));
    out.push(rcode);
    out.extend_from_slice(&qdcount.to_be_bytes());
    out.extend_from_slice(&[0; 6]);
    out
}

/// The `REFUSED` answer to `q`, parsed from `pkt`: header with the same ID, QR = 1, opcode and RD
/// copied, AA = TC = RA = 0, RCODE = 5, QDCOUNT = 1, no records; then the question as sent.
///
/// `q` must come from [`parse_query`] on this `pkt`; otherwise the question is left out
/// (QDCOUNT = 0).
pub fn refused(pkt: &[u8], q: &Query) -> Vec<u8> {
    let question = pkt.get(HEADER_LEN..q.question_end).unwrap_or_default();
    let qdcount = u16::from(!question.is_empty());
    let mut out = answer_header(pkt, q.id.to_be_bytes(), RCODE_REFUSED, qdcount);
    out.extend_from_slice(question);
    out
}

/// The `FORMERR` answer to a query [`parse_query`] refused: same ID, QR = 1, opcode and RD
/// copied, RCODE = 1, all counts 0. `None` (drop it) when `pkt` is shorter than a header or is
/// itself a response (answering responses would let two sinks loop).
pub fn formerr(pkt: &[u8]) -> Option<Vec<u8>> {
    match pkt.get(..HEADER_LEN) {
        Some(&[id_hi, id_lo, flags, ..]) if flags & FLAG_QR == 0 => {
            Some(answer_header(pkt, [id_hi, id_lo], RCODE_FORMERR, 0))
        }
        _ => None,
    }
}

/// The mnemonic of a QTYPE (RFC 1035 §3.2.2, RFC 3596, RFC 2782, RFC 9460), else `TYPE<n>`
/// (RFC 3597 §5).
pub fn qtype_name(qtype: u16) -> String {
    let known = match qtype {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        64 => "SVCB",
        65 => "HTTPS",
        255 => "ANY",
        other => return format!("TYPE{other}"),
    };
    known.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use proptest::prelude::*;

    /// A query: header with `id`, `flags` (byte 2), QDCOUNT 1; then `labels`, QTYPE, QCLASS IN.
    fn query(id: u16, flags: u8, labels: &[&[u8]], qtype: u16) -> Vec<u8> {
        let mut out = id.to_be_bytes().to_vec();
        out.extend_from_slice(&[flags, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        for l in labels {
            out.push(u8::try_from(l.len()).unwrap());
            out.extend_from_slice(l);
        }
        out.push(0);
        out.extend_from_slice(&qtype.to_be_bytes());
        out.extend_from_slice(&[0, 1]);
        out
    }

    #[test]
    fn parses_a_query() {
        let mut pkt = query(0xBEEF, 0x01, &[b"www", b"Example", b"com"], 28);
        let end = pkt.len();
        // An EDNS OPT record in the additional section is ignored.
        pkt[11] = 1;
        pkt.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            parse_query(&pkt),
            Ok(Query {
                id: 0xBEEF,
                name: "www.Example.com".into(),
                qtype: 28,
                question_end: end,
            })
        );
    }

    #[test]
    fn renders_names_like_dig() {
        let name = |labels: &[&[u8]]| parse_query(&query(1, 0, labels, 1)).unwrap().name;
        assert_eq!(name(&[]), ".");
        assert_eq!(name(&[b"_dmarc", b"a-b"]), "_dmarc.a-b");
        assert_eq!(name(&[b"a.b", b"c"]), "a\\.b.c");
        assert_eq!(
            name(&[b"a b\0\\\xff\"", b"*"]),
            "a\\032b\\000\\092\\255\\034.\\042"
        );
    }

    #[test]
    fn errors() {
        let ok = query(7, 0, &[b"a"], 1);
        let with = |at: usize, b: u8| {
            let mut p = ok.clone();
            p[at] = b;
            p
        };
        let mut pointer = ok[..12].to_vec();
        pointer.extend_from_slice(&[1, b'a', 0xC0, 12, 0, 1, 0, 1]);
        let cases: Vec<(Vec<u8>, DnsError)> = vec![
            (vec![], DnsError::Short(0)),
            (ok[..11].to_vec(), DnsError::Short(11)),
            (with(2, 0x80), DnsError::NotAQuery),
            (with(5, 0), DnsError::QuestionCount(0)),
            (with(4, 1), DnsError::QuestionCount(257)),
            (ok[..12].to_vec(), DnsError::Truncated("QNAME")),
            (ok[..13].to_vec(), DnsError::Truncated("QNAME")),
            (ok[..15].to_vec(), DnsError::Truncated("QTYPE")),
            (ok[..17].to_vec(), DnsError::Truncated("QCLASS")),
            (ok[..18].to_vec(), DnsError::Truncated("QCLASS")),
            (with(12, 0xC0), DnsError::CompressionPointer(12)),
            (pointer, DnsError::CompressionPointer(14)),
            (with(12, 0x40), DnsError::LabelType(0x40)),
            (with(12, 0x81), DnsError::LabelType(0x81)),
        ];
        for (pkt, want) in cases {
            assert_eq!(parse_query(&pkt), Err(want), "{pkt:?}");
        }
        assert_eq!(
            DnsError::QuestionCount(2).to_string(),
            "DNS query has QDCOUNT 2 (exactly 1 is accepted)"
        );
    }

    #[test]
    fn name_length_limits() {
        let l63 = [b'x'; 63];
        let fits: [&[u8]; 4] = [&l63, &l63, &l63, &l63[..61]]; // 3*64 + 62 + 1 = 255
        let q = parse_query(&query(1, 0, &fits, 1)).unwrap();
        assert_eq!(q.name.len(), 3 * 64 + 61);
        let over: [&[u8]; 4] = [&l63, &l63, &l63, &l63[..62]]; // 256
        assert_eq!(parse_query(&query(1, 0, &over, 1)), Err(DnsError::NameTooLong));
        // Refused as soon as the label that cannot fit is announced, before its bytes arrive.
        let pkt = query(1, 0, &over, 1);
        assert_eq!(parse_query(&pkt[..12 + 193]), Err(DnsError::NameTooLong));
        // A 64-byte label is a reserved label type (0x40).
        let mut long = query(1, 0, &[&[b'y'; 63]], 1);
        long[12] = 64;
        assert_eq!(parse_query(&long), Err(DnsError::LabelType(64)));
    }

    #[test]
    fn refused_echoes_the_question() {
        // Opcode 2 (STATUS), RD and TC and AA set in the query: opcode and RD are copied.
        let pkt = query(0x1234, 0x17, &[b"evil", b"example"], 16);
        let mut with_extra = pkt.clone();
        with_extra.extend_from_slice(b"additional junk");
        let q = parse_query(&with_extra).unwrap();
        let mut want = vec![0x12, 0x34, 0x80 | 0x10 | 0x01, 5, 0, 1, 0, 0, 0, 0, 0, 0];
        want.extend_from_slice(&pkt[12..]);
        assert_eq!(refused(&with_extra, &q), want);
        // A Query from another packet: the question is left out.
        assert_eq!(
            refused(&pkt[..12], &q),
            vec![0x12, 0x34, 0x91, 5, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn formerr_answers_queries_only() {
        let mut pkt = vec![0xAB, 0xCD, 0x01, 0, 0, 2, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            formerr(&pkt),
            Some(vec![0xAB, 0xCD, 0x81, 1, 0, 0, 0, 0, 0, 0, 0, 0])
        );
        pkt[2] = 0x81;
        assert_eq!(formerr(&pkt), None);
        assert_eq!(formerr(&[0; 11]), None);
    }

    #[test]
    fn qtype_names() {
        let names: Vec<String> = [1, 2, 5, 6, 12, 15, 16, 28, 33, 64, 65, 255, 0, 99, 65535]
            .into_iter()
            .map(qtype_name)
            .collect();
        assert_eq!(
            names,
            [
                "A",
                "NS",
                "CNAME",
                "SOA",
                "PTR",
                "MX",
                "TXT",
                "AAAA",
                "SRV",
                "SVCB",
                "HTTPS",
                "ANY",
                "TYPE0",
                "TYPE99",
                "TYPE65535"
            ]
        );
    }

    /// Reverses the rendering: proves it is unambiguous.
    fn unrender(name: &str) -> Vec<Vec<u8>> {
        if name == "." {
            return vec![];
        }
        let b = name.as_bytes();
        let mut labels = vec![vec![]];
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'.' => labels.push(vec![]),
                b'\\' if b[i + 1] == b'.' => {
                    labels.last_mut().unwrap().push(b'.');
                    i += 1;
                }
                b'\\' => {
                    let n: u8 = name[i + 1..i + 4].parse().unwrap();
                    labels.last_mut().unwrap().push(n);
                    i += 3;
                }
                c => labels.last_mut().unwrap().push(c),
            }
            i += 1;
        }
        labels
    }

    fn arb_labels(bytes: impl Strategy<Value = u8> + Clone) -> impl Strategy<Value = Vec<Vec<u8>>> {
        proptest::collection::vec(proptest::collection::vec(bytes, 1..=63), 0..6)
            .prop_filter("fits 255", |ls| {
                ls.iter().map(|l| l.len() + 1).sum::<usize>() < MAX_NAME
            })
    }

    proptest! {
        #[test]
        fn never_panics(pkt in proptest::collection::vec(any::<u8>(), 0..300)) {
            match parse_query(&pkt) {
                Ok(q) => { let _ = refused(&pkt, &q); }
                Err(_) => { let _ = formerr(&pkt); }
            }
        }

        #[test]
        fn roundtrip(
            id in any::<u16>(),
            flags in any::<u8>().prop_map(|f| f & !FLAG_QR),
            labels in arb_labels(prop_oneof![
                proptest::char::range('a', 'z'), proptest::char::range('A', 'Z'),
                proptest::char::range('0', '9'), Just('-'), Just('_'),
            ].prop_map(|c| u8::try_from(c).unwrap())),
            qtype in any::<u16>(),
        ) {
            let refs: Vec<&[u8]> = labels.iter().map(Vec::as_slice).collect();
            let pkt = query(id, flags, &refs, qtype);
            let strs: Vec<String> = labels.iter().map(|l| String::from_utf8(l.clone()).unwrap()).collect();
            let name = if strs.is_empty() { ".".to_owned() } else { strs.join(".") };
            let q = parse_query(&pkt).unwrap();
            prop_assert_eq!(&q, &Query { id, name, qtype, question_end: pkt.len() });
            let answer = refused(&pkt, &q);
            prop_assert_eq!(&answer[..2], &id.to_be_bytes());
            prop_assert_eq!(answer[2], 0x80 | (flags & 0x79));
            prop_assert_eq!(&answer[3..12], &[5, 0, 1, 0, 0, 0, 0, 0, 0]);
            prop_assert_eq!(&answer[12..], &pkt[12..]);
        }

        #[test]
        fn rendering_is_unambiguous(labels in arb_labels(any::<u8>())) {
            let refs: Vec<&[u8]> = labels.iter().map(Vec::as_slice).collect();
            let q = parse_query(&query(9, 0, &refs, 1)).unwrap();
            prop_assert!(q.name.bytes().all(|b| b.is_ascii_graphic()));
            prop_assert_eq!(unrender(&q.name), labels);
        }
    }
}
