//! The frame-fuzzing harness, shared by the cargo-fuzz target and the stable replay
//! test: arbitrary bytes become frames fed into a `Stack` with a TCP listener and a
//! UDP socket, polled as the executor would, with time moving on. Each input runs
//! twice: over a plain device (smoltcp checks every checksum) and over one with
//! checksum offload (the adapter checks TCP/UDP checksums of unflagged frames and
//! leaves partial ones for the device, which completes them as a host would).

mod frames;

use std::time::Duration;

use oasis_devices::mem_net::MemNet;
use oasis_devices::{NetDevice, NetInfo, RxChecksum, TxChecksum};
use oasis_net::{NetConfig, Stack};
use oasis_runtime::{Instant, Poller};
use smoltcp::wire::checksum;

/// A `MemNet` end with checksum offload: every received frame is unverified, and a
/// partial checksum is completed on transmit as the host kernel would
/// (`skb_checksum_help`), failing the run if it points outside the frame.
pub struct Offloaded(pub MemNet);

impl NetDevice for Offloaded {
    fn info(&self) -> NetInfo {
        self.0.info()
    }
    fn receive<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        self.0.receive(f)
    }
    fn can_transmit(&self) -> bool {
        self.0.can_transmit()
    }
    fn transmit<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        self.0.transmit(len, f)
    }
    fn poll(&mut self) -> bool {
        self.0.poll()
    }
    fn checksum_offload(&self) -> bool {
        true
    }
    fn receive_with_checksum<R>(
        &mut self,
        f: impl FnOnce(&mut [u8], RxChecksum) -> R,
    ) -> Option<R> {
        self.0.receive(|frame| f(frame, RxChecksum::Unverified))
    }
    fn transmit_with_checksum<R>(
        &mut self,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> (R, TxChecksum),
    ) -> Option<R> {
        self.0.transmit(len, |frame| {
            let (r, csum) = f(frame);
            if let TxChecksum::Partial { start, offset } = csum {
                let (start, at) = (usize::from(start), usize::from(start + offset));
                assert!(at + 2 <= frame.len(), "partial checksum outside the frame");
                let sum = match !checksum::data(&frame[start..]) {
                    0 => 0xffff,
                    c => c,
                };
                frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
            }
            r
        })
    }
}

/// Input format: repeated `[len_hi, len_lo, frame bytes...]`; a short tail is one
/// last frame. Each frame is followed by a poll 10 ms later.
pub fn run(data: &[u8]) {
    let (dev, wire) = MemNet::pair();
    run_on(dev, wire, data);
    let (dev, wire) = MemNet::pair();
    run_on(Offloaded(dev), wire, data);
}

fn run_on<D: NetDevice + Send>(dev: D, mut wire: MemNet, data: &[u8]) {
    let config = NetConfig {
        tcp_rx_buffer: 4096,
        tcp_tx_buffer: 4096,
        max_connections: 8,
        backlog: 4,
        ..NetConfig::static_ipv4(
            "10.0.0.1/24".parse().unwrap(),
            Some("10.0.0.254".parse().unwrap()),
        )
    };
    let mut now = Instant::from_nanos(1_000_000_000);
    let mut stack = Stack::new(dev, config, 7, now).unwrap();
    let net = stack.handle();
    let _listener = net.tcp_listen(80).unwrap();
    let _udp = net.udp_bind(53).unwrap();
    for frame in frames::frames(data) {
        if frame.len() <= 1514 {
            wire.transmit(frame.len(), |b| b.copy_from_slice(frame));
        }
        stack.poll(now);
        while wire.receive(|_| ()).is_some() {}
        now = now + Duration::from_millis(10);
    }
    // Let timers (retransmits, ARP, closes) run out.
    for _ in 0..5 {
        now = now + Duration::from_secs(3);
        stack.poll(now);
        while wire.receive(|_| ()).is_some() {}
    }
}
