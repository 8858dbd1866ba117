//! Runs the fuzz targets' bodies on stable: every seed-corpus file, then a few
//! thousand deterministic mutations of them (the shared `oasis-testkit` replay).

use oasis_acpi::fuzzing;
use oasis_testkit::corpus::{self, Replay};

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

fn seeds(target: &str) -> Vec<corpus::Seed> {
    corpus::seeds(env!("CARGO_MANIFEST_DIR"), target)
}

#[test]
fn aml_seeds_yield_devices() {
    for s in seeds("aml") {
        fuzzing::aml(&s.data);
        let n = oasis_acpi::virtio_mmio_devices(&s.data).count();
        let want = match s.name.as_str() {
            "microvm-dsdt.aml" | "microvm-dsdt-body.aml" => 2,
            "firecracker-style.aml" | "method-crs-irq.aml" => 1,
            _ => continue,
        };
        assert_eq!(n, want, "{}", s.name);
    }
}

#[test]
fn table_seeds_discover_devices() {
    for s in seeds("tables") {
        fuzzing::tables(&s.data);
        if s.name.starts_with("microvm-") {
            let mem = fuzzing::SliceMem {
                base: 0,
                bytes: &s.data,
            };
            let t = oasis_acpi::discover(&mem, Some(0x10)).expect(&s.name);
            assert_eq!(t.virtio_mmio.len(), 2, "{}", s.name);
            assert_eq!(t.io_apics.len(), 2, "{}", s.name);
        }
    }
}

#[test]
fn aml_corpus_and_mutations() {
    let replay = Replay {
        mutations: 6000,
        tokens: TOKENS,
        noise: 500,
        ..Replay::default()
    };
    replay.run(&seeds("aml"), fuzzing::aml);
}

#[test]
fn tables_corpus_and_mutations() {
    let replay = Replay {
        rng_seed: 0x2545_F491_4F6C_DD1D,
        mutations: 6000,
        tokens: TOKENS,
        noise: 500,
        ..Replay::default()
    };
    replay.run(&seeds("tables"), fuzzing::tables);
}
