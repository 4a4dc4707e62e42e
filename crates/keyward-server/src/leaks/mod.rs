//! Leaked keys: the public keys that sign GitHub's secret-scanning calls and the check of a
//! call's signature (`signing_keys.rs`), what a reported leak does to a key under the
//! workspace's `leaked_keys` policy (`found.rs`), and the per-address throttle of anonymous
//! reports (`throttle.rs`). The routes are `routes/leaks.rs`.

pub mod found;
pub mod signing_keys;
mod throttle;

pub use found::{leaked, LeakSource};
