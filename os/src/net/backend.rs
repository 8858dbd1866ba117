//! The one socket API's inside: the backend traits, and our stack's implementation.
//!
//! [`crate::net`]'s public types wrap a backend's sockets and call these traits, so
//! each facade method is written once. Two implementations exist:
//!
//! - our TCP/IP stack, [`oasis_net`] (every platform), implemented here;
//! - the host kernel's sockets, `oasis_hosted` (hosted only), implemented in
//!   `platform/host_sockets.rs` together with the enum that puts either behind one
//!   type.
//!
//! Which one the facade's types hold is the platform's choice:
//! [`platform::NetBackend`](crate::platform::NetBackend) is `oasis_net::NetHandle` on
//! `kvm` and that enum on `hosted`. The traits are crate-private and never used as
//! `dyn`, so their `async fn`s are plain static dispatch.
//!
//! Contract, for every implementation: errors come back as the facade's
//! [`NetError`]; `read`, `write`, `flush`, `accept`, `recv_from` are cancel-safe
//! (dropping the future loses no data and queues nothing); dropping a stream closes it
//! gracefully and dropping a listener stops listening.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use super::NetError;

/// A network: hands out sockets. Cheap to clone (a handle to shared state).
pub(crate) trait Backend: Clone {
    /// Its listening socket.
    type Listener: ListenerOps<Stream = Self::Stream>;
    /// Its TCP connection.
    type Stream: StreamOps;
    /// Its UDP socket.
    type Udp: UdpOps;

    /// Listens for TCP connections on `port` on every local address.
    fn tcp_listen(&self, port: u16) -> Result<Self::Listener, NetError>;

    /// Binds a UDP socket to `port`.
    fn udp_bind(&self, port: u16) -> Result<Self::Udp, NetError>;

    /// Opens a TCP connection; dropping the future abandons the attempt.
    async fn tcp_connect(&self, addr: SocketAddr) -> Result<Self::Stream, NetError>;

    /// This host's address (unspecified while it has none).
    fn address(&self) -> IpAddr;

    /// Our stack's counters; `None` where the backend keeps none (host sockets).
    fn stats(&self) -> Option<oasis_net::NetStats>;
}

/// A listening TCP socket.
pub(crate) trait ListenerOps {
    /// The connections it accepts.
    type Stream: StreamOps;

    /// The next connection; it leaves the queue only when the future completes.
    async fn accept(&self) -> Result<(Self::Stream, SocketAddr), NetError>;

    /// The local address.
    fn local_addr(&self) -> SocketAddr;

    /// Whether the backend bounds live connections itself (our stack: a connection
    /// limit and memory admission refuse SYNs). Where it does not, `serve` applies
    /// [`DEFAULT_MAX_CONNECTIONS`](super::DEFAULT_MAX_CONNECTIONS) unless told a limit.
    fn admits_connections(&self) -> bool;
}

/// A TCP connection. `read`, `write` and `flush` take `&self` so that a stream's read
/// and write halves can be driven at once.
pub(crate) trait StreamOps {
    /// Reads into `buf`; `Ok(0)` means the peer closed its side.
    async fn read(&self, buf: &mut [u8]) -> Result<usize, NetError>;

    /// Writes some of `buf`; returns how much was taken.
    async fn write(&self, buf: &[u8]) -> Result<usize, NetError>;

    /// Waits until everything written has been sent.
    async fn flush(&self) -> Result<(), NetError>;

    /// Closes the sending side (FIN).
    async fn shutdown(&mut self) -> Result<(), NetError>;

    /// Resets the connection (RST) and drops it.
    fn abort(self);

    /// The remote address.
    fn peer_addr(&self) -> SocketAddr;

    /// The local address.
    fn local_addr(&self) -> SocketAddr;

    /// Keepalive probes every `interval` (`None`: off).
    fn set_keepalive(&self, interval: Option<Duration>);

    /// The idle timeout (`None`: none).
    fn set_timeout(&self, timeout: Option<Duration>);

    /// Nagle's algorithm off when `true`.
    fn set_nodelay(&self, nodelay: bool);
}

/// A UDP socket.
pub(crate) trait UdpOps {
    /// Receives one datagram.
    async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), NetError>;

    /// Sends one datagram.
    async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> Result<(), NetError>;

    /// The local address.
    fn local_addr(&self) -> SocketAddr;
}

// Our stack. The inherent methods are named like the trait's, so every call below
// names its type to make plain which one it means.

impl Backend for oasis_net::NetHandle {
    type Listener = oasis_net::TcpListener;
    type Stream = oasis_net::TcpStream;
    type Udp = oasis_net::UdpSocket;

    fn tcp_listen(&self, port: u16) -> Result<Self::Listener, NetError> {
        Ok(oasis_net::NetHandle::tcp_listen(self, port)?)
    }

    fn udp_bind(&self, port: u16) -> Result<Self::Udp, NetError> {
        Ok(oasis_net::NetHandle::udp_bind(self, port)?)
    }

    async fn tcp_connect(&self, addr: SocketAddr) -> Result<Self::Stream, NetError> {
        Ok(oasis_net::NetHandle::tcp_connect(self, addr).await?)
    }

    fn address(&self) -> IpAddr {
        IpAddr::V4(self.ipv4().map_or(Ipv4Addr::UNSPECIFIED, |c| c.addr))
    }

    fn stats(&self) -> Option<oasis_net::NetStats> {
        Some(oasis_net::NetHandle::stats(self))
    }
}

impl ListenerOps for oasis_net::TcpListener {
    type Stream = oasis_net::TcpStream;

    async fn accept(&self) -> Result<(Self::Stream, SocketAddr), NetError> {
        Ok(oasis_net::TcpListener::accept(self).await?)
    }

    fn local_addr(&self) -> SocketAddr {
        oasis_net::TcpListener::local_addr(self)
    }

    fn admits_connections(&self) -> bool {
        true
    }
}

impl StreamOps for oasis_net::TcpStream {
    async fn read(&self, buf: &mut [u8]) -> Result<usize, NetError> {
        Ok(self.read_shared(buf).await?)
    }

    async fn write(&self, buf: &[u8]) -> Result<usize, NetError> {
        Ok(self.write_shared(buf).await?)
    }

    async fn flush(&self) -> Result<(), NetError> {
        Ok(self.flush_shared().await?)
    }

    async fn shutdown(&mut self) -> Result<(), NetError> {
        Ok(oasis_net::TcpStream::shutdown(self).await?)
    }

    fn abort(self) {
        oasis_net::TcpStream::abort(self);
    }

    fn peer_addr(&self) -> SocketAddr {
        oasis_net::TcpStream::peer_addr(self)
    }

    fn local_addr(&self) -> SocketAddr {
        oasis_net::TcpStream::local_addr(self)
    }

    fn set_keepalive(&self, interval: Option<Duration>) {
        oasis_net::TcpStream::set_keepalive(self, interval);
    }

    fn set_timeout(&self, timeout: Option<Duration>) {
        oasis_net::TcpStream::set_timeout(self, timeout);
    }

    fn set_nodelay(&self, nodelay: bool) {
        oasis_net::TcpStream::set_nodelay(self, nodelay);
    }
}

impl UdpOps for oasis_net::UdpSocket {
    async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), NetError> {
        Ok(oasis_net::UdpSocket::recv_from(self, buf).await?)
    }

    async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> Result<(), NetError> {
        Ok(oasis_net::UdpSocket::send_to(self, buf, addr).await?)
    }

    fn local_addr(&self) -> SocketAddr {
        oasis_net::UdpSocket::local_addr(self)
    }
}
