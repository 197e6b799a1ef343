//! The `textreuse` command line: a thin layer over the library.
//!
//! Exit codes (ripgrep's convention): 0 = success / something matched, 1 = nothing matched,
//! 2 = error. A closed pipe (`textreuse ... | head`) exits 0.

#![warn(clippy::undocumented_unsafe_blocks)]

mod cli;

fn main() {
    keep_freed_memory();
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

/// Makes glibc's allocator keep the memory it is given: large blocks come from the heap
/// instead of their own mappings, and freed memory is not returned to the kernel. A build
/// frees and allocates its buffers once per segment; memory handed back and asked for again
/// is zeroed by the kernel page by page each time (a third of a 10M build's system time).
/// Process-wide, so set here in the command line, never in the library.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
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
