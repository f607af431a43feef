//! Fuzzes the DNS sink's query parser and its answers.
#![no_main]

use corral_net::dns::{formerr, parse_query, qtype_name, refused};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_query(data) {
        Ok(q) => {
            let answer = refused(data, &q);
            assert_eq!(answer.len(), q.question_end);
            assert_eq!(&answer[12..], &data[12..q.question_end]);
            assert!(q.name.bytes().all(|b| b.is_ascii_graphic()));
            let _ = qtype_name(q.qtype);
        }
        Err(_) => {
            if let Some(answer) = formerr(data) {
                assert_eq!(answer.len(), 12);
            }
        }
    }
});
