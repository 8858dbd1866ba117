//! PVH entry: the ELF note, the 32→64-bit switch, and the `start_info` reader.
//!
//! A PVH loader (QEMU, Firecracker, Cloud Hypervisor, Xen) reads the
//! `XEN_ELFNOTE_PHYS32_ENTRY` note and jumps to `pvh_start32` in 32-bit protected
//! mode, paging off, with the physical address of `hvm_start_info` in EBX
//! (xen/include/public/arch-x86/hvm/start_info.h). The stub records the TSC, builds
//! boot page tables identity-mapping the first 4 GiB with 2 MiB pages, enters long
//! mode and calls [`crate::kvm_start`] on the boot stack.

use alloc::string::String;
use alloc::vec::Vec;

/// `XEN_ELFNOTE_PHYS32_ENTRY` (xen/include/public/elfnote.h).
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
const _: () = assert!(XEN_ELFNOTE_PHYS32_ENTRY == 18);

core::arch::global_asm!(
    r#"
    .pushsection .note.Xen, "a", @note
    .p2align 2
    .long 4            /* name size: "Xen\0" */
    .long 4            /* desc size */
    .long 18           /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long pvh_start32
    .p2align 2
    .popsection

    .pushsection .text.boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    movl %ebx, %esi                   /* hvm_start_info, kept for kvm_start */
    rdtsc
    movl %eax, (BOOT_TSC)
    movl %edx, (BOOT_TSC + 4)

    /* PML4[0] -> PDPT; PDPT[0..4] -> PD0..PD3; PDn[i] = 2 MiB page, present+RW+PS */
    movl $BOOT_PDPT, %eax
    orl $0x3, %eax
    movl %eax, (BOOT_PML4)
    movl $BOOT_PD, %eax
    orl $0x3, %eax
    movl $BOOT_PDPT, %edi
    movl $4, %ecx
1:  movl %eax, (%edi)
    addl $0x1000, %eax
    addl $8, %edi
    loop 1b
    movl $BOOT_PD, %edi
    movl $0x83, %eax                  /* present | writable | 2 MiB */
    xorl %edx, %edx
    movl $2048, %ecx
2:  movl %eax, (%edi)
    movl %edx, 4(%edi)
    addl $0x200000, %eax
    adcl $0, %edx
    addl $8, %edi
    loop 2b

    movl $BOOT_PML4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $0x20, %eax                   /* CR4.PAE */
    movl %eax, %cr4
    movl $0xC0000080, %ecx            /* IA32_EFER */
    rdmsr
    orl $0x900, %eax                  /* LME | NXE */
    wrmsr
    movl %cr0, %eax
    orl $0x80010001, %eax             /* PG | WP | PE */
    movl %eax, %cr0
    lgdt (BOOT_GDT_PTR)
    ljmp $0x08, $3f

    .code64
3:  movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    leaq __stack_top(%rip), %rsp
    xorl %ebp, %ebp
    movl %esi, %edi                   /* first argument: start_info address */
    call kvm_start
    ud2

    .p2align 3
BOOT_GDT:
    .quad 0
    .quad 0x00af9a000000ffff          /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff          /* 0x10: data */
BOOT_GDT_PTR:
    .word 23
    .long BOOT_GDT
    .popsection

    .pushsection .bss.boot, "aw", @nobits
    .p2align 12
BOOT_PML4: .skip 4096
BOOT_PDPT: .skip 4096
BOOT_PD:   .skip 4096 * 4
    .p2align 3
    .global BOOT_TSC
BOOT_TSC:  .skip 8
    .popsection
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    static BOOT_TSC: u64;
}

/// The TSC value at the first instruction of the image.
pub fn boot_tsc() -> u64 {
    // SAFETY: written once by the entry stub before any Rust code runs, never after.
    unsafe { core::ptr::read_volatile(&raw const BOOT_TSC) }
}

/// `hvm_start_info.magic`.
const START_INFO_MAGIC: u32 = 0x336e_c578;
/// E820 type of usable RAM.
pub const E820_RAM: u32 = 1;

/// A region of the physical memory map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemRegion {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

/// What the loader told us, copied out of low memory.
#[derive(Debug)]
pub struct BootInfo {
    pub cmdline: String,
    pub memmap: Vec<MemRegion>,
    /// Physical address of the ACPI RSDP, 0 when the loader passed none.
    pub rsdp: u64,
}

/// Why `start_info` could not be used.
#[derive(Debug, Clone, Copy)]
pub enum BootInfoError {
    BadMagic(u32),
    NoMemoryMap,
}

impl core::fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadMagic(m) => write!(
                f,
                "hvm_start_info magic is {m:#x}, expected {START_INFO_MAGIC:#x}: not booted through PVH?"
            ),
            Self::NoMemoryMap => f.write_str(
                "hvm_start_info carries no memory map (version 0 loader); need version 1",
            ),
        }
    }
}

/// `hvm_start_info` field offsets (start_info.h).
mod field {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 4;
    pub const CMDLINE_PADDR: usize = 24;
    pub const RSDP_PADDR: usize = 32;
    pub const MEMMAP_PADDR: usize = 40;
    pub const MEMMAP_ENTRIES: usize = 48;
    pub const MEMMAP_ENTRY_SIZE: usize = 24;
}

/// Reads `hvm_start_info` at physical address `addr`.
///
/// # Safety
/// `addr` must be the value the PVH loader passed in EBX, and the low 4 GiB must be
/// identity-mapped (the boot page tables are).
pub unsafe fn read_start_info(addr: u64) -> Result<BootInfo, BootInfoError> {
    let base = addr as usize as *const u8;
    // SAFETY: the loader placed a valid hvm_start_info at `addr` (caller's contract).
    let rd32 = |off: usize| unsafe { core::ptr::read_unaligned(base.add(off).cast::<u32>()) };
    // SAFETY: as above.
    let rd64 = |off: usize| unsafe { core::ptr::read_unaligned(base.add(off).cast::<u64>()) };
    let magic = rd32(field::MAGIC);
    if magic != START_INFO_MAGIC {
        return Err(BootInfoError::BadMagic(magic));
    }
    let version = rd32(field::VERSION);
    let rsdp = rd64(field::RSDP_PADDR);
    let mut cmdline = String::new();
    let cmd = rd64(field::CMDLINE_PADDR);
    if cmd != 0 {
        let p = cmd as usize as *const u8;
        let mut bytes = Vec::new();
        // Bounded: a command line without a terminator is cut at MAX_CMDLINE + 1,
        // which the argument parser then rejects as too long.
        for i in 0..=oasis_bootargs::MAX_CMDLINE {
            // SAFETY: the loader's NUL-terminated string lies in identity-mapped RAM.
            let b = unsafe { core::ptr::read(p.add(i)) };
            if b == 0 {
                break;
            }
            bytes.push(b);
        }
        cmdline = String::from_utf8_lossy(&bytes).into_owned();
    }
    if version < 1 {
        return Err(BootInfoError::NoMemoryMap);
    }
    let map = rd64(field::MEMMAP_PADDR) as usize as *const u8;
    let entries = rd32(field::MEMMAP_ENTRIES).min(128) as usize;
    if map.is_null() || entries == 0 {
        return Err(BootInfoError::NoMemoryMap);
    }
    let mut memmap = Vec::with_capacity(entries);
    for i in 0..entries {
        // SAFETY: the loader's memory map has `entries` entries of 24 bytes.
        let e = unsafe { map.add(i * field::MEMMAP_ENTRY_SIZE) };
        // SAFETY: as above; fields at offsets 0, 8, 16.
        let (a, s, t) = unsafe {
            (
                core::ptr::read_unaligned(e.cast::<u64>()),
                core::ptr::read_unaligned(e.add(8).cast::<u64>()),
                core::ptr::read_unaligned(e.add(16).cast::<u32>()),
            )
        };
        memmap.push(MemRegion {
            addr: a,
            size: s,
            kind: t,
        });
    }
    Ok(BootInfo {
        cmdline,
        memmap,
        rsdp,
    })
}
