//! Mounting the web console: it calls the API router in-process, and seals its one-time
//! reveals with a key derived from the pepper (so any node sharing the pepper opens them).
//! A reveal's one-time id is remembered here once used, until it would have ended anyway.
//! With single sign-on configured, the console's `Sso` steps are answered here from
//! `oidc/`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use axum::response::IntoResponse;
use axum::Router;
use keyward_console::{Browser, SsoFuture, SsoProof, SsoStart};
use keyward_core::pepper::{hashes_equal, hex_encode, Pepper};
use keyward_core::{Clock, Random};

use crate::error::{ApiError, ApiResult};
use crate::manage::seal;
use crate::oidc::flow::{self, Flow, Proof};
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
    let sso: Option<Arc<dyn keyward_console::Sso>> =
        state.oidc.is_some().then(|| Arc::new(Sso { state: state.clone() }) as Arc<dyn keyward_console::Sso>);
    keyward_console::router(api, Arc::new(secrets), sso, state.config.tls.is_some())
}

/// The console's single sign-on steps (only made when a provider is configured).
struct Sso {
    state: SharedState,
}

fn ended() -> ApiError {
    ApiError::invalid("state", "this sign-in has ended or was started in another browser; start again")
}

impl Sso {
    fn provider(&self) -> ApiResult<&crate::oidc::provider::Provider> {
        self.state.oidc.as_ref().ok_or_else(|| ApiError::NotFound("single sign-on is not configured".into()))
    }

    fn sealed<T: flow::Stage>(&self, what: &T) -> ApiResult<String> {
        flow::seal(&self.state.pepper, self.state.random.as_ref(), what)
            .ok_or_else(|| ApiError::Internal("cannot seal a sign-in step".into()))
    }

    async fn start(&self) -> ApiResult<SsoStart> {
        let (url, f) = self.provider()?.start(self.state.random.as_ref(), self.state.clock.as_ref()).await?;
        Ok(SsoStart { url, flow: self.sealed(&f)? })
    }

    async fn finish(&self, sealed: &str, state: &str, code: &str) -> ApiResult<SsoProof> {
        let now = self.state.clock.now();
        let f: Flow = flow::open(&self.state.pepper, sealed, now).ok_or_else(ended)?;
        // The answer must be to this browser's own request (no one else's code signs it in).
        if state.is_empty() || !hashes_equal(&f.state, state) {
            return Err(ApiError::invalid(
                "state",
                "the provider's answer does not belong to this sign-in; start again",
            ));
        }
        if code.is_empty() {
            return Err(ApiError::invalid("code", "the provider sent no authorization code; start again"));
        }
        let email = self.provider()?.finish(&f, code, self.state.clock.clone()).await?;
        let proof = self.sealed(&Proof::new(email.clone(), now))?;
        Ok(SsoProof { proof, email })
    }

    async fn sign_in(
        &self,
        proof: &str,
        workspace_id: Option<&str>,
        otp: Option<&str>,
        browser: Browser<'_>,
    ) -> ApiResult<String> {
        let p: Proof = flow::open(&self.state.pepper, proof, self.state.clock.now()).ok_or_else(ended)?;
        let ip = browser
            .peer
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |peer| self.state.client_ip(peer.ip(), browser.headers));
        let origin = crate::audit::origin_of(&self.state, browser.headers, browser.peer);
        let session = crate::oidc::sign_in::sign_in(&self.state, &p.email, workspace_id, otp, ip, origin).await?;
        Ok(session.token)
    }
}

/// Each step's refusal is the API's answer for it, as the console reads every refusal.
impl keyward_console::Sso for Sso {
    fn start(&self) -> SsoFuture<'_, SsoStart> {
        Box::pin(async move { Sso::start(self).await.map_err(IntoResponse::into_response) })
    }

    fn finish<'a>(&'a self, flow: &'a str, state: &'a str, code: &'a str) -> SsoFuture<'a, SsoProof> {
        Box::pin(async move { Sso::finish(self, flow, state, code).await.map_err(IntoResponse::into_response) })
    }

    fn proven(&self, proof: &str) -> Option<String> {
        flow::open::<Proof>(&self.state.pepper, proof, self.state.clock.now()).map(|p| p.email)
    }

    fn sign_in<'a>(
        &'a self,
        proof: &'a str,
        workspace_id: Option<&'a str>,
        otp: Option<&'a str>,
        browser: Browser<'a>,
    ) -> SsoFuture<'a, String> {
        Box::pin(async move {
            Sso::sign_in(self, proof, workspace_id, otp, browser).await.map_err(IntoResponse::into_response)
        })
    }
}
