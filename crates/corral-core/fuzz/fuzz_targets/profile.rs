//! Fuzzes the profile parser, the resolution over `default`, the project-file widening check and
//! the planner on what resolved (see `corral_core_fuzz::profile`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| corral_core_fuzz::profile(data));
