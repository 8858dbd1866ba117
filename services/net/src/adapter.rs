//! The one adapter from our [`NetDevice`] to smoltcp's [`phy::Device`].
//!
//! Tokens lend the device's own buffers: a receive token hands smoltcp the frame the
//! device lends, a transmit token hands it the device's transmit buffer, so the data
//! path copies nothing and allocates nothing. The one exception is a reply smoltcp
//! emits *while* it still holds a received frame (an ARP reply, an ICMP echo reply, a
//! TCP RST): the device cannot lend a transmit buffer while it lends a receive buffer,
//! so the reply is written into a scratch buffer allocated once and sent as soon as
//! the receive buffer is returned. When the device has no free transmit buffer then,
//! the reply is dropped (counted), as a NIC would drop it; the protocols recover.
//!
//! Receive readiness: [`Adapter::begin`] asks the device (`poll`) whether a frame is
//! waiting; smoltcp then receives until the device lends nothing. The last attempt
//! hands smoltcp an empty frame, which smoltcp ignores by design.
//!
//! Checksums: over a device without offload (virtio-net here negotiates none)
//! smoltcp computes and verifies every checksum in software. Over a device with
//! [`checksum_offload`](NetDevice::checksum_offload) (the TAP opened with a virtio
//! header) smoltcp leaves TCP and UDP checksums alone, since its capabilities are per
//! interface: the adapter puts the pseudo-header sum in each TCP/UDP frame it sends
//! for the host to finish ([`TxChecksum::Partial`]), and verifies in software every
//! received frame the device did not vouch for ([`RxChecksum::Unverified`]),
//! dropping a bad one (counted). IPv4 header and ICMP checksums stay smoltcp's.

use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use oasis_devices::{NetDevice, RxChecksum, TxChecksum};
use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::checksum;
use crate::tcpstats::{TcpCounts, TcpTracker};

/// Ethernet header bytes on top of the IP MTU.
const ETH_HEADER: usize = 14;

/// Frame counts kept by the adapter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdapterStats {
    /// Frames received from the device.
    pub rx_frames: u64,
    /// Frames handed to the device.
    pub tx_frames: u64,
    /// Frames smoltcp produced that the device refused (no buffer, too long).
    pub tx_dropped: u64,
    /// Received frames dropped for a bad TCP/UDP checksum, found by the adapter's own
    /// check (devices with checksum offload; smoltcp's own drops are not counted).
    pub rx_bad_checksum: u64,
    /// TCP segments, retransmissions and resets seen in those frames
    /// ([`crate::tcpstats`]).
    pub tcp: TcpCounts,
}

/// A reply built while a received frame is still lent.
struct Reply {
    buf: Vec<u8>,
    len: Option<usize>,
}

/// `NetDevice` → `phy::Device`; see the module docs.
pub struct Adapter<D> {
    dev: D,
    caps: DeviceCapabilities,
    reply: RefCell<Reply>,
    rx_ready: bool,
    stats: AdapterStats,
    /// Frames transmitted since [`begin`](Self::begin).
    sent: u64,
    /// The destination port when the last received frame was a TCP SYN over IPv4.
    last_syn: Option<u16>,
    /// `None` unless TCP statistics are on ([`set_tcp_stats`](Self::set_tcp_stats)).
    tcp: Option<TcpTracker>,
}

impl<D: NetDevice> Adapter<D> {
    /// Wraps `dev`; `max_burst` caps the advertised receive window in segments.
    pub fn new(dev: D, max_burst: Option<usize>) -> Self {
        let info = dev.info();
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = info.mtu + ETH_HEADER;
        caps.max_burst_size = max_burst;
        caps.checksum = if dev.checksum_offload() {
            // TCP/UDP: the adapter's (see the module docs).
            let mut c = ChecksumCapabilities::default();
            c.tcp = Checksum::None;
            c.udp = Checksum::None;
            c
        } else {
            ChecksumCapabilities::default() // compute and verify: Checksum::Both
        };
        Self {
            reply: RefCell::new(Reply {
                buf: vec![0; info.mtu + ETH_HEADER],
                len: None,
            }),
            dev,
            caps,
            rx_ready: false,
            stats: AdapterStats::default(),
            sent: 0,
            last_syn: None,
            tcp: None,
        }
    }

    /// Turns counting TCP retransmissions and resets ([`crate::tcpstats`]) on or
    /// off; off (the default) costs one branch per frame and no table.
    pub fn set_tcp_stats(&mut self, on: bool) {
        if on != self.tcp.is_some() {
            self.tcp = on.then(TcpTracker::new);
        }
    }

    /// The destination port when the last received frame was a TCP connection request
    /// (SYN without ACK) over IPv4: the stack counts the ones it had no socket for.
    pub fn last_syn(&self) -> Option<u16> {
        self.last_syn
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// The device, mutably.
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Frame counts.
    pub fn stats(&self) -> AdapterStats {
        AdapterStats {
            tcp: self
                .tcp
                .as_ref()
                .map(TcpTracker::counts)
                .unwrap_or_default(),
            ..self.stats
        }
    }

    /// Starts a poll: lets the device do its housekeeping and learns whether a frame
    /// is waiting.
    pub fn begin(&mut self) {
        self.rx_ready = self.dev.poll();
        self.sent = 0;
    }

    /// Ends a poll: if frames were queued, lets the device push them out (a virtio
    /// notify). Returns whether received frames are still waiting.
    pub fn finish(&mut self) -> bool {
        if self.sent > 0 {
            self.sent = 0;
            self.rx_ready = self.dev.poll();
        }
        self.rx_ready
    }

    /// Whether the device has a free transmit buffer.
    pub fn can_transmit(&self) -> bool {
        self.dev.can_transmit()
    }
}

/// Lends one received frame.
pub struct RxToken<'a, D> {
    dev: &'a mut D,
    reply: &'a RefCell<Reply>,
    rx_ready: &'a mut bool,
    stats: &'a mut AdapterStats,
    sent: &'a mut u64,
    last_syn: &'a mut Option<u16>,
    tcp: &'a mut Option<TcpTracker>,
}

/// Lends one transmit buffer: the device's, or the reply scratch during a receive.
pub struct TxToken<'a, D>(Tx<'a, D>);

enum Tx<'a, D> {
    /// Straight into a device transmit buffer (`reply` serves if the device refuses).
    Device {
        dev: &'a mut D,
        reply: &'a RefCell<Reply>,
        stats: &'a mut AdapterStats,
        sent: &'a mut u64,
        tcp: &'a mut Option<TcpTracker>,
    },
    /// Into the scratch buffer; sent when the received frame is returned.
    Reply(&'a RefCell<Reply>),
}

impl<D: NetDevice> phy::Device for Adapter<D> {
    type RxToken<'a>
        = RxToken<'a, D>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, D>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        if !self.rx_ready {
            return None;
        }
        let Adapter {
            dev,
            reply,
            rx_ready,
            stats,
            sent,
            last_syn,
            tcp,
            ..
        } = self;
        let reply = &*reply;
        *last_syn = None;
        Some((
            RxToken {
                dev,
                reply,
                rx_ready,
                stats,
                sent,
                last_syn,
                tcp,
            },
            TxToken(Tx::Reply(reply)),
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        if !self.dev.can_transmit() {
            return None;
        }
        let Adapter {
            dev,
            reply,
            stats,
            sent,
            tcp,
            ..
        } = self;
        Some(TxToken(Tx::Device {
            dev,
            reply,
            stats,
            sent,
            tcp,
        }))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}

/// The destination port of a TCP SYN without ACK in an Ethernet + IPv4 frame. A
/// glance at four header bytes; malformed frames are simply `None`.
fn tcp_syn_port(frame: &[u8]) -> Option<u16> {
    const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
    const PROTO_TCP: u8 = 6;
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    if frame.get(12..14)? != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = frame.get(ETH_HEADER..)?;
    let version_ihl = *ip.first()?;
    if version_ihl >> 4 != 4 || *ip.get(9)? != PROTO_TCP {
        return None;
    }
    let tcp = ip.get(usize::from(version_ihl & 0x0f) * 4..)?;
    let flags = *tcp.get(13)?;
    let port = u16::from_be_bytes([*tcp.get(2)?, *tcp.get(3)?]);
    (flags & (SYN | ACK) == SYN).then_some(port)
}

/// What a frame smoltcp wrote asks of the device: nothing without offload (smoltcp
/// computed every checksum), else the TCP/UDP checksum to finish.
fn tx_checksum(offload: bool, frame: &mut [u8]) -> TxChecksum {
    if offload {
        checksum::tx_partial(frame)
    } else {
        TxChecksum::Complete
    }
}

impl<D: NetDevice> RxToken<'_, D> {
    /// Sends the reply built during the receive, if any.
    fn flush_reply(&mut self) {
        let mut reply = self.reply.borrow_mut();
        let Some(len) = reply.len.take() else { return };
        let Some(frame) = reply.buf.get(..len) else {
            return;
        };
        let offload = self.dev.checksum_offload();
        if self
            .dev
            .transmit_with_checksum(len, |b| {
                b.copy_from_slice(frame);
                ((), tx_checksum(offload, b))
            })
            .is_some()
        {
            self.stats.tx_frames += 1;
            *self.sent += 1;
            if let Some(t) = self.tcp {
                t.sent(frame);
            }
        } else {
            self.stats.tx_dropped += 1;
        }
    }
}

impl<D: NetDevice> phy::RxToken for RxToken<'_, D> {
    fn consume<R, F>(mut self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let mut f = Some(f);
        let (last_syn, tcp) = (&mut *self.last_syn, &mut *self.tcp);
        let verify = self.dev.checksum_offload();
        let got = self.dev.receive_with_checksum(|frame, csum| {
            if verify && csum == RxChecksum::Unverified && !checksum::rx_valid(frame) {
                *last_syn = None;
                return None;
            }
            *last_syn = tcp_syn_port(frame);
            if let Some(t) = tcp {
                t.received(frame);
            }
            f.take().map(|f| f(frame))
        });
        let r = match (got, f.take()) {
            (Some(Some(r)), _) => {
                self.stats.rx_frames += 1;
                r
            }
            (Some(None), Some(f)) => {
                // A bad checksum: dropped, as smoltcp would; an empty frame instead.
                self.stats.rx_frames += 1;
                self.stats.rx_bad_checksum += 1;
                f(&[])
            }
            (None, Some(f)) => {
                // Nothing was waiting after all: an empty frame, which smoltcp skips.
                *self.rx_ready = false;
                f(&[])
            }
            (_, None) => unreachable!("the receive closure ran but produced no value"),
        };
        self.flush_reply();
        r
    }
}

impl<D: NetDevice> phy::TxToken for TxToken<'_, D> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        match self.0 {
            Tx::Device {
                dev,
                reply,
                stats,
                sent,
                tcp,
            } => {
                let mut f = Some(f);
                let offload = dev.checksum_offload();
                let queued = dev.transmit_with_checksum(len, |buf| {
                    let r = f.take().map(|f| f(buf));
                    if let Some(t) = tcp {
                        t.sent(buf);
                    }
                    (r, tx_checksum(offload, buf))
                });
                if let Some(Some(r)) = queued {
                    stats.tx_frames += 1;
                    *sent += 1;
                    return r;
                }
                // The device refused (a frame longer than its MTU): build it aside, drop it.
                stats.tx_dropped += 1;
                let mut reply = reply.borrow_mut();
                if reply.buf.len() < len {
                    reply.buf.resize(len, 0);
                }
                match f.take() {
                    Some(f) => f(&mut reply.buf[..len]),
                    None => unreachable!("the transmit closure ran but produced no value"),
                }
            }
            Tx::Reply(reply) => {
                let mut reply = reply.borrow_mut();
                if reply.buf.len() < len {
                    reply.buf.resize(len, 0);
                }
                let r = f(&mut reply.buf[..len]);
                reply.len = Some(len);
                r
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::test_frames::{complete, frame};
    use oasis_devices::NetInfo;
    use oasis_devices::mem_net::{MemNet, MemNetConfig};
    use phy::{Device, RxToken as _, TxToken as _};
    use smoltcp::wire::IpProtocol;

    /// A `MemNet` end with checksum offload: every received frame is reported as
    /// `rx`; what each transmitted frame asks is recorded.
    struct Offloading {
        net: MemNet,
        rx: RxChecksum,
        tx: Vec<TxChecksum>,
    }

    impl NetDevice for Offloading {
        fn info(&self) -> NetInfo {
            self.net.info()
        }
        fn receive<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
            self.net.receive(f)
        }
        fn can_transmit(&self) -> bool {
            self.net.can_transmit()
        }
        fn transmit<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
            self.transmit_with_checksum(len, |b| (f(b), TxChecksum::Complete))
        }
        fn poll(&mut self) -> bool {
            self.net.poll()
        }
        fn checksum_offload(&self) -> bool {
            true
        }
        fn receive_with_checksum<R>(
            &mut self,
            f: impl FnOnce(&mut [u8], RxChecksum) -> R,
        ) -> Option<R> {
            let rx = self.rx;
            self.net.receive(|frame| f(frame, rx))
        }
        fn transmit_with_checksum<R>(
            &mut self,
            len: usize,
            f: impl FnOnce(&mut [u8]) -> (R, TxChecksum),
        ) -> Option<R> {
            let tx = &mut self.tx;
            self.net.transmit(len, |b| {
                let (r, csum) = f(b);
                tx.push(csum);
                r
            })
        }
    }

    fn offloading(rx: RxChecksum) -> (Adapter<Offloading>, MemNet) {
        let (a, b) = MemNet::pair();
        let dev = Offloading {
            net: a,
            rx,
            tx: Vec::new(),
        };
        (Adapter::new(dev, None), b)
    }

    /// The length smoltcp is handed for the next received frame (0: dropped).
    fn next_frame_len<D: NetDevice>(ad: &mut Adapter<D>) -> usize {
        ad.begin();
        let (rx, _) = ad.receive(Instant::from_millis(0)).unwrap();
        rx.consume(|f| f.len())
    }

    #[test]
    fn smoltcp_leaves_tcp_and_udp_checksums_to_an_offloading_device() {
        let (ad, _b) = offloading(RxChecksum::Unverified);
        let c = ad.capabilities().checksum;
        assert!(!c.tcp.tx() && !c.tcp.rx() && !c.udp.tx() && !c.udp.rx());
        assert!(c.ipv4.tx() && c.ipv4.rx() && c.icmpv4.rx() && c.icmpv6.rx());
        let (a, _b) = MemNet::pair();
        let c = Adapter::new(a, None).capabilities().checksum;
        assert!(c.tcp.tx() && c.tcp.rx() && c.udp.tx() && c.udp.rx());
    }

    #[test]
    fn unflagged_frames_with_bad_checksums_are_dropped() {
        let (mut ad, mut b) = offloading(RxChecksum::Unverified);
        for (v6, proto) in [
            (true, IpProtocol::Tcp),
            (false, IpProtocol::Udp),
            (false, IpProtocol::Tcp),
        ] {
            let good = frame(v6, proto, b"checked in software");
            let mut bad = good.clone();
            *bad.last_mut().unwrap() ^= 0x40;
            for f in [&bad, &good] {
                b.transmit(f.len(), |buf| buf.copy_from_slice(f)).unwrap();
            }
            assert_eq!(next_frame_len(&mut ad), 0, "{v6} {proto}: bad frame passed");
            assert_eq!(next_frame_len(&mut ad), good.len(), "{v6} {proto}");
        }
        let stats = ad.stats();
        assert_eq!((stats.rx_frames, stats.rx_bad_checksum), (6, 3));
        assert_eq!(ad.last_syn(), Some(80), "the good IPv4 SYN is seen");
    }

    #[test]
    fn flagged_frames_are_trusted() {
        for rx in [RxChecksum::Partial, RxChecksum::Valid] {
            let (mut ad, mut b) = offloading(rx);
            // As the host's stack sends it with NEEDS_CSUM: the pseudo-header sum only.
            let mut f = frame(false, IpProtocol::Tcp, b"from the host");
            let partial = checksum::tx_partial(&mut f);
            assert!(matches!(partial, TxChecksum::Partial { .. }));
            assert!(!checksum::rx_valid(&f));
            b.transmit(f.len(), |buf| buf.copy_from_slice(&f)).unwrap();
            assert_eq!(next_frame_len(&mut ad), f.len(), "{rx:?}");
            assert_eq!(ad.stats().rx_bad_checksum, 0);
        }
    }

    #[test]
    fn a_device_without_offload_hands_every_frame_to_smoltcp() {
        // smoltcp verifies them itself (its capabilities are on).
        let (a, mut b) = MemNet::pair();
        let mut ad = Adapter::new(a, None);
        let mut bad = frame(false, IpProtocol::Tcp, b"smoltcp's to check");
        *bad.last_mut().unwrap() ^= 1;
        b.transmit(bad.len(), |buf| buf.copy_from_slice(&bad))
            .unwrap();
        assert_eq!(next_frame_len(&mut ad), bad.len());
        assert_eq!(ad.stats().rx_bad_checksum, 0);
    }

    #[test]
    fn transmitted_frames_carry_partial_sums_the_host_completes() {
        let (mut ad, mut b) = offloading(RxChecksum::Unverified);
        let now = Instant::from_millis(0);
        for (v6, proto, start, offset) in [
            (false, IpProtocol::Tcp, 34, 16),
            (false, IpProtocol::Udp, 34, 6),
            (true, IpProtocol::Tcp, 54, 16),
            (true, IpProtocol::Udp, 54, 6),
        ] {
            let good = frame(v6, proto, &[0x5a; 1400]);
            let mut zeroed = good.clone();
            zeroed[start + offset..][..2].fill(0); // as smoltcp leaves it
            ad.transmit(now)
                .unwrap()
                .consume(zeroed.len(), |buf| buf.copy_from_slice(&zeroed));
            let want = TxChecksum::Partial {
                start: start as u16,
                offset: offset as u16,
            };
            assert_eq!(ad.device().tx.last(), Some(&want), "{v6} {proto}");
            let mut sent = b.receive(|f| f.to_vec()).unwrap();
            complete(&mut sent, start as u16, offset as u16);
            assert_eq!(sent, good, "{v6} {proto}");
        }
        // A reply built during a receive (a RST, say) goes out the same way.
        b.transmit(42, |f| f.fill(0)).unwrap();
        ad.begin();
        let (rx, reply) = ad.receive(now).unwrap();
        let good = frame(false, IpProtocol::Tcp, b"");
        let mut zeroed = good.clone();
        zeroed[50..52].fill(0);
        rx.consume(|_| reply.consume(zeroed.len(), |buf| buf.copy_from_slice(&zeroed)));
        assert_eq!(
            ad.device().tx.last(),
            Some(&TxChecksum::Partial {
                start: 34,
                offset: 16
            })
        );
        let mut sent = b.receive(|f| f.to_vec()).unwrap();
        complete(&mut sent, 34, 16);
        assert_eq!(sent, good);
        // Not TCP or UDP: complete as written.
        ad.transmit(now).unwrap().consume(42, |buf| buf.fill(1));
        assert_eq!(ad.device().tx.last(), Some(&TxChecksum::Complete));
    }

    #[test]
    fn frames_pass_both_ways_without_copies_through_scratch() {
        let (a, mut b) = MemNet::pair();
        let mut ad = Adapter::new(a, Some(8));
        let caps = ad.capabilities();
        assert_eq!(caps.max_transmission_unit, 1514);
        assert_eq!(caps.max_burst_size, Some(8));
        let now = Instant::from_millis(0);
        let tx = ad.transmit(now).unwrap();
        tx.consume(60, |buf| buf.fill(7));
        assert_eq!(ad.stats().tx_frames, 1);
        assert_eq!(b.receive(|f| f.to_vec()).unwrap(), [7; 60]);

        b.transmit(42, |f| f.fill(3)).unwrap();
        ad.begin();
        let (rx, reply) = ad.receive(now).unwrap();
        let len = rx.consume(|frame| {
            // A reply made while the frame is lent goes out after it is returned.
            reply.consume(20, |out| out.fill(9));
            frame.len()
        });
        assert_eq!(len, 42);
        assert_eq!(b.receive(|f| f.to_vec()).unwrap(), [9; 20]);
        // Nothing left: the next token yields an empty frame and receiving stops.
        let (rx, _) = ad.receive(now).unwrap();
        assert_eq!(rx.consume(|f| f.len()), 0);
        assert!(ad.receive(now).is_none());
        assert!(!ad.finish());
    }

    #[test]
    fn full_device_refuses_tokens_and_drops_replies() {
        let (a, mut b) = MemNet::pair_with(MemNetConfig {
            queue_len: 1,
            ..MemNetConfig::default()
        });
        let mut ad = Adapter::new(a, None);
        let now = Instant::from_millis(0);
        ad.transmit(now).unwrap().consume(60, |_| ());
        assert!(ad.transmit(now).is_none());
        b.transmit(60, |_| ()).unwrap();
        ad.begin();
        let (rx, reply) = ad.receive(now).unwrap();
        rx.consume(|_| reply.consume(60, |_| ()));
        assert_eq!(ad.stats().tx_dropped, 1);
        assert_eq!(ad.stats().tx_frames, 1);
    }
}
