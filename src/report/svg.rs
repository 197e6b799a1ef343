//! Inline SVG charts: a stacked timeline and an hour-of-day histogram. Numbers only come in;
//! every label is made here from numbers, so nothing needs escaping.

use std::fmt::Write as _;

use super::format_time;

/// Colour `i` of a palette that stays apart for colour-blind readers (Okabe-Ito, then
/// Tableau), cycling after 12.
pub fn colour(i: usize) -> &'static str {
    const P: [&str; 12] = [
        "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#332288",
        "#999933", "#882255", "#44AA99", "#777777",
    ];
    P[i % P.len()]
}

/// A "nice" upper bound of the y axis (1, 2, 5 × 10^k at or above `max`).
fn nice_max(max: u32) -> u32 {
    let mut step = 1u64;
    loop {
        for m in [1u64, 2, 5] {
            if m * step >= max as u64 {
                return (m * step).min(u32::MAX as u64) as u32;
            }
        }
        step *= 10;
    }
}

/// Posts per bin (`unit` seconds from `start`), one series per platform, stacked.
pub fn timeline(start: i64, unit: i64, series: &[Vec<u32>], cols: &[&str]) -> String {
    let bins = series.first().map_or(0, Vec::len).max(1);
    let totals: Vec<u32> = (0..bins)
        .map(|b| series.iter().map(|s| s.get(b).copied().unwrap_or(0)).sum())
        .collect();
    let ymax = nice_max(totals.iter().copied().max().unwrap_or(0).max(1));
    let (w, h, left, right, top, bottom) = (900.0, 180.0, 44.0, 12.0, 10.0, 26.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let bw = pw / bins as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"posts over time\" font-size=\"11\" font-family=\"system-ui, sans-serif\">"
    );
    // Grid and y labels.
    for k in 0..=2 {
        let v = ymax as f64 * k as f64 / 2.0;
        let y = top + ph - ph * k as f64 / 2.0;
        let _ = write!(
            s,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#d9dde5\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#5b6475\">{}</text>",
            w - right,
            left - 6.0,
            y + 4.0,
            v.round()
        );
    }
    for b in 0..bins {
        let mut y = top + ph;
        let x = left + b as f64 * bw;
        let label = format_time(start + b as i64 * unit, 0);
        let label = if unit >= 86_400 {
            &label[..10]
        } else {
            &label[..]
        };
        for (si, ser) in series.iter().enumerate() {
            let v = ser.get(b).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let bh = ph * v as f64 / ymax as f64;
            y -= bh;
            let _ = write!(
                s,
                "<rect x=\"{x:.2}\" y=\"{y:.2}\" width=\"{:.2}\" height=\"{bh:.2}\" fill=\"{}\"><title>{label}: {v}</title></rect>",
                (bw - if bw > 3.0 { 1.0 } else { 0.0 }).max(0.5),
                cols.get(si).copied().unwrap_or("#888")
            );
        }
    }
    // X labels: up to 6 ticks.
    let ticks = 6.min(bins);
    for k in 0..ticks {
        let b = if ticks == 1 {
            0
        } else {
            k * (bins - 1) / (ticks - 1)
        };
        let x = left + (b as f64 + 0.5) * bw;
        let t = format_time(start + b as i64 * unit, 0);
        let label = if unit >= 86_400 {
            t[..10].to_string()
        } else {
            t[5..].to_string()
        };
        let anchor = if k == 0 && ticks > 1 {
            "start"
        } else if k + 1 == ticks && ticks > 1 {
            "end"
        } else {
            "middle"
        };
        let x = if anchor == "start" {
            left
        } else if anchor == "end" {
            w - right
        } else {
            x
        };
        let _ = write!(
            s,
            "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"{anchor}\" fill=\"#5b6475\">{label}</text>",
            h - 8.0
        );
    }
    s.push_str("</svg>");
    s
}

/// Posts per hour of day.
pub fn hours(counts: &[u32; 24]) -> String {
    let ymax = nice_max(counts.iter().copied().max().unwrap_or(0).max(1));
    let (w, h, left, right, top, bottom) = (440.0, 150.0, 36.0, 6.0, 8.0, 24.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let bw = pw / 24.0;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"posts per hour of day\" font-size=\"11\" font-family=\"system-ui, sans-serif\">"
    );
    for k in 0..=2 {
        let y = top + ph - ph * k as f64 / 2.0;
        let _ = write!(
            s,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#d9dde5\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#5b6475\">{}</text>",
            w - right,
            left - 5.0,
            y + 4.0,
            (ymax as f64 * k as f64 / 2.0).round()
        );
    }
    for (hr, &v) in counts.iter().enumerate() {
        let bh = ph * v as f64 / ymax as f64;
        let x = left + hr as f64 * bw;
        let _ = write!(
            s,
            "<rect x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{bh:.2}\" fill=\"#1f5fbf\"><title>{hr:02}:00-{:02}:00: {v}</title></rect>",
            x + 1.0,
            top + ph - bh,
            bw - 2.0,
            (hr + 1) % 24
        );
        if hr % 3 == 0 {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#5b6475\">{hr:02}</text>",
                x + bw / 2.0,
                h - 8.0
            );
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_and_shapes() {
        assert_eq!(nice_max(1), 1);
        assert_eq!(nice_max(3), 5);
        assert_eq!(nice_max(11), 20);
        assert_eq!(nice_max(500), 500);
        let t = timeline(0, 3600, &[vec![1, 0, 3], vec![0, 2, 0]], &["#000", "#111"]);
        assert_eq!(t.matches("<rect").count(), 3);
        assert!(t.starts_with("<svg") && t.ends_with("</svg>"));
        let h = hours(&[1; 24]);
        assert_eq!(h.matches("<rect").count(), 24);
    }
}
