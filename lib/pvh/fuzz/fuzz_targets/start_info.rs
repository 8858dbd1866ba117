//! Fuzz target: arbitrary bytes as guest memory holding `hvm_start_info` at 0; must
//! never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    oasis_pvh::fuzzing::start_info(data);
});
