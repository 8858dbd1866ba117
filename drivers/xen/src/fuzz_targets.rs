//! Entry points shared by the cargo-fuzz targets in `fuzz/` and the stable-Rust
//! replay in `tests/fuzz_replay.rs`: each takes arbitrary bytes as what a hostile
//! xenstored or back end writes into shared memory, and must never panic or hang.

// Fuzz-target bodies: a failed expectation is the finding, as in tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::unwrap_in_result)]

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use oasis_devices::{BlockDevice, BlockError, NetDevice};

use crate::blk::{BlkConfig, BlkFront, Blkif, Response};
use crate::grant::{GrantTable, SharedGrants};
use crate::model::{ModelBlkback, ModelNetback, ModelXen};
use crate::net::{MAX_RX_FRAME, NetConfig, NetFront, NetRx, NetTx, RxResponse, TxResponse};
use crate::xenstore::wire::{self, Header, PAYLOAD_MAX, WatchEvent, XsErrno};
use crate::xenstore::xenbus::XenbusState;
use crate::xenstore::{Tx, Xenstore};

/// Xenstore replies and watch events: the parsers directly, then the bytes as
/// the daemon's raw answer to a `READ`, through the ring.
pub fn xenstore_reply(data: &[u8]) -> Result<Vec<u8>, crate::xenstore::XsError> {
    if let Ok(h) = Header::parse(data) {
        assert!(h.len as usize <= PAYLOAD_MAX);
        assert_eq!(Header::parse(&h.emit()), Ok(h));
    }
    let body = data.get(wire::HEADER_LEN..).unwrap_or(&[]);
    if let Ok(e) = WatchEvent::parse(body) {
        assert!(!e.path.is_empty() && !e.path.contains('\0'));
    }
    if let Ok(names) = wire::parse_directory(body) {
        assert!(names.iter().all(|n| !n.is_empty() && !n.contains('/')));
    }
    if let Ok(id) = wire::parse_tx_id(body) {
        assert_ne!(id, 0);
    }
    let _ = XsErrno::parse(body);
    let _ = wire::parse_ok(body);
    if let Ok(s) = XenbusState::parse(body) {
        assert_eq!(XenbusState::parse(s.value()), Ok(s));
    }

    let hv = ModelXen::new();
    let xsd = hv.start_xenstored();
    xsd.borrow_mut().raw_replies.push_back(data.to_vec());
    let mut xs = Xenstore::connect(&hv).unwrap();
    xs.set_timeout(1, 3);
    let first = xs.read(Tx::NONE, "device/vif/0/state");
    if let Ok(v) = &first {
        assert!(v.len() <= PAYLOAD_MAX);
    }
    let _ = xs.poll_events();
    while let Some(e) = xs.next_event() {
        assert!(!e.path.is_empty());
    }
    // Whatever happened, a later call ends (error or answer), never hangs.
    let _ = xs.read(Tx::NONE, "device/vif/0/state");
    first
}

fn le16(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([
        b.get(i).copied().unwrap_or(0),
        b.get(i + 1).copied().unwrap_or(0),
    ])
}

/// netfront with two frames in flight: the input is a count of rx responses, a
/// count of tx responses, a `rsp_prod` skew, then the responses' bytes (8 per rx
/// response, 4 per tx response), written into the rings as a back end would.
pub fn net_responses(data: &[u8]) -> crate::net::NetStats {
    let hv = ModelXen::new();
    let xsd = hv.start_xenstored();
    let nb = Rc::new(RefCell::new(ModelNetback::new(xsd, 0, "00:16:3e:00:00:01")));
    let n2 = nb.clone();
    hv.add_hook(alloc::boxed::Box::new(move |hv| n2.borrow_mut().step(hv)));
    let gnt = SharedGrants::new(GrantTable::new(&hv, 1).unwrap());
    let mut xs = Xenstore::connect(&hv).unwrap();
    xs.set_timeout(1, 10);
    let cfg = NetConfig {
        rx_buffers: 4,
        tx_buffers: 4,
    };
    let mut nf = NetFront::new(&hv, &gnt, &mut xs, 0, cfg).unwrap();
    nf.transmit(60, |b| b.fill(1)).unwrap();
    nf.transmit(61, |b| b.fill(2)).unwrap();
    nf.poll();

    let (n_rx, n_tx, skew) = (
        usize::from(data.first().copied().unwrap_or(0) % 8),
        usize::from(data.get(1).copied().unwrap_or(0) % 8),
        data.get(2).copied().unwrap_or(0),
    );
    let mut at = 3;
    {
        let mut b = nb.borrow_mut();
        let (tx, rx) = b.rings_mut().unwrap();
        for _ in 0..n_rx {
            let off = rx.response_slot();
            let r = RxResponse {
                id: le16(data, at),
                offset: le16(data, at + 2),
                flags: le16(data, at + 4),
                status: le16(data, at + 6) as i16,
            };
            NetRx::write_response(&rx.page(), off, &r);
            at += 8;
        }
        for _ in 0..n_tx {
            let off = tx.response_slot();
            let r = TxResponse {
                id: le16(data, at),
                status: le16(data, at + 2) as i16,
            };
            NetTx::write_response(&tx.page(), off, &r);
            at += 4;
        }
        // A skew past 250 moves rsp_prod by an arbitrary amount.
        let (rxp, txp) = (rx.rsp_prod_pvt, tx.rsp_prod_pvt);
        let extra = if skew > 250 { u32::from(skew) << 20 } else { 0 };
        rx.set_rsp_prod(rxp.wrapping_add(extra));
        tx.set_rsp_prod(txp.wrapping_add(extra));
    }
    for _ in 0..4 {
        nf.poll();
        for _ in 0..16 {
            if nf
                .receive(|f| assert!(!f.is_empty() && f.len() <= MAX_RX_FRAME))
                .is_none()
            {
                break;
            }
        }
        let _ = nf.transmit(60, |b| b.fill(3));
    }
    if nf.broken().is_some() {
        assert!(nf.receive(|_| ()).is_none());
        assert!(!nf.can_transmit());
    }
    let s = nf.stats();
    assert!(s.rx_frames as usize + s.rx_dropped as usize <= n_rx);
    s
}

/// A boxed block request.
type Request<'a> = Pin<alloc::boxed::Box<dyn Future<Output = Result<(), BlockError>> + 'a>>;

/// blkfront with two requests in flight on a stalled back end: the input is a
/// count of responses, a `rsp_prod` skew, then 12 bytes per response (id,
/// operation, status). Afterwards every request has finished or is still
/// legitimately waiting; a faulted device fails them.
pub fn blk_responses(data: &[u8]) -> (bool, usize) {
    let hv = ModelXen::new();
    let xsd = hv.start_xenstored();
    let bb = Rc::new(RefCell::new(ModelBlkback::new(xsd, 0, 1 << 16, 512)));
    let b2 = bb.clone();
    hv.add_hook(alloc::boxed::Box::new(move |hv| b2.borrow_mut().step(hv)));
    let gnt = SharedGrants::new(GrantTable::new(&hv, 1).unwrap());
    let mut xs = Xenstore::connect(&hv).unwrap();
    xs.set_timeout(1, 10);
    let dev = BlkFront::new(&hv, &gnt, &mut xs, 0, BlkConfig { slots: 2 }).unwrap();
    bb.borrow_mut().stall = true;
    let mut rbuf = [0u8; 1024];
    let wbuf = [7u8; 512];
    let mut futs: Vec<Request<'_>> = alloc::vec![
        alloc::boxed::Box::pin(dev.read(2, &mut rbuf)),
        alloc::boxed::Box::pin(dev.write(5, &wbuf)),
    ];
    let mut cx = Context::from_waker(Waker::noop());
    for f in &mut futs {
        assert!(f.as_mut().poll(&mut cx).is_pending());
    }
    let n = usize::from(data.first().copied().unwrap_or(0) % 6);
    let skew = data.get(1).copied().unwrap_or(0);
    {
        let mut b = bb.borrow_mut();
        let ring = b.ring_mut().unwrap();
        while ring.next_request().is_some() {}
        let mut at = 2;
        for _ in 0..n {
            let off = ring.response_slot();
            let g = |i| data.get(at + i).copied().unwrap_or(0);
            let r = Response {
                id: u64::from_le_bytes(core::array::from_fn(g)),
                operation: g(8),
                status: i16::from_le_bytes([g(9), g(10)]),
            };
            Blkif::write_response(&ring.page(), off, &r);
            at += 12;
        }
        let extra = if skew > 250 { u32::from(skew) << 20 } else { 0 };
        let p = ring.rsp_prod_pvt;
        ring.set_rsp_prod(p.wrapping_add(extra));
    }
    dev.poll();
    let faulted = dev.fault().is_some();
    let mut ok = 0;
    for f in &mut futs {
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(r) => ok += usize::from(r.is_ok()),
            Poll::Pending => assert!(!faulted, "a faulted device left a request waiting"),
        }
    }
    (faulted, ok)
}
