//! Fuzzes host canonicalisation: CONNECT targets, Host fields, SOCKS names, IP literal forms (see `corral_net_fuzz::host`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| corral_net_fuzz::host(data));
