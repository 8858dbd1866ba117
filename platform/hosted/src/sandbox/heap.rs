//! The sandbox's heap: talc over a small static boot arena and one anonymous mapping
//! reserved at start, with the same counters as the `kvm` heap. Nothing is mapped
//! after sealing, so a full heap fails allocations instead of growing.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};

use oasis_devices::HeapUsage;
use spinning_top::RawSpinlock;
use talc::TalcLock;
use talc::source::Manual;

/// Bytes of the static arena that serves allocations made before the heap is
/// reserved (parsing the arguments that size it).
pub const BOOT_ARENA: usize = 64 * 1024;

/// Heap size when `--mem` does not say, in MiB: what `cargo oasis run` gives a VM.
pub const DEFAULT_HEAP_MIB: u64 = 64;

/// Largest `--mem` accepted, in MiB (as `cargo oasis run --mem`).
pub const MAX_HEAP_MIB: u64 = 65536;

/// talc plus counters of the bytes in use, their high-water mark and the bytes
/// claimed, so admission control can charge connections against the heap as on
/// `kvm`. Two relaxed atomic adds per call.
pub struct SandboxHeap {
    talc: TalcLock<RawSpinlock, Manual>,
    size: AtomicUsize,
    used: AtomicUsize,
    peak: AtomicUsize,
}

impl Default for SandboxHeap {
    fn default() -> Self {
        Self::new()
    }
}

impl SandboxHeap {
    /// An empty heap: every allocation fails until memory is [claimed](Self::claim).
    pub const fn new() -> Self {
        SandboxHeap {
            talc: TalcLock::new(Manual),
            size: AtomicUsize::new(0),
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Gives `len` bytes at `base` to the heap; whether talc took them.
    ///
    /// # Safety
    ///
    /// `base..base + len` must be valid for reads and writes, used by nothing else,
    /// and stay so for as long as this heap is used.
    pub unsafe fn claim(&self, base: *mut u8, len: usize) -> bool {
        // SAFETY: the caller hands the region over exclusively and for good.
        let took = unsafe { self.talc.lock().claim(base, len) }.is_some();
        if took {
            self.size.fetch_add(len, Ordering::Relaxed);
        }
        took
    }

    /// The heap's size, bytes in use and high-water mark.
    pub fn usage(&self) -> HeapUsage {
        HeapUsage {
            size: self.size.load(Ordering::Relaxed),
            used: self.used.load(Ordering::Relaxed),
            peak: self.peak.load(Ordering::Relaxed),
        }
    }

    fn charge(&self, n: usize) {
        let used = self.used.fetch_add(n, Ordering::Relaxed) + n;
        self.peak.fetch_max(used, Ordering::Relaxed);
    }

    fn credit(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to talc's `GlobalAlloc` with the caller's arguments
// unchanged, so talc's guarantees are ours; the counters only observe the results.
unsafe impl GlobalAlloc for SandboxHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract for `layout`.
        let p = unsafe { self.talc.alloc(layout) };
        if !p.is_null() {
            self.charge(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { self.talc.alloc_zeroed(layout) };
        if !p.is_null() {
            self.charge(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a block this allocator returned, with its layout.
        unsafe { self.talc.dealloc(ptr, layout) };
        self.credit(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        let p = unsafe { self.talc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            self.credit(layout.size());
            self.charge(new_size);
        }
        p
    }
}

/// The process's allocator when built with the `sandbox` feature (in every other
/// build an unused, empty heap).
#[cfg_attr(all(feature = "sandbox", not(test)), global_allocator)]
pub(crate) static HEAP: SandboxHeap = SandboxHeap::new();

/// Backing store of the boot arena; handed to [`HEAP`] by [`claim_boot_arena`].
static mut BOOT: [u8; BOOT_ARENA] = [0; BOOT_ARENA];

/// Gives the static boot arena to [`HEAP`]. Call once, first thing.
pub(crate) fn claim_boot_arena() {
    use std::sync::atomic::AtomicBool;
    static CLAIMED: AtomicBool = AtomicBool::new(false);
    if CLAIMED.swap(true, Ordering::AcqRel) {
        return;
    }
    let base = (&raw mut BOOT).cast::<u8>();
    // SAFETY: `BOOT` is named nowhere else, and `CLAIMED` makes this the one place
    // that hands it out: the heap owns it from now on.
    unsafe { HEAP.claim(base, BOOT_ARENA) };
}

/// Why the heap could not be reserved.
#[derive(Debug, thiserror::Error)]
pub enum HeapError {
    /// `--mem` is out of range.
    #[error("--mem={mib}: a heap of {mib} MiB is out of range 1..={MAX_HEAP_MIB}")]
    Size {
        /// The size asked for, in MiB.
        mib: u64,
    },
    /// The host refused the mapping.
    #[error("cannot reserve a {mib} MiB heap: {source}")]
    Map {
        /// The size asked for, in MiB.
        mib: u64,
        /// The host's error.
        source: std::io::Error,
    },
    /// talc refused the region (cannot happen for a fresh, aligned mapping).
    #[error("the allocator refused the {mib} MiB heap")]
    Claim {
        /// The size asked for, in MiB.
        mib: u64,
    },
}

/// Maps `mib` MiB of anonymous memory (one `mmap(2)`, before sealing) and gives it to
/// [`HEAP`]. Pages are not touched: the host backs them as the heap grows into them,
/// so the resident size follows use. Returns the bytes added.
pub(crate) fn reserve(mib: u64) -> Result<usize, HeapError> {
    if !(1..=MAX_HEAP_MIB).contains(&mib) {
        return Err(HeapError::Size { mib });
    }
    let len = usize::try_from(mib << 20).map_err(|_| HeapError::Size { mib })?;
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing
    // touches no existing memory; the result is checked before use.
    let base = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(HeapError::Map {
            mib,
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: the mapping is fresh, readable and writable, and never unmapped; the
    // heap is its only user.
    if unsafe { HEAP.claim(base.cast(), len) } {
        Ok(len)
    } else {
        Err(HeapError::Claim { mib })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_use_and_peak_and_fails_when_full() {
        let heap = SandboxHeap::new();
        let layout = Layout::from_size_align(1024, 8).unwrap();
        // SAFETY: `layout` has a non-zero size; nothing is allocated to free.
        let none = unsafe { heap.alloc(layout) };
        assert!(none.is_null(), "empty heap allocated");
        let mut arena = vec![0u8; 64 * 1024].into_boxed_slice();
        // SAFETY: the arena is ours, outlives `heap`'s use below, and nothing else
        // touches it until the heap is dropped.
        assert!(unsafe { heap.claim(arena.as_mut_ptr(), arena.len()) });
        assert_eq!(heap.usage().size, 64 * 1024);
        // SAFETY: as above; every block is freed with its own layout.
        unsafe {
            let a = heap.alloc(layout);
            let b = heap.alloc_zeroed(layout);
            assert!(!a.is_null() && !b.is_null());
            assert_eq!(heap.usage().used, 2048);
            heap.dealloc(a, layout);
            let b = heap.realloc(b, layout, 4096);
            assert!(!b.is_null());
            assert_eq!(heap.usage().used, 4096);
            assert_eq!(heap.usage().peak, 4096);
            let big = Layout::from_size_align(128 * 1024, 8).unwrap();
            assert!(heap.alloc(big).is_null(), "allocated more than the arena");
            heap.dealloc(b, Layout::from_size_align(4096, 8).unwrap());
        }
        assert_eq!(heap.usage().used, 0);
        assert_eq!(heap.usage().free(), 64 * 1024);
    }

    #[test]
    fn out_of_range_sizes_are_refused_with_the_value() {
        for mib in [0, MAX_HEAP_MIB + 1] {
            let e = reserve(mib).unwrap_err();
            assert!(e.to_string().contains(&format!("--mem={mib}")), "{e}");
        }
    }
}
