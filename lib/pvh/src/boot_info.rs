//! Following `hvm_start_info`'s pointers through guest memory: the command line and
//! the memory map, copied out and bounded.

use alloc::string::String;
use alloc::vec::Vec;

use crate::{MEMMAP_ENTRY_LEN, MemRegion, MemmapEntry, PvhError, StartInfo, StartInfoRepr};

/// Most memory-map entries read; a longer map is cut (QEMU passes a handful).
pub const MAX_MEMMAP_ENTRIES: usize = 128;

/// `start_info` flag: this is the initial (control) domain, Xen's dom0
/// (xen/include/public/xen.h `SIF_INITDOMAIN`).
pub const SIF_INITDOMAIN: u32 = 1 << 1;

/// Read access to guest physical memory, supplied by the platform.
pub trait GuestMemory {
    /// Copies `buf.len()` bytes from physical address `paddr` into `buf`, or says
    /// why it cannot.
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), PvhError>;
}

/// Guest memory held in a byte slice that starts at physical address `base` (tests,
/// fuzzing, and loaders that copy the structures first).
#[derive(Debug, Clone, Copy)]
pub struct SliceMemory<'a> {
    /// Physical address of `bytes[0]`.
    pub base: u64,
    /// The memory.
    pub bytes: &'a [u8],
}

impl GuestMemory for SliceMemory<'_> {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), PvhError> {
        let err = PvhError::Unreadable {
            paddr,
            len: buf.len(),
        };
        let start = paddr
            .checked_sub(self.base)
            .and_then(|o| usize::try_from(o).ok())
            .ok_or(err)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.bytes.get(start..end))
            .ok_or(err)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// What the loader told us, copied out of guest memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootInfo {
    /// The command line (invalid UTF-8 replaced by U+FFFD).
    pub cmdline: String,
    /// The memory map, in the loader's order (at most [`MAX_MEMMAP_ENTRIES`]).
    pub memmap: Vec<MemRegion>,
    /// Physical address of the ACPI RSDP, 0 when the loader passed none.
    pub rsdp: u64,
    /// The `SIF_*` flags (Xen sets [`SIF_INITDOMAIN`] for dom0; other loaders 0).
    pub flags: u32,
}

impl BootInfo {
    /// Reads `hvm_start_info` at `paddr` and what it points to. A command line
    /// without a NUL within `max_cmdline + 1` bytes is cut there (the argument parser
    /// then rejects it as too long); it is read byte by byte, never past its NUL.
    pub fn read<M: GuestMemory + ?Sized>(
        mem: &M,
        paddr: u64,
        max_cmdline: usize,
    ) -> Result<Self, PvhError> {
        let info = Self::read_memmap_optional(mem, paddr, max_cmdline)?;
        if info.memmap.is_empty() {
            return Err(PvhError::NoMemoryMap);
        }
        Ok(info)
    }

    /// Like [`read`](Self::read), but a version 0 structure or one without a memory
    /// map is accepted and gives an empty [`memmap`](Self::memmap): Xen's PVH dom0
    /// builder passes no map, the guest asks `XENMEM_memory_map` instead.
    pub fn read_memmap_optional<M: GuestMemory + ?Sized>(
        mem: &M,
        paddr: u64,
        max_cmdline: usize,
    ) -> Result<Self, PvhError> {
        let mut raw = [0u8; StartInfo::<&[u8]>::MAX_LEN];
        // The version 0 structure first: its version says how much more there is.
        mem.read(paddr, &mut raw[..40])?;
        // A version >= 1 structure does not fit 40 bytes: read all of it.
        if StartInfo::new_checked(&raw[..40]).is_err() {
            mem.read(paddr, &mut raw)?;
        }
        let info = StartInfoRepr::parse(&StartInfo::new_checked(&raw[..])?)?;

        let mut cmdline = String::new();
        if info.cmdline_paddr != 0 {
            let mut bytes = Vec::new();
            for i in 0..=max_cmdline as u64 {
                let mut b = [0u8];
                let Some(a) = info.cmdline_paddr.checked_add(i) else {
                    break;
                };
                mem.read(a, &mut b)?;
                if b[0] == 0 {
                    break;
                }
                bytes.push(b[0]);
            }
            cmdline = String::from_utf8_lossy(&bytes).into_owned();
        }
        if info.version < 1 || info.memmap_paddr == 0 || info.memmap_entries == 0 {
            return Ok(BootInfo {
                cmdline,
                memmap: Vec::new(),
                rsdp: info.rsdp_paddr,
                flags: info.flags,
            });
        }
        let entries = (info.memmap_entries as usize).min(MAX_MEMMAP_ENTRIES);
        let mut memmap = Vec::with_capacity(entries);
        let mut e = [0u8; MEMMAP_ENTRY_LEN];
        for i in 0..entries as u64 {
            let a = info
                .memmap_paddr
                .checked_add(i * MEMMAP_ENTRY_LEN as u64)
                .ok_or(PvhError::Unreadable {
                    paddr: info.memmap_paddr,
                    len: entries * MEMMAP_ENTRY_LEN,
                })?;
            mem.read(a, &mut e)?;
            memmap.push(MemRegion::parse(&MemmapEntry::new_checked(&e[..])?));
        }
        Ok(BootInfo {
            cmdline,
            memmap,
            rsdp: info.rsdp_paddr,
            flags: info.flags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::E820_RAM;

    /// Guest memory as QEMU lays it out: start_info at 0x100, cmdline at 0x200,
    /// memory map at 0x400.
    fn guest(cmdline: &[u8], entries: &[MemRegion]) -> Vec<u8> {
        let mut m = vec![0u8; 0x400 + entries.len() * 24];
        StartInfoRepr {
            version: 1,
            flags: 0,
            cmdline_paddr: 0x1200,
            rsdp_paddr: 0xf_5a40,
            memmap_paddr: 0x1400,
            memmap_entries: entries.len() as u32,
        }
        .emit(&mut m[0x100..])
        .unwrap();
        m[0x200..0x200 + cmdline.len()].copy_from_slice(cmdline);
        for (i, r) in entries.iter().enumerate() {
            r.emit(&mut m[0x400 + 24 * i..]).unwrap();
        }
        m
    }

    const QEMU_MAP: [MemRegion; 3] = [
        MemRegion {
            addr: 0,
            size: 0x9fc00,
            kind: E820_RAM,
        },
        MemRegion {
            addr: 0xf0000,
            size: 0x10000,
            kind: 2,
        },
        MemRegion {
            addr: 0x10_0000,
            size: 0x7fe0_0000,
            kind: E820_RAM,
        },
    ];

    #[test]
    fn reads_qemu_like_boot_info() {
        let m = guest(b"console=ttyS0 -- -p 80\0garbage", &QEMU_MAP);
        let mem = SliceMemory {
            base: 0x1000,
            bytes: &m,
        };
        let info = BootInfo::read(&mem, 0x1100, 4096).unwrap();
        assert_eq!(info.cmdline, "console=ttyS0 -- -p 80");
        assert_eq!(info.memmap, QEMU_MAP);
        assert_eq!(info.rsdp, 0xf_5a40);
    }

    #[test]
    fn long_cmdline_is_cut_and_invalid_utf8_replaced() {
        let mut m = guest(&[b'a'; 0x1ff], &QEMU_MAP);
        m[0x200] = 0xff;
        let mem = SliceMemory {
            base: 0x1000,
            bytes: &m,
        };
        let info = BootInfo::read(&mem, 0x1100, 16).unwrap();
        assert_eq!(info.cmdline, "\u{fffd}aaaaaaaaaaaaaaaa");
    }

    #[test]
    fn errors_name_the_problem() {
        let mem = SliceMemory {
            base: 0x1000,
            bytes: &[0u8; 0x80],
        };
        assert_eq!(
            BootInfo::read(&mem, 0x1100, 16),
            Err(PvhError::Unreadable {
                paddr: 0x1100,
                len: 40
            })
        );
        assert_eq!(BootInfo::read(&mem, 0x1000, 16), Err(PvhError::BadMagic(0)));
        let m = guest(b"\0", &[]);
        let mem = SliceMemory {
            base: 0x1000,
            bytes: &m,
        };
        assert_eq!(BootInfo::read(&mem, 0x1100, 16), Err(PvhError::NoMemoryMap));
        // Xen's dom0 case: no map, the rest still read.
        let info = BootInfo::read_memmap_optional(&mem, 0x1100, 16).unwrap();
        assert!(info.memmap.is_empty());
        assert_eq!(info.rsdp, 0xf_5a40);
        // A map that runs off the end of memory.
        let mut m = guest(b"\0", &QEMU_MAP);
        m.truncate(m.len() - 1);
        let mem = SliceMemory {
            base: 0x1000,
            bytes: &m,
        };
        assert!(matches!(
            BootInfo::read(&mem, 0x1100, 16),
            Err(PvhError::Unreadable { paddr: 0x1430, .. })
        ));
    }
}
