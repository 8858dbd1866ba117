//! Runs the fuzz targets' bodies on stable: every seed-corpus file, then a few
//! thousand deterministic mutations of them (xorshift PRNG, no extra crates).

use std::path::Path;

use oasis_dns::fuzzing;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files
        .iter()
        .map(|p| std::fs::read(p).expect("seed"))
        .collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

fn mutate(rng: &mut XorShift, seed: &[u8], tokens: &[&[u8]]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            2 => v.truncate(at),
            3 => {
                let t = tokens[rng.below(tokens.len())];
                v.splice(at..at, t.iter().copied());
            }
            4 if !v.is_empty() => {
                let end = (at + rng.below(16)).min(v.len());
                v.drain(at.min(end)..end);
            }
            _ => {
                let i = rng.below(v.len() + 1);
                v.insert(i.min(v.len()), rng.next() as u8);
            }
        }
    }
    v
}

#[test]
fn message_corpus_and_mutations() {
    let catalog = fuzzing::example_catalog();
    assert!(catalog.zones().count() == 1, "example zone must load");
    let seeds = seeds("message");
    for s in &seeds {
        fuzzing::message(&catalog, s);
    }
    let tokens: &[&[u8]] = &[
        &[0xc0, 0x0c],
        &[0xc0, 0xff],
        &[0x3f],
        &[0, 41],
        &[0xff, 0xff],
        &[0],
    ];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for i in 0..4000 {
        let input = mutate(&mut rng, &seeds[i % seeds.len()], tokens);
        fuzzing::message(&catalog, &input);
    }
}

#[test]
fn zone_corpus_and_mutations() {
    let seeds = seeds("zone");
    for s in &seeds {
        fuzzing::zone(s);
    }
    let tokens: &[&[u8]] = &[
        b"(",
        b")",
        b"\"",
        b"\\",
        b"\\#",
        b";",
        b"\n",
        b" ",
        b"$ORIGIN ",
        b"$TTL ",
        b"@",
        b"*.",
        b"\\255",
        b"CNAME ",
        b"NS ",
        b"TYPE65535 ",
        b"1w2d",
        b"..",
    ];
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    for i in 0..3000 {
        let input = mutate(&mut rng, &seeds[i % seeds.len()], tokens);
        fuzzing::zone(&input);
    }
}
