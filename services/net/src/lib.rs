//! The Oasis network service: smoltcp over a [`NetDevice`](oasis_devices::NetDevice),
//! with async TCP and UDP sockets, DHCPv4 and boot-argument configuration.
//!
//! # Architecture
//!
//! ```text
//!  application tasks ── TcpListener / TcpStream / UdpSocket ── NetHandle ─┐
//!                                                          Arc<spin::Mutex<Core>>
//!  executor turn ── Stack<D>: Poller ─ iface.poll ─ Adapter<D> ─ NetDevice ┘
//! ```
//!
//! - [`adapter`]: the one `NetDevice` → `smoltcp::phy::Device` adapter. Tokens lend
//!   the device's buffers (no allocation, no copy per packet); checksums are done in
//!   software both ways; `max_burst_size` caps the receive window to what the
//!   device's rings absorb.
//! - [`stack`]: [`Stack`] owns the device and implements [`oasis_runtime::Poller`];
//!   the shared `Core` (smoltcp `Interface`, `SocketSet`, listener queues, DHCP
//!   state) sits in an `Arc<spin::Mutex<..>>` that every [`NetHandle`] and socket
//!   holds, so tasks stay `Send`.
//! - [`tcp`], [`udp`]: the socket types; [`config`]: [`NetConfig`] and the
//!   `--ipv4` / `--ipv4-gateway` value types; [`error`]: [`NetError`].
//!
//! # How the executor drives it (no busy polling)
//!
//! The executor calls [`Stack`]'s `poll(now)` once per turn, after the ready tasks.
//! A poll: lets the device do its housekeeping (`NetDevice::poll`), processes up to
//! [`INGRESS_BUDGET`](stack::INGRESS_BUDGET) received frames, sends what the sockets
//! have queued, applies DHCP events, moves connections along the listener queues
//! (waking `accept`), refills the LISTEN sockets, frees sockets whose owners dropped
//! them once they are closed, and kicks the device if it transmitted. It returns
//! smoltcp's `poll_at` (the next retransmit, delayed-ACK, keep-alive, DHCP or ARP
//! timer) as the executor's next deadline: `now` only while frames are still
//! waiting, `None` when nothing is scheduled. Socket futures register smoltcp's
//! wakers (`register_recv_waker` / `register_send_waker`), so a task sleeps until the
//! poll that changes its socket. When no task is ready the executor sleeps in
//! `Platform::wait_for_event` until that deadline or the device's interrupt.
//!
//! # Memory and limits
//!
//! - Per TCP connection: `tcp_rx_buffer + tcp_tx_buffer` (64 KiB + 64 KiB by
//!   default) plus ~1 KiB of socket state, allocated when the connection's socket is
//!   created (a LISTEN socket is created with its buffers, since it becomes the
//!   connection). Per listening port: [`LISTEN_SPARE`](stack::LISTEN_SPARE) (2)
//!   such sockets in LISTEN state, refilled after every received frame, so a burst
//!   of SYNs is absorbed; `backlog` (128) bounds the port's half-open plus
//!   not-yet-accepted connections (SYNs beyond it get RST).
//!   Defaults: [`DEFAULT_MAX_CONNECTIONS`](config::DEFAULT_MAX_CONNECTIONS) = 256
//!   connections ≈ 32 MiB at most; shrink the buffers for many connections (the
//!   tests run 1000 connections with 2 KiB buffers ≈ 4 MiB).
//! - Per UDP socket: `udp_rx_buffer + udp_tx_buffer` (64 KiB each) and
//!   `udp_packets` (64) metadata slots per direction.
//! - `max_connections` counts every TCP socket not in LISTEN state (half-open,
//!   waiting for accept, open, closing, outgoing). At the limit the stack keeps no
//!   LISTEN socket, so a new SYN gets a RST from smoltcp, and `tcp_connect` fails
//!   with `TooManyConnections`; existing connections are untouched. Allocation
//!   failure of socket buffers is an error (`OutOfMemory`), never an abort.
//! - A dropped stream gets `close_linger` (10 s) to deliver its data and FIN, then
//!   it is reset; sockets are freed at TIME-WAIT rather than held for 2 MSL.
//! - UDP datagrams carry at most `mtu - 28` bytes (no IP fragmentation); larger
//!   ones are refused with `BufferTooSmall`. IPv6 gets a link-local address only.
//! - smoltcp limits: no sender-side SACK, Reno congestion control (Cubic needs std
//!   floats), one address per family (`IFACE_MAX_ADDR_COUNT` = 2). An idle-timeout
//!   abort is reported as `ConnectionReset` (smoltcp does not tell it from a RST).
//!
//! # Integration (kvm platform, `oasis` facade)
//!
//! 1. Parse `--ipv4=ADDR/PREFIX` into [`Ipv4Cidr`] and `--ipv4-gateway=ADDR` into
//!    [`Ipv4Gateway`] (their `FromStr` errors are ready for the user); build
//!    `NetConfig { ipv4, gateway: gateway.map(|g| g.0), ..NetConfig::default() }`
//!    (DHCP runs when `ipv4` is `None`).
//! 2. Inside `block_on`, with the driver's `NetDevice` (virtio-net on kvm; `MemNet`
//!    in tests): `let net = Stack::install(dev, config, seed, oasis_runtime::now())?`
//!    with `seed` from `Platform::entropy`. This registers the poller.
//! 3. Make the device's interrupt end `Platform::wait_for_event` (the poller then
//!    runs on the next turn); no other wiring is needed.
//! 4. `os.net()` returns the [`NetHandle`] (clone it freely); call
//!    `net.wait_configured().await` before announcing readiness when DHCP is used.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod adapter;
pub mod config;
pub mod error;
mod neighbor;
pub mod stack;
pub mod tcp;
pub mod udp;

pub use config::{
    ConfigError, DEFAULT_CONN_OVERHEAD, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_TCP_BUFFER_MIN,
    Ipv4Cidr, Ipv4Gateway, NetConfig,
};
pub use error::NetError;
pub use stack::{NetHandle, NetStats, Stack};
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
