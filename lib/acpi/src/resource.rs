//! Resource templates (`_CRS` buffers, ACPI 6.5 §6.4): the memory windows and
//! interrupts in them. Other descriptors are skipped by their length.

/// Small resource item types (§6.4.2), `tag >> 3 & 0xF`.
const SMALL_IRQ: u8 = 0x04;
const SMALL_END: u8 = 0x0F;
/// Large resource item types (§6.4.3), `tag & 0x7F`.
const LARGE_MEMORY32: u8 = 0x05;
const LARGE_MEMORY32_FIXED: u8 = 0x06;
const LARGE_DWORD_ADDRESS: u8 = 0x07;
const LARGE_EXTENDED_IRQ: u8 = 0x09;
const LARGE_QWORD_ADDRESS: u8 = 0x0A;
/// Address space descriptors' resource type "memory range" (§6.4.3.5).
const ADDRESS_SPACE_MEMORY: u8 = 0;

/// How an interrupt line signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Edge-triggered.
    Edge,
    /// Level-triggered.
    Level,
}

/// Which level (or edge) is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polarity {
    /// Active high (or rising edge).
    High,
    /// Active low (or falling edge).
    Low,
}

/// An interrupt a device raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupt {
    /// A global system interrupt (Extended Interrupt descriptor), or an ISA IRQ
    /// (IRQ descriptor: map it through the MADT's overrides, see [`Self::isa`]).
    pub number: u32,
    /// `number` is an ISA IRQ, not yet a GSI.
    pub isa: bool,
    /// How the line signals.
    pub trigger: Trigger,
    /// Which level or edge is active.
    pub polarity: Polarity,
}

/// One resource the scanner understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// A memory window (Memory32Fixed, Memory32 with min == max, or a DWord/QWord
    /// memory address space).
    Memory {
        /// Physical base address.
        base: u64,
        /// Length in bytes.
        len: u64,
    },
    /// An interrupt (IRQ or Extended Interrupt descriptor).
    Interrupt(Interrupt),
}

/// The resources in a resource template, up to its end tag or the first malformed
/// descriptor.
pub fn resources(template: &[u8]) -> Resources<'_> {
    Resources { b: template }
}

/// Iterator returned by [`resources`].
#[derive(Debug, Clone)]
pub struct Resources<'a> {
    b: &'a [u8],
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl Iterator for Resources<'_> {
    type Item = Resource;

    fn next(&mut self) -> Option<Resource> {
        loop {
            let tag = *self.b.first()?;
            let (kind, body, large) = if tag & 0x80 == 0 {
                let len = usize::from(tag & 0x7);
                let body = self.b.get(1..1 + len)?;
                self.b = &self.b[1 + len..];
                ((tag >> 3) & 0xF, body, false)
            } else {
                let len = usize::from(u16_at(self.b, 1)?);
                let body = self.b.get(3..3 + len)?;
                self.b = &self.b[3 + len..];
                (tag & 0x7F, body, true)
            };
            if !large && kind == SMALL_END {
                self.b = &[];
                return None;
            }
            if let Some(r) = decode(kind, large, body) {
                return Some(r);
            }
        }
    }
}

fn decode(kind: u8, large: bool, b: &[u8]) -> Option<Resource> {
    match (large, kind) {
        // IRQ: mask, then optional flags (bit 0: edge; bit 3: active low). Without
        // flags: edge-triggered, active high (§6.4.2.1).
        (false, SMALL_IRQ) => {
            let mask = u16_at(b, 0)?;
            if mask == 0 {
                return None;
            }
            let flags = b.get(2).copied().unwrap_or(0x01);
            Some(Resource::Interrupt(Interrupt {
                number: mask.trailing_zeros(),
                isa: true,
                trigger: if flags & 0x01 != 0 {
                    Trigger::Edge
                } else {
                    Trigger::Level
                },
                polarity: if flags & 0x08 != 0 {
                    Polarity::Low
                } else {
                    Polarity::High
                },
            }))
        }
        // Extended Interrupt: flags (bit 1: edge; bit 2: active low), count, GSIs.
        (true, LARGE_EXTENDED_IRQ) => {
            let flags = *b.first()?;
            if *b.get(1)? == 0 {
                return None;
            }
            Some(Resource::Interrupt(Interrupt {
                number: u32_at(b, 2)?,
                isa: false,
                trigger: if flags & 0x02 != 0 {
                    Trigger::Edge
                } else {
                    Trigger::Level
                },
                polarity: if flags & 0x04 != 0 {
                    Polarity::Low
                } else {
                    Polarity::High
                },
            }))
        }
        // Memory32Fixed: info, base, length.
        (true, LARGE_MEMORY32_FIXED) => Some(Resource::Memory {
            base: u64::from(u32_at(b, 1)?),
            len: u64::from(u32_at(b, 5)?),
        }),
        // Memory32: info, min, max, alignment, length; a window only when fixed.
        (true, LARGE_MEMORY32) => {
            let (min, max) = (u32_at(b, 1)?, u32_at(b, 5)?);
            (min == max).then_some(Resource::Memory {
                base: u64::from(min),
                len: u64::from(u32_at(b, 13)?),
            })
        }
        // DWord/QWord address space: type, flags, type flags, granularity, min, max,
        // translation, length.
        (true, LARGE_DWORD_ADDRESS) if *b.first()? == ADDRESS_SPACE_MEMORY => {
            Some(Resource::Memory {
                base: u64::from(u32_at(b, 7)?),
                len: u64::from(u32_at(b, 19)?),
            })
        }
        (true, LARGE_QWORD_ADDRESS) if *b.first()? == ADDRESS_SPACE_MEMORY => {
            Some(Resource::Memory {
                base: u64_at(b, 11)?,
                len: u64_at(b, 35)?,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn qemu_microvm_virtio_template() {
        // Memory32Fixed(ReadWrite, 0xFEB02E00, 0x200) and
        // Interrupt(ResourceConsumer, Level, ActiveHigh, Exclusive) { 47 }.
        let crs = [
            0x86, 0x09, 0x00, 0x01, 0x00, 0x2E, 0xB0, 0xFE, 0x00, 0x02, 0x00, 0x00, 0x89, 0x06,
            0x00, 0x01, 0x01, 0x2F, 0x00, 0x00, 0x00, 0x79, 0x00,
        ];
        let r: Vec<_> = resources(&crs).collect();
        assert_eq!(
            r,
            [
                Resource::Memory {
                    base: 0xFEB0_2E00,
                    len: 0x200
                },
                Resource::Interrupt(Interrupt {
                    number: 47,
                    isa: false,
                    trigger: Trigger::Level,
                    polarity: Polarity::High
                })
            ]
        );
    }

    #[test]
    fn small_irq_and_address_spaces() {
        let mut crs = vec![0x23, 0x00, 0x10, 0x08]; // IRQ 12, level, active low
        crs.extend_from_slice(&[0x22, 0x20, 0x00]); // IRQNoFlags 5
        crs.extend_from_slice(&[0x47, 1, 0x70, 0, 0x70, 0, 1, 8]); // IO: skipped
        let mut q = vec![0x8A, 43, 0, ADDRESS_SPACE_MEMORY, 0, 0];
        q.extend_from_slice(&0u64.to_le_bytes());
        q.extend_from_slice(&0x1_0000_0000u64.to_le_bytes());
        q.extend_from_slice(&0x1_0000_0FFFu64.to_le_bytes());
        q.extend_from_slice(&0u64.to_le_bytes());
        q.extend_from_slice(&0x1000u64.to_le_bytes());
        crs.extend_from_slice(&q);
        crs.extend_from_slice(&[0x79, 0x00]);
        crs.extend_from_slice(&[0x22, 0x01, 0x00]); // after the end tag: ignored
        let r: Vec<_> = resources(&crs).collect();
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!(
            r[0],
            Resource::Interrupt(Interrupt {
                number: 12,
                isa: true,
                trigger: Trigger::Level,
                polarity: Polarity::Low
            })
        );
        assert!(
            matches!(r[1], Resource::Interrupt(i) if i.number == 5 && i.trigger == Trigger::Edge)
        );
        assert_eq!(
            r[2],
            Resource::Memory {
                base: 0x1_0000_0000,
                len: 0x1000
            }
        );
    }

    #[test]
    fn truncated_descriptors_end_the_list() {
        let crs = [0x86, 0x09, 0x00, 0x01, 0x00, 0x2E];
        assert_eq!(resources(&crs).count(), 0);
        assert_eq!(resources(&[0x89, 0xFF, 0xFF]).count(), 0);
        assert_eq!(resources(&[]).count(), 0);
    }
}
