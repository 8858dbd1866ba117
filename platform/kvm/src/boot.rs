//! PVH entry: the ELF note, the 32→64-bit switch, and reading `start_info` (parsed
//! by `oasis-pvh`) out of guest memory.
//!
//! A PVH loader (QEMU, Firecracker, Cloud Hypervisor, Xen) reads the
//! `XEN_ELFNOTE_PHYS32_ENTRY` note and jumps to `pvh_start32` in 32-bit protected
//! mode, paging off, with the physical address of `hvm_start_info` in EBX
//! (xen/include/public/arch-x86/hvm/start_info.h). The stub records the TSC, builds
//! boot page tables identity-mapping the first 4 GiB with 2 MiB pages, enters long
//! mode and calls [`crate::kvm_start`] on the boot stack.

use oasis_pvh::{BootInfo, GuestMemory, PvhError};

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

/// Guest physical memory below 4 GiB, read through the boot identity map.
pub struct LowMemory(());

/// Guest memory the boot page tables map: the low 4 GiB.
const LOW_MEMORY_END: u64 = 1 << 32;

impl LowMemory {
    /// The reader for the loader's data at boot.
    ///
    /// # Safety
    ///
    /// The low 4 GiB must be identity-mapped and readable for as long as the value
    /// lives (the boot page tables map them with 2 MiB pages), and no Rust code may
    /// hold a `&mut` into any of it while [`GuestMemory::read`] runs (at boot only the
    /// loader's data, the image and the stack live there).
    pub unsafe fn new() -> Self {
        Self(())
    }
}

impl GuestMemory for LowMemory {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), PvhError> {
        let len = buf.len();
        // Page 0 is never boot data (and a null pointer is never readable).
        if paddr == 0
            || paddr
                .checked_add(len as u64)
                .is_none_or(|end| end > LOW_MEMORY_END)
        {
            return Err(PvhError::Unreadable { paddr, len });
        }
        // SAFETY: `paddr..paddr + len` is non-null and lies below 4 GiB, which `new`'s contract says
        // is identity-mapped, readable and not mutably borrowed; `buf` is a distinct
        // Rust allocation, so the ranges do not overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(paddr as usize as *const u8, buf.as_mut_ptr(), len)
        };
        Ok(())
    }
}

/// Reads `hvm_start_info` at physical address `addr` and what it points to. On Xen
/// (`on_xen`) a structure without a memory map is accepted (Xen's PVH dom0 builder
/// passes version 0; the map then comes from `XENMEM_memory_map`) and the result's
/// `memmap` may be empty; elsewhere that is [`PvhError::NoMemoryMap`].
///
/// # Safety
/// `addr` must be the value the PVH loader passed in EBX, and the low 4 GiB must be
/// identity-mapped (the boot page tables are).
pub unsafe fn read_start_info(addr: u64, on_xen: bool) -> Result<BootInfo, PvhError> {
    // SAFETY: the caller guarantees the boot identity map; nothing else runs yet.
    let mem = unsafe { LowMemory::new() };
    if on_xen {
        BootInfo::read_memmap_optional(&mem, addr, oasis_bootargs::MAX_CMDLINE)
    } else {
        BootInfo::read(&mem, addr, oasis_bootargs::MAX_CMDLINE)
    }
}
