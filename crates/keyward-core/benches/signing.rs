//! Signed-request verification as Keyward does it (string to sign, double SHA-256, hex
//! signature, strict Ed25519 check) against bare `ed25519-dalek` verification of the same
//! digest, in the same run: the ratio is what Keyward's scheme costs over the raw crypto.
//!   cargo bench -p keyward-core --bench signing
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ed25519_dalek::Verifier;
use keyward_core::signing::{Algorithm, PublicKey, SecretKey, SignedParts};
use keyward_core::OsRandom;

fn bench(c: &mut Criterion) {
    let body = br#"{"request_id":"r-1","amount":"1.5","currency":"USD","memo":"invoice 2026-11"}"#;
    let parts = SignedParts {
        method: "POST",
        path: "/v2/transactions/transfer",
        nonce: "1718587017999",
        params: "wallet_id=w_123&chain=ETH",
        body,
    };
    let mut g = c.benchmark_group("verify");
    for alg in [Algorithm::Ed25519, Algorithm::Secp256k1] {
        let sk = SecretKey::generate(alg, &OsRandom);
        let pk = PublicKey::parse(alg, &sk.public_key().to_hex()).unwrap();
        let sig_hex = sk.sign(&parts.digest());
        g.bench_function(format!("keyward_{}", alg.as_str()), |b| {
            b.iter(|| assert!(pk.verify(&black_box(parts).digest(), black_box(&sig_hex))))
        });
        if let (SecretKey::Ed25519(k), Algorithm::Ed25519) = (&sk, alg) {
            let vk = k.verifying_key();
            let digest = parts.digest();
            let sig =
                ed25519_dalek::Signature::from_slice(&keyward_core::pepper::hex_decode(&sig_hex).unwrap()).unwrap();
            g.bench_function("raw_ed25519_dalek", |b| {
                b.iter(|| assert!(vk.verify(black_box(&digest), black_box(&sig)).is_ok()))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
