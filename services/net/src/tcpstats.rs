//! TCP retransmissions and resets, counted from the frames the adapter moves.
//!
//! smoltcp keeps no such counts, so [`TcpTracker`] reads the TCP header of every
//! frame the stack sends and receives (Ethernet + IPv4 or IPv6, TCP directly after
//! the IP header). For each connection (4-tuple) it remembers the highest sequence
//! end sent so far. A sent segment that occupies sequence space (data, SYN or FIN)
//! and ends at or below that mark is a retransmission. RSTs are counted both ways,
//! and a RST forgets the connection.
//!
//! The table is fixed ([`FLOWS`] entries, allocated once): a connection whose entry
//! was evicted (least recently used among its probe window, when more than `FLOWS`
//! connections send at once) starts afresh, so its next retransmission may be missed:
//! the count errs low, never high. A keep-alive probe (smoltcp's: one zero byte just
//! below the mark, RFC 1122 §4.2.3.6) is not a retransmission. Repeated zero-window
//! probes are counted, as they resend the same byte.
//!
//! Per frame: a header glance and one probe of at most [`PROBE`] slots; no
//! allocation, no lock (the adapter owns the tracker).

use alloc::vec;
use alloc::vec::Vec;

/// Connections tracked at once.
pub const FLOWS: usize = 512;
/// Slots examined per lookup (linear probing from the 4-tuple's hash).
pub const PROBE: usize = 8;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PROTO_TCP: u8 = 6;
const ETH_HEADER: usize = 14;
const IPV6_HEADER: usize = 40;

/// TCP flag bits (RFC 9293 §3.1).
mod flag {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
}

/// The counts, as exported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpCounts {
    /// TCP segments sent (every kind).
    pub segments_sent: u64,
    /// Sent segments that were retransmissions (see the module docs).
    pub retransmits: u64,
    /// Segments sent with RST.
    pub resets_sent: u64,
    /// Segments received with RST.
    pub resets_received: u64,
}

/// What the tracker needs of one TCP segment in an Ethernet frame: a view of the
/// frame's bytes, nothing copied but the header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Source then destination address (8 or 32 bytes).
    addrs: &'a [u8],
    /// Source then destination port (4 bytes).
    ports: &'a [u8],
    /// Sequence number.
    pub seq: u32,
    /// Sequence space the segment occupies: payload bytes, plus one for SYN and
    /// one for FIN.
    pub len: u32,
    /// The flags byte.
    pub flags: u8,
    /// Whether the payload is exactly one zero byte (smoltcp's keep-alive shape).
    pub one_zero_byte: bool,
}

impl<'a> Segment<'a> {
    /// Reads the TCP segment in an Ethernet frame; `None` for anything else and for
    /// any frame too short for the lengths its headers claim (a glance that never
    /// panics: the frame may come from anyone). IPv4 fragments other than a whole
    /// datagram are `None`.
    pub fn parse(frame: &'a [u8]) -> Option<Segment<'a>> {
        let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
        let ip = frame.get(ETH_HEADER..)?;
        let (addrs, tcp) = match ethertype {
            ETHERTYPE_IPV4 => {
                let vihl = *ip.first()?;
                let ihl = usize::from(vihl & 0x0f) * 4;
                if vihl >> 4 != 4 || ihl < 20 || *ip.get(9)? != PROTO_TCP {
                    return None;
                }
                // More-fragments flag or a fragment offset: not a whole segment.
                if u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x3fff != 0 {
                    return None;
                }
                let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
                (ip.get(12..20)?, ip.get(ihl..total)?)
            }
            ETHERTYPE_IPV6 => {
                if *ip.first()? >> 4 != 6 || *ip.get(6)? != PROTO_TCP {
                    return None;
                }
                let payload = usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]));
                (ip.get(8..40)?, ip.get(IPV6_HEADER..IPV6_HEADER + payload)?)
            }
            _ => return None,
        };
        let offset = usize::from(*tcp.get(12)? >> 4) * 4;
        if offset < 20 {
            return None;
        }
        let payload = tcp.get(offset..)?;
        let flags = *tcp.get(13)?;
        let seq = u32::from_be_bytes([*tcp.get(4)?, *tcp.get(5)?, *tcp.get(6)?, *tcp.get(7)?]);
        let len = u32::try_from(payload.len()).ok()?
            + u32::from(flags & flag::SYN != 0)
            + u32::from(flags & flag::FIN != 0);
        Some(Segment {
            addrs,
            ports: tcp.get(..4)?,
            seq,
            len,
            flags,
            one_zero_byte: payload == [0],
        })
    }

    /// A 64-bit hash of (source address, destination address, ports): the
    /// connection, direction included.
    pub fn flow(&self) -> u64 {
        flow_hash(self.addrs, self.ports, false)
    }

    /// The same connection's hash in the other direction (addresses and ports
    /// swapped): a received segment's connection as our side sends on it.
    pub fn reverse_flow(&self) -> u64 {
        flow_hash(self.addrs, self.ports, true)
    }
}

/// Hashes addresses (source then destination, each half of `addrs`) and ports
/// (4 bytes), a 32-bit word at a time; `swap` exchanges source and destination.
fn flow_hash(addrs: &[u8], ports: &[u8], swap: bool) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let words = |b: &[u8]| {
        b.chunks_exact(4)
            .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .fold(0u64, |h, w| {
                (h ^ u64::from(w)).wrapping_mul(K).rotate_left(29)
            })
    };
    let (a, b) = addrs.split_at(addrs.len() / 2);
    let (pa, pb) = match ports {
        [a0, a1, b0, b1] => (
            u16::from_ne_bytes([*a0, *a1]),
            u16::from_ne_bytes([*b0, *b1]),
        ),
        _ => (0, 0),
    };
    let (ha, hb, pa, pb) = if swap {
        (words(b), words(a), pb, pa)
    } else {
        (words(a), words(b), pa, pb)
    };
    let ports = u64::from(pa) << 16 | u64::from(pb);
    let h = (ha.rotate_left(17) ^ hb ^ ports).wrapping_mul(K);
    h ^ (h >> 32)
}

/// One tracked connection (direction: ours to the peer).
#[derive(Debug, Clone, Copy, Default)]
struct Flow {
    /// The 4-tuple hash; 0 marks a free slot (a real hash of 0 is moved to 1).
    key: u64,
    /// The highest sequence end sent.
    high: u32,
    /// When the slot was last used (the tracker's segment clock), for eviction.
    used: u32,
}

/// Counts retransmissions and resets; see the module docs.
#[derive(Debug)]
pub struct TcpTracker {
    flows: Vec<Flow>,
    clock: u32,
    counts: TcpCounts,
}

impl Default for TcpTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl TcpTracker {
    /// An empty tracker (allocates its table, once).
    pub fn new() -> Self {
        TcpTracker {
            flows: vec![Flow::default(); FLOWS],
            clock: 0,
            counts: TcpCounts::default(),
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> TcpCounts {
        self.counts
    }

    /// Notes a frame the stack sent.
    pub fn sent(&mut self, frame: &[u8]) {
        let Some(s) = Segment::parse(frame) else {
            return;
        };
        self.counts.segments_sent += 1;
        if s.flags & flag::RST != 0 {
            self.counts.resets_sent += 1;
            self.forget(s.flow());
            return;
        }
        if s.len == 0 {
            return; // a bare ACK occupies no sequence space
        }
        let end = s.seq.wrapping_add(s.len);
        self.clock = self.clock.wrapping_add(1);
        let clock = self.clock;
        let key = s.flow().max(1);
        let slot = self.slot(key);
        let Some(f) = self.flows.get_mut(slot) else {
            return;
        };
        if f.key == key {
            f.used = clock;
            if after(end, f.high) {
                f.high = end;
            } else if !(s.one_zero_byte && end == f.high && s.flags & flag::SYN == 0) {
                self.counts.retransmits += 1;
            }
        } else {
            *f = Flow {
                key,
                high: end,
                used: clock,
            };
        }
    }

    /// Notes a frame the stack received.
    pub fn received(&mut self, frame: &[u8]) {
        // Only the flags matter here: the hash is computed for a RST alone.
        if let Some(s) = Segment::parse(frame)
            && s.flags & flag::RST != 0
        {
            self.counts.resets_received += 1;
            self.forget(s.reverse_flow());
        }
    }

    /// The slot holding `key`, else a free one, else the least recently used in
    /// the probe window.
    fn slot(&self, key: u64) -> usize {
        let start = (key as usize) % FLOWS;
        let mut victim = start;
        let mut oldest = 0;
        for i in 0..PROBE {
            let at = (start + i) % FLOWS;
            let Some(f) = self.flows.get(at) else {
                break;
            };
            if f.key == key || f.key == 0 {
                return at;
            }
            let age = self.clock.wrapping_sub(f.used);
            if age >= oldest {
                oldest = age;
                victim = at;
            }
        }
        victim
    }

    fn forget(&mut self, flow: u64) {
        let key = flow.max(1);
        let at = self.slot(key);
        if let Some(f) = self.flows.get_mut(at)
            && f.key == key
        {
            *f = Flow::default();
        }
    }
}

/// Whether sequence number `a` is after `b` (RFC 9293 §3.4, modulo 2^32).
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::*;

    const A: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
    const B: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);

    fn frame(
        src: Ipv4Address,
        dst: Ipv4Address,
        sport: u16,
        control: TcpControl,
        seq: u32,
        payload: &[u8],
    ) -> alloc::vec::Vec<u8> {
        let tcp = TcpRepr {
            src_port: sport,
            dst_port: 80,
            control,
            seq_number: TcpSeqNumber(seq as i32),
            ack_number: Some(TcpSeqNumber(1)),
            window_len: 1000,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None, None, None],
            timestamp: None,
            payload,
        };
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        // Ethernet padding to 60 bytes: the IP total length must bound the payload.
        let len = (14 + 20 + tcp.buffer_len()).max(60);
        let mut buf = vec![0u8; len];
        buf[12..14].copy_from_slice(&[0x08, 0x00]);
        let caps = ChecksumCapabilities::default();
        ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[14..34]), &caps);
        tcp.emit(
            &mut TcpPacket::new_unchecked(&mut buf[34..34 + tcp.buffer_len()]),
            &IpAddress::Ipv4(src),
            &IpAddress::Ipv4(dst),
            &caps,
        );
        buf
    }

    fn out(control: TcpControl, seq: u32, payload: &[u8]) -> alloc::vec::Vec<u8> {
        frame(A, B, 4000, control, seq, payload)
    }

    #[test]
    fn segments_parse_with_their_sequence_space() {
        let f = out(TcpControl::Syn, 7, &[]);
        let s = Segment::parse(&f).unwrap();
        assert_eq!((s.seq, s.len), (7, 1));
        let f = out(TcpControl::Fin, 9, b"abc");
        let s = Segment::parse(&f).unwrap();
        assert_eq!((s.seq, s.len), (9, 4));
        // A bare ACK in a padded 60-byte frame: no sequence space, padding ignored.
        let f = out(TcpControl::None, 9, &[]);
        let s = Segment::parse(&f).unwrap();
        assert_eq!(s.len, 0);
        assert!(!s.one_zero_byte);
        let other = frame(A, B, 4001, TcpControl::None, 9, &[]);
        assert_ne!(s.flow(), Segment::parse(&other).unwrap().flow());
        // The peer's segment on the same connection: ours reversed.
        let mut back = frame(B, A, 80, TcpControl::None, 1, &[]);
        back[34..36].copy_from_slice(&80u16.to_be_bytes());
        back[36..38].copy_from_slice(&4000u16.to_be_bytes());
        let back = Segment::parse(&back).unwrap();
        assert_eq!(back.reverse_flow(), s.flow());
        assert_ne!(back.flow(), s.flow());
    }

    #[test]
    fn truncated_and_foreign_frames_are_none() {
        let f = out(TcpControl::None, 1, b"hello");
        // Every prefix shorter than the IP total length says is refused.
        for n in 0..14 + 20 + 20 + 5 {
            assert_eq!(Segment::parse(&f[..n]), None, "prefix {n}");
        }
        let mut udp = f.clone();
        udp[14 + 9] = 17;
        assert_eq!(Segment::parse(&udp), None);
        let mut frag = f.clone();
        frag[14 + 6] = 0x20; // more fragments
        assert_eq!(Segment::parse(&frag), None);
        let mut arp = f;
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(Segment::parse(&arp), None);
    }

    #[test]
    fn resent_data_syn_and_fin_count_new_data_and_acks_do_not() {
        let mut t = TcpTracker::new();
        t.sent(&out(TcpControl::Syn, 100, &[]));
        t.sent(&out(TcpControl::Syn, 100, &[])); // SYN again
        t.sent(&out(TcpControl::None, 101, b"aaaa"));
        t.sent(&out(TcpControl::None, 105, b"bbbb"));
        t.sent(&out(TcpControl::None, 109, &[])); // ACK
        t.sent(&out(TcpControl::None, 109, &[])); // ACK again: not a retransmit
        t.sent(&out(TcpControl::None, 101, b"aaaa")); // go-back
        t.sent(&out(TcpControl::None, 105, b"bbbbcc")); // partly new: not counted
        t.sent(&out(TcpControl::Fin, 111, &[]));
        t.sent(&out(TcpControl::Fin, 111, &[])); // FIN again
        let c = t.counts();
        assert_eq!(c.segments_sent, 10);
        assert_eq!(c.retransmits, 3, "{c:?}");
        assert_eq!((c.resets_sent, c.resets_received), (0, 0));
    }

    #[test]
    fn keep_alive_probes_are_not_retransmissions() {
        let mut t = TcpTracker::new();
        t.sent(&out(TcpControl::None, 100, b"data"));
        t.sent(&out(TcpControl::None, 103, &[0])); // smoltcp's keep-alive
        t.sent(&out(TcpControl::None, 103, &[0]));
        assert_eq!(t.counts().retransmits, 0);
        t.sent(&out(TcpControl::None, 103, b"a")); // the last byte resent
        assert_eq!(t.counts().retransmits, 1);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut t = TcpTracker::new();
        t.sent(&out(TcpControl::None, u32::MAX - 1, b"abcd"));
        t.sent(&out(TcpControl::None, 2, b"ef"));
        assert_eq!(t.counts().retransmits, 0);
        t.sent(&out(TcpControl::None, u32::MAX - 1, b"ab"));
        assert_eq!(t.counts().retransmits, 1);
    }

    #[test]
    fn resets_count_both_ways_and_forget_the_connection() {
        let mut t = TcpTracker::new();
        t.sent(&out(TcpControl::None, 100, b"data"));
        // The peer resets it: its RST comes from B to A with the ports swapped.
        let mut rst = frame(B, A, 80, TcpControl::Rst, 1, &[]);
        rst[34..36].copy_from_slice(&80u16.to_be_bytes());
        rst[36..38].copy_from_slice(&4000u16.to_be_bytes());
        t.received(&rst);
        assert_eq!(t.counts().resets_received, 1);
        // Forgotten: the same bytes again are a fresh start, not a retransmission.
        t.sent(&out(TcpControl::None, 100, b"data"));
        assert_eq!(t.counts().retransmits, 0);
        t.sent(&out(TcpControl::Rst, 104, &[]));
        assert_eq!(t.counts().resets_sent, 1);
        t.sent(&out(TcpControl::None, 100, b"data"));
        assert_eq!(t.counts().retransmits, 0);
        t.received(&out(TcpControl::None, 1, b"not a reset"));
        assert_eq!(t.counts().resets_received, 1);
    }

    #[test]
    fn more_connections_than_slots_evict_without_false_counts() {
        let mut t = TcpTracker::new();
        for round in 0..2u32 {
            for port in 0..(FLOWS as u16 * 2) {
                let f = frame(
                    A,
                    B,
                    1000 + port,
                    TcpControl::None,
                    round * 10,
                    b"0123456789",
                );
                t.sent(&f);
            }
        }
        // Every segment carried new data for its own connection.
        assert_eq!(t.counts().retransmits, 0);
        assert_eq!(t.counts().segments_sent, FLOWS as u64 * 4);
    }

    #[test]
    fn ipv6_segments_are_tracked() {
        let src = Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
        let dst = Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
        let tcp = TcpRepr {
            src_port: 1,
            dst_port: 2,
            control: TcpControl::None,
            seq_number: TcpSeqNumber(5),
            ack_number: None,
            window_len: 0,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None, None, None],
            timestamp: None,
            payload: b"xy",
        };
        let mut buf = vec![0u8; 14 + 40 + tcp.buffer_len()];
        buf[12..14].copy_from_slice(&[0x86, 0xdd]);
        Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        }
        .emit(&mut Ipv6Packet::new_unchecked(&mut buf[14..54]));
        tcp.emit(
            &mut TcpPacket::new_unchecked(&mut buf[54..]),
            &IpAddress::Ipv6(src),
            &IpAddress::Ipv6(dst),
            &ChecksumCapabilities::default(),
        );
        assert_eq!(Segment::parse(&buf).map(|s| (s.seq, s.len)), Some((5, 2)));
        let mut t = TcpTracker::new();
        t.sent(&buf);
        t.sent(&buf);
        assert_eq!(t.counts().retransmits, 1);
    }
}
