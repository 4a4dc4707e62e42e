//! The `keyward` binary. All behaviour lives in the `keyward_cli` library.

fn main() -> std::process::ExitCode {
    keyward_cli::main()
}
