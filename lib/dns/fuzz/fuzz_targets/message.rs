//! Fuzz target: the message parser and the answering engine on arbitrary bytes.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use oasis_dns::Catalog;

static CATALOG: OnceLock<Catalog> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let catalog = CATALOG.get_or_init(oasis_dns::fuzzing::example_catalog);
    oasis_dns::fuzzing::message(catalog, data);
});
