//! Mounting the web console: it calls the API router in-process, and seals its one-time
//! reveals with a key derived from the pepper (so any node sharing the pepper opens them).
//! A reveal's one-time id is remembered here once used, until it would have ended anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use keyward_core::pepper::{hex_encode, Pepper};
use keyward_core::{Clock, Random};

use crate::manage::seal;
use crate::state::SharedState;

/// Used one-time ids kept at most; past it (after dropping ended ones) ids are refused, so
/// a flood of reveals cannot grow memory or let a used id be forgotten early.
const MAX_USED: usize = 100_000;

struct Secrets {
    pepper: Pepper,
    random: Arc<dyn Random>,
    clock: Arc<dyn Clock>,
    /// One-time ids already used, with when each would have ended (ms).
    used: Mutex<HashMap<String, i64>>,
}

impl keyward_console::Secrets for Secrets {
    fn seal(&self, context: &str, body: &[u8]) -> Option<String> {
        seal::seal_console(&self.pepper, self.random.as_ref(), context, body)
    }

    fn open(&self, context: &str, sealed: &str) -> Option<Vec<u8>> {
        seal::open_console(&self.pepper, context, sealed)
    }

    fn token(&self) -> String {
        let mut raw = [0u8; 24];
        self.random.fill(&mut raw);
        hex_encode(&raw)
    }

    fn one_time(&self, ttl: std::time::Duration) -> String {
        let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(5));
        let ends = (self.clock.now() + ttl).timestamp_millis();
        format!("{ends}.{}", self.token())
    }

    fn consume(&self, id: &str) -> bool {
        let now = self.clock.now().timestamp_millis();
        let Some(ends) = id.split_once('.').and_then(|(ms, _)| ms.parse::<i64>().ok()) else {
            return false;
        };
        if ends <= now {
            return false;
        }
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if used.len() >= MAX_USED {
            used.retain(|_, ends| *ends > now);
            if used.len() >= MAX_USED {
                return false;
            }
        }
        used.insert(id.to_string(), ends).is_none()
    }
}

/// The console's routes (to nest at `/console`) over `api`, the API router without them.
pub fn router(state: &SharedState, api: Router) -> Router {
    let secrets = Secrets {
        pepper: state.pepper.clone(),
        random: state.random.clone(),
        clock: state.clock.clone(),
        used: Mutex::new(HashMap::new()),
    };
    keyward_console::router(api, Arc::new(secrets), state.config.tls.is_some())
}
