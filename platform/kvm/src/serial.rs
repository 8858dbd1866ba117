//! 16550 UART on COM1 (I/O port 0x3F8): the console. On Xen, where the hypervisor
//! owns the UART, bytes go to Xen's console instead when it accepts them.

use crate::cpu::{inb, outb};

const COM1: u16 = 0x3F8;
// Register offsets (16550 datasheet).
const THR: u16 = 0; // transmit holding (DLAB=0); divisor low (DLAB=1)
const IER: u16 = 1; // interrupt enable; divisor high (DLAB=1)
const FCR: u16 = 2; // FIFO control
const LCR: u16 = 3; // line control
const MCR: u16 = 4; // modem control
const LSR: u16 = 5; // line status
const LSR_THR_EMPTY: u8 = 1 << 5;

/// Programs COM1 for 115200 8N1, FIFOs on, interrupts off.
pub fn init() {
    // SAFETY: COM1 is ours: nothing else in the image drives it.
    unsafe {
        outb(COM1 + IER, 0x00);
        outb(COM1 + LCR, 0x80); // DLAB on
        outb(COM1 + THR, 0x01); // divisor 1 = 115200 baud
        outb(COM1 + IER, 0x00);
        outb(COM1 + LCR, 0x03); // 8N1, DLAB off
        outb(COM1 + FCR, 0xC7); // enable and clear FIFOs
        outb(COM1 + MCR, 0x03); // DTR, RTS
    }
}

/// Writes bytes, translating `\n` to `\r\n` (on the UART; Xen's console does that
/// itself).
pub fn write(bytes: &[u8]) {
    if crate::xen::console_write(bytes) {
        return;
    }
    for &b in bytes {
        if b == b'\n' {
            put(b'\r');
        }
        put(b);
    }
}

fn put(b: u8) {
    // SAFETY: COM1 is ours; reading LSR has no side effect besides status.
    unsafe {
        // Bounded wait: a missing UART reads 0xFF (THR "empty"), so this never hangs.
        for _ in 0..100_000 {
            if inb(COM1 + LSR) & LSR_THR_EMPTY != 0 {
                break;
            }
        }
        outb(COM1 + THR, b);
    }
}

/// A `core::fmt::Write` sink for the console.
pub struct Serial;

impl core::fmt::Write for Serial {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        write(s.as_bytes());
        Ok(())
    }
}
