//! Fuzzes the SOCKS5 greeting and request parsers (see `corral_net_fuzz::socks`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| corral_net_fuzz::socks(data));
