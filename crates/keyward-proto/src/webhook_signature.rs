//! Checking webhook signatures as the Standard Webhooks specification defines them (what a
//! receiver needs; signing stays with the server): the signed content is
//! `{id}.{timestamp}.{body}`; `v1,` and the base64 HMAC-SHA256 under the endpoint's `whsec_`
//! secret (several, space-separated, while a rotated secret overlaps), or `v1a,` and the
//! base64 Ed25519 signature for per-key callbacks signed with the workspace's key.
//! Verification checks the timestamp's freshness and compares in constant time.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::Verifier;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How far a delivery's timestamp may be from the receiver's clock.
pub const TOLERANCE_SECONDS: i64 = 5 * 60;

/// What is signed: `{id}.{timestamp}.{body}`.
pub fn signed_content(id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{id}.{timestamp}.").into_bytes();
    out.extend_from_slice(body);
    out
}

/// The raw key of a `whsec_<base64>` secret; `None` when it is not base64.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    B64.decode(b64).ok()
}

/// `v1,<base64 HMAC-SHA256>` of one delivery under one secret's key.
pub fn sign_v1(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else { return String::new() };
    mac.update(&signed_content(id, timestamp, body));
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// What a receiver trusts: an endpoint's secret, or a workspace's published public key.
pub enum Trust<'a> {
    Secret(&'a str),
    PublicKey(&'a str),
}

/// Checks a delivery's `webhook-signature` header (any one of its space-separated
/// signatures may match) and that `timestamp` is within [`TOLERANCE_SECONDS`] of `now`.
pub fn verify(trust: Trust<'_>, id: &str, timestamp: i64, body: &[u8], header: &str, now: i64) -> bool {
    if (now - timestamp).abs() > TOLERANCE_SECONDS {
        return false;
    }
    match trust {
        Trust::Secret(secret) => {
            let Some(key) = secret_key(secret) else { return false };
            let want = sign_v1(&key, id, timestamp, body);
            header.split(' ').any(|sig| bool::from(sig.as_bytes().ct_eq(want.as_bytes())))
        }
        Trust::PublicKey(pk) => {
            let raw = pk.strip_prefix("whpk_").unwrap_or(pk);
            let Some(key) = B64
                .decode(raw)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok())
            else {
                return false;
            };
            let content = signed_content(id, timestamp, body);
            header.split(' ').filter_map(|s| s.strip_prefix("v1a,")).any(|s| {
                B64.decode(s)
                    .ok()
                    .and_then(|b| ed25519_dalek::Signature::from_slice(&b).ok())
                    .is_some_and(|sig| key.verify_strict(&content, &sig).is_ok() && key.verify(&content, &sig).is_ok())
            })
        }
    }
}
