//! Base address registers: decoding and sizing (PCI 3.0 §6.2.5.1), and assigning
//! addresses to the BARs firmware left unassigned.

use crate::config::header::{BAR0, CMD_IO, CMD_MEMORY, COMMAND};
use crate::{Bdf, PciConfig};

/// A memory BAR's address and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bar {
    /// Address.
    pub addr: u64,
    /// Size in bytes (a power of two).
    pub size: u64,
}

/// Why a BAR cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BarError {
    /// An I/O-space BAR where a memory BAR is needed.
    #[error("{bdf}: BAR {bar} is an I/O-space BAR; only memory BARs are supported")]
    Io {
        /// Function.
        bdf: Bdf,
        /// BAR index.
        bar: u8,
    },
    /// The BAR holds no address (firmware did not assign one) or is malformed.
    #[error("{bdf}: BAR {bar} is unassigned or invalid (raw {raw:#x})")]
    Invalid {
        /// Function.
        bdf: Bdf,
        /// BAR index.
        bar: u8,
        /// Raw (combined) BAR value.
        raw: u64,
    },
}

/// Decodes and sizes memory BAR `bar` (0..=5) of `bdf`. Sizing writes the BAR with
/// memory and I/O decoding off, so the all-ones address never decodes, then restores
/// the BAR and the command register.
pub fn size_bar<C: PciConfig + ?Sized>(cfg: &C, bdf: Bdf, bar: u8) -> Result<Bar, BarError> {
    let off = BAR0 + 4 * u16::from(bar);
    let lo = cfg.read32(bdf, off);
    if lo & 1 != 0 {
        return Err(BarError::Io { bdf, bar });
    }
    let is64 = match (lo >> 1) & 3 {
        0 => false,
        2 if bar < 5 => true,
        _ => {
            return Err(BarError::Invalid {
                bdf,
                bar,
                raw: u64::from(lo),
            });
        }
    };
    let hi = if is64 { cfg.read32(bdf, off + 4) } else { 0 };
    let addr = (u64::from(hi) << 32) | u64::from(lo & !0xf);

    let cmd = cfg.read32(bdf, COMMAND) & 0xffff;
    cfg.write32(bdf, COMMAND, cmd & !(CMD_IO | CMD_MEMORY));
    cfg.write32(bdf, off, u32::MAX);
    let mask_lo = cfg.read32(bdf, off);
    cfg.write32(bdf, off, lo);
    let mask_hi = if is64 {
        cfg.write32(bdf, off + 4, u32::MAX);
        let m = cfg.read32(bdf, off + 4);
        cfg.write32(bdf, off + 4, hi);
        m
    } else {
        u32::MAX
    };
    cfg.write32(bdf, COMMAND, cmd);
    let mask = (u64::from(mask_hi) << 32) | u64::from(mask_lo & !0xf);
    let size = (!mask).wrapping_add(1);
    if addr == 0
        || mask == 0
        || size == 0
        || !size.is_power_of_two()
        || addr.checked_add(size).is_none()
    {
        return Err(BarError::Invalid {
            bdf,
            bar,
            raw: addr,
        });
    }
    Ok(Bar { addr, size })
}

/// First address of the 32-bit BAR window: above every low-memory cap QEMU uses and
/// above q35's MMCONFIG.
const WINDOW32_START: u64 = 0xE000_0000;
/// End of the 32-bit BAR window: below the I/O APIC and the LAPIC.
const WINDOW32_END: u64 = 0xFEB0_0000;
/// 64-bit BARs start on a 1 GiB boundary above both 4 GiB and the top of RAM.
const WINDOW64_ALIGN: u64 = 1 << 30;

/// Where unassigned BARs go: 32-bit BARs in the PCI hole below the I/O APIC,
/// 64-bit BARs above both 4 GiB and the top of RAM. Allocation is a bump pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarWindows {
    /// Next free address for a 32-bit BAR.
    pub next32: u64,
    /// End of the 32-bit window.
    pub end32: u64,
    /// Next free address for a 64-bit BAR.
    pub next64: u64,
}

impl BarWindows {
    /// The windows for a machine whose RAM ends at `ram_top`.
    pub fn new(ram_top: u64) -> Self {
        Self {
            next32: WINDOW32_START,
            end32: WINDOW32_END,
            next64: ram_top.max(1 << 32).next_multiple_of(WINDOW64_ALIGN),
        }
    }

    /// A naturally aligned address for a BAR of `size` bytes (a power of two), or
    /// `None` when the window is full.
    fn take(&mut self, size: u64, is64: bool) -> Option<u64> {
        if is64 {
            let a = self.next64.checked_next_multiple_of(size)?;
            self.next64 = a.checked_add(size)?;
            Some(a)
        } else {
            let a = self.next32.checked_next_multiple_of(size)?;
            let end = a.checked_add(size).filter(|e| *e <= self.end32)?;
            self.next32 = end;
            Some(a)
        }
    }
}

/// Gives every unassigned memory BAR of `bdf` an address from `w`. Minimal firmware
/// (qboot on QEMU pc/q35) assigns none; BARs that SeaBIOS or the VMM assigned are
/// left alone, as are I/O BARs. A BAR that does not fit is left at 0 (unusable).
pub fn assign_bars<C: PciConfig + ?Sized>(cfg: &C, bdf: Bdf, w: &mut BarWindows) {
    let cmd = cfg.read32(bdf, COMMAND) & 0xffff;
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
        } else {
            w.take(size, is64)
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

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::FakePciConfig;

    const B: Bdf = Bdf {
        bus: 0,
        device: 3,
        function: 0,
    };

    /// BAR0 32-bit 4 KiB at `bar0`, BAR1 I/O, BAR2+3 64-bit 16 KiB at `bar2`.
    fn space(bar0: u32, bar2: u64) -> [u8; 256] {
        let mut s = [0u8; 256];
        s[0..4].copy_from_slice(&0x1041_1af4u32.to_le_bytes());
        s[4] = 0x07; // IO | MEMORY | BUS_MASTER
        s[0x10..0x14].copy_from_slice(&bar0.to_le_bytes());
        s[0x14..0x18].copy_from_slice(&0xc001u32.to_le_bytes());
        s[0x18..0x1c].copy_from_slice(&((bar2 as u32) | 0b1100).to_le_bytes());
        s[0x1c..0x20].copy_from_slice(&((bar2 >> 32) as u32).to_le_bytes());
        s
    }

    const SIZES: [u64; 6] = [0x1000, 0x100, 0x4000, 0, 0, 0];

    #[test]
    fn sizing_decodes_32_and_64_bit_bars_and_restores_them() {
        let cfg = FakePciConfig::new(vec![(B, space(0xfebd_1000, 0x8_0000_0000), SIZES)]);
        assert_eq!(
            size_bar(&cfg, B, 0),
            Ok(Bar {
                addr: 0xfebd_1000,
                size: 0x1000
            })
        );
        assert_eq!(
            size_bar(&cfg, B, 2),
            Ok(Bar {
                addr: 0x8_0000_0000,
                size: 0x4000
            })
        );
        assert_eq!(size_bar(&cfg, B, 1), Err(BarError::Io { bdf: B, bar: 1 }));
        assert_eq!(cfg.read32(B, 0x10), 0xfebd_1000, "BAR restored");
        assert_eq!(cfg.read32(B, COMMAND) & 0xffff, 0x07, "command restored");
        let err = size_bar(&cfg, B, 4).unwrap_err();
        assert_eq!(
            err,
            BarError::Invalid {
                bdf: B,
                bar: 4,
                raw: 0
            }
        );
        assert!(err.to_string().contains("BAR 4 is unassigned"), "{err}");
    }

    #[test]
    fn assignment_fills_only_unassigned_bars_naturally_aligned() {
        let cfg = FakePciConfig::new(vec![(B, space(0, 0), SIZES)]);
        let mut w = BarWindows::new(3 << 30);
        w.next32 += 0x10; // misaligned on purpose
        assign_bars(&cfg, B, &mut w);
        assert_eq!(size_bar(&cfg, B, 0).map(|b| b.addr), Ok(0xE000_1000));
        assert_eq!(size_bar(&cfg, B, 2).map(|b| b.addr), Ok(1 << 32));
        assert_eq!(cfg.read32(B, 0x14), 0xc001, "I/O BAR untouched");
        assert_eq!(cfg.read32(B, COMMAND) & 0xffff, 0x07, "command restored");
        assert_eq!(w.next64, (1 << 32) + 0x4000);

        // Already assigned: left alone.
        let cfg = FakePciConfig::new(vec![(B, space(0xfebd_1000, 0x8_0000_0000), SIZES)]);
        let mut w = BarWindows::new(8 << 30);
        assign_bars(&cfg, B, &mut w);
        assert_eq!(cfg.read32(B, 0x10), 0xfebd_1000);
        assert_eq!(w, BarWindows::new(8 << 30));
        // 64-bit window starts above RAM.
        assert_eq!(w.next64, 8 << 30);
    }

    #[test]
    fn full_32_bit_window_leaves_the_bar_unassigned() {
        let cfg = FakePciConfig::new(vec![(B, space(0, 0), SIZES)]);
        let mut w = BarWindows::new(0);
        w.next32 = w.end32 - 0x800;
        assign_bars(&cfg, B, &mut w);
        assert_eq!(cfg.read32(B, 0x10) & !0xf, 0);
        assert_eq!(w.next32, w.end32 - 0x800);
    }
}
