//! The frame-fuzzing harness, shared by the cargo-fuzz target and the stable replay
//! test: arbitrary bytes become frames fed into a `Stack` with a TCP listener and a
//! UDP socket, polled as the executor would, with time moving on.

use std::time::Duration;

use oasis_devices::NetDevice;
use oasis_devices::mem_net::MemNet;
use oasis_net::{NetConfig, Stack};
use oasis_runtime::{Instant, Poller};

/// Input format: repeated `[len_hi, len_lo, frame bytes...]`; a short tail is one
/// last frame. Each frame is followed by a poll 10 ms later.
pub fn run(data: &[u8]) {
    let (dev, mut wire) = MemNet::pair();
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
    let mut rest = data;
    while !rest.is_empty() {
        let (frame, tail) = match rest {
            [hi, lo, tail @ ..] => {
                let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
                tail.split_at(len)
            }
            _ => (rest, &[][..]),
        };
        rest = tail;
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
