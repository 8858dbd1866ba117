//! The `kvm` platform: Oasis on a PVH virtual machine (QEMU microvm/pc/q35,
//! Firecracker, Cloud Hypervisor), target `x86_64-unknown-none`.
//!
//! Boot sequence ([`kvm_start`], entered from the PVH stub in `boot.rs` on the boot
//! stack with interrupts off): serial console → GDT/TSS/IDT (so every later fault is
//! reported) → `start_info` (command line, memory map, RSDP) → ACPI tables
//! (virtio-mmio devices, I/O APICs) → heap over RAM → final page tables (W^X, guard
//! page) → LAPIC and TSC calibration → the application's `__oasis_start`, which the
//! `#[oasis::main]` macro defines.
//!
//! On Xen (PVH dom0 or domU; see `xen.rs` for what differs) the same image also
//! works: right after the console, Xen is detected and its hypercall page installed;
//! the memory map then comes from `XENMEM_memory_map` when `start_info` has none, the
//! console from `HYPERVISOR_console_io` (dom0) or the shared console ring (domU), the
//! TSC frequency from Xen's CPUID leaf, the wall clock from `shared_info`.
//!
//! What it does not do: SMP, ACPI AML evaluation (static DSDT patterns only, see
//! `oasis-acpi`), PCI hot-plug, user mode. The drivers for
//! virtio devices live in `drivers/virtio`; this crate gives them port I/O, MMIO
//! mappings and interrupt routing.
#![no_std]
// Only meaningful on the bare-metal target; empty elsewhere so workspace-wide host
// builds, tests and lints need no special cases.
#![cfg(target_os = "none")]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

mod acpi;
mod apic;
pub mod backtrace;
mod boot;
mod cpu;
mod devices;
mod entropy;
#[cfg(feature = "getrandom")]
pub use entropy::set_random_source;
mod exit;
mod interrupts;
mod mem;
mod pci;
mod serial;
mod time;
mod xen;
mod xendev;
mod xenhv;
pub use xenhv::XenHv;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use oasis_devices::{EntropyError, Platform};

/// Exit status after a panic.
pub const EXIT_PANIC: u8 = 101;
/// Exit status after a CPU exception.
pub const EXIT_FAULT: u8 = 102;
/// Exit status when the loader's boot information is unusable.
pub const EXIT_BOOT: u8 = 70;

struct State {
    cmdline: String,
    args: Vec<String>,
    boot_ns: u64,
    /// Boot phases and when each ended (ns since the PVH entry).
    phases: Vec<(&'static str, u64)>,
}

static STATE: spin::Once<State> = spin::Once::new();

/// The `kvm` platform.
pub struct Kvm;

/// The platform instance.
pub fn platform() -> &'static dyn Platform {
    static KVM: Kvm = Kvm;
    &KVM
}

/// Facts about the boot, for diagnostics (`-l debug`).
pub fn boot_report() -> String {
    let on = xen::describe().map_or(String::new(), |x| alloc::format!("{x}, "));
    let wall = time::wall_ns().map_or(String::from("none"), |ns| {
        alloc::format!("{} s since 1970", ns / 1_000_000_000)
    });
    alloc::format!(
        "{on}tsc {} MHz ({}), timer {}, heap {} KiB, wall clock {wall}",
        time::tsc_hz() / 1_000_000,
        time::source().name(),
        if apic::tsc_deadline_mode() {
            alloc::string::String::from("tsc-deadline")
        } else {
            alloc::format!("lapic one-shot at {} kHz", apic::ticks_per_ms())
        },
        mem::heap_bytes() / 1024
    )
}

impl Platform for Kvm {
    fn console_write(&self, bytes: &[u8]) {
        serial::write(bytes);
    }

    fn monotonic_nanos(&self) -> u64 {
        time::monotonic_ns()
    }

    fn wall_clock_nanos(&self) -> Option<u64> {
        time::wall_ns()
    }

    fn entropy(&self, buf: &mut [u8]) -> Result<(), EntropyError> {
        entropy::fill(buf)
    }

    fn wait_for_event(&self, deadline: Option<u64>) {
        if xendev::active() {
            // A domU: block in SCHEDOP_poll on the device ports (see `xendev`).
            let now = time::monotonic_ns();
            let timeout = match deadline {
                Some(d) if d <= now => return,
                Some(d) => Some(xen::system_time_ns().saturating_add(d - now)),
                None => None,
            };
            xendev::idle(timeout);
            return;
        }
        if let Some(d) = deadline {
            let now = time::monotonic_ns();
            if d <= now {
                return;
            }
            apic::arm(d - now, time::tsc_at(d));
        }
        cpu::wait_for_interrupt();
    }

    fn args(&self) -> Vec<String> {
        STATE.get().map(|s| s.args.clone()).unwrap_or_default()
    }

    fn boot_nanos(&self) -> Option<u64> {
        STATE.get().map(|s| s.boot_ns)
    }

    fn boot_phases(&self) -> &[(&'static str, u64)] {
        STATE.get().map_or(&[], |s| s.phases.as_slice())
    }

    fn heap_bytes(&self) -> Option<usize> {
        Some(mem::heap_bytes())
    }

    fn heap_usage(&self) -> Option<oasis_devices::HeapUsage> {
        Some(mem::heap_usage())
    }

    fn exit(&self, status: u8) -> ! {
        exit::exit(status)
    }
}

/// Device interrupts seen since the last call, as a bit set of vectors 32..96.
pub fn take_pending_irqs() -> u64 {
    // A Xen domU's device ports fire through `SCHEDOP_poll`, not a vector: report
    // them as vector 63's bit (no device vector exists in a domU).
    let xen = if xendev::take_fired() {
        1 << (interrupts::DEVICE_VECTOR_LAST - interrupts::IRQ_BASE)
    } else {
        0
    };
    interrupts::take_pending() | xen
}

/// The kernel command line as the loader passed it.
pub(crate) fn cmdline() -> &'static str {
    STATE.get().map_or("", |s| s.cmdline.as_str())
}

/// Why a device could not be opened.
#[derive(Debug)]
pub enum DeviceError {
    /// A virtio device failed to initialise.
    Virtio(oasis_virtio::InitError),
    /// A Xen PV device (netfront, blkfront) could not connect.
    Xen(String),
}

impl core::fmt::Display for DeviceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DeviceError::Virtio(e) => write!(f, "{e}"),
            DeviceError::Xen(e) => f.write_str(e),
        }
    }
}

/// The network device this platform drives: virtio-net (QEMU, Firecracker, Cloud
/// Hypervisor) or, in a Xen domU, netfront.
#[allow(
    clippy::large_enum_variant,
    reason = "one per image, and boxing would add a pointer chase per frame"
)]
pub enum NetDevice {
    /// virtio-net over MMIO or PCI.
    Virtio(oasis_virtio::VirtioNet<oasis_virtio::AnyTransport>),
    /// Xen netfront, and the slot of its back end's `state` watch.
    Xen(xendev::XenNet, Option<u8>),
}

/// Calls `$body` with `$d` bound to the device inside either variant.
macro_rules! on_device {
    ($self:expr, $enum:ident, $d:ident => $body:expr) => {
        match $self {
            $enum::Virtio($d) => $body,
            $enum::Xen($d, ..) => $body,
        }
    };
}

impl oasis_devices::NetDevice for NetDevice {
    fn info(&self) -> oasis_devices::NetInfo {
        on_device!(self, NetDevice, d => d.info())
    }

    fn receive<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        on_device!(self, NetDevice, d => d.receive(f))
    }

    fn can_transmit(&self) -> bool {
        on_device!(self, NetDevice, d => d.can_transmit())
    }

    fn transmit<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        on_device!(self, NetDevice, d => d.transmit(len, f))
    }

    fn poll(&mut self) -> bool {
        match self {
            NetDevice::Virtio(d) => d.poll(),
            NetDevice::Xen(d, slot) => {
                xendev::backend_changed(d, *slot);
                d.poll()
            }
        }
    }

    fn checksum_offload(&self) -> bool {
        on_device!(self, NetDevice, d => d.checksum_offload())
    }

    fn receive_with_checksum<R>(
        &mut self,
        f: impl FnOnce(&mut [u8], oasis_devices::RxChecksum) -> R,
    ) -> Option<R> {
        on_device!(self, NetDevice, d => d.receive_with_checksum(f))
    }

    fn transmit_with_checksum<R>(
        &mut self,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> (R, oasis_devices::TxChecksum),
    ) -> Option<R> {
        on_device!(self, NetDevice, d => d.transmit_with_checksum(len, f))
    }

    fn occupancy(&self) -> Option<oasis_devices::QueueOccupancy> {
        on_device!(self, NetDevice, d => d.occupancy())
    }
}

/// The block device this platform drives: virtio-blk or, in a Xen domU, blkfront.
pub enum BlockDevice {
    /// virtio-blk over MMIO or PCI.
    Virtio(oasis_virtio::VirtioBlk<oasis_virtio::AnyTransport>),
    /// Xen blkfront.
    Xen(xendev::XenBlk),
}

impl BlockDevice {
    /// Completes finished requests (wakes their futures); whether any completed.
    pub fn poll(&self) -> bool {
        on_device!(self, BlockDevice, d => d.poll())
    }

    /// What kind of device it is, for names in messages: `virtio-blk` or `xen-vbd`.
    pub fn kind(&self) -> &'static str {
        match self {
            BlockDevice::Virtio(_) => "virtio-blk",
            BlockDevice::Xen(_) => "xen-vbd",
        }
    }
}

impl oasis_devices::BlockDevice for BlockDevice {
    fn geometry(&self) -> oasis_devices::Geometry {
        on_device!(self, BlockDevice, d => d.geometry())
    }

    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), oasis_devices::BlockError> {
        on_device!(self, BlockDevice, d => d.read(sector, buf).await)
    }

    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), oasis_devices::BlockError> {
        on_device!(self, BlockDevice, d => d.write(sector, buf).await)
    }

    async fn flush(&self) -> Result<(), oasis_devices::BlockError> {
        on_device!(self, BlockDevice, d => d.flush().await)
    }
}

/// The first network device, discovered on first call, initialised, with its
/// interrupt routed: in a Xen domU its first `vif`, elsewhere the first virtio-net
/// device (MMIO or PCI). `None` when the machine has none.
pub fn take_net_device() -> Option<Result<NetDevice, DeviceError>> {
    if xendev::active() {
        return xendev::take_net(mem::heap_bytes()).map(|r| {
            r.map(|(d, slot)| NetDevice::Xen(d, slot))
                .map_err(DeviceError::Xen)
        });
    }
    devices::take_net().map(|r| r.map(NetDevice::Virtio).map_err(DeviceError::Virtio))
}

/// Every block device, in discovery order: a Xen domU's `vbd`s, elsewhere the
/// virtio-blk devices.
pub fn take_block_devices() -> Vec<Result<BlockDevice, DeviceError>> {
    if xendev::active() {
        return xendev::take_blocks()
            .into_iter()
            .map(|r| r.map(BlockDevice::Xen).map_err(DeviceError::Xen))
            .collect();
    }
    devices::take_blocks()
        .into_iter()
        .map(|r| r.map(BlockDevice::Virtio).map_err(DeviceError::Virtio))
        .collect()
}

/// TSC stamps at the end of each boot phase; converted to nanoseconds once the
/// clock is calibrated.
struct Phases {
    marks: [(&'static str, u64); 10],
    len: usize,
}

impl Phases {
    fn new() -> Self {
        Phases {
            marks: [("", 0); 10],
            len: 0,
        }
    }

    fn mark(&mut self, name: &'static str) {
        if let Some(m) = self.marks.get_mut(self.len) {
            *m = (name, cpu::rdtsc());
            self.len += 1;
        }
    }

    fn to_nanos(&self) -> Vec<(&'static str, u64)> {
        self.marks
            .iter()
            .take(self.len)
            .map(|&(n, tsc)| (n, time::ticks_to_ns(tsc.wrapping_sub(boot::boot_tsc()))))
            .collect()
    }
}

unsafe extern "Rust" {
    /// Defined by `#[oasis::main]` in the application.
    fn __oasis_start() -> !;
}

/// The first Rust code: called by the PVH stub with the `hvm_start_info` address.
#[unsafe(no_mangle)]
extern "C" fn kvm_start(start_info: u32) -> ! {
    let mut phases = Phases::new();
    serial::init();
    mem::init_boot_heap();
    interrupts::init();
    let on_xen = match xen::init() {
        Ok(x) => x.is_some(),
        Err(e) => {
            let _ = writeln!(serial::Serial, "oasis: cannot boot on Xen: {e}");
            exit::exit(EXIT_BOOT)
        }
    };
    phases.mark("64-bit entry, console, boot heap, IDT");
    // SAFETY: `start_info` is what the PVH loader passed in EBX; the boot page tables
    // identity-map the low 4 GiB where it lives.
    let mut info = match unsafe { boot::read_start_info(u64::from(start_info), on_xen) } {
        Ok(info) => info,
        Err(e) => {
            let _ = writeln!(serial::Serial, "oasis: cannot boot: {e}");
            exit::exit(EXIT_BOOT)
        }
    };
    if info.memmap.is_empty() {
        // Only on Xen (`read_start_info` insists on a map elsewhere): ask the hypervisor.
        info.memmap = match xen::memory_map() {
            Ok(m) => m,
            Err(e) => {
                let _ = writeln!(serial::Serial, "oasis: cannot boot: {e}");
                exit::exit(EXIT_BOOT)
            }
        };
    }
    phases.mark("PVH start_info");
    acpi::init(info.rsdp);
    phases.mark("ACPI tables");
    mem::init_heap(&info.memmap);
    phases.mark("heap");
    mem::init_paging(&info.memmap);
    phases.mark("page tables");
    apic::init();
    phases.mark("LAPIC");
    time::init(boot::boot_tsc());
    phases.mark("clock calibration");
    if on_xen {
        xen::probe_xenstore();
        phases.mark("xenstore");
    }
    let args = match oasis_bootargs::split(&info.cmdline) {
        Ok(a) => a,
        Err(e) => {
            let _ = writeln!(serial::Serial, "oasis: bad command line: {e}");
            exit::exit(oasis_bootargs::EXIT_USAGE)
        }
    };
    phases.mark("command line");
    let boot_ns = time::ticks_to_ns(cpu::rdtsc().wrapping_sub(boot::boot_tsc()));
    STATE.call_once(|| State {
        cmdline: info.cmdline,
        args,
        boot_ns,
        phases: phases.to_nanos(),
    });
    // SAFETY: `__oasis_start` is the application's entry point generated by
    // `#[oasis::main]`; it takes no arguments and never returns.
    unsafe { __oasis_start() }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut out = serial::Serial;
    match info.location() {
        Some(l) => {
            let _ = writeln!(
                out,
                "\npanicked at {}:{}:{}:\n{}",
                l.file(),
                l.line(),
                l.column(),
                info.message()
            );
        }
        None => {
            let _ = writeln!(out, "\npanicked: {}", info.message());
        }
    }
    // An allocation failure lands here too ("memory allocation of N bytes failed"):
    // say how full the heap was. Admission control should have refused the work.
    let heap = mem::heap_usage();
    let _ = writeln!(
        out,
        "heap: {} KiB used, {} KiB peak, of {} KiB",
        heap.used / 1024,
        heap.peak / 1024,
        heap.size / 1024
    );
    let _ = writeln!(out, "backtrace (symbolise with addr2line -e IMAGE):");
    backtrace::print_here();
    exit::exit(EXIT_PANIC)
}
