//! Time zones and time formatting for the report.

use crate::error::{Error, Result};

/// A time zone for the hour-of-day histogram and local times.
#[derive(Debug, Clone)]
pub struct Zone {
    name: String,
    tz: jiff::tz::TimeZone,
}

impl Zone {
    /// UTC.
    pub fn utc() -> Zone {
        Zone {
            name: "UTC".into(),
            tz: jiff::tz::TimeZone::UTC,
        }
    }

    /// A zone by name: `UTC`, a fixed offset (`+08:00`, `-0530`, `UTC+8`), or an IANA name
    /// (`Asia/Shanghai`, `Europe/Moscow`) from the system's time zone database.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for an unknown name.
    pub fn parse(name: &str) -> Result<Zone> {
        let n = name.trim();
        if n.eq_ignore_ascii_case("utc") || n.eq_ignore_ascii_case("z") {
            return Ok(Zone::utc());
        }
        let fixed = n
            .strip_prefix("UTC")
            .or_else(|| n.strip_prefix("GMT"))
            .unwrap_or(n);
        if let Some(secs) = parse_offset(fixed) {
            let off = jiff::tz::Offset::from_seconds(secs)
                .map_err(|e| Error::InvalidParameter(format!("time zone {name:?}: {e}")))?;
            return Ok(Zone {
                name: n.to_string(),
                tz: jiff::tz::TimeZone::fixed(off),
            });
        }
        let tz = jiff::tz::TimeZone::get(n).map_err(|e| {
            Error::InvalidParameter(format!(
                "unknown time zone {name:?} ({e}); use an IANA name such as Asia/Shanghai or an \
                 offset such as +08:00"
            ))
        })?;
        Ok(Zone {
            name: n.to_string(),
            tz,
        })
    }

    /// Its name as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its offset from UTC at unix seconds `ts`, in seconds.
    pub fn offset_at(&self, ts: i64) -> i64 {
        match jiff::Timestamp::from_second(ts) {
            Ok(t) => self.tz.to_offset(t).seconds() as i64,
            Err(_) => 0,
        }
    }

    /// The hour of day at unix seconds `ts` in this zone.
    pub fn hour(&self, ts: i64) -> usize {
        ((ts + self.offset_at(ts)).rem_euclid(86_400) / 3600) as usize
    }
}

/// `+08:00`, `+0800`, `+8`, `-05:30` as seconds.
fn parse_offset(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|&c| c != ':').collect();
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m) = if digits.len() <= 2 {
        (digits.parse::<i32>().ok()?, 0)
    } else {
        let (h, m) = digits.split_at(digits.len() - 2);
        (h.parse::<i32>().ok()?, m.parse::<i32>().ok()?)
    };
    (h <= 25 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

/// `YYYY-MM-DD HH:MM` of unix seconds shifted by `offset` seconds.
pub fn format_time(ts: i64, offset: i64) -> String {
    let t = ts + offset;
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        secs / 3600,
        secs / 60 % 60
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC) of unix seconds, for any `i64`.
pub fn format_rfc3339(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Howard Hinnant's civil_from_days: (year, month, day) of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}
