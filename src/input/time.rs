//! Times: unix seconds or milliseconds, ISO 8601 / RFC 3339 layouts, or a strftime
//! layout, with a time zone for naive times; all as unix seconds.
//!
//! Every time is kept within years 0000 to 9999 (UTC); one outside is unreadable.

use jiff::tz::TimeZone;

use crate::error::{Error, Result};

/// The earliest time kept: 0000-01-01T00:00:00Z.
pub const MIN_TS: i64 = -62_167_219_200;
/// The latest time kept: 9999-12-31T23:59:59Z.
pub const MAX_TS: i64 = 253_402_300_799;

/// Integers at least this large (in magnitude) are unix milliseconds, smaller ones seconds:
/// 10^11 seconds is in the year 5138, 10^11 milliseconds in March 1973.
const MILLIS_FROM: i64 = 100_000_000_000;

/// How to read the times of posts: the layout and the zone of naive times.
#[derive(Debug, Clone, Default)]
pub struct TimeParser {
    /// A strftime layout (`%Y-%m-%d %H:%M`), tried first; `None`: the common layouts only.
    format: Option<String>,
    /// The zone of times without an offset; `None` is UTC.
    tz: Option<TimeZone>,
}

impl TimeParser {
    /// A parser for `format` (a strftime layout, see [jiff's `strtime`]; `None`: the
    /// common layouts of [`parse_timestamp`]) with naive times in `tz` (an IANA name such as
    /// `Asia/Taipei`, `UTC`, or a fixed offset such as `+08:00`; `None` is UTC).
    ///
    /// With a layout, a time that does not match it is still tried in the common layouts.
    ///
    /// [jiff's `strtime`]: https://docs.rs/jiff/latest/jiff/fmt/strtime/index.html
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for an unknown time zone or a layout without a date.
    pub fn new(format: Option<&str>, tz: Option<&str>) -> Result<TimeParser> {
        let tz = match tz {
            None => None,
            Some(name) => Some(zone(name)?),
        };
        if let Some(f) = format {
            if !["%Y", "%y", "%s", "%F", "%D", "%c", "%x"]
                .iter()
                .any(|d| f.contains(d))
            {
                return Err(Error::InvalidParameter(format!(
                    "time format {f:?} has no year (%Y, %y, %F, %D) or unix seconds (%s)"
                )));
            }
        }
        Ok(TimeParser {
            format: format.map(str::to_owned),
            tz,
        })
    }

    /// Unix seconds of `s`: the layout if one was given, else (or when it does not match)
    /// the common layouts; naive times are in the parser's zone. `None` if unreadable or
    /// outside years 0000 to 9999.
    #[must_use]
    pub fn parse(&self, s: &str) -> Option<i64> {
        let s = s.trim();
        if let Some(f) = &self.format {
            if let Some(t) = self.strftime(f, s) {
                return Some(t);
            }
        }
        if let Some(n) = parse_number(s.as_bytes()) {
            return n;
        }
        let (civil, offset) = parse_civil(s.as_bytes())?;
        let t = match offset {
            Some(off) => civil.checked_sub(off)?,
            None => self.naive(civil)?,
        };
        in_range(t)
    }

    /// `s` in the strftime layout `f`.
    fn strftime(&self, f: &str, s: &str) -> Option<i64> {
        let tm = jiff::fmt::strtime::parse(f, s).ok()?;
        let t = match tm.to_timestamp() {
            Ok(ts) => ts.as_second(),
            Err(_) => {
                let dt = tm.to_datetime().or_else(|_| {
                    tm.to_date()
                        .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
                });
                let dt = dt.ok()?;
                self.zone()
                    .to_ambiguous_timestamp(dt)
                    .compatible()
                    .ok()?
                    .as_second()
            }
        };
        in_range(t)
    }

    /// The zone of naive times.
    fn zone(&self) -> TimeZone {
        self.tz.clone().unwrap_or(TimeZone::UTC)
    }

    /// Unix seconds of a naive time given as seconds since 1970-01-01T00:00:00 (civil).
    fn naive(&self, civil: i64) -> Option<i64> {
        let Some(tz) = &self.tz else {
            return Some(civil);
        };
        // The civil time as if it were UTC, read back as a civil time in the zone.
        let as_utc = jiff::Timestamp::from_second(civil).ok()?;
        let dt = TimeZone::UTC.to_datetime(as_utc);
        let ts = tz.to_ambiguous_timestamp(dt).compatible().ok()?;
        Some(ts.as_second())
    }
}

/// A time zone by IANA name, `UTC`/`Z`, or fixed offset (`+08:00`, `-0530`, `+8`).
fn zone(name: &str) -> Result<TimeZone> {
    let n = name.trim();
    if n.eq_ignore_ascii_case("utc") || n == "Z" || n == "z" {
        return Ok(TimeZone::UTC);
    }
    if let Some(off) = offset_seconds(n.as_bytes()) {
        let off = jiff::tz::Offset::from_seconds(off as i32)
            .map_err(|e| Error::InvalidParameter(format!("time zone {name:?}: {e}")))?;
        return Ok(TimeZone::fixed(off));
    }
    TimeZone::get(n).map_err(|e| {
        Error::InvalidParameter(format!(
            "unknown time zone {name:?} (use an IANA name such as Asia/Taipei, UTC, or an offset such as +08:00): {e}"
        ))
    })
}

/// `t` if within years 0000 to 9999.
fn in_range(t: i64) -> Option<i64> {
    (MIN_TS..=MAX_TS).contains(&t).then_some(t)
}

/// Unix seconds from a float, truncated toward zero (milliseconds when at least 10^11 in
/// magnitude); `None` when outside years 0000 to 9999.
pub(super) fn float_seconds(f: f64) -> Option<i64> {
    let t = f.trunc();
    if !t.is_finite() {
        return None;
    }
    // 2^63 is exactly representable; every float in [-2^63, 2^63) fits in an i64.
    if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&t) {
        return None;
    }
    int_seconds(t as i64)
}

/// Unix seconds from an integer: milliseconds when at least 10^11 in magnitude (truncated
/// toward zero), else seconds; `None` when outside years 0000 to 9999.
pub(super) fn int_seconds(n: i64) -> Option<i64> {
    if n.unsigned_abs() >= MILLIS_FROM as u64 {
        in_range(n / 1000)
    } else {
        in_range(n)
    }
}

/// Parses a timestamp string into unix seconds, with naive times in UTC.
///
/// Accepted, after trimming surrounding whitespace:
/// - a decimal number, `-?[0-9]+(\.[0-9]*)?` (`+` allowed), truncated toward zero: unix
///   seconds, or unix milliseconds when its integer part is at least 10^11 in magnitude
///   (10^11 seconds is in the year 5138);
/// - a date `YYYY-MM-DD`, meaning midnight;
/// - a date and a time `YYYY-MM-DD HH:MM`, `HH:MM:SS` or `HH:MM:SS.frac`, separated by `T`,
///   `t` or a space, then optionally (after an optional space) `Z`, `z`, `UTC`, `GMT` or an
///   offset `±HH:MM`, `±HHMM` or `±HH`; a missing offset means UTC (see [`TimeParser`] for
///   other zones); fractional seconds are dropped (the time is floored to its second); a
///   leap second `:60` counts as the first second of the next minute.
///
/// Months, days (leap years included), hours, minutes and offsets are range-checked, and
/// the time must fall within years 0000 to 9999 UTC (`9999-12-31T23:59:60Z` does not).
///
/// Returns `None` when `s` is none of these.
#[must_use]
pub fn parse_timestamp(s: &str) -> Option<i64> {
    TimeParser::default().parse(s)
}

/// A decimal number of seconds or milliseconds. `None` if `b` is not a number; `Some(None)`
/// if out of range.
fn parse_number(b: &[u8]) -> Option<Option<i64>> {
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
    Some(int_seconds(n))
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

/// An offset `±HH:MM`, `±HHMM` or `±HH` in seconds east of UTC.
fn offset_seconds(b: &[u8]) -> Option<i64> {
    let (sign, rest) = b.split_first()?;
    let sign = match sign {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (oh, om) = match rest {
        [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?),
        [h1, h2] => (digits(&[*h1, *h2])?, 0),
        _ => return None,
    };
    if oh > 23 || om > 59 {
        return None;
    }
    Some(sign * (oh * 3600 + om * 60))
}

/// A date or a date-time (see [`parse_timestamp`]) as seconds since 1970-01-01T00:00:00
/// civil, and its offset in seconds east of UTC if it states one.
fn parse_civil(b: &[u8]) -> Option<(i64, Option<i64>)> {
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
        return Some((days * 86_400, None));
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let hour = field(11..13)?;
    let minute = field(14..16)?;
    if !sep(13, b':') || hour > 23 || minute > 59 {
        return None;
    }
    let mut pos = 16;
    let mut second = 0;
    if sep(pos, b':') {
        second = field(17..19)?;
        if second > 60 {
            return None;
        }
        pos = 19;
        if sep(pos, b'.') || sep(pos, b',') {
            let frac = b[pos + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            if frac == 0 {
                return None;
            }
            pos += 1 + frac;
        }
    }
    let mut rest = &b[pos..];
    if let [b' ', tail @ ..] = rest {
        if tail.is_empty() {
            return None;
        }
        rest = tail;
    }
    let offset = match rest {
        [] => None,
        [b'Z' | b'z'] => Some(0),
        r if r.eq_ignore_ascii_case(b"UTC") || r.eq_ignore_ascii_case(b"GMT") => Some(0),
        r => Some(offset_seconds(r)?),
    };
    Some((days * 86_400 + hour * 3600 + minute * 60 + second, offset))
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
            // Minutes only, a space before the zone, UTC/GMT, an hour-only offset, a comma.
            ("2019-08-19 14:03", 1566223380),
            ("2019-08-19T14:03Z", 1566223380),
            ("2019-08-19 22:03+08", 1566223380),
            ("2019-08-19 14:03:00 UTC", 1566223380),
            ("2019-08-19 14:03:00 gmt", 1566223380),
            ("2019-08-19 22:03:00 +0800", 1566223380),
            ("2019-08-19 14:03:00,250", 1566223380),
            // Unix milliseconds (10^11 and up), and the first and last times kept.
            ("1566223380000", 1566223380),
            ("1566223380999.9", 1566223380),
            ("-62167219200", MIN_TS),
            ("0000-01-01T00:00:00Z", MIN_TS),
            ("9999-12-31T23:59:59Z", MAX_TS),
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
            "2023-05-01T12:34:56.Z",
            "2023-05-01T12:34:56+8:00",
            "2023-05-01T12:34:56+24:00",
            "2023-05-01T12:34:56+08:60",
            "2023-05-01T12:34:56  Z",
            "2023-05-01T12:34:56+0",
            "2023-05-01 12",
            "2023-05-01 12:3",
            "2023-05-01T12:34:56 CET",
            "9999-12-31T23:59:60Z",
            "9999-12-31T23:00:00-01:00",
            "0000-01-01T00:30:00+01:00",
            "1000000000000000",
            "-1000000000000000",
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
            let want = naive_seconds(y, mo, d, h, mi, s, off);
            if d <= dim && (MIN_TS..=MAX_TS).contains(&want) {
                prop_assert_eq!(parse_timestamp(&text), Some(want));
            } else {
                prop_assert_eq!(parse_timestamp(&text), None);
            }
        }
    }

    #[test]
    fn zones_and_layouts() {
        let taipei = TimeParser::new(None, Some("Asia/Taipei")).expect("tzdb");
        // Naive times are in the zone; times with an offset keep theirs.
        assert_eq!(taipei.parse("2019-08-19 22:03"), Some(1566223380));
        assert_eq!(taipei.parse("2019-08-19"), Some(1566144000));
        assert_eq!(taipei.parse("2019-08-19T14:03:00Z"), Some(1566223380));
        assert_eq!(taipei.parse("1566223380"), Some(1566223380));
        let fixed = TimeParser::new(None, Some("-05:00")).expect("offset");
        assert_eq!(fixed.parse("2019-08-19 09:03"), Some(1566223380));
        // New York: a daylight saving time in August.
        let ny = TimeParser::new(None, Some("America/New_York")).expect("tzdb");
        assert_eq!(ny.parse("2019-08-19 10:03"), Some(1566223380));
        assert!(TimeParser::new(None, Some("Mars/Olympus")).is_err());
        // A strftime layout, then the common layouts when it does not match.
        let us = TimeParser::new(Some("%m/%d/%Y %H:%M"), None).expect("layout");
        assert_eq!(us.parse("08/19/2019 14:03"), Some(1566223380));
        assert_eq!(us.parse("2019-08-19 14:03"), Some(1566223380));
        assert_eq!(us.parse("19/08/2019 14:03"), None);
        let tw = TimeParser::new(Some("%a %b %d %H:%M:%S %z %Y"), None).expect("layout");
        assert_eq!(tw.parse("Mon Aug 19 14:03:00 +0000 2019"), Some(1566223380));
        let day = TimeParser::new(Some("%d.%m.%Y"), Some("+02:00")).expect("layout");
        assert_eq!(day.parse("19.08.2019"), Some(1566165600));
        assert!(TimeParser::new(Some("%H:%M"), None).is_err());
    }

    #[test]
    fn seconds_strings() {
        // As milliseconds, i64::MAX is past the year 9999.
        assert_eq!(parse_timestamp("9223372036854775807"), None);
        assert_eq!(parse_timestamp("-9223372036854775808"), None);
        assert_eq!(parse_timestamp("9223372036854775808"), None);
        assert_eq!(parse_timestamp("253402300799999"), Some(MAX_TS));
        assert_eq!(parse_timestamp("253402300800000"), None);
        assert_eq!(parse_timestamp("+12"), Some(12));
        assert_eq!(parse_timestamp("12."), Some(12));
        assert_eq!(parse_timestamp("-0.5"), Some(0));
        assert_eq!(parse_timestamp(".5"), None);
        assert_eq!(parse_timestamp("1e9"), None);
        assert_eq!(parse_timestamp("0x10"), None);
    }
}
