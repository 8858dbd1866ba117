//! `oasis-pvh`: the PVH boot ABI a loader (QEMU, Firecracker, Cloud Hypervisor, Xen)
//! hands to the kernel, parsed from bytes.
//!
//! The loader puts an `hvm_start_info` structure in guest memory and passes its
//! physical address in EBX (xen/include/public/arch-x86/hvm/start_info.h). That
//! structure points at a NUL-terminated command line, an E820-style memory map and
//! the ACPI RSDP. Everything here is untrusted input:
//!
//! - [`StartInfo`] / [`StartInfoRepr`]: the fixed structure (Packet/Repr).
//! - [`MemmapEntry`] / [`MemRegion`]: one 24-byte memory-map entry (Packet/Repr).
//! - [`BootInfo::read`]: follows the pointers through a [`GuestMemory`] the
//!   platform supplies, copying the command line and the map out, bounded.
//! - [`parse_e820`] / [`E820Entry`]: the packed 20-byte entries Xen's
//!   `XENMEM_memory_map` hypercall returns, for Xen's PVH dom0, whose `start_info`
//!   (version 0) carries no map.
//!
//! No `unsafe`: reading guest physical memory is the platform's job (`oasis-kvm`
//! implements [`GuestMemory`] over its identity map). Not here: the module list
//! (`nr_modules`; Oasis boots no initrd), the ELF note and the 32-bit entry stub.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

extern crate alloc;

mod boot_info;
mod e820;
mod memmap;
mod start_info;

pub use boot_info::{BootInfo, GuestMemory, MAX_MEMMAP_ENTRIES, SIF_INITDOMAIN, SliceMemory};
pub use e820::{E820_ENTRY_LEN, E820Entry, parse_e820};
pub use memmap::{E820_RAM, MEMMAP_ENTRY_LEN, MapEntry, MemRegion, MemmapEntry};
pub use start_info::{START_INFO_MAGIC, StartInfo, StartInfoRepr};

/// Why the loader's boot information cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PvhError {
    /// The structure does not start with [`START_INFO_MAGIC`].
    #[error(
        "hvm_start_info magic is {0:#x}, expected {START_INFO_MAGIC:#x}: not booted through PVH?"
    )]
    BadMagic(u32),
    /// Version 0 structure, or an empty or null memory map.
    #[error("hvm_start_info carries no memory map (version 0 loader); need version 1")]
    NoMemoryMap,
    /// A buffer is shorter than the structure it should hold.
    #[error("{what} needs {need} bytes, got {len}")]
    Truncated {
        /// Which structure.
        what: &'static str,
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// Guest memory the structure points at cannot be read.
    #[error("cannot read {len} bytes of guest memory at {paddr:#x}")]
    Unreadable {
        /// Physical address.
        paddr: u64,
        /// Length.
        len: usize,
    },
    /// A memory map holds more entries than we accept.
    #[error("memory map has {count} entries, more than the {max} accepted")]
    TooManyEntries {
        /// Entries claimed.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A memory-map entry is empty or runs past the end of the address space.
    #[error("memory-map entry {index} ({addr:#x}, {size:#x} bytes) is empty or wraps")]
    BadRegion {
        /// Position in the map.
        index: usize,
        /// First address.
        addr: u64,
        /// Size in bytes.
        size: u64,
    },
    /// Two RAM regions of a memory map overlap.
    #[error("memory-map entries {first} and {second} are overlapping RAM")]
    OverlappingRam {
        /// The earlier entry.
        first: usize,
        /// The later entry.
        second: usize,
    },
    /// A memory map without any usable RAM.
    #[error("memory map has no usable RAM")]
    NoRam,
    /// A buffer passed to `emit` is too small.
    #[error("emit buffer of {len} bytes is smaller than {need}")]
    BufferTooSmall {
        /// Buffer length.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
}

/// Little-endian field readers over ranges already bounds-checked by `new_checked`.
pub(crate) mod le {
    pub fn u32_at(b: &[u8], at: usize) -> u32 {
        let mut a = [0u8; 4];
        if let Some(s) = b.get(at..at + 4) {
            a.copy_from_slice(s);
        }
        u32::from_le_bytes(a)
    }

    pub fn u64_at(b: &[u8], at: usize) -> u64 {
        let mut a = [0u8; 8];
        if let Some(s) = b.get(at..at + 8) {
            a.copy_from_slice(s);
        }
        u64::from_le_bytes(a)
    }

    pub fn put_u32(b: &mut [u8], at: usize, v: u32) {
        if let Some(s) = b.get_mut(at..at + 4) {
            s.copy_from_slice(&v.to_le_bytes());
        }
    }

    pub fn put_u64(b: &mut [u8], at: usize, v: u64) {
        if let Some(s) = b.get_mut(at..at + 8) {
            s.copy_from_slice(&v.to_le_bytes());
        }
    }
}

/// Fuzz-target bodies shared by `fuzz/` and `tests/fuzz_replay.rs`.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing {
    use crate::{BootInfo, E820_ENTRY_LEN, SliceMemory, StartInfo, StartInfoRepr};

    /// Treats `data` as guest memory from physical address 0 with `hvm_start_info`
    /// at 0; parsing must never panic, and what parses must round-trip.
    pub fn start_info(data: &[u8]) {
        let mem = SliceMemory {
            base: 0,
            bytes: data,
        };
        if let Ok(info) = BootInfo::read(&mem, 0, 4096) {
            assert!(!info.memmap.is_empty());
            assert!(info.cmdline.len() <= 3 * 4097);
        }
        if let Ok(info) = BootInfo::read_memmap_optional(&mem, 0, 4096) {
            assert!(info.cmdline.len() <= 3 * 4097);
        }
        if let Ok(p) = StartInfo::new_checked(data)
            && let Ok(r) = StartInfoRepr::parse(&p)
        {
            let mut out = [0u8; 64];
            let n = r.buffer_len();
            assert!(r.emit(&mut out[..n]).is_ok());
            let back = StartInfo::new_checked(&out[..n]).and_then(|p| StartInfoRepr::parse(&p));
            assert_eq!(back, Ok(r));
        }
    }

    /// Treats `data` as the buffer `XENMEM_memory_map` filled, its first byte as the
    /// count Xen wrote back; what parses must be sane and round-trip.
    pub fn xen_e820(data: &[u8]) {
        let Some((&count, table)) = data.split_first() else {
            return;
        };
        if let Ok(map) = crate::parse_e820(table, usize::from(count)) {
            assert_eq!(map.len(), usize::from(count));
            assert!(map.iter().any(|r| r.is_ram()));
            let mut out = [0u8; E820_ENTRY_LEN];
            for (r, chunk) in map.iter().zip(table.chunks_exact(E820_ENTRY_LEN)) {
                assert!(r.size > 0 && r.addr.checked_add(r.size).is_some());
                assert!(r.emit_e820(&mut out).is_ok());
                assert_eq!(&out[..], chunk);
            }
        }
    }
}
