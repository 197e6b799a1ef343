//! `textreuse delete`: mark posts dead by id.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context, Result};
use textreuse::index::IndexWriter;

/// Arguments of `textreuse delete`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The index directory.
    #[arg(long)]
    index: PathBuf,
    /// A file of post ids, one per line (`-` reads standard input).
    #[arg(long, required_unless_present = "id")]
    ids: Option<PathBuf>,
    /// A post id (repeatable).
    #[arg(long)]
    id: Vec<String>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Do not list the ids that were not found.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(serde::Serialize)]
struct Summary {
    requested: usize,
    deleted: u64,
    not_found: usize,
    generation: u64,
}

pub fn run(args: Args) -> Result<i32> {
    let mut ids = args.id.clone();
    if let Some(path) = &args.ids {
        let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            let f = std::fs::File::open(path)
                .with_context(|| format!("{}: cannot open", path.display()))?;
            Box::new(std::io::BufReader::new(f))
        };
        for (i, line) in reader.split(b'\n').enumerate() {
            let line = line.with_context(|| format!("{}: read failed", path.display()))?;
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            if line.is_empty() {
                continue;
            }
            let id = std::str::from_utf8(line).with_context(|| {
                format!("{}:{}: the id is not valid UTF-8", path.display(), i + 1)
            })?;
            ids.push(id.to_string());
        }
    }
    let mut w = IndexWriter::open(&args.index).with_context(|| {
        format!(
            "{}: cannot open the index for writing",
            args.index.display()
        )
    })?;
    let missing = w
        .delete(&ids)
        .with_context(|| format!("{}: delete failed", args.index.display()))?;
    let stats = w
        .commit()
        .with_context(|| format!("{}: publishing the deletions failed", args.index.display()))?;
    if !args.quiet {
        for id in missing.iter().take(20) {
            eprintln!("textreuse: no live post has id {id:?}");
        }
        if missing.len() > 20 {
            eprintln!(
                "textreuse: ... and {} more ids not found",
                missing.len() - 20
            );
        }
    }
    let generation = w.manifest().map_or(0, |m| m.generation);
    eprintln!(
        "textreuse: deleted {} post(s) of {} id(s) given; {} not found",
        stats.deleted,
        ids.len(),
        missing.len()
    );
    if args.json {
        let s = Summary {
            requested: ids.len(),
            deleted: stats.deleted,
            not_found: missing.len(),
            generation,
        };
        super::util::print_out(&(serde_json::to_string(&s)? + "\n"))?;
    }
    Ok(if stats.deleted == 0 && !ids.is_empty() {
        1
    } else {
        0
    })
}
