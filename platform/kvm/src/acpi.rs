//! ACPI at boot: find the tables (PVH `start_info.rsdp_paddr`, else the BIOS area)
//! and keep what device discovery needs: virtio-mmio windows described in the
//! DSDT/SSDTs (QEMU microvm with ACPI on, Firecracker) and the I/O APICs from the MADT.
//! The parsing is `oasis-acpi`'s; this module only lends it physical memory.

use core::fmt::Write;

use oasis_acpi::{AcpiError, IoApic, PhysMem, Tables, VirtioMmio};

static TABLES: spin::Once<Tables> = spin::Once::new();

/// Physical memory below 4 GiB outside our image, as the boot page tables map it.
struct LowMemory;

const LOW_LIMIT: u64 = 4 << 30;

impl PhysMem for LowMemory {
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let end = addr.checked_add(u64::try_from(len).ok()?)?;
        let image = crate::mem::layout();
        if addr == 0 || end > LOW_LIMIT || (addr < image.image_end && end > image.image_start) {
            return None;
        }
        // SAFETY: [addr, end) lies below 4 GiB, which the boot page tables identity-map
        // (page 0 included; `init` runs before `mem::init_paging`), and outside our
        // image, so no Rust object aliases it. The firmware's tables and the BIOS area
        // are written by nobody while we read them (one CPU; the heap does not own
        // them yet), and the slice does not outlive `init`.
        Some(unsafe { core::slice::from_raw_parts(addr as usize as *const u8, len) })
    }
}

/// Reads the ACPI tables. Call once at boot, before the heap claims RAM (a VMM may
/// leave the tables in memory the map calls RAM) and before `mem::init_paging`.
pub fn init(rsdp_paddr: u64) {
    let hint = (rsdp_paddr != 0).then_some(rsdp_paddr);
    let found = match oasis_acpi::discover(&LowMemory, hint) {
        // Xen 4.17 builds a PVH dom0's XSDT header from physical address 0 when the
        // host firmware has only an RSDT (QEMU's SeaBIOS): fall back to the
        // firmware's own tables, which Xen leaves mapped in dom0's low megabyte.
        Err(e) if hint.is_some() && crate::xen::get().is_some() => {
            oasis_acpi::discover(&LowMemory, None).map_err(|_| e)
        }
        r => r,
    };
    let tables = match found {
        Ok(t) => {
            for e in &t.skipped {
                let _ = writeln!(crate::serial::Serial, "oasis: ACPI: skipping a table: {e}");
            }
            t
        }
        // No ACPI (QEMU microvm with acpi=off, Firecracker without ACPI): the kernel
        // command line lists the devices.
        Err(AcpiError::NoRsdp) => Tables::default(),
        Err(e) => {
            let _ = writeln!(crate::serial::Serial, "oasis: ACPI: {e}");
            Tables::default()
        }
    };
    TABLES.call_once(|| tables);
}

fn tables() -> Option<&'static Tables> {
    TABLES.get()
}

/// virtio-mmio devices the DSDT/SSDTs describe (interrupts as GSIs).
pub fn virtio_mmio() -> &'static [VirtioMmio] {
    tables().map_or(&[], |t| t.virtio_mmio.as_slice())
}

/// I/O APICs the MADT lists (empty without ACPI).
pub fn io_apics() -> &'static [IoApic] {
    tables().map_or(&[], |t| t.io_apics.as_slice())
}
