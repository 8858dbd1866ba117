//! GDT with a TSS (interrupt stacks), the IDT, exception reporting and IRQ entry.
//!
//! Exceptions are fatal: the handler prints vector, error code, RIP, CR2 and a
//! backtrace, then exits. Page faults and double faults run on their own stacks (IST)
//! so a stack overflow into the guard page is reported instead of triple-faulting.
//!
//! IRQs only record that they happened ([`take_pending`]) and acknowledge the LAPIC;
//! the executor does the work in task context. Interrupts are enabled only while the
//! CPU halts (`sti; hlt; cli`), so handlers never interleave with task code.

use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::serial::Serial;

/// First vector used for IRQs (0..32 are exceptions).
pub const IRQ_BASE: u8 = 32;
/// LAPIC timer vector.
pub const TIMER_VECTOR: u8 = 32;
/// Vectors 33..=63 are for devices (IOAPIC pins, MSI-X).
pub const DEVICE_VECTOR_FIRST: u8 = 33;
pub const DEVICE_VECTOR_LAST: u8 = 63;
/// LAPIC spurious-interrupt vector.
pub const SPURIOUS_VECTOR: u8 = 0xFF;

const IST_SIZE: usize = 16 * 1024;
#[repr(C, align(16))]
struct Stack([u8; IST_SIZE]);
static mut IST_FAULT: Stack = Stack([0; IST_SIZE]);
static mut IST_DOUBLE: Stack = Stack([0; IST_SIZE]);

/// Pending IRQ vectors 32..96 as bits (bit n = vector 32 + n).
static PENDING: AtomicU64 = AtomicU64::new(0);

/// Returns and clears the set of IRQ vectors seen since the last call.
pub fn take_pending() -> u64 {
    PENDING.swap(0, Ordering::AcqRel)
}

fn ist_range(s: *const Stack) -> (u64, u64) {
    (s as u64, s as u64 + IST_SIZE as u64)
}

/// Whether `addr..addr+8` is inside an interrupt stack.
pub fn on_ist_stack(addr: u64) -> bool {
    [
        ist_range(&raw const IST_FAULT),
        ist_range(&raw const IST_DOUBLE),
    ]
    .iter()
    .any(|&(lo, hi)| addr >= lo && addr + 8 <= hi)
}

// ---- GDT and TSS ------------------------------------------------------------------

#[repr(C, packed(4))]
struct Tss {
    _reserved0: u32,
    rsp: [u64; 3],
    _reserved1: u64,
    ist: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    iomap_base: u16,
}

static mut TSS: Tss = Tss {
    _reserved0: 0,
    rsp: [0; 3],
    _reserved1: 0,
    ist: [0; 7],
    _reserved2: 0,
    _reserved3: 0,
    iomap_base: size_of::<Tss>() as u16,
};

static mut GDT: [u64; 5] = [
    0,
    0x00af_9a00_0000_ffff, // 0x08: 64-bit code, DPL 0
    0x00cf_9200_0000_ffff, // 0x10: data
    0,                     // 0x18: TSS (low)
    0,                     // 0x20: TSS (high)
];

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

// ---- IDT --------------------------------------------------------------------------

#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_lo: u16,
    selector: u16,
    ist: u8,
    flags: u8,
    offset_mid: u16,
    offset_hi: u32,
    _reserved: u32,
}

const EMPTY_GATE: Gate = Gate {
    offset_lo: 0,
    selector: 0,
    ist: 0,
    flags: 0,
    offset_mid: 0,
    offset_hi: 0,
    _reserved: 0,
};
static mut IDT: [Gate; 256] = [EMPTY_GATE; 256];

fn gate(handler: u64, ist: u8) -> Gate {
    Gate {
        offset_lo: handler as u16,
        selector: 0x08,
        ist,
        flags: 0x8E, // present, DPL 0, 64-bit interrupt gate (IF cleared on entry)
        offset_mid: (handler >> 16) as u16,
        offset_hi: (handler >> 32) as u32,
        _reserved: 0,
    }
}

macro_rules! exception_stub {
    ($name:ident, $vec:literal, true) => {
        #[unsafe(naked)]
        extern "C" fn $name() {
            core::arch::naked_asm!(
                "push {v}",
                "mov rdi, rsp",
                "mov rsi, rbp",
                "sub rsp, 8",
                "call {h}",
                "ud2",
                v = const $vec,
                h = sym exception_handler,
            )
        }
    };
    ($name:ident, $vec:literal, false) => {
        #[unsafe(naked)]
        extern "C" fn $name() {
            core::arch::naked_asm!(
                "push 0",
                "push {v}",
                "mov rdi, rsp",
                "mov rsi, rbp",
                "sub rsp, 8",
                "call {h}",
                "ud2",
                v = const $vec,
                h = sym exception_handler,
            )
        }
    };
}

macro_rules! irq_stub {
    ($name:ident, $vec:expr) => {
        #[unsafe(naked)]
        extern "C" fn $name() {
            core::arch::naked_asm!(
                "push rax", "push rcx", "push rdx", "push rsi", "push rdi",
                "push r8", "push r9", "push r10", "push r11",
                "mov edi, {v}",
                "call {h}",
                "pop r11", "pop r10", "pop r9", "pop r8",
                "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rax",
                "iretq",
                v = const $vec,
                h = sym irq_handler,
            )
        }
    };
}

exception_stub!(ex0, 0, false);
exception_stub!(ex1, 1, false);
exception_stub!(ex2, 2, false);
exception_stub!(ex3, 3, false);
exception_stub!(ex4, 4, false);
exception_stub!(ex5, 5, false);
exception_stub!(ex6, 6, false);
exception_stub!(ex7, 7, false);
exception_stub!(ex8, 8, true);
exception_stub!(ex9, 9, false);
exception_stub!(ex10, 10, true);
exception_stub!(ex11, 11, true);
exception_stub!(ex12, 12, true);
exception_stub!(ex13, 13, true);
exception_stub!(ex14, 14, true);
exception_stub!(ex15, 15, false);
exception_stub!(ex16, 16, false);
exception_stub!(ex17, 17, true);
exception_stub!(ex18, 18, false);
exception_stub!(ex19, 19, false);
exception_stub!(ex20, 20, false);
exception_stub!(ex21, 21, true);
exception_stub!(ex_other, 255, false);

// Vectors with a CPU-pushed error code (8, 10-14, 17, 21) use the `true` form.

// One IRQ stub per vector 32..=63 (timer + devices), plus spurious.
macro_rules! irq_stubs {
    ($($name:ident = $v:literal),* $(,)?) => {
        $(irq_stub!($name, $v);)*
        const IRQ_STUBS: &[(u8, extern "C" fn())] = &[$(($v, $name)),*];
    };
}
irq_stubs!(
    irq32 = 32,
    irq33 = 33,
    irq34 = 34,
    irq35 = 35,
    irq36 = 36,
    irq37 = 37,
    irq38 = 38,
    irq39 = 39,
    irq40 = 40,
    irq41 = 41,
    irq42 = 42,
    irq43 = 43,
    irq44 = 44,
    irq45 = 45,
    irq46 = 46,
    irq47 = 47,
    irq48 = 48,
    irq49 = 49,
    irq50 = 50,
    irq51 = 51,
    irq52 = 52,
    irq53 = 53,
    irq54 = 54,
    irq55 = 55,
    irq56 = 56,
    irq57 = 57,
    irq58 = 58,
    irq59 = 59,
    irq60 = 60,
    irq61 = 61,
    irq62 = 62,
    irq63 = 63,
);

#[unsafe(naked)]
extern "C" fn spurious() {
    core::arch::naked_asm!("iretq")
}

extern "C" fn irq_handler(vector: u64) {
    // The timer only ends the HLT; device vectors are recorded for their drivers.
    if let Some(bit) = vector
        .checked_sub(u64::from(IRQ_BASE))
        .filter(|b| *b > 0 && *b < 64)
    {
        PENDING.fetch_or(1 << bit, Ordering::AcqRel);
        crate::devices::ack_level(vector as u8);
    }
    crate::apic::eoi();
}

/// What the CPU and our stub pushed, lowest address first.
#[repr(C)]
struct ExceptionFrame {
    vector: u64,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

const NAMES: [&str; 22] = [
    "divide error",
    "debug",
    "NMI",
    "breakpoint",
    "overflow",
    "bound range",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor overrun",
    "invalid TSS",
    "segment not present",
    "stack fault",
    "general protection fault",
    "page fault",
    "reserved",
    "x87 floating point",
    "alignment check",
    "machine check",
    "SIMD floating point",
    "virtualization",
    "control protection",
];

extern "C" fn exception_handler(frame: &ExceptionFrame, rbp: u64) -> ! {
    let name = NAMES
        .get(frame.vector as usize)
        .copied()
        .unwrap_or("unknown");
    let cr2 = crate::cpu::cr2();
    let mut out = Serial;
    let _ = writeln!(out, "\n!!! CPU exception {} ({name})", frame.vector);
    let _ = writeln!(
        out,
        "    error code {:#x}, rip {:#018x}, rsp {:#018x}, cr2 {:#018x}",
        frame.error, frame.rip, frame.rsp, cr2
    );
    let l = crate::mem::layout();
    if frame.vector == 14 && cr2 >= l.guard && cr2 < l.stack_bottom {
        let _ = writeln!(
            out,
            "    stack overflow: the boot stack ({} KiB) ran into its guard page",
            (l.stack_top - l.stack_bottom) / 1024
        );
    } else if frame.vector == 14 && cr2 < 4096 {
        let _ = writeln!(out, "    null pointer dereference");
    }
    let _ = writeln!(out, "backtrace:\n    0: {:#018x}", frame.rip);
    crate::backtrace::print_from(rbp, 1);
    crate::exit::exit(crate::EXIT_FAULT)
}

/// Loads the GDT with a TSS, the IDT, and sets up the interrupt stacks.
pub fn init() {
    // SAFETY: single core, interrupts disabled, called once at boot before any other
    // code uses these statics; the descriptors describe valid, 'static memory.
    unsafe {
        let fault_top = ist_range(&raw const IST_FAULT).1;
        let double_top = ist_range(&raw const IST_DOUBLE).1;
        let tss = &raw mut TSS;
        (*tss).ist[0] = fault_top; // IST1: page fault, general protection
        (*tss).ist[1] = double_top; // IST2: double fault, NMI, machine check
        let base = tss as u64;
        let limit = (size_of::<Tss>() - 1) as u64;
        let gdt = &raw mut GDT;
        (*gdt)[3] = (limit & 0xFFFF)
            | ((base & 0xFF_FFFF) << 16)
            | (0x89 << 40) // present, 64-bit available TSS
            | (((limit >> 16) & 0xF) << 48)
            | (((base >> 24) & 0xFF) << 56);
        (*gdt)[4] = base >> 32;
        let gdtp = DescriptorPointer {
            limit: (size_of::<[u64; 5]>() - 1) as u16,
            base: gdt as u64,
        };
        core::arch::asm!(
            "lgdt [{p}]",
            "mov ax, 0x18",
            "ltr ax",
            p = in(reg) &gdtp,
            out("ax") _,
            options(nostack)
        );

        let idt = &raw mut IDT;
        let stubs: [extern "C" fn(); 22] = [
            ex0, ex1, ex2, ex3, ex4, ex5, ex6, ex7, ex8, ex9, ex10, ex11, ex12, ex13, ex14, ex15,
            ex16, ex17, ex18, ex19, ex20, ex21,
        ];
        for v in 0..32u8 {
            let h = stubs.get(v as usize).copied().unwrap_or(ex_other);
            let ist = match v {
                14 | 13 => 1,
                8 | 2 | 18 => 2,
                _ => 0,
            };
            (*idt)[v as usize] = gate(h as *const () as u64, ist);
        }
        for &(v, h) in IRQ_STUBS {
            (*idt)[v as usize] = gate(h as *const () as u64, 0);
        }
        (*idt)[SPURIOUS_VECTOR as usize] = gate(spurious as *const () as u64, 0);
        let idtp = DescriptorPointer {
            limit: (size_of::<[Gate; 256]>() - 1) as u16,
            base: idt as u64,
        };
        core::arch::asm!("lidt [{}]", in(reg) &idtp, options(nostack));
    }
}
