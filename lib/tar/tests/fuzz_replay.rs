//! Replays the fuzz seed corpus and a few thousand deterministic mutations of it
//! through the same code path as the `entries` fuzz target, on stable.

use std::path::Path;

fn run(data: &[u8]) -> usize {
    let mut n = 0;
    for entry in oasis_tar::entries(data) {
        match entry {
            Ok(e) => {
                let body = e.data(data).expect("entries checks that data is in bounds");
                assert_eq!(body.len() as u64, e.size);
                n += 1;
            }
            Err(_) => break,
        }
    }
    n
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/entries");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn seeds_parse_as_expected() {
    let seeds = corpus();
    assert!(seeds.len() >= 4);
    for (name, data) in &seeds {
        let expected = match name.as_str() {
            "ustar.tar" => 4,
            "gnu-long.tar" => 2,
            "pax-long.tar" => 3,
            "empty.tar" => 0,
            _ => continue,
        };
        assert_eq!(run(data), expected, "{name}");
        assert!(oasis_tar::entries(data).all(|e| e.is_ok()), "{name}");
    }
}

#[test]
fn mutated_inputs_never_panic() {
    let seeds = corpus();
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for i in 0..4000 {
        let (_, seed) = &seeds[i % seeds.len()];
        let mut data = seed.clone();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(data.len());
            match rng.below(5) {
                0 => data[at] = rng.next() as u8,
                1 => data[at] ^= 1 << rng.below(8),
                2 => data.truncate(at),
                // Digits into numeric fields keep the checksum the only defence.
                3 => data[at] = b'0' + rng.below(10) as u8,
                _ => {
                    let n = rng.below(64);
                    data.splice(at..at, (0..n).map(|_| rng.next() as u8));
                }
            }
            if data.is_empty() {
                break;
            }
        }
        run(&data);
    }
    // Pure noise, including valid-looking zero runs.
    for len in [0, 1, 511, 512, 513, 1024, 4096] {
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        run(&data);
    }
}
