//! Fuzzes the HTTP/1.x request head parser and what the proxy does with a parsed head.
#![no_main]

use corral_net::head::{
    body_framing, origin_request, parse_request_head, RequestTarget, MAX_HEAD, MAX_HEADERS,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(head)) = parse_request_head(data) else {
        return;
    };
    assert!(head.len <= data.len() && head.len <= MAX_HEAD);
    let framing = body_framing(&head);
    let RequestTarget::Absolute { path, authority, .. } = &head.target else {
        return;
    };
    let rebuilt = origin_request(&head, path, authority);
    // The rebuilt head is one the proxy itself would accept, with the same body framing: the
    // origin server cannot be made to see a different body length (request smuggling).
    let fields = head.headers.len() + 2;
    if rebuilt.len() <= MAX_HEAD && fields <= MAX_HEADERS {
        let again = parse_request_head(&rebuilt)
            .expect("rebuilt head parses")
            .expect("rebuilt head is complete");
        assert_eq!(again.len, rebuilt.len());
        assert_eq!(again.method, head.method);
        assert_eq!(again.target, RequestTarget::Origin(path.clone()));
        if let Ok(framing) = framing {
            assert_eq!(body_framing(&again), Ok(framing));
        }
    }
});
