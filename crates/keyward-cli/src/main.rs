//! The `keyward` binary. All behaviour lives in the `keyward_cli` library.

// mimalloc keeps the server's memory compact under many small, short-lived allocations
// (glibc's per-thread arenas held on to hundreds of MB after seeding 100k keys).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // SQLite allocates with the C allocator, from the threads of its connections, and glibc
    // gave each of those threads an arena of its own: with 100,000 keys, eight arenas of
    // page caches and the holes between them held ~36 MB, one holds the same in ~14 MB
    // (docs/BENCHMARKS.md). Rust's own allocations go to mimalloc and are not concerned.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: sets a tuning parameter of the C allocator, before any thread is started.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    keyward_cli::main()
}
