//! Keyward's HTTP server: management API, verification, forward-auth and OpenAPI, over the
//! storage layer. `app` assembles it; `routes` holds the handlers; `error` is the one place
//! errors become HTTP answers. The subsystems each have a folder: `http` (connections,
//! serving threads, the fast lane), `verify`, `gateway`, `limits`, `usage`, `cache`,
//! `webhooks`, `ext_authz` (Envoy's gRPC external authorization), `leaks` (leaked keys: GitHub's
//! signing keys, what a leak does), `oidc` (the console's single sign-on), `apps` (apps' OAuth
//! tokens), and `manage` (the management routes' helpers).

pub mod app;
mod apps;
pub mod bootstrap;
pub mod cache;
pub mod config;
mod console;
pub mod error;
mod ext_authz;
pub mod extract;
pub mod gateway;
pub mod http;
pub mod leaks;
pub mod limits;
mod manage;
pub mod metrics;
mod oidc;
pub mod routes;
pub mod state;
#[cfg(test)]
mod test_alloc;
mod unkey;
pub mod usage;
mod verify;
pub mod webhooks;

// The management routes name their helpers by these short paths.
use manage::{audit, escalation, idempotency, lockout, mfa, quorum, seal};

pub use app::{router, run, serve_until, start, start_gateway, RunningServer, Services};
pub use config::ServerConfig;
pub use verify::known::LOOKUPS_PER_SECOND;
