//! The memory map: `hvm_memmap_table_entry` (start_info.h), E820 types.

use crate::{PvhError, le};

/// E820 type of usable RAM.
pub const E820_RAM: u32 = 1;
/// Size of one memory-map entry.
pub const MEMMAP_ENTRY_LEN: usize = 24;

mod field {
    pub const ADDR: usize = 0;
    pub const SIZE: usize = 8;
    pub const TYPE: usize = 16;
}

/// A zero-copy view of one memory-map entry of `LEN` bytes: address, size and E820
/// type, in that order, in both layouts the boot path reads: PVH's 24-byte
/// `hvm_memmap_table_entry` ([`MemmapEntry`], a reserved word at the end) and Xen's
/// packed 20-byte E820 entry ([`E820Entry`](crate::E820Entry)).
#[derive(Debug, Clone)]
pub struct MapEntry<T: AsRef<[u8]>, const LEN: usize> {
    buffer: T,
}

/// One 24-byte PVH memory-map entry.
pub type MemmapEntry<T> = MapEntry<T, MEMMAP_ENTRY_LEN>;

impl<T: AsRef<[u8]>, const LEN: usize> MapEntry<T, LEN> {
    /// Wraps `buffer`, checking it holds a whole entry.
    pub fn new_checked(buffer: T) -> Result<Self, PvhError> {
        let len = buffer.as_ref().len();
        if len < LEN {
            return Err(PvhError::Truncated {
                what: if LEN == MEMMAP_ENTRY_LEN {
                    "memory-map entry"
                } else {
                    "E820 entry"
                },
                len,
                need: LEN,
            });
        }
        Ok(Self { buffer })
    }

    /// First address.
    pub fn addr(&self) -> u64 {
        le::u64_at(self.buffer.as_ref(), field::ADDR)
    }
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        le::u64_at(self.buffer.as_ref(), field::SIZE)
    }
    /// E820 type ([`E820_RAM`], reserved, ACPI, ...).
    pub fn kind(&self) -> u32 {
        le::u32_at(self.buffer.as_ref(), field::TYPE)
    }
}

/// A region of the physical memory map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemRegion {
    /// First address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// E820 type.
    pub kind: u32,
}

impl MemRegion {
    /// Reads an entry (either layout).
    pub fn parse<T: AsRef<[u8]>, const LEN: usize>(e: &MapEntry<T, LEN>) -> Self {
        Self {
            addr: e.addr(),
            size: e.size(),
            kind: e.kind(),
        }
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        MEMMAP_ENTRY_LEN
    }

    /// Writes the entry (reserved word zero) into `buf[..24]`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), PvhError> {
        self.emit_as(buf, MEMMAP_ENTRY_LEN)
    }

    /// Writes the entry in the `len`-byte layout (24: PVH, reserved word zero; 20:
    /// packed E820) into `buf[..len]`.
    pub(crate) fn emit_as(&self, buf: &mut [u8], len: usize) -> Result<(), PvhError> {
        let have = buf.len();
        let b = buf.get_mut(..len).ok_or(PvhError::BufferTooSmall {
            len: have,
            need: len,
        })?;
        b.fill(0);
        le::put_u64(b, field::ADDR, self.addr);
        le::put_u64(b, field::SIZE, self.size);
        le::put_u32(b, field::TYPE, self.kind);
        Ok(())
    }

    /// Whether this is usable RAM.
    pub fn is_ram(&self) -> bool {
        self.kind == E820_RAM
    }

    /// One past the last address, saturating.
    pub fn end(&self) -> u64 {
        self.addr.saturating_add(self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trip() {
        let r = MemRegion {
            addr: 0x10_0000,
            size: 0x7ff0_0000,
            kind: E820_RAM,
        };
        let mut b = [0xffu8; 24];
        r.emit(&mut b).unwrap();
        assert_eq!(MemRegion::parse(&MemmapEntry::new_checked(&b).unwrap()), r);
        assert!(r.is_ram());
        assert_eq!(r.end(), 0x8000_0000);
        assert!(MemmapEntry::new_checked(&b[..23]).is_err());
        assert!(r.emit(&mut [0u8; 8]).is_err());
    }
}
