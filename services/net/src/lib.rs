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
//! - [`tcpstats`]: TCP retransmissions and resets, counted from the frames the
//!   adapter moves (smoltcp keeps no such counts).
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
//! # Memory and limits (see also the repository's `docs/overload.md`)
//!
//! - Memory is a budget charged before admission. When the platform measures its
//!   heap (`oasis_runtime::heap_usage`), every LISTEN socket is built with buffers
//!   sized by [`NetConfig::admit`] to what is free *now*: full size (`tcp_rx_buffer`
//!   / `tcp_tx_buffer`) only from the top eighth of the memory free at start, the
//!   floor (`tcp_buffer_min`, one segment) below it, and no socket at all (so SYNs
//!   get RST) when even the floor would eat into `heap_reserve`. Connections
//!   admitted but not yet accepted are charged `conn_overhead` in advance. Unmeasured
//!   heaps (hosted) get the configured sizes and only the count limits.
//! - Nothing on the per-connection path grows a collection: the socket set's slots
//!   (`max_connections` plus a few), the close queue and each port's accept queues
//!   are reserved, fallibly, when the stack starts or the port is opened.
//! - Per listening port: [`LISTEN_SPARE`](stack::LISTEN_SPARE) (2) sockets in LISTEN
//!   state, refilled after every received frame, so a burst of SYNs is absorbed;
//!   `backlog` bounds the port's half-open plus not-yet-accepted connections (SYNs
//!   beyond it get RST). A passive open must not stay silent for longer than
//!   `handshake_timeout` until it is accepted (SYN floods, never-accepted sockets).
//! - When the free heap nears `heap_reserve` (room for fewer than 64 floor-sized
//!   connections), the oldest idle accepted connections are reset, eight per poll,
//!   so an idle flood cannot lock new clients out ([`NetStats::tcp_evicted`]).
//! - `max_connections` counts every TCP socket not in LISTEN state (half-open,
//!   waiting for accept, open, closing, outgoing). At the limit the stack keeps no
//!   LISTEN socket, so a new SYN gets a RST from smoltcp ([`NetStats::tcp_refused`]
//!   counts them), and `tcp_connect` fails with `TooManyConnections`; existing
//!   connections are untouched. Allocation failure of socket buffers is an error
//!   (`OutOfMemory`), never an abort. The facade derives `max_connections` and the
//!   reserve from the heap (`oasis::net::Budget`).
//! - Per UDP socket: `udp_rx_buffer + udp_tx_buffer` (64 KiB each) and
//!   `udp_packets` (64) metadata slots per direction.
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
// Input from outside must never panic the kernel through an unchecked unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

extern crate alloc;

pub mod adapter;
mod checksum;
pub mod config;
pub mod error;
mod neighbor;
pub mod stack;
pub mod tcp;
pub mod tcpstats;
pub mod udp;

pub use config::{
    Budget, ConfigError, DEFAULT_ACK_DELAY, DEFAULT_BACKLOG, DEFAULT_CONN_OVERHEAD,
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_TCP_BUFFER_MIN, Ipv4Cidr,
    Ipv4Gateway, NetConfig,
};
pub use error::NetError;
pub use stack::{NetHandle, NetStats, Stack};
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
