//! Helpers shared by the integration tests.
#![allow(dead_code)]

#[path = "../harness/mod.rs"]
pub mod harness;

pub use harness::block_on;
/// The shared seeded test RNG.
pub use oasis_testkit::Rng;
