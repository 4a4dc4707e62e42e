//! Keyward's HTTP API on the wire: the request and answer bodies shared by the server (which
//! documents them in OpenAPI, with the `openapi` feature), the SDK and the CLI, the stable
//! verification codes, request signing for public-key API keys, and the check of webhook
//! signatures. They hold no rules: checking a request is `keyward_core::validate`'s work,
//! deciding a verification `keyward_core::verify`'s; types whose evaluation is a rule (a
//! policy, an audit event's hash) carry it in `keyward-core`, which re-exports them.
//!
//! Features: `openapi` derives `utoipa::ToSchema`; `secp256k1` adds secp256k1 keys to
//! [`signing`] (Ed25519 is always there).

pub mod apps;
pub mod audit;
pub mod codes;
pub mod error;
pub mod governance;
pub mod hex;
pub mod identities;
pub mod import;
pub mod jwt;
pub mod keys;
pub mod leaks;
pub mod member_role;
pub mod operators;
pub mod policy;
pub mod random;
pub mod ratelimit;
pub mod roles;
pub mod signing;
pub mod usage;
pub mod verify;
pub mod webhook_signature;
pub mod webhooks;

use serde::{Deserialize, Deserializer};

/// Tells "absent" (outer `None`) from "null" (`Some(None)`).
pub(crate) fn some<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
