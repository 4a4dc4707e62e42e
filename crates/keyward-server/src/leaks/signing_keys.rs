//! The signer's public keys for GitHub's secret-scanning partner calls: fetched from the
//! configured URL (`{"public_keys": [{"key_identifier", "key" (PEM), "is_current"}]}`),
//! kept for a day, fetched again for an identifier not held (at most once a minute, so a
//! flood of made-up identifiers makes at most one fetch a minute), and used stale when a
//! fetch fails. A call's signature is ECDSA P-256 over SHA-256 of the raw body, base64 DER.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::Deserialize;

/// How long fetched keys are used before they are fetched again.
const FRESH_FOR: chrono::Duration = chrono::Duration::days(1);
/// The least time between two fetches.
const FETCH_EVERY: chrono::Duration = chrono::Duration::minutes(1);
/// The largest key document read.
const MAX_DOCUMENT: usize = 256 * 1024;
/// The longest identifier or signature header looked at.
const MAX_HEADER: usize = 512;

#[derive(Deserialize)]
struct Document {
    public_keys: Vec<PublicKeyEntry>,
}

#[derive(Deserialize)]
struct PublicKeyEntry {
    key_identifier: String,
    key: String,
}

#[derive(Default)]
struct Held {
    keys: HashMap<String, VerifyingKey>,
    fetched_at: Option<DateTime<Utc>>,
    tried_at: Option<DateTime<Utc>>,
}

/// Why a call's signature was not accepted (every one answers 401).
#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    MissingHeaders,
    UnknownKey,
    BadSignature,
}

pub struct SigningKeys {
    url: String,
    client: reqwest::Client,
    // A tokio mutex: the one fetch in progress is awaited by the calls that need it, so
    // a burst of calls makes one fetch (never held on the verify path).
    held: tokio::sync::Mutex<Held>,
}

impl SigningKeys {
    /// The keys of `url`, fetched on first use through the webhook client (no redirects,
    /// no proxy, `timeout`). The URL is the operator's, so private addresses are allowed.
    pub fn new(url: &str, timeout: Duration) -> std::io::Result<Self> {
        Ok(SigningKeys {
            url: url.to_string(),
            client: crate::webhooks::destination::client(true, timeout)?,
            held: tokio::sync::Mutex::new(Held::default()),
        })
    }

    /// Checks `signature` (base64 DER) over `body` with the key `key_id` names.
    pub async fn check(
        &self,
        key_id: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), Rejected> {
        let (Some(key_id), Some(signature)) = (key_id, signature) else { return Err(Rejected::MissingHeaders) };
        if key_id.is_empty() || key_id.len() > MAX_HEADER || signature.len() > MAX_HEADER {
            return Err(Rejected::MissingHeaders);
        }
        let key = self.key(key_id, now).await.ok_or(Rejected::UnknownKey)?;
        let der =
            base64::engine::general_purpose::STANDARD.decode(signature.trim()).map_err(|_| Rejected::BadSignature)?;
        let sig = Signature::from_der(&der).map_err(|_| Rejected::BadSignature)?;
        key.verify(body, &sig).map_err(|_| Rejected::BadSignature)
    }

    async fn key(&self, key_id: &str, now: DateTime<Utc>) -> Option<VerifyingKey> {
        let mut held = self.held.lock().await;
        let stale = held.fetched_at.is_none_or(|t| now - t >= FRESH_FOR);
        let may_fetch = held.tried_at.is_none_or(|t| now - t >= FETCH_EVERY);
        if may_fetch && (stale || !held.keys.contains_key(key_id)) {
            held.tried_at = Some(now);
            match self.fetch().await {
                Ok(keys) => {
                    held.keys = keys;
                    held.fetched_at = Some(now);
                }
                // The keys held go on being used: GitHub's calls keep working through an
                // outage of the key URL.
                Err(e) => tracing::warn!(url = %self.url, error = %e, "secret-scanning keys could not be fetched"),
            }
        }
        held.keys.get(key_id).copied()
    }

    async fn fetch(&self) -> Result<HashMap<String, VerifyingKey>, String> {
        let mut resp = self
            .client
            .get(&self.url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("answered {}", resp.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return Err("the key document is too large".into());
            }
            body.extend_from_slice(&chunk);
        }
        let doc: Document = serde_json::from_slice(&body).map_err(|e| format!("unreadable key document: {e}"))?;
        let mut keys = HashMap::new();
        for k in doc.public_keys {
            match VerifyingKey::from_public_key_pem(&k.key) {
                Ok(v) => {
                    keys.insert(k.key_identifier, v);
                }
                Err(e) => {
                    tracing::warn!(key_identifier = %k.key_identifier, error = %e, "a secret-scanning key was skipped")
                }
            }
        }
        if keys.is_empty() {
            return Err("the key document holds no P-256 key".into());
        }
        Ok(keys)
    }
}
