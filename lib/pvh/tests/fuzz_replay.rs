//! Replays the fuzz seed corpus and a few thousand deterministic mutations of it
//! through the same code path as the `start_info` fuzz target, on stable (the
//! shared `oasis-testkit` replay).

use oasis_testkit::corpus::{self, Replay};

fn seeds() -> Vec<corpus::Seed> {
    corpus::seeds(env!("CARGO_MANIFEST_DIR"), "start_info")
}

#[test]
fn seeds_parse_as_expected() {
    let seeds = seeds();
    assert!(seeds.len() >= 3);
    for s in &seeds {
        let mem = oasis_pvh::SliceMemory {
            base: 0,
            bytes: &s.data,
        };
        let got = oasis_pvh::BootInfo::read(&mem, 0, 4096);
        match s.name.as_str() {
            "qemu" => {
                let info = got.unwrap();
                assert_eq!(info.cmdline, "console=ttyS0 -- -p 8080");
                assert_eq!(info.memmap.len(), 3);
            }
            "version0" => assert_eq!(got, Err(oasis_pvh::PvhError::NoMemoryMap)),
            "truncated_map" => assert!(got.is_err(), "{}", s.name),
            _ => {}
        }
        oasis_pvh::fuzzing::start_info(&s.data);
    }
}

/// Small pointers and counts keep references inside the buffer.
const TOKENS: &[&[u8]] = &[&[0], &[1], &[8], &[0x40], &[0x80], &[0xff], &[0, 0, 0, 0]];

#[test]
fn mutated_inputs_never_panic() {
    let replay = Replay {
        mutations: 4000,
        tokens: TOKENS,
        noise: 200,
        ..Replay::default()
    };
    replay.run(&seeds(), oasis_pvh::fuzzing::start_info);
}

#[test]
fn xen_e820_seeds_parse_as_expected() {
    let seeds = corpus::seeds(env!("CARGO_MANIFEST_DIR"), "xen_e820");
    assert!(seeds.len() >= 3);
    for s in &seeds {
        let (count, table) = s.data.split_first().unwrap();
        let got = oasis_pvh::parse_e820(table, usize::from(*count));
        match s.name.as_str() {
            "dom0" => assert_eq!(got.unwrap().len(), 5),
            "overlap" => assert_eq!(
                got,
                Err(oasis_pvh::PvhError::OverlappingRam {
                    first: 0,
                    second: 1
                })
            ),
            "short" => assert!(
                matches!(got, Err(oasis_pvh::PvhError::Truncated { .. })),
                "{got:?}"
            ),
            _ => {}
        }
        oasis_pvh::fuzzing::xen_e820(&s.data);
    }
}

#[test]
fn xen_e820_mutations_never_panic() {
    let replay = Replay {
        mutations: 4000,
        tokens: TOKENS,
        noise: 200,
        ..Replay::default()
    };
    replay.run(
        &corpus::seeds(env!("CARGO_MANIFEST_DIR"), "xen_e820"),
        oasis_pvh::fuzzing::xen_e820,
    );
}
