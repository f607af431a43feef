//! Fuzzes the SOCKS5 greeting and request parsers.
#![no_main]

use corral_net::socks::{parse_greeting, parse_request, rep, reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((methods, consumed))) = parse_greeting(data) {
        assert!(consumed <= data.len() && consumed == methods.len() + 2);
    }
    match parse_request(data) {
        Ok(Some(req)) => {
            assert!(req.len <= data.len());
            let _ = reply(rep::SUCCEEDED);
        }
        Ok(None) => {}
        Err(e) => {
            let _ = reply(e.reply_code());
        }
    }
});
