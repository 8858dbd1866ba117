//! `TcpListener` and `TcpStream`: async TCP over the shared stack.
//!
//! smoltcp has no listen backlog: a [`TcpListener`] is a set of sockets in LISTEN
//! state on its port, which the poller replenishes as they take connections, plus a
//! queue of established connections that [`TcpListener::accept`] hands out. Reads and
//! writes copy between the caller's slice and the socket buffers; the poller moves
//! the frames.

use core::future::poll_fn;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::task::Poll;
use core::time::Duration;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;

use crate::error::NetError;
use crate::stack::{NetHandle, smol_duration};

/// A listening TCP port. Dropping it stops listening: connections not yet accepted
/// are reset; accepted streams live on.
pub struct TcpListener {
    net: NetHandle,
    port: u16,
}

impl core::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TcpListener")
            .field("port", &self.port)
            .finish()
    }
}

impl TcpListener {
    pub(crate) fn new(net: NetHandle, port: u16) -> Self {
        Self { net, port }
    }

    /// The listening address: the configured IPv4 address (unspecified before one is
    /// configured) and the port.
    pub fn local_addr(&self) -> SocketAddr {
        let ip = self.net.ipv4().map_or(Ipv4Addr::UNSPECIFIED, |c| c.addr);
        SocketAddr::new(IpAddr::V4(ip), self.port)
    }

    /// Waits for the next established connection; returns it and the peer's address.
    pub async fn accept(&self) -> Result<(TcpStream, SocketAddr), NetError> {
        poll_fn(|cx| {
            let mut core = self.net.core.lock();
            loop {
                let Some(l) = core.listeners.get_mut(&self.port) else {
                    return Poll::Ready(Err(NetError::InvalidState));
                };
                let Some(h) = l.ready.pop_front() else {
                    if !l.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                        l.wakers.push(cx.waker().clone());
                    }
                    return Poll::Pending;
                };
                let s = core.tcp(h);
                match (s.local_endpoint(), s.remote_endpoint()) {
                    (Some(local), Some(peer)) => {
                        // The handshake timeout set by the listener ends here.
                        s.set_timeout(None);
                        core.track_accepted(h, peer);
                        let peer = SocketAddr::from(peer);
                        let stream = TcpStream::new(self.net.clone(), h, local.into(), peer);
                        return Poll::Ready(Ok((stream, peer)));
                    }
                    // Reset before anyone accepted it: skip it.
                    _ => core.retire_tcp(h),
                }
            }
        })
        .await
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        self.net.core.lock().unlisten(self.port);
    }
}

/// One TCP connection. Dropping it closes gracefully: queued data and a FIN still go
/// out, and the poller frees the socket once closed, or resets it after
/// `NetConfig::close_linger`.
pub struct TcpStream {
    net: NetHandle,
    handle: SocketHandle,
    local: SocketAddr,
    peer: SocketAddr,
}

impl core::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.local)
            .field("peer", &self.peer)
            .finish()
    }
}

/// The error for an operation on a socket that can no longer do it.
fn closed_error(state: tcp::State) -> NetError {
    match state {
        tcp::State::Closed => NetError::ConnectionReset,
        _ => NetError::InvalidState,
    }
}

impl TcpStream {
    pub(crate) fn new(
        net: NetHandle,
        handle: SocketHandle,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> Self {
        Self {
            net,
            handle,
            local,
            peer,
        }
    }

    pub(crate) fn set_local(&mut self, local: SocketAddr) {
        self.local = local;
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// This end's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Reads at least one byte into `buf`, waiting for data; `Ok(0)` once the peer
    /// has closed its side (or when `buf` is empty). `ConnectionReset` after a RST.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        self.read_shared(buf).await
    }

    /// [`read`](Self::read) through a shared reference: one task may read while
    /// another writes (the socket has one waker per direction). Cancel-safe: dropping
    /// the future loses no data.
    pub async fn read_shared(&self, buf: &mut [u8]) -> Result<usize, NetError> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            let mut core = self.net.core.lock();
            let s = core.tcp(self.handle);
            match s.recv_slice(buf) {
                Ok(0) => {
                    s.register_recv_waker(cx.waker());
                    Poll::Pending
                }
                Ok(n) => Poll::Ready(Ok(n)),
                Err(tcp::RecvError::Finished) => Poll::Ready(Ok(0)),
                Err(tcp::RecvError::InvalidState) => Poll::Ready(Err(closed_error(s.state()))),
            }
        })
        .await
    }

    /// Queues at least one byte of `buf`, waiting for room in the send buffer;
    /// returns how many were queued.
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        self.write_shared(buf).await
    }

    /// [`write`](Self::write) through a shared reference (see
    /// [`read_shared`](Self::read_shared)). Cancel-safe: bytes are queued only when
    /// the future completes.
    pub async fn write_shared(&self, buf: &[u8]) -> Result<usize, NetError> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            let mut core = self.net.core.lock();
            let s = core.tcp(self.handle);
            match s.send_slice(buf) {
                Ok(0) => {
                    s.register_send_waker(cx.waker());
                    Poll::Pending
                }
                Ok(n) => Poll::Ready(Ok(n)),
                Err(tcp::SendError::InvalidState) => Poll::Ready(Err(closed_error(s.state()))),
            }
        })
        .await
    }

    /// Queues all of `buf`.
    pub async fn write_all(&mut self, mut buf: &[u8]) -> Result<(), NetError> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            buf = buf.get(n..).unwrap_or_default();
        }
        Ok(())
    }

    /// Waits until the peer has acknowledged everything queued.
    pub async fn flush(&mut self) -> Result<(), NetError> {
        self.flush_shared().await
    }

    /// [`flush`](Self::flush) through a shared reference.
    pub async fn flush_shared(&self) -> Result<(), NetError> {
        poll_fn(|cx| {
            let mut core = self.net.core.lock();
            let s = core.tcp(self.handle);
            if s.send_queue() == 0 {
                Poll::Ready(Ok(()))
            } else if s.state() == tcp::State::Closed {
                Poll::Ready(Err(NetError::ConnectionReset))
            } else {
                s.register_send_waker(cx.waker());
                Poll::Pending
            }
        })
        .await
    }

    /// Closes the sending side: a FIN follows the queued data. Reading goes on until
    /// the peer closes too.
    pub async fn shutdown(&mut self) -> Result<(), NetError> {
        let mut core = self.net.core.lock();
        let s = core.tcp(self.handle);
        if s.state() == tcp::State::Closed && s.send_queue() > 0 {
            return Err(NetError::ConnectionReset);
        }
        s.close();
        Ok(())
    }

    /// Resets the connection (RST) and drops the stream; queued data is discarded.
    pub fn abort(self) {
        self.net.core.lock().tcp(self.handle).abort();
        // Drop retires the socket; `close` on an aborted socket does nothing.
    }

    /// Sends a keep-alive probe after `interval` of silence (`None`: never).
    pub fn set_keepalive(&self, interval: Option<Duration>) {
        self.net
            .core
            .lock()
            .tcp(self.handle)
            .set_keep_alive(interval.map(smol_duration));
    }

    /// Aborts the connection when the peer stays silent for `timeout` while data is
    /// unacknowledged or keep-alive is on (smoltcp's idle timeout; `None`: never).
    pub fn set_timeout(&self, timeout: Option<Duration>) {
        self.net
            .core
            .lock()
            .tcp(self.handle)
            .set_timeout(timeout.map(smol_duration));
    }

    /// `true` disables Nagle's algorithm: small writes go out at once.
    pub fn set_nodelay(&self, nodelay: bool) {
        self.net
            .core
            .lock()
            .tcp(self.handle)
            .set_nagle_enabled(!nodelay);
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let mut core = self.net.core.lock();
        core.tcp(self.handle).close();
        core.retire_tcp(self.handle);
    }
}

impl embedded_io::ErrorType for TcpStream {
    type Error = NetError;
}

impl embedded_io_async::Read for TcpStream {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        TcpStream::read(self, buf).await
    }
}

impl embedded_io_async::Write for TcpStream {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        TcpStream::write(self, buf).await
    }

    async fn flush(&mut self) -> Result<(), NetError> {
        TcpStream::flush(self).await
    }
}
