//! The integration suite, one test binary (one link of the whole server, not one per file).
//! Each module starts real servers through `keyward-testkit` and talks HTTP to them; most run
//! on SQLite and PostgreSQL through `on_both_backends!`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Tests talk to real servers from outside and may read the system's time (the `Clock` rule in
// clippy.toml is for server-side crates).
#![allow(clippy::disallowed_methods)]

#[macro_use]
extern crate keyward_testkit;

mod approvals;
mod apps;
mod audit;
mod backstop;
mod cli;
mod cold_start;
mod config;
mod console;
mod environments;
mod ext_authz;
mod fast_lane;
mod fast_limits;
mod faults;
mod forward_auth;
mod gateway;
mod governance_cli;
mod grants;
mod hardening;
mod identities;
mod imports;
mod key_disable;
mod keypairs_cli;
mod keys_api;
mod leaks;
mod lockouts;
mod management_key_cap;
mod members;
mod operators;
mod policy_changes;
mod ratelimit_service;
mod ratelimits;
mod redis_cluster;
mod resilience;
mod role_names;
mod roles;
mod scope;
mod shared_limits;
mod signed_requests;
mod sso;
mod storage;
mod tls;
mod tower_layer;
mod unkey_v2;
mod unkey_v2_identities;
mod usage;
mod verify_floods;
mod webhooks;
mod workspaces;
