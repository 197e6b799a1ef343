//! A lookup with a limit answers exactly what the lookup of all hits, cut to the limit,
//! answers: the limited path takes contents best first and reads only the posts it needs
//! (`Index::top_hits`), so this checks it against the path that reads every post, over
//! several segments, campaigns of many exact and near copies, equal times, deletions and
//! filters.

use textreuse::index::{BuildOptions, Index, IndexWriter, QueryResult};
use textreuse::input::RawPost;
use textreuse::{QueryOptions, Scratch};

use crate::util::{self, Rng};

/// Sample posts plus three campaigns: 400 exact copies of one text (many posts of one
/// content, times drawn from a few values so that times tie and ids decide), 150 near
/// copies of another, and 60 copies of a third on two platforms.
fn corpus() -> (Vec<RawPost>, Vec<String>) {
    let mut posts = util::sample_posts();
    posts.truncate(1200);
    let mut rng = Rng::new(0x1_1317);
    // Three long English texts (space-separated words, so cutting words keeps shingles).
    let seeds: Vec<String> = posts
        .iter()
        .map(|p| p.text.clone())
        .filter(|t| t.is_ascii() && t.split(' ').count() >= 25)
        .step_by(5)
        .take(3)
        .collect();
    assert_eq!(seeds.len(), 3);
    let mut add = |id: String, text: String, platform: &str, ts: Option<i64>| {
        posts.push(RawPost {
            id,
            text,
            account: format!("acct{:02}", rng.below(30)),
            platform: platform.into(),
            ts,
            line: 0,
        });
    };
    let mut r = Rng::new(7);
    for i in 0..400 {
        let ts = (r.below(10) != 0).then(|| 1_700_000_000 + 60 * r.below(5) as i64);
        add(format!("x{:04}", 999 - i), seeds[0].clone(), "twitter", ts);
    }
    for i in 0..150 {
        let words: Vec<&str> = seeds[1].split(' ').collect();
        let cut = words.len() - (i % 4).min(words.len().saturating_sub(1));
        let text = format!("{} #{}", words[..cut].join(" "), i % 9);
        add(
            format!("n{i:03}"),
            text,
            "weibo",
            Some(1_700_100_000 + i as i64),
        );
    }
    for i in 0..60 {
        let p = if i % 2 == 0 { "telegram" } else { "vk" };
        add(
            format!("t{i:02}"),
            format!("{} {}", seeds[2], i % 3),
            p,
            Some(1_700_200_000 + (i / 4) as i64),
        );
    }
    let mut queries = seeds.clone();
    queries.extend(posts.iter().step_by(97).map(|p| p.text.clone()));
    (posts, queries)
}

fn views(index: &Index, q: &str, opts: &QueryOptions) -> Vec<(String, u64, Option<i64>)> {
    hit_views(&index.query(q, opts).expect("query"))
}

/// As [`views`], through the caller's `scratch`.
fn views_through(
    index: &Index,
    q: &str,
    opts: &QueryOptions,
    scratch: &mut Scratch,
) -> Vec<(String, u64, Option<i64>)> {
    hit_views(&index.query_with(q, opts, scratch).expect("query"))
}

fn hit_views(r: &QueryResult) -> Vec<(String, u64, Option<i64>)> {
    r.hits
        .iter()
        .map(|h| (h.id.clone(), h.similarity.to_bits(), h.ts))
        .collect()
}

/// A writer on a new index at `dir` that has added `posts` in three commits (three
/// segments).
fn in_three_commits(dir: &std::path::Path, posts: &[RawPost]) -> IndexWriter {
    let mut w = IndexWriter::open_with(dir, BuildOptions::default()).expect("opens");
    for chunk in posts.chunks(posts.len() / 3 + 1) {
        w.add(chunk).expect("adds");
        w.commit().expect("commits");
    }
    w
}

#[test]
fn a_limited_lookup_is_the_full_lookup_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    let (posts, queries) = corpus();
    // Several segments: posts added in three commits, then some deleted.
    let mut w = in_three_commits(&dir, &posts);
    let gone: Vec<String> = (0..400)
        .step_by(7)
        .map(|i| format!("x{:04}", 999 - i))
        .chain((0..150).step_by(11).map(|i| format!("n{i:03}")))
        .collect();
    let missing = w.delete(&gone).expect("deletes");
    assert!(missing.is_empty(), "{missing:?}");
    w.commit().expect("commits");
    drop(w);
    let index = Index::open(&dir).expect("opens");
    let segments = index.stats().segments;
    assert!(segments >= 3, "{segments} segments");

    let filters: Vec<QueryOptions> = vec![
        QueryOptions::default(),
        QueryOptions {
            min_similarity: 0.3,
            with_text: false,
            ..QueryOptions::default()
        },
        QueryOptions {
            platforms: vec!["weibo".into(), "vk".into()],
            ..QueryOptions::default()
        },
        QueryOptions {
            since: Some(1_700_000_060),
            until: Some(1_700_150_000),
            ..QueryOptions::default()
        },
        QueryOptions {
            accounts: vec!["acct03".into(), "acct17".into()],
            ..QueryOptions::default()
        },
        QueryOptions {
            max_bucket: 20,
            ..QueryOptions::default()
        },
        // Near-threshold estimates settled from the stored texts: a limited lookup skips
        // them when posts at similarity 1 fill its cut (deleted posts not counted).
        QueryOptions {
            exact_near_threshold: true,
            ..QueryOptions::default()
        },
        QueryOptions {
            exact_near_threshold: true,
            min_similarity: 0.6,
            ..QueryOptions::default()
        },
        QueryOptions {
            exact_near_threshold: true,
            since: Some(1_700_000_060),
            ..QueryOptions::default()
        },
    ];
    let mut checked = 0;
    let mut long = 0;
    for base in &filters {
        for q in &queries {
            let all = views(&index, q, base);
            long += usize::from(all.len() > 100);
            for limit in [1, 2, 3, 7, 10, 64, 1000] {
                let opts = QueryOptions {
                    limit,
                    ..base.clone()
                };
                let cut: Vec<_> = all.iter().take(limit).cloned().collect();
                assert_eq!(views(&index, q, &opts), cut, "limit {limit}, {base:?}");
                checked += 1;
            }
        }
    }
    assert!(checked > 100 && long > 0, "{checked} lookups, {long} long");
}

#[test]
fn a_limited_containment_lookup_is_the_full_lookup_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    let (posts, _) = corpus();
    util::build_lib(&dir, &posts, util::small_budget(), 500);
    let index = Index::open(&dir).expect("opens");
    let mut rng = Rng::new(99);
    let mut nonempty = 0;
    for p in posts.iter().step_by(41) {
        // A snippet: the first half of the post.
        let words: Vec<&str> = p.text.split(' ').collect();
        let q = words[..words.len().div_ceil(2)].join(" ");
        let base = QueryOptions {
            containment: Some(0.5 + rng.below(5) as f64 / 10.0),
            ..QueryOptions::default()
        };
        let all = views(&index, &q, &base);
        nonempty += usize::from(!all.is_empty());
        for limit in [1, 3, 10] {
            let opts = QueryOptions {
                limit,
                ..base.clone()
            };
            let cut: Vec<_> = all.iter().take(limit).cloned().collect();
            assert_eq!(views(&index, &q, &opts), cut, "limit {limit}, {base:?}");
        }
    }
    assert!(nonempty > 5, "{nonempty} snippets found something");
}

/// Word `i` of three letters (the normalizer drops digits, so no numbers).
fn word(i: usize) -> String {
    let l = |d: usize| char::from(b'a' + (d % 26) as u8);
    format!("{}{}{}", l(i / 676), l(i / 26), l(i))
}

/// A post by `acct` on `web` at time `ts`.
fn web_post(id: String, text: String, ts: i64) -> RawPost {
    RawPost {
        id,
        text,
        account: "acct".into(),
        platform: "web".into(),
        ts: Some(ts),
        line: 0,
    }
}

/// A limited lookup that settles near-threshold estimates from the stored texts skips them
/// only when live posts at similarity 1 fill its cut: here three copies of the query at 1,
/// one deleted, and a post holding the query plus as many new words, whose estimate is near
/// the threshold and whose exact similarity passes it. The limit-3 cut holds the two live
/// copies and that post; counting the deleted copy would leave the post out.
#[test]
fn a_deleted_copy_at_similarity_one_does_not_fill_the_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    let query: Vec<String> = (0..60).map(word).collect();
    let query = query.join(" ");
    let extra: Vec<String> = (1000..1050).map(word).collect();
    let near = format!("{query} {}", extra.join(" "));
    let post = |id: &str, text: &str, ts: i64| RawPost {
        id: id.into(),
        text: text.into(),
        account: "acct".into(),
        platform: "web".into(),
        ts: Some(ts),
        line: 0,
    };
    let mut posts = vec![
        post("copy1", &query, 1),
        post("copy2", &query, 2),
        post("copy3", &query, 3),
        post("near", &near, 0),
    ];
    posts.extend(util::sample_posts().into_iter().take(300));
    let mut w = IndexWriter::open_with(&dir, BuildOptions::default()).expect("opens");
    w.add(&posts).expect("adds");
    w.commit().expect("commits");
    assert!(w
        .delete(&["copy1".to_string()])
        .expect("deletes")
        .is_empty());
    w.commit().expect("commits");
    drop(w);
    let index = Index::open(&dir).expect("opens");
    let opts = |limit, exact| QueryOptions {
        limit,
        exact_near_threshold: exact,
        with_text: false,
        ..QueryOptions::default()
    };
    let ids = |o: &QueryOptions| -> Vec<String> {
        let r = index.query(&query, o).expect("query");
        r.hits.iter().map(|h| h.id.clone()).collect()
    };
    // The premise: "near" is a hit whose similarity was settled from its text (it differs
    // from the estimate a lookup without settling gives).
    let all = index.query(&query, &opts(0, true)).expect("query");
    let near_hit = all
        .hits
        .iter()
        .find(|h| h.id == "near")
        .expect("near is a hit");
    let estimate = index.query(&query, &opts(0, false)).expect("query");
    let near_estimate = estimate
        .hits
        .iter()
        .find(|h| h.id == "near")
        .map(|h| h.similarity);
    assert_ne!(near_estimate, Some(near_hit.similarity), "settled exactly");
    assert_eq!(ids(&opts(0, true)), ["copy2", "copy3", "near"]);
    assert_eq!(ids(&opts(3, true)), ["copy2", "copy3", "near"]);
    assert_eq!(ids(&opts(2, true)), ["copy2", "copy3"]);
}

/// The lookup `base` of `q` cut to `limit`, checked against the first hits of the full
/// lookup `all` (ids and similarities).
fn limited(
    index: &Index,
    q: &str,
    base: &QueryOptions,
    all: &QueryResult,
    limit: usize,
) -> QueryResult {
    let opts = QueryOptions {
        limit,
        ..base.clone()
    };
    let r = index.query(q, &opts).expect("query");
    let got: Vec<_> = r.hits.iter().map(|h| (&h.id, h.similarity)).collect();
    let want: Vec<_> = all
        .hits
        .iter()
        .take(limit)
        .map(|h| (&h.id, h.similarity))
        .collect();
    assert_eq!(got, want, "limit {limit}, {base:?}");
    r
}

/// A limited lookup whose live copies of the query fill its cut verifies only the two
/// shortest uncut band lists of each segment (the copies are in every band's), not the
/// campaign's hundreds of near copies, and answers the full lookup cut all the same: with
/// copies in three segments, some deleted, with and without bucket caps that cut most
/// band lists, and with fewer live copies than the limit (every candidate verified then).
#[test]
fn copies_filling_the_cut_spare_verifying_the_near_copies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    let words: Vec<String> = (0..40).map(word).collect();
    let query = words.join(" ");
    let mut posts: Vec<RawPost> = util::sample_posts().into_iter().take(300).collect();
    // 300 near copies, each with one word replaced (at least 37 of 40 shingles shared).
    for i in 0..300 {
        let mut w = words.clone();
        w[i % 40] = word(2000 + i);
        // One near copy posted after the copies (for the time filter below).
        let ts = if i == 0 { 6_000 } else { 1_000 + i as i64 };
        posts.push(web_post(format!("near{i:03}"), w.join(" "), ts));
    }
    // 24 copies, spread over the three commits below.
    for i in 0..24 {
        posts.push(web_post(
            format!("copy{i:02}"),
            query.clone(),
            5_000 - i as i64,
        ));
    }
    let mut rng = Rng::new(99);
    for i in (1..posts.len()).rev() {
        posts.swap(i, rng.below(i + 1));
    }
    let mut w = in_three_commits(&dir, &posts);
    let gone: Vec<String> = (0..24).step_by(3).map(|i| format!("copy{i:02}")).collect();
    assert!(w.delete(&gone).expect("deletes").is_empty());
    w.commit().expect("commits");
    drop(w);
    let index = Index::open(&dir).expect("opens");
    assert!(index.stats().segments >= 3);
    // 16 live copies.
    for (max_bucket, exact) in [(1000, false), (1000, true), (40, false), (5, true)] {
        let base = QueryOptions {
            max_bucket,
            exact_near_threshold: exact,
            with_text: false,
            ..QueryOptions::default()
        };
        let all = index.query(&query, &base).expect("query");
        if max_bucket == 1000 {
            assert!(all.hits.len() > 200, "{} hits", all.hits.len());
        }
        for limit in [1, 10, 16, 17, 40] {
            let r = limited(&index, &query, &base, &all, limit);
            if limit <= 16 && max_bucket == 1000 {
                // The copies are one content per segment; the two shortest band lists hold
                // some near copies too (about 60% of the 300 here), not all of them.
                assert!(
                    r.candidates * 3 < all.candidates * 2,
                    "limit {limit}: {} of {} verified",
                    r.candidates,
                    all.candidates
                );
            } else if max_bucket == 1000 {
                assert!(
                    r.candidates > 250,
                    "limit {limit}: {} verified",
                    r.candidates
                );
                assert_eq!(r.candidates, all.candidates, "limit {limit}");
            }
        }
    }
    // With filters the copies' posts are counted only if they pass: since 4,990, seven live
    // copies (of ids 0 to 10, 0, 3, 6 and 9 deleted) and one near copy, which the limit-8
    // cut holds (counting copies the filter drops would fill it with copies).
    let filters = [
        QueryOptions {
            since: Some(4_990),
            ..QueryOptions::default()
        },
        QueryOptions {
            platforms: vec!["web".into()],
            exact_near_threshold: true,
            ..QueryOptions::default()
        },
    ];
    for base in filters {
        let all = index.query(&query, &base).expect("query");
        for limit in [1, 3, 7, 8, 16] {
            let r = limited(&index, &query, &base, &all, limit);
            if base.since.is_some() && limit <= 7 {
                assert!(
                    r.candidates * 3 < all.candidates * 2,
                    "limit {limit}: {} of {} verified",
                    r.candidates,
                    all.candidates
                );
            }
        }
    }
}

/// A lookup keeps its buffers in the caller's `Scratch` for the next one: one scratch
/// carried through lookups of every kind (limits, filters, containment, owned and borrowed
/// hits, in an order where each differs from the one before) answers as a fresh one does.
#[test]
fn one_scratch_carried_through_lookups_answers_as_fresh_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    let (posts, queries) = corpus();
    // Three segments: the buffers are reused from one segment to the next, too.
    drop(in_three_commits(&dir, &posts));
    let index = Index::open(&dir).expect("opens");
    assert!(index.stats().segments >= 3);
    let kinds: Vec<QueryOptions> = vec![
        QueryOptions::default(),
        QueryOptions {
            limit: 10,
            ..QueryOptions::default()
        },
        QueryOptions {
            limit: 3,
            platforms: vec!["weibo".into()],
            ..QueryOptions::default()
        },
        // Filters whose kept numbers differ from the lookup's before.
        QueryOptions {
            limit: 4,
            platforms: vec!["vk".into(), "twitter".into()],
            ..QueryOptions::default()
        },
        QueryOptions {
            limit: 5,
            accounts: (0..30).step_by(4).map(|a| format!("acct{a:02}")).collect(),
            ..QueryOptions::default()
        },
        QueryOptions {
            limit: 5,
            accounts: (0..30).step_by(3).map(|a| format!("acct{a:02}")).collect(),
            platforms: vec!["telegram".into(), "weibo".into()],
            ..QueryOptions::default()
        },
        QueryOptions {
            containment: Some(0.6),
            ..QueryOptions::default()
        },
        QueryOptions {
            limit: 2,
            min_similarity: 0.3,
            exact_near_threshold: true,
            ..QueryOptions::default()
        },
        QueryOptions {
            limit: 7,
            max_bucket: 5,
            ..QueryOptions::default()
        },
    ];
    let mut scratch = Scratch::new();
    let (mut compared, mut hits) = (0, 0);
    for (i, q) in queries.iter().enumerate() {
        for j in 0..kinds.len() {
            let opts = &kinds[(i + j) % kinds.len()];
            let fresh = views(&index, q, opts);
            let carried = views_through(&index, q, opts, &mut scratch);
            assert_eq!(carried, fresh, "query {i}, {opts:?}");
            let borrowed: Vec<_> = index
                .query_refs(q, opts, &mut scratch)
                .expect("query")
                .hits
                .iter()
                .map(|h| (h.id.to_string(), h.similarity.to_bits(), h.ts))
                .collect();
            assert_eq!(borrowed, fresh, "query {i}, {opts:?}, borrowed");
            hits += fresh.len();
            compared += 1;
        }
    }
    assert!(
        compared > 100 && hits > 1000,
        "{compared} lookups, {hits} hits"
    );
}

/// Times at both ends of `i64` (format 6 stores them as 64-bit offsets from the segment's
/// earliest, the widest a row's time field gets, read past one `u64` load) and unknown
/// times read back as given, order limited lookups as they order all hits, and survive an
/// append and a merge.
#[test]
fn times_at_the_ends_of_i64_read_back_through_lookups_and_a_merge() {
    let text = util::sample_posts()
        .into_iter()
        .map(|p| p.text)
        .find(|t| t.is_ascii() && t.split(' ').count() >= 25)
        .expect("a long text");
    let times = [
        Some(i64::MAX),
        Some(i64::MIN + 1),
        None,
        Some(0),
        Some(-1),
        Some(i64::MAX - 1),
        Some(1_700_000_000),
    ];
    let post = |i: usize, ts: Option<i64>| RawPost {
        id: format!("t{i}"),
        text: format!("{text} {}", if i.is_multiple_of(2) { "" } else { "again" }),
        account: format!("a{}", i % 3),
        platform: "p".into(),
        ts,
        line: 0,
    };
    let posts: Vec<RawPost> = times.iter().enumerate().map(|(i, &t)| post(i, t)).collect();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("index");
    util::build_lib(&dir, &posts[..4], BuildOptions::default(), 1000);
    crate::living::append(&dir, &posts[4..], textreuse::index::OnExistingId::Skip);
    let check = |index: &Index| {
        index.verify().expect("verifies");
        for p in &posts {
            let got = index.post(&p.id).expect("reads").expect("indexed");
            assert_eq!(got.ts, p.ts, "{}", p.id);
        }
        let all = views(index, &text, &QueryOptions::default());
        assert_eq!(all.len(), posts.len());
        for limit in 1..=posts.len() {
            let opts = QueryOptions {
                limit,
                ..QueryOptions::default()
            };
            let mut want = all.clone();
            want.truncate(limit);
            assert_eq!(views(index, &text, &opts), want, "limit {limit}");
        }
        all
    };
    let before = check(&Index::open(&dir).expect("opens"));
    crate::living::merge_all(&dir);
    let index = Index::open(&dir).expect("opens");
    assert_eq!(index.segments().len(), 1);
    assert_eq!(check(&index), before);
}

/// A limited lookup keeps only the candidates that can make its cut (those estimated at
/// least as high as the `limit`-th best), counting on each of them having a live post:
/// here the best content, six copies of the query, has every post deleted (and a near
/// copy two of its three), so the contents above that estimate hold fewer live posts than
/// the cut, and the lookup must rank the rest after all. Checked against the full lookup
/// cut, for limits that fall inside and past the deleted contents.
#[test]
fn deleted_posts_of_the_best_contents_do_not_cut_the_rest_short() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    let words: Vec<String> = (0..40).map(word).collect();
    let query = words.join(" ");
    let mut posts: Vec<RawPost> = util::sample_posts().into_iter().take(200).collect();
    for i in 0..6 {
        posts.push(web_post(format!("copy{i}"), query.clone(), 100 + i));
    }
    // 80 near copies with one or two words replaced; the first posted three times.
    for i in 0..80usize {
        let mut w = words.clone();
        w[i % 40] = word(3000 + i);
        if i >= 40 {
            w[(i * 7 + 3) % 40] = word(4000 + i);
        }
        let times = if i == 0 { 3 } else { 1 };
        for t in 0..times {
            posts.push(web_post(
                format!("near{i:02}-{t}"),
                w.join(" "),
                1_000 + i as i64,
            ));
        }
    }
    let mut w = IndexWriter::open_with(&dir, BuildOptions::default()).expect("opens");
    w.add(&posts).expect("adds");
    w.commit().expect("commits");
    let mut gone: Vec<String> = (0..6).map(|i| format!("copy{i}")).collect();
    gone.extend(["near00-0".to_string(), "near00-1".to_string()]);
    assert!(w.delete(&gone).expect("deletes").is_empty());
    w.commit().expect("commits");
    drop(w);
    let index = Index::open(&dir).expect("opens");
    assert_eq!(index.stats().segments, 1);
    for exact in [false, true] {
        let base = QueryOptions {
            exact_near_threshold: exact,
            with_text: false,
            ..QueryOptions::default()
        };
        let all = index.query(&query, &base).expect("query");
        assert!(all.hits.len() >= 70, "{} hits", all.hits.len());
        assert!(all.hits.iter().all(|h| !h.id.starts_with("copy")));
        for limit in [1, 2, 3, 5, 10] {
            limited(&index, &query, &base, &all, limit);
        }
    }
}

/// A limited lookup with platform and account filters learns, per segment, which of the
/// segment's dictionary numbers pass: here two segments number the same platforms and
/// accounts in opposite orders (first seen first), with copies and near copies of the
/// query on each, so mixing up the segments' numbers keeps the wrong posts. Checked
/// against the full lookup cut (which compares each post's strings).
#[test]
fn filters_by_dictionary_number_are_learnt_per_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    let words: Vec<String> = (0..40).map(word).collect();
    let query = words.join(" ");
    let post = |id: String, text: String, account: &str, platform: &str, ts: i64| RawPost {
        id,
        text,
        account: account.into(),
        platform: platform.into(),
        ts: Some(ts),
        line: 0,
    };
    let labels = [("ann", "alpha"), ("bob", "beta"), ("cid", "gamma")];
    let mut w = IndexWriter::open_with(&dir, BuildOptions::default()).expect("opens");
    for s in 0..2usize {
        let mut posts = Vec::new();
        for i in 0..90usize {
            // Segment 0 sees the labels in order, segment 1 in reverse.
            let j = if s == 0 { i % 3 } else { 2 - i % 3 };
            let (account, platform) = labels[j];
            let (account, platform) = if i % 5 == 0 {
                (labels[(j + 1) % 3].0, platform)
            } else {
                (account, platform)
            };
            let text = if i % 4 == 0 {
                query.clone()
            } else {
                let mut w = words.clone();
                w[i % 40] = word(5000 + 100 * s + i);
                w.join(" ")
            };
            posts.push(post(
                format!("s{s}-{i:02}"),
                text,
                account,
                platform,
                i as i64,
            ));
        }
        w.add(&posts).expect("adds");
        w.commit().expect("commits");
    }
    drop(w);
    let index = Index::open(&dir).expect("opens");
    assert_eq!(index.stats().segments, 2);
    let filters = [
        (vec!["alpha"], vec![]),
        (vec!["gamma"], vec![]),
        (vec![], vec!["bob"]),
        (vec!["beta"], vec!["ann", "bob"]),
    ];
    for (platforms, accounts) in filters {
        let base = QueryOptions {
            platforms: platforms.iter().map(|s| s.to_string()).collect(),
            accounts: accounts.iter().map(|s| s.to_string()).collect(),
            with_text: false,
            ..QueryOptions::default()
        };
        let all = index.query(&query, &base).expect("query");
        assert!(all.hits.len() >= 20, "{base:?}: {} hits", all.hits.len());
        assert!(all.hits.iter().all(|h| (platforms.is_empty()
            || platforms.contains(&h.platform.as_str()))
            && (accounts.is_empty() || accounts.contains(&h.account.as_str()))));
        for limit in [1, 5, 12, 30, 60] {
            limited(&index, &query, &base, &all, limit);
        }
    }
}

/// Lookups that settle near-threshold estimates exactly answer the same through one
/// `Scratch` used again and again (which keeps the shingle sets of contents settled more
/// than once, by segment and content) as through a new one each time, over three segments
/// whose content numbers overlap; and the exact settling changes some answer, so the
/// memo's path runs.
#[test]
fn exact_lookups_through_one_scratch_answer_as_fresh_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    let (posts, queries) = corpus();
    let mut w = in_three_commits(&dir, &posts);
    w.commit().expect("commits");
    drop(w);
    let index = Index::open(&dir).expect("opens");
    assert!(index.stats().segments >= 3);
    let mut scratch = Scratch::new();
    let mut settled = 0;
    for min_similarity in [0.5, 0.6, 0.7] {
        let exact = QueryOptions {
            exact_near_threshold: true,
            min_similarity,
            limit: 0,
            ..QueryOptions::default()
        };
        let estimated = QueryOptions {
            exact_near_threshold: false,
            ..exact.clone()
        };
        for round in 0..3 {
            for q in &queries {
                let fresh = views(&index, q, &exact);
                let reused = views_through(&index, q, &exact, &mut scratch);
                assert_eq!(reused, fresh, "round {round}, {min_similarity}: {q}");
                if round == 0 {
                    settled += usize::from(fresh != views(&index, q, &estimated));
                }
            }
        }
    }
    assert!(settled > 0, "no lookup settled an estimate exactly");
}

/// The memo of settled shingle sets is kept by segment as well as content: four segments
/// whose one content (number 0 in each) is a different variant of the query, settled
/// exactly at thresholds near their similarities, through one `Scratch`, answer as fresh
/// lookups do.
#[test]
fn exact_lookups_keep_each_segments_contents_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    // Letters only: digits are deleted from words.
    let word = |i: usize, tag: &str| {
        let a = char::from(b'a' + (i % 26) as u8);
        let b = char::from(b'a' + (i / 26 % 26) as u8);
        format!("{tag}{a}{b}")
    };
    let words: Vec<String> = (0..40).map(|i| word(i, "w")).collect();
    let query = words.join(" ");
    let mut w = IndexWriter::open_with(&dir, BuildOptions::default()).expect("opens");
    for k in 0..4usize {
        // Variant k replaces 2 + k words in a row, from word 5 + 8k.
        let text: Vec<String> = words
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if (5 + 8 * k..7 + 9 * k).contains(&i) {
                    word(i, &format!("o{}", char::from(b'a' + k as u8)))
                } else {
                    t.clone()
                }
            })
            .collect();
        let post = RawPost {
            id: format!("v{k}"),
            text: text.join(" "),
            account: "a".into(),
            platform: "p".into(),
            ts: Some(1_700_000_000),
            line: 0,
        };
        w.add(&[post]).expect("adds");
        w.commit().expect("commits");
    }
    drop(w);
    let index = Index::open(&dir).expect("opens");
    assert_eq!(index.stats().segments, 4);
    let mut scratch = Scratch::new();
    let mut answers = std::collections::BTreeSet::new();
    for round in 0..3 {
        for t in (30..=90).step_by(2) {
            let opts = QueryOptions {
                exact_near_threshold: true,
                min_similarity: t as f64 / 100.0,
                limit: 0,
                ..QueryOptions::default()
            };
            let fresh = views(&index, &query, &opts);
            let reused = views_through(&index, &query, &opts, &mut scratch);
            assert_eq!(reused, fresh, "round {round}, threshold {t}");
            answers.extend(fresh.iter().map(|h| (h.0.clone(), h.1)));
        }
    }
    // Every variant was found, estimated far from a threshold and settled near one: eight
    // similarities, all different, so a set taken for another segment's shows.
    let ids: std::collections::BTreeSet<&str> = answers.iter().map(|a| a.0.as_str()).collect();
    let sims: std::collections::BTreeSet<u64> = answers.iter().map(|a| a.1).collect();
    assert_eq!(ids.len(), 4, "{answers:?}");
    assert_eq!(sims.len(), 8, "{answers:?}");
}
