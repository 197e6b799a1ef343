use super::*;

fn fp() -> Fingerprinter {
    Fingerprinter::new(FingerprintParams::default()).unwrap()
}

fn hash(s: &str) -> Option<u128> {
    fp().fingerprint(s).map(|f| f.content_hash)
}

fn sig(s: &str) -> Vec<u32> {
    fp().fingerprint(s).unwrap().signature
}

fn assert_same(a: &str, b: &str) {
    let (ha, hb) = (hash(a), hash(b));
    assert!(ha.is_some(), "{a:?} has no fingerprint");
    assert_eq!(ha, hb, "{a:?} vs {b:?}");
    assert_eq!(sig(a), sig(b), "{a:?} vs {b:?}");
}

#[test]
fn equivalence_classes() {
    // Traditional vs Simplified.
    assert_same("「這個政府說謊」", "「这个政府说谎」");
    assert_same(
        "臺灣的選舉結果令人擔憂，請大家轉發",
        "台湾的选举结果令人担忧，请大家转发",
    );
    // Serial numbers.
    assert_same(
        "#127 The vote was rigged, share this",
        "【0457】 The vote was rigged, share this",
    );
    assert_same("第35期 这是真相", "第12期 这是真相");
    assert_same("No.33 stop the lies", "No.7 stop the lies");
    // URL, mention, emoji, hashtag.
    assert_same("Stop the lies https://t.co/AbC", "Stop the lies");
    assert_same("@someone Stop the lies", "Stop the lies");
    assert_same("Stop the lies 😡🔥", "Stop the lies");
    assert_same("Stop the lies #Truth #WakeUp", "Stop the lies");
    assert_same("#真相# 这是事实", "这是事实");
    // Full-width vs half-width.
    assert_same("ＳＴＯＰ　ｔｈｅ　ｌｉｅｓ！", "STOP the lies!");
    assert_same("大家好，这是真的！", "大家好,这是真的!");
    // Case.
    assert_same("STOP THE LIES", "stop the lies");
    // Zero-width characters.
    assert_same("st\u{200B}op the\u{200D} li\u{FEFF}es", "stop the lies");
    // Cyrillic and Greek lookalikes inside Latin words.
    assert_same(
        "v\u{0430}ccin\u{0435}s \u{0441}ause harm",
        "vaccines cause harm",
    );
    assert_same("\u{0397}ELLO W\u{039F}RLD", "hello world");
}

#[test]
fn different_texts_differ() {
    let a = "The city council approved the new budget for schools and roads this week.";
    let b = "My cat refuses to eat anything except salmon on Tuesdays, said nobody.";
    assert_ne!(hash(a), hash(b));
    let sim = crate::minhash::similarity(&sig(a), &sig(b));
    assert!(sim < 0.1, "{sim}");
    // The same post with a sentence replaced: near, not equal.
    let c = "The city council approved the new budget for schools and roads this week. Critics were loud.";
    let d =
        "The city council approved the new budget for schools and roads this week. Nobody came.";
    assert_ne!(hash(c), hash(d));
    assert_ne!(sig(c), sig(d));
    let sim = crate::minhash::similarity(&sig(c), &sig(d));
    assert!(sim > 0.4 && sim < 0.95, "{sim}");
}

#[test]
fn empty_posts_have_no_fingerprint() {
    for s in [
        "",
        "   ",
        "😀🎉",
        "#tag",
        "123 456",
        "https://t.co/x",
        "@user",
        "，。！",
        "\u{200B}",
    ] {
        assert!(fp().fingerprint(s).is_none(), "{s:?}");
    }
}

#[test]
fn short_posts_have_one_shingle() {
    let f = fp().fingerprint("hello world").unwrap();
    assert_eq!(f.shingles, 1);
    assert_ne!(hash("hello world"), hash("hello"));
}

#[test]
fn deterministic_across_threads() {
    let texts: Vec<String> = (0..200)
        .map(|i| {
            format!(
                "post number {i} says 第{i}条 真相 {}",
                "word ".repeat(i % 7)
            )
        })
        .collect();
    let f = fp();
    let one: Vec<_> = texts.iter().map(|t| f.fingerprint(t)).collect();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let f = f.clone();
            let texts = texts.clone();
            std::thread::spawn(move || texts.iter().map(|t| f.fingerprint(t)).collect::<Vec<_>>())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), one);
    }
}

/// Pins the exact fingerprint of fixed texts. If this fails, the fingerprint changed:
/// bump `NORMALIZER_VERSION` (or the index format) consciously, then update the vectors.
#[test]
fn golden_vectors() {
    let f = fp();
    let cases = [
        ("「這個政府說謊」", "这个政府说谎"),
        ("Stop the lies! #127 https://t.co/x", "stop the lies"),
        ("COVID疫苗vaccine真相", "covid疫苗vaccine真相"),
    ];
    let mut got = String::new();
    for (text, norm) in cases {
        let mut s = Scratch::new();
        let r = f.fingerprint_with(text, &mut s).unwrap();
        assert_eq!(r.normalized.text(), norm);
        let head: Vec<String> = r.signature[..4]
            .iter()
            .map(|x| format!("{x:08x}"))
            .collect();
        got.push_str(&format!("{:032x} {}\n", r.content_hash, head.join(" ")));
    }
    let want = include_str!("golden.txt");
    assert_eq!(got, want, "fingerprints changed; new values:\n{got}");
}

#[test]
fn params_validate() {
    let mut p = FingerprintParams::default();
    p.lsh.bands = 64;
    assert!(Fingerprinter::new(p).is_err());
    let p = FingerprintParams {
        normalizer_version: 99,
        ..FingerprintParams::default()
    };
    assert!(Fingerprinter::new(p).is_err());
    let p = FingerprintParams {
        shingle: 0,
        ..FingerprintParams::default()
    };
    assert!(Fingerprinter::new(p).is_err());
}

/// A text of more than `STREAM_TOKENS` tokens is shingled a range at a time: the signature,
/// the shingle count and the shingle set are those of the whole text at once.
#[test]
fn long_texts_are_shingled_by_ranges_with_the_same_result() {
    let words = [
        "alpha", "beta", "gamma", "delta", "台", "灣", "epsilon", "zeta",
    ];
    let mut text = String::new();
    let mut x = 7u64;
    for _ in 0..(2 * STREAM_TOKENS + 12_345) {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        text.push_str(words[(x >> 60) as usize % words.len()]);
        text.push(' ');
    }
    for shingle in [1, 3, 7] {
        let params = FingerprintParams {
            shingle,
            ..FingerprintParams::default()
        };
        let f = Fingerprinter::new(params).unwrap();
        let mut scratch = Scratch::new();
        let got = f.fingerprint_with(&text, &mut scratch).unwrap();
        let (got_sig, got_n) = (got.signature.to_vec(), got.shingles);
        assert!(scratch.normalized.spans().len() > 2 * STREAM_TOKENS);
        // The oracle: every shingle of the whole text at once.
        let (mut th, mut all) = (Vec::new(), Vec::new());
        shingle_hashes_of(&scratch.normalized, shingle as usize, &mut th, &mut all);
        let mut want = vec![0u32; params.num_perm as usize];
        MinHasher::new(params.num_perm as usize, params.seed).signature(&all, &mut want);
        assert_eq!(got_sig, want, "shingle {shingle}");
        assert_eq!(got_n, all.len(), "shingle {shingle}");
        all.sort_unstable();
        all.dedup();
        assert_eq!(scratch.shingle_set(shingle), &all[..], "shingle {shingle}");
        assert_eq!(f.shingle_set(&text, &mut Scratch::new()), &all[..]);
    }
}
