//! The one place that picks the platform by target (STYLE.md rule 6).

use oasis_devices::Platform;

#[cfg(not(target_os = "none"))]
use oasis_hosted as imp;
#[cfg(target_os = "none")]
use oasis_kvm as imp;

/// Name used in usage and error messages.
pub const PROGRAM: &str = "oasis";

/// The running platform.
pub fn get() -> &'static dyn Platform {
    imp::platform()
}

/// One line about the machine (clock source, timer, heap).
pub fn report() -> alloc::string::String {
    imp::boot_report()
}

/// Removes the kernel parameters the platform consumed itself (e.g.
/// `virtio_mmio.device=` that QEMU microvm and Firecracker append).
pub fn take_platform_args(parser: &mut oasis_bootargs::ArgParser) {
    parser.take_params("virtio_mmio.device");
}
