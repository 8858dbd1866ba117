//! The small traits that separate the platforms (`kvm`, `hosted`) from the layers above.
//!
//! Everything an application or service needs from the machine goes through one of
//! these traits: [`Platform`] (console, clocks, entropy, sleeping, exit), [`NetDevice`]
//! (Ethernet frames) and [`BlockDevice`] (sectors). Drivers implement them; services
//! consume them; tests use the in-memory implementations behind the `test-utils`
//! feature. This crate holds no driver code and does no I/O itself.
#![no_std]
#![forbid(unsafe_code)]
// Input from outside must never panic the kernel through an unchecked unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

extern crate alloc;

pub mod block;
#[cfg(feature = "test-utils")]
pub mod mem_net;
pub mod net;
pub mod platform;
#[cfg(feature = "test-utils")]
pub mod ramdisk;

pub use block::{BlockDevice, BlockError, Geometry};
pub use net::{NetDevice, NetInfo, QueueOccupancy, RxChecksum, TxChecksum};
pub use platform::{EntropyError, HeapUsage, Platform};
