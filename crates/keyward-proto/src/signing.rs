//! Signed requests for public-key API keys, byte-compatible with the scheme the seed's CLI and
//! SDKs use: the string `METHOD|PATH|NONCE|PARAMS|BODY`, its digest SHA256(SHA256(string)),
//! and an Ed25519 signature of the digest (hex) or a secp256k1 ECDSA one (DER, low-S, hex).
//! secp256k1 keys need the `secp256k1` feature (it brings in `k256`).

use ed25519_dalek::Signer as _;
#[cfg(feature = "secp256k1")]
use k256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hex::{hex_decode, hex_encode};
use crate::random::Random;

pub const HEADER_KEY: &str = "Biz-Api-Key";
pub const HEADER_NONCE: &str = "Biz-Api-Nonce";
pub const HEADER_SIGNATURE: &str = "Biz-Api-Signature";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Ed25519,
    #[cfg(feature = "secp256k1")]
    Secp256k1,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            #[cfg(feature = "secp256k1")]
            Algorithm::Secp256k1 => "secp256k1",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ed25519" => Some(Algorithm::Ed25519),
            #[cfg(feature = "secp256k1")]
            "secp256k1" => Some(Algorithm::Secp256k1),
            _ => None,
        }
    }

    /// Hex characters of a public key: Ed25519 32 bytes, secp256k1 33 (compressed).
    pub fn public_key_hex_len(self) -> usize {
        match self {
            Algorithm::Ed25519 => 64,
            #[cfg(feature = "secp256k1")]
            Algorithm::Secp256k1 => 66,
        }
    }
}

/// The parts of a request that are signed, as received (raw query string, raw body).
#[derive(Debug, Clone, Copy)]
pub struct SignedParts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub nonce: &'a str,
    pub params: &'a str,
    pub body: &'a [u8],
}

impl SignedParts<'_> {
    /// `METHOD|PATH|NONCE|PARAMS|BODY` with the method upper-cased and nothing re-encoded.
    pub fn string_to_sign(&self) -> Vec<u8> {
        let mut s = Vec::with_capacity(self.method.len() + self.path.len() + self.params.len() + self.body.len() + 20);
        s.extend_from_slice(self.method.to_ascii_uppercase().as_bytes());
        for part in [self.path.as_bytes(), self.nonce.as_bytes(), self.params.as_bytes(), self.body] {
            s.push(b'|');
            s.extend_from_slice(part);
        }
        s
    }

    /// SHA256(SHA256(string to sign)): what both algorithms sign.
    pub fn digest(&self) -> [u8; 32] {
        let once = Sha256::digest(self.string_to_sign());
        Sha256::digest(once).into()
    }
}

/// Why a public key was refused; the message is meant for the `public_key` field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("public_key must be {0} hex characters for {1}")]
    Length(usize, &'static str),
    #[error("public_key is not hex")]
    NotHex,
    #[error("public_key is not a valid {0} point")]
    NotOnCurve(&'static str),
}

/// A registered public key, parsed once and ready to check signatures.
#[derive(Debug, Clone)]
pub enum PublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    #[cfg(feature = "secp256k1")]
    Secp256k1(k256::ecdsa::VerifyingKey),
}

impl PublicKey {
    pub fn parse(alg: Algorithm, hex: &str) -> Result<Self, KeyError> {
        if hex.len() != alg.public_key_hex_len() {
            return Err(KeyError::Length(alg.public_key_hex_len(), alg.as_str()));
        }
        let bytes = hex_decode(hex).ok_or(KeyError::NotHex)?;
        match alg {
            Algorithm::Ed25519 => {
                let arr: [u8; 32] = bytes.try_into().map_err(|_| KeyError::NotHex)?;
                let k = ed25519_dalek::VerifyingKey::from_bytes(&arr).map_err(|_| KeyError::NotOnCurve("ed25519"))?;
                // A small-order point would accept forged signatures.
                if k.is_weak() {
                    return Err(KeyError::NotOnCurve("ed25519"));
                }
                Ok(PublicKey::Ed25519(k))
            }
            #[cfg(feature = "secp256k1")]
            Algorithm::Secp256k1 => {
                if !matches!(bytes.first(), Some(2 | 3)) {
                    return Err(KeyError::NotOnCurve("compressed secp256k1"));
                }
                k256::ecdsa::VerifyingKey::from_sec1_bytes(&bytes)
                    .map(PublicKey::Secp256k1)
                    .map_err(|_| KeyError::NotOnCurve("secp256k1"))
            }
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            PublicKey::Ed25519(_) => Algorithm::Ed25519,
            #[cfg(feature = "secp256k1")]
            PublicKey::Secp256k1(_) => Algorithm::Secp256k1,
        }
    }

    /// Lower-case hex, the form stored and sent in `Biz-Api-Key`.
    pub fn to_hex(&self) -> String {
        match self {
            PublicKey::Ed25519(k) => hex_encode(k.as_bytes()),
            #[cfg(feature = "secp256k1")]
            PublicKey::Secp256k1(k) => hex_encode(&k.to_encoded_point(true).to_bytes()),
        }
    }

    /// Checks a hex signature of `digest`. secp256k1 signatures must be DER and low-S.
    pub fn verify(&self, digest: &[u8; 32], signature_hex: &str) -> bool {
        let Some(sig) = hex_decode(signature_hex) else { return false };
        match self {
            PublicKey::Ed25519(k) => {
                ed25519_dalek::Signature::from_slice(&sig).is_ok_and(|s| k.verify_strict(digest, &s).is_ok())
            }
            #[cfg(feature = "secp256k1")]
            PublicKey::Secp256k1(k) => match k256::ecdsa::Signature::from_der(&sig) {
                // normalize_s() is Some exactly when s is high: such a signature is malleable.
                Ok(s) if s.normalize_s().is_none() => k.verify_prehash(digest, &s).is_ok(),
                _ => false,
            },
        }
    }
}

/// A private key on the client side (CLI, SDK signer).
#[derive(Clone)]
pub enum SecretKey {
    Ed25519(ed25519_dalek::SigningKey),
    #[cfg(feature = "secp256k1")]
    Secp256k1(k256::ecdsa::SigningKey),
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({}, ..)", self.algorithm().as_str())
    }
}

impl SecretKey {
    pub fn generate(alg: Algorithm, rng: &dyn Random) -> Self {
        loop {
            let mut seed = [0u8; 32];
            rng.fill(&mut seed);
            // Only secp256k1 can refuse a seed (zero or above the group order): draw again.
            if let Some(k) = Self::from_bytes(alg, &seed) {
                return k;
            }
        }
    }

    fn from_bytes(alg: Algorithm, bytes: &[u8; 32]) -> Option<Self> {
        match alg {
            Algorithm::Ed25519 => Some(SecretKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(bytes))),
            #[cfg(feature = "secp256k1")]
            Algorithm::Secp256k1 => k256::ecdsa::SigningKey::from_slice(bytes).ok().map(SecretKey::Secp256k1),
        }
    }

    /// Hex of the 32-byte seed (Ed25519) or scalar (secp256k1).
    pub fn from_hex(alg: Algorithm, hex: &str) -> Option<Self> {
        let bytes: [u8; 32] = hex_decode(hex.trim())?.try_into().ok()?;
        Self::from_bytes(alg, &bytes)
    }

    pub fn to_hex(&self) -> String {
        match self {
            SecretKey::Ed25519(k) => hex_encode(k.as_bytes()),
            #[cfg(feature = "secp256k1")]
            SecretKey::Secp256k1(k) => hex_encode(&k.to_bytes()),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            SecretKey::Ed25519(_) => Algorithm::Ed25519,
            #[cfg(feature = "secp256k1")]
            SecretKey::Secp256k1(_) => Algorithm::Secp256k1,
        }
    }

    pub fn public_key(&self) -> PublicKey {
        match self {
            SecretKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
            #[cfg(feature = "secp256k1")]
            SecretKey::Secp256k1(k) => PublicKey::Secp256k1(*k.verifying_key()),
        }
    }

    /// The hex signature of `digest` (secp256k1: deterministic RFC 6979, DER, low-S).
    pub fn sign(&self, digest: &[u8; 32]) -> String {
        match self {
            SecretKey::Ed25519(k) => hex_encode(&k.sign(digest).to_bytes()),
            #[cfg(feature = "secp256k1")]
            SecretKey::Secp256k1(k) => {
                let sig: k256::ecdsa::Signature =
                    k.sign_prehash(digest).unwrap_or_else(|_| unreachable!("a 32-byte prehash is always accepted"));
                let sig = sig.normalize_s().unwrap_or(sig);
                hex_encode(sig.to_der().as_bytes())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A deterministic source: every draw differs, which is all key generation needs here.
    struct Counter(std::sync::atomic::AtomicU8);

    impl Random for Counter {
        fn fill(&self, buf: &mut [u8]) {
            let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            buf.iter_mut().enumerate().for_each(|(i, b)| *b = n.wrapping_add(i as u8).wrapping_mul(31).wrapping_add(1));
        }
    }

    #[test]
    fn round_trip_both_algorithms() {
        for &alg in ALGORITHMS {
            let sk = SecretKey::generate(alg, &Counter(Default::default()));
            let pk = PublicKey::parse(alg, &sk.public_key().to_hex()).unwrap();
            let parts = SignedParts { method: "post", path: "/v2/x", nonce: "1", params: "a=1", body: b"{}" };
            let sig = sk.sign(&parts.digest());
            assert!(pk.verify(&parts.digest(), &sig));
            let other = SignedParts { body: b"{ }", ..parts };
            assert!(!pk.verify(&other.digest(), &sig), "{alg:?}: tampered body accepted");
            assert_eq!(SecretKey::from_hex(alg, &sk.to_hex()).unwrap().public_key().to_hex(), pk.to_hex());
        }
    }

    const ALGORITHMS: &[Algorithm] = &[
        Algorithm::Ed25519,
        #[cfg(feature = "secp256k1")]
        Algorithm::Secp256k1,
    ];

    #[test]
    fn public_keys_are_checked() {
        use Algorithm::*;
        assert_eq!(PublicKey::parse(Ed25519, "ab").unwrap_err(), KeyError::Length(64, "ed25519"));
        assert_eq!(PublicKey::parse(Ed25519, &"zz".repeat(32)).unwrap_err(), KeyError::NotHex);
        // The identity point has small order.
        let identity = format!("01{}", "00".repeat(31));
        assert!(matches!(PublicKey::parse(Ed25519, &identity), Err(KeyError::NotOnCurve(_))));
        #[cfg(feature = "secp256k1")]
        {
            assert!(matches!(
                PublicKey::parse(Secp256k1, &format!("04{}", "11".repeat(32))),
                Err(KeyError::NotOnCurve(_))
            ));
            // x = 5 has no point on secp256k1 (5^3 + 7 = 132 is not a square mod p).
            assert!(matches!(PublicKey::parse(Secp256k1, &format!("02{:064x}", 5)), Err(KeyError::NotOnCurve(_))));
        }
    }
}
