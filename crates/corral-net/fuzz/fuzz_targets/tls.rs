//! Fuzzes the TLS ClientHello server-name extractor.
#![no_main]

use corral_net::tls::{client_hello_sni, Hello};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Hello::ClientHello { sni: Some(name) }) = client_hello_sni(data) {
        assert!(!name.is_empty() && name.bytes().all(|b| b != 0 && b.is_ascii()));
    }
});
