//! Replays the fuzz seed corpus and a few thousand deterministic mutations of it
//! through the same code path as the `entries` fuzz target, on stable (the shared
//! `oasis-testkit` replay).

use oasis_testkit::corpus::{self, Replay};

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

fn seeds() -> Vec<corpus::Seed> {
    corpus::seeds(env!("CARGO_MANIFEST_DIR"), "entries")
}

/// Digits and header keywords: digits in numeric fields leave the checksum the
/// only defence.
const TOKENS: &[&[u8]] = &[
    b"0",
    b"7",
    b"9",
    b"00000000777",
    b"77777777777",
    b"\0",
    b"ustar\0",
    b"ustar  \0",
    b"././@LongLink",
    b" path=",
    b"\n",
];

#[test]
fn seeds_parse_as_expected() {
    let seeds = seeds();
    assert!(seeds.len() >= 4);
    for s in &seeds {
        let expected = match s.name.as_str() {
            "ustar.tar" => 4,
            "gnu-long.tar" => 2,
            "pax-long.tar" => 3,
            "empty.tar" => 0,
            _ => continue,
        };
        assert_eq!(run(&s.data), expected, "{}", s.name);
        assert!(oasis_tar::entries(&s.data).all(|e| e.is_ok()), "{}", s.name);
    }
}

#[test]
fn mutated_inputs_never_panic() {
    let replay = Replay {
        rng_seed: 0x5eed_1234_abcd_ef01,
        mutations: 4000,
        tokens: TOKENS,
        noise: 200,
        noise_len: 4096,
        ..Replay::default()
    };
    replay.run(&seeds(), |data| {
        run(data);
    });
}
