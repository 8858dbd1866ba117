//! Runs the fuzz targets' bodies on stable: every seed-corpus file, then a few
//! thousand deterministic mutations of them (the shared `oasis-testkit` replay).

use oasis_dns::fuzzing;
use oasis_testkit::corpus::{self, Replay};

#[test]
fn message_corpus_and_mutations() {
    let catalog = fuzzing::example_catalog();
    assert!(catalog.zones().count() == 1, "example zone must load");
    let tokens: &[&[u8]] = &[
        &[0xc0, 0x0c],
        &[0xc0, 0xff],
        &[0x3f],
        &[0, 41],
        &[0xff, 0xff],
        &[0],
    ];
    let replay = Replay {
        mutations: 4000,
        tokens,
        noise: 500,
        ..Replay::default()
    };
    replay.run(
        &corpus::seeds(env!("CARGO_MANIFEST_DIR"), "message"),
        |data| fuzzing::message(&catalog, data),
    );
}

#[test]
fn zone_corpus_and_mutations() {
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
    let replay = Replay {
        rng_seed: 0x2545_F491_4F6C_DD1D,
        mutations: 3000,
        tokens,
        ..Replay::default()
    };
    replay.run(
        &corpus::seeds(env!("CARGO_MANIFEST_DIR"), "zone"),
        fuzzing::zone,
    );
}
