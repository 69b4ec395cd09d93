//! The `netraven` binary: parses arguments and hands over to [`netraven_server::cli`].

fn main() -> std::process::ExitCode {
    return_memory_to_the_system();
    netraven_server::cli::main()
}

/// glibc raises its mmap threshold to the largest block freed so far, so after the first argon2
/// hash (19 MiB) frees, later ones come from the heap arenas and stay with the process. A fixed
/// threshold keeps large blocks mmapped (given back on free) and the heaps trimmed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_memory_to_the_system() {
    // SAFETY: mallopt only sets allocator parameters; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_memory_to_the_system() {}
