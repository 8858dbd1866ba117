//! Entry path validation: no absolute paths, no `..`, no NUL, UTF-8, bounded length.

use alloc::string::String;
use alloc::vec::Vec;

use crate::TarError;

/// The longest path accepted, in bytes (from any source: ustar, GNU `L`, PAX).
pub const MAX_PATH_LEN: usize = 4096;

/// Checks a raw path and returns it normalized: `.` and empty components dropped,
/// components joined by `/`, no leading or trailing slash (`./a//b/` becomes `a/b`).
/// The result may be empty (an archive's `./` root directory entry).
pub fn sanitize(raw: &[u8], offset: u64) -> Result<String, TarError> {
    let unsafe_path = |reason| TarError::UnsafePath {
        offset,
        path: String::from_utf8_lossy(raw).into_owned(),
        reason,
    };
    if raw.len() > MAX_PATH_LEN {
        return Err(TarError::TooLong {
            offset,
            len: raw.len() as u64,
            max: MAX_PATH_LEN as u64,
        });
    }
    if raw.contains(&0) {
        return Err(unsafe_path("contains a NUL byte"));
    }
    let text = core::str::from_utf8(raw).map_err(|_| TarError::NonUtf8Path { offset })?;
    if text.starts_with('/') {
        return Err(unsafe_path("is absolute"));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(unsafe_path("contains a `..` component")),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_harmless_forms() {
        assert_eq!(sanitize(b"./a//b/./c/", 0).unwrap(), "a/b/c");
        assert_eq!(sanitize(b"./", 0).unwrap(), "");
        assert_eq!(sanitize(b"index.html", 0).unwrap(), "index.html");
        assert_eq!(sanitize(b"a..b/c", 0).unwrap(), "a..b/c");
    }

    #[test]
    fn rejects_unsafe_paths() {
        for (raw, reason) in [
            (&b"/etc/passwd"[..], "is absolute"),
            (b"a/../../b", "contains a `..` component"),
            (b"..", "contains a `..` component"),
            (b"a\0b", "contains a NUL byte"),
        ] {
            match sanitize(raw, 9) {
                Err(TarError::UnsafePath {
                    offset: 9,
                    reason: r,
                    ..
                }) => assert_eq!(r, reason),
                other => panic!("{raw:?}: {other:?}"),
            }
        }
        assert_eq!(
            sanitize(&[0xff, b'a'], 1),
            Err(TarError::NonUtf8Path { offset: 1 })
        );
        assert!(matches!(
            sanitize(&[b'a'; 5000], 0),
            Err(TarError::TooLong { len: 5000, .. })
        ));
    }
}
