//! PAX extended header records (`"%d %s=%s\n"`, POSIX.1-2017 `pax` § "pax Extended Header").

use alloc::vec::Vec;

use crate::TarError;

/// The PAX keywords the scanner applies to the next entry; others are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaxOverrides {
    /// `path`.
    pub path: Option<Vec<u8>>,
    /// `linkpath`.
    pub link_path: Option<Vec<u8>>,
    /// `size`.
    pub size: Option<u64>,
    /// `mtime` (integer seconds; a fraction is dropped).
    pub mtime: Option<u64>,
}

impl PaxOverrides {
    /// Parses the data of an `x` entry whose header is at `offset`, merging into `self`.
    pub fn parse(&mut self, mut data: &[u8], offset: u64) -> Result<(), TarError> {
        let bad = |reason| TarError::BadPax { offset, reason };
        while let Some(&first) = data.first() {
            if first == 0 {
                // Some writers pad the data with NULs.
                if data.iter().all(|&b| b == 0) {
                    break;
                }
                return Err(bad("NUL byte between records"));
            }
            let space = data
                .iter()
                .position(|&b| b == b' ')
                .ok_or_else(|| bad("record without a length"))?;
            let len =
                parse_decimal(&data[..space]).ok_or_else(|| bad("record length is not decimal"))?;
            let len = usize::try_from(len).map_err(|_| bad("record length overflows"))?;
            if len <= space + 1 || len > data.len() {
                return Err(bad("record length out of range"));
            }
            let (record, rest) = data.split_at(len);
            data = rest;
            let body = match record[space + 1..].split_last() {
                Some((b'\n', body)) => body,
                _ => return Err(bad("record does not end with a newline")),
            };
            let eq = body
                .iter()
                .position(|&b| b == b'=')
                .ok_or_else(|| bad("record without `=`"))?;
            let (key, value) = (&body[..eq], &body[eq + 1..]);
            match key {
                b"path" => self.path = Some(value.to_vec()),
                b"linkpath" => self.link_path = Some(value.to_vec()),
                b"size" => {
                    self.size = Some(
                        parse_decimal(value).ok_or_else(|| bad("size is not a decimal number"))?,
                    )
                }
                b"mtime" => {
                    let int = value.split(|&b| b == b'.').next().unwrap_or(&[]);
                    self.mtime = Some(
                        parse_decimal(int).ok_or_else(|| bad("mtime is not a decimal number"))?,
                    );
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A non-empty run of ASCII digits that fits in a `u64`.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |v, &c| {
        if c.is_ascii_digit() {
            v.checked_mul(10)?.checked_add(u64::from(c - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_keys() {
        let mut p = PaxOverrides::default();
        p.parse(
            b"30 mtime=1700000000.123456789\n13 size=4096\n16 path=a/b/c.t\n11 uid=100\n\0\0",
            0,
        )
        .unwrap();
        assert_eq!(p.path.as_deref(), Some(&b"a/b/c.t"[..]));
        assert_eq!(p.size, Some(4096));
        assert_eq!(p.mtime, Some(1_700_000_000));
    }

    #[test]
    fn rejects_malformed_records() {
        for data in [
            &b"99 path=x\n"[..],
            b"x path=a\n",
            b"9 path=ab",
            b"8 pathab\n",
            b"12 size=1a2\n",
            b"2 \n",
            b"11 path=a\nZ",
            b"99999999999999999999999 path=a\n",
        ] {
            let mut p = PaxOverrides::default();
            assert!(
                matches!(p.parse(data, 5), Err(TarError::BadPax { offset: 5, .. })),
                "{data:?}"
            );
        }
    }
}
