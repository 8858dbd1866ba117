//! Thousands of random and mutated frames injected into a stack while a TCP echo
//! through it keeps working byte for byte.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use oasis_devices::mem_net::MemNet;
use oasis_devices::{NetDevice, NetInfo};
use oasis_runtime::{block_on, spawn};
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, TcpPacket,
};

/// Wraps a device: before each real frame it lends up to eight junk frames —
/// random bytes (half of them addressed to us as IPv4), corrupted copies of the last
/// real frame, exact replays, and replays with TCP fields altered and checksums
/// fixed up (stale or out-of-window segments that pass every check but TCP's).
struct Noisy {
    inner: MemNet,
    rng: u64,
    last: Vec<u8>,
    scratch: Vec<u8>,
    pending: u32,
    injected: Arc<AtomicU64>,
}

impl Noisy {
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn junk(&mut self) -> usize {
        let kind = self.next() % 5;
        let mac = self.inner.info().mac;
        match kind {
            0 | 1 => {
                let len = (self.next() % 1515) as usize;
                for i in 0..len {
                    self.scratch[i] = self.next() as u8;
                }
                if kind == 1 && len >= 14 {
                    self.scratch[..6].copy_from_slice(&mac);
                    self.scratch[12..14].copy_from_slice(&[0x08, 0x00]);
                }
                len
            }
            2 | 3 if !self.last.is_empty() => {
                let len = self.last.len();
                self.scratch[..len].copy_from_slice(&self.last);
                if kind == 2 {
                    for _ in 0..1 + self.next() % 4 {
                        let at = (self.next() % len as u64) as usize;
                        self.scratch[at] = self.next() as u8;
                    }
                    (self.next() % (len as u64 + 1)) as usize
                } else {
                    len
                }
            }
            _ if !self.last.is_empty() => {
                let len = self.last.len();
                self.scratch[..len].copy_from_slice(&self.last);
                let (r1, r2, r3) = (self.next(), self.next(), self.next());
                let Ok(eth) = EthernetFrame::new_checked(&mut self.scratch[..len]) else {
                    return len;
                };
                if eth.ethertype() != EthernetProtocol::Ipv4 {
                    return len;
                }
                let mut eth = eth;
                let Ok(mut ip) = Ipv4Packet::new_checked(eth.payload_mut()) else {
                    return len;
                };
                if ip.next_header() != IpProtocol::Tcp {
                    return len;
                }
                let (src, dst) = (
                    IpAddress::Ipv4(ip.src_addr()),
                    IpAddress::Ipv4(ip.dst_addr()),
                );
                let Ok(mut tcp) = TcpPacket::new_checked(ip.payload_mut()) else {
                    return len;
                };
                match r1 % 3 {
                    // Far outside the window: must draw at most an ACK.
                    0 => {
                        tcp.set_seq_number(tcp.seq_number() + (1 << 30) + (r2 as usize % (1 << 29)))
                    }
                    1 => {
                        tcp.set_ack_number(tcp.ack_number() + (1 << 30) + (r2 as usize % (1 << 29)))
                    }
                    _ => tcp.set_window_len(r3 as u16),
                }
                tcp.fill_checksum(&src, &dst);
                ip.fill_checksum();
                len
            }
            _ => 0,
        }
    }
}

impl NetDevice for Noisy {
    fn info(&self) -> NetInfo {
        self.inner.info()
    }
    fn receive<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        if self.pending > 0 {
            self.pending -= 1;
            let len = self.junk();
            self.injected.fetch_add(1, Ordering::Relaxed);
            return Some(f(&mut self.scratch[..len]));
        }
        let last = &mut self.last;
        let r = self.inner.receive(|frame| {
            last.clear();
            last.extend_from_slice(frame);
            f(frame)
        })?;
        self.pending = (self.next() % 9) as u32;
        Some(r)
    }
    fn can_transmit(&self) -> bool {
        self.inner.can_transmit()
    }
    fn transmit<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        self.inner.transmit(len, f)
    }
    fn poll(&mut self) -> bool {
        self.inner.poll() || self.pending > 0
    }
}

#[test]
fn tcp_echo_survives_thousands_of_hostile_frames() {
    let p = TestPlatform::new();
    let injected = Arc::new(AtomicU64::new(0));
    let inj = injected.clone();
    block_on(p, async move {
        let (da, db) = MemNet::pair();
        p.watch(da.link());
        let noisy = Noisy {
            inner: da,
            rng: 0x1234_5678_9ABC_DEF1,
            last: Vec::new(),
            scratch: vec![0; 1514],
            pending: 0,
            injected: inj,
        };
        let a = install(noisy, static_config(A), 1);
        let b = install(db, static_config(B), 2);
        let l = a.tcp_listen(7).unwrap();
        let server = spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).await.unwrap();
            }
        });
        let mut c = b.tcp_connect(sa(A, 7)).await.unwrap();
        const LEN: usize = 2 * 1024 * 1024;
        let data: Vec<u8> = (0..LEN).map(pattern).collect();
        let writer_data = data.clone();
        let mut got = Vec::with_capacity(LEN);
        let mut buf = [0u8; 8192];
        let mut sent = 0;
        // Alternate writing and reading so neither side's buffer deadlocks.
        while got.len() < LEN {
            if sent < LEN {
                let end = (sent + 16 * 1024).min(LEN);
                c.write_all(&writer_data[sent..end]).await.unwrap();
                sent = end;
            }
            while got.len() < sent {
                let n = c.read(&mut buf).await.unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            }
        }
        assert!(got == data, "echo differs");
        c.shutdown().await.unwrap();
        assert_eq!(c.read(&mut buf).await.unwrap(), 0);
        server.await;
        // The stack still answers pings afterwards.
        b.ping(A, 32, std::time::Duration::from_secs(1))
            .await
            .unwrap();
    });
    let n = injected.load(Ordering::Relaxed);
    assert!(n >= 5000, "only {n} frames injected");
}
