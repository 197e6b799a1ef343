//! Clusters of a living index: they do not depend on how the posts are split into
//! segments, exact duplicates across segments are one text, deleted posts leave them.
use std::collections::BTreeSet;

use textreuse::cluster::ClusterOptions;
use textreuse::index::{BuildOptions, OnExistingId, TextCache};
use textreuse::input::RawPost;
use textreuse::{Index, QueryOptions};

use crate::living::*;
use crate::util::{self, Rng};

// ---------------------------------------------------------------------------------------
// 7. Clusters.
// ---------------------------------------------------------------------------------------

/// Clusters as sets of post ids.
fn cluster_sets(index: &Index) -> BTreeSet<BTreeSet<String>> {
    cluster_sets_with(index, &ClusterOptions::default())
}

fn cluster_sets_with(index: &Index, opts: &ClusterOptions) -> BTreeSet<BTreeSet<String>> {
    index
        .clusters(opts)
        .expect("clusters")
        .clusters
        .iter()
        .map(|c| c.posts.iter().cloned().collect())
        .collect()
}

/// A chain: `a` ~ `b` and `b` ~ `c` (Jaccard 0.6 each), `a` !~ `c` (0.33); plus a text
/// posted three times (`dup-*`) and a near copy of it posted twice (`var-*`).
fn cluster_extras() -> Vec<Vec<RawPost>> {
    let mut rng = Rng::new(0xc1a5);
    let w = words(&mut rng, 62);
    let chain = |i: usize| w[i * 10..i * 10 + 42].join(" ");
    let t = words(&mut rng, 30);
    let dup = t.join(" ");
    let var = format!("{} {}", t[..29].join(" "), "different");
    vec![
        vec![
            post("chain-a", &chain(0), "acc1", Some(100)),
            post("dup-0", &dup, "acc1", Some(10)),
        ],
        vec![
            post("chain-b", &chain(1), "acc2", Some(200)),
            post("dup-1", &dup, "acc2", Some(20)),
            post("var-0", &var, "acc2", Some(30)),
            post("var-1", &var, "acc3", Some(40)),
        ],
        vec![
            post("chain-c", &chain(2), "acc3", Some(300)),
            post("dup-2", &dup, "acc4", Some(50)),
        ],
    ]
}

/// The corpus in three parts, with the extras spread over them.
fn cluster_parts() -> Vec<Vec<RawPost>> {
    let posts = &corpus().0;
    let bounds = [0, 700, 1300, posts.len()];
    cluster_extras()
        .into_iter()
        .enumerate()
        .map(|(i, extra)| {
            let mut part = posts[bounds[i]..bounds[i + 1]].to_vec();
            part.extend(extra);
            part
        })
        .collect()
}

#[test]
fn clusters_do_not_depend_on_segments() {
    let parts = cluster_parts();
    let all: Vec<RawPost> = parts.concat();
    let tmp = tempfile::tempdir().expect("tempdir");
    let one = tmp.path().join("one");
    util::build_lib(&one, &all, BuildOptions::default(), 5000);
    let segs = tmp.path().join("segs");
    for part in &parts {
        append(&segs, part, OnExistingId::Skip);
    }
    let want = cluster_sets(&open(&one));
    assert!(want.len() > 100, "{} clusters", want.len());
    let find = |sets: &BTreeSet<BTreeSet<String>>, id: &str| {
        sets.iter()
            .find(|c| c.contains(id))
            .cloned()
            .unwrap_or_default()
    };
    let chain: BTreeSet<String> = ["chain-a", "chain-b", "chain-c"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        find(&want, "chain-a"),
        chain,
        "precondition: the chain is one cluster"
    );
    assert_eq!(
        find(&want, "dup-0").len(),
        5,
        "precondition: dup and var are one cluster"
    );

    let index = open(&segs);
    assert_eq!(index.segments().len(), 3);
    let got = cluster_sets(&index);
    let diff: Vec<_> = want.symmetric_difference(&got).take(6).collect();
    assert!(diff.is_empty(), "one build vs 3 segments differ: {diff:?}");
    drop(index);
    merge_all(&segs);
    let index = open(&segs);
    assert_eq!(index.segments().len(), 1);
    let got = cluster_sets(&index);
    let diff: Vec<_> = want.symmetric_difference(&got).take(6).collect();
    assert!(diff.is_empty(), "one build vs merged differ: {diff:?}");
}

/// Exact duplicates in different segments are one text: a cluster's text count and its
/// representative (the most frequent text) do not depend on segmentation, and a query
/// finds every copy at similarity 1.
#[test]
fn exact_duplicates_across_segments_are_one_text() {
    let parts = cluster_parts();
    let all: Vec<RawPost> = parts.concat();
    let tmp = tempfile::tempdir().expect("tempdir");
    let one = tmp.path().join("one");
    util::build_lib(&one, &all, BuildOptions::default(), 5000);
    let segs = tmp.path().join("segs");
    for part in &parts {
        append(&segs, part, OnExistingId::Skip);
    }
    let describe = |index: &Index| {
        let r = index
            .clusters(&ClusterOptions::default())
            .expect("clusters");
        let c = r
            .clusters
            .iter()
            .find(|c| c.posts.iter().any(|p| p == "dup-0"))
            .expect("the dup cluster")
            .clone();
        (
            c.size,
            c.texts,
            c.accounts,
            c.earliest_post.clone(),
            c.representative_id.clone(),
            c.first_ts,
            c.last_ts,
        )
    };
    let want = describe(&open(&one));
    assert_eq!(
        (want.0, want.1, want.4.as_str()),
        (5, 2, "dup-0"),
        "precondition: {want:?}"
    );
    let dup_text = &cluster_extras()[0][1].text;
    let hits = |index: &Index| -> Vec<(String, f64)> {
        index
            .query(dup_text, &QueryOptions::default())
            .expect("query")
            .hits
            .iter()
            .map(|h| (h.id.clone(), h.similarity))
            .collect()
    };
    let want_hits = hits(&open(&one));
    assert_eq!(
        want_hits.iter().filter(|h| h.1 == 1.0).count(),
        3,
        "{want_hits:?}"
    );
    let index = open(&segs);
    assert_eq!(
        hits(&index),
        want_hits,
        "3 segments: hits of the duplicated text"
    );
    assert_eq!(describe(&index), want, "3 segments: the duplicate cluster");
    drop(index);
    merge_all(&segs);
    let index = open(&segs);
    assert_eq!(
        hits(&index),
        want_hits,
        "merged: hits of the duplicated text"
    );
    assert_eq!(describe(&index), want, "merged: the duplicate cluster");
}

#[test]
fn deleted_posts_leave_clusters() {
    let parts = cluster_parts();
    let tmp = tempfile::tempdir().expect("tempdir");
    let segs = tmp.path().join("segs");
    for part in &parts {
        append(&segs, part, OnExistingId::Skip);
    }
    let before = cluster_sets(&open(&segs));
    // Delete: the middle of the chain, a copy of the duplicated text, and one member of
    // many clusters (every third cluster's first post), and all members of some.
    let mut dead: BTreeSet<String> = ["chain-b", "dup-1"].iter().map(|s| s.to_string()).collect();
    for (i, c) in before.iter().enumerate() {
        if i % 3 == 0 {
            dead.insert(c.iter().next().expect("member").clone());
        }
        if i % 17 == 1 {
            dead.extend(c.iter().cloned());
        }
    }
    let dead_list: Vec<String> = dead.iter().cloned().collect();
    assert!(delete(&segs, &dead_list).is_empty());
    // The oracle: the live posts built in one go.
    let live: Vec<RawPost> = parts
        .concat()
        .into_iter()
        .filter(|p| !dead.contains(&p.id))
        .collect();
    let one = tmp.path().join("one");
    util::build_lib(&one, &live, BuildOptions::default(), 5000);
    let want = cluster_sets(&open(&one));
    let no_attach = ClusterOptions {
        attach_similarity: Some(0.0),
        ..ClusterOptions::default()
    };
    assert!(
        cluster_sets_with(&open(&one), &no_attach)
            .iter()
            .all(|c| !c.contains("chain-a") && !c.contains("chain-c")),
        "precondition: without chain-b, chain-a and chain-c are not linked"
    );
    // At 0.33, chain-a and chain-c are within attachment of each other: left alone by the
    // deletion, they pair up.
    assert!(
        want.iter()
            .any(|c| c.len() == 2 && c.contains("chain-a") && c.contains("chain-c")),
        "chain-a and chain-c attach to each other"
    );

    let index = open(&segs);
    let got = cluster_sets(&index);
    let in_clusters: Vec<&String> = got
        .iter()
        .flatten()
        .filter(|id| dead.contains(*id))
        .collect();
    assert!(
        in_clusters.is_empty(),
        "deleted posts in clusters: {in_clusters:?}"
    );
    let diff: Vec<_> = want.symmetric_difference(&got).take(6).collect();
    assert!(
        diff.is_empty(),
        "with deletions (3 segments) vs one build of the live posts: {diff:?}"
    );
    drop(index);
    merge_all(&segs);
    let got = cluster_sets(&open(&segs));
    let diff: Vec<_> = want.symmetric_difference(&got).take(6).collect();
    assert!(
        diff.is_empty(),
        "merged vs one build of the live posts: {diff:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Core texts.
// ---------------------------------------------------------------------------------------

/// Whether `core` is a run of `tokens`.
fn holds(tokens: &[String], core: &[String]) -> bool {
    !core.is_empty() && tokens.windows(core.len()).any(|w| w == core)
}

fn tokens(index: &Index, text: &str) -> Vec<String> {
    let mut n = textreuse::text::Normalized::new();
    index.fingerprinter().normalizer().normalize(text, &mut n);
    n.tokens().map(str::to_string).collect()
}

/// Checks every cluster's core text against its posts' texts: the offsets lie inside the
/// representative on char boundaries, and the passage's tokens are a run of the tokens of
/// more than half of the cluster's posts (when the cluster has no more distinct texts than
/// are sampled, so that the sample is the whole cluster). Returns the clusters checked.
fn check_core_texts(index: &Index, report: &textreuse::cluster::ClusterReport) -> usize {
    let mut checked = 0;
    for c in &report.clusters {
        let Some(core) = &c.core_text else {
            continue;
        };
        let rep: Vec<char> = c.representative.chars().collect();
        assert!(
            core.start < core.end && core.end as usize <= rep.len(),
            "{core:?}"
        );
        let span: String = rep[core.start as usize..core.end as usize].iter().collect();
        assert_eq!(span, core.text);
        assert!(
            core.posts * 2 > core.sampled && core.sampled <= c.size,
            "{core:?}"
        );
        let want = tokens(index, &core.text);
        assert!(want.len() >= 3, "{core:?}");
        assert!(holds(&tokens(index, &c.representative), &want));
        if c.texts > textreuse::cluster::CORE_SAMPLE {
            continue;
        }
        assert_eq!(core.sampled, c.size);
        let sharing = c
            .addrs
            .iter()
            .filter(|&&a| {
                let t = index
                    .text_at(a, &mut TextCache::default())
                    .expect("reads")
                    .expect("stored");
                holds(&tokens(index, &t), &want)
            })
            .count();
        assert!(
            sharing * 2 > c.size && sharing >= core.posts,
            "cluster {}: {sharing} of {} posts hold {core:?}",
            c.cluster,
            c.size
        );
        checked += 1;
    }
    checked
}

#[test]
fn core_text_is_the_passage_most_posts_share() {
    let s = [
        "今天市政府宣布，城东的大桥将在六月关闭维修。",
        "附近的居民担心交通会更加拥堵，商店也怕失去顾客。",
        "市长承诺在维修期间开通一条免费的渡轮航线。",
        "Ｆｕｌｌ details at the town hall — 詳情請見市政廳網站。",
    ];
    let pad = "转发一下，大家看看吧！这件事情很重要。";
    let variants: [(String, usize); 4] = [
        (s.concat(), 3),
        (s[1..].concat(), 2),
        (s[..3].concat(), 2),
        (format!("{pad}{}{}", s[1], s[2]), 2),
    ];
    let mut posts = crate::util::sample_posts()[..300].to_vec();
    let mut n = 0;
    for (text, k) in &variants {
        for _ in 0..*k {
            posts.push(post(
                &format!("core-{n}"),
                text,
                &format!("acc{n}"),
                Some(n as i64),
            ));
            n += 1;
        }
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("index");
    util::build_lib(&dir, &posts, BuildOptions::default(), 5000);
    let index = open(&dir);
    let report = index
        .clusters(&ClusterOptions::default())
        .expect("clusters");
    let c = report
        .clusters
        .iter()
        .find(|c| c.posts.iter().any(|p| p == "core-0"))
        .expect("the campaign is a cluster");
    assert_eq!((c.size, c.texts), (9, 4), "{c:?}");
    assert_eq!(c.representative, s.concat());
    let core = c.core_text.as_ref().expect("a core text");
    // Sentences 1-2 are in every post; 0-2 or 1-3 in 5 of 9.
    // (A passage ends at its last token: the closing '。' is not one.)
    let both = format!("{}{}", s[1], s[2].trim_end_matches('。'));
    assert!(core.text.contains(&both), "{core:?}");
    assert!(core.text.len() > s[1].len() + s[2].len(), "{core:?}");
    assert_eq!((core.posts, core.sampled), (5, 9), "{core:?}");
    assert!(check_core_texts(&index, &report) >= 1);
    // The report shows it above the most posted text.
    let assignment = textreuse::coordination::Assignment::computed(&index, &Default::default())
        .expect("clusters");
    let (html, _) = textreuse::report::render_to_string(&index, &assignment, &Default::default())
        .expect("report");
    let at = html.find("<h3>Core text").expect("a core text heading");
    let end = at + html[at..].find("</blockquote>").expect("the passage");
    let section = &html[at..end];
    assert!(section.contains("5 of 9 posts"), "{section}");
    let quoted = format!("<blockquote class=\"core\">{}", core.text);
    assert!(section.ends_with(&quoted), "{section}");
    // Without core texts, the same clusters.
    let bare = ClusterOptions {
        core_texts: false,
        ..ClusterOptions::default()
    };
    let without = index.clusters(&bare).expect("clusters");
    assert!(without.clusters.iter().all(|c| c.core_text.is_none()));
    let strip = |r: &textreuse::cluster::ClusterReport| -> Vec<Vec<String>> {
        r.clusters.iter().map(|c| c.posts.clone()).collect()
    };
    assert_eq!(strip(&without), strip(&report));
    // The sample corpus's clusters hold as well.
    let all = util::sample_posts();
    let dir = tmp.path().join("sample");
    util::build_lib(&dir, &all, BuildOptions::default(), 5000);
    let index = open(&dir);
    let report = index
        .clusters(&ClusterOptions::default())
        .expect("clusters");
    let with_core = report
        .clusters
        .iter()
        .filter(|c| c.core_text.is_some())
        .count();
    assert!(
        with_core * 10 >= report.clusters.len() * 9,
        "{with_core} of {}",
        report.clusters.len()
    );
    assert!(check_core_texts(&index, &report) > 20);
}
