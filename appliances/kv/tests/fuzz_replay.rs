//! Stable-Rust stand-in for the `requests` cargo-fuzz target: replays every seed in
//! `fuzz/corpus/requests/` and a few thousand deterministic mutations of them
//! through `kv::fuzzing::requests`, which asserts the handler protocol's invariants.

use oasis_testkit::corpus::{self, Replay};

const INTERESTING: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"%",
    b"%0",
    b"%ff",
    b"%2F",
    b"/kv/",
    b"?prefix=",
    b"&",
    b"\0",
    b"Content-Length: 99999999\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"PUT ",
    b"DELETE ",
    b"POST /shutdown ",
    b"/kv/?prefix=%",
    b"\xff\xfe",
];

#[test]
fn seed_corpus_and_mutations() {
    let seeds = corpus::seeds(env!("CARGO_MANIFEST_DIR"), "requests");
    assert!(seeds.len() >= 4, "seed corpus missing");
    let replay = Replay {
        rng_seed: 0x6b76_0001,
        mutations: 4000,
        tokens: INTERESTING,
        noise: 50,
        noise_len: 5000,
        ..Replay::default()
    };
    replay.run(&seeds, kv::fuzzing::requests);
}
