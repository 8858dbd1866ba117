//! Block devices for applications: virtio-blk on `kvm`, host files on `hosted`.
//!
//! [`Os::disks`](crate::Os::disks) hands out the machine's disks once, as [`Disk`]s
//! implementing [`BlockDevice`], ready for the stores in `oasis-storage`:
//!
//! ```ignore
//! let disk = os.disk()?;                               // the first disk
//! let mut kv = oasis_storage::LogStore::mount_or_format(disk).await?;
//! ```
//!
//! - `kvm`: every virtio-blk device (MMIO or PCI), in discovery order, named
//!   `virtio-blk0`, `virtio-blk1`, …
//! - `hosted`: the files given with `--disk=FILE[:ro]` (repeatable), named by path,
//!   read with `pread`, written with `pwrite`, flushed with `fdatasync`.
//!
//! # How virtio-blk requests complete without busy polling
//!
//! A request future posts its request and waits. The device's interrupt only makes
//! the CPU's `hlt` return; the executor then runs its pollers, and the disk poller
//! registered here sees that a device interrupt arrived and wakes the futures
//! waiting on a disk. Each woken future acknowledges the interrupt and collects
//! completions (`VirtioBlk::poll`, through the
//! platform), so a finished request is seen in the first executor turn after its
//! interrupt. The poller asks for no timer while nothing waits (an idle guest with a
//! disk halts), and while requests wait it asks to run again after
//! [`LOST_INTERRUPT_CHECK`] in case an interrupt was lost (then the device is polled
//! anyway, and [`DiskStats::rescued`] counts the requests this saved).
//!
//! The poller does not own the driver: virtio-blk keeps its state in a `RefCell`
//! (one core, no locks), so the driver lives with the task that owns the [`Disk`],
//! and only wakers cross to the poller. A `Disk` is therefore used from one task
//! (stores in `oasis-storage` are single-task too); share it with other tasks by
//! sending them requests, as the `kv` appliance does.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::future::{Future, poll_fn};
use core::pin::pin;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Poll, Waker};
use core::time::Duration;

pub use oasis_devices::{BlockDevice, BlockError, Geometry};
use oasis_runtime::{Instant, Poller};

use crate::platform::{self, RawDisk};

/// While requests wait, the poller checks the devices at least this often, so a
/// lost interrupt delays a request instead of stranding it.
pub const LOST_INTERRUPT_CHECK: Duration = Duration::from_millis(10);

/// Why the machine's disks are not available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskError {
    /// The machine has no block device.
    NoDisk,
    /// The disks were already handed out by an earlier call.
    Taken,
    /// A device could not be initialised (or its file opened).
    Device {
        /// The device's name (`virtio-blk0`, a file path).
        name: String,
        /// What went wrong.
        reason: String,
    },
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskError::NoDisk => f.write_str(
                "no block device: attach one (cargo oasis run --disk FILE, or --disk=FILE when hosted)",
            ),
            DiskError::Taken => f.write_str("the disks were already taken by an earlier call"),
            DiskError::Device { name, reason } => write!(f, "disk {name}: {reason}"),
        }
    }
}

impl core::error::Error for DiskError {}

/// Counters shared by every disk (for tests and benchmarks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskStats {
    /// Executor turns in which the poller saw a device interrupt and woke waiters.
    pub interrupt_wakeups: u64,
    /// Lost-interrupt checks that found completed requests nobody had been woken for.
    pub rescued: u64,
}

/// What the poller and the request futures share: the wakers of waiting requests.
#[derive(Default)]
struct Attention {
    waiters: spin::Mutex<Vec<Waker>>,
    interrupt_wakeups: AtomicU64,
    rescued: AtomicU64,
}

impl Attention {
    fn register(&self, waker: &Waker) {
        let mut w = self.waiters.lock();
        if !w.iter().any(|x| x.will_wake(waker)) {
            w.push(waker.clone());
        }
    }

    fn unregister(&self, waker: &Waker) {
        self.waiters.lock().retain(|x| !x.will_wake(waker));
    }

    fn wake_all(&self) -> usize {
        let woken: Vec<Waker> = core::mem::take(&mut *self.waiters.lock());
        let n = woken.len();
        for w in woken {
            w.wake();
        }
        n
    }
}

static ATTENTION: spin::Once<Arc<Attention>> = spin::Once::new();

fn attention() -> &'static Arc<Attention> {
    ATTENTION.call_once(|| Arc::new(Attention::default()))
}

/// The executor's view of the disks: wakes waiting requests after device
/// interrupts; see the module docs.
struct DiskPoller {
    attention: Arc<Attention>,
    /// When the oldest unanswered wait began (for the lost-interrupt check).
    waiting_since: Option<Instant>,
}

impl Poller for DiskPoller {
    fn poll(&mut self, now: Instant) -> Option<Instant> {
        let interrupted = platform::take_device_interrupts();
        let waiting = !self.attention.waiters.lock().is_empty();
        if !waiting {
            self.waiting_since = None;
            return None;
        }
        let since = *self.waiting_since.get_or_insert(now);
        let overdue = now.saturating_duration_since(since) >= LOST_INTERRUPT_CHECK;
        if interrupted {
            self.attention
                .interrupt_wakeups
                .fetch_add(1, Ordering::Relaxed);
            self.attention.wake_all();
            self.waiting_since = None;
            None
        } else if overdue {
            // The woken futures poll the device; `Disk::attend` counts a rescue if
            // they find their request done.
            RESCUE_CHECK.store(true, core::sync::atomic::Ordering::Relaxed);
            self.attention.wake_all();
            self.waiting_since = None;
            None
        } else {
            Some(since + LOST_INTERRUPT_CHECK)
        }
    }
}

/// Set by a lost-interrupt check, cleared by the first future that runs after it.
static RESCUE_CHECK: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// A block device of the machine; see the module docs. Implements [`BlockDevice`].
pub struct Disk {
    raw: RawDisk,
    name: String,
    attention: Arc<Attention>,
}

impl fmt::Debug for Disk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Disk")
            .field("name", &self.name)
            .field("geometry", &self.raw.geometry())
            .finish()
    }
}

impl Disk {
    /// The device's name: `virtio-blk0`… on `kvm`, the file's path on `hosted`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Counters shared by all disks.
    pub fn stats() -> DiskStats {
        let a = attention();
        DiskStats {
            interrupt_wakeups: a.interrupt_wakeups.load(Ordering::Relaxed),
            rescued: a.rescued.load(Ordering::Relaxed),
        }
    }

    /// Drives `fut` (a request on `self.raw`), parking its waker with the poller
    /// while it waits for the device.
    async fn attend<T>(&self, fut: impl Future<Output = T>) -> T {
        let mut fut = pin!(fut);
        poll_fn(|cx| {
            // Acknowledge the interrupt and collect completions (a no-op on hosted).
            let completed = self.raw.poll();
            if RESCUE_CHECK.swap(false, Ordering::Relaxed) && completed {
                self.attention.rescued.fetch_add(1, Ordering::Relaxed);
            }
            match fut.as_mut().poll(cx) {
                Poll::Ready(v) => {
                    if platform::DISKS_INTERRUPT {
                        self.attention.unregister(cx.waker());
                    }
                    Poll::Ready(v)
                }
                Poll::Pending => {
                    self.attention.register(cx.waker());
                    Poll::Pending
                }
            }
        })
        .await
    }
}

impl BlockDevice for Disk {
    fn geometry(&self) -> Geometry {
        self.raw.geometry()
    }

    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let in_flight = crate::metrics::BLOCK.start();
        let r = self.attend(self.raw.read(sector, buf)).await;
        drop(in_flight);
        crate::metrics::BLOCK.done(0, buf.len(), r.is_ok());
        r
    }

    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        let in_flight = crate::metrics::BLOCK.start();
        let r = self.attend(self.raw.write(sector, buf)).await;
        drop(in_flight);
        crate::metrics::BLOCK.done(1, buf.len(), r.is_ok());
        r
    }

    async fn flush(&self) -> Result<(), BlockError> {
        let in_flight = crate::metrics::BLOCK.start();
        let r = self.attend(self.raw.flush()).await;
        drop(in_flight);
        crate::metrics::BLOCK.done(2, 0, r.is_ok());
        r
    }
}

static TAKEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Every disk of the machine (first call only); see [`Os::disks`](crate::Os::disks).
pub(crate) fn take_all() -> Result<Vec<Disk>, DiskError> {
    if TAKEN.swap(true, Ordering::AcqRel) {
        return Err(DiskError::Taken);
    }
    let attention = attention().clone();
    let mut disks = Vec::new();
    for (name, raw) in platform::open_disks() {
        match raw {
            Ok(raw) => disks.push(Disk {
                raw,
                name,
                attention: attention.clone(),
            }),
            Err(reason) => return Err(DiskError::Device { name, reason }),
        }
    }
    if disks.is_empty() {
        return Err(DiskError::NoDisk);
    }
    if platform::DISKS_INTERRUPT {
        oasis_runtime::register_poller(alloc::boxed::Box::new(DiskPoller {
            attention,
            waiting_since: None,
        }));
    }
    for d in &disks {
        let g = d.geometry();
        log::info!(
            "disk {}: {} sectors of {} bytes ({} KiB){}",
            d.name,
            g.sectors,
            g.sector_size,
            g.bytes() / 1024,
            if g.read_only { ", read-only" } else { "" }
        );
    }
    Ok(disks)
}
