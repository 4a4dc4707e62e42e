use keyward_core::clock;
use keyward_core::model::KeyRecord;
use keyward_core::pepper::Pepper;
use keyward_core::wire::keys::KeyView;
use keyward_core::{Clock, Random};
use keyward_store::Store;
use std::sync::Arc;

use crate::cache::KeyCache;
use crate::config::ServerConfig;
use crate::usage::UsageBuffer;

/// Everything a handler needs; cloned per request as one `Arc`.
pub struct AppState {
    pub store: Store,
    pub pepper: Pepper,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
    pub cache: KeyCache,
    /// Apps' access tokens verified on this node, and the keys that sign them.
    pub app_tokens: crate::apps::cache::TokenCache,
    pub usage: UsageBuffer,
    /// Signatures seen within the freshness window (this node only).
    pub replays: crate::verify::replay::ReplayGuard,
    /// Rate limits and credits counted on this node.
    pub limits: crate::limits::local::LocalLimits,
    /// Leases of `fast` limits' tokens taken from Redis (with `shared` only).
    pub leases: crate::limits::lease::Leases,
    /// Rate limiting as a service (`POST /v1/ratelimit`): counts on this node and the
    /// overrides held.
    pub service_limits: crate::limits::service::ServiceLimits,
    /// The same, and the replay memory and login throttles, shared through Redis.
    pub shared: Option<crate::limits::redis::Shared>,
    /// Failed logins per client IP (this node only).
    pub logins: crate::manage::limiter::LoginLimiter,
    /// Leak reports per client IP (this node only; through Redis when it is configured).
    pub leak_reports: crate::manage::limiter::LoginLimiter,
    /// Tokens issued per installation (`--oauth-token-limit`), on this node without Redis.
    pub token_issues: crate::manage::limiter::WindowCounter<Box<str>>,
    /// The public keys that sign GitHub's secret-scanning calls, fetched and cached.
    pub scanning_keys: crate::leaks::signing_keys::SigningKeys,
    /// The console's single sign-on provider, when configured.
    pub oidc: Option<crate::oidc::provider::Provider>,
    pub config: ServerConfig,
    /// The OpenAPI document, rendered once at startup.
    pub openapi: Arc<str>,
    pub connections: Arc<crate::metrics::ConnectionStats>,
    /// Bounds the argon2id computations running at once.
    pub argon: tokio::sync::Semaphore,
    /// Role changes are applied to the cache one at a time.
    pub role_changes: tokio::sync::Mutex<()>,
    /// Which workspaces are suspended or deleted, as their cached keys carry it.
    pub standings: crate::cache::standings::Standings,
    /// Workspace standing changes are applied to the cache one at a time.
    pub standing_changes: tokio::sync::Mutex<()>,
    /// Deleted workspaces are erased one at a time on a node.
    pub erasures: tokio::sync::Mutex<()>,
    pub metrics: crate::metrics::Metrics,
    /// This process among the nodes (holder of background leases).
    pub node_id: String,
}

pub type SharedState = Arc<AppState>;

impl AppState {
    /// A key's view with this node's not-yet-written last-used mark applied.
    pub(crate) fn view(&self, rec: &KeyRecord) -> KeyView {
        let mut v = rec.view(self.clock.now());
        if let Some((ms, ip)) = self.usage.pending_for(&rec.id) {
            let at = clock::from_ms(ms);
            if v.last_used_at.is_none_or(|t| t < at) {
                v.last_used_at = Some(at);
                v.last_used_ip = ip;
            }
        }
        v
    }

    /// Drops this node's cached copy at once; other nodes hear of it through change events.
    pub(crate) fn forget(&self, rec: &KeyRecord) {
        if let Some(k) = keyward_store::cache_key(rec) {
            self.cache.invalidate(&k);
        }
    }
}
