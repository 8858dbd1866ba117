//! Virtio 1.x drivers for Oasis: a split virtqueue, the virtio-mmio (v2) and
//! virtio-pci (modern) transports, and virtio-net and virtio-blk devices that
//! implement [`oasis_devices::NetDevice`] and [`oasis_devices::BlockDevice`].
//!
//! Modern devices only (VIRTIO_F_VERSION_1 is required; a legacy device is refused
//! with [`transport::InitError::NoVersion1`]). Memory is assumed identity-mapped:
//! the address of a heap allocation is its bus address.
//!
//! # Why not `virtio-drivers`
//!
//! We considered `virtio-drivers` 0.13 and wrote our own split virtqueue instead.
//! Its high-level net send and block read/write busy-wait for completion; its
//! non-blocking calls hand the caller raw tokens and buffers whose lifetime the
//! caller must manage (unsound if a request future is leaked); it has no MSI-X
//! programming; and its block API has no per-request waker. Our design needs the
//! opposite on each point: interrupt-driven completion that wakes futures, several
//! block requests in flight, zero-copy receive/transmit from pre-allocated pools
//! with no allocation per packet, and MSI-X routed to a LAPIC vector.
//!
//! # Layout (files by role)
//!
//! - [`mem`]: MMIO register windows and DMA allocations — the only module with
//!   `unsafe` besides the two `unsafe fn` constructors of the transports, which
//!   take the platform's word that an address is device memory.
//! - [`queue`]: the split virtqueue with its buffer pool; validates everything the
//!   device writes.
//! - [`transport`]: the [`Transport`] trait, feature
//!   negotiation, [`transport::mmio`], [`transport::pci`].
//! - [`net`], [`blk`]: the devices.
//!
//! # What the platform does (kvm)
//!
//! 1. **Map** device memory identity, uncached: the virtio-mmio windows, and every
//!    PCI memory BAR (including 64-bit BARs above 4 GiB) of the functions it drives.
//!    Firmware (SeaBIOS, qboot) or the VMM (Firecracker) assigns BARs; we do not.
//! 2. **Discover** devices:
//!    - virtio-mmio: `transport::mmio::windows_from_cmdline(cmdline)` for every
//!      `virtio_mmio.device=SIZE@ADDR:IRQ` entry (QEMU microvm with `acpi=off`,
//!      Firecracker); else probe `transport::mmio::qemu_microvm_windows()`. Then
//!      the `unsafe fn` `MmioTransport::new(window)` (or `mmio::probe(windows)`).
//!    - virtio-pci: implement [`transport::pci::PciConfig`] over ports 0xCF8/0xCFC,
//!      iterate `transport::pci::scan(&cfg)`, check `virtio_device_type()`
//!      (1 net, 2 block), then the `unsafe fn` `PciTransport::new(&cfg, function)`.
//! 3. **Route the interrupt** before constructing the driver:
//!    - PCI with MSI-X (required on Firecracker PCI): pick an IDT vector `v`, call
//!      `pci.enable_msix(&cfg, 0, 0xFEE0_0000 | (apic_id << 12), v)`; every queue
//!      and configuration change then signals `v` (edge, no ack needed).
//!    - PCI INTx (fallback): `function.interrupt_line` is the GSI the firmware
//!      programmed (`interrupt_pin` 1..=4 = INTA#..INTD#); route that IOAPIC pin
//!      level-triggered, active-low.
//!    - MMIO: the `IRQ` from the command line is a GSI; route that IOAPIC pin
//!      edge-triggered, active-high (QEMU microvm, Firecracker). The device holds
//!      its line high until acknowledged; `poll()` acknowledges until the status
//!      reads 0, so the next completion makes a fresh edge. Windows found by
//!      probing have no IRQ (`window.irq == None`): poll them on a timer.
//! 4. **Construct**: `VirtioNet::new(transport, NetConfig::default())`,
//!    `VirtioBlk::new(transport, BlkConfig::default())` (or wrap the transport in
//!    [`transport::AnyTransport`] to hold both kinds in one type). These reset the
//!    device, negotiate, allocate all DMA memory, and set DRIVER_OK.
//! 5. **On the interrupt** (interrupt context): for level-triggered lines, call
//!    [`InterruptAck::ack`](transport::InterruptAck::ack) on a handle taken at
//!    init (`transport.interrupt_ack()`) before the EOI, or the line stays
//!    asserted; it only reads/acks the ISR and never touches a queue. Then record
//!    "device needs attention" and wake the executor. No other driver call is
//!    allowed in interrupt context.
//! 6. **In task context after an interrupt** (and before the executor halts):
//!    call `NetDevice::poll()` on each net device (reclaims transmit buffers,
//!    notifies the device of queued frames, returns whether a frame waits) and
//!    `VirtioBlk::poll()` on each block device (completes requests, wakes their
//!    futures). Transmitted frames reach the device at the next `poll()` at the
//!    latest, so the network adapter must call `poll()` after handing frames to
//!    `transmit`, before sleeping.
//!
//! Dropping a driver resets its device first, so DMA stops before its memory is
//! freed (the memory is leaked if the device never confirms the reset).
#![cfg_attr(not(test), no_std)]
// Unsafe code only where the DMA memory and MMIO live (`mem`) and in the two
// transport constructors that take the platform's word for an address; each has an
// explicit `#[allow(unsafe_code)]`.
#![deny(unsafe_code)]
// Input from devices must never panic the kernel through an unchecked unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

extern crate alloc;

pub mod blk;
#[allow(unsafe_code)] // volatile MMIO and the DMA allocations
pub mod mem;
pub mod net;
pub mod queue;
pub mod transport;

#[cfg(test)]
#[allow(unsafe_code)] // the fake device reads and writes the driver's DMA memory
mod fake;
#[cfg(any(test, feature = "test-utils"))]
#[doc(hidden)]
pub mod fuzz_targets;

pub use blk::{BlkConfig, VirtioBlk};
pub use net::{NetConfig, VirtioNet};
pub use queue::{QueueError, Virtqueue};
pub use transport::{AnyTransport, InitError, Transport};
