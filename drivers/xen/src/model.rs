//! An in-memory Xen for tests and fuzzing: a hypervisor ([`ModelXen`]) with pages,
//! grant frames, event channels and a `shared_info`, and a xenstored
//! ([`Xenstored`]) that serves the real ring protocol from the daemon's side.
//! Model back ends (netback, blkback) live beside the drivers' tests and use the
//! same grant checks a real hypervisor makes ([`ModelXen::map_grant`]).
//!
//! Nothing here is for production: pages are leaked boxes, recycled through a
//! free list so long fuzzing runs do not grow without bound.

// Models are test code: a broken invariant is a finding, and panicking is fine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;
use core::sync::atomic::AtomicU32;

use crate::evtchn;
use crate::grant::{
    ENTRIES_PER_FRAME, GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY, GTF_WRITING, GrantRef,
};
use crate::hv::{
    DomId, GrantTableSize, HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN, HvError, Port,
    XenHypervisor,
};
use crate::page::{PAGE_WORDS, PageWords, SharedPage, mb, rmb, wmb};
use crate::xenstore::wire::{HEADER_LEN, Header, MsgType, XsErrno};
use crate::xenstore::{REQ, REQ_CONS, REQ_PROD, RING_SIZE, RSP, RSP_CONS, RSP_PROD};

/// A hook the model runs whenever the guest waits (the "other domains" running).
pub type Hook = Box<dyn FnMut(&ModelXen)>;

struct State {
    pages: BTreeMap<u64, SharedPage>,
    free: Vec<SharedPage>,
    next_pfn: u64,
    grant_frames: Vec<SharedPage>,
    max_grant_frames: u32,
    /// Open ports and how often the guest notified each.
    ports: BTreeMap<u32, u64>,
    next_port: u32,
    params: BTreeMap<u32, u64>,
    /// Pages handed out by `alloc_page` and not yet freed.
    allocated: u64,
}

/// The model hypervisor.
pub struct ModelXen {
    state: RefCell<State>,
    hooks: RefCell<Vec<Hook>>,
    shared_info: SharedPage,
}

impl Default for ModelXen {
    fn default() -> Self {
        Self::new()
    }
}

/// Pages of dropped models, reused by later ones so long fuzzing runs stay
/// bounded. (Memory is never returned to the allocator: a stale `SharedPage`
/// copy can at worst see another model's data, all through atomics.)
static POOL: spin::Mutex<Vec<&'static PageWords>> = spin::Mutex::new(Vec::new());

fn leak_page(pfn: u64) -> SharedPage {
    let words: &'static PageWords = match POOL.lock().pop() {
        Some(w) => w,
        None => Box::leak(Box::new([const { AtomicU32::new(0) }; PAGE_WORDS])),
    };
    let p = SharedPage::new(pfn, words);
    p.clear();
    p
}

impl Drop for ModelXen {
    fn drop(&mut self) {
        let s = self.state.get_mut();
        let mut pool = POOL.lock();
        pool.extend(s.pages.values().map(|p| p.words()));
        pool.extend(s.free.iter().map(|p| p.words()));
        pool.push(self.shared_info.words());
    }
}

impl ModelXen {
    /// A model with four grant frames allowed and no xenstore yet.
    pub fn new() -> Self {
        Self {
            state: RefCell::new(State {
                pages: BTreeMap::new(),
                free: Vec::new(),
                next_pfn: 0x1000,
                grant_frames: Vec::new(),
                max_grant_frames: 4,
                ports: BTreeMap::new(),
                next_port: 1,
                params: BTreeMap::new(),
                allocated: 0,
            }),
            hooks: RefCell::new(Vec::new()),
            shared_info: leak_page(0xfff),
        }
    }

    /// A fresh page known to the model (not counted as the guest's allocation).
    pub fn new_page(&self) -> SharedPage {
        let mut s = self.state.borrow_mut();
        let p = match s.free.pop() {
            Some(p) => p,
            None => {
                let pfn = s.next_pfn;
                s.next_pfn += 1;
                leak_page(pfn)
            }
        };
        p.clear();
        s.pages.insert(p.pfn(), p);
        p
    }

    /// Runs `hook` on every guest wait (and on [`run_hooks`](Self::run_hooks)).
    pub fn add_hook(&self, hook: Hook) {
        self.hooks.borrow_mut().push(hook);
    }

    /// Runs the hooks once: the other domains take a step.
    pub fn run_hooks(&self) {
        let mut hooks = core::mem::take(&mut *self.hooks.borrow_mut());
        for h in &mut hooks {
            h(self);
        }
        let mut now = self.hooks.borrow_mut();
        hooks.append(&mut now);
        *now = hooks;
    }

    /// Sets an HVM parameter.
    pub fn set_param(&self, index: u32, v: u64) {
        self.state.borrow_mut().params.insert(index, v);
    }

    /// Opens a port as the remote end would (e.g. xenstored's).
    pub fn open_port(&self) -> Port {
        let mut s = self.state.borrow_mut();
        let p = s.next_port;
        s.next_port += 1;
        s.ports.insert(p, 0);
        Port(p)
    }

    /// Times the guest notified `port`.
    pub fn sends(&self, port: Port) -> u64 {
        self.state.borrow().ports.get(&port.0).copied().unwrap_or(0)
    }

    /// Whether `port` is open.
    pub fn is_open(&self, port: Port) -> bool {
        self.state.borrow().ports.contains_key(&port.0)
    }

    /// A remote end notifies the guest on `port`.
    pub fn raise(&self, port: Port) {
        evtchn::raise(&self.shared_info, port);
    }

    /// Pages the guest allocated and has not freed.
    pub fn allocated_pages(&self) -> u64 {
        self.state.borrow().allocated
    }

    /// The page with frame `pfn`.
    pub fn page_by_pfn(&self, pfn: u64) -> Option<SharedPage> {
        self.state.borrow().pages.get(&pfn).copied()
    }

    fn grant_entry(&self, r: GrantRef) -> Option<(SharedPage, usize)> {
        let s = self.state.borrow();
        let f = s.grant_frames.get((r.0 / ENTRIES_PER_FRAME) as usize)?;
        Some((*f, (r.0 % ENTRIES_PER_FRAME) as usize * 8))
    }

    /// Maps grant `r` for domain `domid` as Xen's grant-map or grant-copy would:
    /// checks the entry permits `domid` (and writing if `write`), sets
    /// `GTF_reading`/`GTF_writing` while `hold` is true. Returns the page.
    pub fn map_grant(
        &self,
        r: GrantRef,
        domid: DomId,
        write: bool,
        hold: bool,
    ) -> Result<SharedPage, &'static str> {
        let (f, off) = self.grant_entry(r).ok_or("grant ref out of range")?;
        let w = f.load_u32(off);
        let (flags, dom) = (w as u16, (w >> 16) as u16);
        if flags & 3 != GTF_PERMIT_ACCESS {
            return Err("grant entry does not permit access");
        }
        if dom != domid {
            return Err("grant is for another domain");
        }
        if write && flags & GTF_READONLY != 0 {
            return Err("grant is read-only");
        }
        rmb();
        let pfn = u64::from(f.load_u32(off + 4));
        let page = self
            .page_by_pfn(pfn)
            .ok_or("granted frame is not a guest page")?;
        if hold {
            let busy = if write { GTF_WRITING } else { GTF_READING };
            f.fetch_or_u32(off, u32::from(busy | GTF_READING));
        }
        Ok(page)
    }

    /// Drops a mapping made with `hold`.
    pub fn unmap_grant(&self, r: GrantRef) {
        if let Some((f, off)) = self.grant_entry(r) {
            f.fetch_and_u32(off, !u32::from(GTF_READING | GTF_WRITING));
        }
    }

    /// Sets up a xenstored on a fresh ring and port; the guest finds it through
    /// the HVM parameters. Its step runs as a hook.
    pub fn start_xenstored(&self) -> alloc::rc::Rc<RefCell<Xenstored>> {
        let page = self.new_page();
        let port = self.open_port();
        self.set_param(HVM_PARAM_STORE_PFN, page.pfn());
        self.set_param(HVM_PARAM_STORE_EVTCHN, u64::from(port.0));
        let xsd = alloc::rc::Rc::new(RefCell::new(Xenstored::new(page, port)));
        let x = xsd.clone();
        self.add_hook(Box::new(move |hv| x.borrow_mut().step(hv)));
        xsd
    }
}

impl XenHypervisor for ModelXen {
    fn evtchn_alloc_unbound(&self, _remote: DomId) -> Result<Port, HvError> {
        Ok(self.open_port())
    }

    fn evtchn_send(&self, port: Port) -> Result<(), HvError> {
        let mut s = self.state.borrow_mut();
        match s.ports.get_mut(&port.0) {
            Some(n) => {
                *n += 1;
                Ok(())
            }
            None => Err(HvError::Hypercall {
                op: "EVTCHNOP_send",
                errno: 22,
            }),
        }
    }

    fn evtchn_close(&self, port: Port) -> Result<(), HvError> {
        match self.state.borrow_mut().ports.remove(&port.0) {
            Some(_) => Ok(()),
            None => Err(HvError::Hypercall {
                op: "EVTCHNOP_close",
                errno: 22,
            }),
        }
    }

    fn evtchn_unmask(&self, port: Port) -> Result<(), HvError> {
        let off = 2560 + (port.0 as usize / 32) * 4;
        self.shared_info.fetch_and_u32(off, !(1 << (port.0 % 32)));
        Ok(())
    }

    fn grant_table_query_size(&self) -> Result<GrantTableSize, HvError> {
        let s = self.state.borrow();
        Ok(GrantTableSize {
            nr_frames: s.grant_frames.len() as u32,
            max_nr_frames: s.max_grant_frames,
        })
    }

    fn grant_table_setup(&self, frames: u32) -> Result<Vec<SharedPage>, HvError> {
        if frames > self.state.borrow().max_grant_frames {
            return Err(HvError::Hypercall {
                op: "GNTTABOP_setup_table",
                errno: 22,
            });
        }
        while self.state.borrow().grant_frames.len() < frames as usize {
            let p = self.new_page();
            self.state.borrow_mut().grant_frames.push(p);
        }
        Ok(self.state.borrow().grant_frames[..frames as usize].to_vec())
    }

    fn shared_info(&self) -> SharedPage {
        self.shared_info
    }

    fn hvm_param(&self, index: u32) -> Result<u64, HvError> {
        self.state
            .borrow()
            .params
            .get(&index)
            .copied()
            .ok_or(HvError::Hypercall {
                op: "HVMOP_get_param",
                errno: 22,
            })
    }

    fn page(&self, pfn: u64) -> Result<SharedPage, HvError> {
        self.page_by_pfn(pfn).ok_or(HvError::BadFrame { pfn })
    }

    fn alloc_page(&self) -> Result<SharedPage, HvError> {
        let p = self.new_page();
        self.state.borrow_mut().allocated += 1;
        Ok(p)
    }

    fn free_page(&self, page: SharedPage) {
        let mut s = self.state.borrow_mut();
        if s.pages.remove(&page.pfn()).is_some() {
            s.allocated -= 1;
            s.free.push(page);
        }
    }

    fn wait_event(&self, port: Port, _timeout_ns: u64) -> Result<bool, HvError> {
        self.run_hooks();
        let off = 2048 + (port.0 as usize / 32) * 4;
        Ok(self.shared_info.load_u32(off) & (1 << (port.0 % 32)) != 0)
    }
}

struct Txn {
    store: BTreeMap<String, Vec<u8>>,
    generation: u64,
    written: Vec<String>,
}

/// The model xenstored: a tree of nodes (flat map of full paths), watches and
/// transactions, served over the real ring protocol.
pub struct Xenstored {
    page: SharedPage,
    port: Port,
    /// The nodes.
    pub store: BTreeMap<String, Vec<u8>>,
    watches: Vec<(String, String)>,
    txs: BTreeMap<u32, Txn>,
    next_tx: u32,
    generation: u64,
    inbuf: Vec<u8>,
    out: VecDeque<u8>,
    /// Commits to fail with `EAGAIN` before letting one through.
    pub fail_commits: u32,
    /// Raw bytes to send instead of the next replies (hostile daemon).
    pub raw_replies: VecDeque<Vec<u8>>,
    /// Stop answering entirely.
    pub silent: bool,
    /// Requests served.
    pub requests: u64,
}

impl Xenstored {
    fn new(page: SharedPage, port: Port) -> Self {
        Self {
            page,
            port,
            store: BTreeMap::new(),
            watches: Vec::new(),
            txs: BTreeMap::new(),
            next_tx: 1,
            generation: 0,
            inbuf: Vec::new(),
            out: VecDeque::new(),
            fail_commits: 0,
            raw_replies: VecDeque::new(),
            silent: false,
            requests: 0,
        }
    }

    /// The ring page.
    pub fn page(&self) -> SharedPage {
        self.page
    }

    /// Writes a node as the toolstack would, firing watches.
    pub fn set(&mut self, path: &str, value: &[u8]) {
        self.store.insert(path.to_string(), value.to_vec());
        self.generation += 1;
        self.fire(path);
    }

    /// A node's value.
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.store.get(path).map(Vec::as_slice)
    }

    fn fire(&mut self, path: &str) {
        let hits: Vec<String> = self
            .watches
            .iter()
            .filter(|(w, _)| {
                path == w
                    || (path.starts_with(w.as_str()) && path.as_bytes().get(w.len()) == Some(&b'/'))
            })
            .map(|(_, t)| t.clone())
            .collect();
        for t in hits {
            self.event(path, &t);
        }
    }

    fn event(&mut self, path: &str, token: &str) {
        let mut p = Vec::new();
        p.extend_from_slice(path.as_bytes());
        p.push(0);
        p.extend_from_slice(token.as_bytes());
        p.push(0);
        self.reply(MsgType::WatchEvent as u32, 0, 0, &p);
    }

    fn reply(&mut self, kind: u32, req_id: u32, tx_id: u32, payload: &[u8]) {
        let h = Header {
            kind,
            req_id,
            tx_id,
            len: payload.len() as u32,
        };
        self.out.extend(h.emit());
        self.out.extend(payload.iter().copied());
    }

    fn error(&mut self, h: &Header, e: XsErrno) {
        let mut p = e.wire().as_bytes().to_vec();
        p.push(0);
        self.reply(MsgType::Error as u32, h.req_id, h.tx_id, &p);
    }

    /// One step: consume requests, answer them, flush replies and events.
    pub fn step(&mut self, hv: &ModelXen) {
        if self.silent {
            return;
        }
        let pg = self.page;
        let prod = pg.load_u32(REQ_PROD);
        rmb();
        let mut cons = pg.load_u32(REQ_CONS);
        let mut moved = false;
        while cons != prod && prod.wrapping_sub(cons) <= RING_SIZE {
            self.inbuf
                .push(pg.load_u8(REQ + (cons % RING_SIZE) as usize));
            cons = cons.wrapping_add(1);
            moved = true;
        }
        mb();
        pg.store_u32(REQ_CONS, cons);
        while self.inbuf.len() >= HEADER_LEN {
            let Ok(h) = Header::parse(&self.inbuf[..HEADER_LEN]) else {
                self.inbuf.clear();
                break;
            };
            let total = HEADER_LEN + h.len as usize;
            if self.inbuf.len() < total {
                break;
            }
            let payload: Vec<u8> = self.inbuf[HEADER_LEN..total].to_vec();
            self.inbuf.drain(..total);
            self.requests += 1;
            if let Some(raw) = self.raw_replies.pop_front() {
                self.out.extend(raw);
                continue;
            }
            self.handle(&h, &payload);
        }
        // Flush replies.
        let rp = pg.load_u32(RSP_PROD);
        let rc = pg.load_u32(RSP_CONS);
        let mut p = rp;
        while p.wrapping_sub(rc) < RING_SIZE {
            let Some(b) = self.out.pop_front() else { break };
            pg.store_u8(RSP + (p % RING_SIZE) as usize, b);
            p = p.wrapping_add(1);
        }
        wmb();
        pg.store_u32(RSP_PROD, p);
        if moved || p != rp {
            hv.raise(self.port);
        }
    }

    fn strings(payload: &[u8]) -> Vec<String> {
        payload
            .split(|b| *b == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }

    fn handle(&mut self, h: &Header, payload: &[u8]) {
        let Some(kind) = MsgType::from_u32(h.kind) else {
            return self.error(h, XsErrno::Inval);
        };
        let args = Self::strings(payload);
        let path = args.first().cloned().unwrap_or_default();
        let tx = h.tx_id;
        if tx != 0 && !self.txs.contains_key(&tx) {
            return self.error(h, XsErrno::NoEnt);
        }
        match kind {
            MsgType::Read => {
                let v = if tx != 0 {
                    self.txs[&tx].store.get(&path).cloned()
                } else {
                    self.store.get(&path).cloned()
                };
                match v {
                    Some(v) => self.reply(h.kind, h.req_id, tx, &v),
                    None => self.error(h, XsErrno::NoEnt),
                }
            }
            MsgType::Write => {
                let split = payload
                    .iter()
                    .position(|b| *b == 0)
                    .unwrap_or(payload.len());
                let value = payload.get(split + 1..).unwrap_or(&[]).to_vec();
                if tx != 0 {
                    let t = self.txs.get_mut(&tx).unwrap();
                    t.store.insert(path.clone(), value);
                    t.written.push(path);
                } else {
                    self.set(&path, &value);
                }
                self.reply(h.kind, h.req_id, tx, b"OK\0");
            }
            MsgType::Rm => {
                let prefix = alloc::format!("{path}/");
                let store = if tx != 0 {
                    &mut self.txs.get_mut(&tx).unwrap().store
                } else {
                    &mut self.store
                };
                store.retain(|k, _| *k != path && !k.starts_with(&prefix));
                self.reply(h.kind, h.req_id, tx, b"OK\0");
            }
            MsgType::Directory => {
                let prefix = alloc::format!("{path}/");
                let mut names: Vec<String> = self
                    .store
                    .keys()
                    .filter_map(|k| k.strip_prefix(&prefix))
                    .map(|r| r.split('/').next().unwrap_or("").to_string())
                    .collect();
                names.dedup();
                if names.is_empty() && !self.store.contains_key(&path) {
                    return self.error(h, XsErrno::NoEnt);
                }
                let mut p = Vec::new();
                for n in names {
                    p.extend_from_slice(n.as_bytes());
                    p.push(0);
                }
                self.reply(h.kind, h.req_id, tx, &p);
            }
            MsgType::Watch => {
                let token = args.get(1).cloned().unwrap_or_default();
                self.watches.push((path.clone(), token.clone()));
                self.reply(h.kind, h.req_id, 0, b"OK\0");
                self.event(&path, &token);
            }
            MsgType::Unwatch => {
                let token = args.get(1).cloned().unwrap_or_default();
                let before = self.watches.len();
                self.watches.retain(|(w, t)| !(*w == path && *t == token));
                if self.watches.len() == before {
                    return self.error(h, XsErrno::NoEnt);
                }
                self.reply(h.kind, h.req_id, 0, b"OK\0");
            }
            MsgType::TransactionStart => {
                let id = self.next_tx;
                self.next_tx += 1;
                self.txs.insert(
                    id,
                    Txn {
                        store: self.store.clone(),
                        generation: self.generation,
                        written: Vec::new(),
                    },
                );
                let p = alloc::format!("{id}\0");
                self.reply(h.kind, h.req_id, 0, p.as_bytes());
            }
            MsgType::TransactionEnd => {
                let t = self.txs.remove(&tx).unwrap();
                if path == "T" {
                    if self.fail_commits > 0 || t.generation != self.generation {
                        self.fail_commits = self.fail_commits.saturating_sub(1);
                        return self.error(h, XsErrno::Again);
                    }
                    self.store = t.store;
                    self.generation += 1;
                    for k in t.written {
                        self.fire(&k);
                    }
                }
                self.reply(h.kind, h.req_id, 0, b"OK\0");
            }
            _ => self.error(h, XsErrno::Inval),
        }
    }
}

/// The xenbus side of a model back end: the daemon and both ends' paths.
pub struct ModelXenbus {
    xsd: alloc::rc::Rc<RefCell<Xenstored>>,
    /// `device/CLASS/N`.
    pub frontend: String,
    /// `backend/CLASS/1/N`.
    pub backend: String,
}

impl ModelXenbus {
    /// Writes what the toolstack writes for device `CLASS/index` (back end in
    /// domain 0, both ends Initialising), plus `extra` front-end nodes.
    fn new(
        xsd: alloc::rc::Rc<RefCell<Xenstored>>,
        class: &str,
        index: u32,
        extra: &[(&str, &[u8])],
    ) -> Self {
        let frontend = alloc::format!("device/{class}/{index}");
        let backend = alloc::format!("backend/{class}/1/{index}");
        {
            let mut d = xsd.borrow_mut();
            d.set(&alloc::format!("{frontend}/backend"), backend.as_bytes());
            d.set(&alloc::format!("{frontend}/backend-id"), b"0");
            for (k, v) in extra {
                d.set(&alloc::format!("{frontend}/{k}"), v);
            }
            d.set(&alloc::format!("{frontend}/state"), b"1");
            d.set(&alloc::format!("{backend}/state"), b"1");
        }
        Self {
            xsd,
            frontend,
            backend,
        }
    }

    /// Sets the back end's xenbus state.
    pub fn set_state(&self, s: u32) {
        self.set_backend("state", alloc::format!("{s}").as_bytes());
    }

    /// The back end's state (0 when unreadable).
    pub fn state(&self) -> u32 {
        node_u32(
            &self.xsd.borrow(),
            &alloc::format!("{}/state", self.backend),
        )
        .unwrap_or(0)
    }

    /// The front end's state (0 when unreadable).
    pub fn frontend_state(&self) -> u32 {
        self.frontend_u32("state").unwrap_or(0)
    }

    /// A numeric front-end node.
    pub fn frontend_u32(&self, key: &str) -> Option<u32> {
        node_u32(
            &self.xsd.borrow(),
            &alloc::format!("{}/{key}", self.frontend),
        )
    }

    /// Writes a back-end node.
    pub fn set_backend(&self, key: &str, value: &[u8]) {
        let p = alloc::format!("{}/{key}", self.backend);
        self.xsd.borrow_mut().set(&p, value);
    }
}

fn node_u32(xsd: &Xenstored, path: &str) -> Option<u32> {
    crate::xenstore::wire::parse_decimal(xsd.get(path)?).and_then(|v| u32::try_from(v).ok())
}

type NetbackRings = (
    crate::ring::BackRing<crate::net::NetTx>,
    crate::ring::BackRing<crate::net::NetRx>,
    Port,
    [GrantRef; 2],
);

/// A model netback: serves one vif through the rings, copying frames with the
/// same grant checks Xen's grant-copy makes.
pub struct ModelNetback {
    /// Its xenbus nodes (`device/vif/N`, `backend/vif/1/N`).
    pub xenbus: ModelXenbus,
    rings: Option<NetbackRings>,
    rx_requests: VecDeque<crate::net::RxRequest>,
    /// Frames to deliver to the guest.
    pub to_guest: VecDeque<Vec<u8>>,
    /// Frames the guest sent.
    pub from_guest: Vec<Vec<u8>>,
    /// Grant or protocol violations the back end saw.
    pub violations: Vec<&'static str>,
    /// Advertise `feature-rx-copy`.
    pub rx_copy: bool,
}

impl ModelNetback {
    /// A vif `device/vif/index` with MAC `mac`, back end in domain 0.
    pub fn new(xsd: alloc::rc::Rc<RefCell<Xenstored>>, index: u32, mac: &str) -> Self {
        Self {
            xenbus: ModelXenbus::new(xsd, "vif", index, &[("mac", mac.as_bytes())]),
            rings: None,
            rx_requests: VecDeque::new(),
            to_guest: VecDeque::new(),
            from_guest: Vec::new(),
            violations: Vec::new(),
            rx_copy: true,
        }
    }

    /// Sets the back end's xenbus state.
    pub fn set_state(&self, s: u32) {
        self.xenbus.set_state(s);
    }

    /// The back end's state.
    pub fn state(&self) -> u32 {
        self.xenbus.state()
    }

    /// The tx and rx ring pages while connected.
    pub fn ring_pages(&self) -> Option<(SharedPage, SharedPage)> {
        self.rings.as_ref().map(|(t, r, ..)| (t.page(), r.page()))
    }

    /// The back rings while connected (hostile tests write responses directly).
    pub fn rings_mut(
        &mut self,
    ) -> Option<(
        &mut crate::ring::BackRing<crate::net::NetTx>,
        &mut crate::ring::BackRing<crate::net::NetRx>,
    )> {
        self.rings.as_mut().map(|(t, r, ..)| (t, r))
    }

    /// One step of the back end.
    pub fn step(&mut self, hv: &ModelXen) {
        let fe = self.xenbus.frontend_state();
        let be = self.state();
        match be {
            1 => {
                let rx_copy: &[u8] = if self.rx_copy { b"1" } else { b"0" };
                self.xenbus.set_backend("feature-rx-copy", rx_copy);
                self.set_state(2);
            }
            2 if fe == 4 => {
                let (tx, rx, port) = (
                    self.xenbus.frontend_u32("tx-ring-ref"),
                    self.xenbus.frontend_u32("rx-ring-ref"),
                    self.xenbus.frontend_u32("event-channel"),
                );
                let (Some(tx), Some(rx), Some(port)) = (tx, rx, port) else {
                    self.violations.push("connected without ring refs");
                    return;
                };
                let (tg, rg) = (GrantRef(tx), GrantRef(rx));
                match (
                    hv.map_grant(tg, 0, true, true),
                    hv.map_grant(rg, 0, true, true),
                ) {
                    (Ok(t), Ok(r)) => {
                        self.rings = Some((
                            crate::ring::BackRing::new(t),
                            crate::ring::BackRing::new(r),
                            Port(port),
                            [tg, rg],
                        ));
                        self.rx_requests.clear();
                        self.set_state(4);
                    }
                    _ => self.violations.push("ring grants unusable"),
                }
            }
            4 | 5 if fe == 6 || fe == 5 => {
                // Front end closed: unmap and reset to InitWait (a backend restart).
                if let Some((.., g)) = self.rings.take() {
                    hv.unmap_grant(g[0]);
                    hv.unmap_grant(g[1]);
                }
                self.set_state(2);
            }
            4 => self.serve(hv),
            5 if self.rings.is_some() => {
                // Closing: stop serving; the ring stays mapped until the front end
                // answers with Closed.
            }
            _ => {}
        }
    }

    fn serve(&mut self, hv: &ModelXen) {
        use crate::net::{NetRx, NetTx, RxResponse, TxResponse, wire};
        let Some((tx, rx, port, _)) = self.rings.as_mut() else {
            return;
        };
        let mut notify = false;
        while let Some(off) = tx.next_request() {
            let req = NetTx::read_request(&tx.page(), off);
            let status = match hv.map_grant(GrantRef(req.gref), 0, false, false) {
                Ok(p)
                    if usize::from(req.offset) + usize::from(req.size)
                        <= crate::page::PAGE_SIZE =>
                {
                    let mut f = alloc::vec![0u8; usize::from(req.size)];
                    p.read_bytes(usize::from(req.offset), &mut f);
                    self.from_guest.push(f);
                    wire::RSP_OKAY
                }
                Ok(_) => {
                    self.violations.push("tx request past the page");
                    wire::RSP_ERROR
                }
                Err(e) => {
                    self.violations.push(e);
                    wire::RSP_ERROR
                }
            };
            let r = tx.response_slot();
            NetTx::write_response(&tx.page(), r, &TxResponse { id: req.id, status });
            notify |= tx.push_responses();
        }
        tx.request_event();
        while let Some(off) = rx.next_request() {
            self.rx_requests
                .push_back(NetRx::read_request(&rx.page(), off));
        }
        rx.request_event();
        while !self.to_guest.is_empty() {
            let Some(req) = self.rx_requests.pop_front() else {
                break;
            };
            let frame = self.to_guest.pop_front().unwrap();
            let status = match hv.map_grant(GrantRef(req.gref), 0, true, false) {
                Ok(p) => {
                    p.write_bytes(0, &frame);
                    frame.len() as i16
                }
                Err(e) => {
                    self.violations.push(e);
                    wire::RSP_ERROR
                }
            };
            let r = rx.response_slot();
            NetRx::write_response(
                &rx.page(),
                r,
                &RxResponse {
                    id: req.id,
                    offset: 0,
                    flags: 0,
                    status,
                },
            );
            notify |= rx.push_responses();
        }
        if notify {
            hv.raise(*port);
        }
    }
}

/// A model blkback: a RAM disk served through the blkif ring, with the grant
/// checks Xen makes (the back end writes into pages for reads, so those grants
/// must be writable).
pub struct ModelBlkback {
    /// Its xenbus nodes (`device/vbd/N`, `backend/vbd/1/N`).
    pub xenbus: ModelXenbus,
    ring: Option<(crate::ring::BackRing<crate::blk::Blkif>, Port, GrantRef)>,
    /// The disk, in bytes.
    pub disk: Vec<u8>,
    /// Bytes per logical sector advertised.
    pub sector_size: u32,
    /// Extra nodes the back end writes at InitWait (features, info).
    pub features: Vec<(&'static str, &'static str)>,
    /// Flushes and barriers served.
    pub flushes: u64,
    /// Requests served.
    pub served: u64,
    /// Answer nothing (requests stay in flight).
    pub stall: bool,
    /// Grant or protocol violations seen.
    pub violations: Vec<&'static str>,
}

impl ModelBlkback {
    /// A vbd `device/vbd/index` over a disk of `bytes` bytes.
    pub fn new(
        xsd: alloc::rc::Rc<RefCell<Xenstored>>,
        index: u32,
        bytes: usize,
        sector_size: u32,
    ) -> Self {
        Self {
            xenbus: ModelXenbus::new(xsd, "vbd", index, &[]),
            ring: None,
            disk: (0..bytes).map(|i| (i / 512) as u8 ^ (i as u8)).collect(),
            sector_size,
            features: alloc::vec![("feature-flush-cache", "1")],
            flushes: 0,
            served: 0,
            stall: false,
            violations: Vec::new(),
        }
    }

    /// Sets the back end's xenbus state.
    pub fn set_state(&self, s: u32) {
        self.xenbus.set_state(s);
    }

    /// The back end's state.
    pub fn state(&self) -> u32 {
        self.xenbus.state()
    }

    /// The back ring while connected (hostile tests write responses directly).
    pub fn ring_mut(&mut self) -> Option<&mut crate::ring::BackRing<crate::blk::Blkif>> {
        self.ring.as_mut().map(|r| &mut r.0)
    }

    /// One step of the back end.
    pub fn step(&mut self, hv: &ModelXen) {
        let fe = self.xenbus.frontend_state();
        match self.state() {
            1 => {
                let bus = &self.xenbus;
                bus.set_backend(
                    "sectors",
                    alloc::format!("{}", self.disk.len() / 512).as_bytes(),
                );
                bus.set_backend(
                    "sector-size",
                    alloc::format!("{}", self.sector_size).as_bytes(),
                );
                for (k, v) in &self.features {
                    bus.set_backend(k, v.as_bytes());
                }
                self.set_state(2);
            }
            2 if fe == 3 => {
                let (r, p) = (
                    self.xenbus.frontend_u32("ring-ref"),
                    self.xenbus.frontend_u32("event-channel"),
                );
                let (Some(r), Some(p)) = (r, p) else {
                    self.violations.push("initialised without ring-ref");
                    return;
                };
                match hv.map_grant(GrantRef(r), 0, true, true) {
                    Ok(page) => {
                        self.ring = Some((crate::ring::BackRing::new(page), Port(p), GrantRef(r)));
                        self.set_state(4);
                    }
                    Err(e) => self.violations.push(e),
                }
            }
            4 | 5 if fe == 6 || fe == 5 => {
                if let Some((.., g)) = self.ring.take() {
                    hv.unmap_grant(g);
                }
                self.set_state(2);
            }
            4 if !self.stall => self.serve(hv),
            _ => {}
        }
    }

    fn serve(&mut self, hv: &ModelXen) {
        use crate::blk::{Blkif, Response, wire};
        let Some((ring, port, _)) = self.ring.as_mut() else {
            return;
        };
        let mut notify = false;
        while let Some(off) = ring.next_request() {
            let req = Blkif::read_request(&ring.page(), off);
            self.served += 1;
            let status = match req.operation {
                wire::OP_READ | wire::OP_WRITE => {
                    let mut pos = req.sector as usize * 512;
                    let mut status = wire::RSP_OKAY;
                    for s in req.seg.iter().take(usize::from(req.nr_segments)) {
                        if s.first_sect > s.last_sect || s.last_sect > 7 {
                            self.violations.push("bad segment sectors");
                            status = wire::RSP_ERROR;
                            break;
                        }
                        let start = usize::from(s.first_sect) * 512;
                        let n = (usize::from(s.last_sect - s.first_sect) + 1) * 512;
                        if pos + n > self.disk.len() {
                            self.violations.push("request past the disk end");
                            status = wire::RSP_ERROR;
                            break;
                        }
                        let write_to_guest = req.operation == wire::OP_READ;
                        match hv.map_grant(GrantRef(s.gref), 0, write_to_guest, false) {
                            Ok(p) if write_to_guest => {
                                p.write_bytes(start, &self.disk[pos..pos + n])
                            }
                            Ok(p) => p.read_bytes(start, &mut self.disk[pos..pos + n]),
                            Err(e) => {
                                self.violations.push(e);
                                status = wire::RSP_ERROR;
                                break;
                            }
                        }
                        pos += n;
                    }
                    status
                }
                wire::OP_FLUSH_DISKCACHE | wire::OP_WRITE_BARRIER => {
                    let name = if req.operation == wire::OP_FLUSH_DISKCACHE {
                        "feature-flush-cache"
                    } else {
                        "feature-barrier"
                    };
                    if self.features.iter().any(|(k, v)| *k == name && *v == "1") {
                        self.flushes += 1;
                        wire::RSP_OKAY
                    } else {
                        wire::RSP_EOPNOTSUPP
                    }
                }
                _ => wire::RSP_EOPNOTSUPP,
            };
            let r = ring.response_slot();
            Blkif::write_response(
                &ring.page(),
                r,
                &Response {
                    id: req.id,
                    operation: req.operation,
                    status,
                },
            );
            notify |= ring.push_responses();
        }
        ring.request_event();
        if notify {
            hv.raise(*port);
        }
    }
}
