//! The front end of a Xen shared ring (`io/ring.h`), generic over the request and
//! response encoding.
//!
//! Layout of the shared page: `req_prod`, `req_event`, `rsp_prod`, `rsp_event`
//! (32-bit each), 48 bytes of padding, then a power-of-two number of entries, each
//! the size of the larger of a request and a response. We own `req_prod` and
//! `rsp_event`; the backend owns `rsp_prod` and `req_event`, and may be hostile:
//! a `rsp_prod` that claims more responses than we have requests outstanding is
//! an error, never a read of stale slots.

use core::marker::PhantomData;

use crate::page::{PAGE_SIZE, SharedPage, mb, rmb, wmb};

const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;
/// Bytes before the first entry.
pub const HEADER_LEN: usize = 64;

/// Entries in a one-page ring of `entry_size`-byte entries (`__RING_SIZE`).
pub const fn ring_size(entry_size: usize) -> u32 {
    let n = (PAGE_SIZE - HEADER_LEN) / entry_size;
    if n == 0 {
        return 0;
    }
    1 << (usize::BITS - 1 - n.leading_zeros())
}

/// How one protocol's requests and responses sit in a ring entry.
pub trait RingProtocol {
    /// A request, as the front end builds it.
    type Request;
    /// A response, as decoded (not yet validated against driver state).
    type Response;
    /// Bytes per entry (the union of request and response).
    const ENTRY_SIZE: usize;
    /// Writes `req` into the entry starting at byte `off` of `page`.
    fn write_request(page: &SharedPage, off: usize, req: &Self::Request);
    /// Reads the response in the entry starting at byte `off` of `page`.
    fn read_response(page: &SharedPage, off: usize) -> Self::Response;
}

/// A misbehaving back end, seen through the ring indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// `rsp_prod` claims responses to requests never made.
    #[error(
        "backend rsp_prod {rsp_prod} is ahead of the requests made (rsp_cons {rsp_cons}, req_prod {req_prod})"
    )]
    ResponsesAhead {
        /// The backend's producer index.
        rsp_prod: u32,
        /// Our consumer index.
        rsp_cons: u32,
        /// Requests we have produced.
        req_prod: u32,
    },
    /// No free entry for a request.
    #[error("the ring is full ({size} requests outstanding)")]
    Full {
        /// Entries in the ring.
        size: u32,
    },
}

/// The front end's private state of one shared ring (`struct FRONT_RING`).
pub struct FrontRing<P: RingProtocol> {
    page: SharedPage,
    req_prod_pvt: u32,
    rsp_cons: u32,
    size: u32,
    _p: PhantomData<P>,
}

impl<P: RingProtocol> FrontRing<P> {
    /// Entries in this protocol's ring.
    pub const SIZE: u32 = ring_size(P::ENTRY_SIZE);

    /// Initialises the shared ring in `page` (`SHARED_RING_INIT` then
    /// `FRONT_RING_INIT`). Do this before granting the page to the backend.
    pub fn new(page: SharedPage) -> Self {
        const {
            assert!(
                ring_size(P::ENTRY_SIZE) > 0,
                "ring entries larger than a page"
            )
        };
        page.clear();
        page.store_u32(REQ_EVENT, 1);
        page.store_u32(RSP_EVENT, 1);
        wmb();
        Self {
            page,
            req_prod_pvt: 0,
            rsp_cons: 0,
            size: Self::SIZE,
            _p: PhantomData,
        }
    }

    /// The shared page.
    pub fn page(&self) -> SharedPage {
        self.page
    }

    /// Entries in the ring.
    pub fn size(&self) -> u32 {
        self.size
    }

    fn entry(&self, idx: u32) -> usize {
        HEADER_LEN + (idx & (self.size - 1)) as usize * P::ENTRY_SIZE
    }

    /// Requests produced whose responses we have not consumed.
    pub fn outstanding(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Free request entries (`RING_FREE_REQUESTS`).
    pub fn free_requests(&self) -> u32 {
        self.size - self.outstanding()
    }

    /// Queues a request privately; the backend sees it after
    /// [`push_requests`](Self::push_requests).
    pub fn queue(&mut self, req: &P::Request) -> Result<(), RingError> {
        if self.free_requests() == 0 {
            return Err(RingError::Full { size: self.size });
        }
        P::write_request(&self.page, self.entry(self.req_prod_pvt), req);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publishes queued requests; returns whether the backend asked to be notified
    /// (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`).
    pub fn push_requests(&mut self) -> bool {
        let old = self.page.load_u32(REQ_PROD);
        let new = self.req_prod_pvt;
        if old == new {
            return false;
        }
        wmb(); // backend sees requests before the index
        self.page.store_u32(REQ_PROD, new);
        mb(); // backend sees the new index before we read req_event
        let event = self.page.load_u32(REQ_EVENT);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Responses published and not yet consumed; an error when the backend's
    /// index runs ahead of our requests.
    pub fn unconsumed(&self) -> Result<u32, RingError> {
        let rsp_prod = self.page.load_u32(RSP_PROD);
        let n = rsp_prod.wrapping_sub(self.rsp_cons);
        if n > self.outstanding() {
            return Err(RingError::ResponsesAhead {
                rsp_prod,
                rsp_cons: self.rsp_cons,
                req_prod: self.req_prod_pvt,
            });
        }
        Ok(n)
    }

    /// Consumes the next response, if one is published.
    pub fn take_response(&mut self) -> Result<Option<P::Response>, RingError> {
        if self.unconsumed()? == 0 {
            return Ok(None);
        }
        rmb(); // read the entry only after seeing the index that publishes it
        let rsp = P::read_response(&self.page, self.entry(self.rsp_cons));
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(rsp))
    }

    /// After draining: asks for an event on the next response and re-checks, so a
    /// response published meanwhile is not missed (`RING_FINAL_CHECK_FOR_RESPONSES`).
    /// Returns whether more responses are waiting.
    pub fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
        if self.unconsumed()? > 0 {
            return Ok(true);
        }
        self.page
            .store_u32(RSP_EVENT, self.rsp_cons.wrapping_add(1));
        mb();
        Ok(self.unconsumed()? > 0)
    }
}

/// The back end of a ring, for the in-memory models in tests and fuzzing.
#[cfg(any(test, feature = "test-utils"))]
pub struct BackRing<P: RingProtocol> {
    page: SharedPage,
    /// Responses produced privately.
    pub rsp_prod_pvt: u32,
    /// Requests consumed.
    pub req_cons: u32,
    _p: PhantomData<P>,
}

#[cfg(any(test, feature = "test-utils"))]
impl<P: RingProtocol> BackRing<P> {
    /// The back end of the ring the front end initialised in `page`.
    pub fn new(page: SharedPage) -> Self {
        Self {
            page,
            rsp_prod_pvt: 0,
            req_cons: 0,
            _p: PhantomData,
        }
    }

    /// The shared page.
    pub fn page(&self) -> SharedPage {
        self.page
    }

    /// The entry offset of ring index `idx`.
    pub fn entry(&self, idx: u32) -> usize {
        HEADER_LEN + (idx & (FrontRing::<P>::SIZE - 1)) as usize * P::ENTRY_SIZE
    }

    /// The next unconsumed request's entry offset.
    pub fn next_request(&mut self) -> Option<usize> {
        let prod = self.page.load_u32(REQ_PROD);
        rmb();
        if prod == self.req_cons {
            return None;
        }
        let off = self.entry(self.req_cons);
        self.req_cons = self.req_cons.wrapping_add(1);
        Some(off)
    }

    /// The entry offset for the next response.
    pub fn response_slot(&mut self) -> usize {
        let off = self.entry(self.rsp_prod_pvt);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        off
    }

    /// Publishes responses; returns whether the front end asked to be notified.
    pub fn push_responses(&mut self) -> bool {
        let old = self.page.load_u32(RSP_PROD);
        let new = self.rsp_prod_pvt;
        wmb();
        self.page.store_u32(RSP_PROD, new);
        mb();
        let event = self.page.load_u32(RSP_EVENT);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Asks for an event on the next request (`RING_FINAL_CHECK_FOR_REQUESTS`).
    pub fn request_event(&self) {
        self.page
            .store_u32(REQ_EVENT, self.req_cons.wrapping_add(1));
        mb();
    }

    /// Overwrites `rsp_prod` directly (hostile back ends in tests).
    pub fn set_rsp_prod(&self, v: u32) {
        self.page.store_u32(RSP_PROD, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::tests_support::page;

    /// A toy protocol: a request is one u32, a response the u32 doubled.
    struct Toy;
    impl RingProtocol for Toy {
        type Request = u32;
        type Response = u32;
        const ENTRY_SIZE: usize = 8;
        fn write_request(page: &SharedPage, off: usize, req: &u32) {
            page.store_u32(off, *req);
        }
        fn read_response(page: &SharedPage, off: usize) -> u32 {
            page.load_u32(off + 4)
        }
    }

    #[test]
    fn sizes_match_the_c_macros() {
        assert_eq!(ring_size(8), 256); // netif rx
        assert_eq!(ring_size(12), 256); // netif tx
        assert_eq!(ring_size(112), 32); // blkif
        assert_eq!(FrontRing::<Toy>::SIZE, 256);
    }

    #[test]
    fn requests_and_responses_round_trip_across_wrap() {
        let p = page();
        let mut f = FrontRing::<Toy>::new(p);
        let mut b = BackRing::<Toy>::new(p);
        let mut next = 0u32;
        let mut got = 0u32;
        for _ in 0..10 {
            while f.free_requests() > 3 {
                f.queue(&next).unwrap();
                next += 1;
            }
            f.push_requests();
            while let Some(off) = b.next_request() {
                let v = p.load_u32(off);
                let r = b.response_slot();
                p.store_u32(r + 4, v * 2);
            }
            b.push_responses();
            while let Some(v) = f.take_response().unwrap() {
                assert_eq!(v, got * 2);
                got += 1;
            }
            assert!(!f.final_check_for_responses().unwrap());
        }
        assert_eq!(got, next);
        assert!(next > 2 * 256, "wrapped the ring at least twice");
    }

    #[test]
    fn full_ring_refuses_requests() {
        let p = page();
        let mut f = FrontRing::<Toy>::new(p);
        for i in 0..256 {
            f.queue(&i).unwrap();
        }
        assert_eq!(f.queue(&0), Err(RingError::Full { size: 256 }));
    }

    #[test]
    fn notify_only_when_the_backend_asked() {
        let p = page();
        let mut f = FrontRing::<Toy>::new(p);
        let mut b = BackRing::<Toy>::new(p);
        f.queue(&1).unwrap();
        assert!(
            f.push_requests(),
            "req_event starts at 1: first request notifies"
        );
        f.queue(&2).unwrap();
        assert!(!f.push_requests(), "backend has not asked again");
        while b.next_request().is_some() {}
        b.request_event();
        f.queue(&3).unwrap();
        assert!(f.push_requests(), "backend re-armed req_event");
        assert!(!f.push_requests(), "nothing new: no notify");
    }

    #[test]
    fn final_check_sees_a_late_response_and_arms_the_event() {
        let p = page();
        let mut f = FrontRing::<Toy>::new(p);
        let mut b = BackRing::<Toy>::new(p);
        f.queue(&5).unwrap();
        f.push_requests();
        assert!(!f.final_check_for_responses().unwrap());
        assert_eq!(p.load_u32(RSP_EVENT), 1);
        b.next_request().unwrap();
        b.response_slot();
        assert!(b.push_responses(), "front end asked for an event");
        assert!(f.final_check_for_responses().unwrap());
    }

    #[test]
    fn responses_running_ahead_are_an_error() {
        let p = page();
        let mut f = FrontRing::<Toy>::new(p);
        let b = BackRing::<Toy>::new(p);
        f.queue(&1).unwrap();
        f.push_requests();
        b.set_rsp_prod(2);
        assert!(matches!(
            f.take_response(),
            Err(RingError::ResponsesAhead { rsp_prod: 2, .. })
        ));
        b.set_rsp_prod(u32::MAX);
        assert!(f.take_response().is_err());
        b.set_rsp_prod(1);
        assert_eq!(f.take_response(), Ok(Some(0)));
        assert_eq!(f.take_response(), Ok(None));
    }
}
