//! Xen paravirtual I/O for Oasis, as a safe library the platform plugs into:
//! the shared-ring protocol, grant tables (v1), event channels (2-level ABI), a
//! xenstore client with xenbus helpers, and the netfront and blkfront drivers,
//! which implement [`oasis_devices::NetDevice`] and [`oasis_devices::BlockDevice`].
//!
//! # What is here
//!
//! - [`hv`]: the [`XenHypervisor`](hv::XenHypervisor) trait: the hypercalls and
//!   shared pages the drivers need. The platform implements it; tests use
//!   `model` (feature `test-utils`).
//! - [`page`]: [`SharedPage`](page::SharedPage), a page shared with another
//!   domain seen only as atomic 32-bit words, and the `wmb`/`rmb`/`mb` barriers.
//!   This is how the crate stays `#![forbid(unsafe_code)]`: data is copied in and
//!   out of granted pages (one copy per frame or block, into buffers allocated at
//!   setup), never lent as a byte slice.
//! - [`ring`]: the front end of `io/ring.h` rings, generic over the encoding.
//! - [`grant`], [`evtchn`], [`xenstore`] (with [`xenstore::xenbus`]).
//! - [`net`] (netfront) and [`blk`] (blkfront), which share one front-end life
//!   cycle (start, reaction to the back end's state, close, grant revocation) in
//!   the private `front` module.
//!
//! Everything the other side writes (ring indices, response ids, lengths,
//! statuses, xenstore replies and nodes) is validated; a hostile back end gets an
//! error or a device marked broken, never a panic or an unbounded wait.
//!
//! # How a platform plugs in
//!
//! 1. Implement [`hv::XenHypervisor`] with hypercalls. Pages from `alloc_page` and
//!    the views from `page`, `shared_info` and `grant_table_setup` are identity-
//!    mapped memory seen as [`page::PageWords`]; pages handed out never go back to
//!    the general heap (`free_page` returns them to a page pool), which is what
//!    makes the `'static` views sound.
//! 2. At boot: [`evtchn::EventChannels::new`] over `shared_info`, with the
//!    upcall (the `HVM_PARAM_CALLBACK_IRQ` vector) calling
//!    [`handle_upcall`](evtchn::EventChannels::handle_upcall) in interrupt
//!    context: atomics only, no allocation. One [`grant::GrantTable::new`] in a
//!    `RefCell`, shared by all drivers. [`xenstore::Xenstore::connect`].
//! 3. For each index in `XenbusDevice::list(xs, "vif")` / `"vbd"`:
//!    [`net::NetFront::new`] / [`blk::BlkFront::new`]; bind their `port()` with
//!    [`evtchn::EventChannels::bind`].
//! 4. In task context, for each fired port: `NetDevice::poll` or
//!    [`blk::BlkFront::poll`]. Watch each back end's `state` node and call
//!    `on_backend_change` when it fires (disconnect on Closing, reconnect from
//!    InitWait).
//!
//! # Where it runs
//!
//! The kvm platform implements [`hv::XenHypervisor`] (`oasis_kvm::XenHv`) and, in a
//! PVH domU, opens the first `vif` as [`net::NetFront`] and every `vbd` as
//! [`blk::BlkFront`] for the facade (`platform/kvm/src/xendev.rs`): `www` and `kv`
//! serve and persist there against Linux's netback and blkback
//! (`tests/tests/xen.rs`). The platform masks the devices' ports and idles in
//! `SCHEDOP_poll` on them instead of taking upcalls (step 2's upcall is not used),
//! and calls netfront's `on_backend_change` when its back end's `state` watch
//! fires (not yet blkfront's).
//! The in-memory models of xenstored, netback and blkback in `model` (feature
//! `test-utils`) test what real back ends do not provoke: hostile indices,
//! reconnection, revocation.
//! Not implemented: grant tables v2, the FIFO event-channel ABI, multi-page rings,
//! multiple queues, netfront scatter-gather/GSO/checksum offload (frames are at
//! most one page, `feature-no-csum-offload` is set), blkfront indirect
//! descriptors, persistent grants and discard.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

extern crate alloc;

pub mod blk;
pub mod evtchn;
mod front;
#[cfg(any(test, feature = "test-utils"))]
pub mod fuzz_targets;
pub mod grant;
pub mod hv;
pub mod net;
pub mod page;
pub mod ring;
pub mod xenstore;

#[cfg(any(test, feature = "test-utils"))]
pub mod model;
