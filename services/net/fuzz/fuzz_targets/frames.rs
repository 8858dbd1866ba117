//! Arbitrary frames into a `Stack` (the harness the stable replay test uses too).
#![no_main]

#[path = "../../tests/harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
