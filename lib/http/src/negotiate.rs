//! Conditional-request and content-coding helpers: entity-tag lists (`If-None-Match`,
//! `If-Match`, `If-Range`) and `Accept-Encoding` q-values.

use crate::date::trim_ows;
use crate::pack::ETag;

/// One parsed element of an entity-tag list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagItem<'a> {
    /// `*`
    Any,
    /// A tag: weak flag and the opaque string without quotes.
    Tag {
        /// `W/` prefix present.
        weak: bool,
        /// Between the quotes.
        opaque: &'a [u8],
    },
}

/// Iterates an entity-tag list; stops at the first malformed element (which then
/// matches nothing).
pub fn tag_items(mut s: &[u8]) -> impl Iterator<Item = TagItem<'_>> {
    core::iter::from_fn(move || {
        loop {
            s = trim_ows(s);
            match s {
                [b',', rest @ ..] => s = rest,
                [] => return None,
                [b'*', rest @ ..] => {
                    s = rest;
                    return Some(TagItem::Any);
                }
                _ => {
                    let (weak, rest) = match s.strip_prefix(b"W/") {
                        Some(rest) => (true, rest),
                        None => (false, s),
                    };
                    let rest = rest.strip_prefix(b"\"")?;
                    let close = rest.iter().position(|&b| b == b'"')?;
                    let opaque = rest.get(..close)?;
                    s = rest.get(close + 1..).unwrap_or_default();
                    return Some(TagItem::Tag { weak, opaque });
                }
            }
        }
    })
}

/// Weak comparison (RFC 9110 §8.8.3.2) of any list element with `tag`: `If-None-Match`.
pub fn matches_weak(list: &[u8], tag: ETag) -> bool {
    let (ours, len) = tag.opaque();
    let ours = ours.get(..len).unwrap_or_default();
    tag_items(list).any(|item| match item {
        TagItem::Any => true,
        TagItem::Tag { opaque, .. } => opaque == ours,
    })
}

/// Strong comparison of any list element with `tag`: `If-Match`, `If-Range`.
pub fn matches_strong(list: &[u8], tag: ETag) -> bool {
    let (ours, len) = tag.opaque();
    let ours = ours.get(..len).unwrap_or_default();
    tag_items(list).any(|item| match item {
        TagItem::Any => true,
        TagItem::Tag { weak, opaque } => !weak && opaque == ours,
    })
}

/// Whether the `Accept-Encoding` values accept gzip: `gzip` or `x-gzip` with q > 0,
/// else `*` with q > 0 when gzip is not listed. An explicit `gzip;q=0` wins over `*`.
/// Elements with malformed q-values are ignored. No header at all: not accepted (we
/// then send identity, which every client accepts).
pub fn accepts_gzip<'a>(values: impl Iterator<Item = &'a [u8]>) -> bool {
    let mut gzip: Option<u16> = None;
    let mut star: Option<u16> = None;
    for value in values {
        for element in value.split(|&b| b == b',') {
            let mut parts = element.split(|&b| b == b';');
            let coding = trim_ows(parts.next().unwrap_or_default());
            let mut q = Some(1000);
            for param in parts {
                let param = trim_ows(param);
                if let Some(v) = param
                    .strip_prefix(b"q=")
                    .or_else(|| param.strip_prefix(b"Q="))
                {
                    q = qvalue(v);
                }
            }
            let Some(q) = q else { continue };
            if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip") {
                gzip = Some(gzip.map_or(q, |g| g.max(q)));
            } else if coding == b"*" {
                star = Some(q);
            }
        }
    }
    gzip.or(star).is_some_and(|q| q > 0)
}

/// RFC 9110 §12.4.2 qvalue in thousandths: `0[.ddd]` or `1[.000]`.
fn qvalue(s: &[u8]) -> Option<u16> {
    let s = trim_ows(s);
    let (int, frac) = match s.iter().position(|&b| b == b'.') {
        Some(dot) => (s.get(..dot)?, s.get(dot + 1..)?),
        None => (s, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |&d| u16::from(d - b'0'));
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: ETag = ETag {
        digest: 0xabc,
        gzip: false,
    };

    #[test]
    fn weak_and_strong_matching() {
        assert!(matches_weak(b"\"0000000000000abc\"", T));
        assert!(matches_weak(b"W/\"0000000000000abc\"", T));
        assert!(matches_weak(b"\"x\", \"0000000000000abc\"", T));
        assert!(matches_weak(b"*", T));
        assert!(!matches_weak(b"\"0000000000000abd\"", T));
        assert!(!matches_weak(b"0000000000000abc", T));
        assert!(matches_strong(b"\"0000000000000abc\"", T));
        assert!(!matches_strong(b"W/\"0000000000000abc\"", T));
        assert!(!matches_weak(
            b"\"0000000000000abc\"",
            ETag { gzip: true, ..T }
        ));
    }

    #[test]
    fn malformed_lists_stop_matching() {
        assert!(!matches_weak(b"\"unterminated", T));
        assert!(!matches_weak(b"junk, \"0000000000000abc\"", T));
        assert!(!matches_weak(b"", T));
    }

    #[test]
    fn gzip_negotiation() {
        let one = |v: &'static [u8]| accepts_gzip(core::iter::once(v));
        assert!(one(b"gzip"));
        assert!(one(b"deflate, gzip;q=0.5"));
        assert!(one(b"GZIP; Q=1.0"));
        assert!(one(b"x-gzip"));
        assert!(one(b"*"));
        assert!(!one(b"gzip;q=0"));
        assert!(!one(b"gzip;q=0.000"));
        assert!(!one(b"*, gzip;q=0"));
        assert!(!one(b"*;q=0"));
        assert!(!one(b"identity"));
        assert!(!one(b"br, deflate"));
        assert!(!one(b"gzip;q=2"));
        assert!(!one(b"gzip;q=0.1234"));
        assert!(one(b"gzip;q=0.001"));
        assert!(!accepts_gzip(core::iter::empty()));
        assert!(accepts_gzip([&b"br"[..], b"gzip"].into_iter()));
    }
}
