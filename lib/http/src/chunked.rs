//! Incremental decoder for the chunked transfer coding (RFC 9112 §7.1), with limits.

use crate::limits::MAX_CHUNK_LINE;

/// Why a chunked body was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    /// A byte that is neither a hex digit nor allowed after one in a chunk-size line.
    #[error("invalid byte 0x{0:02x} in chunk size line")]
    InvalidSize(u8),
    /// A chunk-size line with no hex digits.
    #[error("chunk size line has no hex digits")]
    EmptySize,
    /// A chunk size that does not fit 64 bits.
    #[error("chunk size has more than 16 significant hex digits")]
    SizeOverflow,
    /// The decoded body would exceed the limit.
    #[error("chunked body exceeds the {limit}-byte limit")]
    BodyTooLarge {
        /// The body limit in bytes.
        limit: usize,
    },
    /// A chunk-size or trailer line longer than [`MAX_CHUNK_LINE`].
    #[error("chunk line longer than {MAX_CHUNK_LINE} bytes")]
    LineTooLong,
    /// CR not followed by LF, or a bare LF, where CRLF is required.
    #[error("expected CRLF, found byte 0x{0:02x}")]
    BadLineEnding(u8),
    /// The trailer section exceeds the head-size limit.
    #[error("chunked trailer section exceeds {limit} bytes")]
    TrailerTooLarge {
        /// The trailer limit in bytes.
        limit: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// In the hex digits of a chunk size.
    Size { value: u64, digits: usize },
    /// After the digits: optional whitespace and extensions up to CR.
    SizeTail { value: u64 },
    /// Saw CR ending a size line.
    SizeLf { value: u64 },
    /// Inside chunk data.
    Data { remaining: u64 },
    /// Expecting CR after chunk data.
    DataCr,
    /// Expecting LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a non-empty trailer line.
    TrailerLine,
    /// Saw CR; `empty` when the line it ends is empty (end of body).
    TrailerLf { empty: bool },
    /// The body is complete.
    Done,
}

/// Progress of one [`ChunkedDecoder::decode`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Input bytes consumed; the caller drops them.
    pub consumed: usize,
    /// Whether the terminating empty line was consumed.
    pub done: bool,
}

/// Decodes a chunked body incrementally: feed whatever bytes arrived, get the data out
/// through a callback. Never panics, never allocates.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// Decoded bytes so far.
    total: u64,
    /// Bytes in the current size or trailer line.
    line: usize,
    /// Bytes in the trailer section so far.
    trailer: usize,
    max_body: usize,
    max_trailer: usize,
}

impl ChunkedDecoder {
    /// A decoder for one body of at most `max_body` decoded bytes and a trailer section of
    /// at most `max_trailer` bytes.
    pub fn new(max_body: usize, max_trailer: usize) -> Self {
        ChunkedDecoder {
            state: State::Size {
                value: 0,
                digits: 0,
            },
            total: 0,
            line: 0,
            trailer: 0,
            max_body,
            max_trailer,
        }
    }

    /// Whether the whole body has been decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decoded body bytes so far.
    pub fn decoded_len(&self) -> u64 {
        self.total
    }

    /// Consumes as much of `input` as possible, passing chunk data to `sink`. Stops right
    /// after the body's final CRLF, leaving any following (pipelined) bytes unconsumed.
    pub fn decode(
        &mut self,
        input: &[u8],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<Progress, ChunkedError> {
        let mut i = 0;
        while i < input.len() && self.state != State::Done {
            if let State::Data { remaining } = self.state {
                let avail = input.len() - i;
                let take = usize::try_from(remaining).map_or(avail, |r| r.min(avail));
                if let Some(data) = input.get(i..i + take) {
                    sink(data);
                }
                i += take;
                let left = remaining - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data { remaining: left }
                };
                continue;
            }
            let Some(&b) = input.get(i) else { break };
            i += 1;
            self.step(b)?;
        }
        Ok(Progress {
            consumed: i,
            done: self.state == State::Done,
        })
    }

    fn count_line(&mut self) -> Result<(), ChunkedError> {
        self.line += 1;
        if self.line > MAX_CHUNK_LINE {
            return Err(ChunkedError::LineTooLong);
        }
        Ok(())
    }

    fn step(&mut self, b: u8) -> Result<(), ChunkedError> {
        self.state = match self.state {
            State::Size { value, digits } => {
                self.count_line()?;
                if let Some(d) = hex_value(b) {
                    if value >> 60 != 0 {
                        return Err(ChunkedError::SizeOverflow);
                    }
                    State::Size {
                        value: value << 4 | u64::from(d),
                        digits: digits + 1,
                    }
                } else if digits == 0 {
                    return Err(if b == b'\r' || b == b'\n' {
                        ChunkedError::EmptySize
                    } else {
                        ChunkedError::InvalidSize(b)
                    });
                } else {
                    match b {
                        b' ' | b'\t' | b';' => State::SizeTail { value },
                        b'\r' => State::SizeLf { value },
                        _ => return Err(ChunkedError::InvalidSize(b)),
                    }
                }
            }
            State::SizeTail { value } => {
                self.count_line()?;
                match b {
                    b'\r' => State::SizeLf { value },
                    b'\n' => return Err(ChunkedError::BadLineEnding(b)),
                    b'\t' => State::SizeTail { value },
                    0..0x20 | 0x7f => return Err(ChunkedError::InvalidSize(b)),
                    _ => State::SizeTail { value },
                }
            }
            State::SizeLf { value } => {
                if b != b'\n' {
                    return Err(ChunkedError::BadLineEnding(b));
                }
                self.line = 0;
                let total = self.total.saturating_add(value);
                if total > self.max_body as u64 {
                    return Err(ChunkedError::BodyTooLarge {
                        limit: self.max_body,
                    });
                }
                self.total = total;
                if value == 0 {
                    State::TrailerStart
                } else {
                    State::Data { remaining: value }
                }
            }
            State::Data { .. } => return Err(ChunkedError::InvalidSize(b)),
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return Err(ChunkedError::BadLineEnding(b)),
            },
            State::DataLf => match b {
                b'\n' => State::Size {
                    value: 0,
                    digits: 0,
                },
                _ => return Err(ChunkedError::BadLineEnding(b)),
            },
            State::TrailerStart | State::TrailerLine => {
                let start = self.state == State::TrailerStart;
                self.trailer += 1;
                if self.trailer > self.max_trailer {
                    return Err(ChunkedError::TrailerTooLarge {
                        limit: self.max_trailer,
                    });
                }
                self.count_line()?;
                match b {
                    b'\r' => State::TrailerLf { empty: start },
                    b'\n' => return Err(ChunkedError::BadLineEnding(b)),
                    _ => State::TrailerLine,
                }
            }
            State::TrailerLf { empty } => {
                if b != b'\n' {
                    return Err(ChunkedError::BadLineEnding(b));
                }
                self.line = 0;
                if empty {
                    State::Done
                } else {
                    State::TrailerStart
                }
            }
            State::Done => State::Done,
        };
        Ok(())
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn decode_all(input: &[u8], max: usize) -> Result<(Vec<u8>, usize), ChunkedError> {
        let mut d = ChunkedDecoder::new(max, 1024);
        let mut out = Vec::new();
        let p = d.decode(input, &mut |b| out.extend_from_slice(b))?;
        assert!(p.done, "incomplete");
        Ok((out, p.consumed))
    }

    #[test]
    fn decodes_simple_body() {
        let (out, used) = decode_all(b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\nNEXT", 100).unwrap();
        assert_eq!(out, b"Wikipedia");
        assert_eq!(used, 24);
    }

    #[test]
    fn extensions_and_trailers_are_skipped() {
        let input = b"3;name=val\r\nabc\r\nA \t;x\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\n";
        let (out, _) = decode_all(input, 100).unwrap();
        assert_eq!(out, b"abc0123456789");
    }

    #[test]
    fn byte_at_a_time_matches_whole() {
        let input = b"4\r\nWiki\r\n5\r\npedia\r\n0\r\nT: v\r\n\r\n";
        let mut d = ChunkedDecoder::new(100, 100);
        let mut out = Vec::new();
        for (n, b) in input.iter().enumerate() {
            let p = d
                .decode(core::slice::from_ref(b), &mut |x| out.extend_from_slice(x))
                .unwrap();
            assert_eq!(p.consumed, 1);
            assert_eq!(p.done, n == input.len() - 1);
        }
        assert_eq!(out, b"Wikipedia");
    }

    #[test]
    fn rejects_bad_sizes() {
        assert_eq!(
            decode_all(b"x\r\n", 10),
            Err(ChunkedError::InvalidSize(b'x'))
        );
        assert_eq!(decode_all(b"\r\n", 10), Err(ChunkedError::EmptySize));
        assert_eq!(
            decode_all(b"-1\r\n", 10),
            Err(ChunkedError::InvalidSize(b'-'))
        );
        assert_eq!(
            decode_all(b"0x5\r\n", 10),
            Err(ChunkedError::InvalidSize(b'x'))
        );
        assert_eq!(
            decode_all(b"5\n", 10),
            Err(ChunkedError::InvalidSize(b'\n'))
        );
        assert_eq!(
            decode_all(b"5\r\rx", 10),
            Err(ChunkedError::BadLineEnding(b'\r'))
        );
    }

    #[test]
    fn rejects_overflowing_and_oversized_chunks() {
        assert_eq!(
            decode_all(b"10000000000000000\r\n", 10),
            Err(ChunkedError::SizeOverflow)
        );
        assert_eq!(
            decode_all(b"ffffffffffffffff\r\n", 10),
            Err(ChunkedError::BodyTooLarge { limit: 10 })
        );
        // Leading zeros are fine and do not count towards overflow.
        let (out, _) = decode_all(b"00000000000000000001\r\na\r\n0\r\n\r\n", 10).unwrap();
        assert_eq!(out, b"a");
        // The sum of chunks counts, not each chunk.
        assert_eq!(
            decode_all(b"6\r\nabcdef\r\n6\r\nabcdef\r\n", 10),
            Err(ChunkedError::BodyTooLarge { limit: 10 })
        );
    }

    #[test]
    fn rejects_missing_crlf_after_data() {
        assert_eq!(
            decode_all(b"3\r\nabcX", 10),
            Err(ChunkedError::BadLineEnding(b'X'))
        );
        assert_eq!(
            decode_all(b"3\r\nabc\rX", 10),
            Err(ChunkedError::BadLineEnding(b'X'))
        );
    }

    #[test]
    fn limits_lines_and_trailers() {
        let mut long = Vec::from(&b"1;"[..]);
        long.resize(MAX_CHUNK_LINE + 10, b'a');
        assert_eq!(decode_all(&long, 10), Err(ChunkedError::LineTooLong));
        let mut d = ChunkedDecoder::new(10, 8);
        let r = d.decode(b"0\r\nX-Long: 123456\r\n\r\n", &mut |_| {});
        assert_eq!(r, Err(ChunkedError::TrailerTooLarge { limit: 8 }));
    }

    #[test]
    fn control_bytes_in_extensions_are_rejected() {
        assert_eq!(
            decode_all(b"1;a\0b\r\n", 10),
            Err(ChunkedError::InvalidSize(0))
        );
    }
}
