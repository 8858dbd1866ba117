//! The DHCPv4 client against a hand-built DHCP server (smoltcp has none) on the other
//! end of the wire: lease, renewal, expiry, and a fresh lease afterwards.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use oasis_devices::NetDevice;
use oasis_devices::mem_net::MemNet;
use oasis_net::{Ipv4Cidr, NetConfig};
use oasis_runtime::{Instant, Poller, block_on, register_poller, sleep, timeout};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress,
    EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol, Ipv4Address, Ipv4Packet,
    Ipv4Repr, UdpPacket, UdpRepr,
};

const SERVER: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
const SERVER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
const OFFER: Ipv4Address = Ipv4Address::new(10, 0, 0, 50);
const LEASE_SECS: u32 = 120;

#[derive(Default)]
struct Counters {
    discovers: AtomicU32,
    requests: AtomicU32,
    arps: AtomicU32,
}

/// A minimal DHCP server and ARP responder, run by the executor as a poller.
struct Server {
    end: MemNet,
    logic: Responder,
}

struct Responder {
    up: Arc<AtomicBool>,
    seen: Arc<Counters>,
}

impl Responder {
    fn answer(&self, frame: &[u8]) -> Option<Vec<u8>> {
        let caps = ChecksumCapabilities::default();
        let eth = EthernetFrame::new_checked(frame).ok()?;
        match eth.ethertype() {
            EthernetProtocol::Arp => {
                let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).ok()?).ok()?;
                let ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Request,
                    source_hardware_addr,
                    source_protocol_addr,
                    target_protocol_addr,
                    ..
                } = arp
                else {
                    return None;
                };
                if target_protocol_addr != SERVER {
                    return None;
                }
                self.seen.arps.fetch_add(1, Ordering::Relaxed);
                let reply = ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Reply,
                    source_hardware_addr: SERVER_MAC,
                    source_protocol_addr: SERVER,
                    target_hardware_addr: source_hardware_addr,
                    target_protocol_addr: source_protocol_addr,
                };
                let mut buf = vec![0u8; 14 + reply.buffer_len()];
                let mut out = EthernetFrame::new_unchecked(&mut buf[..]);
                EthernetRepr {
                    src_addr: SERVER_MAC,
                    dst_addr: source_hardware_addr,
                    ethertype: EthernetProtocol::Arp,
                }
                .emit(&mut out);
                reply.emit(&mut ArpPacket::new_unchecked(out.payload_mut()));
                Some(buf)
            }
            EthernetProtocol::Ipv4 => {
                let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
                let ip_repr = Ipv4Repr::parse(&ip, &caps).ok()?;
                if ip_repr.next_header != IpProtocol::Udp {
                    return None;
                }
                let udp = UdpPacket::new_checked(ip.payload()).ok()?;
                let src = IpAddress::Ipv4(ip_repr.src_addr);
                let dst = IpAddress::Ipv4(ip_repr.dst_addr);
                let udp_repr = UdpRepr::parse(&udp, &src, &dst, &caps).ok()?;
                if udp_repr.dst_port != 67 {
                    return None;
                }
                let dhcp = DhcpPacket::new_checked(udp.payload()).ok()?;
                let req = DhcpRepr::parse(&dhcp).ok()?;
                let message_type = match req.message_type {
                    DhcpMessageType::Discover => {
                        self.seen.discovers.fetch_add(1, Ordering::Relaxed);
                        DhcpMessageType::Offer
                    }
                    DhcpMessageType::Request => {
                        self.seen.requests.fetch_add(1, Ordering::Relaxed);
                        DhcpMessageType::Ack
                    }
                    _ => return None,
                };
                if !self.up.load(Ordering::Relaxed) {
                    return None;
                }
                Some(dhcp_reply(&req, message_type))
            }
            _ => None,
        }
    }
}

fn dhcp_reply(req: &DhcpRepr, message_type: DhcpMessageType) -> Vec<u8> {
    let caps = ChecksumCapabilities::default();
    let repr = DhcpRepr {
        message_type,
        transaction_id: req.transaction_id,
        secs: 0,
        client_hardware_address: req.client_hardware_address,
        client_ip: Ipv4Address::UNSPECIFIED,
        your_ip: OFFER,
        server_ip: SERVER,
        router: Some(SERVER),
        subnet_mask: Some(Ipv4Address::new(255, 255, 255, 0)),
        relay_agent_ip: Ipv4Address::UNSPECIFIED,
        broadcast: false,
        requested_ip: None,
        client_identifier: None,
        server_identifier: Some(SERVER),
        parameter_request_list: None,
        dns_servers: None,
        max_size: None,
        lease_duration: Some(LEASE_SECS),
        renew_duration: None,
        rebind_duration: None,
        additional_options: &[],
    };
    let dhcp_len = repr.buffer_len();
    let dst = Ipv4Address::BROADCAST;
    let ip_repr = Ipv4Repr {
        src_addr: SERVER,
        dst_addr: dst,
        next_header: IpProtocol::Udp,
        payload_len: 8 + dhcp_len,
        hop_limit: 64,
    };
    let mut buf = vec![0u8; 14 + 20 + 8 + dhcp_len];
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    EthernetRepr {
        src_addr: SERVER_MAC,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut eth);
    let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
    ip_repr.emit(&mut ip, &caps);
    let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
    UdpRepr {
        src_port: 67,
        dst_port: 68,
    }
    .emit(
        &mut udp,
        &IpAddress::Ipv4(SERVER),
        &IpAddress::Ipv4(dst),
        dhcp_len,
        |payload| {
            repr.emit(&mut DhcpPacket::new_unchecked(payload))
                .expect("DHCP reply fits")
        },
        &caps,
    );
    buf
}

impl Poller for Server {
    fn poll(&mut self, _now: Instant) -> Option<Instant> {
        let mut replies = Vec::new();
        let logic = &self.logic;
        while let Some(r) = self.end.receive(|f| logic.answer(f)) {
            replies.extend(r);
        }
        for r in replies {
            self.end.transmit(r.len(), |b| b.copy_from_slice(&r));
        }
        None
    }
}

#[test]
fn dhcp_lease_renewal_expiry_and_recovery() {
    let p = TestPlatform::new();
    block_on(p, async {
        let (client_end, server_end) = MemNet::pair();
        p.watch(client_end.link());
        let up = Arc::new(AtomicBool::new(true));
        let seen = Arc::new(Counters::default());
        register_poller(Box::new(Server {
            end: server_end,
            logic: Responder {
                up: up.clone(),
                seen: seen.clone(),
            },
        }));
        let net = install(client_end, NetConfig::default(), 3);
        let addr = timeout(Duration::from_secs(30), net.wait_configured())
            .await
            .expect("a lease within 30 s");
        assert_eq!(addr, OFFER);
        assert_eq!(
            net.ipv4(),
            Some(Ipv4Cidr {
                addr: OFFER,
                prefix: 24
            })
        );
        assert_eq!(net.gateway(), Some(SERVER));
        assert_eq!(seen.discovers.load(Ordering::Relaxed), 1);
        assert_eq!(seen.requests.load(Ordering::Relaxed), 1);

        // Renewal at T1 = 60 s keeps the lease.
        sleep(Duration::from_secs(100)).await;
        assert!(
            seen.requests.load(Ordering::Relaxed) >= 2,
            "no renewal request"
        );
        assert_eq!(net.ipv4().map(|c| c.addr), Some(OFFER));

        // The server goes away: the lease runs out and the address goes with it.
        up.store(false, Ordering::Relaxed);
        sleep(Duration::from_secs(300)).await;
        assert_eq!(net.ipv4(), None, "lease expired");
        assert_eq!(net.gateway(), None);

        // It comes back: a fresh DISCOVER gets a new lease.
        up.store(true, Ordering::Relaxed);
        let addr = timeout(Duration::from_secs(300), net.wait_configured())
            .await
            .expect("a new lease");
        assert_eq!(addr, OFFER);
        assert!(seen.discovers.load(Ordering::Relaxed) >= 2);
    });
}
