//! Event channels, 2-level ABI: scanning the pending and mask bitmaps in
//! `shared_info` and dispatching ports.
//!
//! Xen sets a port's bit in `evtchn_pending`, then (unless masked) its selector
//! bit in vCPU 0's `evtchn_pending_sel` and `evtchn_upcall_pending`, and raises
//! the upcall. [`EventChannels::handle_upcall`] runs in interrupt context: it
//! only does atomic operations on `shared_info` and on its own `fired` bitmap, and
//! never allocates. Tasks then [`take`](EventChannels::take) or
//! [`dispatch`](EventChannels::dispatch) the ports that fired.
//!
//! `shared_info` layout (x86_64): 32 `vcpu_info` of 64 bytes (byte 0
//! `evtchn_upcall_pending`, byte 1 `evtchn_upcall_mask`, bytes 8..16
//! `evtchn_pending_sel`), then `evtchn_pending[64]` at 2048 and `evtchn_mask[64]`
//! at 2560, each 64-bit words.

use core::sync::atomic::{AtomicU64, Ordering};

use alloc::vec::Vec;

use crate::hv::{HvError, Port, XenHypervisor};
use crate::page::SharedPage;

/// Ports in the 2-level ABI on a 64-bit guest (64 × 64).
pub const NR_PORTS: u32 = 4096;
const UPCALL_PENDING: usize = 0;
const PENDING_SEL: usize = 8;
const PENDING: usize = 2048;
const MASK: usize = 2560;
/// Rounds of selector scanning per upcall before leaving the rest for the next.
const MAX_ROUNDS: usize = 8;
/// No handler bound.
const UNBOUND: u16 = u16::MAX;

/// Event-channel state over `shared_info`.
pub struct EventChannels {
    shared: SharedPage,
    fired: [AtomicU64; 64],
    handlers: Vec<u16>,
}

impl EventChannels {
    /// Event channels over the `shared_info` page.
    pub fn new(shared_info: SharedPage) -> Self {
        Self {
            shared: shared_info,
            fired: [const { AtomicU64::new(0) }; 64],
            handlers: alloc::vec![UNBOUND; NR_PORTS as usize],
        }
    }

    fn bit(port: Port) -> Option<(usize, u32)> {
        (port.0 < NR_PORTS).then_some(((port.0 / 64) as usize, port.0 % 64))
    }

    /// Byte offset and mask of `port`'s bit within one 64-bit bitmap word, as a
    /// 32-bit half word.
    fn half(base: usize, port: Port) -> Option<(usize, u32)> {
        let (w, b) = Self::bit(port)?;
        Some((base + w * 8 + (b as usize / 32) * 4, 1 << (b % 32)))
    }

    /// Interrupt context: collects pending, unmasked ports into the `fired` set
    /// and clears their pending bits. Returns how many ports fired.
    pub fn handle_upcall(&self) -> usize {
        let s = &self.shared;
        let mut n = 0;
        for _ in 0..MAX_ROUNDS {
            s.fetch_and_u32(UPCALL_PENDING, !0xff);
            // Take the selector half by half: a bit Xen sets meanwhile in the other
            // half stays set for the next round.
            let sel = u64::from(s.swap_u32(PENDING_SEL, 0))
                | (u64::from(s.swap_u32(PENDING_SEL + 4, 0)) << 32);
            if sel == 0 {
                break;
            }
            let mut bits = sel;
            while bits != 0 {
                let w = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let mut ready = s.load_u64(PENDING + w * 8) & !s.load_u64(MASK + w * 8);
                while ready != 0 {
                    let b = ready.trailing_zeros();
                    ready &= ready - 1;
                    let off = PENDING + w * 8 + (b as usize / 32) * 4;
                    s.fetch_and_u32(off, !(1 << (b % 32)));
                    self.fired[w].fetch_or(1 << b, Ordering::AcqRel);
                    n += 1;
                }
            }
        }
        n
    }

    /// Whether `port` fired since the last take; clears the record.
    pub fn take(&self, port: Port) -> bool {
        match Self::bit(port) {
            Some((w, b)) => self.fired[w].fetch_and(!(1 << b), Ordering::AcqRel) & (1 << b) != 0,
            None => false,
        }
    }

    /// Associates `port` with a handler index for [`dispatch`](Self::dispatch).
    pub fn bind(&mut self, port: Port, handler: u16) -> Result<(), EvtchnError> {
        let slot = self
            .handlers
            .get_mut(port.0 as usize)
            .ok_or(EvtchnError::PortOutOfRange(port))?;
        *slot = handler;
        Ok(())
    }

    /// Removes `port`'s handler.
    pub fn unbind(&mut self, port: Port) {
        if let Some(h) = self.handlers.get_mut(port.0 as usize) {
            *h = UNBOUND;
        }
    }

    /// Task context: calls `f(port, handler)` for every fired port with a bound
    /// handler, clearing their records; returns how many were dispatched. Fired
    /// ports without a handler are dropped.
    pub fn dispatch(&self, mut f: impl FnMut(Port, u16)) -> usize {
        let mut n = 0;
        for (w, word) in self.fired.iter().enumerate() {
            let mut bits = word.swap(0, Ordering::AcqRel);
            while bits != 0 {
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                let port = Port(w as u32 * 64 + b);
                let h = self
                    .handlers
                    .get(port.0 as usize)
                    .copied()
                    .unwrap_or(UNBOUND);
                if h != UNBOUND {
                    f(port, h);
                    n += 1;
                }
            }
        }
        n
    }

    /// Masks `port` (its events stay pending but raise no upcall).
    pub fn mask(&self, port: Port) {
        if let Some((off, m)) = Self::half(MASK, port) {
            self.shared.fetch_or_u32(off, m);
        }
    }

    /// Unmasks `port` through Xen, which re-delivers an event that arrived while
    /// masked.
    pub fn unmask<H: XenHypervisor>(&self, hv: &H, port: Port) -> Result<(), EvtchnError> {
        if Self::bit(port).is_none() {
            return Err(EvtchnError::PortOutOfRange(port));
        }
        hv.evtchn_unmask(port).map_err(EvtchnError::Hypervisor)
    }

    /// Clears `port`'s pending bit in `shared_info`; whether it was set. For a
    /// guest that waits with `SCHEDOP_poll` on masked ports instead of taking
    /// upcalls: clear first, then look at the rings, so an event that arrives in
    /// between leaves the bit set and ends the next poll at once.
    pub fn take_pending(&self, port: Port) -> bool {
        Self::half(PENDING, port)
            .is_some_and(|(off, m)| self.shared.fetch_and_u32(off, !m) & m != 0)
    }

    /// Whether `port`'s pending bit is set in `shared_info`.
    pub fn is_pending(&self, port: Port) -> bool {
        Self::half(PENDING, port).is_some_and(|(off, m)| self.shared.load_u32(off) & m != 0)
    }
}

/// Sets `port` pending as Xen does (for the models): pending bit, selector bit,
/// upcall flag, unless masked. Returns whether an upcall would be raised.
#[cfg(any(test, feature = "test-utils"))]
pub fn raise(shared: &SharedPage, port: Port) -> bool {
    let Some((off, m)) = EventChannels::half(PENDING, port) else {
        return false;
    };
    if shared.fetch_or_u32(off, m) & m != 0 {
        return false;
    }
    let Some((moff, mm)) = EventChannels::half(MASK, port) else {
        return false;
    };
    if shared.load_u32(moff) & mm != 0 {
        return false;
    }
    let w = port.0 / 64;
    shared.fetch_or_u32(PENDING_SEL + (w as usize / 32) * 4, 1 << (w % 32));
    shared.fetch_or_u32(UPCALL_PENDING, 1);
    true
}

/// What went wrong with an event channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EvtchnError {
    /// The 2-level ABI has 4096 ports.
    #[error("port {0} is out of range (the 2-level ABI has 4096 ports)")]
    PortOutOfRange(Port),
    /// The hypercall failed.
    #[error("event channel hypercall: {0}")]
    Hypervisor(HvError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::tests_support::page;

    #[test]
    fn upcall_collects_unmasked_ports_and_clears_pending() {
        let s = page();
        let mut ev = EventChannels::new(s);
        for p in [3, 64, 65, 4095] {
            assert!(raise(&s, Port(p)));
        }
        ev.mask(Port(100));
        assert!(!raise(&s, Port(100)), "masked: no upcall");
        assert_eq!(ev.handle_upcall(), 4);
        assert_eq!(s.load_u8(UPCALL_PENDING), 0);
        assert!(!ev.is_pending(Port(3)));
        assert!(ev.is_pending(Port(100)), "masked port stays pending");
        assert!(ev.take(Port(4095)));
        assert!(!ev.take(Port(4095)), "take clears");
        ev.bind(Port(64), 1).unwrap();
        ev.bind(Port(3), 0).unwrap();
        let mut seen = alloc::vec::Vec::new();
        assert_eq!(
            ev.dispatch(|p, h| seen.push((p, h))),
            2,
            "65 has no handler"
        );
        assert_eq!(seen, [(Port(3), 0), (Port(64), 1)]);
        assert_eq!(ev.dispatch(|_, _| {}), 0);
        assert_eq!(
            ev.bind(Port(5000), 1),
            Err(EvtchnError::PortOutOfRange(Port(5000)))
        );
        assert!(!ev.take(Port(5000)));
        assert!(!raise(&s, Port(5000)));
    }

    #[test]
    fn take_pending_clears_only_its_own_bit_masked_or_not() {
        let s = page();
        let ev = EventChannels::new(s);
        ev.mask(Port(33));
        assert!(!raise(&s, Port(33)), "masked: no upcall");
        raise(&s, Port(32));
        raise(&s, Port(97));
        assert!(ev.take_pending(Port(33)), "a masked port's event is seen");
        assert!(!ev.take_pending(Port(33)), "and cleared");
        assert!(
            ev.is_pending(Port(32)),
            "its neighbour in the half word stays"
        );
        assert!(ev.take_pending(Port(97)), "upper half of a 64-bit word");
        assert!(!ev.is_pending(Port(97)));
        assert!(!ev.take_pending(Port(4096)), "out of range: never pending");
    }

    #[test]
    fn unmask_goes_through_the_hypervisor() {
        use crate::model::ModelXen;
        let hv = ModelXen::new();
        let s = hv.shared_info();
        let ev = EventChannels::new(s);
        ev.mask(Port(70));
        assert!(!raise(&s, Port(70)));
        assert_eq!(ev.handle_upcall(), 0, "masked port does not fire");
        ev.unmask(&hv, Port(70)).unwrap();
        assert!(ev.is_pending(Port(70)), "still pending after unmask");
        assert_eq!(
            ev.unmask(&hv, Port(4096)),
            Err(EvtchnError::PortOutOfRange(Port(4096)))
        );
    }

    #[test]
    fn a_selector_bit_without_pending_ports_is_harmless() {
        let s = page();
        let ev = EventChannels::new(s);
        s.store_u32(PENDING_SEL, u32::MAX);
        s.store_u32(PENDING_SEL + 4, u32::MAX);
        s.store_u32(UPCALL_PENDING, 1);
        assert_eq!(ev.handle_upcall(), 0);
        assert_eq!(s.load_u64(PENDING_SEL), 0);
    }
}
