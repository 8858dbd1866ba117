//! An in-memory configuration space for tests and fuzzing.

use alloc::vec::Vec;
use core::cell::RefCell;

use crate::config::header::{BAR0, COMMAND};
use crate::{Bdf, PciConfig};

/// An in-memory configuration space: 256 bytes per function, BAR registers that
/// answer sizing writes (all ones) with the sizes given and keep the addresses
/// written to them; the command register and other dwords keep what is written.
#[derive(Debug, Clone)]
pub struct FakePciConfig {
    functions: RefCell<Vec<FakeFunction>>,
}

#[derive(Debug, Clone)]
struct FakeFunction {
    bdf: Bdf,
    space: [u8; 256],
    sizes: [u64; 6],
    sizing: [bool; 6],
}

impl FakePciConfig {
    /// A configuration space with the given functions and BAR sizes (0: no BAR, or
    /// the upper half of a 64-bit BAR).
    pub fn new(functions: Vec<(Bdf, [u8; 256], [u64; 6])>) -> Self {
        let functions = functions
            .into_iter()
            .map(|(bdf, space, sizes)| FakeFunction {
                bdf,
                space,
                sizes,
                sizing: [false; 6],
            })
            .collect();
        Self {
            functions: RefCell::new(functions),
        }
    }
}

fn dword(space: &[u8; 256], o: usize) -> u32 {
    u32::from_le_bytes([space[o], space[o + 1], space[o + 2], space[o + 3]])
}

const BARS: core::ops::Range<usize> = BAR0 as usize..BAR0 as usize + 24;

impl PciConfig for FakePciConfig {
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        let functions = self.functions.borrow();
        let Some(f) = functions.iter().find(|f| f.bdf == bdf) else {
            return u32::MAX;
        };
        let o = usize::from(offset & 0xfc);
        let raw = dword(&f.space, o);
        if BARS.contains(&o) {
            let i = (o - BARS.start) / 4;
            if f.sizing[i] {
                let lower_is_64 = i > 0 && f.space[o - 4] & 0b111 == 0b100;
                return if f.sizes[i] != 0 {
                    (!(f.sizes[i] - 1) as u32 & !0xf) | (raw & 0xf)
                } else if lower_is_64 && f.sizes[i - 1] != 0 {
                    (!(f.sizes[i - 1] - 1) >> 32) as u32
                } else {
                    0
                };
            }
        }
        raw
    }

    fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
        let mut functions = self.functions.borrow_mut();
        let Some(f) = functions.iter_mut().find(|f| f.bdf == bdf) else {
            return;
        };
        let o = usize::from(offset & 0xfc);
        let raw = dword(&f.space, o);
        let stored = if BARS.contains(&o) {
            let i = (o - BARS.start) / 4;
            f.sizing[i] = value == u32::MAX;
            if f.sizing[i] {
                return;
            }
            let upper_half = f.sizes[i] == 0 && i > 0 && f.space[o - 4] & 0b111 == 0b100;
            if upper_half {
                value
            } else {
                // The type bits are read-only.
                (value & !0xf) | (raw & 0xf)
            }
        } else if o == usize::from(COMMAND) {
            // The status half is write-one-to-clear on hardware; keep it.
            (raw & 0xffff_0000) | (value & 0xffff)
        } else {
            value
        };
        f.space[o..o + 4].copy_from_slice(&stored.to_le_bytes());
    }
}
