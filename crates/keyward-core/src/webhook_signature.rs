//! Webhook signatures as the Standard Webhooks specification defines them: the signed content
//! is `{id}.{timestamp}.{body}`; `v1,` and the base64 HMAC-SHA256 under the endpoint's
//! `whsec_` secret (several, space-separated, while a rotated secret overlaps), or `v1a,` and
//! the base64 Ed25519 signature for per-key callbacks signed with the workspace's key.
//! Verification checks the timestamp's freshness and compares in constant time; it lives in
//! the wire crate (the SDK checks deliveries too) and is re-exported here.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::Signer;

pub use keyward_proto::webhook_signature::{sign_v1, signed_content, verify, Trust, TOLERANCE_SECONDS};

use crate::error::CoreError;

/// The raw key of a `whsec_<base64>` secret.
pub fn secret_bytes(secret: &str) -> Result<Vec<u8>, CoreError> {
    keyward_proto::webhook_signature::secret_key(secret)
        .ok_or_else(|| CoreError::invalid("secret", "a webhook secret is whsec_ and base64"))
}

/// A new `whsec_` secret from 24 random bytes.
pub fn new_secret(random: &dyn crate::Random) -> String {
    let mut b = [0u8; 24];
    random.fill(&mut b);
    format!("whsec_{}", B64.encode(b))
}

/// `v1a,<base64 Ed25519 signature>` of one delivery.
pub fn sign_v1a(key: &ed25519_dalek::SigningKey, id: &str, timestamp: i64, body: &[u8]) -> String {
    format!("v1a,{}", B64.encode(key.sign(&signed_content(id, timestamp, body)).to_bytes()))
}

/// `whpk_<base64>`: how a workspace publishes the key its callbacks are signed with.
pub fn public_key_text(key: &ed25519_dalek::VerifyingKey) -> String {
    format!("whpk_{}", B64.encode(key.to_bytes()))
}

/// A workspace's callback key, kept as its 32-byte Ed25519 seed.
pub struct CallbackKey(ed25519_dalek::SigningKey);

impl CallbackKey {
    pub fn from_seed(seed: &[u8; 32]) -> CallbackKey {
        CallbackKey(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// A new key's seed, from `random`.
    pub fn new_seed(random: &dyn crate::Random) -> [u8; 32] {
        let mut seed = [0u8; 32];
        random.fill(&mut seed);
        seed
    }

    /// `whpk_<base64>`, as `GET /v1/webhooks/signing-key` publishes it.
    pub fn public_key(&self) -> String {
        public_key_text(&self.0.verifying_key())
    }

    /// `v1a,<base64 signature>` of one delivery.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        sign_v1a(&self.0, id, timestamp, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's published test vector (also reproduced by its Python library).
    #[test]
    fn standard_webhooks_vector() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let (id, ts, body) = ("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, br#"{"test": 2432232314}"#);
        let sig = sign_v1(&secret_bytes(secret).unwrap(), id, ts, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(Trust::Secret(secret), id, ts, body, &sig, ts + 10));
        // During a rotation two signatures are sent; either verifies.
        let both = format!("v1,bm90IHRoaXMgb25l {sig}");
        assert!(verify(Trust::Secret(secret), id, ts, body, &both, ts));
        assert!(!verify(Trust::Secret(secret), id, ts, br#"{"test": 1}"#, &sig, ts), "another body");
        assert!(!verify(Trust::Secret(secret), id, ts, body, &sig, ts + TOLERANCE_SECONDS + 1), "stale");
    }

    #[test]
    fn asymmetric_callbacks() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let pk = public_key_text(&key.verifying_key());
        let sig = sign_v1a(&key, "msg_1", 1_800_000_000, b"{}");
        assert!(sig.starts_with("v1a,"));
        assert!(verify(Trust::PublicKey(&pk), "msg_1", 1_800_000_000, b"{}", &sig, 1_800_000_001));
        assert!(!verify(Trust::PublicKey(&pk), "msg_2", 1_800_000_000, b"{}", &sig, 1_800_000_001));
        let other = public_key_text(&ed25519_dalek::SigningKey::from_bytes(&[8u8; 32]).verifying_key());
        assert!(!verify(Trust::PublicKey(&other), "msg_1", 1_800_000_000, b"{}", &sig, 1_800_000_001));
    }
}
