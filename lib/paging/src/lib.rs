//! `oasis-paging`: x86-64 4-level page tables (Intel SDM Vol. 3A §4.5) built as pure
//! code, so the kvm platform's address-space layout is tested on the host.
//!
//! [`PageTables`] allocates tables from a [`FrameAllocator`] (the kvm platform's
//! leaks heap boxes, identity-mapped; tests use any addresses they like) and
//! remembers every table it made, so it only ever writes tables it owns: no raw
//! pointer is followed. [`identity_map`] builds Oasis's layout: everything up to
//! the top of RAM (at least 4 GiB) identity-mapped with 2 MiB pages, RW+NX, holes
//! uncached; the 2 MiB regions holding the image with 4 KiB pages: text RX, rodata
//! R+NX, the rest RW+NX; page 0 and the stack guard page not present.
//!
//! Not here: loading CR3 and TLB flushes (the platform's), 1 GiB pages, unmapping,
//! user pages, PAT.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

extern crate alloc;

use alloc::collections::BTreeMap;

/// A 4 KiB page.
pub const PAGE: u64 = 4096;
/// A 2 MiB page (a PD entry with PS set).
pub const LARGE: u64 = 2 * 1024 * 1024;
const GIB: u64 = 1 << 30;

/// Page-table entry bits (SDM Vol. 3A §4.5, tables 4-15..4-20).
pub mod flags {
    /// Present.
    pub const PRESENT: u64 = 1 << 0;
    /// Writable.
    pub const WRITABLE: u64 = 1 << 1;
    /// Write-through (with PCD: uncached).
    pub const PWT: u64 = 1 << 3;
    /// Cache disable (MMIO).
    pub const PCD: u64 = 1 << 4;
    /// In a PD entry: maps a 2 MiB page.
    pub const HUGE: u64 = 1 << 7;
    /// No execute (needs EFER.NXE).
    pub const NX: u64 = 1 << 63;
    /// The physical-address bits of an entry.
    pub const ADDR: u64 = 0x000f_ffff_ffff_f000;
}
use flags::*;

/// One page table: 512 entries, page-aligned.
#[repr(C, align(4096))]
#[derive(Debug)]
pub struct Table(pub [u64; 512]);

impl Table {
    /// An empty table (no entry present).
    pub const fn new() -> Self {
        Self([0; 512])
    }
}

impl Default for Table {
    fn default() -> Self {
        Self::new()
    }
}

/// Where page tables come from.
pub trait FrameAllocator {
    /// A zeroed table that lives as long as the page tables are in use, and the
    /// physical address the MMU will find it at; `None` when out of memory.
    fn allocate(&mut self) -> Option<(u64, &'static mut Table)>;
}

/// Why the page tables could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PagingError {
    /// The frame allocator had no memory for another table.
    #[error("out of memory for page tables after {0} tables")]
    OutOfFrames(usize),
    /// The allocator returned a table address that is not 4 KiB aligned or is
    /// already in use.
    #[error("frame allocator returned unusable table address {0:#x}")]
    BadFrame(u64),
}

/// A leaf mapping, as [`PageTables::translate`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// Physical address the virtual address translates to.
    pub phys: u64,
    /// The leaf entry's flags (without the address bits).
    pub flags: u64,
    /// Page size: [`PAGE`] or [`LARGE`].
    pub size: u64,
}

impl Mapping {
    /// Writable.
    pub fn writable(&self) -> bool {
        self.flags & WRITABLE != 0
    }
    /// Executable.
    pub fn executable(&self) -> bool {
        self.flags & NX == 0
    }
    /// Uncached (PCD and PWT).
    pub fn uncached(&self) -> bool {
        self.flags & (PCD | PWT) == PCD | PWT
    }
}

/// A 4-level hierarchy whose tables all came from `A`.
#[derive(Debug)]
pub struct PageTables<A> {
    frames: A,
    root: u64,
    tables: BTreeMap<u64, &'static mut Table>,
}

fn index(addr: u64, level: u32) -> usize {
    ((addr >> (12 + 9 * level)) & 511) as usize
}

impl<A: FrameAllocator> PageTables<A> {
    /// An empty hierarchy (a PML4 with nothing present).
    pub fn new(frames: A) -> Result<Self, PagingError> {
        let mut pt = Self {
            frames,
            root: 0,
            tables: BTreeMap::new(),
        };
        pt.root = pt.new_table()?;
        Ok(pt)
    }

    /// Physical address of the PML4 (the value for CR3).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Number of tables allocated.
    pub fn table_count(&self) -> usize {
        self.tables.len()
    }

    fn new_table(&mut self) -> Result<u64, PagingError> {
        let (phys, t) = self
            .frames
            .allocate()
            .ok_or(PagingError::OutOfFrames(self.tables.len()))?;
        if phys & !ADDR != 0 || self.tables.contains_key(&phys) {
            return Err(PagingError::BadFrame(phys));
        }
        t.0 = [0; 512];
        self.tables.insert(phys, t);
        Ok(phys)
    }

    fn table(&mut self, phys: u64) -> Result<&mut Table, PagingError> {
        self.tables
            .get_mut(&phys)
            .map(|t| &mut **t)
            .ok_or(PagingError::BadFrame(phys))
    }

    /// The next-level table under entry `i` of table `phys`, allocated if absent.
    fn next(&mut self, phys: u64, i: usize) -> Result<u64, PagingError> {
        let e = self.table(phys)?.0[i];
        if e & PRESENT != 0 {
            return Ok(e & ADDR);
        }
        let t = self.new_table()?;
        self.table(phys)?.0[i] = t | PRESENT | WRITABLE;
        Ok(t)
    }

    /// The PD covering `addr`, allocating the PDPT and PD on the way.
    fn pd(&mut self, addr: u64) -> Result<u64, PagingError> {
        let pdpt = self.next(self.root, index(addr, 3))?;
        self.next(pdpt, index(addr, 2))
    }

    /// Maps the 2 MiB page holding `addr` to itself with `flags` (PRESENT and HUGE
    /// added), replacing what was there.
    pub fn map_large(&mut self, addr: u64, flags: u64) -> Result<(), PagingError> {
        let pd = self.pd(addr)?;
        self.table(pd)?.0[index(addr, 1)] = (addr & !(LARGE - 1)) | PRESENT | HUGE | flags;
        Ok(())
    }

    /// Maps the 2 MiB region at `base` (2 MiB-aligned) to itself with 4 KiB pages
    /// whose flags come from `f` (`None`: not present).
    pub fn map_small(
        &mut self,
        base: u64,
        f: impl Fn(u64) -> Option<u64>,
    ) -> Result<(), PagingError> {
        let pt = self.new_table()?;
        for (i, e) in self.table(pt)?.0.iter_mut().enumerate() {
            let a = base + i as u64 * PAGE;
            *e = f(a).map_or(0, |fl| a | PRESENT | fl);
        }
        let pd = self.pd(base)?;
        self.table(pd)?.0[index(base, 1)] = pt | PRESENT | WRITABLE;
        Ok(())
    }

    /// Maps `[addr, addr + len)` (device registers, e.g. 64-bit PCI BARs) identity,
    /// uncached, RW+NX, with 2 MiB pages, leaving every 2 MiB region that is
    /// already mapped as it is.
    pub fn map_mmio(&mut self, addr: u64, len: u64) -> Result<(), PagingError> {
        let mut a = addr & !(LARGE - 1);
        let end = addr.saturating_add(len);
        while a < end {
            let pd = self.pd(a)?;
            if self.table(pd)?.0[index(a, 1)] & PRESENT == 0 {
                self.map_large(a, WRITABLE | NX | PCD | PWT)?;
            }
            a = match a.checked_add(LARGE) {
                Some(n) => n,
                None => break,
            };
        }
        Ok(())
    }

    /// What `addr` maps to, walking the tables as the MMU would.
    pub fn translate(&self, addr: u64) -> Option<Mapping> {
        let mut t = self.root;
        for level in (0..4u32).rev() {
            let e = self.tables.get(&t)?.0[index(addr, level)];
            if e & PRESENT == 0 {
                return None;
            }
            if level == 0 || (level == 1 && e & HUGE != 0) {
                let size = if level == 0 { PAGE } else { LARGE };
                return Some(Mapping {
                    phys: (e & ADDR & !(size - 1)) | (addr & (size - 1)),
                    flags: e & !ADDR,
                    size,
                });
            }
            t = e & ADDR;
        }
        None
    }
}

/// Addresses of the image's parts, from the linker script (all page-aligned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLayout {
    /// First byte of the image (text starts here).
    pub image_start: u64,
    /// Start of rodata (end of text).
    pub rodata: u64,
    /// Start of data (end of rodata); data, bss and stacks follow.
    pub data: u64,
    /// The stack guard page.
    pub guard: u64,
    /// Lowest address of the boot stack (end of the guard page).
    pub stack_bottom: u64,
    /// One past the image.
    pub image_end: u64,
}

/// Builds Oasis's identity map (see the crate docs): `ram_top` is one past the
/// highest RAM address, `is_ram` says whether a 2 MiB region's first address is RAM
/// (cached) or a hole (uncached, for MMIO).
pub fn identity_map<A: FrameAllocator>(
    frames: A,
    l: &ImageLayout,
    ram_top: u64,
    is_ram: impl Fn(u64) -> bool,
) -> Result<PageTables<A>, PagingError> {
    let mut pt = PageTables::new(frames)?;
    let top = ram_top.max(4 * GIB).next_multiple_of(LARGE);
    let small_hi = l.image_end.next_multiple_of(LARGE);
    let mut a = 0;
    while a < top {
        if a < small_hi {
            pt.map_small(a, |p| {
                if p == 0 || (p >= l.guard && p < l.stack_bottom) {
                    None
                } else if p >= l.image_start && p < l.rodata {
                    Some(0) // text: read + execute
                } else if p >= l.rodata && p < l.data {
                    Some(NX) // rodata
                } else {
                    Some(WRITABLE | NX)
                }
            })?;
        } else {
            let cache = if is_ram(a) { 0 } else { PCD | PWT };
            pt.map_large(a, WRITABLE | NX | cache)?;
        }
        a += LARGE;
    }
    Ok(pt)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out tables at made-up physical addresses (distinct from anything they
    /// map), with an optional limit.
    struct Frames {
        next: u64,
        left: usize,
    }

    impl FrameAllocator for Frames {
        fn allocate(&mut self) -> Option<(u64, &'static mut Table)> {
            self.left = self.left.checked_sub(1)?;
            self.next += PAGE;
            Some((self.next, Box::leak(Box::new(Table::new()))))
        }
    }

    fn frames() -> Frames {
        Frames {
            next: 0x7_0000_0000,
            left: 1000,
        }
    }

    /// An image at 1 MiB like link.ld lays it out.
    const L: ImageLayout = ImageLayout {
        image_start: 0x10_0000,
        rodata: 0x14_0000,
        data: 0x16_0000,
        guard: 0x18_0000,
        stack_bottom: 0x18_1000,
        image_end: 0x1a_0000,
    };
    const RAM_TOP: u64 = 0x8000_0000;

    fn build() -> PageTables<Frames> {
        identity_map(frames(), &L, RAM_TOP, |a| a < RAM_TOP).unwrap()
    }

    #[test]
    fn image_is_w_xor_x() {
        let pt = build();
        let mut a = L.image_start;
        while a < L.image_end {
            if let Some(m) = pt.translate(a) {
                assert!(!(m.writable() && m.executable()), "{a:#x} is W+X");
                assert_eq!(m.phys, a);
                assert_eq!(m.size, PAGE);
            }
            a += PAGE;
        }
        let text = pt.translate(L.image_start + 0x123).unwrap();
        assert!(text.executable() && !text.writable());
        assert_eq!(text.phys, L.image_start + 0x123);
        let ro = pt.translate(L.rodata).unwrap();
        assert!(!ro.executable() && !ro.writable());
        let data = pt.translate(L.data).unwrap();
        assert!(!data.executable() && data.writable());
        // Everything outside the image is NX too.
        for a in [0x1000, 0x20_0000, 0x4000_0000, 0xfee0_0000, 0xffff_f000] {
            assert!(!pt.translate(a).unwrap().executable(), "{a:#x}");
        }
    }

    #[test]
    fn page_zero_and_guard_page_are_unmapped() {
        let pt = build();
        assert_eq!(pt.translate(0), None);
        assert_eq!(pt.translate(0xfff), None);
        assert!(pt.translate(0x1000).is_some());
        assert_eq!(pt.translate(L.guard), None);
        assert_eq!(pt.translate(L.stack_bottom - 1), None);
        assert!(pt.translate(L.stack_bottom).unwrap().writable());
        assert!(pt.translate(L.guard - 1).is_some());
    }

    #[test]
    fn holes_are_uncached_ram_is_not_and_4_gib_is_covered() {
        let pt = build();
        let ram = pt.translate(0x4000_0000).unwrap();
        assert!(!ram.uncached() && ram.writable());
        assert_eq!(ram.size, LARGE);
        let lapic = pt.translate(0xfee0_0000).unwrap();
        assert!(lapic.uncached());
        assert_eq!(lapic.phys, 0xfee0_0000);
        assert!(pt.translate(0xffff_ffff).is_some());
        assert_eq!(pt.translate(1 << 32), None);
    }

    #[test]
    fn ram_above_4_gib_and_mmio_mappings() {
        let top = 6 * GIB + LARGE / 2;
        let mut pt = identity_map(frames(), &L, top, |a| a < top).unwrap();
        assert!(!pt.translate(6 * GIB).unwrap().uncached());
        assert_eq!(pt.translate(7 * GIB), None);
        // A 64-bit BAR above RAM: mapped uncached; RAM already mapped is untouched.
        pt.map_mmio(0x80_0000_1000, 0x4000).unwrap();
        let bar = pt.translate(0x80_0000_3000).unwrap();
        assert!(bar.uncached() && bar.writable() && !bar.executable());
        assert_eq!(bar.phys, 0x80_0000_3000);
        pt.map_mmio(4 * GIB, LARGE).unwrap();
        assert!(!pt.translate(4 * GIB).unwrap().uncached());
        // Tables are never handed out twice, and the root is the first table.
        assert_eq!(pt.root(), 0x7_0000_1000);
        assert!(pt.map_mmio(u64::MAX - LARGE, LARGE).is_ok());
    }

    #[test]
    fn allocator_failures_are_errors() {
        let f = Frames {
            next: 0x7_0000_0000,
            left: 3,
        };
        assert!(matches!(
            identity_map(f, &L, RAM_TOP, |_| true),
            Err(PagingError::OutOfFrames(3))
        ));
        struct Same;
        impl FrameAllocator for Same {
            fn allocate(&mut self) -> Option<(u64, &'static mut Table)> {
                Some((0x5000, Box::leak(Box::new(Table::new()))))
            }
        }
        assert_eq!(
            PageTables::new(Same).unwrap().map_large(0, 0),
            Err(PagingError::BadFrame(0x5000))
        );
    }
}
