//! A burst of connections that reaches a server before it knows the sender's MAC,
//! as behind QEMU's user networking: the gateway (slirp) learned the guest's MAC from
//! DHCP and never ARPs for it, so every SYN-ACK of the burst needs the server's own
//! ARP request first. Every connection must complete, without a single RST, quickly.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use oasis_devices::mem_net::MemNet;
use oasis_devices::{NetDevice, NetInfo};
use oasis_net::{NetConfig, NetHandle};
use oasis_runtime::{block_on, spawn, timeout};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, IpProtocol,
    Ipv4Packet, TcpPacket,
};

/// Concurrent clients in the burst.
const CLIENTS: usize = 64;

/// What the server sent, counted by [`Natted`].
#[derive(Default)]
struct Counts {
    arp_requests: AtomicU64,
    syn_acks: AtomicU64,
    rsts: AtomicU64,
}

/// The server's device, made to look like a guest behind slirp: ARP requests from
/// the peer for the server's address are answered here, in the server's name, and
/// never reach the server's stack, so the server never learns the peer's MAC from
/// them. The first `drop_arp` ARP requests the server sends are lost.
struct Natted {
    inner: MemNet,
    drop_arp: u32,
    counts: Arc<Counts>,
}

/// The ARP reply to `frame` if it is an ARP request for `ours`.
fn answer_arp(frame: &[u8], mac: EthernetAddress, ours: std::net::Ipv4Addr) -> Option<Vec<u8>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Arp {
        return None;
    }
    let repr = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).ok()?).ok()?;
    let ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr,
        source_protocol_addr,
        target_protocol_addr,
        ..
    } = repr
    else {
        return None;
    };
    if target_protocol_addr != ours {
        return None;
    }
    let reply = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: mac,
        source_protocol_addr: ours,
        target_hardware_addr: source_hardware_addr,
        target_protocol_addr: source_protocol_addr,
    };
    let mut out = vec![0u8; 14 + reply.buffer_len()];
    let mut f = EthernetFrame::new_unchecked(&mut out[..]);
    f.set_src_addr(mac);
    f.set_dst_addr(source_hardware_addr);
    f.set_ethertype(EthernetProtocol::Arp);
    reply.emit(&mut ArpPacket::new_unchecked(f.payload_mut()));
    Some(out)
}

/// Counts ARP requests, SYN-ACKs and RSTs in a frame the server sends.
fn classify(frame: &[u8], counts: &Counts) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    match eth.ethertype() {
        EthernetProtocol::Arp => {
            counts.arp_requests.fetch_add(1, Ordering::Relaxed);
            true
        }
        EthernetProtocol::Ipv4 => {
            let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
                return false;
            };
            if ip.next_header() != IpProtocol::Tcp {
                return false;
            }
            let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else {
                return false;
            };
            if tcp.rst() {
                counts.rsts.fetch_add(1, Ordering::Relaxed);
            }
            if tcp.syn() && tcp.ack() {
                counts.syn_acks.fetch_add(1, Ordering::Relaxed);
            }
            false
        }
        _ => false,
    }
}

impl NetDevice for Natted {
    fn info(&self) -> NetInfo {
        self.inner.info()
    }
    fn receive<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        let mac = EthernetAddress(self.inner.info().mac);
        let mut f = Some(f);
        let mut reply = None;
        let r = self
            .inner
            .receive(|frame| match answer_arp(frame, mac, B) {
                Some(r) => {
                    reply = Some(r);
                    None
                }
                None => f.take().map(|f| f(frame)),
            })?;
        if let Some(reply) = reply {
            // No room: the reply is lost, as on a wire; the peer asks again.
            let _ = self
                .inner
                .transmit(reply.len(), |b| b.copy_from_slice(&reply));
        }
        // A swallowed frame: smoltcp ignores an empty one.
        r.or_else(|| f.take().map(|f| f(&mut [])))
    }
    fn can_transmit(&self) -> bool {
        self.inner.can_transmit()
    }
    fn transmit<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        if !self.inner.can_transmit() {
            return None;
        }
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        if classify(&frame, &self.counts) && self.drop_arp > 0 {
            self.drop_arp -= 1;
            return Some(r); // lost on the wire
        }
        self.inner
            .transmit(len, |buf| buf.copy_from_slice(&frame))
            .map(|()| r)
    }
    fn poll(&mut self) -> bool {
        self.inner.poll()
    }
}

struct Outcome {
    ok: usize,
    /// Virtual time from the server's readiness until every echo came back.
    took: Duration,
    counts: Arc<Counts>,
}

/// Server B (static, `gateway` = the peer A or none) echoes on port 7; right after
/// B's `wait_configured`, A opens [`CLIENTS`] connections at once, each echoing a
/// distinct payload.
fn burst(gateway: bool, drop_arp: u32) -> Outcome {
    let p = TestPlatform::new();
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    let (ok, took) = block_on(p, async move {
        let (da, db) = MemNet::pair();
        p.watch(da.link());
        let server_dev = Natted {
            inner: db,
            drop_arp,
            counts: c,
        };
        let b: NetHandle = install(
            server_dev,
            NetConfig::static_ipv4(format!("{B}/24").parse().unwrap(), gateway.then_some(A)),
            2,
        );
        let a = install(da, static_config(A), 1);
        let l = b.tcp_listen(7).unwrap();
        spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                spawn(async move {
                    let mut buf = [0u8; 512];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = s.shutdown().await;
                });
            }
        });
        b.wait_configured().await;
        let start = oasis_runtime::now();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let a = a.clone();
                spawn(async move {
                    let data = format!("client {i:03} ").repeat(8).into_bytes();
                    let mut s = a.tcp_connect(sa(B, 7)).await.ok()?;
                    s.write_all(&data).await.ok()?;
                    let mut got = vec![0u8; data.len()];
                    let mut n = 0;
                    while n < got.len() {
                        let k = s.read(&mut got[n..]).await.ok()?;
                        if k == 0 {
                            return None;
                        }
                        n += k;
                    }
                    (got == data).then_some(())
                })
            })
            .collect();
        let mut ok = 0;
        for c in clients {
            if timeout(Duration::from_secs(30), c)
                .await
                .ok()
                .flatten()
                .is_some()
            {
                ok += 1;
            }
        }
        (ok, oasis_runtime::now().saturating_duration_since(start))
    });
    Outcome { ok, took, counts }
}

fn report(name: &str, o: &Outcome) {
    eprintln!(
        "{name}: {}/{CLIENTS} ok in {:?}; server sent {} ARP requests, {} SYN-ACKs, {} RSTs",
        o.ok,
        o.took,
        o.counts.arp_requests.load(Ordering::Relaxed),
        o.counts.syn_acks.load(Ordering::Relaxed),
        o.counts.rsts.load(Ordering::Relaxed),
    );
}

/// The burst comes through the gateway (the slirp case): the gateway's MAC is known
/// before `wait_configured` returns, so no SYN-ACK waits and each goes out once.
#[test]
fn burst_through_the_gateway_needs_no_arp_after_ready() {
    let o = burst(true, 0);
    report("via gateway", &o);
    assert_eq!(o.ok, CLIENTS);
    assert_eq!(o.counts.rsts.load(Ordering::Relaxed), 0);
    assert_eq!(o.counts.arp_requests.load(Ordering::Relaxed), 1);
    assert_eq!(o.counts.syn_acks.load(Ordering::Relaxed), CLIENTS as u64);
    assert!(o.took < Duration::from_millis(100), "took {:?}", o.took);
}

/// The burst comes from an on-link peer the server has not resolved: the SYN-ACKs
/// wait for one ARP round trip and then all leave.
#[test]
fn burst_from_an_unresolved_peer_completes_without_rst() {
    let o = burst(false, 0);
    report("unresolved peer", &o);
    assert_eq!(o.ok, CLIENTS);
    assert_eq!(o.counts.rsts.load(Ordering::Relaxed), 0);
    assert!(o.took < Duration::from_millis(100), "took {:?}", o.took);
}

/// As above, and the server's first ARP request is lost: the SYN-ACKs wait for
/// smoltcp's next ARP attempt a second later, while the peer retransmits its SYNs.
/// Still every connection completes and none is reset.
#[test]
fn burst_survives_a_lost_arp_request() {
    let o = burst(false, 1);
    report("lost ARP", &o);
    assert_eq!(o.ok, CLIENTS);
    assert_eq!(o.counts.rsts.load(Ordering::Relaxed), 0);
}
