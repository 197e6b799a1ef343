//! Cluster descriptions: a cluster's posts after the filters, its accounts and time
//! profile, its representative text and its core text.

use super::*;

/// A cluster described, before its texts are read.
pub(super) struct Described {
    cluster: Cluster,
    /// The representative post and the posts of its text.
    rep: (PostAddr, usize),
    /// A post of each other text sampled for the core text, and the posts of that text.
    others: Vec<(PostAddr, usize)>,
}

impl Index {
    /// Fills in each cluster's representative text (read at the given address) and its core
    /// text (the representative aligned with the sampled texts). The reads go in address
    /// order, with a helper thread asking the kernel for the blocks ahead, so that a cold
    /// page cache serves them as a few sequential sweeps rather than one blocking random
    /// read per text.
    pub(super) fn representative_texts(
        &self,
        described: Vec<Described>,
        core: bool,
    ) -> Result<Vec<Cluster>> {
        let segs = self.segments();
        // (segment, post, cluster, slot: 0 = representative, 1.. = sampled texts)
        let mut order: Vec<(usize, u32, usize, usize)> = Vec::with_capacity(described.len());
        for (i, d) in described.iter().enumerate() {
            let addrs = std::iter::once(d.rep.0).chain(d.others.iter().map(|o| o.0));
            for (slot, addr) in addrs.enumerate() {
                order.push((self.segment_index(addr.segment)?, addr.post, i, slot));
            }
        }
        order.sort_unstable();
        let stop = std::sync::atomic::AtomicBool::new(false);
        let texts: Vec<Result<(usize, usize, Option<String>)>> = std::thread::scope(|scope| {
            // A hint only: if no thread can be made, the texts are read without it.
            let _ = std::thread::Builder::new().spawn_scoped(scope, || {
                for &(s, post, _, _) in &order {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    segs[s].prefetch_text(post);
                }
            });
            let texts = order
                .par_iter()
                // Each split makes a decompression context: keep them few.
                .with_min_len(256)
                .map_init(TextCache::default, |cache, &(s, post, i, slot)| {
                    Ok((i, slot, segs[s].text(post, cache)?))
                })
                .collect();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            texts
        });
        let mut read: Vec<Vec<Option<String>>> = described
            .iter()
            .map(|d| vec![None; 1 + d.others.len()])
            .collect();
        for t in texts {
            let (i, slot, text) = t?;
            read[i][slot] = text;
        }
        let normalizer = self.fingerprinter().normalizer();
        let min_tokens = self.manifest().params.shingle as usize;
        Ok(described
            .into_par_iter()
            .zip(read)
            .with_min_len(64)
            .map_init(CoreScratch::default, |scratch, (d, texts)| {
                let mut c = d.cluster;
                let mut texts = texts.into_iter();
                if let Some(rep) = texts.next().flatten() {
                    // Texts not stored (or gone) leave the core text out.
                    let others: Option<Vec<(&str, usize)>> = d
                        .others
                        .iter()
                        .zip(texts.as_slice())
                        .map(|(o, t)| t.as_deref().map(|t| (t, o.1)))
                        .collect();
                    c.core_text = others.filter(|_| core).and_then(|others| {
                        core_passage_with(scratch, normalizer, &rep, d.rep.1, &others, min_tokens)
                    });
                    c.representative = rep;
                }
                c
            })
            .collect())
    }

    /// Expands a set of contents into a cluster description, after the post filters, with
    /// the addresses of its representative post and of the texts sampled for its core text
    /// (whose texts are read later).
    pub(super) fn describe(
        &self,
        base: &[u64],
        contents: &[u32],
        bonds: Bonds,
        opts: &ClusterOptions,
    ) -> Result<Option<Described>> {
        let segs = self.segments();
        // (time, address, content, id)
        let mut posts: Vec<(Option<i64>, PostAddr, u32, &str)> = Vec::new();
        // Account names, when several segments each intern their own.
        let mut names: Vec<&str> = Vec::new();
        let mut platforms: BTreeMap<&str, usize> = BTreeMap::new();
        let mut accounts: Vec<(u64, u32)> = Vec::new();
        // Distinct texts: exact duplicates in different segments are one text (by content
        // hash; format-1 segments without hashes count their contents).
        // key -> (posts, content, its earliest post's (time, id))
        let mut variants: BTreeMap<u128, (usize, u32, (i64, &str))> = BTreeMap::new();
        for &c in contents {
            let s = seg_of(base, c);
            let seg = &segs[s];
            let local = c - base[s] as u32;
            let mut kept = 0;
            let mut earliest = (i64::MAX, "");
            for p in seg.content_posts(local)? {
                if seg.is_deleted(p) {
                    continue;
                }
                let m = seg.post(p)?;
                if !opts.platforms.is_empty() && !opts.platforms.iter().any(|x| x == m.platform) {
                    continue;
                }
                if opts.since.is_some() || opts.until.is_some() {
                    let Some(ts) = m.ts else { continue };
                    if opts.since.is_some_and(|x| ts < x) || opts.until.is_some_and(|x| ts > x) {
                        continue;
                    }
                }
                kept += 1;
                let at = (m.ts.unwrap_or(i64::MAX), m.id);
                if kept == 1 || at < earliest {
                    earliest = at;
                }
                *platforms.entry(m.platform).or_insert(0) += 1;
                if segs.len() == 1 {
                    accounts.push((seg.entry().id, seg.account_of(p).unwrap_or(u32::MAX)));
                } else {
                    names.push(m.account);
                }
                posts.push((
                    m.ts,
                    PostAddr {
                        segment: seg.entry().id,
                        post: p,
                    },
                    c,
                    m.id,
                ));
            }
            if kept > 0 {
                let key = seg
                    .content_hash(local)
                    .unwrap_or((1u128 << 127) | u128::from(c));
                let v = variants.entry(key).or_insert((0, c, earliest));
                v.0 += kept;
                if earliest < v.2 {
                    (v.1, v.2) = (c, earliest);
                }
            }
        }
        let texts = variants.len();
        // The most frequent variants (ties: the one posted first, by time then id, so that
        // neither content numbers nor segments decide) first; the first is the
        // representative, the first CORE_SAMPLE are aligned for the core text.
        let mut ranked: Vec<(usize, u32, (i64, &str))> = variants.into_values().collect();
        ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.2.cmp(&b.2)));
        ranked.truncate(CORE_SAMPLE);
        let sample: Vec<(usize, u32)> = ranked.iter().map(|v| (v.0, v.1)).collect();
        let best = sample.first().copied();
        if posts.len() < opts.min_size.max(1) {
            return Ok(None);
        }
        // Accounts are interned per segment: compare by name across segments.
        if segs.len() == 1 {
            accounts.sort_unstable();
            accounts.dedup();
        } else {
            names.sort_unstable();
            names.dedup();
        }
        let n_accounts = if segs.len() == 1 {
            accounts.len()
        } else {
            names.len()
        };
        if n_accounts < opts.min_accounts {
            return Ok(None);
        }
        // By time, then id (not address: content numbers are a writer's choice).
        posts.sort_by(|a, b| {
            a.0.unwrap_or(i64::MAX)
                .cmp(&b.0.unwrap_or(i64::MAX))
                .then(a.3.cmp(b.3))
                .then(a.1.cmp(&b.1))
        });
        let first_ts = posts.iter().filter_map(|p| p.0).min();
        let last_ts = posts.iter().filter_map(|p| p.0).max();
        let earliest_post = posts[0].3.to_string();
        let rep_content = best.map(|b| b.1).unwrap_or(contents[0]);
        let rep_addr = posts
            .iter()
            .find(|p| p.2 == rep_content)
            .map(|p| p.1)
            .unwrap_or(posts[0].1);
        let rep_id = posts
            .iter()
            .find(|p| p.1 == rep_addr)
            .map_or_else(String::new, |p| p.3.to_string());
        let time_profile = first_ts.zip(last_ts).map(|(f, l)| {
            // i128: timestamps may span the whole i64 range.
            let (f, l) = (i128::from(f), i128::from(l));
            let (unit, step) = if l - f <= 7 * 86_400 {
                ("hour", 3600i128)
            } else {
                ("day", 86_400i128)
            };
            let start = f - f.rem_euclid(step);
            let n = ((l - start) / step).clamp(0, 999) as usize + 1;
            let mut counts = vec![0u32; n];
            for ts in posts.iter().filter_map(|p| p.0) {
                let i = ((i128::from(ts) - start) / step).clamp(0, n as i128 - 1) as usize;
                counts[i] += 1;
            }
            let start = start as i64;
            TimeProfile {
                unit,
                start,
                counts,
            }
        });
        let ids = if opts.with_posts {
            posts.iter().map(|p| p.3.to_string()).collect()
        } else {
            Vec::new()
        };
        // Each sampled text's earliest post (the representative's is `rep_addr`).
        let others = sample
            .iter()
            .skip(1)
            .filter(|_| opts.core_texts)
            .filter_map(|&(n, c)| posts.iter().find(|p| p.2 == c).map(|p| (p.1, n)))
            .collect();
        let cluster = Cluster {
            cluster: 0,
            size: posts.len(),
            texts,
            accounts: n_accounts,
            platforms: platforms
                .into_iter()
                .map(|(p, n)| (p.to_string(), n))
                .collect(),
            first_ts,
            last_ts,
            earliest_post,
            representative: String::new(),
            representative_id: rep_id,
            weakest_link: bonds.weakest,
            edges: bonds.edges,
            attached: bonds.attached,
            contained: bonds.contained,
            core_text: None,
            time_profile,
            posts: ids,
            addrs: posts.iter().map(|p| p.1).collect(),
        };
        Ok(Some(Described {
            cluster,
            rep: (rep_addr, best.map_or(1, |b| b.0)),
            others,
        }))
    }
}
