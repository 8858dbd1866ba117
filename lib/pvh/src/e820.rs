//! Xen's memory map: the packed 20-byte E820 entries `XENMEM_memory_map` returns
//! (xen/include/public/memory.h: "the same format as returned by the BIOS INT 0x15
//! EAX=0xE820 call"; Xen's `struct __packed e820entry`).
//!
//! Xen's PVH dom0 builder passes a version 0 `hvm_start_info` without a memory map;
//! the guest asks the hypervisor instead. What comes back is untrusted like any other
//! input: [`parse_e820`] checks the count against the buffer, every entry's range,
//! and that no two RAM regions overlap (the heap would hand out the same bytes twice).

use alloc::vec::Vec;

use crate::boot_info::MAX_MEMMAP_ENTRIES;
use crate::{MemRegion, PvhError};

/// Size of one packed E820 entry.
pub const E820_ENTRY_LEN: usize = 20;

/// A zero-copy view of one packed E820 entry.
pub type E820Entry<T> = crate::memmap::MapEntry<T, E820_ENTRY_LEN>;

impl MemRegion {
    /// Reads a packed E820 entry.
    pub fn parse_e820<T: AsRef<[u8]>>(e: &E820Entry<T>) -> Self {
        Self::parse(e)
    }

    /// Writes the region as a packed E820 entry into `buf[..20]`.
    pub fn emit_e820(&self, buf: &mut [u8]) -> Result<(), PvhError> {
        self.emit_as(buf, E820_ENTRY_LEN)
    }
}

/// Parses `count` packed entries from the start of `bytes` (the buffer handed to
/// `XENMEM_memory_map` and the count it wrote back). Errors: a count larger than
/// the buffer or [`MAX_MEMMAP_ENTRIES`], an empty or wrapping entry, RAM regions that
/// overlap, or no RAM at all.
pub fn parse_e820(bytes: &[u8], count: usize) -> Result<Vec<MemRegion>, PvhError> {
    if count > MAX_MEMMAP_ENTRIES {
        return Err(PvhError::TooManyEntries {
            count,
            max: MAX_MEMMAP_ENTRIES,
        });
    }
    let need = count * E820_ENTRY_LEN;
    let table = bytes.get(..need).ok_or(PvhError::Truncated {
        what: "E820 table",
        len: bytes.len(),
        need,
    })?;
    let mut map = Vec::with_capacity(count);
    for (index, chunk) in table.chunks_exact(E820_ENTRY_LEN).enumerate() {
        let r = MemRegion::parse_e820(&E820Entry::new_checked(chunk)?);
        if r.size == 0 || r.addr.checked_add(r.size).is_none() {
            return Err(PvhError::BadRegion {
                index,
                addr: r.addr,
                size: r.size,
            });
        }
        if r.is_ram()
            && let Some(other) = map
                .iter()
                .position(|o: &MemRegion| o.is_ram() && o.addr < r.end() && r.addr < o.end())
        {
            return Err(PvhError::OverlappingRam {
                first: other,
                second: index,
            });
        }
        map.push(r);
    }
    if !map.iter().any(MemRegion::is_ram) {
        return Err(PvhError::NoRam);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::E820_RAM;

    /// What Xen 4.17 gives a 64 MiB PVH dom0 on QEMU q35 (shape, not exact values).
    const XEN_DOM0: [MemRegion; 4] = [
        MemRegion {
            addr: 0,
            size: 0x9_f000,
            kind: E820_RAM,
        },
        MemRegion {
            addr: 0xf_0000,
            size: 0x1_0000,
            kind: 2,
        },
        MemRegion {
            addr: 0x10_0000,
            size: 0x3f0_0000,
            kind: E820_RAM,
        },
        MemRegion {
            addr: 0x4000_0000,
            size: 0x1000,
            kind: 3,
        },
    ];

    fn table(map: &[MemRegion]) -> Vec<u8> {
        let mut b = vec![0u8; map.len() * E820_ENTRY_LEN];
        for (r, chunk) in map.iter().zip(b.chunks_exact_mut(E820_ENTRY_LEN)) {
            r.emit_e820(chunk).unwrap();
        }
        b
    }

    #[test]
    fn parses_packed_entries() {
        let b = table(&XEN_DOM0);
        assert_eq!(b.len(), 80);
        assert_eq!(parse_e820(&b, 4).unwrap(), XEN_DOM0);
        // Fewer than the buffer holds: Xen writes back how many it stored.
        assert_eq!(parse_e820(&b, 3).unwrap(), XEN_DOM0[..3]);
        let mut small = [0u8; 19];
        assert!(XEN_DOM0[0].emit_e820(&mut small).is_err());
        assert!(E820Entry::new_checked(&small[..]).is_err());
    }

    #[test]
    fn rejects_what_would_corrupt_the_heap() {
        let b = table(&XEN_DOM0);
        assert_eq!(
            parse_e820(&b, 5),
            Err(PvhError::Truncated {
                what: "E820 table",
                len: 80,
                need: 100
            })
        );
        assert_eq!(
            parse_e820(&b, 1000),
            Err(PvhError::TooManyEntries {
                count: 1000,
                max: MAX_MEMMAP_ENTRIES
            })
        );
        assert_eq!(parse_e820(&b, 0), Err(PvhError::NoRam));
        assert_eq!(parse_e820(&b[20..], 1), Err(PvhError::NoRam));

        let mut overlap = XEN_DOM0;
        overlap[2].addr = 0x8_0000;
        assert_eq!(
            parse_e820(&table(&overlap), 4),
            Err(PvhError::OverlappingRam {
                first: 0,
                second: 2
            })
        );
        // Reserved regions may overlap RAM (firmware maps do that); RAM may not.
        let mut reserved = XEN_DOM0;
        reserved[1].addr = 0x9_0000;
        assert!(parse_e820(&table(&reserved), 4).is_ok());

        let mut wraps = XEN_DOM0;
        wraps[3].addr = u64::MAX - 10;
        assert_eq!(
            parse_e820(&table(&wraps), 4),
            Err(PvhError::BadRegion {
                index: 3,
                addr: u64::MAX - 10,
                size: 0x1000
            })
        );
        let mut empty = XEN_DOM0;
        empty[0].size = 0;
        assert!(matches!(
            parse_e820(&table(&empty), 4),
            Err(PvhError::BadRegion { index: 0, .. })
        ));
    }
}
