//! Request path → pack key: percent-decoding, slash merging and dot-segment removal,
//! with traversal above the root rejected (as nginx does).

/// Why a request path cannot name a static file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// `%` not followed by two hex digits (→ 400, like nginx).
    #[error("bad percent-escape at byte {at}")]
    BadEscape {
        /// Offset of the `%`.
        at: usize,
    },
    /// A NUL byte, raw or `%00` (→ 400, like nginx).
    #[error("NUL byte in path")]
    Nul,
    /// A `..` segment that climbs above the root, e.g. `/../etc/passwd` (→ 400, like nginx).
    #[error("path climbs above the root")]
    EscapesRoot,
    /// The path does not start with `/` (→ 400).
    #[error("path does not start with '/'")]
    NotAbsolute,
    /// The decoded path does not fit the buffer; no entry can be that long (→ 404).
    #[error("path longer than {limit} bytes")]
    TooLong {
        /// The buffer size.
        limit: usize,
    },
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes and normalizes `raw` (the path part of a target, query already removed) into
/// `out`, returning the normalized length. The result starts with `/`, has no empty,
/// `.` or `..` segments, and ends with `/` when the input named a directory (trailing
/// `/`, `/.` or `/..`). `%2F` decodes to a separator, as in nginx. Backslashes are
/// ordinary bytes (nginx on Unix does the same).
pub fn normalize(raw: &[u8], out: &mut [u8]) -> Result<usize, PathError> {
    if raw.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let limit = out.len();
    // Pass 1: percent-decode into `out`.
    let mut n = 0;
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        let byte = if b == b'%' {
            let d = raw
                .get(i + 1)
                .copied()
                .and_then(hex)
                .zip(raw.get(i + 2).copied().and_then(hex));
            let Some((hi, lo)) = d else {
                return Err(PathError::BadEscape { at: i });
            };
            i += 3;
            hi << 4 | lo
        } else {
            i += 1;
            b
        };
        if byte == 0 {
            return Err(PathError::Nul);
        }
        *out.get_mut(n).ok_or(PathError::TooLong { limit })? = byte;
        n += 1;
    }
    // Pass 2: remove dot segments in place; the write cursor never passes the read cursor.
    let mut w = 0;
    let mut r = 0;
    let mut trailing_dir = false;
    while r < n {
        // Skip the separator run.
        while r < n && out.get(r) == Some(&b'/') {
            r += 1;
        }
        if r >= n {
            trailing_dir = true;
            break;
        }
        let seg_start = r;
        while r < n && out.get(r) != Some(&b'/') {
            r += 1;
        }
        let seg = out.get(seg_start..r).unwrap_or_default();
        trailing_dir = false;
        if seg == b"." {
            trailing_dir = true;
        } else if seg == b".." {
            if w == 0 {
                return Err(PathError::EscapesRoot);
            }
            w = out
                .get(..w)
                .and_then(|o| o.iter().rposition(|&b| b == b'/'))
                .unwrap_or(0);
            trailing_dir = true;
        } else {
            if let Some(slot) = out.get_mut(w) {
                *slot = b'/';
            }
            out.copy_within(seg_start..r, w + 1);
            w += 1 + (r - seg_start);
        }
    }
    if w == 0 || trailing_dir {
        *out.get_mut(w).ok_or(PathError::TooLong { limit })? = b'/';
        w += 1;
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> Result<alloc::string::String, PathError> {
        let mut buf = [0u8; 64];
        let n = normalize(raw.as_bytes(), &mut buf)?;
        Ok(alloc::string::String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    #[test]
    fn plain_paths_pass_through() {
        assert_eq!(norm("/").unwrap(), "/");
        assert_eq!(norm("/a/b.html").unwrap(), "/a/b.html");
        assert_eq!(norm("/dir/").unwrap(), "/dir/");
    }

    #[test]
    fn decodes_and_merges() {
        assert_eq!(norm("/a%20b").unwrap(), "/a b");
        assert_eq!(norm("//a///b").unwrap(), "/a/b");
        assert_eq!(norm("/a%2Fb").unwrap(), "/a/b");
        assert_eq!(norm("/%7euser").unwrap(), "/~user");
    }

    #[test]
    fn resolves_dot_segments_inside_root() {
        assert_eq!(norm("/a/./b").unwrap(), "/a/b");
        assert_eq!(norm("/a/../b").unwrap(), "/b");
        assert_eq!(norm("/a/b/..").unwrap(), "/a/");
        assert_eq!(norm("/a/.").unwrap(), "/a/");
        assert_eq!(norm("/a/..").unwrap(), "/");
        assert_eq!(norm("/a/%2e%2E/b").unwrap(), "/b");
        assert_eq!(norm("/..a/b..").unwrap(), "/..a/b..");
    }

    #[test]
    fn rejects_traversal() {
        assert_eq!(norm("/../etc/passwd"), Err(PathError::EscapesRoot));
        assert_eq!(norm("/%2e%2e/etc/passwd"), Err(PathError::EscapesRoot));
        assert_eq!(norm("/a/../../b"), Err(PathError::EscapesRoot));
        assert_eq!(norm("/%2e%2e%2fetc"), Err(PathError::EscapesRoot));
        assert_eq!(norm("/.."), Err(PathError::EscapesRoot));
    }

    #[test]
    fn backslashes_are_plain_bytes() {
        assert_eq!(
            norm("/..\\..\\etc\\passwd").unwrap(),
            "/..\\..\\etc\\passwd"
        );
        assert_eq!(norm("/%5c..%5cetc").unwrap(), "/\\..\\etc");
    }

    #[test]
    fn rejects_nul_and_bad_escapes() {
        assert_eq!(norm("/a%00b"), Err(PathError::Nul));
        assert_eq!(norm("/a%zz"), Err(PathError::BadEscape { at: 2 }));
        assert_eq!(norm("/a%4"), Err(PathError::BadEscape { at: 2 }));
        assert_eq!(norm("a"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn too_long_is_reported() {
        let mut buf = [0u8; 4];
        assert_eq!(
            normalize(b"/abcdef", &mut buf),
            Err(PathError::TooLong { limit: 4 })
        );
        assert_eq!(
            normalize(b"/abc/", &mut buf),
            Err(PathError::TooLong { limit: 4 })
        );
    }
}
