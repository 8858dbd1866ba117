//! `NetConfig`: addresses, buffer sizes and limits, with the boot-argument value types.
//!
//! The facade maps `--ipv4=10.0.0.2/24` to [`Ipv4Cidr`] and `--ipv4-gateway=10.0.0.1`
//! to [`Ipv4Gateway`] through their [`FromStr`] impls; without `--ipv4` the stack asks
//! DHCP (when [`NetConfig::dhcp`] is set).

use alloc::string::{String, ToString};
use core::fmt;
use core::net::Ipv4Addr;
use core::str::FromStr;
use core::time::Duration;

/// Default TCP receive buffer per connection (also the largest receive window).
pub const DEFAULT_TCP_RX_BUFFER: usize = 64 * 1024;
/// Default TCP send buffer per connection.
pub const DEFAULT_TCP_TX_BUFFER: usize = 64 * 1024;
/// Default limit of live TCP connections (in both directions, listeners excluded)
/// where the heap is not measured; where it is, [`Budget`] derives the limit.
pub const DEFAULT_MAX_CONNECTIONS: usize = 2048;
/// Default limit of connections per listening port that are half-open or wait for
/// `accept` (never more than the connection limit); SYNs beyond it get RST. A burst
/// of SYNs all arrives in one poll of the stack, before the application's accept
/// loop runs, so this must cover the largest expected burst (Linux: 4096).
pub const DEFAULT_BACKLOG: usize = 1024;
/// Default UDP receive buffer per socket (payload bytes).
pub const DEFAULT_UDP_RX_BUFFER: usize = 64 * 1024;
/// Default UDP send buffer per socket (payload bytes).
pub const DEFAULT_UDP_TX_BUFFER: usize = 64 * 1024;
/// Default number of datagrams each UDP buffer can queue.
pub const DEFAULT_UDP_PACKETS: usize = 64;
/// Default time a `tcp_connect` waits for the handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default delayed-ACK time: an ACK for received data waits up to this long for a
/// reply to ride on, so a request/response exchange costs one frame out, not two (a
/// pure ACK, then the reply). smoltcp still ACKs at once every full segment of new
/// data (bulk transfers are not slowed), out-of-order data and a FIN. Linux's is
/// 40 ms at least; smoltcp's own default 10 ms; 1 ms costs a client that waits for
/// our ACK (Nagle) at most that.
pub const DEFAULT_ACK_DELAY: Duration = Duration::from_millis(1);
/// Default time a dropped stream may take to deliver its data and FIN before it is reset.
pub const DEFAULT_CLOSE_LINGER: Duration = Duration::from_secs(10);
/// Default cap on the receive window, in segments (smoltcp's `max_burst_size`):
/// a 64-frame burst fits the receive rings of virtio-net and of `MemNet`.
pub const DEFAULT_MAX_BURST: usize = 64;
/// Smallest TCP or UDP buffer accepted (one full-size segment).
pub const MIN_SOCKET_BUFFER: usize = 1536;
/// Default smallest TCP buffer (each way) a connection gets when the heap is under
/// pressure: 1 KiB, below one full-size segment (the peer then sends smaller
/// segments; slow, but it works), so that an idle connection costs ~5 KiB in all and
/// 10,000 of them fit in 64 MiB.
pub const DEFAULT_TCP_BUFFER_MIN: usize = 1024;
/// Smallest `tcp_buffer_min` accepted.
pub const MIN_TCP_BUFFER_FLOOR: usize = 512;
/// Default heap bytes, beyond its buffers, that admission assumes each connection
/// costs the application (its task and per-connection state). The socket itself lives
/// in a slot reserved at start.
/// Measured: an idle `www` connection's task and HTTP state take ~2.5 KiB.
pub const DEFAULT_CONN_OVERHEAD: usize = 3 * 1024;
/// Default time a connection may take to complete its handshake after its SYN
/// (half-open sockets from a SYN flood are freed after it).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a configuration or a boot-argument value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `--ipv4` lacks the `/PREFIX` part.
    #[error("`{0}` is not an IPv4 CIDR: expected ADDRESS/PREFIX such as 10.0.0.2/24")]
    MissingPrefix(String),
    /// The address part does not parse.
    #[error("`{0}` is not an IPv4 address: expected four decimal octets such as 10.0.0.1")]
    InvalidAddress(String),
    /// The prefix part does not parse or exceeds 32.
    #[error("prefix length `{0}` is not a number in 0..=32")]
    InvalidPrefix(String),
    /// The address cannot be a host's own (unspecified, broadcast, multicast, or the
    /// network/broadcast address of its subnet).
    #[error("{0} cannot be used as this host's IPv4 address")]
    UnusableAddress(Ipv4Cidr),
    /// The gateway is not on the configured subnet, so it cannot be reached.
    #[error("gateway {gateway} is outside the subnet of {cidr}")]
    GatewayOffLink {
        /// The configured gateway.
        gateway: Ipv4Addr,
        /// The configured address.
        cidr: Ipv4Cidr,
    },
    /// A size or limit is out of range.
    #[error("{field} = {value} is out of range (at least {min})")]
    TooSmall {
        /// The `NetConfig` field.
        field: &'static str,
        /// Its value.
        value: usize,
        /// The least accepted value.
        min: usize,
    },
}

/// An IPv4 address with its prefix length (`10.0.0.2/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    /// The host's address.
    pub addr: Ipv4Addr,
    /// The network prefix length, 0..=32.
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// `addr/prefix`; `None` when `prefix > 32`.
    pub const fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        if prefix > 32 {
            None
        } else {
            Some(Self { addr, prefix })
        }
    }

    /// The subnet mask (`255.255.255.0` for /24).
    pub fn netmask(&self) -> Ipv4Addr {
        let bits = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        Ipv4Addr::from(bits)
    }

    /// Whether `other` lies in this subnet.
    pub fn contains(&self, other: Ipv4Addr) -> bool {
        let mask = u32::from(self.netmask());
        u32::from(self.addr) & mask == u32::from(other) & mask
    }

    /// Whether the address can be a host's own address on its subnet.
    pub fn is_usable_host(&self) -> bool {
        let a = self.addr;
        if a.is_unspecified() || a.is_broadcast() || a.is_multicast() || self.prefix == 0 {
            return false;
        }
        if self.prefix >= 31 {
            return true; // RFC 3021 point-to-point and host routes have no network/broadcast
        }
        let host = u32::from(a) & !u32::from(self.netmask());
        host != 0 && host != !u32::from(self.netmask())
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| ConfigError::MissingPrefix(s.to_string()))?;
        let addr = parse_addr(addr)?;
        let prefix = prefix
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= 32 && !prefix.starts_with('+'))
            .ok_or_else(|| ConfigError::InvalidPrefix(prefix.to_string()))?;
        Ok(Self { addr, prefix })
    }
}

/// The default gateway given on the command line (`--ipv4-gateway=10.0.0.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Gateway(pub Ipv4Addr);

impl fmt::Display for Ipv4Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Ipv4Gateway {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        parse_addr(s).map(Ipv4Gateway)
    }
}

fn parse_addr(s: &str) -> Result<Ipv4Addr, ConfigError> {
    s.parse::<Ipv4Addr>()
        .map_err(|_| ConfigError::InvalidAddress(s.to_string()))
}

/// Everything the stack needs to know at start; every field has a named default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// Static address; `None` asks DHCP when `dhcp` is set.
    pub ipv4: Option<Ipv4Cidr>,
    /// Static default gateway (only with a static `ipv4`).
    pub gateway: Option<Ipv4Addr>,
    /// Run the DHCPv4 client when `ipv4` is `None`.
    pub dhcp: bool,
    /// Receive buffer per TCP connection, bytes: the most a connection gets (see
    /// `tcp_buffer_min`).
    pub tcp_rx_buffer: usize,
    /// Send buffer per TCP connection, bytes: the most a connection gets.
    pub tcp_tx_buffer: usize,
    /// The least buffer (each way) a connection gets. When the heap is measured
    /// (`oasis_runtime::heap_usage`), a new connection's buffers are sized to the free
    /// heap — full size while memory is plentiful, shrinking towards this floor as it
    /// fills, like Linux's TCP memory pressure — and a SYN is refused (RST) when even
    /// the floor would not leave `heap_reserve` free.
    pub tcp_buffer_min: usize,
    /// Heap bytes admission keeps free for everything that is not a TCP connection.
    pub heap_reserve: usize,
    /// Heap bytes beyond its buffers a connection is assumed to cost the application.
    pub conn_overhead: usize,
    /// Time a passive open may stay silent from SYN until `accept` before it is
    /// dropped (half-open sockets of a SYN flood, connections never accepted).
    pub handshake_timeout: Duration,
    /// Live TCP connections at most; SYNs beyond it are answered with RST.
    pub max_connections: usize,
    /// Connections per listening port that may be half-open or wait for `accept`;
    /// SYNs beyond it get RST.
    pub backlog: usize,
    /// Receive buffer per UDP socket, payload bytes.
    pub udp_rx_buffer: usize,
    /// Send buffer per UDP socket, payload bytes.
    pub udp_tx_buffer: usize,
    /// Datagrams each UDP buffer can queue.
    pub udp_packets: usize,
    /// TCP delayed-ACK time ([`DEFAULT_ACK_DELAY`]); `None` ACKs at the end of every
    /// poll that received data, before the application has answered.
    pub ack_delay: Option<Duration>,
    /// Handshake timeout of `tcp_connect`.
    pub connect_timeout: Duration,
    /// Time a dropped stream may take to deliver its data and FIN before it is reset.
    pub close_linger: Duration,
    /// Receive window cap in segments (`None`: the buffer size alone limits it).
    pub max_burst: Option<usize>,
    /// Count TCP retransmissions and resets from the frames ([`crate::tcpstats`]):
    /// a header glance per frame and an 8 KiB table. The facade turns it on only
    /// when metrics are served.
    pub tcp_stats: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            ipv4: None,
            gateway: None,
            dhcp: true,
            tcp_rx_buffer: DEFAULT_TCP_RX_BUFFER,
            tcp_tx_buffer: DEFAULT_TCP_TX_BUFFER,
            tcp_buffer_min: DEFAULT_TCP_BUFFER_MIN,
            heap_reserve: 0,
            conn_overhead: DEFAULT_CONN_OVERHEAD,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            backlog: DEFAULT_BACKLOG,
            udp_rx_buffer: DEFAULT_UDP_RX_BUFFER,
            udp_tx_buffer: DEFAULT_UDP_TX_BUFFER,
            udp_packets: DEFAULT_UDP_PACKETS,
            ack_delay: Some(DEFAULT_ACK_DELAY),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            close_linger: DEFAULT_CLOSE_LINGER,
            max_burst: Some(DEFAULT_MAX_BURST),
            tcp_stats: true,
        }
    }
}

impl NetConfig {
    /// A static configuration: `addr` with an optional gateway, DHCP off.
    pub fn static_ipv4(addr: Ipv4Cidr, gateway: Option<Ipv4Addr>) -> Self {
        Self {
            ipv4: Some(addr),
            gateway,
            dhcp: false,
            ..Self::default()
        }
    }

    /// Checks addresses and limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(cidr) = self.ipv4 {
            if !cidr.is_usable_host() {
                return Err(ConfigError::UnusableAddress(cidr));
            }
            if let Some(gateway) = self.gateway
                && (!cidr.contains(gateway) || gateway == cidr.addr)
            {
                return Err(ConfigError::GatewayOffLink { gateway, cidr });
            }
        }
        let checks = [
            ("tcp_rx_buffer", self.tcp_rx_buffer, MIN_SOCKET_BUFFER),
            ("tcp_tx_buffer", self.tcp_tx_buffer, MIN_SOCKET_BUFFER),
            ("tcp_buffer_min", self.tcp_buffer_min, MIN_TCP_BUFFER_FLOOR),
            ("udp_rx_buffer", self.udp_rx_buffer, MIN_SOCKET_BUFFER),
            ("udp_tx_buffer", self.udp_tx_buffer, MIN_SOCKET_BUFFER),
            ("udp_packets", self.udp_packets, 1),
            ("max_connections", self.max_connections, 1),
            ("backlog", self.backlog, 1),
            ("max_burst", self.max_burst.unwrap_or(1), 1),
        ];
        for (field, value, min) in checks {
            if value < min {
                return Err(ConfigError::TooSmall { field, value, min });
            }
        }
        Ok(())
    }

    /// Heap bytes one connection takes at the least: both buffers at the floor plus
    /// `conn_overhead` (its socket's slot is reserved at start, see `socket_slot`).
    pub fn min_connection_cost(&self) -> usize {
        2 * self
            .tcp_buffer_min
            .min(self.tcp_rx_buffer.max(self.tcp_tx_buffer))
            + self.conn_overhead
    }

    /// The buffer sizes (receive, send) for a new connection, or `None` when it must
    /// be refused. `free` is the heap's free bytes (`None`: not measured, the configured
    /// sizes), `pending` the connections admitted but not yet accepted (their tasks
    /// are still to come, so each is charged `conn_overhead` in advance), `start_free`
    /// what was free when the stack started.
    ///
    /// Full-size buffers come only from the top 1/8 of the memory free at start, each
    /// new connection taking at most 1/64 of what is left there (a power of two); below
    /// that, new connections get the floor, so most of the heap goes to many small
    /// connections rather than a few large ones (Linux's TCP memory pressure, in
    /// spirit). A connection is refused when even the floor would eat into
    /// `heap_reserve`.
    pub fn admit(
        &self,
        free: Option<usize>,
        pending: usize,
        start_free: usize,
    ) -> Option<(usize, usize)> {
        let Some(free) = free else {
            return Some((self.tcp_rx_buffer, self.tcp_tx_buffer));
        };
        let spare = free
            .saturating_sub(self.heap_reserve)
            .saturating_sub(pending.saturating_mul(self.conn_overhead));
        let pressure = start_free.saturating_sub(self.heap_reserve) / 8 * 7;
        let share = spare.saturating_sub(pressure) / 128;
        let share = if share == 0 {
            0
        } else {
            1usize << share.ilog2()
        };
        let size = |max: usize| share.clamp(self.tcp_buffer_min.min(max), max);
        let (rx, tx) = (size(self.tcp_rx_buffer), size(self.tcp_tx_buffer));
        (spare >= rx + tx + self.conn_overhead).then_some((rx, tx))
    }
}

// ---- limits derived from the heap ----------------------------------------------

/// Smallest and largest default TCP buffer (receive and send, per connection).
pub const TCP_BUFFER_RANGE: (usize, usize) = (16 * 1024, 256 * 1024);

/// Default TCP receive and send buffer per connection of our stack, sized to the
/// machine like Linux's autotuning: heap / 2048 rounded up to a power of two, within
/// [`TCP_BUFFER_RANGE`] — 16 KiB in 32 MiB (a thousand connections fit), 128 KiB in
/// 256 MiB (a full-speed window on a virtio link). `--tcp-buffer` overrides it.
pub fn default_tcp_buffer(heap_bytes: Option<usize>) -> usize {
    let (lo, hi) = TCP_BUFFER_RANGE;
    heap_bytes
        .map_or(lo, |h| (h / 2048).next_power_of_two())
        .clamp(lo, hi)
}

/// How the stack's memory is shared out, derived from the heap at boot so that the
/// defaults always fit: a reserve stays free for everything else, and the rest is
/// the TCP connections' budget. Every connection costs at least a socket slot
/// (reserved at start) plus two floor-sized buffers plus the application's share
/// (`conn_overhead`); admission control in the stack refuses SYNs (RST) that would
/// eat into the reserve, so a flood is refused at the edge instead of aborting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The heap, bytes.
    pub heap: usize,
    /// Bytes kept free for everything that is not a TCP connection.
    pub reserve: usize,
    /// Live TCP connections at most.
    pub max_connections: usize,
    /// Largest TCP buffer each way per connection.
    pub tcp_buffer: usize,
    /// Half-open plus unaccepted connections per port.
    pub backlog: usize,
}

/// Bytes one socket slot takes (smoltcp's `SocketStorage`), reserved at start.
const SOCKET_SLOT: usize = 576;

impl Budget {
    /// The reserve for a heap of `heap` bytes: 1/16 of it, at least 1 MiB (small
    /// heaps need proportionally more for the allocations admission does not see:
    /// timers, queues, the tasks of a burst of accepted connections), except that a
    /// heap under 4 MiB keeps a quarter: it admits so few connections (a backlog of
    /// a dozen) that a whole MiB would leave nothing to serve with, while a quarter
    /// still absorbs their burst.
    pub fn reserve_for(heap: usize) -> usize {
        (heap / 16).max((1024 * 1024).min(heap / 4))
    }

    /// Derives the limits from `heap`, taking the explicit `--tcp-*` values where
    /// given; an explicit value that cannot fit is an error that names it.
    pub fn derive(
        heap: usize,
        tcp_buffer: Option<usize>,
        max_connections: Option<usize>,
        backlog: Option<usize>,
    ) -> Result<Self, String> {
        let reserve = Self::reserve_for(heap);
        let usable = heap.saturating_sub(reserve);
        let floor = DEFAULT_TCP_BUFFER_MIN;
        let per_conn = SOCKET_SLOT + 2 * floor + DEFAULT_CONN_OVERHEAD;
        let mib = |b: usize| b.div_ceil(1 << 20);
        let tcp_buffer = match tcp_buffer {
            Some(b) if SOCKET_SLOT + 2 * b + DEFAULT_CONN_OVERHEAD > usable => {
                return Err(alloc::format!(
                    "--tcp-buffer={b}: one connection would need {} KiB but only {} KiB of the {} MiB heap are for connections",
                    (SOCKET_SLOT + 2 * b + DEFAULT_CONN_OVERHEAD) / 1024,
                    usable / 1024,
                    mib(heap)
                ));
            }
            Some(b) => b,
            None => default_tcp_buffer(Some(heap)),
        };
        let fit = usable / per_conn;
        let max_connections = match max_connections {
            Some(n) if n > fit => {
                return Err(alloc::format!(
                    "--tcp-max-connections={n}: {n} connections need at least {} MiB; {fit} fit in this {} MiB heap (give the VM more memory or ask for fewer)",
                    mib(n.saturating_mul(per_conn).saturating_add(reserve)),
                    mib(heap)
                ));
            }
            Some(n) => n,
            None => fit,
        };
        if max_connections == 0 {
            return Err(alloc::format!(
                "a {} KiB heap leaves no room for a single TCP connection",
                heap / 1024
            ));
        }
        // Connections waiting for `accept` have no task yet but will: a quarter of
        // the connections at most, so a burst cannot promise more than the reserve
        // absorbs (1024 in 64 MiB, ~290 in 8 MiB).
        let backlog = backlog
            .unwrap_or(DEFAULT_BACKLOG.min(max_connections / 4))
            .clamp(1, max_connections);
        Ok(Budget {
            heap,
            reserve,
            max_connections,
            tcp_buffer,
            backlog,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_fits_the_heap_and_refuses_what_cannot() {
        let b = Budget::derive(64 << 20, None, None, None).unwrap();
        assert_eq!(b.reserve, 4 << 20);
        // From 4 MiB up the reserve is at least 1 MiB; below, a quarter of the heap.
        assert_eq!(Budget::reserve_for(4 << 20), 1 << 20);
        assert_eq!(Budget::reserve_for(7 << 20), 1 << 20);
        assert_eq!(Budget::reserve_for(1364 << 10), 341 << 10);
        let tiny = Budget::derive(1364 << 10, None, None, None).unwrap();
        assert!(tiny.max_connections >= 100, "{tiny:?}");
        assert!(b.max_connections >= 10_000, "{b:?}");
        let per_conn = SOCKET_SLOT + 2 * DEFAULT_TCP_BUFFER_MIN + DEFAULT_CONN_OVERHEAD;
        assert!(b.max_connections * per_conn + b.reserve <= b.heap);
        assert_eq!(b.backlog, DEFAULT_BACKLOG);
        let small = Budget::derive(3 << 20, None, None, None).unwrap();
        assert!(
            small.max_connections < 1000 && small.max_connections > 100,
            "{small:?}"
        );
        assert!(small.backlog <= small.max_connections);
        // Explicit values that cannot fit are refused with the numbers.
        let e = Budget::derive(8 << 20, None, Some(100_000), None).unwrap_err();
        assert!(e.contains("--tcp-max-connections=100000"), "{e}");
        let e = Budget::derive(8 << 20, Some(8 << 20), None, None).unwrap_err();
        assert!(e.contains("--tcp-buffer"), "{e}");
        assert_eq!(
            Budget::derive(8 << 20, Some(4096), Some(100), Some(5000))
                .unwrap()
                .backlog,
            100
        );
    }

    #[test]
    fn tcp_buffer_follows_the_heap_within_bounds() {
        assert_eq!(default_tcp_buffer(None), 16 * 1024);
        assert_eq!(default_tcp_buffer(Some(2 << 20)), 16 * 1024);
        assert_eq!(default_tcp_buffer(Some(32 << 20)), 16 * 1024);
        assert_eq!(default_tcp_buffer(Some(100 << 20)), 64 * 1024);
        assert_eq!(default_tcp_buffer(Some(250 << 20)), 128 * 1024);
        assert_eq!(default_tcp_buffer(Some(256 << 20)), 128 * 1024);
        assert_eq!(default_tcp_buffer(Some(64 << 30)), 256 * 1024);
    }

    #[test]
    fn parses_cidr_and_gateway() {
        let c: Ipv4Cidr = "10.0.0.2/24".parse().unwrap();
        assert_eq!(c, Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 2), 24).unwrap());
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(c.to_string(), "10.0.0.2/24");
        assert!(c.contains(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(!c.contains(Ipv4Addr::new(10, 0, 1, 1)));
        let g: Ipv4Gateway = "10.0.0.1".parse().unwrap();
        assert_eq!(g.0, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(
            "0.0.0.0/0".parse::<Ipv4Cidr>().unwrap().netmask(),
            Ipv4Addr::UNSPECIFIED
        );
    }

    #[test]
    fn rejects_bad_values_with_clear_errors() {
        let e = "10.0.0.2".parse::<Ipv4Cidr>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "`10.0.0.2` is not an IPv4 CIDR: expected ADDRESS/PREFIX such as 10.0.0.2/24"
        );
        let e = "10.0.0.2/33".parse::<Ipv4Cidr>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "prefix length `33` is not a number in 0..=32"
        );
        assert!(matches!(
            "10.0.0.2/+8".parse::<Ipv4Cidr>(),
            Err(ConfigError::InvalidPrefix(_))
        ));
        assert!(
            matches!("10.0.0.256/24".parse::<Ipv4Cidr>(), Err(ConfigError::InvalidAddress(a)) if a == "10.0.0.256")
        );
        assert!(matches!(
            "gw".parse::<Ipv4Gateway>(),
            Err(ConfigError::InvalidAddress(_))
        ));
        assert!("/24".parse::<Ipv4Cidr>().is_err());
    }

    #[test]
    fn admission_shrinks_buffers_under_pressure_then_refuses() {
        let c = NetConfig {
            tcp_rx_buffer: 128 * 1024,
            tcp_tx_buffer: 64 * 1024,
            heap_reserve: 1 << 20,
            ..NetConfig::default()
        };
        let floor = DEFAULT_TCP_BUFFER_MIN;
        let start = 81 << 20; // 80 MiB beyond the reserve: the top 10 MiB get full buffers
        // Unmeasured heap: the configured sizes.
        assert_eq!(c.admit(None, 0, start), Some((128 * 1024, 64 * 1024)));
        // Plenty free: 1/128 of the top 10 MiB, 64 KiB, capped per direction.
        assert_eq!(c.admit(Some(start), 0, start), Some((64 * 1024, 64 * 1024)));
        assert_eq!(
            c.admit(Some(start * 2), 0, start * 2),
            Some((128 * 1024, 64 * 1024))
        );
        // 1 MiB left above the pressure point: 1/128 of it, a power of two.
        assert_eq!(c.admit(Some(72 << 20), 0, start), Some((8192, 8192)));
        // Pending connections are charged in advance.
        assert_eq!(
            c.admit(Some(72 << 20), (512 << 10) / DEFAULT_CONN_OVERHEAD, start),
            Some((4096, 4096)),
            "about 512 KiB are promised to pending connections"
        );
        // Below the pressure point: the floor, however much is free.
        assert_eq!(c.admit(Some(70 << 20), 0, start), Some((floor, floor)));
        assert_eq!(
            c.admit(Some((1 << 20) + 10_000), 0, start),
            Some((floor, floor))
        );
        // Not even the floor fits beyond the reserve: refused.
        assert_eq!(c.admit(Some((1 << 20) + 2 * floor), 0, start), None);
        assert_eq!(c.admit(Some((1 << 20) + 10_000), 10, start), None);
        assert_eq!(c.admit(Some(0), 0, start), None);
        assert_eq!(c.min_connection_cost(), 2 * floor + DEFAULT_CONN_OVERHEAD);
    }

    #[test]
    fn validate_checks_addresses_and_limits() {
        let cidr = |s: &str| s.parse::<Ipv4Cidr>().unwrap();
        assert!(NetConfig::default().validate().is_ok());
        assert!(
            NetConfig::static_ipv4(cidr("10.0.0.2/24"), Some(Ipv4Addr::new(10, 0, 0, 1)))
                .validate()
                .is_ok()
        );
        assert!(
            NetConfig::static_ipv4(cidr("10.0.0.2/32"), None)
                .validate()
                .is_ok()
        );
        for bad in [
            "10.0.0.0/24",
            "10.0.0.255/24",
            "0.0.0.0/24",
            "224.0.0.1/24",
            "10.0.0.2/0",
        ] {
            assert_eq!(
                NetConfig::static_ipv4(cidr(bad), None).validate(),
                Err(ConfigError::UnusableAddress(cidr(bad))),
                "{bad}"
            );
        }
        let e = NetConfig::static_ipv4(cidr("10.0.0.2/24"), Some(Ipv4Addr::new(10, 0, 1, 1)))
            .validate()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "gateway 10.0.1.1 is outside the subnet of 10.0.0.2/24"
        );
        let e = NetConfig {
            backlog: 0,
            ..NetConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.to_string(), "backlog = 0 is out of range (at least 1)");
    }
}
