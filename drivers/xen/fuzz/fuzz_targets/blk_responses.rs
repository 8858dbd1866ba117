//! Fuzz target: `oasis_xen::fuzz_targets::blk_responses` must never panic or hang.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = oasis_xen::fuzz_targets::blk_responses(data);
});
