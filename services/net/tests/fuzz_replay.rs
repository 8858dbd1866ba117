//! Stable replay of the `frames` and `tcpstats` fuzz targets: every seed-corpus file,
//! then thousands of pseudo-random and mutated inputs, through the same harnesses
//! (`tcpstats` reads the `frames` corpus: same input format).
//!
//! `OASIS_NET_WRITE_CORPUS=1 cargo test -p oasis-net --test fuzz_replay` rewrites the
//! seed corpus from frames built with smoltcp's wire types.

mod harness;
mod tcpstats_harness;

use oasis_testkit::corpus::{self, Replay, length_prefixed as encode};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::*;

const US: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
const PEER: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
const US_IP: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
const PEER_IP: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);

fn ethernet(ethertype: EthernetProtocol, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 14 + payload.len()];
    let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
    EthernetRepr {
        src_addr: PEER,
        dst_addr: US,
        ethertype,
    }
    .emit(&mut f);
    f.payload_mut().copy_from_slice(payload);
    buf
}

fn ipv4(proto: IpProtocol, payload: &[u8]) -> Vec<u8> {
    let repr = Ipv4Repr {
        src_addr: PEER_IP,
        dst_addr: US_IP,
        next_header: proto,
        payload_len: payload.len(),
        hop_limit: 64,
    };
    let mut buf = vec![0u8; 20 + payload.len()];
    let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
    repr.emit(&mut p, &ChecksumCapabilities::default());
    p.payload_mut().copy_from_slice(payload);
    ethernet(EthernetProtocol::Ipv4, &buf)
}

fn tcp(control: TcpControl, seq: u32, ack: Option<u32>, payload: &[u8]) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        control,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
        window_len: 8192,
        window_scale: None,
        max_seg_size: Some(1460),
        sack_permitted: false,
        sack_ranges: [None, None, None],
        timestamp: None,
        payload,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(
        &mut TcpPacket::new_unchecked(&mut buf[..]),
        &IpAddress::Ipv4(PEER_IP),
        &IpAddress::Ipv4(US_IP),
        &ChecksumCapabilities::default(),
    );
    ipv4(IpProtocol::Tcp, &buf)
}

fn seeds() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: PEER,
        source_protocol_addr: PEER_IP,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: US_IP,
    };
    let mut arp_buf = vec![0u8; arp.buffer_len()];
    arp.emit(&mut ArpPacket::new_unchecked(&mut arp_buf[..]));
    let arp = ethernet(EthernetProtocol::Arp, &arp_buf);
    let echo = Icmpv4Repr::EchoRequest {
        ident: 1,
        seq_no: 1,
        data: b"0123456789abcdef",
    };
    let mut echo_buf = vec![0u8; echo.buffer_len()];
    echo.emit(
        &mut Icmpv4Packet::new_unchecked(&mut echo_buf[..]),
        &ChecksumCapabilities::default(),
    );
    let mut udp_buf = vec![0u8; 8 + 12];
    UdpRepr {
        src_port: 5000,
        dst_port: 53,
    }
    .emit(
        &mut UdpPacket::new_unchecked(&mut udp_buf[..]),
        &IpAddress::Ipv4(PEER_IP),
        &IpAddress::Ipv4(US_IP),
        12,
        |p| p.copy_from_slice(b"dns question"),
        &ChecksumCapabilities::default(),
    );
    vec![
        ("arp_request", vec![arp.clone()]),
        (
            "icmp_echo",
            vec![arp.clone(), ipv4(IpProtocol::Icmp, &echo_buf)],
        ),
        ("udp_53", vec![arp.clone(), ipv4(IpProtocol::Udp, &udp_buf)]),
        (
            "tcp_syn",
            vec![arp.clone(), tcp(TcpControl::Syn, 1000, None, &[])],
        ),
        (
            "tcp_syn_data_fin_rst",
            vec![
                arp,
                tcp(TcpControl::Syn, 1000, None, &[]),
                tcp(TcpControl::None, 1001, Some(1), b"GET / HTTP/1.0\r\n\r\n"),
                tcp(TcpControl::Fin, 1019, Some(1), &[]),
                tcp(TcpControl::Rst, 1020, None, &[]),
            ],
        ),
    ]
}

#[test]
fn seed_corpus_replays_without_panic() {
    if std::env::var_os("OASIS_NET_WRITE_CORPUS").is_some() {
        let dir = corpus::dir(env!("CARGO_MANIFEST_DIR"), "frames");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, frames) in seeds() {
            std::fs::write(dir.join(name), encode(&frames)).unwrap();
        }
    }
    let seeds = corpus::seeds(env!("CARGO_MANIFEST_DIR"), "frames");
    assert!(seeds.len() >= 5, "only {} seed files", seeds.len());
    for s in &seeds {
        harness::run(&s.data);
    }
}

#[test]
fn random_and_mutated_inputs_do_not_panic() {
    let bases: Vec<Vec<u8>> = seeds().into_iter().map(|(_, f)| encode(&f)).collect();
    let replay = Replay {
        rng_seed: 0x0DDB_1A5E_5BAD_5EED,
        mutations: 2250,
        noise: 750,
        ..Replay::default()
    };
    replay.run(&bases, harness::run);
}

#[test]
fn tcpstats_replays_seeds_and_mutations_without_panic() {
    for s in &corpus::seeds(env!("CARGO_MANIFEST_DIR"), "frames") {
        tcpstats_harness::run(&s.data);
    }
    let bases: Vec<Vec<u8>> = seeds().into_iter().map(|(_, f)| encode(&f)).collect();
    let replay = Replay {
        rng_seed: 0x7C95_7A75_0000_0001,
        mutations: 3000,
        noise: 1000,
        ..Replay::default()
    };
    replay.run(&bases, tcpstats_harness::run);
}
