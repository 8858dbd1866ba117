//! PCI configuration space through the legacy I/O ports 0xCF8/0xCFC (PCI Local Bus
//! 3.0 §3.2.2.3.2): enough for QEMU pc/q35 and Firecracker's PCI bus.

use oasis_virtio::transport::pci::{Bdf, PciConfig};

use crate::cpu::{inl, outl};

const CONFIG_ADDRESS: u16 = 0xCF8;
const CONFIG_DATA: u16 = 0xCFC;

/// Configuration-mechanism #1.
pub struct PortPciConfig;

fn address(bdf: Bdf, offset: u16) -> u32 {
    0x8000_0000
        | (u32::from(bdf.bus) << 16)
        | (u32::from(bdf.device & 31) << 11)
        | (u32::from(bdf.function & 7) << 8)
        | u32::from(offset & 0xFC)
}

impl PciConfig for PortPciConfig {
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        // SAFETY: the configuration ports are ours; single core, so the address/data
        // pair cannot be interleaved with another access.
        unsafe {
            outl(CONFIG_ADDRESS, address(bdf, offset));
            inl(CONFIG_DATA)
        }
    }

    fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
        // SAFETY: as in `read32`; callers (the virtio transport) write only registers
        // of functions they drive.
        unsafe {
            outl(CONFIG_ADDRESS, address(bdf, offset));
            outl(CONFIG_DATA, value);
        }
    }
}

const BAR0: u16 = 0x10;
const COMMAND: u16 = 0x04;
const CMD_MEMORY: u32 = 1 << 1;

/// Where unassigned BARs go: 32-bit BARs in the PCI hole below the I/O APIC (above
/// every lowmem cap QEMU uses and above q35's MMCONFIG), 64-bit BARs above both 4 GiB
/// and the top of RAM.
pub struct BarWindows {
    pub next32: u64,
    pub end32: u64,
    pub next64: u64,
}

impl BarWindows {
    pub fn new(ram_top: u64) -> Self {
        Self {
            next32: 0xE000_0000,
            end32: 0xFEB0_0000,
            next64: ram_top.max(1 << 32).next_multiple_of(1 << 30),
        }
    }
}

/// Gives every unassigned memory BAR of `bdf` an address. Minimal firmware (qboot on
/// QEMU pc/q35) assigns none; SeaBIOS and VMMs that assign their own are left alone.
pub fn assign_bars(cfg: &PortPciConfig, bdf: Bdf, w: &mut BarWindows) {
    let cmd = cfg.read32(bdf, COMMAND);
    let mut i = 0u16;
    while i < 6 {
        let off = BAR0 + 4 * i;
        let lo = cfg.read32(bdf, off);
        if lo & 1 == 1 {
            i += 1; // I/O BAR
            continue;
        }
        let is64 = (lo >> 1) & 3 == 2 && i < 5;
        let hi = if is64 { cfg.read32(bdf, off + 4) } else { 0 };
        let step = if is64 { 2 } else { 1 };
        if (lo & !0xF) != 0 || hi != 0 {
            i += step;
            continue;
        }
        // Size it with decoding off (PCI 3.0 §6.2.5.1).
        cfg.write32(bdf, COMMAND, cmd & !CMD_MEMORY);
        cfg.write32(bdf, off, 0xFFFF_FFFF);
        let mut mask = u64::from(cfg.read32(bdf, off) & !0xF);
        if is64 {
            cfg.write32(bdf, off + 4, 0xFFFF_FFFF);
            mask |= u64::from(cfg.read32(bdf, off + 4)) << 32;
        } else {
            mask |= 0xFFFF_FFFF_0000_0000;
        }
        let size = (!mask).wrapping_add(1);
        let slot = if mask == 0 || !size.is_power_of_two() {
            None
        } else if is64 {
            let a = w.next64.next_multiple_of(size);
            w.next64 = a + size;
            Some(a)
        } else {
            let a = w.next32.next_multiple_of(size);
            (a + size <= w.end32).then(|| {
                w.next32 = a + size;
                a
            })
        };
        let addr = slot.unwrap_or(0);
        cfg.write32(bdf, off, (addr as u32) | (lo & 0xF));
        if is64 {
            cfg.write32(bdf, off + 4, (addr >> 32) as u32);
        }
        cfg.write32(bdf, COMMAND, cmd);
        i += step;
    }
}
