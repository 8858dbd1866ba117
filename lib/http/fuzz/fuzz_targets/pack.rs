//! Fuzzes the static-site pack validator and lookups.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    oasis_http::fuzzing::pack(data);
});
