//! Fuzz target: `oasis_virtio::fuzz_targets::net_rx` must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    oasis_virtio::fuzz_targets::net_rx(data);
});
