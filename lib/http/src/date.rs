//! HTTP dates (RFC 9110 §5.6.7): IMF-fixdate formatting from unix seconds, and parsing of
//! all three accepted formats. Integer arithmetic only (no floats, no std).

/// Length of an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const IMF_FIXDATE_LEN: usize = 29;
/// Largest unix time that formats with a four-digit year (9999-12-31T23:59:59Z);
/// later times are clamped to it.
pub const MAX_FORMATTABLE: u64 = 253_402_300_799;

const DAY_NAMES: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
const LONG_DAY_NAMES: [&[u8]; 7] = [
    b"Sunday",
    b"Monday",
    b"Tuesday",
    b"Wednesday",
    b"Thursday",
    b"Friday",
    b"Saturday",
];
const MONTH_NAMES: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31). H. Hinnant's `civil_from_days`.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// (year ≥ 1970, month, day) → days since 1970-01-01. H. Hinnant's `days_from_civil`.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe) - 719_468
}

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Formats `unix_secs` as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), clamped to
/// [`MAX_FORMATTABLE`].
pub fn format_imf_fixdate(unix_secs: u64) -> [u8; IMF_FIXDATE_LEN] {
    let secs = unix_secs.min(MAX_FORMATTABLE);
    let days = secs / 86_400;
    let tod = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 4).
    let weekday = DAY_NAMES[((days + 4) % 7) as usize];
    let month_name = MONTH_NAMES[(month - 1) as usize % 12];
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[0..3].copy_from_slice(weekday);
    put2(&mut out[5..7], day);
    out[8..11].copy_from_slice(month_name);
    put2(&mut out[12..14], year / 100);
    put2(&mut out[14..16], year % 100);
    put2(&mut out[17..19], tod / 3600);
    put2(&mut out[20..22], tod / 60 % 60);
    put2(&mut out[23..25], tod % 60);
    out
}

fn put2(out: &mut [u8], v: u64) {
    if let [hi, lo] = out {
        *hi = b'0' + (v / 10 % 10) as u8;
        *lo = b'0' + (v % 10) as u8;
    }
}

/// Parses an HTTP date in any of the three formats recipients must accept
/// (RFC 9110 §5.6.7): IMF-fixdate, obsolete RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`)
/// and asctime (`Sun Nov  6 08:49:37 1994`). Leading and trailing whitespace is ignored,
/// the weekday name is checked for form but not against the date.
///
/// Returns unix seconds, or `None` for anything malformed or before 1970.
pub fn parse_http_date(input: &[u8]) -> Option<u64> {
    let s = trim_ows(input);
    if s.len() == IMF_FIXDATE_LEN && s.get(3) == Some(&b',') {
        parse_imf(s)
    } else if s.len() == 24 && s.get(3) == Some(&b' ') {
        parse_asctime(s)
    } else {
        parse_rfc850(s)
    }
}

fn parse_imf(s: &[u8]) -> Option<u64> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    day_name(s.get(0..3)?)?;
    expect(s, 3, b", ")?;
    let day = digits(s.get(5..7)?)?;
    expect(s, 7, b" ")?;
    let month = month(s.get(8..11)?)?;
    expect(s, 11, b" ")?;
    let year = digits(s.get(12..16)?)?;
    expect(s, 16, b" ")?;
    let (h, m, sec) = time(s.get(17..25)?)?;
    expect(s, 25, b" GMT")?;
    assemble(year, month, day, h, m, sec)
}

fn parse_asctime(s: &[u8]) -> Option<u64> {
    // "Sun Nov  6 08:49:37 1994"
    day_name(s.get(0..3)?)?;
    let month = month(s.get(4..7)?)?;
    expect(s, 7, b" ")?;
    let day = match s.get(8..10)? {
        [b' ', d] => digits(&[*d])?,
        two => digits(two)?,
    };
    expect(s, 10, b" ")?;
    let (h, m, sec) = time(s.get(11..19)?)?;
    expect(s, 19, b" ")?;
    let year = digits(s.get(20..24)?)?;
    assemble(year, month, day, h, m, sec)
}

fn parse_rfc850(s: &[u8]) -> Option<u64> {
    // "Sunday, 06-Nov-94 08:49:37 GMT"
    let comma = s.iter().position(|&b| b == b',')?;
    let name = s.get(..comma)?;
    if !LONG_DAY_NAMES.iter().any(|d| d.eq_ignore_ascii_case(name)) {
        return None;
    }
    let rest = s.get(comma..)?;
    if rest.len() != 24 {
        return None;
    }
    expect(rest, 0, b", ")?;
    let day = digits(rest.get(2..4)?)?;
    expect(rest, 4, b"-")?;
    let month = month(rest.get(5..8)?)?;
    expect(rest, 8, b"-")?;
    let yy = digits(rest.get(9..11)?)?;
    expect(rest, 11, b" ")?;
    let (h, m, sec) = time(rest.get(12..20)?)?;
    expect(rest, 20, b" GMT")?;
    // Two-digit years: RFC 9110 says "more than 50 years in the future" means the past
    // century; with a 1970 epoch, 70..=99 are 19xx and 00..=69 are 20xx.
    let year = if yy >= 70 { 1900 + yy } else { 2000 + yy };
    assemble(year, month, day, h, m, sec)
}

fn assemble(year: u64, month: u64, day: u64, h: u64, m: u64, s: u64) -> Option<u64> {
    // Leap second 60 is allowed by the grammar; it folds into the next minute.
    if year < 1970 || day == 0 || day > days_in_month(year, month) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

fn time(s: &[u8]) -> Option<(u64, u64, u64)> {
    if s.get(2) != Some(&b':') || s.get(5) != Some(&b':') || s.len() != 8 {
        return None;
    }
    Some((
        digits(s.get(0..2)?)?,
        digits(s.get(3..5)?)?,
        digits(s.get(6..8)?)?,
    ))
}

fn day_name(s: &[u8]) -> Option<()> {
    DAY_NAMES.iter().any(|d| d.as_slice() == s).then_some(())
}

fn month(s: &[u8]) -> Option<u64> {
    MONTH_NAMES
        .iter()
        .position(|m| m.as_slice() == s)
        .map(|i| i as u64 + 1)
}

fn expect(s: &[u8], at: usize, lit: &[u8]) -> Option<()> {
    (s.get(at..at.checked_add(lit.len())?)? == lit).then_some(())
}

fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_EXAMPLE: u64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

    #[test]
    fn formats_known_dates() {
        assert_eq!(&format_imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            &format_imf_fixdate(RFC_EXAMPLE),
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            &format_imf_fixdate(951_782_400),
            b"Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(
            &format_imf_fixdate(1_709_164_800),
            b"Thu, 29 Feb 2024 00:00:00 GMT"
        );
        assert_eq!(
            &format_imf_fixdate(u64::MAX),
            b"Fri, 31 Dec 9999 23:59:59 GMT"
        );
    }

    #[test]
    fn parses_all_three_formats() {
        assert_eq!(
            parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(RFC_EXAMPLE)
        );
        assert_eq!(
            parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(RFC_EXAMPLE)
        );
        assert_eq!(
            parse_http_date(b"Sun Nov  6 08:49:37 1994"),
            Some(RFC_EXAMPLE)
        );
        assert_eq!(
            parse_http_date(b"  Sun, 06 Nov 1994 08:49:37 GMT "),
            Some(RFC_EXAMPLE)
        );
    }

    #[test]
    fn round_trips_over_a_wide_range() {
        let mut t = 0u64;
        while t < MAX_FORMATTABLE {
            assert_eq!(parse_http_date(&format_imf_fixdate(t)), Some(t), "t = {t}");
            t += 86_400 * 37 + 3_601;
        }
    }

    #[test]
    fn rejects_malformed_dates() {
        for bad in [
            &b""[..],
            b"Sun, 06 Nov 1994 08:49:37 UTC",
            b"Sun, 31 Feb 1994 08:49:37 GMT",
            b"Sun, 06 Foo 1994 08:49:37 GMT",
            b"Sun, 06 Nov 1969 08:49:37 GMT",
            b"Sun, 06 Nov 1994 24:49:37 GMT",
            b"Xyz, 06 Nov 1994 08:49:37 GMT",
            b"Sun, 0x Nov 1994 08:49:37 GMT",
            b"Funday, 06-Nov-94 08:49:37 GMT",
            b"Sun Nov 6 08:49:37 1994",
            b"1994-11-06T08:49:37Z",
        ] {
            assert_eq!(
                parse_http_date(bad),
                None,
                "{:?}",
                core::str::from_utf8(bad)
            );
        }
    }

    #[test]
    fn rfc850_two_digit_years() {
        assert_eq!(
            parse_http_date(b"Thursday, 01-Jan-70 00:00:00 GMT"),
            Some(0)
        );
        assert_eq!(
            parse_http_date(b"Saturday, 01-Jan-00 00:00:00 GMT"),
            Some(946_684_800)
        );
    }
}
