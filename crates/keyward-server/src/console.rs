//! Mounting the web console: it calls the API router in-process, and seals its one-time
//! reveals with a key derived from the pepper (so any node sharing the pepper opens them).

use std::sync::Arc;

use axum::Router;
use keyward_core::pepper::{hex_encode, Pepper};
use keyward_core::Random;

use crate::seal;
use crate::state::SharedState;

struct Secrets {
    pepper: Pepper,
    random: Arc<dyn Random>,
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
}

/// The console's routes (to nest at `/console`) over `api`, the API router without them.
pub fn router(state: &SharedState, api: Router) -> Router {
    let secrets = Secrets { pepper: state.pepper.clone(), random: state.random.clone() };
    keyward_console::router(api, Arc::new(secrets), state.config.tls.is_some())
}
