//! PCI configuration space through the legacy I/O ports 0xCF8/0xCFC (PCI Local Bus
//! 3.0 §3.2.2.3.2): enough for QEMU pc/q35 and Firecracker's PCI bus. Everything
//! else about PCI (scan, BARs, MSI-X) is generic code in `oasis-pci`.

use oasis_pci::{Bdf, PciConfig};

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
        // SAFETY: as in `read32`; callers (`oasis-pci`, the virtio transport) write only registers
        // of functions they drive.
        unsafe {
            outl(CONFIG_ADDRESS, address(bdf, offset));
            outl(CONFIG_DATA, value);
        }
    }
}
