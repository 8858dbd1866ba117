//! Thin wrappers over x86 instructions: port I/O, MSRs, CPUID, TSC, control registers.
//!
//! These are `unsafe fn`s where the instruction can break memory safety or device
//! state (port and MSR writes, control registers); CPUID and RDTSC are safe.

use core::arch::asm;

/// Reads a byte from an I/O port.
///
/// # Safety
/// Port reads can have side effects on devices (e.g. acknowledge an interrupt); the
/// caller must own the device behind `port`.
pub unsafe fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: the caller owns the device; `in` touches no memory.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Writes a byte to an I/O port.
///
/// # Safety
/// The caller must own the device behind `port`.
pub unsafe fn outb(port: u16, v: u8) {
    // SAFETY: the caller owns the device; `out` touches no memory.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    };
}

/// Writes a 16-bit word to an I/O port.
///
/// # Safety
/// The caller must own the device behind `port`.
pub unsafe fn outw(port: u16, v: u16) {
    // SAFETY: the caller owns the device; `out` touches no memory.
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") v, options(nomem, nostack, preserves_flags))
    };
}

/// Reads a 32-bit word from an I/O port.
///
/// # Safety
/// The caller must own the device behind `port`.
pub unsafe fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: the caller owns the device; `in` touches no memory.
    unsafe {
        asm!("in eax, dx", in("dx") port, out("eax") v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Writes a 32-bit word to an I/O port.
///
/// # Safety
/// The caller must own the device behind `port`.
pub unsafe fn outl(port: u16, v: u32) {
    // SAFETY: the caller owns the device; `out` touches no memory.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack, preserves_flags))
    };
}

/// Reads a model-specific register.
///
/// # Safety
/// `msr` must exist on this CPU (else #GP).
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller checked that the MSR exists.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes a model-specific register.
///
/// # Safety
/// `msr` must exist and `v` must be a value whose effect the caller has accounted for.
pub unsafe fn wrmsr(msr: u32, v: u64) {
    // SAFETY: the caller vouches for the MSR and its effect.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32, options(nostack, preserves_flags))
    };
}

/// Result of CPUID.
#[derive(Debug, Clone, Copy)]
pub struct CpuidResult {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

/// Executes CPUID for `leaf`/`subleaf`.
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    CpuidResult {
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
    }
}

/// Reads the time-stamp counter.
#[inline(always)]
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC reads a counter; no memory or state is changed (CR4.TSD is clear).
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Reads CR2 (the faulting address of the last page fault).
pub fn cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Reads the frame pointer of the caller's frame.
#[inline(always)]
pub fn rbp() -> u64 {
    let v: u64;
    // SAFETY: reading a register has no side effects.
    unsafe { asm!("mov {}, rbp", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Enables interrupts and halts until the next one, atomically (STI's one-instruction
/// shadow covers HLT, so an interrupt pending before the STI still wakes the HLT),
/// then disables interrupts again. Interrupt handlers run between.
pub fn wait_for_interrupt() {
    // SAFETY: our IDT handles every vector that can be delivered; handlers preserve
    // all registers and only touch atomics and the LAPIC.
    unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}

/// Stops the CPU for good.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: with interrupts disabled this parks the CPU; nothing resumes it but NMI.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// `critical-section` for the ecosystem's synchronisation crates (the channels in
/// `oasis::sync`): interrupts off, and back to what they were on release. Task
/// code already runs with interrupts disabled except inside [`wait_for_interrupt`],
/// so this is nearly free; it still saves and restores IF for callers that run with
/// them enabled.
struct CriticalSection;
critical_section::set_impl!(CriticalSection);

/// RFLAGS.IF.
const RFLAGS_IF: u64 = 1 << 9;

// SAFETY: one core; with IF clear nothing else runs until `release`, and `release`
// restores exactly the state `acquire` saw, so nested sections nest correctly.
unsafe impl critical_section::Impl for CriticalSection {
    unsafe fn acquire() -> critical_section::RawRestoreState {
        let flags: u64;
        // SAFETY: reads RFLAGS through the stack and clears IF; touches no memory of ours.
        unsafe { asm!("pushfq", "pop {}", "cli", out(reg) flags, options(nomem)) };
        flags & RFLAGS_IF != 0
    }

    unsafe fn release(was_enabled: critical_section::RawRestoreState) {
        if was_enabled {
            // SAFETY: interrupts were enabled when the section began (see `acquire`).
            unsafe { asm!("sti", options(nomem, nostack)) };
        }
    }
}
