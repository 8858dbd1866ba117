//! `VirtioBlk`: the virtio-blk driver, implementing [`oasis_devices::BlockDevice`]
//! with several requests in flight and completion by waker.
//!
//! # How requests complete
//!
//! The queue has `depth` request slots, each a pre-allocated DMA area holding the
//! request header, the status byte and a data bounce buffer of `chunk` bytes. A
//! request future takes a free slot (or, when all are busy, registers its waker and
//! waits for one), fills it, posts the chain, notifies the device, and then waits
//! with its waker stored in the slot. [`VirtioBlk::poll`] (called by the executor
//! after the device's interrupt) pops completed chains, marks their slots done and
//! wakes the waiting futures, which copy the data out and free the slot. Futures
//! also run the same completion step whenever they are polled, so a lost interrupt
//! delays but never strands a request. Requests larger than `chunk` run as a
//! sequence of chunk-sized requests.
//!
//! Dropping a future whose request is in flight abandons it: the slot stays with
//! the device until the completion arrives and is then recycled. Since the device
//! only ever writes into the slot, never into the caller's buffer, this is sound
//! even for futures that are leaked instead of dropped.
//!
//! Nothing allocates per request, except that the list of tasks waiting for a free
//! slot grows (once) beyond its initial capacity when more than 32 distinct tasks
//! wait at the same time.

use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::poll_fn;
use core::task::{Poll, Waker};

use oasis_devices::{BlockDevice, BlockError, Geometry};

use super::{REQ_HDR_LEN, ReqHeader, VIRTIO_SECTOR, config, features as blk, req, status};
use crate::queue::{QueueError, Segment, Virtqueue};
use crate::transport::{self, COMMON_FEATURES, InitError, Transport, TransportError, device_id};

const QUEUE: u16 = 0;
const STATUS_OFF: usize = REQ_HDR_LEN;
/// Data starts sector-aligned inside the slot.
const DATA_OFF: usize = 512;
const WAITERS: usize = 32;

/// Driver settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlkConfig {
    /// Upper bound on the queue size.
    pub queue_size: u16,
    /// Requests in flight at most (bounded by queue size / 3).
    pub depth: u16,
    /// Bytes per request (the bounce-buffer size); rounded down to whole sectors
    /// and capped by the device's `size_max`.
    pub chunk_bytes: usize,
}

impl Default for BlkConfig {
    /// 8 requests of up to 64 KiB in flight: 516 KiB of DMA memory.
    fn default() -> Self {
        Self {
            queue_size: 128,
            depth: 8,
            chunk_bytes: 64 * 1024,
        }
    }
}

#[derive(Debug)]
enum Slot {
    Free,
    /// Taken by a future, not yet posted.
    Reserved,
    /// Posted; the waker of the future waiting for it.
    InFlight(Option<Waker>),
    /// Completed, result not yet collected.
    Done {
        status: u8,
    },
    /// Posted, but its future was dropped: free it on completion.
    Abandoned,
}

#[derive(Debug)]
struct Inner<T> {
    transport: T,
    queue: Virtqueue,
    slots: Vec<Slot>,
    free: Vec<u16>,
    waiters: Vec<Waker>,
    fatal: Option<QueueError>,
}

/// A virtio-blk device (see the module docs).
#[derive(Debug)]
pub struct VirtioBlk<T: Transport> {
    inner: RefCell<Inner<T>>,
    geometry: Geometry,
    features: u64,
    chunk: usize,
    per_sector: u64,
}

impl<T: Transport> VirtioBlk<T> {
    /// Initialises the device (virtio 1.2 §3.1.1, §5.2.5): negotiates features, reads
    /// the geometry, allocates the queue and the request slots, sets DRIVER_OK.
    pub fn new(mut transport: T, cfg: BlkConfig) -> Result<Self, InitError> {
        let offered = transport::start_init(&mut transport, device_id::BLOCK)?;
        match Self::init(transport, offered, cfg) {
            Ok(dev) => Ok(dev),
            Err((mut t, e)) => {
                transport::fail(&mut t);
                Err(e)
            }
        }
    }

    fn init(mut t: T, offered: u64, cfg: BlkConfig) -> Result<Self, (T, InitError)> {
        macro_rules! tri {
            ($e:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(e) => return Err((t, e.into())),
                }
            };
        }
        let negotiated =
            offered & (COMMON_FEATURES | blk::BLK_SIZE | blk::RO | blk::FLUSH | blk::SIZE_MAX);
        tri!(transport::accept_features(&mut t, negotiated));
        let capacity = tri!(t.read_config64(config::CAPACITY));
        let mut sector_size = 512u32;
        if negotiated & blk::BLK_SIZE != 0 {
            let b = tri!(t.read_config32(config::BLK_SIZE));
            if (512..=4096).contains(&b) && b.is_power_of_two() {
                sector_size = b;
            } else {
                log::warn!("virtio-blk: ignoring blk_size {b}; using 512-byte sectors");
            }
        }
        let per_sector = u64::from(sector_size) / VIRTIO_SECTOR;
        let ss = sector_size as usize;
        let mut chunk = (cfg.chunk_bytes / ss).max(1) * ss;
        if negotiated & blk::SIZE_MAX != 0 {
            let max = tri!(t.read_config32(config::SIZE_MAX)) as usize;
            chunk = chunk.min((max / ss).max(1) * ss);
        }
        let max = t.max_queue_size(QUEUE);
        let size = tri!(
            transport::choose_queue_size(max, cfg.queue_size)
                .ok_or(TransportError::NoSuchQueue(QUEUE))
        );
        let depth = cfg.depth.min(size / 3);
        if depth == 0 {
            return Err((
                t,
                InitError::BadConfig {
                    field: "queue_num_max",
                    value: u64::from(max),
                },
            ));
        }
        let event_idx = negotiated & transport::features::RING_EVENT_IDX != 0;
        let queue = tri!(Virtqueue::new(
            size,
            usize::from(depth),
            DATA_OFF + chunk,
            event_idx
        ));
        tri!(t.setup_queue(QUEUE, size, queue.addrs()));
        transport::finish_init(&mut t);
        let geometry = Geometry {
            sectors: capacity / per_sector,
            sector_size,
            read_only: negotiated & blk::RO != 0,
        };
        let inner = Inner {
            transport: t,
            queue,
            slots: (0..depth).map(|_| Slot::Free).collect(),
            free: (0..depth).rev().collect(),
            waiters: Vec::with_capacity(WAITERS),
            fatal: None,
        };
        Ok(Self {
            inner: RefCell::new(inner),
            geometry,
            features: negotiated,
            chunk,
            per_sector,
        })
    }

    /// The negotiated feature bits.
    pub fn features(&self) -> u64 {
        self.features
    }

    /// Bytes per device request (larger transfers are split).
    pub fn chunk_bytes(&self) -> usize {
        self.chunk
    }

    /// Requests that can be in flight at once.
    pub fn depth(&self) -> usize {
        self.inner.borrow().slots.len()
    }

    /// The device error that stopped the driver, if any.
    pub fn fatal_error(&self) -> Option<QueueError> {
        self.inner.borrow().fatal
    }

    /// Runs `f` on the transport (e.g. to get its interrupt-ack handle).
    pub fn with_transport<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.inner.borrow().transport)
    }

    /// Acknowledges the device's interrupt and completes finished requests, waking
    /// their futures. Call from task context after the device's interrupt fired
    /// (and, harmlessly, at any other time). Returns whether any request completed.
    /// Wakers are woken outside any internal borrow, so an executor's `wake` may do
    /// anything short of polling the woken future synchronously.
    pub fn poll(&self) -> bool {
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            inner.transport.ack_interrupt();
        }
        self.complete()
    }

    /// Pops every used chain, one at a time, waking outside the borrow.
    fn complete(&self) -> bool {
        let mut any = false;
        loop {
            let Ok(mut inner) = self.inner.try_borrow_mut() else {
                return any;
            };
            if inner.fatal.is_some() {
                return any;
            }
            let (slot, st) = match inner.queue.pop_used() {
                Ok(None) => return any,
                Ok(Some(u)) => {
                    let st = inner
                        .queue
                        .slot(u.slot)
                        .ok()
                        .and_then(|b| b.get(STATUS_OFF).copied());
                    (u.slot, st.unwrap_or(status::IOERR))
                }
                Err(QueueError::UsedLenTooLarge { slot, len, max }) => {
                    log::warn!("virtio-blk: device reported {len} bytes for a {max}-byte request");
                    (slot, status::IOERR)
                }
                Err(
                    e @ (QueueError::UsedIdOutOfRange { .. } | QueueError::UsedIdNotInFlight(_)),
                ) => {
                    log::warn!("virtio-blk: {e}");
                    continue;
                }
                Err(e) => {
                    log::error!("virtio-blk: {e}; failing every request");
                    inner.fatal = Some(e);
                    drop(inner);
                    self.fail_all();
                    return true;
                }
            };
            any = true;
            let i = usize::from(slot);
            match inner.slots.get(i) {
                Some(Slot::InFlight(_)) => {
                    let Slot::InFlight(w) =
                        core::mem::replace(&mut inner.slots[i], Slot::Done { status: st })
                    else {
                        continue;
                    };
                    drop(inner);
                    if let Some(w) = w {
                        w.wake();
                    }
                }
                Some(Slot::Abandoned) => {
                    inner.slots[i] = Slot::Free;
                    inner.free.push(slot);
                    drop(inner);
                    self.wake_waiters();
                }
                _ => {}
            }
        }
    }

    fn fail_all(&self) {
        loop {
            let w = {
                let Ok(mut inner) = self.inner.try_borrow_mut() else {
                    return;
                };
                let pending = inner
                    .slots
                    .iter_mut()
                    .find(|s| matches!(s, Slot::InFlight(_)));
                let Some(s) = pending else { break };
                match core::mem::replace(
                    s,
                    Slot::Done {
                        status: status::IOERR,
                    },
                ) {
                    Slot::InFlight(w) => w,
                    _ => None,
                }
            };
            if let Some(w) = w {
                w.wake();
            }
        }
        self.wake_waiters();
    }

    fn wake_waiters(&self) {
        let Ok(mut inner) = self.inner.try_borrow_mut() else {
            return;
        };
        let mut list = core::mem::take(&mut inner.waiters);
        drop(inner);
        for w in list.drain(..) {
            w.wake();
        }
        if let Ok(mut inner) = self.inner.try_borrow_mut()
            && inner.waiters.is_empty()
        {
            inner.waiters = list;
        }
    }

    /// Waits for a free slot.
    async fn acquire(&self) -> Result<SlotGuard<'_, T>, BlockError> {
        poll_fn(|cx| {
            self.complete();
            let Ok(mut inner) = self.inner.try_borrow_mut() else {
                return Poll::Ready(Err(BlockError::Io));
            };
            if inner.fatal.is_some() {
                return Poll::Ready(Err(BlockError::Io));
            }
            if let Some(id) = inner.free.pop() {
                inner.slots[usize::from(id)] = Slot::Reserved;
                return Poll::Ready(Ok(SlotGuard { dev: self, id }));
            }
            if !inner.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                inner.waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    /// Takes a free slot if there is one, without waiting.
    fn try_acquire(&self) -> Option<SlotGuard<'_, T>> {
        let mut inner = self.inner.try_borrow_mut().ok()?;
        if inner.fatal.is_some() {
            return None;
        }
        let id = inner.free.pop()?;
        inner.slots[usize::from(id)] = Slot::Reserved;
        Some(SlotGuard { dev: self, id })
    }

    /// Moves `total` bytes from `sector` as chunk-sized requests, keeping up to
    /// [`PIPELINE`] of them in flight (completing in order), so a large transfer
    /// costs about one device round trip rather than one per chunk. `data` gives
    /// each chunk's payload (by byte offset and length); `done` runs when a chunk
    /// completed (a read copies it out). No allocation: the in-flight set is an
    /// array.
    async fn transfer<'b>(
        &self,
        sector: u64,
        total: usize,
        kind: u32,
        mut data: impl FnMut(usize, usize) -> Data<'b>,
        mut done: impl FnMut(&Self, &SlotGuard<'_, T>, usize, usize) -> Result<(), BlockError>,
    ) -> Result<(), BlockError> {
        let base = sector * self.per_sector;
        let mut ring: [Option<(SlotGuard<'_, T>, usize, usize)>; PIPELINE] =
            [const { None }; PIPELINE];
        let (mut head, mut count, mut next) = (0usize, 0usize, 0usize);
        while next < total || count > 0 {
            while next < total && count < PIPELINE {
                let slot = if count == 0 {
                    self.acquire().await?
                } else {
                    match self.try_acquire() {
                        Some(s) => s,
                        None => break,
                    }
                };
                let len = self.chunk.min(total - next);
                let vsector = base + (next / VIRTIO_SECTOR as usize) as u64;
                self.submit(&slot, kind, vsector, data(next, len))?;
                ring[(head + count) % PIPELINE] = Some((slot, next, len));
                count += 1;
                next += len;
            }
            let Some((slot, off, len)) = ring[head].take() else {
                return Err(BlockError::Io); // unreachable: count > 0 means head is filled
            };
            self.wait(&slot).await?;
            done(self, &slot, off, len)?;
            drop(slot);
            head = (head + 1) % PIPELINE;
            count -= 1;
        }
        Ok(())
    }

    /// Fills and posts the slot's request.
    fn submit(
        &self,
        slot: &SlotGuard<'_, T>,
        kind: u32,
        sector: u64,
        data: Data<'_>,
    ) -> Result<(), BlockError> {
        let mut guard = self.inner.try_borrow_mut().map_err(|_| BlockError::Io)?;
        let inner = &mut *guard;
        if inner.fatal.is_some() {
            return Err(BlockError::Io);
        }
        let buf = inner.queue.slot_mut(slot.id).map_err(|_| BlockError::Io)?;
        ReqHeader { kind, sector }.emit(buf).ok_or(BlockError::Io)?;
        buf[STATUS_OFF] = 0xff; // overwritten by the device
        let hdr = Segment::readable(0, REQ_HDR_LEN);
        let st = Segment::writable(STATUS_OFF, 1);
        let posted = match data {
            Data::None => inner.queue.post(slot.id, &[hdr, st]),
            Data::Out(src) => {
                let dst = buf
                    .get_mut(DATA_OFF..DATA_OFF + src.len())
                    .ok_or(BlockError::Io)?;
                dst.copy_from_slice(src);
                inner
                    .queue
                    .post(slot.id, &[hdr, Segment::readable(DATA_OFF, src.len()), st])
            }
            Data::In(len) => inner
                .queue
                .post(slot.id, &[hdr, Segment::writable(DATA_OFF, len), st]),
        };
        posted.map_err(|e| {
            log::error!("virtio-blk: cannot post request: {e}");
            BlockError::Io
        })?;
        inner.slots[usize::from(slot.id)] = Slot::InFlight(None);
        if inner.queue.kick_needed() {
            inner.transport.notify(QUEUE);
        }
        Ok(())
    }

    /// Waits for the slot's request to complete; maps the status byte.
    async fn wait(&self, slot: &SlotGuard<'_, T>) -> Result<(), BlockError> {
        let status = poll_fn(|cx| {
            self.complete();
            let Ok(mut inner) = self.inner.try_borrow_mut() else {
                return Poll::Ready(Err(BlockError::Io));
            };
            match inner.slots.get_mut(usize::from(slot.id)) {
                Some(Slot::Done { status }) => Poll::Ready(Ok(*status)),
                Some(Slot::InFlight(w)) => {
                    if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *w = Some(cx.waker().clone());
                    }
                    Poll::Pending
                }
                _ => Poll::Ready(Err(BlockError::Io)),
            }
        })
        .await?;
        match status {
            status::OK => Ok(()),
            status::UNSUPP => Err(BlockError::Unsupported),
            _ => Err(BlockError::Io),
        }
    }

    fn copy_out(&self, slot: &SlotGuard<'_, T>, dst: &mut [u8]) -> Result<(), BlockError> {
        let inner = self.inner.try_borrow().map_err(|_| BlockError::Io)?;
        let buf = inner.queue.slot(slot.id).map_err(|_| BlockError::Io)?;
        let src = buf
            .get(DATA_OFF..DATA_OFF + dst.len())
            .ok_or(BlockError::Io)?;
        dst.copy_from_slice(src);
        Ok(())
    }

    fn release(&self, id: u16) {
        let Ok(mut inner) = self.inner.try_borrow_mut() else {
            log::error!("virtio-blk: slot {id} leaked (driver busy during drop)");
            return;
        };
        let i = usize::from(id);
        let freed = match inner.slots.get(i) {
            Some(Slot::InFlight(_)) => {
                inner.slots[i] = Slot::Abandoned;
                false
            }
            Some(Slot::Reserved | Slot::Done { .. }) => {
                inner.slots[i] = Slot::Free;
                inner.free.push(id);
                true
            }
            _ => false,
        };
        drop(inner);
        if freed {
            self.wake_waiters();
        }
    }
}

/// Chunks of one large request kept in flight at once (bounded by the slots free).
const PIPELINE: usize = 4;

enum Data<'a> {
    None,
    Out(&'a [u8]),
    In(usize),
}

/// A slot held by one request future; dropping it frees (or abandons) the slot.
struct SlotGuard<'a, T: Transport> {
    dev: &'a VirtioBlk<T>,
    id: u16,
}

impl<T: Transport> Drop for SlotGuard<'_, T> {
    fn drop(&mut self) {
        self.dev.release(self.id);
    }
}

impl<T: Transport> BlockDevice for VirtioBlk<T> {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.check(sector, buf.len(), false)?;
        let total = buf.len();
        self.transfer(
            sector,
            total,
            req::IN,
            |_, len| Data::In(len),
            |dev, slot, off, len| {
                let dst = buf.get_mut(off..off + len).ok_or(BlockError::Io)?;
                dev.copy_out(slot, dst)
            },
        )
        .await
    }

    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.check(sector, buf.len(), true)?;
        self.transfer(
            sector,
            buf.len(),
            req::OUT,
            |off, len| Data::Out(&buf[off..off + len]),
            |_, _, _, _| Ok(()),
        )
        .await
    }

    async fn flush(&self) -> Result<(), BlockError> {
        // Without VIRTIO_BLK_F_FLUSH the device is write-through (Linux assumes so
        // too): completed writes are already durable.
        if self.features & blk::FLUSH == 0 {
            return Ok(());
        }
        let slot = self.acquire().await?;
        self.submit(&slot, req::FLUSH, 0, Data::None)?;
        self.wait(&slot).await
    }
}

impl<T: Transport> Drop for VirtioBlk<T> {
    fn drop(&mut self) {
        let inner = self.inner.get_mut();
        if inner.transport.reset().is_err() {
            inner.queue.leak();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeChain, FakeRing, FakeTransport};
    use crate::transport::features::VERSION_1;
    use core::pin::Pin;
    use std::boxed::Box;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Wake};

    type BoxedRequest<'a> = Pin<Box<dyn Future<Output = Result<(), BlockError>> + 'a>>;

    struct Counter(AtomicUsize);
    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Counter>, Waker) {
        let c = Arc::new(Counter(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    fn blk_config(capacity_512: u64, blk_size: u32, size_max: u32) -> Vec<u8> {
        let mut c = vec![0u8; 24];
        c[0..8].copy_from_slice(&capacity_512.to_le_bytes());
        c[8..12].copy_from_slice(&size_max.to_le_bytes());
        c[20..24].copy_from_slice(&blk_size.to_le_bytes());
        c
    }

    /// A disk of `sectors` 512-byte sectors behind a fake queue.
    struct Disk {
        data: Vec<u8>,
        ring: FakeRing,
        flushes: usize,
    }

    impl Disk {
        fn new(t: &FakeTransport, sectors: usize) -> Self {
            let data = (0..sectors * 512)
                .map(|i| (i / 512) as u8 ^ (i as u8))
                .collect();
            Self {
                data,
                ring: t.ring(0),
                flushes: 0,
            }
        }

        fn take(&mut self) -> Vec<FakeChain> {
            core::iter::from_fn(|| self.ring.pop_avail()).collect()
        }

        /// Serves one chain against the disk; returns (head, used len).
        fn serve(&mut self, c: &FakeChain) -> (u32, u32) {
            let r = c.readable();
            let h = ReqHeader::parse(&r).unwrap();
            let at = h.sector as usize * 512;
            let data_len = c.writable_len() as usize - 1;
            match h.kind {
                req::IN => {
                    let mut out = self.data[at..at + data_len].to_vec();
                    out.push(status::OK);
                    (c.head, c.write(&out))
                }
                req::OUT => {
                    let payload = &r[REQ_HDR_LEN..];
                    self.data[at..at + payload.len()].copy_from_slice(payload);
                    (c.head, c.write(&[status::OK]))
                }
                req::FLUSH => {
                    self.flushes += 1;
                    (c.head, c.write(&[status::OK]))
                }
                _ => (c.head, c.write(&[status::UNSUPP])),
            }
        }

        fn serve_all(&mut self) {
            for c in self.take() {
                let (h, n) = self.serve(&c);
                self.ring.push_used(h, n);
            }
        }
    }

    fn setup(
        features: u64,
        cfg: BlkConfig,
        config: Vec<u8>,
    ) -> (VirtioBlk<FakeTransport>, FakeTransport, Disk) {
        let t = FakeTransport::new(2, VERSION_1 | features, config);
        let dev = VirtioBlk::new(t.clone(), cfg).unwrap();
        let disk = Disk::new(&t, 256);
        (dev, t, disk)
    }

    /// Polls `f` to completion, serving the device between polls.
    fn run<F: Future>(disk: &mut Disk, dev: &VirtioBlk<FakeTransport>, f: F) -> F::Output {
        let (_, w) = waker();
        let mut cx = Context::from_waker(&w);
        let mut f = Box::pin(f);
        for _ in 0..1000 {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            disk.serve_all();
            dev.poll();
        }
        panic!("request never completed");
    }

    #[test]
    fn geometry_and_features() {
        let (dev, _, _) = setup(
            blk::BLK_SIZE | blk::RO | blk::FLUSH | blk::SEG_MAX,
            BlkConfig::default(),
            blk_config(256, 4096, 0),
        );
        assert_eq!(
            dev.geometry(),
            Geometry {
                sectors: 32,
                sector_size: 4096,
                read_only: true
            }
        );
        assert_eq!(
            dev.features(),
            VERSION_1 | blk::BLK_SIZE | blk::RO | blk::FLUSH
        );
        assert_eq!(dev.depth(), 8);
        let (dev, _, _) = setup(
            blk::BLK_SIZE,
            BlkConfig::default(),
            blk_config(256, 1000, 0),
        );
        assert_eq!(dev.geometry().sector_size, 512, "nonsense blk_size ignored");
    }

    #[test]
    fn read_write_flush_round_trip() {
        let cfg = BlkConfig {
            chunk_bytes: 2048,
            ..BlkConfig::default()
        };
        let (dev, _t, mut disk) = setup(blk::FLUSH, cfg, blk_config(256, 512, 0));
        let mut buf = vec![0u8; 512 * 10]; // 3 chunks: 4 + 4 + 2 sectors
        run(&mut disk, &dev, dev.read(3, &mut buf)).unwrap();
        assert_eq!(buf, disk.data[3 * 512..13 * 512]);

        let payload: Vec<u8> = (0..512 * 5).map(|i| (i * 3) as u8).collect();
        run(&mut disk, &dev, dev.write(100, &payload)).unwrap();
        assert_eq!(disk.data[100 * 512..105 * 512], payload[..]);
        run(&mut disk, &dev, dev.flush()).unwrap();
        assert_eq!(disk.flushes, 1);
    }

    #[test]
    fn shape_errors_come_before_the_device() {
        let (dev, t, mut disk) = setup(blk::RO, BlkConfig::default(), blk_config(16, 512, 0));
        let mut b = vec![0u8; 512];
        assert_eq!(
            run(&mut disk, &dev, dev.write(0, &b)),
            Err(BlockError::ReadOnly)
        );
        assert_eq!(
            run(&mut disk, &dev, dev.read(16, &mut b)),
            Err(BlockError::OutOfRange {
                start: 16,
                end: 17,
                sectors: 16
            })
        );
        assert!(matches!(
            run(&mut disk, &dev, dev.read(0, &mut b[..100])),
            Err(BlockError::Misaligned { .. })
        ));
        assert_eq!(
            run(&mut disk, &dev, dev.flush()),
            Ok(()),
            "no FLUSH: write-through"
        );
        assert!(t.0.borrow().notifications.is_empty());
    }

    #[test]
    fn several_requests_in_flight_complete_out_of_order() {
        let cfg = BlkConfig {
            depth: 4,
            ..BlkConfig::default()
        };
        let (dev, t, mut disk) = setup(0, cfg, blk_config(256, 512, 0));
        let mut bufs = vec![vec![0u8; 1024]; 4];
        let (counter, w) = waker();
        let mut cx = Context::from_waker(&w);
        let mut futs: Vec<BoxedRequest<'_>> = bufs
            .iter_mut()
            .enumerate()
            .map(|(i, b)| Box::pin(dev.read(i as u64 * 10, b)) as BoxedRequest<'_>)
            .collect();
        for f in &mut futs {
            assert!(f.as_mut().poll(&mut cx).is_pending());
        }
        let chains = disk.take();
        assert_eq!(chains.len(), 4, "all four requests are in flight at once");
        assert_eq!(t.0.borrow().notifications.len(), 4);
        // The device answers in the order 2, 0, 3, 1.
        for &i in &[2usize, 0, 3, 1] {
            let (h, n) = disk.serve(&chains[i]);
            disk.ring.push_used(h, n);
        }
        assert!(dev.poll());
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            4,
            "each completion woke its future"
        );
        for f in &mut futs {
            assert_eq!(f.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
        }
        drop(futs);
        for (i, b) in bufs.iter().enumerate() {
            assert_eq!(b[..], disk.data[i * 10 * 512..i * 10 * 512 + 1024]);
        }
    }

    #[test]
    fn waits_for_a_slot_when_all_are_busy_and_recycles_abandoned_ones() {
        let cfg = BlkConfig {
            depth: 1,
            ..BlkConfig::default()
        };
        let (dev, _t, mut disk) = setup(0, cfg, blk_config(256, 512, 0));
        let (counter, w) = waker();
        let mut cx = Context::from_waker(&w);
        let mut b1 = vec![0u8; 512];
        let mut b2 = vec![0u8; 512];
        let mut f1 = Box::pin(dev.read(1, &mut b1));
        let mut f2 = Box::pin(dev.read(2, &mut b2));
        assert!(f1.as_mut().poll(&mut cx).is_pending());
        assert!(f2.as_mut().poll(&mut cx).is_pending(), "no slot free");
        assert_eq!(disk.take().len(), 1);
        // Abandon the in-flight request: the slot stays with the device...
        drop(f1);
        assert!(f2.as_mut().poll(&mut cx).is_pending());
        // ...until its completion comes back, which frees it and wakes the waiter.
        disk.ring.push_used(0, 513);
        dev.poll();
        assert!(counter.0.load(Ordering::SeqCst) >= 1);
        assert!(f2.as_mut().poll(&mut cx).is_pending());
        disk.serve_all();
        dev.poll();
        assert_eq!(f2.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
        drop(f2);
        assert_eq!(b2[..], disk.data[1024..1536]);
    }

    #[test]
    fn device_errors_map_to_block_errors() {
        let (dev, _t, mut disk) = setup(blk::FLUSH, BlkConfig::default(), blk_config(256, 512, 0));
        let (_, w) = waker();
        let mut cx = Context::from_waker(&w);
        let mut b = vec![0u8; 512];
        for (st, want) in [
            (status::IOERR, BlockError::Io),
            (status::UNSUPP, BlockError::Unsupported),
            (7, BlockError::Io),
        ] {
            let mut f = Box::pin(dev.read(0, &mut b));
            assert!(f.as_mut().poll(&mut cx).is_pending());
            let c = disk.take().remove(0);
            c.write_at(512, &[st]);
            disk.ring.push_used(c.head, 513);
            dev.poll();
            assert_eq!(f.as_mut().poll(&mut cx), Poll::Ready(Err(want)));
        }
        // A used length beyond the chain fails that request only.
        let mut f = Box::pin(dev.read(0, &mut b));
        assert!(f.as_mut().poll(&mut cx).is_pending());
        let c = disk.take().remove(0);
        disk.ring.push_used(c.head, 9999);
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Ready(Err(BlockError::Io)));
        drop(f);
        assert_eq!(run(&mut disk, &dev, dev.read(0, &mut b)), Ok(()));
    }

    #[test]
    fn a_broken_device_fails_requests_instead_of_hanging() {
        let (dev, _t, mut disk) = setup(0, BlkConfig::default(), blk_config(256, 512, 0));
        let (counter, w) = waker();
        let mut cx = Context::from_waker(&w);
        let mut b = vec![0u8; 512];
        let mut f = Box::pin(dev.read(0, &mut b));
        assert!(f.as_mut().poll(&mut cx).is_pending());
        for _ in 0..5 {
            disk.ring.push_used(0, 0);
        }
        dev.poll();
        assert!(dev.fatal_error().is_some());
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Ready(Err(BlockError::Io)));
        drop(f);
        assert_eq!(run(&mut disk, &dev, dev.flush()), Ok(()));
        assert_eq!(
            run(&mut disk, &dev, dev.read(0, &mut b)),
            Err(BlockError::Io)
        );
    }

    #[test]
    fn size_max_caps_the_chunk_and_drop_resets() {
        let cfg = BlkConfig {
            chunk_bytes: 64 * 1024,
            ..BlkConfig::default()
        };
        let (dev, t, _) = setup(blk::SIZE_MAX, cfg, blk_config(256, 512, 4000));
        assert_eq!(dev.chunk_bytes(), 3584);
        drop(dev);
        assert_eq!(t.0.borrow().status, 0);
    }

    #[test]
    fn queue_too_small_is_a_clear_error() {
        let t = FakeTransport::new(2, VERSION_1, blk_config(8, 512, 0));
        t.0.borrow_mut().max_queue = 2;
        let err = VirtioBlk::new(t, BlkConfig::default()).unwrap_err();
        assert_eq!(
            err,
            InitError::BadConfig {
                field: "queue_num_max",
                value: 2
            }
        );
    }
}
