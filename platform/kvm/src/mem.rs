//! Physical memory: the heap (talc over RAM from the PVH memory map) and the final
//! page tables (identity map, W^X image, guard page below the stack, page 0 unmapped).

use alloc::boxed::Box;
use core::alloc::{GlobalAlloc, Layout as AllocLayout};
use core::sync::atomic::{AtomicUsize, Ordering};

use spinning_top::RawSpinlock;
use talc::TalcLock;
use talc::source::Manual;

use crate::boot::{E820_RAM, MemRegion};

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

/// Bytes of RAM given to the heap, for reports.
static HEAP_BYTES: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// A small arena in .bss so the boot path can allocate before the memory map is read.
const BOOT_ARENA: usize = 16 * 1024;
static mut BOOT_HEAP: [u8; BOOT_ARENA] = [0; BOOT_ARENA];

const PAGE: u64 = 4096;
const LARGE: u64 = 2 * 1024 * 1024;
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
    for r in memmap.iter().filter(|r| r.kind == E820_RAM) {
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

const P: u64 = 1 << 0; // present
const W: u64 = 1 << 1; // writable
const PWT: u64 = 1 << 3;
const PCD: u64 = 1 << 4; // cache disable (MMIO)
const PS: u64 = 1 << 7; // 2 MiB page in a PD entry
const NX: u64 = 1 << 63;
const ADDR: u64 = 0x000f_ffff_ffff_f000;

#[repr(C, align(4096))]
struct Table([u64; 512]);

fn new_table() -> &'static mut Table {
    Box::leak(Box::new(Table([0; 512])))
}

fn table_at(entry: u64) -> &'static mut Table {
    // SAFETY: entries we follow point at tables we allocated with `new_table` (leaked,
    // so 'static), identity-mapped; single core, callers hold no other reference.
    unsafe { &mut *((entry & ADDR) as usize as *mut Table) }
}

struct PageTables {
    pml4: &'static mut Table,
}

static ROOT: spinning_top::Spinlock<Option<u64>> = spinning_top::Spinlock::new(None);

impl PageTables {
    /// The PD covering `addr`, allocating the PDPT/PD on the way.
    fn pd(&mut self, addr: u64) -> &'static mut Table {
        let e4 = &mut self.pml4.0[((addr >> 39) & 511) as usize];
        if *e4 & P == 0 {
            *e4 = (new_table() as *mut Table as u64) | P | W;
        }
        let pdpt = table_at(*e4);
        let e3 = &mut pdpt.0[((addr >> 30) & 511) as usize];
        if *e3 & P == 0 {
            *e3 = (new_table() as *mut Table as u64) | P | W;
        }
        table_at(*e3)
    }

    fn map_large(&mut self, addr: u64, flags: u64) {
        let pd = self.pd(addr);
        pd.0[((addr >> 21) & 511) as usize] = (addr & !(LARGE - 1)) | P | PS | flags;
    }

    /// Maps the 2 MiB region at `base` with 4 KiB pages whose flags come from `f`
    /// (`None`: not present).
    fn map_small(&mut self, base: u64, f: impl Fn(u64) -> Option<u64>) {
        let pt = new_table();
        for (i, e) in pt.0.iter_mut().enumerate() {
            let a = base + i as u64 * PAGE;
            *e = f(a).map_or(0, |fl| a | P | fl);
        }
        let pd = self.pd(base);
        pd.0[((base >> 21) & 511) as usize] = (pt as *mut Table as u64) | P | W;
    }
}

/// Builds the final page tables and switches to them:
/// - RAM and the rest of the low 4 GiB identity-mapped RW+NX (MMIO holes uncached);
/// - the image: text RX, rodata R+NX, data/bss/stack RW+NX;
/// - not present: page 0 (null dereferences fault) and the stack guard page.
pub fn init_paging(memmap: &[MemRegion]) {
    let l = layout();
    let ram_top = memmap
        .iter()
        .filter(|r| r.kind == E820_RAM)
        .map(|r| r.addr.saturating_add(r.size))
        .max()
        .unwrap_or(0);
    RAM_TOP.store(ram_top, core::sync::atomic::Ordering::Relaxed);
    let is_ram = |a: u64| {
        memmap
            .iter()
            .any(|r| r.kind == E820_RAM && a >= r.addr && a < r.addr.saturating_add(r.size))
    };
    let mut pt = PageTables { pml4: new_table() };
    let top = ram_top.max(4 * GIB).next_multiple_of(LARGE);
    let small_lo = 0;
    let small_hi = l.image_end.next_multiple_of(LARGE);
    let mut a = 0;
    while a < top {
        if a >= small_lo && a < small_hi {
            pt.map_small(a, |p| {
                if p == 0 || (p >= l.guard && p < l.stack_bottom) {
                    None
                } else if p >= l.image_start && p < l.rodata {
                    Some(0) // text: read + execute
                } else if p >= l.rodata && p < l.data {
                    Some(NX) // rodata
                } else {
                    Some(W | NX)
                }
            });
        } else {
            let cache = if is_ram(a) { 0 } else { PCD | PWT };
            pt.map_large(a, W | NX | cache);
        }
        a += LARGE;
    }
    let root = pt.pml4 as *mut Table as u64;
    // SAFETY: the new tables map everything the running code touches (image, stack,
    // heap, loader data already copied, MMIO in the low 4 GiB) identically.
    unsafe { core::arch::asm!("mov cr3, {}", in(reg) root, options(nostack)) };
    *ROOT.lock() = Some(root);
}

/// Maps `[addr, addr + len)` (device registers above 4 GiB, e.g. 64-bit PCI BARs)
/// uncached, RW+NX. Regions below 4 GiB are already mapped.
pub fn map_mmio(addr: u64, len: u64) {
    let Some(root) = *ROOT.lock() else { return };
    let mut pt = PageTables {
        pml4: table_at(root),
    };
    let mut a = addr & !(LARGE - 1);
    let end = addr.saturating_add(len);
    while a < end {
        let pd = pt.pd(a);
        if pd.0[((a >> 21) & 511) as usize] & P == 0 {
            pt.map_large(a, W | NX | PCD | PWT);
        }
        a += LARGE;
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
