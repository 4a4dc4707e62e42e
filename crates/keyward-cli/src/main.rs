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
    return_memory_in_the_background();
    keyward_server::http::workers::set_housekeeping(return_this_threads_memory);
    let code = keyward_cli::main();
    // Exit never runs beside an `mi_collect`: wait for one under way, and hold the lock
    // (forgotten, never released) so no other starts while the allocator shuts down.
    std::mem::forget(COLLECTING.lock());
    code
}

/// Held while the memory thread is inside mimalloc, and by `main` from its return on.
static COLLECTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How often freed memory is handed back to the OS while the process is otherwise idle.
const RETURN_MEMORY_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// mimalloc hands memory freed a while ago back to the OS only when it is called again; an
/// idle node (a cache filled, then quiet) kept what the fill had freed. A thread asks it to
/// every second; it costs nothing on a request's way (docs/BENCHMARKS.md).
fn return_memory_in_the_background() {
    let spawned = std::thread::Builder::new().name("keyward-memory".into()).spawn(|| loop {
        std::thread::sleep(RETURN_MEMORY_EVERY);
        let _collecting = COLLECTING.lock();
        // SAFETY: mi_collect takes no pointers; `false`: only what is due (no forced purge).
        unsafe { libmimalloc_sys::mi_collect(false) };
    });
    // Without the thread memory is returned as before, on later allocations.
    drop(spawned);
}

/// The same for a serving thread's own heap, called on it once a second: memory freed to
/// that heap by other threads (the usage flush frees what requests made) is taken back only
/// by the heap's thread, and one idle after a burst would otherwise keep it. Skipped while
/// another collection holds the lock, and from `main`'s return on.
fn return_this_threads_memory() {
    if let Ok(_collecting) = COLLECTING.try_lock() {
        // SAFETY: as above.
        unsafe { libmimalloc_sys::mi_collect(false) };
    }
}
