//! MSI-X (PCI 3.0 §6.8.2): decoding the capability, programming table entries,
//! enabling the function.

use crate::config::header::CAP_ID_MSIX;
use crate::{BarRegion, Bdf, Capability, PciConfig};

/// Message control: MSI-X enable.
const MSIX_ENABLE: u32 = 1 << 15;
/// Message control: function mask (masks every vector).
const MSIX_FUNCTION_MASK: u32 = 1 << 14;
/// Bytes per table entry: address low, address high, data, vector control.
const ENTRY_LEN: usize = 16;
/// Vector control: masked.
const VECTOR_MASKED: u32 = 1;

/// 32-bit register access to a memory window, supplied by the driver that mapped it
/// (the MSI-X table lives in one of the function's BARs).
pub trait Mmio32 {
    /// Reads the little-endian dword at `offset`.
    fn read32(&self, offset: usize) -> u32;
    /// Writes `value` little-endian at `offset`.
    fn write32(&self, offset: usize, value: u32);
}

/// The MSI-X capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsixCap {
    /// Offset of the capability in configuration space.
    pub cap_offset: u16,
    /// Number of table entries (1..=2048).
    pub table_size: u16,
    /// Where the table is.
    pub table: BarRegion,
}

impl MsixCap {
    /// Decodes `cap` if it is a well-formed MSI-X capability (its table in BAR
    /// 0..=5, the capability inside the 256-byte configuration space).
    pub fn parse<C: PciConfig + ?Sized>(cfg: &C, bdf: Bdf, cap: Capability) -> Option<Self> {
        if cap.id != CAP_ID_MSIX || cap.offset > 256 - 12 {
            return None;
        }
        let table = cfg.read32(bdf, cap.offset + 4);
        let table_size = ((cap.header >> 16) & 0x7ff) as u16 + 1;
        let bar = (table & 7) as u8;
        (bar <= 5).then_some(MsixCap {
            cap_offset: cap.offset,
            table_size,
            table: BarRegion {
                bar,
                offset: table & !7,
                length: u32::from(table_size) * ENTRY_LEN as u32,
            },
        })
    }
}

/// Programs table entry `entry` of `table` (the mapped MSI-X table) with message
/// address `msg_addr` and data `msg_data`, masking it while it changes and
/// unmasking it after. The caller checks `entry` against the table size.
pub fn program_msix_entry<T: Mmio32 + ?Sized>(table: &T, entry: u16, msg_addr: u64, msg_data: u32) {
    let e = usize::from(entry) * ENTRY_LEN;
    table.write32(e + 12, VECTOR_MASKED);
    table.write32(e, msg_addr as u32);
    table.write32(e + 4, (msg_addr >> 32) as u32);
    table.write32(e + 8, msg_data);
    table.write32(e + 12, 0);
}

/// Enables MSI-X on `bdf` and clears the function mask (which also turns INTx off).
pub fn enable_msix<C: PciConfig + ?Sized>(cfg: &C, bdf: Bdf, cap_offset: u16) {
    let d0 = cfg.read32(bdf, cap_offset);
    let control = ((d0 >> 16) | MSIX_ENABLE) & !MSIX_FUNCTION_MASK;
    cfg.write32(bdf, cap_offset, (d0 & 0xffff) | (control << 16));
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use core::cell::RefCell;

    use super::*;
    use crate::{FakePciConfig, capabilities};

    struct Table(RefCell<[u32; 16]>);
    impl Mmio32 for Table {
        fn read32(&self, offset: usize) -> u32 {
            self.0.borrow()[offset / 4]
        }
        fn write32(&self, offset: usize, value: u32) {
            self.0.borrow_mut()[offset / 4] = value;
        }
    }

    #[test]
    fn parse_program_enable() {
        let b = Bdf {
            bus: 0,
            device: 2,
            function: 0,
        };
        let mut s = [0u8; 256];
        s[6] = 0x10;
        s[0x34] = 0x40;
        s[0x40] = CAP_ID_MSIX;
        s[0x42..0x44].copy_from_slice(&(0x4000u16 | 2).to_le_bytes()); // masked, 3 entries
        s[0x44..0x48].copy_from_slice(&(0x800u32 | 1).to_le_bytes()); // BAR 1 + 0x800
        let cfg = FakePciConfig::new(vec![(b, s, [0; 6])]);
        let cap = capabilities(&cfg, b).next().unwrap();
        let m = MsixCap::parse(&cfg, b, cap).unwrap();
        assert_eq!(
            m,
            MsixCap {
                cap_offset: 0x40,
                table_size: 3,
                table: BarRegion {
                    bar: 1,
                    offset: 0x800,
                    length: 48
                }
            }
        );
        let t = Table(RefCell::new([0; 16]));
        program_msix_entry(&t, 1, 0x1_fee0_1000, 0x41);
        assert_eq!(&t.0.borrow()[4..8], &[0xfee0_1000, 1, 0x41, 0]);
        enable_msix(&cfg, b, m.cap_offset);
        assert_eq!(cfg.read32(b, 0x40) >> 16, 0x8002);
    }
}
