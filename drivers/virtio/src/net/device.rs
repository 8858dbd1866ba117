//! `VirtioNet`: the virtio-net driver, implementing [`oasis_devices::NetDevice`] over
//! one receive and one transmit queue with pre-allocated buffer pools.
//!
//! RX: every slot of the receive pool is posted at start; [`NetDevice::receive`] lends
//! a completed slot to the caller in place (the frame after the 12-byte header) and
//! re-posts it when the closure returns. TX: [`NetDevice::transmit`] takes a free
//! slot from the transmit pool, lets the caller write the frame after a zeroed
//! header, and posts it; the device is notified in [`NetDevice::poll`] (batching
//! frames into one notification) or at once when the pool runs dry. Completed
//! transmit slots are reclaimed in `poll`, or in `transmit` when none is free.
//! Nothing allocates after construction.

use alloc::vec::Vec;

use oasis_devices::{NetDevice, NetInfo, QueueOccupancy};

use super::{HDR_F_NEEDS_CSUM, HDR_LEN, NetHdr, complete_checksum, config, features as net};
use crate::queue::{QueueError, Segment, Virtqueue};
use crate::transport::{self, COMMON_FEATURES, InitError, Transport, device_id, features};

const RX_QUEUE: u16 = 0;
const TX_QUEUE: u16 = 1;
/// Ethernet header plus one 802.1Q tag.
const ETH_OVERHEAD: usize = 18;
/// Largest MTU we size buffers for when the device offers one.
pub const MAX_MTU: u16 = 9000;
/// MTU without VIRTIO_NET_F_MTU (virtio 1.2 §5.1.6.3.1: 1514-byte frames).
pub const DEFAULT_MTU: u16 = 1500;

/// Driver settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetConfig {
    /// Upper bound on each queue's size (and so each pool's slot count).
    pub queue_size: u16,
    /// MAC address to use when the device offers none (VIRTIO_NET_F_MAC absent).
    pub fallback_mac: [u8; 6],
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            queue_size: 256,
            fallback_mac: [0x02, 0, 0, 0, 0, 0x01],
        }
    }
}

impl NetConfig {
    /// The settings for a kernel whose heap is `heap` bytes: the two queues' frame
    /// buffers (about 1.5 KiB per slot at the default MTU) take at most an eighth of
    /// the heap. A 64 MiB VM gets the full 256 slots each way; a 3 MiB one gets 32,
    /// which leaves it room to serve instead of spending two thirds of its heap on
    /// buffers it cannot fill. Never fewer than 16 slots, never more than 256.
    pub fn for_heap(heap: usize) -> Self {
        const SLOT: usize = 1600; // HDR_LEN + a 1514-byte frame, rounded up
        let fit = heap / (8 * 2 * SLOT);
        let size = if fit < 16 {
            16
        } else {
            // The largest power of two not above `fit` (queue sizes are powers of two).
            1usize << (usize::BITS - 1 - fit.leading_zeros())
        };
        Self {
            queue_size: u16::try_from(size.min(256)).unwrap_or(256),
            ..Self::default()
        }
    }
}

/// Counters of frames dropped and device misbehaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetStats {
    /// Frames received and handed to the caller.
    pub rx_frames: u64,
    /// Frames queued for transmission.
    pub tx_frames: u64,
    /// Received frames dropped: shorter than the header, bad NEEDS_CSUM offsets, or
    /// a used length larger than the buffer.
    pub rx_dropped: u64,
    /// Used entries with ids the driver never posted (skipped).
    pub bogus_used: u64,
}

/// A virtio-net device (see the module docs).
#[derive(Debug)]
pub struct VirtioNet<T: Transport> {
    transport: T,
    rx: Virtqueue,
    tx: Virtqueue,
    features: u64,
    info: NetInfo,
    tx_free: Vec<u16>,
    stats: NetStats,
    fatal: Option<QueueError>,
}

impl<T: Transport> VirtioNet<T> {
    /// Initialises the device (virtio 1.2 §3.1.1 and §5.1.5): negotiates features,
    /// allocates both queues and their pools, fills the receive queue and sets
    /// DRIVER_OK. The device is reset first, so this may be called on a device a
    /// previous program left running.
    pub fn new(mut transport: T, cfg: NetConfig) -> Result<Self, InitError> {
        let offered = transport::start_init(&mut transport, device_id::NET)?;
        match Self::init(&mut transport, offered, cfg) {
            Ok((rx, tx, features, info)) => {
                let tx_free = (0..tx.slots() as u16).rev().collect();
                let mut dev = Self {
                    transport,
                    rx,
                    tx,
                    features,
                    info,
                    tx_free,
                    stats: NetStats::default(),
                    fatal: None,
                };
                for slot in 0..dev.rx.slots() as u16 {
                    dev.post_rx(slot);
                }
                transport::finish_init(&mut dev.transport);
                if dev.rx.kick_needed() {
                    dev.transport.notify(RX_QUEUE);
                }
                Ok(dev)
            }
            Err(e) => {
                transport::fail(&mut transport);
                Err(e)
            }
        }
    }

    fn init(
        t: &mut T,
        offered: u64,
        cfg: NetConfig,
    ) -> Result<(Virtqueue, Virtqueue, u64, NetInfo), InitError> {
        let mut wanted = COMMON_FEATURES | net::MAC | net::STATUS;
        let mut mtu = DEFAULT_MTU;
        if offered & net::MTU != 0 {
            let m = t.read_config16(config::MTU)?;
            // Negotiating MTU obliges us to receive `m`-byte packets; we do when
            // they fit our buffers, else we run at 1500 without it.
            if (68..=MAX_MTU).contains(&m) {
                wanted |= net::MTU;
                mtu = m;
            }
        }
        let negotiated = offered & wanted;
        transport::accept_features(t, negotiated)?;
        let mac = if negotiated & net::MAC != 0 {
            t.read_config_consistent(|t| {
                let mut mac = [0u8; 6];
                for (i, b) in mac.iter_mut().enumerate() {
                    *b = t.read_config8(config::MAC + i)?;
                }
                Ok(mac)
            })?
        } else {
            cfg.fallback_mac
        };
        let event_idx = negotiated & features::RING_EVENT_IDX != 0;
        let frame_max = usize::from(mtu) + ETH_OVERHEAD;
        let rx = Self::make_queue(
            t,
            RX_QUEUE,
            cfg.queue_size,
            (HDR_LEN + frame_max).next_multiple_of(64),
            event_idx,
        )?;
        let tx = Self::make_queue(
            t,
            TX_QUEUE,
            cfg.queue_size,
            (HDR_LEN + frame_max).next_multiple_of(64),
            event_idx,
        )?;
        Ok((
            rx,
            tx,
            negotiated,
            NetInfo {
                mac,
                mtu: usize::from(mtu),
            },
        ))
    }

    fn make_queue(
        t: &mut T,
        q: u16,
        wanted: u16,
        slot: usize,
        event_idx: bool,
    ) -> Result<Virtqueue, InitError> {
        let size = transport::choose_queue_size(t.max_queue_size(q), wanted)
            .ok_or(transport::TransportError::NoSuchQueue(q))?;
        let vq = Virtqueue::new(size, usize::from(size), slot, event_idx)?;
        t.setup_queue(q, size, vq.addrs())?;
        Ok(vq)
    }

    /// The negotiated feature bits.
    pub fn features(&self) -> u64 {
        self.features
    }

    /// Drop and error counters.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// The device error that stopped the driver, if any (the device then needs a
    /// reset: drop the driver and build a new one).
    pub fn fatal_error(&self) -> Option<QueueError> {
        self.fatal
    }

    /// Whether the link is up (always true without VIRTIO_NET_F_STATUS).
    pub fn link_up(&self) -> bool {
        if self.features & net::STATUS == 0 {
            return true;
        }
        self.transport
            .read_config16(config::STATUS)
            .is_ok_and(|s| s & config::LINK_UP != 0)
    }

    /// The transport (for [`interrupt_ack`](crate::transport::AnyTransport::interrupt_ack)
    /// and the like).
    pub fn transport(&self) -> &T {
        &self.transport
    }

    fn post_rx(&mut self, slot: u16) {
        let len = self.rx.slot_size();
        if let Err(e) = self.rx.post(slot, &[Segment::writable(0, len)]) {
            self.on_error(e);
        }
    }

    fn on_error(&mut self, e: QueueError) {
        match e {
            QueueError::UsedIdOutOfRange { .. } | QueueError::UsedIdNotInFlight(_) => {
                self.stats.bogus_used += 1
            }
            _ => {
                if self.fatal.is_none() {
                    log::error!("virtio-net: {e}; device stopped");
                    self.fatal = Some(e);
                }
            }
        }
    }

    fn reclaim_tx(&mut self) {
        loop {
            match self.tx.pop_used() {
                Ok(Some(u)) => self.tx_free.push(u.slot),
                Ok(None) => break,
                Err(QueueError::UsedLenTooLarge { slot, .. }) => self.tx_free.push(slot),
                Err(
                    e @ (QueueError::UsedIdOutOfRange { .. } | QueueError::UsedIdNotInFlight(_)),
                ) => self.on_error(e),
                Err(e) => {
                    self.on_error(e);
                    break;
                }
            }
        }
    }

    /// Delivers the frame in `slot` (`len` bytes incl. header) to `f`; `Err(f)` when
    /// the frame is malformed and was dropped.
    fn deliver<R, F: FnOnce(&mut [u8]) -> R>(
        &mut self,
        slot: u16,
        len: usize,
        f: F,
    ) -> Result<R, F> {
        let Ok(buf) = self.rx.slot_mut(slot) else {
            return Err(f);
        };
        let Some(hdr) = NetHdr::parse(buf) else {
            return Err(f);
        };
        let Some(frame) = buf.get_mut(HDR_LEN..len) else {
            return Err(f);
        };
        if hdr.flags & HDR_F_NEEDS_CSUM != 0
            && complete_checksum(frame, hdr.csum_start, hdr.csum_offset).is_err()
        {
            return Err(f);
        }
        Ok(f(frame))
    }
}

impl<T: Transport> NetDevice for VirtioNet<T> {
    fn info(&self) -> NetInfo {
        self.info
    }

    fn receive<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        let mut f = f;
        loop {
            if self.fatal.is_some() {
                return None;
            }
            let used = match self.rx.pop_used() {
                Ok(Some(u)) => u,
                Ok(None) => return None,
                Err(QueueError::UsedLenTooLarge { slot, .. }) => {
                    self.stats.rx_dropped += 1;
                    self.post_rx(slot);
                    continue;
                }
                Err(e) => {
                    self.on_error(e);
                    continue;
                }
            };
            let result = self.deliver(used.slot, used.len as usize, f);
            self.post_rx(used.slot);
            // Keep the device supplied: kick now if it is running low, else in poll.
            if self.rx.in_flight() < self.rx.size() / 2 && self.rx.kick_needed() {
                self.transport.notify(RX_QUEUE);
            }
            match result {
                Ok(r) => {
                    self.stats.rx_frames += 1;
                    return Some(r);
                }
                Err(back) => {
                    self.stats.rx_dropped += 1;
                    f = back;
                }
            }
        }
    }

    fn can_transmit(&self) -> bool {
        self.fatal.is_none() && (!self.tx_free.is_empty() || self.tx.has_used())
    }

    fn transmit<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        if self.fatal.is_some() || len > self.info.mtu + 14 {
            return None;
        }
        if self.tx_free.is_empty() {
            self.reclaim_tx();
        }
        let slot = self.tx_free.pop()?;
        let Ok(buf) = self.tx.slot_mut(slot) else {
            self.tx_free.push(slot);
            return None;
        };
        // A zeroed header: no offloads, no GSO (virtio 1.2 §5.1.6.2).
        NetHdr::default().emit(buf)?;
        let r = f(&mut buf[HDR_LEN..HDR_LEN + len]);
        if let Err(e) = self.tx.post(slot, &[Segment::readable(0, HDR_LEN + len)]) {
            self.tx_free.push(slot);
            self.on_error(e);
            return None;
        }
        self.stats.tx_frames += 1;
        if self.tx_free.is_empty() && self.tx.kick_needed() {
            self.transport.notify(TX_QUEUE);
        }
        Some(r)
    }

    fn poll(&mut self) -> bool {
        self.transport.ack_interrupt();
        if self.fatal.is_some() {
            return false;
        }
        self.reclaim_tx();
        if self.tx.kick_needed() {
            self.transport.notify(TX_QUEUE);
        }
        if self.rx.kick_needed() {
            self.transport.notify(RX_QUEUE);
        }
        self.rx.has_used()
    }

    fn occupancy(&self) -> Option<QueueOccupancy> {
        Some(QueueOccupancy {
            rx_posted: self.rx.in_flight(),
            rx_size: self.rx.size(),
            tx_in_flight: self.tx.in_flight(),
            tx_size: self.tx.size(),
        })
    }
}

impl<T: Transport> Drop for VirtioNet<T> {
    fn drop(&mut self) {
        // Stop DMA before the pools are freed; if the device will not confirm its
        // reset, leak the memory rather than let it write into freed heap.
        if self.transport.reset().is_err() {
            self.rx.leak();
            self.tx.leak();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeRing, FakeTransport};
    use crate::transport::status;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    fn net_config(mtu: u16) -> Vec<u8> {
        let mut c = vec![0u8; 12];
        c[..6].copy_from_slice(&MAC);
        c[6..8].copy_from_slice(&1u16.to_le_bytes());
        c[10..12].copy_from_slice(&mtu.to_le_bytes());
        c
    }

    fn offered() -> u64 {
        features::VERSION_1 | net::MAC | net::STATUS | net::CSUM | net::GUEST_CSUM | net::MRG_RXBUF
    }

    fn device(queue: u16) -> (VirtioNet<FakeTransport>, FakeTransport, FakeRing, FakeRing) {
        let t = FakeTransport::new(1, offered(), net_config(0));
        t.0.borrow_mut().max_queue = queue;
        let dev = VirtioNet::new(t.clone(), NetConfig::default()).unwrap();
        let (rx, tx) = (t.ring(0), t.ring(1));
        (dev, t, rx, tx)
    }

    #[test]
    fn negotiates_only_what_it_handles() {
        let (dev, t, _, _) = device(16);
        assert_eq!(dev.features(), features::VERSION_1 | net::MAC | net::STATUS);
        assert_eq!(
            dev.info(),
            NetInfo {
                mac: MAC,
                mtu: 1500
            }
        );
        assert!(dev.link_up());
        let st = t.0.borrow();
        assert_eq!(
            st.status,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK
        );
        assert_eq!(
            st.notifications,
            [RX_QUEUE],
            "the filled receive queue was announced"
        );
    }

    #[test]
    fn honours_device_mtu_and_fallback_mac() {
        let t = FakeTransport::new(1, features::VERSION_1 | net::MTU, net_config(9000));
        let dev = VirtioNet::new(t.clone(), NetConfig::default()).unwrap();
        assert_eq!(
            dev.info(),
            NetInfo {
                mac: [2, 0, 0, 0, 0, 1],
                mtu: 9000
            }
        );
        assert_eq!(dev.features(), features::VERSION_1 | net::MTU);
        let t = FakeTransport::new(1, features::VERSION_1 | net::MTU, net_config(65000));
        let dev = VirtioNet::new(t, NetConfig::default()).unwrap();
        assert_eq!(
            dev.info().mtu,
            1500,
            "an MTU too big for our buffers is not negotiated"
        );
    }

    #[test]
    fn legacy_device_is_refused_clearly() {
        let t = FakeTransport::new(1, net::MAC, net_config(0));
        let err = VirtioNet::new(t.clone(), NetConfig::default()).unwrap_err();
        assert_eq!(err, InitError::NoVersion1 { offered: net::MAC });
        assert_ne!(t.0.borrow().status & status::FAILED, 0);
        let t = FakeTransport::new(2, offered(), net_config(0));
        assert!(matches!(
            VirtioNet::new(t, NetConfig::default()),
            Err(InitError::WrongDevice { .. })
        ));
    }

    fn frame(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn rx_round_trip_and_buffer_recycling() {
        let (mut dev, t, mut rx, _) = device(8);
        assert!(!dev.poll());
        assert_eq!(dev.receive(|f| f.len()), None);
        // 20 frames through an 8-slot ring: buffers must come back each time.
        for i in 0..20u8 {
            let c = rx.pop_avail().expect("receive buffer posted");
            assert_eq!(c.writable_len() as usize, dev.rx.slot_size());
            let mut data = vec![0u8; HDR_LEN];
            data.extend(frame(60 + usize::from(i), i));
            let n = c.write(&data);
            rx.push_used(c.head, n);
            assert!(dev.poll());
            let got = dev.receive(|f| f.to_vec()).unwrap();
            assert_eq!(got, frame(60 + usize::from(i), i));
        }
        assert_eq!(dev.stats().rx_frames, 20);
        assert_eq!(dev.rx.in_flight(), 8);
        let _ = rx.pop_avail().unwrap();
        // A buffer the device holds is still posted; after it is read and re-posted too.
        assert_eq!(
            dev.occupancy().map(|o| (o.rx_posted, o.rx_size)),
            Some((8, 8))
        );
        assert!(
            t.0.borrow()
                .notifications
                .iter()
                .filter(|&&q| q == RX_QUEUE)
                .count()
                >= 2
        );
    }

    #[test]
    fn tx_round_trip_batches_kicks_and_reclaims() {
        let (mut dev, t, _, mut tx) = device(4);
        t.0.borrow_mut().notifications.clear();
        assert!(dev.can_transmit());
        for i in 0..3u8 {
            assert_eq!(
                dev.transmit(100, |b| b.copy_from_slice(&frame(100, i))),
                Some(())
            );
        }
        assert!(
            t.0.borrow().notifications.is_empty(),
            "kick deferred to poll"
        );
        let full_rx = |tx_in_flight| QueueOccupancy {
            rx_posted: 4,
            rx_size: 4,
            tx_in_flight,
            tx_size: 4,
        };
        assert_eq!(dev.occupancy(), Some(full_rx(3)));
        dev.poll();
        assert_eq!(t.0.borrow().notifications, [TX_QUEUE]);
        for i in 0..3u8 {
            let c = tx.pop_avail().unwrap();
            let bytes = c.readable();
            assert_eq!(&bytes[..HDR_LEN], &[0; HDR_LEN]);
            assert_eq!(&bytes[HDR_LEN..], frame(100, i));
            tx.push_used(c.head, 0);
        }
        // Completed but not yet reclaimed: still the device's until poll.
        assert_eq!(dev.occupancy(), Some(full_rx(3)));
        // The pool (4) is refilled by poll and transmit keeps working indefinitely.
        dev.poll();
        assert_eq!(dev.occupancy(), Some(full_rx(0)));
        for i in 0..10u8 {
            assert!(dev.transmit(60, |b| b.fill(i)).is_some());
            let c = tx.pop_avail().unwrap();
            assert_eq!(c.readable()[HDR_LEN..], [i; 60]);
            tx.push_used(c.head, 0);
        }
    }

    #[test]
    fn tx_pool_exhaustion_and_oversize_frames() {
        let (mut dev, t, _, mut tx) = device(2);
        assert_eq!(dev.transmit(1515, |_| ()), None, "longer than mtu + 14");
        assert!(dev.transmit(1514, |_| ()).is_some());
        assert!(dev.transmit(10, |_| ()).is_some());
        assert_eq!(
            t.0.borrow().notifications.last(),
            Some(&TX_QUEUE),
            "pool ran dry: kicked at once"
        );
        assert!(!dev.can_transmit());
        assert_eq!(dev.transmit(10, |_| ()), None);
        let c = tx.pop_avail().unwrap();
        tx.push_used(c.head, 0);
        assert!(dev.can_transmit());
        assert!(
            dev.transmit(10, |_| ()).is_some(),
            "transmit reclaims when the pool is empty"
        );
    }

    #[test]
    fn malformed_rx_completions_are_dropped_not_trusted() {
        let (mut dev, _t, mut rx, _) = device(4);
        // Used length beyond the buffer.
        let c = rx.pop_avail().unwrap();
        rx.push_used(c.head, c.writable_len() + 1);
        // Shorter than the header.
        let c2 = rx.pop_avail().unwrap();
        rx.push_used(c2.head, 5);
        // An id never posted.
        rx.push_used(1000, 10);
        // NEEDS_CSUM pointing outside the frame.
        let c3 = rx.pop_avail().unwrap();
        let mut d = vec![HDR_F_NEEDS_CSUM, 0, 0, 0, 0, 0, 200, 0, 10, 0, 1, 0];
        d.extend([0u8; 60]);
        rx.push_used(c3.head, c3.write(&d));
        assert_eq!(dev.receive(|f| f.len()), None);
        assert_eq!(dev.stats().rx_dropped, 3);
        assert_eq!(dev.stats().bogus_used, 1);
        assert_eq!(dev.fatal_error(), None);
        assert_eq!(
            dev.rx.in_flight(),
            4,
            "every buffer went back to the device"
        );
        // A valid frame still arrives afterwards.
        let c = rx.pop_avail().unwrap();
        let mut d = vec![0u8; HDR_LEN];
        d.extend(frame(64, 9));
        rx.push_used(c.head, c.write(&d));
        assert_eq!(dev.receive(|f| f.to_vec()), Some(frame(64, 9)));
    }

    #[test]
    fn needs_csum_is_completed_on_receive() {
        let (mut dev, _t, mut rx, _) = device(4);
        let c = rx.pop_avail().unwrap();
        // IPv4 + UDP with an all-zero pseudo-header sum (checksum over the segment).
        let mut f = vec![0u8; 14 + 20 + 8 + 4];
        f[34..36].copy_from_slice(&[0x12, 0x34]);
        f[42..46].copy_from_slice(b"ping");
        let hdr = NetHdr {
            flags: HDR_F_NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 6,
            num_buffers: 1,
            ..Default::default()
        };
        let mut d = vec![0u8; HDR_LEN];
        hdr.emit(&mut d).unwrap();
        d.extend(&f);
        rx.push_used(c.head, c.write(&d));
        let got = dev.receive(|f| f.to_vec()).unwrap();
        let mut sum = 0u32;
        for w in got[34..].chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff, "checksum verifies");
    }

    #[test]
    fn a_runaway_used_index_stops_the_device_without_panicking() {
        let (mut dev, _t, mut rx, _) = device(4);
        for _ in 0..6 {
            rx.push_used(0, 0);
        }
        assert_eq!(dev.receive(|f| f.len()), None);
        assert!(matches!(
            dev.fatal_error(),
            Some(QueueError::UsedIndexAhead { .. })
        ));
        assert!(!dev.poll());
        assert!(!dev.can_transmit());
        assert_eq!(dev.transmit(10, |_| ()), None);
    }

    #[test]
    fn drop_resets_the_device() {
        let (dev, t, _, _) = device(4);
        drop(dev);
        assert_eq!(t.0.borrow().status, 0);
    }

    #[test]
    fn queues_are_sized_to_the_heap() {
        assert_eq!(NetConfig::for_heap(64 << 20).queue_size, 256);
        assert_eq!(NetConfig::for_heap(7 << 20).queue_size, 256);
        assert_eq!(NetConfig::for_heap(4 << 20).queue_size, 128);
        assert_eq!(NetConfig::for_heap(1364 << 10).queue_size, 32);
        assert_eq!(NetConfig::for_heap(0).queue_size, 16);
        assert_eq!(NetConfig::for_heap(usize::MAX).queue_size, 256);
        for heap in [1 << 20, 3 << 20, 5 << 20, 100 << 20] {
            let q = usize::from(NetConfig::for_heap(heap).queue_size);
            assert!(q.is_power_of_two(), "{heap}: {q}");
            assert!(q == 16 || 2 * q * 1600 <= heap / 8, "{heap}: {q}");
        }
    }
}
