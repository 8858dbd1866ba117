//! Fuzzes kv's request handling: HTTP bytes → operations → answers (see `kv::fuzzing`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kv::fuzzing::requests(data);
});
