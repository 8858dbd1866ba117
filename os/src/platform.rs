//! The one place that picks the platform by target (STYLE.md rule 6): `kvm` on
//! `x86_64-unknown-none`; on Linux `hosted`, or with the `sandbox` feature the sealed
//! process of `oasis_hosted::sandbox` (same devices, opened before sealing).

use oasis_devices::Platform;

#[cfg(target_os = "none")]
use oasis_kvm as imp;

#[cfg(not(target_os = "none"))]
use linux as imp;

#[cfg(all(target_os = "none", feature = "sandbox"))]
compile_error!(
    "the `sandbox` feature is a Linux process platform; the kvm target (x86_64-unknown-none) cannot have it"
);

/// Whether this program is the sealed sandbox (`sandbox` feature): it opens its
/// devices before sealing, and has no host sockets.
const SANDBOX: bool = cfg!(feature = "sandbox");

/// On Linux: the hosted platform, or the sandbox.
#[cfg(not(target_os = "none"))]
mod linux {
    use super::SANDBOX;

    pub fn platform() -> &'static dyn oasis_devices::Platform {
        if SANDBOX {
            oasis_hosted::sandbox::platform()
        } else {
            oasis_hosted::platform()
        }
    }

    pub fn boot_report() -> alloc::string::String {
        if SANDBOX {
            oasis_hosted::sandbox::boot_report()
        } else {
            oasis_hosted::boot_report()
        }
    }
}

/// Name used in usage and error messages.
pub const PROGRAM: &str = "oasis";

/// The running platform.
pub fn get() -> &'static dyn Platform {
    imp::platform()
}

/// Makes `getrandom` callers (ring, for TLS) draw from the program's CSPRNG. On
/// `hosted` they use the host kernel's `getrandom(2)` and this does nothing.
#[cfg(feature = "tls")]
pub fn install_random_source(f: fn(&mut [u8])) {
    #[cfg(target_os = "none")]
    imp::set_random_source(f);
    #[cfg(not(target_os = "none"))]
    let _ = f;
}

/// One line about the machine (clock source, timer, heap).
pub fn report() -> alloc::string::String {
    imp::boot_report()
}

/// Removes the kernel parameters the platform consumed itself (e.g.
/// `virtio_mmio.device=` that QEMU microvm and Firecracker append).
pub fn take_platform_args(parser: &mut oasis_bootargs::ArgParser) {
    parser.take_params("virtio_mmio.device");
    imp_block::take_args(parser);
    if SANDBOX {
        take_sandbox_args(parser);
    }
}

/// The sandbox's own arguments, which it acted on before sealing (see
/// `oasis_hosted::sandbox::StartArgs`): taken here so that they are accepted and
/// listed in `--help`.
fn take_sandbox_args(parser: &mut oasis_bootargs::ArgParser) {
    let taken = parser
        .value::<u64>(
            "mem",
            "MIB",
            "sandbox: heap size, reserved at start (default 64)",
        )
        .and_then(|_| {
            parser.value::<alloc::string::String>(
                "sandbox-probe",
                "CALL",
                "sandbox (tests): make a forbidden call after sealing: openat|socket|execve|mmap|write-fd|panic|oom",
            )
        });
    if let Err(e) = taken {
        crate::__private::usage_error(&e);
    }
}

/// A block device as the platform provides it; [`crate::block::Disk`] wraps it.
pub struct RawDisk(imp_block::Device);

impl RawDisk {
    pub fn geometry(&self) -> oasis_devices::Geometry {
        oasis_devices::BlockDevice::geometry(&self.0)
    }

    pub async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), oasis_devices::BlockError> {
        oasis_devices::BlockDevice::read(&self.0, sector, buf).await
    }

    pub async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), oasis_devices::BlockError> {
        oasis_devices::BlockDevice::write(&self.0, sector, buf).await
    }

    pub async fn flush(&self) -> Result<(), oasis_devices::BlockError> {
        oasis_devices::BlockDevice::flush(&self.0).await
    }

    /// Acknowledges the device's interrupt and completes finished requests (waking
    /// their futures); whether any completed. Task context only.
    pub fn poll(&self) -> bool {
        imp_block::poll(&self.0)
    }
}

/// Whether a disk request can stay pending until an interrupt (virtio-blk) rather
/// than completing within its first poll (host files).
pub const DISKS_INTERRUPT: bool = imp_block::INTERRUPT_DRIVEN;

/// The machine's block devices, in discovery order, each with a name for messages
/// (`virtio-blk0`, or the file's path). Discovers on the first call; later calls
/// return nothing (the devices are handed out once).
pub fn open_disks() -> alloc::vec::Vec<(
    alloc::string::String,
    Result<RawDisk, alloc::string::String>,
)> {
    imp_block::open()
        .into_iter()
        .map(|(name, r)| (name, r.map(RawDisk)))
        .collect()
}

/// Whether any device interrupt arrived since the last call (the block poller is the
/// only caller). Never on `hosted`, whose disks complete inline.
pub fn take_device_interrupts() -> bool {
    imp_block::take_interrupts()
}

#[cfg(target_os = "none")]
mod imp_block {
    use alloc::format;
    use alloc::string::String;
    use alloc::vec::Vec;

    pub type Device = oasis_kvm::BlockDevice;
    pub const INTERRUPT_DRIVEN: bool = true;

    /// IRQ vectors 33..=63 (bits 1..=31 of the pending set; bit 0 is the LAPIC timer).
    const DEVICE_IRQ_BITS: u64 = 0xffff_fffe;

    pub fn take_args(_parser: &mut oasis_bootargs::ArgParser) {}

    pub fn open() -> Vec<(String, Result<Device, String>)> {
        oasis_kvm::take_block_devices()
            .into_iter()
            .enumerate()
            .map(|(i, r)| match r {
                Ok(d) => (format!("{}{i}", d.kind()), Ok(d)),
                Err(e) => (format!("disk{i}"), Err(format!("{e}"))),
            })
            .collect()
    }

    pub fn poll(d: &Device) -> bool {
        d.poll()
    }

    pub fn take_interrupts() -> bool {
        oasis_kvm::take_pending_irqs() & DEVICE_IRQ_BITS != 0
    }
}

#[cfg(not(target_os = "none"))]
mod imp_block {
    use alloc::format;
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;

    pub type Device = oasis_hosted::FileDisk;
    pub const INTERRUPT_DRIVEN: bool = false;

    /// The `--disk=FILE[:ro]` arguments, taken at start.
    static SPECS: spin::Mutex<Option<Vec<oasis_hosted::DiskSpec>>> = spin::Mutex::new(None);

    pub fn take_args(parser: &mut oasis_bootargs::ArgParser) {
        let specs = parser
            .values::<oasis_hosted::DiskSpec>(
                "disk",
                None,
                "FILE[:ro]",
                "hosted: use FILE as a block device (read-only with :ro), repeatable",
            )
            .unwrap_or_else(|e| crate::__private::usage_error(&e));
        *SPECS.lock() = Some(specs);
    }

    pub fn open() -> Vec<(String, Result<Device, String>)> {
        let specs = SPECS.lock().take().unwrap_or_default();
        if super::SANDBOX {
            // Opened by the sandbox before it sealed, from the same arguments.
            return oasis_hosted::sandbox::take_disks()
                .into_iter()
                .map(|(name, r)| (name, r.map_err(|e| format!("{e}"))))
                .collect();
        }
        specs
            .iter()
            .map(|s| {
                let name = s.path.display().to_string();
                (
                    name,
                    oasis_hosted::FileDisk::open_spec(s).map_err(|e| format!("{e}")),
                )
            })
            .collect()
    }

    pub fn poll(_d: &Device) -> bool {
        false
    }

    pub fn take_interrupts() -> bool {
        false
    }
}

/// A network device our stack can drive.
pub struct NetDev(imp_net::Device);

impl NetDev {
    /// Builds the stack over the device and registers it with the executor.
    pub fn install(
        self,
        config: oasis_net::NetConfig,
        seed: u64,
        now: oasis_runtime::Instant,
    ) -> Result<oasis_net::NetHandle, oasis_net::NetError> {
        oasis_net::Stack::install(self.0, config, seed, now)
    }
}

/// The device for our stack: virtio-net on `kvm`; a TAP device on `hosted` when
/// `tap` names one. `None`: no device (hosted without TAP uses host sockets).
pub fn open_net_device(tap: Option<&str>) -> Option<Result<NetDev, crate::net::NetError>> {
    imp_net::open(tap).map(|r| r.map(NetDev))
}

/// What the facade's sockets run on (see `net/backend.rs`): our stack's types on
/// `kvm`; on `hosted`, an enum holding either our stack's (with `--net=tap:NAME`) or
/// the host kernel's sockets.
pub type NetBackend = imp_net::Backend;

/// The backend for our stack, installed on a device.
pub fn stack_backend(handle: oasis_net::NetHandle) -> NetBackend {
    imp_net::stack(handle)
}

/// The host-socket backend, bound to `bind` (default 127.0.0.1); `None` on `kvm`,
/// which has no host kernel.
pub fn host_net(bind: Option<core::net::IpAddr>) -> Option<NetBackend> {
    imp_net::host(bind)
}

#[cfg(target_os = "none")]
mod imp_net {
    use crate::net::NetError;

    pub type Device = oasis_kvm::NetDevice;
    pub type Backend = oasis_net::NetHandle;

    pub fn open(_tap: Option<&str>) -> Option<Result<Device, NetError>> {
        match oasis_kvm::take_net_device() {
            Some(Ok(d)) => Some(Ok(d)),
            Some(Err(e)) => Some(Err(NetError::Device(alloc::format!("{e}")))),
            None => Some(Err(NetError::NoDevice)),
        }
    }

    pub fn stack(handle: oasis_net::NetHandle) -> Backend {
        handle
    }

    pub fn host(_bind: Option<core::net::IpAddr>) -> Option<Backend> {
        None
    }
}

#[cfg(not(target_os = "none"))]
mod host_sockets;

#[cfg(not(target_os = "none"))]
mod imp_net {
    use crate::net::NetError;

    pub type Device = oasis_hosted::TapDevice;
    pub type Backend = super::host_sockets::Net;

    pub fn open(tap: Option<&str>) -> Option<Result<Device, NetError>> {
        if super::SANDBOX {
            // Opened before sealing; without one there is no network at all.
            return Some(oasis_hosted::sandbox::take_tap(tap).map_err(NetError::Host));
        }
        tap.map(|name| oasis_hosted::TapDevice::open(name).map_err(NetError::Host))
    }

    pub fn stack(handle: oasis_net::NetHandle) -> Backend {
        Backend::Stack(handle)
    }

    pub fn host(bind: Option<core::net::IpAddr>) -> Option<Backend> {
        if super::SANDBOX {
            return None;
        }
        let net = bind.map_or_else(oasis_hosted::HostNet::default, oasis_hosted::HostNet::new);
        Some(Backend::Host(net))
    }
}
