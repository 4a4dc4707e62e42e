//! The shared request-signing vectors (a copy of `shared/vectors/request-signing.json`):
//! Keyward must produce and accept exactly what the seed's clients do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keyward_core::pepper::{hex_decode, hex_encode};
use keyward_core::signing::{Algorithm, PublicKey, SecretKey, SignedParts};
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/request-signing.json")).unwrap()
}

fn parts(c: &Value) -> SignedParts<'_> {
    SignedParts {
        method: c["method"].as_str().unwrap(),
        path: c["path"].as_str().unwrap(),
        nonce: c["nonce"].as_str().unwrap(),
        params: c["params"].as_str().unwrap(),
        body: c["body"].as_str().unwrap().as_bytes(),
    }
}

#[test]
fn ed25519_vectors() {
    let v = vectors();
    let set = &v["ed25519"];
    let sk = SecretKey::from_hex(Algorithm::Ed25519, set["secret_seed_hex"].as_str().unwrap()).unwrap();
    let pk = PublicKey::parse(Algorithm::Ed25519, set["public_key_hex"].as_str().unwrap()).unwrap();
    assert_eq!(sk.public_key().to_hex(), pk.to_hex());
    let cases = set["cases"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for c in cases {
        let p = parts(c);
        assert_eq!(String::from_utf8(p.string_to_sign()).unwrap(), c["string_to_sign"].as_str().unwrap());
        assert_eq!(hex_encode(&p.digest()), c["digest_hex"].as_str().unwrap());
        let sig = c["signature_hex"].as_str().unwrap();
        assert_eq!(sk.sign(&p.digest()), sig, "Ed25519 is deterministic: same signature");
        assert!(pk.verify(&p.digest(), sig));
        assert!(pk.verify(&p.digest(), &sig.to_uppercase()), "hex is read in either case");
        let mut flipped = p.digest();
        flipped[0] ^= 1;
        assert!(!pk.verify(&flipped, sig));
    }
}

#[test]
fn secp256k1_vectors() {
    let v = vectors();
    let set = &v["secp256k1"];
    let sk = SecretKey::from_hex(Algorithm::Secp256k1, set["secret_hex"].as_str().unwrap()).unwrap();
    let pk = PublicKey::parse(Algorithm::Secp256k1, set["public_key_hex"].as_str().unwrap()).unwrap();
    assert_eq!(sk.public_key().to_hex(), pk.to_hex());
    for c in set["cases"].as_array().unwrap() {
        let p = parts(c);
        assert_eq!(hex_encode(&p.digest()), c["digest_hex"].as_str().unwrap());
        let sig = c["signature_der_hex"].as_str().unwrap();
        assert!(pk.verify(&p.digest(), sig), "vector signature refused");
        assert_eq!(sk.sign(&p.digest()), sig, "RFC 6979: same signature");

        // The same signature with s replaced by n - s verifies mathematically but is refused.
        let der = hex_decode(sig).unwrap();
        let low = k256::ecdsa::Signature::from_der(&der).unwrap();
        let (r, s) = low.split_scalars();
        let high = k256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        assert!(high.normalize_s().is_some(), "the variant is high-S");
        assert!(!pk.verify(&p.digest(), &hex_encode(high.to_der().as_bytes())), "high-S accepted");
    }
}
