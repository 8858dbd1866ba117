//! Generic PCI (PCI Local Bus 3.0): what every PCI driver and the platform share,
//! independent of any device class.
//!
//! - [`PciConfig`]: configuration-space access, implemented by the platform (ports
//!   0xCF8/0xCFC on x86, or ECAM); [`Bdf`] names a function.
//! - [`scan`]: every present function on buses 0..=255, with its identity
//!   ([`Function`]).
//! - [`capabilities`]: the bounded capability-list walk; [`MsixCap`] decodes MSI-X.
//! - [`size_bar`] decodes and sizes a memory BAR; [`assign_bars`] gives unassigned
//!   BARs an address from [`BarWindows`] (for minimal firmware that assigns none).
//! - [`program_msix_entry`] / [`enable_msix`]: MSI-X table programming through a
//!   register window the caller supplies ([`Mmio32`]).
//!
//! Not here: anything device-specific (the virtio-pci transport lives in
//! `oasis-virtio`), the configuration mechanism itself (platform), PCIe extended
//! configuration space (offsets >= 256), hot-plug, bridges' secondary bus numbering
//! (firmware's job), I/O BAR assignment.
//!
//! No `unsafe`: configuration space and MMIO are reached only through the two
//! traits, whose implementations (in the platform and in the drivers' MMIO types)
//! hold the unsafe code.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

#[cfg(any(test, feature = "test-utils"))]
extern crate alloc;

mod bar;
mod config;
#[cfg(any(test, feature = "test-utils"))]
mod fake;
mod msix;

pub use bar::{Bar, BarError, BarWindows, assign_bars, size_bar};
pub use config::{Bdf, Capability, Function, PciConfig, capabilities, header, scan};
#[cfg(any(test, feature = "test-utils"))]
pub use fake::FakePciConfig;
pub use msix::{Mmio32, MsixCap, enable_msix, program_msix_entry};

/// A region inside a memory BAR: BAR index, offset and length (how capabilities
/// such as MSI-X or virtio's structures point into BARs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarRegion {
    /// BAR index 0..=5.
    pub bar: u8,
    /// Offset in the BAR.
    pub offset: u32,
    /// Length.
    pub length: u32,
}
