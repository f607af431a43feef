//! Fuzzes the env-file parser and the secret classifier and mask (see `corral_core_fuzz::envfile`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| corral_core_fuzz::envfile(data));
