//! Fuzz target: scan arbitrary bytes as AML for devices and resource templates.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oasis_acpi::fuzzing::aml(data));
