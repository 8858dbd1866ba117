//! Finding virtio devices and routing their interrupts.
//!
//! Discovery happens when an application first asks for a device (so an image that
//! uses no network links no network driver): virtio-mmio windows from the
//! `virtio_mmio.device=` kernel parameters (QEMU microvm with `acpi=off`,
//! Firecracker), then a scan of PCI bus 0..=255 (QEMU pc/q35). PCI devices interrupt
//! through MSI-X when they have it, else INTx via the I/O APIC; MMIO devices through
//! their I/O APIC pin. The interrupt handler only acknowledges level-triggered lines
//! and ends the CPU's HLT; the drivers do their work when the executor polls them.

use alloc::vec::Vec;

use oasis_virtio::transport::InterruptAck;
use oasis_virtio::transport::mmio::{MmioTransport, windows_from_cmdline};
use oasis_virtio::transport::pci::{PciLayout, PciTransport, scan};
use oasis_virtio::{AnyTransport, BlkConfig, NetConfig, Transport, VirtioBlk, VirtioNet};

use crate::interrupts::{DEVICE_VECTOR_FIRST, DEVICE_VECTOR_LAST};
use crate::pci::PortPciConfig;

/// virtio device types (virtio 1.2 §5).
const VIRTIO_NET: u32 = 1;
const VIRTIO_BLK: u32 = 2;

/// Level-triggered lines to acknowledge in the interrupt handler, by vector.
static ACKS: spin::Mutex<[Option<InterruptAck>; 32]> = spin::Mutex::new([None; 32]);
static NEXT_VECTOR: core::sync::atomic::AtomicU8 =
    core::sync::atomic::AtomicU8::new(DEVICE_VECTOR_FIRST);

/// Devices found at discovery, not yet claimed by a driver.
static FOUND: spin::Mutex<Option<Vec<Found>>> = spin::Mutex::new(None);

struct Found {
    kind: u32,
    transport: AnyTransport,
    route: Route,
}

#[derive(Clone, Copy)]
enum Route {
    /// I/O APIC pin, edge-triggered active-high (virtio-mmio).
    Edge(u8),
    /// I/O APIC pin, level-triggered active-low (PCI INTx).
    Level(u8),
    /// MSI-X (programmed into the device; nothing to do here).
    Msix,
    /// No interrupt known: the executor's pollers still run on timers.
    None,
}

fn alloc_vector() -> Option<u8> {
    let v = NEXT_VECTOR.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    (v <= DEVICE_VECTOR_LAST).then_some(v)
}

/// Called by the IRQ entry for device vectors, before EOI.
pub fn ack_level(vector: u8) {
    let i = vector.wrapping_sub(DEVICE_VECTOR_FIRST);
    if let Some(Some(ack)) = ACKS.lock().get(usize::from(i)) {
        ack.ack();
    }
}

fn discover(cmdline: &str) -> Vec<Found> {
    let mut found = Vec::new();
    for w in windows_from_cmdline(cmdline) {
        let w = match w {
            Ok(w) => w,
            Err(e) => {
                log_line(format_args!(
                    "oasis: ignoring malformed virtio_mmio.device: {e}"
                ));
                continue;
            }
        };
        // SAFETY: the VMM told us this window holds a virtio-mmio device; it lies in
        // the low 4 GiB, which `mem::init_paging` maps uncached where it is not RAM.
        match unsafe { MmioTransport::new(w) } {
            Ok(t) => {
                let route = w
                    .irq
                    .and_then(|i| u8::try_from(i).ok())
                    .map_or(Route::None, Route::Edge);
                found.push(Found {
                    kind: t.device_id(),
                    transport: AnyTransport::Mmio(t),
                    route,
                });
            }
            Err(e) => log_line(format_args!(
                "oasis: no virtio device at {:#x}: {e}",
                w.base
            )),
        }
    }
    let cfg = PortPciConfig;
    let mut bars = crate::pci::BarWindows::new(crate::mem::ram_top());
    for f in scan(&cfg) {
        let Some(kind) = f
            .virtio_device_type()
            .filter(|k| matches!(*k, VIRTIO_NET | VIRTIO_BLK))
        else {
            continue;
        };
        crate::pci::assign_bars(&cfg, f.bdf, &mut bars);
        // Map every memory BAR the device's structures use (64-bit BARs may sit
        // above the 4 GiB that boot maps).
        match PciLayout::read(&cfg, f.bdf) {
            Ok(layout) => {
                for bar in layout.bars.iter().flatten() {
                    crate::mem::map_mmio(bar.addr, bar.size);
                }
            }
            Err(e) => {
                log_line(format_args!("oasis: skipping PCI {}: {e}", f.bdf));
                continue;
            }
        }
        // SAFETY: every BAR the capabilities reference was just mapped uncached and
        // belongs to this function alone; `cfg` is this machine's config space.
        let mut t = match unsafe { PciTransport::new(&cfg, f) } {
            Ok(t) => t,
            Err(e) => {
                log_line(format_args!("oasis: skipping PCI {}: {e}", f.bdf));
                continue;
            }
        };
        let route = match t.msix_table_size().and(alloc_vector()) {
            // MSI-X messages go straight to the LAPIC (APIC ID 0 at 0xFEE0_0000).
            Some(v) if t.enable_msix(&cfg, 0, 0xFEE0_0000, u32::from(v)).is_ok() => Route::Msix,
            _ if f.interrupt_pin != 0 && f.interrupt_line < 24 => Route::Level(f.interrupt_line),
            _ => Route::None,
        };
        found.push(Found {
            kind,
            transport: AnyTransport::Pci(t),
            route,
        });
    }
    found
}

fn log_line(args: core::fmt::Arguments<'_>) {
    use core::fmt::Write;
    let _ = writeln!(crate::serial::Serial, "{args}");
}

fn take(kind: u32) -> Option<(AnyTransport, Route)> {
    let mut found = FOUND.lock();
    let list = found.get_or_insert_with(|| discover(crate::cmdline()));
    let i = list.iter().position(|f| f.kind == kind)?;
    let f = list.remove(i);
    Some((f.transport, f.route))
}

fn route(transport: &AnyTransport, route: Route) {
    match route {
        Route::Edge(pin) | Route::Level(pin) => {
            let Some(v) = alloc_vector() else { return };
            if let (Route::Level(_), Some(slot)) = (
                route,
                ACKS.lock().get_mut(usize::from(v - DEVICE_VECTOR_FIRST)),
            ) {
                *slot = Some(transport.interrupt_ack());
            }
            crate::apic::route_irq(pin, v, matches!(route, Route::Level(_)));
        }
        Route::Msix | Route::None => {}
    }
}

/// The first virtio-net device, initialised and with its interrupt routed.
pub fn take_net() -> Option<Result<VirtioNet<AnyTransport>, oasis_virtio::InitError>> {
    let (t, r) = take(VIRTIO_NET)?;
    route(&t, r);
    Some(VirtioNet::new(t, NetConfig::default()))
}

/// Every virtio-blk device, in discovery order.
pub fn take_blocks() -> Vec<Result<VirtioBlk<AnyTransport>, oasis_virtio::InitError>> {
    let mut out = Vec::new();
    while let Some((t, r)) = take(VIRTIO_BLK) {
        route(&t, r);
        out.push(VirtioBlk::new(t, BlkConfig::default()));
    }
    out
}
