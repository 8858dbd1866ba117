//! Fuzz target: arbitrary bytes as boot arguments (a kernel command line, and argv
//! split at NUL bytes) through `split`, `ArgParser`, a few typed options, `finish`
//! and `--help`; must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    oasis_bootargs::fuzzing::args(data);
});
