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
                eprintln!("textreuse: {}", message(&err));
                2
            }
        }
    };
    std::process::exit(code);
}

/// The error and its causes, `: `-separated, each once: a cause whose text is already
/// part of the message (an I/O error that also names its path) is left out.
fn message(err: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if msg.contains(&s) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&s);
    }
    msg
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
