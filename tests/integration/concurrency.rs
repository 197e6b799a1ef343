//! `Index` is `Send + Sync`, and many threads querying one index get the answers one
//! thread gets.

use std::sync::{Arc, Barrier};

use textreuse::index::{Access, OpenOptions};
use textreuse::{Index, QueryOptions, QueryResult};

use crate::equivalence::fixture;

/// Compile-time: an `Index` can be shared between threads (and so can its parts).
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<Index>();
    shareable::<Arc<Index>>();
    shareable::<textreuse::Fingerprinter>();
    shareable::<QueryResult>();
};

#[test]
fn four_threads_get_the_single_threaded_answers() {
    let f = fixture();
    for access in [Access::Mmap, Access::InMemory] {
        let index = Arc::new(
            Index::open_with(
                &f.dir,
                OpenOptions {
                    access,
                    prefetch: access == Access::Mmap,
                },
            )
            .expect("opens"),
        );
        let opts = [
            QueryOptions::default(),
            QueryOptions {
                min_similarity: 0.2,
                limit: 5,
                ..QueryOptions::default()
            },
        ];
        let queries: Vec<&str> = f.queries.iter().step_by(2).map(String::as_str).collect();
        let ids: Vec<&str> = f.posts.iter().step_by(41).map(|p| p.id.as_str()).collect();
        let want: Vec<Vec<QueryResult>> = opts
            .iter()
            .map(|o| {
                queries
                    .iter()
                    .map(|q| index.query(q, o).expect("query"))
                    .collect()
            })
            .collect();
        let want_posts: Vec<_> = ids.iter().map(|id| index.post(id).expect("post")).collect();
        let want_near: Vec<_> = ids
            .iter()
            .map(|id| index.query_post(id, &opts[0]).expect("query_post"))
            .collect();
        let barrier = Barrier::new(4);
        std::thread::scope(|s| {
            for t in 0..4usize {
                let (index, barrier) = (Arc::clone(&index), &barrier);
                let (queries, ids, opts) = (&queries, &ids, &opts);
                let (want, want_posts, want_near) = (&want, &want_posts, &want_near);
                s.spawn(move || {
                    barrier.wait();
                    // Each thread walks the queries from its own starting point, so different
                    // threads touch different parts of the index at the same time.
                    let n = queries.len();
                    for k in 0..n {
                        let i = (k * (t + 1) + t * n / 4) % n;
                        let o = (i + t) % opts.len();
                        let got = index.query(queries[i], &opts[o]).expect("query");
                        assert_eq!(got, want[o][i], "thread {t}, query {i}, {access:?}");
                        if k % 8 == 0 {
                            let j = (k / 8 + t) % ids.len();
                            assert_eq!(index.post(ids[j]).expect("post"), want_posts[j]);
                            assert_eq!(
                                index.query_post(ids[j], &opts[0]).expect("query_post"),
                                want_near[j]
                            );
                        }
                    }
                    // And a batch (rayon) from inside a thread.
                    let batch = index.query_batch(queries, &opts[0]);
                    for (b, w) in batch.into_iter().zip(&want[0]) {
                        assert_eq!(&b.expect("batched"), w);
                    }
                });
            }
        });
    }
}
