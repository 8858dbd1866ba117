//! Fuzz target: mount arbitrary bytes as a LogStore image and as a TarStore image,
//! then read and write through whatever mounted; must never panic. The body lives
//! in `tests/harness/mod.rs`, shared with the stable replay test.
#![no_main]

#[path = "../../tests/harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() > 1 << 20 {
        return;
    }
    harness::run(data);
});
