//! `MemNet`: an in-memory Ethernet wire between two [`NetDevice`]s, with loss and corruption injection.
//!
//! [`MemNet::pair`] returns the two ends of one cable. A frame transmitted on one end
//! lands in a bounded queue that the other end receives from; when that queue is
//! full, [`NetDevice::can_transmit`] is false and [`NetDevice::transmit`] returns
//! `None` (back-pressure, like a NIC whose transmit ring is full). Every buffer is
//! allocated when the pair is made; moving frames allocates nothing.
//!
//! Each direction is a single-producer single-consumer ring of pre-allocated slots
//! whose bytes are stored in atomic words, so the two ends are `Send` and may live
//! in different locks (or threads) without `unsafe` and without a mutex. Each end
//! lends frames from its own scratch buffer, so the closures see a plain `&mut [u8]`.
//!
//! For robustness tests an end can be told to drop or corrupt a share of the frames
//! it transmits ([`MemNet::set_faults`]), chosen by a deterministic PRNG from a seed,
//! and [`MemNet::link`] gives a handle a test platform can ask whether frames are in
//! flight (the in-memory equivalent of "an interrupt is pending").

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::net::{NetDevice, NetInfo};

/// Ethernet header length: the frame may be this much longer than the MTU.
const ETH_HEADER: usize = 14;
/// Default IP MTU of a pair.
pub const DEFAULT_MTU: usize = 1500;
/// Default number of frames each direction can hold.
pub const DEFAULT_QUEUE_LEN: usize = 256;

/// How a pair is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemNetConfig {
    /// IP MTU of both ends (frames may be `mtu + 14` bytes).
    pub mtu: usize,
    /// Frames each direction holds before transmit reports "full" (at least 1).
    pub queue_len: usize,
    /// MAC addresses of the two ends.
    pub macs: [[u8; 6]; 2],
}

impl Default for MemNetConfig {
    fn default() -> Self {
        Self {
            mtu: DEFAULT_MTU,
            queue_len: DEFAULT_QUEUE_LEN,
            macs: [[0x02, 0, 0, 0, 0, 0x01], [0x02, 0, 0, 0, 0, 0x02]],
        }
    }
}

/// Faults injected into the frames an end transmits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Faults {
    /// Frames dropped, per million transmitted.
    pub drop_per_million: u32,
    /// Frames with one to four random bytes overwritten, per million transmitted.
    pub corrupt_per_million: u32,
    /// Seed of the PRNG that picks the victims and the damage.
    pub seed: u64,
}

/// Frame counts of one end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemNetStats {
    /// Frames accepted by `transmit` (including those then dropped by faults).
    pub tx_frames: u64,
    /// Frames delivered to the receive closure.
    pub rx_frames: u64,
    /// Transmit calls refused because the peer's queue was full.
    pub tx_full: u64,
    /// Frames dropped by fault injection.
    pub dropped: u64,
    /// Frames corrupted by fault injection.
    pub corrupted: u64,
}

/// One slot: a frame's length and its bytes packed little-endian into words.
struct Slot {
    len: AtomicUsize,
    words: Box<[AtomicU64]>,
}

/// One direction of the wire: an SPSC ring. `head` and `tail` count frames taken and
/// put since creation; the slot of index `i` is `i % slots.len()`.
struct Ring {
    slots: Box<[Slot]>,
    head: AtomicUsize,
    tail: AtomicUsize,
}

impl Ring {
    fn new(queue_len: usize, frame_max: usize) -> Self {
        let words = frame_max.div_ceil(8);
        let slots = (0..queue_len)
            .map(|_| Slot {
                len: AtomicUsize::new(0),
                words: (0..words).map(|_| AtomicU64::new(0)).collect(),
            })
            .collect();
        Self {
            slots,
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
        }
    }

    fn queued(&self) -> usize {
        let tail = self.tail.load(Ordering::Acquire);
        tail.wrapping_sub(self.head.load(Ordering::Acquire))
    }

    fn is_full(&self) -> bool {
        self.queued() >= self.slots.len()
    }

    /// Producer side: copies `frame` into the next slot and publishes it.
    fn push(&self, frame: &[u8]) -> bool {
        if self.is_full() {
            return false;
        }
        let tail = self.tail.load(Ordering::Relaxed);
        let Some(slot) = self.slots.get(tail % self.slots.len()) else {
            return false;
        };
        let mut chunks = frame.chunks(8);
        for word in slot.words.iter() {
            let Some(chunk) = chunks.next() else { break };
            let mut bytes = [0u8; 8];
            bytes[..chunk.len()].copy_from_slice(chunk);
            word.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
        }
        slot.len.store(frame.len(), Ordering::Relaxed);
        self.tail.store(tail.wrapping_add(1), Ordering::Release);
        true
    }

    /// Consumer side: copies the oldest frame into `out` and frees its slot;
    /// returns its length.
    fn pop(&self, out: &mut [u8]) -> Option<usize> {
        let head = self.head.load(Ordering::Relaxed);
        if self.tail.load(Ordering::Acquire) == head {
            return None;
        }
        let slot = self.slots.get(head % self.slots.len())?;
        let len = slot.len.load(Ordering::Relaxed).min(out.len());
        for (chunk, word) in out[..len].chunks_mut(8).zip(slot.words.iter()) {
            let bytes = word.load(Ordering::Relaxed).to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        self.head.store(head.wrapping_add(1), Ordering::Release);
        Some(len)
    }
}

struct Wire {
    /// `rings[i]` carries frames transmitted by end `i` to the other end.
    rings: [Ring; 2],
}

/// A handle on a pair's wire that tells whether frames are waiting to be received;
/// a test [`Platform`](crate::Platform) uses it so `wait_for_event` returns at once
/// (as an interrupt would) instead of sleeping while a frame is in flight.
#[derive(Clone)]
pub struct MemLink {
    wire: Arc<Wire>,
}

impl core::fmt::Debug for MemLink {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemLink")
            .field("frames_in_flight", &self.frames_in_flight())
            .finish()
    }
}

impl MemLink {
    /// Frames transmitted by either end and not yet received by the other.
    pub fn frames_in_flight(&self) -> usize {
        self.wire.rings.iter().map(Ring::queued).sum()
    }
}

/// One end of an in-memory Ethernet wire; see the module docs.
pub struct MemNet {
    wire: Arc<Wire>,
    /// Which end this is: transmits into `rings[end]`, receives from `rings[1 - end]`.
    end: usize,
    info: NetInfo,
    tx_scratch: Vec<u8>,
    rx_scratch: Vec<u8>,
    faults: Faults,
    rng: u64,
    stats: MemNetStats,
}

impl core::fmt::Debug for MemNet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemNet")
            .field("end", &self.end)
            .field("info", &self.info)
            .field("faults", &self.faults)
            .field("stats", &self.stats)
            .finish()
    }
}

impl MemNet {
    /// Two connected ends with MTU 1500 and 256-frame queues.
    pub fn pair() -> (MemNet, MemNet) {
        Self::pair_with(MemNetConfig::default())
    }

    /// Two connected ends built as `config` says (a `queue_len` of 0 counts as 1).
    pub fn pair_with(config: MemNetConfig) -> (MemNet, MemNet) {
        let frame_max = config.mtu + ETH_HEADER;
        let queue_len = config.queue_len.max(1);
        let wire = Arc::new(Wire {
            rings: [
                Ring::new(queue_len, frame_max),
                Ring::new(queue_len, frame_max),
            ],
        });
        let end = |i: usize| MemNet {
            wire: wire.clone(),
            end: i,
            info: NetInfo {
                mac: config.macs[i],
                mtu: config.mtu,
            },
            tx_scratch: vec![0; frame_max],
            rx_scratch: vec![0; frame_max],
            faults: Faults::default(),
            rng: 0,
            stats: MemNetStats::default(),
        };
        (end(0), end(1))
    }

    /// Drops or corrupts a share of the frames this end transmits from now on.
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
        // A zero state would make xorshift stick at zero.
        self.rng = faults.seed ^ 0x9E37_79B9_7F4A_7C15;
    }

    /// Frame counts of this end.
    pub fn stats(&self) -> MemNetStats {
        self.stats
    }

    /// A handle that reports frames in flight on this wire.
    pub fn link(&self) -> MemLink {
        MemLink {
            wire: self.wire.clone(),
        }
    }

    /// Frames waiting for this end to receive.
    pub fn rx_queued(&self) -> usize {
        self.rx_ring().queued()
    }

    fn tx_ring(&self) -> &Ring {
        &self.wire.rings[self.end]
    }

    fn rx_ring(&self) -> &Ring {
        &self.wire.rings[1 - self.end]
    }

    /// `true` with probability `per_million / 1e6`.
    fn chance(&mut self, per_million: u32) -> bool {
        per_million > 0 && next_random(&mut self.rng) % 1_000_000 < u64::from(per_million)
    }
}

/// xorshift64*: deterministic and fast, good enough to pick victims.
fn next_random(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

impl NetDevice for MemNet {
    fn info(&self) -> NetInfo {
        self.info
    }

    fn receive<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        let wire = self.wire.clone();
        let len = wire.rings[1 - self.end].pop(&mut self.rx_scratch)?;
        self.stats.rx_frames += 1;
        Some(f(&mut self.rx_scratch[..len]))
    }

    fn can_transmit(&self) -> bool {
        !self.tx_ring().is_full()
    }

    fn transmit<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        if len > self.tx_scratch.len() {
            return None;
        }
        if self.tx_ring().is_full() {
            self.stats.tx_full += 1;
            return None;
        }
        let r = f(&mut self.tx_scratch[..len]);
        self.stats.tx_frames += 1;
        if self.chance(self.faults.drop_per_million) {
            self.stats.dropped += 1;
            return Some(r);
        }
        if len > 0 && self.chance(self.faults.corrupt_per_million) {
            self.stats.corrupted += 1;
            let n = 1 + next_random(&mut self.rng) % 4;
            for _ in 0..n {
                let at = (next_random(&mut self.rng) % len as u64) as usize;
                let byte = next_random(&mut self.rng) as u8;
                if let Some(b) = self.tx_scratch.get_mut(at) {
                    *b = byte;
                }
            }
        }
        // The ring had room above and only this end produces into it.
        let wire = self.wire.clone();
        wire.rings[self.end].push(&self.tx_scratch[..len]);
        Some(r)
    }

    fn poll(&mut self) -> bool {
        self.rx_ring().queued() > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(end: &mut MemNet, frame: &[u8]) -> bool {
        end.transmit(frame.len(), |b| b.copy_from_slice(frame))
            .is_some()
    }

    fn recv(end: &mut MemNet) -> Option<Vec<u8>> {
        end.receive(|b| b.to_vec())
    }

    #[test]
    fn frames_cross_in_order_both_ways() {
        let (mut a, mut b) = MemNet::pair();
        assert_ne!(a.info().mac, b.info().mac);
        assert!(send(&mut a, &[1, 2, 3]));
        assert!(send(&mut a, &(0..200).map(|i| i as u8).collect::<Vec<_>>()));
        assert!(send(&mut b, &[9; 1514]));
        assert!(b.poll());
        assert_eq!(a.link().frames_in_flight(), 3);
        assert_eq!(recv(&mut b).unwrap(), [1, 2, 3]);
        assert_eq!(
            recv(&mut b).unwrap(),
            (0..200).map(|i| i as u8).collect::<Vec<_>>()
        );
        assert_eq!(recv(&mut b), None);
        assert!(!b.poll());
        assert_eq!(recv(&mut a).unwrap(), [9; 1514]);
        assert_eq!(a.link().frames_in_flight(), 0);
        assert_eq!(a.stats().tx_frames, 2);
        assert_eq!(b.stats().rx_frames, 2);
    }

    #[test]
    fn queue_is_bounded_and_oversized_frames_are_refused() {
        let (mut a, mut b) = MemNet::pair_with(MemNetConfig {
            queue_len: 4,
            ..MemNetConfig::default()
        });
        assert!(a.transmit(1515, |_| ()).is_none());
        for i in 0..4u8 {
            assert!(a.can_transmit());
            assert!(send(&mut a, &[i; 60]));
        }
        assert!(!a.can_transmit());
        assert!(!send(&mut a, &[7; 60]));
        assert_eq!(a.stats().tx_full, 1);
        assert_eq!(recv(&mut b).unwrap(), [0; 60]);
        assert!(send(&mut a, &[4; 60]));
        for i in 1..5u8 {
            assert_eq!(recv(&mut b).unwrap(), [i; 60]);
        }
    }

    #[test]
    fn ring_wraps_many_times() {
        let (mut a, mut b) = MemNet::pair_with(MemNetConfig {
            queue_len: 3,
            ..MemNetConfig::default()
        });
        for i in 0..1000u32 {
            let frame = i.to_le_bytes().repeat(1 + (i as usize % 50));
            assert!(send(&mut a, &frame));
            assert_eq!(recv(&mut b).unwrap(), frame);
        }
    }

    #[test]
    fn faults_drop_and_corrupt_deterministically() {
        let run = || {
            let (mut a, mut b) = MemNet::pair();
            a.set_faults(Faults {
                drop_per_million: 200_000,
                corrupt_per_million: 200_000,
                seed: 42,
            });
            let mut got = Vec::new();
            for _ in 0..200 {
                send(&mut a, &[0xAA; 100]);
                got.push(recv(&mut b));
            }
            (got, a.stats())
        };
        let (got, stats) = run();
        assert_eq!(run().0, got, "same seed, same faults");
        let lost = got.iter().filter(|g| g.is_none()).count() as u64;
        let damaged = got
            .iter()
            .flatten()
            .filter(|g| g.iter().any(|&x| x != 0xAA))
            .count() as u64;
        assert_eq!(lost, stats.dropped);
        assert!((20..70).contains(&lost), "dropped {lost} of 200");
        assert!(
            damaged > 10 && damaged <= stats.corrupted,
            "damaged {damaged}, corrupted {}",
            stats.corrupted
        );
    }
}
