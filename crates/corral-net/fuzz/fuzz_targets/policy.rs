//! Fuzzes the egress policy: allow/deny/allow_cidrs entries and the decisions on targets (see `corral_net_fuzz::policy`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| corral_net_fuzz::policy(data));
