//! Fuzzes the DNS sink's query parser and its answers (see `corral_net_fuzz::dns`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| corral_net_fuzz::dns(data));
