//! Apps' OAuth tokens (docs/APPS.md): each workspace's token-signing keys (`signing.rs`), the
//! token endpoint's grants (`grants.rs`) and its count of tokens per installation
//! (`throttle.rs`), and an access token verified where a key would be, with this node's
//! memory of the decisions (`verify.rs`, `cache.rs`). The routes are in `routes/apps.rs`
//! (apps and installations) and `routes/oauth.rs` (the OAuth endpoints).

pub mod cache;
pub(crate) mod grants;
pub(crate) mod signing;
mod throttle;
mod verify;
