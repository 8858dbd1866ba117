//! Fuzz target: arbitrary bytes from a TLS client (the first byte sets the read
//! size), through the handshake and reads; must never panic or hang.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = oasis_tls::fuzzing::client_bytes(data);
});
