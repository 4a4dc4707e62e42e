//! Keyward's HTTP server: management API, verification, forward-auth and OpenAPI, over the
//! storage layer. `app` assembles it; `routes` holds the handlers; `error` is the one place
//! errors become HTTP answers.

pub mod app;
mod audit;
mod backstop;
pub mod bootstrap;
pub mod cache;
mod changes;
mod clock_cache;
pub mod config;
pub mod connections;
mod console;
pub mod error;
mod escalation;
pub mod extract;
mod fast_lane;
pub mod gateway;
mod idempotency;
mod invalidation;
mod key_records;
mod keyhash;
mod known;
mod limiter;
pub mod limits;
mod lockout;
pub mod metrics;
mod mfa;
mod quorum;
pub mod redis;
mod redis_clock;
pub mod replay;
mod request_id;
mod rollup;
pub mod routes;
mod seal;
pub mod state;
pub mod tls;
mod upstream;
pub mod usage;
mod verifier;
pub mod webhooks;
pub mod workers;

pub use app::{router, run, serve_until, start, start_gateway, RunningServer, Services};
pub use config::ServerConfig;
pub use known::LOOKUPS_PER_SECOND;
