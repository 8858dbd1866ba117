//! Test kit shared by Oasis's host-run tests, so each crate's tests stop carrying
//! their own copy:
//!
//! - [`rng`]: one seeded, deterministic pseudo-random generator ([`Rng`]) and
//!   pattern data derived from it;
//! - [`corpus`]: fuzz seed-corpus loading and the stable-Rust replay of a fuzz
//!   target (every seed, then deterministic mutations of them);
//! - [`ports`]: localhost ports free for both TCP and UDP;
//! - `dns` (feature `dns`): DNS query bytes, raw UDP/TCP clients and a printable
//!   summary of a response for differential tests.
//!
//! It is a dev-dependency only: nothing here is compiled into an image. Network
//! namespaces and QEMU stay in the end-to-end crate (`oasis-e2e`), which needs
//! the `oasis` CLI to build and boot images.
#![forbid(unsafe_code)]

pub mod corpus;
#[cfg(feature = "dns")]
pub mod dns;
pub mod ports;
pub mod rng;

pub use ports::free_port;
pub use rng::{Rng, pattern};
