//! Fuzzes the HTTP/1.x request head parser and what the proxy does with a parsed head (see `corral_net_fuzz::head`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| corral_net_fuzz::head(data));
