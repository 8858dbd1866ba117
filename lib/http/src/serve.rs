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
        let mut buf = [0u8; PATH_BUF_LEN];
        let Some(path) = resolve(self, req, resp, &mut buf) else {
            return;
        };
        match self.get_bytes(path) {
            Some(entry) => serve_entry(&entry, req, resp, |r, b| r.body_static(b)),
            None => write_canned(resp, StatusCode::NotFound),
        }
    }
}

/// The file paths of a site whose bodies live elsewhere (a tar image on a disk):
/// what [`resolve`] needs to map a request path as [`StaticSite`] does.
pub trait SiteIndex {
    /// Whether a file has exactly this normalized path (`/a/b.html`).
    fn contains(&self, path: &[u8]) -> bool;
    /// Whether some file's path starts with `prefix` (the directory exists).
    fn has_prefix(&self, prefix: &[u8]) -> bool;
}

impl SiteIndex for StaticSite<'_> {
    fn contains(&self, path: &[u8]) -> bool {
        self.get_bytes(path).is_some()
    }

    fn has_prefix(&self, prefix: &[u8]) -> bool {
        StaticSite::has_prefix(self, prefix)
    }
}

/// Maps `req` to a file of `index` exactly as [`StaticSite`] serving does: only
/// `GET`/`HEAD` (else 405), path normalization (bad paths 400 and close), `dir/` →
/// `dir/index.html` (else 403/404), `dir` → 301 to `dir/`, missing → 404. Returns the
/// normalized path of the file to serve (inside `buf`), or `None` when it answered
/// `resp` itself. Pair with [`serve_entry_copied`].
pub fn resolve<'b, I: SiteIndex + ?Sized>(
    index: &I,
    req: &Request<'_>,
    resp: &mut ResponseWriter,
    buf: &'b mut [u8; PATH_BUF_LEN],
) -> Option<&'b [u8]> {
    if !matches!(req.method(), Method::Get | Method::Head) {
        write_canned(resp, StatusCode::MethodNotAllowed);
        resp.header("Allow", b"GET, HEAD");
        return None;
    }
    let n = match normalize(req.path().as_bytes(), buf) {
        Ok(n) => n,
        // No entry can have a path this long.
        Err(PathError::TooLong { .. }) => {
            write_canned(resp, StatusCode::NotFound);
            return None;
        }
        Err(_) => {
            write_canned(resp, StatusCode::BadRequest);
            resp.close();
            return None;
        }
    };
    let path = buf.get(..n).unwrap_or_default();
    if path.ends_with(b"/") {
        let with_index = n + INDEX_FILE.len();
        if let Some(slot) = buf.get_mut(n..with_index) {
            slot.copy_from_slice(INDEX_FILE);
        }
        if index.contains(buf.get(..with_index).unwrap_or_default()) {
            return buf.get(..with_index);
        }
        // A directory without index: nginx answers 403 (autoindex off).
        let dir = buf.get(..n).unwrap_or_default();
        let status = if dir == b"/" || index.has_prefix(dir) {
            StatusCode::Forbidden
        } else {
            StatusCode::NotFound
        };
        write_canned(resp, status);
        return None;
    }
    if index.contains(path) {
        return buf.get(..n);
    }
    // `/dir` where `/dir/…` exists: redirect to the slash form, like nginx.
    if let Some(slot) = buf.get_mut(n) {
        *slot = b'/';
        let dir = buf.get(..n + 1).unwrap_or_default();
        if index.has_prefix(dir) {
            write_canned(resp, StatusCode::MovedPermanently);
            let query = req.query();
            resp.header_fmt(
                "Location",
                format_args!(
                    "{}{}{}",
                    PercentEncoded(dir),
                    if query.is_some() { "?" } else { "" },
                    query.unwrap_or("")
                ),
            );
            return None;
        }
    }
    write_canned(resp, StatusCode::NotFound);
    None
}

/// Serves `entry` (already resolved) with the full static-file logic: preconditions,
/// 304, ranges, gzip negotiation. The body is copied into the writer's reused buffer,
/// so `entry` may borrow a buffer just read from a disk.
pub fn serve_entry_copied(entry: &Entry<'_>, req: &Request<'_>, resp: &mut ResponseWriter) {
    serve_entry(entry, req, resp, |r, b| r.body_bytes(b));
}

/// Size of the path buffer [`resolve`] needs.
pub const RESOLVE_BUF_LEN: usize = PATH_BUF_LEN;

fn serve_entry<'a>(
    entry: &Entry<'a>,
    req: &Request<'_>,
    resp: &mut ResponseWriter,
    set_body: impl FnOnce(&mut ResponseWriter, &'a [u8]),
) {
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
        !req.header_values("if-match")
            .any(|v| matches_strong(v, etag))
    } else {
        date("if-unmodified-since").is_some_and(|since| entry.last_modified > since)
    };
    if precondition_failed {
        return write_canned(resp, StatusCode::PreconditionFailed);
    }
    let not_modified = if req.header("if-none-match").is_some() {
        req.header_values("if-none-match")
            .any(|v| matches_weak(v, etag))
    } else {
        // RFC 9110 §13.1.3: a date later than the server's clock is invalid and ignored.
        // Without a clock "later" cannot be told, so the date is taken as sent.
        date("if-modified-since")
            .filter(|&since| resp.now().is_none_or(|now| since <= now))
            .is_some_and(|since| entry.last_modified <= since)
    };
    if not_modified {
        resp.set_status(StatusCode::NotModified);
        validators(resp);
        vary(resp);
        return;
    }

    let len = repr.len() as u64;
    let mut outcome = RangeOutcome::Full;
    if let (Method::Get, Some(range)) = (req.method(), req.header("range")) {
        let if_range_ok = match req.header("if-range") {
            None => true,
            Some(v) if v.starts_with(b"\"") || v.starts_with(b"W/") => matches_strong(v, etag),
            Some(v) => parse_http_date(v) == Some(entry.last_modified),
        };
        if if_range_ok {
            outcome = evaluate(range, len);
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
            set_body(resp, body);
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
            set_body(resp, repr);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::tests::{NOW, drive_at, run};
    use crate::pack::{NewEntry, PackBuilder};
    use alloc::string::String;
    use alloc::vec::Vec;

    const LM: u64 = 1_700_000_000; // Tue, 14 Nov 2023 22:13:20 GMT
    const LM_STR: &str = "Tue, 14 Nov 2023 22:13:20 GMT";

    fn site() -> StaticSite<'static> {
        let big: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut b = PackBuilder::new();
        let mut add = |path, content_type, body: &[u8], gzip: Option<&[u8]>, compressible| {
            b.add(NewEntry {
                path,
                content_type,
                body,
                gzip,
                last_modified: LM,
                compressible,
            })
            .unwrap()
        };
        add(
            "/index.html",
            "text/html",
            b"<h1>home</h1>",
            Some(b"GZ-HOME"),
            true,
        );
        add("/docs/index.html", "text/html", b"docs", None, true);
        add("/docs/guide.html", "text/html", b"guide", None, true);
        add("/my docs/index.html", "text/html", b"spaced", None, true);
        add("/assets/logo.png", "image/png", b"PNG", None, false);
        add("/big.bin", "application/octet-stream", &big, None, false);
        add("/empty.txt", "text/plain", b"", None, true);
        add("/style.css", "text/css", b"a{}", None, true);
        add("/a b.txt", "text/plain", b"space", None, true);
        let pack: &'static [u8] = Vec::leak(b.finish().unwrap());
        StaticSite::parse(pack).unwrap()
    }

    fn get(target: &str, headers: &str) -> String {
        request("GET", target, headers)
    }

    fn request(method: &str, target: &str, headers: &str) -> String {
        let raw = alloc::format!("{method} {target} HTTP/1.1\r\nHost: t\r\n{headers}\r\n");
        run(&mut site(), raw.as_bytes()).0
    }

    /// A GET answered with the server clock at `now`.
    fn get_at(target: &str, headers: &str, now: Option<u64>) -> String {
        let raw = alloc::format!("GET {target} HTTP/1.1\r\nHost: t\r\n{headers}\r\n");
        let mut conn = crate::Connection::new(crate::Limits::default());
        drive_at(&mut conn, &mut site(), raw.as_bytes(), now).0
    }

    fn status(resp: &str) -> &str {
        &resp[9..12]
    }

    fn body(resp: &str) -> &str {
        resp.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }

    fn etag(path: &str, gzip: bool) -> String {
        let e = site().get(path).unwrap().etag(gzip);
        alloc::format!("{e}")
    }

    #[test]
    fn serves_index_with_full_headers() {
        let r = get("/", "");
        assert_eq!(status(&r), "200");
        let expected = alloc::format!(
            "HTTP/1.1 200 OK\r\nServer: oasis\r\nDate: Wed, 15 Nov 2023 22:13:20 GMT\r\n\
             Content-Type: text/html\r\nLast-Modified: {LM_STR}\r\nETag: {}\r\n\
             Accept-Ranges: bytes\r\nVary: Accept-Encoding\r\nContent-Length: 13\r\n\
             Connection: keep-alive\r\n\r\n<h1>home</h1>",
            etag("/index.html", false)
        );
        assert_eq!(r, expected);
        assert_eq!(body(&get("/index.html", "")), "<h1>home</h1>");
    }

    #[test]
    fn head_has_get_headers_without_body() {
        let g = get("/big.bin", "");
        let h = request("HEAD", "/big.bin", "");
        assert_eq!(
            h,
            g.split_once("\r\n\r\n")
                .map(|(h, _)| alloc::format!("{h}\r\n\r\n"))
                .unwrap()
        );
        assert!(h.contains("Content-Length: 1000\r\n"));
    }

    #[test]
    fn other_methods_are_405_with_allow() {
        for m in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
            let r = request(m, "/", "Content-Length: 0\r\n");
            assert_eq!(status(&r), "405", "{m}");
            assert!(r.contains("Allow: GET, HEAD\r\n"));
        }
    }

    #[test]
    fn directories() {
        let r = get("/docs", "");
        assert_eq!(status(&r), "301");
        assert!(r.contains("Location: /docs/\r\n"));
        assert!(get("/docs?a=1", "").contains("Location: /docs/?a=1\r\n"));
        assert!(get("/my%20docs", "").contains("Location: /my%20docs/\r\n"));
        assert_eq!(body(&get("/docs/", "")), "docs");
        assert_eq!(body(&get("/my%20docs/", "")), "spaced");
        assert_eq!(status(&get("/assets/", "")), "403");
        assert_eq!(status(&get("/assets", "")), "301");
        assert_eq!(status(&get("/nodir/", "")), "404");
        assert_eq!(body(&get("/docs/./guide.html", "")), "guide");
    }

    #[test]
    fn missing_is_404_with_small_body_and_keeps_alive() {
        let r = get("/nope.html", "");
        assert_eq!(status(&r), "404");
        assert!(r.contains("Content-Type: text/html\r\n"));
        assert!(body(&r).contains("404 Not Found"));
        assert!(r.contains("Connection: keep-alive"));
        assert_eq!(status(&get("/index.html/", "")), "404");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(body(&get("/a%20b.txt", "")), "space");
        assert_eq!(body(&get("/%69ndex.html", "")), "<h1>home</h1>");
        assert_eq!(body(&get("/docs%2Fguide.html", "")), "guide");
    }

    #[test]
    fn fragments_are_ignored_like_nginx() {
        assert_eq!(body(&get("/index.html#top", "")), "<h1>home</h1>");
        assert_eq!(body(&get("/docs/#x", "")), "docs");
        assert!(get("/docs?a=1#f", "").contains("Location: /docs/?a=1\r\n"));
    }

    #[test]
    fn traversal_attempts() {
        for bad in [
            "/../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc%2Fpasswd",
            "/docs/../../etc/passwd",
            "/..",
        ] {
            let r = get(bad, "");
            assert_eq!(status(&r), "400", "{bad}");
            assert!(r.contains("Connection: close"));
        }
        assert_eq!(status(&get("/index.html%00.txt", "")), "400");
        assert_eq!(status(&get("/bad%zzescape", "")), "400");
        assert_eq!(status(&get("/..\\..\\etc\\passwd", "")), "404");
        assert_eq!(status(&get("/%5c..%5cetc%5cpasswd", "")), "404");
        // `..` inside the root resolves, like nginx.
        assert_eq!(body(&get("/docs/../index.html", "")), "<h1>home</h1>");
        let long = alloc::format!("/{}", "a".repeat(3000));
        assert_eq!(status(&get(&long, "")), "404");
    }

    #[test]
    fn if_none_match() {
        let tag = etag("/index.html", false);
        let r = get("/index.html", &alloc::format!("If-None-Match: {tag}\r\n"));
        assert_eq!(status(&r), "304");
        assert!(r.contains(&alloc::format!("ETag: {tag}\r\n")));
        assert!(r.contains("Vary: Accept-Encoding"));
        assert!(!r.contains("Content-Length") && body(&r).is_empty());
        let weak = get(
            "/index.html",
            &alloc::format!("If-None-Match: \"x\", W/{tag}\r\n"),
        );
        assert_eq!(status(&weak), "304");
        assert_eq!(status(&get("/index.html", "If-None-Match: *\r\n")), "304");
        assert_eq!(
            status(&get("/index.html", "If-None-Match: \"other\"\r\n")),
            "200"
        );
        // If-None-Match wins over a matching If-Modified-Since.
        let both = alloc::format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {LM_STR}\r\n");
        assert_eq!(status(&get("/index.html", &both)), "200");
        // The identity tag does not match the gzip representation.
        let gz = alloc::format!("If-None-Match: {tag}\r\nAccept-Encoding: gzip\r\n");
        assert_eq!(status(&get("/index.html", &gz)), "200");
    }

    #[test]
    fn if_modified_since() {
        let r = get(
            "/style.css",
            &alloc::format!("If-Modified-Since: {LM_STR}\r\n"),
        );
        assert_eq!(status(&r), "304");
        assert!(r.contains(&alloc::format!("Last-Modified: {LM_STR}")));
        assert_eq!(
            status(&get(
                "/style.css",
                "If-Modified-Since: Wed, 15 Nov 2023 00:00:00 GMT\r\n"
            )),
            "304"
        );
        assert_eq!(
            status(&get(
                "/style.css",
                "If-Modified-Since: Tue, 14 Nov 2023 22:13:19 GMT\r\n"
            )),
            "200"
        );
        assert_eq!(
            status(&get("/style.css", "If-Modified-Since: yesterday\r\n")),
            "200"
        );
        // RFC 9110 §13.1.3: later than the server's clock (NOW) is invalid: ignored.
        let future = "If-Modified-Since: Thu, 16 Nov 2023 00:00:00 GMT\r\n";
        assert_eq!(status(&get("/style.css", future)), "200");
        let at_now = "If-Modified-Since: Wed, 15 Nov 2023 22:13:20 GMT\r\n";
        assert_eq!(status(&get("/style.css", at_now)), "304");
        // Without a clock "future" cannot be told: the date is taken as sent.
        let r = get_at("/style.css", future, None);
        assert_eq!(status(&r), "304");
        assert!(!r.contains("Date:"), "{r}");
        assert_eq!(
            status(&request(
                "HEAD",
                "/style.css",
                &alloc::format!("If-Modified-Since: {LM_STR}\r\n")
            )),
            "304"
        );
    }

    #[test]
    fn preconditions_412() {
        assert_eq!(status(&get("/style.css", "If-Match: \"nope\"\r\n")), "412");
        let tag = etag("/style.css", false);
        assert_eq!(
            status(&get("/style.css", &alloc::format!("If-Match: {tag}\r\n"))),
            "200"
        );
        assert_eq!(
            status(&get("/style.css", &alloc::format!("If-Match: W/{tag}\r\n"))),
            "412"
        );
        assert_eq!(
            status(&get(
                "/style.css",
                "If-Unmodified-Since: Mon, 13 Nov 2023 00:00:00 GMT\r\n"
            )),
            "412"
        );
        assert_eq!(
            status(&get(
                "/style.css",
                &alloc::format!("If-Unmodified-Since: {LM_STR}\r\n")
            )),
            "200"
        );
    }

    #[test]
    fn single_ranges() {
        let r = get("/big.bin", "Range: bytes=0-9\r\n");
        assert_eq!(status(&r), "206");
        assert!(r.contains("Content-Range: bytes 0-9/1000\r\n"));
        assert!(r.contains("Content-Length: 10\r\n"));
        assert_eq!(body(&r).as_bytes(), (0u8..10).collect::<Vec<_>>());
        let r = get("/big.bin", "Range: bytes=-500\r\n");
        assert!(
            r.contains("Content-Range: bytes 500-999/1000\r\n")
                && r.contains("Content-Length: 500\r\n")
        );
        let r = get("/big.bin", "Range: bytes=500-\r\n");
        assert!(r.contains("Content-Range: bytes 500-999/1000\r\n"));
        let r = get("/big.bin", "Range: bytes=990-2000\r\n");
        assert!(r.contains("Content-Range: bytes 990-999/1000\r\n"));
    }

    #[test]
    fn unsatisfiable_and_multiple_ranges() {
        let r = get("/big.bin", "Range: bytes=1000-\r\n");
        assert_eq!(status(&r), "416");
        assert!(r.contains("Content-Range: bytes */1000\r\n"));
        let r = get("/empty.txt", "Range: bytes=0-\r\n");
        assert_eq!(status(&r), "416");
        assert!(r.contains("Content-Range: bytes */0\r\n"));
        let r = get("/big.bin", "Range: bytes=0-1,5-6\r\n");
        assert_eq!(status(&r), "200");
        assert!(r.contains("Content-Length: 1000\r\n"));
        assert_eq!(status(&get("/big.bin", "Range: lines=1-2\r\n")), "200");
        // Range is ignored on HEAD (RFC 9110 §14.2).
        assert_eq!(
            status(&request("HEAD", "/big.bin", "Range: bytes=0-1\r\n")),
            "200"
        );
    }

    #[test]
    fn if_range() {
        let tag = etag("/big.bin", false);
        let hit = get(
            "/big.bin",
            &alloc::format!("Range: bytes=0-1\r\nIf-Range: {tag}\r\n"),
        );
        assert_eq!(status(&hit), "206");
        assert_eq!(
            status(&get(
                "/big.bin",
                "Range: bytes=0-1\r\nIf-Range: \"stale\"\r\n"
            )),
            "200"
        );
        assert_eq!(
            status(&get(
                "/big.bin",
                &alloc::format!("Range: bytes=0-1\r\nIf-Range: W/{tag}\r\n")
            )),
            "200"
        );
        assert_eq!(
            status(&get(
                "/big.bin",
                &alloc::format!("Range: bytes=0-1\r\nIf-Range: {LM_STR}\r\n")
            )),
            "206"
        );
        assert_eq!(
            status(&get(
                "/big.bin",
                "Range: bytes=0-1\r\nIf-Range: Mon, 13 Nov 2023 00:00:00 GMT\r\n"
            )),
            "200"
        );
    }

    #[test]
    fn gzip_negotiation() {
        let r = get("/index.html", "Accept-Encoding: deflate, gzip;q=0.8\r\n");
        assert!(r.contains("Content-Encoding: gzip\r\n"));
        assert!(r.contains("Vary: Accept-Encoding\r\n"));
        assert!(r.contains(&alloc::format!("ETag: {}\r\n", etag("/index.html", true))));
        assert_eq!(body(&r), "GZ-HOME");
        let r = get("/index.html", "Accept-Encoding: gzip;q=0\r\n");
        assert!(!r.contains("Content-Encoding") && r.contains("Vary: Accept-Encoding"));
        assert_eq!(body(&r), "<h1>home</h1>");
        let r = get("/index.html", "");
        assert!(!r.contains("Content-Encoding") && r.contains("Vary: Accept-Encoding"));
        // Compressible without a variant: Vary but identity; not compressible: neither.
        let r = get("/style.css", "Accept-Encoding: gzip\r\n");
        assert!(!r.contains("Content-Encoding") && r.contains("Vary: Accept-Encoding"));
        let r = get("/big.bin", "Accept-Encoding: gzip\r\n");
        assert!(!r.contains("Content-Encoding") && !r.contains("Vary"));
        // Ranges apply to the selected (gzip) representation.
        let r = get(
            "/index.html",
            "Accept-Encoding: gzip\r\nRange: bytes=0-1\r\n",
        );
        assert!(
            r.contains("Content-Range: bytes 0-1/7\r\n") && r.contains("Content-Encoding: gzip")
        );
        assert_eq!(body(&r), "GZ");
        let tag = etag("/index.html", true);
        let r = get(
            "/index.html",
            &alloc::format!("Accept-Encoding: gzip\r\nIf-None-Match: {tag}\r\n"),
        );
        assert_eq!(status(&r), "304");
    }

    #[test]
    fn static_site_discards_request_bodies() {
        let raw = b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET /style.css HTTP/1.1\r\nHost: t\r\n\r\n";
        let (out, _) = run(&mut site(), raw);
        assert!(out.ends_with("a{}"), "{out}");
        assert_eq!(out.matches("HTTP/1.1 200").count(), 2);
    }

    #[test]
    fn respond_directly_without_a_connection() {
        let mut w = ResponseWriter::new();
        w.reset(NOW);
        let headers = [httparse::Header {
            name: "Range",
            value: b"bytes=-3",
        }];
        let req = Request::new(
            Method::Get,
            "/big.bin",
            crate::Version::Http11,
            &headers,
            b"",
        );
        site().respond(&req, &mut w);
        assert_eq!(w.status(), StatusCode::PartialContent);
        assert_eq!(w.body(), &[229, 230, 231]);
    }

    /// An index without bodies, as a disk-backed site has.
    struct Paths(&'static [&'static str]);

    impl SiteIndex for Paths {
        fn contains(&self, path: &[u8]) -> bool {
            self.0.iter().any(|p| p.as_bytes() == path)
        }
        fn has_prefix(&self, prefix: &[u8]) -> bool {
            self.0.iter().any(|p| p.as_bytes().starts_with(prefix))
        }
    }

    /// `resolve` + `serve_entry_copied` answer like `StaticSite` with a borrowed body.
    #[test]
    fn resolve_and_copied_bodies_follow_the_static_rules() {
        let index = Paths(&["/index.html", "/docs/a.txt"]);
        let body: Vec<u8> = b"0123456789".to_vec();
        let mut h = |req: &Request<'_>, resp: &mut ResponseWriter| {
            let mut buf = [0u8; RESOLVE_BUF_LEN];
            let Some(path) = resolve(&index, req, resp, &mut buf) else {
                return;
            };
            let path = core::str::from_utf8(path).unwrap();
            let entry = Entry {
                path,
                content_type: "text/plain",
                body: &body,
                gzip: None,
                digest: 0xfeed,
                last_modified: LM,
                compressible: false,
            };
            serve_entry_copied(&entry, req, resp);
            resp.header_fmt("X-Path", format_args!("{path}"));
        };
        let (out, _) = run(&mut h, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        assert!(out.contains("X-Path: /index.html") && out.ends_with("0123456789"));
        assert!(out.contains("ETag: \"000000000000feed\""), "{out}");
        let (out, _) = run(&mut h, b"GET /docs HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 301") && out.contains("Location: /docs/"));
        let (out, _) = run(&mut h, b"GET /docs/ HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 403"));
        let (out, _) = run(&mut h, b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 404"));
        let (out, _) = run(&mut h, b"DELETE /index.html HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 405"));
        let (out, _) = run(
            &mut h,
            b"GET /docs/a.txt HTTP/1.1\r\nHost: a\r\nRange: bytes=2-4\r\n\r\n",
        );
        assert!(
            out.starts_with("HTTP/1.1 206") && out.ends_with("\r\n\r\n234"),
            "{out}"
        );
        let (out, _) = run(
            &mut h,
            b"GET /docs/a.txt HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"000000000000feed\"\r\n\r\n",
        );
        assert!(out.starts_with("HTTP/1.1 304"), "{out}");
        let _ = NOW;
    }
}
