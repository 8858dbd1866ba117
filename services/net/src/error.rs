//! `NetError`: what a socket operation or the stack's setup can fail with.

use core::net::SocketAddr;

use crate::config::ConfigError;

/// Why a network operation failed. Each message names the value at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// The peer reset the connection (RST), or the connection was aborted locally or
    /// by an idle timeout while in use.
    #[error("connection reset by peer")]
    ConnectionReset,
    /// The peer answered the SYN with RST: nothing listens on that port.
    #[error("connection refused: nothing listens on the remote port")]
    ConnectionRefused,
    /// The peer did not answer within the connect timeout.
    #[error("connection timed out")]
    TimedOut,
    /// Another socket of the same protocol is bound to the port.
    #[error("port {0} is already in use")]
    AddressInUse(u16),
    /// The stack already holds its maximum of live TCP connections.
    #[error("too many connections: the limit is {0} (NetConfig::max_connections)")]
    TooManyConnections(usize),
    /// The operation does not fit the socket's state (e.g. write after shutdown).
    #[error("operation not valid in the socket's current state (e.g. write after shutdown)")]
    InvalidState,
    /// No IPv4 address is configured yet (DHCP has not answered, or the lease expired).
    #[error("the network is not configured: no IPv4 address (waiting for DHCP?)")]
    NotConfigured,
    /// A datagram does not fit: a receive buffer smaller than the datagram (the
    /// datagram is dropped), or a datagram larger than the socket's send buffer.
    #[error("buffer of {capacity} bytes is too small for a {needed}-byte datagram")]
    BufferTooSmall {
        /// Bytes the datagram needs.
        needed: usize,
        /// Bytes available.
        capacity: usize,
    },
    /// The destination cannot be used: unspecified address, port 0, or no route.
    #[error("cannot reach {0}: unspecified address, port 0 or no route")]
    Unaddressable(SocketAddr),
    /// Every ephemeral port (49152..=65535) is in use.
    #[error("no free ephemeral port in 49152..=65535")]
    NoFreePort,
    /// Allocating a socket's buffers failed.
    #[error("out of memory allocating {0} bytes of socket buffers")]
    OutOfMemory(usize),
    /// The configuration given to the stack is invalid.
    #[error("invalid network configuration: {0}")]
    Config(#[from] ConfigError),
}

impl embedded_io::Error for NetError {
    fn kind(&self) -> embedded_io::ErrorKind {
        use embedded_io::ErrorKind;
        match self {
            NetError::ConnectionReset => ErrorKind::ConnectionReset,
            NetError::ConnectionRefused => ErrorKind::ConnectionRefused,
            NetError::TimedOut => ErrorKind::TimedOut,
            NetError::AddressInUse(_) => ErrorKind::AddrInUse,
            NetError::TooManyConnections(_) | NetError::NoFreePort => ErrorKind::AddrNotAvailable,
            NetError::InvalidState => ErrorKind::NotConnected,
            NetError::NotConfigured | NetError::Unaddressable(_) => ErrorKind::AddrNotAvailable,
            NetError::BufferTooSmall { .. } => ErrorKind::InvalidInput,
            NetError::OutOfMemory(_) => ErrorKind::OutOfMemory,
            NetError::Config(_) => ErrorKind::InvalidInput,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn messages_name_values() {
        assert_eq!(
            NetError::AddressInUse(80).to_string(),
            "port 80 is already in use"
        );
        assert!(
            NetError::TooManyConnections(256)
                .to_string()
                .contains("256")
        );
        let e = NetError::BufferTooSmall {
            needed: 1400,
            capacity: 512,
        };
        assert_eq!(
            e.to_string(),
            "buffer of 512 bytes is too small for a 1400-byte datagram"
        );
        assert_eq!(
            embedded_io::Error::kind(&NetError::ConnectionReset),
            embedded_io::ErrorKind::ConnectionReset
        );
    }
}
