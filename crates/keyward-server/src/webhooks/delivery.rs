//! The delivery worker: a background task on every node that claims due deliveries from the
//! outbox (each goes to one node), signs and sends them, and records each attempt. It never
//! runs on a request's path; requests only write the outbox in their own transaction.

use std::time::Instant;

use chrono::{DateTime, Utc};
use keyward_core::webhook_signature::{secret_bytes, sign_v1};
use keyward_core::webhooks::next_attempt;
use keyward_store::{AfterAttempt, Attempt, DueDelivery};
use tokio::sync::watch;

use crate::state::SharedState;
use crate::webhooks::{destination, signing_key};

/// How many deliveries a node claims at once, and sends side by side.
const BATCH: i64 = 16;

/// How long a claimed delivery stays this node's: longer than an attempt can take, so a
/// live node never loses one; a dead node's deliveries are claimed again after it.
fn lease(state: &SharedState) -> chrono::Duration {
    chrono::Duration::from_std(state.config.webhook_timeout * 3).unwrap_or(chrono::Duration::seconds(60))
        + chrono::Duration::seconds(10)
}

pub async fn run(state: SharedState, mut stopped: watch::Receiver<bool>) {
    let client = match destination::client(state.config.webhook_allow_private, state.config.webhook_timeout) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook deliveries cannot start: no HTTP client");
            return;
        }
    };
    // The first look is one interval after start, not at once: a node polls at a steady
    // pace from its start (and a test's never-polling node never looks).
    let every = state.config.webhook_poll_interval;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let due = match state.store.claim_deliveries(state.clock.now(), lease(&state), BATCH).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the webhook outbox; will retry");
                continue;
            }
        };
        if due.is_empty() {
            continue;
        }
        // A stop waits for the attempts in flight (each bounded by the time-out).
        let sends = due.into_iter().map(|d| deliver(&state, &client, d));
        futures_util::future::join_all(sends).await;
    }
}

/// The `webhook-signature` header for one delivery: `v1,…` under the endpoint's secret (and
/// the previous one while a rotation overlaps), or `v1a,…` under the workspace's key for a
/// key's callback.
async fn signature(state: &SharedState, d: &DueDelivery, ts: i64) -> Result<String, String> {
    let body = d.body.as_bytes();
    match (&d.endpoint_id, &d.secret_sealed) {
        (Some(ep), Some(sealed)) => {
            let mut sigs = Vec::new();
            for s in std::iter::once(sealed).chain(d.previous_secret_sealed.iter()) {
                let secret = crate::manage::seal::open_webhook_secret(&state.pepper, ep, s)
                    .ok_or_else(|| "the endpoint's secret cannot be opened with this server's pepper".to_string())?;
                let key = secret_bytes(&secret).map_err(|_| "the endpoint's secret is unreadable".to_string())?;
                sigs.push(sign_v1(&key, &d.message_id, ts, body));
            }
            Ok(sigs.join(" "))
        }
        _ => {
            let key = signing_key(state, &d.workspace_id).await.map_err(|e| {
                tracing::warn!(error = ?e, "no callback signing key");
                "the workspace's callback signing key is not available".to_string()
            })?;
            Ok(key.sign(&d.message_id, ts, body))
        }
    }
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(r: &reqwest::Response, now: DateTime<Utc>) -> Option<chrono::Duration> {
    let v = r.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u32>() {
        return Some(chrono::Duration::seconds(i64::from(secs)));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    Some((at - now).max(chrono::Duration::zero()))
}

async fn deliver(state: &SharedState, client: &reqwest::Client, d: DueDelivery) {
    let now = state.clock.now();
    let ts = now.timestamp();
    let started = Instant::now();
    let (status, error, wait) = match send(state, client, &d, ts, now).await {
        Ok((status, wait)) => (Some(status), None, wait),
        Err(e) => (None, Some(e), None),
    };
    let attempt = Attempt {
        time: now,
        status,
        error,
        duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
    };
    let next = match status {
        Some(s) if (200..300).contains(&s) => AfterAttempt::Delivered,
        Some(410) if d.endpoint_id.is_some() => AfterAttempt::Gone,
        _ => match next_attempt(&state.config.webhook_retry_schedule, d.attempts + 1, wait, now) {
            Some(t) => AfterAttempt::RetryAt(t),
            None => AfterAttempt::Failed,
        },
    };
    state.metrics.delivery(next == AfterAttempt::Delivered);
    match &next {
        AfterAttempt::Delivered => {}
        AfterAttempt::Gone => tracing::warn!(delivery = %d.id, "webhook endpoint answered 410: disabled"),
        _ => {
            tracing::info!(delivery = %d.id, status = ?attempt.status, error = ?attempt.error, "webhook delivery failed")
        }
    }
    if let Err(e) = state.store.finish_attempt(&d, &attempt, next, state.config.webhook_disable_after).await {
        // The lease runs out and the delivery is tried again: at least once.
        tracing::warn!(error = %e, delivery = %d.id, "could not record a webhook attempt");
    }
}

/// One attempt: the receiver's status and `Retry-After`, or why there was no answer.
async fn send(
    state: &SharedState,
    client: &reqwest::Client,
    d: &DueDelivery,
    ts: i64,
    now: DateTime<Utc>,
) -> Result<(u16, Option<chrono::Duration>), String> {
    if let Some(why) = destination::refused_url(&d.url, state.config.webhook_allow_private) {
        return Err(why.to_string());
    }
    let sig = signature(state, d, ts).await?;
    let r = client
        .post(&d.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &d.message_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(d.body.clone())
        .send()
        .await
        .map_err(|e| {
            if destination::is_refusal(&e) {
                "refused: the host resolves only to loopback, private or link-local addresses".to_string()
            } else if e.is_timeout() {
                "timed out".to_string()
            } else if e.is_connect() {
                "could not connect".to_string()
            } else {
                "request failed".to_string()
            }
        })?;
    let wait = retry_after(&r, now);
    Ok((r.status().as_u16(), wait))
}
