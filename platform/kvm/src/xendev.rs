//! Xen PV devices as this platform's devices, for a PVH domU: netfront and blkfront
//! (`oasis-xen`) over the one xenstore connection and grant table they share, and
//! the idle wait that a back end's event ends.
//!
//! - **Xenstore**: connected once at boot ([`connect`], from `xen::probe_xenstore`)
//!   and kept in [`XS`]; the drivers use it while they connect. Each netfront's
//!   back-end `state` node is watched: the event (read in [`idle`] when xenstore's
//!   port fires) marks the device, whose next `poll` runs
//!   `NetFront::on_backend_change` (disconnect and write Closed when the back end
//!   closes, as `xl network-detach` needs; connect again when it offers InitWait).
//!   blkfront's reaction needs `&mut` access the disk layer does not give, so a
//!   closing block back end leaves its disk failing requests.
//! - **Grant table**: [`GRANT_FRAMES`] frames (2,048 references), set up on the first
//!   device: netfront takes one per buffer page (96 by default) plus two rings,
//!   blkfront eleven per request slot (88) plus its ring.
//! - **Waiting**: the devices' event channels are masked and the idle loop blocks
//!   in `SCHEDOP_poll` on them ([`idle`]), with the executor's deadline as the
//!   poll's timeout. Xen ends the poll when one of the ports becomes pending, masked
//!   or not, so no upcall has to be injected. (An upcall vector through
//!   `HVM_PARAM_CALLBACK_IRQ` was tried first: under Xen-in-QEMU-TCG the vector was
//!   sometimes never injected into a halted vCPU, whose `evtchn_upcall_pending`
//!   then stayed set, and the guest slept through its network traffic.) After a
//!   poll the ports' pending bits are cleared before anything looks at the rings,
//!   so an event that arrives in between ends the next poll at once; a fired port
//!   counts as a device interrupt, which wakes the disk layer's waiters. The
//!   network stack polls its device every turn anyway.
//!
//!   Weak spot: under Xen-in-QEMU-TCG a port event did not always end the poll
//!   (pings answered after the full timeout; the cause, in Xen's poller wake-up or
//!   in QEMU's nested SVM, is not found), so no idle poll lasts longer than
//!   [`MAX_IDLE_NS`] (10 ms).
//!
//! Devices are listed from the domain's `device/vif` and `device/vbd` directories
//! in index order, each connected before it is handed out.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

use oasis_xen::blk::{BlkConfig, BlkFront};
use oasis_xen::evtchn::EventChannels;
use oasis_xen::grant::{GrantTable, SharedGrants};
use oasis_xen::hv::{Port, XenHypervisor};
use oasis_xen::net::{LinkState, NetConfig, NetFront};
use oasis_xen::xenstore::Xenstore;
use oasis_xen::xenstore::xenbus::XenbusDevice;

use crate::xenhv::XenHv;

/// The hypervisor interface the drivers hold for the life of the image.
static HV: XenHv = XenHv;
/// The xenstore connection of this domU, once connected.
static XS: spin::Mutex<Option<Xenstore<'static, XenHv>>> = spin::Mutex::new(None);
/// The grant table, set up with the first device.
static GRANTS: spin::Once<Result<&'static SharedGrants, String>> = spin::Once::new();
/// The event-channel bitmaps in `shared_info`.
static EVTCHN: spin::Once<EventChannels> = spin::Once::new();
/// The devices' event channels, which [`idle`] polls.
static PORTS: spin::Mutex<Vec<u32>> = spin::Mutex::new(Vec::new());
/// Whether xenstore is connected (set once by [`connect`]); read on every idle wait,
/// so an atomic rather than the [`XS`] lock.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Whether a device port fired since the last [`take_fired`].
static FIRED: AtomicBool = AtomicBool::new(false);
/// xenstore's event channel (0: none), polled with the devices' for watch events.
static XS_PORT: AtomicU32 = AtomicU32::new(0);
/// Whether xenstore's port fired since the watch events were last read.
static XS_FIRED: AtomicBool = AtomicBool::new(false);
/// Devices whose back end's `state` watch fired, by watch slot.
static CHANGED: AtomicU64 = AtomicU64::new(0);
/// The next watch slot (at most 64: one bit each in [`CHANGED`]).
static NEXT_SLOT: AtomicU8 = AtomicU8::new(0);
/// Watch tokens are this prefix and the slot.
const TOKEN: &str = "oasis-dev";

/// Grant-table frames to set up (512 references each, v1).
const GRANT_FRAMES: u32 = 4;
/// The longest idle poll: a safety net for a wake-up Xen does not deliver (see the
/// module docs), at the cost of 100 wake-ups a second when idle.
const MAX_IDLE_NS: u64 = 10_000_000;
/// Ports `SCHEDOP_poll` takes at most.
const MAX_POLL_PORTS: usize = 128;

/// A netfront over this platform's Xen interface.
pub type XenNet = NetFront<'static, XenHv>;
/// A blkfront over this platform's Xen interface.
pub type XenBlk = BlkFront<'static, XenHv>;

/// Connects to xenstore (a domU's store ring); `Err` says why not. Keeps the
/// connection for the drivers. Returns what `device/` lists, for the boot report.
pub fn connect() -> Result<Vec<String>, String> {
    let mut xs = Xenstore::connect(&HV).map_err(|e| format!("unreachable ({e})"))?;
    // At boot xenstored answers at once; do not hang the boot if it does not.
    xs.set_timeout(200_000_000, 10);
    let devices = xs
        .directory(oasis_xen::xenstore::Tx::NONE, "device")
        .map_err(|e| format!("device/ unreadable ({e})"))?;
    // Back ends take longer to answer a connect than xenstored a read.
    xs.set_timeout(1_000_000_000, 10);
    *XS.lock() = Some(xs);
    ACTIVE.store(true, Ordering::Release);
    if let Ok(p) = HV.hvm_param(oasis_xen::hv::HVM_PARAM_STORE_EVTCHN)
        && let Ok(p) = u32::try_from(p)
    {
        XS_PORT.store(p, Ordering::Relaxed);
        watch(Some(Port(p)));
    }
    Ok(devices)
}

/// Whether this is a domU with a xenstore connection (its devices are Xen PV ones).
pub fn active() -> bool {
    ACTIVE.load(Ordering::Acquire)
}

fn evtchn() -> &'static EventChannels {
    EVTCHN.call_once(|| EventChannels::new(HV.shared_info()))
}

/// The grant table, on first use.
fn grants() -> Result<&'static SharedGrants, String> {
    GRANTS
        .call_once(|| {
            GrantTable::new(&HV, GRANT_FRAMES)
                .map(|g| &*Box::leak(Box::new(SharedGrants::new(g))))
                .map_err(|e| format!("xen: {e}"))
        })
        .clone()
}

/// Masks a device's port (its events then end [`idle`]'s poll instead of raising
/// an upcall) and adds it to the ports polled.
fn watch(port: Option<Port>) {
    let Some(p) = port else { return };
    evtchn().mask(p);
    let mut ports = PORTS.lock();
    if ports.len() < MAX_POLL_PORTS && !ports.contains(&p.0) {
        ports.push(p.0);
    }
}

/// The idle wait of a domU: blocks until a device port fires or `timeout` (absolute
/// Xen system time) passes, then clears the ports' pending bits.
pub fn idle(timeout: Option<u64>) {
    let now = crate::xen::system_time_ns();
    let cap = now.saturating_add(MAX_IDLE_NS);
    let timeout = Some(timeout.map_or(cap, |t| t.min(cap)));
    // A copy on the stack: the lock is not held across the hypercall, and the idle
    // path allocates nothing.
    let mut buf = [0u32; MAX_POLL_PORTS];
    let ports = {
        let held = PORTS.lock();
        let n = held.len().min(MAX_POLL_PORTS);
        buf[..n].copy_from_slice(&held[..n]);
        &buf[..n]
    };
    let e = evtchn();
    let take = |ports: &[u32]| {
        ports.iter().fold(false, |f, &p| {
            let hit = e.take_pending(Port(p));
            if hit && p == XS_PORT.load(Ordering::Relaxed) {
                XS_FIRED.store(true, Ordering::Release);
            }
            hit | f
        })
    };
    let mut fired = take(ports);
    if !fired {
        if let Err(err) = crate::xen::sched_poll(ports, timeout) {
            log(format_args!("xen: idle poll failed: {err}"));
        }
        fired = take(ports);
    }
    if fired {
        FIRED.store(true, Ordering::Release);
        read_watch_events();
    }
}

/// Marks the devices whose watch fired (task context, after a wake-up). Reads the
/// xenstore ring only when its port was among those that fired.
fn read_watch_events() {
    let xs_port = XS_PORT.load(Ordering::Relaxed);
    if xs_port == 0 || !XS_FIRED.swap(false, Ordering::AcqRel) {
        return;
    }
    let Some(mut held) = XS.try_lock() else {
        return;
    };
    let Some(xs) = held.as_mut() else { return };
    if let Err(e) = xs.poll_events() {
        log(format_args!("xen: xenstore events: {e}"));
        return;
    }
    while let Some(ev) = xs.next_event() {
        if let Some(slot) = ev
            .token
            .strip_prefix(TOKEN)
            .and_then(|s| s.parse::<u8>().ok())
            .filter(|&s| s < 64)
        {
            CHANGED.fetch_or(1 << slot, Ordering::AcqRel);
        }
    }
}

/// Watches `DEVICE_BACKEND/state` for a device; its slot for [`backend_changed`].
fn watch_backend(xs: &mut Xenstore<'static, XenHv>, dev: &XenbusDevice) -> Option<u8> {
    let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
    if slot >= 64 {
        return None;
    }
    let path = format!("{}/state", dev.backend);
    match xs.watch(&path, &format!("{TOKEN}{slot}")) {
        Ok(()) => Some(slot),
        Err(e) => {
            log(format_args!(
                "xen: cannot watch {path} ({e}): a closing back end will not be noticed"
            ));
            None
        }
    }
}

/// Called by the platform's network device on every poll: when the back end's
/// state changed, lets netfront react (disconnect, or connect again) and polls the
/// connection's new event channel.
pub fn backend_changed(dev: &mut XenNet, slot: Option<u8>) {
    let Some(slot) = slot else { return };
    let bit = 1u64 << slot;
    if CHANGED.load(Ordering::Relaxed) & bit == 0 {
        return;
    }
    CHANGED.fetch_and(!bit, Ordering::AcqRel);
    let old = dev.port();
    let outcome = {
        let mut held = XS.lock();
        let Some(xs) = held.as_mut() else { return };
        dev.on_backend_change(xs)
    };
    match outcome {
        Ok(LinkState::Connected) => {}
        Ok(LinkState::Disconnected) => {
            log(format_args!(
                "xen: {}: not connected (back end {})",
                dev.device().frontend,
                dev.device().backend
            ));
        }
        Err(e) => log(format_args!("xen: {}: {e}", dev.device().frontend)),
    }
    let new = dev.port();
    if old != new {
        if let Some(p) = old {
            PORTS.lock().retain(|&q| q != p.0);
        }
        watch(new);
    }
}

/// Whether a device port fired since the last call.
pub fn take_fired() -> bool {
    FIRED.swap(false, Ordering::AcqRel)
}

fn log(args: core::fmt::Arguments<'_>) {
    use core::fmt::Write;
    let _ = writeln!(crate::serial::Serial, "{args}");
}

/// The indices listed under `device/CLASS`.
fn list(class: &str) -> Result<Vec<u32>, String> {
    let mut xs = XS.lock();
    let xs = xs.as_mut().ok_or_else(|| String::from("no xenstore"))?;
    XenbusDevice::list(xs, class).map_err(|e| format!("xen: device/{class}: {e}"))
}

/// The first `vif`, connected. `None` when the domain has none.
pub fn take_net(heap_bytes: usize) -> Option<Result<(XenNet, Option<u8>), String>> {
    let first = match list("vif") {
        Ok(l) => *l.first()?,
        Err(e) => return Some(Err(e)),
    };
    Some(grants().and_then(|g| {
        let mut xs = XS.lock();
        let xs = xs.as_mut().ok_or_else(|| String::from("no xenstore"))?;
        let dev = NetFront::new(&HV, g, xs, first, net_config(heap_bytes))
            .map_err(|e| format!("xen vif {first}: {e}"))?;
        watch(dev.port());
        let slot = watch_backend(xs, dev.device());
        Ok((dev, slot))
    }))
}

/// Buffers for the heap: the default (64 receive, 32 transmit pages: 384 KiB) from
/// 8 MiB of heap; a quarter as many below, so a small domU keeps room to work.
fn net_config(heap_bytes: usize) -> NetConfig {
    if heap_bytes >= 8 << 20 {
        NetConfig::default()
    } else {
        NetConfig {
            rx_buffers: 16,
            tx_buffers: 8,
        }
    }
}

/// Every `vbd`, connected, in index order.
pub fn take_blocks() -> Vec<Result<XenBlk, String>> {
    let indices = match list("vbd") {
        Ok(l) => l,
        Err(e) => return alloc::vec![Err(e)],
    };
    indices
        .into_iter()
        .map(|i| {
            grants().and_then(|g| {
                let mut xs = XS.lock();
                let xs = xs.as_mut().ok_or_else(|| String::from("no xenstore"))?;
                let dev = BlkFront::new(&HV, g, xs, i, BlkConfig::default())
                    .map_err(|e| format!("xen vbd {i}: {e}"))?;
                watch(dev.port());
                Ok(dev)
            })
        })
        .collect()
}
