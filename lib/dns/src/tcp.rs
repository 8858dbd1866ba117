//! DNS over TCP framing (RFC 1035 §4.2.2, RFC 7766 §8): each message is preceded by
//! a 2-byte big-endian length, and a connection may carry many queries, pipelined.
//!
//! [`TcpFramer`] collects bytes as they arrive and hands out complete messages;
//! [`frame`] writes one length-prefixed message. Responses to pipelined queries
//! may be written in any order (RFC 7766 §7), but we answer in order.

use alloc::vec::Vec;

/// Largest DNS message over TCP.
pub const MAX_MESSAGE: usize = 65535;

/// Why bytes could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The peer sent more unconsumed data than the buffer may hold.
    #[error("{buffered} buffered bytes exceed the {limit}-byte limit")]
    Overflow {
        /// Bytes that would be buffered.
        buffered: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The allocator could not grow the buffer (the connection should be closed).
    #[error("out of memory buffering {0} bytes")]
    OutOfMemory(usize),
    /// A message over [`MAX_MESSAGE`] bytes cannot be framed.
    #[error("message of {0} bytes does not fit a 2-byte length")]
    TooLong(usize),
}

/// Reassembles length-prefixed messages from a TCP byte stream.
///
/// Memory is bounded: at most `limit` unconsumed bytes are held (at least one full
/// frame, 65537 bytes). The buffer is reused, so a long-lived connection does not
/// allocate per query once it has grown.
#[derive(Debug)]
pub struct TcpFramer {
    buf: Vec<u8>,
    /// Start of unconsumed data in `buf`.
    start: usize,
    limit: usize,
}

impl Default for TcpFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl TcpFramer {
    /// A framer that holds at most two full frames.
    pub fn new() -> Self {
        Self::with_limit(2 * (MAX_MESSAGE + 2))
    }

    /// A framer that holds at most `limit` unconsumed bytes (raised to one full frame).
    pub fn with_limit(limit: usize) -> Self {
        TcpFramer {
            buf: Vec::new(),
            start: 0,
            limit: limit.max(MAX_MESSAGE + 2),
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) -> Result<(), FrameError> {
        let buffered = self.buf.len() - self.start + data.len();
        if buffered > self.limit {
            return Err(FrameError::Overflow {
                buffered,
                limit: self.limit,
            });
        }
        if self.start > 0 {
            // Move the unconsumed tail to the front before growing.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        // Fallible: a peer's bytes must never abort the kernel.
        self.buf
            .try_reserve(data.len())
            .map_err(|_| FrameError::OutOfMemory(data.len()))?;
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// The next complete message, if one has fully arrived. Call
    /// [`TcpFramer::consume`] when done with it.
    pub fn peek(&self) -> Option<&[u8]> {
        let rest = &self.buf[self.start..];
        let len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
        rest.get(2..2 + len)
    }

    /// Drops the message [`TcpFramer::peek`] returned. Does nothing if none is complete.
    pub fn consume(&mut self) {
        if let Some(len) = self.peek().map(<[u8]>::len) {
            self.start += 2 + len;
            if self.start == self.buf.len() {
                self.buf.clear();
                self.start = 0;
            }
        }
    }

    /// Bytes received but not yet consumed.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

/// Appends `msg` to `out` with its 2-byte length prefix.
pub fn frame(msg: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    let len = u16::try_from(msg.len()).map_err(|_| FrameError::TooLong(msg.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassembles_pipelined_and_split_messages() {
        let mut stream = Vec::new();
        frame(b"first", &mut stream).unwrap();
        frame(b"", &mut stream).unwrap();
        frame(b"second message", &mut stream).unwrap();
        let mut f = TcpFramer::new();
        let mut got = Vec::new();
        // Feed one byte at a time: the worst case for reassembly.
        for b in &stream {
            f.push(core::slice::from_ref(b)).unwrap();
            while let Some(m) = f.peek() {
                got.push(m.to_vec());
                f.consume();
            }
        }
        assert_eq!(
            got,
            [b"first".to_vec(), Vec::new(), b"second message".to_vec()]
        );
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn bounded_memory_and_long_messages() {
        let mut f = TcpFramer::with_limit(0);
        assert!(f.push(&[0xff, 0xff]).is_ok());
        assert!(f.push(&alloc::vec![0; 65535]).is_ok());
        assert!(f.peek().is_some());
        assert!(matches!(f.push(&[1]), Err(FrameError::Overflow { .. })));
        f.consume();
        assert!(f.push(&[1]).is_ok());
        assert!(f.peek().is_none());
        let mut out = Vec::new();
        assert!(matches!(
            frame(&alloc::vec![0; 65536], &mut out),
            Err(FrameError::TooLong(65536))
        ));
    }
}
