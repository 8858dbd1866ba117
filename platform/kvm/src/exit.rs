//! Ending the VM with a status the host can see.
//!
//! Order: QEMU's `isa-debug-exit` (status reaches QEMU's exit code as
//! `(status << 1) | 1`), ACPI S5 poweroff at the PM1a control ports QEMU's firmware
//! uses, the i8042 reset line (Firecracker ends the VM on it; QEMU with `-no-reboot`
//! exits), then halt. On Xen: `isa-debug-exit` (dom0 under QEMU owns the port), then
//! `SCHEDOP_shutdown` (the status printed first: Xen's reasons carry no number), never
//! the ACPI or i8042 ports, which as dom0 on real hardware would be the host's.

use crate::cpu::{halt_forever, outb, outw};

/// `-device isa-debug-exit,iobase=0xf4,iosize=0x04`.
const DEBUG_EXIT_PORT: u16 = 0xF4;
/// PM1a_CNT on QEMU q35/pc with SeaBIOS/qboot, and the old Bochs/QEMU port.
const ACPI_PM1A_CNT: [u16; 2] = [0x604, 0xB004];
/// SLP_EN | SLP_TYP=S5 for QEMU's PIIX4/ICH9.
const ACPI_S5: u16 = 0x2000;
const I8042_CMD: u16 = 0x64;
const I8042_RESET: u8 = 0xFE;

/// Ends the VM. `status` should be below 128 so that it survives the debug-exit
/// encoding in an 8-bit process exit code.
pub fn exit(status: u8) -> ! {
    if crate::xen::get().is_some() {
        // SAFETY: as below; on Xen the port is QEMU's exit device when we are dom0 in
        // QEMU, and ignored otherwise (a domU has no device behind it).
        unsafe { outb(DEBUG_EXIT_PORT, status) };
        crate::xen::shutdown(status);
        halt_forever()
    }
    // SAFETY: these ports belong to the exit devices; if a device is absent the write
    // is ignored by the VMM and we fall through to the next method.
    unsafe {
        outb(DEBUG_EXIT_PORT, status);
        for port in ACPI_PM1A_CNT {
            outw(port, ACPI_S5);
        }
        outb(I8042_CMD, I8042_RESET);
    }
    halt_forever()
}
