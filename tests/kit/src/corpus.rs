//! Stable-Rust replay of cargo-fuzz targets: load a target's seed corpus
//! (`fuzz/corpus/TARGET/` under a crate), run the target's body on every seed, then
//! on deterministic mutations of them and on random noise. Runs in `cargo test` on
//! stable, so every parser's fuzz target is exercised on every change even where
//! nobody runs `cargo +nightly fuzz`.

use std::path::{Path, PathBuf};

use crate::Rng;

/// One seed-corpus file.
#[derive(Debug, Clone)]
pub struct Seed {
    /// The file name.
    pub name: String,
    /// Its bytes.
    pub data: Vec<u8>,
}

impl AsRef<[u8]> for Seed {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

/// `MANIFEST_DIR/fuzz/corpus/TARGET`: where a crate keeps `target`'s seeds. Pass
/// `env!("CARGO_MANIFEST_DIR")`.
pub fn dir(manifest_dir: &str, target: &str) -> PathBuf {
    Path::new(manifest_dir).join("fuzz/corpus").join(target)
}

/// Every file in `target`'s seed corpus (see [`dir`]), sorted by name. Panics,
/// naming the directory, when it is missing or empty: a replay without seeds
/// would pass without testing anything.
pub fn seeds(manifest_dir: &str, target: &str) -> Vec<Seed> {
    let dir = dir(manifest_dir, target);
    let mut seeds: Vec<Seed> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
        .map(|e| {
            let path = e
                .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
                .path();
            Seed {
                name: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                data: std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("seed {}: {e}", path.display())),
            }
        })
        .collect();
    seeds.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// A mutated copy of `seed`: one to six edits, each overwriting a byte, flipping a
/// bit, truncating, inserting one of `tokens` (format keywords that steer the
/// mutations into interesting paths; may be empty), deleting a run, duplicating a
/// run, or inserting random bytes. Never longer than `max_len`.
pub fn mutate(rng: &mut Rng, seed: &[u8], tokens: &[&[u8]], max_len: usize) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.index(6) {
        let at = rng.index(v.len() + 1);
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = rng.index(v.len());
                v[i] = rng.byte();
            }
            1 if !v.is_empty() => {
                let i = rng.index(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            2 => v.truncate(at),
            3 if !tokens.is_empty() => {
                let t = rng.pick(tokens);
                v.splice(at..at, t.iter().copied());
            }
            4 => {
                let end = (at + rng.index(16)).min(v.len());
                v.drain(at..end);
            }
            5 if !v.is_empty() => {
                let start = rng.index(v.len());
                let end = (start + rng.index(64)).min(v.len());
                let run = v[start..end].to_vec();
                v.splice(at..at, run);
            }
            _ => {
                let n = rng.index(8);
                let bytes = rng.bytes(n);
                v.splice(at..at, bytes);
            }
        }
    }
    v.truncate(max_len);
    v
}

/// How [`Replay::run`] exercises a fuzz target beyond its seeds.
#[derive(Debug, Clone, Copy)]
pub struct Replay<'a> {
    /// Seed of the [`Rng`] behind mutations and noise: the same seed, the same run.
    pub rng_seed: u64,
    /// How many mutated seeds to run (seed `i % seeds.len()` for the `i`-th).
    pub mutations: usize,
    /// Tokens for [`mutate`] to insert.
    pub tokens: &'a [&'a [u8]],
    /// How many purely random inputs to run, each up to `noise_len` bytes.
    pub noise: usize,
    /// The longest random input.
    pub noise_len: usize,
    /// The longest mutated input.
    pub max_len: usize,
}

impl Default for Replay<'_> {
    fn default() -> Self {
        Replay {
            rng_seed: 0x9E37_79B9_7F4A_7C15,
            mutations: 3000,
            tokens: &[],
            noise: 0,
            noise_len: 600,
            max_len: 64 * 1024,
        }
    }
}

impl Replay<'_> {
    /// Runs `target` on every seed, then on [`Replay::mutations`] mutations of them,
    /// then on [`Replay::noise`] random inputs. `target` is the fuzz target's body:
    /// it panics on a bug.
    pub fn run<S: AsRef<[u8]>>(&self, seeds: &[S], mut target: impl FnMut(&[u8])) {
        for s in seeds {
            target(s.as_ref());
        }
        let mut rng = Rng::new(self.rng_seed);
        if !seeds.is_empty() {
            for i in 0..self.mutations {
                let seed = seeds[i % seeds.len()].as_ref();
                target(&mutate(&mut rng, seed, self.tokens, self.max_len));
            }
        }
        for _ in 0..self.noise {
            let len = rng.index(self.noise_len + 1);
            target(&rng.bytes(len));
        }
    }
}

/// `records` each prefixed with its length as a big-endian u16: the input format
/// of fuzz targets and helpers that take a sequence of frames or messages.
pub fn length_prefixed<R: AsRef<[u8]>>(records: &[R]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let r = r.as_ref();
        let len = u16::try_from(r.len())
            .unwrap_or_else(|_| panic!("record of {} bytes exceeds u16 framing", r.len()));
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_deterministic_and_bounded() {
        let (mut a, mut b) = (Rng::new(3), Rng::new(3));
        for _ in 0..500 {
            let x = mutate(&mut a, b"GET / HTTP/1.1\r\n\r\n", &[b"%", b"\r\n"], 40);
            assert_eq!(
                x,
                mutate(&mut b, b"GET / HTTP/1.1\r\n\r\n", &[b"%", b"\r\n"], 40)
            );
            assert!(x.len() <= 40);
        }
        // An empty seed still mutates without panicking.
        mutate(&mut a, b"", &[], 10);
    }

    #[test]
    fn replay_runs_seeds_mutations_and_noise() {
        let mut n = 0;
        let r = Replay {
            mutations: 10,
            noise: 5,
            ..Replay::default()
        };
        r.run(&[b"ab".to_vec(), b"cd".to_vec()], |_| n += 1);
        assert_eq!(n, 2 + 10 + 5);
    }

    #[test]
    fn length_prefixed_frames() {
        assert_eq!(
            length_prefixed(&[&b"ab"[..], &b""[..]]),
            [0, 2, b'a', b'b', 0, 0]
        );
    }
}
