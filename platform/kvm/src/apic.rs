//! Local APIC (timer, EOI), I/O APIC (device pins), and the legacy PIC (masked).
//!
//! The timer runs one-shot: TSC-deadline mode when the CPU offers it (CPUID.1:ECX[24]),
//! else the LAPIC count-down timer with a frequency calibrated against the TSC.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::cpu::{cpuid, outb, rdmsr, wrmsr};
use crate::interrupts::{SPURIOUS_VECTOR, TIMER_VECTOR};

const IA32_APIC_BASE: u32 = 0x1B;
const IA32_TSC_DEADLINE: u32 = 0x6E0;
const APIC_BASE_ENABLE: u64 = 1 << 11;

// xAPIC register offsets (Intel SDM vol. 3, table 11-1).
const REG_EOI: usize = 0xB0;
const REG_SVR: usize = 0xF0;
const REG_LVT_TIMER: usize = 0x320;
const REG_TIMER_INIT: usize = 0x380;
const REG_TIMER_CURRENT: usize = 0x390;
const REG_TIMER_DIVIDE: usize = 0x3E0;
const SVR_ENABLE: u32 = 1 << 8;
const LVT_MASKED: u32 = 1 << 16;
const LVT_TSC_DEADLINE: u32 = 0b10 << 17;
const DIVIDE_BY_1: u32 = 0b1011;

const IOAPIC_BASE: usize = 0xFEC0_0000;
const IOAPIC_REDTBL: u32 = 0x10;
const IOAPIC_VER: u32 = 0x01;

static LAPIC_BASE: AtomicU64 = AtomicU64::new(0xFEE0_0000);
static TSC_DEADLINE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
/// LAPIC timer ticks per millisecond (count-down mode only).
static TICKS_PER_MS: AtomicU64 = AtomicU64::new(0);

fn reg(off: usize) -> *mut u32 {
    (LAPIC_BASE.load(Ordering::Relaxed) as usize + off) as *mut u32
}

fn read(off: usize) -> u32 {
    // SAFETY: the LAPIC page is identity-mapped uncached (below 4 GiB); 32-bit aligned
    // register reads have no side effects for the registers we read.
    unsafe { core::ptr::read_volatile(reg(off)) }
}

fn write(off: usize, v: u32) {
    // SAFETY: as in `read`; we own the LAPIC.
    unsafe { core::ptr::write_volatile(reg(off), v) }
}

/// Whether the timer uses TSC-deadline mode.
pub fn tsc_deadline_mode() -> bool {
    TSC_DEADLINE.load(Ordering::Relaxed)
}

/// Masks the 8259 PICs, enables the LAPIC, picks the timer mode.
pub fn init() {
    // SAFETY: the legacy PICs are ours; masking all lines stops stray IRQs 0-15 from
    // arriving on exception vectors. IA32_APIC_BASE exists on every x86_64 CPU.
    unsafe {
        outb(0x21, 0xFF);
        outb(0xA1, 0xFF);
        let base = rdmsr(IA32_APIC_BASE);
        wrmsr(IA32_APIC_BASE, base | APIC_BASE_ENABLE);
        LAPIC_BASE.store(base & 0xF_FFFF_F000, Ordering::Relaxed);
    }
    write(REG_SVR, SVR_ENABLE | u32::from(SPURIOUS_VECTOR));
    let deadline = cpuid(1, 0).ecx & (1 << 24) != 0;
    TSC_DEADLINE.store(deadline, Ordering::Relaxed);
    if deadline {
        write(REG_LVT_TIMER, u32::from(TIMER_VECTOR) | LVT_TSC_DEADLINE);
    } else {
        write(REG_TIMER_DIVIDE, DIVIDE_BY_1);
        write(REG_LVT_TIMER, u32::from(TIMER_VECTOR) | LVT_MASKED);
    }
}

/// Starts the count-down timer from its maximum so that [`finish_calibration`] can
/// measure its rate over a known interval.
pub fn start_calibration() {
    if !tsc_deadline_mode() {
        write(REG_TIMER_INIT, u32::MAX);
    }
}

/// LAPIC ticks counted since [`start_calibration`].
pub fn calibration_ticks() -> u64 {
    u64::from(u32::MAX - read(REG_TIMER_CURRENT))
}

/// Ends a calibration: `ticks` counted in `elapsed_ns`.
pub fn finish_calibration(ticks: u64, elapsed_ns: u64) {
    if tsc_deadline_mode() || elapsed_ns == 0 {
        return;
    }
    write(REG_TIMER_INIT, 0);
    TICKS_PER_MS.store((ticks * 1_000_000 / elapsed_ns).max(1), Ordering::Relaxed);
}

/// LAPIC timer ticks per millisecond (0 in TSC-deadline mode).
pub fn ticks_per_ms() -> u64 {
    TICKS_PER_MS.load(Ordering::Relaxed)
}

/// Whether the count-down timer still needs calibrating.
pub fn needs_calibration() -> bool {
    !tsc_deadline_mode() && TICKS_PER_MS.load(Ordering::Relaxed) == 0
}

/// Arms the one-shot timer to fire `ns` nanoseconds from now (TSC value `deadline_tsc`).
pub fn arm(ns: u64, deadline_tsc: u64) {
    if tsc_deadline_mode() {
        // SAFETY: TSC-deadline mode was detected; the MSR exists.
        unsafe { wrmsr(IA32_TSC_DEADLINE, deadline_tsc.max(1)) };
    } else {
        let tpm = TICKS_PER_MS.load(Ordering::Relaxed).max(1);
        let ticks = (u128::from(ns) * u128::from(tpm) / 1_000_000).clamp(1, u128::from(u32::MAX));
        write(REG_LVT_TIMER, u32::from(TIMER_VECTOR));
        write(REG_TIMER_INIT, ticks as u32);
    }
}

/// Signals end-of-interrupt to the LAPIC.
pub fn eoi() {
    write(REG_EOI, 0);
}

/// The I/O APIC every PC-compatible machine has, serving GSIs 0.. (used when no
/// MADT lists the I/O APICs, e.g. QEMU microvm with `acpi=off`).
const DEFAULT_IOAPIC: IoApicAt = IoApicAt {
    base: IOAPIC_BASE,
    gsi_base: 0,
};

#[derive(Clone, Copy)]
struct IoApicAt {
    base: usize,
    gsi_base: u32,
}

/// How a device's interrupt line signals (from ACPI, the PCI spec or the VMM's
/// convention).
#[derive(Debug, Clone, Copy)]
pub struct Line {
    pub gsi: u32,
    pub level: bool,
    pub active_low: bool,
}

/// No I/O APIC serves a GSI.
#[derive(Debug, Clone, Copy)]
pub struct NoIoApic(pub u32);

impl core::fmt::Display for NoIoApic {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "no I/O APIC serves GSI {}", self.0)
    }
}

/// Routes `line` to `vector` on this CPU (APIC ID 0), through the I/O APIC whose
/// GSI range holds it (QEMU microvm with ACPI has a second one at 0xFEC1_0000 for
/// GSIs 24..48, where its virtio-mmio devices are).
pub fn route(line: Line, vector: u8) -> Result<(), NoIoApic> {
    let listed = crate::acpi::io_apics().iter().filter_map(|a| {
        Some(IoApicAt {
            base: usize::try_from(a.address).ok()?,
            gsi_base: a.gsi_base,
        })
    });
    let mut any = false;
    let mut found = None;
    for a in listed {
        any = true;
        if found.is_none() && serves(a, line.gsi) {
            found = Some(a);
        }
    }
    if !any && serves(DEFAULT_IOAPIC, line.gsi) {
        found = Some(DEFAULT_IOAPIC);
    }
    let a = found.ok_or(NoIoApic(line.gsi))?;
    let pin = line.gsi - a.gsi_base;
    let lo = u32::from(vector)
        | if line.active_low { 1 << 13 } else { 0 }
        | if line.level { 1 << 15 } else { 0 };
    let idx = IOAPIC_REDTBL + 2 * pin;
    ioapic_write(a.base, idx + 1, 0); // destination: APIC ID 0
    ioapic_write(a.base, idx, lo);
    Ok(())
}

/// Whether I/O APIC `a` has a redirection entry for `gsi` (IOAPICVER bits 16..24
/// hold the highest entry's index).
fn serves(a: IoApicAt, gsi: u32) -> bool {
    let Some(pin) = gsi.checked_sub(a.gsi_base) else {
        return false;
    };
    let max = (ioapic_read(a.base, IOAPIC_VER) >> 16) & 0xFF;
    pin <= max
}

fn ioapic_write(base: usize, index: u32, v: u32) {
    // SAFETY: `base` is an I/O APIC's register window (architectural address or the
    // MADT's), below 4 GiB and so identity-mapped uncached; IOREGSEL/IOWIN are
    // 32-bit registers; one CPU, so the select/data pair cannot interleave.
    unsafe {
        core::ptr::write_volatile(base as *mut u32, index);
        core::ptr::write_volatile((base + 0x10) as *mut u32, v);
    }
}

fn ioapic_read(base: usize, index: u32) -> u32 {
    // SAFETY: as in `ioapic_write`; reading IOWIN has no side effects.
    unsafe {
        core::ptr::write_volatile(base as *mut u32, index);
        core::ptr::read_volatile((base + 0x10) as *const u32)
    }
}
