//! What a cached key costs in memory, weighed with the lib tests' counting allocator
//! (`test_alloc`): keys shaped like `kwbench seed`'s (a secret key with two permissions and
//! a scope, no roles, no meta) put into the real cache, its set of known hashes and the usage
//! buffer, part by part. `cargo test -p keyward-server --lib footprint -- --nocapture` prints
//! the figures; the million-key run is ignored by default (`-- --ignored footprint`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use keyward_core::codes::VerifyCode;
use keyward_core::model::{KeyKind, KeyRecord, KeyStatus};
use keyward_core::verify::{KeyContext, VerifiableKey};
use keyward_core::Random;

use crate::cache::{Entry, KeyCache, KeyHash};
use crate::test_alloc::{held, Held};
use crate::usage::UsageBuffer;

/// A key as `kwbench seed` creates it.
fn bench_key(id: String, workspace_id: &str, n: usize, now: DateTime<Utc>) -> KeyRecord {
    KeyRecord {
        id,
        workspace_id: workspace_id.to_string(),
        name: format!("bench-{}-{}", n % 8, n / 8),
        kind: KeyKind::Secret,
        algorithm: None,
        public_key: None,
        key_type: None,
        environment: "live".into(),
        status: KeyStatus::Active,
        hash: None,
        start: "kw_live_sk_abcd".into(),
        roles: vec![],
        permissions: vec!["wallet.read".into(), "tx.create".into()],
        scopes: vec!["wallet:*".into()],
        grants: vec![],
        ip_allowlist: vec![],
        meta: Default::default(),
        callback_url: None,
        expires_at: None,
        created_at: now,
        updated_at: now,
        created_by: Some("mk_1".into()),
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

/// Bytes per key of each part, in mimalloc's size classes (and as asked for).
#[derive(Debug, Default)]
struct Weights {
    /// The cached records (`Arc<VerifiableKey>` and what each owns alone).
    records: Held,
    /// The cache's table (its shards' entry arrays and indexes).
    table: Held,
    /// The set of known hashes.
    known: Held,
    /// What the usage buffer keeps after a flush of one verification of each key, and after
    /// a second flush with none.
    usage_after_flush: Held,
    usage_after_quiet_flush: Held,
    /// Keys the usage buffer took (it holds at most `MAX_PENDING_SLOTS` between flushes).
    usage_keys: usize,
}

fn per_key(d: Held, n: usize) -> (f64, f64) {
    (d.blocks as f64 / n as f64, d.asked as f64 / n as f64)
}

fn since(before: Held) -> Held {
    let now = held();
    Held { asked: now.asked - before.asked, blocks: now.blocks - before.blocks }
}

fn weigh(n: usize) -> Weights {
    let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
    let rng = keyward_core::OsRandom;
    let workspace = keyward_core::ids::new_id("ws", now, &rng);
    let mut w = Weights::default();
    let made: Vec<(KeyHash, String)> = (0..n)
        .map(|_| {
            let mut h = [0u8; 32];
            rng.fill(&mut h);
            (h, keyward_core::ids::new_id("key", now, &rng))
        })
        .collect();
    let mut keys = Vec::with_capacity(n);
    // Each record is made and consumed inside: what is left is the cached key alone (and
    // what the intern tables keep for all of them).
    let before = held();
    for (i, (_, id)) in made.iter().enumerate() {
        keys.push(Arc::new(VerifiableKey::new(bench_key(id.clone(), &workspace, i, now), KeyContext::default())));
    }
    w.records = since(before);

    // Room for all of them (a full shard would evict some).
    let cache = KeyCache::new(1_000_000.max(2 * n as u64));
    let before = held();
    for ((h, _), k) in made.iter().zip(keys.iter()) {
        cache.fill(*h, Entry::Found(k.clone()), cache.epoch(h));
    }
    w.table = since(before);
    let before = held();
    for (h, _) in &made {
        cache.known.add(h);
    }
    w.known = since(before);

    let usage = UsageBuffer::default();
    let before = held();
    for ((_, id), k) in made.iter().zip(keys.iter()) {
        usage.record(id, k.workspace_id(), now.timestamp_millis(), VerifyCode::Valid, None);
    }
    // The buffer holds at most about `MAX_PENDING_SLOTS` keys between two flushes.
    w.usage_keys = usage.flushed_now();
    assert!(w.usage_keys <= n && w.usage_keys > n.min(crate::usage::MAX_PENDING_SLOTS) / 2, "{}", w.usage_keys);
    w.usage_after_flush = since(before);
    assert_eq!(usage.flushed_now(), 0);
    w.usage_after_quiet_flush = since(before);
    assert!(made.iter().all(|(h, _)| matches!(cache.get(h), Some(Entry::Found(_)))));
    drop(keys);
    w
}

fn report(n: usize) -> f64 {
    let w = weigh(n);
    let m = w.usage_keys;
    let parts = [
        ("records", w.records, n),
        ("cache table", w.table, n),
        ("known hashes", w.known, n),
        ("usage after a flush", w.usage_after_flush, m),
        ("usage after a quiet flush", w.usage_after_quiet_flush, m),
    ];
    println!("{n} keys ({m} in the usage buffer), bytes per key in mimalloc's classes (asked for):");
    for (name, d, k) in parts {
        let (b, a) = per_key(d, k);
        println!("  {name:<26} {b:>7.1} ({a:.1})");
    }
    // What stays with the cache once the usage buffer has flushed twice.
    let kept = [w.records, w.table, w.known].iter().map(|d| per_key(*d, n).0).sum::<f64>()
        + per_key(w.usage_after_quiet_flush, n).0;
    println!("  {:<26} {kept:>7.1}", "kept in all");
    kept
}

/// Bounds that fail when a cached key grows back: its record in a 112-byte block and its
/// name, the table's entry and index, nothing kept by the usage buffer after a quiet flush.
#[test]
fn footprint_of_100_000_keys() {
    let n = 100_000;
    let w = weigh(n);
    // 112 + 16, and a share of the intern tables.
    assert!(per_key(w.records, n).0 <= 130.0, "{:?}", per_key(w.records, n));
    assert!(per_key(w.table, n).0 <= 70.0, "{:?}", per_key(w.table, n));
    assert!(per_key(w.usage_after_quiet_flush, n).0 < 1.0, "{:?}", per_key(w.usage_after_quiet_flush, n));
    assert!(report(n) <= 220.0);
}

#[test]
#[ignore = "a million keys: run on purpose"]
fn footprint_of_1_000_000_keys() {
    report(1_000_000);
}
