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
/// The connection adds `Server`, `Date`, `Content-Length` and `Connection` itself (and
/// ignores a handler's copies of those and of `Transfer-Encoding`); it drops the body for
/// `HEAD` requests and for 1xx/204/304 statuses while keeping `Content-Length` as `GET`
/// would have sent it. A header name that is not a token, or a value containing CR, LF
/// or NUL, turns the whole response into a 500 rather than let a handler bug split it.
#[derive(Debug)]
pub struct ResponseWriter {
    status: StatusCode,
    headers: Vec<u8>,
    body: BodySource,
    owned: Vec<u8>,
    now: u64,
    close: bool,
    invalid: bool,
    deferred: bool,
}

impl ResponseWriter {
    pub(crate) fn new() -> Self {
        ResponseWriter {
            status: StatusCode::Ok,
            headers: Vec::new(),
            body: BodySource::Empty,
            owned: Vec::new(),
            now: 0,
            close: false,
            invalid: false,
            deferred: false,
        }
    }

    pub(crate) fn reset(&mut self, now: u64) {
        self.status = StatusCode::Ok;
        self.headers.clear();
        self.body = BodySource::Empty;
        self.owned.clear();
        self.now = now;
        self.close = false;
        self.invalid = false;
        self.deferred = false;
    }

    /// The current time in unix seconds, as passed to [`Connection::poll`](crate::Connection::poll).
    pub fn now(&self) -> u64 {
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
        if self.begin_header(name) {
            self.headers.extend_from_slice(value);
            self.end_header(value.len());
        }
    }

    /// Appends a header field whose value is formatted, without allocating.
    pub fn header_fmt(&mut self, name: &str, value: fmt::Arguments<'_>) {
        if self.begin_header(name) {
            let start = self.headers.len();
            let _ = fmt::write(&mut VecWriter(&mut self.headers), value);
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
        self.owned.extend_from_slice(body);
        self.body = BodySource::Owned;
    }

    /// Sets the body to the reused buffer and returns it, emptied, for writing into.
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

/// `fmt::Write` into a byte vector.
pub(crate) struct VecWriter<'a>(pub(crate) &'a mut Vec<u8>);

impl fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
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
        w.reset(5);
        assert_eq!(w.body(), b"");
        assert_eq!(w.now(), 5);
    }
}
