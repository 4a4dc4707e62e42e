//! Webhook endpoints, the outbox of messages and deliveries, delivery attempts, and each
//! workspace's callback signing key. Secrets arrive sealed: this layer never sees one in
//! clear. The outbox is written by [`enqueue`] inside the audit event's own transaction.

use chrono::{DateTime, Duration, Utc};
use keyward_core::audit::AuditTarget;
use keyward_core::audit_action::AuditAction;
use keyward_core::clock::{from_ms, to_ms};
use keyward_core::webhooks::DeliveryStatus;
use serde_json::{json, Value};
use sqlx::AnyConnection;

use crate::audit::append;
use crate::outbox::{insert_delivery, insert_message};
use crate::tx::Tx;
use crate::{AuditRecord, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: String,
    pub workspace_id: String,
    pub url: String,
    pub description: Option<String>,
    pub events: Vec<String>,
    pub secret_sealed: String,
    pub previous_secret_sealed: Option<String>,
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What `PATCH /v1/webhooks/{id}` changes (checked by the caller).
#[derive(Debug, Clone, Default)]
pub struct WebhookChanges {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<Option<String>>,
    pub disabled: Option<bool>,
}

/// A delivery a node has claimed: everything needed to send it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: String,
    pub message_id: String,
    pub workspace_id: String,
    pub endpoint_id: Option<String>,
    pub url: String,
    pub body: String,
    /// 0 before the first attempt.
    pub attempts: u32,
    /// For endpoints: the sealed secret(s) to sign with. `None` for a key's callback
    /// (signed with the workspace's key).
    pub secret_sealed: Option<String>,
    pub previous_secret_sealed: Option<String>,
}

/// One attempt's result as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub time: DateTime<Utc>,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    Delivered,
    RetryAt(DateTime<Utc>),
    /// The schedule is used up.
    Failed,
    /// The receiver answered 410: the endpoint is disabled.
    Gone,
}

/// Whose deliveries to list.
#[derive(Debug, Clone, Copy)]
pub enum DeliveriesTo<'a> {
    Endpoint(&'a str),
    KeyCallback(&'a str),
}

/// A delivery as listed, with its attempts.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub message_id: String,
    pub kind: String,
    pub body: String,
    pub status: DeliveryStatus,
    pub endpoint_id: Option<String>,
    pub key_id: Option<String>,
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub log: Vec<Attempt>,
}

const ENDPOINT_COLUMNS: &str = "id, workspace_id, url, description, events, secret_sealed, previous_secret_sealed, \
     previous_secret_until, disabled, disabled_reason, failing_since, created_at, updated_at";

/// A `webhook_endpoints` row as stored ([`ENDPOINT_COLUMNS`]).
#[derive(sqlx::FromRow)]
struct EndpointRow {
    id: String,
    workspace_id: String,
    url: String,
    description: Option<String>,
    events: String,
    secret_sealed: String,
    previous_secret_sealed: Option<String>,
    previous_secret_until: Option<i64>,
    disabled: i32,
    disabled_reason: Option<String>,
    failing_since: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl EndpointRow {
    fn endpoint(self) -> Result<WebhookEndpoint, StoreError> {
        Ok(WebhookEndpoint {
            events: serde_json::from_str(&self.events)
                .map_err(|_| StoreError::Internal("unreadable events in webhook_endpoints row".into()))?,
            id: self.id,
            workspace_id: self.workspace_id,
            url: self.url,
            description: self.description,
            secret_sealed: self.secret_sealed,
            previous_secret_sealed: self.previous_secret_sealed,
            previous_secret_until: self.previous_secret_until.map(from_ms),
            disabled: self.disabled != 0,
            disabled_reason: self.disabled_reason,
            failing_since: self.failing_since.map(from_ms),
            created_at: from_ms(self.created_at),
            updated_at: from_ms(self.updated_at),
        })
    }
}

/// A due delivery joined with its message's body (`Store::claim_deliveries`).
#[derive(sqlx::FromRow)]
struct DueRow {
    id: String,
    message_id: String,
    workspace_id: String,
    endpoint_id: Option<String>,
    callback_url: Option<String>,
    attempts: i32,
    body: String,
}

/// A delivery joined with its message (`Store::list_deliveries`).
#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: String,
    message_id: String,
    status: String,
    endpoint_id: Option<String>,
    key_id: Option<String>,
    attempts: i32,
    next_attempt_at: i64,
    last_status: Option<i32>,
    last_error: Option<String>,
    created_at: i64,
    finished_at: Option<i64>,
    #[sqlx(rename = "type")]
    kind: String,
    body: String,
}

/// A `webhook_attempts` row.
#[derive(sqlx::FromRow)]
struct AttemptRow {
    delivery_id: String,
    time: i64,
    status: Option<i32>,
    error: Option<String>,
    duration_ms: i64,
}

/// An HTTP status as stored; anything out of range reads as none.
fn status_of(s: Option<i32>) -> Option<u16> {
    s.and_then(|s| u16::try_from(s).ok())
}

fn attempts_of(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

fn endpoint_target(ep: &WebhookEndpoint) -> AuditTarget {
    AuditTarget { kind: "webhook".into(), id: Some(ep.id.clone()), name: Some(ep.url.clone()) }
}

async fn endpoint_by_id(
    conn: &mut AnyConnection,
    workspace_id: &str,
    id: &str,
) -> Result<Option<WebhookEndpoint>, StoreError> {
    let r = sqlx::query_as::<_, EndpointRow>(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE workspace_id = $1 AND id = $2"
    ))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    r.map(EndpointRow::endpoint).transpose()
}

fn events_text(events: &[String]) -> String {
    serde_json::to_string(events).unwrap_or_else(|_| "[]".into())
}

/// Writes every changeable column of `ep` (an update and a rotation both read, change, save).
async fn save_endpoint(tx: &mut Tx, ep: &WebhookEndpoint) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE webhook_endpoints SET url = $1, events = $2, description = $3, disabled = $4, disabled_reason = $5, \
         failing_since = $6, secret_sealed = $7, previous_secret_sealed = $8, previous_secret_until = $9, updated_at = $10 \
         WHERE id = $11",
    )
    .bind(&ep.url)
    .bind(events_text(&ep.events))
    .bind(&ep.description)
    .bind(i32::from(ep.disabled))
    .bind(&ep.disabled_reason)
    .bind(ep.failing_since.map(to_ms))
    .bind(&ep.secret_sealed)
    .bind(&ep.previous_secret_sealed)
    .bind(ep.previous_secret_until.map(to_ms))
    .bind(to_ms(ep.updated_at))
    .bind(&ep.id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Disables an endpoint inside `tx`, cancels what it still had to receive and records a
/// `webhook.disabled` event (which other endpoints may subscribe to).
async fn disable_in(
    tx: &mut Tx,
    ep: &WebhookEndpoint,
    reason: &str,
    rec: &AuditRecord,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE webhook_endpoints SET disabled = 1, disabled_reason = $1, updated_at = $2 WHERE id = $3")
        .bind(reason)
        .bind(to_ms(now))
        .bind(&ep.id)
        .execute(&mut **tx)
        .await?;
    cancel_pending(tx, &ep.id, now).await?;
    let rec = rec.with(AuditAction::WebhookDisabled, endpoint_target(ep), json!({"reason": reason}));
    append(tx, &ep.workspace_id, &rec, now).await?;
    Ok(())
}

async fn cancel_pending(tx: &mut Tx, endpoint_id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE webhook_deliveries SET status = 'cancelled', finished_at = $1, lease_until = NULL \
         WHERE endpoint_id = $2 AND status = 'pending'",
    )
    .bind(to_ms(now))
    .bind(endpoint_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    pub async fn insert_webhook(&self, ep: &WebhookEndpoint, audit: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.audited(&ep.workspace_id, audit, ep.created_at).await?;
        sqlx::query(&format!(
            "INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, 0, NULL, NULL, $7, $7)"
        ))
        .bind(&ep.id)
        .bind(&ep.workspace_id)
        .bind(&ep.url)
        .bind(&ep.description)
        .bind(events_text(&ep.events))
        .bind(&ep.secret_sealed)
        .bind(to_ms(ep.created_at))
        .execute(&mut **tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_webhooks(&self, workspace_id: &str) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let rows = sqlx::query_as::<_, EndpointRow>(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE workspace_id = $1 ORDER BY created_at, id"
        ))
        .bind(workspace_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(EndpointRow::endpoint).collect()
    }

    pub async fn webhook(&self, workspace_id: &str, id: &str) -> Result<Option<WebhookEndpoint>, StoreError> {
        endpoint_by_id(&mut *self.pool.acquire().await?, workspace_id, id).await
    }

    /// Applies `c`; `None` when the workspace has no such endpoint. Disabling cancels the
    /// pending deliveries; re-enabling clears the reason and the failure streak.
    pub async fn update_webhook(
        &self,
        workspace_id: &str,
        id: &str,
        c: &WebhookChanges,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        let Some(mut ep) = endpoint_by_id(&mut tx, workspace_id, id).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        if let Some(u) = &c.url {
            ep.url = u.clone();
        }
        if let Some(e) = &c.events {
            ep.events = e.clone();
        }
        if let Some(d) = &c.description {
            ep.description = d.clone();
        }
        match c.disabled {
            Some(true) if !ep.disabled => {
                ep.disabled = true;
                ep.disabled_reason = Some("manual".into());
                cancel_pending(&mut tx, id, now).await?;
            }
            Some(false) => {
                ep.disabled = false;
                ep.disabled_reason = None;
                ep.failing_since = None;
            }
            _ => {}
        }
        ep.updated_at = now;
        save_endpoint(&mut tx, &ep).await?;
        tx.commit().await?;
        Ok(Some(ep))
    }

    /// Replaces the secret; the previous one keeps signing until `previous_until`.
    pub async fn rotate_webhook_secret(
        &self,
        workspace_id: &str,
        id: &str,
        new_sealed: &str,
        previous_until: DateTime<Utc>,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        let Some(mut ep) = endpoint_by_id(&mut tx, workspace_id, id).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        ep.previous_secret_sealed = Some(std::mem::replace(&mut ep.secret_sealed, new_sealed.to_string()));
        ep.previous_secret_until = Some(previous_until);
        ep.updated_at = now;
        save_endpoint(&mut tx, &ep).await?;
        tx.commit().await?;
        Ok(Some(ep))
    }

    /// Deletes an endpoint and cancels what it still had to receive; `false` when there was
    /// none. Its delivery log stays until pruned.
    pub async fn delete_webhook(
        &self,
        workspace_id: &str,
        id: &str,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        let n = sqlx::query("DELETE FROM webhook_endpoints WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        cancel_pending(&mut tx, id, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Queues a `webhook.test` message for one endpoint, recorded as `audit` says.
    pub async fn enqueue_test(
        &self,
        ep: &WebhookEndpoint,
        message_id: &str,
        body: &Value,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<String, StoreError> {
        let mut tx = self.audited(&ep.workspace_id, audit, now).await?;
        insert_message(&mut tx, message_id, &ep.workspace_id, "webhook.test", &body.to_string(), now).await?;
        let id = format!("whd_{message_id}");
        insert_delivery(&mut tx, &id, message_id, &ep.workspace_id, Some(&ep.id), None, None, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Claims up to `limit` deliveries that are due, leasing them until `now + lease`. Among
    /// several nodes each delivery goes to one (`FOR UPDATE SKIP LOCKED` on PostgreSQL; an
    /// SQLite writer holds the whole database). A node that dies holding a lease leaves it
    /// to run out: the delivery is then claimed again (at least once).
    pub async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        // A read first: most polls find nothing, and then take no write lock (SQLite) or row
        // locks (PostgreSQL).
        let due = sqlx::query(
            "SELECT 1 FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
             AND (lease_until IS NULL OR lease_until <= $1) LIMIT 1",
        )
        .bind(to_ms(now))
        .fetch_optional(&self.pool)
        .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let sql = format!(
            "SELECT d.id, d.message_id, d.workspace_id, d.endpoint_id, d.callback_url, d.attempts, m.body \
             FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id \
             WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND (d.lease_until IS NULL OR d.lease_until <= $1) \
             ORDER BY d.next_attempt_at LIMIT $2{}",
            self.dialect.skip_locked("d")
        );
        let rows = sqlx::query_as::<_, DueRow>(&sql).bind(to_ms(now)).bind(limit).fetch_all(&mut *tx).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            sqlx::query("UPDATE webhook_deliveries SET lease_until = $1 WHERE id = $2")
                .bind(to_ms(now + lease))
                .bind(&r.id)
                .execute(&mut *tx)
                .await?;
            let endpoint_id = r.endpoint_id;
            let mut d = DueDelivery {
                id: r.id,
                message_id: r.message_id,
                workspace_id: r.workspace_id,
                url: r.callback_url.unwrap_or_default(),
                endpoint_id: endpoint_id.clone(),
                body: r.body,
                attempts: attempts_of(r.attempts),
                secret_sealed: None,
                previous_secret_sealed: None,
            };
            if let Some(ep) = endpoint_id {
                let Some(ep) = endpoint_by_id(&mut tx, &d.workspace_id, &ep).await? else {
                    // Its endpoint is gone: nothing to send it to.
                    sqlx::query("UPDATE webhook_deliveries SET status = 'cancelled', finished_at = $1, lease_until = NULL WHERE id = $2")
                        .bind(to_ms(now))
                        .bind(&d.id)
                        .execute(&mut *tx)
                        .await?;
                    continue;
                };
                d.url = ep.url;
                d.secret_sealed = Some(ep.secret_sealed);
                d.previous_secret_sealed =
                    ep.previous_secret_sealed.filter(|_| ep.previous_secret_until.is_some_and(|t| t > now));
            }
            out.push(d);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Records an attempt and what follows it. A failure starts (or continues) the
    /// endpoint's failure streak; a streak older than `disable_after` or a `410` disables the
    /// endpoint, with a system event saying so.
    pub async fn finish_attempt(
        &self,
        d: &DueDelivery,
        a: &Attempt,
        next: AfterAttempt,
        disable_after: Duration,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let now = a.time;
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, time, status, error, duration_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&d.id)
        .bind(to_ms(now))
        .bind(a.status.map(i32::from))
        .bind(&a.error)
        .bind(a.duration_ms)
        .execute(&mut *tx)
        .await?;
        let (status, next_at) = match next {
            AfterAttempt::Delivered => (DeliveryStatus::Delivered, None),
            AfterAttempt::RetryAt(t) => (DeliveryStatus::Pending, Some(t)),
            AfterAttempt::Failed => (DeliveryStatus::Failed, None),
            AfterAttempt::Gone => (DeliveryStatus::Cancelled, None),
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, next_attempt_at = COALESCE($2, next_attempt_at), \
             lease_until = NULL, last_status = $3, last_error = $4, finished_at = $5 WHERE id = $6 AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(next_at.map(to_ms))
        .bind(a.status.map(i32::from))
        .bind(&a.error)
        .bind((next_at.is_none()).then(|| to_ms(now)))
        .bind(&d.id)
        .execute(&mut *tx)
        .await?;
        if let Some(ep_id) = &d.endpoint_id {
            if let Some(ep) = endpoint_by_id(&mut tx, &d.workspace_id, ep_id).await? {
                let system = AuditRecord::system(AuditAction::WebhookDisabled, endpoint_target(&ep), json!({}));
                match next {
                    AfterAttempt::Delivered => {
                        sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1")
                            .bind(ep_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    AfterAttempt::Gone if !ep.disabled => disable_in(&mut tx, &ep, "gone", &system, now).await?,
                    _ if ep.disabled => {}
                    _ => {
                        let since = ep.failing_since.unwrap_or(now);
                        if now - since >= disable_after {
                            disable_in(&mut tx, &ep, "failing", &system, now).await?;
                        } else if ep.failing_since.is_none() {
                            sqlx::query("UPDATE webhook_endpoints SET failing_since = $1 WHERE id = $2")
                                .bind(to_ms(now))
                                .bind(ep_id)
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deliveries to one endpoint, or to one key's callback URL, newest first, with their
    /// attempts.
    pub async fn list_deliveries(
        &self,
        workspace_id: &str,
        to: DeliveriesTo<'_>,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let (which, id) = match to {
            DeliveriesTo::Endpoint(id) => ("d.endpoint_id = $2", id),
            DeliveriesTo::KeyCallback(id) => ("d.endpoint_id IS NULL AND d.key_id = $2", id),
        };
        let rows = sqlx::query_as::<_, DeliveryRow>(&format!(
            "SELECT d.id, d.message_id, d.status, d.endpoint_id, d.key_id, d.attempts, d.next_attempt_at, d.last_status, \
             d.last_error, d.created_at, d.finished_at, m.type, m.body FROM webhook_deliveries d \
             JOIN webhook_messages m ON m.id = d.message_id \
             WHERE d.workspace_id = $1 AND {which} ORDER BY d.created_at DESC, d.id DESC LIMIT $3"
        ))
        .bind(workspace_id)
        .bind(id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let status = DeliveryStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Internal(format!("unknown delivery status {:?}", r.status)))?;
            out.push(Delivery {
                next_attempt_at: (status == DeliveryStatus::Pending).then(|| from_ms(r.next_attempt_at)),
                id: r.id,
                message_id: r.message_id,
                kind: r.kind,
                body: r.body,
                status,
                endpoint_id: r.endpoint_id,
                key_id: r.key_id,
                attempts: attempts_of(r.attempts),
                last_status: status_of(r.last_status),
                last_error: r.last_error,
                created_at: from_ms(r.created_at),
                finished_at: r.finished_at.map(from_ms),
                log: Vec::new(),
            });
        }
        if out.is_empty() {
            return Ok(out);
        }
        let attempts = sqlx::query_as::<_, AttemptRow>(&format!(
            "SELECT a.delivery_id, a.time, a.status, a.error, a.duration_ms FROM webhook_attempts a \
             JOIN webhook_deliveries d ON d.id = a.delivery_id \
             WHERE d.workspace_id = $1 AND {which} AND d.created_at >= $3 ORDER BY a.id"
        ))
        .bind(workspace_id)
        .bind(id)
        .bind(out.iter().map(|d| to_ms(d.created_at)).min().unwrap_or_default())
        .fetch_all(&self.pool)
        .await?;
        for r in attempts {
            if let Some(d) = out.iter_mut().find(|d| d.id == r.delivery_id) {
                d.log.push(Attempt {
                    time: from_ms(r.time),
                    status: status_of(r.status),
                    error: r.error,
                    duration_ms: r.duration_ms,
                });
            }
        }
        Ok(out)
    }

    /// Makes a finished (or pending) delivery due now, for one more attempt; `false` when the
    /// endpoint has no such delivery.
    pub async fn retry_delivery(
        &self,
        workspace_id: &str,
        endpoint_id: &str,
        delivery_id: &str,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        let n = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $1, lease_until = NULL, finished_at = NULL \
             WHERE workspace_id = $2 AND endpoint_id = $3 AND id = $4",
        )
        .bind(to_ms(now))
        .bind(workspace_id)
        .bind(endpoint_id)
        .bind(delivery_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Deliveries not yet made (pending, due or not), server-wide.
    pub async fn outbox_pending(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Drops finished deliveries (and their attempts and messages) older than `before`.
    pub async fn prune_deliveries(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let b = to_ms(before);
        sqlx::query(
            "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries \
             WHERE status <> 'pending' AND created_at < $1)",
        )
        .bind(b)
        .execute(&mut *tx)
        .await?;
        let n = sqlx::query("DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at < $1")
            .bind(b)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "DELETE FROM webhook_messages WHERE created_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM webhook_deliveries d WHERE d.message_id = webhook_messages.id)",
        )
        .bind(b)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// The workspace's sealed callback signing key and its public text, if made yet.
    pub async fn webhook_signing_key(&self, workspace_id: &str) -> Result<Option<(String, String)>, StoreError> {
        Ok(sqlx::query_as("SELECT sealed, public_key FROM webhook_signing_keys WHERE workspace_id = $1")
            .bind(workspace_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Keeps a newly made signing key unless another node stored one first; either way
    /// answers the one kept.
    pub async fn put_webhook_signing_key(
        &self,
        workspace_id: &str,
        sealed: &str,
        public_key: &str,
        now: DateTime<Utc>,
    ) -> Result<(String, String), StoreError> {
        sqlx::query(
            "INSERT INTO webhook_signing_keys (workspace_id, sealed, public_key, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (workspace_id) DO NOTHING",
        )
        .bind(workspace_id)
        .bind(sealed)
        .bind(public_key)
        .bind(to_ms(now))
        .execute(&self.pool)
        .await?;
        self.webhook_signing_key(workspace_id)
            .await?
            .ok_or_else(|| StoreError::Internal("signing key vanished after insert".into()))
    }

    /// Tells each key whose expiry falls within its workspace's `expiry_warning_days` that
    /// it is coming (`key.expiring`), and each key whose expiry passed in the last
    /// `look_back` that it has (`key.expired`): system events, each once per expiry —
    /// claimed by a conditional update, so among several nodes one tells it. Answers how
    /// many events were written.
    pub async fn announce_expiries(&self, now: DateTime<Utc>, look_back: Duration) -> Result<u64, StoreError> {
        let mut told = 0;
        for ws in self.workspace_ids().await? {
            let warn = Duration::days(i64::from(self.policy(&ws).await?.expiry_warning_days));
            for (col, action, from, to) in [
                ("expiry_warned_for", AuditAction::KeyExpiring, now, now + warn),
                ("expiry_announced_for", AuditAction::KeyExpired, now - look_back, now),
            ] {
                let sql = format!(
                    "SELECT id, name, expires_at FROM api_keys WHERE workspace_id = $1 AND expires_at > $2 AND expires_at <= $3 \
                     AND status IN ('active', 'pending_update', 'pending_revoke') \
                     AND ({col} IS NULL OR {col} <> expires_at) ORDER BY expires_at LIMIT 500"
                );
                let rows = sqlx::query_as::<_, (String, Option<String>, i64)>(&sql)
                    .bind(&ws)
                    .bind(to_ms(from))
                    .bind(to_ms(to))
                    .fetch_all(&self.pool)
                    .await?;
                for (id, name, at) in rows {
                    let target = AuditTarget { kind: "key".into(), id: Some(id.clone()), name };
                    let what = json!({"expires_at": keyward_core::clock::from_ms(at)});
                    let rec = AuditRecord::system(action, target, what);
                    let mut tx = self.audited(&ws, &rec, now).await?;
                    let claimed = sqlx::query(&format!(
                        "UPDATE api_keys SET {col} = expires_at WHERE id = $1 AND expires_at = $2 \
                         AND ({col} IS NULL OR {col} <> expires_at)"
                    ))
                    .bind(&id)
                    .bind(at)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                    if claimed == 0 {
                        tx.rollback().await?;
                        continue;
                    }
                    tx.commit().await?;
                    told += 1;
                }
            }
        }
        Ok(told)
    }
}
