//! Stable-Rust stand-in for the cargo-fuzz targets: replays every seed-corpus file and a
//! few thousand deterministic mutations of them through the same code paths
//! (`oasis_http::fuzzing`), asserting no panic and the targets' own invariants.

use std::fs;
use std::path::Path;

use oasis_http::StaticSite;
use oasis_http::fuzzing;

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

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = rng.next() as u8;
            }
            1 if !data.is_empty() => {
                let end = (at + rng.below(16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            2 => {
                let tok = INTERESTING[rng.below(INTERESTING.len())];
                data.splice(at..at, tok.iter().copied());
            }
            3 if !data.is_empty() => {
                let start = rng.below(data.len());
                let end = (start + rng.below(64)).min(data.len());
                let copy: Vec<u8> = data[start..end].to_vec();
                data.splice(at..at, copy);
            }
            4 => data.truncate(at),
            _ => {
                let n = rng.below(8);
                data.splice(at..at, (0..n).map(|_| rng.next() as u8));
            }
        }
    }
    data.truncate(8192);
    data
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|p| fs::read(p).expect("seed")).collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

fn site() -> StaticSite<'static> {
    let pack: &'static [u8] = Vec::leak(fuzzing::sample_pack());
    StaticSite::parse(pack).expect("sample pack is valid")
}

fn replay(target: &str, iterations: usize, mut run: impl FnMut(&[u8])) {
    let seeds = seeds(target);
    for seed in &seeds {
        run(seed);
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ target.len() as u64);
    for _ in 0..iterations {
        let seed = &seeds[rng.below(seeds.len())];
        run(&mutate(&mut rng, seed));
    }
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
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let len = rng.below(600);
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        fuzzing::connection(&data, &mut site);
        fuzzing::conditional(&data, &mut site);
        fuzzing::pack(&data);
    }
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
