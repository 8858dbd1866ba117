//! Physical memory: the heap (talc over RAM from the PVH memory map) and the final
//! page tables (built by `oasis-paging`: identity map, W^X image, guard page below the
//! stack, page 0 unmapped).

use alloc::boxed::Box;
use core::alloc::{GlobalAlloc, Layout as AllocLayout};
use core::sync::atomic::{AtomicUsize, Ordering};

use spinning_top::RawSpinlock;
use talc::TalcLock;
use talc::source::Manual;

use oasis_paging::{FrameAllocator, ImageLayout, PageTables, PagingError, Table, identity_map};
use oasis_pvh::MemRegion;

#[global_allocator]
static ALLOCATOR: Counted = Counted {
    talc: TalcLock::new(Manual),
    used: AtomicUsize::new(0),
    peak: AtomicUsize::new(0),
};
static HEAP: &TalcLock<RawSpinlock, Manual> = &ALLOCATOR.talc;

/// talc with counters of the bytes in use and their high-water mark, so admission
/// control can charge connections to the heap before it runs out (and the panic
/// handler can say how full it was). Two relaxed atomic adds per call.
struct Counted {
    talc: TalcLock<RawSpinlock, Manual>,
    used: AtomicUsize,
    peak: AtomicUsize,
}

impl Counted {
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
unsafe impl GlobalAlloc for Counted {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract for `layout`.
        let p = unsafe { self.talc.alloc(layout) };
        if !p.is_null() {
            self.charge(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: AllocLayout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { self.talc.alloc_zeroed(layout) };
        if !p.is_null() {
            self.charge(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        // SAFETY: the caller passes a block this allocator returned, with its layout.
        unsafe { self.talc.dealloc(ptr, layout) };
        self.credit(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        let p = unsafe { self.talc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            self.credit(layout.size());
            self.charge(new_size);
        }
        p
    }
}

/// The heap's size, bytes in use and high-water mark.
pub fn heap_usage() -> oasis_devices::HeapUsage {
    oasis_devices::HeapUsage {
        size: heap_bytes() + BOOT_ARENA,
        used: ALLOCATOR.used.load(Ordering::Relaxed),
        peak: ALLOCATOR.peak.load(Ordering::Relaxed),
    }
}

/// One past the highest RAM address, from the memory map.
static RAM_TOP: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// One past the highest RAM address.
pub fn ram_top() -> u64 {
    RAM_TOP.load(core::sync::atomic::Ordering::Relaxed)
}

/// The RAM regions of the memory map, once [`init_paging`] has run.
static RAM: spin::Once<alloc::vec::Vec<MemRegion>> = spin::Once::new();

/// Whether the page at `addr` is RAM (heap, image or loader data) per the memory
/// map; `true` before the map is known, so callers refuse rather than alias.
pub fn is_ram(addr: u64) -> bool {
    RAM.get()
        .is_none_or(|ram| ram.iter().any(|r| addr >= r.addr && addr < r.end()))
}

/// Bytes of RAM given to the heap, for reports.
static HEAP_BYTES: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// A small arena in .bss so the boot path can allocate before the memory map is read.
const BOOT_ARENA: usize = 16 * 1024;
static mut BOOT_HEAP: [u8; BOOT_ARENA] = [0; BOOT_ARENA];

const PAGE: u64 = 4096;
const GIB: u64 = 1 << 30;

unsafe extern "C" {
    static __image_start: u8;
    static __rodata_start: u8;
    static __data_start: u8;
    static __stack_guard: u8;
    static __stack_bottom: u8;
    static __stack_top: u8;
    static __image_end: u8;
}

/// Addresses of the image's parts, from the linker script.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub image_start: u64,
    pub rodata: u64,
    pub data: u64,
    pub guard: u64,
    pub stack_bottom: u64,
    pub stack_top: u64,
    pub image_end: u64,
}

/// The linker-script symbols.
pub fn layout() -> Layout {
    Layout {
        image_start: (&raw const __image_start) as u64,
        rodata: (&raw const __rodata_start) as u64,
        data: (&raw const __data_start) as u64,
        guard: (&raw const __stack_guard) as u64,
        stack_bottom: (&raw const __stack_bottom) as u64,
        stack_top: (&raw const __stack_top) as u64,
        image_end: (&raw const __image_end) as u64,
    }
}

/// Gives the boot arena to the allocator. Call first.
pub fn init_boot_heap() {
    let base = (&raw mut BOOT_HEAP).cast::<u8>();
    // SAFETY: BOOT_HEAP is used by nothing else; the heap owns it from now on.
    unsafe { HEAP.lock().claim(base, BOOT_ARENA) };
}

/// Gives every RAM region above the image (and low RAM above 64 KiB, once the loader's
/// data has been copied out) to the heap. Returns the number of bytes added.
pub fn init_heap(memmap: &[MemRegion]) -> usize {
    let l = layout();
    let mut total = 0;
    for r in memmap.iter().filter(|r| r.is_ram()) {
        let mut start = r.addr;
        let end = r.addr.saturating_add(r.size);
        // Never the image, never below 64 KiB (page 0 stays unmapped, BIOS data).
        if start < l.image_end && end > l.image_start {
            start = l.image_end;
        }
        start = start.max(0x10000).next_multiple_of(PAGE);
        let end = end & !(PAGE - 1);
        if end <= start + PAGE {
            continue;
        }
        // The boot page tables only map 4 GiB; the final tables map all RAM, but the
        // heap must be usable now, so cap at 4 GiB (RAM above is rare for a unikernel).
        let end = end.min(4 * GIB);
        if end <= start {
            continue;
        }
        let len = (end - start) as usize;
        // SAFETY: the region is RAM per the memory map, outside the image and the
        // loader's data (already copied), and identity-mapped.
        if unsafe { HEAP.lock().claim(start as usize as *mut u8, len) }.is_some() {
            total += len;
        }
    }
    HEAP_BYTES.fetch_add(total, core::sync::atomic::Ordering::Relaxed);
    total
}

/// Bytes of RAM given to the heap.
pub fn heap_bytes() -> usize {
    HEAP_BYTES.load(core::sync::atomic::Ordering::Relaxed)
}

// ---- page tables ----------------------------------------------------------------

/// Page tables live in leaked heap boxes; identity mapping makes a box's address
/// the physical address the MMU sees.
struct HeapFrames;

impl FrameAllocator for HeapFrames {
    fn allocate(&mut self) -> Option<(u64, &'static mut Table)> {
        let t = Box::leak(Box::new(Table::new()));
        Some((t as *mut Table as u64, t))
    }
}

/// The live page tables, once [`init_paging`] has switched to them.
static TABLES: spinning_top::Spinlock<Option<PageTables<HeapFrames>>> =
    spinning_top::Spinlock::new(None);

fn fatal(e: PagingError) -> ! {
    use core::fmt::Write;
    let _ = writeln!(
        crate::serial::Serial,
        "oasis: cannot build page tables: {e}"
    );
    crate::exit::exit(crate::EXIT_BOOT)
}

/// Builds the final page tables (`oasis_paging::identity_map`) and switches to them:
/// - RAM and the rest of the low 4 GiB identity-mapped RW+NX (MMIO holes uncached);
/// - the image: text RX, rodata R+NX, data/bss/stack RW+NX;
/// - not present: page 0 (null dereferences fault) and the stack guard page.
pub fn init_paging(memmap: &[MemRegion]) {
    let l = layout();
    let ram_top = memmap
        .iter()
        .filter(|r| r.is_ram())
        .map(|r| r.end())
        .max()
        .unwrap_or(0);
    RAM_TOP.store(ram_top, core::sync::atomic::Ordering::Relaxed);
    RAM.call_once(|| memmap.iter().filter(|r| r.is_ram()).copied().collect());
    let is_ram = |a: u64| {
        memmap
            .iter()
            .any(|r| r.is_ram() && a >= r.addr && a < r.end())
    };
    let image = ImageLayout {
        image_start: l.image_start,
        rodata: l.rodata,
        data: l.data,
        guard: l.guard,
        stack_bottom: l.stack_bottom,
        image_end: l.image_end,
    };
    let pt = identity_map(HeapFrames, &image, ram_top, is_ram).unwrap_or_else(|e| fatal(e));
    let root = pt.root();
    // SAFETY: the new tables map everything the running code touches (image, stack,
    // heap, loader data already copied, MMIO in the low 4 GiB) identically.
    unsafe { core::arch::asm!("mov cr3, {}", in(reg) root, options(nostack)) };
    *TABLES.lock() = Some(pt);
}

/// Maps `[addr, addr + len)` (device registers above 4 GiB, e.g. 64-bit PCI BARs)
/// uncached, RW+NX. Regions below 4 GiB are already mapped.
pub fn map_mmio(addr: u64, len: u64) {
    let mut tables = TABLES.lock();
    let Some(pt) = tables.as_mut() else { return };
    if let Err(e) = pt.map_mmio(addr, len) {
        fatal(e)
    }
    // SAFETY: reloading CR3 flushes the TLB; the tables only gained mappings.
    unsafe { core::arch::asm!("mov {0}, cr3", "mov cr3, {0}", out(reg) _, options(nostack)) };
}

/// Whether `addr..addr+8` lies on the boot stack or an interrupt stack (for safe
/// backtrace walking).
pub fn on_known_stack(addr: u64) -> bool {
    let l = layout();
    (addr >= l.stack_bottom && addr + 8 <= l.stack_top) || crate::interrupts::on_ist_stack(addr)
}
