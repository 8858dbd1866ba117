//! Host sockets behind the app-facing network API (the default `hosted` backend).
//!
//! [`HostNet`] hands out [`TcpListener`], [`TcpStream`] and [`UdpSocket`] with the same
//! names and signatures as the smoltcp-backed sockets of `oasis-net`, so the `oasis`
//! facade can put either behind one type. They are non-blocking `std::net` sockets
//! registered with the calling thread's [reactor](crate::reactor): an operation that
//! would block parks the task until epoll reports readiness. Use them from tasks of an
//! `oasis_runtime` executor running on the hosted platform, on the thread that created
//! them (the executor's sleep is what drives the reactor).
//!
//! Listening sockets bind to the address given to [`HostNet::new`]; the default is
//! [`DEFAULT_BIND_IP`], `127.0.0.1`, so a development build never serves the outside
//! world by accident: ask for `0.0.0.0` (or `::`, dual-stack) explicitly. Listeners use
//! `SO_REUSEADDR` (a restarted server can bind at once) and a backlog of
//! [`LISTEN_BACKLOG`]. Writes use `MSG_NOSIGNAL`, so a peer that went away yields
//! [`HostNetError::BrokenPipe`], never a `SIGPIPE`.

use std::future::poll_fn;
use std::io::{self, Read};
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use polling::PollMode;
use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};

use crate::reactor::{Direction, Registered, retry_interrupted};

/// Where listeners bind unless told otherwise: loopback only, for safety.
pub const DEFAULT_BIND_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Pending-connection queue length of every listener (the kernel caps it at
/// `net.core.somaxconn`).
pub const LISTEN_BACKLOG: i32 = 1024;

/// The shortest keep-alive interval the host accepts (`TCP_KEEPIDLE` counts seconds).
pub const MIN_KEEPALIVE: Duration = Duration::from_secs(1);

/// Why a host socket operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostNetError {
    /// The thread's epoll reactor could not be created, or a socket could not be
    /// added to it (out of file descriptors or memory).
    #[error("cannot register with the epoll reactor: {0}")]
    Reactor(#[source] io::Error),
    /// The local address is taken by another socket.
    #[error("{proto} address {addr} is already in use")]
    AddrInUse {
        /// `"TCP"` or `"UDP"`.
        proto: &'static str,
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Creating or binding a socket failed for another reason (e.g. the bind IP is
    /// not an address of this host, or a port below 1024 without privileges).
    #[error("cannot bind {proto} socket to {addr}: {source}")]
    Bind {
        /// `"TCP"` or `"UDP"`.
        proto: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// The host's error.
        source: io::Error,
    },
    /// `listen(2)` failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The listener's address.
        addr: SocketAddr,
        /// The host's error.
        source: io::Error,
    },
    /// `accept(2)` failed (e.g. out of file descriptors).
    #[error("accepting a connection on {addr} failed: {source}")]
    Accept {
        /// The listener's address.
        addr: SocketAddr,
        /// The host's error.
        source: io::Error,
    },
    /// Nothing listens at the address (the peer answered with RST).
    #[error("connection to {addr} refused")]
    ConnectionRefused {
        /// The address connected to.
        addr: SocketAddr,
    },
    /// Connecting failed for another reason (unreachable network, SYN timeout).
    #[error("connecting to {addr} failed: {source}")]
    Connect {
        /// The address connected to.
        addr: SocketAddr,
        /// The host's error.
        source: io::Error,
    },
    /// The peer reset the connection.
    #[error("connection with {peer} reset by the peer")]
    ConnectionReset {
        /// The peer.
        peer: SocketAddr,
    },
    /// Writing after the connection was shut down for writing, or after the peer
    /// went away.
    #[error("connection with {peer} is closed for writing (broken pipe)")]
    BrokenPipe {
        /// The peer.
        peer: SocketAddr,
    },
    /// A write made no progress: the host accepted 0 bytes.
    #[error("writing to {peer} made no progress (0 bytes accepted)")]
    WriteZero {
        /// The peer.
        peer: SocketAddr,
    },
    /// The idle timeout set with [`TcpStream::set_timeout`] passed while a read or
    /// write waited. The connection stays open.
    #[error("{op} with {peer} made no progress for {after:?} (idle timeout)")]
    TimedOut {
        /// `"read"` or `"write"`.
        op: &'static str,
        /// The peer.
        peer: SocketAddr,
        /// The timeout in force.
        after: Duration,
    },
    /// A received datagram was larger than the buffer; it was dropped.
    #[error("datagram of {len} bytes from {from} does not fit the {capacity}-byte buffer; dropped")]
    Truncated {
        /// The datagram's length.
        len: usize,
        /// The buffer's length.
        capacity: usize,
        /// The sender.
        from: SocketAddr,
    },
    /// A datagram is larger than the host will send (`EMSGSIZE`).
    #[error("datagram of {len} bytes to {to} is too large to send")]
    DatagramTooLarge {
        /// The datagram's length.
        len: usize,
        /// The destination.
        to: SocketAddr,
    },
    /// Another socket operation failed.
    #[error("{op} on {addr} failed: {source}")]
    Io {
        /// What was being done (`"read"`, `"write"`, `"shutdown"`, `"recv_from"` …).
        op: &'static str,
        /// The peer for connections, the local address for listeners and UDP.
        addr: SocketAddr,
        /// The host's error.
        source: io::Error,
    },
    /// The TAP interface name is not usable.
    #[error("TAP interface name {name:?} is invalid: {why}")]
    TapName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Opening `/dev/net/tun` or attaching the TAP interface failed.
    #[error(
        "cannot open TAP interface {name:?} through /dev/net/tun: {source} (needs CAP_NET_ADMIN, or a TAP owned by this user)"
    )]
    TapOpen {
        /// The name asked for.
        name: String,
        /// The host's error.
        source: io::Error,
    },
    /// The sandbox was started without a TAP (or it was handed out already): it
    /// opens its only network device before sealing and has no host sockets.
    #[error(
        "the sandbox has no network device: start it with --net=tap:NAME (host sockets are not among its system calls)"
    )]
    SandboxNoNet,
}

impl HostNetError {
    /// The closest `std::io::ErrorKind`, for mapping both backends onto one enum.
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Self::AddrInUse { .. } => io::ErrorKind::AddrInUse,
            Self::ConnectionRefused { .. } => io::ErrorKind::ConnectionRefused,
            Self::ConnectionReset { .. } => io::ErrorKind::ConnectionReset,
            Self::BrokenPipe { .. } => io::ErrorKind::BrokenPipe,
            Self::WriteZero { .. } => io::ErrorKind::WriteZero,
            Self::TimedOut { .. } => io::ErrorKind::TimedOut,
            Self::Truncated { .. } | Self::DatagramTooLarge { .. } => io::ErrorKind::InvalidInput,
            Self::TapName { .. } => io::ErrorKind::InvalidInput,
            Self::SandboxNoNet => io::ErrorKind::NotConnected,
            Self::Reactor(source)
            | Self::Bind { source, .. }
            | Self::Listen { source, .. }
            | Self::Accept { source, .. }
            | Self::Connect { source, .. }
            | Self::Io { source, .. }
            | Self::TapOpen { source, .. } => source.kind(),
        }
    }

    fn bind(proto: &'static str, addr: SocketAddr, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::AddrInUse {
            Self::AddrInUse { proto, addr }
        } else {
            Self::Bind {
                proto,
                addr,
                source,
            }
        }
    }

    fn connect(addr: SocketAddr, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::ConnectionRefused {
            Self::ConnectionRefused { addr }
        } else {
            Self::Connect { addr, source }
        }
    }

    /// An error of an established connection.
    fn stream(op: &'static str, peer: SocketAddr, err: OpError) -> Self {
        match err {
            OpError::TimedOut(after) => Self::TimedOut { op, peer, after },
            OpError::Io(source) => match source.kind() {
                io::ErrorKind::ConnectionReset => Self::ConnectionReset { peer },
                io::ErrorKind::BrokenPipe => Self::BrokenPipe { peer },
                _ => Self::Io {
                    op,
                    addr: peer,
                    source,
                },
            },
        }
    }
}

/// How a waiting operation ended without a result.
enum OpError {
    Io(io::Error),
    TimedOut(Duration),
}

impl From<io::Error> for OpError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Runs the non-blocking `op` on `reg` until it stops returning `WouldBlock`, parking
/// on `dir` readiness in between.
async fn io_wait<T: std::os::fd::AsFd, R>(
    reg: &Registered<T>,
    dir: Direction,
    mut op: impl FnMut(&T) -> io::Result<R>,
) -> io::Result<R> {
    poll_fn(|cx| reg.poll_io(cx, dir, &mut op)).await
}

/// [`io_wait`], giving up after `timeout` without progress (`None`: never).
async fn io_wait_timeout<T: std::os::fd::AsFd, R>(
    reg: &Registered<T>,
    dir: Direction,
    timeout: Option<Duration>,
    mut op: impl FnMut(&T) -> io::Result<R>,
) -> Result<R, OpError> {
    let Some(limit) = timeout else {
        return Ok(io_wait(reg, dir, op).await?);
    };
    // Fast path without arming a timer.
    match retry_interrupted(|| op(reg.io())) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        r => return Ok(r?),
    }
    match oasis_runtime::timeout(limit, io_wait(reg, dir, op)).await {
        Ok(r) => Ok(r?),
        Err(oasis_runtime::Elapsed) => Err(OpError::TimedOut(limit)),
    }
}

/// A new non-blocking, close-on-exec socket for `addr`'s family.
fn new_socket(addr: SocketAddr, ty: Type, proto: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty.nonblocking(), Some(proto))?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        // `::` serves IPv4 too (dual stack), whatever net.ipv6.bindv6only says.
        socket.set_only_v6(false)?;
    }
    Ok(socket)
}

/// The host socket backend: creates sockets bound to one local IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostNet {
    bind_ip: IpAddr,
}

impl Default for HostNet {
    /// Binds to [`DEFAULT_BIND_IP`] (loopback).
    fn default() -> Self {
        Self::new(DEFAULT_BIND_IP)
    }
}

impl HostNet {
    /// A backend whose listeners and UDP sockets bind to `bind_ip` (`0.0.0.0` for all
    /// IPv4 addresses, `::` for all addresses of both families).
    pub fn new(bind_ip: IpAddr) -> Self {
        Self { bind_ip }
    }

    /// The IP listeners and UDP sockets bind to.
    pub fn bind_ip(&self) -> IpAddr {
        self.bind_ip
    }

    /// Listens for TCP connections on `port` (0: any free port, see
    /// [`TcpListener::local_addr`]).
    pub fn tcp_listen(&self, port: u16) -> Result<TcpListener, HostNetError> {
        let addr = SocketAddr::new(self.bind_ip, port);
        let socket = new_socket(addr, Type::STREAM, Protocol::TCP)
            .map_err(|e| HostNetError::bind("TCP", addr, e))?;
        socket
            .set_reuse_address(true)
            .map_err(|e| HostNetError::bind("TCP", addr, e))?;
        socket
            .bind(&addr.into())
            .map_err(|e| HostNetError::bind("TCP", addr, e))?;
        socket
            .listen(LISTEN_BACKLOG)
            .map_err(|source| HostNetError::Listen { addr, source })?;
        let listener = std::net::TcpListener::from(socket);
        let local = listener
            .local_addr()
            .map_err(|source| HostNetError::Listen { addr, source })?;
        let inner = Registered::new(listener, PollMode::Edge).map_err(HostNetError::Reactor)?;
        Ok(TcpListener { inner, local })
    }

    /// Binds a UDP socket to `port` (0: any free port).
    pub fn udp_bind(&self, port: u16) -> Result<UdpSocket, HostNetError> {
        let addr = SocketAddr::new(self.bind_ip, port);
        let socket = new_socket(addr, Type::DGRAM, Protocol::UDP)
            .map_err(|e| HostNetError::bind("UDP", addr, e))?;
        socket
            .bind(&addr.into())
            .map_err(|e| HostNetError::bind("UDP", addr, e))?;
        let socket = std::net::UdpSocket::from(socket);
        let local = socket
            .local_addr()
            .map_err(|e| HostNetError::bind("UDP", addr, e))?;
        let inner = Registered::new(socket, PollMode::Edge).map_err(HostNetError::Reactor)?;
        Ok(UdpSocket { inner, local })
    }

    /// Opens a TCP connection to `addr` (from any local address). Waits as long as
    /// the host's SYN retries allow; wrap it in `oasis_runtime::timeout` for less.
    pub async fn tcp_connect(&self, addr: SocketAddr) -> Result<TcpStream, HostNetError> {
        let socket = new_socket(addr, Type::STREAM, Protocol::TCP)
            .map_err(|e| HostNetError::connect(addr, e))?;
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e)
                if e.raw_os_error() == Some(libc::EINPROGRESS)
                    || e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(HostNetError::connect(addr, e)),
        }
        let inner = Registered::new(std::net::TcpStream::from(socket), PollMode::Edge)
            .map_err(HostNetError::Reactor)?;
        // Writable means the handshake finished; SO_ERROR tells how.
        io_wait(&inner, Direction::Write, |s| match s.take_error()? {
            Some(e) => Err(e),
            None => match s.peer_addr() {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    Err(io::ErrorKind::WouldBlock.into())
                }
                Err(e) => Err(e),
            },
        })
        .await
        .map_err(|e| HostNetError::connect(addr, e))?;
        let local = inner
            .io()
            .local_addr()
            .map_err(|e| HostNetError::connect(addr, e))?;
        Ok(TcpStream {
            inner,
            local,
            peer: addr,
            timeout_ns: AtomicU64::new(NO_TIMEOUT),
        })
    }
}

/// A listening TCP socket. Dropping it closes it.
pub struct TcpListener {
    inner: Registered<std::net::TcpListener>,
    local: SocketAddr,
}

impl core::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TcpListener")
            .field("local", &self.local)
            .finish()
    }
}

impl TcpListener {
    /// Waits for the next connection. Connections that the peer reset before they
    /// were accepted are skipped. Several tasks may wait at once.
    pub async fn accept(&self) -> Result<(TcpStream, SocketAddr), HostNetError> {
        let addr = self.local;
        let (stream, peer) = io_wait(&self.inner, Direction::Read, |l| {
            loop {
                match l.accept() {
                    Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                    r => return r,
                }
            }
        })
        .await
        .map_err(|source| HostNetError::Accept { addr, source })?;
        let stream = TcpStream::from_accepted(stream, peer)
            .map_err(|source| HostNetError::Accept { addr, source })?;
        Ok((stream, peer))
    }

    /// The address it listens on (with the port the host chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

/// A TCP connection. Dropping it closes it gracefully (FIN; RST if unread data
/// remains, as the host does); [`abort`](Self::abort) resets it.
pub struct TcpStream {
    inner: Registered<std::net::TcpStream>,
    local: SocketAddr,
    peer: SocketAddr,
    /// Idle timeout in nanoseconds; [`NO_TIMEOUT`] for none. Atomic so that the
    /// setter takes `&self`, as `oasis-net`'s does.
    timeout_ns: AtomicU64,
}

/// `TcpStream::timeout_ns` value meaning "no timeout".
const NO_TIMEOUT: u64 = u64::MAX;

impl core::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.local)
            .field("peer", &self.peer)
            .field("timeout", &self.timeout())
            .finish()
    }
}

impl TcpStream {
    fn from_accepted(stream: std::net::TcpStream, peer: SocketAddr) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        let local = stream.local_addr()?;
        let inner = Registered::new(stream, PollMode::Edge)?;
        Ok(Self {
            inner,
            local,
            peer,
            timeout_ns: AtomicU64::new(NO_TIMEOUT),
        })
    }

    /// Reads what has arrived into `buf`, waiting until something has; `Ok(0)` means
    /// the peer closed its side (or `buf` is empty).
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, HostNetError> {
        self.read_shared(buf).await
    }

    /// [`read`](Self::read) through a shared reference: one task may read while
    /// another writes. Cancel-safe.
    pub async fn read_shared(&self, buf: &mut [u8]) -> Result<usize, HostNetError> {
        let peer = self.peer;
        io_wait_timeout(&self.inner, Direction::Read, self.timeout(), |mut s| {
            s.read(buf)
        })
        .await
        .map_err(|e| HostNetError::stream("read", peer, e))
    }

    /// Writes some of `buf`, waiting for buffer space; returns how much was taken.
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, HostNetError> {
        self.write_shared(buf).await
    }

    /// [`write`](Self::write) through a shared reference. Cancel-safe.
    pub async fn write_shared(&self, buf: &[u8]) -> Result<usize, HostNetError> {
        let peer = self.peer;
        io_wait_timeout(&self.inner, Direction::Write, self.timeout(), |s| {
            SockRef::from(s).send_with_flags(buf, libc::MSG_NOSIGNAL)
        })
        .await
        .map_err(|e| HostNetError::stream("write", peer, e))
    }

    /// Writes all of `buf`. The idle timeout applies to each step, not to the whole.
    pub async fn write_all(&mut self, mut buf: &[u8]) -> Result<(), HostNetError> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            if n == 0 {
                return Err(HostNetError::WriteZero { peer: self.peer });
            }
            buf = buf.get(n..).unwrap_or_default();
        }
        Ok(())
    }

    /// Does nothing: host sockets have no user-space send buffer.
    pub async fn flush(&mut self) -> Result<(), HostNetError> {
        Ok(())
    }

    /// Closes the sending side (FIN); reading goes on until the peer closes.
    pub async fn shutdown(&mut self) -> Result<(), HostNetError> {
        match self.inner.io().shutdown(Shutdown::Write) {
            // Already reset by the peer: nothing left to shut.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            r => r.map_err(|source| HostNetError::Io {
                op: "shutdown",
                addr: self.peer,
                source,
            }),
        }
    }

    /// Resets the connection (RST) and closes it, discarding unsent data.
    pub fn abort(self) {
        if let Err(e) = SockRef::from(self.inner.io()).set_linger(Some(Duration::ZERO)) {
            log::warn!(
                "abort {}: SO_LINGER 0 failed ({e}); closing gracefully",
                self.peer
            );
        }
        drop(self);
    }

    /// The remote address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The local address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sends keep-alive probes after `interval` of silence, then every `interval`
    /// (at least [`MIN_KEEPALIVE`]); `None` turns them off.
    pub fn set_keepalive(&self, interval: Option<Duration>) {
        let sock = SockRef::from(self.inner.io());
        let r = match interval {
            Some(d) => {
                let d = d.max(MIN_KEEPALIVE);
                sock.set_tcp_keepalive(&TcpKeepalive::new().with_time(d).with_interval(d))
            }
            None => sock.set_keepalive(false),
        };
        if let Err(e) = r {
            log::warn!("{}: setting keep-alive {interval:?} failed: {e}", self.peer);
        }
    }

    /// Sets the idle timeout: a read or write that waits longer than this fails with
    /// [`HostNetError::TimedOut`] (the connection stays usable). `None`: no limit.
    ///
    /// Unlike `oasis-net`'s smoltcp timeout, which aborts a connection whose peer
    /// stays silent, this only ends the waiting operation.
    pub fn set_timeout(&self, timeout: Option<Duration>) {
        // Durations past u64 nanoseconds (584 years) are as good as none.
        let ns = timeout.map_or(NO_TIMEOUT, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(NO_TIMEOUT)
        });
        self.timeout_ns.store(ns, Ordering::Relaxed);
    }

    /// The idle timeout in force.
    pub fn timeout(&self) -> Option<Duration> {
        match self.timeout_ns.load(Ordering::Relaxed) {
            NO_TIMEOUT => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// Turns Nagle's algorithm off (`true`: send small writes at once).
    pub fn set_nodelay(&self, nodelay: bool) {
        if let Err(e) = self.inner.io().set_nodelay(nodelay) {
            log::warn!("{}: setting TCP_NODELAY {nodelay} failed: {e}", self.peer);
        }
    }
}

impl embedded_io::Error for HostNetError {
    fn kind(&self) -> embedded_io::ErrorKind {
        HostNetError::kind(self).into()
    }
}

impl embedded_io::ErrorType for TcpStream {
    type Error = HostNetError;
}

impl embedded_io_async::Read for TcpStream {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, HostNetError> {
        TcpStream::read(self, buf).await
    }
}

impl embedded_io_async::Write for TcpStream {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, HostNetError> {
        TcpStream::write(self, buf).await
    }

    async fn flush(&mut self) -> Result<(), HostNetError> {
        TcpStream::flush(self).await
    }
}

/// A UDP socket. Several tasks may send and receive at once.
pub struct UdpSocket {
    inner: Registered<std::net::UdpSocket>,
    local: SocketAddr,
}

impl core::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local", &self.local)
            .finish()
    }
}

impl UdpSocket {
    /// Receives one datagram into `buf`; returns its length and sender. A datagram
    /// longer than `buf` is dropped with [`HostNetError::Truncated`].
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), HostNetError> {
        let local = self.local;
        let capacity = buf.len();
        let (len, from) = io_wait(&self.inner, Direction::Read, |s| {
            // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and the kernel only
            // writes initialised bytes into the buffer, so `buf` stays initialised.
            let uninit =
                unsafe { &mut *(core::ptr::from_mut::<[u8]>(buf) as *mut [MaybeUninit<u8>]) };
            // MSG_TRUNC: the return value is the datagram's real length.
            let (n, from) = SockRef::from(s).recv_from_with_flags(uninit, libc::MSG_TRUNC)?;
            let from = from.as_socket().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "sender is not an IP address")
            })?;
            Ok((n, from))
        })
        .await
        .map_err(|source| HostNetError::Io {
            op: "recv_from",
            addr: local,
            source,
        })?;
        if len > capacity {
            return Err(HostNetError::Truncated {
                len,
                capacity,
                from,
            });
        }
        Ok((len, from))
    }

    /// Sends `buf` as one datagram to `addr`, waiting for buffer space.
    pub async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> Result<(), HostNetError> {
        let local = self.local;
        let sent = io_wait(&self.inner, Direction::Write, |s| s.send_to(buf, addr))
            .await
            .map_err(|source| {
                if source.raw_os_error() == Some(libc::EMSGSIZE) {
                    HostNetError::DatagramTooLarge {
                        len: buf.len(),
                        to: addr,
                    }
                } else {
                    HostNetError::Io {
                        op: "send_to",
                        addr: local,
                        source,
                    }
                }
            })?;
        if sent != buf.len() {
            // Datagram sockets send all or nothing; this is only a guard.
            return Err(HostNetError::Io {
                op: "send_to",
                addr: local,
                source: io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("sent {sent} of {} bytes", buf.len()),
                ),
            });
        }
        Ok(())
    }

    /// The local address (with the port the host chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::Reactor;
    use oasis_runtime::{block_on, spawn};
    use std::time::Instant;

    fn run<F: Future>(f: F) -> F::Output {
        block_on(crate::platform(), f)
    }

    async fn read_exact(s: &mut TcpStream, mut buf: &mut [u8]) -> Result<(), HostNetError> {
        while !buf.is_empty() {
            let n = s.read(buf).await?;
            assert!(n > 0, "EOF with {} bytes still expected", buf.len());
            buf = &mut buf[n..];
        }
        Ok(())
    }

    /// Deterministic bytes that differ per client and per position.
    fn pattern(seed: u32, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    /// Accepts forever; echoes every connection until EOF, then half-closes.
    fn spawn_echo_server(listener: TcpListener) {
        spawn(async move {
            loop {
                let (mut conn, peer) = listener.accept().await.expect("accept");
                assert_eq!(conn.peer_addr(), peer);
                assert_eq!(conn.local_addr(), listener.local_addr());
                spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    loop {
                        let n = conn.read(&mut buf).await.expect("server read");
                        if n == 0 {
                            break;
                        }
                        conn.write_all(&buf[..n]).await.expect("server write");
                    }
                    conn.shutdown().await.expect("server shutdown");
                });
            }
        });
    }

    #[test]
    fn tcp_echo_100_concurrent_clients_64k_each() {
        const CLIENTS: u32 = 100;
        const LEN: usize = 64 * 1024;
        const CHUNK: usize = 16 * 1024;
        let baseline = Reactor::current().unwrap().registered();
        run(async {
            let net = HostNet::default();
            let listener = net.tcp_listen(0).unwrap();
            let addr = listener.local_addr();
            assert_eq!(addr.ip(), DEFAULT_BIND_IP);
            assert_ne!(addr.port(), 0);
            spawn_echo_server(listener);
            let clients: Vec<_> = (0..CLIENTS)
                .map(|i| {
                    spawn(async move {
                        let mut s = net.tcp_connect(addr).await.expect("connect");
                        assert_eq!(s.peer_addr(), addr);
                        let data = pattern(i, LEN);
                        let mut back = vec![0u8; LEN];
                        for (out, into) in data.chunks(CHUNK).zip(back.chunks_mut(CHUNK)) {
                            s.write_all(out).await.expect("client write");
                            s.flush().await.expect("flush");
                            read_exact(&mut s, into).await.expect("client read");
                        }
                        assert!(back == data, "client {i}: echoed bytes differ");
                        s.shutdown().await.expect("client shutdown");
                        assert_eq!(s.read(&mut [0u8; 16]).await.expect("read EOF"), 0);
                        LEN
                    })
                })
                .collect();
            let mut total = 0;
            for c in clients {
                total += c.await;
            }
            assert_eq!(total, CLIENTS as usize * LEN);
        });
        // Every socket (listener, accepted, clients) left the epoll set on drop.
        assert_eq!(Reactor::current().unwrap().registered(), baseline);
    }

    #[test]
    fn udp_echo_and_truncation() {
        run(async {
            let net = HostNet::new(IpAddr::V4(Ipv4Addr::LOCALHOST));
            let server = net.udp_bind(0).unwrap();
            let server_addr = server.local_addr();
            spawn(async move {
                let mut buf = vec![0u8; 2048];
                loop {
                    let (n, from) = server.recv_from(&mut buf).await.expect("server recv");
                    server.send_to(&buf[..n], from).await.expect("server send");
                }
            });
            let client = net.udp_bind(0).unwrap();
            let mut buf = vec![0u8; 2048];
            for (i, len) in [0usize, 1, 100, 1472, 2000].into_iter().enumerate() {
                let data = pattern(i as u32, len);
                client.send_to(&data, server_addr).await.unwrap();
                let (n, from) = client.recv_from(&mut buf).await.unwrap();
                assert_eq!(from, server_addr);
                assert_eq!(&buf[..n], &data[..]);
            }
            // A datagram larger than the buffer is reported and dropped.
            client.send_to(&[7u8; 100], server_addr).await.unwrap();
            match client.recv_from(&mut buf[..10]).await {
                Err(HostNetError::Truncated {
                    len,
                    capacity,
                    from,
                }) => {
                    assert_eq!((len, capacity, from), (100, 10, server_addr));
                }
                other => panic!("expected Truncated, got {other:?}"),
            }
            client.send_to(b"next", server_addr).await.unwrap();
            let (n, _) = client.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"next");
        });
    }

    #[test]
    fn connection_refused_and_address_in_use() {
        run(async {
            let net = HostNet::default();
            let listener = net.tcp_listen(0).unwrap();
            let addr = listener.local_addr();
            match net.tcp_listen(addr.port()) {
                Err(e @ HostNetError::AddrInUse { proto: "TCP", .. }) => {
                    assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
                    assert!(e.to_string().contains(&addr.to_string()), "{e}");
                }
                other => panic!(
                    "expected AddrInUse, got {:?}",
                    other.map(|l| l.local_addr())
                ),
            }
            drop(listener);
            match net.tcp_connect(addr).await {
                Err(e @ HostNetError::ConnectionRefused { addr: a }) => {
                    assert_eq!(a, addr);
                    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
                    assert_eq!(e.to_string(), format!("connection to {addr} refused"));
                }
                other => panic!(
                    "expected ConnectionRefused, got {:?}",
                    other.map(|s| s.local_addr())
                ),
            }
        });
    }

    #[test]
    fn read_timeout_fails_then_connection_still_works() {
        run(async {
            let net = HostNet::default();
            let listener = net.tcp_listen(0).unwrap();
            let addr = listener.local_addr();
            let mut client = net.tcp_connect(addr).await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            assert_eq!(client.timeout(), None);
            client.set_timeout(Some(Duration::from_millis(100)));
            assert_eq!(client.timeout(), Some(Duration::from_millis(100)));
            let start = Instant::now();
            let mut buf = [0u8; 8];
            match client.read(&mut buf).await {
                Err(e @ HostNetError::TimedOut { op: "read", .. }) => {
                    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
                    assert!(e.to_string().contains("100ms"), "{e}");
                }
                other => panic!("expected TimedOut, got {other:?}"),
            }
            let waited = start.elapsed();
            assert!(
                waited >= Duration::from_millis(100),
                "timed out early: {waited:?}"
            );
            assert!(
                waited < Duration::from_secs(2),
                "timed out late: {waited:?}"
            );
            // Data that arrives in time is read; the timer leaves nothing behind.
            server.write_all(b"late").await.unwrap();
            let n = client.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"late");
            client.set_timeout(None);
            assert_eq!(client.timeout(), None);
            client.set_timeout(Some(Duration::MAX));
            assert_eq!(
                client.timeout(),
                None,
                "a timeout beyond u64 nanoseconds is none"
            );
        });
    }

    #[test]
    fn abort_resets_and_shutdown_half_closes() {
        run(async {
            let net = HostNet::default();
            let listener = net.tcp_listen(0).unwrap();
            let addr = listener.local_addr();

            // shutdown: the peer reads EOF but can still answer.
            let mut client = net.tcp_connect(addr).await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            client.write_all(b"bye").await.unwrap();
            client.shutdown().await.unwrap();
            let mut buf = [0u8; 8];
            read_exact(&mut server, &mut buf[..3]).await.unwrap();
            assert_eq!(server.read(&mut buf).await.unwrap(), 0);
            server.write_all(b"ok").await.unwrap();
            read_exact(&mut client, &mut buf[..2]).await.unwrap();
            assert_eq!(&buf[..2], b"ok");
            match client.write(b"more").await {
                Err(HostNetError::BrokenPipe { peer }) => assert_eq!(peer, addr),
                other => panic!("expected BrokenPipe after shutdown, got {other:?}"),
            }

            // abort: the peer sees a reset.
            let client = net.tcp_connect(addr).await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            let client_addr = client.local_addr();
            client.abort();
            match server.read(&mut buf).await {
                Err(HostNetError::ConnectionReset { peer }) => assert_eq!(peer, client_addr),
                other => panic!("expected ConnectionReset, got {other:?}"),
            }
        });
    }

    #[test]
    fn writing_to_a_closed_peer_is_an_error_not_a_signal() {
        run(async {
            let net = HostNet::default();
            let listener = net.tcp_listen(0).unwrap();
            let mut client = net.tcp_connect(listener.local_addr()).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            drop(server);
            let chunk = [0u8; 4096];
            let err = loop {
                match client.write(&chunk).await {
                    Ok(_) => oasis_runtime::sleep(Duration::from_millis(1)).await,
                    Err(e) => break e,
                }
            };
            assert!(
                matches!(
                    err,
                    HostNetError::BrokenPipe { .. } | HostNetError::ConnectionReset { .. }
                ),
                "{err:?}"
            );
        });
    }

    #[test]
    fn socket_options_reach_the_host_socket() {
        run(async {
            let net = HostNet::default();
            let listener = net.tcp_listen(0).unwrap();
            let s = net.tcp_connect(listener.local_addr()).await.unwrap();
            let sock = |s: &TcpStream| SockRef::from(s.inner.io()).try_clone().unwrap();
            s.set_nodelay(true);
            assert!(sock(&s).tcp_nodelay().unwrap());
            s.set_nodelay(false);
            assert!(!sock(&s).tcp_nodelay().unwrap());
            s.set_keepalive(Some(Duration::from_secs(30)));
            assert!(sock(&s).keepalive().unwrap());
            assert_eq!(
                sock(&s).tcp_keepalive_time().unwrap(),
                Duration::from_secs(30)
            );
            assert_eq!(
                sock(&s).tcp_keepalive_interval().unwrap(),
                Duration::from_secs(30)
            );
            s.set_keepalive(Some(Duration::from_millis(10)));
            assert_eq!(sock(&s).tcp_keepalive_time().unwrap(), MIN_KEEPALIVE);
            s.set_keepalive(None);
            assert!(!sock(&s).keepalive().unwrap());
            let linger = SockRef::from(listener.inner.io()).reuse_address().unwrap();
            assert!(linger, "listeners use SO_REUSEADDR");
        });
    }

    /// Protocol code written against the `embedded-io-async` traits, as in `oasis-net`.
    async fn generic_roundtrip<S: embedded_io_async::Read + embedded_io_async::Write>(
        s: &mut S,
        msg: &[u8],
    ) -> Result<Vec<u8>, S::Error> {
        s.write_all(msg).await?;
        s.flush().await?;
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).await.map_err(|e| match e {
            embedded_io::ReadExactError::Other(e) => e,
            embedded_io::ReadExactError::UnexpectedEof => panic!("EOF during read_exact"),
        })?;
        Ok(back)
    }

    #[test]
    fn embedded_io_traits_and_error_kinds() {
        run(async {
            let net = HostNet::default();
            let listener = net.tcp_listen(0).unwrap();
            let addr = listener.local_addr();
            spawn_echo_server(listener);
            let mut s = net.tcp_connect(addr).await.unwrap();
            assert_eq!(
                generic_roundtrip(&mut s, b"embedded").await.unwrap(),
                b"embedded"
            );
            assert!(format!("{s:?}").contains(&addr.to_string()));
        });
        let e = HostNetError::TimedOut {
            op: "read",
            peer: "127.0.0.1:1".parse().unwrap(),
            after: Duration::from_secs(1),
        };
        assert_eq!(
            embedded_io::Error::kind(&e),
            embedded_io::ErrorKind::TimedOut
        );
        let e = HostNetError::ConnectionReset {
            peer: "127.0.0.1:1".parse().unwrap(),
        };
        assert_eq!(
            embedded_io::Error::kind(&e),
            embedded_io::ErrorKind::ConnectionReset
        );
    }

    #[test]
    fn bind_to_a_foreign_address_names_it() {
        // 192.0.2.1 (TEST-NET-1) is not an address of this host.
        let net = HostNet::new("192.0.2.1".parse().unwrap());
        match net.tcp_listen(0) {
            Err(e @ HostNetError::Bind { .. }) => {
                assert!(e.to_string().contains("192.0.2.1:0"), "{e}");
                assert_eq!(e.kind(), io::ErrorKind::AddrNotAvailable);
            }
            other => panic!("expected Bind, got {:?}", other.map(|l| l.local_addr())),
        }
        assert!(matches!(
            net.udp_bind(0),
            Err(HostNetError::Bind { proto: "UDP", .. })
        ));
    }
}
