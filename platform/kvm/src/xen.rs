//! Running as a Xen PVH guest: detection, the hypercall page, and the hypercalls the
//! platform needs at boot and exit (memory map, console, shutdown, TSC frequency).
//!
//! The same image boots on QEMU/Firecracker and on Xen. Xen is recognised from CPUID
//! leaves 0x4000_0000 + 0x100·k ("XenVMMXenVMM"; Xen's leaves move up by 0x100 when
//! it also offers Viridian). [`init`] then asks Xen to fill our hypercall page
//! (the MSR named by leaf base+2) and checks that it did.
//!
//! What changes on Xen (xen/include/public: xen.h, memory.h, sched.h,
//! arch-x86/cpuid.h, arch-x86/hvm/start_info.h):
//! - memory map: Xen's PVH dom0 builder passes a version 0 `start_info` without one;
//!   [`memory_map`] asks `XENMEM_memory_map` and validates the answer
//!   (`oasis_pvh::parse_e820`);
//! - console: Xen owns the UART, so the console goes through `HYPERVISOR_console_io`
//!   when Xen lets this domain use it (dom0); a domU (which gets `-EPERM` there)
//!   writes the shared console ring (`xencons_interface`, page and event channel from
//!   `HVM_PARAM_CONSOLE_PFN`/`_EVTCHN`) that xenconsoled in dom0 drains into
//!   `xl console` and its log (xen/include/public/io/console.h, hvm/params.h);
//! - clock: the TSC, at the frequency Xen states in leaf base+3 ([`tsc_khz`]);
//! - wall clock: `shared_info` (mapped into a page of our .bss with
//!   `XENMEM_add_to_physmap`): Xen's wall clock at system time 0 plus vCPU 0's system
//!   time ([`wall_ns`]); a PVH domU has no RTC;
//! - exit: `isa-debug-exit` still ends QEMU when we are dom0 under QEMU (dom0 owns
//!   the I/O ports); otherwise `SCHEDOP_shutdown`, poweroff for status 0 and crash
//!   for any other, after printing the status and letting the console ring drain
//!   ([`shutdown`]).
//!
//! The timer (Xen's emulated LAPIC, TSC-deadline), idle (HLT blocks the vCPU) and
//! entropy (RDRAND/RDSEED, which Xen passes through) are the same code as on KVM.

use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering, compiler_fence};

use oasis_pvh::{E820_ENTRY_LEN, MAX_MEMMAP_ENTRIES, MemRegion, PvhError};

use crate::cpu::{cpuid, wrmsr};

// Hypercall numbers (xen.h).
pub(crate) const HYPERVISOR_MEMORY_OP: u32 = 12;
const HYPERVISOR_CONSOLE_IO: u32 = 18;
const HYPERVISOR_SCHED_OP: u32 = 29;
pub(crate) const HYPERVISOR_EVENT_CHANNEL_OP: u32 = 32;
const HYPERVISOR_HVM_OP: u32 = 34;
/// Each hypercall's stub is 32 bytes into the page (xen.h, "hypercall_page").
const STUB_LEN: u64 = 32;

// memory.h
pub(crate) const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
const XENMEM_MEMORY_MAP: u64 = 9;
const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// `DOMID_SELF` (xen.h).
pub(crate) const DOMID_SELF: u16 = 0x7FF0;
// hvm/hvm_op.h, hvm/params.h
const HVMOP_GET_PARAM: u64 = 1;
const HVM_PARAM_CONSOLE_PFN: u32 = 17;
const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;
// event_channel.h
const EVTCHNOP_SEND: u64 = 4;
// xen.h
const CONSOLEIO_WRITE: u64 = 0;
// sched.h
const SCHEDOP_YIELD: u64 = 0;
const SCHEDOP_POLL: u64 = 3;
const SCHEDOP_SHUTDOWN: u64 = 2;
const SHUTDOWN_POWEROFF: u32 = 0;
const SHUTDOWN_CRASH: u32 = 3;

/// "XenVMMXenVMM" in EBX, ECX, EDX (arch-x86/cpuid.h).
const SIGNATURE: [u32; 3] = [0x566e_6558, 0x6558_4d4d, 0x4d4d_566e];
/// Xen's first leaf, and how far its leaves may be moved (Viridian takes the first).
const FIRST_LEAF: u32 = 0x4000_0000;
const LEAF_STEP: u32 = 0x100;
const LAST_BASE: u32 = 0x4001_0000;
/// The first byte Xen writes into every stub: `mov $nr, %eax` (svm.c/vmx.c
/// `*_init_hypercall_page`).
const STUB_FIRST_BYTE: u8 = 0xB8;

core::arch::global_asm!(
    r#"
    .pushsection .text.xen_hypercall_page, "ax"
    .p2align 12
    .global XEN_HYPERCALL_PAGE
XEN_HYPERCALL_PAGE:
    .fill 4096, 1, 0xcc               /* int3 until Xen fills it */
    .popsection
    "#
);

// SAFETY: the symbol is the page defined by the `global_asm!` above; it is only read
// through `&raw const` and volatile reads, never through a Rust reference.
unsafe extern "C" {
    /// One page of text that Xen overwrites with hypercall stubs.
    static XEN_HYPERCALL_PAGE: u8;
}

/// The page whose frame `XENMEM_add_to_physmap` replaces with Xen's `shared_info`.
/// Only ever accessed through volatile reads of the fields below.
#[repr(C, align(4096))]
struct SharedInfoPage([u8; 4096]);
static mut SHARED_INFO: SharedInfoPage = SharedInfoPage([0; 4096]);
/// Set once `SHARED_INFO` holds Xen's `shared_info`.
static SHARED_INFO_MAPPED: AtomicBool = AtomicBool::new(false);

// shared_info offsets (xen.h, x86-64): vcpu_info[32] of 64 bytes, then
// evtchn_pending[64] and evtchn_mask[64] (u64 each), then the wall clock.
const SI_VCPU0_TIME: usize = 32;
const SI_WC_VERSION: usize = 3072;
const SI_WC_SEC: usize = 3076;
const SI_WC_NSEC: usize = 3080;
const SI_WC_SEC_HI: usize = 3084;
// vcpu_time_info offsets (xen.h).
const VT_VERSION: usize = 0;
const VT_TSC_TIMESTAMP: usize = 8;
const VT_SYSTEM_TIME: usize = 16;
const VT_MUL: usize = 24;
const VT_SHIFT: usize = 28;

// xencons_interface (io/console.h): in[1024], out[2048], then four u32 indices.
const CONS_OUT: u64 = 1024;
const CONS_OUT_SIZE: u32 = 2048;
const CONS_OUT_CONS: u64 = 3080;
const CONS_OUT_PROD: u64 = 3084;
/// The console ring's guest-physical address (0: none) and its event channel.
static RING: AtomicU64 = AtomicU64::new(0);
static RING_EVTCHN: AtomicU32 = AtomicU32::new(0);
/// How often a full ring is retried (each after `SCHEDOP_yield`) before output is
/// dropped: xenconsoled may be gone, and the console must never hang the guest.
const RING_FULL_TRIES: u32 = 10_000;

/// Why Xen cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XenError {
    /// Leaf base+2 says Xen offers no hypercall page.
    NoHypercallPage { leaf: u32 },
    /// Xen did not write its stubs into the hypercall page after the MSR write.
    HypercallPageNotFilled { msr: u32, first_byte: u8 },
    /// A hypercall returned an error (`-errno`).
    Hypercall { what: &'static str, errno: i64 },
    /// The memory map Xen returned is unusable.
    MemoryMap(PvhError),
}

impl fmt::Display for XenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoHypercallPage { leaf } => {
                write!(f, "Xen CPUID leaf {leaf:#x} reports no hypercall page")
            }
            Self::HypercallPageNotFilled { msr, first_byte } => write!(
                f,
                "Xen did not fill the hypercall page after MSR {msr:#x} was written \
                 (first byte {first_byte:#04x}, expected {STUB_FIRST_BYTE:#04x})"
            ),
            Self::Hypercall { what, errno } => {
                write!(f, "Xen hypercall {what} failed with errno {errno}")
            }
            Self::MemoryMap(e) => write!(f, "Xen's memory map (XENMEM_memory_map): {e}"),
        }
    }
}

/// What we know about the Xen we run on.
#[derive(Debug, Clone, Copy)]
pub struct Xen {
    /// Xen's first CPUID leaf (0x4000_0000 or a multiple of 0x100 above).
    pub base: u32,
    /// Version from leaf base+1.
    pub major: u16,
    pub minor: u16,
}

static XEN: spin::Once<Xen> = spin::Once::new();
/// Set once `HYPERVISOR_console_io` accepted a write: the console goes there.
static CONSOLE: AtomicBool = AtomicBool::new(false);

/// Xen's CPUID base leaf, if we run on Xen.
fn detect() -> Option<u32> {
    // CPUID.1:ECX[31]: running under a hypervisor.
    if cpuid(1, 0).ecx & (1 << 31) == 0 {
        return None;
    }
    (FIRST_LEAF..LAST_BASE)
        .step_by(LEAF_STEP as usize)
        .find(|&base| {
            let r = cpuid(base, 0);
            [r.ebx, r.ecx, r.edx] == SIGNATURE && r.eax >= base + 2
        })
}

/// Detects Xen and installs the hypercall page. `Ok(None)`: not on Xen. Call once,
/// at boot, while the boot page tables (writable text) are live.
pub fn init() -> Result<Option<&'static Xen>, XenError> {
    let Some(base) = detect() else {
        return Ok(None);
    };
    let v = cpuid(base + 1, 0).eax;
    let r = cpuid(base + 2, 0);
    if r.eax == 0 {
        return Err(XenError::NoHypercallPage { leaf: base + 2 });
    }
    let page = (&raw const XEN_HYPERCALL_PAGE) as u64;
    // SAFETY: leaf base+2 names this MSR as Xen's hypercall-page MSR; writing a
    // page-aligned guest-physical address (identity map: the symbol's address) with
    // page index 0 makes Xen overwrite that page of our text, which nothing but the
    // hypercall stubs below ever executes.
    unsafe { wrmsr(r.ebx, page) };
    // SAFETY: the page is a 4 KiB static in our image; a volatile read sees what Xen
    // wrote (the compiler would otherwise assume the 0xcc it was linked with).
    let first_byte = unsafe { core::ptr::read_volatile(&raw const XEN_HYPERCALL_PAGE) };
    if first_byte != STUB_FIRST_BYTE {
        return Err(XenError::HypercallPageNotFilled {
            msr: r.ebx,
            first_byte,
        });
    }
    let xen = XEN.call_once(|| Xen {
        base,
        major: (v >> 16) as u16,
        minor: v as u16,
    });
    // A zero-length write says whether Xen lets us use its console (dom0 yes, a domU
    // -EPERM unless Xen was built with verbose debugging).
    // SAFETY: count 0, the buffer is never read.
    if unsafe { hypercall3(HYPERVISOR_CONSOLE_IO, CONSOLEIO_WRITE, 0, page) } == 0 {
        CONSOLE.store(true, Ordering::Relaxed);
    } else {
        init_console_ring();
    }
    map_shared_info();
    Ok(Some(xen))
}

/// Reads HVM parameter `index` of this domain (`HVMOP_get_param`).
pub(crate) fn hvm_param(index: u32) -> Result<u64, XenError> {
    let mut arg = XenHvmParam {
        domid: DOMID_SELF,
        _pad: 0,
        index,
        value: 0,
    };
    let argp = &raw mut arg;
    // SAFETY: `arg` lives on our stack across the call and Xen writes only its
    // `value`.
    unsafe {
        op_with_arg(
            "HVMOP_get_param",
            HYPERVISOR_HVM_OP,
            HVMOP_GET_PARAM,
            argp.cast_const().cast(),
        )
    }?;
    // SAFETY: `argp` points at `arg`, which Xen wrote (volatile: the compiler cannot
    // see the write).
    Ok(unsafe { core::ptr::read_volatile(&raw const (*argp).value) })
}

/// `struct xen_hvm_param` (hvm/hvm_op.h).
#[repr(C)]
struct XenHvmParam {
    domid: u16,
    _pad: u16,
    index: u32,
    value: u64,
}

/// Notifies event channel `port` (`EVTCHNOP_send`); the errno on failure.
pub(crate) fn evtchn_send(port: u32) -> Result<(), XenError> {
    let arg = port; // struct evtchn_send { evtchn_port_t port; }
    // SAFETY: Xen reads the 4-byte `arg`, which lives across the call.
    unsafe {
        op_with_arg(
            "EVTCHNOP_send",
            HYPERVISOR_EVENT_CHANNEL_OP,
            EVTCHNOP_SEND,
            (&raw const arg).cast(),
        )
    }
}

/// Hypercall `nr` with command `cmd` and one argument structure at `arg`, on Xen
/// only (`ENOSYS` elsewhere); a negative result becomes an error named `what`.
///
/// # Safety
/// `arg` must point at the structure `cmd` takes, valid for Xen to read (and write,
/// for commands that return data) for the duration of the call.
pub(crate) unsafe fn op_with_arg(
    what: &'static str,
    nr: u32,
    cmd: u64,
    arg: *const u8,
) -> Result<(), XenError> {
    get().ok_or(XenError::Hypercall { what, errno: 38 })?;
    // SAFETY: Xen is initialised (checked above); the argument is the caller's
    // to vouch for.
    let rc = unsafe { hypercall3(nr, cmd, arg as u64, 0) };
    if rc < 0 {
        return Err(XenError::Hypercall { what, errno: -rc });
    }
    Ok(())
}

/// Blocks the vCPU until one of `ports` is pending, the absolute Xen system time
/// `timeout` passes, or something else wakes it (`SCHEDOP_poll`; at most 128
/// ports). Works on masked ports and needs no upcall. `None`: no timeout.
pub(crate) fn sched_poll(ports: &[u32], timeout: Option<u64>) -> Result<(), XenError> {
    /// `struct sched_poll` (sched.h).
    #[repr(C)]
    struct Poll {
        ports: u64,
        nr_ports: u32,
        timeout: u64,
    }
    let arg = Poll {
        ports: ports.as_ptr() as u64,
        nr_ports: u32::try_from(ports.len()).unwrap_or(u32::MAX),
        // 0 means "no timeout"; an expired deadline becomes 1 (long past).
        timeout: timeout.map_or(0, |t| t.max(1)),
    };
    // SAFETY: `arg` and the `ports` slice it points at live across the call and
    // Xen only reads them (and rejects more than 128 ports).
    unsafe {
        op_with_arg(
            "SCHEDOP_poll",
            HYPERVISOR_SCHED_OP,
            SCHEDOP_POLL,
            (&raw const arg).cast(),
        )
    }
}

/// Gives up the vCPU for a moment (`SCHEDOP_yield`), e.g. while dom0 drains a ring.
fn yield_cpu() {
    // SAFETY: Xen is initialised (callers check); the argument is unused.
    let _ = unsafe { hypercall3(HYPERVISOR_SCHED_OP, SCHEDOP_YIELD, 0, 0) };
}

/// Finds the domU console ring. Without one (no parameter, or a page outside the
/// low 4 GiB the boot and final page tables map) the console stays on the UART.
fn init_console_ring() {
    let (Ok(pfn), Ok(port)) = (
        hvm_param(HVM_PARAM_CONSOLE_PFN),
        hvm_param(HVM_PARAM_CONSOLE_EVTCHN),
    ) else {
        return;
    };
    let Some(addr) = pfn.checked_mul(4096).filter(|&a| a != 0 && a < (1 << 32)) else {
        return;
    };
    let Ok(port) = u32::try_from(port) else {
        return;
    };
    RING_EVTCHN.store(port, Ordering::Relaxed);
    RING.store(addr, Ordering::Release);
}

/// Reads a u32 of the console ring at byte `off`.
fn ring_read32(ring: u64, off: u64) -> u32 {
    // SAFETY: `ring` is the console page Xen named (identity-mapped, below 4 GiB:
    // checked in `init_console_ring`); `off` is a 4-aligned index field inside it.
    // Volatile: xenconsoled in dom0 writes it concurrently.
    unsafe { core::ptr::read_volatile((ring + off) as *const u32) }
}

/// Appends `bytes` (with `\n` as `\r\n`, as a terminal on `xl console` expects) to
/// the console ring and notifies dom0. `false` when there is no ring.
fn ring_write(bytes: &[u8]) -> bool {
    let ring = RING.load(Ordering::Acquire);
    if ring == 0 {
        return false;
    }
    let port = RING_EVTCHN.load(Ordering::Relaxed);
    let mut prod = ring_read32(ring, CONS_OUT_PROD);
    let mut pending = bytes.iter().flat_map(|&b| {
        let cr = (b == b'\n').then_some(b'\r');
        cr.into_iter().chain(core::iter::once(b))
    });
    let mut next = pending.next();
    let mut tries = 0;
    while let Some(b) = next {
        let cons = ring_read32(ring, CONS_OUT_CONS);
        if prod.wrapping_sub(cons) >= CONS_OUT_SIZE {
            // Full (or indices dom0 corrupted): publish what we have and let dom0 run.
            publish(ring, prod, port);
            tries += 1;
            if tries > RING_FULL_TRIES {
                // xenconsoled is not draining (or wrote nonsense): drop the rest and
                // stop using the ring, so later writes do not wait again.
                RING.store(0, Ordering::Release);
                return true;
            }
            yield_cpu();
            continue;
        }
        let at = ring + CONS_OUT + u64::from(prod % CONS_OUT_SIZE);
        // SAFETY: `at` lies in the ring's out[2048] array (index taken modulo its
        // size) of the console page; dom0 reads only bytes below out_prod.
        unsafe { core::ptr::write_volatile(at as *mut u8, b) };
        prod = prod.wrapping_add(1);
        next = pending.next();
    }
    publish(ring, prod, port);
    true
}

/// Makes the bytes below `prod` visible to dom0 and notifies it.
fn publish(ring: u64, prod: u32, port: u32) {
    // The data must be visible before the index (x86 keeps stores in order; this
    // stops the compiler from moving them).
    compiler_fence(Ordering::Release);
    // SAFETY: as in `ring_read32`; out_prod is ours to write.
    unsafe { core::ptr::write_volatile((ring + CONS_OUT_PROD) as *mut u32, prod) };
    compiler_fence(Ordering::SeqCst);
    let _ = evtchn_send(port);
}

/// Waits (bounded) until dom0 has read everything in the console ring.
fn ring_drain() {
    let ring = RING.load(Ordering::Acquire);
    if ring == 0 {
        return;
    }
    for _ in 0..RING_FULL_TRIES {
        if ring_read32(ring, CONS_OUT_CONS) == ring_read32(ring, CONS_OUT_PROD) {
            return;
        }
        let _ = evtchn_send(RING_EVTCHN.load(Ordering::Relaxed));
        yield_cpu();
    }
}

/// `struct xen_add_to_physmap` (memory.h).
#[repr(C)]
pub(crate) struct XenAddToPhysmap {
    pub domid: u16,
    pub size: u16,
    pub space: u32,
    pub idx: u64,
    pub gpfn: u64,
}

/// Maps Xen's `shared_info` over our `SHARED_INFO` page.
fn map_shared_info() {
    let page = (&raw const SHARED_INFO) as u64;
    let arg = XenAddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space: XENMAPSPACE_SHARED_INFO,
        idx: 0,
        gpfn: page / 4096,
    };
    // SAFETY: Xen is initialised (called from `init`); the page is a 4 KiB-aligned
    // static of ours that nothing else uses, so replacing its frame loses nothing;
    // `arg` lives across the call.
    let rc = unsafe {
        hypercall3(
            HYPERVISOR_MEMORY_OP,
            XENMEM_ADD_TO_PHYSMAP,
            (&raw const arg) as u64,
            0,
        )
    };
    if rc == 0 {
        SHARED_INFO_MAPPED.store(true, Ordering::Release);
    }
}

/// The address of Xen's `shared_info` in our memory, once mapped.
pub(crate) fn shared_info_addr() -> Option<u64> {
    SHARED_INFO_MAPPED
        .load(Ordering::Acquire)
        .then_some((&raw const SHARED_INFO) as u64)
}

/// Reads a `T` (u8/u32/u64) at byte `off` of `shared_info`.
fn si_read<T: Copy>(off: usize) -> T {
    let base = (&raw const SHARED_INFO).cast::<u8>();
    // SAFETY: callers pass offsets of naturally aligned fields inside the 4 KiB page;
    // volatile because Xen updates them at any time.
    unsafe { core::ptr::read_volatile(base.add(off).cast::<T>()) }
}

/// Xen's system time now (ns since Xen booted), from vCPU 0's `vcpu_time_info`.
pub(crate) fn system_time_ns() -> u64 {
    loop {
        let v0: u32 = si_read(SI_VCPU0_TIME + VT_VERSION);
        compiler_fence(Ordering::Acquire);
        let tsc: u64 = si_read(SI_VCPU0_TIME + VT_TSC_TIMESTAMP);
        let sys: u64 = si_read(SI_VCPU0_TIME + VT_SYSTEM_TIME);
        let mul: u32 = si_read(SI_VCPU0_TIME + VT_MUL);
        let shift: i8 = si_read(SI_VCPU0_TIME + VT_SHIFT);
        let now = crate::cpu::rdtsc();
        compiler_fence(Ordering::Acquire);
        let v1: u32 = si_read(SI_VCPU0_TIME + VT_VERSION);
        if v0 & 1 == 0 && v0 == v1 {
            let delta = now.saturating_sub(tsc);
            let delta = if shift >= 0 {
                delta << shift.unsigned_abs().min(63)
            } else {
                delta >> shift.unsigned_abs().min(63)
            };
            return sys.wrapping_add(((u128::from(delta) * u128::from(mul)) >> 32) as u64);
        }
        core::hint::spin_loop();
    }
}

/// Unix nanoseconds now from Xen's wall clock, once `shared_info` is mapped and Xen
/// has set a wall clock (`None` otherwise).
pub fn wall_ns() -> Option<u64> {
    if !SHARED_INFO_MAPPED.load(Ordering::Acquire) {
        return None;
    }
    let (sec, nsec) = loop {
        let v0: u32 = si_read(SI_WC_VERSION);
        compiler_fence(Ordering::Acquire);
        let lo: u32 = si_read(SI_WC_SEC);
        let hi: u32 = si_read(SI_WC_SEC_HI);
        let nsec: u32 = si_read(SI_WC_NSEC);
        compiler_fence(Ordering::Acquire);
        let v1: u32 = si_read(SI_WC_VERSION);
        if v0 & 1 == 0 && v0 == v1 {
            break ((u64::from(hi) << 32) | u64::from(lo), u64::from(nsec));
        }
        core::hint::spin_loop();
    };
    if sec == 0 {
        return None;
    }
    Some(
        sec.saturating_mul(1_000_000_000)
            .saturating_add(nsec)
            .saturating_add(system_time_ns()),
    )
}

/// The Xen we run on, once [`init`] found it.
pub fn get() -> Option<&'static Xen> {
    XEN.get()
}

/// Calls hypercall `nr` with three arguments through the page Xen filled; returns
/// Xen's `long` result (negative errno on failure).
///
/// # Safety
/// [`init`] must have succeeded, and the arguments must be what hypercall `nr`
/// expects: pointers are guest addresses of live memory Xen may read or write as
/// that hypercall's contract says, for the duration of the call.
pub(crate) unsafe fn hypercall3(nr: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    let stub = (&raw const XEN_HYPERCALL_PAGE) as u64 + u64::from(nr) * STUB_LEN;
    let ret: i64;
    // SAFETY: the caller guarantees the page holds Xen's stubs and the arguments are
    // valid for `nr`. Xen's x86-64 ABI: number in RAX (the stub sets it), arguments in
    // RDI, RSI, RDX, R10, R8, result in RAX; Xen may clobber the argument registers
    // (debug builds do on purpose) and RCX/R11. The stub is `mov; vmcall; ret` on
    // our stack.
    unsafe {
        core::arch::asm!(
            "call {stub}",
            stub = in(reg) stub,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            out("rax") ret,
            out("rcx") _,
            out("r8") _,
            out("r10") _,
            out("r11") _,
        );
    }
    ret
}

/// `struct xen_memory_map` (memory.h): in, the buffer's capacity; out, the count.
#[repr(C)]
struct XenMemoryMap {
    nr_entries: u32,
    _pad: u32,
    buffer: u64,
}

/// The memory map from `XENMEM_memory_map`, validated.
pub fn memory_map() -> Result<alloc::vec::Vec<MemRegion>, XenError> {
    let mut buf = [0u8; MAX_MEMMAP_ENTRIES * E820_ENTRY_LEN];
    let mut arg = XenMemoryMap {
        nr_entries: MAX_MEMMAP_ENTRIES as u32,
        _pad: 0,
        buffer: buf.as_mut_ptr() as u64,
    };
    let argp = &raw mut arg;
    // SAFETY: `arg` and `buf` live on our stack (identity-mapped) across the call,
    // and `arg.nr_entries` bounds what Xen writes into `buf`.
    unsafe {
        op_with_arg(
            "XENMEM_memory_map",
            HYPERVISOR_MEMORY_OP,
            XENMEM_MEMORY_MAP,
            argp.cast_const().cast(),
        )
    }?;
    // SAFETY: `argp` points at `arg`, which Xen wrote; volatile because the compiler
    // cannot see the hypercall write through the pointer it passed as an integer.
    let count = unsafe { core::ptr::read_volatile(&raw const (*argp).nr_entries) };
    // SAFETY: as above, for the buffer Xen filled.
    let bytes = unsafe { core::ptr::read_volatile(&raw const buf) };
    oasis_pvh::parse_e820(&bytes, count as usize).map_err(XenError::MemoryMap)
}

/// Writes `bytes` to Xen's console (dom0) or the console ring (domU); `false` when
/// there is neither (the caller then uses the UART).
pub fn console_write(bytes: &[u8]) -> bool {
    if !CONSOLE.load(Ordering::Relaxed) {
        return ring_write(bytes);
    }
    for chunk in bytes.chunks(u32::MAX as usize) {
        // SAFETY: Xen is initialised (CONSOLE is only set after `init` succeeded); it
        // reads `chunk.len()` bytes of our memory.
        let rc = unsafe {
            hypercall3(
                HYPERVISOR_CONSOLE_IO,
                CONSOLEIO_WRITE,
                chunk.len() as u64,
                chunk.as_ptr() as u64,
            )
        };
        if rc < 0 {
            return false;
        }
    }
    true
}

/// The guest TSC frequency Xen states (leaf base+3, sub-leaf 0, ECX in kHz), if any.
pub fn tsc_khz() -> Option<u64> {
    let xen = get()?;
    let r = cpuid(xen.base, 0);
    if r.eax < xen.base + 3 {
        return None;
    }
    let khz = u64::from(cpuid(xen.base + 3, 0).ecx);
    // Anything below 1 MHz is not a TSC we can keep time with.
    (khz >= 1000).then_some(khz)
}

/// `struct sched_shutdown` (sched.h).
#[repr(C)]
struct SchedShutdown {
    reason: u32,
}

/// Asks Xen to end this domain: poweroff for status 0, crash otherwise (Xen's
/// shutdown reasons carry no number, so the status is printed first). Returns only
/// if Xen refuses.
pub fn shutdown(status: u8) {
    use core::fmt::Write;
    let _ = writeln!(crate::serial::Serial, "oasis: exit status {status}");
    // A domU's last lines are in the console ring: let xenconsoled read them before
    // the toolstack destroys the domain.
    ring_drain();
    let arg = SchedShutdown {
        reason: if status == 0 {
            SHUTDOWN_POWEROFF
        } else {
            SHUTDOWN_CRASH
        },
    };
    // SAFETY: Xen is initialised (callers check `get()`); `arg` lives across the call.
    let _ = unsafe {
        hypercall3(
            HYPERVISOR_SCHED_OP,
            SCHEDOP_SHUTDOWN,
            (&raw const arg) as u64,
            0,
        )
    };
}

/// What the boot-time xenstore probe found (`device/` of this domU), for
/// [`describe`].
static XENSTORE: spin::Once<alloc::string::String> = spin::Once::new();

/// Connects to xenstore when the toolstack gave this domain a store ring (a domU;
/// Xen's own dom0 here has none) and records what its `device/` directory lists,
/// e.g. `[vif, vbd]`, or why it could not.
pub fn probe_xenstore() {
    if !matches!(hvm_param(oasis_xen::hv::HVM_PARAM_STORE_PFN), Ok(pfn) if pfn != 0) {
        return;
    }
    let hv = crate::xenhv::XenHv;
    // The connection stays open for the drivers (`xendev`).
    let found = match crate::xendev::connect() {
        Ok(d) => alloc::format!("device/ {d:?}"),
        Err(e) => e,
    };
    // Two more of the hypercalls the drivers rely on, each checked once against the
    // real Xen: the grant-table size, and an event channel allocated and closed.
    use oasis_xen::hv::XenHypervisor;
    let grants = match hv.grant_table_query_size() {
        Ok(g) => alloc::format!("grant table {}/{} frames", g.nr_frames, g.max_nr_frames),
        Err(e) => alloc::format!("grant table unknown ({e})"),
    };
    let evtchn = match hv.evtchn_alloc_unbound(0) {
        Ok(p) => match hv.evtchn_close(p) {
            Ok(()) => alloc::format!("evtchn {p} allocated and closed"),
            Err(e) => alloc::format!("evtchn {p} not closed ({e})"),
        },
        Err(e) => alloc::format!("no evtchn ({e})"),
    };
    XENSTORE.call_once(|| alloc::format!("{found}, {grants}, {evtchn}"));
}

/// The boot line for `-l debug`.
pub fn describe() -> Option<alloc::string::String> {
    let x = get()?;
    let xs = XENSTORE.get().map_or(alloc::string::String::new(), |s| {
        alloc::format!(", xenstore {s}")
    });
    Some(alloc::format!(
        "Xen {}.{} (CPUID base {:#x}), console {}, wall clock {}{xs}",
        x.major,
        x.minor,
        x.base,
        if CONSOLE.load(Ordering::Relaxed) {
            "console_io"
        } else if RING.load(Ordering::Relaxed) != 0 {
            "ring"
        } else {
            "UART"
        },
        if SHARED_INFO_MAPPED.load(Ordering::Relaxed) {
            "shared_info"
        } else {
            "RTC"
        }
    ))
}
