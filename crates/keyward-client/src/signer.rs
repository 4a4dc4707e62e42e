//! Signing requests with a public-key API key's private half, as the seed's SDKs do: the
//! three `Biz-Api-*` headers for a method, path, raw query string and raw body. Ed25519
//! always; secp256k1 with the crate's `secp256k1` feature.

use keyward_proto::signing::{SecretKey, SignedParts, HEADER_KEY, HEADER_NONCE, HEADER_SIGNATURE};

pub use keyward_proto::signing::{Algorithm, PublicKey, SecretKey as PrivateKey};

#[derive(Debug, Clone)]
pub struct Signer {
    key: SecretKey,
    public_hex: String,
}

impl Signer {
    pub fn new(key: SecretKey) -> Self {
        let public_hex = key.public_key().to_hex();
        Signer { key, public_hex }
    }

    /// From the hex private key (Ed25519 seed, or secp256k1 scalar with the `secp256k1`
    /// feature).
    pub fn from_hex(alg: Algorithm, secret_hex: &str) -> Option<Self> {
        SecretKey::from_hex(alg, secret_hex).map(Self::new)
    }

    pub fn algorithm(&self) -> Algorithm {
        self.key.algorithm()
    }

    pub fn public_key_hex(&self) -> &str {
        &self.public_hex
    }

    /// The private key (an app's [`crate::token_source::TokenSource`] signs with it too).
    pub fn private_key(&self) -> &SecretKey {
        &self.key
    }

    /// The headers for a request sent at `now_ms` (Unix milliseconds, the nonce). `query` is
    /// the raw query string exactly as it will be sent, without `?`.
    pub fn headers(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
        now_ms: i64,
    ) -> [(&'static str, String); 3] {
        let nonce = now_ms.to_string();
        let parts = SignedParts { method, path, nonce: &nonce, params: query, body };
        let signature = self.key.sign(&parts.digest());
        [(HEADER_KEY, self.public_hex.clone()), (HEADER_NONCE, nonce), (HEADER_SIGNATURE, signature)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_verify_against_the_public_key() {
        let s = Signer::from_hex(Algorithm::Ed25519, &"01".repeat(32)).unwrap();
        let [(_, pk), (_, nonce), (_, sig)] = s.headers("post", "/v2/x", "a=1&b=%20", b"{\"x\":1}", 1_718_587_017_026);
        assert_eq!(nonce, "1718587017026");
        let parts =
            SignedParts { method: "POST", path: "/v2/x", nonce: &nonce, params: "a=1&b=%20", body: b"{\"x\":1}" };
        assert!(PublicKey::parse(Algorithm::Ed25519, &pk).unwrap().verify(&parts.digest(), &sig));
    }
}
