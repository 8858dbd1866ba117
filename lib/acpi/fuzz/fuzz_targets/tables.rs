//! Fuzz target: walk arbitrary bytes as physical memory holding ACPI tables.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oasis_acpi::fuzzing::tables(data));
