//! Shared bodies of the fuzz targets, also run on stable by `tests/fuzz_replay.rs`.
//! Each asserts properties that must hold for any input, besides "no panic".

use alloc::vec::Vec;

use crate::catalog::{Catalog, Transport};
use crate::name::Name;
use crate::tcp::TcpFramer;
use crate::wire::{Message, UDP_LEGACY_LIMIT};
use crate::zone::Zone;

/// The example zone shipped with the crate.
pub const EXAMPLE_ZONE: &str = include_str!("../zones/example.org.zone");

/// A catalog serving the example zone.
pub fn example_catalog() -> Catalog {
    let mut c = Catalog::new();
    if let Ok(origin) = Name::parse_text("example.org.", None)
        && let Ok(zone) = Zone::parse("example.org.zone", EXAMPLE_ZONE, &origin)
    {
        let _ = c.add_zone(zone);
    }
    c
}

/// Message target: parse/emit round trip, and the engine on the same bytes over
/// UDP and TCP (every response must parse and respect the size limit).
pub fn message(catalog: &Catalog, data: &[u8]) {
    if let Ok(m) = Message::parse(data) {
        let mut out = Vec::new();
        m.emit(&mut out);
        let again = Message::parse(&out);
        assert_eq!(
            again.as_ref(),
            Ok(&m),
            "emit/parse round trip changed the message"
        );
    }
    let mut out = Vec::new();
    for transport in [
        Transport::udp(),
        Transport::Udp { max_payload: 512 },
        Transport::Tcp,
    ] {
        if catalog.answer(data, transport, &mut out) {
            let resp = Message::parse(&out);
            assert!(resp.is_ok(), "our response does not parse: {resp:?}");
            if let Transport::Udp { max_payload } = transport {
                assert!(out.len() <= usize::from(max_payload).max(UDP_LEGACY_LIMIT));
            }
        } else {
            assert!(out.is_empty());
        }
    }
    // The same bytes as a TCP stream, split at an arbitrary point.
    let mut framer = TcpFramer::new();
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut responses = Vec::new();
    for chunk in [&data[..split], &data[split..]] {
        if framer.push(chunk).is_err() {
            return;
        }
        while let Some(q) = framer.peek() {
            catalog.answer_tcp_framed(q, &mut responses);
            framer.consume();
        }
    }
}

/// Zone target: parse arbitrary text; whatever parses must index and answer.
pub fn zone(data: &[u8]) {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    let Ok(origin) = Name::parse_text("example.org.", None) else {
        return;
    };
    let Ok(zone) = Zone::parse("fuzz.zone", text, &origin) else {
        return;
    };
    assert!(zone.soa().is_some(), "a parsed zone always has an SOA");
    let names: Vec<Name> = zone
        .records
        .iter()
        .take(8)
        .map(|r| r.name.clone())
        .collect();
    let mut catalog = Catalog::new();
    if catalog.add_zone(zone).is_err() {
        return;
    }
    let mut out = Vec::new();
    for name in names {
        for qtype in [1u16, 5, 16, 255] {
            let mut q = alloc::vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            q.extend_from_slice(name.as_wire());
            q.extend_from_slice(&qtype.to_be_bytes());
            q.extend_from_slice(&[0, 1]);
            assert!(catalog.answer(&q, Transport::Tcp, &mut out));
            assert!(Message::parse(&out).is_ok());
        }
    }
}
