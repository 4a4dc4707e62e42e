use keyward_core::pepper::Pepper;
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
    pub usage: UsageBuffer,
    /// Signatures seen within the freshness window (this node only).
    pub replays: crate::replay::ReplayGuard,
    /// Failed logins per client IP (this node only).
    pub logins: crate::limiter::LoginLimiter,
    pub config: ServerConfig,
}

pub type SharedState = Arc<AppState>;
