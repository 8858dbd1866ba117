//! Stable-Rust stand-in for the `requests` cargo-fuzz target: replays every seed in
//! `fuzz/corpus/requests/` and a few thousand deterministic mutations of them
//! through `kv::fuzzing::requests`, which asserts the handler protocol's invariants.

use std::fs;
use std::path::Path;

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

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

fn seeds() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/requests");
    let mut out: Vec<Vec<u8>> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| fs::read(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    assert!(out.len() >= 4, "seed corpus missing");
    out
}

#[test]
fn seed_corpus_and_mutations() {
    let seeds = seeds();
    for s in &seeds {
        kv::fuzzing::requests(s);
    }
    let mut rng = Rng(0x6b76_0001);
    for _ in 0..4000 {
        let mut d = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(6) {
            let at = rng.below(d.len() + 1);
            match rng.below(4) {
                0 if !d.is_empty() => {
                    let i = rng.below(d.len());
                    d[i] = rng.next() as u8;
                }
                1 => {
                    let ins = INTERESTING[rng.below(INTERESTING.len())];
                    d.splice(at..at, ins.iter().copied());
                }
                2 if at < d.len() => {
                    let end = (at + 1 + rng.below(16)).min(d.len());
                    d.drain(at..end);
                }
                _ => {
                    let n = rng.below(8);
                    d.splice(at..at, (0..n).map(|_| rng.next() as u8));
                }
            }
        }
        kv::fuzzing::requests(&d);
    }
    // Pure noise too.
    for len in [0, 1, 2, 17, 300, 5000] {
        let d: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        kv::fuzzing::requests(&d);
    }
}
