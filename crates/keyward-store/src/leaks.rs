//! Leaked keys: finding many keys by hash at once (GitHub sends batches), and recording a
//! key's first leak report with what the policy makes of it, in one audited transaction.
//! Other credentials' leaks are `credential_leaks.rs`'; imported keys are found by their
//! plain hashes in `imports.rs`.

use chrono::{DateTime, Utc};
use keyward_core::clock::to_ms;
use keyward_core::model::{KeyLeak, KeyRecord};

use crate::approvals::cancel_for_key;
use crate::audit::{append, AuditRecord};
use crate::events::emit;
use crate::key_state::cache_key;
use crate::rows::{key_from_row, KEY_COLUMNS};
use crate::tx::Tx;
use crate::usage::{Alert, ALERT_COLUMNS};
use crate::{Store, StoreError};

/// Hashes looked up per statement: far below either backend's bind limit.
pub(crate) const CHUNK: usize = 500;

/// A first leak report's effects, all in one transaction.
pub struct LeakFound<'a> {
    pub workspace_id: &'a str,
    pub key_id: &'a str,
    pub leak: &'a KeyLeak,
    /// The `key.leaked` event.
    pub audit: &'a AuditRecord,
    /// `Some` (the `key.revoke` event) when the policy revokes a leaked key.
    pub revoke: Option<&'a AuditRecord>,
    pub alert: &'a Alert,
    pub now: DateTime<Utc>,
}

/// What recording a leak did.
#[derive(Debug)]
pub enum LeakOutcome {
    /// The first report: recorded, and the key revoked when the policy says so.
    Recorded(KeyRecord),
    /// Reported before: nothing changed (a repeated report grows nothing).
    Already(KeyRecord),
    /// The key is gone.
    Gone,
}

impl Store {
    /// The keys (any state) whose hash is one of `hashes`, in as few statements as the
    /// batch allows.
    pub async fn keys_by_hashes(&self, hashes: &[String]) -> Result<Vec<KeyRecord>, StoreError> {
        let mut out = Vec::new();
        for chunk in hashes.chunks(CHUNK) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE hash IN ({})", marks.join(", "));
            let mut q = sqlx::query(&sql);
            for h in chunk {
                q = q.bind(h);
            }
            for row in q.fetch_all(&self.pool).await? {
                out.push(key_from_row(&row)?);
            }
        }
        Ok(out)
    }

    /// Records a key's first leak report: marks it, revokes it when `f.revoke` says so
    /// (cancelling requests about it and telling every node, as a manual revoke does),
    /// raises the `leaked` alert and appends the events. A key reported before is left
    /// as it is.
    pub async fn record_leak(&self, f: &LeakFound<'_>) -> Result<LeakOutcome, StoreError> {
        let mut tx = self.audited(f.workspace_id, f.audit, f.now).await?;
        let mark = format!(
            "UPDATE api_keys SET leaked_at = $1, leak_source = $2, leak_url = $3, updated_at = $4 \
             WHERE workspace_id = $5 AND id = $6 AND leaked_at IS NULL RETURNING {KEY_COLUMNS}"
        );
        let row = sqlx::query(&mark)
            .bind(to_ms(f.leak.at))
            .bind(&f.leak.source)
            .bind(&f.leak.url)
            .bind(to_ms(f.now))
            .bind(f.workspace_id)
            .bind(f.key_id)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(match self.get_key(f.workspace_id, f.key_id).await? {
                Some(k) => LeakOutcome::Already(k),
                None => LeakOutcome::Gone,
            });
        };
        let mut rec = key_from_row(&row)?;
        if let Some(revoke) = f.revoke {
            let sql = format!(
                "UPDATE api_keys SET status = 'revoked', revoked_at = $1, updated_at = $1, approval_id = NULL \
                 WHERE workspace_id = $2 AND id = $3 AND status NOT IN ('revoked', 'rejected') RETURNING {KEY_COLUMNS}"
            );
            let revoked = sqlx::query(&sql)
                .bind(to_ms(f.now))
                .bind(f.workspace_id)
                .bind(f.key_id)
                .fetch_optional(&mut **tx)
                .await?;
            if let Some(row) = revoked {
                rec = key_from_row(&row)?;
                cancel_for_key(&mut tx, f.key_id, f.now).await?;
                append(&mut tx, f.workspace_id, revoke, f.now).await?;
            }
        }
        insert_alert(&mut tx, f.alert).await?;
        if let Some(k) = cache_key(&rec) {
            emit(&mut tx, &k, f.now).await?;
        }
        tx.commit().await?;
        Ok(LeakOutcome::Recorded(rec))
    }
}

/// Raises a leak's alert inside `tx` (once: a race raising the same one keeps the first).
pub(crate) async fn insert_alert(tx: &mut Tx, a: &Alert) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO alerts ({ALERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL) \
         ON CONFLICT (key_id, kind, window_start, subject) DO NOTHING"
    ))
    .bind(&a.id)
    .bind(&a.workspace_id)
    .bind(&a.key_id)
    .bind(&a.kind)
    .bind(to_ms(a.window_start))
    .bind(&a.subject)
    .bind(a.detail.to_string())
    .bind(to_ms(a.created_at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
