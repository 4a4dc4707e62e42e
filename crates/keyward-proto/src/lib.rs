//! Wire types: the request and answer bodies of the HTTP API, shared by the server (which
//! documents them in OpenAPI), the SDK and the CLI. They hold no rules: checking a request is
//! `validate`'s work, deciding a verification `verify`'s.

pub mod error;
pub mod governance;
pub mod keys;
pub mod roles;
pub mod usage;
pub mod verify;
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
