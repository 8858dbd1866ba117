//! Fuzz target: arbitrary bytes as a certificate, a key, or both (PEM or DER); must
//! never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    oasis_tls::fuzzing::certificate(data);
});
