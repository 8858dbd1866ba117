//! Serving a [`StaticSite`] over HTTP: path mapping, directory index and redirects,
//! conditional requests, byte ranges and gzip negotiation. Close to nginx's `static`
//! and `gzip_static` modules; differences are listed in the crate docs.

use core::fmt;

use crate::connection::{Handler, write_canned};
use crate::date::{format_imf_fixdate, parse_http_date};
use crate::negotiate::{accepts_gzip, matches_strong, matches_weak};
use crate::pack::{Entry, MAX_PATH_LEN, StaticSite};
use crate::path::{PathError, normalize};
use crate::range::{RangeOutcome, evaluate};
use crate::request::{Method, Request};
use crate::response::ResponseWriter;
use crate::status::StatusCode;

/// The file served for a directory path ending in `/`.
pub const INDEX_FILE: &[u8] = b"index.html";
/// Stack buffer for the normalized path: room for [`MAX_PATH_LEN`] plus `index.html`.
const PATH_BUF_LEN: usize = MAX_PATH_LEN + 16;

impl Handler for StaticSite<'static> {
    fn handle(&mut self, req: &Request<'_>, resp: &mut ResponseWriter) {
        self.respond(req, resp);
    }

    /// Static files ignore request bodies: they are read, limited and dropped.
    fn wants_body(&self) -> bool {
        false
    }
}

impl StaticSite<'static> {
    /// Answers `req` from the site. Allocation-free: bodies are `&'static` slices of the
    /// pack, headers go into the writer's reused buffer.
    pub fn respond(&self, req: &Request<'_>, resp: &mut ResponseWriter) {
        if !matches!(req.method(), Method::Get | Method::Head) {
            write_canned(resp, StatusCode::MethodNotAllowed);
            resp.header("Allow", b"GET, HEAD");
            return;
        }
        let mut buf = [0u8; PATH_BUF_LEN];
        let n = match normalize(req.path().as_bytes(), &mut buf) {
            Ok(n) => n,
            // No entry can have a path this long.
            Err(PathError::TooLong { .. }) => return write_canned(resp, StatusCode::NotFound),
            Err(_) => {
                write_canned(resp, StatusCode::BadRequest);
                resp.close();
                return;
            }
        };
        let path = buf.get(..n).unwrap_or_default();
        if path.ends_with(b"/") {
            let dir_len = n;
            let with_index = n + INDEX_FILE.len();
            if let Some(slot) = buf.get_mut(n..with_index) {
                slot.copy_from_slice(INDEX_FILE);
            }
            let index = buf.get(..with_index).unwrap_or_default();
            if let Some(entry) = self.get_bytes(index) {
                return serve_entry(&entry, req, resp);
            }
            // A directory without index: nginx answers 403 (autoindex off).
            let dir = buf.get(..dir_len).unwrap_or_default();
            let status = if dir == b"/" || self.has_prefix(dir) {
                StatusCode::Forbidden
            } else {
                StatusCode::NotFound
            };
            return write_canned(resp, status);
        }
        if let Some(entry) = self.get_bytes(path) {
            return serve_entry(&entry, req, resp);
        }
        // `/dir` where `/dir/…` exists: redirect to the slash form, like nginx.
        if let Some(slot) = buf.get_mut(n) {
            *slot = b'/';
            let dir = buf.get(..n + 1).unwrap_or_default();
            if self.has_prefix(dir) {
                write_canned(resp, StatusCode::MovedPermanently);
                let query = req.query();
                resp.header_fmt(
                    "Location",
                    format_args!("{}{}{}", PercentEncoded(dir), if query.is_some() { "?" } else { "" }, query.unwrap_or("")),
                );
                return;
            }
        }
        write_canned(resp, StatusCode::NotFound);
    }
}

fn serve_entry(entry: &Entry<'static>, req: &Request<'_>, resp: &mut ResponseWriter) {
    let gzip = entry.gzip.is_some() && accepts_gzip(req.header_values("accept-encoding"));
    let (repr, etag) = match entry.gzip {
        Some(g) if gzip => (g, entry.etag(true)),
        _ => (entry.body, entry.etag(false)),
    };
    let last_modified = format_imf_fixdate(entry.last_modified);
    let validators = |resp: &mut ResponseWriter| {
        resp.header("Last-Modified", &last_modified);
        resp.header_fmt("ETag", format_args!("{etag}"));
    };
    let vary = |resp: &mut ResponseWriter| {
        if entry.compressible || entry.gzip.is_some() {
            resp.header("Vary", b"Accept-Encoding");
        }
    };

    // RFC 9110 §13.2.2 evaluation order.
    let date = |name| req.header(name).and_then(parse_http_date);
    let precondition_failed = if req.header("if-match").is_some() {
        !req.header_values("if-match").any(|v| matches_strong(v, etag))
    } else {
        date("if-unmodified-since").is_some_and(|since| entry.last_modified > since)
    };
    if precondition_failed {
        return write_canned(resp, StatusCode::PreconditionFailed);
    }
    let not_modified = if req.header("if-none-match").is_some() {
        req.header_values("if-none-match").any(|v| matches_weak(v, etag))
    } else {
        date("if-modified-since").is_some_and(|since| entry.last_modified <= since)
    };
    if not_modified {
        resp.set_status(StatusCode::NotModified);
        validators(resp);
        vary(resp);
        return;
    }

    let len = repr.len() as u64;
    let mut outcome = RangeOutcome::Full;
    if req.method() == Method::Get {
        if let Some(range) = req.header("range") {
            let if_range_ok = match req.header("if-range") {
                None => true,
                Some(v) if v.starts_with(b"\"") || v.starts_with(b"W/") => matches_strong(v, etag),
                Some(v) => parse_http_date(v) == Some(entry.last_modified),
            };
            if if_range_ok {
                outcome = evaluate(range, len);
            }
        }
    }
    match outcome {
        RangeOutcome::Unsatisfiable => {
            write_canned(resp, StatusCode::RangeNotSatisfiable);
            resp.header_fmt("Content-Range", format_args!("bytes */{len}"));
        }
        RangeOutcome::Partial { start, end } => {
            resp.set_status(StatusCode::PartialContent);
            resp.header("Content-Type", entry.content_type.as_bytes());
            validators(resp);
            resp.header_fmt("Content-Range", format_args!("bytes {start}-{end}/{len}"));
            if gzip {
                resp.header("Content-Encoding", b"gzip");
            }
            vary(resp);
            let body = repr.get(start as usize..=end as usize).unwrap_or_default();
            resp.body_static(body);
        }
        RangeOutcome::Full => {
            resp.set_status(StatusCode::Ok);
            resp.header("Content-Type", entry.content_type.as_bytes());
            validators(resp);
            resp.header("Accept-Ranges", b"bytes");
            if gzip {
                resp.header("Content-Encoding", b"gzip");
            }
            vary(resp);
            resp.body_static(repr);
        }
    }
}

/// Writes a decoded path for a `Location` header: bytes outside RFC 3986 `pchar` and
/// `/` are percent-encoded, so decoded CR/LF can never reach the header.
struct PercentEncoded<'a>(&'a [u8]);

impl fmt::Display for PercentEncoded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            let plain = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b);
            if plain {
                fmt::Write::write_char(f, char::from(b))?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        Ok(())
    }
}
