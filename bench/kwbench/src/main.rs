//! Helpers for `bench/verify.sh` and `bench/coldstart.sh`. Not part of the product.
// Not server code: may read the system's time (the `Clock` rule in clippy.toml is for
// server-side crates).
#![allow(clippy::disallowed_methods)]

mod ceiling;
mod load;
mod mint;
mod seed;

use clap::{Parser, Subcommand};

// The same allocator as the `keyward` binary, so the ceiling is measured on equal terms.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "kwbench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create keys through the management API and write their secrets, one per line.
    Seed(seed::Args),
    /// A minimal axum server answering POST /v1/keys/verify with a fixed body.
    Ceiling(ceiling::Args),
    /// Send verify requests at a fixed rate (or as fast as possible) and report latency.
    Load(load::Args),
    /// Make secrets offline and, with the pepper, the rows storing them (for `COPY`).
    Mint(mint::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Seed(a) => seed::run(a).await,
        Command::Ceiling(a) => ceiling::run(a).await,
        Command::Load(a) => load::run(a).await,
        Command::Mint(a) => mint::run(a),
    }
}
