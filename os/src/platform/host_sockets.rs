//! `hosted`'s network backends: the host's sockets, and either backend behind one type.
//!
//! The host kernel's sockets (`oasis_hosted`) implement the backend traits here; the
//! `Net`, `Listener`, `Stream` and `Udp` enums hold either our stack's socket or the
//! host's and forward each trait method to the one they hold. `platform.rs` compiles
//! this module on `hosted` only: on `kvm` the facade holds our stack's types directly.

use core::net::{IpAddr, SocketAddr};
use core::time::Duration;

use crate::net::NetError;
use crate::net::backend::{Backend, ListenerOps, StreamOps, UdpOps};

impl From<oasis_hosted::HostNetError> for NetError {
    fn from(e: oasis_hosted::HostNetError) -> Self {
        NetError::Host(e)
    }
}

// The host's sockets. Their inherent methods are named like the traits', so every
// call below names its type to make plain which one it means.

impl Backend for oasis_hosted::HostNet {
    type Listener = oasis_hosted::TcpListener;
    type Stream = oasis_hosted::TcpStream;
    type Udp = oasis_hosted::UdpSocket;

    fn tcp_listen(&self, port: u16) -> Result<Self::Listener, NetError> {
        Ok(oasis_hosted::HostNet::tcp_listen(self, port)?)
    }

    fn udp_bind(&self, port: u16) -> Result<Self::Udp, NetError> {
        Ok(oasis_hosted::HostNet::udp_bind(self, port)?)
    }

    async fn tcp_connect(&self, addr: SocketAddr) -> Result<Self::Stream, NetError> {
        Ok(oasis_hosted::HostNet::tcp_connect(self, addr).await?)
    }

    fn address(&self) -> IpAddr {
        self.bind_ip()
    }

    fn stats(&self) -> Option<oasis_net::NetStats> {
        None
    }
}

impl ListenerOps for oasis_hosted::TcpListener {
    type Stream = oasis_hosted::TcpStream;

    async fn accept(&self) -> Result<(Self::Stream, SocketAddr), NetError> {
        Ok(oasis_hosted::TcpListener::accept(self).await?)
    }

    fn local_addr(&self) -> SocketAddr {
        oasis_hosted::TcpListener::local_addr(self)
    }

    /// The host kernel's limits are not ours to report; `serve` bounds connections.
    fn admits_connections(&self) -> bool {
        false
    }
}

impl StreamOps for oasis_hosted::TcpStream {
    async fn read(&self, buf: &mut [u8]) -> Result<usize, NetError> {
        Ok(self.read_shared(buf).await?)
    }

    async fn write(&self, buf: &[u8]) -> Result<usize, NetError> {
        Ok(self.write_shared(buf).await?)
    }

    /// Nothing to wait for: host sockets have no user-space send buffer.
    async fn flush(&self) -> Result<(), NetError> {
        Ok(())
    }

    async fn shutdown(&mut self) -> Result<(), NetError> {
        Ok(oasis_hosted::TcpStream::shutdown(self).await?)
    }

    fn abort(self) {
        oasis_hosted::TcpStream::abort(self);
    }

    fn peer_addr(&self) -> SocketAddr {
        oasis_hosted::TcpStream::peer_addr(self)
    }

    fn local_addr(&self) -> SocketAddr {
        oasis_hosted::TcpStream::local_addr(self)
    }

    fn set_keepalive(&self, interval: Option<Duration>) {
        oasis_hosted::TcpStream::set_keepalive(self, interval);
    }

    fn set_timeout(&self, timeout: Option<Duration>) {
        oasis_hosted::TcpStream::set_timeout(self, timeout);
    }

    fn set_nodelay(&self, nodelay: bool) {
        oasis_hosted::TcpStream::set_nodelay(self, nodelay);
    }
}

impl UdpOps for oasis_hosted::UdpSocket {
    async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), NetError> {
        Ok(oasis_hosted::UdpSocket::recv_from(self, buf).await?)
    }

    async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> Result<(), NetError> {
        Ok(oasis_hosted::UdpSocket::send_to(self, buf, addr).await?)
    }

    fn local_addr(&self) -> SocketAddr {
        oasis_hosted::UdpSocket::local_addr(self)
    }
}

// Either backend behind one type.

/// Defines an enum holding our stack's `$stack` or the host's `$host`, with `From`
/// for each.
macro_rules! either_enum {
    ($(#[$attr:meta])* $name:ident($stack:ty, $host:ty)) => {
        $(#[$attr])*
        pub enum $name {
            /// Our TCP/IP stack (over a TAP device).
            Stack($stack),
            /// The host kernel's sockets.
            Host($host),
        }

        impl From<$stack> for $name {
            fn from(x: $stack) -> Self {
                $name::Stack(x)
            }
        }

        impl From<$host> for $name {
            fn from(x: $host) -> Self {
                $name::Host(x)
            }
        }
    };
}

/// Runs `$body` with `$x` bound to whichever backend's value `$v` (a `$ty`) holds;
/// `$body` calls the backend traits, so it is written once for both.
macro_rules! either {
    ($ty:ident, $v:expr, $x:ident => $body:expr) => {
        match $v {
            $ty::Stack($x) => $body,
            $ty::Host($x) => $body,
        }
    };
}

either_enum!(
    /// The network: our stack over a TAP device, or the host's sockets.
    #[derive(Clone)]
    Net(oasis_net::NetHandle, oasis_hosted::HostNet)
);
either_enum!(
    /// A listening socket of either backend.
    Listener(oasis_net::TcpListener, oasis_hosted::TcpListener)
);
either_enum!(
    /// A TCP connection of either backend.
    Stream(oasis_net::TcpStream, oasis_hosted::TcpStream)
);
either_enum!(
    /// A UDP socket of either backend.
    Udp(oasis_net::UdpSocket, oasis_hosted::UdpSocket)
);

impl Backend for Net {
    type Listener = Listener;
    type Stream = Stream;
    type Udp = Udp;

    fn tcp_listen(&self, port: u16) -> Result<Listener, NetError> {
        either!(Net, self, n => Backend::tcp_listen(n, port).map(Listener::from))
    }

    fn udp_bind(&self, port: u16) -> Result<Udp, NetError> {
        either!(Net, self, n => Backend::udp_bind(n, port).map(Udp::from))
    }

    async fn tcp_connect(&self, addr: SocketAddr) -> Result<Stream, NetError> {
        either!(Net, self, n => Backend::tcp_connect(n, addr).await.map(Stream::from))
    }

    fn address(&self) -> IpAddr {
        either!(Net, self, n => Backend::address(n))
    }

    fn stats(&self) -> Option<oasis_net::NetStats> {
        either!(Net, self, n => Backend::stats(n))
    }
}

impl ListenerOps for Listener {
    type Stream = Stream;

    async fn accept(&self) -> Result<(Stream, SocketAddr), NetError> {
        either!(Listener, self, l => {
            let (s, peer) = ListenerOps::accept(l).await?;
            Ok((Stream::from(s), peer))
        })
    }

    fn local_addr(&self) -> SocketAddr {
        either!(Listener, self, l => ListenerOps::local_addr(l))
    }

    fn admits_connections(&self) -> bool {
        either!(Listener, self, l => ListenerOps::admits_connections(l))
    }
}

impl StreamOps for Stream {
    async fn read(&self, buf: &mut [u8]) -> Result<usize, NetError> {
        either!(Stream, self, s => StreamOps::read(s, buf).await)
    }

    async fn write(&self, buf: &[u8]) -> Result<usize, NetError> {
        either!(Stream, self, s => StreamOps::write(s, buf).await)
    }

    async fn flush(&self) -> Result<(), NetError> {
        either!(Stream, self, s => StreamOps::flush(s).await)
    }

    async fn shutdown(&mut self) -> Result<(), NetError> {
        either!(Stream, self, s => StreamOps::shutdown(s).await)
    }

    fn abort(self) {
        either!(Stream, self, s => StreamOps::abort(s))
    }

    fn peer_addr(&self) -> SocketAddr {
        either!(Stream, self, s => StreamOps::peer_addr(s))
    }

    fn local_addr(&self) -> SocketAddr {
        either!(Stream, self, s => StreamOps::local_addr(s))
    }

    fn set_keepalive(&self, interval: Option<Duration>) {
        either!(Stream, self, s => StreamOps::set_keepalive(s, interval))
    }

    fn set_timeout(&self, timeout: Option<Duration>) {
        either!(Stream, self, s => StreamOps::set_timeout(s, timeout))
    }

    fn set_nodelay(&self, nodelay: bool) {
        either!(Stream, self, s => StreamOps::set_nodelay(s, nodelay))
    }
}

impl UdpOps for Udp {
    async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), NetError> {
        either!(Udp, self, s => UdpOps::recv_from(s, buf).await)
    }

    async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> Result<(), NetError> {
        either!(Udp, self, s => UdpOps::send_to(s, buf, addr).await)
    }

    fn local_addr(&self) -> SocketAddr {
        either!(Udp, self, s => UdpOps::local_addr(s))
    }
}
