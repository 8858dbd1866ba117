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

/// Routes I/O APIC pin `pin` to `vector` on this CPU (edge-triggered, active-high for
/// ISA pins < 16; level-triggered, active-low for PCI INTx pins >= 16).
pub fn route_irq(pin: u8, vector: u8, level_low: bool) {
    let lo = u32::from(vector) | if level_low { (1 << 13) | (1 << 15) } else { 0 };
    let idx = IOAPIC_REDTBL + 2 * u32::from(pin);
    ioapic_write(idx + 1, 0); // destination: APIC ID 0
    ioapic_write(idx, lo);
}

fn ioapic_write(index: u32, v: u32) {
    // SAFETY: the I/O APIC's IOREGSEL/IOWIN registers are identity-mapped uncached at
    // their architectural address; we own the device.
    unsafe {
        core::ptr::write_volatile(IOAPIC_BASE as *mut u32, index);
        core::ptr::write_volatile((IOAPIC_BASE + 0x10) as *mut u32, v);
    }
}
