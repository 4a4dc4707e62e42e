//! An app's access tokens, kept fresh: [`TokenSource`] signs an assertion (RFC 7523) with the
//! app's APP private key — `EdDSA` for Ed25519, `ES256K` for secp256k1 (with the crate's
//! `secp256k1` feature) — buys an access token at the token endpoint, refreshes it before it
//! expires, and falls back to a new assertion when a refresh is refused.
//!
//! ```no_run
//! # async fn demo() -> Result<(), keyward_client::ClientError> {
//! use keyward_client::signer::{Algorithm, PrivateKey};
//! use keyward_client::token_source::TokenSource;
//! let key = PrivateKey::from_hex(Algorithm::Ed25519, "…app_secret hex…").expect("a key");
//! let tokens = TokenSource::new("https://keyward.example.com", "app_01J…", "inst_01J…", key)?;
//! let bearer = tokens.access_token().await?; // send as Authorization: Bearer …
//! # Ok(()) }
//! ```

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use keyward_proto::apps::{AssertionClaims, OAuthError, TokenResponse, JWT_BEARER, REFRESH_TOKEN, TOKEN_PATH};
use keyward_proto::jwt;
use keyward_proto::signing::SecretKey;

use crate::ClientError;

/// How long before its end an access token is replaced.
const REFRESH_AHEAD_SECONDS: i64 = 60;
/// How far ahead an assertion's `exp` is set (the server takes at most five minutes).
const ASSERTION_SECONDS: i64 = 120;

/// The time in Unix seconds (the system's unless a test sets its own).
pub type Now = Arc<dyn Fn() -> i64 + Send + Sync>;

struct Held {
    access: String,
    refresh: Option<String>,
    /// Unix seconds.
    expires_at: i64,
}

/// Keeps one installation's access token fresh; clone-free, share it behind an `Arc`.
pub struct TokenSource {
    http: reqwest::Client,
    endpoint: String,
    audience: String,
    app_id: String,
    installation_id: String,
    key: SecretKey,
    now: Now,
    held: tokio::sync::Mutex<Option<Held>>,
    sequence: AtomicU64,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("app_id", &self.app_id)
            .field("installation", &self.installation_id)
            .finish()
    }
}

fn system_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl TokenSource {
    /// A source for `installation_id` of `app_id`, buying tokens at `base_url`'s token
    /// endpoint, whose URL is also the assertions' audience (see [`TokenSource::audience`]
    /// when the server's public URL differs from the one used to reach it).
    pub fn new(
        base_url: &str,
        app_id: impl Into<String>,
        installation_id: impl Into<String>,
        key: SecretKey,
    ) -> Result<Self, ClientError> {
        let endpoint = format!("{}{TOKEN_PATH}", base_url.trim_end_matches('/'));
        let http = reqwest::Client::builder().build().map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(TokenSource {
            http,
            audience: endpoint.clone(),
            endpoint,
            app_id: app_id.into(),
            installation_id: installation_id.into(),
            key,
            now: Arc::new(system_now),
            held: tokio::sync::Mutex::new(None),
            sequence: AtomicU64::new(0),
        })
    }

    /// The assertions' `aud`: the token endpoint's URL under the server's `--public-url`.
    pub fn audience(mut self, token_url: impl Into<String>) -> Self {
        self.audience = token_url.into();
        self
    }

    /// Another clock (tests).
    pub fn clock(mut self, now: Now) -> Self {
        self.now = now;
        self
    }

    /// Another HTTP client (a custom CA, proxies).
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// A new signed assertion: `iss` the app, `sub` the installation, `aud` the token
    /// endpoint, two minutes to live, a `jti` never used before.
    pub fn assertion(&self) -> String {
        let now = (self.now)();
        let claims = AssertionClaims {
            iss: self.app_id.clone(),
            sub: self.installation_id.clone(),
            aud: self.audience.clone(),
            exp: now + ASSERTION_SECONDS,
            iat: Some(now),
            nbf: None,
            jti: self.jti(),
        };
        jwt::sign(&self.key, Some("JWT"), None, &claims)
    }

    /// 128 bits unique to this assertion: the process's random hasher keys over the time,
    /// a counter and the process id (uniqueness is what a `jti` needs, not secrecy).
    fn jti(&self) -> String {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let mut out = String::with_capacity(32);
        for salt in [0u8, 1] {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u8(salt);
            h.write_u128(nanos);
            h.write_u64(n);
            h.write_u32(std::process::id());
            out.push_str(&format!("{:016x}", h.finish()));
        }
        out
    }

    /// A fresh access token: the one held while it has more than a minute left, else a
    /// refreshed one, else one bought with a new assertion. Concurrent callers wait for one
    /// refresh (two would spend one refresh token twice, which revokes its family).
    pub async fn access_token(&self) -> Result<String, ClientError> {
        let mut held = self.held.lock().await;
        let now = (self.now)();
        if let Some(h) = held.as_ref() {
            if h.expires_at - REFRESH_AHEAD_SECONDS > now {
                return Ok(h.access.clone());
            }
        }
        let refreshed = match held.as_ref().and_then(|h| h.refresh.clone()) {
            Some(r) => self.grant(&[("grant_type", REFRESH_TOKEN), ("refresh_token", &r)]).await.ok(),
            None => None,
        };
        let t = match refreshed {
            Some(t) => t,
            None => {
                let assertion = self.assertion();
                self.grant(&[("grant_type", JWT_BEARER), ("assertion", &assertion)]).await?
            }
        };
        let access = t.access_token.clone();
        *held = Some(Held { access: t.access_token, refresh: Some(t.refresh_token), expires_at: now + t.expires_in });
        Ok(access)
    }

    /// `Authorization`'s value: `Bearer <access token>`.
    pub async fn authorization(&self) -> Result<String, ClientError> {
        Ok(format!("Bearer {}", self.access_token().await?))
    }

    /// Drops the held tokens: the next call buys new ones with an assertion.
    pub async fn forget(&self) {
        *self.held.lock().await = None;
    }

    async fn grant(&self, form: &[(&str, &str)]) -> Result<TokenResponse, ClientError> {
        let r = self
            .http
            .post(&self.endpoint)
            .form(form)
            .send()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let status = r.status();
        let bytes = r.bytes().await.map_err(|e| ClientError::Transport(e.to_string()))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()));
        }
        let e: OAuthError = serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))?;
        Err(ClientError::Api { status: status.as_u16(), code: e.error, message: e.error_description, field: None })
    }
}
