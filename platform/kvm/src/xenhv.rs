//! `oasis_xen::XenHypervisor` for this platform: the event-channel, grant-table,
//! HVM-parameter and scheduling hypercalls the Xen drivers need, `shared_info`, and
//! a pool of shared pages that never go back to the general heap.
//!
//! Events are waited for by polling (`SCHEDOP_poll` on the port, with a deadline in
//! Xen system time); no upcall vector is registered, so nothing runs in interrupt
//! context for Xen yet. Pages handed out by [`XenHv::alloc_page`] and the grant
//! frames are 4 KiB-aligned heap allocations that are leaked on purpose: a freed
//! page returns to [`POOL`] (zeroed on reuse), which is what makes the drivers'
//! `'static` views of them sound while a back end may still be writing.

use alloc::vec::Vec;
use core::alloc::Layout;

use oasis_xen::hv::{DomId, GrantTableSize, HvError, Port, XenHypervisor};
use oasis_xen::page::{PAGE_SIZE, PageWords, SharedPage};

use crate::xen::{
    DOMID_SELF, HYPERVISOR_EVENT_CHANNEL_OP, HYPERVISOR_MEMORY_OP, XENMEM_ADD_TO_PHYSMAP,
    XenAddToPhysmap, hypercall3,
};

const HYPERVISOR_GRANT_TABLE_OP: u32 = 20;
// event_channel.h
const EVTCHNOP_CLOSE: u64 = 3;
const EVTCHNOP_ALLOC_UNBOUND: u64 = 6;
const EVTCHNOP_UNMASK: u64 = 9;
// grant_table.h
const GNTTABOP_QUERY_SIZE: u64 = 6;
// memory.h
const XENMAPSPACE_GRANT_TABLE: u32 = 1;
/// `evtchn_pending` in `shared_info` (after 32 `vcpu_info`s of 64 bytes).
const SI_EVTCHN_PENDING: u64 = 2048;
/// Ports in the 2-level ABI on x86-64.
const MAX_PORTS: u32 = 64 * 64;
/// Pages the pool may hold for reuse; more are still never freed (see the module
/// doc), only not tracked, which bounds the pool's own memory.
const POOL_MAX: usize = 1024;

/// Free shared pages (addresses), zeroed when handed out again.
static POOL: spin::Mutex<Vec<u64>> = spin::Mutex::new(Vec::new());

/// The platform's [`XenHypervisor`]. Only usable on Xen (every method errs with
/// `ENOSYS` elsewhere, as the hypercalls do).
#[derive(Debug, Clone, Copy, Default)]
pub struct XenHv;

fn fail(op: &'static str, rc: i64) -> HvError {
    HvError::Hypercall {
        op,
        errno: i32::try_from(-rc).unwrap_or(i32::MAX),
    }
}

/// `Err(ENOSYS)` when not on Xen (no hypercall page).
fn on_xen(op: &'static str) -> Result<(), HvError> {
    crate::xen::get()
        .map(|_| ())
        .ok_or(HvError::Hypercall { op, errno: 38 })
}

/// The drivers' error for a failed platform hypercall (`op` names one that failed
/// for another reason than its errno).
fn hv_error(op: &'static str, e: crate::xen::XenError) -> HvError {
    match e {
        crate::xen::XenError::Hypercall { what, errno } => HvError::Hypercall {
            op: what,
            errno: i32::try_from(errno).unwrap_or(i32::MAX),
        },
        _ => HvError::Hypercall { op, errno: 22 },
    }
}

/// An event-channel operation whose argument is one `evtchn_port_t`.
fn evtchn_port_op(op: &'static str, cmd: u64, port: Port) -> Result<(), HvError> {
    let arg = port.0;
    // SAFETY: `cmd` is CLOSE or UNMASK, whose argument is a struct of one u32 port
    // that Xen only reads, and `arg` lives across the call.
    unsafe {
        crate::xen::op_with_arg(
            op,
            HYPERVISOR_EVENT_CHANNEL_OP,
            cmd,
            (&raw const arg).cast(),
        )
    }
    .map_err(|e| hv_error(op, e))
}

/// A `'static` word view of the page at `addr`.
///
/// # Safety
/// `addr` must be a 4 KiB-aligned, identity-mapped page that is never given back
/// to the general heap and that nothing accesses other than through atomics.
unsafe fn view(addr: u64) -> SharedPage {
    // SAFETY: per the caller: aligned (AtomicU32 needs 4), mapped, never freed, so a
    // `'static` shared reference to its words is valid; atomics tolerate concurrent
    // writes by Xen or another domain.
    let words = unsafe { &*(addr as *const PageWords) };
    SharedPage::new(addr / PAGE_SIZE as u64, words)
}

/// A zeroed page from the pool or, when it is empty, a fresh (leaked) heap page.
fn take_page() -> Result<u64, HvError> {
    if let Some(addr) = POOL.lock().pop() {
        // SAFETY: pooled pages are ours (allocated below, never freed); nothing holds
        // a grant to one (`free_page`'s contract), so zeroing it races with no one.
        unsafe { core::ptr::write_bytes(addr as *mut u8, 0, PAGE_SIZE) };
        return Ok(addr);
    }
    let layout = Layout::from_size_align(PAGE_SIZE, PAGE_SIZE).map_err(|_| HvError::NoPages)?;
    // SAFETY: the layout is non-zero-sized; a null result is handled.
    let p = unsafe { alloc::alloc::alloc_zeroed(layout) };
    if p.is_null() {
        return Err(HvError::NoPages);
    }
    Ok(p as u64)
}

impl XenHypervisor for XenHv {
    fn evtchn_alloc_unbound(&self, remote: DomId) -> Result<Port, HvError> {
        const OP: &str = "EVTCHNOP_alloc_unbound";
        on_xen(OP)?;
        /// `struct evtchn_alloc_unbound`.
        #[repr(C)]
        struct Arg {
            dom: u16,
            remote_dom: u16,
            port: u32,
        }
        let mut arg = Arg {
            dom: DOMID_SELF,
            remote_dom: remote,
            port: 0,
        };
        let argp = &raw mut arg;
        // SAFETY: on Xen; `arg` lives on our stack across the call; Xen writes `port`.
        let rc = unsafe {
            hypercall3(
                HYPERVISOR_EVENT_CHANNEL_OP,
                EVTCHNOP_ALLOC_UNBOUND,
                argp as u64,
                0,
            )
        };
        if rc < 0 {
            return Err(fail(OP, rc));
        }
        // SAFETY: Xen wrote `arg.port`; volatile since the write is invisible to rustc.
        let port = unsafe { core::ptr::read_volatile(&raw const (*argp).port) };
        if port >= MAX_PORTS {
            return Err(HvError::Hypercall { op: OP, errno: 34 }); // ERANGE
        }
        Ok(Port(port))
    }

    fn evtchn_send(&self, port: Port) -> Result<(), HvError> {
        crate::xen::evtchn_send(port.0).map_err(|e| hv_error("EVTCHNOP_send", e))
    }

    fn evtchn_close(&self, port: Port) -> Result<(), HvError> {
        evtchn_port_op("EVTCHNOP_close", EVTCHNOP_CLOSE, port)
    }

    fn evtchn_unmask(&self, port: Port) -> Result<(), HvError> {
        evtchn_port_op("EVTCHNOP_unmask", EVTCHNOP_UNMASK, port)
    }

    fn grant_table_query_size(&self) -> Result<GrantTableSize, HvError> {
        const OP: &str = "GNTTABOP_query_size";
        on_xen(OP)?;
        /// `struct gnttab_query_size`.
        #[repr(C)]
        struct Arg {
            dom: u16,
            _pad: u16,
            nr_frames: u32,
            max_nr_frames: u32,
            status: i16,
        }
        let mut arg = Arg {
            dom: DOMID_SELF,
            _pad: 0,
            nr_frames: 0,
            max_nr_frames: 0,
            status: 0,
        };
        let argp = &raw mut arg;
        // SAFETY: on Xen; one `Arg` (count 1) on our stack across the call.
        let rc = unsafe {
            hypercall3(
                HYPERVISOR_GRANT_TABLE_OP,
                GNTTABOP_QUERY_SIZE,
                argp as u64,
                1,
            )
        };
        // SAFETY: Xen wrote the out fields (volatile: invisible to rustc).
        let (status, nr, max) = unsafe {
            (
                core::ptr::read_volatile(&raw const (*argp).status),
                core::ptr::read_volatile(&raw const (*argp).nr_frames),
                core::ptr::read_volatile(&raw const (*argp).max_nr_frames),
            )
        };
        if rc < 0 {
            return Err(fail(OP, rc));
        }
        if status != 0 {
            return Err(fail(OP, i64::from(status)));
        }
        Ok(GrantTableSize {
            nr_frames: nr,
            max_nr_frames: max,
        })
    }

    fn grant_table_setup(&self, frames: u32) -> Result<Vec<SharedPage>, HvError> {
        const OP: &str = "XENMEM_add_to_physmap(grant_table)";
        on_xen(OP)?;
        let mut out = Vec::new();
        out.try_reserve(frames as usize)
            .map_err(|_| HvError::NoPages)?;
        for idx in 0..frames {
            // The frame replaces a page of ours in the physical map; that page is
            // never freed, so nothing else ever uses its address.
            let addr = take_page()?;
            let arg = XenAddToPhysmap {
                domid: DOMID_SELF,
                size: 0,
                space: XENMAPSPACE_GRANT_TABLE,
                idx: u64::from(idx),
                gpfn: addr / PAGE_SIZE as u64,
            };
            // SAFETY: on Xen; `arg` lives across the call; the target frame is a page
            // we own and no longer use (see above).
            let rc = unsafe {
                hypercall3(
                    HYPERVISOR_MEMORY_OP,
                    XENMEM_ADD_TO_PHYSMAP,
                    (&raw const arg) as u64,
                    0,
                )
            };
            if rc < 0 {
                POOL.lock().push(addr);
                return Err(fail(OP, rc));
            }
            // SAFETY: the page is aligned, identity-mapped, never freed (leaked from
            // the heap and now backed by Xen's grant frame).
            out.push(unsafe { view(addr) });
        }
        Ok(out)
    }

    fn shared_info(&self) -> SharedPage {
        match crate::xen::shared_info_addr() {
            // SAFETY: `SHARED_INFO` is a page-aligned static backed by Xen's
            // shared_info; it lives forever and is read elsewhere only volatilely.
            Some(addr) => unsafe { view(addr) },
            // Not mapped (not on Xen): a private zero page, so callers see no events.
            None => {
                static ZERO: PageWords = [const { core::sync::atomic::AtomicU32::new(0) }; 1024];
                SharedPage::new(0, &ZERO)
            }
        }
    }

    fn hvm_param(&self, index: u32) -> Result<u64, HvError> {
        crate::xen::hvm_param(index).map_err(|e| hv_error("HVMOP_get_param", e))
    }

    fn page(&self, pfn: u64) -> Result<SharedPage, HvError> {
        let addr = pfn
            .checked_mul(PAGE_SIZE as u64)
            .filter(|&a| a != 0 && a < (1 << 32))
            .ok_or(HvError::BadFrame { pfn })?;
        // A special page (xenstore, console) lies outside RAM; a frame inside RAM
        // would alias our heap or image.
        if crate::mem::is_ram(addr) {
            return Err(HvError::BadFrame { pfn });
        }
        // SAFETY: below 4 GiB outside RAM: identity-mapped (uncached) by the boot and
        // final page tables, never part of the heap.
        Ok(unsafe { view(addr) })
    }

    fn alloc_page(&self) -> Result<SharedPage, HvError> {
        let addr = take_page()?;
        // SAFETY: a page of ours, aligned, never freed (pool or leaked).
        Ok(unsafe { view(addr) })
    }

    fn free_page(&self, page: SharedPage) {
        let mut pool = POOL.lock();
        if pool.len() < POOL_MAX && pool.try_reserve(1).is_ok() {
            pool.push(page.pfn() * PAGE_SIZE as u64);
        }
    }

    fn wait_event(&self, port: Port, timeout_ns: u64) -> Result<bool, HvError> {
        const OP: &str = "SCHEDOP_poll";
        on_xen(OP)?;
        if port.0 >= MAX_PORTS {
            return Err(HvError::Hypercall { op: OP, errno: 22 });
        }
        let Some(si) = crate::xen::shared_info_addr() else {
            return Err(HvError::Hypercall { op: OP, errno: 38 });
        };
        let word = si + SI_EVTCHN_PENDING + u64::from(port.0 / 64) * 8;
        let bit = 1u64 << (port.0 % 64);
        // SAFETY: `word` is inside the mapped shared_info page (port < MAX_PORTS),
        // 8-aligned; Xen sets bits there concurrently, so the access is atomic.
        let pending = unsafe { &*(word as *const core::sync::atomic::AtomicU64) };
        let take = || pending.fetch_and(!bit, core::sync::atomic::Ordering::SeqCst) & bit != 0;
        if take() {
            return Ok(true);
        }
        let timeout = crate::xen::system_time_ns().saturating_add(timeout_ns);
        crate::xen::sched_poll(&[port.0], Some(timeout)).map_err(|e| hv_error(OP, e))?;
        Ok(take())
    }
}
