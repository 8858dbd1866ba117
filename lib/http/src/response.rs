//! [`ResponseWriter`]: what a handler fills in: status, headers and a body that is either
//! a `&'static` slice (zero-copy) or bytes in a reused buffer.

use alloc::vec::Vec;
use core::fmt;

use crate::status::StatusCode;

/// Headers the connection writes itself; a handler's copies are ignored.
const MANAGED: [&str; 5] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "date",
    "server",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodySource {
    Empty,
    Static(&'static [u8]),
    Owned,
}

/// The response a [`Handler`](crate::Handler) builds. One per connection, reused for
/// every request: after warm-up, building a response allocates nothing.
///
/// The connection adds `Server`, `Date` (when it has a clock), `Content-Length` and
/// `Connection` itself (and ignores a handler's copies of those and of
/// `Transfer-Encoding`); it drops the body for `HEAD` requests and for 1xx/204/304
/// statuses while keeping `Content-Length` as `GET` would have sent it. A header name
/// that is not a token, or a value containing CR, LF or NUL, turns the whole response
/// into a 500 rather than let a handler bug split it.
///
/// [`header`](ResponseWriter::header), [`header_fmt`](ResponseWriter::header_fmt) and
/// [`body_bytes`](ResponseWriter::body_bytes) allocate fallibly: when the allocator
/// refuses, the response becomes the connection's 503 (see
/// [`OVERLOADED_RESPONSE`](crate::OVERLOADED_RESPONSE)) instead of aborting. Growth of
/// the vector [`body_mut`](ResponseWriter::body_mut) hands out is the handler's own.
#[derive(Debug)]
pub struct ResponseWriter {
    status: StatusCode,
    headers: Vec<u8>,
    body: BodySource,
    owned: Vec<u8>,
    now: Option<u64>,
    close: bool,
    invalid: bool,
    /// A buffer could not grow: the connection answers 503 instead.
    overloaded: bool,
    deferred: bool,
}

impl ResponseWriter {
    pub(crate) fn new() -> Self {
        ResponseWriter {
            status: StatusCode::Ok,
            headers: Vec::new(),
            body: BodySource::Empty,
            owned: Vec::new(),
            now: None,
            close: false,
            invalid: false,
            overloaded: false,
            deferred: false,
        }
    }

    pub(crate) fn reset(&mut self, now: Option<u64>) {
        self.status = StatusCode::Ok;
        self.headers.clear();
        self.body = BodySource::Empty;
        self.owned.clear();
        self.now = now;
        self.close = false;
        self.invalid = false;
        self.overloaded = false;
        self.deferred = false;
    }

    /// Frees the header and body buffers if they hold more than `keep` bytes, so that an
    /// idle connection does not pin the largest response it ever built.
    pub(crate) fn release(&mut self, keep: usize) {
        if self.headers.capacity() > keep {
            self.headers = Vec::new();
        }
        if self.owned.capacity() > keep {
            self.owned = Vec::new();
            if self.body == BodySource::Owned {
                self.body = BodySource::Empty;
            }
        }
    }

    /// Heap bytes held by the header and body buffers.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.headers.capacity() + self.owned.capacity()
    }

    /// The current time in unix seconds, as passed to
    /// [`Connection::poll`](crate::Connection::poll); `None` when the server has no clock.
    pub fn now(&self) -> Option<u64> {
        self.now
    }

    /// Sets the status (default 200).
    pub fn set_status(&mut self, status: StatusCode) {
        self.status = status;
    }

    /// The status set so far.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Appends a header field.
    pub fn header(&mut self, name: &str, value: &[u8]) {
        // Name, ": ", value and CRLF in one fallible reservation.
        let line = name.len().saturating_add(value.len()).saturating_add(4);
        if self.headers.try_reserve(line).is_err() {
            self.overloaded = true;
            return;
        }
        if self.begin_header(name) {
            self.headers.extend_from_slice(value);
            self.end_header(value.len());
        }
    }

    /// Appends a header field whose value is formatted, without a temporary buffer.
    pub fn header_fmt(&mut self, name: &str, value: fmt::Arguments<'_>) {
        if self
            .headers
            .try_reserve(name.len().saturating_add(4))
            .is_err()
        {
            self.overloaded = true;
            return;
        }
        if self.begin_header(name) {
            let start = self.headers.len();
            // VecWriter fails only when the buffer cannot grow.
            if fmt::write(&mut VecWriter(&mut self.headers), value).is_err() {
                self.overloaded = true;
            }
            self.end_header(self.headers.len() - start);
        }
    }

    /// Sets the body to a static slice: written straight from the image, never copied.
    pub fn body_static(&mut self, body: &'static [u8]) {
        self.body = BodySource::Static(body);
    }

    /// Sets the body to a copy of `body`, kept in a buffer reused across requests.
    pub fn body_bytes(&mut self, body: &[u8]) {
        self.owned.clear();
        if self.owned.try_reserve_exact(body.len()).is_err() {
            self.overloaded = true;
            self.body = BodySource::Empty;
            return;
        }
        self.owned.extend_from_slice(body);
        self.body = BodySource::Owned;
    }

    /// Sets the body to the reused buffer and returns it, emptied, for writing into.
    /// Prefer `try_reserve` before writing much into it: an infallible growth that the
    /// allocator refuses aborts.
    pub fn body_mut(&mut self) -> &mut Vec<u8> {
        self.owned.clear();
        self.body = BodySource::Owned;
        &mut self.owned
    }

    /// Answers later: the connection sends nothing for this request now and
    /// [`Connection::poll`](crate::Connection::poll) returns
    /// [`Action::Defer`](crate::Action::Defer). The caller does its asynchronous work
    /// (a disk read, a durable write) and polls again; the connection then calls the
    /// handler again with the same request (same head, same body), and the handler
    /// answers it this time (or defers once more). Everything else set on this
    /// writer is discarded.
    pub fn defer(&mut self) {
        self.deferred = true;
    }

    /// Whether [`defer`](ResponseWriter::defer) was called for this request.
    pub fn is_deferred(&self) -> bool {
        self.deferred
    }

    /// Closes the connection after this response.
    pub fn close(&mut self) {
        self.close = true;
    }

    /// Length of the body set so far (before HEAD/304 suppression), for access logs.
    pub fn body_len(&self) -> usize {
        match &self.body {
            BodySource::Empty => 0,
            BodySource::Static(b) => b.len(),
            BodySource::Owned => self.owned.len(),
        }
    }

    /// Whether a header with this name was added (case-insensitive).
    pub fn has_header(&self, name: &str) -> bool {
        self.header_lines().any(|line| {
            line.split(|&b| b == b':')
                .next()
                .is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()))
        })
    }

    fn header_lines(&self) -> impl Iterator<Item = &[u8]> {
        self.headers
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
    }

    fn begin_header(&mut self, name: &str) -> bool {
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            self.invalid = true;
            return false;
        }
        if MANAGED.iter().any(|m| m.eq_ignore_ascii_case(name)) {
            return false;
        }
        self.headers.extend_from_slice(name.as_bytes());
        self.headers.extend_from_slice(b": ");
        true
    }

    fn end_header(&mut self, value_len: usize) {
        let start = self.headers.len() - value_len;
        if self
            .headers
            .get(start..)
            .is_some_and(|v| v.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)))
        {
            self.invalid = true;
        }
        self.headers.extend_from_slice(b"\r\n");
    }

    pub(crate) fn is_invalid(&self) -> bool {
        self.invalid
    }

    pub(crate) fn is_overloaded(&self) -> bool {
        self.overloaded
    }

    pub(crate) fn wants_close(&self) -> bool {
        self.close
    }

    pub(crate) fn header_block(&self) -> &[u8] {
        &self.headers
    }

    pub(crate) fn body(&self) -> &[u8] {
        match self.body {
            BodySource::Empty => &[],
            BodySource::Static(s) => s,
            BodySource::Owned => &self.owned,
        }
    }
}

/// `tchar` from RFC 9110 §5.6.2.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `fmt::Write` into a byte vector; fails (rather than aborts) when it cannot grow.
pub(crate) struct VecWriter<'a>(pub(crate) &'a mut Vec<u8>);

impl fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.try_reserve(s.len()).map_err(|_| fmt::Error)?;
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_accumulate_as_lines() {
        let mut w = ResponseWriter::new();
        w.header("Content-Type", b"text/plain");
        w.header_fmt("X-N", format_args!("{}-{}", 1, 2));
        assert_eq!(
            w.header_block(),
            b"Content-Type: text/plain\r\nX-N: 1-2\r\n"
        );
        assert!(w.has_header("content-type"));
        assert!(!w.has_header("x"));
        assert!(!w.is_invalid());
    }

    #[test]
    fn managed_headers_are_ignored() {
        let mut w = ResponseWriter::new();
        w.header("Content-Length", b"5");
        w.header("connection", b"close");
        assert!(w.header_block().is_empty());
    }

    #[test]
    fn injection_marks_response_invalid() {
        let mut w = ResponseWriter::new();
        w.header("X", b"a\r\nSet-Cookie: x");
        assert!(w.is_invalid());
        let mut w = ResponseWriter::new();
        w.header("Bad Name", b"v");
        assert!(w.is_invalid());
        let mut w = ResponseWriter::new();
        w.header_fmt("X", format_args!("{}", "\n"));
        assert!(w.is_invalid());
    }

    #[test]
    fn body_sources() {
        let mut w = ResponseWriter::new();
        assert_eq!(w.body(), b"");
        w.body_static(b"static");
        assert_eq!(w.body(), b"static");
        w.body_bytes(b"copy");
        assert_eq!(w.body(), b"copy");
        w.body_mut().extend_from_slice(b"built");
        assert_eq!(w.body(), b"built");
        w.reset(Some(5));
        assert_eq!(w.body(), b"");
        assert_eq!(w.now(), Some(5));
    }
}
