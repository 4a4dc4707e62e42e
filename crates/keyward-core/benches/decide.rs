//! The verification decision with a permission query and a scope, for a key holding only its
//! own permissions and for the same permissions reached through roles and a scoped grant, in
//! the same run: what roles cost per request once a key's authority is derived.
//!   cargo bench -p keyward-core --bench decide
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use keyward_core::authority::KeyGrant;
use keyward_core::model::{KeyKind, KeyRecord, KeyStatus};
use keyward_core::permissions::Query;
use keyward_core::verify::{decide, KeyContext, Requirements, VerifiableKey, VerifyCode};

fn record(permissions: &[&str], roles: &[&str], grants: Vec<KeyGrant>) -> KeyRecord {
    let t = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    KeyRecord {
        id: "key_1".into(),
        workspace_id: "ws_1".into(),
        name: "bench".into(),
        kind: KeyKind::Secret,
        algorithm: None,
        public_key: None,
        key_type: None,
        environment: "live".into(),
        status: KeyStatus::Active,
        hash: Some("h".into()),
        start: "kw_live_sk_abcd".into(),
        roles: v(roles),
        permissions: v(permissions),
        scopes: v(&["*"]),
        grants,
        ip_allowlist: vec![],
        meta: Default::default(),
        callback_url: None,
        expires_at: None,
        created_at: t,
        updated_at: t,
        created_by: None,
        last_used_at: None,
        last_used_ip: None,
        revoked_at: None,
        approval_id: None,
        service_account_id: None,
        ratelimits: Vec::new(),
        credits: None,
        disabled_at: None,
        identity_id: None,
        external_id: None,
        leak: None,
        rotated_to: None,
        rotated_from: None,
    }
}

fn bench(c: &mut Criterion) {
    let own = VerifiableKey::new(
        record(&["wallet.read", "balance.read", "tx.create", "tx.approve"], &[], vec![]),
        KeyContext::default(),
    );
    let mut ctx = KeyContext::default();
    ctx.defs.insert("viewer".into(), vec!["wallet.read".into(), "balance.read".into()]);
    ctx.defs.insert("operator".into(), vec!["tx.create".into(), "tx.approve".into()]);
    let grant = KeyGrant { role: "operator".into(), scopes: vec!["wallet:w_1".into(), "wallet:w_2".into()] };
    let roles = VerifiableKey::new(record(&[], &["viewer"], vec![grant]), ctx);
    let now = chrono::DateTime::from_timestamp(1_800_000_100, 0).unwrap();
    let q = Query::parse("wallet.read AND tx.create").unwrap();
    let req = Requirements { permissions: Some(&q), scope: Some("wallet:w_2"), ..Default::default() };
    let mut g = c.benchmark_group("decide");
    g.bench_function("own_permissions", |b| {
        b.iter(|| assert_eq!(decide(black_box(&own), now, black_box(&req)), VerifyCode::Valid))
    });
    g.bench_function("roles_and_grant", |b| {
        b.iter(|| assert_eq!(decide(black_box(&roles), now, black_box(&req)), VerifyCode::Valid))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
