//! Authoritative DNS for Oasis: the core of the `dns` appliance, with no I/O.
//!
//! - [`wire`]: messages on the wire (RFC 1035 §4): a zero-copy [`wire::Header`]
//!   view and the [`wire::Message`] representation with `parse` / `emit` /
//!   `buffer_len`, EDNS(0) ([`wire::Edns`]), and the name [`wire::Compressor`].
//! - [`name`]: domain names; decompression with loop and bound checks (pointers
//!   must point backwards and past the header, 255-byte names, 63-byte labels, a
//!   hop limit), case-insensitive comparison with case preserved, canonical order.
//! - [`rdata`]: A, AAAA, NS, CNAME, SOA, MX, TXT, SRV, PTR, CAA, and any other type
//!   as opaque bytes (RFC 3597).
//! - [`zone`]: the master-file parser (`&str` in, [`zone::Zone`] out; errors name
//!   file and line).
//! - [`catalog`]: the answering engine. Build a [`catalog::Catalog`] from zones at
//!   startup, then call [`catalog::Catalog::answer`] per query.
//! - [`tcp`]: 2-byte length framing for DNS over TCP (RFC 7766).
//!
//! Not here: sockets, timers, zone transfers, DNSSEC signing, dynamic updates.
//!
//! # Behaviour
//!
//! The engine follows NSD 4.6 configured with `minimal-responses: yes`,
//! `hide-version: yes` and `hide-identity: yes`; `tests/nsd_diff.rs` checks this
//! against a live `nsd` on several hundred queries. In short:
//!
//! - AA on authoritative answers; CNAME chains are followed inside and across the
//!   zones we serve (up to [`catalog::MAX_CNAME_CHAIN`] hops; a repeated CNAME
//!   ends the chain); the RCODE reflects the last name in the chain.
//! - NXDOMAIN and NODATA carry the zone's SOA in the authority section with TTL
//!   `min(SOA TTL, SOA MINIMUM)` (RFC 2308 §3).
//! - Below a zone cut: a referral (AA clear) with the NS RRset in authority and
//!   A/AAAA glue in additional. DS at a cut is answered by the parent.
//! - Wildcards per RFC 4592; empty non-terminals exist and block wildcards.
//! - Names outside our zones: REFUSED (+ EDE 20 when the query had EDNS).
//! - ANY (RFC 8482 §4.1): one RRset, the first of A/AAAA/SOA/MX/PTR in zone-file
//!   order, else the last other RRset; like NSD, not HINFO.
//! - AXFR: NOTIMP over UDP, REFUSED over TCP; IXFR: REFUSED (no transfers).
//! - Malformed queries with a readable header: FORMERR (no question, RD kept);
//!   QDCOUNT other than 1: FORMERR with all flags clear; opcodes other than QUERY
//!   (NOTIFY and UPDATE included): NOTIMP. Shorter than 12 bytes or QR=1: dropped.
//! - EDNS version other than 0: BADVERS with the question. Responses carry an OPT
//!   record (our size 1232, DO copied) when the query did.
//! - Classes other than IN and ANY: REFUSED with EDE 21 (CH keeps the question,
//!   and answers EDE 18 for `version.bind` and friends). QCLASS ANY: AA clear, no
//!   SOA on negative answers.
//! - UDP size limit: 512 without EDNS, else `min(client size, our max)` (at least
//!   512). If an answer or authority RRset does not fit, the response stops before
//!   it with TC=1 (whole RRsets already placed are kept, as NSD does; for one big
//!   RRset that is header + question). Additional records are dropped silently.
//! - ID, RD and the question bytes (with their case) are copied from the query.
//!
//! Intentional differences from NSD: we copy the DO bit into BADVERS responses
//! (RFC 3225 §3; NSD clears it); NOTIFY gets NOTIMP (we have no secondaries);
//! TSIG is not supported (FORMERR); DNAME is served as an opaque type, not
//! followed; a wildcard CNAME loop stops after [`catalog::MAX_CNAME_CHAIN`] hops.
//!
//! # Hot path
//!
//! [`catalog::Catalog::answer`] reads the question in place, looks names up with
//! binary searches over borrowed sub-slices, collects RRsets in a fixed array and
//! compresses with a fixed-size map: it allocates nothing beyond growing `out`.
#![no_std]
#![forbid(unsafe_code)]
// Input from outside must never panic the kernel through an unchecked unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

extern crate alloc;

pub mod catalog;
// Fuzz-target bodies: compiled only for tests and the fuzz targets (feature
// `fuzzing`, which the crate's own tests and `fuzz/Cargo.toml` turn on).
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod name;
pub mod rdata;
pub mod tcp;
pub mod wire;
pub mod zone;

pub use catalog::{Catalog, Transport};
pub use name::Name;
pub use zone::{Zone, ZoneError};
