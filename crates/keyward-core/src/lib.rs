//! Keyward's domain layer: key formats, hashing, permission queries, scopes, IP allowlists,
//! input validation and the verification decision. It performs no I/O; time and randomness
//! are passed in so that every rule can be tested without sleeping or mocking the OS.

pub mod approval_change;
pub mod audit;
pub mod audit_action;
pub mod audit_anchor;
pub mod authority;
pub mod clock;
pub mod duration;
pub mod error;
pub mod identity;
pub mod ids;
pub mod import;
pub mod intern;
pub mod ip;
pub mod keyformat;
pub mod keyscan;
pub mod limit_plan;
pub mod mfa;
pub mod model;
pub mod oauth;
pub mod operator_action;
pub mod password;
pub mod pepper;
pub mod permissions;
pub mod place;
pub mod policy;
pub mod random;
pub mod ratelimit;
pub mod ratelimit_service;
pub mod roles;
pub mod scopes;
pub mod secret;
pub mod standing;
pub mod text;
pub mod validate;
pub mod verify;
pub mod webhook_signature;
pub mod webhooks;

// The wire crate's modules, at the paths they had when they lived here.
/// The request and answer bodies of the HTTP API (the wire crate, `keyward-proto`).
pub use keyward_proto as wire;
pub use keyward_proto::{codes, signing};

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::CoreError;
pub use random::{OsRandom, Random};
