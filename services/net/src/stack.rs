//! `Stack`: the smoltcp interface, its sockets and the device, driven by the executor.
//!
//! The state tasks share (`Core`: interface, socket set, listener queues, address)
//! sits behind `Arc<spin::Mutex<..>>` in a [`NetHandle`]; the device lives in the
//! [`Stack`], which the executor owns as a [`Poller`]. Socket calls from tasks only
//! touch the socket buffers; frames move when the executor runs the poller, once per
//! turn after the ready tasks, so a task's write goes out before the CPU sleeps.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::task::{Poll, Waker};
use core::time::Duration;

use oasis_devices::{NetDevice, QueueOccupancy};
use oasis_runtime::{Instant as RtInstant, Poller};
use smoltcp::iface::{
    Config, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet,
};
use smoltcp::socket::{dhcpv4, icmp, tcp, udp};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr,
};
use spin::Mutex;

use crate::adapter::{Adapter, AdapterStats};
use crate::config::{Ipv4Cidr, NetConfig};
use crate::error::NetError;
use crate::neighbor::GatewayProbe;
use crate::tcp::{TcpListener, TcpStream};
use crate::udp::UdpSocket;

/// Frames processed per poll before the executor gets to run tasks again.
pub const INGRESS_BUDGET: usize = 256;
/// How soon to retry when smoltcp wants to send but the device has no free buffer.
const TX_RETRY: Duration = Duration::from_millis(1);
/// First ephemeral port (IANA dynamic range 49152..=65535).
pub const EPHEMERAL_FIRST: u16 = 49152;
const EPHEMERAL_COUNT: u16 = 16384;

pub(crate) fn to_smol(t: RtInstant) -> SmolInstant {
    SmolInstant::from_micros(i64::try_from(t.as_nanos() / 1000).unwrap_or(i64::MAX))
}

fn from_smol(t: SmolInstant) -> RtInstant {
    RtInstant::from_nanos(
        u64::try_from(t.total_micros())
            .unwrap_or(0)
            .saturating_mul(1000),
    )
}

pub(crate) fn smol_duration(d: Duration) -> smoltcp::time::Duration {
    smoltcp::time::Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A TCP socket with buffers sized by admission control ([`NetConfig::admit`]
/// against the heap's free bytes), or an error instead of an abort: `OutOfMemory`
/// when admission refuses or the allocator fails.
fn new_tcp_socket(
    config: &NetConfig,
    pending: usize,
    start_free: usize,
) -> Result<tcp::Socket<'static>, NetError> {
    let free = oasis_runtime::heap_usage().map(|u| u.free());
    let (rx, tx) = config
        .admit(free, pending, start_free)
        .ok_or(NetError::OutOfMemory(config.min_connection_cost()))?;
    let rx = Core::buffer(rx)?;
    let tx = Core::buffer(tx)?;
    let mut s = tcp::Socket::new(tcp::SocketBuffer::new(rx), tcp::SocketBuffer::new(tx));
    s.set_ack_delay(config.ack_delay.map(smol_duration));
    s.set_congestion_control(tcp::CongestionControl::Reno);
    Ok(s)
}

/// Connections' worth of heap beyond the reserve below which idle connections are
/// evicted, so that new clients still find memory while a flood holds the rest.
const HEADROOM_CONNS: usize = 64;
/// An accepted connection younger than this is never evicted: time for a client
/// to send its request after the handshake (an RTT). Longer would let a flood that
/// fills the heap faster than this lock new clients out until its connections age.
const EVICT_MIN_AGE: Duration = Duration::from_millis(250);
/// Idle connections reset per poll at most when under pressure.
const EVICT_BATCH: u64 = 8;

/// Sockets kept in LISTEN state per port. Each received frame takes at most one,
/// and the poller refills after every frame, so two absorb any burst of SYNs;
/// `NetConfig::backlog` bounds the connections waiting for `accept` instead.
pub const LISTEN_SPARE: usize = 2;

/// The accept queue of one listening port.
#[derive(Default)]
pub(crate) struct Listener {
    /// Sockets in LISTEN state.
    listening: Vec<SocketHandle>,
    /// Sockets that took a SYN and wait for the handshake to finish.
    embryonic: Vec<SocketHandle>,
    /// Established connections waiting for `accept`.
    pub(crate) ready: VecDeque<SocketHandle>,
    pub(crate) wakers: Vec<Waker>,
}

/// An accepted connection in the eviction queue.
#[derive(Clone, Copy)]
struct Accepted {
    handle: SocketHandle,
    peer: smoltcp::wire::IpEndpoint,
    /// When it was accepted, or last found busy.
    at: SmolInstant,
}

/// A socket whose owner dropped it, freed by the poller once done.
struct Closing {
    handle: SocketHandle,
    /// `Some(port)`: a UDP socket bound to `port`; `None`: a TCP connection.
    udp_port: Option<u16>,
    /// Set at the first scan: then the socket gets `close_linger` to finish.
    deadline: Option<SmolInstant>,
}

/// Counts describing the stack's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Live TCP connections (handshaking, queued for accept, open, closing).
    pub tcp_connections: usize,
    /// TCP sockets in LISTEN state, all ports together.
    pub tcp_listening: usize,
    /// Dropped sockets the poller still finishes (FIN, lingering data).
    pub closing: usize,
    /// Bound UDP sockets.
    pub udp_sockets: usize,
    /// UDP datagrams dropped because their next hop never answered ARP.
    pub udp_dropped: u64,
    /// TCP connection requests (IPv4 SYNs) to a listening port that found no free
    /// LISTEN socket (connection limit, backlog or memory) and got RST.
    pub tcp_refused: u64,
    /// Sockets the stack can hold at once (slots reserved at start).
    pub socket_slots: usize,
    /// Idle accepted connections reset, oldest first, because memory or the
    /// connection limit ran short (so that new clients are still admitted).
    pub tcp_evicted: u64,
    /// Frames counted by the device adapter (as of the last poll).
    pub frames: AdapterStats,
    /// The device's queue occupancy at the end of the last poll (`None` for devices
    /// without descriptor queues).
    pub queues: Option<QueueOccupancy>,
}

/// How long a UDP socket's send queue may make no progress before its queued
/// datagrams are dropped. smoltcp keeps a datagram at the head of the queue until its
/// next hop answers ARP, retrying forever: one datagram to (or spoofed from) an
/// unreachable address would otherwise block the socket's sending for good. Linux
/// gives up on ARP after ~3 s too.
pub const UDP_STUCK_AFTER: Duration = Duration::from_secs(3);

struct UdpWatch {
    handle: SocketHandle,
    queued: usize,
    since: Option<RtInstant>,
}

/// The shared state; see the module docs.
pub(crate) struct Core {
    pub(crate) iface: Interface,
    pub(crate) sockets: SocketSet<'static>,
    pub(crate) config: NetConfig,
    pub(crate) listeners: BTreeMap<u16, Listener>,
    udp_ports: BTreeSet<u16>,
    /// Live UDP sockets and when their send queue last drained or shrank.
    udp_watch: Vec<UdpWatch>,
    udp_dropped: u64,
    /// See [`NetStats::tcp_refused`].
    tcp_refused: u64,
    /// Whether the last refill found no room (logged once per episode).
    refusing: bool,
    /// Socket slots reserved in `sockets` at start, and how many are in use: the set
    /// never grows past its reservation, so adding a socket never reallocates.
    slots: usize,
    live_sockets: usize,
    /// Heap bytes free when the stack started (after its reservations), for
    /// [`NetConfig::admit`]'s pressure point.
    start_free: usize,
    /// Accepted connections, oldest first, for eviction under memory pressure (see
    /// [`Core::evict_idle`]). Entries are checked lazily against the socket's peer
    /// (a freed slot may hold another connection by now); reserved at start.
    accepted: VecDeque<Accepted>,
    /// The accepted connections whose sockets still exist: `accepted` may hold
    /// handles of freed sockets, and smoltcp panics on a lookup of an empty slot.
    accepted_live: BTreeSet<SocketHandle>,
    /// Idle connections reset to make room (see [`NetStats::tcp_evicted`]).
    evicted: u64,
    closing: Vec<Closing>,
    /// Live TCP connections (every TCP socket not in LISTEN state).
    pub(crate) conns: usize,
    next_port: u16,
    next_ident: u16,
    dhcp: Option<SocketHandle>,
    ipv4: Option<Ipv4Cidr>,
    gateway: Option<Ipv4Addr>,
    dns_servers: Vec<Ipv4Addr>,
    config_waiters: Vec<Waker>,
    /// Resolves the gateway's MAC after configuration (see `neighbor`).
    probe: GatewayProbe,
    frames: AdapterStats,
    queues: Option<QueueOccupancy>,
    /// The device's IP MTU.
    pub(crate) ip_mtu: usize,
}

impl Core {
    /// A zeroed buffer of `n` bytes, or `OutOfMemory` instead of an abort.
    fn buffer(n: usize) -> Result<Vec<u8>, NetError> {
        let mut v = Vec::new();
        v.try_reserve_exact(n)
            .map_err(|_| NetError::OutOfMemory(n))?;
        v.resize(n, 0);
        Ok(v)
    }

    fn new_tcp_socket(&self) -> Result<tcp::Socket<'static>, NetError> {
        if self.live_sockets >= self.slots {
            return Err(NetError::TooManyConnections(self.config.max_connections));
        }
        new_tcp_socket(&self.config, self.pending(), self.start_free)
    }

    /// Connections admitted by a listener and not yet accepted.
    fn pending(&self) -> usize {
        self.listeners
            .values()
            .map(|l| l.embryonic.len() + l.ready.len())
            .sum()
    }

    /// Adds a socket to a reserved slot (callers check `live_sockets < slots`).
    fn add_socket<T: smoltcp::socket::AnySocket<'static>>(&mut self, s: T) -> SocketHandle {
        self.live_sockets += 1;
        self.sockets.add(s)
    }

    pub(crate) fn remove_socket(&mut self, h: SocketHandle) {
        self.live_sockets -= 1;
        self.sockets.remove(h);
    }

    /// Slots a set needs: every connection, the LISTEN sockets of a few ports, UDP
    /// sockets, DHCP and ping.
    fn slots_for(config: &NetConfig) -> usize {
        config.max_connections + 2 * LISTEN_SPARE + 62
    }

    pub(crate) fn new_udp_socket(&self) -> Result<udp::Socket<'static>, NetError> {
        let n = self.config.udp_packets;
        let meta = |n: usize| {
            let mut v = Vec::new();
            v.try_reserve_exact(n)
                .map_err(|_| NetError::OutOfMemory(n * size_of::<udp::PacketMetadata>()))?;
            v.resize(n, udp::PacketMetadata::EMPTY);
            Ok::<_, NetError>(v)
        };
        let rx = udp::PacketBuffer::new(meta(n)?, Self::buffer(self.config.udp_rx_buffer)?);
        let tx = udp::PacketBuffer::new(meta(n)?, Self::buffer(self.config.udp_tx_buffer)?);
        Ok(udp::Socket::new(rx, tx))
    }

    fn tcp_port_in_use(&self, port: u16) -> bool {
        self.listeners.contains_key(&port)
            || self.sockets.iter().any(|(_, s)| match s {
                smoltcp::socket::Socket::Tcp(t) => {
                    t.local_endpoint().is_some_and(|e| e.port == port)
                }
                _ => false,
            })
    }

    pub(crate) fn udp_port_in_use(&self, port: u16) -> bool {
        self.udp_ports.contains(&port)
    }

    /// The next free ephemeral port, starting from a seed-randomized point.
    pub(crate) fn ephemeral_port(&mut self, udp: bool) -> Result<u16, NetError> {
        for _ in 0..EPHEMERAL_COUNT {
            let port = self.next_port;
            self.next_port = if port == u16::MAX {
                EPHEMERAL_FIRST
            } else {
                port + 1
            };
            let used = if udp {
                self.udp_port_in_use(port)
            } else {
                self.tcp_port_in_use(port)
            };
            if !used {
                return Ok(port);
            }
        }
        Err(NetError::NoFreePort)
    }

    pub(crate) fn bind_udp(&mut self, port: u16) -> Result<SocketHandle, NetError> {
        let port = if port == 0 {
            self.ephemeral_port(true)?
        } else {
            port
        };
        if self.udp_port_in_use(port) {
            return Err(NetError::AddressInUse(port));
        }
        if self.live_sockets >= self.slots {
            return Err(NetError::OutOfMemory(0));
        }
        let mut s = self.new_udp_socket()?;
        s.bind(port).map_err(|_| NetError::InvalidState)?;
        self.udp_ports.insert(port);
        let handle = self.add_socket(s);
        self.udp_watch.push(UdpWatch {
            handle,
            queued: 0,
            since: None,
        });
        Ok(handle)
    }

    pub(crate) fn listen(&mut self, port: u16) -> Result<u16, NetError> {
        let port = if port == 0 {
            self.ephemeral_port(false)?
        } else {
            port
        };
        if self.tcp_port_in_use(port) {
            return Err(NetError::AddressInUse(port));
        }
        // The accept queues never grow past the backlog: reserve them now.
        let mut l = Listener::default();
        let n = self.config.backlog.min(self.slots);
        l.embryonic
            .try_reserve_exact(n)
            .and_then(|()| l.ready.try_reserve_exact(n))
            .map_err(|_| NetError::OutOfMemory(2 * n * size_of::<SocketHandle>()))?;
        self.listeners.insert(port, l);
        self.rebalance();
        Ok(port)
    }

    /// Starts an active open; the socket counts as a connection from now on.
    pub(crate) fn connect(
        &mut self,
        remote: SocketAddr,
    ) -> Result<(SocketHandle, SocketAddr), NetError> {
        if remote.ip().is_unspecified() || remote.port() == 0 {
            return Err(NetError::Unaddressable(remote));
        }
        if remote.is_ipv4() && self.ipv4.is_none() {
            return Err(NetError::NotConfigured);
        }
        if self.conns >= self.config.max_connections {
            return Err(NetError::TooManyConnections(self.config.max_connections));
        }
        let port = self.ephemeral_port(false)?;
        let mut s = self.new_tcp_socket()?;
        s.set_timeout(Some(smol_duration(self.config.connect_timeout)));
        s.connect(self.iface.context(), remote, port)
            .map_err(|_| NetError::Unaddressable(remote))?;
        let local = s
            .local_endpoint()
            .map(SocketAddr::from)
            .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
        let h = self.add_socket(s);
        self.conns += 1;
        self.rebalance();
        Ok((h, local))
    }

    pub(crate) fn ipv4_configured(&self) -> Option<Ipv4Cidr> {
        self.ipv4
    }

    pub(crate) fn tcp(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }

    /// Notes an accepted connection as a candidate for eviction.
    pub(crate) fn track_accepted(&mut self, handle: SocketHandle, peer: smoltcp::wire::IpEndpoint) {
        if self.accepted.len() == self.accepted.capacity() {
            // Full of entries for connections long gone: keep only the live ones.
            let live = &self.accepted_live;
            self.accepted.retain(|a| live.contains(&a.handle));
        }
        if self.accepted.len() < self.accepted.capacity() {
            let at = to_smol(oasis_runtime::now());
            self.accepted.push_back(Accepted { handle, peer, at });
            self.accepted_live.insert(handle);
        }
    }

    /// The state of `h` if it still holds the accepted connection with `peer`.
    fn still_accepted(
        &mut self,
        h: SocketHandle,
        peer: smoltcp::wire::IpEndpoint,
    ) -> Option<tcp::State> {
        if !self.accepted_live.contains(&h) {
            return None;
        }
        let s = self.sockets.get::<tcp::Socket>(h);
        (s.remote_endpoint() == Some(peer)).then(|| s.state())
    }

    /// Whether the heap is close enough to its reserve that idle connections should
    /// make room for new ones: less than room for [`HEADROOM_CONNS`] floor-sized
    /// connections beyond it. (An explicit connection limit is a hard limit: beyond
    /// it SYNs get RST, nobody is evicted.)
    fn under_pressure(&self) -> bool {
        let headroom = HEADROOM_CONNS * self.config.min_connection_cost();
        oasis_runtime::heap_usage()
            .is_some_and(|u| u.free() < self.config.heap_reserve.saturating_add(headroom))
    }

    /// Under pressure, resets up to [`EVICT_BATCH`] of the oldest accepted
    /// connections that are idle (established, nothing queued either way), so that a
    /// flood of idle connections cannot lock new clients out: the flood's oldest
    /// sockets make room, like an overload manager shortening idle timeouts. Busy
    /// connections go to the back of the queue. Looks at most `4 * EVICT_BATCH`
    /// entries per poll.
    fn evict_idle(&mut self, now: SmolInstant) {
        if self.accepted.is_empty() || !self.under_pressure() {
            return;
        }
        let young = now - smol_duration(EVICT_MIN_AGE);
        let mut evicted = 0;
        for _ in 0..4 * EVICT_BATCH {
            let Some(a) = self.accepted.pop_front() else {
                break;
            };
            if a.at > young {
                // Every later entry is younger still: a fresh connection gets the
                // time to send its request.
                self.accepted.push_front(a);
                break;
            }
            match self.still_accepted(a.handle, a.peer) {
                Some(tcp::State::Established) => {
                    let s = self.sockets.get_mut::<tcp::Socket>(a.handle);
                    if s.recv_queue() == 0 && s.send_queue() == 0 {
                        s.abort(); // wakes its reader: the application drops it
                        evicted += 1;
                        if evicted == EVICT_BATCH {
                            break;
                        }
                    } else {
                        self.accepted.push_back(Accepted { at: now, ..a });
                    }
                }
                // Closing: soon gone.
                Some(_) => self.accepted.push_back(Accepted { at: now, ..a }),
                None => {}
            }
        }
        if evicted > 0 {
            if self.evicted == 0 || (self.evicted + evicted).ilog2() > self.evicted.ilog2() {
                log::warn!(
                    "net: memory nearly exhausted: reset {} idle connection(s) so far, oldest first",
                    self.evicted + evicted
                );
            }
            self.evicted += evicted;
        }
    }

    /// Hands a dropped TCP connection to the poller to finish and free.
    pub(crate) fn retire_tcp(&mut self, h: SocketHandle) {
        self.closing.push(Closing {
            handle: h,
            udp_port: None,
            deadline: None,
        });
    }

    /// Drops the send queue of every UDP socket whose queue made no progress for
    /// [`UDP_STUCK_AFTER`] (see there), waking its senders.
    fn unstick_udp(&mut self, now: RtInstant) {
        for w in &mut self.udp_watch {
            let s = self.sockets.get_mut::<udp::Socket>(w.handle);
            let q = s.send_queue();
            if q == 0 || q < w.queued || w.since.is_none() {
                w.queued = q;
                w.since = Some(now);
                continue;
            }
            w.queued = q;
            let stuck = w
                .since
                .is_some_and(|t| now.saturating_duration_since(t) >= UDP_STUCK_AFTER);
            if stuck {
                let endpoint = s.endpoint();
                s.close(); // empties both queues and wakes waiters
                if s.bind(endpoint).is_err() {
                    log::error!("net: cannot rebind UDP port {}", endpoint.port);
                }
                log::warn!(
                    "net: dropped {q} UDP datagram(s) queued on port {} whose next hop never answered ARP",
                    endpoint.port
                );
                self.udp_dropped += q as u64;
                w.queued = 0;
                w.since = Some(now);
            }
        }
    }

    /// Hands a dropped UDP socket to the poller (its queued datagrams still go out).
    pub(crate) fn retire_udp(&mut self, h: SocketHandle, port: u16) {
        self.udp_watch.retain(|w| w.handle != h);
        self.closing.push(Closing {
            handle: h,
            udp_port: Some(port),
            deadline: None,
        });
    }

    /// Closes a listener: its LISTEN and half-open sockets go at once, connections
    /// never accepted are reset.
    pub(crate) fn unlisten(&mut self, port: u16) {
        let Some(l) = self.listeners.remove(&port) else {
            return;
        };
        for h in l.listening {
            self.remove_socket(h);
        }
        for h in l.embryonic {
            self.remove_socket(h);
            self.conns -= 1;
        }
        for h in l.ready {
            self.tcp(h).abort();
            self.retire_tcp(h);
        }
        self.rebalance();
    }

    /// Keeps [`LISTEN_SPARE`] LISTEN sockets per port while the port's accept queue
    /// (half-open plus waiting for `accept`) is below `backlog` and the connection
    /// limit allows; fewer, down to none, otherwise: SYNs then get RST.
    pub(crate) fn rebalance(&mut self) {
        let Core {
            listeners,
            sockets,
            config,
            conns,
            live_sockets,
            slots,
            refusing,
            start_free,
            ..
        } = self;
        let mut pending: usize = listeners
            .values()
            .map(|l| l.embryonic.len() + l.ready.len())
            .sum();
        let mut total: usize = listeners.values().map(|l| l.listening.len()).sum();
        // LISTEN sockets become connections: keep no more than the connection limit
        // and the free socket slots allow.
        let budget = config
            .max_connections
            .saturating_sub(*conns)
            .min(total + slots.saturating_sub(*live_sockets));
        let target = |l: &Listener| {
            LISTEN_SPARE.min(
                config
                    .backlog
                    .saturating_sub(l.embryonic.len() + l.ready.len()),
            )
        };
        // Too many: the accept queue filled up, or connections used up the limit.
        for l in listeners.values_mut() {
            let keep = target(l).min(
                l.listening
                    .len()
                    .saturating_sub(total.saturating_sub(budget)),
            );
            while l.listening.len() > keep {
                if let Some(h) = l.listening.pop() {
                    sockets.remove(h);
                    *live_sockets -= 1;
                    total -= 1;
                }
            }
        }
        for (&port, l) in listeners.iter_mut() {
            while l.listening.len() < target(l) && total < budget {
                let mut s = match new_tcp_socket(config, pending, *start_free) {
                    Ok(s) => s,
                    Err(e) => {
                        if !core::mem::replace(refusing, true) {
                            log::warn!(
                                "net: refusing new connections to port {port} ({} live): {e}",
                                *conns
                            );
                        }
                        return;
                    }
                };
                if s.listen(port).is_err() {
                    return;
                }
                // Cleared by `accept`: until then the peer must not stay silent longer.
                s.set_timeout(Some(smol_duration(config.handshake_timeout)));
                l.listening.push(sockets.add(s));
                *live_sockets += 1;
                total += 1;
                pending += 1; // it will take a connection
            }
        }
        if core::mem::replace(refusing, false) {
            log::info!("net: accepting new connections again ({} live)", *conns);
        }
    }

    /// After each received frame: moves LISTEN sockets that took a SYN to the
    /// half-open list and refills. Cost: a look at `LISTEN_SPARE` sockets per port.
    fn refill_after_frame(&mut self) {
        let mut taken = false;
        let Core {
            listeners,
            sockets,
            conns,
            live_sockets,
            ..
        } = self;
        for l in listeners.values_mut() {
            let Listener {
                listening,
                embryonic,
                ready,
                ..
            } = l;
            listening.retain(|&h| {
                let s = sockets.get::<tcp::Socket>(h);
                if s.state() == tcp::State::Listen {
                    return true;
                }
                taken = true;
                // smoltcp hands a segment to the first socket in slot order that
                // takes it, and a LISTEN socket takes any SYN: a retransmitted SYN
                // can open a second half-open socket for a connection that already
                // has one (with another sequence number; the peer's ACK may then
                // meet the wrong one and get RST). Drop the copy before it sends.
                let tuple = (s.local_endpoint(), s.remote_endpoint());
                let dup = embryonic.iter().chain(ready.iter()).any(|&o| {
                    let o = sockets.get::<tcp::Socket>(o);
                    (o.local_endpoint(), o.remote_endpoint()) == tuple
                });
                if dup {
                    sockets.remove(h);
                    *live_sockets -= 1;
                } else {
                    // Its final state is sorted out by `scan`.
                    *conns += 1;
                    embryonic.push(h);
                }
                false
            });
        }
        if taken {
            self.rebalance();
        }
    }

    /// Moves sockets along their listener's queues; frees finished closes.
    fn scan(&mut self, now: SmolInstant) -> bool {
        let Core {
            listeners,
            sockets,
            conns,
            closing,
            udp_ports,
            config,
            live_sockets,
            accepted_live,
            ..
        } = self;
        let before = (*conns, closing.len());
        for l in listeners.values_mut() {
            let Listener {
                listening,
                embryonic,
                ready,
                wakers,
            } = l;
            let mut woke = false;
            listening.retain(|&h| {
                if sockets.get::<tcp::Socket>(h).state() == tcp::State::Listen {
                    true
                } else {
                    *conns += 1;
                    embryonic.push(h);
                    false
                }
            });
            // Reset or timed out while waiting for `accept` (its handshake timeout
            // runs until then): free it now, not when the application gets to it.
            ready.retain(|&h| match sockets.get::<tcp::Socket>(h).state() {
                tcp::State::Closed | tcp::State::TimeWait => {
                    *conns -= 1;
                    sockets.remove(h);
                    *live_sockets -= 1;
                    false
                }
                _ => true,
            });
            embryonic.retain(|&h| match sockets.get::<tcp::Socket>(h).state() {
                tcp::State::SynReceived | tcp::State::SynSent => true,
                tcp::State::Listen => {
                    // A RST during the handshake: the socket listens again.
                    *conns -= 1;
                    listening.push(h);
                    false
                }
                tcp::State::Closed | tcp::State::TimeWait => {
                    *conns -= 1;
                    sockets.remove(h);
                    *live_sockets -= 1;
                    false
                }
                _ => {
                    ready.push_back(h);
                    woke = true;
                    false
                }
            });
            if woke {
                wakers.drain(..).for_each(Waker::wake);
            }
        }
        let linger = smol_duration(config.close_linger);
        closing.retain_mut(|c| {
            let deadline = *c.deadline.get_or_insert(now + linger);
            if let Some(port) = c.udp_port {
                let s = sockets.get::<udp::Socket>(c.handle);
                if s.send_queue() == 0 || now >= deadline {
                    sockets.remove(c.handle);
                    *live_sockets -= 1;
                    udp_ports.remove(&port);
                    return false;
                }
                return true;
            }
            let s = sockets.get_mut::<tcp::Socket>(c.handle);
            match s.state() {
                tcp::State::Closed | tcp::State::TimeWait => {
                    sockets.remove(c.handle);
                    accepted_live.remove(&c.handle);
                    *live_sockets -= 1;
                    *conns -= 1;
                    false
                }
                _ => {
                    if now >= deadline {
                        // Out of patience: reset; the RST goes out in the next poll.
                        s.abort();
                    }
                    true
                }
            }
        });
        (*conns, closing.len()) != before
    }

    fn poll_dhcp(&mut self) {
        let Some(h) = self.dhcp else { return };
        let event = match self.sockets.get_mut::<dhcpv4::Socket>(h).poll() {
            None => return,
            Some(dhcpv4::Event::Configured(c)) => Some((
                Ipv4Cidr {
                    addr: c.address.address(),
                    prefix: c.address.prefix_len(),
                },
                c.router,
                c.dns_servers.iter().copied().collect::<Vec<_>>(),
            )),
            Some(dhcpv4::Event::Deconfigured) => None,
        };
        match event {
            Some((cidr, router, dns)) => {
                log::info!("net: DHCP lease {cidr}, gateway {router:?}, DNS {dns:?}");
                self.dns_servers = dns;
                self.set_ipv4(Some(cidr), router);
            }
            None => {
                // smoltcp also reports "deconfigured" when its client starts; only a
                // lease we had is worth a warning.
                if self.ipv4.is_some() {
                    log::warn!("net: DHCP lease lost");
                }
                self.dns_servers.clear();
                self.set_ipv4(None, None);
            }
        }
    }

    fn set_ipv4(&mut self, cidr: Option<Ipv4Cidr>, gateway: Option<Ipv4Addr>) {
        self.iface.update_ip_addrs(|addrs| {
            addrs.retain(|a| !matches!(a, IpCidr::Ipv4(_)));
            if let Some(c) = cidr
                && addrs
                    .push(IpCidr::new(IpAddress::Ipv4(c.addr), c.prefix))
                    .is_err()
            {
                log::error!("net: no room for address {c}");
            }
        });
        self.iface.routes_mut().remove_default_ipv4_route();
        if let Some(gw) = gateway
            && self.iface.routes_mut().add_default_ipv4_route(gw).is_err()
        {
            log::error!("net: no room for the default route via {gw}");
        }
        self.ipv4 = cidr;
        self.gateway = gateway;
        // Learn the gateway's MAC before readiness is reported (see `neighbor`).
        if let Some(h) = self.probe.stop() {
            self.remove_socket(h);
        }
        if let (Some(_), Some(gw)) = (cidr, gateway)
            && self.live_sockets < self.slots
            && let Ok(s) = GatewayProbe::socket(gw)
        {
            let h = self.add_socket(s);
            self.probe.start(h, gw);
        }
        if cidr.is_some() {
            self.config_waiters.drain(..).for_each(Waker::wake);
        }
    }

    fn stats(&self) -> NetStats {
        NetStats {
            tcp_connections: self.conns,
            tcp_listening: self.listeners.values().map(|l| l.listening.len()).sum(),
            closing: self.closing.len(),
            udp_sockets: self.udp_ports.len(),
            udp_dropped: self.udp_dropped,
            tcp_refused: self.tcp_refused,
            socket_slots: self.slots,
            tcp_evicted: self.evicted,
            frames: self.frames,
            queues: self.queues,
        }
    }
}

/// The application's handle on the network stack: cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct NetHandle {
    pub(crate) core: Arc<Mutex<Core>>,
}

impl core::fmt::Debug for NetHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let core = self.core.lock();
        f.debug_struct("NetHandle")
            .field("ipv4", &core.ipv4)
            .field("stats", &core.stats())
            .finish()
    }
}

impl NetHandle {
    /// Listens on TCP `port` (0: an ephemeral port) on every local address.
    /// Works before an address is configured.
    pub fn tcp_listen(&self, port: u16) -> Result<TcpListener, NetError> {
        let port = self.core.lock().listen(port)?;
        Ok(TcpListener::new(self.clone(), port))
    }

    /// Connects to `addr` from an ephemeral port; fails with `ConnectionRefused`
    /// when the peer answers RST, `TimedOut` after `NetConfig::connect_timeout`.
    pub async fn tcp_connect(&self, addr: SocketAddr) -> Result<TcpStream, NetError> {
        let started = oasis_runtime::now();
        let (h, local) = self.core.lock().connect(addr)?;
        // From here the stream owns the socket: dropping it (an error below, or the
        // future cancelled) retires the socket.
        let mut stream = TcpStream::new(self.clone(), h, local, addr);
        let connect_timeout = self.core.lock().config.connect_timeout;
        poll_fn(|cx| {
            let mut core = self.core.lock();
            let s = core.tcp(h);
            match s.state() {
                tcp::State::SynSent | tcp::State::SynReceived => {
                    s.register_send_waker(cx.waker());
                    Poll::Pending
                }
                tcp::State::Closed | tcp::State::TimeWait => {
                    if oasis_runtime::now().saturating_duration_since(started) >= connect_timeout {
                        Poll::Ready(Err(NetError::TimedOut))
                    } else {
                        Poll::Ready(Err(NetError::ConnectionRefused))
                    }
                }
                _ => {
                    s.set_timeout(None);
                    if let Some(l) = s.local_endpoint() {
                        stream.set_local(l.into());
                    }
                    Poll::Ready(Ok(()))
                }
            }
        })
        .await?;
        Ok(stream)
    }

    /// Binds UDP `port` (0: an ephemeral port) on every local address.
    pub fn udp_bind(&self, port: u16) -> Result<UdpSocket, NetError> {
        let mut core = self.core.lock();
        let h = core.bind_udp(port)?;
        let port = core.sockets.get::<udp::Socket>(h).endpoint().port;
        Ok(UdpSocket::new(self.clone(), h, port))
    }

    /// Waits until the stack has an IPv4 address and returns it. With a gateway it
    /// also waits (up to 1 s) for the
    /// gateway's MAC, so the first replies to a burst of connections through the
    /// gateway need no ARP round trip (see `neighbor`).
    pub async fn wait_configured(&self) -> Ipv4Addr {
        poll_fn(|cx| {
            let mut core = self.core.lock();
            let now = oasis_runtime::now();
            match core.ipv4 {
                Some(c) if core.probe.settled(now) => Poll::Ready(c.addr),
                _ => {
                    if !core.config_waiters.iter().any(|w| w.will_wake(cx.waker())) {
                        core.config_waiters.push(cx.waker().clone());
                    }
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// The current IPv4 address and prefix, if configured.
    pub fn ipv4(&self) -> Option<Ipv4Cidr> {
        self.core.lock().ipv4
    }

    /// The current default gateway, if any.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.core.lock().gateway
    }

    /// DNS servers learned from DHCP.
    pub fn dns_servers(&self) -> Vec<Ipv4Addr> {
        self.core.lock().dns_servers.clone()
    }

    /// The interface's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        match self.core.lock().iface.hardware_addr() {
            HardwareAddress::Ethernet(EthernetAddress(mac)) => mac,
            #[allow(unreachable_patterns)]
            _ => [0; 6],
        }
    }

    /// Counts describing the stack's state.
    pub fn stats(&self) -> NetStats {
        self.core.lock().stats()
    }

    /// Sends one ICMP echo request with `payload_len` bytes of payload to `addr` and
    /// waits for the reply; returns the round-trip time. `TimedOut` after `wait`.
    pub async fn ping(
        &self,
        addr: Ipv4Addr,
        payload_len: usize,
        wait: Duration,
    ) -> Result<Duration, NetError> {
        let (h, ident) = {
            let mut core = self.core.lock();
            if core.ipv4.is_none() {
                return Err(NetError::NotConfigured);
            }
            let meta = || vec![icmp::PacketMetadata::EMPTY; 4];
            let size = (payload_len + 64).max(256);
            let rx = icmp::PacketBuffer::new(meta(), Core::buffer(size)?);
            let tx = icmp::PacketBuffer::new(meta(), Core::buffer(size)?);
            let mut s = icmp::Socket::new(rx, tx);
            let ident = core.next_ident;
            core.next_ident = core.next_ident.wrapping_add(1);
            s.bind(icmp::Endpoint::Ident(ident))
                .map_err(|_| NetError::InvalidState)?;
            if core.live_sockets >= core.slots {
                return Err(NetError::OutOfMemory(0));
            }
            (core.add_socket(s), ident)
        };
        // Frees the socket however this future ends.
        struct Guard<'a>(&'a NetHandle, SocketHandle);
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                self.0.core.lock().remove_socket(self.1);
            }
        }
        let _guard = Guard(self, h);
        let dest = SocketAddr::new(IpAddr::V4(addr), 0);
        let data = vec![0xA5u8; payload_len];
        let request = Icmpv4Repr::EchoRequest {
            ident,
            seq_no: 1,
            data: &data,
        };
        {
            let mut core = self.core.lock();
            let s = core.sockets.get_mut::<icmp::Socket>(h);
            let buf = s
                .send(request.buffer_len(), IpAddress::Ipv4(addr))
                .map_err(|_| NetError::Unaddressable(dest))?;
            request.emit(&mut Icmpv4Packet::new_unchecked(buf), &Default::default());
        }
        let start = oasis_runtime::now();
        let reply = poll_fn(|cx| {
            let mut core = self.core.lock();
            let s = core.sockets.get_mut::<icmp::Socket>(h);
            while let Ok((bytes, from)) = s.recv() {
                let Ok(packet) = Icmpv4Packet::new_checked(bytes) else {
                    continue;
                };
                let Ok(repr) = Icmpv4Repr::parse(&packet, &Default::default()) else {
                    continue;
                };
                if let Icmpv4Repr::EchoReply {
                    ident: i,
                    seq_no: 1,
                    ..
                } = repr
                    && i == ident
                    && from == IpAddress::Ipv4(addr)
                {
                    return Poll::Ready(());
                }
            }
            s.register_recv_waker(cx.waker());
            Poll::Pending
        });
        oasis_runtime::timeout(wait, reply)
            .await
            .map_err(|_| NetError::TimedOut)?;
        Ok(oasis_runtime::now().saturating_duration_since(start))
    }
}

/// The network stack over device `D`: the executor drives it as a [`Poller`].
pub struct Stack<D> {
    adapter: Adapter<D>,
    net: NetHandle,
}

impl<D: NetDevice> core::fmt::Debug for Stack<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Stack").field("net", &self.net).finish()
    }
}

impl<D: NetDevice + Send + 'static> Stack<D> {
    /// Builds the stack over `device` and registers it with the running executor;
    /// returns the handle applications use. `seed` randomizes TCP sequence numbers
    /// and ephemeral ports (take it from the platform's entropy); `now` is the
    /// current time.
    pub fn install(
        device: D,
        config: NetConfig,
        seed: u64,
        now: RtInstant,
    ) -> Result<NetHandle, NetError> {
        let stack = Self::new(device, config, seed, now)?;
        let handle = stack.handle();
        oasis_runtime::register_poller(Box::new(stack));
        Ok(handle)
    }
}

impl<D: NetDevice> Stack<D> {
    /// Builds the stack without registering it (drive it with [`Poller::poll`]).
    pub fn new(device: D, config: NetConfig, seed: u64, now: RtInstant) -> Result<Self, NetError> {
        config.validate()?;
        let info = device.info();
        let mac = info.mac;
        let mut adapter = Adapter::new(device, config.max_burst);
        adapter.set_tcp_stats(config.tcp_stats);
        let mut iface_config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        iface_config.random_seed = seed;
        let mut iface = Interface::new(iface_config, &mut adapter, to_smol(now));
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv6(link_local(mac)), 64));
        });
        // Every socket slot is reserved now, fallibly: the set never reallocates later
        // (a reallocation under load would need twice the memory at once).
        let slots = Core::slots_for(&config);
        let mut storage = Vec::new();
        storage.try_reserve_exact(slots).map_err(|_| {
            NetError::OutOfMemory(slots * size_of::<smoltcp::iface::SocketStorage>())
        })?;
        let mut sockets = SocketSet::new(storage);
        let mut closing = Vec::new();
        closing
            .try_reserve_exact(slots)
            .map_err(|_| NetError::OutOfMemory(slots * size_of::<Closing>()))?;
        let mut accepted = VecDeque::new();
        accepted
            .try_reserve_exact(slots)
            .map_err(|_| NetError::OutOfMemory(slots * size_of::<Accepted>()))?;
        let dhcp =
            (config.ipv4.is_none() && config.dhcp).then(|| sockets.add(dhcpv4::Socket::new()));
        let seed16 = (seed ^ (seed >> 16) ^ (seed >> 32) ^ (seed >> 48)) as u16;
        let mut core = Core {
            iface,
            sockets,
            listeners: BTreeMap::new(),
            udp_ports: BTreeSet::new(),
            udp_watch: Vec::new(),
            udp_dropped: 0,
            tcp_refused: 0,
            refusing: false,
            slots,
            live_sockets: usize::from(dhcp.is_some()),
            start_free: oasis_runtime::heap_usage().map_or(0, |u| u.free()),
            accepted,
            accepted_live: BTreeSet::new(),
            evicted: 0,
            closing,
            conns: 0,
            next_port: EPHEMERAL_FIRST + seed16 % EPHEMERAL_COUNT,
            next_ident: seed16,
            dhcp,
            ipv4: None,
            gateway: None,
            dns_servers: Vec::new(),
            config_waiters: Vec::new(),
            probe: GatewayProbe::default(),
            frames: AdapterStats::default(),
            queues: None,
            ip_mtu: info.mtu,
            config,
        };
        if let Some(cidr) = core.config.ipv4 {
            let gateway = core.config.gateway;
            core.set_ipv4(Some(cidr), gateway);
        }
        Ok(Self {
            adapter,
            net: NetHandle {
                core: Arc::new(Mutex::new(core)),
            },
        })
    }

    /// A handle for applications.
    pub fn handle(&self) -> NetHandle {
        self.net.clone()
    }

    /// The device (tests inspect counters through it).
    pub fn device(&self) -> &D {
        self.adapter.device()
    }

    /// The device, mutably.
    pub fn device_mut(&mut self) -> &mut D {
        self.adapter.device_mut()
    }
}

impl<D: NetDevice + Send> Poller for Stack<D> {
    fn poll(&mut self, now: RtInstant) -> Option<RtInstant> {
        let ts = to_smol(now);
        let mut guard = self.net.core.lock();
        let core = &mut *guard;
        self.adapter.begin();
        core.iface.poll_maintenance(ts);
        let mut budget = INGRESS_BUDGET;
        while budget > 0 {
            match core
                .iface
                .poll_ingress_single(ts, &mut self.adapter, &mut core.sockets)
            {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => budget -= 1,
                PollIngressSingleResult::SocketStateChanged => {
                    budget -= 1;
                    if !core.listeners.is_empty() {
                        // Before the refill: a SYN to a port with no LISTEN socket was
                        // answered RST by smoltcp (limits or memory).
                        if let Some(port) = self.adapter.last_syn()
                            && core
                                .listeners
                                .get(&port)
                                .is_some_and(|l| l.listening.is_empty())
                        {
                            core.tcp_refused += 1;
                        }
                        core.refill_after_frame();
                    }
                }
            }
        }
        while let PollResult::SocketStateChanged =
            core.iface
                .poll_egress(ts, &mut self.adapter, &mut core.sockets)
        {}
        core.poll_dhcp();
        // Gateway pre-resolution (see `neighbor`): free the probe once it is done,
        // report readiness once it is settled.
        if let Some(h) = core.probe.poll(&core.sockets, now) {
            core.remove_socket(h);
        }
        if core.ipv4.is_some() && core.probe.settled(now) {
            core.config_waiters.drain(..).for_each(Waker::wake);
        }
        core.unstick_udp(now);
        // After egress, so an aborted socket's RST has gone out before it is freed.
        core.scan(ts);
        core.evict_idle(ts);
        core.rebalance();
        core.frames = self.adapter.stats();
        let rx_waiting = self.adapter.finish();
        core.queues = self.adapter.device().occupancy();
        if rx_waiting || budget == 0 {
            return Some(now);
        }
        let at = core.iface.poll_at(ts, &core.sockets).map(from_smol);
        let at = match (at, core.probe.poll_at(now)) {
            (Some(a), Some(p)) => a.min(p),
            (a, p) => a.or(p)?,
        };
        if at <= now && !self.adapter.can_transmit() {
            // smoltcp wants to send but every buffer is in flight: the device's
            // completion interrupt (or this retry) brings us back.
            return Some(now + TX_RETRY);
        }
        Some(at)
    }
}

/// The IPv6 link-local address from a MAC (modified EUI-64, RFC 4291 §2.5.1).
fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    let [a, b, c, d, e, f] = mac;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        a ^ 0x02,
        b,
        c,
        0xff,
        0xfe,
        d,
        e,
        f,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_conversions_round_trip_in_microseconds() {
        let t = RtInstant::from_nanos(1_234_567_000);
        assert_eq!(to_smol(t).total_micros(), 1_234_567);
        assert_eq!(from_smol(to_smol(t)), t);
        assert_eq!(
            from_smol(SmolInstant::from_micros(-5)),
            RtInstant::from_nanos(0)
        );
        assert_eq!(smol_duration(Duration::from_millis(3)).total_micros(), 3000);
    }

    #[test]
    fn link_local_follows_eui64() {
        let a = link_local([0x02, 0, 0, 0, 0, 0x01]);
        assert_eq!(a, "fe80::ff:fe00:1".parse::<Ipv6Addr>().unwrap());
    }
}
