//! Arbitrary frames through the TCP retransmission/reset tracker (the harness the
//! stable replay test uses too).
#![no_main]

#[path = "../../tests/tcpstats_harness/mod.rs"]
mod tcpstats_harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| tcpstats_harness::run(data));
