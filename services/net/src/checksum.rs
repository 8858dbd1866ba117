//! TCP/UDP checksums of whole Ethernet frames, for a device that offloads them
//! ([`NetDevice::checksum_offload`](oasis_devices::NetDevice::checksum_offload)): the
//! partial checksum a transmitted frame leaves for the device to finish, and the
//! software check of a received frame the device did not vouch for.
//!
//! Both find the TCP or UDP header where smoltcp's own receive path does (IPv4
//! payload as the header says; IPv6 payload, or behind one hop-by-hop header), so
//! that a frame this module calls good is a frame smoltcp would have checked itself
//! with its checksum capabilities on. IPv4 header and ICMP checksums stay smoltcp's.

use oasis_devices::TxChecksum;
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, Ipv6ExtHeader,
    Ipv6ExtHeaderRepr, Ipv6Packet, TcpPacket, UdpPacket, checksum,
};

/// The checksum field's place in a TCP header.
const TCP_CHECKSUM_AT: u16 = 16;
/// The checksum field's place in a UDP header.
const UDP_CHECKSUM_AT: u16 = 6;

/// A frame's TCP or UDP segment: where it starts in the frame and what it is.
struct Segment<'a> {
    protocol: IpProtocol,
    /// Offset of the segment in the frame.
    start: usize,
    /// The segment (header and payload), as the IP header bounds it.
    bytes: &'a [u8],
    src: IpAddress,
    dst: IpAddress,
}

/// The TCP or UDP segment of an Ethernet frame, found as smoltcp's receive path finds
/// it; `None` for anything else (ARP, ICMP, malformed frames, which smoltcp checks or
/// drops itself).
fn segment(frame: &[u8]) -> Option<Segment<'_>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip_start = EthernetFrame::<&[u8]>::header_len();
    let (protocol, l4_start, src, dst) = match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            let start = ip_start + usize::from(ip.header_len());
            let end = ip_start + usize::from(ip.total_len());
            (
                ip.next_header(),
                start..end,
                IpAddress::Ipv4(ip.src_addr()),
                IpAddress::Ipv4(ip.dst_addr()),
            )
        }
        EthernetProtocol::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
            let header = ip.header_len();
            let mut start = ip_start + header;
            let end = start + usize::from(ip.payload_len());
            let mut next = ip.next_header();
            if next == IpProtocol::HopByHop {
                let ext = Ipv6ExtHeader::new_checked(ip.payload()).ok()?;
                let repr = Ipv6ExtHeaderRepr::parse(&ext).ok()?;
                start += repr.header_len() + repr.data.len();
                next = repr.next_header;
            }
            (
                next,
                start..end,
                IpAddress::Ipv6(ip.src_addr()),
                IpAddress::Ipv6(ip.dst_addr()),
            )
        }
        _ => return None,
    };
    if !matches!(protocol, IpProtocol::Tcp | IpProtocol::Udp) {
        return None;
    }
    let start = l4_start.start;
    Some(Segment {
        protocol,
        start,
        bytes: frame.get(l4_start)?,
        src,
        dst,
    })
}

/// Whether a received frame's TCP or UDP checksum is right, checked as smoltcp would
/// with its capabilities on: `true` for frames that carry neither (smoltcp checks or
/// drops those itself) and for UDP without a checksum (zero, which smoltcp takes as
/// "none" over IPv6 too).
pub(crate) fn rx_valid(frame: &[u8]) -> bool {
    let Some(seg) = segment(frame) else {
        return true;
    };
    match seg.protocol {
        IpProtocol::Tcp => TcpPacket::new_checked(seg.bytes)
            .map_or(true, |p| p.verify_checksum(&seg.src, &seg.dst)),
        _ => UdpPacket::new_checked(seg.bytes)
            .map_or(true, |p| p.verify_checksum(&seg.src, &seg.dst)),
    }
}

/// Prepares a frame smoltcp emitted without a TCP/UDP checksum for the device to
/// finish: writes the pseudo-header sum into the checksum field and says where it
/// is. Frames without TCP or UDP are [`TxChecksum::Complete`] as they are.
pub(crate) fn tx_partial(frame: &mut [u8]) -> TxChecksum {
    let Some(seg) = segment(frame) else {
        return TxChecksum::Complete;
    };
    let offset = match seg.protocol {
        IpProtocol::Tcp => TCP_CHECKSUM_AT,
        _ => UDP_CHECKSUM_AT,
    };
    let (Ok(len), Ok(start)) = (u32::try_from(seg.bytes.len()), u16::try_from(seg.start)) else {
        return TxChecksum::Complete;
    };
    let sum = checksum::pseudo_header(&seg.src, &seg.dst, seg.protocol, len);
    let at = seg.start + usize::from(offset);
    match frame.get_mut(at..at + 2) {
        Some(field) => {
            field.copy_from_slice(&sum.to_be_bytes());
            TxChecksum::Partial { start, offset }
        }
        // A segment too short for its own header: smoltcp never emits one.
        None => TxChecksum::Complete,
    }
}

/// Frames for the tests here and in the adapter.
#[cfg(test)]
pub(crate) mod test_frames {
    use alloc::vec;
    use alloc::vec::Vec;
    use smoltcp::wire::{
        EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Address, Ipv4Packet,
        Ipv6Address, Ipv6Packet, TcpPacket, UdpPacket, checksum,
    };

    pub const SRC4: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
    pub const DST4: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);
    pub const SRC6: Ipv6Address = Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    pub const DST6: Ipv6Address = Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

    /// An Ethernet frame with a TCP SYN (port 1234 → 80) or a UDP datagram carrying
    /// `payload`, over IPv4 or IPv6, every checksum right.
    pub fn frame(v6: bool, protocol: IpProtocol, payload: &[u8]) -> Vec<u8> {
        let l4_header = if protocol == IpProtocol::Tcp { 20 } else { 8 };
        let l4_len = l4_header + payload.len();
        let ip_len = if v6 { 40 } else { 20 };
        let mut f = vec![0u8; 14 + ip_len + l4_len];
        let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
        eth.set_dst_addr(smoltcp::wire::EthernetAddress([0x02, 0, 0, 0, 0, 2]));
        eth.set_src_addr(smoltcp::wire::EthernetAddress([0x02, 0, 0, 0, 0, 1]));
        let (src, dst) = if v6 {
            eth.set_ethertype(EthernetProtocol::Ipv6);
            let mut ip = Ipv6Packet::new_unchecked(&mut f[14..]);
            ip.set_version(6);
            ip.set_payload_len(l4_len as u16);
            ip.set_next_header(protocol);
            ip.set_hop_limit(64);
            ip.set_src_addr(SRC6);
            ip.set_dst_addr(DST6);
            (IpAddress::Ipv6(SRC6), IpAddress::Ipv6(DST6))
        } else {
            eth.set_ethertype(EthernetProtocol::Ipv4);
            let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
            ip.set_version(4);
            ip.set_header_len(20);
            ip.set_total_len((20 + l4_len) as u16);
            ip.set_hop_limit(64);
            ip.set_next_header(protocol);
            ip.set_src_addr(SRC4);
            ip.set_dst_addr(DST4);
            ip.fill_checksum();
            (IpAddress::Ipv4(SRC4), IpAddress::Ipv4(DST4))
        };
        let l4 = &mut f[14 + ip_len..];
        if protocol == IpProtocol::Tcp {
            let mut tcp = TcpPacket::new_unchecked(l4);
            tcp.set_src_port(1234);
            tcp.set_dst_port(80);
            tcp.set_seq_number(smoltcp::wire::TcpSeqNumber(7));
            tcp.set_header_len(20);
            tcp.clear_flags();
            tcp.set_syn(true);
            tcp.set_window_len(1024);
            tcp.payload_mut().copy_from_slice(payload);
            tcp.fill_checksum(&src, &dst);
        } else {
            let mut udp = UdpPacket::new_unchecked(l4);
            udp.set_src_port(1234);
            udp.set_dst_port(53);
            udp.set_len(l4_len as u16);
            udp.payload_mut().copy_from_slice(payload);
            udp.fill_checksum(&src, &dst);
        }
        f
    }

    /// What the host kernel does with a `NEEDS_CSUM` frame (`skb_checksum_help`): the
    /// complement of the sum of `frame[start..]` at `start + offset`, 0 sent as 0xffff.
    pub fn complete(frame: &mut [u8], start: u16, offset: u16) {
        let (start, at) = (usize::from(start), usize::from(start + offset));
        let sum = match !checksum::data(&frame[start..]) {
            0 => 0xffff,
            c => c,
        };
        frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::test_frames::{complete, frame};
    use super::*;
    use alloc::vec;

    const CASES: [(bool, IpProtocol, u16); 4] = [
        (false, IpProtocol::Tcp, 16),
        (false, IpProtocol::Udp, 6),
        (true, IpProtocol::Tcp, 16),
        (true, IpProtocol::Udp, 6),
    ];

    #[test]
    fn good_frames_pass_and_a_flipped_bit_fails() {
        for (v6, proto, at) in CASES {
            for payload in [&b""[..], b"x", b"hello, world", &[0xa5; 1501]] {
                let mut f = frame(v6, proto, payload);
                assert!(rx_valid(&f), "{v6} {proto} {}", payload.len());
                let last = f.len() - 1;
                f[last] ^= 0x10;
                assert!(!rx_valid(&f), "corrupt payload: {v6} {proto}");
                f[last] ^= 0x10;
                let start = f.len() - payload.len() - if proto == IpProtocol::Tcp { 20 } else { 8 };
                f[start + usize::from(at)] ^= 1;
                assert!(!rx_valid(&f), "corrupt checksum: {v6} {proto}");
            }
        }
    }

    #[test]
    fn frames_without_tcp_or_udp_are_left_to_smoltcp() {
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(rx_valid(&arp));
        assert_eq!(tx_partial(&mut arp), TxChecksum::Complete);
        assert!(rx_valid(&[]));
        assert!(rx_valid(&[0xff; 13]));
        let mut icmp = frame(false, IpProtocol::Tcp, b"ping");
        icmp[14 + 9] = 1; // protocol ICMP: not ours to check
        assert!(rx_valid(&icmp));
        assert_eq!(tx_partial(&mut icmp), TxChecksum::Complete);
        // A truncated IP packet: smoltcp drops it itself.
        let f = frame(false, IpProtocol::Tcp, b"hello");
        assert!(rx_valid(&f[..40]));
    }

    #[test]
    fn udp_over_ipv4_without_a_checksum_is_valid() {
        let mut f = frame(false, IpProtocol::Udp, b"no sum");
        f[34 + 6..34 + 8].fill(0);
        assert!(rx_valid(&f));
    }

    #[test]
    fn partial_checksums_complete_to_valid_ones() {
        for (v6, proto, at) in CASES {
            for payload in [&b""[..], b"x", b"hello, world", &[0xa5; 9000]] {
                let good = frame(v6, proto, payload);
                // As smoltcp emits it with TCP/UDP checksums off: a zero field.
                let start =
                    good.len() - payload.len() - if proto == IpProtocol::Tcp { 20 } else { 8 };
                let mut f = good.clone();
                f[start + usize::from(at)..][..2].fill(0);
                // (A zero UDP checksum means "none" to smoltcp, over IPv6 too.)
                assert!(!rx_valid(&f) || proto == IpProtocol::Udp);
                let csum = tx_partial(&mut f);
                assert_eq!(
                    csum,
                    TxChecksum::Partial {
                        start: start as u16,
                        offset: at
                    },
                    "{v6} {proto}"
                );
                let TxChecksum::Partial { start, offset } = csum else {
                    unreachable!()
                };
                complete(&mut f, start, offset);
                assert!(rx_valid(&f), "{v6} {proto} {}", payload.len());
                assert_eq!(f, good, "{v6} {proto} {}", payload.len());
            }
        }
    }

    #[test]
    fn ipv6_hop_by_hop_header_is_skipped_as_smoltcp_does() {
        let inner = frame(true, IpProtocol::Tcp, b"behind hbh");
        // Insert an 8-byte hop-by-hop header (next: TCP, PadN) after the IPv6 header.
        let mut f = inner[..54].to_vec();
        f.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
        f.extend_from_slice(&inner[54..]);
        let mut ip = Ipv6Packet::new_unchecked(&mut f[14..]);
        ip.set_next_header(IpProtocol::HopByHop);
        ip.set_payload_len(ip.payload_len() + 8);
        assert!(rx_valid(&f));
        let last = f.len() - 1;
        f[last] ^= 1;
        assert!(!rx_valid(&f));
        assert!(matches!(
            tx_partial(&mut f),
            TxChecksum::Partial {
                start: 62,
                offset: 16
            }
        ));
    }
}
