//! `Range: bytes=` parsing (RFC 9110 §14.2): one range is served as 206, several are
//! ignored (full 200), unsatisfiable ones give 416.

use crate::date::trim_ows;

/// What to do with a `Range` header for a representation of `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Serve the whole representation (no usable single range: bad syntax, another unit,
    /// or several ranges).
    Full,
    /// Serve bytes `start..=end` (206).
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Evaluates a `Range` value against a representation of `len` bytes.
///
/// Forms: `bytes=A-B`, `bytes=A-` (open), `bytes=-N` (suffix: last N bytes). An end past
/// the last byte is clamped. Unsatisfiable: a first byte at or past `len`, a zero-length
/// suffix, or any range of an empty representation. `A-B` with `B < A` is answered 416
/// as nginx does (RFC 9110 would allow ignoring it). Multiple ranges are not served
/// (no `multipart/byteranges`): the answer is the full 200.
pub fn evaluate(value: &[u8], len: u64) -> RangeOutcome {
    let value = trim_ows(value);
    let Some(unit) = value.get(..6) else {
        return RangeOutcome::Full;
    };
    if !unit.eq_ignore_ascii_case(b"bytes=") {
        return RangeOutcome::Full;
    }
    let specs = value.get(6..).unwrap_or_default();
    let mut items = specs
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|s| !s.is_empty());
    let (Some(spec), None) = (items.next(), items.next()) else {
        return RangeOutcome::Full;
    };
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return RangeOutcome::Full;
    };
    let first = trim_ows(spec.get(..dash).unwrap_or_default());
    let last = trim_ows(spec.get(dash + 1..).unwrap_or_default());
    match (first.is_empty(), last.is_empty()) {
        (true, true) => RangeOutcome::Full,
        (true, false) => {
            let Some(n) = number(last) else {
                return RangeOutcome::Full;
            };
            if n == 0 || len == 0 {
                RangeOutcome::Unsatisfiable
            } else {
                RangeOutcome::Partial {
                    start: len.saturating_sub(n),
                    end: len - 1,
                }
            }
        }
        (false, open) => {
            let Some(start) = number(first) else {
                return RangeOutcome::Full;
            };
            let end = if open {
                u64::MAX
            } else {
                match number(last) {
                    Some(e) => e,
                    None => return RangeOutcome::Full,
                }
            };
            if end < start || start >= len {
                RangeOutcome::Unsatisfiable
            } else {
                RangeOutcome::Partial {
                    start,
                    end: end.min(len - 1),
                }
            }
        }
    }
}

/// Decimal digits; saturates at `u64::MAX` (a huge number is still a number).
fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |acc, &b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeOutcome::*;

    #[test]
    fn closed_open_and_suffix_ranges() {
        assert_eq!(
            evaluate(b"bytes=0-499", 1000),
            Partial { start: 0, end: 499 }
        );
        assert_eq!(
            evaluate(b"bytes=500-", 1000),
            Partial {
                start: 500,
                end: 999
            }
        );
        assert_eq!(
            evaluate(b"bytes=-500", 1000),
            Partial {
                start: 500,
                end: 999
            }
        );
        assert_eq!(
            evaluate(b"bytes=-5000", 1000),
            Partial { start: 0, end: 999 }
        );
        assert_eq!(
            evaluate(b"bytes=900-5000", 1000),
            Partial {
                start: 900,
                end: 999
            }
        );
        assert_eq!(evaluate(b"Bytes = 1-1 ", 10), Full); // no spaces around '='
        assert_eq!(evaluate(b"bytes= 1 - 1 ", 10), Partial { start: 1, end: 1 });
        assert_eq!(
            evaluate(b"bytes=999-", 1000),
            Partial {
                start: 999,
                end: 999
            }
        );
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(evaluate(b"bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(evaluate(b"bytes=1000-2000", 1000), Unsatisfiable);
        assert_eq!(evaluate(b"bytes=-0", 1000), Unsatisfiable);
        assert_eq!(evaluate(b"bytes=5-1", 1000), Unsatisfiable);
        assert_eq!(evaluate(b"bytes=0-", 0), Unsatisfiable);
        assert_eq!(evaluate(b"bytes=-1", 0), Unsatisfiable);
        assert_eq!(
            evaluate(b"bytes=99999999999999999999999-", 10),
            Unsatisfiable
        );
    }

    #[test]
    fn ignored_ranges() {
        assert_eq!(evaluate(b"bytes=0-1,5-6", 1000), Full);
        assert_eq!(evaluate(b"items=0-1", 1000), Full);
        assert_eq!(evaluate(b"bytes=a-b", 1000), Full);
        assert_eq!(evaluate(b"bytes=-", 1000), Full);
        assert_eq!(evaluate(b"bytes=", 1000), Full);
        assert_eq!(evaluate(b"bytes=+1-2", 1000), Full);
        assert_eq!(evaluate(b"", 1000), Full);
        // Empty list elements are allowed (RFC 9110 §5.6.1).
        assert_eq!(evaluate(b"bytes=0-1,", 1000), Partial { start: 0, end: 1 });
    }
}
