//! Replays the fuzz seed corpora and deterministic mutations of them through the
//! fuzz targets' code paths, on stable (the shared `oasis-testkit` replay).

use oasis_testkit::corpus::{self, Replay};
use oasis_tls::fuzzing::{TEST_CERT, TEST_KEY};

#[test]
fn certificate_seeds_parse_as_expected() {
    let seeds = corpus::seeds(env!("CARGO_MANIFEST_DIR"), "certificate");
    assert!(seeds.len() >= 3);
    for s in &seeds {
        match s.name.as_str() {
            "der" => {
                let v = oasis_tls::validity(&s.data).expect("the DER seed has a validity");
                assert!(v.not_after - v.not_before > 99 * 365 * 86_400);
                oasis_tls::Identity::load(&s.data, TEST_KEY, Some(1_800_000_000)).unwrap();
            }
            "pem" => {
                let id = oasis_tls::Identity::load(&s.data, TEST_KEY, None).unwrap();
                assert_eq!(id.names(), ["localhost"]);
            }
            "junk" => assert!(oasis_tls::Identity::load(&s.data, TEST_KEY, None).is_err()),
            _ => {}
        }
        oasis_tls::fuzzing::certificate(&s.data);
    }
    assert_eq!(
        TEST_CERT,
        &seeds.iter().find(|s| s.name == "pem").unwrap().data[..]
    );
}

#[test]
fn mutated_certificates_never_panic() {
    let replay = Replay {
        mutations: 1500,
        tokens: &[&[0x30], &[0x82], &[0x17], &[0x18], &[0xff], b"-----BEGIN "],
        noise: 100,
        ..Replay::default()
    };
    replay.run(
        &corpus::seeds(env!("CARGO_MANIFEST_DIR"), "certificate"),
        oasis_tls::fuzzing::certificate,
    );
}

#[test]
fn mutated_client_hellos_never_panic() {
    let seeds = corpus::seeds(env!("CARGO_MANIFEST_DIR"), "client_bytes");
    assert!(seeds.len() >= 3);
    for s in &seeds {
        let sent = oasis_tls::fuzzing::client_bytes(&s.data);
        match s.name.as_str() {
            // A real ClientHello gets ServerHello, certificate and more.
            "tls13" | "tls12" | "chacha" => assert!(sent > 300, "{}: {sent}", s.name),
            _ => assert!(sent < 100, "{}: {sent}", s.name),
        }
    }
    let replay = Replay {
        mutations: 1500,
        tokens: &[
            &[0x16, 0x03, 0x01],
            &[0x16, 0x03, 0x03],
            &[0x00],
            &[0xff],
            &[0x17],
        ],
        noise: 100,
        ..Replay::default()
    };
    replay.run(&seeds, |d| {
        oasis_tls::fuzzing::client_bytes(d);
    });
}
