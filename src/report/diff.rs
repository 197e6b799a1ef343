//! Differences between a variant and the most posted text (`core` below), marked in HTML: a longest common
//! subsequence over units (a word, a run of spaces, one Han/kana/Hangul character, or one
//! other character).

use super::escape_into;

/// Units compared above this product of lengths are not aligned: the differing middle
/// (after the common prefix and suffix) is shown as removed and added whole.
const MAX_CELLS: usize = 4_000_000;

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF
        | 0x20000..=0x2FA1F)
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Class {
    Word,
    Space,
    Single,
}

fn class(c: char) -> Class {
    if c.is_whitespace() {
        Class::Space
    } else if c.is_alphanumeric() && !is_cjk(c) {
        Class::Word
    } else {
        Class::Single
    }
}

/// `s` cut into units; their concatenation is `s`.
pub fn units(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev: Option<Class> = None;
    for (i, c) in s.char_indices() {
        let k = class(c);
        let cont = match prev {
            Some(p) => p == k && k != Class::Single,
            None => true,
        };
        if !cont && i > start {
            out.push(&s[start..i]);
            start = i;
        }
        prev = Some(k);
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Same,
    Added,
    Removed,
}

/// The edit script turning `a` into `b`.
fn script<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<(Op, &'a str)> {
    let pre = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suf = a[pre..]
        .iter()
        .rev()
        .zip(b[pre..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
    let mut out: Vec<(Op, &str)> = a[..pre].iter().map(|&u| (Op::Same, u)).collect();
    let (n, m) = (am.len(), bm.len());
    if n.saturating_mul(m) > MAX_CELLS {
        out.extend(am.iter().map(|&u| (Op::Removed, u)));
        out.extend(bm.iter().map(|&u| (Op::Added, u)));
    } else {
        // lcs[i][j]: LCS length of am[i..] and bm[j..].
        let w = m + 1;
        let mut lcs = vec![0u32; (n + 1) * w];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[i * w + j] = if am[i] == bm[j] {
                    lcs[(i + 1) * w + j + 1] + 1
                } else {
                    lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && am[i] == bm[j] {
                out.push((Op::Same, am[i]));
                i += 1;
                j += 1;
            } else if i < n && (j == m || lcs[(i + 1) * w + j] >= lcs[i * w + j + 1]) {
                out.push((Op::Removed, am[i]));
                i += 1;
            } else {
                out.push((Op::Added, bm[j]));
                j += 1;
            }
        }
    }
    out.extend(a[a.len() - suf..].iter().map(|&u| (Op::Same, u)));
    out
}

/// `variant` as escaped HTML, with what it adds to `core` in `<ins>` and what it drops from
/// it in `<del>`.
pub fn diff_html(core: &str, variant: &str) -> String {
    diff_and_share(core, variant).0
}

/// [`diff_html`] and the share of the variant's non-space units that it keeps from the core
/// text (1 for an empty variant).
pub fn diff_and_share(core: &str, variant: &str) -> (String, f64) {
    let (a, b) = (units(core), units(variant));
    let ops = script(&a, &b);
    let solid = |u: &str| !u.chars().all(char::is_whitespace);
    let same = ops
        .iter()
        .filter(|(op, u)| *op == Op::Same && solid(u))
        .count();
    let total = b.iter().filter(|u| solid(u)).count();
    let share = if total == 0 {
        1.0
    } else {
        same as f64 / total as f64
    };
    let mut out = String::with_capacity(variant.len() * 2);
    let mut open: Option<Op> = None;
    for (op, u) in ops {
        if open != Some(op) {
            match open {
                Some(Op::Added) => out.push_str("</ins>"),
                Some(Op::Removed) => out.push_str("</del>"),
                _ => {}
            }
            match op {
                Op::Added => out.push_str("<ins>"),
                Op::Removed => out.push_str("<del>"),
                Op::Same => {}
            }
            open = Some(op);
        }
        escape_into(&mut out, u);
    }
    match open {
        Some(Op::Added) => out.push_str("</ins>"),
        Some(Op::Removed) => out.push_str("</del>"),
        _ => {}
    }
    (out, share)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn unescape(s: &str) -> String {
        s.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    }

    /// Drops the `tag` elements with their content, and the other tag's markers.
    fn keep(html: &str, drop: &str, other: &str) -> String {
        let mut s = html.to_string();
        let (open, close) = (format!("<{drop}>"), format!("</{drop}>"));
        while let Some(i) = s.find(&open) {
            let j = s[i..]
                .find(&close)
                .map(|j| i + j + close.len())
                .unwrap_or(s.len());
            s.replace_range(i..j, "");
        }
        unescape(
            &s.replace(&format!("<{other}>"), "")
                .replace(&format!("</{other}>"), ""),
        )
    }

    #[test]
    fn marks_words_and_characters() {
        assert_eq!(units("ab  c,d"), vec!["ab", "  ", "c", ",", "d"]);
        assert_eq!(units("这个abc"), vec!["这", "个", "abc"]);
        assert_eq!(
            diff_html("the quick fox", "the slow fox <b>"),
            "the <del>quick</del><ins>slow</ins> fox<ins> &lt;b&gt;</ins>"
        );
        assert_eq!(
            diff_html("这个政府", "这个政府说谎"),
            "这个政府<ins>说谎</ins>"
        );
    }

    proptest! {
        /// Without the removed parts the HTML reads as the variant; without the added parts,
        /// as the core; no raw `<` of the inputs survives.
        #[test]
        fn diff_reconstructs_both_texts(a in "[ab <&>'\"这个 ]{0,30}", b in "[ab <&>'\"这个 ]{0,30}") {
            let html = diff_html(&a, &b);
            prop_assert_eq!(keep(&html, "del", "ins"), b.clone());
            prop_assert_eq!(keep(&html, "ins", "del"), a.clone());
            let stripped = html.replace("<ins>", "").replace("</ins>", "").replace("<del>", "").replace("</del>", "");
            prop_assert!(!stripped.contains('<') && !stripped.contains('>'));
        }
    }
}
