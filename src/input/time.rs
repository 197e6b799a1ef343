//! Times: unix seconds and RFC 3339 dates, as unix seconds.

use super::excerpt;

/// Unix seconds from a float, truncated toward zero; `None` when out of `i64` range.
pub(super) fn float_seconds(f: f64) -> Option<i64> {
    let t = f.trunc();
    // 2^63 is exactly representable; every float in [-2^63, 2^63) fits in an i64.
    if t.is_finite() && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&t) {
        Some(t as i64)
    } else {
        None
    }
}

/// A timestamp given as a string: blank means none; see [`parse_timestamp`].
pub(super) fn timestamp_field(s: &str, field: &str) -> Result<Option<i64>, String> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    parse_timestamp(s).map(Some).ok_or_else(|| {
        format!(
            "{field} is not unix seconds or an RFC 3339 date: {}",
            excerpt(s)
        )
    })
}

/// Parses a timestamp string into unix seconds.
///
/// Accepted, after trimming surrounding whitespace:
/// - a decimal number of seconds, `-?[0-9]+(\.[0-9]*)?` (`+` allowed), truncated toward zero;
/// - an RFC 3339 date-time `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, where `T` may also be `t`
///   or a space, `Z` may be `z`, the offset may be written `±HHMM`, and a missing offset
///   means UTC; fractional seconds are dropped (the time is floored to its second); a leap
///   second `:60` counts as the first second of the next minute;
/// - a bare date `YYYY-MM-DD`, meaning midnight UTC.
///
/// Years run from 0000 to 9999; months, days (leap years included), hours, minutes and
/// offsets are range-checked.
///
/// Returns `None` when `s` is none of these, or out of `i64` range.
#[must_use]
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    match parse_seconds(b) {
        Some(n) => n,
        None => parse_rfc3339(b),
    }
}

/// A decimal number of seconds. `None` if `b` is not one; `Some(None)` if out of range.
fn parse_seconds(b: &[u8]) -> Option<Option<i64>> {
    let (negative, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, b),
    };
    let int_len = digits.iter().take_while(|c| c.is_ascii_digit()).count();
    if int_len == 0 {
        return None;
    }
    match &digits[int_len..] {
        [] => {}
        [b'.', frac @ ..] if frac.iter().all(u8::is_ascii_digit) => {}
        _ => return None,
    }
    let mut n: i64 = 0;
    for &d in &digits[..int_len] {
        let d = i64::from(d - b'0');
        let next = n.checked_mul(10).and_then(|n| {
            if negative {
                n.checked_sub(d)
            } else {
                n.checked_add(d)
            }
        });
        match next {
            Some(v) => n = v,
            None => return Some(None),
        }
    }
    Some(Some(n))
}

/// The value of the ASCII digits `b`, if all are digits.
fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The number of days in `month` of `year`.
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            if leap {
                29
            } else {
                28
            }
        }
    }
}

/// An RFC 3339 date-time or a bare date, as unix seconds.
fn parse_rfc3339(b: &[u8]) -> Option<i64> {
    let field = |range: std::ops::Range<usize>| b.get(range).and_then(digits);
    let sep = |i: usize, c: u8| b.get(i) == Some(&c);
    let year = field(0..4)?;
    let month = field(5..7)?;
    let day = field(8..10)?;
    if !sep(4, b'-') || !sep(7, b'-') || !(1..=12).contains(&month) {
        return None;
    }
    if day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if b.len() == 10 {
        return Some(days * 86_400);
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let hour = field(11..13)?;
    let minute = field(14..16)?;
    let second = field(17..19)?;
    if !sep(13, b':') || !sep(16, b':') || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut pos = 19;
    if sep(pos, b'.') {
        let frac = b[pos + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if frac == 0 {
            return None;
        }
        pos += 1 + frac;
    }
    let offset = match &b[pos..] {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (oh, om) = match rest {
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => {
                    (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?)
                }
                _ => return None,
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'-' {
                -off
            } else {
                off
            }
        }
        _ => return None,
    };
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc3339_values() {
        let cases: &[(&str, i64)] = &[
            ("1970-01-01T00:00:00Z", 0),
            ("1970-01-01", 0),
            ("2023-05-01T12:34:56+08:00", 1682915696),
            ("2023-05-01T04:34:56Z", 1682915696),
            ("2023-05-01t04:34:56z", 1682915696),
            ("2023-05-01 04:34:56Z", 1682915696),
            ("2023-05-01 04:34:56", 1682915696),
            ("2023-05-01T04:34:56.999999Z", 1682915696),
            ("2023-05-01T12:34:56.5+0800", 1682915696),
            ("2023-05-01T12:34:56-05:30", 1682964296),
            ("2023-05-01T04:34:56-00:00", 1682915696),
            ("1969-12-31T23:59:59Z", -1),
            ("1969-12-31T23:59:59.5Z", -1),
            ("1969-07-20T20:17:40Z", -14182940),
            ("1900-01-01", -2208988800),
            ("0001-01-01T00:00:00Z", -62135596800),
            ("9999-12-31T23:59:59Z", 253402300799),
            ("2000-02-29T23:59:59-01:00", 951872399),
            ("2024-02-29", 1709164800),
            ("2016-12-31T23:59:60Z", 1483228800),
            ("  2023-05-01T04:34:56Z\t", 1682915696),
        ];
        for &(s, want) in cases {
            assert_eq!(parse_timestamp(s), Some(want), "{s}");
        }
        let invalid = [
            "2023-13-01",
            "2023-00-10",
            "2023-02-30",
            "2023-02-29",
            "1900-02-29",
            "2023-04-31",
            "2023-05-00",
            "2023-05-01T24:00:00Z",
            "2023-05-01T12:60:00Z",
            "2023-05-01T12:00:61Z",
            "2023-05-01T12:34Z",
            "2023-05-01T12:34:56.Z",
            "2023-05-01T12:34:56+8:00",
            "2023-05-01T12:34:56+24:00",
            "2023-05-01T12:34:56+08:60",
            "2023-05-01T12:34:56 Z",
            "2023-05-01T12:34:56Zx",
            "2023-5-01",
            "23-05-01",
            "2023/05/01",
            "2023-05-01X12:34:56Z",
            "+2023-05-01",
            "",
            "-",
            "1.2.3",
            "99999999999999999999",
        ];
        for s in invalid {
            assert_eq!(parse_timestamp(s), None, "{s}");
        }
    }

    /// Unix seconds by counting days one by one: the oracle for `parse_rfc3339`.
    fn naive_seconds(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64, off_min: i64) -> i64 {
        let leap = |y: i64| y % 400 == 0 || (y % 4 == 0 && y % 100 != 0);
        let year_days = |y: i64| if leap(y) { 366 } else { 365 };
        let mut days = 0;
        if y >= 1970 {
            days += (1970..y).map(year_days).sum::<i64>();
        } else {
            days -= (y..1970).map(year_days).sum::<i64>();
        }
        let month_days = [
            31,
            if leap(y) { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        days += month_days[..(mo - 1) as usize].iter().sum::<i64>() + d - 1;
        days * 86400 + h * 3600 + mi * 60 + s - off_min * 60
    }

    proptest! {
        #[test]
        fn rfc3339_matches_naive(
            y in 0i64..=9999, mo in 1i64..=12, d in 1i64..=31, h in 0i64..24, mi in 0i64..60,
            s in 0i64..60, off in -1439i64..=1439, sep in 0usize..3, frac in 0usize..3,
        ) {
            let dim = days_in_month(y, mo);
            let text = format!(
                "{y:04}-{mo:02}-{d:02}{}{h:02}:{mi:02}:{s:02}{}{}",
                ["T", "t", " "][sep],
                ["", ".5", ".123456789"][frac],
                if off == 0 { "Z".to_owned() } else {
                    format!("{}{:02}:{:02}", if off < 0 { '-' } else { '+' }, off.abs() / 60, off.abs() % 60)
                },
            );
            let off = if off == 0 { 0 } else { off.signum() * ((off.abs() / 60) * 60 + off.abs() % 60) };
            if d <= dim {
                prop_assert_eq!(parse_timestamp(&text), Some(naive_seconds(y, mo, d, h, mi, s, off)));
            } else {
                prop_assert_eq!(parse_timestamp(&text), None);
            }
        }
    }

    #[test]
    fn seconds_strings() {
        assert_eq!(parse_timestamp("9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_timestamp("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_timestamp("9223372036854775808"), None);
        assert_eq!(parse_timestamp("+12"), Some(12));
        assert_eq!(parse_timestamp("12."), Some(12));
        assert_eq!(parse_timestamp("-0.5"), Some(0));
        assert_eq!(parse_timestamp(".5"), None);
        assert_eq!(parse_timestamp("1e9"), None);
        assert_eq!(parse_timestamp("0x10"), None);
    }
}
