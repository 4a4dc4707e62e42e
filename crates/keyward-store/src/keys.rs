//! API key queries. Every state change is one transaction that also records a change event,
//! so other nodes drop their cached copy.

use chrono::{DateTime, Utc};
use futures_core::stream::BoxStream;
use futures_util::StreamExt;
use keyward_core::clock::to_ms;
use keyward_core::model::{KeyKind, KeyRecord, KeyStatus};
use keyward_core::validate::KeyChanges;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::Any;

use crate::approvals::{cancel_for_key, insert_approval, NewApproval};
use crate::audit::AuditRecord;
use crate::events::emit;
use crate::idempotency::{insert_idempotency, IdempotencyRecord, InsertOutcome};
use crate::key_state::{apply_changes, cache_key, insert_row, refusal, retire};
use crate::rows::{key_from_row, KEY_COLUMNS};
use crate::{column, Column, Conflict, Store, StoreError};

/// Filters of `GET /v1/keys`.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    pub status: Option<StatusFilter>,
    pub environment: Option<String>,
    pub kind: Option<KeyKind>,
    /// Only the keys of the identity with this `external_id`.
    pub external_id: Option<String>,
    /// Only the keys of this owner: the service account that owns them, else the member who
    /// made them (as `KeyView::owner` names it).
    pub owner: Option<String>,
    /// Only the keys owned by a service account (`ServiceAccount`) or by no service account
    /// (`Member`).
    pub owner_type: Option<OwnerType>,
    pub q: Option<String>,
    /// The last id of the previous page; pages run newest first.
    pub cursor: Option<String>,
    pub limit: u32,
}

pub type StatusFilter = KeyStatus;

/// Who owns a key, for [`KeyFilter::owner_type`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerType {
    ServiceAccount,
    Member,
}

/// The fields of a stored key that decide whether a cached copy is still right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyVersion {
    pub status: KeyStatus,
    pub expires_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// A use of a key seen by the verify path, flushed in batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastUsed {
    pub key_id: String,
    pub at_ms: i64,
    pub ip: Option<String>,
}

/// What a rotation needs besides the successor's construction.
#[derive(Debug, Clone, Copy)]
pub struct Rotation<'a> {
    pub workspace_id: &'a str,
    pub id: &'a str,
    pub now: DateTime<Utc>,
    /// `None`: the old key is revoked at once; otherwise it expires then.
    pub grace_end: Option<DateTime<Utc>>,
    pub new_id: &'a str,
    pub idem: Option<&'a IdempotencyRecord>,
    /// Rotation under approval: the successor waits (pending_create) and the old key is
    /// retired only when the request is approved.
    pub approval: Option<&'a NewApproval>,
    pub audit: &'a AuditRecord,
}

#[derive(Debug)]
pub enum RotateOutcome {
    Rotated {
        old: Box<KeyRecord>,
        new: Box<KeyRecord>,
    },
    /// The same `Idempotency-Key` was used before: its first answer.
    Replayed(IdempotencyRecord),
    NotFound,
    /// The key exists but cannot be rotated (revoked, expired, already rotated, not secret).
    Refused(Conflict),
}

enum Arg {
    Text(String),
    Int(i64),
}

fn bind_all<'q>(mut q: Query<'q, Any, AnyArguments<'q>>, args: Vec<Arg>) -> Query<'q, Any, AnyArguments<'q>> {
    for a in args {
        q = match a {
            Arg::Text(s) => q.bind(s),
            Arg::Int(i) => q.bind(i),
        };
    }
    q
}

/// A `LIKE` pattern finding `q` anywhere, ASCII case folded (see `Dialect::ascii_lower`).
fn like_pattern(q: &str) -> String {
    let escaped = q.to_ascii_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

impl Store {
    /// Inserts a new key. With an idempotency record, a retry of the same request finds the
    /// first answer instead (`InsertOutcome::Replayed`) and nothing new is written.
    pub async fn insert_key(
        &self,
        rec: &KeyRecord,
        now: DateTime<Utc>,
        idem: Option<&IdempotencyRecord>,
        approval: Option<&NewApproval>,
        audit: &AuditRecord,
    ) -> Result<InsertOutcome, StoreError> {
        let mut tx = self.audited(&rec.workspace_id, audit, now).await?;
        if let Some(i) = idem {
            if !insert_idempotency(&mut tx, i).await? {
                tx.rollback().await?;
                return self
                    .idempotency(&i.workspace_id, &i.key_hash)
                    .await?
                    .map(InsertOutcome::Replayed)
                    .ok_or(StoreError::Conflict(Conflict::IdempotencyInFlight));
            }
        }
        // A key naming an unknown identity creates it here (its id was derived by the caller
        // the same way, so it matches; another made meanwhile under another id is a conflict).
        if let Some(x) = &rec.external_id {
            let id = crate::identities::ensure_identity(&mut tx, &rec.workspace_id, x, now).await?;
            if rec.identity_id.as_deref() != Some(id.as_str()) {
                tx.rollback().await?;
                return Err(StoreError::Conflict(Conflict::Unique("identities (made meanwhile)".into())));
            }
        }
        insert_row(&mut tx, rec).await?;
        if let Some(a) = approval {
            insert_approval(&mut tx, a).await?;
        }
        // A node may have cached "no such key" for this hash; tell it.
        if let Some(k) = cache_key(rec) {
            emit(&mut tx, &k, now).await?;
        }
        tx.commit().await?;
        Ok(InsertOutcome::Created)
    }

    pub async fn get_key(&self, workspace_id: &str, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE workspace_id = $1 AND id = $2");
        let row = sqlx::query(&sql).bind(workspace_id).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// The verify path's lookup: by the HMAC of the presented secret.
    pub async fn key_by_hash(&self, hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE hash = $1");
        let row = sqlx::query(&sql).bind(hash).fetch_optional(&self.pool).await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// The keys with a secret used at or after `since`, most recently used first, at most
    /// `limit`, streamed: what a restarted node warms its cache with (`cache/warm.rs`).
    pub fn recently_used_keys(&self, since: DateTime<Utc>, limit: i64) -> BoxStream<'_, Result<KeyRecord, StoreError>> {
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE hash IS NOT NULL AND last_used_at >= $1 \
                 ORDER BY last_used_at DESC LIMIT $2"
            )
        });
        let rows = sqlx::query(SQL.as_str()).bind(to_ms(since)).bind(limit).fetch(&self.pool);
        Box::pin(rows.map(|row| key_from_row(&row?)))
    }

    /// The signed-request path's lookup: by the registered public key (lower-case hex).
    pub async fn key_by_public_key(&self, public_key: &str) -> Result<Option<KeyRecord>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE public_key = $1");
        let row = sqlx::query(&sql).bind(public_key).fetch_optional(&self.pool).await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// One page, newest first; returns `limit + 1` rows at most so the caller can tell
    /// whether another page follows.
    pub async fn list_keys(
        &self,
        workspace_id: &str,
        f: &KeyFilter,
        now: DateTime<Utc>,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let mut sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE workspace_id = $1");
        let mut args = vec![Arg::Text(workspace_id.to_string())];
        let next = |sql: &mut String, clause: &str, arg: Arg, args: &mut Vec<Arg>| {
            args.push(arg);
            sql.push_str(&clause.replace('?', &format!("${}", args.len())));
        };
        let now_ms = to_ms(now);
        match f.status {
            None => {}
            Some(KeyStatus::Expired) => next(
                &mut sql,
                " AND status IN ('active', 'pending_update', 'pending_revoke') AND expires_at IS NOT NULL AND expires_at <= ?",
                Arg::Int(now_ms),
                &mut args,
            ),
            Some(s @ (KeyStatus::Active | KeyStatus::PendingUpdate | KeyStatus::PendingRevoke)) => {
                next(&mut sql, " AND status = ?", Arg::Text(s.as_str().into()), &mut args);
                next(&mut sql, " AND (expires_at IS NULL OR expires_at > ?)", Arg::Int(now_ms), &mut args);
            }
            Some(s) => next(&mut sql, " AND status = ?", Arg::Text(s.as_str().into()), &mut args),
        }
        if let Some(e) = &f.environment {
            next(&mut sql, " AND environment = ?", Arg::Text(e.clone()), &mut args);
        }
        if let Some(k) = f.kind {
            next(&mut sql, " AND kind = ?", Arg::Text(k.as_str().into()), &mut args);
        }
        if let Some(x) = &f.external_id {
            next(&mut sql, " AND external_id = ?", Arg::Text(x.clone()), &mut args);
        }
        if let Some(o) = &f.owner {
            next(&mut sql, " AND (service_account_id = ?", Arg::Text(o.clone()), &mut args);
            next(&mut sql, " OR (service_account_id IS NULL AND created_by = ?))", Arg::Text(o.clone()), &mut args);
        }
        match f.owner_type {
            Some(OwnerType::ServiceAccount) => sql.push_str(" AND service_account_id IS NOT NULL"),
            Some(OwnerType::Member) => sql.push_str(" AND service_account_id IS NULL"),
            None => {}
        }
        if let Some(q) = f.q.as_deref().filter(|q| !q.is_empty()) {
            let (name, start) = (self.dialect.ascii_lower("name"), self.dialect.ascii_lower("start"));
            next(&mut sql, &format!(" AND ({name} LIKE ? ESCAPE '\\'"), Arg::Text(like_pattern(q)), &mut args);
            next(&mut sql, " OR id = ?", Arg::Text(q.to_string()), &mut args);
            next(&mut sql, &format!(" OR {start} LIKE ? ESCAPE '\\')"), Arg::Text(like_pattern(q)), &mut args);
        }
        if let Some(c) = &f.cursor {
            next(&mut sql, " AND id < ?", Arg::Text(c.clone()), &mut args);
        }
        next(&mut sql, " ORDER BY id DESC LIMIT ?", Arg::Int(i64::from(f.limit) + 1), &mut args);
        let rows = bind_all(sqlx::query(&sql), args).fetch_all(&self.pool).await?;
        rows.iter().map(key_from_row).collect()
    }

    /// Applies a validated patch to an active key; `Ok(None)` when no such key. A key that is
    /// revoked, rejected or waiting on an approval request is refused.
    pub async fn update_key(
        &self,
        workspace_id: &str,
        id: &str,
        c: &KeyChanges,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        let Some(rec) = apply_changes(&mut tx, workspace_id, id, c, now, None).await? else {
            tx.rollback().await?;
            return match self.get_key(workspace_id, id).await? {
                Some(k) => Err(StoreError::Conflict(refusal(&k, now))),
                None => Ok(None),
            };
        };
        if let Some(k) = cache_key(&rec) {
            emit(&mut tx, &k, now).await?;
        }
        tx.commit().await?;
        Ok(Some(rec))
    }

    /// Revokes a key (idempotent: revoking a revoked key returns it unchanged).
    pub async fn revoke_key(
        &self,
        workspace_id: &str,
        id: &str,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let sql = format!(
            "UPDATE api_keys SET status = 'revoked', revoked_at = $1, updated_at = $1, approval_id = NULL \
             WHERE workspace_id = $2 AND id = $3 AND status NOT IN ('revoked', 'rejected') RETURNING {KEY_COLUMNS}"
        );
        let mut tx = self.audited(workspace_id, audit, now).await?;
        let row = sqlx::query(&sql).bind(to_ms(now)).bind(workspace_id).bind(id).fetch_optional(&mut **tx).await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return self.get_key(workspace_id, id).await;
        };
        let rec = key_from_row(&row)?;
        // A revoke made directly ends any request still waiting about this key.
        cancel_for_key(&mut tx, id, now).await?;
        if let Some(k) = cache_key(&rec) {
            emit(&mut tx, &k, now).await?;
        }
        tx.commit().await?;
        Ok(Some(rec))
    }

    /// Rotates a secret key in one transaction: the old key is revoked at once (`grace_end`
    /// `None`) or expires at `grace_end`, and `make_new` builds its successor.
    pub async fn rotate_key(
        &self,
        r: &Rotation<'_>,
        make_new: impl FnOnce(&KeyRecord) -> KeyRecord,
    ) -> Result<RotateOutcome, StoreError> {
        let Rotation { workspace_id, id, now, grace_end, new_id, idem, approval, audit } = *r;
        // Claim the key first: this takes the write lock and returns its current settings,
        // which the successor copies.
        let claim = format!(
            "UPDATE api_keys SET updated_at = $1, replaced_by = $2 \
             WHERE workspace_id = $3 AND id = $4 AND kind = 'secret' AND status = 'active' \
             AND replaced_by IS NULL AND (expires_at IS NULL OR expires_at > $1) RETURNING {KEY_COLUMNS}"
        );
        let mut tx = self.audited(workspace_id, audit, now).await?;
        if let Some(i) = idem {
            if !insert_idempotency(&mut tx, i).await? {
                tx.rollback().await?;
                return self
                    .idempotency(&i.workspace_id, &i.key_hash)
                    .await?
                    .map(RotateOutcome::Replayed)
                    .ok_or(StoreError::Conflict(Conflict::IdempotencyInFlight));
            }
        }
        let claimed = sqlx::query(&claim)
            .bind(to_ms(now))
            .bind(new_id)
            .bind(workspace_id)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = claimed else {
            tx.rollback().await?;
            return Ok(match self.get_key(workspace_id, id).await? {
                None => RotateOutcome::NotFound,
                Some(r) if r.kind != KeyKind::Secret => RotateOutcome::Refused(Conflict::NotRotatable),
                // Still usable, so the claim failed on `replaced_by`: it is in its grace period.
                Some(r) if r.effective_status(now) == KeyStatus::Active => {
                    RotateOutcome::Refused(Conflict::AlreadyRotated)
                }
                Some(r) => RotateOutcome::Refused(refusal(&r, now)),
            });
        };
        let new = make_new(&key_from_row(&row)?);
        // Under approval the old key stays as it is until the request is approved.
        let old = match approval {
            None => retire(&mut tx, id, grace_end, now)
                .await?
                .ok_or_else(|| StoreError::Internal("claimed key vanished".into()))?,
            Some(_) => key_from_row(&row)?,
        };
        insert_row(&mut tx, &new).await?;
        if let Some(a) = approval {
            insert_approval(&mut tx, a).await?;
        }
        for k in [cache_key(&old), cache_key(&new)].into_iter().flatten() {
            emit(&mut tx, &k, now).await?;
        }
        tx.commit().await?;
        Ok(RotateOutcome::Rotated { old: Box::new(old), new: Box::new(new) })
    }

    /// What the cache's backstop compares: `(status, expires_at, updated_at)` of the keys
    /// with these secret hashes (`by_public_key`: these public keys), by hash or public key.
    pub async fn key_versions(
        &self,
        ids: &[String],
        by_public_key: bool,
    ) -> Result<std::collections::HashMap<String, KeyVersion>, StoreError> {
        let mut out = std::collections::HashMap::with_capacity(ids.len());
        if ids.is_empty() {
            return Ok(out);
        }
        let column = if by_public_key { "public_key" } else { "hash" };
        let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {column} AS k, status, expires_at, updated_at FROM api_keys WHERE {column} IN ({})",
            marks.join(", ")
        );
        let mut q = sqlx::query_as::<_, (String, String, Option<i64>, i64)>(&sql);
        for id in ids {
            q = q.bind(id);
        }
        for (k, status, expires_at, updated_at) in q.fetch_all(&self.pool).await? {
            let status = KeyStatus::parse(&status)
                .ok_or_else(|| StoreError::Internal("unreadable status in api_keys row".into()))?;
            let v = KeyVersion {
                status,
                expires_at: expires_at.map(keyward_core::clock::from_ms),
                updated_at: keyward_core::clock::from_ms(updated_at),
            };
            out.insert(k, v);
        }
        Ok(out)
    }

    /// Every secret-key hash, streamed in storage's own order (to fill a node's set of known
    /// hashes in one read: a table scan, several times faster than pages in hash order).
    pub fn key_hashes(&self) -> Column<'_> {
        column(&self.pool, "SELECT hash FROM api_keys WHERE hash IS NOT NULL")
    }

    /// Every registered public key (lower-case hex, as verification looks them up), streamed.
    pub fn public_keys(&self) -> Column<'_> {
        column(&self.pool, "SELECT public_key FROM api_keys WHERE public_key IS NOT NULL")
    }

    pub async fn count_keys(&self, workspace_id: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) AS n FROM api_keys WHERE workspace_id = $1")
            .bind(workspace_id)
            .fetch_one(&self.pool)
            .await?)
    }
}

/// A node's running credit count for a key, written back in batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditCount {
    pub key_id: String,
    pub remaining: u64,
    pub period: i64,
    /// Written only while the stored credits are still the ones the count started from
    /// (an override meanwhile wins).
    pub set_at_ms: i64,
}

impl CreditCount {
    /// Whether this count of the same key is newer than `other`: credits set later, a later
    /// refill period, or fewer left in the same period (they only go down within one).
    pub fn is_later_than(&self, other: &CreditCount) -> bool {
        (self.set_at_ms, self.period, std::cmp::Reverse(self.remaining))
            > (other.set_at_ms, other.period, std::cmp::Reverse(other.remaining))
    }
}

impl Store {
    /// Writes running credit counts, in one transaction. Within a refill period credits
    /// only go down, so a count never raises the stored one: nodes flush on their own
    /// clocks, and a node's last sight of a shared count may be older than another's.
    /// An identity's counts (`key_id` an identity's id, `idn_…`) go to its row, by the
    /// same rule.
    pub async fn save_credits(&self, counts: &[CreditCount]) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        for c in counts {
            let table = if c.key_id.starts_with("idn_") { "identities" } else { "api_keys" };
            sqlx::query(&format!(
                "UPDATE {table} SET credits_remaining = CASE \
                   WHEN credits_period = $2 AND credits_remaining < $1 THEN credits_remaining ELSE $1 END, \
                 credits_period = $2 \
                 WHERE id = $3 AND credits_set_at = $4 AND (credits_period IS NULL OR credits_period <= $2)",
            ))
            .bind(i64::try_from(c.remaining).unwrap_or(i64::MAX))
            .bind(c.period)
            .bind(&c.key_id)
            .bind(c.set_at_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
