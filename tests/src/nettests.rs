//! Helpers for the networking end-to-end tests (`tests/echo.rs`, `tests/netns.rs`,
//! the flood and robustness suites), one concern a module:
//!
//! - [`clients`]: concurrent TCP echo clients and UDP echo checks that compare byte
//!   for byte, discard and quitting clients;
//! - [`netns`]: network namespaces with a TAP device that clean up after
//!   themselves, and the helper script (`nettests/nethelper.py`) that talks to a
//!   guest from inside one (ICMP ping, TCP/UDP echo, raw frame injection);
//! - [`hostile`]: a generator of hostile Ethernet frames;
//! - the seeded RNG, pattern data and free ports come from the shared test kit
//!   (`oasis-testkit`) and are re-exported here.
//!
//! Everything is re-exported at this level, so `oasis_e2e::nettests::NetNs` and
//! friends keep working.

pub mod clients;
pub mod hostile;
pub mod netns;

pub use clients::*;
pub use hostile::*;
pub use netns::*;
pub use oasis_testkit::{Rng, free_port, pattern};
