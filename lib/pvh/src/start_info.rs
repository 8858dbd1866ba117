//! `hvm_start_info` (start_info.h): a zero-copy view and its parsed form.

use crate::{PvhError, le};

/// `hvm_start_info.magic` ("xEn3" with the high bit of "x" set).
pub const START_INFO_MAGIC: u32 = 0x336e_c578;

/// Field offsets (start_info.h).
mod field {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 4;
    pub const FLAGS: usize = 8;
    pub const CMDLINE_PADDR: usize = 24;
    pub const RSDP_PADDR: usize = 32;
    pub const MEMMAP_PADDR: usize = 40;
    pub const MEMMAP_ENTRIES: usize = 48;
    /// Size of the version 0 structure (up to `rsdp_paddr`).
    pub const LEN_V0: usize = 40;
    /// Size of the version 1 structure (with the memory map and a reserved word).
    pub const LEN_V1: usize = 56;
}

/// A zero-copy view of `hvm_start_info`.
#[derive(Debug, Clone)]
pub struct StartInfo<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> StartInfo<T> {
    /// Bytes to read from guest memory to be sure of holding any version.
    pub const MAX_LEN: usize = field::LEN_V1;

    /// Wraps `buffer`, checking it holds at least the version 0 structure, and the
    /// version 1 fields when the version says so. No accessor panics afterwards.
    pub fn new_checked(buffer: T) -> Result<Self, PvhError> {
        let p = Self { buffer };
        let len = p.buffer.as_ref().len();
        let need = if len >= field::LEN_V0 && p.version() >= 1 {
            field::LEN_V1
        } else {
            field::LEN_V0
        };
        if len < need {
            return Err(PvhError::Truncated {
                what: "hvm_start_info",
                len,
                need,
            });
        }
        Ok(p)
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// `magic`.
    pub fn magic(&self) -> u32 {
        le::u32_at(self.bytes(), field::MAGIC)
    }
    /// `version`: 0, or 1 and later with a memory map.
    pub fn version(&self) -> u32 {
        le::u32_at(self.bytes(), field::VERSION)
    }
    /// `flags` (SIF_*).
    pub fn flags(&self) -> u32 {
        le::u32_at(self.bytes(), field::FLAGS)
    }
    /// Physical address of the NUL-terminated command line; 0 when none.
    pub fn cmdline_paddr(&self) -> u64 {
        le::u64_at(self.bytes(), field::CMDLINE_PADDR)
    }
    /// Physical address of the ACPI RSDP; 0 when none.
    pub fn rsdp_paddr(&self) -> u64 {
        le::u64_at(self.bytes(), field::RSDP_PADDR)
    }
    /// Physical address of the memory map (version >= 1; 0 otherwise).
    pub fn memmap_paddr(&self) -> u64 {
        le::u64_at(self.bytes(), field::MEMMAP_PADDR)
    }
    /// Number of memory-map entries (version >= 1; 0 otherwise).
    pub fn memmap_entries(&self) -> u32 {
        le::u32_at(self.bytes(), field::MEMMAP_ENTRIES)
    }
}

/// `hvm_start_info`, parsed: what Oasis uses of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartInfoRepr {
    /// Structure version.
    pub version: u32,
    /// `flags`.
    pub flags: u32,
    /// Command line address (0: none).
    pub cmdline_paddr: u64,
    /// RSDP address (0: none).
    pub rsdp_paddr: u64,
    /// Memory map address and entry count (`(0, 0)` for version 0).
    pub memmap_paddr: u64,
    /// Entries in the memory map.
    pub memmap_entries: u32,
}

impl StartInfoRepr {
    /// Checks the magic and reads the fields.
    pub fn parse<T: AsRef<[u8]>>(p: &StartInfo<T>) -> Result<Self, PvhError> {
        if p.magic() != START_INFO_MAGIC {
            return Err(PvhError::BadMagic(p.magic()));
        }
        let v1 = p.version() >= 1;
        Ok(Self {
            version: p.version(),
            flags: p.flags(),
            cmdline_paddr: p.cmdline_paddr(),
            rsdp_paddr: p.rsdp_paddr(),
            memmap_paddr: if v1 { p.memmap_paddr() } else { 0 },
            memmap_entries: if v1 { p.memmap_entries() } else { 0 },
        })
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        if self.version >= 1 {
            field::LEN_V1
        } else {
            field::LEN_V0
        }
    }

    /// Writes the structure (unused fields zero) into `buf[..buffer_len()]`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), PvhError> {
        let need = self.buffer_len();
        let len = buf.len();
        let b = buf
            .get_mut(..need)
            .ok_or(PvhError::BufferTooSmall { len, need })?;
        b.fill(0);
        le::put_u32(b, field::MAGIC, START_INFO_MAGIC);
        le::put_u32(b, field::VERSION, self.version);
        le::put_u32(b, field::FLAGS, self.flags);
        le::put_u64(b, field::CMDLINE_PADDR, self.cmdline_paddr);
        le::put_u64(b, field::RSDP_PADDR, self.rsdp_paddr);
        if self.version >= 1 {
            le::put_u64(b, field::MEMMAP_PADDR, self.memmap_paddr);
            le::put_u32(b, field::MEMMAP_ENTRIES, self.memmap_entries);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1() -> StartInfoRepr {
        StartInfoRepr {
            version: 1,
            flags: 0,
            cmdline_paddr: 0x2000,
            rsdp_paddr: 0xf_5a40,
            memmap_paddr: 0x3000,
            memmap_entries: 3,
        }
    }

    #[test]
    fn round_trip_v1_and_v0() {
        let mut b = [0xaau8; 64];
        v1().emit(&mut b).unwrap();
        let p = StartInfo::new_checked(&b[..56]).unwrap();
        assert_eq!(StartInfoRepr::parse(&p), Ok(v1()));
        assert_eq!(p.magic(), START_INFO_MAGIC);

        let v0 = StartInfoRepr {
            version: 0,
            memmap_paddr: 0,
            memmap_entries: 0,
            ..v1()
        };
        let mut b = [0u8; 40];
        v0.emit(&mut b).unwrap();
        let p = StartInfo::new_checked(&b[..]).unwrap();
        assert_eq!(StartInfoRepr::parse(&p), Ok(v0));
    }

    #[test]
    fn short_buffers_and_bad_magic_are_errors() {
        let mut b = [0u8; 56];
        v1().emit(&mut b).unwrap();
        assert_eq!(
            StartInfo::new_checked(&b[..48]).unwrap_err(),
            PvhError::Truncated {
                what: "hvm_start_info",
                len: 48,
                need: 56
            }
        );
        assert!(StartInfo::new_checked(&b[..10]).is_err());
        assert_eq!(
            v1().emit(&mut [0u8; 50]),
            Err(PvhError::BufferTooSmall { len: 50, need: 56 })
        );
        b[0] ^= 1;
        let err = StartInfoRepr::parse(&StartInfo::new_checked(&b[..]).unwrap()).unwrap_err();
        assert_eq!(err, PvhError::BadMagic(START_INFO_MAGIC ^ 1));
        assert!(err.to_string().contains("not booted through PVH"), "{err}");
    }
}
