//! Hostile Ethernet frames aimed at a guest (malformed, mutated and merely odd),
//! the few well-formed frames tests forge on purpose, and the RFC 1071 checksum.

use std::net::Ipv4Addr;

use oasis_testkit::Rng;
use oasis_testkit::corpus::length_prefixed;

use super::netns::{GUEST_MAC, NS_GUEST_IP, NetNs};

const ETH_IPV4: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const ETH_IPV6: u16 = 0x86DD;
const ETH_VLAN: u16 = 0x8100;
const IP_TCP: u8 = 6;
const IP_UDP: u8 = 17;
const IP_ICMP: u8 = 1;
/// Largest frame a 1500-byte MTU TAP accepts from AF_PACKET.
const MAX_FRAME: usize = 1514;
/// Smallest: AF_PACKET refuses frames shorter than an Ethernet header.
const MIN_FRAME: usize = 14;
/// First port of Linux's ephemeral range: spoofed segments from the namespace's own
/// address stay below it so they can never hit a real client's connection.
const EPHEMERAL: u16 = 32768;

/// RFC 1071 Internet checksum of `parts` concatenated.
pub fn inet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for p in parts {
        for &b in *p {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// A well-formed Ethernet + IPv4 + UDP frame (checksums right), for tests that
/// forge one specific datagram.
pub fn udp_frame(
    (src_mac, src_ip, sport): ([u8; 6], Ipv4Addr, u16),
    (dst_mac, dst_ip, dport): ([u8; 6], Ipv4Addr, u16),
    payload: &[u8],
) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let c = Hostile::l4_checksum(src_ip, dst_ip, IP_UDP, &u);
    u[6..8].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, IP_UDP, 0, 0];
    ip[2..4].copy_from_slice(&((20 + u.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&src_ip.octets());
    ip.extend_from_slice(&dst_ip.octets());
    let c = inet_checksum(&[&ip]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::with_capacity(14 + ip.len() + u.len());
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&ETH_IPV4.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&u);
    f
}

/// Frames in the helper's `inject` input format (u16 big-endian length + bytes).
pub fn frame_stream(frames: &[Vec<u8>]) -> Vec<u8> {
    length_prefixed(frames)
}

/// Generates malformed, mutated and merely odd Ethernet frames aimed at a guest:
/// truncated and inconsistent headers, bad lengths and checksums, bogus IP and TCP
/// options, fragments, bad ARP, IPv6 extension headers and NDP options, VLAN tags.
///
/// Frames never impersonate the namespace's own address in a way that legitimately
/// breaks a real connection (a forged MAC for it, or a segment from its ephemeral
/// ports), so a test can keep echoing through the storm and blame the guest alone.
pub struct Hostile {
    rng: Rng,
    queue: Vec<Vec<u8>>,
    /// The guest's MAC and IPv4 address.
    pub guest_mac: [u8; 6],
    pub guest_ip: Ipv4Addr,
    /// The namespace's MAC and IPv4 address on the TAP.
    pub host_mac: [u8; 6],
    pub host_ip: Ipv4Addr,
    /// Ports the guest listens on (hit more often than random ones).
    pub ports: Vec<u16>,
}

impl Hostile {
    /// A generator for `ns`'s guest at [`NS_GUEST_IP`] listening on `ports`.
    pub fn new(seed: u64, ns: &NetNs, ports: &[u16]) -> Hostile {
        Hostile {
            rng: Rng::new(seed),
            queue: Vec::new(),
            guest_mac: GUEST_MAC,
            guest_ip: NS_GUEST_IP,
            host_mac: ns.host_mac,
            host_ip: ns.host_ip,
            ports: ports.to_vec(),
        }
    }

    /// `n` frames, each 14..=1514 bytes, as `u16` big-endian length + bytes (the
    /// helper's `inject` input).
    pub fn stream(&mut self, n: usize) -> Vec<u8> {
        let frames: Vec<Vec<u8>> = (0..n).map(|_| self.frame()).collect();
        length_prefixed(&frames)
    }

    /// The next hostile frame.
    pub fn frame(&mut self) -> Vec<u8> {
        let mut f = match self.queue.pop() {
            Some(f) => f,
            None => match self.rng.below(100) {
                0..=9 => self.arp(),
                10..=24 => self.ipv4_broken(),
                25..=44 => self.tcp_frame(),
                45..=52 => self.udp_frame(),
                53..=60 => self.icmp_frame(),
                61..=67 => self.fragments(),
                68..=77 => self.ipv6(),
                78..=82 => self.odd_ethertype(),
                _ => {
                    let mut f = self.valid();
                    self.mutate(&mut f);
                    f
                }
            },
        };
        self.sanitize(&mut f);
        f
    }

    fn rand_mac(&mut self) -> [u8; 6] {
        let mut m = [0u8; 6];
        m.iter_mut().for_each(|b| *b = self.rng.byte());
        m[0] = (m[0] & 0xFC) | 0x02; // locally administered unicast
        m
    }

    fn dst_mac(&mut self) -> [u8; 6] {
        match self.rng.below(20) {
            0..=15 => self.guest_mac,
            16 | 17 => [0xFF; 6],
            18 => [0x01, 0x00, 0x5E, 0x00, 0x00, self.rng.byte()],
            _ => self.rand_mac(),
        }
    }

    fn src_ip(&mut self) -> Ipv4Addr {
        match self.rng.below(10) {
            0..=3 => self.host_ip,
            4..=6 => Ipv4Addr::new(10, 77, 0, self.rng.range(3, 254) as u8),
            7 => self.guest_ip,
            8 => self.rng.pick(&[
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::BROADCAST,
                Ipv4Addr::LOCALHOST,
                Ipv4Addr::new(224, 0, 0, 1),
                Ipv4Addr::new(10, 77, 0, 255),
            ]),
            _ => Ipv4Addr::from(self.rng.next_u64() as u32),
        }
    }

    fn dst_ip(&mut self) -> Ipv4Addr {
        match self.rng.below(10) {
            0..=7 => self.guest_ip,
            8 => self.rng.pick(&[
                Ipv4Addr::BROADCAST,
                Ipv4Addr::new(10, 77, 0, 255),
                Ipv4Addr::new(224, 0, 0, 1),
            ]),
            _ => Ipv4Addr::from(self.rng.next_u64() as u32),
        }
    }

    fn port_to(&mut self) -> u16 {
        if !self.ports.is_empty() && self.rng.chance(60) {
            self.rng.pick(&self.ports)
        } else {
            self.rng.next_u64() as u16
        }
    }

    fn port_from(&mut self, src: Ipv4Addr) -> u16 {
        let p = self.rng.next_u64() as u16;
        if src == self.host_ip {
            p % EPHEMERAL
        } else {
            p
        }
    }

    fn eth(&mut self, dst: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let src = self.rand_mac();
        let mut f = Vec::with_capacity(14 + payload.len());
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// A well-formed IPv4 packet (header checksum right) around `payload`.
    fn ipv4(
        &mut self,
        proto: u8,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        options: &[u8],
        payload: &[u8],
    ) -> Vec<u8> {
        let ihl = 5 + options.len().div_ceil(4);
        let hl = ihl * 4;
        let total = hl + payload.len();
        let mut p = vec![0u8; hl];
        p[0] = 0x40 | ihl as u8;
        p[1] = self.rng.byte() & 0xFC;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[4..6].copy_from_slice(&(self.rng.next_u64() as u16).to_be_bytes());
        p[6] = 0x40; // DF
        p[8] = self.rng.pick(&[64u8, 64, 255, 1]);
        p[9] = proto;
        p[12..16].copy_from_slice(&src.octets());
        p[16..20].copy_from_slice(&dst.octets());
        p[20..20 + options.len()].copy_from_slice(options);
        let c = inet_checksum(&[&p]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn l4_checksum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, seg: &[u8]) -> u16 {
        let mut pseudo = [0u8; 12];
        pseudo[0..4].copy_from_slice(&src.octets());
        pseudo[4..8].copy_from_slice(&dst.octets());
        pseudo[9] = proto;
        pseudo[10..12].copy_from_slice(&(seg.len() as u16).to_be_bytes());
        inet_checksum(&[&pseudo, seg])
    }

    fn tcp_options(&mut self) -> Vec<u8> {
        let mut o = Vec::new();
        for _ in 0..self.rng.below(5) {
            match self.rng.below(12) {
                0 => o.extend_from_slice(&[2, 4, self.rng.byte(), self.rng.byte()]), // MSS
                1 => o.extend_from_slice(&[2, self.rng.pick(&[0u8, 1, 2, 3, 5, 40])]), // MSS, bad len
                2 => o.extend_from_slice(&[3, 3, self.rng.byte()]), // window scale, any shift
                3 => o.extend_from_slice(&[4, self.rng.pick(&[2u8, 0, 1, 3])]), // SACK permitted
                4 => {
                    // SACK blocks, possibly odd length, random edges
                    let len = self.rng.pick(&[2u8, 10, 18, 26, 34, 11, 7]);
                    o.extend_from_slice(&[5, len]);
                    let body = self.rng.bytes(len.saturating_sub(2) as usize);
                    o.extend_from_slice(&body);
                }
                5 => {
                    let len = self.rng.pick(&[10u8, 9, 11, 2]);
                    o.extend_from_slice(&[8, len]);
                    let body = self.rng.bytes(len.saturating_sub(2) as usize);
                    o.extend_from_slice(&body);
                }
                6 => o.push(0), // end of list, then garbage
                7 => o.push(1), // NOP
                8 => o.extend_from_slice(&[self.rng.byte(), 0]), // length 0
                9 => o.extend_from_slice(&[self.rng.byte(), 1]), // length 1
                10 => o.extend_from_slice(&[self.rng.byte(), 255]), // past the header
                _ => {
                    let b = self.rng.bytes_in(1, 12);
                    o.extend_from_slice(&b);
                }
            }
        }
        o.truncate(40);
        o
    }

    fn tcp_segment(&mut self, src: Ipv4Addr, dst: Ipv4Addr, good_csum: bool) -> Vec<u8> {
        let opts = self.tcp_options();
        let hl = 20 + opts.len().div_ceil(4) * 4;
        let payload_len = match self.rng.below(4) {
            0 | 1 => 0,
            2 => self.rng.range(1, 64),
            _ => self.rng.range(64, 1400),
        };
        let mut s = vec![0u8; hl];
        let sport = self.port_from(src);
        let dport = self.port_to();
        s[0..2].copy_from_slice(&sport.to_be_bytes());
        s[2..4].copy_from_slice(&dport.to_be_bytes());
        let seq = self.rng.next_u64();
        s[4..12].copy_from_slice(&seq.to_be_bytes());
        let offset = if self.rng.chance(85) {
            (hl / 4) as u8
        } else {
            self.rng.below(16) as u8
        };
        s[12] = (offset << 4) | (self.rng.byte() & 0x0F);
        s[13] = match self.rng.below(8) {
            0 => 0x02,            // SYN
            1 => 0x12,            // SYN-ACK
            2 => 0x04,            // RST
            3 => 0x10,            // ACK
            4 => 0x11,            // FIN-ACK
            5 => 0x03,            // SYN-FIN
            6 => 0x00,            // no flags
            _ => self.rng.byte(), // anything
        };
        let win = self.rng.next_u64() as u16;
        s[14..16].copy_from_slice(&win.to_be_bytes());
        let urg = self.rng.next_u64() as u16;
        s[18..20].copy_from_slice(&urg.to_be_bytes());
        s[20..20 + opts.len()].copy_from_slice(&opts);
        let body = self.rng.bytes(payload_len);
        s.extend_from_slice(&body);
        if good_csum {
            let c = Self::l4_checksum(src, dst, IP_TCP, &s);
            s[16..18].copy_from_slice(&c.to_be_bytes());
        } else {
            s[16] = self.rng.byte();
            s[17] = self.rng.byte();
        }
        s
    }

    fn tcp_frame(&mut self) -> Vec<u8> {
        let (src, dst) = (self.src_ip(), self.dst_ip());
        let good = self.rng.chance(85);
        let seg = self.tcp_segment(src, dst, good);
        let ip = self.ipv4(IP_TCP, src, dst, &[], &seg);
        let d = self.dst_mac();
        self.eth(d, ETH_IPV4, &ip)
    }

    fn udp_datagram(&mut self, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        let n = self.rng.range(0, 1200);
        let mut u = vec![0u8; 8];
        let sport = self.port_from(src);
        let dport = match self.rng.below(5) {
            0 => 67,
            1 => 68,
            _ => self.port_to(),
        };
        u[0..2].copy_from_slice(&sport.to_be_bytes());
        u[2..4].copy_from_slice(&dport.to_be_bytes());
        let body = self.rng.bytes(n);
        u.extend_from_slice(&body);
        let len = match self.rng.below(6) {
            0 => self.rng.below(8) as u16,
            1 => (u.len() + self.rng.range(1, 2000)) as u16,
            2 => self.rng.range(8, u.len()) as u16,
            _ => u.len() as u16,
        };
        u[4..6].copy_from_slice(&len.to_be_bytes());
        match self.rng.below(4) {
            0 => {} // no checksum
            1 => {
                u[6] = self.rng.byte();
                u[7] = self.rng.byte();
            }
            _ => {
                let c = Self::l4_checksum(src, dst, IP_UDP, &u);
                u[6..8].copy_from_slice(&c.to_be_bytes());
            }
        }
        u
    }

    fn udp_frame(&mut self) -> Vec<u8> {
        let (src, dst) = (self.src_ip(), self.dst_ip());
        let u = self.udp_datagram(src, dst);
        let ip = self.ipv4(IP_UDP, src, dst, &[], &u);
        let d = self.dst_mac();
        self.eth(d, ETH_IPV4, &ip)
    }

    fn icmp_message(&mut self) -> Vec<u8> {
        let (ty, code) = match self.rng.below(8) {
            0 | 1 => (8, 0),                    // echo request
            2 => (3, self.rng.below(16) as u8), // destination unreachable
            3 => (5, self.rng.below(4) as u8),  // redirect
            4 => (11, 0),                       // time exceeded
            5 => (12, 0),                       // parameter problem
            6 => (0, 0),                        // unsolicited echo reply
            _ => (self.rng.byte(), self.rng.byte()),
        };
        let mut m = vec![ty, code, 0, 0];
        let rest = self.rng.bytes(4);
        m.extend_from_slice(&rest);
        if matches!(ty, 3 | 5 | 11 | 12) && self.rng.chance(70) {
            // Quote a packet the guest "sent": to a random host, or to the namespace
            // from a port no real client uses.
            let to = if self.rng.chance(50) {
                self.host_ip
            } else {
                Ipv4Addr::from(self.rng.next_u64() as u32)
            };
            let proto = self.rng.pick(&[IP_TCP, IP_UDP, IP_ICMP, 99]);
            let mut l4 = self.rng.bytes_in(0, 28);
            if l4.len() >= 4 {
                let p = (self.rng.next_u64() as u16) % EPHEMERAL;
                l4[2..4].copy_from_slice(&p.to_be_bytes());
            }
            let opts = if self.rng.chance(20) {
                self.rng.bytes_in(1, 40)
            } else {
                Vec::new()
            };
            let mut q = self.ipv4(proto, self.guest_ip, to, &opts, &l4);
            if self.rng.chance(30) {
                let cut = self.rng.range(0, q.len());
                q.truncate(cut);
            }
            m.extend_from_slice(&q);
        } else {
            let n = self.rng.pick(&[0usize, 8, 56, 1000, 1472]);
            let body = self.rng.bytes(n);
            m.extend_from_slice(&body);
        }
        if self.rng.chance(85) {
            let c = inet_checksum(&[&m]);
            m[2..4].copy_from_slice(&c.to_be_bytes());
        }
        if self.rng.chance(10) {
            m.truncate(self.rng.range(0, 7));
        }
        m
    }

    fn icmp_frame(&mut self) -> Vec<u8> {
        let (src, dst) = (self.src_ip(), self.dst_ip());
        let m = self.icmp_message();
        let ip = self.ipv4(IP_ICMP, src, dst, &[], &m);
        let d = self.dst_mac();
        self.eth(d, ETH_IPV4, &ip)
    }

    /// An IPv4 packet whose header is wrong in one or more ways.
    fn ipv4_broken(&mut self) -> Vec<u8> {
        let (src, dst) = (self.src_ip(), self.dst_ip());
        let proto = self.rng.pick_or_byte(&[IP_TCP, IP_UDP, IP_ICMP]);
        let payload = match proto {
            IP_TCP => self.tcp_segment(src, dst, true),
            IP_UDP => self.udp_datagram(src, dst),
            IP_ICMP => self.icmp_message(),
            _ => self.rng.bytes_in(0, 200),
        };
        let options: Vec<u8> = match self.rng.below(6) {
            0 => Vec::new(),
            // Options of length 0, 1 or past the header, then garbage.
            1 => vec![self.rng.byte(), self.rng.pick(&[0u8, 1, 255, 39])],
            // Loose/strict source route and record route with bogus pointers.
            2 => {
                let mut o = vec![self.rng.pick(&[0x83u8, 0x89, 0x07]), 11, self.rng.byte()];
                let addrs = self.rng.bytes(8);
                o.extend_from_slice(&addrs);
                o
            }
            // Timestamp with overflow/flags garbage.
            3 => {
                let mut o = vec![
                    0x44,
                    self.rng.pick(&[4u8, 12, 40]),
                    self.rng.byte(),
                    self.rng.byte(),
                ];
                let more = self.rng.bytes(8);
                o.extend_from_slice(&more);
                o
            }
            // Router alert, NOPs, end of list.
            4 => vec![0x94, 4, 0, 0, 1, 1, 0, 0],
            _ => self.rng.bytes_in(1, 40),
        };
        let mut ip = self.ipv4(proto, src, dst, &options, &payload);
        let faults = self.rng.range(1, 3);
        let mut cut = None;
        for _ in 0..faults {
            match self.rng.below(9) {
                0 => ip[0] = (self.rng.byte() & 0xF0) | (ip[0] & 0x0F), // version
                1 => ip[0] = (ip[0] & 0xF0) | self.rng.pick(&[0u8, 1, 4, 15]), // IHL
                2 => {
                    let l = self
                        .rng
                        .pick(&[0u16, 19, 20, 21, 0xFFFF])
                        .max(self.rng.below(2000) as u16 * u16::from(self.rng.chance(30)));
                    ip[2..4].copy_from_slice(&l.to_be_bytes());
                }
                3 => ip[6] = self.rng.byte(), // flags + fragment offset high bits
                4 => ip[8] = 0,               // TTL 0
                5 => ip[10] ^= 0x5A,          // header checksum
                6 => cut = Some(self.rng.range(0, 19)),
                7 => {
                    let extra = self.rng.bytes_in(1, 300);
                    ip.extend_from_slice(&extra);
                }
                _ => ip[1] = self.rng.byte(),
            }
        }
        // Usually fix the header checksum so the stack parses further.
        if ip.len() >= 20 && self.rng.chance(70) {
            let hl = (usize::from(ip[0] & 0x0F) * 4).clamp(20, ip.len());
            ip[10] = 0;
            ip[11] = 0;
            let c = inet_checksum(&[&ip[..hl]]);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
        }
        if let Some(cut) = cut {
            ip.truncate(cut);
        }
        let d = self.dst_mac();
        self.eth(d, ETH_IPV4, &ip)
    }

    /// A few IPv4 fragments of one datagram: overlapping, tiny, out of order,
    /// past 65535 bytes, or a lone middle piece. Queued; returns the first.
    fn fragments(&mut self) -> Vec<u8> {
        let (src, dst) = (self.src_ip(), self.guest_ip);
        let proto = self.rng.pick(&[IP_UDP, IP_ICMP, IP_TCP]);
        let whole = match proto {
            IP_UDP => self.udp_datagram(src, dst),
            IP_ICMP => self.icmp_message(),
            _ => self.tcp_segment(src, dst, true),
        };
        let id = self.rng.next_u64() as u16;
        let count = self.rng.range(1, 4);
        let mut frames = Vec::new();
        for k in 0..count {
            let off_units: u16 = match self.rng.below(5) {
                0 => 0,
                1 => (k * 8) as u16, // tiny 64-byte steps, overlapping
                2 => 8189,           // ends past 65535
                3 => self.rng.below(200) as u16,
                _ => (self.rng.next_u64() as u16) & 0x1FFF,
            };
            let len = self.rng.range(0, whole.len().max(1)).min(1400);
            let start = self.rng.range(0, whole.len() - len.min(whole.len()));
            let piece = whole[start..(start + len).min(whole.len())].to_vec();
            let mut ip = self.ipv4(proto, src, dst, &[], &piece);
            ip[4..6].copy_from_slice(&id.to_be_bytes());
            let more = k + 1 < count || self.rng.chance(30);
            let fl = (u16::from(more) << 13) | off_units;
            ip[6..8].copy_from_slice(&fl.to_be_bytes());
            ip[10] = 0;
            ip[11] = 0;
            let c = inet_checksum(&[&ip[..20]]);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            frames.push(self.eth(self.guest_mac, ETH_IPV4, &ip));
        }
        frames.reverse(); // popped from the back: sent in order
        let first = frames.pop().unwrap_or_default();
        self.queue.extend(frames);
        first
    }

    fn arp(&mut self) -> Vec<u8> {
        let mut a = vec![0u8; 28];
        a[0..2].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
        a[2..4].copy_from_slice(&ETH_IPV4.to_be_bytes());
        a[4] = 6;
        a[5] = 4;
        let op = match self.rng.below(6) {
            0..=2 => 1,
            3 | 4 => 2,
            _ => self.rng.next_u64() as u16,
        };
        a[6..8].copy_from_slice(&op.to_be_bytes());
        let smac = self.rand_mac();
        a[8..14].copy_from_slice(&smac);
        let sip = match self.rng.below(5) {
            0 => Ipv4Addr::new(10, 77, 0, self.rng.range(3, 254) as u8),
            1 => self.guest_ip, // claims the guest's own address
            2 => Ipv4Addr::UNSPECIFIED,
            3 => Ipv4Addr::BROADCAST,
            _ => Ipv4Addr::from(self.rng.next_u64() as u32),
        };
        a[14..18].copy_from_slice(&sip.octets());
        if op == 2 {
            a[18..24].copy_from_slice(&self.guest_mac);
        }
        let tip = if self.rng.chance(80) {
            self.guest_ip
        } else {
            Ipv4Addr::from(self.rng.next_u64() as u32)
        };
        a[24..28].copy_from_slice(&tip.octets());
        match self.rng.below(8) {
            0 => a[4] = self.rng.pick(&[0u8, 4, 16, 255]), // hardware length
            1 => a[5] = self.rng.pick(&[0u8, 6, 16, 255]), // protocol length
            2 => a[0..2].copy_from_slice(&self.rng.pick(&[0u16, 6, 0xFFFF]).to_be_bytes()),
            3 => a[2..4].copy_from_slice(&ETH_IPV6.to_be_bytes()),
            4 => {
                let cut = self.rng.range(0, 27);
                a.truncate(cut);
            }
            5 => {
                let pad = self.rng.bytes_in(1, 40);
                a.extend_from_slice(&pad);
            }
            _ => {}
        }
        let d = if self.rng.chance(50) {
            [0xFF; 6]
        } else {
            self.dst_mac()
        };
        let mut f = self.eth(d, ETH_ARP, &a);
        f[6..12].copy_from_slice(&smac);
        f
    }

    fn ipv6(&mut self) -> Vec<u8> {
        let guest_ll: [u8; 16] = [
            0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x50, 0x54, 0x00, 0xff, 0xfe, 0x12, 0x34, 0x56,
        ];
        let src: [u8; 16] = match self.rng.below(5) {
            0 => [0; 16],
            1 => {
                let mut a = [0u8; 16];
                a[15] = 1;
                a
            }
            2 => {
                let mut a = [0xffu8; 16];
                a[0] = 0xff;
                a[1] = 0x02;
                a
            }
            _ => {
                let mut a = [0u8; 16];
                a[0] = 0xfe;
                a[1] = 0x80;
                let r = self.rng.bytes(8);
                a[8..].copy_from_slice(&r);
                a
            }
        };
        let dst: [u8; 16] = match self.rng.below(4) {
            0 => {
                let mut a = [0u8; 16];
                a[0] = 0xff;
                a[1] = 0x02;
                a[15] = 1;
                a
            }
            1 => {
                // solicited-node multicast of the guest
                let mut a = [0u8; 16];
                a[0] = 0xff;
                a[1] = 0x02;
                a[11] = 1;
                a[12] = 0xff;
                a[13..].copy_from_slice(&guest_ll[13..]);
                a
            }
            2 => guest_ll,
            _ => {
                let mut a = [0u8; 16];
                let r = self.rng.bytes(16);
                a.copy_from_slice(&r);
                a
            }
        };
        // Build a chain of extension headers, then an upper layer.
        let mut body = Vec::new();
        let ext_count = self.rng.below(3);
        let mut exts: Vec<(u8, Vec<u8>)> = Vec::new();
        for _ in 0..ext_count {
            let kind = self.rng.pick(&[0u8, 43, 44, 60, 135]);
            let hdr_len_units = self.rng.pick(&[0u8, 1, 2, 255]);
            let real_len = if self.rng.chance(70) {
                (usize::from(hdr_len_units) + 1) * 8
            } else {
                self.rng.range(2, 24)
            };
            let mut e = vec![0u8; real_len.min(64)];
            if e.len() >= 2 {
                e[1] = hdr_len_units;
            }
            for b in e.iter_mut().skip(2) {
                *b = match self.rng.below(4) {
                    0 => 1,    // PadN type
                    1 => 0xC2, // jumbo payload
                    _ => self.rng.byte(),
                };
            }
            exts.push((kind, e));
        }
        let upper = self.rng.pick_or_byte(&[58u8, 58, 58, 17, 6, 59]);
        let mut l4 = match upper {
            58 => {
                let ty = self
                    .rng
                    .pick_or_byte(&[128u8, 129, 133, 134, 135, 136, 137, 130, 143, 1, 2, 3, 4]);
                let mut m = vec![ty, self.rng.pick_or_byte(&[0u8]), 0, 0];
                let fixed = match ty {
                    135 | 136 => 20, // reserved/flags + target
                    134 => 12,
                    137 => 36,
                    _ => 4,
                };
                let f = self.rng.bytes(fixed);
                m.extend_from_slice(&f);
                if ty == 135 || ty == 136 {
                    let off = m.len() - 16;
                    m[off..].copy_from_slice(&guest_ll);
                }
                // NDP options: classic length-0 loop, overlong, truncated.
                for _ in 0..self.rng.below(4) {
                    let t = self.rng.pick_or_byte(&[1u8, 2, 3, 4, 5, 14, 25, 31]);
                    let l = self.rng.pick(&[0u8, 1, 2, 4, 255]);
                    m.push(t);
                    m.push(l);
                    let b = self
                        .rng
                        .bytes((usize::from(l) * 8).saturating_sub(2).min(64));
                    m.extend_from_slice(&b);
                }
                m
            }
            _ => self.rng.bytes_in(0, 100),
        };
        let first_nh = exts.first().map_or(upper, |(k, _)| *k);
        for i in 0..exts.len() {
            let next = exts.get(i + 1).map_or(upper, |(k, _)| *k);
            if let Some(b) = exts[i].1.first_mut() {
                *b = next;
            }
            body.extend_from_slice(&exts[i].1);
        }
        let plen = body.len() + l4.len();
        if upper == 58 && l4.len() >= 4 && self.rng.chance(75) {
            let mut pseudo = Vec::with_capacity(40);
            pseudo.extend_from_slice(&src);
            pseudo.extend_from_slice(&dst);
            pseudo.extend_from_slice(&(l4.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 58]);
            let c = inet_checksum(&[&pseudo, &l4]);
            l4[2..4].copy_from_slice(&c.to_be_bytes());
        }
        body.extend_from_slice(&l4);
        let mut h = vec![0u8; 40];
        h[0] = if self.rng.chance(90) {
            0x60
        } else {
            self.rng.byte()
        };
        let pl = if self.rng.chance(80) {
            plen as u16
        } else {
            self.rng.next_u64() as u16
        };
        h[4..6].copy_from_slice(&pl.to_be_bytes());
        h[6] = first_nh;
        h[7] = self.rng.pick(&[255u8, 64, 1, 0]);
        h[8..24].copy_from_slice(&src);
        h[24..40].copy_from_slice(&dst);
        h.extend_from_slice(&body);
        if self.rng.chance(10) {
            let cut = self.rng.range(0, h.len());
            h.truncate(cut);
        }
        let d = match dst[0] {
            0xff => [0x33, 0x33, dst[12], dst[13], dst[14], dst[15]],
            _ => self.guest_mac,
        };
        self.eth(d, ETH_IPV6, &h)
    }

    fn odd_ethertype(&mut self) -> Vec<u8> {
        match self.rng.below(5) {
            0 | 1 => {
                // VLAN tag (sometimes two) around a normal-looking packet.
                let mut inner = self.valid();
                let tag = [
                    self.rng.byte() & 0x0F,
                    self.rng.byte(),
                    inner[12],
                    inner[13],
                ];
                inner[12..14].copy_from_slice(&ETH_VLAN.to_be_bytes());
                inner.splice(14..14, tag);
                if self.rng.chance(30) {
                    inner.splice(14..14, [0, 1, 0x81, 0x00]);
                    inner[12..14].copy_from_slice(&0x88A8u16.to_be_bytes());
                }
                inner
            }
            2 => {
                // 802.3 length field with LLC/SNAP.
                let n = self.rng.range(0, 1500);
                let mut p = vec![0xAA, 0xAA, 0x03, 0, 0, 0, 0x08, 0x00];
                let b = self.rng.bytes(n.saturating_sub(8));
                p.extend_from_slice(&b);
                let len = self.rng.below(0x600) as u16;
                let d = self.dst_mac();
                self.eth(d, len, &p)
            }
            3 => {
                let d = self.dst_mac();
                self.eth(d, ETH_IPV4, &[])
            }
            _ => {
                let et = self
                    .rng
                    .pick(&[0x88CCu16, 0x8863, 0x8864, 0x88E5, 0x22F0, 0x9000, 0xFFFF]);
                let b = self.rng.bytes_in(0, 200);
                let d = self.dst_mac();
                self.eth(d, et, &b)
            }
        }
    }

    /// A frame a healthy peer could send (echo request, UDP, TCP SYN, ARP), used as
    /// raw material for mutation.
    fn valid(&mut self) -> Vec<u8> {
        let src = Ipv4Addr::new(10, 77, 0, self.rng.range(3, 254) as u8);
        let dst = self.guest_ip;
        match self.rng.below(4) {
            0 => {
                let mut m = vec![8, 0, 0, 0, 0, 1, 0, 1];
                let b = self.rng.bytes(56);
                m.extend_from_slice(&b);
                let c = inet_checksum(&[&m]);
                m[2..4].copy_from_slice(&c.to_be_bytes());
                let ip = self.ipv4(IP_ICMP, src, dst, &[], &m);
                self.eth(self.guest_mac, ETH_IPV4, &ip)
            }
            1 => {
                let mut u = vec![0u8; 8];
                u[0..2].copy_from_slice(&5555u16.to_be_bytes());
                let p = self.port_to();
                u[2..4].copy_from_slice(&p.to_be_bytes());
                let b = self.rng.bytes_in(0, 512);
                u.extend_from_slice(&b);
                let l = u.len() as u16;
                u[4..6].copy_from_slice(&l.to_be_bytes());
                let c = Self::l4_checksum(src, dst, IP_UDP, &u);
                u[6..8].copy_from_slice(&c.to_be_bytes());
                let ip = self.ipv4(IP_UDP, src, dst, &[], &u);
                self.eth(self.guest_mac, ETH_IPV4, &ip)
            }
            2 => {
                let s = self.tcp_segment(src, dst, true);
                let ip = self.ipv4(IP_TCP, src, dst, &[], &s);
                self.eth(self.guest_mac, ETH_IPV4, &ip)
            }
            _ => self.arp(),
        }
    }

    /// 1-4 random edits: overwrite or flip a byte, cut, append, insert.
    fn mutate(&mut self, f: &mut Vec<u8>) {
        for _ in 0..self.rng.range(1, 4) {
            let n = f.len().max(1);
            match self.rng.below(5) {
                0 => {
                    let i = self
                        .rng
                        .range(12, n.max(13) - 1)
                        .min(f.len().saturating_sub(1));
                    if let Some(b) = f.get_mut(i) {
                        *b = self.rng.byte();
                    }
                }
                1 => {
                    let i = self.rng.below(n as u64) as usize;
                    if let Some(b) = f.get_mut(i) {
                        *b ^= 1 << self.rng.below(8);
                    }
                }
                2 => {
                    let cut = self.rng.range(MIN_FRAME, n.max(MIN_FRAME));
                    f.truncate(cut);
                }
                3 => {
                    let b = self.rng.bytes_in(1, 64);
                    f.extend_from_slice(&b);
                }
                _ => {
                    let i = self.rng.range(MIN_FRAME.min(f.len()), f.len());
                    let b = self.rng.byte();
                    f.insert(i, b);
                }
            }
        }
    }

    /// Keeps frames sendable and keeps them from impersonating the namespace in
    /// ways that would legitimately break its connections (see [`Hostile`]).
    fn sanitize(&mut self, f: &mut Vec<u8>) {
        f.truncate(MAX_FRAME);
        if f.len() < MIN_FRAME {
            f.resize(MIN_FRAME, 0);
        }
        let host = self.host_ip.octets();
        let ethertype = u16::from_be_bytes([f[12], f[13]]);
        if ethertype == ETH_IPV4 && f.len() >= 34 && f[26..30] == host {
            f[6..12].copy_from_slice(&self.host_mac);
            let ihl = usize::from(f[14] & 0x0F) * 4;
            let l4 = 14 + ihl;
            if ihl >= 20 && matches!(f[23], IP_TCP | IP_UDP) && f.len() >= l4 + 2 {
                let sport = u16::from_be_bytes([f[l4], f[l4 + 1]]) % EPHEMERAL;
                f[l4..l4 + 2].copy_from_slice(&sport.to_be_bytes());
            }
        }
        if ethertype == ETH_ARP && f.len() >= 14 + 18 && f[28..32] == host {
            f[6..12].copy_from_slice(&self.host_mac);
            f[22..28].copy_from_slice(&self.host_mac);
        }
        if f[6..12] == self.guest_mac {
            f[6] |= 0x02;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::netns::NS_HOST_IP;
    use super::*;

    fn hostile(seed: u64) -> Hostile {
        Hostile {
            rng: Rng::new(seed),
            queue: Vec::new(),
            guest_mac: GUEST_MAC,
            guest_ip: NS_GUEST_IP,
            host_mac: [2, 0, 0x0a, 0x4d, 0, 1],
            host_ip: NS_HOST_IP,
            ports: vec![7, 9],
        }
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to ddf2, complement 220d.
        assert_eq!(
            inet_checksum(&[&[0x00, 0x01, 0xf2, 0x03], &[0xf4, 0xf5, 0xf6, 0xf7]]),
            0x220d
        );
        // Odd split across parts does not change the sum.
        assert_eq!(
            inet_checksum(&[&[0x00, 0x01, 0xf2], &[0x03, 0xf4, 0xf5, 0xf6, 0xf7]]),
            0x220d
        );
    }

    #[test]
    fn frames_are_sendable_and_varied() {
        let mut h = hostile(1);
        let mut ethertypes = BTreeSet::new();
        let mut lens = BTreeSet::new();
        for _ in 0..20_000 {
            let f = h.frame();
            assert!((MIN_FRAME..=MAX_FRAME).contains(&f.len()), "{}", f.len());
            ethertypes.insert(u16::from_be_bytes([f[12], f[13]]));
            lens.insert(f.len());
        }
        for et in [ETH_IPV4, ETH_ARP, ETH_IPV6, ETH_VLAN] {
            assert!(ethertypes.contains(&et), "no {et:#06x} frames");
        }
        assert!(lens.len() > 500, "only {} distinct lengths", lens.len());
    }

    #[test]
    fn frames_never_impersonate_the_namespace() {
        let mut h = hostile(2);
        let host = NS_HOST_IP.octets();
        for _ in 0..50_000 {
            let f = h.frame();
            let et = u16::from_be_bytes([f[12], f[13]]);
            if et == ETH_IPV4 && f.len() >= 34 && f[26..30] == host {
                assert_eq!(f[6..12], h.host_mac);
                let ihl = usize::from(f[14] & 0x0F) * 4;
                if ihl >= 20 && matches!(f[23], IP_TCP | IP_UDP) && f.len() >= 14 + ihl + 2 {
                    let sport = u16::from_be_bytes([f[14 + ihl], f[15 + ihl]]);
                    assert!(sport < EPHEMERAL, "{sport}");
                }
            }
            if et == ETH_ARP && f.len() >= 32 && f[28..32] == host {
                assert_eq!(f[22..28], h.host_mac);
            }
        }
    }

    #[test]
    fn well_formed_tcp_has_valid_checksums() {
        let mut h = hostile(3);
        let (src, dst) = (Ipv4Addr::new(10, 77, 0, 9), NS_GUEST_IP);
        for _ in 0..200 {
            let seg = h.tcp_segment(src, dst, true);
            assert_eq!(Hostile::l4_checksum(src, dst, IP_TCP, &seg), 0);
            let ip = h.ipv4(IP_TCP, src, dst, &[1, 1, 0], &seg);
            let hl = usize::from(ip[0] & 0x0F) * 4;
            assert_eq!(inet_checksum(&[&ip[..hl]]), 0);
            assert_eq!(usize::from(u16::from_be_bytes([ip[2], ip[3]])), ip.len());
        }
    }

    #[test]
    fn forged_udp_frame_is_well_formed() {
        let f = udp_frame(
            ([2, 0, 0, 0, 0, 9], Ipv4Addr::new(10, 77, 0, 50), 5555),
            (GUEST_MAC, NS_GUEST_IP, 7),
            b"xyz",
        );
        assert_eq!(f.len(), 14 + 20 + 8 + 3);
        assert_eq!(inet_checksum(&[&f[14..34]]), 0);
        let udp = &f[34..];
        assert_eq!(
            Hostile::l4_checksum(Ipv4Addr::new(10, 77, 0, 50), NS_GUEST_IP, IP_UDP, udp),
            0
        );
        assert_eq!(frame_stream(std::slice::from_ref(&f)).len(), f.len() + 2);
    }

    #[test]
    fn stream_frames_parse_back() {
        let mut h = hostile(4);
        let s = h.stream(1000);
        let (mut i, mut n) = (0, 0);
        while i + 2 <= s.len() {
            let len = usize::from(u16::from_be_bytes([s[i], s[i + 1]]));
            assert!((MIN_FRAME..=MAX_FRAME).contains(&len));
            i += 2 + len;
            n += 1;
        }
        assert_eq!((i, n), (s.len(), 1000));
    }
}
