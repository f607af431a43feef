//! Fuzzes the TLS ClientHello server-name extractor (see `corral_net_fuzz::tls`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| corral_net_fuzz::tls(data));
