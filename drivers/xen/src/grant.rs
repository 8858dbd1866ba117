//! Grant tables, version 1 (`grant_table.h`): granting a backend access to our
//! pages, and revoking it only when the backend no longer uses them.
//!
//! An entry is 8 bytes: `flags` (16 bits) and `domid` (16 bits) in the first word,
//! `frame` in the second. Xen reads an entry once `flags` says
//! `GTF_permit_access`, and sets `GTF_reading`/`GTF_writing` with a 32-bit
//! compare-and-exchange on the first word while a backend has the page mapped. So:
//! the frame is written before the flags (with a write barrier between), and
//! revoking is a compare-and-exchange that fails while either busy bit is set.
//! Free references are a linked list threaded through one array allocated at
//! setup: granting and revoking allocate nothing.

use alloc::vec::Vec;

use crate::hv::{DomId, HvError, XenHypervisor};
use crate::page::{SharedPage, wmb};

/// A grant reference (`grant_ref_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrantRef(pub u32);

/// Entries per 4 KiB grant-table frame (v1: 8 bytes each).
pub const ENTRIES_PER_FRAME: u32 = 512;
/// References 0..8 are reserved for the toolstack (console, xenstore).
pub const NR_RESERVED_ENTRIES: u32 = 8;

/// `GTF_permit_access`.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// `GTF_readonly`: the peer may only read.
pub const GTF_READONLY: u16 = 1 << 2;
/// `GTF_reading`: the peer has the frame mapped for reading.
pub const GTF_READING: u16 = 1 << 3;
/// `GTF_writing`: the peer has the frame mapped for writing.
pub const GTF_WRITING: u16 = 1 << 4;

const FREE_END: u32 = u32::MAX;
const IN_USE: u32 = u32::MAX - 1;

/// What went wrong with a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// Every reference is in use.
    #[error("no free grant reference (all {capacity} in use)")]
    Exhausted {
        /// Usable references.
        capacity: u32,
    },
    /// The peer still has the page mapped; revoke again later.
    #[error("grant {0:?} is still mapped by the peer (reading/writing set)")]
    InUse(GrantRef),
    /// The reference is reserved, out of range, or not granted.
    #[error("grant {0:?} is not an active grant of ours")]
    NotGranted(GrantRef),
    /// A v1 entry holds a 32-bit frame number.
    #[error("frame {0:#x} does not fit a v1 grant entry")]
    FrameTooLarge(u64),
    /// Setting up the table failed.
    #[error("grant table setup: {0}")]
    Setup(#[from] HvError),
}

/// The grant table as the drivers share it: one per domain, locked only for the
/// moment of a grant or revocation (a driver that finds it locked reports
/// `GrantTableBusy` rather than waiting: nothing holds it across an await).
pub type SharedGrants = spin::Mutex<GrantTable>;

/// Our grant table.
pub struct GrantTable {
    frames: Vec<SharedPage>,
    /// For a free ref, the next free ref (or `FREE_END`); `IN_USE` when granted.
    next: Vec<u32>,
    head: u32,
    free: u32,
}

impl GrantTable {
    /// Sets up `frames` frames (at most what Xen allows) through the platform.
    pub fn new<H: XenHypervisor>(hv: &H, frames: u32) -> Result<Self, GrantError> {
        let size = hv.grant_table_query_size()?;
        let n = frames.clamp(1, size.max_nr_frames.max(1));
        Ok(Self::from_frames(hv.grant_table_setup(n)?))
    }

    /// A table over frames already set up.
    pub fn from_frames(frames: Vec<SharedPage>) -> Self {
        let total = frames.len() as u32 * ENTRIES_PER_FRAME;
        let mut next = alloc::vec![IN_USE; total as usize];
        let mut head = FREE_END;
        // Push in reverse so low references come out first.
        for r in (NR_RESERVED_ENTRIES..total).rev() {
            next[r as usize] = head;
            head = r;
        }
        Self {
            frames,
            next,
            head,
            free: total.saturating_sub(NR_RESERVED_ENTRIES),
        }
    }

    /// Free references.
    pub fn free(&self) -> u32 {
        self.free
    }

    /// Usable references (all but the reserved ones).
    pub fn capacity(&self) -> u32 {
        (self.next.len() as u32).saturating_sub(NR_RESERVED_ENTRIES)
    }

    fn entry(&self, r: GrantRef) -> Option<(SharedPage, usize)> {
        let frame = self.frames.get((r.0 / ENTRIES_PER_FRAME) as usize)?;
        Some((*frame, (r.0 % ENTRIES_PER_FRAME) as usize * 8))
    }

    /// Grants `domid` access to our frame `frame` (read-only if `readonly`).
    pub fn grant_access(
        &mut self,
        domid: DomId,
        frame: u64,
        readonly: bool,
    ) -> Result<GrantRef, GrantError> {
        let frame32 = u32::try_from(frame).map_err(|_| GrantError::FrameTooLarge(frame))?;
        if self.head == FREE_END {
            return Err(GrantError::Exhausted {
                capacity: self.capacity(),
            });
        }
        let r = GrantRef(self.head);
        let Some((page, off)) = self.entry(r) else {
            return Err(GrantError::NotGranted(r));
        };
        self.head = self.next[r.0 as usize];
        self.next[r.0 as usize] = IN_USE;
        self.free -= 1;
        let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
        page.store_u32(off + 4, frame32);
        wmb(); // Xen must see frame and domid before the flags that validate them
        page.store_u32(off, (u32::from(domid) << 16) | u32::from(flags));
        Ok(r)
    }

    /// Revokes a grant. Fails with [`GrantError::InUse`] (and keeps the reference)
    /// while the peer has the frame mapped; the caller retries later and must not
    /// reuse the page meanwhile.
    pub fn end_access(&mut self, r: GrantRef) -> Result<(), GrantError> {
        if r.0 < NR_RESERVED_ENTRIES || self.next.get(r.0 as usize) != Some(&IN_USE) {
            return Err(GrantError::NotGranted(r));
        }
        let Some((page, off)) = self.entry(r) else {
            return Err(GrantError::NotGranted(r));
        };
        let mut word = page.load_u32(off);
        loop {
            let flags = word as u16;
            if flags & (GTF_READING | GTF_WRITING) != 0 {
                return Err(GrantError::InUse(r));
            }
            match page.cmpxchg_u32(off, word, word & 0xffff_0000) {
                Ok(_) => break,
                Err(now) => word = now,
            }
        }
        self.next[r.0 as usize] = self.head;
        self.head = r.0;
        self.free += 1;
        Ok(())
    }

    /// The entry's current flags, domid and frame (for tests and diagnostics).
    pub fn entry_state(&self, r: GrantRef) -> Option<(u16, DomId, u32)> {
        let (page, off) = self.entry(r)?;
        let w = page.load_u32(off);
        Some((w as u16, (w >> 16) as u16, page.load_u32(off + 4)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::tests_support::page;
    use alloc::vec;

    #[test]
    fn grant_writes_frame_domid_and_flags() {
        let f = page();
        let mut t = GrantTable::from_frames(vec![f]);
        assert_eq!(t.capacity(), 504);
        let r = t.grant_access(0, 0x1234, true).unwrap();
        assert_eq!(r, GrantRef(8), "reserved refs are skipped");
        assert_eq!(
            t.entry_state(r),
            Some((GTF_PERMIT_ACCESS | GTF_READONLY, 0, 0x1234))
        );
        let w = t.grant_access(7, 0x99, false).unwrap();
        assert_eq!(t.entry_state(w), Some((GTF_PERMIT_ACCESS, 7, 0x99)));
        assert_eq!(f.load_u32(9 * 8), (7 << 16) | 1);
    }

    #[test]
    fn revoke_fails_while_mapped_and_keeps_the_ref() {
        let f = page();
        let mut t = GrantTable::from_frames(vec![f]);
        let r = t.grant_access(0, 1, false).unwrap();
        let off = r.0 as usize * 8;
        for busy in [GTF_READING, GTF_WRITING] {
            f.fetch_or_u32(off, u32::from(busy));
            assert_eq!(t.end_access(r), Err(GrantError::InUse(r)));
            assert_eq!(t.free(), 503);
            f.fetch_and_u32(off, !u32::from(busy));
        }
        t.end_access(r).unwrap();
        assert_eq!(t.entry_state(r).map(|e| e.0), Some(0));
        assert_eq!(t.free(), 504);
        assert_eq!(
            t.end_access(r),
            Err(GrantError::NotGranted(r)),
            "double revoke"
        );
        assert_eq!(
            t.end_access(GrantRef(1)),
            Err(GrantError::NotGranted(GrantRef(1)))
        );
        assert_eq!(
            t.end_access(GrantRef(100_000)),
            Err(GrantError::NotGranted(GrantRef(100_000)))
        );
    }

    #[test]
    fn setup_through_the_hypervisor_is_bounded_by_its_maximum() {
        use crate::model::ModelXen;
        let hv = ModelXen::new();
        let t = GrantTable::new(&hv, 100).unwrap();
        assert_eq!(t.capacity(), 4 * ENTRIES_PER_FRAME - NR_RESERVED_ENTRIES);
        let t = GrantTable::new(&hv, 0).unwrap();
        assert_eq!(t.capacity(), ENTRIES_PER_FRAME - NR_RESERVED_ENTRIES);
    }

    #[test]
    fn free_list_exhausts_and_recycles() {
        let mut t = GrantTable::from_frames(vec![page(), page()]);
        let cap = t.capacity();
        assert_eq!(cap, 1016);
        let refs: Vec<_> = (0..cap)
            .map(|i| t.grant_access(0, u64::from(i), true).unwrap())
            .collect();
        assert_eq!(
            t.grant_access(0, 0, true),
            Err(GrantError::Exhausted { capacity: cap })
        );
        let mut sorted = refs.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), refs.len(), "no reference handed out twice");
        t.end_access(refs[500]).unwrap();
        assert_eq!(t.grant_access(0, 5, true), Ok(refs[500]));
        assert_eq!(
            t.grant_access(0, 1 << 40, true),
            Err(GrantError::FrameTooLarge(1 << 40))
        );
    }
}
