//! blkfront: the Xen PV block front end (`io/blkif.h`), implementing
//! [`oasis_devices::BlockDevice`] over one blkif ring.
//!
//! Each of the driver's request slots owns [`SEGMENTS`] pages, granted writable
//! to the back end once per connection; a request copies data into (or out of)
//! its slot's pages and names up to 11 segments, so up to 44 KiB move per
//! request, and several requests (one per slot) are in flight at once. Sector
//! numbers on the ring and the `sectors` node are in 512-byte units whatever the
//! disk's `sector-size`.
//!
//! Durability: `flush` sends `BLKIF_OP_FLUSH_DISKCACHE` when the back end offers
//! `feature-flush-cache`, else `BLKIF_OP_WRITE_BARRIER` when it offers
//! `feature-barrier`. With neither, the device is treated as write-through, as
//! Linux blkfront and our virtio-blk driver (without `VIRTIO_BLK_F_FLUSH`) do:
//! `flush` succeeds and [`BlkFront::flush_op`] says `None` (logged at connect).
//! A flush the back end answers with `EOPNOTSUPP` returns
//! [`BlockError::Unsupported`].
//!
//! Hostile back ends: a response id that is not in flight, a response whose
//! operation differs from the request's, or ring indices running ahead mark the
//! device broken: every pending and later request fails with
//! [`BlockError::Io`], nothing waits forever. Reconnection as in netfront:
//! [`BlkFront::on_backend_change`] tears down on Closing/Closed (in-flight
//! requests fail) and connects again from InitWait.

use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::poll_fn;
use core::task::{Poll, Waker};

use oasis_devices::{BlockDevice, BlockError, Geometry};

use crate::front::{self, Frontend, Revoking};
use crate::grant::{GrantError, GrantRef, SharedGrants};
use crate::hv::{HvError, Port, XenHypervisor};
use crate::page::{PAGE_SIZE, SharedPage};
use crate::ring::{FrontRing, RingError, RingProtocol};
use crate::xenstore::xenbus::{XenbusDevice, XenbusError, XenbusState};
use crate::xenstore::{Xenstore, XsError};

/// Segments (pages) per request (`BLKIF_MAX_SEGMENTS_PER_REQUEST`).
pub const SEGMENTS: usize = 11;
/// Bytes one request moves at most.
pub const CHUNK: usize = SEGMENTS * PAGE_SIZE;
/// `VDISK_READONLY` in the `info` node.
pub const VDISK_READONLY: u64 = 4;

/// `blkif.h` wire constants.
pub mod wire {
    /// `BLKIF_OP_READ`.
    pub const OP_READ: u8 = 0;
    /// `BLKIF_OP_WRITE`.
    pub const OP_WRITE: u8 = 1;
    /// `BLKIF_OP_WRITE_BARRIER`.
    pub const OP_WRITE_BARRIER: u8 = 2;
    /// `BLKIF_OP_FLUSH_DISKCACHE`.
    pub const OP_FLUSH_DISKCACHE: u8 = 3;
    /// `BLKIF_RSP_EOPNOTSUPP`.
    pub const RSP_EOPNOTSUPP: i16 = -2;
    /// `BLKIF_RSP_ERROR`.
    pub const RSP_ERROR: i16 = -1;
    /// `BLKIF_RSP_OKAY`.
    pub const RSP_OKAY: i16 = 0;
}

/// One segment: a granted page and the 512-byte sectors used in it (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Segment {
    /// The page's grant.
    pub gref: u32,
    /// First sector in the page (0..=7).
    pub first_sect: u8,
    /// Last sector in the page (0..=7).
    pub last_sect: u8,
}

/// `blkif_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// `BLKIF_OP_*`.
    pub operation: u8,
    /// Segments used.
    pub nr_segments: u8,
    /// Virtual device handle (0).
    pub handle: u16,
    /// Echoed in the response.
    pub id: u64,
    /// First 512-byte sector.
    pub sector: u64,
    /// Segments.
    pub seg: [Segment; SEGMENTS],
}

/// `blkif_response`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// The request's operation.
    pub operation: u8,
    /// `BLKIF_RSP_*`.
    pub status: i16,
}

/// The blkif ring's encoding (112-byte entries on x86_64).
pub struct Blkif;

impl RingProtocol for Blkif {
    type Request = Request;
    type Response = Response;
    const ENTRY_SIZE: usize = 112;
    fn write_request(p: &SharedPage, off: usize, r: &Request) {
        p.store_u32(
            off,
            u32::from(r.operation) | (u32::from(r.nr_segments) << 8) | (u32::from(r.handle) << 16),
        );
        p.store_u32(off + 4, 0);
        p.store_u64(off + 8, r.id);
        p.store_u64(off + 16, r.sector);
        for (i, s) in r.seg.iter().enumerate() {
            p.store_u32(off + 24 + 8 * i, s.gref);
            p.store_u32(
                off + 28 + 8 * i,
                u32::from(s.first_sect) | (u32::from(s.last_sect) << 8),
            );
        }
    }
    fn read_response(p: &SharedPage, off: usize) -> Response {
        let w = p.load_u32(off + 8);
        Response {
            id: p.load_u64(off),
            operation: w as u8,
            status: (w >> 16) as u16 as i16,
        }
    }
}

impl Blkif {
    /// The back end's view (for models).
    pub fn read_request(p: &SharedPage, off: usize) -> Request {
        let w = p.load_u32(off);
        let mut seg = [Segment::default(); SEGMENTS];
        for (i, s) in seg.iter_mut().enumerate() {
            let b = p.load_u32(off + 28 + 8 * i);
            *s = Segment {
                gref: p.load_u32(off + 24 + 8 * i),
                first_sect: b as u8,
                last_sect: (b >> 8) as u8,
            };
        }
        Request {
            operation: w as u8,
            nr_segments: (w >> 8) as u8,
            handle: (w >> 16) as u16,
            id: p.load_u64(off + 8),
            sector: p.load_u64(off + 16),
            seg,
        }
    }
    /// The back end's view (for models).
    pub fn write_response(p: &SharedPage, off: usize, r: &Response) {
        p.store_u64(off, r.id);
        p.store_u32(
            off + 8,
            u32::from(r.operation) | (u32::from(r.status as u16) << 16),
        );
    }
}

/// Driver settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlkConfig {
    /// Requests in flight at once (each owns 11 pages), 1..=32.
    pub slots: u8,
}

impl Default for BlkConfig {
    fn default() -> Self {
        Self { slots: 8 }
    }
}

/// What went wrong setting up blkfront.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlkSetupError {
    /// The xenbus handshake failed.
    #[error("blkfront: {0}")]
    Xenbus(#[from] XenbusError),
    /// A grant operation failed.
    #[error("blkfront: {0}")]
    Grant(#[from] GrantError),
    /// A hypercall failed.
    #[error("blkfront: {0}")]
    Hypervisor(#[from] HvError),
    /// `sector-size` is not a power of two in 512..=4096, or `sectors` is not a
    /// whole number of sectors.
    #[error(
        "blkfront: back end geometry {sectors} × 512 B with sector-size {sector_size} is unusable"
    )]
    BadGeometry {
        /// The `sectors` node (512-byte units).
        sectors: u64,
        /// The `sector-size` node.
        sector_size: u64,
    },
    /// Slot count out of range.
    #[error("blkfront: {0} slots: must be 1..=32")]
    BadConfig(u8),
    /// The grant table is in use elsewhere.
    #[error("blkfront: grant table busy")]
    GrantTableBusy,
}

impl From<XsError> for BlkSetupError {
    fn from(e: XsError) -> Self {
        Self::Xenbus(XenbusError::Xenstore(e))
    }
}

/// Why the device stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlkFault {
    /// Ring indices ran ahead.
    #[error("blkfront: {0}")]
    Ring(#[from] RingError),
    /// A response for an id not in flight.
    #[error("blkfront: response for id {0}, which is not in flight")]
    BogusId(u64),
    /// A response whose operation is not the request's.
    #[error("blkfront: response for id {id} says operation {got}, request was {sent}")]
    WrongOperation {
        /// The id.
        id: u64,
        /// Operation in the response.
        got: u8,
        /// Operation sent.
        sent: u8,
    },
    /// The back end went away.
    #[error("blkfront: disconnected")]
    Disconnected,
}

enum SlotState {
    Free,
    Reserved,
    InFlight {
        op: u8,
        waker: Option<Waker>,
    },
    Done {
        status: i16,
    },
    /// Its future was dropped while in flight; freed on completion.
    Abandoned {
        op: u8,
    },
}

struct Slot {
    pages: [SharedPage; SEGMENTS],
    grefs: [Option<GrantRef>; SEGMENTS],
    state: SlotState,
}

struct Conn {
    ring: FrontRing<Blkif>,
    gref: GrantRef,
    port: Port,
}

struct Inner {
    conn: Option<Conn>,
    slots: Vec<Slot>,
    free: Vec<u8>,
    free_waiters: Vec<Waker>,
    fault: Option<BlkFault>,
    revoking: Revoking,
}

/// Counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlkStats {
    /// Requests sent.
    pub requests: u64,
    /// Flushes sent.
    pub flushes: u64,
    /// Times the device connected.
    pub connects: u64,
}

/// The blkfront driver.
pub struct BlkFront<'h, H: XenHypervisor> {
    hv: &'h H,
    gnt: &'h SharedGrants,
    dev: XenbusDevice,
    geometry: Geometry,
    flush_op: Option<u8>,
    inner: RefCell<Inner>,
    stats: core::cell::Cell<BlkStats>,
}

impl<'h, H: XenHypervisor> BlkFront<'h, H> {
    /// Probes `device/vbd/INDEX` and connects.
    pub fn new(
        hv: &'h H,
        gnt: &'h SharedGrants,
        xs: &mut Xenstore<'h, H>,
        index: u32,
        cfg: BlkConfig,
    ) -> Result<Self, BlkSetupError> {
        if !(1..=32).contains(&cfg.slots) {
            return Err(BlkSetupError::BadConfig(cfg.slots));
        }
        let dev = XenbusDevice::probe(xs, "vbd", index)?;
        let mut slots = Vec::with_capacity(usize::from(cfg.slots));
        for _ in 0..cfg.slots {
            let mut pages = Vec::with_capacity(SEGMENTS);
            for _ in 0..SEGMENTS {
                pages.push(hv.alloc_page()?);
            }
            let pages: [SharedPage; SEGMENTS] = pages.try_into().map_err(|_| HvError::NoPages)?;
            slots.push(Slot {
                pages,
                grefs: [None; SEGMENTS],
                state: SlotState::Free,
            });
        }
        let me = Self {
            hv,
            gnt,
            dev,
            geometry: Geometry {
                sectors: 0,
                sector_size: 512,
                read_only: true,
            },
            flush_op: None,
            inner: RefCell::new(Inner {
                conn: None,
                slots,
                free: Vec::with_capacity(usize::from(cfg.slots)),
                free_waiters: Vec::with_capacity(usize::from(cfg.slots) * 2),
                fault: Some(BlkFault::Disconnected),
                revoking: Revoking::default(),
            }),
            stats: core::cell::Cell::new(BlkStats::default()),
        };
        let mut me = me;
        front::start(&mut me, xs)?;
        Ok(me)
    }

    /// The flush operation in use, `None` when the back end offers none (writes
    /// are treated as durable on completion).
    pub fn flush_op(&self) -> Option<u8> {
        self.flush_op
    }

    /// Counters.
    pub fn stats(&self) -> BlkStats {
        self.stats.get()
    }

    /// Why the device stopped, if it did.
    pub fn fault(&self) -> Option<BlkFault> {
        self.inner.try_borrow().ok().and_then(|i| i.fault.clone())
    }

    /// The event channel of the current connection (bind it to [`Self::poll`]).
    pub fn port(&self) -> Option<Port> {
        self.inner.try_borrow().ok()?.conn.as_ref().map(|c| c.port)
    }

    fn connect(&mut self, xs: &mut Xenstore<'h, H>) -> Result<(), BlkSetupError> {
        let backend = self.dev.backend_id;
        let inner = self.inner.get_mut();
        let mut gnt = self.gnt.try_lock().ok_or(BlkSetupError::GrantTableBusy)?;
        let (ring, gref) = front::new_ring::<Blkif, H, BlkSetupError>(self.hv, &mut gnt, backend)?;
        let port = self.hv.evtchn_alloc_unbound(backend)?;
        // Connected from here on, so that a failure below is torn down.
        inner.conn = Some(Conn { ring, gref, port });
        let buffers = inner.slots.iter_mut();
        let buffers = buffers.flat_map(|s| s.pages.iter().zip(s.grefs.iter_mut()));
        front::grant_buffers(&mut gnt, backend, false, buffers)?;
        drop(gnt);
        inner.free.clear();
        for (i, s) in inner.slots.iter_mut().enumerate() {
            s.state = SlotState::Free;
            inner.free.push(i as u8);
        }
        let (ring_ref, channel) = (alloc::format!("{}", gref.0), alloc::format!("{}", port.0));
        self.dev.publish(
            xs,
            &[
                ("ring-ref", ring_ref.as_bytes()),
                ("event-channel", channel.as_bytes()),
                ("protocol", b"x86_64-abi"),
            ],
        )?;
        self.dev.switch_state(xs, XenbusState::Initialised)?;
        self.dev.wait_for_state(xs, XenbusState::Connected)?;
        let sectors = self.dev.backend_u64(xs, "sectors")?;
        let sector_size = match self.dev.backend_value(xs, "sector-size")? {
            Some(v) => crate::xenstore::wire::parse_decimal(&v).unwrap_or(0),
            None => 512,
        };
        let info = match self.dev.backend_value(xs, "info")? {
            Some(v) => crate::xenstore::wire::parse_decimal(&v).unwrap_or(0),
            None => 0,
        };
        let bytes = sectors.checked_mul(512);
        let ok = sector_size.is_power_of_two()
            && (512..=4096).contains(&sector_size)
            && bytes.is_some_and(|b| b.is_multiple_of(sector_size));
        if !ok {
            return Err(BlkSetupError::BadGeometry {
                sectors,
                sector_size,
            });
        }
        self.geometry = Geometry {
            sectors: bytes.unwrap_or(0) / sector_size,
            sector_size: sector_size as u32,
            read_only: info & VDISK_READONLY != 0,
        };
        self.flush_op = if self.dev.backend_feature(xs, "feature-flush-cache")? {
            Some(wire::OP_FLUSH_DISKCACHE)
        } else if self.dev.backend_feature(xs, "feature-barrier")? {
            Some(wire::OP_WRITE_BARRIER)
        } else {
            log::warn!(
                "blkfront {}: back end offers neither feature-flush-cache nor feature-barrier; treating the disk as write-through",
                self.dev.frontend
            );
            None
        };
        self.dev.switch_state(xs, XenbusState::Connected)?;
        self.inner.get_mut().fault = None;
        let mut st = self.stats.get();
        st.connects += 1;
        self.stats.set(st);
        log::info!(
            "blkfront {}: {} sectors of {} bytes{}",
            self.dev.frontend,
            self.geometry.sectors,
            self.geometry.sector_size,
            if self.geometry.read_only {
                ", read-only"
            } else {
                ""
            }
        );
        Ok(())
    }

    /// Grants still held by the back end after a disconnect.
    pub fn pending_revokes(&self) -> usize {
        self.inner.try_borrow().map_or(0, |i| i.revoking.len())
    }

    /// Reacts to a change of the back end's state (from task context, with no
    /// request future being polled): Closing/Closed fails in-flight requests,
    /// tears down and writes Closed; InitWait while disconnected connects again.
    /// Returns whether the device is connected.
    pub fn on_backend_change(&mut self, xs: &mut Xenstore<'h, H>) -> Result<bool, BlkSetupError> {
        front::on_backend_change(self, xs)
    }

    /// Closes the device cleanly (as [`NetFront::close`](crate::net::NetFront::close)):
    /// Closing, a bounded wait for the back end to let go, revoke, Closed.
    pub fn close(mut self, xs: &mut Xenstore<'h, H>) -> Result<(), BlkSetupError> {
        front::close(&mut self, xs)
    }

    /// Task context, after the event channel fired: completes requests and wakes
    /// their futures. Returns whether any completed.
    pub fn poll(&self) -> bool {
        self.complete()
    }

    fn complete(&self) -> bool {
        let Ok(mut guard) = self.inner.try_borrow_mut() else {
            return false;
        };
        let inner = &mut *guard;
        let mut any = false;
        while let Some(conn) = inner.conn.as_mut() {
            if inner.fault.is_some() {
                break;
            }
            let rsp = match conn.ring.take_response() {
                Ok(Some(r)) => r,
                Ok(None) => match conn.ring.final_check_for_responses() {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        fault(inner, e.into());
                        break;
                    }
                },
                Err(e) => {
                    fault(inner, e.into());
                    break;
                }
            };
            any = true;
            let Some(slot) = usize::try_from(rsp.id)
                .ok()
                .and_then(|i| inner.slots.get_mut(i))
            else {
                fault(inner, BlkFault::BogusId(rsp.id));
                break;
            };
            let sent = match slot.state {
                SlotState::InFlight { op, .. } | SlotState::Abandoned { op } => op,
                _ => {
                    fault(inner, BlkFault::BogusId(rsp.id));
                    break;
                }
            };
            if rsp.operation != sent {
                fault(
                    inner,
                    BlkFault::WrongOperation {
                        id: rsp.id,
                        got: rsp.operation,
                        sent,
                    },
                );
                break;
            }
            match core::mem::replace(&mut slot.state, SlotState::Done { status: rsp.status }) {
                SlotState::InFlight { waker, .. } => {
                    if let Some(w) = waker {
                        w.wake();
                    }
                }
                _ => {
                    slot.state = SlotState::Free;
                    inner.free.push(rsp.id as u8);
                    if let Some(w) = inner.free_waiters.pop() {
                        w.wake();
                    }
                }
            }
        }
        any
    }

    async fn acquire(&self) -> Result<SlotGuard<'_, 'h, H>, BlockError> {
        poll_fn(|cx| {
            self.complete();
            let Ok(mut inner) = self.inner.try_borrow_mut() else {
                return Poll::Ready(Err(BlockError::Io));
            };
            if inner.fault.is_some() {
                return Poll::Ready(Err(BlockError::Io));
            }
            match inner.free.pop() {
                Some(id) => {
                    inner.slots[usize::from(id)].state = SlotState::Reserved;
                    Poll::Ready(Ok(SlotGuard { dev: self, id }))
                }
                None => {
                    if !inner.free_waiters.iter().any(|w| w.will_wake(cx.waker())) {
                        inner.free_waiters.push(cx.waker().clone());
                    }
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Builds and posts the slot's request; data to write is copied in first.
    fn submit(
        &self,
        id: u8,
        op: u8,
        sector512: u64,
        out: Option<&[u8]>,
        len: usize,
    ) -> Result<(), BlockError> {
        let mut guard = self.inner.try_borrow_mut().map_err(|_| BlockError::Io)?;
        let inner = &mut *guard;
        if inner.fault.is_some() {
            return Err(BlockError::Io);
        }
        let slot = inner.slots.get_mut(usize::from(id)).ok_or(BlockError::Io)?;
        let mut seg = [Segment::default(); SEGMENTS];
        let nsegs = len.div_ceil(PAGE_SIZE);
        for (k, s) in seg.iter_mut().enumerate().take(nsegs) {
            let start = k * PAGE_SIZE;
            let n = (len - start).min(PAGE_SIZE);
            if let Some(src) = out {
                slot.pages[k].write_bytes(0, src.get(start..start + n).ok_or(BlockError::Io)?);
            }
            *s = Segment {
                gref: slot.grefs[k].ok_or(BlockError::Io)?.0,
                first_sect: 0,
                last_sect: (n / 512).saturating_sub(1) as u8,
            };
        }
        let req = Request {
            operation: op,
            nr_segments: nsegs as u8,
            handle: 0,
            id: u64::from(id),
            sector: sector512,
            seg,
        };
        let conn = inner.conn.as_mut().ok_or(BlockError::Io)?;
        conn.ring.queue(&req).map_err(|_| BlockError::Io)?;
        slot.state = SlotState::InFlight { op, waker: None };
        if conn.ring.push_requests() {
            self.hv.evtchn_send(conn.port).map_err(|_| BlockError::Io)?;
        }
        let mut st = self.stats.get();
        st.requests += 1;
        self.stats.set(st);
        Ok(())
    }

    async fn wait(&self, id: u8) -> Result<(), BlockError> {
        let status = poll_fn(|cx| {
            self.complete();
            let Ok(mut inner) = self.inner.try_borrow_mut() else {
                return Poll::Ready(Err(BlockError::Io));
            };
            let faulted = inner.fault.is_some();
            match inner.slots.get_mut(usize::from(id)).map(|s| &mut s.state) {
                Some(SlotState::Done { status }) => Poll::Ready(Ok(*status)),
                Some(SlotState::InFlight { .. }) if faulted => Poll::Ready(Err(BlockError::Io)),
                Some(SlotState::InFlight { waker, .. }) => {
                    if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *waker = Some(cx.waker().clone());
                    }
                    Poll::Pending
                }
                _ => Poll::Ready(Err(BlockError::Io)),
            }
        })
        .await?;
        match status {
            wire::RSP_OKAY => Ok(()),
            wire::RSP_EOPNOTSUPP => Err(BlockError::Unsupported),
            _ => Err(BlockError::Io),
        }
    }

    fn copy_out(&self, id: u8, dst: &mut [u8]) -> Result<(), BlockError> {
        let inner = self.inner.try_borrow().map_err(|_| BlockError::Io)?;
        let slot = inner.slots.get(usize::from(id)).ok_or(BlockError::Io)?;
        for (k, chunk) in dst.chunks_mut(PAGE_SIZE).enumerate() {
            slot.pages
                .get(k)
                .ok_or(BlockError::Io)?
                .read_bytes(0, chunk);
        }
        Ok(())
    }

    fn release(&self, id: u8) {
        let Ok(mut inner) = self.inner.try_borrow_mut() else {
            log::error!("blkfront: slot {id} leaked (driver busy during drop)");
            return;
        };
        let inner = &mut *inner;
        let Some(slot) = inner.slots.get_mut(usize::from(id)) else {
            return;
        };
        match slot.state {
            SlotState::InFlight { op, .. } if inner.conn.is_some() && inner.fault.is_none() => {
                slot.state = SlotState::Abandoned { op };
            }
            // Faulted or disconnected: the back end will not answer; the slot's
            // pages are only reused after reconnection re-grants them.
            _ => {
                slot.state = SlotState::Free;
                inner.free.push(id);
                if let Some(w) = inner.free_waiters.pop() {
                    w.wake();
                }
            }
        }
    }

    async fn transfer(&self, sector: u64, op: u8, mut data: Data<'_>) -> Result<(), BlockError> {
        let per = u64::from(self.geometry.sector_size / 512);
        let total = data.len();
        let mut done = 0;
        while done < total {
            let n = CHUNK.min(total - done);
            let slot = self.acquire().await?;
            let s512 = sector * per + (done / 512) as u64;
            let out = match &data {
                Data::Out(b) => Some(b.get(done..done + n).ok_or(BlockError::Io)?),
                Data::In(_) => None,
            };
            self.submit(slot.id, op, s512, out, n)?;
            self.wait(slot.id).await?;
            if let Data::In(b) = &mut data {
                self.copy_out(slot.id, b.get_mut(done..done + n).ok_or(BlockError::Io)?)?;
            }
            done += n;
        }
        Ok(())
    }
}

impl<'h, H: XenHypervisor> Frontend<'h, H> for BlkFront<'h, H> {
    type Error = BlkSetupError;
    const NAME: &'static str = "blkfront";

    fn device(&self) -> &XenbusDevice {
        &self.dev
    }

    fn is_connected(&mut self) -> bool {
        self.inner.get_mut().conn.is_some()
    }

    fn is_healthy(&mut self) -> bool {
        self.inner.get_mut().fault.is_none()
    }

    fn connect(&mut self, xs: &mut Xenstore<'h, H>) -> Result<(), BlkSetupError> {
        BlkFront::connect(self, xs)
    }

    /// Fails in-flight requests, closes the channel, revokes grants (retrying
    /// later those the back end still holds).
    fn disconnect(&mut self) {
        let inner = self.inner.get_mut();
        inner.fault.get_or_insert(BlkFault::Disconnected);
        wake_all(inner);
        let Some(c) = inner.conn.take() else { return };
        let _ = self.hv.evtchn_close(c.port);
        inner.revoking.push(c.ring.page(), c.gref);
        let buffers = inner.slots.iter_mut();
        let buffers = buffers.flat_map(|s| s.pages.iter_mut().zip(s.grefs.iter_mut()));
        inner
            .revoking
            .revoke(Self::NAME, self.hv, self.gnt, buffers);
    }

    fn retry_revokes(&mut self) {
        let inner = self.inner.get_mut();
        inner.revoking.retry(Self::NAME, self.hv, self.gnt);
    }
}

fn fault(inner: &mut Inner, f: BlkFault) {
    log::error!("{f}; device stopped until reconnected");
    inner.fault = Some(f);
    wake_all(inner);
}

fn wake_all(inner: &mut Inner) {
    for s in &mut inner.slots {
        if let SlotState::InFlight { waker, .. } = &mut s.state
            && let Some(w) = waker.take()
        {
            w.wake();
        }
    }
    for w in inner.free_waiters.drain(..) {
        w.wake();
    }
}

enum Data<'a> {
    Out(&'a [u8]),
    In(&'a mut [u8]),
}

impl Data<'_> {
    fn len(&self) -> usize {
        match self {
            Data::Out(b) => b.len(),
            Data::In(b) => b.len(),
        }
    }
}

struct SlotGuard<'d, 'h, H: XenHypervisor> {
    dev: &'d BlkFront<'h, H>,
    id: u8,
}

impl<H: XenHypervisor> Drop for SlotGuard<'_, '_, H> {
    fn drop(&mut self) {
        self.dev.release(self.id);
    }
}

impl<H: XenHypervisor> BlockDevice for BlkFront<'_, H> {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.check(sector, buf.len(), false)?;
        self.transfer(sector, wire::OP_READ, Data::In(buf)).await
    }

    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.check(sector, buf.len(), true)?;
        self.transfer(sector, wire::OP_WRITE, Data::Out(buf)).await
    }

    async fn flush(&self) -> Result<(), BlockError> {
        let Some(op) = self.flush_op else {
            return Ok(()); // write-through: see the module docs
        };
        let slot = self.acquire().await?;
        self.submit(slot.id, op, 0, None, 0)?;
        let mut st = self.stats.get();
        st.flushes += 1;
        self.stats.set(st);
        self.wait(slot.id).await
    }
}

impl<H: XenHypervisor> Drop for BlkFront<'_, H> {
    fn drop(&mut self) {
        self.disconnect();
        let inner = self.inner.get_mut();
        let buffers = inner
            .slots
            .iter()
            .flat_map(|s| s.pages.iter().zip(&s.grefs));
        inner
            .revoking
            .free_buffers(Self::NAME, &self.dev, self.hv, buffers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::GrantTable;
    use crate::model::{ModelBlkback, ModelXen};
    use alloc::boxed::Box;
    use alloc::rc::Rc;
    use core::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Wake};

    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

    struct Rig {
        hv: &'static ModelXen,
        gnt: &'static SharedGrants,
        bb: Rc<RefCell<ModelBlkback>>,
        xs: Xenstore<'static, ModelXen>,
    }

    fn rig(bytes: usize, sector_size: u32, features: Vec<(&'static str, &'static str)>) -> Rig {
        let hv: &'static ModelXen = Box::leak(Box::new(ModelXen::new()));
        let xsd = hv.start_xenstored();
        let mut b = ModelBlkback::new(xsd, 0, bytes, sector_size);
        b.features = features;
        let bb = Rc::new(RefCell::new(b));
        let b2 = bb.clone();
        hv.add_hook(Box::new(move |hv| b2.borrow_mut().step(hv)));
        let gnt = Box::leak(Box::new(SharedGrants::new(GrantTable::new(hv, 1).unwrap())));
        let mut xs = Xenstore::connect(hv).unwrap();
        xs.set_timeout(1, 20);
        Rig { hv, gnt, bb, xs }
    }

    fn connect(bytes: usize, ss: u32, slots: u8) -> (Rig, BlkFront<'static, ModelXen>) {
        let mut r = rig(bytes, ss, alloc::vec![("feature-flush-cache", "1")]);
        let d = BlkFront::new(r.hv, r.gnt, &mut r.xs, 0, BlkConfig { slots }).unwrap();
        (r, d)
    }

    /// Polls all futures round-robin, letting the back end run between rounds;
    /// panics if they do not finish in a bounded number of rounds.
    fn run_all<T>(
        hv: &ModelXen,
        dev: &BlkFront<'_, ModelXen>,
        mut futs: Vec<Fut<'_, T>>,
    ) -> Vec<T> {
        let waker = Arc::new(Noop).into();
        let mut cx = Context::from_waker(&waker);
        let mut out: Vec<Option<T>> = futs.iter().map(|_| None).collect();
        for _ in 0..10_000 {
            for (i, f) in futs.iter_mut().enumerate() {
                if out[i].is_none()
                    && let Poll::Ready(v) = f.as_mut().poll(&mut cx)
                {
                    out[i] = Some(v);
                }
            }
            if out.iter().all(Option::is_some) {
                return out.into_iter().map(Option::unwrap).collect();
            }
            hv.run_hooks();
            dev.poll();
        }
        panic!("requests did not finish: a hang");
    }

    fn run<T>(hv: &ModelXen, dev: &BlkFront<'_, ModelXen>, f: impl Future<Output = T>) -> T {
        run_all(hv, dev, alloc::vec![Box::pin(f) as Fut<'_, T>])
            .pop()
            .unwrap()
    }

    #[test]
    fn reads_writes_and_flushes_round_trip() {
        for ss in [512u32, 4096] {
            let (r, d) = connect(1 << 20, ss, 4);
            let g = d.geometry();
            assert_eq!(g.sector_size, ss);
            assert_eq!(g.sectors, (1 << 20) / u64::from(ss));
            assert!(!g.read_only);
            assert_eq!(d.flush_op(), Some(wire::OP_FLUSH_DISKCACHE));
            // Larger than one request (44 KiB), unaligned to it.
            let len = 100 * 1024;
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            run(r.hv, &d, d.write(8, &data)).unwrap();
            run(r.hv, &d, d.flush()).unwrap();
            let mut back = alloc::vec![0u8; len];
            run(r.hv, &d, d.read(8, &mut back)).unwrap();
            assert_eq!(back, data);
            let at = 8 * ss as usize;
            assert_eq!(&r.bb.borrow().disk[at..at + len], &data[..]);
            assert_eq!(r.bb.borrow().flushes, 1);
            // The untouched sector 0 reads back the disk's pattern.
            let mut s0 = alloc::vec![0u8; ss as usize];
            run(r.hv, &d, d.read(0, &mut s0)).unwrap();
            assert_eq!(s0, r.bb.borrow().disk[..ss as usize]);
            assert!(
                r.bb.borrow().violations.is_empty(),
                "{:?}",
                r.bb.borrow().violations
            );
            // Shape errors come from the trait's check, before any request.
            let mut odd = [0u8; 100];
            assert!(matches!(
                run(r.hv, &d, d.read(0, &mut odd)),
                Err(BlockError::Misaligned { .. })
            ));
            assert!(matches!(
                run(r.hv, &d, d.read(g.sectors, &mut s0)),
                Err(BlockError::OutOfRange { .. })
            ));
        }
    }

    #[test]
    fn several_requests_share_few_slots() {
        let (r, d) = connect(1 << 20, 512, 2);
        let mut bufs: Vec<Vec<u8>> = (0..6).map(|_| alloc::vec![0u8; 4096]).collect();
        let futs: Vec<Fut<'_, Result<(), BlockError>>> = bufs
            .iter_mut()
            .enumerate()
            .map(|(i, b)| Box::pin(d.read(i as u64 * 8, b)) as Fut<'_, _>)
            .collect();
        for res in run_all(r.hv, &d, futs) {
            res.unwrap();
        }
        for (i, b) in bufs.iter().enumerate() {
            assert_eq!(b[..], r.bb.borrow().disk[i * 4096..(i + 1) * 4096]);
        }
    }

    #[test]
    fn flush_features_and_read_only() {
        let mut r = rig(1 << 16, 512, alloc::vec![]);
        let d = BlkFront::new(r.hv, r.gnt, &mut r.xs, 0, BlkConfig::default()).unwrap();
        assert_eq!(d.flush_op(), None);
        run(r.hv, &d, d.flush()).unwrap();
        assert_eq!(d.stats().flushes, 0, "write-through: nothing sent");

        let mut r = rig(
            1 << 16,
            512,
            alloc::vec![("feature-barrier", "1"), ("info", "4")],
        );
        let d = BlkFront::new(r.hv, r.gnt, &mut r.xs, 0, BlkConfig::default()).unwrap();
        assert_eq!(d.flush_op(), Some(wire::OP_WRITE_BARRIER));
        run(r.hv, &d, d.flush()).unwrap();
        assert_eq!(r.bb.borrow().flushes, 1);
        assert!(d.geometry().read_only);
        assert_eq!(
            run(r.hv, &d, d.write(0, &[0u8; 512])),
            Err(BlockError::ReadOnly)
        );

        // Advertised, then refused: the caller hears it.
        let mut r = rig(1 << 16, 512, alloc::vec![("feature-flush-cache", "1")]);
        let d = BlkFront::new(r.hv, r.gnt, &mut r.xs, 0, BlkConfig::default()).unwrap();
        r.bb.borrow_mut().features.clear();
        assert_eq!(run(r.hv, &d, d.flush()), Err(BlockError::Unsupported));
    }

    #[test]
    fn bad_geometry_and_config_are_refused() {
        for (ss, bytes) in [(1000u32, 1 << 16), (8192, 1 << 16), (4096, 512 * 9)] {
            let mut r = rig(bytes, ss, alloc::vec![]);
            assert!(
                matches!(
                    BlkFront::new(r.hv, r.gnt, &mut r.xs, 0, BlkConfig::default()),
                    Err(BlkSetupError::BadGeometry { .. })
                ),
                "sector size {ss}, {bytes} bytes"
            );
        }
        let mut r = rig(1 << 16, 512, alloc::vec![]);
        assert!(matches!(
            BlkFront::new(r.hv, r.gnt, &mut r.xs, 0, BlkConfig { slots: 0 }),
            Err(BlkSetupError::BadConfig(0))
        ));
    }

    fn poll_once<T>(f: &mut Fut<'_, T>) -> Poll<T> {
        let waker = Arc::new(Noop).into();
        f.as_mut().poll(&mut Context::from_waker(&waker))
    }

    /// Stalls the back end and starts a read of sector 0 into `buf`, polled
    /// once: it is in flight.
    fn stalled_read<'a>(
        r: &Rig,
        d: &'a BlkFront<'_, ModelXen>,
        buf: &'a mut [u8],
    ) -> Fut<'a, Result<(), BlockError>> {
        r.bb.borrow_mut().stall = true;
        let mut f: Fut<'a, _> = Box::pin(d.read(0, buf));
        assert!(poll_once(&mut f).is_pending());
        f
    }

    /// Lets a hostile back end answer the next request with `rsp`.
    fn hostile(
        r: &Rig,
        d: &BlkFront<'_, ModelXen>,
        rsp: impl Fn(Request) -> Response,
    ) -> Result<(), BlockError> {
        let mut buf = alloc::vec![0u8; 512];
        let mut f = stalled_read(r, d, &mut buf);
        {
            let mut bb = r.bb.borrow_mut();
            let ring = bb.ring_mut().unwrap();
            let off = ring.next_request().unwrap();
            let req = Blkif::read_request(&ring.page(), off);
            let o = ring.response_slot();
            Blkif::write_response(&ring.page(), o, &rsp(req));
            ring.push_responses();
        }
        d.poll();
        match poll_once(&mut f) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("request still pending after its response"),
        }
    }

    #[test]
    fn hostile_responses_fail_requests_without_hanging() {
        let (r, d) = connect(1 << 16, 512, 2);
        let e = hostile(&r, &d, |q| Response {
            id: q.id,
            operation: q.operation,
            status: -7,
        });
        assert_eq!(e, Err(BlockError::Io), "unknown status is an I/O error");
        assert!(d.fault().is_none(), "a bad status is not fatal");
        let e = hostile(&r, &d, |q| Response {
            id: q.id + 40,
            operation: q.operation,
            status: 0,
        });
        assert_eq!(e, Err(BlockError::Io));
        assert!(matches!(d.fault(), Some(BlkFault::BogusId(_))));
        // Broken: later requests fail at once.
        let mut b = [0u8; 512];
        assert_eq!(run(r.hv, &d, d.read(0, &mut b)), Err(BlockError::Io));

        let (r, d) = connect(1 << 16, 512, 2);
        let e = hostile(&r, &d, |q| Response {
            id: q.id,
            operation: wire::OP_WRITE,
            status: 0,
        });
        assert_eq!(e, Err(BlockError::Io));
        assert!(matches!(d.fault(), Some(BlkFault::WrongOperation { .. })));

        let (r, d) = connect(1 << 16, 512, 2);
        let mut buf = [0u8; 512];
        let mut f = stalled_read(&r, &d, &mut buf);
        r.bb.borrow_mut().ring_mut().unwrap().set_rsp_prod(77);
        assert_eq!(poll_once(&mut f), Poll::Ready(Err(BlockError::Io)));
        assert!(matches!(
            d.fault(),
            Some(BlkFault::Ring(RingError::ResponsesAhead { .. }))
        ));
    }

    #[test]
    fn dropped_requests_free_their_slot_on_completion() {
        let (r, d) = connect(1 << 16, 512, 1);
        {
            let mut buf = [0u8; 512];
            let _f = stalled_read(&r, &d, &mut buf);
        } // dropped in flight
        r.bb.borrow_mut().stall = false;
        let mut b = [0u8; 512];
        run(r.hv, &d, d.read(1, &mut b)).unwrap();
        assert_eq!(b[..], r.bb.borrow().disk[512..1024]);
        assert_eq!(r.bb.borrow().served, 2);
    }

    #[test]
    fn backend_closing_fails_requests_then_reconnects() {
        let (mut r, mut d) = connect(1 << 16, 512, 2);
        let pages = r.hv.allocated_pages();
        r.bb.borrow_mut().set_state(5);
        assert!(!d.on_backend_change(&mut r.xs).unwrap());
        let mut b = [0u8; 512];
        assert_eq!(run(r.hv, &d, d.read(0, &mut b)), Err(BlockError::Io));
        r.hv.run_hooks();
        assert!(d.on_backend_change(&mut r.xs).unwrap());
        assert_eq!(d.pending_revokes(), 0);
        assert_eq!(
            r.hv.allocated_pages(),
            pages,
            "no page leaked across the reset"
        );
        run(r.hv, &d, d.write(3, &[9u8; 512])).unwrap();
        assert_eq!(r.bb.borrow().disk[3 * 512..4 * 512], [9u8; 512]);
        assert_eq!(d.stats().connects, 2);
        let free = r.gnt.lock().free();
        d.close(&mut r.xs).unwrap();
        assert_eq!(r.hv.allocated_pages(), 0, "close frees every page");
        assert_eq!(r.gnt.lock().free(), free + 1 + 2 * SEGMENTS as u32);
    }
}
