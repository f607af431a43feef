//! Fuzzes the API gateway's upstream URL parser (see `corral_net_fuzz::upstream`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| corral_net_fuzz::upstream(data));
