//! `oasis-http`: a sans-IO HTTP/1.1 server library, and the static-site store the `www`
//! appliance serves from.
//!
//! Nothing here does I/O or reads a clock. The caller owns the socket and the timers and
//! pumps bytes between them and a [`Connection`]; the connection parses requests (with
//! [`httparse`]), hands each one to a [`Handler`], and produces response bytes in order.
//! `#![no_std]` + `alloc`, no `unsafe`, no panics on any input.
//!
//! # Pieces
//!
//! - [`Connection`]: the per-connection state machine. [`Connection::poll`] returns an
//!   [`Action`]: `Read` (fill [`Connection::read_buf`] + [`Connection::commit`], or
//!   [`Connection::feed`]), `Write` (write [`Connection::output`], then
//!   [`Connection::advance`]) or `Close`. [`Connection::timeout`] asks for the 408 when
//!   the caller's header timer fires; [`Connection::is_idle`] tells which timer to run;
//!   [`Connection::eof`] reports a peer half-close. `poll` takes the wall clock as
//!   `Option<u64>` (unix seconds): `None` means the server has no clock.
//! - Memory: a new [`Connection`] allocates nothing, an idle one holds about
//!   [`limits::INITIAL_INPUT_BUFFER`] ([`Connection::heap_bytes`]), and every
//!   allocation the peer can cause is fallible: when a buffer cannot grow (allocator or
//!   [`Connection::with_memory_cap`]) the answer is [`OVERLOADED_RESPONSE`] (503) and
//!   close. Servers refusing a connection at the edge write the same constant.
//! - [`Handler`]: `fn handle(&mut self, req: &Request<'_>, resp: &mut ResponseWriter)`.
//!   Closures implement it too. A handler that needs asynchronous work (a store on a
//!   disk) calls [`ResponseWriter::defer`]: `poll` returns [`Action::Defer`], the
//!   caller does the work and polls again, and the handler sees the same request again.
//! - [`Request`]: method, target, path, query, version, headers, decoded body.
//! - [`ResponseWriter`]: status, headers, and a body that is a `&'static [u8]`
//!   ([`ResponseWriter::body_static`], never copied) or bytes in a reused buffer.
//! - [`Limits`]: request line (414), head size (431), header count (431), body (413),
//!   with defaults in [`limits`].
//! - [`StaticSite`]: a read-only key-value store over a validated binary pack
//!   ([`pack`]): [`StaticSite::get`] returns an [`Entry`] (size, ETag digest,
//!   last-modified, content type, body, optional gzip variant). It implements
//!   [`Handler`] with nginx-like static serving.
//! - [`date`]: IMF-fixdate formatting and HTTP-date parsing, integer-only.
//! - `builder` (feature `std`): `pack_dir(&Path) -> Result<Vec<u8>, BuildError>` for
//!   build scripts and tools.
//!
//! # Example
//!
//! ```
//! use oasis_http::{Action, Connection, Limits, pack::{NewEntry, PackBuilder}, StaticSite};
//!
//! // At build time (normally `builder::pack_dir` in a build script + `include_bytes!`).
//! let mut b = PackBuilder::new();
//! b.add(NewEntry { path: "/index.html", content_type: "text/html", body: b"<h1>hi</h1>",
//!                  gzip: None, last_modified: 1_700_000_000, compressible: true }).unwrap();
//! let pack: &'static [u8] = Vec::leak(b.finish().unwrap());
//!
//! // At run time: one site, one Connection per TCP connection.
//! let mut site = StaticSite::parse(pack).unwrap();
//! let mut conn = Connection::new(Limits::default());
//! conn.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
//! let now = Some(1_700_000_100); // wall clock, unix seconds (None: no clock, no Date)
//! let mut wire = Vec::new();
//! loop {
//!     match conn.poll(&mut site, now) {
//!         Action::Write => {
//!             let out = conn.output();
//!             wire.extend_from_slice(out.head);  // socket.write_all(out.head).await
//!             wire.extend_from_slice(out.body);  // zero-copy: a slice of `pack`
//!             let n = out.len();
//!             conn.advance(n);
//!         }
//!         Action::Read => break,                 // socket.read(conn.read_buf()).await …
//!         Action::Close => break,
//!         Action::Defer => unreachable!("StaticSite never defers"),
//!     }
//! }
//! assert!(wire.starts_with(b"HTTP/1.1 200 OK\r\n"));
//! assert!(wire.ends_with(b"<h1>hi</h1>"));
//! ```
//!
//! # Status codes the connection produces itself (and then closes)
//!
//! 400 malformed head, bad target, missing/duplicate `Host` in HTTP/1.1, bad or
//! conflicting `Content-Length`, both `Content-Length` and `Transfer-Encoding`,
//! `Transfer-Encoding` in HTTP/1.0, bad chunked framing (bad hex, overflow, missing
//! CRLF); 408 after [`Connection::timeout`] mid-request; 413 `Content-Length` or decoded
//! chunked body over [`Limits::body`]; 414 request line over [`Limits::request_line`];
//! 431 head over [`Limits::header_bytes`] or more than [`Limits::headers`] fields; 501
//! unknown method token or a `Transfer-Encoding` other than `chunked`; 505 an
//! `HTTP/x.y` version other than 1.0/1.1; 500 when a handler sets an invalid header;
//! 503 ([`OVERLOADED_RESPONSE`]) when a buffer cannot grow.
//!
//! Keep-alive: HTTP/1.1 persists unless `Connection: close`; HTTP/1.0 closes unless
//! `Connection: keep-alive`. Responses are always `HTTP/1.1`, carry `Server`, `Date`
//! (only when `poll` was given a clock: RFC 9110 §6.6.1),
//! `Content-Length` (except 1xx/204/304) and `Connection: keep-alive|close`. `HEAD`
//! gets `GET`'s headers, with `GET`'s `Content-Length`, and no body. `Expect:
//! 100-continue` gets an interim `100 Continue` before the body is read.
//!
//! # Static serving ([`StaticSite`] as [`Handler`])
//!
//! - Only `GET`/`HEAD`; other known methods → 405 with `Allow: GET, HEAD`.
//! - The path is percent-decoded (`%2F` is a separator), `//` merged, `.`/`..` resolved
//!   within the root. `..` above the root (`/../etc/passwd`, `/%2e%2e/`), `%00`, bad
//!   escapes → **400** and close (as nginx). Backslashes are ordinary bytes, so
//!   `/..\..\x` is simply not found → **404**. Decoded paths too long for any entry → 404.
//! - `/dir/` serves `/dir/index.html`; a directory without one → 403 (nginx, autoindex
//!   off); `/dir` → 301 to `/dir/` (query kept); anything else missing → 404 with a
//!   small HTML body.
//! - Preconditions in RFC 9110 §13.2.2 order: `If-Match` / `If-Unmodified-Since` → 412;
//!   `If-None-Match` (weak comparison, `*`) or else `If-Modified-Since` → 304. An
//!   `If-Modified-Since` later than the clock given to `poll` is ignored (RFC 9110
//!   §13.1.3); without a clock it is taken as sent.
//! - `Range: bytes=A-B | A- | -N` (GET only, honouring `If-Range`) → 206 with
//!   `Content-Range`; unsatisfiable → 416 with `Content-Range: bytes */LEN`.
//! - `Accept-Encoding` with q-values (`gzip;q=0` and `*` honoured) selects the gzip
//!   variant: `Content-Encoding: gzip`, its own strong ETag (`"…-gz"`), ranges apply to
//!   the gzip bytes. `Vary: Accept-Encoding` on every answer for compressible entries.
//!
//! ## Intentional differences from nginx
//!
//! - Multiple ranges → full 200 (nginx sends `multipart/byteranges`).
//! - `If-Modified-Since` uses RFC "not modified since" (≤), nginx's `if_modified_since
//!   before`; nginx's default is `exact`. A date later than the server's clock is
//!   ignored (RFC 9110 §13.1.3): 200 where nginx answers 304.
//! - Oversized heads → 431 (nginx: 400 "Request Header Or Cookie Too Large").
//! - Unknown methods → 501 and HTTP/0.9 → 400 (nginx: 405-ish / serves 0.9).
//! - `Location` of the directory redirect is relative (`absolute_redirect off`).
//! - ETag is a content hash (`"16 hex"`), not nginx's `"mtime-size"`; the gzip variant
//!   has its own strong ETag instead of nginx's weakened one.
//! - Header timeout answers 408 (nginx closes silently); idle keep-alive closes silently
//!   as nginx does.
//! - `Server: oasis`; no `charset` parameter on text types (nginx default too).
//! - `Accept-Encoding: *` selects the gzip variant (RFC 9110 §12.5.3); nginx only looks
//!   for the token `gzip`.
//! - `Range` is ignored on `HEAD` (RFC 9110 §14.2: defined for GET only; nginx: 206),
//!   and so is a syntactically invalid one (`bytes=abc`: 200; nginx: 416). A last-byte
//!   position past the end is clamped however many digits it has (nginx: 416 on
//!   overflow). Any range of an empty file is 416 (nginx ignores Range there: 200).
//! - A header line without a colon is 400 (RFC 9112 §5; nginx skips the line). The
//!   header-count and head-size limits (64 fields, 16 KiB per head) differ from nginx's
//!   per-line buffers (8 KiB per line, no count): 431 where nginx serves, 200 for one
//!   long line where nginx answers 400.
//! - `CONNECT host:port` and `OPTIONS *` → 405 with `Allow` (nginx: 400); `HTTP/1.2` →
//!   505 (nginx serves it as 1.1).
//! - A `#fragment` in the target is dropped (as nginx); a space in the target is 400.
//!
//! `tests/tests/www.rs` checks all of this against a real nginx (`max_ranges 1`,
//! `absolute_redirect off`, `if_modified_since before`, `gzip_static on`) on ~140
//! requests and fails when a difference appears that is not listed there.
//!
//! # Fuzzing
//!
//! `cd lib/http/fuzz && cargo +nightly fuzz run connection|conditional|pack`; the seed
//! corpora under `fuzz/corpus/` are replayed, with mutations, by `tests/fuzz_replay.rs`
//! on stable.
#![no_std]
#![forbid(unsafe_code)]
// Input from outside must never panic the kernel through an unchecked unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

#[cfg(feature = "std")]
pub mod builder;
pub mod chunked;
pub mod connection;
pub mod date;
// Fuzz-target bodies: compiled only for tests and the fuzz targets (feature
// `fuzzing`, which the crate's own tests and `fuzz/Cargo.toml` turn on).
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod limits;
pub mod mime;
pub mod negotiate;
pub mod pack;
pub mod path;
pub mod range;
pub mod request;
pub mod response;
mod serve;
pub mod status;

pub use connection::{Action, Connection, Handler, OVERLOADED_RESPONSE, Output, RequestError};
pub use limits::Limits;
pub use pack::{ETag, Entry, PackError, StaticSite};
pub use request::{Method, Request, Version};
pub use response::ResponseWriter;
pub use serve::{INDEX_FILE, RESOLVE_BUF_LEN, SiteIndex, resolve, serve_entry_copied};
pub use status::StatusCode;
