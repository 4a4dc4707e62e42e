//! The `keyward` binary. All behaviour lives in the `keyward_cli` library.

// mimalloc keeps the server's memory compact under many small, short-lived allocations
// (glibc's per-thread arenas held on to hundreds of MB after seeding 100k keys).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    keyward_cli::main()
}
