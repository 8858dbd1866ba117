//! Backtraces by walking frame pointers (the image is built with
//! `-C force-frame-pointers=yes`). Prints return addresses; symbolise on the host with
//! `addr2line -e IMAGE ADDR…` (the unstripped image keeps symbols).

use core::fmt::Write;

use crate::serial::Serial;

const MAX_FRAMES: usize = 32;

/// Prints the return addresses of the frame chain starting at frame pointer `rbp`,
/// numbering from `first`. Stops at a null, misaligned or off-stack frame pointer.
pub fn print_from(mut rbp: u64, first: usize) {
    let mut out = Serial;
    for i in first..first + MAX_FRAMES {
        if rbp == 0
            || !rbp.is_multiple_of(8)
            || !crate::mem::on_known_stack(rbp)
            || !crate::mem::on_known_stack(rbp + 8)
        {
            break;
        }
        // SAFETY: rbp and rbp+8 were just checked to lie on a mapped stack.
        let (next, ret) = unsafe {
            (
                core::ptr::read(rbp as *const u64),
                core::ptr::read((rbp + 8) as *const u64),
            )
        };
        if ret == 0 {
            break;
        }
        let _ = writeln!(out, "   {i:2}: {ret:#018x}");
        if next <= rbp {
            break; // frames grow upwards; anything else is corrupt
        }
        rbp = next;
    }
}

/// Prints the backtrace of the caller.
#[inline(never)]
pub fn print_here() {
    print_from(crate::cpu::rbp(), 0);
}
