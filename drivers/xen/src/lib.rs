//! Xen paravirtual I/O for Oasis, as a safe library the platform plugs into:
//! the shared-ring protocol, grant tables (v1), event channels (2-level ABI), a
//! xenstore client with xenbus helpers, and the netfront and blkfront drivers,
//! which implement [`oasis_devices::NetDevice`] and [`oasis_devices::BlockDevice`].
//!
//! # What is here
//!
//! - [`hv`]: the [`XenHypervisor`](hv::XenHypervisor) trait: the hypercalls and
//!   shared pages the drivers need. The platform implements it; tests use
//!   [`model`].
//! - [`page`]: [`SharedPage`](page::SharedPage), a page shared with another
//!   domain seen only as atomic 32-bit words, and the `wmb`/`rmb`/`mb` barriers.
//!   This is how the crate stays `#![forbid(unsafe_code)]`: data is copied in and
//!   out of granted pages (one copy per frame or block, into buffers allocated at
//!   setup), never lent as a byte slice.
//! - [`ring`]: the front end of `io/ring.h` rings, generic over the encoding.
//! - [`grant`], [`evtchn`], [`xenstore`] (with [`xenstore::xenbus`]).
//! - [`net`] (netfront) and [`blk`] (blkfront).
//!
//! Everything the other side writes (ring indices, response ids, lengths,
//! statuses, xenstore replies and nodes) is validated; a hostile back end gets an
//! error or a device marked broken, never a panic or an unbounded wait.
//!
//! # What is not yet wired
//!
//! No platform implements [`hv::XenHypervisor`] yet: the kvm platform's Xen
//! support (hypercall page, `shared_info` mapping, grant frames through
//! `XENMEM_add_to_physmap`, the event-channel upcall vector) is separate work, so
//! nothing here has run against a real Xen; it is tested against the in-memory
//! models of xenstored, netback and blkback in [`model`] and in the drivers' tests.
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
