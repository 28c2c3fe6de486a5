//! Fuzzes the paForNode request parser with arbitrary bytes: it must never panic, never
//! allocate without bound, and refuse or accept every input with a typed answer.
#![no_main]

use incasso_node::message::parse_request;
use incasso_node::xml::Limits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_request(data, Limits::default());
    let _ = incasso_node::message::operation_of(data);
});
