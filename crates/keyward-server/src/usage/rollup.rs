//! Background work on the counts that one node does at a time (it holds the `usage` lease):
//! rolling minute buckets up into hours and hours into days, pruning each past its retention,
//! and evaluating the alert rules. Every step is idempotent, so a lease that changes hands
//! mid-pass costs nothing but repeated work.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use keyward_core::clock::{from_ms, to_ms};
use keyward_core::ids;
use keyward_core::policy::AlertPolicy;
use keyward_store::{Alert, SeenIp, DAY_MS, HOUR_MS, MINUTE_MS};
use serde_json::json;
use tokio::sync::watch;

use crate::state::SharedState;

const LEASE: &str = "usage";

/// The window `failures` is judged over.
const FAILURE_WINDOW_MS: i64 = 5 * MINUTE_MS;

pub async fn run(state: SharedState, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(state.config.rollup_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        if let Err(e) = pass(&state).await {
            tracing::warn!(error = %e, "usage rollup or alert evaluation failed; will retry");
        }
    }
}

fn floor(ms: i64, width: i64) -> i64 {
    ms.div_euclid(width) * width
}

async fn pass(state: &SharedState) -> Result<(), keyward_store::StoreError> {
    let now = state.clock.now();
    let ttl =
        Duration::from_std(state.config.rollup_interval * 3).unwrap_or(Duration::minutes(3)) + Duration::seconds(5);
    let Some(progress) = state.store.take_lease(LEASE, &state.node_id, now, ttl).await? else { return Ok(()) };
    let (minutes_kept, hours_kept, days_kept) = state.config.usage_retention;
    let now_ms = to_ms(now);
    // Hours from the one before the last pass's (late flushes) up to now, then the days those
    // hours fall in. The first pass starts where minutes are still kept; after a long pause
    // (every node down) at most a week before that.
    let from = if progress == 0 {
        to_ms(now - minutes_kept)
    } else {
        (progress - HOUR_MS).max(to_ms(now - minutes_kept - Duration::days(7)))
    };
    state.store.roll_up("minute", "hour", HOUR_MS, from_ms(floor(from, HOUR_MS)), now).await?;
    state.store.roll_up("hour", "day", DAY_MS, from_ms(floor(from, DAY_MS)), now).await?;
    state.store.set_lease_progress(LEASE, &state.node_id, floor(now_ms, HOUR_MS)).await?;
    state.store.prune_usage("minute", now - minutes_kept).await?;
    state.store.prune_usage("hour", now - hours_kept).await?;
    state.store.prune_usage("day", now - days_kept).await?;
    for ws in state.store.workspace_ids().await? {
        let rules = state.store.policy(&ws).await?.alerts;
        if rules.any() {
            evaluate(state, &ws, &rules, now).await?;
        }
    }
    Ok(())
}

async fn raise(
    state: &SharedState,
    ws: &str,
    key_id: &str,
    kind: &str,
    window_start: DateTime<Utc>,
    subject: &str,
    detail: serde_json::Value,
) -> Result<(), keyward_store::StoreError> {
    let now = state.clock.now();
    let a = Alert {
        id: ids::new_id("alr", now, state.random.as_ref()),
        workspace_id: ws.to_string(),
        key_id: key_id.to_string(),
        kind: kind.to_string(),
        window_start,
        subject: subject.to_string(),
        detail,
        created_at: now,
        acknowledged_at: None,
        acknowledged_by: None,
    };
    if state.store.raise_alert(&a).await? {
        tracing::info!(key = key_id, kind, "usage alert raised");
    }
    Ok(())
}

/// The rules of one workspace against its rolled-up counts: `spike` over the last complete
/// hour, `failures` over the last complete five minutes, `unused` from the keys' last use.
async fn evaluate(
    state: &SharedState,
    ws: &str,
    rules: &AlertPolicy,
    now: DateTime<Utc>,
) -> Result<(), keyward_store::StoreError> {
    let now_ms = to_ms(now);
    let min = i64::from(rules.min_requests);
    if let Some(factor) = rules.spike_factor {
        let hour = floor(now_ms, HOUR_MS) - HOUR_MS;
        let last = state.store.key_activity(ws, "hour", from_ms(hour), from_ms(hour + HOUR_MS)).await?;
        let before = state.store.key_activity(ws, "hour", from_ms(hour - 24 * HOUR_MS), from_ms(hour)).await?;
        let baseline: HashMap<&str, f64> = before.iter().map(|a| (a.key_id.as_str(), a.total as f64 / 24.0)).collect();
        for a in last.iter().filter(|a| a.total >= min) {
            let base = baseline.get(a.key_id.as_str()).copied().unwrap_or(0.0);
            if a.total as f64 > factor * base.max(1.0) {
                let detail = json!({"requests": a.total, "baseline_per_hour": base, "spike_factor": factor});
                raise(state, ws, &a.key_id, "spike", from_ms(hour), "", detail).await?;
            }
        }
    }
    if let Some(ratio) = rules.failure_ratio {
        let end = floor(now_ms, FAILURE_WINDOW_MS);
        let window = state.store.key_activity(ws, "minute", from_ms(end - FAILURE_WINDOW_MS), from_ms(end)).await?;
        for a in window.iter().filter(|a| a.total >= min && a.total > 0) {
            let refused = a.total - a.valid;
            if refused as f64 / a.total as f64 >= ratio {
                let detail = json!({"requests": a.total, "refused": refused, "failure_ratio": ratio});
                raise(state, ws, &a.key_id, "failures", from_ms(end - FAILURE_WINDOW_MS), "", detail).await?;
            }
        }
    }
    if let Some(days) = rules.unused_days {
        for (key_id, since) in state.store.idle_keys(ws, now - Duration::days(i64::from(days))).await? {
            let detail = json!({"unused_since": since, "unused_days": days});
            raise(state, ws, &key_id, "unused", since, "", detail).await?;
        }
    }
    Ok(())
}

/// Addresses a flush found new to keys already seen from others: `new_ip` alerts where the
/// workspace asks for them.
pub async fn new_addresses(state: &SharedState, seen: Vec<SeenIp>) {
    let mut policies: HashMap<String, bool> = HashMap::new();
    for s in seen {
        let wanted = match policies.get(&s.workspace_id) {
            Some(w) => *w,
            None => {
                let w = state.store.policy(&s.workspace_id).await.map(|p| p.alerts.new_ip).unwrap_or(false);
                policies.insert(s.workspace_id.clone(), w);
                w
            }
        };
        if wanted {
            let detail = json!({"ip": s.ip});
            if let Err(e) = raise(state, &s.workspace_id, &s.key_id, "new_ip", from_ms(s.at_ms), &s.ip, detail).await {
                tracing::warn!(error = %e, "could not raise a new_ip alert");
            }
        }
    }
}
