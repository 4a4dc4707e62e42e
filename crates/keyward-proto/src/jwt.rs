//! JSON Web Signatures in compact form (RFC 7515), as thin glue over the signature crates
//! Keyward already uses: EdDSA with Ed25519 (RFC 8037) always, ES256K with secp256k1
//! (RFC 8812) with the `secp256k1` feature. Enough for an app's assertion (RFC 7523) and a
//! workspace's access tokens (RFC 9068): sign, split, check a signature, publish a key as a
//! JWK. The rules about claims (who, for whom, until when) are `keyward_core::oauth`'s.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::signing::{Algorithm, PublicKey, SecretKey};

/// Longest token read at all: an access token is under 1 KiB, an assertion less.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The `alg` of a key's signatures.
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::Ed25519 => "EdDSA",
        #[cfg(feature = "secp256k1")]
        Algorithm::Secp256k1 => "ES256K",
    }
}

/// A JOSE header: what signed it and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

/// Does `token` have a JWS's shape (`eyJ…` and three dot-separated parts)? Cheap: it decides
/// only which verifier a credential goes to.
pub fn looks_like(token: &str) -> bool {
    token.len() <= MAX_TOKEN_LEN && token.starts_with("eyJ") && token.bytes().filter(|b| *b == b'.').count() == 2
}

/// Signs `claims` with `key`: `header.payload.signature`, each base64url without padding.
pub fn sign<T: Serialize>(key: &SecretKey, typ: Option<&str>, kid: Option<&str>, claims: &T) -> String {
    let header = Header { alg: alg_name(key.algorithm()).into(), typ: typ.map(Into::into), kid: kid.map(Into::into) };
    // Both are plain structs of strings and numbers: they always serialize.
    let head = serde_json::to_vec(&header).unwrap_or_default();
    let body = serde_json::to_vec(claims).unwrap_or_default();
    let mut out = B64.encode(head);
    out.push('.');
    out.push_str(&B64.encode(body));
    let sig = sign_bytes(key, out.as_bytes());
    out.push('.');
    out.push_str(&B64.encode(sig));
    out
}

fn sign_bytes(key: &SecretKey, input: &[u8]) -> Vec<u8> {
    match key {
        SecretKey::Ed25519(k) => {
            use ed25519_dalek::Signer as _;
            k.sign(input).to_bytes().to_vec()
        }
        #[cfg(feature = "secp256k1")]
        SecretKey::Secp256k1(k) => {
            use k256::ecdsa::signature::Signer as _;
            // SHA-256 of the input, deterministic (RFC 6979), low-S; r ‖ s as RFC 8812 wants.
            let sig: k256::ecdsa::Signature = k.sign(input);
            sig.normalize_s().unwrap_or(sig).to_bytes().to_vec()
        }
    }
}

/// A token split and decoded, its signature not yet checked.
#[derive(Debug, Clone)]
pub struct Jws<'a> {
    pub header: Header,
    payload: Vec<u8>,
    signing_input: &'a str,
    signature: Vec<u8>,
}

/// Splits and decodes a compact JWS; `None` when it is not one.
pub fn decode(token: &str) -> Option<Jws<'_>> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let (signing_input, sig) = token.rsplit_once('.')?;
    let (head, body) = signing_input.split_once('.')?;
    let header: Header = serde_json::from_slice(&B64.decode(head).ok()?).ok()?;
    Some(Jws { header, payload: B64.decode(body).ok()?, signing_input, signature: B64.decode(sig).ok()? })
}

impl Jws<'_> {
    /// The claims, read as `T`; `None` when they do not fit.
    pub fn claims<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_slice(&self.payload).ok()
    }

    /// Is the signature `key`'s, made with the algorithm the header names? (A header naming
    /// another algorithm than the key's is refused: no `alg` confusion.)
    pub fn verify(&self, key: &PublicKey) -> bool {
        if self.header.alg != alg_name(key.algorithm()) {
            return false;
        }
        let input = self.signing_input.as_bytes();
        match key {
            PublicKey::Ed25519(k) => {
                ed25519_dalek::Signature::from_slice(&self.signature).is_ok_and(|s| k.verify_strict(input, &s).is_ok())
            }
            #[cfg(feature = "secp256k1")]
            PublicKey::Secp256k1(k) => {
                use k256::ecdsa::signature::Verifier as _;
                // JOSE libraries do not all make low-S signatures (RFC 8812 does not ask for
                // them) and k256 refuses high-S ones: checked as their low-S twin, which is
                // valid exactly when the original is. A twin cannot be replayed: the `jti`
                // inside is what is remembered.
                match k256::ecdsa::Signature::from_slice(&self.signature) {
                    Ok(s) => k.verify(input, &s.normalize_s().unwrap_or(s)).is_ok(),
                    Err(_) => false,
                }
            }
        }
    }
}

/// A public key as a JSON Web Key (RFC 7517): `OKP`/`Ed25519` (RFC 8037) or `EC`/`secp256k1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
}

impl Jwk {
    /// `key` published for checking signatures (`use: sig`) under `kid`.
    pub fn of(key: &PublicKey, kid: &str) -> Jwk {
        let alg = alg_name(key.algorithm()).to_string();
        match key {
            PublicKey::Ed25519(k) => Jwk {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                x: B64.encode(k.as_bytes()),
                y: None,
                kid: kid.into(),
                alg,
                use_: "sig".into(),
            },
            #[cfg(feature = "secp256k1")]
            PublicKey::Secp256k1(k) => {
                let p = k.to_encoded_point(false);
                Jwk {
                    kty: "EC".into(),
                    crv: "secp256k1".into(),
                    x: p.x().map(|x| B64.encode(x)).unwrap_or_default(),
                    y: p.y().map(|y| B64.encode(y)),
                    kid: kid.into(),
                    alg,
                    use_: "sig".into(),
                }
            }
        }
    }

    /// The Ed25519 key this JWK holds, if it is one.
    pub fn ed25519(&self) -> Option<PublicKey> {
        if self.kty != "OKP" || self.crv != "Ed25519" {
            return None;
        }
        let raw: [u8; 32] = B64.decode(&self.x).ok()?.try_into().ok()?;
        ed25519_dalek::VerifyingKey::from_bytes(&raw).ok().map(PublicKey::Ed25519)
    }
}

/// A JWK Set (`/.well-known/jwks.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::{json, Value};

    fn keys() -> Vec<SecretKey> {
        vec![
            SecretKey::from_hex(Algorithm::Ed25519, &"07".repeat(32)).unwrap(),
            #[cfg(feature = "secp256k1")]
            SecretKey::from_hex(Algorithm::Secp256k1, &"07".repeat(32)).unwrap(),
        ]
    }

    #[test]
    fn signed_tokens_verify_and_tampering_is_found() {
        for k in keys() {
            let t = sign(&k, Some("at+jwt"), Some("k1"), &json!({"sub": "x", "n": 1}));
            assert!(looks_like(&t), "{t}");
            let j = decode(&t).unwrap();
            assert_eq!(j.header.alg, alg_name(k.algorithm()));
            assert_eq!(j.header.kid.as_deref(), Some("k1"));
            assert!(j.verify(&k.public_key()));
            assert_eq!(j.claims::<Value>().unwrap()["sub"], "x");
            // Another payload under the same signature.
            let (_, rest) = t.split_once('.').unwrap();
            let (_, sig) = rest.split_once('.').unwrap();
            let forged = format!("{}.{}.{sig}", t.split('.').next().unwrap(), B64.encode(br#"{"sub":"y","n":1}"#));
            assert!(!decode(&forged).unwrap().verify(&k.public_key()));
            // Another key.
            let other = SecretKey::from_hex(k.algorithm(), &"08".repeat(32)).unwrap();
            assert!(!j.verify(&other.public_key()));
        }
    }

    #[test]
    fn a_header_naming_another_algorithm_is_refused() {
        let k = SecretKey::from_hex(Algorithm::Ed25519, &"07".repeat(32)).unwrap();
        let t = sign(&k, None, None, &json!({}));
        let (_, rest) = t.split_once('.').unwrap();
        let swapped = format!("{}.{rest}", B64.encode(br#"{"alg":"none"}"#));
        assert!(!decode(&swapped).unwrap().verify(&k.public_key()));
    }

    #[test]
    fn junk_is_not_a_token() {
        for t in ["", "eyJ", "eyJhbGciOiJub25lIn0", "a.b.c", "eyJ.e30.", &"eyJ.".repeat(3000)] {
            assert!(decode(t).is_none_or(|j| j.claims::<Value>().is_none()), "{t:.40}");
        }
        assert!(!looks_like("kw_live_sk_abc"));
    }

    #[cfg(feature = "secp256k1")]
    #[test]
    fn a_high_s_es256k_signature_is_accepted_as_its_low_s_twin() {
        let k = SecretKey::from_hex(Algorithm::Secp256k1, &"07".repeat(32)).unwrap();
        let t = sign(&k, None, None, &json!({"a": 1}));
        let (input, sig) = t.rsplit_once('.').unwrap();
        let s = k256::ecdsa::Signature::from_slice(&B64.decode(sig).unwrap()).unwrap();
        // -s mod n: the same signature's other form.
        let high = k256::ecdsa::Signature::from_scalars(s.r().to_bytes(), (-*s.s()).to_bytes()).unwrap();
        assert!(high.normalize_s().is_some(), "the twin is high-S");
        let t2 = format!("{input}.{}", B64.encode(high.to_bytes()));
        assert!(decode(&t2).unwrap().verify(&k.public_key()));
    }

    #[test]
    fn an_ed25519_jwk_round_trips() {
        let k = SecretKey::from_hex(Algorithm::Ed25519, &"07".repeat(32)).unwrap();
        let jwk = Jwk::of(&k.public_key(), "kid1");
        let v = serde_json::to_value(&jwk).unwrap();
        assert_eq!(v["kty"], "OKP");
        assert_eq!(v["use"], "sig");
        assert_eq!(jwk.ed25519().unwrap().to_hex(), k.public_key().to_hex());
    }
}
