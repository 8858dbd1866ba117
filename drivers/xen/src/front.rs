//! What netfront and blkfront share: a front end's xenbus life cycle (start,
//! reaction to the back end's state, clean close), the grant setup of its ring
//! and the revocation of grants a back end still holds when the connection goes.

use alloc::vec::Vec;

use crate::grant::{GrantError, GrantRef, GrantTable, SharedGrants};
use crate::hv::{DomId, HvError, XenHypervisor};
use crate::page::SharedPage;
use crate::ring::{FrontRing, RingProtocol};
use crate::xenstore::Xenstore;
use crate::xenstore::xenbus::{XenbusDevice, XenbusError, XenbusState};

/// A front-end driver, as the shared life cycle drives it.
pub(crate) trait Frontend<'h, H: XenHypervisor + 'h> {
    /// The driver's setup error.
    type Error: From<XenbusError>;
    /// The driver's name in logs.
    const NAME: &'static str;
    /// The xenbus device.
    fn device(&self) -> &XenbusDevice;
    /// Whether rings are set up (connected, perhaps broken since).
    fn is_connected(&mut self) -> bool;
    /// Whether no fault stopped the device.
    fn is_healthy(&mut self) -> bool;
    /// Sets up rings and grants, publishes them and waits for the back end to
    /// connect.
    fn connect(&mut self, xs: &mut Xenstore<'h, H>) -> Result<(), Self::Error>;
    /// Tears the connection down; does nothing when not connected.
    fn disconnect(&mut self);
    /// Retries revoking the grants the back end held at the last disconnect.
    fn retry_revokes(&mut self);
}

/// The first connection: Initialising, wait for the back end's InitWait,
/// connect.
pub(crate) fn start<'h, H: XenHypervisor + 'h, F: Frontend<'h, H>>(
    f: &mut F,
    xs: &mut Xenstore<'h, H>,
) -> Result<(), F::Error> {
    f.device().switch_state(xs, XenbusState::Initialising)?;
    f.device().wait_for_state(xs, XenbusState::InitWait)?;
    f.connect(xs)
}

/// Reacts to a change of the back end's state: Closing/Closed tears the
/// connection down and writes Closed; InitWait while disconnected connects
/// again (tearing down what a failed attempt set up). Returns whether the device
/// is connected and working.
pub(crate) fn on_backend_change<'h, H: XenHypervisor + 'h, F: Frontend<'h, H>>(
    f: &mut F,
    xs: &mut Xenstore<'h, H>,
) -> Result<bool, F::Error> {
    f.retry_revokes();
    let connected = f.is_connected();
    match f.device().backend_state(xs)? {
        s @ (XenbusState::Closing | XenbusState::Closed) if connected => {
            log::warn!(
                "{} {}: back end is {s:?}; disconnecting",
                F::NAME,
                f.device().frontend
            );
            f.disconnect();
            f.device().switch_state(xs, XenbusState::Closed)?;
            Ok(false)
        }
        XenbusState::InitWait if !connected => {
            f.device().switch_state(xs, XenbusState::Initialising)?;
            match f.connect(xs) {
                Ok(()) => Ok(true),
                Err(e) => {
                    f.disconnect();
                    Err(e)
                }
            }
        }
        _ => Ok(connected && f.is_healthy()),
    }
}

/// Closes cleanly: writes Closing, waits (bounded) for the back end to let go
/// of the rings (Closed, or back to InitWait), disconnects and writes Closed.
/// A failed wait is reported after the teardown, which happens regardless.
pub(crate) fn close<'h, H: XenHypervisor + 'h, F: Frontend<'h, H>>(
    f: &mut F,
    xs: &mut Xenstore<'h, H>,
) -> Result<(), F::Error> {
    f.device().switch_state(xs, XenbusState::Closing)?;
    let r = f.device().wait_backend(
        xs,
        |s| {
            matches!(
                s,
                XenbusState::Closed | XenbusState::InitWait | XenbusState::Unknown
            )
        },
        |_| false,
    );
    f.disconnect();
    f.device().switch_state(xs, XenbusState::Closed)?;
    r?;
    Ok(())
}

/// A fresh ring page, granted writable to `backend`, as a front ring with its
/// grant. The page goes back to the platform if the grant fails.
pub(crate) fn new_ring<P: RingProtocol, H: XenHypervisor, E: From<HvError> + From<GrantError>>(
    hv: &H,
    gnt: &mut GrantTable,
    backend: DomId,
) -> Result<(FrontRing<P>, GrantRef), E> {
    let page = hv.alloc_page()?;
    match gnt.grant_access(backend, page.pfn(), false) {
        Ok(gref) => Ok((FrontRing::new(page), gref)),
        Err(e) => {
            hv.free_page(page);
            Err(e.into())
        }
    }
}

/// Pages whose grant the back end still held when we revoked it, each with its
/// grant; a page is freed only once a retry revokes its grant.
#[derive(Default)]
pub(crate) struct Revoking(Vec<(SharedPage, GrantRef)>);

impl Revoking {
    /// Pages waiting.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Queues a ring page (its grant is revoked by the next retry).
    pub(crate) fn push(&mut self, page: SharedPage, gref: GrantRef) {
        self.0.push((page, gref));
    }

    /// Revokes the grant of every buffer (a page and its grant, if granted),
    /// then retries the queue. A buffer the back end still holds is queued and
    /// gets a fresh page; without a fresh page it keeps its page and grant.
    pub(crate) fn revoke<'a, H: XenHypervisor>(
        &mut self,
        name: &str,
        hv: &H,
        gnt: &SharedGrants,
        buffers: impl Iterator<Item = (&'a mut SharedPage, &'a mut Option<GrantRef>)>,
    ) {
        let Some(mut gnt) = gnt.try_lock() else {
            log::error!("{name}: grant table busy; buffers abandoned");
            return;
        };
        for (page, granted) in buffers {
            let Some(g) = granted.take() else { continue };
            if gnt.end_access(g).is_ok() {
                continue;
            }
            match hv.alloc_page() {
                Ok(fresh) => self.0.push((core::mem::replace(page, fresh), g)),
                Err(e) => {
                    // Keep the page (still granted) rather than have none.
                    log::error!("{name}: no page to replace a busy buffer: {e}");
                    *granted = Some(g);
                }
            }
        }
        self.retry_with(name, hv, &mut gnt);
    }

    /// Retries revoking the queued grants; frees their pages when done. Does
    /// nothing while the grant table is borrowed elsewhere.
    pub(crate) fn retry<H: XenHypervisor>(&mut self, name: &str, hv: &H, gnt: &SharedGrants) {
        if self.0.is_empty() {
            return;
        }
        if let Some(mut gnt) = gnt.try_lock() {
            self.retry_with(name, hv, &mut gnt);
        }
    }

    fn retry_with<H: XenHypervisor>(&mut self, name: &str, hv: &H, gnt: &mut GrantTable) {
        self.0.retain(|(page, g)| match gnt.end_access(*g) {
            Ok(()) => {
                hv.free_page(*page);
                false
            }
            Err(GrantError::InUse(_)) => true,
            Err(e) => {
                log::error!("{name}: revoking {g:?}: {e}");
                false
            }
        });
    }

    /// At drop, after the last disconnect: returns every buffer whose grant was
    /// revoked to the platform. Pages still granted (the back end holds them),
    /// buffers and queued alike, are never freed.
    pub(crate) fn free_buffers<'a, H: XenHypervisor>(
        &self,
        name: &str,
        dev: &XenbusDevice,
        hv: &H,
        buffers: impl Iterator<Item = (&'a SharedPage, &'a Option<GrantRef>)>,
    ) {
        for (page, granted) in buffers {
            if granted.is_none() {
                hv.free_page(*page);
            }
        }
        if !self.0.is_empty() {
            log::error!(
                "{name} {}: {} pages still granted at drop; never freed",
                dev.frontend,
                self.0.len()
            );
        }
    }
}

/// Grants each buffer's page to `backend` (read-only if `readonly`), recording
/// the grant beside it.
pub(crate) fn grant_buffers<'a>(
    gnt: &mut GrantTable,
    backend: DomId,
    readonly: bool,
    buffers: impl Iterator<Item = (&'a SharedPage, &'a mut Option<GrantRef>)>,
) -> Result<(), GrantError> {
    for (page, granted) in buffers {
        *granted = Some(gnt.grant_access(backend, page.pfn(), readonly)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelXen;
    use crate::net::NetTx;

    #[test]
    fn a_ring_whose_grant_fails_gives_its_page_back() {
        let hv = ModelXen::new();
        let mut gnt = GrantTable::new(&hv, 1).unwrap();
        let page = hv.alloc_page().unwrap();
        while gnt.grant_access(0, page.pfn(), false).is_ok() {}
        let before = hv.allocated_pages();
        let r = new_ring::<NetTx, _, crate::net::NetError>(&hv, &mut gnt, 0);
        assert!(matches!(
            r,
            Err(crate::net::NetError::Grant(GrantError::Exhausted { .. }))
        ));
        assert_eq!(hv.allocated_pages(), before, "the ring page was freed");
    }

    #[test]
    fn revoke_queues_held_buffers_on_fresh_pages_and_retry_frees_them() {
        let hv = ModelXen::new();
        let gnt = SharedGrants::new(GrantTable::new(&hv, 1).unwrap());
        let mut pages = [hv.alloc_page().unwrap(), hv.alloc_page().unwrap()];
        let mut grants = [None, None];
        let bufs = pages.iter().zip(grants.iter_mut());
        grant_buffers(&mut gnt.lock(), 0, false, bufs).unwrap();
        let held = grants[1].unwrap();
        hv.map_grant(held, 0, true, true).unwrap();
        let (old0, old1) = (pages[0], pages[1]);
        let mut rev = Revoking::default();
        rev.revoke("test", &hv, &gnt, pages.iter_mut().zip(grants.iter_mut()));
        assert_eq!(grants, [None, None]);
        assert_eq!(
            pages[0].pfn(),
            old0.pfn(),
            "a revoked buffer keeps its page"
        );
        assert_ne!(
            pages[1].pfn(),
            old1.pfn(),
            "a held buffer gets a fresh page"
        );
        assert_eq!(rev.len(), 1);
        assert_eq!(hv.allocated_pages(), 3);
        rev.retry("test", &hv, &gnt);
        assert_eq!(rev.len(), 1, "still held");
        hv.unmap_grant(held);
        rev.retry("test", &hv, &gnt);
        assert_eq!(rev.len(), 0);
        assert_eq!(
            hv.allocated_pages(),
            2,
            "the held page was freed once revoked"
        );
        let g = gnt.lock();
        assert_eq!(g.free(), g.capacity());
    }
}
