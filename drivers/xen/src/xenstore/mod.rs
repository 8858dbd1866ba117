//! A xenstore client over the shared xenstore ring (`xenstore_domain_interface`):
//! requests and replies as `xsd_sockmsg` messages through two 1024-byte byte rings.
//!
//! Page layout: `req[1024]`, `rsp[1024]`, then `req_cons`, `req_prod`, `rsp_cons`,
//! `rsp_prod` (32-bit each). We produce requests and consume replies and watch
//! events; xenstored does the rest and is not trusted to keep the indices sane:
//! an index pair more than 1024 apart is [`XsError::RingCorrupt`], and the client
//! refuses further use. Every blocking wait is bounded ([`Xenstore::set_timeout`]).
//!
//! This is the control path (device setup and reconnection): it allocates (reply
//! payloads, queued watch events) and blocks through
//! [`XenHypervisor::wait_event`].

pub mod wire;

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use crate::hv::{HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN, HvError, Port, XenHypervisor};
use crate::page::{SharedPage, mb, rmb, wmb};
use wire::{
    ABS_PATH_MAX, HEADER_LEN, Header, MsgType, PAYLOAD_MAX, WatchEvent, WireError, XsErrno,
};

/// Bytes in each direction's ring.
pub const RING_SIZE: u32 = 1024;
/// Offset of the request ring.
pub const REQ: usize = 0;
/// Offset of the reply ring.
pub const RSP: usize = 1024;
/// Offset of `req_cons`.
pub const REQ_CONS: usize = 2048;
/// Offset of `req_prod`.
pub const REQ_PROD: usize = 2052;
/// Offset of `rsp_cons`.
pub const RSP_CONS: usize = 2056;
/// Offset of `rsp_prod`.
pub const RSP_PROD: usize = 2060;

/// Watch events kept before the oldest is dropped.
const MAX_QUEUED_EVENTS: usize = 64;
/// Unrelated messages tolerated while waiting for one reply.
const MAX_STRAY_REPLIES: u32 = 64;
/// Transaction attempts before [`Xenstore::transaction`] gives up on `EAGAIN`.
pub const MAX_TX_ATTEMPTS: u32 = 16;

/// A transaction id; [`Tx::NONE`] outside a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tx(pub u32);

impl Tx {
    /// No transaction.
    pub const NONE: Tx = Tx(0);
}

/// What went wrong talking to xenstored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XsError {
    /// xenstored answered with an error (`ENOENT`, `EAGAIN`, …).
    #[error("xenstore {op:?}: {errno}")]
    Daemon {
        /// The request.
        op: MsgType,
        /// The error name.
        errno: XsErrno,
    },
    /// A reply or event was malformed.
    #[error("xenstore reply: {0}")]
    Wire(#[from] WireError),
    /// The ring indices are inconsistent; the connection is unusable.
    #[error("xenstore ring corrupt: {what} prod {prod} cons {cons} are more than 1024 apart")]
    RingCorrupt {
        /// Which ring.
        what: &'static str,
        /// Producer index.
        prod: u32,
        /// Consumer index.
        cons: u32,
    },
    /// No progress within the timeout.
    #[error("xenstore did not answer within {waits} waits")]
    Timeout {
        /// Waits made.
        waits: u32,
    },
    /// A reply to another request, or of another type.
    #[error("xenstore sent {got_kind} for request {got_id} while we waited for {want:?} {want_id}")]
    UnexpectedReply {
        /// Reply type received.
        got_kind: u32,
        /// Its request id.
        got_id: u32,
        /// Request type sent.
        want: MsgType,
        /// Its id.
        want_id: u32,
    },
    /// A path with a NUL or longer than `XENSTORE_ABS_PATH_MAX`, or a request over
    /// `XENSTORE_PAYLOAD_MAX`.
    #[error("xenstore request too long or with a NUL inside ({len} bytes)")]
    BadRequest {
        /// Payload length.
        len: usize,
    },
    /// A value that should be text is not UTF-8.
    #[error("xenstore value at {path} is not UTF-8")]
    NotUtf8 {
        /// The node.
        path: String,
    },
    /// A hypercall failed.
    #[error("xenstore: {0}")]
    Hypervisor(#[from] HvError),
    /// An earlier corruption made the connection unusable.
    #[error("xenstore connection is broken by an earlier error")]
    Broken,
}

impl XsError {
    /// Whether this is xenstored's `errno` (e.g. `EAGAIN` to retry a transaction).
    pub fn is(&self, errno: XsErrno) -> bool {
        matches!(self, Self::Daemon { errno: e, .. } if *e == errno)
    }
}

/// The client.
pub struct Xenstore<'h, H: XenHypervisor> {
    hv: &'h H,
    page: SharedPage,
    port: Port,
    req_prod: u32,
    rsp_cons: u32,
    next_id: u32,
    /// Message being assembled: header, then payload.
    buf: Vec<u8>,
    have: usize,
    events: VecDeque<WatchEvent>,
    dropped_events: u64,
    timeout_ns: u64,
    max_waits: u32,
    broken: bool,
}

impl<'h, H: XenHypervisor> Xenstore<'h, H> {
    /// Connects to the ring the toolstack set up (`HVM_PARAM_STORE_PFN`/`_EVTCHN`).
    pub fn connect(hv: &'h H) -> Result<Self, XsError> {
        let pfn = hv.hvm_param(HVM_PARAM_STORE_PFN)?;
        let port = hv.hvm_param(HVM_PARAM_STORE_EVTCHN)?;
        let port = u32::try_from(port).map_err(|_| HvError::BadFrame { pfn: port })?;
        Self::new(hv, hv.page(pfn)?, Port(port))
    }

    /// A client over a ring page and its event channel.
    pub fn new(hv: &'h H, page: SharedPage, port: Port) -> Result<Self, XsError> {
        let req_prod = page.load_u32(REQ_PROD);
        let rsp_cons = page.load_u32(RSP_CONS);
        let xs = Self {
            hv,
            page,
            port,
            req_prod,
            rsp_cons,
            next_id: 1,
            buf: alloc::vec![0u8; HEADER_LEN + PAYLOAD_MAX],
            have: 0,
            events: VecDeque::new(),
            dropped_events: 0,
            timeout_ns: 1_000_000_000,
            max_waits: 30,
            broken: false,
        };
        xs.check(REQ_CONS, req_prod, "request")?;
        xs.check(RSP_PROD, rsp_cons, "reply")?;
        Ok(xs)
    }

    /// Bounds every blocking wait: at most `max_waits` waits of `timeout_ns`
    /// without progress.
    pub fn set_timeout(&mut self, timeout_ns: u64, max_waits: u32) {
        self.timeout_ns = timeout_ns;
        self.max_waits = max_waits.max(1);
    }

    /// Watch events dropped because the queue was full.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    /// The hypervisor handle.
    pub fn hv(&self) -> &'h H {
        self.hv
    }

    /// Loads the peer's index at `off` and checks it against ours.
    fn check(&self, off: usize, ours: u32, what: &'static str) -> Result<u32, XsError> {
        let theirs = self.page.load_u32(off);
        let (prod, cons) = if off == REQ_CONS {
            (ours, theirs)
        } else {
            (theirs, ours)
        };
        if prod.wrapping_sub(cons) > RING_SIZE {
            return Err(XsError::RingCorrupt { what, prod, cons });
        }
        Ok(theirs)
    }

    fn fail<T>(&mut self, e: XsError) -> Result<T, XsError> {
        if matches!(e, XsError::RingCorrupt { .. } | XsError::Wire(_)) {
            self.broken = true;
        }
        Err(e)
    }

    fn notify(&self) -> Result<(), XsError> {
        Ok(self.hv.evtchn_send(self.port)?)
    }

    /// Writes what fits of `data`; returns the bytes written.
    fn write_some(&mut self, data: &[u8]) -> Result<usize, XsError> {
        let cons = self.check(REQ_CONS, self.req_prod, "request")?;
        mb(); // read req_cons before overwriting the space it frees
        let used = self.req_prod.wrapping_sub(cons);
        let at = self.req_prod % RING_SIZE;
        let n = data
            .len()
            .min((RING_SIZE - used) as usize)
            .min((RING_SIZE - at) as usize);
        if n == 0 {
            return Ok(0);
        }
        self.page.write_bytes(REQ + at as usize, &data[..n]);
        wmb(); // bytes before the index that publishes them
        self.req_prod = self.req_prod.wrapping_add(n as u32);
        self.page.store_u32(REQ_PROD, self.req_prod);
        Ok(n)
    }

    /// Reads into the message buffer up to `want` bytes in total.
    fn read_some(&mut self, want: usize) -> Result<usize, XsError> {
        let prod = self.check(RSP_PROD, self.rsp_cons, "reply")?;
        rmb(); // the index before the bytes it publishes
        let avail = prod.wrapping_sub(self.rsp_cons);
        let at = self.rsp_cons % RING_SIZE;
        let n = (want - self.have)
            .min(avail as usize)
            .min((RING_SIZE - at) as usize);
        if n == 0 {
            return Ok(0);
        }
        let (have, page) = (self.have, self.page);
        page.read_bytes(RSP + at as usize, &mut self.buf[have..have + n]);
        mb(); // finish reading before freeing the space
        self.rsp_cons = self.rsp_cons.wrapping_add(n as u32);
        self.page.store_u32(RSP_CONS, self.rsp_cons);
        self.have += n;
        Ok(n)
    }

    fn wait(&self, idle: &mut u32) -> Result<(), XsError> {
        *idle += 1;
        if *idle > self.max_waits {
            return Err(XsError::Timeout { waits: *idle - 1 });
        }
        self.notify()?;
        self.hv.wait_event(self.port, self.timeout_ns)?;
        Ok(())
    }

    fn send(&mut self, data: &[u8]) -> Result<(), XsError> {
        let mut off = 0;
        let mut idle = 0;
        while off < data.len() {
            let n = self.write_some(&data[off..])?;
            if n == 0 {
                self.wait(&mut idle)?;
            } else {
                idle = 0;
                off += n;
            }
        }
        self.notify()
    }

    /// Reads one complete message; `None` when `block` is false and none is whole.
    fn receive(&mut self, block: bool) -> Result<Option<Header>, XsError> {
        let mut idle = 0;
        loop {
            let want = if self.have < HEADER_LEN {
                HEADER_LEN
            } else {
                HEADER_LEN + Header::parse(&self.buf[..HEADER_LEN])?.len as usize
            };
            if self.have == want {
                let h = Header::parse(&self.buf[..HEADER_LEN])?;
                self.have = 0;
                self.notify()?;
                return Ok(Some(h));
            }
            let n = self.read_some(want)?;
            if n == 0 {
                if !block {
                    return Ok(None);
                }
                self.wait(&mut idle)?;
            } else {
                idle = 0;
            }
        }
    }

    /// Handles a message that is not the awaited reply. Returns `true` for a watch
    /// event (queued), `false` for a stray reply.
    fn stash(&mut self, h: &Header) -> Result<bool, XsError> {
        if h.kind != MsgType::WatchEvent as u32 {
            return Ok(false);
        }
        let ev = WatchEvent::parse(&self.buf[HEADER_LEN..HEADER_LEN + h.len as usize])?;
        if self.events.len() == MAX_QUEUED_EVENTS {
            self.events.pop_front();
            self.dropped_events += 1;
            log::warn!("xenstore: watch event queue full, dropped the oldest");
        }
        self.events.push_back(ev);
        Ok(true)
    }

    /// Sends one request and waits for its reply; returns the reply payload.
    pub fn call(&mut self, op: MsgType, tx: Tx, parts: &[&[u8]]) -> Result<Vec<u8>, XsError> {
        if self.broken {
            return Err(XsError::Broken);
        }
        let r = self.call_inner(op, tx, parts);
        match r {
            Err(e) => self.fail(e),
            ok => ok,
        }
    }

    fn call_inner(&mut self, op: MsgType, tx: Tx, parts: &[&[u8]]) -> Result<Vec<u8>, XsError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > PAYLOAD_MAX {
            return Err(XsError::BadRequest { len });
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let h = Header {
            kind: op as u32,
            req_id: id,
            tx_id: tx.0,
            len: len as u32,
        };
        // A request cut short would corrupt the byte stream for every later one.
        let mut sent = self.send(&h.emit());
        for p in parts {
            sent = sent.and_then(|()| self.send(p));
        }
        if let Err(e) = sent {
            self.broken = true;
            return Err(e);
        }
        let mut strays = 0;
        loop {
            let Some(r) = self.receive(true)? else {
                continue;
            };
            if self.stash(&r)? {
                continue;
            }
            let payload = &self.buf[HEADER_LEN..HEADER_LEN + r.len as usize];
            if r.req_id != id {
                // A late reply to a request that timed out: skip a bounded number.
                strays += 1;
                if strays > MAX_STRAY_REPLIES || r.req_id > id {
                    return Err(XsError::UnexpectedReply {
                        got_kind: r.kind,
                        got_id: r.req_id,
                        want: op,
                        want_id: id,
                    });
                }
                continue;
            }
            if r.kind == MsgType::Error as u32 {
                return Err(XsError::Daemon {
                    op,
                    errno: XsErrno::parse(payload)?,
                });
            }
            if r.kind != op as u32 {
                return Err(XsError::UnexpectedReply {
                    got_kind: r.kind,
                    got_id: r.req_id,
                    want: op,
                    want_id: id,
                });
            }
            return Ok(payload.to_vec());
        }
    }

    fn path(path: &str) -> Result<&[u8], XsError> {
        if path.is_empty() || path.len() > ABS_PATH_MAX || path.contains('\0') {
            return Err(XsError::BadRequest { len: path.len() });
        }
        Ok(path.as_bytes())
    }

    /// `XS_READ`: the node's value (not NUL-terminated on the wire).
    pub fn read(&mut self, tx: Tx, path: &str) -> Result<Vec<u8>, XsError> {
        let p = Self::path(path)?;
        self.call(MsgType::Read, tx, &[p, b"\0"])
    }

    /// `XS_READ`, `None` for a node that does not exist.
    pub fn read_opt(&mut self, tx: Tx, path: &str) -> Result<Option<Vec<u8>>, XsError> {
        match self.read(tx, path) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is(XsErrno::NoEnt) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `XS_READ` of a UTF-8 value.
    pub fn read_string(&mut self, tx: Tx, path: &str) -> Result<String, XsError> {
        let v = self.read(tx, path)?;
        String::from_utf8(v).map_err(|_| XsError::NotUtf8 {
            path: String::from(path),
        })
    }

    /// `XS_WRITE`.
    pub fn write(&mut self, tx: Tx, path: &str, value: &[u8]) -> Result<(), XsError> {
        let p = Self::path(path)?;
        let r = self.call(MsgType::Write, tx, &[p, b"\0", value])?;
        Ok(wire::parse_ok(&r)?)
    }

    /// `XS_RM`.
    pub fn rm(&mut self, tx: Tx, path: &str) -> Result<(), XsError> {
        let p = Self::path(path)?;
        let r = self.call(MsgType::Rm, tx, &[p, b"\0"])?;
        Ok(wire::parse_ok(&r)?)
    }

    /// `XS_DIRECTORY`: the node's children.
    pub fn directory(&mut self, tx: Tx, path: &str) -> Result<Vec<String>, XsError> {
        let p = Self::path(path)?;
        let r = self.call(MsgType::Directory, tx, &[p, b"\0"])?;
        Ok(wire::parse_directory(&r)?)
    }

    /// `XS_WATCH`: xenstored sends an event for `path` now and on every change at or
    /// under it.
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        self.watch_call(MsgType::Watch, path, token)
    }

    /// `XS_UNWATCH`.
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        self.watch_call(MsgType::Unwatch, path, token)
    }

    /// `XS_WATCH` or `XS_UNWATCH` of `path` with `token`.
    fn watch_call(&mut self, kind: MsgType, path: &str, token: &str) -> Result<(), XsError> {
        let p = Self::path(path)?;
        let t = Self::path(token)?;
        let r = self.call(kind, Tx::NONE, &[p, b"\0", t, b"\0"])?;
        Ok(wire::parse_ok(&r)?)
    }

    /// `XS_TRANSACTION_START`.
    pub fn transaction_start(&mut self) -> Result<Tx, XsError> {
        let r = self.call(MsgType::TransactionStart, Tx::NONE, &[b"\0"])?;
        Ok(Tx(wire::parse_tx_id(&r)?))
    }

    /// `XS_TRANSACTION_END`: commits (or aborts). `EAGAIN` means a conflicting
    /// change: run the transaction again.
    pub fn transaction_end(&mut self, tx: Tx, commit: bool) -> Result<(), XsError> {
        let arg: &[u8] = if commit { b"T\0" } else { b"F\0" };
        let r = self.call(MsgType::TransactionEnd, tx, &[arg])?;
        Ok(wire::parse_ok(&r)?)
    }

    /// Runs `f` in a transaction, retrying on `EAGAIN` up to [`MAX_TX_ATTEMPTS`]
    /// times; an error from `f` aborts the transaction.
    pub fn transaction<T>(
        &mut self,
        mut f: impl FnMut(&mut Self, Tx) -> Result<T, XsError>,
    ) -> Result<T, XsError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let tx = self.transaction_start()?;
            let out = match f(self, tx) {
                Ok(v) => v,
                Err(e) => {
                    let _ = self.transaction_end(tx, false);
                    return Err(e);
                }
            };
            match self.transaction_end(tx, true) {
                Ok(()) => return Ok(out),
                Err(e) if e.is(XsErrno::Again) && attempt < MAX_TX_ATTEMPTS => {
                    log::debug!("xenstore: transaction conflict, retry {attempt}");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads whatever whole messages are waiting without blocking, queueing watch
    /// events; returns how many events are queued.
    pub fn poll_events(&mut self) -> Result<usize, XsError> {
        if self.broken {
            return Err(XsError::Broken);
        }
        loop {
            match self.receive(false) {
                Ok(Some(h)) => {
                    if let Err(e) = self.stash(&h) {
                        return self.fail(e);
                    }
                    // A stray reply outside a call is dropped.
                }
                Ok(None) => return Ok(self.events.len()),
                Err(e) => return self.fail(e),
            }
        }
    }

    /// The oldest queued watch event.
    pub fn next_event(&mut self) -> Option<WatchEvent> {
        self.events.pop_front()
    }

    /// Blocks (bounded) until a watch event with `token` arrives; removes every
    /// queued event with that token.
    pub fn wait_watch(&mut self, token: &str) -> Result<(), XsError> {
        if self.broken {
            return Err(XsError::Broken);
        }
        let mut idle = 0;
        loop {
            let before = self.events.len();
            self.events.retain(|e| e.token != token);
            if self.events.len() != before {
                return Ok(());
            }
            match self.receive(false) {
                Ok(Some(h)) => {
                    if let Err(e) = self.stash(&h) {
                        return self.fail(e);
                    }
                    idle = 0;
                }
                Ok(None) => self.wait(&mut idle)?,
                Err(e) => return self.fail(e),
            }
        }
    }
}

pub mod xenbus;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelXen, Xenstored};
    use alloc::rc::Rc;
    use core::cell::RefCell;

    fn setup() -> (ModelXen, Rc<RefCell<Xenstored>>) {
        let hv = ModelXen::new();
        let xsd = hv.start_xenstored();
        (hv, xsd)
    }

    #[test]
    fn read_write_directory_rm() {
        let (hv, xsd) = setup();
        let mut xs = Xenstore::connect(&hv).unwrap();
        xs.write(Tx::NONE, "device/vif/0/state", b"1").unwrap();
        xs.write(Tx::NONE, "device/vif/1/state", b"1").unwrap();
        assert_eq!(xs.read(Tx::NONE, "device/vif/0/state").unwrap(), b"1");
        assert_eq!(xsd.borrow().get("device/vif/1/state"), Some(&b"1"[..]));
        assert_eq!(xs.directory(Tx::NONE, "device/vif").unwrap(), ["0", "1"]);
        assert_eq!(xs.read_opt(Tx::NONE, "nope").unwrap(), None);
        let e = xs.read(Tx::NONE, "nope").unwrap_err();
        assert!(e.is(XsErrno::NoEnt), "{e}");
        xs.rm(Tx::NONE, "device/vif/1").unwrap();
        assert_eq!(xs.directory(Tx::NONE, "device/vif").unwrap(), ["0"]);
        assert!(matches!(
            xs.read(Tx::NONE, "a\0b"),
            Err(XsError::BadRequest { .. })
        ));
    }

    #[test]
    fn large_values_cross_the_ring_wrap_many_times() {
        let (hv, _xsd) = setup();
        let mut xs = Xenstore::connect(&hv).unwrap();
        for i in 0..20u32 {
            let v: Vec<u8> = (0..3000 + i).map(|b| b'a' + (b % 26) as u8).collect();
            xs.write(Tx::NONE, "data/big", &v).unwrap();
            assert_eq!(xs.read(Tx::NONE, "data/big").unwrap(), v);
        }
        let too_big = alloc::vec![b'x'; PAYLOAD_MAX];
        assert!(matches!(
            xs.write(Tx::NONE, "data/big", &too_big),
            Err(XsError::BadRequest { .. })
        ));
    }

    #[test]
    fn transactions_retry_on_eagain_and_give_up() {
        let (hv, xsd) = setup();
        let mut xs = Xenstore::connect(&hv).unwrap();
        xsd.borrow_mut().fail_commits = 2;
        let mut runs = 0;
        xs.transaction(|xs, tx| {
            runs += 1;
            xs.write(tx, "device/vbd/0/ring-ref", b"8")?;
            xs.write(tx, "device/vbd/0/event-channel", b"3")
        })
        .unwrap();
        assert_eq!(runs, 3);
        assert_eq!(xsd.borrow().get("device/vbd/0/ring-ref"), Some(&b"8"[..]));
        // Writes inside an uncommitted transaction stay invisible.
        let tx = xs.transaction_start().unwrap();
        xs.write(tx, "device/x", b"1").unwrap();
        assert_eq!(xs.read(tx, "device/x").unwrap(), b"1");
        assert!(xs.read_opt(Tx::NONE, "device/x").unwrap().is_none());
        xs.transaction_end(tx, false).unwrap();
        assert!(xs.read_opt(Tx::NONE, "device/x").unwrap().is_none());

        xsd.borrow_mut().fail_commits = 1000;
        let e = xs
            .transaction(|xs, tx| xs.write(tx, "k", b"v"))
            .unwrap_err();
        assert!(e.is(XsErrno::Again), "{e}");
    }

    #[test]
    fn watches_deliver_events() {
        let (hv, xsd) = setup();
        let mut xs = Xenstore::connect(&hv).unwrap();
        xs.watch("backend/vif/1/0/state", "tok").unwrap();
        xs.wait_watch("tok").unwrap(); // the registration event
        xsd.borrow_mut().set("backend/vif/1/0/state", b"2");
        xsd.borrow_mut().set("backend/other", b"2");
        hv.run_hooks();
        assert_eq!(xs.poll_events().unwrap(), 1);
        let ev = xs.next_event().unwrap();
        assert_eq!(ev.path, "backend/vif/1/0/state");
        assert_eq!(ev.token, "tok");
        xs.unwatch("backend/vif/1/0/state", "tok").unwrap();
        xsd.borrow_mut().set("backend/vif/1/0/state", b"4");
        hv.run_hooks();
        assert_eq!(xs.poll_events().unwrap(), 0);
        assert!(xs.unwatch("backend/vif/1/0/state", "tok").is_err());
    }

    fn raw(kind: u32, req_id: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Header {
            kind,
            req_id,
            tx_id: 0,
            len: payload.len() as u32,
        }
        .emit()
        .to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn hostile_replies_are_errors() {
        let (hv, xsd) = setup();
        let mut xs = Xenstore::connect(&hv).unwrap();
        // Unterminated error name.
        xsd.borrow_mut()
            .raw_replies
            .push_back(raw(16, 1, b"EAGAIN"));
        assert!(matches!(
            xs.read(Tx::NONE, "a"),
            Err(XsError::Wire(WireError::Unterminated { .. }))
        ));
        assert_eq!(xs.read(Tx::NONE, "a"), Err(XsError::Broken));

        let (hv, xsd) = setup();
        let mut xs = Xenstore::connect(&hv).unwrap();
        // A reply to a request not yet made.
        xsd.borrow_mut().raw_replies.push_back(raw(2, 99, b"x"));
        assert!(matches!(
            xs.read(Tx::NONE, "a"),
            Err(XsError::UnexpectedReply { got_id: 99, .. })
        ));
        // A reply of the wrong type.
        xsd.borrow_mut().raw_replies.push_back(raw(1, 2, b""));
        assert!(matches!(
            xs.read(Tx::NONE, "a"),
            Err(XsError::UnexpectedReply { got_kind: 1, .. })
        ));
        // A malformed watch event interleaved.
        xsd.borrow_mut()
            .raw_replies
            .push_back(raw(15, 0, b"path-only"));
        assert!(matches!(xs.read(Tx::NONE, "a"), Err(XsError::Wire(_))));

        let (hv, xsd) = setup();
        let mut xs = Xenstore::connect(&hv).unwrap();
        // Length over the payload maximum.
        let mut h = raw(2, 1, b"");
        h[12..16].copy_from_slice(&5000u32.to_le_bytes());
        xsd.borrow_mut().raw_replies.push_back(h);
        assert_eq!(
            xs.read(Tx::NONE, "a"),
            Err(XsError::Wire(WireError::TooLong(5000)))
        );

        // Indices more than a ring apart.
        let (hv, xsd) = setup();
        let mut xs = Xenstore::connect(&hv).unwrap();
        xs.write(Tx::NONE, "a", b"1").unwrap();
        xsd.borrow_mut().silent = true;
        xsd.borrow().page().store_u32(RSP_PROD, 0x8000_0000);
        assert!(matches!(
            xs.read(Tx::NONE, "a"),
            Err(XsError::RingCorrupt { what: "reply", .. })
        ));

        // A daemon that never answers: bounded wait.
        let (hv, xsd) = setup();
        let mut xs = Xenstore::connect(&hv).unwrap();
        xs.set_timeout(1, 5);
        xsd.borrow_mut().silent = true;
        assert_eq!(xs.read(Tx::NONE, "a"), Err(XsError::Timeout { waits: 5 }));

        // A daemon that stops consuming mid-request: the stream is unusable after.
        let (hv, xsd) = setup();
        let mut xs = Xenstore::connect(&hv).unwrap();
        xs.set_timeout(1, 3);
        xsd.borrow_mut().silent = true;
        let big = alloc::vec![b'v'; 2000];
        assert_eq!(
            xs.write(Tx::NONE, "a", &big),
            Err(XsError::Timeout { waits: 3 })
        );
        xsd.borrow_mut().silent = false;
        assert_eq!(xs.read(Tx::NONE, "a"), Err(XsError::Broken));
    }

    #[test]
    fn xenbus_probe_state_and_features() {
        use xenbus::{XenbusDevice, XenbusError, XenbusState};
        let (hv, xsd) = setup();
        {
            let mut d = xsd.borrow_mut();
            d.set("device/vif/0/backend", b"backend/vif/5/0");
            d.set("device/vif/0/backend-id", b"0");
            d.set("backend/vif/5/0/state", b"2");
            d.set("backend/vif/5/0/feature-rx-copy", b"1");
            d.set("backend/vif/5/0/feature-sg", b"0");
            d.set("backend/vif/5/0/feature-odd", b"yes");
            d.set("device/vif/7/backend", b"backend/vif/5/7");
            d.set("device/vif/7/backend-id", b"70000");
        }
        let mut xs = Xenstore::connect(&hv).unwrap();
        assert_eq!(XenbusDevice::list(&mut xs, "vif").unwrap(), [0, 7]);
        assert_eq!(XenbusDevice::list(&mut xs, "vbd").unwrap(), []);
        let dev = XenbusDevice::probe(&mut xs, "vif", 0).unwrap();
        assert_eq!(dev.backend, "backend/vif/5/0");
        assert!(matches!(
            XenbusDevice::probe(&mut xs, "vif", 7),
            Err(XenbusError::Malformed {
                what: "backend-id",
                ..
            })
        ));
        assert_eq!(dev.backend_state(&mut xs).unwrap(), XenbusState::InitWait);
        assert!(dev.backend_feature(&mut xs, "feature-rx-copy").unwrap());
        assert!(!dev.backend_feature(&mut xs, "feature-sg").unwrap());
        assert!(!dev.backend_feature(&mut xs, "feature-absent").unwrap());
        assert!(dev.backend_feature(&mut xs, "feature-odd").is_err());
        assert!(matches!(
            dev.backend_u64(&mut xs, "sectors"),
            Err(XenbusError::Missing { .. })
        ));
        dev.switch_state(&mut xs, XenbusState::Initialised).unwrap();
        assert_eq!(xsd.borrow().get("device/vif/0/state"), Some(&b"3"[..]));
        // The back end moves to Connected two steps later.
        let mut steps = 0;
        let x = xsd.clone();
        hv.add_hook(alloc::boxed::Box::new(move |_| {
            steps += 1;
            if steps == 2 {
                x.borrow_mut().set("backend/vif/5/0/state", b"4");
            }
        }));
        let s = dev
            .wait_backend(
                &mut xs,
                |s| s == XenbusState::Connected,
                |s| s >= XenbusState::Closing,
            )
            .unwrap();
        assert_eq!(s, XenbusState::Connected);
        xsd.borrow_mut().set("backend/vif/5/0/state", b"5");
        assert!(matches!(
            dev.wait_backend(
                &mut xs,
                |s| s == XenbusState::Connected,
                |s| s >= XenbusState::Closing
            ),
            Err(XenbusError::Stuck {
                state: XenbusState::Closing,
                ..
            })
        ));
        xsd.borrow_mut().set("backend/vif/5/0/state", b"9");
        assert!(dev.backend_state(&mut xs).is_err());
    }
}
