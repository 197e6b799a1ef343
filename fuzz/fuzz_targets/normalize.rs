//! Arbitrary text through the fingerprinter: no panic, a fingerprint exactly when a token
//! is left, and normalization is a fixpoint.
//!
//! Normalization is **not** idempotent in general, and this target does not claim it is:
//! deleting a character (a digit, an emoji, a format character such as U+00AD) or folding
//! a lookalike can leave a base letter and a combining mark side by side that NFKC then
//! composes on the second pass: `"e1\u{301}"` -> `"e\u{301}"` -> `"é"`, `"Γ\u{301}"` ->
//! `"y\u{301}"` -> `"ý"`, `"가1\u{11A8}"` -> `"가\u{11A8}"` -> `"각"`. What it checks:
//!
//! 1. when the normalized text is already in NFKC, normalizing it again gives the same
//!    tokens (idempotence wherever nothing is left to compose);
//! 2. always, a third pass gives the tokens of the second (a fixpoint after two passes).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use textreuse::text::{Hashtags, Normalized, NormalizerOptions};
use textreuse::{FingerprintParams, Fingerprinter};

fn tokens(n: &Normalized) -> Vec<&str> {
    n.tokens().collect()
}

fn fingerprinters() -> &'static [Fingerprinter; 2] {
    static F: OnceLock<[Fingerprinter; 2]> = OnceLock::new();
    F.get_or_init(|| {
        let keep = FingerprintParams {
            normalizer: NormalizerOptions {
                hashtags: Hashtags::KeepWords,
                t2s: false,
            },
            ..FingerprintParams::default()
        };
        [
            Fingerprinter::new(FingerprintParams::default()).expect("default parameters"),
            Fingerprinter::new(keep).expect("keep-hashtag, no-t2s parameters"),
        ]
    })
}

fuzz_target!(|text: &str| {
    for fp in fingerprinters() {
        let n = fp.normalizer();
        let (mut once, mut twice, mut thrice) =
            (Normalized::new(), Normalized::new(), Normalized::new());
        n.normalize(text, &mut once);
        for s in once.spans() {
            assert!(s.start < s.end && once.text().is_char_boundary(s.end as usize));
        }
        match fp.fingerprint(text) {
            Some(f) => {
                assert!(!once.is_empty());
                assert_eq!(f.signature.len(), fp.params().num_perm as usize);
                assert!(f.shingles >= 1);
            }
            None => assert!(once.is_empty()),
        }
        n.normalize(once.text(), &mut twice);
        if unicode_normalization::is_nfkc(once.text()) {
            assert_eq!(tokens(&once), tokens(&twice), "not idempotent: {text:?}");
        }
        n.normalize(twice.text(), &mut thrice);
        assert_eq!(
            tokens(&twice),
            tokens(&thrice),
            "no fixpoint after two passes: {text:?}"
        );
    }
});
