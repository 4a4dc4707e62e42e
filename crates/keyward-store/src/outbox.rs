//! The webhook outbox's writes: a message and its deliveries, inserted in the transaction of
//! the audit event they tell of (`audit::append` calls [`enqueue`]), so an event and its
//! deliveries commit, or vanish, together.

use chrono::{DateTime, Utc};
use keyward_core::audit::AuditEvent;
use keyward_core::audit_action::AuditAction;
use keyward_core::clock::to_ms;
use keyward_core::webhooks::{body, key_of, subscribed};

use crate::tx::Tx;
use crate::StoreError;

/// Writes the outbox for `e` when it is a webhook event: one message, and one delivery per
/// enabled endpoint subscribed to its type and for the key's callback URL. Runs inside the
/// event's transaction, so an event and its deliveries commit (or vanish) together.
pub(crate) async fn enqueue(tx: &mut Tx, action: AuditAction, e: &AuditEvent) -> Result<(), StoreError> {
    let Some(ty) = action.webhook_event() else { return Ok(()) };
    let rows = sqlx::query_as::<_, (String, String)>(
        "SELECT id, events FROM webhook_endpoints WHERE workspace_id = $1 AND disabled = 0",
    )
    .bind(&e.workspace_id)
    .fetch_all(&mut **tx)
    .await?;
    let mut endpoints = Vec::new();
    for (id, events) in rows {
        let events: Vec<String> = serde_json::from_str(&events).unwrap_or_default();
        if subscribed(&events, ty) {
            endpoints.push(id);
        }
    }
    let key_id = key_of(e).map(str::to_string);
    let callback: Option<String> = match &key_id {
        Some(k) => sqlx::query_scalar::<_, Option<String>>(
            "SELECT callback_url FROM api_keys WHERE id = $1 AND workspace_id = $2",
        )
        .bind(k)
        .bind(&e.workspace_id)
        .fetch_optional(&mut **tx)
        .await?
        .flatten(),
        None => None,
    };
    if endpoints.is_empty() && callback.is_none() {
        return Ok(());
    }
    let message_id = format!("msg_{}_{}", e.workspace_id, e.seq);
    insert_message(tx, &message_id, &e.workspace_id, ty, &body(ty, e).to_string(), e.time).await?;
    for (n, ep) in endpoints.iter().enumerate() {
        let id = format!("whd_{}_{}_{n}", e.workspace_id, e.seq);
        insert_delivery(tx, &id, &message_id, &e.workspace_id, Some(ep), None, None, e.time).await?;
    }
    if let Some(url) = callback {
        let id = format!("whd_{}_{}_cb", e.workspace_id, e.seq);
        insert_delivery(tx, &id, &message_id, &e.workspace_id, None, Some(&url), key_id.as_deref(), e.time).await?;
    }
    Ok(())
}

pub(crate) async fn insert_message(
    tx: &mut Tx,
    id: &str,
    workspace_id: &str,
    ty: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO webhook_messages (id, workspace_id, type, body, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(workspace_id)
        .bind(ty)
        .bind(body)
        .bind(to_ms(now))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert_delivery(
    tx: &mut Tx,
    id: &str,
    message_id: &str,
    workspace_id: &str,
    endpoint_id: Option<&str>,
    callback_url: Option<&str>,
    key_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, message_id, workspace_id, endpoint_id, callback_url, key_id, status, \
         attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)",
    )
    .bind(id)
    .bind(message_id)
    .bind(workspace_id)
    .bind(endpoint_id)
    .bind(callback_url)
    .bind(key_id)
    .bind(to_ms(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
