//! Runs the fuzz targets' bodies on stable: every seed-corpus file, then a few
//! thousand deterministic mutations of them (xorshift PRNG, no extra crates).

use std::path::Path;

use oasis_acpi::fuzzing;

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

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    let seeds: Vec<_> = files
        .iter()
        .map(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            (name.unwrap_or_default(), std::fs::read(p).expect("seed"))
        })
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

/// AML fragments that steer mutations into the interesting paths.
const TOKENS: &[&[u8]] = &[
    &[0x5B, 0x82],
    &[0x08, b'_', b'H', b'I', b'D', 0x0D],
    &[0x08, b'_', b'C', b'R', b'S', 0x11],
    &[0x14],
    &[0xA4, 0x11],
    &[0x86, 0x09, 0x00],
    &[0x89, 0x06, 0x00],
    &[0x79, 0x00],
    &[0xFF, 0xFF, 0xFF, 0xFF],
    &[0xC0],
    &[0x80],
    b"LNRO0005\0",
    b"RSD PTR ",
];

#[test]
fn aml_seeds_yield_devices() {
    for (name, data) in seeds("aml") {
        fuzzing::aml(&data);
        let n = oasis_acpi::virtio_mmio_devices(&data).count();
        let want = match name.as_str() {
            "microvm-dsdt.aml" | "microvm-dsdt-body.aml" => 2,
            "firecracker-style.aml" | "method-crs-irq.aml" => 1,
            _ => continue,
        };
        assert_eq!(n, want, "{name}");
    }
}

#[test]
fn table_seeds_discover_devices() {
    for (name, data) in seeds("tables") {
        fuzzing::tables(&data);
        if name.starts_with("microvm-") {
            let mem = fuzzing::SliceMem {
                base: 0,
                bytes: &data,
            };
            let t = oasis_acpi::discover(&mem, Some(0x10)).expect(&name);
            assert_eq!(t.virtio_mmio.len(), 2, "{name}");
            assert_eq!(t.io_apics.len(), 2, "{name}");
        }
    }
}

#[test]
fn aml_corpus_and_mutations() {
    let seeds = seeds("aml");
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for i in 0..6000 {
        let input = mutate(&mut rng, &seeds[i % seeds.len()].1, TOKENS);
        fuzzing::aml(&input);
    }
}

#[test]
fn tables_corpus_and_mutations() {
    let seeds = seeds("tables");
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    for i in 0..6000 {
        let input = mutate(&mut rng, &seeds[i % seeds.len()].1, TOKENS);
        fuzzing::tables(&input);
    }
}
