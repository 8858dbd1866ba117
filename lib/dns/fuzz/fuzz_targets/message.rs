//! Fuzz target: the message parser and the answering engine on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    oasis_dns::fuzzing::message(data);
});
