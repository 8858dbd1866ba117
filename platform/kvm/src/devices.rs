//! Finding virtio devices and routing their interrupts.
//!
//! Discovery happens when an application first asks for a device (so an image that
//! uses no network links no network driver): virtio-mmio windows from the
//! `virtio_mmio.device=` kernel parameters (QEMU microvm with `acpi=off`,
//! Firecracker), or, when the command line lists none, from the ACPI DSDT/SSDTs
//! (`LNRO0005` devices: QEMU microvm with ACPI on; read at boot by `acpi.rs`), then a
//! scan of PCI bus 0..=255 (QEMU pc/q35). PCI devices interrupt through MSI-X when
//! they have it, else INTx via the I/O APIC; MMIO devices through the I/O APIC that
//! serves their GSI, triggered as ACPI says (edge, active high, without ACPI). The
//! interrupt handler only acknowledges level-triggered lines and ends the CPU's HLT;
//! the drivers do their work when the executor polls them.

use alloc::vec::Vec;

use oasis_virtio::transport::InterruptAck;
use oasis_virtio::transport::mmio::{MmioTransport, MmioWindow, windows_from_cmdline};
use oasis_virtio::transport::pci::{PciLayout, PciTransport, scan};
use oasis_virtio::{AnyTransport, BlkConfig, NetConfig, Transport, VirtioBlk, VirtioNet};

use crate::apic::Line;
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
    /// A GSI through the I/O APIC: virtio-mmio (edge, active high, unless ACPI says
    /// otherwise) or PCI INTx (level, active low).
    Ioapic(Line),
    /// MSI-X (programmed into the device; nothing to do here).
    Msix,
    /// No interrupt known: the executor's pollers still run on timers.
    None,
}

pub(crate) fn alloc_vector() -> Option<u8> {
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

/// Smallest virtio-mmio window: the registers up to the configuration space.
const MMIO_MIN_WINDOW: u64 = 0x100;

/// The virtio-mmio windows to probe, with how their interrupts signal: the command
/// line's, else the ACPI tables'.
fn mmio_windows(cmdline: &str) -> Vec<(MmioWindow, Option<Line>)> {
    let mut out = Vec::new();
    for w in windows_from_cmdline(cmdline) {
        match w {
            Ok(w) => {
                let line = w.irq.map(|gsi| Line {
                    gsi,
                    level: false,
                    active_low: false,
                });
                out.push((w, line));
            }
            Err(e) => log_line(format_args!(
                "oasis: ignoring malformed virtio_mmio.device: {e}"
            )),
        }
    }
    if !out.is_empty() {
        return out;
    }
    for d in crate::acpi::virtio_mmio() {
        let name = d.name.unwrap_or(*b"????");
        let name = name.escape_ascii();
        if d.size < MMIO_MIN_WINDOW || d.base.checked_add(d.size).is_none() {
            log_line(format_args!(
                "oasis: ignoring ACPI virtio-mmio {name}: window of {:#x} bytes at {:#x} is invalid",
                d.size, d.base
            ));
            continue;
        }
        let line = d.interrupt.map(|i| Line {
            gsi: i.number,
            level: i.trigger == oasis_acpi::Trigger::Level,
            active_low: i.polarity == oasis_acpi::Polarity::Low,
        });
        let w = MmioWindow {
            base: d.base,
            size: d.size,
            irq: line.map(|l| l.gsi),
        };
        // Windows above 4 GiB (a QWord descriptor) are not in the boot identity map.
        if d.base.saturating_add(d.size) > 1 << 32 {
            crate::mem::map_mmio(d.base, d.size);
        }
        out.push((w, line));
    }
    out
}

fn discover(cmdline: &str) -> Vec<Found> {
    let mut found = Vec::new();
    for (w, line) in mmio_windows(cmdline) {
        // SAFETY: the VMM (command line or ACPI tables) told us this window holds a
        // virtio-mmio device; below 4 GiB `mem::init_paging` maps it uncached where it
        // is not RAM, and `mmio_windows` mapped any window above.
        match unsafe { MmioTransport::new(w) } {
            Ok(t) => {
                found.push(Found {
                    kind: t.device_id(),
                    transport: AnyTransport::Mmio(t),
                    route: line.map_or(Route::None, Route::Ioapic),
                });
            }
            Err(e) => log_line(format_args!(
                "oasis: no virtio device at {:#x}: {e}",
                w.base
            )),
        }
    }
    let cfg = PortPciConfig;
    let mut bars = oasis_pci::BarWindows::new(crate::mem::ram_top());
    for f in scan(&cfg) {
        let Some(kind) = f
            .virtio_device_type()
            .filter(|k| matches!(*k, VIRTIO_NET | VIRTIO_BLK))
        else {
            continue;
        };
        oasis_pci::assign_bars(&cfg, f.bdf, &mut bars);
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
            _ if f.interrupt_pin != 0 && f.interrupt_line < 24 => Route::Ioapic(Line {
                gsi: u32::from(f.interrupt_line),
                level: true,
                active_low: true,
            }),
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
        Route::Ioapic(line) => {
            let Some(v) = alloc_vector() else { return };
            if line.level
                && let Some(slot) = ACKS.lock().get_mut(usize::from(v - DEVICE_VECTOR_FIRST))
            {
                *slot = Some(transport.interrupt_ack());
            }
            if let Err(e) = crate::apic::route(line, v) {
                log_line(format_args!(
                    "oasis: {e}; the device's driver runs on timers only"
                ));
            }
        }
        Route::Msix | Route::None => {}
    }
}

/// The first virtio-net device, initialised and with its interrupt routed.
pub fn take_net() -> Option<Result<VirtioNet<AnyTransport>, oasis_virtio::InitError>> {
    let (t, r) = take(VIRTIO_NET)?;
    route(&t, r);
    Some(VirtioNet::new(
        t,
        NetConfig::for_heap(crate::mem::heap_bytes()),
    ))
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
