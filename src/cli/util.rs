//! Small helpers for the command line: sizes, times, one-line text excerpts, progress.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use anyhow::{bail, Result};
use unicode_segmentation::UnicodeSegmentation;

/// Parses a byte size: `512M`, `2G`, `1.5G`, `100000` (bytes). Powers of 1024.
pub fn parse_size(s: &str) -> Result<usize> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                'B' => 1,
                _ => bail!("invalid size {s:?}: use a number with K, M, G or T"),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size {s:?}: use a number with K, M, G or T"))?;
    if !(n.is_finite() && n >= 0.0) {
        bail!("invalid size {s:?}");
    }
    Ok((n * mult as f64) as usize)
}

/// Parses a time: unix seconds, or an RFC 3339 date-time or date.
pub fn parse_time(s: &str) -> Result<i64> {
    textreuse::input::parse_timestamp(s)
        .ok_or_else(|| anyhow::anyhow!("invalid time {s:?}: use unix seconds or RFC 3339"))
}

/// Formats unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_ts(ts: i64) -> String {
    textreuse::report::format_rfc3339(ts)
}

/// The text on one line, cut to at most `max` grapheme clusters (never inside one).
pub fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::new();
    for (n, g) in flat.graphemes(true).enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        out.push_str(g);
    }
    out
}

/// A progress bar on stderr, or a hidden one when stderr is not a terminal.
pub fn progress_bar(len: Option<u64>, template: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = match len {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        pb.set_style(style);
    }
    pb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times() {
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("lots").is_err());
        assert_eq!(format_ts(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_ts(1_682_915_696), "2023-05-01T04:34:56Z");
        assert_eq!(format_ts(-1), "1969-12-31T23:59:59Z");
        assert_eq!(one_line("a\nb  c", 3), "a b…");
    }
}

/// How many reports of one kind are printed before the rest are only counted.
const SHOWN_PER_KIND: u64 = 10;

/// How many kinds of error are told apart (more are printed and not counted).
const MAX_KINDS: usize = 10_000;

/// Prints bad-record errors on stderr, the first 10 of each kind (the same reason), and
/// then how many more of each kind there were.
#[derive(Debug, Default)]
pub struct ErrorDigest {
    counts: HashMap<String, u64>,
    order: Vec<String>,
}

impl ErrorDigest {
    /// Prints `err` unless 10 of its kind were printed already; counts it.
    pub fn report(&mut self, err: &textreuse::Error) {
        let kind = match err {
            textreuse::Error::InvalidInput { reason, .. } => reason.clone(),
            other => other.to_string(),
        };
        let n = match self.counts.get_mut(&kind) {
            Some(n) => {
                *n += 1;
                *n
            }
            None if self.order.len() < MAX_KINDS => {
                self.counts.insert(kind.clone(), 1);
                self.order.push(kind);
                1
            }
            None => 1,
        };
        if n <= SHOWN_PER_KIND {
            eprintln!("textreuse: skipped {err}");
        }
    }

    /// Prints, for each kind with more than 10, how many more there were.
    pub fn finish(&self) {
        for kind in &self.order {
            let n = self.counts.get(kind).copied().unwrap_or(0);
            if n > SHOWN_PER_KIND {
                eprintln!(
                    "textreuse: ... and {} more like it: {kind}",
                    n - SHOWN_PER_KIND
                );
            }
        }
    }
}

/// Writes `s` to standard output and flushes it. A closed pipe is an error that `main`
/// ends quietly on (exit 0); any other failure (a full disk) is reported.
pub fn print_out(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| anyhow::Error::new(e).context("failed to write to standard output"))
}

/// This process's peak resident memory in bytes (`VmHWM` of `/proc/self/status`), where
/// the system reports it. Unlike a parent's `wait4`, it does not count memory the process
/// shared with its parent before `exec`.
pub fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kb.checked_mul(1024)
}

/// Prints the peak resident memory ([`peak_memory`]) against the memory budget, for
/// `--verbose`.
pub fn report_peak_memory(budget: usize) {
    if let Some(peak) = peak_memory() {
        eprintln!(
            "textreuse: peak memory {} MiB (--memory {} MiB)",
            peak >> 20,
            budget >> 20
        );
    }
}
