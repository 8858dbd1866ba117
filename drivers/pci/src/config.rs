//! Configuration-space access, function identity, bus scan and the capability walk.

/// Type-0 configuration header offsets and bits (PCI Local Bus 3.0 §6.1, §6.2).
pub mod header {
    /// Vendor id (16 bits); device id at +2.
    pub const VENDOR_ID: u16 = 0x00;
    /// Command register (16 bits); status at +2.
    pub const COMMAND: u16 = 0x04;
    /// Header type (8 bits); bit 7: multi-function device.
    pub const HEADER_TYPE: u16 = 0x0e;
    /// First base address register; BAR `i` is at `BAR0 + 4 * i`.
    pub const BAR0: u16 = 0x10;
    /// Subsystem id (16 bits).
    pub const SUBSYSTEM_ID: u16 = 0x2e;
    /// Capabilities pointer (8 bits).
    pub const CAP_PTR: u16 = 0x34;
    /// Interrupt line (8 bits); interrupt pin at +1.
    pub const INTERRUPT_LINE: u16 = 0x3c;
    /// Interrupt pin (8 bits): 0 none, 1..=4 INTA#..INTD#.
    pub const INTERRUPT_PIN: u16 = 0x3d;

    /// Command: I/O space decoding.
    pub const CMD_IO: u32 = 1 << 0;
    /// Command: memory space decoding.
    pub const CMD_MEMORY: u32 = 1 << 1;
    /// Command: bus mastering (DMA).
    pub const CMD_BUS_MASTER: u32 = 1 << 2;
    /// Status (upper half of the COMMAND dword): capability list present.
    pub const STATUS_CAP_LIST: u32 = 1 << (16 + 4);

    /// Capability id: vendor-specific (PCI 3.0 Appendix H).
    pub const CAP_ID_VENDOR: u8 = 0x09;
    /// Capability id: MSI-X.
    pub const CAP_ID_MSIX: u8 = 0x11;
    /// The first offset after the type-0 header; capability pointers below it end
    /// the list.
    pub const CAPS_START: u16 = 0x40;
}

use header::*;

/// Longest capability list walked: 192 bytes of capability space hold at most 48
/// dword-aligned capabilities, so a longer walk is a loop.
const MAX_CAPS: usize = 48;

/// Bus, device, function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    /// Bus 0..=255.
    pub bus: u8,
    /// Device 0..32.
    pub device: u8,
    /// Function 0..8.
    pub function: u8,
}

impl core::fmt::Display for Bdf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

/// Configuration-space access, supplied by the platform.
///
/// Offsets are 4-aligned and below 256 (the legacy 0xCF8/0xCFC mechanism); a function
/// that does not exist reads as all ones.
pub trait PciConfig {
    /// Reads the dword at `offset` of `bdf`'s configuration space.
    fn read32(&self, bdf: Bdf, offset: u16) -> u32;
    /// Writes the dword at `offset` of `bdf`'s configuration space.
    fn write32(&self, bdf: Bdf, offset: u16, value: u32);

    /// Reads the 16-bit field at `offset` (2-aligned) through its dword.
    fn read16(&self, bdf: Bdf, offset: u16) -> u16 {
        (self.read32(bdf, offset & !3) >> (8 * (offset & 2))) as u16
    }

    /// Reads the byte at `offset` through its dword.
    fn read8(&self, bdf: Bdf, offset: u16) -> u8 {
        (self.read32(bdf, offset & !3) >> (8 * (offset & 3))) as u8
    }
}

/// A present function's identity, as [`scan`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    /// Where it is.
    pub bdf: Bdf,
    /// Vendor id (never 0xffff).
    pub vendor_id: u16,
    /// Device id.
    pub device_id: u16,
    /// Subsystem id.
    pub subsystem_id: u16,
    /// Interrupt line as the firmware programmed it (an IOAPIC GSI / PIC IRQ; 0xff
    /// means none).
    pub interrupt_line: u8,
    /// Interrupt pin: 0 none, 1..=4 INTA#..INTD#.
    pub interrupt_pin: u8,
}

impl Function {
    /// Reads the identity of `bdf`, if a function answers there.
    pub fn read<C: PciConfig + ?Sized>(cfg: &C, bdf: Bdf) -> Option<Self> {
        let id = cfg.read32(bdf, VENDOR_ID);
        if id as u16 == 0xffff {
            return None;
        }
        Some(Function {
            bdf,
            vendor_id: id as u16,
            device_id: (id >> 16) as u16,
            subsystem_id: cfg.read16(bdf, SUBSYSTEM_ID),
            interrupt_line: cfg.read8(bdf, INTERRUPT_LINE),
            interrupt_pin: cfg.read8(bdf, INTERRUPT_PIN),
        })
    }
}

/// Every present function on buses 0..=255 (brute force over bus/device/function,
/// honouring the multi-function bit), lazily.
pub fn scan<C: PciConfig + ?Sized>(cfg: &C) -> impl Iterator<Item = Function> + '_ {
    (0..=255u8).flat_map(move |bus| {
        (0..32u8).flat_map(move |device| {
            let f0 = Bdf {
                bus,
                device,
                function: 0,
            };
            let functions = if cfg.read32(f0, VENDOR_ID) as u16 == 0xffff {
                0
            } else if cfg.read8(f0, HEADER_TYPE) & 0x80 != 0 {
                8
            } else {
                1
            };
            (0..functions).filter_map(move |function| {
                Function::read(
                    cfg,
                    Bdf {
                        bus,
                        device,
                        function,
                    },
                )
            })
        })
    })
}

/// One entry of a function's capability list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    /// Offset of the capability in configuration space (4-aligned, >= 0x40).
    pub offset: u16,
    /// Capability id ([`header::CAP_ID_MSIX`], ...).
    pub id: u8,
    /// The capability's first dword: id, next pointer, then two id-specific bytes.
    pub header: u32,
}

/// The capability list of `bdf` (PCI 3.0 §6.7), empty when the status register says
/// there is none. Bounded: a list that loops ends after 48 entries.
pub fn capabilities<C: PciConfig + ?Sized>(
    cfg: &C,
    bdf: Bdf,
) -> impl Iterator<Item = Capability> + '_ {
    let mut ptr = if cfg.read32(bdf, COMMAND) & STATUS_CAP_LIST != 0 {
        u16::from(cfg.read8(bdf, CAP_PTR) & 0xfc)
    } else {
        0
    };
    let mut left = MAX_CAPS;
    core::iter::from_fn(move || {
        if left == 0 || ptr < CAPS_START {
            return None;
        }
        left -= 1;
        let header = cfg.read32(bdf, ptr);
        let cap = Capability {
            offset: ptr,
            id: header as u8,
            header,
        };
        ptr = u16::from((header >> 8) as u8 & 0xfc);
        Some(cap)
    })
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;
    use crate::FakePciConfig;

    fn bdf(device: u8) -> Bdf {
        Bdf {
            bus: 0,
            device,
            function: 0,
        }
    }

    fn function(vendor: u16, device: u16, multi: bool) -> [u8; 256] {
        let mut s = [0u8; 256];
        s[0..2].copy_from_slice(&vendor.to_le_bytes());
        s[2..4].copy_from_slice(&device.to_le_bytes());
        s[0x0e] = if multi { 0x80 } else { 0 };
        s[0x2e] = 7;
        s[0x3c] = 11;
        s[0x3d] = 1;
        s
    }

    #[test]
    fn scan_honours_multifunction_and_reads_identity() {
        let f = |d, func| Bdf {
            bus: 0,
            device: d,
            function: func,
        };
        let cfg = FakePciConfig::new(vec![
            (f(1, 0), function(0x8086, 0x1234, false), [0; 6]),
            // Not scanned: device 1 is single-function.
            (f(1, 1), function(0x8086, 0x5678, false), [0; 6]),
            (f(4, 0), function(0x1af4, 0x1041, true), [0; 6]),
            (f(4, 3), function(0x1af4, 0x1042, false), [0; 6]),
        ]);
        let found: Vec<_> = scan(&cfg).collect();
        assert_eq!(found.len(), 3);
        assert_eq!(found[0].bdf, f(1, 0));
        assert_eq!((found[0].vendor_id, found[0].device_id), (0x8086, 0x1234));
        assert_eq!(found[2].bdf, f(4, 3));
        assert_eq!(found[2].subsystem_id, 7);
        assert_eq!((found[2].interrupt_line, found[2].interrupt_pin), (11, 1));
        assert_eq!(f(4, 3).to_string(), "00:04.3");
    }

    #[test]
    fn capability_walk_is_bounded_and_honours_status() {
        let mut s = function(0x1af4, 0x1041, false);
        s[0x34] = 0x40;
        s[0x40] = CAP_ID_VENDOR;
        s[0x41] = 0x50;
        s[0x50] = CAP_ID_MSIX;
        s[0x51] = 0x50; // loops onto itself
        let cfg = FakePciConfig::new(vec![(bdf(1), s, [0; 6])]);
        assert_eq!(capabilities(&cfg, bdf(1)).count(), 0, "no status bit");
        s[6] = 0x10;
        let cfg = FakePciConfig::new(vec![(bdf(1), s, [0; 6])]);
        let caps: Vec<_> = capabilities(&cfg, bdf(1)).collect();
        assert_eq!(caps.len(), MAX_CAPS);
        assert_eq!((caps[0].offset, caps[0].id), (0x40, CAP_ID_VENDOR));
        assert!(caps[1..].iter().all(|c| c.offset == 0x50));
    }
}
