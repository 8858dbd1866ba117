//! Fuzzes Range / conditional / Accept-Encoding handling (see `oasis_http::fuzzing`).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use oasis_http::StaticSite;

fn site() -> StaticSite<'static> {
    static PACK: OnceLock<&'static [u8]> = OnceLock::new();
    let pack = PACK.get_or_init(|| Vec::leak(oasis_http::fuzzing::sample_pack()));
    StaticSite::parse(pack).expect("sample pack is valid")
}

fuzz_target!(|data: &[u8]| {
    oasis_http::fuzzing::conditional(data, &mut site());
});
