//! The platform trait: the few hypercalls and shared pages the drivers need.
//!
//! The platform (platform/kvm running under Xen) implements [`XenHypervisor`] with
//! real hypercalls; tests implement it with `model::ModelXen` (feature `test-utils`). Nothing in
//! this crate issues a hypercall any other way.

use alloc::vec::Vec;

use crate::page::SharedPage;

/// A domain id (`domid_t`). Dom0 is 0.
pub type DomId = u16;

/// An event-channel port (`evtchn_port_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port(pub u32);

impl core::fmt::Display for Port {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `HVM_PARAM_STORE_PFN`: the xenstore ring's frame.
pub const HVM_PARAM_STORE_PFN: u32 = 1;
/// `HVM_PARAM_STORE_EVTCHN`: the xenstore event channel.
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;

/// A failed hypercall or platform request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HvError {
    /// The hypercall returned a negative errno.
    #[error("hypercall {op} failed with errno {errno}")]
    Hypercall {
        /// The operation, e.g. `EVTCHNOP_send`.
        op: &'static str,
        /// The (positive) errno Xen returned.
        errno: i32,
    },
    /// The platform has no free page to share.
    #[error("no free page to share with another domain")]
    NoPages,
    /// The frame is not one the platform can map.
    #[error("frame {pfn:#x} cannot be mapped")]
    BadFrame {
        /// The frame asked for.
        pfn: u64,
    },
}

/// Grant-table size (`GNTTABOP_query_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantTableSize {
    /// Frames currently set up.
    pub nr_frames: u32,
    /// Frames this domain may set up.
    pub max_nr_frames: u32,
}

/// What the drivers need from the platform. Methods take `&self`: the platform
/// implementation uses interior mutability where it keeps state.
pub trait XenHypervisor {
    /// `EVTCHNOP_alloc_unbound`: a fresh port that `remote` may bind to.
    fn evtchn_alloc_unbound(&self, remote: DomId) -> Result<Port, HvError>;
    /// `EVTCHNOP_send`: notifies the other end of `port`.
    fn evtchn_send(&self, port: Port) -> Result<(), HvError>;
    /// `EVTCHNOP_close`.
    fn evtchn_close(&self, port: Port) -> Result<(), HvError>;
    /// `EVTCHNOP_unmask`: clears the mask bit and re-delivers a pending event.
    fn evtchn_unmask(&self, port: Port) -> Result<(), HvError>;
    /// `GNTTABOP_query_size`.
    fn grant_table_query_size(&self) -> Result<GrantTableSize, HvError>;
    /// Sets up (`XENMEM_add_to_physmap` with `XENMAPSPACE_grant_table` on PVH)
    /// the first `frames` grant-table frames and returns views of them, in order.
    fn grant_table_setup(&self, frames: u32) -> Result<Vec<SharedPage>, HvError>;
    /// The `shared_info` page (event-channel bitmaps, time).
    fn shared_info(&self) -> SharedPage;
    /// `HVM_OP_get_param`.
    fn hvm_param(&self, index: u32) -> Result<u64, HvError>;
    /// A view of the guest frame `pfn` (e.g. the xenstore ring named by
    /// `HVM_PARAM_STORE_PFN`).
    fn page(&self, pfn: u64) -> Result<SharedPage, HvError>;
    /// A zeroed page of our own memory, to grant to a backend.
    fn alloc_page(&self) -> Result<SharedPage, HvError>;
    /// Returns a page from [`alloc_page`](Self::alloc_page) to the platform's pool.
    /// Call only once no grant to it is active.
    fn free_page(&self, page: SharedPage);
    /// Blocks until `port` is pending or `timeout_ns` passes (`SCHEDOP_poll`);
    /// returns whether the port fired. Used only on control paths (xenstore,
    /// xenbus handshakes); data paths never block.
    fn wait_event(&self, port: Port, timeout_ns: u64) -> Result<bool, HvError>;
}
