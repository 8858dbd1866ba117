//! Size limits applied to every request, as named defaults plus a runtime [`Limits`] value.

/// Default longest request line (method, target, version), in bytes. Longer → 414.
///
/// Same size as one of nginx's `large_client_header_buffers` (8 KiB).
pub const DEFAULT_MAX_REQUEST_LINE: usize = 8 * 1024;
/// Default longest request head (request line and all header lines), in bytes. Longer → 431.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Default most header fields in one request. More → 431.
pub const DEFAULT_MAX_HEADERS: usize = 64;
/// Default largest request body after chunked decoding, in bytes. Larger → 413.
///
/// nginx's `client_max_body_size` default (1 MiB).
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// Upper bound for [`Limits::headers`]: the header table lives on the stack while parsing.
pub const MAX_HEADERS_CAP: usize = 100;
/// Longest chunk-size line (size, extensions, CRLF) or trailer line in a chunked body.
pub const MAX_CHUNK_LINE: usize = 1024;
/// Bytes the input buffer holds beyond [`Limits::header_bytes`], so that body bytes and
/// pipelined requests can follow a maximal head. Always larger than [`MAX_CHUNK_LINE`].
pub const INPUT_SLACK: usize = 4 * 1024;
/// First size of a connection's input buffer, allocated when it first waits for bytes.
/// Typical request heads (curl, load generators, browsers without large cookies) fit;
/// larger ones double it, up to [`Limits::input_buffer_len`]. It is also what an idle
/// keep-alive connection keeps: larger buffers are freed between requests.
pub const INITIAL_INPUT_BUFFER: usize = 1024;

/// Per-connection limits. Build with [`Limits::default`] and adjust fields.
///
/// Values are clamped by [`Limits::normalized`] when a connection is created: at least
/// one header, at most [`MAX_HEADERS_CAP`], and a request line no longer than the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line in bytes (→ 414 URI Too Long).
    pub request_line: usize,
    /// Longest request head in bytes (→ 431 Request Header Fields Too Large).
    pub header_bytes: usize,
    /// Most header fields (→ 431).
    pub headers: usize,
    /// Largest decoded request body in bytes (→ 413 Content Too Large).
    pub body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_line: DEFAULT_MAX_REQUEST_LINE,
            header_bytes: DEFAULT_MAX_HEADER_BYTES,
            headers: DEFAULT_MAX_HEADERS,
            body: DEFAULT_MAX_BODY,
        }
    }
}

impl Limits {
    /// The same limits with every field in its workable range (see the type's docs).
    pub fn normalized(self) -> Limits {
        let header_bytes = self.header_bytes.max(16);
        Limits {
            request_line: self.request_line.clamp(16, header_bytes),
            header_bytes,
            headers: self.headers.clamp(1, MAX_HEADERS_CAP),
            body: self.body,
        }
    }

    /// Largest size the per-connection input buffer grows to under these limits.
    pub fn input_buffer_len(&self) -> usize {
        self.header_bytes.saturating_add(INPUT_SLACK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_clamps_header_count_and_line() {
        let l = Limits {
            request_line: 1 << 20,
            header_bytes: 100,
            headers: 10_000,
            body: 0,
        }
        .normalized();
        assert_eq!(l.headers, MAX_HEADERS_CAP);
        assert_eq!(l.request_line, 100);
        let l = Limits {
            headers: 0,
            ..Limits::default()
        }
        .normalized();
        assert_eq!(l.headers, 1);
    }

    #[test]
    fn input_buffer_leaves_room_for_a_chunk_line() {
        let l = Limits::default();
        assert!(l.input_buffer_len() > l.header_bytes + MAX_CHUNK_LINE);
    }
}
