//! Fuzz target: walk arbitrary bytes as a tar archive; must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for entry in oasis_tar::entries(data) {
        match entry {
            Ok(e) => {
                let body = e.data(data).expect("entries checks that data is in bounds");
                assert_eq!(body.len() as u64, e.size);
            }
            Err(_) => break,
        }
    }
});
