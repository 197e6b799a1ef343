//! The bytes of an index do not depend on the thread count.

use std::process::{Command, Stdio};

use textreuse::input::RawPost;
use textreuse::Index;

use crate::util;

#[test]
fn thread_count_does_not_change_a_byte() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The sample, with one post whose 8 MiB account name fills a 16 MiB buffer, so the
    // index has two segments (the flush point must not depend on threads either).
    let mut posts = util::sample_posts();
    posts.insert(
        1500,
        RawPost {
            id: "ballast".into(),
            text: "a post with a very long account name".into(),
            account: "b".repeat(8 << 20),
            platform: "test".into(),
            ts: Some(1_700_000_000),
            line: 0,
        },
    );
    let input = tmp.path().join("posts.jsonl");
    util::write_jsonl(&input, &posts);
    // Build with 1, 2 and 3 threads at once.
    let threads = ["1", "2", "3"];
    let children: Vec<_> = threads
        .iter()
        .map(|t| {
            Command::new(util::bin())
                .args(["build", "-q", "--memory", "16M", "--threads", t, "--input"])
                .arg(&input)
                .arg("--index")
                .arg(tmp.path().join(format!("index-{t}")))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("starts a build")
        })
        .collect();
    for (t, c) in threads.iter().zip(children) {
        let out = c.wait_with_output().expect("waits");
        assert!(
            out.status.success(),
            "--threads {t}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let trees: Vec<_> = threads
        .iter()
        .map(|t| util::read_tree(&tmp.path().join(format!("index-{t}"))))
        .collect();
    let index = Index::open(tmp.path().join("index-1")).expect("opens");
    assert_eq!(
        index.segments().len(),
        2,
        "the ballast post should close a segment"
    );
    assert!(trees[0].keys().any(|k| k.ends_with("/bands")));
    for (t, tree) in threads.iter().zip(&trees).skip(1) {
        assert_eq!(
            tree.keys().collect::<Vec<_>>(),
            trees[0].keys().collect::<Vec<_>>(),
            "--threads {t} writes other files"
        );
        for (name, bytes) in tree {
            assert!(
                *bytes == trees[0][name],
                "--threads {t}: {name} differs from --threads 1 ({} vs {} bytes)",
                bytes.len(),
                trees[0][name].len()
            );
        }
    }
}
