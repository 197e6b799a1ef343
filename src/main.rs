//! The `textreuse` command line: a thin layer over the library.
//!
//! Exit codes (ripgrep's convention): 0 = success / something matched, 1 = nothing matched,
//! 2 = error. A closed pipe (`textreuse ... | head`) exits 0.

#![warn(clippy::undocumented_unsafe_blocks)]

mod cli;

fn main() {
    let code = match cli::run() {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                0
            } else {
                eprintln!("textreuse: {err:#}");
                2
            }
        }
    };
    std::process::exit(code);
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
