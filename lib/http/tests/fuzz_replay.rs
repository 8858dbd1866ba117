//! Stable-Rust stand-in for the cargo-fuzz targets: replays every seed-corpus file and a
//! few thousand deterministic mutations of them through the same code paths
//! (`oasis_http::fuzzing`), asserting no panic and the targets' own invariants.

use std::fs;
use std::path::Path;

use oasis_http::StaticSite;
use oasis_http::fuzzing;
use oasis_testkit::corpus::{self, Replay};

const INTERESTING: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"\n",
    b"\r",
    b"\0",
    b"%",
    b"%00",
    b"%2e%2e/",
    b"../",
    b"\\",
    b":",
    b";",
    b",",
    b"=",
    b"-",
    b"\"",
    b"*",
    b"W/",
    b"bytes=",
    b"gzip",
    b"q=0",
    b"chunked",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked\r\n",
    b"Connection: close\r\n",
    b"Host: a\r\n",
    b"HTTP/1.0",
    b"HTTP/1.1",
    b"HTTP/2.0",
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"ffffffffffffffff",
    b"99999999999999999999",
    b"0\r\n\r\n",
    b"\xff",
    b"\x80",
];

fn site() -> StaticSite<'static> {
    let pack: &'static [u8] = Vec::leak(fuzzing::sample_pack());
    StaticSite::parse(pack).expect("sample pack is valid")
}

/// Every seed of `target`, then `mutations` mutations of them (inputs capped at
/// 8 KiB, like the cargo-fuzz runs).
fn replay(target: &str, mutations: usize, run: impl FnMut(&[u8])) {
    let replay = Replay {
        rng_seed: 0x9E37_79B9_7F4A_7C15 ^ target.len() as u64,
        mutations,
        tokens: INTERESTING,
        max_len: 8192,
        ..Replay::default()
    };
    replay.run(&corpus::seeds(env!("CARGO_MANIFEST_DIR"), target), run);
}

#[test]
fn connection_corpus_and_mutations() {
    let mut site = site();
    replay("connection", 4000, |data| {
        fuzzing::connection(data, &mut site)
    });
}

#[test]
fn conditional_corpus_and_mutations() {
    let mut site = site();
    replay("conditional", 4000, |data| {
        fuzzing::conditional(data, &mut site)
    });
}

#[test]
fn pack_corpus_and_mutations() {
    replay("pack", 3000, fuzzing::pack);
}

#[test]
fn random_bytes_never_panic() {
    let mut site = site();
    let noise = Replay {
        rng_seed: 42,
        mutations: 0,
        noise: 2000,
        ..Replay::default()
    };
    noise.run(&[] as &[&[u8]], |data| {
        fuzzing::connection(data, &mut site);
        fuzzing::conditional(data, &mut site);
        fuzzing::pack(data);
    });
}

#[test]
fn sample_pack_seed_is_current() {
    // The pack seed is the sample pack; keep it in sync when the format changes.
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/pack/sample");
    assert_eq!(
        fs::read(&seed).ok(),
        Some(fuzzing::sample_pack()),
        "regenerate {}",
        seed.display()
    );
}

#[test]
#[ignore = "writes the pack seed; run with --ignored after a format change"]
fn write_pack_seed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/pack");
    fs::write(dir.join("sample"), fuzzing::sample_pack()).expect("write seed");
    let mut empty = oasis_http::pack::PackBuilder::new()
        .finish()
        .expect("empty pack");
    fs::write(dir.join("empty"), &empty).expect("write seed");
    empty.truncate(10);
    fs::write(dir.join("truncated"), &empty).expect("write seed");
}
