//! The crate's raw memory: MMIO register windows and DMA allocations (the only `unsafe`
//! code in the crate besides the transports' `unsafe fn` constructors).
//!
//! Everything above this module talks to hardware through two safe, bounds-checked
//! types: [`MmioRegion`] (volatile register access to a window the platform vouched
//! for) and [`Dma`] (a zeroed, aligned heap allocation whose address is handed to
//! devices; identity mapping makes its virtual address its bus address).

use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use core::ptr::NonNull;

/// What went wrong allocating DMA memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DmaError {
    /// The size or alignment does not form a valid layout (zero size, alignment not a
    /// power of two, size overflow).
    #[error("invalid DMA layout: {len} bytes aligned to {align}")]
    Layout {
        /// Requested size.
        len: usize,
        /// Requested alignment.
        align: usize,
    },
    /// The allocator had no memory.
    #[error("out of memory allocating {len} bytes of DMA memory")]
    OutOfMemory {
        /// Requested size.
        len: usize,
    },
}

/// A window of device registers, accessed with volatile loads and stores.
///
/// Accesses outside the window or misaligned for their width read as all ones (like a
/// PCI master abort) and are dropped on write; they are bugs, caught by a
/// `debug_assert!` in tests, never undefined behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioRegion {
    base: usize,
    len: usize,
}

impl MmioRegion {
    /// Wraps the register window `base..base + len`.
    ///
    /// # Safety
    ///
    /// For as long as any copy of the returned value exists (in practice: the rest of
    /// the program), `base..base + len` must be mapped at that virtual address,
    /// readable and writable with aligned volatile 8/16/32-bit accesses, and must not
    /// be memory that Rust code accesses through references (device registers, or
    /// memory reserved for this purpose). `base + len` must not overflow.
    pub unsafe fn new(base: usize, len: usize) -> Self {
        Self { base, len }
    }

    /// First address of the window.
    pub fn base(&self) -> usize {
        self.base
    }

    /// Length of the window in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The sub-window `offset..offset + len`, if it lies inside this one.
    pub fn subregion(&self, offset: usize, len: usize) -> Option<MmioRegion> {
        let end = offset.checked_add(len)?;
        (end <= self.len).then(|| MmioRegion {
            base: self.base + offset,
            len,
        })
    }

    fn addr(&self, offset: usize, width: usize) -> Option<usize> {
        let ok = offset.is_multiple_of(width)
            && offset.checked_add(width).is_some_and(|e| e <= self.len);
        debug_assert!(
            ok,
            "MMIO access at {offset:#x} width {width} outside {:#x} bytes",
            self.len
        );
        ok.then_some(self.base + offset)
    }

    /// Reads the byte at `offset`.
    pub fn read8(&self, offset: usize) -> u8 {
        match self.addr(offset, 1) {
            // SAFETY: `addr` checked the access lies inside the window, which `new`'s
            // contract says is mapped and readable with volatile accesses.
            Some(a) => unsafe { core::ptr::read_volatile(a as *const u8) },
            None => u8::MAX,
        }
    }

    /// Reads the little-endian `u16` at `offset` (must be 2-aligned).
    pub fn read16(&self, offset: usize) -> u16 {
        match self.addr(offset, 2) {
            // SAFETY: in bounds and aligned (checked by `addr`); mapped per `new`.
            Some(a) => u16::from_le(unsafe { core::ptr::read_volatile(a as *const u16) }),
            None => u16::MAX,
        }
    }

    /// Reads the little-endian `u32` at `offset` (must be 4-aligned).
    pub fn read32(&self, offset: usize) -> u32 {
        match self.addr(offset, 4) {
            // SAFETY: in bounds and aligned (checked by `addr`); mapped per `new`.
            Some(a) => u32::from_le(unsafe { core::ptr::read_volatile(a as *const u32) }),
            None => u32::MAX,
        }
    }

    /// Writes the byte at `offset`.
    pub fn write8(&self, offset: usize, value: u8) {
        if let Some(a) = self.addr(offset, 1) {
            // SAFETY: in bounds (checked by `addr`); writable per `new`'s contract.
            unsafe { core::ptr::write_volatile(a as *mut u8, value) }
        }
    }

    /// Writes `value` little-endian at `offset` (must be 2-aligned).
    pub fn write16(&self, offset: usize, value: u16) {
        if let Some(a) = self.addr(offset, 2) {
            // SAFETY: in bounds and aligned (checked by `addr`); writable per `new`.
            unsafe { core::ptr::write_volatile(a as *mut u16, value.to_le()) }
        }
    }

    /// Writes `value` little-endian at `offset` (must be 4-aligned).
    pub fn write32(&self, offset: usize, value: u32) {
        if let Some(a) = self.addr(offset, 4) {
            // SAFETY: in bounds and aligned (checked by `addr`); writable per `new`.
            unsafe { core::ptr::write_volatile(a as *mut u32, value.to_le()) }
        }
    }

    /// Writes a 64-bit register as two 32-bit halves, low first (virtio 1.2 §4.1.3.1
    /// allows this for the 64-bit common-configuration fields).
    pub fn write64_split(&self, offset: usize, value: u64) {
        self.write32(offset, value as u32);
        self.write32(offset + 4, (value >> 32) as u32);
    }
}

impl oasis_pci::Mmio32 for MmioRegion {
    fn read32(&self, offset: usize) -> u32 {
        MmioRegion::read32(self, offset)
    }

    fn write32(&self, offset: usize, value: u32) {
        MmioRegion::write32(self, offset, value)
    }
}

/// A zeroed, aligned heap allocation shared with a device.
///
/// The memory is never reached through a Rust reference while the device may access
/// it: ring fields go through volatile accessors, and buffer slices are handed out
/// only by [`Virtqueue`](crate::queue::Virtqueue) for slots the device does not hold.
/// Dropping frees the memory unless [`leak`](Dma::leak) was called (a device that did
/// not confirm its reset may still write to it).
#[derive(Debug)]
pub struct Dma {
    ptr: NonNull<u8>,
    layout: Layout,
    leaked: bool,
}

// SAFETY: a `Dma` owns its allocation exclusively (like a `Box<[u8]>`); moving it to
// another thread moves that ownership. Access goes through `&self`/`&mut self`
// methods, so Rust's borrow rules serialise it; the device's concurrent DMA is the
// same whichever thread owns the handle.
unsafe impl Send for Dma {}

impl Dma {
    /// Allocates `len` zeroed bytes aligned to `align`.
    pub fn zeroed(len: usize, align: usize) -> Result<Self, DmaError> {
        let layout = Layout::from_size_align(len, align)
            .ok()
            .filter(|l| l.size() > 0)
            .ok_or(DmaError::Layout { len, align })?;
        // SAFETY: `layout` has a non-zero size (checked just above).
        let raw = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or(DmaError::OutOfMemory { len })?;
        Ok(Self {
            ptr,
            layout,
            leaked: false,
        })
    }

    /// The bus address of the first byte (identity mapping: the virtual address).
    pub fn addr(&self) -> u64 {
        self.ptr.as_ptr() as usize as u64
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.layout.size()
    }

    /// Whether the allocation is empty (never: zero-sized allocations are refused).
    pub fn is_empty(&self) -> bool {
        self.layout.size() == 0
    }

    /// Never free this memory: a device may still own parts of it.
    pub fn leak(&mut self) {
        self.leaked = true;
    }

    fn at(&self, offset: usize, width: usize) -> Option<*mut u8> {
        let ok = offset.is_multiple_of(width)
            && offset.checked_add(width).is_some_and(|e| e <= self.len());
        debug_assert!(
            ok,
            "DMA access at {offset:#x} width {width} outside {:#x} bytes",
            self.len()
        );
        // SAFETY: `offset + width <= len`, so the result stays inside the allocation.
        ok.then(|| unsafe { self.ptr.as_ptr().add(offset) })
    }

    /// Volatile read of the little-endian `u16` at `offset` (2-aligned).
    pub fn read16(&self, offset: usize) -> u16 {
        match self.at(offset, 2) {
            // SAFETY: in bounds and aligned (the allocation is at least 2-aligned and
            // `at` checked the offset); volatile because the device writes it.
            Some(p) => u16::from_le(unsafe { core::ptr::read_volatile(p as *const u16) }),
            None => 0,
        }
    }

    /// Volatile read of the little-endian `u32` at `offset` (4-aligned).
    pub fn read32(&self, offset: usize) -> u32 {
        match self.at(offset, 4) {
            // SAFETY: in bounds and aligned (checked by `at`); volatile, device-shared.
            Some(p) => u32::from_le(unsafe { core::ptr::read_volatile(p as *const u32) }),
            None => 0,
        }
    }

    /// Volatile write of `value` little-endian at `offset` (2-aligned).
    pub fn write16(&mut self, offset: usize, value: u16) {
        if let Some(p) = self.at(offset, 2) {
            // SAFETY: in bounds and aligned (checked by `at`); `&mut self` rules out
            // Rust references into the allocation.
            unsafe { core::ptr::write_volatile(p as *mut u16, value.to_le()) }
        }
    }

    /// Volatile write of `value` little-endian at `offset` (4-aligned).
    pub fn write32(&mut self, offset: usize, value: u32) {
        if let Some(p) = self.at(offset, 4) {
            // SAFETY: as in `write16`.
            unsafe { core::ptr::write_volatile(p as *mut u32, value.to_le()) }
        }
    }

    /// Volatile write of `value` little-endian at `offset` (8-aligned).
    pub fn write64(&mut self, offset: usize, value: u64) {
        if let Some(p) = self.at(offset, 8) {
            // SAFETY: as in `write16`; the allocation's alignment is at least 8
            // wherever 64-bit fields are used (descriptor tables are 16-aligned).
            unsafe { core::ptr::write_volatile(p as *mut u64, value.to_le()) }
        }
    }

    /// The bytes `offset..offset + len`. Callers guarantee the device does not own
    /// them (see the type's docs).
    pub(crate) fn slice(&self, offset: usize, len: usize) -> Option<&[u8]> {
        let end = offset.checked_add(len)?;
        if end > self.len() {
            return None;
        }
        // SAFETY: `offset..end` lies inside the live allocation; the memory was
        // zero-initialised; no `&mut` into it exists while `&self` is borrowed.
        Some(unsafe { core::slice::from_raw_parts(self.ptr.as_ptr().add(offset), len) })
    }

    /// The bytes `offset..offset + len`, writable. Callers guarantee the device does
    /// not own them.
    pub(crate) fn slice_mut(&mut self, offset: usize, len: usize) -> Option<&mut [u8]> {
        let end = offset.checked_add(len)?;
        if end > self.len() {
            return None;
        }
        // SAFETY: in bounds of the live, initialised allocation; `&mut self` makes
        // this the only Rust reference into it.
        Some(unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr().add(offset), len) })
    }
}

impl Drop for Dma {
    fn drop(&mut self) {
        if !self.leaked {
            // SAFETY: `ptr` came from `alloc_zeroed(self.layout)` and is freed once.
            unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dma_is_zeroed_aligned_and_bounds_checked() {
        let mut d = Dma::zeroed(64, 4096).unwrap();
        assert_eq!(d.addr() % 4096, 0);
        assert!(d.slice(0, 64).unwrap().iter().all(|&b| b == 0));
        d.write32(4, 0xdead_beef);
        assert_eq!(d.read32(4), 0xdead_beef);
        assert_eq!(d.read16(4), 0xbeef);
        assert!(d.slice(60, 5).is_none());
        assert!(d.slice_mut(usize::MAX, 2).is_none());
        assert_eq!(
            Dma::zeroed(0, 8).unwrap_err(),
            DmaError::Layout { len: 0, align: 8 }
        );
        assert!(Dma::zeroed(8, 3).is_err());
    }

    #[test]
    fn mmio_region_reads_and_writes_backing_memory() {
        let mut backing = [0u32; 16];
        // SAFETY: `backing` outlives `r` and is only accessed through `r` below.
        let r = unsafe { MmioRegion::new(backing.as_mut_ptr() as usize, 64) };
        r.write32(8, 0x7472_6976);
        r.write16(12, 0xabcd);
        r.write8(14, 7);
        assert_eq!(r.read32(8), 0x7472_6976);
        assert_eq!(r.read16(12), 0xabcd);
        assert_eq!(r.read8(14), 7);
        let sub = r.subregion(8, 8).unwrap();
        assert_eq!(sub.read32(0), 0x7472_6976);
        assert!(r.subregion(60, 8).is_none());
        r.write64_split(16, 0x1122_3344_5566_7788);
        assert_eq!(r.read32(16), 0x5566_7788);
        assert_eq!(r.read32(20), 0x1122_3344);
    }
}
