//! The split virtqueue (virtio 1.2 §2.7): descriptor table, available and used rings,
//! and the pool of DMA buffers whose slots the driver posts to the device.
//!
//! One [`Virtqueue`] owns two DMA allocations: the rings (descriptor table at offset 0,
//! 16-aligned; available ring, 2-aligned; used ring, 4-aligned; all in one page-aligned
//! block) and a buffer pool of `slots × slot_size` bytes. Drivers never hand raw
//! addresses to the device: they post *segments of a slot*, and the queue tracks which
//! slots the device holds, so a slot's bytes are reachable from Rust only while the
//! device does not own them. That is what keeps this module and the drivers free of
//! `unsafe`: the one hazard left, freeing the memory while the device still writes it,
//! is handled by resetting the device before drop (or [`Virtqueue::leak`]).
//!
//! Everything the device writes (used index, used elements) is validated: an id that
//! is out of range or not in flight, a length larger than the device-writable part of
//! the chain, or a used index that runs ahead of what is in flight is reported as a
//! [`QueueError`], never trusted.

use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{Ordering, fence};

use crate::mem::{Dma, DmaError};

/// Largest split-queue size (virtio 1.2 §2.7).
pub const MAX_QUEUE_SIZE: u16 = 32768;
/// Most descriptors one chain may use (our drivers need at most 3).
pub const MAX_SEGMENTS: usize = 4;

// virtio 1.2 §2.7.5: descriptor flags.
const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
// §2.7.7 / §2.7.10: ring flags.
const AVAIL_F_NO_INTERRUPT: u16 = 1;
const USED_F_NO_NOTIFY: u16 = 1;

const DESC_SIZE: usize = 16;
const NO_SLOT: u16 = u16::MAX;

/// Errors of the virtqueue, including malformed device responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// Queue sizes are powers of two in 1..=32768.
    #[error("queue size {0} is not a power of two in 1..=32768")]
    InvalidSize(u16),
    /// The slot count or slot size is zero or too large.
    #[error("buffer pool of {slots} slots of {slot_size} bytes is invalid")]
    InvalidPool {
        /// Requested slots.
        slots: usize,
        /// Requested slot size.
        slot_size: usize,
    },
    /// DMA memory could not be allocated.
    #[error(transparent)]
    Dma(#[from] DmaError),
    /// No such slot.
    #[error("slot {slot} does not exist (pool has {slots})")]
    NoSuchSlot {
        /// Slot asked for.
        slot: u16,
        /// Slots in the pool.
        slots: usize,
    },
    /// The slot is posted to the device.
    #[error("slot {0} is owned by the device")]
    SlotBusy(u16),
    /// A chain needs 1..=MAX_SEGMENTS segments.
    #[error("a chain of {0} segments is not in 1..=4")]
    BadChainLength(usize),
    /// A segment reaches outside its slot or is empty.
    #[error("segment {offset}+{len} does not fit a {slot_size}-byte slot")]
    BadSegment {
        /// Segment offset in the slot.
        offset: usize,
        /// Segment length.
        len: usize,
        /// Slot size.
        slot_size: usize,
    },
    /// Not enough free descriptors.
    #[error("{needed} descriptors needed, {free} free")]
    Full {
        /// Descriptors the chain needs.
        needed: usize,
        /// Descriptors free.
        free: u16,
    },
    /// The device returned a used id outside the descriptor table.
    #[error("device returned used id {id}, outside the queue of {size}")]
    UsedIdOutOfRange {
        /// The id.
        id: u32,
        /// Queue size.
        size: u16,
    },
    /// The device returned a used id that is not the head of a chain in flight.
    #[error("device returned used id {0}, which is not in flight")]
    UsedIdNotInFlight(u32),
    /// The device claims to have written more than the chain lets it; the chain is
    /// reclaimed and its slot is free again.
    #[error("device wrote {len} bytes into slot {slot}, which offers only {max}")]
    UsedLenTooLarge {
        /// The slot whose chain was reclaimed.
        slot: u16,
        /// Length the device reported.
        len: u32,
        /// Device-writable bytes of the chain.
        max: u32,
    },
    /// The used index ran ahead of the requests in flight; the queue is unusable.
    #[error("device used index moved {ahead} entries ahead with only {in_flight} in flight")]
    UsedIndexAhead {
        /// Entries the device claims.
        ahead: u16,
        /// Chains in flight.
        in_flight: u16,
    },
    /// An earlier fatal device error left the queue unusable until reset.
    #[error("the queue is broken after an earlier device error")]
    Broken,
}

/// Where the three parts of a queue live, as the transport programs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueAddrs {
    /// Descriptor table.
    pub desc: u64,
    /// Available ring ("driver area").
    pub driver: u64,
    /// Used ring ("device area").
    pub device: u64,
}

/// One piece of a chain: bytes `offset..offset + len` of the posted slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Offset in the slot.
    pub offset: usize,
    /// Length in bytes (non-zero).
    pub len: usize,
    /// The device writes this segment (else it only reads it).
    pub device_writes: bool,
}

impl Segment {
    /// A segment the device reads.
    pub const fn readable(offset: usize, len: usize) -> Self {
        Self {
            offset,
            len,
            device_writes: false,
        }
    }

    /// A segment the device writes.
    pub const fn writable(offset: usize, len: usize) -> Self {
        Self {
            offset,
            len,
            device_writes: true,
        }
    }
}

/// A completed chain: the slot is the driver's again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Used {
    /// The slot that was posted.
    pub slot: u16,
    /// Bytes the device wrote into the chain's writable segments.
    pub len: u32,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    slot: u16,
    descs: u16,
    writable: u32,
}

/// A split virtqueue with its buffer pool (see the module docs).
#[derive(Debug)]
pub struct Virtqueue {
    ring: Dma,
    bufs: Dma,
    size: u16,
    slot_size: usize,
    avail_off: usize,
    used_off: usize,
    /// Driver-private copy of each descriptor's `next` (free list and chain order),
    /// so nothing we rely on lives in memory the device could scribble on.
    next: Vec<u16>,
    free_head: u16,
    num_free: u16,
    /// Per descriptor head: what is in flight.
    heads: Vec<Option<InFlight>>,
    /// Per slot: the head of its chain while posted, else `NO_SLOT`.
    slot_head: Vec<u16>,
    in_flight: u16,
    avail_idx: u16,
    last_kick: u16,
    last_used: u16,
    event_idx: bool,
    broken: bool,
}

impl Virtqueue {
    /// Allocates a queue of `size` descriptors and a pool of `slots` buffers of
    /// `slot_size` bytes each (each slot starts 64-aligned if `slot_size` is a
    /// multiple of 64). `event_idx`: VIRTIO_F_RING_EVENT_IDX was negotiated.
    pub fn new(
        size: u16,
        slots: usize,
        slot_size: usize,
        event_idx: bool,
    ) -> Result<Self, QueueError> {
        if size == 0 || !size.is_power_of_two() || size > MAX_QUEUE_SIZE {
            return Err(QueueError::InvalidSize(size));
        }
        let pool = slots
            .checked_mul(slot_size)
            .filter(|&b| b > 0 && slots < usize::from(NO_SLOT));
        let pool = pool.ok_or(QueueError::InvalidPool { slots, slot_size })?;
        let n = usize::from(size);
        let avail_off = DESC_SIZE * n;
        let used_off = (avail_off + 6 + 2 * n).next_multiple_of(4);
        let total = used_off + 6 + 8 * n;
        let ring = Dma::zeroed(total, 4096)?;
        let bufs = Dma::zeroed(pool, 4096)?;
        let next = (1..=size).map(|i| if i == size { 0 } else { i }).collect();
        Ok(Self {
            ring,
            bufs,
            size,
            slot_size,
            avail_off,
            used_off,
            next,
            free_head: 0,
            num_free: size,
            heads: vec![None; n],
            slot_head: vec![NO_SLOT; slots],
            in_flight: 0,
            avail_idx: 0,
            last_kick: 0,
            last_used: 0,
            event_idx,
            broken: false,
        })
    }

    /// Queue size (descriptors).
    pub fn size(&self) -> u16 {
        self.size
    }

    /// Slots in the buffer pool.
    pub fn slots(&self) -> usize {
        self.slot_head.len()
    }

    /// Bytes per slot.
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// Free descriptors.
    pub fn free_descriptors(&self) -> u16 {
        self.num_free
    }

    /// Chains the device holds.
    pub fn in_flight(&self) -> u16 {
        self.in_flight
    }

    /// Whether a fatal device error made the queue unusable.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Addresses to program into the transport.
    pub fn addrs(&self) -> QueueAddrs {
        let base = self.ring.addr();
        QueueAddrs {
            desc: base,
            driver: base + self.avail_off as u64,
            device: base + self.used_off as u64,
        }
    }

    /// Never free the DMA memory (call when the device could not be reset).
    pub fn leak(&mut self) {
        self.ring.leak();
        self.bufs.leak();
    }

    /// Whether the device holds `slot`.
    pub fn is_posted(&self, slot: u16) -> bool {
        self.slot_head
            .get(usize::from(slot))
            .is_some_and(|&h| h != NO_SLOT)
    }

    fn check_slot(&self, slot: u16) -> Result<usize, QueueError> {
        match self.slot_head.get(usize::from(slot)) {
            None => Err(QueueError::NoSuchSlot {
                slot,
                slots: self.slots(),
            }),
            Some(&h) if h != NO_SLOT => Err(QueueError::SlotBusy(slot)),
            Some(_) => Ok(usize::from(slot) * self.slot_size),
        }
    }

    /// The bytes of a slot the driver owns.
    pub fn slot(&self, slot: u16) -> Result<&[u8], QueueError> {
        let off = self.check_slot(slot)?;
        self.bufs
            .slice(off, self.slot_size)
            .ok_or(QueueError::NoSuchSlot {
                slot,
                slots: self.slots(),
            })
    }

    /// The bytes of a slot the driver owns, writable.
    pub fn slot_mut(&mut self, slot: u16) -> Result<&mut [u8], QueueError> {
        let off = self.check_slot(slot)?;
        let slots = self.slots();
        self.bufs
            .slice_mut(off, self.slot_size)
            .ok_or(QueueError::NoSuchSlot { slot, slots })
    }

    /// Posts segments of `slot` as one descriptor chain and publishes it in the
    /// available ring (virtio 1.2 §2.7.13). The device owns the slot until
    /// [`pop_used`](Self::pop_used) returns it. Does not notify: see
    /// [`kick_needed`](Self::kick_needed).
    pub fn post(&mut self, slot: u16, segments: &[Segment]) -> Result<(), QueueError> {
        if self.broken {
            return Err(QueueError::Broken);
        }
        let slot_off = self.check_slot(slot)?;
        if segments.is_empty() || segments.len() > MAX_SEGMENTS {
            return Err(QueueError::BadChainLength(segments.len()));
        }
        let mut writable = 0u32;
        for s in segments {
            let fits = s.len > 0
                && s.offset
                    .checked_add(s.len)
                    .is_some_and(|e| e <= self.slot_size);
            let len32 = u32::try_from(s.len).ok();
            match (fits, len32) {
                (true, Some(l)) if s.device_writes => writable = writable.saturating_add(l),
                (true, Some(_)) => {}
                _ => {
                    return Err(QueueError::BadSegment {
                        offset: s.offset,
                        len: s.len,
                        slot_size: self.slot_size,
                    });
                }
            }
        }
        if segments.len() > usize::from(self.num_free) {
            return Err(QueueError::Full {
                needed: segments.len(),
                free: self.num_free,
            });
        }

        // §2.7.13.1: fill the descriptors, taking them off the free list in order so
        // that the private `next` array also records the chain.
        let head = self.free_head;
        let mut d = head;
        for (i, s) in segments.iter().enumerate() {
            let last = i + 1 == segments.len();
            let mut flags = if s.device_writes { DESC_F_WRITE } else { 0 };
            if !last {
                flags |= DESC_F_NEXT;
            }
            let nx = self.next[usize::from(d)];
            let base = DESC_SIZE * usize::from(d);
            let addr = self.bufs.addr() + (slot_off + s.offset) as u64;
            self.ring.write64(base, addr);
            self.ring.write32(base + 8, s.len as u32);
            self.ring.write16(base + 12, flags);
            self.ring.write16(base + 14, if last { 0 } else { nx });
            if last {
                self.free_head = nx;
            } else {
                d = nx;
            }
        }
        self.num_free -= segments.len() as u16;
        self.heads[usize::from(head)] = Some(InFlight {
            slot,
            descs: segments.len() as u16,
            writable,
        });
        self.slot_head[usize::from(slot)] = head;
        self.in_flight += 1;

        // §2.7.13.2: place the head in the ring, then (§2.7.13.3) a write barrier
        // before the index update that makes it visible.
        let pos = usize::from(self.avail_idx & (self.size - 1));
        self.ring.write16(self.avail_off + 4 + 2 * pos, head);
        fence(Ordering::Release);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.ring.write16(self.avail_off + 2, self.avail_idx);
        Ok(())
    }

    /// Whether the device must be notified of chains posted since the last kick
    /// (virtio 1.2 §2.7.13.4, honouring `avail_event` with EVENT_IDX and
    /// `VIRTQ_USED_F_NO_NOTIFY` without). Records the kick; the caller then calls
    /// the transport's `notify`.
    pub fn kick_needed(&mut self) -> bool {
        if self.avail_idx == self.last_kick {
            return false;
        }
        // The index store must be visible before we read the device's suppression
        // field (a store-load barrier, §2.7.13.4).
        fence(Ordering::SeqCst);
        let old = self.last_kick;
        self.last_kick = self.avail_idx;
        if self.event_idx {
            let avail_event = self
                .ring
                .read16(self.used_off + 4 + 8 * usize::from(self.size));
            need_event(avail_event, self.avail_idx, old)
        } else {
            self.ring.read16(self.used_off) & USED_F_NO_NOTIFY == 0
        }
    }

    /// Asks the device not to interrupt for this queue (a hint without EVENT_IDX;
    /// with EVENT_IDX the driver's `used_event` governs instead).
    pub fn set_interrupts(&mut self, enabled: bool) {
        if !self.event_idx {
            self.ring.write16(
                self.avail_off,
                if enabled { 0 } else { AVAIL_F_NO_INTERRUPT },
            );
        }
    }

    /// Whether the device has returned chains not yet popped (a cheap peek).
    pub fn has_used(&self) -> bool {
        !self.broken && self.ring.read16(self.used_off + 2) != self.last_used
    }

    /// Takes the next completed chain off the used ring, frees its descriptors and
    /// returns its slot to the driver. `Ok(None)` when the device has returned none.
    ///
    /// Errors: [`QueueError::UsedLenTooLarge`] reclaims the chain (the slot is free;
    /// treat its contents as garbage); [`QueueError::UsedIdOutOfRange`] and
    /// [`QueueError::UsedIdNotInFlight`] skip the bogus entry; the queue stays usable
    /// after all three. [`QueueError::UsedIndexAhead`] breaks the queue.
    pub fn pop_used(&mut self) -> Result<Option<Used>, QueueError> {
        if self.broken {
            return Err(QueueError::Broken);
        }
        let used_idx = self.ring.read16(self.used_off + 2);
        if used_idx == self.last_used {
            return Ok(None);
        }
        let ahead = used_idx.wrapping_sub(self.last_used);
        if ahead > self.in_flight {
            self.broken = true;
            return Err(QueueError::UsedIndexAhead {
                ahead,
                in_flight: self.in_flight,
            });
        }
        // §2.7.13 / §2.7.14: read the index, then a read barrier, then the element.
        fence(Ordering::Acquire);
        let pos = usize::from(self.last_used & (self.size - 1));
        let elem = self.used_off + 4 + 8 * pos;
        let id = self.ring.read32(elem);
        let len = self.ring.read32(elem + 4);
        self.last_used = self.last_used.wrapping_add(1);
        if self.event_idx {
            // Interrupt us at the next completion (`used_event`, §2.7.10).
            self.ring.write16(
                self.avail_off + 4 + 2 * usize::from(self.size),
                self.last_used,
            );
        }

        let head = match u16::try_from(id) {
            Ok(h) if h < self.size => h,
            _ => {
                return Err(QueueError::UsedIdOutOfRange {
                    id,
                    size: self.size,
                });
            }
        };
        let Some(flight) = self.heads[usize::from(head)].take() else {
            return Err(QueueError::UsedIdNotInFlight(id));
        };
        // Return the chain to the free list; its order is in the private `next`.
        let mut last = head;
        for _ in 1..flight.descs {
            last = self.next[usize::from(last)];
        }
        self.next[usize::from(last)] = self.free_head;
        self.free_head = head;
        self.num_free += flight.descs;
        self.in_flight -= 1;
        self.slot_head[usize::from(flight.slot)] = NO_SLOT;
        if len > flight.writable {
            return Err(QueueError::UsedLenTooLarge {
                slot: flight.slot,
                len,
                max: flight.writable,
            });
        }
        Ok(Some(Used {
            slot: flight.slot,
            len,
        }))
    }
}

/// `vring_need_event` (virtio 1.2 §2.7.10): whether moving the index from `old` to
/// `new` crossed `event`.
pub fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeRing;

    fn queue(size: u16, slots: usize) -> (Virtqueue, FakeRing) {
        let q = Virtqueue::new(size, slots, 256, false).unwrap();
        let dev = FakeRing::new(size, q.addrs());
        (q, dev)
    }

    #[test]
    fn rejects_bad_sizes() {
        assert_eq!(
            Virtqueue::new(0, 1, 1, false).unwrap_err(),
            QueueError::InvalidSize(0)
        );
        assert_eq!(
            Virtqueue::new(3, 1, 1, false).unwrap_err(),
            QueueError::InvalidSize(3)
        );
        assert!(matches!(
            Virtqueue::new(4, 0, 1, false),
            Err(QueueError::InvalidPool { .. })
        ));
    }

    #[test]
    fn ring_layout_is_aligned() {
        let q = Virtqueue::new(256, 1, 64, false).unwrap();
        let a = q.addrs();
        assert_eq!(a.desc % 16, 0);
        assert_eq!(a.driver, a.desc + 16 * 256);
        assert_eq!(a.device % 4, 0);
    }

    #[test]
    fn chain_round_trip() {
        let (mut q, mut dev) = queue(8, 4);
        q.slot_mut(2).unwrap()[..3].copy_from_slice(b"abc");
        q.post(
            2,
            &[
                Segment::readable(0, 3),
                Segment::writable(100, 10),
                Segment::writable(200, 1),
            ],
        )
        .unwrap();
        assert_eq!(q.free_descriptors(), 5);
        assert_eq!(q.slot(2).unwrap_err(), QueueError::SlotBusy(2));
        assert!(q.kick_needed());
        assert!(!q.kick_needed(), "nothing new since the last kick");

        let chain = dev.pop_avail().unwrap();
        assert_eq!(chain.descs.len(), 3);
        assert_eq!(chain.readable(), b"abc");
        assert_eq!(chain.writable_len(), 11);
        let n = chain.write(b"0123456789!");
        dev.push_used(chain.head, n);

        let u = q.pop_used().unwrap().unwrap();
        assert_eq!(u, Used { slot: 2, len: 11 });
        let s = q.slot(2).unwrap();
        assert_eq!(&s[100..110], b"0123456789");
        assert_eq!(s[200], b'!');
        assert_eq!(q.free_descriptors(), 8);
        assert_eq!(q.pop_used().unwrap(), None);
    }

    #[test]
    fn wraps_around_many_times_and_reuses_descriptors() {
        let (mut q, mut dev) = queue(4, 4);
        for round in 0u32..70_000 {
            let slot = (round % 4) as u16;
            q.slot_mut(slot).unwrap()[0] = round as u8;
            q.post(slot, &[Segment::readable(0, 1), Segment::writable(1, 4)])
                .unwrap();
            let c = dev.pop_avail().unwrap();
            assert_eq!(c.readable(), [round as u8]);
            dev.push_used(c.head, c.write(&round.to_le_bytes()));
            let u = q.pop_used().unwrap().unwrap();
            assert_eq!(u.slot, slot);
            assert_eq!(&q.slot(slot).unwrap()[1..5], &round.to_le_bytes());
        }
        assert_eq!(q.free_descriptors(), 4);
    }

    #[test]
    fn out_of_order_completion_and_full_queue() {
        let (mut q, mut dev) = queue(8, 8);
        for s in 0..4 {
            q.post(s, &[Segment::readable(0, 8), Segment::writable(8, 8)])
                .unwrap();
        }
        assert_eq!(
            q.post(4, &[Segment::readable(0, 1)]).unwrap_err(),
            QueueError::Full { needed: 1, free: 0 }
        );
        let chains: Vec<_> = (0..4).map(|_| dev.pop_avail().unwrap()).collect();
        for i in [2usize, 0, 3, 1] {
            dev.push_used(chains[i].head, 0);
        }
        let order: Vec<u16> = core::iter::from_fn(|| q.pop_used().unwrap())
            .map(|u| u.slot)
            .collect();
        assert_eq!(order, [2, 0, 3, 1]);
        // Freed descriptors are reused: a single 8-descriptor... (max 4) chains fit again.
        for s in 4..8 {
            q.post(s, &[Segment::readable(0, 1), Segment::writable(1, 1)])
                .unwrap();
        }
        for _ in 4..8 {
            let c = dev.pop_avail().unwrap();
            assert_eq!(c.descs.len(), 2);
            dev.push_used(c.head, 1);
        }
        assert_eq!(core::iter::from_fn(|| q.pop_used().unwrap()).count(), 4);
        assert_eq!(q.free_descriptors(), 8);
    }

    #[test]
    fn rejects_bad_posts() {
        let (mut q, _dev) = queue(8, 2);
        assert!(matches!(
            q.post(5, &[Segment::readable(0, 1)]),
            Err(QueueError::NoSuchSlot { slot: 5, .. })
        ));
        assert_eq!(q.post(0, &[]).unwrap_err(), QueueError::BadChainLength(0));
        assert!(matches!(
            q.post(0, &[Segment::readable(250, 7)]),
            Err(QueueError::BadSegment { .. })
        ));
        assert!(matches!(
            q.post(0, &[Segment::readable(0, 0)]),
            Err(QueueError::BadSegment { .. })
        ));
        q.post(0, &[Segment::readable(0, 1)]).unwrap();
        assert_eq!(
            q.post(0, &[Segment::readable(0, 1)]).unwrap_err(),
            QueueError::SlotBusy(0)
        );
    }

    #[test]
    fn malformed_used_entries_are_errors() {
        let (mut q, mut dev) = queue(8, 4);
        q.post(0, &[Segment::writable(0, 16)]).unwrap();
        q.post(1, &[Segment::readable(0, 16)]).unwrap();
        let c0 = dev.pop_avail().unwrap();
        let c1 = dev.pop_avail().unwrap();
        dev.push_used(99, 0);
        assert_eq!(
            q.pop_used().unwrap_err(),
            QueueError::UsedIdOutOfRange { id: 99, size: 8 }
        );
        dev.push_used(5, 0);
        assert_eq!(q.pop_used().unwrap_err(), QueueError::UsedIdNotInFlight(5));
        dev.push_used(c0.head, 17);
        assert_eq!(
            q.pop_used().unwrap_err(),
            QueueError::UsedLenTooLarge {
                slot: 0,
                len: 17,
                max: 16
            }
        );
        assert!(q.slot(0).is_ok(), "the chain was reclaimed");
        dev.push_used(c1.head, 0);
        assert_eq!(q.pop_used().unwrap(), Some(Used { slot: 1, len: 0 }));
        // A used index far ahead breaks the queue for good.
        dev.push_used(0, 0);
        dev.push_used(0, 0);
        assert_eq!(
            q.pop_used().unwrap_err(),
            QueueError::UsedIndexAhead {
                ahead: 2,
                in_flight: 0
            }
        );
        assert_eq!(q.pop_used().unwrap_err(), QueueError::Broken);
        assert_eq!(
            q.post(2, &[Segment::readable(0, 1)]).unwrap_err(),
            QueueError::Broken
        );
        assert!(!q.has_used());
    }

    #[test]
    fn notification_suppression() {
        let (mut q, mut dev) = queue(8, 4);
        dev.set_no_notify(true);
        q.post(0, &[Segment::readable(0, 1)]).unwrap();
        assert!(!q.kick_needed());
        dev.set_no_notify(false);
        q.post(1, &[Segment::readable(0, 1)]).unwrap();
        assert!(q.kick_needed());
    }

    #[test]
    fn event_idx_kicks_only_when_crossing_avail_event() {
        let mut q = Virtqueue::new(8, 8, 16, true).unwrap();
        let mut dev = FakeRing::new(8, q.addrs());
        dev.set_avail_event(0);
        q.post(0, &[Segment::readable(0, 1)]).unwrap();
        assert!(q.kick_needed(), "index moved 0 -> 1 past event 0");
        q.post(1, &[Segment::readable(0, 1)]).unwrap();
        assert!(
            !q.kick_needed(),
            "device asked to be kicked at index 0 only"
        );
        dev.set_avail_event(2);
        q.post(2, &[Segment::readable(0, 1)]).unwrap();
        q.post(3, &[Segment::readable(0, 1)]).unwrap();
        assert!(q.kick_needed(), "2 -> 4 crosses event 2");
        // Popping publishes used_event so the device interrupts at the next one.
        let c = dev.pop_avail().unwrap();
        dev.push_used(c.head, 0);
        q.pop_used().unwrap().unwrap();
        assert_eq!(dev.used_event(), 1);
    }

    #[test]
    fn random_device_behaviour_never_panics_or_leaks_descriptors() {
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..50 {
            let (mut q, mut dev) = queue(8, 6);
            let mut pending = Vec::new();
            for _ in 0..400 {
                let r = rnd();
                match r % 5 {
                    0 | 1 => {
                        let n = 1 + (r >> 8) as usize % 3;
                        let segs = [
                            Segment::readable(0, 8),
                            Segment::writable(8, 8),
                            Segment::writable(16, 1),
                        ];
                        let _ = q.post((r >> 16) as u16 % 7, &segs[..n]);
                        while let Some(c) = dev.pop_avail() {
                            pending.push(c);
                        }
                    }
                    2 if !pending.is_empty() => {
                        // A well-behaved completion of a random pending chain.
                        let c = pending.swap_remove((r >> 8) as usize % pending.len());
                        dev.push_used(c.head, c.writable_len());
                    }
                    3 => dev.push_used((r >> 8) as u32 % 12, (r >> 32) as u32 % 40),
                    _ => {
                        let _ = q.pop_used();
                    }
                }
                if q.is_broken() {
                    break;
                }
                let posted: u16 = q.heads.iter().flatten().map(|f| f.descs).sum();
                assert_eq!(q.free_descriptors() + posted, 8);
                assert_eq!(q.in_flight() as usize, q.heads.iter().flatten().count());
            }
        }
    }

    #[test]
    fn need_event_matches_the_spec_formula() {
        assert!(need_event(0, 1, 0));
        assert!(!need_event(5, 3, 1));
        assert!(need_event(0xffff, 1, 0xfffe));
        assert!(!need_event(3, 3, 3));
    }
}
