//! The sans-IO connection state machine: bytes in, requests to a [`Handler`], response
//! bytes out, in order, with keep-alive, pipelining and every limit enforced.

use alloc::vec::Vec;
use core::fmt::Write as _;

use crate::chunked::{ChunkedDecoder, ChunkedError};
use crate::date::format_imf_fixdate;
use crate::limits::{INITIAL_INPUT_BUFFER, Limits, MAX_HEADERS_CAP};
use crate::request::{Method, Request, Version, list_contains};
use crate::response::{ResponseWriter, VecWriter};
use crate::status::StatusCode;

/// Value of the `Server` header on every response.
pub const SERVER_NAME: &str = "oasis";

/// A complete `503 Service Unavailable` that closes the connection, for a server that
/// refuses a connection at the edge (too many, heap budget spent) without allocating a
/// [`Connection`]: write it, then close. A [`Connection`] whose buffers cannot grow
/// answers with these same bytes. No `Date`: RFC 9110 §6.6.1 makes it optional on 5xx,
/// and a constant cannot carry the time.
pub const OVERLOADED_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Server: oasis\r\n\
Retry-After: 1\r\n\
Content-Length: 0\r\n\
Connection: close\r\n\r\n";

/// Upper bound on a response head's bytes besides the reason phrase and the handler's
/// header block: status line framing with a 5-digit code (17), `Server` (15), `Date`
/// (37), `Content-Length` with 20 digits (38) and `Connection: keep-alive` plus the
/// blank line (26) come to 133.
const HEAD_OVERHEAD: usize = 160;

/// Answers requests. Called once per complete request, in arrival order.
pub trait Handler {
    /// Fills in `resp` for `req`. Runs synchronously: the connection's caller does the I/O.
    fn handle(&mut self, req: &Request<'_>, resp: &mut ResponseWriter);

    /// Whether request bodies should be kept and passed in [`Request::body`]. When
    /// `false`, bodies are still read (and limited) but discarded as they arrive.
    fn wants_body(&self) -> bool {
        true
    }
}

impl<F: FnMut(&Request<'_>, &mut ResponseWriter)> Handler for F {
    fn handle(&mut self, req: &Request<'_>, resp: &mut ResponseWriter) {
        self(req, resp)
    }
}

/// What the caller should do next, as returned by [`Connection::poll`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write [`Connection::output`] to the peer, then report it with [`Connection::advance`].
    Write,
    /// Read more bytes from the peer into [`Connection::read_buf`] (or pass them to
    /// [`Connection::feed`]); call [`Connection::eof`] when the peer has closed.
    Read,
    /// Close the connection: everything owed has been written.
    Close,
    /// The handler [deferred](ResponseWriter::defer) its answer: do the work it
    /// asked for, then call [`Connection::poll`] again, which hands the same request
    /// to the handler again. Never returned to a handler that does not defer.
    Defer,
}

/// The bytes still to be written for the current response: first `head`, then `body`.
/// `body` is often a `&'static` slice of the image, so writing it copies nothing.
#[derive(Clone, Copy, Debug)]
pub struct Output<'a> {
    /// Remaining status line and header bytes.
    pub head: &'a [u8],
    /// Remaining body bytes.
    pub body: &'a [u8],
}

impl Output<'_> {
    /// Total bytes remaining.
    pub fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }

    /// Whether nothing remains.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a request was refused by the connection itself (before or instead of the handler).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The head is not valid HTTP/1.x syntax.
    #[error("malformed request head: {0}")]
    Malformed(httparse::Error),
    /// The request line is longer than the limit.
    #[error("request line longer than {limit} bytes")]
    RequestLineTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// The head is longer than the limit.
    #[error("request head longer than {limit} bytes")]
    HeadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// More header fields than the limit.
    #[error("more than {limit} header fields")]
    TooManyHeaders {
        /// The limit.
        limit: usize,
    },
    /// A well-formed `HTTP/x.y` version other than 1.0 and 1.1.
    #[error("HTTP version other than 1.0 or 1.1")]
    UnsupportedVersion,
    /// A syntactically valid method token this server does not know.
    #[error("unknown method")]
    UnknownMethod,
    /// A request target that is neither origin-form, absolute-form, `*` (OPTIONS) nor
    /// authority-form (CONNECT).
    #[error("invalid request target")]
    InvalidTarget,
    /// HTTP/1.1 without a Host header, or any request with several.
    #[error("request has {count} Host header fields, expected exactly one")]
    Host {
        /// How many Host fields arrived.
        count: usize,
    },
    /// A Content-Length that is not a decimal number, or conflicting values.
    #[error("invalid or conflicting Content-Length")]
    InvalidContentLength,
    /// Both Content-Length and Transfer-Encoding (request smuggling risk).
    #[error("both Content-Length and Transfer-Encoding present")]
    ConflictingFraming,
    /// Transfer-Encoding on an HTTP/1.0 request.
    #[error("Transfer-Encoding in an HTTP/1.0 request")]
    TransferEncodingInHttp10,
    /// A Transfer-Encoding other than exactly `chunked`.
    #[error("unsupported Transfer-Encoding")]
    UnsupportedTransferEncoding,
    /// A Content-Length above the body limit.
    #[error("Content-Length {length} exceeds the {limit}-byte body limit")]
    BodyTooLarge {
        /// The announced length.
        length: u64,
        /// The limit in bytes.
        limit: usize,
    },
    /// A malformed or oversized chunked body.
    #[error("bad chunked body: {0}")]
    Chunked(#[from] ChunkedError),
    /// The caller's header-read timer fired with a request partly received.
    #[error("request not received in time")]
    Timeout,
    /// A buffer could not grow: the allocator refused, or the growth would pass the
    /// connection's [memory cap](Connection::with_memory_cap).
    #[error("no memory for a {bytes}-byte buffer")]
    Overloaded {
        /// The buffer size that could not be had.
        bytes: usize,
    },
}

impl RequestError {
    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            RequestError::Malformed(httparse::Error::TooManyHeaders)
            | RequestError::HeadTooLarge { .. }
            | RequestError::TooManyHeaders { .. } => StatusCode::RequestHeaderFieldsTooLarge,
            RequestError::RequestLineTooLong { .. } => StatusCode::UriTooLong,
            RequestError::UnsupportedVersion => StatusCode::HttpVersionNotSupported,
            RequestError::UnknownMethod | RequestError::UnsupportedTransferEncoding => {
                StatusCode::NotImplemented
            }
            RequestError::BodyTooLarge { .. }
            | RequestError::Chunked(ChunkedError::BodyTooLarge { .. }) => {
                StatusCode::ContentTooLarge
            }
            RequestError::Timeout => StatusCode::RequestTimeout,
            RequestError::Overloaded { .. } => StatusCode::ServiceUnavailable,
            RequestError::Malformed(_)
            | RequestError::InvalidTarget
            | RequestError::Host { .. }
            | RequestError::InvalidContentLength
            | RequestError::ConflictingFraming
            | RequestError::TransferEncodingInHttp10
            | RequestError::Chunked(_) => StatusCode::BadRequest,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// What the connection learned from a complete head.
#[derive(Clone, Copy, Debug)]
struct HeadInfo {
    len: usize,
    is_head: bool,
    keep_alive: bool,
    framing: Framing,
    expect_continue: bool,
}

#[derive(Debug)]
enum BodyState {
    Length(u64),
    Chunked(ChunkedDecoder),
}

#[derive(Debug)]
enum State {
    /// Waiting for (the rest of) a request head.
    Head,
    /// Reading the body of the request whose head is at the front of the buffer.
    Body { info: HeadInfo, body: BodyState },
    /// The request at the front of the buffer (body collected) was deferred by the
    /// handler: dispatch it again.
    Dispatch { info: HeadInfo },
    /// Done; only [`Action::Close`] from now on.
    Closed,
}

/// One HTTP/1.1 server connection, without I/O.
///
/// The caller loops on [`poll`](Connection::poll) and does what it says: on
/// [`Action::Read`] it reads from the socket into [`read_buf`](Connection::read_buf)
/// and calls [`commit`](Connection::commit) (or passes bytes to
/// [`feed`](Connection::feed)); on [`Action::Write`] it writes
/// [`output`](Connection::output) and calls [`advance`](Connection::advance); on
/// [`Action::Close`] it closes the socket. Responses come out one at a time in request
/// order, so pipelined requests are answered in order and only one response is buffered.
///
/// # Memory
///
/// [`new`](Connection::new) allocates nothing. The input buffer is allocated when the
/// connection first waits for bytes ([`INITIAL_INPUT_BUFFER`]) and doubles when a
/// request needs more, up to [`Limits::input_buffer_len`]; the response head and
/// handler buffers grow to their working size and are reused. A request body is kept
/// (up to [`Limits::body`]) only when the handler [wants it](Handler::wants_body).
/// When the connection waits idle between requests, buffers larger than
/// [`INITIAL_INPUT_BUFFER`] are freed, so an idle keep-alive connection holds about
/// that much ([`heap_bytes`](Connection::heap_bytes)).
///
/// Every allocation the peer's bytes can cause is fallible: when a buffer cannot grow
/// (the allocator refuses, or [`with_memory_cap`](Connection::with_memory_cap)'s cap
/// would be passed) the connection answers [`OVERLOADED_RESPONSE`] (503, `Retry-After:
/// 1`) and closes; it never aborts the kernel.
#[derive(Debug)]
pub struct Connection {
    limits: Limits,
    /// Most bytes the input, request-body and response-head buffers may hold together.
    mem_cap: usize,
    /// Input buffer; its length (zero-filled) is its usable size.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    state: State,
    body: Vec<u8>,
    deliver_body: bool,
    writer: ResponseWriter,
    head: Vec<u8>,
    /// Sent instead of `head` when set ([`OVERLOADED_RESPONSE`]: no allocation).
    static_head: Option<&'static [u8]>,
    head_pos: usize,
    body_pos: usize,
    body_len: usize,
    close_after_output: bool,
    eof: bool,
    timed_out: bool,
    last_error: Option<RequestError>,
    requests: u64,
    /// The handler just deferred: `poll` returns [`Action::Defer`].
    defer_now: bool,
}

impl Connection {
    /// A fresh connection with `limits` (normalised, see [`Limits::normalized`]). Allocates
    /// nothing; buffers are bounded only by `limits` and the allocator.
    pub fn new(limits: Limits) -> Self {
        Self::with_memory_cap(limits, usize::MAX)
    }

    /// A fresh connection whose input buffer, request body and response head together
    /// never hold more than `cap_bytes` of heap. A growth past the cap is answered like
    /// an allocation failure: 503 ([`OVERLOADED_RESPONSE`]) and close. The handler's own
    /// response buffers ([`ResponseWriter`]) are not held to the cap but are counted by
    /// [`heap_bytes`](Connection::heap_bytes).
    ///
    /// A cap below [`Limits::input_buffer_len`] plus the largest body the handler keeps
    /// turns some requests the limits allow into 503s.
    pub fn with_memory_cap(limits: Limits, cap_bytes: usize) -> Self {
        let limits = limits.normalized();
        Connection {
            limits,
            mem_cap: cap_bytes,
            buf: Vec::new(),
            start: 0,
            end: 0,
            state: State::Head,
            body: Vec::new(),
            deliver_body: true,
            writer: ResponseWriter::new(),
            head: Vec::new(),
            static_head: None,
            head_pos: 0,
            body_pos: 0,
            body_len: 0,
            close_after_output: false,
            eof: false,
            timed_out: false,
            last_error: None,
            requests: 0,
            defer_now: false,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The memory cap in force ([`usize::MAX`] when none was set).
    pub fn memory_cap(&self) -> usize {
        self.mem_cap
    }

    /// Heap bytes the connection holds now: the capacity of its input, request-body,
    /// response-head and response-writer buffers (not `size_of::<Connection>()` itself).
    /// Zero after [`new`](Connection::new); about [`INITIAL_INPUT_BUFFER`] plus a small
    /// response head for an idle connection. For budget accounting across connections.
    pub fn heap_bytes(&self) -> usize {
        self.charged() + self.writer.heap_bytes()
    }

    /// Bytes held against the memory cap.
    pub(crate) fn charged(&self) -> usize {
        self.buf.capacity() + self.body.capacity() + self.head.capacity()
    }

    /// Bytes `v` may hold, given everything else held against the cap.
    fn room_for(&self, v: &Vec<u8>) -> usize {
        self.mem_cap
            .saturating_sub(self.charged().saturating_sub(v.capacity()))
    }

    /// The most recent error the connection answered itself (for logging).
    pub fn last_error(&self) -> Option<RequestError> {
        self.last_error
    }

    /// Requests answered so far (by the handler or with an error).
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Whether the connection sits between requests: no request bytes buffered and no
    /// output pending. Callers use it to pick the keep-alive timeout rather than the
    /// header timeout.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Head) && self.start == self.end && !self.output_pending()
    }

    /// Whether the connection is finished.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed) && !self.output_pending()
    }

    /// Copies as much of `input` as fits into the input buffer and returns how many bytes
    /// were taken; the caller keeps the rest and offers it again after the next
    /// [`poll`]. A full (or not yet allocated) buffer is grown first, once; growing
    /// further is left to `poll`, which knows whether the request needs it. Takes
    /// nothing once closed, or when the buffer cannot grow (the next `poll` answers 503).
    ///
    /// [`poll`]: Connection::poll
    pub fn feed(&mut self, input: &[u8]) -> usize {
        if matches!(self.state, State::Closed) || self.make_room().is_err() {
            return 0;
        }
        let room = self.read_buf();
        let n = room.len().min(input.len());
        if let (Some(dst), Some(src)) = (room.get_mut(..n), input.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.commit(n);
        n
    }

    /// Free space at the end of the input buffer, to read socket bytes straight into;
    /// follow with [`commit`](Connection::commit). Never empty when [`poll`] last said
    /// [`Action::Read`] (`poll` grows the buffer; this never allocates). Empty once
    /// closed.
    ///
    /// [`poll`]: Connection::poll
    pub fn read_buf(&mut self) -> &mut [u8] {
        if matches!(self.state, State::Closed) {
            return &mut [];
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        self.buf.get_mut(self.end..).unwrap_or_default()
    }

    /// Records that `n` bytes were written into [`read_buf`](Connection::read_buf).
    pub fn commit(&mut self, n: usize) {
        self.end = self.end.saturating_add(n).min(self.buf.len());
    }

    /// Records that the peer closed its sending side. Requests already complete are
    /// still answered; a partial one is dropped and the connection closes.
    pub fn eof(&mut self) {
        self.eof = true;
    }

    /// Tells the connection that the caller's header timer fired. If a request was partly
    /// received, the next [`poll`](Connection::poll) writes a 408 and then closes; if the
    /// connection was idle it just closes (as nginx does for keep-alive timeouts).
    pub fn timeout(&mut self) {
        self.timed_out = true;
    }

    /// The unwritten part of the current response.
    pub fn output(&self) -> Output<'_> {
        let body = self.writer.body().get(..self.body_len).unwrap_or_default();
        Output {
            head: self.head_bytes().get(self.head_pos..).unwrap_or_default(),
            body: body.get(self.body_pos..).unwrap_or_default(),
        }
    }

    fn head_bytes(&self) -> &[u8] {
        self.static_head.unwrap_or(&self.head)
    }

    /// Records that `n` bytes of [`output`](Connection::output) were written (head first).
    pub fn advance(&mut self, n: usize) {
        let head_left = self.head_bytes().len().saturating_sub(self.head_pos);
        let from_head = n.min(head_left);
        self.head_pos += from_head;
        self.body_pos = self
            .body_pos
            .saturating_add(n - from_head)
            .min(self.body_len);
    }

    fn output_pending(&self) -> bool {
        self.head_pos < self.head_bytes().len() || self.body_pos < self.body_len
    }

    /// Compacts the input buffer and, when it is full, grows it (doubling, from
    /// [`INITIAL_INPUT_BUFFER`] up to [`Limits::input_buffer_len`]). At the largest size
    /// a full buffer is left alone: the limits then always let `poll` make progress.
    fn make_room(&mut self) -> Result<(), RequestError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let len = self.buf.len();
        let max = self.limits.input_buffer_len();
        if self.end < len || len >= max {
            return Ok(());
        }
        let preferred = len.saturating_mul(2).max(INITIAL_INPUT_BUFFER).min(max);
        let room = self.room_for(&self.buf);
        let size = try_grow(&mut self.buf, len + 1, preferred, room)?;
        self.buf.resize(size, 0);
        Ok(())
    }

    /// Frees what an idle connection does not need: buffers grown past
    /// [`INITIAL_INPUT_BUFFER`] by earlier requests. Call only with nothing buffered
    /// and no output pending.
    fn release_idle(&mut self) {
        if self.buf.capacity() > INITIAL_INPUT_BUFFER {
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
        }
        if self.body.capacity() > INITIAL_INPUT_BUFFER {
            self.body = Vec::new();
        }
        if self.head.capacity() > INITIAL_INPUT_BUFFER {
            self.head = Vec::new();
        }
        self.writer.release(INITIAL_INPUT_BUFFER);
    }

    /// Answers [`OVERLOADED_RESPONSE`] (no allocation needed), frees the buffers and
    /// closes after writing it.
    fn overloaded(&mut self, err: RequestError) {
        self.last_error = Some(err);
        self.requests += 1;
        self.state = State::Closed;
        self.buf = Vec::new();
        self.start = 0;
        self.end = 0;
        self.body = Vec::new();
        self.head = Vec::new();
        self.writer.release(0);
        self.static_head = Some(OVERLOADED_RESPONSE);
        self.head_pos = 0;
        self.body_pos = 0;
        self.body_len = 0;
        self.close_after_output = true;
    }

    /// Advances the state machine and calls `handler` for each request completed by
    /// buffered input. `now` is the wall-clock time in unix seconds, or `None` when the
    /// server has no clock: then responses carry no `Date` (RFC 9110 §6.6.1) and
    /// handlers see [`ResponseWriter::now`] as `None`.
    pub fn poll<H: Handler + ?Sized>(&mut self, handler: &mut H, now: Option<u64>) -> Action {
        loop {
            if self.output_pending() {
                return Action::Write;
            }
            if self.close_after_output {
                self.state = State::Closed;
            }
            if matches!(self.state, State::Closed) {
                return Action::Close;
            }
            if self.timed_out {
                self.timed_out = false;
                let partial = matches!(self.state, State::Body { .. }) || self.start < self.end;
                if partial {
                    self.respond_error(RequestError::Timeout, false, now);
                    continue;
                }
                self.state = State::Closed;
                return Action::Close;
            }
            let progressed = match self.state {
                State::Head => self.step_head(handler, now),
                State::Body { .. } => self.step_body(handler, now),
                State::Dispatch { info } => {
                    self.state = State::Head;
                    self.dispatch_buffered(handler, info, now);
                    true
                }
                State::Closed => false,
            };
            if core::mem::take(&mut self.defer_now) {
                return Action::Defer;
            }
            if !progressed {
                if self.eof {
                    self.state = State::Closed;
                    return Action::Close;
                }
                if matches!(self.state, State::Head) && self.start == self.end {
                    self.release_idle();
                }
                if let Err(e) = self.make_room() {
                    self.overloaded(e);
                    continue;
                }
                return Action::Read;
            }
        }
    }

    /// Tries to parse a head; dispatches it at once when it has no body. Returns whether
    /// anything happened (false: need more input).
    fn step_head<H: Handler + ?Sized>(&mut self, handler: &mut H, now: Option<u64>) -> bool {
        // RFC 9112 §2.2: ignore empty lines before a request line.
        while self.start < self.end && matches!(self.buf.get(self.start), Some(b'\r' | b'\n')) {
            self.start += 1;
        }
        let data = self.buf.get(self.start..self.end).unwrap_or_default();
        if data.is_empty() {
            return false;
        }
        let limits = self.limits;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS_CAP];
        let headers = headers.get_mut(..limits.headers).unwrap_or_default();
        let mut req = httparse::Request::new(headers);
        let parsed = match analyze_head(&mut req, data, &limits) {
            Ok(Some(p)) => p,
            Ok(None) => return false,
            Err((err, is_head)) => {
                self.respond_error(err, is_head, now);
                return true;
            }
        };
        let info = parsed.info;
        if let Framing::None = info.framing {
            self.writer.reset(now);
            let request = Request {
                method: parsed.method,
                target: parsed.target,
                version: parsed.version,
                headers: req.headers,
                body: &[],
            };
            handler.handle(&request, &mut self.writer);
            if self.writer.is_deferred() {
                // The head stays at the front of the buffer and is parsed again.
                self.defer_now = true;
                return true;
            }
            self.start += info.len;
            self.finish_response(info, now);
            return true;
        }
        self.deliver_body = handler.wants_body();
        self.body.clear();
        let body = match info.framing {
            Framing::Chunked => {
                BodyState::Chunked(ChunkedDecoder::new(limits.body, limits.header_bytes))
            }
            Framing::Length(n) => BodyState::Length(n),
            Framing::None => BodyState::Length(0),
        };
        let body_buffered = self.end > self.start + info.len;
        self.state = State::Body { info, body };
        if info.expect_continue && !body_buffered {
            const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
            self.head.clear();
            self.static_head = None;
            let room = self.room_for(&self.head);
            if let Err(e) = try_grow(&mut self.head, CONTINUE.len(), CONTINUE.len(), room) {
                self.overloaded(e);
                return true;
            }
            self.head.extend_from_slice(CONTINUE);
            self.head_pos = 0;
            self.body_pos = 0;
            self.body_len = 0;
        }
        true
    }

    /// Consumes buffered body bytes; dispatches the request when the body is complete.
    fn step_body<H: Handler + ?Sized>(&mut self, handler: &mut H, now: Option<u64>) -> bool {
        let room = self.room_for(&self.body);
        let max_body = self.limits.body;
        let State::Body { info, body } = &mut self.state else {
            return false;
        };
        let info = *info;
        let body_start = self.start + info.len;
        let raw = self.buf.get(body_start..self.end).unwrap_or_default();
        let deliver = self.deliver_body;
        let sink = &mut self.body;
        let mut failed = None;
        let mut push = |data: &[u8]| {
            if deliver
                && failed.is_none()
                && let Err(e) = push_body(sink, data, max_body, room)
            {
                failed = Some(e);
            }
        };
        let (consumed, done) = match body {
            BodyState::Length(remaining) => {
                let take = usize::try_from(*remaining).map_or(raw.len(), |r| r.min(raw.len()));
                push(raw.get(..take).unwrap_or_default());
                *remaining -= take as u64;
                (take, *remaining == 0)
            }
            BodyState::Chunked(decoder) => match decoder.decode(raw, &mut push) {
                Ok(p) => (p.consumed, p.done),
                Err(e) => {
                    self.respond_error(e.into(), info.is_head, now);
                    return true;
                }
            },
        };
        if let Some(e) = failed {
            self.overloaded(e);
            return true;
        }
        // Drop the consumed body bytes so the buffer keeps room for more.
        self.buf
            .copy_within(body_start + consumed..self.end, body_start);
        self.end -= consumed;
        if !done {
            return consumed > 0;
        }
        self.state = State::Head;
        self.dispatch_buffered(handler, info, now);
        true
    }

    /// Re-parses the head at the front of the buffer and calls the handler with the
    /// collected body.
    fn dispatch_buffered<H: Handler + ?Sized>(
        &mut self,
        handler: &mut H,
        info: HeadInfo,
        now: Option<u64>,
    ) {
        let head = self
            .buf
            .get(self.start..self.start + info.len)
            .unwrap_or_default();
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS_CAP];
        let headers = headers.get_mut(..self.limits.headers).unwrap_or_default();
        let mut req = httparse::Request::new(headers);
        let parsed = match analyze_head(&mut req, head, &self.limits) {
            Ok(Some(p)) => p,
            // The same bytes parsed before; this is unreachable but must not panic.
            Ok(None) | Err(_) => {
                self.respond_error(
                    RequestError::Malformed(httparse::Error::Token),
                    info.is_head,
                    now,
                );
                return;
            }
        };
        self.writer.reset(now);
        let request = Request {
            method: parsed.method,
            target: parsed.target,
            version: parsed.version,
            headers: req.headers,
            body: &self.body,
        };
        handler.handle(&request, &mut self.writer);
        if self.writer.is_deferred() {
            self.state = State::Dispatch { info };
            self.defer_now = true;
            return;
        }
        self.start += info.len;
        self.finish_response(info, now);
    }

    /// Answers a request the connection refuses, then closes.
    fn respond_error(&mut self, err: RequestError, is_head: bool, now: Option<u64>) {
        self.last_error = Some(err);
        self.writer.reset(now);
        let status = err.status();
        write_canned(&mut self.writer, status);
        self.writer.close();
        let info = HeadInfo {
            len: 0,
            is_head,
            keep_alive: false,
            framing: Framing::None,
            expect_continue: false,
        };
        self.finish_response(info, now);
    }

    /// Builds the response head from the writer and arms the output.
    fn finish_response(&mut self, info: HeadInfo, now: Option<u64>) {
        if self.writer.is_overloaded() {
            return self.overloaded(RequestError::Overloaded {
                bytes: self.writer.heap_bytes(),
            });
        }
        if self.writer.is_invalid() {
            self.writer.reset(now);
            write_canned(&mut self.writer, StatusCode::InternalServerError);
        }
        let status = self.writer.status();
        let close = !info.keep_alive || self.writer.wants_close();
        self.static_head = None;
        self.head.clear();
        let needed = HEAD_OVERHEAD + status.reason().len() + self.writer.header_block().len();
        let room = self.room_for(&self.head);
        if let Err(e) = try_grow(&mut self.head, needed, needed, room) {
            return self.overloaded(e);
        }
        self.requests += 1;
        let head = &mut self.head;
        let _ = write!(
            VecWriter(head),
            "HTTP/1.1 {} {}\r\n",
            status.code(),
            status.reason()
        );
        head.extend_from_slice(b"Server: ");
        head.extend_from_slice(SERVER_NAME.as_bytes());
        head.extend_from_slice(b"\r\n");
        // RFC 9110 §6.6.1: without a clock, no Date.
        if let Some(now) = now {
            head.extend_from_slice(b"Date: ");
            head.extend_from_slice(&format_imf_fixdate(now));
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(self.writer.header_block());
        let bodiless = status.is_bodiless();
        if !bodiless {
            let _ = write!(
                VecWriter(head),
                "Content-Length: {}\r\n",
                self.writer.body().len()
            );
        }
        head.extend_from_slice(if close {
            b"Connection: close\r\n\r\n"
        } else {
            b"Connection: keep-alive\r\n\r\n"
        });
        self.head_pos = 0;
        self.body_pos = 0;
        self.body_len = if info.is_head || bodiless {
            0
        } else {
            self.writer.body().len()
        };
        self.close_after_output = close;
    }
}

/// Makes `v`'s capacity at least `needed` bytes, aiming for `preferred`, without it
/// passing `room`; returns the size aimed at. Fails, rather than aborting, when the
/// allocator refuses or `room` is too small.
fn try_grow(
    v: &mut Vec<u8>,
    needed: usize,
    preferred: usize,
    room: usize,
) -> Result<usize, RequestError> {
    if v.capacity() >= needed {
        return Ok(preferred.min(v.capacity()).max(needed));
    }
    let target = preferred.max(needed).min(room);
    if target < needed {
        return Err(RequestError::Overloaded { bytes: needed });
    }
    v.try_reserve_exact(target - v.len())
        .map_err(|_| RequestError::Overloaded { bytes: target })?;
    Ok(target)
}

/// Appends request-body bytes to `sink`, doubling its capacity (never past `max`, the
/// body limit, unless the bytes need it) within `room`.
fn push_body(sink: &mut Vec<u8>, data: &[u8], max: usize, room: usize) -> Result<(), RequestError> {
    let needed = sink.len().saturating_add(data.len());
    if needed > sink.capacity() {
        let preferred = sink
            .capacity()
            .saturating_mul(2)
            .max(INITIAL_INPUT_BUFFER)
            .min(max);
        try_grow(sink, needed, preferred, room)?;
    }
    sink.extend_from_slice(data);
    Ok(())
}

/// Sets status, type and nginx-style HTML body for a status with a canned page.
pub(crate) fn write_canned(w: &mut ResponseWriter, status: StatusCode) {
    w.set_status(status);
    if let Some(body) = status.canned_body() {
        w.header("Content-Type", b"text/html");
        w.body_static(body);
    }
}

struct Parsed<'b> {
    info: HeadInfo,
    method: Method,
    target: &'b str,
    version: Version,
}

/// Parses and validates a head. `Ok(None)`: incomplete. `Err((error, is_head))`.
fn analyze_head<'h, 'b>(
    req: &mut httparse::Request<'h, 'b>,
    data: &'b [u8],
    limits: &Limits,
) -> Result<Option<Parsed<'b>>, (RequestError, bool)> {
    // The request line limit is checked first, complete head or not.
    let scan = data
        .get(..limits.request_line.saturating_add(2))
        .unwrap_or(data);
    match scan.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let line = scan.get(..i).unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > limits.request_line {
                return Err((
                    RequestError::RequestLineTooLong {
                        limit: limits.request_line,
                    },
                    false,
                ));
            }
        }
        None if scan.len() > limits.request_line + 1 => {
            return Err((
                RequestError::RequestLineTooLong {
                    limit: limits.request_line,
                },
                false,
            ));
        }
        None => {}
    }
    let len = match req.parse(data) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            if data.len() > limits.header_bytes {
                return Err((
                    RequestError::HeadTooLarge {
                        limit: limits.header_bytes,
                    },
                    false,
                ));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err((
                RequestError::TooManyHeaders {
                    limit: limits.headers,
                },
                false,
            ));
        }
        Err(httparse::Error::Version) if looks_like_http_version(data) => {
            return Err((RequestError::UnsupportedVersion, false));
        }
        Err(e) => return Err((RequestError::Malformed(e), false)),
    };
    if len > limits.header_bytes {
        return Err((
            RequestError::HeadTooLarge {
                limit: limits.header_bytes,
            },
            false,
        ));
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err((RequestError::Malformed(httparse::Error::Token), false));
    };
    let Some(method) = Method::from_token(method) else {
        return Err((RequestError::UnknownMethod, false));
    };
    let is_head = method == Method::Head;
    let fail = |e| Err((e, is_head));
    let version = if version == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let target_ok = target.starts_with('/')
        || starts_with_ignore_case(target, "http://")
        || starts_with_ignore_case(target, "https://")
        || (method == Method::Options && target == "*")
        || (method == Method::Connect && !target.is_empty() && !target.contains('/'));
    if !target_ok {
        return fail(RequestError::InvalidTarget);
    }
    let headers: &[httparse::Header<'b>] = req.headers;
    let hosts = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .count();
    if hosts > 1 || (hosts == 0 && version == Version::Http11) {
        return fail(RequestError::Host { count: hosts });
    }
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked_only = true;
    let mut te_items = 0usize;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut expect_continue = false;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            for item in h.value.split(|&b| b == b',') {
                let Some(n) = parse_decimal(crate::date::trim_ows(item)) else {
                    return fail(RequestError::InvalidContentLength);
                };
                if content_length.is_some_and(|c| c != n) {
                    return fail(RequestError::InvalidContentLength);
                }
                content_length = Some(n);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            for item in h.value.split(|&b| b == b',') {
                let item = crate::date::trim_ows(item);
                if item.is_empty() {
                    continue;
                }
                te_items += 1;
                if !item.eq_ignore_ascii_case(b"chunked") {
                    chunked_only = false;
                }
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            close |= list_contains(h.value, "close");
            keep_alive_token |= list_contains(h.value, "keep-alive");
        } else if h.name.eq_ignore_ascii_case("expect") {
            expect_continue = crate::date::trim_ows(h.value).eq_ignore_ascii_case(b"100-continue");
        }
    }
    // HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive" (RFC 9112 §9.3).
    let keep_alive = !close && (version == Version::Http11 || keep_alive_token);
    let framing = if transfer_encoding {
        if version == Version::Http10 {
            return fail(RequestError::TransferEncodingInHttp10);
        }
        if content_length.is_some() {
            return fail(RequestError::ConflictingFraming);
        }
        if !chunked_only || te_items != 1 {
            return fail(RequestError::UnsupportedTransferEncoding);
        }
        Framing::Chunked
    } else {
        match content_length {
            Some(n) if n > limits.body as u64 => {
                return fail(RequestError::BodyTooLarge {
                    length: n,
                    limit: limits.body,
                });
            }
            Some(0) | None => Framing::None,
            Some(n) => Framing::Length(n),
        }
    };
    let expect_continue = expect_continue && version == Version::Http11;
    let info = HeadInfo {
        len,
        is_head,
        keep_alive,
        framing,
        expect_continue,
    };
    Ok(Some(Parsed {
        info,
        method,
        target,
        version,
    }))
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// Digits only, no sign, no overflow.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

/// Whether the request line is `METHOD SP TARGET SP HTTP/<digits>.<digits>`, so that
/// httparse's version error means "unsupported" (505) rather than "garbage" (400). A
/// line with more spaces (`GET /a b HTTP/1.1`) is garbage: its version is `b HTTP/1.1`.
fn looks_like_http_version(data: &[u8]) -> bool {
    let line_end = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let line = data.get(..line_end).unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().filter(|&&b| b == b' ').count() != 2 {
        return false;
    }
    let Some(space) = line.iter().rposition(|&b| b == b' ') else {
        return false;
    };
    let Some(version) = line.get(space + 1..).and_then(|v| v.strip_prefix(b"HTTP/")) else {
        return false;
    };
    let mut parts = version.split(|&b| b == b'.');
    let digits =
        |p: Option<&[u8]>| p.is_some_and(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit));
    digits(parts.next()) && digits(parts.next()) && parts.next().is_none()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::string::String;

    /// A day after the test sites' entries were last modified.
    pub(crate) const NOW: Option<u64> = Some(1_700_086_400); // Wed, 15 Nov 2023 22:13:20 GMT

    /// Feeds `input` (as much as fits each time), writes everything out, and stops at
    /// the first Read with no input left, or at Close.
    pub(crate) fn drive<H: Handler + ?Sized>(
        conn: &mut Connection,
        h: &mut H,
        input: &[u8],
    ) -> (String, Action) {
        drive_at(conn, h, input, NOW)
    }

    /// [`drive`] with the given clock.
    pub(crate) fn drive_at<H: Handler + ?Sized>(
        conn: &mut Connection,
        h: &mut H,
        input: &[u8],
        now: Option<u64>,
    ) -> (String, Action) {
        let mut rest = input;
        let mut out = Vec::new();
        loop {
            match conn.poll(h, now) {
                Action::Write => {
                    let o = conn.output();
                    out.extend_from_slice(o.head);
                    out.extend_from_slice(o.body);
                    let n = o.len();
                    conn.advance(n);
                }
                Action::Read => {
                    if rest.is_empty() {
                        return (String::from_utf8_lossy(&out).into_owned(), Action::Read);
                    }
                    let n = conn.feed(rest);
                    assert!(n > 0, "Read with a full buffer");
                    rest = &rest[n..];
                }
                Action::Close => {
                    return (String::from_utf8_lossy(&out).into_owned(), Action::Close);
                }
                Action::Defer => {
                    return (String::from_utf8_lossy(&out).into_owned(), Action::Defer);
                }
            }
        }
    }

    pub(crate) fn run<H: Handler + ?Sized>(h: &mut H, input: &[u8]) -> (String, Action) {
        drive(&mut Connection::new(Limits::default()), h, input)
    }

    /// Echoes method, path and body length.
    fn echo(req: &Request<'_>, resp: &mut ResponseWriter) {
        resp.header("Content-Type", b"text/plain");
        let body = resp.body_mut();
        let _ = write!(
            VecWriter(body),
            "{} {} {}",
            req.method().as_str(),
            req.path(),
            req.body().len()
        );
    }

    fn status_of(resp: &str) -> &str {
        resp.get(9..12).unwrap_or("")
    }

    #[test]
    fn simple_get() {
        let (out, action) = run(&mut echo, b"GET /x?y HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(action, Action::Read);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nServer: oasis\r\nDate: Wed, 15 Nov 2023 22:13:20 GMT\r\n\
             Content-Type: text/plain\r\nContent-Length: 8\r\nConnection: keep-alive\r\n\r\nGET /x 0"
        );
    }

    #[test]
    fn pipelined_requests_are_answered_in_order() {
        let input = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n\
                      POST /3 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n\
                      GET /5 HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut conn = Connection::new(Limits::default());
        let (out, action) = drive(&mut conn, &mut echo, input);
        assert_eq!(action, Action::Close);
        let bodies: Vec<&str> = out
            .split("\r\n\r\n")
            .skip(1)
            .map(|s| s.split("HTTP/1.1").next().unwrap())
            .collect();
        assert_eq!(bodies, ["GET /1 0", "GET /2 0", "POST /3 3", "GET /4 0"]);
        assert_eq!(conn.requests(), 4);
        assert!(out.ends_with("Connection: close\r\n\r\nGET /4 0"));
    }

    #[test]
    fn byte_at_a_time_and_partial_writes() {
        let input = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let mut conn = Connection::new(Limits::default());
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            match conn.poll(&mut echo, NOW) {
                Action::Write => {
                    let o = conn.output();
                    let one = o.head.first().or(o.body.first()).copied().unwrap();
                    out.push(one);
                    conn.advance(1);
                }
                Action::Read if i < input.len() => {
                    conn.read_buf()[0] = input[i];
                    conn.commit(1);
                    i += 1;
                }
                _ => break,
            }
        }
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out}");
        assert!(out.ends_with("POST /b 3"));
        assert!(conn.is_idle());
    }

    #[test]
    fn leading_empty_lines_are_ignored() {
        let (out, _) = run(&mut echo, b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(status_of(&out), "200");
    }

    #[test]
    fn http10_closes_by_default() {
        let (out, action) = run(&mut echo, b"GET / HTTP/1.0\r\n\r\nGET /2 HTTP/1.0\r\n\r\n");
        assert_eq!(action, Action::Close);
        assert_eq!(out.matches("HTTP/1.1 200").count(), 1);
        assert!(out.contains("Connection: close\r\n"));
    }

    #[test]
    fn http10_keep_alive_persists() {
        let (out, action) = run(
            &mut echo,
            b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
        );
        assert_eq!(action, Action::Close);
        assert_eq!(out.matches("HTTP/1.1 200").count(), 2);
        assert!(out.contains("Connection: keep-alive\r\n"));
    }

    #[test]
    fn connection_close_wins() {
        let (out, action) = run(
            &mut echo,
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(action, Action::Close);
        assert!(out.contains("Connection: close"));
    }

    #[test]
    fn head_keeps_length_drops_body() {
        let (out, _) = run(&mut echo, b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(out.contains("Content-Length: 9\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\n"));
    }

    fn expect_error(input: &[u8], status: &str) -> Option<RequestError> {
        let mut conn = Connection::new(Limits::default());
        let (out, action) = drive(&mut conn, &mut echo, input);
        assert_eq!(status_of(&out), status, "{out}");
        assert_eq!(action, Action::Close, "{out}");
        assert!(out.contains("Connection: close\r\n"));
        assert_eq!(
            out.matches("HTTP/1.1 ").count(),
            1,
            "nothing answered after an error"
        );
        conn.last_error()
    }

    #[test]
    fn malformed_heads_are_400() {
        assert!(matches!(
            expect_error(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", "400"),
            Some(RequestError::Malformed(_))
        ));
        expect_error(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", "400");
        expect_error(b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", "400");
        expect_error(b"GET /\r\n\r\n", "400");
        expect_error(
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
            "400",
        );
        expect_error(b"GET / HTTP/1.x\r\nHost: a\r\n\r\n", "400");
        expect_error(b"GET x HTTP/1.1\r\nHost: a\r\n\r\n", "400");
        expect_error(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", "400");
    }

    #[test]
    fn host_rules() {
        assert_eq!(
            expect_error(b"GET / HTTP/1.1\r\n\r\n", "400"),
            Some(RequestError::Host { count: 0 })
        );
        assert_eq!(
            expect_error(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400"),
            Some(RequestError::Host { count: 2 })
        );
        let (out, _) = run(&mut echo, b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(status_of(&out), "200");
    }

    #[test]
    fn framing_conflicts_are_400() {
        assert_eq!(
            expect_error(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "400"),
            Some(RequestError::ConflictingFraming)
        );
        assert_eq!(
            expect_error(
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                "400"
            ),
            Some(RequestError::InvalidContentLength)
        );
        expect_error(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
            "400",
        );
        expect_error(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "400",
        );
        assert_eq!(
            expect_error(
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                "400"
            ),
            Some(RequestError::TransferEncodingInHttp10)
        );
        // Equal duplicates are allowed (RFC 9112 §6.3).
        let (out, _) = run(
            &mut echo,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx",
        );
        assert!(out.ends_with("POST / 1"), "{out}");
    }

    #[test]
    fn timeout_mid_request_is_408() {
        let mut conn = Connection::new(Limits::default());
        let (out, action) = drive(&mut conn, &mut echo, b"GET / HTTP/1.1\r\nHo");
        assert_eq!((out.as_str(), action), ("", Action::Read));
        assert!(!conn.is_idle());
        conn.timeout();
        let (out, action) = drive(&mut conn, &mut echo, b"");
        assert_eq!(status_of(&out), "408");
        assert_eq!(action, Action::Close);
        assert_eq!(conn.last_error(), Some(RequestError::Timeout));
    }

    #[test]
    fn timeout_mid_body_is_408_and_idle_timeout_is_silent() {
        let mut conn = Connection::new(Limits::default());
        drive(
            &mut conn,
            &mut echo,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
        );
        conn.timeout();
        assert_eq!(status_of(&drive(&mut conn, &mut echo, b"").0), "408");

        let mut conn = Connection::new(Limits::default());
        let (out, _) = drive(&mut conn, &mut echo, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(status_of(&out), "200");
        assert!(conn.is_idle());
        conn.timeout();
        assert_eq!(
            drive(&mut conn, &mut echo, b""),
            (String::new(), Action::Close)
        );
        assert!(conn.is_closed());
        assert_eq!(conn.feed(b"GET"), 0);
    }

    #[test]
    fn body_limits_are_413() {
        let limits = Limits {
            body: 4,
            ..Limits::default()
        };
        let mut conn = Connection::new(limits);
        let (out, action) = drive(
            &mut conn,
            &mut echo,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
        );
        assert_eq!((status_of(&out), action), ("413", Action::Close));
        assert_eq!(
            conn.last_error(),
            Some(RequestError::BodyTooLarge {
                length: 5,
                limit: 4
            })
        );
        let mut conn = Connection::new(limits);
        let (out, _) = drive(
            &mut conn,
            &mut echo,
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\nabc\r\n",
        );
        assert_eq!(status_of(&out), "413");
        let (out, _) = drive(
            &mut Connection::new(limits),
            &mut echo,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nabcd",
        );
        assert!(out.ends_with("POST / 4"));
    }

    #[test]
    fn long_request_line_is_414() {
        let limits = Limits {
            request_line: 64,
            ..Limits::default()
        };
        let mut long = Vec::from(&b"GET /"[..]);
        long.resize(100, b'a');
        // Incomplete line already past the limit.
        let (out, _) = drive(&mut Connection::new(limits), &mut echo, &long);
        assert_eq!(status_of(&out), "414");
        long.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
        let mut conn = Connection::new(limits);
        let (out, _) = drive(&mut conn, &mut echo, &long);
        assert_eq!(status_of(&out), "414");
        assert_eq!(
            conn.last_error(),
            Some(RequestError::RequestLineTooLong { limit: 64 })
        );
        // Exactly at the limit is fine.
        let mut ok = Vec::from(&b"GET /"[..]);
        ok.resize(64 - 9, b'a');
        ok.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(
            status_of(&drive(&mut Connection::new(limits), &mut echo, &ok).0),
            "200"
        );
    }

    #[test]
    fn large_heads_are_431() {
        let limits = Limits {
            header_bytes: 256,
            headers: 4,
            ..Limits::default()
        };
        let (out, _) = drive(
            &mut Connection::new(limits),
            &mut echo,
            b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
        );
        assert_eq!(status_of(&out), "431");
        let mut big = Vec::from(&b"GET / HTTP/1.1\r\nHost: a\r\nX: "[..]);
        big.resize(300, b'x');
        let mut conn = Connection::new(limits);
        let (out, _) = drive(&mut conn, &mut echo, &big);
        assert_eq!(status_of(&out), "431");
        assert_eq!(
            conn.last_error(),
            Some(RequestError::HeadTooLarge { limit: 256 })
        );
        // Complete head over the limit in one read.
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            status_of(&drive(&mut Connection::new(limits), &mut echo, &big).0),
            "431"
        );
    }

    #[test]
    fn unknown_methods_and_codings_are_501() {
        assert_eq!(
            expect_error(b"BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n", "501"),
            Some(RequestError::UnknownMethod)
        );
        expect_error(b"get / HTTP/1.1\r\nHost: a\r\n\r\n", "501");
        assert_eq!(
            expect_error(
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                "501"
            ),
            Some(RequestError::UnsupportedTransferEncoding)
        );
        expect_error(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "501");
    }

    #[test]
    fn other_versions_are_505() {
        assert_eq!(
            expect_error(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", "505"),
            Some(RequestError::UnsupportedVersion)
        );
        expect_error(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", "505");
        // A space inside the target makes the "version" garbage: 400, as nginx.
        expect_error(b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", "400");
        expect_error(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", "400");
        expect_error(b"GET / HTTP/0.9\r\n\r\n", "505");
    }

    #[test]
    fn chunked_bodies_are_delivered() {
        let (out, _) = run(
            &mut echo,
            b"POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n",
        );
        assert!(out.ends_with("POST /u 11"), "{out}");
        let mut got = Vec::new();
        let mut keep =
            |req: &Request<'_>, _: &mut ResponseWriter| got.extend_from_slice(req.body());
        run(&mut keep, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n");
        assert_eq!(got, b"abcd");
    }

    #[test]
    fn bad_chunks_are_400() {
        for body in [
            &b"zz\r\n"[..],
            b"ffffffffffffffffff\r\n",
            b"3\r\nabcd\r\n",
            b"3\nabc\n0\n\n",
            b"-3\r\n",
        ] {
            let mut req =
                Vec::from(&b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"[..]);
            req.extend_from_slice(body);
            let err = expect_error(&req, "400");
            assert!(matches!(err, Some(RequestError::Chunked(_))), "{err:?}");
        }
    }

    #[test]
    fn huge_chunk_size_within_u64_is_413() {
        let err = expect_error(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff0\r\n",
            "413",
        );
        assert!(matches!(
            err,
            Some(RequestError::Chunked(ChunkedError::BodyTooLarge { .. }))
        ));
    }

    #[test]
    fn bodies_larger_than_the_input_buffer_stream_through() {
        let limits = Limits {
            header_bytes: 64,
            body: 100_000,
            ..Limits::default()
        };
        let mut req =
            Vec::from(&b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 50000\r\n\r\n"[..]);
        req.resize(req.len() + 50_000, b'z');
        req.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
        let (out, _) = drive(&mut Connection::new(limits), &mut echo, &req);
        assert!(out.contains("POST / 50000"));
        assert!(out.ends_with("GET /next 0"));
    }

    #[test]
    fn discarded_bodies() {
        struct Discard;
        impl Handler for Discard {
            fn handle(&mut self, req: &Request<'_>, resp: &mut ResponseWriter) {
                echo(req, resp)
            }
            fn wants_body(&self) -> bool {
                false
            }
        }
        let (out, _) = run(&mut Discard, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(out.contains("POST / 0"));
        assert!(out.ends_with("GET / 0"));
    }

    #[test]
    fn expect_continue_gets_an_interim_response() {
        let mut conn = Connection::new(Limits::default());
        let (out, _) = drive(
            &mut conn,
            &mut echo,
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
        );
        assert_eq!(out, "HTTP/1.1 100 Continue\r\n\r\n");
        let (out, _) = drive(&mut conn, &mut echo, b"ok");
        assert!(out.starts_with("HTTP/1.1 200 OK") && out.ends_with("POST / 2"));
        // Body already sent: no interim response.
        let (out, _) = run(
            &mut echo,
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
        );
        assert!(out.starts_with("HTTP/1.1 200 OK"));
    }

    #[test]
    fn invalid_handler_headers_become_500() {
        let mut bad = |_: &Request<'_>, resp: &mut ResponseWriter| {
            resp.header("X-Evil", b"a\r\nSet-Cookie: b");
            resp.body_static(b"secret");
        };
        let (out, _) = run(&mut bad, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(status_of(&out), "500");
        assert!(!out.contains("Set-Cookie") && !out.contains("secret"));
    }

    #[test]
    fn handler_can_close_and_bodiless_statuses_have_no_length() {
        let mut h = |_: &Request<'_>, resp: &mut ResponseWriter| {
            resp.set_status(StatusCode::NoContent);
            resp.body_static(b"ignored");
            resp.close();
        };
        let (out, action) = run(
            &mut h,
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        );
        assert_eq!(action, Action::Close);
        assert!(
            !out.contains("Content-Length") && out.ends_with("Connection: close\r\n\r\n"),
            "{out}"
        );
    }

    #[test]
    fn eof_answers_complete_requests_then_closes() {
        let mut conn = Connection::new(Limits::default());
        let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /partial HT";
        assert_eq!(conn.feed(input), input.len());
        conn.eof();
        let (out, action) = drive(&mut conn, &mut echo, b"");
        assert_eq!(out.matches("HTTP/1.1 200").count(), 1);
        assert_eq!(action, Action::Close);
    }

    #[test]
    fn feed_takes_only_what_fits() {
        let limits = Limits {
            header_bytes: 64,
            ..Limits::default()
        };
        let mut conn = Connection::new(limits);
        let big = [b'a'; 10_000];
        let n = conn.feed(&big);
        assert_eq!(n, INITIAL_INPUT_BUFFER);
        assert!(conn.read_buf().is_empty());
        // A request line this long is over the limit: 414, not a stall.
        assert_eq!(conn.poll(&mut echo, NOW), Action::Write);
        assert_eq!(
            status_of(core::str::from_utf8(conn.output().head).unwrap()),
            "414"
        );
    }

    #[test]
    fn absolute_form_and_options_star() {
        let (out, _) = run(
            &mut echo,
            b"GET http://a/x?q HTTP/1.1\r\nHost: a\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        );
        assert!(out.contains("GET /x 0"));
        assert!(out.ends_with("OPTIONS * 0"));
    }

    #[test]
    fn response_buffers_are_reused() {
        let mut conn = Connection::new(Limits::default());
        let req = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
        drive(&mut conn, &mut echo, req);
        let cap = conn.head.capacity();
        for _ in 0..100 {
            drive(&mut conn, &mut echo, req);
        }
        assert_eq!(conn.head.capacity(), cap);
        assert_eq!(conn.requests(), 101);
    }

    /// Defers every request once, then answers with what the "async work" produced.
    struct Deferring {
        calls: Vec<String>,
        ready: Option<String>,
    }

    impl Handler for Deferring {
        fn handle(&mut self, req: &Request<'_>, resp: &mut ResponseWriter) {
            let seen = alloc::format!(
                "{} {} {}",
                req.method().as_str(),
                req.path(),
                String::from_utf8_lossy(req.body())
            );
            self.calls.push(seen.clone());
            match self.ready.take() {
                Some(answer) if answer == seen => resp.body_bytes(answer.as_bytes()),
                _ => {
                    resp.set_status(StatusCode::NotFound); // discarded by defer
                    resp.defer();
                }
            }
        }
    }

    #[test]
    fn deferred_requests_are_dispatched_again_with_the_same_request() {
        let input = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n\
                      PUT /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz\
                      POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
        let mut h = Deferring {
            calls: Vec::new(),
            ready: None,
        };
        let mut conn = Connection::new(Limits::default());
        let mut out = String::new();
        let (o, action) = drive(&mut conn, &mut h, input);
        out.push_str(&o);
        let mut rounds = 0;
        let mut action = action;
        while action == Action::Defer {
            rounds += 1;
            assert!(!conn.is_idle());
            // The "async work": answer the request the handler last saw.
            h.ready = h.calls.last().cloned();
            let (o, a) = drive(&mut conn, &mut h, b"");
            out.push_str(&o);
            action = a;
        }
        assert_eq!(rounds, 3);
        assert_eq!(action, Action::Read);
        assert_eq!(
            h.calls,
            [
                "GET /a ",
                "GET /a ",
                "PUT /b xyz",
                "PUT /b xyz",
                "POST /c hi",
                "POST /c hi"
            ]
        );
        let bodies: Vec<&str> = out
            .split("\r\n\r\n")
            .skip(1)
            .map(|s| s.split("HTTP/1.1").next().unwrap())
            .collect();
        assert_eq!(bodies, ["GET /a ", "PUT /b xyz", "POST /c hi"]);
        assert!(!out.contains("404"));
        assert_eq!(conn.requests(), 3);
        assert!(conn.is_idle());
    }

    #[test]
    fn a_deferred_request_survives_eof_and_is_still_answered() {
        let mut h = Deferring {
            calls: Vec::new(),
            ready: None,
        };
        let mut conn = Connection::new(Limits::default());
        let (_, a) = drive(
            &mut conn,
            &mut h,
            b"PUT /k HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nv",
        );
        assert_eq!(a, Action::Defer);
        conn.eof();
        h.ready = h.calls.last().cloned();
        let (out, a) = drive(&mut conn, &mut h, b"");
        assert!(
            out.starts_with("HTTP/1.1 200 OK") && out.ends_with("PUT /k v"),
            "{out}"
        );
        assert_eq!(a, Action::Close);
    }

    #[test]
    fn without_a_clock_there_is_no_date() {
        let mut conn = Connection::new(Limits::default());
        let (out, _) = drive_at(
            &mut conn,
            &mut echo,
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nA: \x01\r\n\r\n",
            None,
        );
        assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 1, "{out}");
        assert_eq!(out.matches("HTTP/1.1 400").count(), 1, "{out}");
        assert!(!out.contains("Date:"), "{out}");
        let mut seen = None;
        let mut h = |_: &Request<'_>, resp: &mut ResponseWriter| seen = Some(resp.now());
        drive_at(
            &mut Connection::new(Limits::default()),
            &mut h,
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            None,
        );
        assert_eq!(seen, Some(None));
    }

    #[test]
    fn overloaded_response_is_a_complete_503_that_closes() {
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut resp = httparse::Response::new(&mut headers);
        assert_eq!(
            resp.parse(OVERLOADED_RESPONSE),
            Ok(httparse::Status::Complete(OVERLOADED_RESPONSE.len()))
        );
        assert_eq!(
            (resp.version, resp.code, resp.reason),
            (
                Some(1),
                Some(503),
                Some(StatusCode::ServiceUnavailable.reason())
            )
        );
        let value = |name: &str| {
            let mut found = resp
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name));
            let v = found.next().map(|h| h.value);
            assert!(found.next().is_none(), "{name} twice");
            v
        };
        assert_eq!(value("content-length"), Some(&b"0"[..]));
        assert_eq!(value("connection"), Some(&b"close"[..]));
        assert_eq!(value("retry-after"), Some(&b"1"[..]));
        assert_eq!(value("date"), None);
        assert_eq!(
            RequestError::Overloaded { bytes: 1 }.status(),
            StatusCode::ServiceUnavailable
        );
    }

    #[test]
    fn an_idle_connection_holds_only_the_initial_buffer() {
        let mut conn = Connection::new(Limits::default());
        assert_eq!(conn.heap_bytes(), 0);
        assert_eq!(conn.poll(&mut echo, NOW), Action::Read);
        assert_eq!(conn.heap_bytes(), INITIAL_INPUT_BUFFER);
        assert_eq!(conn.read_buf().len(), INITIAL_INPUT_BUFFER);
        let (out, action) = drive(&mut conn, &mut echo, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!((status_of(&out), action), ("200", Action::Read));
        assert!(conn.is_idle());
        assert!(
            conn.heap_bytes() <= INITIAL_INPUT_BUFFER + 512,
            "{}",
            conn.heap_bytes()
        );
    }

    #[test]
    fn large_requests_grow_the_buffer_and_idle_frees_it() {
        let mut conn = Connection::new(Limits::default());
        let mut big = Vec::from(&b"GET /big HTTP/1.1\r\nHost: a\r\nX: "[..]);
        big.resize(10_000, b'x');
        big.extend_from_slice(
            b"\r\n\r\nPOST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3000\r\n\r\n",
        );
        big.resize(big.len() + 3000, b'y');
        big.extend_from_slice(b"GET /last HTTP/1.1\r\nHost: a\r\n\r\n");
        let (out, action) = drive(&mut conn, &mut echo, &big);
        assert_eq!(action, Action::Read);
        let bodies: Vec<&str> = out
            .split("\r\n\r\n")
            .skip(1)
            .map(|s| s.split("HTTP/1.1").next().unwrap())
            .collect();
        assert_eq!(bodies, ["GET /big 0", "POST /p 3000", "GET /last 0"]);
        assert!(conn.is_idle());
        assert_eq!(conn.buf.capacity(), INITIAL_INPUT_BUFFER);
        assert!(
            conn.heap_bytes() <= INITIAL_INPUT_BUFFER + 512,
            "{}",
            conn.heap_bytes()
        );
        // Byte at a time through the same growth.
        let mut conn = Connection::new(Limits::default());
        for chunk in big.chunks(1) {
            let mut rest = chunk;
            while !rest.is_empty() {
                match conn.poll(&mut echo, NOW) {
                    Action::Write => {
                        let n = conn.output().len();
                        conn.advance(n);
                    }
                    Action::Read => {
                        conn.read_buf()[0] = rest[0];
                        conn.commit(1);
                        rest = &rest[1..];
                    }
                    a => panic!("{a:?}"),
                }
            }
        }
        drive(&mut conn, &mut echo, b"");
        assert_eq!(conn.requests(), 3);
        assert!(conn.last_error().is_none());
    }

    /// The 503 the connection sends when a buffer cannot grow.
    fn expect_overloaded(conn: &mut Connection, h: &mut dyn Handler, input: &[u8]) {
        let (out, action) = drive(conn, h, input);
        assert_eq!(out.as_bytes(), OVERLOADED_RESPONSE, "{out}");
        assert_eq!(action, Action::Close);
        assert!(matches!(
            conn.last_error(),
            Some(RequestError::Overloaded { .. })
        ));
        assert!(conn.is_closed());
        assert_eq!(
            conn.heap_bytes(),
            0,
            "a refused connection gives its memory back"
        );
    }

    #[test]
    fn growth_past_the_memory_cap_is_503_and_close() {
        // Head larger than the cap lets the input buffer grow.
        let mut big = Vec::from(&b"GET / HTTP/1.1\r\nHost: a\r\nX: "[..]);
        big.resize(3000, b'x');
        big.extend_from_slice(b"\r\n\r\n");
        let mut conn = Connection::with_memory_cap(Limits::default(), 2048);
        assert_eq!(conn.memory_cap(), 2048);
        expect_overloaded(&mut conn, &mut echo, &big);
        assert_eq!(
            conn.last_error(),
            Some(RequestError::Overloaded { bytes: 2049 })
        );
        // The same head fits a larger cap.
        let mut conn = Connection::with_memory_cap(Limits::default(), 8192);
        let (out, _) = drive(&mut conn, &mut echo, &big);
        assert_eq!(status_of(&out), "200");
        assert!(conn.heap_bytes() <= 8192 + conn.writer.heap_bytes());

        // A kept body past the cap; the same body discarded is fine.
        let mut post =
            Vec::from(&b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n"[..]);
        post.resize(post.len() + 5000, b'z');
        expect_overloaded(
            &mut Connection::with_memory_cap(Limits::default(), 6000),
            &mut echo,
            &post,
        );
        struct Discard;
        impl Handler for Discard {
            fn handle(&mut self, _: &Request<'_>, _: &mut ResponseWriter) {}
            fn wants_body(&self) -> bool {
                false
            }
        }
        let (out, _) = drive(
            &mut Connection::with_memory_cap(Limits::default(), 6000),
            &mut Discard,
            &post,
        );
        assert_eq!(status_of(&out), "200");
        let mut chunked = Vec::from(
            &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1388\r\n"[..],
        );
        chunked.resize(chunked.len() + 5000, b'z');
        chunked.extend_from_slice(b"\r\n0\r\n\r\n");
        expect_overloaded(
            &mut Connection::with_memory_cap(Limits::default(), 6000),
            &mut echo,
            &chunked,
        );

        // No room for the response head (the input buffer shrinks to fit the cap).
        expect_overloaded(
            &mut Connection::with_memory_cap(Limits::default(), 100),
            &mut echo,
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        );
        // ... nor for an interim 100 Continue.
        expect_overloaded(
            &mut Connection::with_memory_cap(Limits::default(), 100),
            &mut echo,
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
        );
        // No room for any input buffer: refused before a request.
        expect_overloaded(
            &mut Connection::with_memory_cap(Limits::default(), 0),
            &mut echo,
            b"",
        );
        // A cap does not change the limits' answers.
        let mut long = Vec::from(&b"GET /"[..]);
        long.resize(crate::limits::DEFAULT_MAX_REQUEST_LINE + 100, b'a');
        let (out, _) = drive(
            &mut Connection::with_memory_cap(Limits::default(), 1 << 20),
            &mut echo,
            &long,
        );
        assert_eq!(status_of(&out), "414");
    }

    #[test]
    fn response_heads_fit_their_reservation() {
        let mut h = |_: &Request<'_>, resp: &mut ResponseWriter| {
            resp.set_status(StatusCode::Other(65535, "Long Reason Phrase"));
            resp.header("X-A", &[b'a'; 300]);
        };
        let mut conn = Connection::new(Limits::default());
        drive(&mut conn, &mut h, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let reserved =
            HEAD_OVERHEAD + "Long Reason Phrase".len() + conn.writer.header_block().len();
        assert!(conn.head.len() <= reserved);
        assert_eq!(conn.head.capacity(), reserved);
    }
}
