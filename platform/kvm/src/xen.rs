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
//!   when Xen lets this domain use it (dom0; a domU gets `-EPERM` and keeps the UART,
//!   whose output is lost: the domU console ring is not done yet);
//! - clock: the TSC, at the frequency Xen states in leaf base+3 ([`tsc_khz`]);
//! - exit: `isa-debug-exit` still ends QEMU when we are dom0 under QEMU (dom0 owns
//!   the I/O ports); otherwise `SCHEDOP_shutdown`, poweroff for status 0 and crash
//!   for any other, after printing the status ([`shutdown`]).
//!
//! The timer (Xen's emulated LAPIC, TSC-deadline), idle (HLT blocks the vCPU) and
//! entropy (RDRAND/RDSEED, which Xen passes through) are the same code as on KVM.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use oasis_pvh::{E820_ENTRY_LEN, MAX_MEMMAP_ENTRIES, MemRegion, PvhError};

use crate::cpu::{cpuid, wrmsr};

// Hypercall numbers (xen.h).
const HYPERVISOR_MEMORY_OP: u32 = 12;
const HYPERVISOR_CONSOLE_IO: u32 = 18;
const HYPERVISOR_SCHED_OP: u32 = 29;
/// Each hypercall's stub is 32 bytes into the page (xen.h, "hypercall_page").
const STUB_LEN: u64 = 32;

// memory.h
const XENMEM_MEMORY_MAP: u64 = 9;
// xen.h
const CONSOLEIO_WRITE: u64 = 0;
// sched.h
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

unsafe extern "C" {
    /// One page of text that Xen overwrites with hypercall stubs.
    static XEN_HYPERCALL_PAGE: u8;
}

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
    }
    Ok(Some(xen))
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
unsafe fn hypercall3(nr: u32, a1: u64, a2: u64, a3: u64) -> i64 {
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
    // SAFETY: `init` succeeded (we are only called on Xen); `arg` and `buf` live on our
    // stack (identity-mapped) across the call, and `arg.nr_entries` bounds what Xen
    // writes into `buf`.
    let rc = unsafe { hypercall3(HYPERVISOR_MEMORY_OP, XENMEM_MEMORY_MAP, argp as u64, 0) };
    if rc < 0 {
        return Err(XenError::Hypercall {
            what: "XENMEM_memory_map",
            errno: -rc,
        });
    }
    // SAFETY: `argp` points at `arg`, which Xen wrote; volatile because the compiler
    // cannot see the hypercall write through the pointer it passed as an integer.
    let count = unsafe { core::ptr::read_volatile(&raw const (*argp).nr_entries) };
    // SAFETY: as above, for the buffer Xen filled.
    let bytes = unsafe { core::ptr::read_volatile(&raw const buf) };
    oasis_pvh::parse_e820(&bytes, count as usize).map_err(XenError::MemoryMap)
}

/// Writes `bytes` to Xen's console if this domain may; `false` when it may not (the
/// caller then uses the UART).
pub fn console_write(bytes: &[u8]) -> bool {
    if !CONSOLE.load(Ordering::Relaxed) {
        return false;
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

/// The boot line for `-l debug`.
pub fn describe() -> Option<alloc::string::String> {
    let x = get()?;
    Some(alloc::format!(
        "Xen {}.{} (CPUID base {:#x}), console {}",
        x.major,
        x.minor,
        x.base,
        if CONSOLE.load(Ordering::Relaxed) {
            "console_io"
        } else {
            "UART"
        }
    ))
}
