//! netfront: the Xen PV network front end (`io/netif.h`), implementing
//! [`oasis_devices::NetDevice`] over one tx and one rx ring.
//!
//! Receive is rx-copy (`request-rx-copy=1`): every rx buffer is one of our pages,
//! granted writable to the back end once at connect; the back end copies a frame
//! into it and answers with its id, offset and length. Transmit buffers are pages
//! granted read-only once at connect; a frame is copied into one and its request
//! names the grant. Grants stay in place while connected (the back end copies
//! through them with grant-copy, so nothing is mapped between packets), so the data
//! path makes no grant operation and allocates nothing. No scatter-gather, GSO or
//! checksum offload is negotiated (`feature-no-csum-offload=1`): a frame is at most
//! one page and arrives with complete checksums.
//!
//! Hostile back ends: a response for an id we did not post, or ring indices running
//! ahead, mark the device broken (`receive`/`transmit` return `None`, `poll`
//! false) until it is reconnected; an error status or an impossible length or
//! offset drops that frame and counts it. Reconnection: when the back end goes to
//! Closing or Closed, [`NetFront::on_backend_change`] revokes the grants, closes
//! the event channel and writes Closed; when it returns to InitWait, the same call
//! sets up fresh rings and connects again.

use alloc::string::String;
use alloc::vec::Vec;

use oasis_devices::{NetDevice, NetInfo};

use crate::front::{self, Frontend, Revoking};
use crate::grant::{GrantError, GrantRef, GrantTable, SharedGrants};
use crate::hv::{HvError, Port, XenHypervisor};
use crate::page::{PAGE_SIZE, SharedPage};
use crate::ring::{FrontRing, RingError, RingProtocol};
use crate::xenstore::xenbus::{XenbusDevice, XenbusError, XenbusState};
use crate::xenstore::{Tx, Xenstore, XsError};

/// The IP MTU we carry (no jumbo frames without scatter-gather).
pub const MTU: usize = 1500;
/// Largest Ethernet frame we send: MTU plus header.
pub const MAX_FRAME: usize = MTU + 14;
/// Largest frame accepted from the back end (one 802.1Q tag beyond `MAX_FRAME`).
pub const MAX_RX_FRAME: usize = MTU + 18;

/// `netif.h` wire constants.
pub mod wire {
    /// `NETIF_RSP_DROPPED`.
    pub const RSP_DROPPED: i16 = -2;
    /// `NETIF_RSP_ERROR`.
    pub const RSP_ERROR: i16 = -1;
    /// `NETIF_RSP_OKAY`.
    pub const RSP_OKAY: i16 = 0;
    /// `NETIF_RSP_NULL` (answer to an extra-info slot).
    pub const RSP_NULL: i16 = 1;
    /// `NETRXF_more_data`: the frame continues in the next slot.
    pub const RXF_MORE_DATA: u16 = 1 << 2;
    /// `NETRXF_extra_info`: an extra-info slot follows.
    pub const RXF_EXTRA_INFO: u16 = 1 << 3;
    /// `NETTXF_more_data`.
    pub const TXF_MORE_DATA: u16 = 1 << 2;
}

/// `netif_tx_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxRequest {
    /// Grant of the page holding the frame.
    pub gref: u32,
    /// Frame offset in the page.
    pub offset: u16,
    /// `NETTXF_*`.
    pub flags: u16,
    /// Echoed in the response.
    pub id: u16,
    /// Frame length.
    pub size: u16,
}

/// `netif_tx_response`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxResponse {
    /// The request's id.
    pub id: u16,
    /// `NETIF_RSP_*`.
    pub status: i16,
}

/// `netif_rx_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxRequest {
    /// Echoed in the response.
    pub id: u16,
    /// Grant of the page to copy the frame into.
    pub gref: u32,
}

/// `netif_rx_response`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxResponse {
    /// The request's id.
    pub id: u16,
    /// Frame offset in the page.
    pub offset: u16,
    /// `NETRXF_*`.
    pub flags: u16,
    /// Frame length, or a negative `NETIF_RSP_*`.
    pub status: i16,
}

/// The tx ring's encoding (12-byte entries).
pub struct NetTx;

impl RingProtocol for NetTx {
    type Request = TxRequest;
    type Response = TxResponse;
    const ENTRY_SIZE: usize = 12;
    fn write_request(p: &SharedPage, off: usize, r: &TxRequest) {
        p.store_u32(off, r.gref);
        p.store_u32(off + 4, u32::from(r.offset) | (u32::from(r.flags) << 16));
        p.store_u32(off + 8, u32::from(r.id) | (u32::from(r.size) << 16));
    }
    fn read_response(p: &SharedPage, off: usize) -> TxResponse {
        let w = p.load_u32(off);
        TxResponse {
            id: w as u16,
            status: (w >> 16) as u16 as i16,
        }
    }
}

impl NetTx {
    /// The back end's view (for models).
    pub fn read_request(p: &SharedPage, off: usize) -> TxRequest {
        let (w1, w2) = (p.load_u32(off + 4), p.load_u32(off + 8));
        TxRequest {
            gref: p.load_u32(off),
            offset: w1 as u16,
            flags: (w1 >> 16) as u16,
            id: w2 as u16,
            size: (w2 >> 16) as u16,
        }
    }
    /// The back end's view (for models).
    pub fn write_response(p: &SharedPage, off: usize, r: &TxResponse) {
        p.store_u32(off, u32::from(r.id) | (u32::from(r.status as u16) << 16));
    }
}

/// The rx ring's encoding (8-byte entries).
pub struct NetRx;

impl RingProtocol for NetRx {
    type Request = RxRequest;
    type Response = RxResponse;
    const ENTRY_SIZE: usize = 8;
    fn write_request(p: &SharedPage, off: usize, r: &RxRequest) {
        p.store_u32(off, u32::from(r.id));
        p.store_u32(off + 4, r.gref);
    }
    fn read_response(p: &SharedPage, off: usize) -> RxResponse {
        let (w0, w1) = (p.load_u32(off), p.load_u32(off + 4));
        RxResponse {
            id: w0 as u16,
            offset: (w0 >> 16) as u16,
            flags: w1 as u16,
            status: (w1 >> 16) as u16 as i16,
        }
    }
}

impl NetRx {
    /// The back end's view (for models).
    pub fn read_request(p: &SharedPage, off: usize) -> RxRequest {
        RxRequest {
            id: p.load_u32(off) as u16,
            gref: p.load_u32(off + 4),
        }
    }
    /// The back end's view (for models).
    pub fn write_response(p: &SharedPage, off: usize, r: &RxResponse) {
        p.store_u32(off, u32::from(r.id) | (u32::from(r.offset) << 16));
        p.store_u32(
            off + 4,
            u32::from(r.flags) | (u32::from(r.status as u16) << 16),
        );
    }
}

/// Driver settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetConfig {
    /// Receive buffers (pages) posted to the back end, at most 256.
    pub rx_buffers: u16,
    /// Transmit buffers (pages), at most 256.
    pub tx_buffers: u16,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            rx_buffers: 64,
            tx_buffers: 32,
        }
    }
}

/// Frame and misbehaviour counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetStats {
    /// Frames handed to the caller.
    pub rx_frames: u64,
    /// Frames queued for transmission.
    pub tx_frames: u64,
    /// Received frames dropped: error status, bad length or offset, or flags we
    /// never negotiated.
    pub rx_dropped: u64,
    /// Transmitted frames the back end reported as errors or dropped.
    pub tx_errors: u64,
    /// Times the link was (re)connected.
    pub connects: u64,
}

/// What went wrong with netfront.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// The xenbus handshake failed.
    #[error("netfront: {0}")]
    Xenbus(#[from] XenbusError),
    /// A grant operation failed.
    #[error("netfront: {0}")]
    Grant(#[from] GrantError),
    /// A hypercall failed.
    #[error("netfront: {0}")]
    Hypervisor(#[from] HvError),
    /// The back end cannot copy into our buffers.
    #[error("netfront: back end {0} lacks feature-rx-copy")]
    NoRxCopy(String),
    /// The `mac` node is not six colon-separated hex bytes.
    #[error("netfront: mac {0:?} is not a MAC address")]
    BadMac(String),
    /// Buffer counts out of range.
    #[error("netfront: {rx} rx / {tx} tx buffers: each must be 1..=256")]
    BadConfig {
        /// Requested rx buffers.
        rx: u16,
        /// Requested tx buffers.
        tx: u16,
    },
    /// The back end broke the ring protocol.
    #[error("netfront: {0}")]
    Ring(#[from] RingError),
    /// A response for an id that is not in flight.
    #[error("netfront: {ring} response for id {id}, which is not in flight")]
    BogusId {
        /// "tx" or "rx".
        ring: &'static str,
        /// The id.
        id: u16,
    },
    /// The grant table is in use elsewhere (re-entrant call).
    #[error("netfront: grant table busy")]
    GrantTableBusy,
}

impl From<XsError> for NetError {
    fn from(e: XsError) -> Self {
        Self::Xenbus(XenbusError::Xenstore(e))
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(v: &[u8]) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = v.split(|b| *b == b':');
    for m in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 || !p.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let s = core::str::from_utf8(p).ok()?;
        *m = u8::from_str_radix(s, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Link state after [`NetFront::on_backend_change`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Rings connected; frames flow.
    Connected,
    /// Torn down; waiting for the back end to come back.
    Disconnected,
}

/// The outcome of looking at the next rx response.
enum RxNext {
    /// No response waiting.
    Empty,
    /// A frame was dropped (and its buffer reposted).
    Dropped,
    /// Buffer `id` holds a frame at `offset` of `len` bytes.
    Frame(u16, usize, usize),
}

struct Buffer {
    page: SharedPage,
    gref: Option<GrantRef>,
}

/// Rings and grants of one connection.
struct Rings {
    tx: FrontRing<NetTx>,
    rx: FrontRing<NetRx>,
    tx_gref: GrantRef,
    rx_gref: GrantRef,
    port: Port,
}

/// The netfront driver.
pub struct NetFront<'h, H: XenHypervisor> {
    hv: &'h H,
    gnt: &'h SharedGrants,
    dev: XenbusDevice,
    mac: [u8; 6],
    rings: Option<Rings>,
    rx_bufs: Vec<Buffer>,
    rx_posted: Vec<bool>,
    tx_bufs: Vec<Buffer>,
    tx_in_flight: Vec<bool>,
    tx_free: Vec<u16>,
    /// Pages whose grant the back end still held at disconnect.
    revoking: Revoking,
    scratch: Vec<u8>,
    broken: Option<NetError>,
    stats: NetStats,
}

impl<'h, H: XenHypervisor> NetFront<'h, H> {
    /// Probes `device/vif/INDEX`, reads the MAC, and connects to the back end.
    pub fn new(
        hv: &'h H,
        gnt: &'h SharedGrants,
        xs: &mut Xenstore<'h, H>,
        index: u32,
        cfg: NetConfig,
    ) -> Result<Self, NetError> {
        if !(1..=256).contains(&cfg.rx_buffers) || !(1..=256).contains(&cfg.tx_buffers) {
            return Err(NetError::BadConfig {
                rx: cfg.rx_buffers,
                tx: cfg.tx_buffers,
            });
        }
        let dev = XenbusDevice::probe(xs, "vif", index)?;
        let mac_path = alloc::format!("{}/mac", dev.frontend);
        let raw = xs.read(Tx::NONE, &mac_path)?;
        let mac = parse_mac(&raw)
            .ok_or_else(|| NetError::BadMac(String::from_utf8_lossy(&raw).into_owned()))?;
        let mut me = Self {
            hv,
            gnt,
            dev,
            mac,
            rings: None,
            rx_bufs: Vec::with_capacity(usize::from(cfg.rx_buffers)),
            rx_posted: alloc::vec![false; usize::from(cfg.rx_buffers)],
            tx_bufs: Vec::with_capacity(usize::from(cfg.tx_buffers)),
            tx_in_flight: alloc::vec![false; usize::from(cfg.tx_buffers)],
            tx_free: Vec::with_capacity(usize::from(cfg.tx_buffers)),
            revoking: Revoking::default(),
            scratch: alloc::vec![0u8; PAGE_SIZE],
            broken: None,
            stats: NetStats::default(),
        };
        for _ in 0..cfg.rx_buffers {
            let page = hv.alloc_page()?;
            me.rx_bufs.push(Buffer { page, gref: None });
        }
        for _ in 0..cfg.tx_buffers {
            let page = hv.alloc_page()?;
            me.tx_bufs.push(Buffer { page, gref: None });
        }
        front::start(&mut me, xs)?;
        Ok(me)
    }

    /// The xenbus device.
    pub fn device(&self) -> &XenbusDevice {
        &self.dev
    }

    /// Counters.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Why the device stopped, if it did.
    pub fn broken(&self) -> Option<&NetError> {
        self.broken.as_ref()
    }

    /// The event channel of the current connection (bind it to [`NetDevice::poll`]).
    pub fn port(&self) -> Option<Port> {
        self.rings.as_ref().map(|r| r.port)
    }

    fn grants(&self) -> Result<spin::MutexGuard<'h, GrantTable>, NetError> {
        self.gnt.try_lock().ok_or(NetError::GrantTableBusy)
    }

    /// Sets up rings and grants, publishes them, and waits for Connected.
    fn connect(&mut self, xs: &mut Xenstore<'h, H>) -> Result<(), NetError> {
        if !self.dev.backend_feature(xs, "feature-rx-copy")? {
            return Err(NetError::NoRxCopy(self.dev.backend.clone()));
        }
        let backend = self.dev.backend_id;
        let mut gnt = self.grants()?;
        let (tx, tx_gref) = front::new_ring::<NetTx, H, NetError>(self.hv, &mut gnt, backend)?;
        let (rx, rx_gref) = front::new_ring::<NetRx, H, NetError>(self.hv, &mut gnt, backend)?;
        let port = self.hv.evtchn_alloc_unbound(backend)?;
        self.rings = Some(Rings {
            tx,
            rx,
            tx_gref,
            rx_gref,
            port,
        });
        let rx_bufs = self.rx_bufs.iter_mut().map(|b| (&b.page, &mut b.gref));
        front::grant_buffers(&mut gnt, backend, false, rx_bufs)?;
        self.rx_posted.fill(false);
        let tx_bufs = self.tx_bufs.iter_mut().map(|b| (&b.page, &mut b.gref));
        front::grant_buffers(&mut gnt, backend, true, tx_bufs)?;
        drop(gnt);
        self.tx_in_flight.fill(false);
        self.tx_free.clear();
        self.tx_free.extend(0..self.tx_bufs.len() as u16);
        let num = |n: u32| alloc::format!("{n}");
        let (tx_ref, rx_ref, channel) = (num(tx_gref.0), num(rx_gref.0), num(port.0));
        self.dev.publish(
            xs,
            &[
                ("tx-ring-ref", tx_ref.as_bytes()),
                ("rx-ring-ref", rx_ref.as_bytes()),
                ("event-channel", channel.as_bytes()),
                ("request-rx-copy", b"1"),
                ("feature-rx-notify", b"1"),
                ("feature-sg", b"0"),
                ("feature-gso-tcpv4", b"0"),
                ("feature-no-csum-offload", b"1"),
            ],
        )?;
        self.dev.switch_state(xs, XenbusState::Connected)?;
        self.dev.wait_for_state(xs, XenbusState::Connected)?;
        self.broken = None;
        for i in 0..self.rx_bufs.len() {
            self.post_rx(i as u16)?;
        }
        self.flush_requests()?;
        self.stats.connects += 1;
        log::info!(
            "netfront {}: connected to {} (domain {}), mac {:02x?}",
            self.dev.frontend,
            self.dev.backend,
            self.dev.backend_id,
            self.mac
        );
        Ok(())
    }

    /// Grants still held by the back end after a disconnect (their pages are not
    /// reused until revoked).
    pub fn pending_revokes(&self) -> usize {
        self.revoking.len()
    }

    /// Reacts to a change of the back end's state (call when a watch on its
    /// `state` fires, from task context): Closing/Closed tears the connection down
    /// and writes Closed; InitWait while disconnected connects again.
    pub fn on_backend_change(&mut self, xs: &mut Xenstore<'h, H>) -> Result<LinkState, NetError> {
        Ok(if front::on_backend_change(self, xs)? {
            LinkState::Connected
        } else {
            LinkState::Disconnected
        })
    }

    /// Closes the device cleanly: writes Closing, waits (bounded) for the back
    /// end to let go of the rings (Closed, or back to InitWait), revokes every
    /// grant and writes Closed. Every page goes back to the platform unless the
    /// back end still holds it.
    pub fn close(mut self, xs: &mut Xenstore<'h, H>) -> Result<(), NetError> {
        front::close(&mut self, xs)
    }

    fn post_rx(&mut self, id: u16) -> Result<(), NetError> {
        let i = usize::from(id);
        let gref = self
            .rx_bufs
            .get(i)
            .and_then(|b| b.gref)
            .ok_or(NetError::BogusId { ring: "rx", id })?;
        let r = self
            .rings
            .as_mut()
            .ok_or(NetError::BogusId { ring: "rx", id })?;
        r.rx.queue(&RxRequest { id, gref: gref.0 })?;
        self.rx_posted[i] = true;
        Ok(())
    }

    /// Publishes queued requests on both rings and notifies if asked.
    fn flush_requests(&mut self) -> Result<(), NetError> {
        let Some(r) = self.rings.as_mut() else {
            return Ok(());
        };
        let a = r.tx.push_requests();
        let b = r.rx.push_requests();
        if a || b {
            self.hv.evtchn_send(r.port)?;
        }
        Ok(())
    }

    fn fail(&mut self, e: NetError) {
        log::error!(
            "netfront {}: {e}; device stopped until reconnected",
            self.dev.frontend
        );
        self.broken = Some(e);
    }

    /// Reclaims completed transmit buffers.
    fn reap_tx(&mut self) -> Result<(), NetError> {
        loop {
            let Some(r) = self.rings.as_mut() else {
                return Ok(());
            };
            let Some(rsp) = r.tx.take_response()? else {
                if r.tx.final_check_for_responses()? {
                    continue;
                }
                return Ok(());
            };
            settle(&mut self.tx_in_flight, "tx", rsp.id)?;
            self.tx_free.push(rsp.id);
            if rsp.status != wire::RSP_OKAY {
                self.stats.tx_errors += 1;
            }
        }
    }

    /// The next rx response's frame, validated: `(id, offset, len)`, or `None` for
    /// a dropped frame (buffer reposted). Errors are fatal.
    fn next_rx(&mut self) -> Result<RxNext, NetError> {
        let Some(r) = self.rings.as_mut() else {
            return Ok(RxNext::Empty);
        };
        let Some(rsp) = r.rx.take_response()? else {
            return Ok(RxNext::Empty);
        };
        settle(&mut self.rx_posted, "rx", rsp.id)?;
        let (off, len) = (usize::from(rsp.offset), rsp.status);
        let ok = len > 0
            && (len as usize) <= MAX_RX_FRAME
            && off + len as usize <= PAGE_SIZE
            && rsp.flags & (wire::RXF_MORE_DATA | wire::RXF_EXTRA_INFO) == 0;
        if !ok {
            self.stats.rx_dropped += 1;
            self.post_rx(rsp.id)?;
            return Ok(RxNext::Dropped);
        }
        Ok(RxNext::Frame(rsp.id, off, len as usize))
    }
}

/// Marks buffer `id` of `ring` no longer with the back end; a response for a
/// buffer it does not hold is [`NetError::BogusId`].
fn settle(outstanding: &mut [bool], ring: &'static str, id: u16) -> Result<(), NetError> {
    match outstanding.get_mut(usize::from(id)) {
        Some(out) if *out => {
            *out = false;
            Ok(())
        }
        _ => Err(NetError::BogusId { ring, id }),
    }
}

impl<'h, H: XenHypervisor> Frontend<'h, H> for NetFront<'h, H> {
    type Error = NetError;
    const NAME: &'static str = "netfront";

    fn device(&self) -> &XenbusDevice {
        &self.dev
    }

    fn is_connected(&mut self) -> bool {
        self.rings.is_some()
    }

    fn is_healthy(&mut self) -> bool {
        self.broken.is_none()
    }

    fn connect(&mut self, xs: &mut Xenstore<'h, H>) -> Result<(), NetError> {
        NetFront::connect(self, xs)
    }

    /// Closes the event channel and revokes every grant. Ring pages whose grant
    /// the back end still holds, and buffers likewise (replaced by fresh pages),
    /// wait in a revoke list that later calls retry; they are freed only once
    /// revoked.
    fn disconnect(&mut self) {
        let Some(r) = self.rings.take() else { return };
        let _ = self.hv.evtchn_close(r.port);
        self.revoking.push(r.tx.page(), r.tx_gref);
        self.revoking.push(r.rx.page(), r.rx_gref);
        let buffers = self.rx_bufs.iter_mut().chain(self.tx_bufs.iter_mut());
        let buffers = buffers.map(|b| (&mut b.page, &mut b.gref));
        self.revoking.revoke(Self::NAME, self.hv, self.gnt, buffers);
        self.rx_posted.fill(false);
        self.tx_in_flight.fill(false);
        self.tx_free.clear();
    }

    fn retry_revokes(&mut self) {
        self.revoking.retry(Self::NAME, self.hv, self.gnt);
    }
}

impl<H: XenHypervisor> NetDevice for NetFront<'_, H> {
    fn info(&self) -> NetInfo {
        NetInfo {
            mac: self.mac,
            mtu: MTU,
        }
    }

    fn receive<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        if self.broken.is_some() {
            return None;
        }
        // Dropped frames are skipped; at most a ring's worth per call.
        for _ in 0..=256 {
            match self.next_rx() {
                Ok(RxNext::Empty) => return None,
                Ok(RxNext::Dropped) => continue,
                Ok(RxNext::Frame(id, off, len)) => {
                    let page = self.rx_bufs[usize::from(id)].page;
                    page.read_bytes(off, &mut self.scratch[..len]);
                    if let Err(e) = self.post_rx(id) {
                        self.fail(e);
                        return None;
                    }
                    self.stats.rx_frames += 1;
                    return Some(f(&mut self.scratch[..len]));
                }
                Err(e) => {
                    self.fail(e);
                    return None;
                }
            }
        }
        None
    }

    fn can_transmit(&self) -> bool {
        self.broken.is_none()
            && !self.tx_free.is_empty()
            && self
                .rings
                .as_ref()
                .is_some_and(|r| r.tx.free_requests() > 0)
    }

    fn transmit<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        if len == 0 || len > MAX_FRAME || self.broken.is_some() {
            return None;
        }
        if self.tx_free.is_empty()
            && let Err(e) = self.reap_tx()
        {
            self.fail(e);
            return None;
        }
        if !self.can_transmit() {
            return None;
        }
        let id = *self.tx_free.last()?;
        let i = usize::from(id);
        let gref = self.tx_bufs.get(i)?.gref?.0;
        self.tx_free.pop();
        let out = f(&mut self.scratch[..len]);
        self.tx_bufs[i].page.write_bytes(0, &self.scratch[..len]);
        let req = TxRequest {
            gref,
            offset: 0,
            flags: 0,
            id,
            size: len as u16,
        };
        let r = self.rings.as_mut()?;
        if let Err(e) = r.tx.queue(&req) {
            self.tx_free.push(id);
            self.fail(e.into());
            return None;
        }
        self.tx_in_flight[i] = true;
        self.stats.tx_frames += 1;
        if self.tx_free.is_empty()
            && let Err(e) = self.flush_requests()
        {
            self.fail(e);
        }
        Some(out)
    }

    fn poll(&mut self) -> bool {
        if self.broken.is_some() {
            return false;
        }
        let r = self.reap_tx().and_then(|()| self.flush_requests());
        if let Err(e) = r {
            self.fail(e);
            return false;
        }
        let Some(rings) = self.rings.as_mut() else {
            return false;
        };
        match rings.rx.final_check_for_responses() {
            Ok(more) => more,
            Err(e) => {
                self.fail(e.into());
                false
            }
        }
    }
}

impl<H: XenHypervisor> Drop for NetFront<'_, H> {
    fn drop(&mut self) {
        self.disconnect();
        let buffers = self.rx_bufs.iter().chain(&self.tx_bufs);
        let buffers = buffers.map(|b| (&b.page, &b.gref));
        self.revoking
            .free_buffers(Self::NAME, &self.dev, self.hv, buffers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelNetback, ModelXen};
    use alloc::boxed::Box;
    use alloc::rc::Rc;
    use core::cell::RefCell;

    struct Rig {
        hv: &'static ModelXen,
        gnt: &'static SharedGrants,
        nb: Rc<RefCell<ModelNetback>>,
        xs: Xenstore<'static, ModelXen>,
    }

    fn rig(mac: &str, rx_copy: bool) -> Rig {
        let hv: &'static ModelXen = Box::leak(Box::new(ModelXen::new()));
        let xsd = hv.start_xenstored();
        let nb = Rc::new(RefCell::new(ModelNetback::new(xsd, 0, mac)));
        nb.borrow_mut().rx_copy = rx_copy;
        let n = nb.clone();
        hv.add_hook(Box::new(move |hv| n.borrow_mut().step(hv)));
        let gnt = Box::leak(Box::new(SharedGrants::new(GrantTable::new(hv, 1).unwrap())));
        let mut xs = Xenstore::connect(hv).unwrap();
        xs.set_timeout(1, 20);
        Rig { hv, gnt, nb, xs }
    }

    fn connect(cfg: NetConfig) -> (Rig, NetFront<'static, ModelXen>) {
        let mut r = rig("00:16:3e:01:02:03", true);
        let nf = NetFront::new(r.hv, r.gnt, &mut r.xs, 0, cfg).unwrap();
        (r, nf)
    }

    fn frame(n: u32, len: usize) -> Vec<u8> {
        (0..len).map(|i| (i as u32 ^ n) as u8).collect()
    }

    #[test]
    fn connects_and_moves_frames_both_ways() {
        let cfg = NetConfig {
            rx_buffers: 8,
            tx_buffers: 4,
        };
        let (r, mut nf) = connect(cfg);
        assert_eq!(nf.info().mac, [0, 0x16, 0x3e, 1, 2, 3]);
        assert_eq!(r.nb.borrow().state(), 4);
        assert!(
            r.nb.borrow().violations.is_empty(),
            "{:?}",
            r.nb.borrow().violations
        );
        // Many more frames than buffers, in both directions, with odd lengths.
        let mut sent = Vec::new();
        let mut got = Vec::new();
        for n in 0..300u32 {
            let len = 14 + (n as usize * 37) % (MAX_FRAME - 13);
            let f = frame(n, len);
            while !nf.can_transmit() {
                nf.poll();
                r.hv.run_hooks();
            }
            nf.transmit(len, |b| b.copy_from_slice(&f)).unwrap();
            sent.push(f);
            r.nb.borrow_mut().to_guest.push_back(frame(n + 1000, len));
            nf.poll();
            r.hv.run_hooks();
            while let Some(v) = nf.receive(|b| b.to_vec()) {
                got.push(v);
            }
        }
        for _ in 0..10 {
            nf.poll();
            r.hv.run_hooks();
            while let Some(v) = nf.receive(|b| b.to_vec()) {
                got.push(v);
            }
        }
        assert_eq!(r.nb.borrow().from_guest, sent);
        let want: Vec<_> = (0..300u32)
            .map(|n| frame(n + 1000, 14 + (n as usize * 37) % (MAX_FRAME - 13)))
            .collect();
        assert_eq!(got, want);
        assert!(r.nb.borrow().violations.is_empty());
        let s = nf.stats();
        assert_eq!(
            (s.rx_frames, s.tx_frames, s.rx_dropped, s.tx_errors),
            (300, 300, 0, 0)
        );
        assert!(
            nf.transmit(MAX_FRAME + 1, |_| ()).is_none(),
            "oversized frame"
        );
        assert!(nf.transmit(0, |_| ()).is_none());
    }

    #[test]
    fn tx_pool_runs_dry_then_recovers() {
        let (r, mut nf) = connect(NetConfig {
            rx_buffers: 2,
            tx_buffers: 3,
        });
        for _ in 0..3 {
            assert!(nf.transmit(60, |b| b.fill(1)).is_some());
        }
        assert!(!nf.can_transmit());
        assert!(nf.transmit(60, |_| ()).is_none());
        nf.poll();
        r.hv.run_hooks();
        nf.poll();
        assert!(nf.can_transmit());
        assert_eq!(r.nb.borrow().from_guest.len(), 3);
    }

    #[test]
    fn setup_errors_are_clear() {
        let mut r = rig("00:16:3e:01:02:03", false);
        assert!(matches!(
            NetFront::new(r.hv, r.gnt, &mut r.xs, 0, NetConfig::default()),
            Err(NetError::NoRxCopy(_))
        ));
        let mut r = rig("00:16:3e:01:02", true);
        assert!(matches!(
            NetFront::new(r.hv, r.gnt, &mut r.xs, 0, NetConfig::default()),
            Err(NetError::BadMac(_))
        ));
        let mut r = rig("00:16:3e:01:02:03", true);
        assert!(matches!(
            NetFront::new(
                r.hv,
                r.gnt,
                &mut r.xs,
                0,
                NetConfig {
                    rx_buffers: 0,
                    tx_buffers: 1
                }
            ),
            Err(NetError::BadConfig { .. })
        ));
        assert!(
            NetFront::new(r.hv, r.gnt, &mut r.xs, 3, NetConfig::default()).is_err(),
            "no such vif"
        );
        assert_eq!(
            parse_mac(b"aa:bb:cc:dd:ee:ff"),
            Some([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff])
        );
        for bad in [
            &b"aa:bb:cc:dd:ee:ff:00"[..],
            b"aa:bb:cc:dd:ee:f",
            b"aa-bb-cc-dd-ee-ff",
            b"+a:bb:cc:dd:ee:ff",
            b"",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad:?}");
        }
    }

    /// Writes one raw rx response as a hostile back end would.
    fn hostile_rx(r: &Rig, rsp: RxResponse) {
        let mut nb = r.nb.borrow_mut();
        let (_, rx) = nb.rings_mut().unwrap();
        while rx.next_request().is_some() {}
        let off = rx.response_slot();
        NetRx::write_response(&rx.page(), off, &rsp);
        rx.push_responses();
    }

    #[test]
    fn bad_rx_lengths_drop_the_frame_and_keep_the_device() {
        let (r, mut nf) = connect(NetConfig {
            rx_buffers: 4,
            tx_buffers: 2,
        });
        let bad = [
            (0u16, 0u16, 0i16),
            (0, 0, wire::RSP_ERROR),
            (0, 0, (MAX_RX_FRAME + 1) as i16),
            (4000, 0, 200),
            (0, wire::RXF_MORE_DATA, 60),
            (0, wire::RXF_EXTRA_INFO, 60),
        ];
        for (i, (offset, flags, status)) in bad.into_iter().enumerate() {
            hostile_rx(
                &r,
                RxResponse {
                    id: (i % 4) as u16,
                    offset,
                    flags,
                    status,
                },
            );
            assert!(nf.poll());
            assert_eq!(nf.receive(|b| b.len()), None);
            assert!(nf.broken().is_none());
            nf.poll();
        }
        assert_eq!(nf.stats().rx_dropped, bad.len() as u64);
        // Still works.
        r.nb.borrow_mut().to_guest.push_back(frame(1, 64));
        nf.poll();
        r.hv.run_hooks();
        assert_eq!(nf.receive(|b| b.to_vec()), Some(frame(1, 64)));
    }

    #[test]
    fn bogus_ids_and_runaway_indices_stop_the_device() {
        let (r, mut nf) = connect(NetConfig {
            rx_buffers: 4,
            tx_buffers: 2,
        });
        hostile_rx(
            &r,
            RxResponse {
                id: 9,
                offset: 0,
                flags: 0,
                status: 60,
            },
        );
        assert_eq!(nf.receive(|b| b.len()), None);
        assert!(matches!(
            nf.broken(),
            Some(NetError::BogusId { ring: "rx", id: 9 })
        ));
        assert!(!nf.poll());
        assert!(!nf.can_transmit());

        let (r, mut nf) = connect(NetConfig {
            rx_buffers: 4,
            tx_buffers: 2,
        });
        // A tx response for an id never sent.
        {
            let mut nb = r.nb.borrow_mut();
            let (tx, _) = nb.rings_mut().unwrap();
            let off = tx.response_slot();
            NetTx::write_response(&tx.page(), off, &TxResponse { id: 1, status: 0 });
            tx.push_responses();
        }
        assert!(!nf.poll());
        assert!(matches!(
            nf.broken(),
            Some(NetError::Ring(_)) | Some(NetError::BogusId { .. })
        ));

        let (r, mut nf) = connect(NetConfig {
            rx_buffers: 4,
            tx_buffers: 2,
        });
        r.nb.borrow_mut().rings_mut().unwrap().1.set_rsp_prod(1000);
        assert_eq!(nf.receive(|b| b.len()), None);
        assert!(matches!(
            nf.broken(),
            Some(NetError::Ring(RingError::ResponsesAhead { .. }))
        ));

        let (r, mut nf) = connect(NetConfig {
            rx_buffers: 4,
            tx_buffers: 2,
        });
        nf.transmit(60, |_| ()).unwrap();
        nf.poll();
        {
            let mut nb = r.nb.borrow_mut();
            let (tx, _) = nb.rings_mut().unwrap();
            while tx.next_request().is_some() {}
            for _ in 0..2 {
                let off = tx.response_slot();
                NetTx::write_response(&tx.page(), off, &TxResponse { id: 0, status: 0 });
            }
            tx.push_responses();
        }
        assert!(!nf.poll(), "two responses for one request");
        assert!(nf.broken().is_some());
    }

    #[test]
    fn backend_closing_resets_and_reconnects() {
        let (mut r, mut nf) = connect(NetConfig {
            rx_buffers: 4,
            tx_buffers: 2,
        });
        let pages = r.hv.allocated_pages();
        let free = r.gnt.lock().free();
        r.nb.borrow_mut().set_state(5);
        assert_eq!(
            nf.on_backend_change(&mut r.xs).unwrap(),
            LinkState::Disconnected
        );
        assert_eq!(
            nf.pending_revokes(),
            2,
            "ring grants were still held by the closing back end"
        );
        assert_eq!(r.xs.read(Tx::NONE, "device/vif/0/state").unwrap(), b"6");
        assert!(nf.receive(|_| ()).is_none());
        assert!(!nf.can_transmit());
        assert!(!nf.poll());
        // The back end sees Closed, unmaps, and comes back in InitWait.
        r.hv.run_hooks();
        assert_eq!(r.nb.borrow().state(), 2);
        assert_eq!(
            nf.on_backend_change(&mut r.xs).unwrap(),
            LinkState::Connected
        );
        assert_eq!(nf.pending_revokes(), 0);
        assert_eq!(nf.stats().connects, 2);
        assert_eq!(
            r.hv.allocated_pages(),
            pages,
            "no page leaked across the reset"
        );
        assert_eq!(
            r.gnt.lock().free(),
            free,
            "no grant leaked across the reset"
        );
        nf.transmit(60, |b| b.fill(7)).unwrap();
        r.nb.borrow_mut().to_guest.push_back(frame(5, 100));
        nf.poll();
        r.hv.run_hooks();
        assert_eq!(nf.receive(|b| b.to_vec()), Some(frame(5, 100)));
        assert_eq!(r.nb.borrow().from_guest, [alloc::vec![7u8; 60]]);
        nf.close(&mut r.xs).unwrap();
        assert_eq!(r.hv.allocated_pages(), 0, "close frees every page");
        let g = r.gnt.lock();
        assert_eq!(g.free(), g.capacity(), "and revokes every grant");
        drop(g);
        assert_eq!(r.xs.read(Tx::NONE, "device/vif/0/state").unwrap(), b"6");
    }
}
