//! Shared bodies of the fuzz targets, so that `fuzz/` (cargo-fuzz, nightly) and the
//! stable replay test (`tests/fuzz_replay.rs`) run exactly the same code and checks.
//! Not part of the API.

use alloc::vec::Vec;

use crate::connection::{Action, Connection, OVERLOADED_RESPONSE, RequestError};
use crate::date::{MAX_FORMATTABLE, format_imf_fixdate, parse_http_date};
use crate::limits::Limits;
use crate::negotiate::{accepts_gzip, matches_strong, matches_weak};
use crate::pack::{ETag, NewEntry, PackBuilder, StaticSite};
use crate::range::{RangeOutcome, evaluate};
use crate::request::{Method, Request, Version};
use crate::response::ResponseWriter;
use crate::status::StatusCode;

/// Unix time the fuzz targets use as "now".
pub const NOW: u64 = 1_700_000_000;

/// A small site with a gzip variant, directories and a 1000-byte binary.
pub fn sample_pack() -> Vec<u8> {
    let big: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    let mut b = PackBuilder::new();
    let entry = |path, content_type, body, gzip, compressible| NewEntry {
        path,
        content_type,
        body,
        gzip,
        last_modified: NOW - 1000,
        compressible,
    };
    for e in [
        entry(
            "/index.html",
            "text/html",
            b"<h1>home</h1>",
            Some(b"GZIP"),
            true,
        ),
        entry("/docs/index.html", "text/html", b"docs", None, true),
        entry("/big.bin", "application/octet-stream", &big, None, false),
        entry("/empty.txt", "text/plain", b"", None, true),
        entry("/assets/a.png", "image/png", b"PNG", None, false),
    ] {
        let _ = b.add(e);
    }
    b.finish().unwrap_or_default()
}

/// Feeds `data` to a connection in pieces (sizes from the first byte), answering with
/// `site` or an echoing handler, until the connection closes. Checks the driver contract.
/// Runs twice: with a clock and no memory cap, then without a clock and with a cap
/// (from the input's length) that some inputs pass, to reach the 503 paths.
pub fn connection(data: &[u8], site: &mut StaticSite<'static>) {
    connection_with(data, site, usize::MAX, Some(NOW));
    let cap = 64 + data.len().wrapping_mul(97) % 6000;
    connection_with(data, site, cap, None);
}

fn connection_with(data: &[u8], site: &mut StaticSite<'static>, cap: usize, now: Option<u64>) {
    let (ctl, mut rest) = match data {
        [ctl, rest @ ..] => (*ctl, rest),
        [] => return,
    };
    let piece = usize::from(ctl & 0x3f) + 1;
    let use_echo = ctl & 0x40 != 0;
    let end_with_timeout = ctl & 0x80 != 0;
    let limits = Limits {
        request_line: 200,
        header_bytes: 400,
        headers: 8,
        body: 2000,
    };
    let mut conn = Connection::with_memory_cap(limits, cap);
    let mut echo = |req: &Request<'_>, resp: &mut ResponseWriter| {
        resp.header("X-Len", b"1");
        resp.body_bytes(req.body());
    };
    let mut ended = false;
    let mut out_first = Vec::new();
    let mut out_last: Vec<u8> = Vec::new();
    for _ in 0..1_000_000 {
        let action = if use_echo {
            conn.poll(&mut echo, now)
        } else {
            conn.poll(site, now)
        };
        assert!(
            conn.charged() <= cap,
            "{} bytes over the {cap}-byte cap",
            conn.charged()
        );
        match action {
            Action::Write => {
                let out = conn.output();
                assert!(!out.is_empty(), "Write with nothing to write");
                if out_first.len() < 9 {
                    out_first.extend(out.head.iter().take(9));
                }
                let n = out.len().min(piece * 7);
                let written = out.head.iter().chain(out.body).take(n);
                out_last.extend(written);
                let excess = out_last.len().saturating_sub(OVERLOADED_RESPONSE.len());
                out_last.drain(..excess);
                conn.advance(n);
            }
            Action::Read => {
                assert!(!conn.read_buf().is_empty(), "Read with a full input buffer");
                if rest.is_empty() {
                    assert!(!ended, "Read after eof/timeout");
                    ended = true;
                    if end_with_timeout {
                        conn.timeout()
                    } else {
                        conn.eof()
                    }
                    continue;
                }
                let n = conn.feed(rest.get(..piece.min(rest.len())).unwrap_or_default());
                assert!(n > 0);
                rest = rest.get(n..).unwrap_or_default();
            }
            Action::Close => {
                assert!(out_first.is_empty() || out_first.starts_with(b"HTTP/1.1 "));
                if let Some(RequestError::Overloaded { .. }) = conn.last_error() {
                    assert_eq!(out_last, OVERLOADED_RESPONSE, "503 is the last response");
                }
                return;
            }
            Action::Defer => panic!("Defer without a deferring handler"),
        }
    }
    panic!("connection did not finish");
}

const CONDITIONAL_HEADERS: [&str; 7] = [
    "Range",
    "If-None-Match",
    "If-Modified-Since",
    "Accept-Encoding",
    "If-Range",
    "If-Match",
    "If-Unmodified-Since",
];

/// Splits `data` at 0xff into a path and header values, serves it from `site`, and
/// cross-checks the range/conditional helpers on the same bytes.
pub fn conditional(data: &[u8], site: &mut StaticSite<'static>) {
    let (ctl, rest) = match data {
        [ctl, rest @ ..] => (*ctl, rest),
        [] => return,
    };
    let mut fields = rest.split(|&b| b == 0xff);
    let path = fields
        .next()
        .and_then(|p| core::str::from_utf8(p).ok())
        .unwrap_or("/big.bin");
    let mut headers = [httparse::EMPTY_HEADER; 7];
    let mut n = 0;
    for (i, value) in fields.take(7).enumerate() {
        if ctl & (1 << i) != 0 {
            continue;
        }
        if let (Some(slot), Some(name)) = (headers.get_mut(n), CONDITIONAL_HEADERS.get(i)) {
            *slot = httparse::Header { name, value };
            n += 1;
        }
        check_helpers(value);
    }
    let method = if ctl & 0x80 != 0 {
        Method::Head
    } else {
        Method::Get
    };
    let req = Request::new(
        method,
        path,
        Version::Http11,
        headers.get(..n).unwrap_or_default(),
        b"",
    );
    let mut resp = ResponseWriter::new();
    resp.reset(Some(NOW));
    site.respond(&req, &mut resp);
    let body_len = resp.body().len();
    match resp.status() {
        StatusCode::PartialContent => {
            assert!(body_len > 0 && body_len <= 1000);
            assert!(resp.has_header("Content-Range"));
        }
        StatusCode::NotModified => assert_eq!(body_len, 0),
        StatusCode::RangeNotSatisfiable => assert!(resp.has_header("Content-Range")),
        _ => {}
    }
}

fn check_helpers(value: &[u8]) {
    for len in [0u64, 1, 1000, u64::MAX] {
        if let RangeOutcome::Partial { start, end } = evaluate(value, len) {
            assert!(start <= end && end < len);
        }
    }
    if let Some(t) = parse_http_date(value).filter(|&t| t <= MAX_FORMATTABLE) {
        assert_eq!(parse_http_date(&format_imf_fixdate(t)), Some(t));
    }
    let tag = ETag {
        digest: 0x1234,
        gzip: false,
    };
    if matches_strong(value, tag) {
        assert!(matches_weak(value, tag));
    }
    let _ = accepts_gzip(core::iter::once(value));
}

/// Parses `data` as a pack; if valid, looks up every entry and a few made-up paths.
pub fn pack(data: &[u8]) {
    let Ok(site) = StaticSite::parse(data) else {
        return;
    };
    for entry in site.iter() {
        assert_eq!(site.get(entry.path).map(|e| e.path), Some(entry.path));
        let _ = site.has_prefix(entry.path.as_bytes());
    }
    for probe in ["/", "/index.html", "/a", "\u{ff}"] {
        let _ = site.get(probe);
        let _ = site.has_prefix(probe.as_bytes());
    }
}
