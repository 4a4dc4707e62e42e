//! Sealing of what must be stored but never in clear: idempotent answers (they may carry a
//! new key's secret; the sealing key derives from the pepper and the client's idempotency
//! key, neither of which is stored) and members' TOTP secrets (key from the pepper and the
//! member id), webhook endpoints' secrets (key from the pepper and the endpoint id) and each
//! workspace's callback signing key (key from the pepper and the workspace id), what a
//! browser carries through a single sign-on (key from the pepper and the stage), and access-token
//! signing keys (key from the pepper and the key's `kid`).

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use keyward_core::pepper::{hex_decode, hex_encode, Pepper};
use keyward_core::Random;

fn cipher(pepper: &Pepper, label: &str, context: &str) -> ChaCha20Poly1305 {
    let k = pepper.derive(label, context);
    ChaCha20Poly1305::new(Key::from_slice(&k))
}

fn seal_with(pepper: &Pepper, rng: &dyn Random, label: &str, context: &str, body: &[u8]) -> Option<String> {
    let mut nonce = [0u8; 12];
    rng.fill(&mut nonce);
    let ct = cipher(pepper, label, context).encrypt(Nonce::from_slice(&nonce), body).ok()?;
    Some(hex_encode(&nonce) + &hex_encode(&ct))
}

fn open_with(pepper: &Pepper, label: &str, context: &str, sealed: &str) -> Option<Vec<u8>> {
    let raw = hex_decode(sealed)?;
    if raw.len() < 12 {
        return None;
    }
    let (nonce, ct) = raw.split_at(12);
    cipher(pepper, label, context).decrypt(Nonce::from_slice(nonce), ct).ok()
}

pub fn seal(pepper: &Pepper, rng: &dyn Random, workspace_id: &str, idem_key: &str, body: &[u8]) -> Option<String> {
    seal_with(pepper, rng, "idempotency-seal", &format!("{workspace_id}\0{idem_key}"), body)
}

pub fn open(pepper: &Pepper, workspace_id: &str, idem_key: &str, sealed: &str) -> Option<Vec<u8>> {
    open_with(pepper, "idempotency-seal", &format!("{workspace_id}\0{idem_key}"), sealed)
}

pub fn seal_totp(pepper: &Pepper, rng: &dyn Random, member_id: &str, secret: &[u8]) -> Option<String> {
    seal_with(pepper, rng, "totp-seal", member_id, secret)
}

pub fn open_totp(pepper: &Pepper, member_id: &str, sealed: &str) -> Option<Vec<u8>> {
    open_with(pepper, "totp-seal", member_id, sealed)
}

pub fn seal_webhook_secret(pepper: &Pepper, rng: &dyn Random, endpoint_id: &str, secret: &str) -> Option<String> {
    seal_with(pepper, rng, "webhook-secret-seal", endpoint_id, secret.as_bytes())
}

pub fn open_webhook_secret(pepper: &Pepper, endpoint_id: &str, sealed: &str) -> Option<String> {
    String::from_utf8(open_with(pepper, "webhook-secret-seal", endpoint_id, sealed)?).ok()
}

pub fn seal_signing_key(pepper: &Pepper, rng: &dyn Random, workspace_id: &str, seed: &[u8; 32]) -> Option<String> {
    seal_with(pepper, rng, "webhook-signing-seal", workspace_id, seed)
}

pub fn open_signing_key(pepper: &Pepper, workspace_id: &str, sealed: &str) -> Option<[u8; 32]> {
    open_with(pepper, "webhook-signing-seal", workspace_id, sealed)?.try_into().ok()
}

/// A workspace's access-token signing key (Ed25519 seed), sealed under its `kid`.
pub fn seal_token_key(pepper: &Pepper, rng: &dyn Random, kid: &str, seed: &[u8; 32]) -> Option<String> {
    seal_with(pepper, rng, "app-token-signing-seal", kid, seed)
}

pub fn open_token_key(pepper: &Pepper, kid: &str, sealed: &str) -> Option<[u8; 32]> {
    open_with(pepper, "app-token-signing-seal", kid, sealed)?.try_into().ok()
}

/// The console's one-time reveals, readable only with the session they were made for.
pub fn seal_console(pepper: &Pepper, rng: &dyn Random, session: &str, body: &[u8]) -> Option<String> {
    seal_with(pepper, rng, "console-seal", session, body)
}

pub fn open_console(pepper: &Pepper, session: &str, sealed: &str) -> Option<Vec<u8>> {
    open_with(pepper, "console-seal", session, sealed)
}

/// What a browser carries through a single sign-on (`oidc/flow.rs`), under a key of its
/// own for each `stage` (the flow to the provider and back, the proof of a verified email).
pub fn seal_oidc(pepper: &Pepper, rng: &dyn Random, stage: &str, body: &[u8]) -> Option<String> {
    seal_with(pepper, rng, "oidc-seal", stage, body)
}

pub fn open_oidc(pepper: &Pepper, stage: &str, sealed: &str) -> Option<Vec<u8>> {
    open_with(pepper, "oidc-seal", stage, sealed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::OsRandom;

    #[test]
    fn round_trip_and_wrong_key() {
        let p = Pepper::generate(&OsRandom);
        let s = seal(&p, &OsRandom, "ws", "idem-1", b"{\"secret\":\"x\"}").unwrap();
        assert!(!s.contains("secret"));
        assert_eq!(open(&p, "ws", "idem-1", &s).unwrap(), b"{\"secret\":\"x\"}");
        assert!(open(&p, "ws", "idem-2", &s).is_none());
        assert!(open(&Pepper::generate(&OsRandom), "ws", "idem-1", &s).is_none());
    }
}
