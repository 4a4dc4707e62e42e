//! The `keyward` command: process setup (data dir, pepper, config file) and the commands.
// The CLI is the edge: it reads the system's time for what the user asks about now (the
// `Clock` rule in clippy.toml is for server-side crates; `serve` hands them the system clock).
#![allow(clippy::disallowed_methods)]

mod args;
mod commands;
mod datadir;
mod keypairs;
mod output;
mod settings;
mod userconfig;

use clap::Parser;
use std::process::ExitCode;

pub use args::Cli;

/// Parses the command line and runs it on a multi-threaded runtime.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(commands::dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
