//! Fuzz target: `oasis_virtio::fuzz_targets::pci_config` must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    oasis_virtio::fuzz_targets::pci_config(data);
});
