//! Leaked credentials: the public keys that sign GitHub's secret-scanning calls and the check
//! of a call's signature (`signing_keys.rs`), what a reported string is — a secret key,
//! management key, verify token, session token or key imported by hash (`lookup.rs`) — what
//! a leak does under the workspace's `leaked_keys` policy to an API key (`found.rs`) and to
//! the other credentials (`credential.rs`), and the per-address throttle of anonymous reports
//! (`throttle.rs`). The routes are `routes/leaks.rs`.

mod credential;
pub mod found;
mod lookup;
pub mod signing_keys;
mod throttle;

pub use found::LeakSource;
pub use lookup::Leaked;
