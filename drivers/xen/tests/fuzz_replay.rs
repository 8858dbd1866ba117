//! Replays the fuzz seed corpora, and deterministic mutations of them, through
//! the same code paths as the cargo-fuzz targets in `fuzz/`, on stable (the
//! shared `oasis-testkit` replay).

use oasis_testkit::corpus::{self, Replay};
use oasis_xen::fuzz_targets;

fn replay(target: &str, f: impl Fn(&[u8]), mutations: usize, tokens: &[&[u8]]) {
    let seeds = corpus::seeds(env!("CARGO_MANIFEST_DIR"), target);
    assert!(seeds.len() >= 3, "{target}: too few seeds");
    Replay {
        mutations,
        tokens,
        noise: 100,
        noise_len: 200,
        ..Replay::default()
    }
    .run(&seeds, f);
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    let seeds = corpus::seeds(env!("CARGO_MANIFEST_DIR"), target);
    seeds.into_iter().find(|s| s.name == name).unwrap().data
}

#[test]
fn seeds_behave_as_named() {
    use oasis_xen::xenstore::XsError;
    use oasis_xen::xenstore::wire::WireError;
    let xs = |n| fuzz_targets::xenstore_reply(&seed("xenstore_reply", n));
    assert_eq!(xs("read_ok"), Ok(b"hello".to_vec()));
    assert_eq!(xs("watch_then_reply"), Ok(b"4".to_vec()));
    assert_eq!(xs("stale_then_reply"), Ok(b"ok".to_vec()));
    assert!(
        xs("eagain")
            .unwrap_err()
            .is(oasis_xen::xenstore::wire::XsErrno::Again)
    );
    assert_eq!(xs("too_long"), Err(XsError::Wire(WireError::TooLong(5000))));
    assert!(matches!(xs("short_header"), Err(XsError::Timeout { .. })));
    assert!(matches!(
        xs("wrong_type"),
        Err(XsError::UnexpectedReply { .. })
    ));

    let net = |n| fuzz_targets::net_responses(&seed("net_responses", n));
    let good = net("good");
    assert_eq!((good.rx_frames, good.rx_dropped, good.tx_errors), (2, 0, 0));
    assert_eq!(net("bad_offset").rx_dropped, 1);
    assert_eq!(net("more_data_flag").rx_dropped, 1);
    let e = net("error_statuses");
    assert_eq!((e.rx_dropped, e.tx_errors), (1, 1));
    assert_eq!(net("bogus_rx_id").rx_frames, 0);

    let blk = |n| fuzz_targets::blk_responses(&seed("blk_responses", n));
    assert_eq!(blk("good"), (false, 2));
    assert_eq!(blk("bogus_id"), (true, 0));
    assert_eq!(blk("wrong_op"), (true, 0));
    assert_eq!(blk("runaway_index"), (true, 0));
    assert_eq!(blk("eopnotsupp"), (false, 0));
    assert!(blk("duplicate").0, "a second response for one id");
}

#[test]
fn xenstore_reply_corpus_and_mutations() {
    replay(
        "xenstore_reply",
        |d| {
            let _ = fuzz_targets::xenstore_reply(d);
        },
        1500,
        &[
            b"\0",
            b"EAGAIN\0",
            b"OK\0",
            &[2, 0, 0, 0],
            &[15, 0, 0, 0],
            &[0xff, 0xff, 0, 0],
        ],
    );
}

#[test]
fn net_responses_corpus_and_mutations() {
    replay(
        "net_responses",
        |d| {
            let _ = fuzz_targets::net_responses(d);
        },
        600,
        &[&[0, 0], &[0xff, 0xff], &[0xea, 0x05], &[4, 0]],
    );
}

#[test]
fn blk_responses_corpus_and_mutations() {
    replay(
        "blk_responses",
        |d| {
            let _ = fuzz_targets::blk_responses(d);
        },
        600,
        &[&[0; 8], &[0xfe, 0xff], &[1, 0, 0, 0, 0, 0, 0, 0]],
    );
}
