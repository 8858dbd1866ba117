//! Fuzz target: the zone file parser (and indexing what it accepts).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    oasis_dns::fuzzing::zone(data);
});
