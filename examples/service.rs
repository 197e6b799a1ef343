//! A small lookup service over a living index: one [`IndexWriter`] appends posts and
//! commits several times (it stays open between commits), while reader threads serve
//! lookups from an [`IndexReader`] and pick up each new generation with `reload`.
//!
//! Run it with `cargo run --release --example service`. It checks its own answers and
//! exits non-zero if a lookup misses a committed post.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use textreuse::index::{BuildOptions, IndexReader, IndexWriter, NewPost};
use textreuse::QueryOptions;

/// The text of post `i` of batch `b`: a sentence of its own, plus a campaign sentence that
/// every post of the batch shares (so lookups find the whole batch).
fn text(b: usize, i: usize) -> String {
    const WORDS: [&str; 16] = [
        "river", "stone", "market", "winter", "signal", "garden", "copper", "window", "harbor",
        "lantern", "meadow", "engine", "ticket", "shadow", "butter", "planet",
    ];
    let own: Vec<&str> = (0..6)
        .map(|k| WORDS[(b * 7 + i * 3 + k * 5) % 16])
        .collect();
    format!(
        "campaign {b} says the harbor lantern is lit again tonight {} {i}",
        own.join(" ")
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = std::env::temp_dir().join(format!("textreuse-service-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    // One writer for the life of the service: it holds the index's lock.
    let mut writer = IndexWriter::open_with(&tmp, BuildOptions::default())?;
    let first: Vec<String> = (0..50).map(|i| text(0, i)).collect();
    let ids: Vec<String> = (0..50).map(|i| format!("0-{i}")).collect();
    let posts: Vec<NewPost> = first
        .iter()
        .zip(&ids)
        .map(|(t, id)| NewPost {
            id,
            text: t,
            account: "a",
            platform: "x",
            ts: Some(1_700_000_000),
        })
        .collect();
    writer.add(&posts)?;
    writer.commit()?;

    let reader = Arc::new(IndexReader::open(&tmp)?);
    let committed = Arc::new(AtomicU64::new(1)); // batches committed
    let stop = Arc::new(AtomicBool::new(false));
    let lookups = Arc::new(AtomicU64::new(0));
    let mut servers = Vec::new();
    for t in 0..4 {
        let (reader, committed, stop, lookups) = (
            Arc::clone(&reader),
            Arc::clone(&committed),
            Arc::clone(&stop),
            Arc::clone(&lookups),
        );
        servers.push(std::thread::spawn(move || -> Result<(), String> {
            let mut round = 0usize;
            while !stop.load(Ordering::Acquire) {
                // Batches known committed before the reload must all be visible after it.
                let known = committed.load(Ordering::Acquire) as usize;
                reader.reload().map_err(|e| e.to_string())?;
                let index = reader.searcher();
                let b = (t + round) % known;
                let res = index
                    .query(&text(b, 1), &QueryOptions::default())
                    .map_err(|e| e.to_string())?;
                if !res.hits.iter().any(|h| h.id == format!("{b}-1")) {
                    return Err(format!("batch {b}: post {b}-1 not found"));
                }
                lookups.fetch_add(1, Ordering::Relaxed);
                round += 1;
            }
            Ok(())
        }));
    }
    // Append and commit a few more batches with the same writer.
    for b in 1..5 {
        let texts: Vec<String> = (0..50).map(|i| text(b, i)).collect();
        let ids: Vec<String> = (0..50).map(|i| format!("{b}-{i}")).collect();
        let posts: Vec<NewPost> = texts
            .iter()
            .zip(&ids)
            .map(|(t, id)| NewPost {
                id,
                text: t,
                ..NewPost::default()
            })
            .collect();
        writer.add(&posts)?;
        if b == 3 {
            writer.delete(&["0-0"])?;
        }
        let stats = writer.commit()?;
        committed.store(b as u64 + 1, Ordering::Release);
        println!(
            "generation {}: +{} posts, {} deleted",
            writer.manifest().map_or(0, |m| m.generation),
            stats.indexed,
            stats.deleted
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    stop.store(true, Ordering::Release);
    for s in servers {
        s.join().map_err(|_| "a server thread panicked")??;
    }
    reader.reload()?;
    let index = reader.searcher();
    println!(
        "{} posts live, {} lookups served from 4 threads",
        index.num_posts(),
        lookups.load(Ordering::Relaxed)
    );
    assert_eq!(index.num_posts(), 249);
    drop(writer);
    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}
