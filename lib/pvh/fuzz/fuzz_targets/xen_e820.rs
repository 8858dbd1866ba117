//! Fuzz target: arbitrary bytes as the count and buffer `XENMEM_memory_map` returns;
//! must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    oasis_pvh::fuzzing::xen_e820(data);
});
