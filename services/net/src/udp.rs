//! `UdpSocket`: async datagrams over the shared stack.

use core::future::poll_fn;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::task::Poll;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;

use crate::error::NetError;
use crate::stack::NetHandle;

/// IPv4 (20) and UDP (8) header bytes: a datagram carries at most `mtu - 28` bytes,
/// since the stack does not fragment.
const UDP_IPV4_OVERHEAD: usize = 28;

/// A bound UDP port. Dropping it unbinds the port once its queued datagrams are sent.
pub struct UdpSocket {
    net: NetHandle,
    handle: SocketHandle,
    port: u16,
}

impl core::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("port", &self.port)
            .finish()
    }
}

impl UdpSocket {
    pub(crate) fn new(net: NetHandle, handle: SocketHandle, port: u16) -> Self {
        Self { net, handle, port }
    }

    /// The bound address: the configured IPv4 address (unspecified before one is
    /// configured) and the port.
    pub fn local_addr(&self) -> SocketAddr {
        let ip = self.net.ipv4().map_or(Ipv4Addr::UNSPECIFIED, |c| c.addr);
        SocketAddr::new(IpAddr::V4(ip), self.port)
    }

    /// Waits for a datagram, copies it into `buf` and returns its length and sender.
    /// A datagram longer than `buf` is dropped with `BufferTooSmall`.
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), NetError> {
        poll_fn(|cx| {
            let mut core = self.net.core.lock();
            let s = core.sockets.get_mut::<udp::Socket>(self.handle);
            match s.recv() {
                Ok((data, meta)) => {
                    let Some(dst) = buf.get_mut(..data.len()) else {
                        return Poll::Ready(Err(NetError::BufferTooSmall {
                            needed: data.len(),
                            capacity: buf.len(),
                        }));
                    };
                    dst.copy_from_slice(data);
                    Poll::Ready(Ok((data.len(), SocketAddr::from(meta.endpoint))))
                }
                Err(_) => {
                    s.register_recv_waker(cx.waker());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Queues `buf` as one datagram to `addr`, waiting for room in the send buffer.
    pub async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> Result<(), NetError> {
        if addr.ip().is_unspecified() || addr.port() == 0 {
            return Err(NetError::Unaddressable(addr));
        }
        {
            let mut core = self.net.core.lock();
            if addr.is_ipv4() && core.ipv4_configured().is_none() {
                return Err(NetError::NotConfigured);
            }
            let max = core.ip_mtu.saturating_sub(UDP_IPV4_OVERHEAD).min(
                core.sockets
                    .get_mut::<udp::Socket>(self.handle)
                    .payload_send_capacity(),
            );
            if buf.len() > max {
                return Err(NetError::BufferTooSmall {
                    needed: buf.len(),
                    capacity: max,
                });
            }
        }
        poll_fn(|cx| {
            let mut core = self.net.core.lock();
            let s = core.sockets.get_mut::<udp::Socket>(self.handle);
            match s.send_slice(buf, addr) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(udp::SendError::BufferFull) => {
                    s.register_send_waker(cx.waker());
                    Poll::Pending
                }
                Err(udp::SendError::Unaddressable) => {
                    Poll::Ready(Err(NetError::Unaddressable(addr)))
                }
            }
        })
        .await
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        self.net.core.lock().retire_udp(self.handle, self.port);
    }
}
