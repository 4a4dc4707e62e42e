//! Verification counts (added by every node's flush, rolled up into hours and days by one
//! node), the addresses each key was seen from, alerts, and leases for background work that
//! one node does at a time.

use chrono::{DateTime, Duration, Utc};
use keyward_core::audit::AuditTarget;
use keyward_core::audit_action::AuditAction;
use keyward_core::clock::{from_ms, to_ms};
use serde_json::{json, Value};

use crate::audit::append;
use crate::{AuditRecord, LastUsed, Store, StoreError};

/// Counts of one code in one minute for one key (`key_id` empty when the key was not known,
/// `workspace_id` empty when neither was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub workspace_id: String,
    pub key_id: String,
    pub start_ms: i64,
    pub code: &'static str,
    pub count: u64,
}

/// Counts of one code in one minute for one key under one tag its verify requests named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagUsageRow {
    pub workspace_id: String,
    pub key_id: String,
    pub tag: String,
    pub start_ms: i64,
    pub code: &'static str,
    pub count: u64,
}

/// An address a key was verified from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenIp {
    pub workspace_id: String,
    pub key_id: String,
    pub ip: String,
    pub at_ms: i64,
}

/// A stored count as read back.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Bucket {
    pub key_id: String,
    #[sqlx(rename = "start")]
    pub start_ms: i64,
    pub code: String,
    pub count: i64,
}

/// Rows written by one statement of a flush. Few statements make a flush cheap; but SQLite
/// finds each bound parameter by a walk over the statement's parameters, so a statement
/// with thousands of them costs more than it saves (seen in a profile).
const ROWS_PER_STATEMENT: usize = 32;

/// The rows of a multi-row `VALUES`: `rows` copies of `row`, whose `$1`… name the row's own
/// `per_row` parameters, numbered on across the rows (`($1, $2), ($3, $4)`…).
fn values_rows(rows: usize, per_row: usize, row: &str) -> String {
    let mut out = String::with_capacity(rows * (row.len() + 8));
    for i in 0..rows {
        if i > 0 {
            out.push_str(", ");
        }
        let mut rest = row;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..=at]);
            rest = &rest[at + 1..];
            let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            let k: usize = rest[..digits].parse().unwrap_or(0);
            out.push_str(&(i * per_row + k).to_string());
            rest = &rest[digits..];
        }
        out.push_str(rest);
    }
    out
}

/// Bucket widths, by their granularity name.
pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

/// An alert on a key.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub id: String,
    pub workspace_id: String,
    pub key_id: String,
    /// `spike`, `failures`, `new_ip`, `unused` or `leaked`
    pub kind: String,
    pub window_start: DateTime<Utc>,
    /// What it is about within its window (the address for `new_ip`); empty otherwise.
    pub subject: String,
    pub detail: Value,
    pub created_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
}

pub(crate) const ALERT_COLUMNS: &str =
    "id, workspace_id, key_id, kind, window_start, subject, detail, created_at, acknowledged_at, acknowledged_by";

/// An `alerts` row as stored ([`ALERT_COLUMNS`]).
#[derive(sqlx::FromRow)]
struct AlertRow {
    id: String,
    workspace_id: String,
    key_id: String,
    kind: String,
    window_start: i64,
    subject: String,
    detail: String,
    created_at: i64,
    acknowledged_at: Option<i64>,
    acknowledged_by: Option<String>,
}

impl From<AlertRow> for Alert {
    fn from(r: AlertRow) -> Alert {
        Alert {
            id: r.id,
            workspace_id: r.workspace_id,
            key_id: r.key_id,
            kind: r.kind,
            window_start: from_ms(r.window_start),
            subject: r.subject,
            detail: serde_json::from_str(&r.detail).unwrap_or(Value::String(r.detail)),
            created_at: from_ms(r.created_at),
            acknowledged_at: r.acknowledged_at.map(from_ms),
            acknowledged_by: r.acknowledged_by,
        }
    }
}

/// What a key's recent use looks like to the alert rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyActivity {
    pub workspace_id: String,
    pub key_id: String,
    pub total: i64,
    pub valid: i64,
}

/// What one flush wrote: the addresses new to a key already seen from another one, and the
/// rows the database refused (and that were left out).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UsageWritten {
    pub new_ips: Vec<SeenIp>,
    pub refused: u64,
}

/// Runs `statement` in a savepoint when `each` (one row a statement): a row the database
/// refuses as input is rolled back alone and counted in `refused` (answering `None`), so it
/// cannot keep the rest of the flush from being written. Any other error fails the flush.
macro_rules! guarded {
    ($tx:expr, $each:expr, $refused:expr, $statement:expr) => {{
        if $each {
            sqlx::query("SAVEPOINT usage_row").execute(&mut *$tx).await?;
        }
        match $statement.await.map_err(StoreError::from) {
            Ok(v) => {
                if $each {
                    sqlx::query("RELEASE SAVEPOINT usage_row").execute(&mut *$tx).await?;
                }
                Some(v)
            }
            Err(StoreError::InvalidText) if $each => {
                sqlx::query("ROLLBACK TO SAVEPOINT usage_row").execute(&mut *$tx).await?;
                sqlx::query("RELEASE SAVEPOINT usage_row").execute(&mut *$tx).await?;
                $refused += 1;
                None
            }
            Err(e) => return Err(e),
        }
    }};
}

impl Store {
    /// Writes one flush: last-used marks, counts (added to what other nodes wrote) and the
    /// addresses seen, in one transaction — all or nothing, so a failed flush can be retried
    /// whole. When the database refuses a row as input (a NUL, a value too large to index),
    /// the flush is written again row by row and only the refused rows are left out, counted
    /// in the answer: one bad row never holds back the others.
    pub async fn record_usage(
        &self,
        marks: &[LastUsed],
        counts: &[UsageRow],
        ips: &[SeenIp],
        tags: &[TagUsageRow],
    ) -> Result<UsageWritten, StoreError> {
        if marks.is_empty() && counts.is_empty() && ips.is_empty() && tags.is_empty() {
            return Ok(UsageWritten::default());
        }
        match self.write_usage(marks, counts, ips, tags, false).await {
            Err(StoreError::InvalidText) => self.write_usage(marks, counts, ips, tags, true).await,
            written => written,
        }
    }

    /// One attempt of [`Store::record_usage`]: many rows a statement, or (`each`) one row a
    /// statement, each in a savepoint, the refused ones left out.
    async fn write_usage(
        &self,
        marks: &[LastUsed],
        counts: &[UsageRow],
        ips: &[SeenIp],
        tags: &[TagUsageRow],
        each: bool,
    ) -> Result<UsageWritten, StoreError> {
        let per_statement = if each { 1 } else { ROWS_PER_STATEMENT };
        let mut refused = 0u64;
        let mut tx = self.begin().await?;
        for chunk in marks.chunks(per_statement) {
            let values = values_rows(chunk.len(), 3, "($1, CAST($2 AS BIGINT), CAST($3 AS TEXT))");
            // VALUES columns are column1… on both backends.
            let sql = format!(
                "UPDATE api_keys SET last_used_at = v.column2, last_used_ip = v.column3 FROM (VALUES {}) AS v \
                 WHERE api_keys.id = v.column1 AND (api_keys.last_used_at IS NULL OR api_keys.last_used_at < v.column2)",
                values
            );
            let mut q = sqlx::query(&sql);
            for u in chunk {
                q = q.bind(&u.key_id).bind(u.at_ms).bind(&u.ip);
            }
            guarded!(tx, each, refused, q.execute(&mut *tx));
        }
        // Many rows a statement: a flush of thousands of keys is a few statements, not
        // thousands (each row is unique within a flush, as ON CONFLICT DO UPDATE requires).
        for chunk in counts.chunks(per_statement) {
            let values = values_rows(chunk.len(), 5, "('minute', $1, $2, $3, $4, $5)");
            let sql = format!(
                "INSERT INTO usage_counts (granularity, workspace_id, key_id, start, code, count) VALUES {} \
                 ON CONFLICT (granularity, workspace_id, key_id, start, code) \
                 DO UPDATE SET count = usage_counts.count + excluded.count",
                values
            );
            let mut q = sqlx::query(&sql);
            for c in chunk {
                q = q
                    .bind(&c.workspace_id)
                    .bind(&c.key_id)
                    .bind(c.start_ms)
                    .bind(c.code)
                    .bind(i64::try_from(c.count).unwrap_or(i64::MAX));
            }
            guarded!(tx, each, refused, q.execute(&mut *tx));
        }
        for chunk in tags.chunks(per_statement) {
            let values = values_rows(chunk.len(), 6, "('minute', $1, $2, $3, $4, $5, $6)");
            let sql = format!(
                "INSERT INTO usage_tag_counts (granularity, workspace_id, key_id, tag, start, code, count) VALUES {} \
                 ON CONFLICT (granularity, workspace_id, key_id, tag, start, code) \
                 DO UPDATE SET count = usage_tag_counts.count + excluded.count",
                values
            );
            let mut q = sqlx::query(&sql);
            for c in chunk {
                q = q
                    .bind(&c.workspace_id)
                    .bind(&c.key_id)
                    .bind(&c.tag)
                    .bind(c.start_ms)
                    .bind(c.code)
                    .bind(i64::try_from(c.count).unwrap_or(i64::MAX));
            }
            guarded!(tx, each, refused, q.execute(&mut *tx));
        }
        // Addresses: those new to their key are inserted (and answered, when the key was seen
        // from another address before); the others get their last sighting moved on. Both in
        // batches: in steady use every key of a flush was seen from a known address.
        let mut inserted: Vec<(String, String)> = Vec::new();
        let mut left_out: Vec<&SeenIp> = Vec::new();
        for chunk in ips.chunks(per_statement) {
            let values = values_rows(chunk.len(), 4, "($1, $2, $3, $4, $4)");
            let sql = format!(
                "INSERT INTO key_ips (key_id, workspace_id, ip, first_seen, last_seen) VALUES {} \
                 ON CONFLICT (key_id, ip) DO NOTHING RETURNING key_id, ip",
                values
            );
            let mut q = sqlx::query_as::<_, (String, String)>(&sql);
            for s in chunk {
                q = q.bind(&s.key_id).bind(&s.workspace_id).bind(&s.ip).bind(s.at_ms);
            }
            match guarded!(tx, each, refused, q.fetch_all(&mut *tx)) {
                Some(rows) => inserted.extend(rows),
                None => left_out.extend(chunk),
            }
        }
        let is_new = |s: &SeenIp| inserted.iter().any(|(k, ip)| *k == s.key_id && *ip == s.ip);
        let refused_ip = |s: &SeenIp| left_out.iter().any(|l| std::ptr::eq(*l, s));
        let known: Vec<&SeenIp> = ips.iter().filter(|s| !is_new(s) && !refused_ip(s)).collect();
        for chunk in known.chunks(per_statement) {
            let values = values_rows(chunk.len(), 3, "($1, CAST($2 AS TEXT), CAST($3 AS BIGINT))");
            let sql = format!(
                "UPDATE key_ips SET last_seen = v.column3 FROM (VALUES {}) AS v \
                 WHERE key_ips.key_id = v.column1 AND key_ips.ip = v.column2 AND key_ips.last_seen < v.column3",
                values
            );
            let mut q = sqlx::query(&sql);
            for s in chunk {
                q = q.bind(&s.key_id).bind(&s.ip).bind(s.at_ms);
            }
            guarded!(tx, each, refused, q.execute(&mut *tx));
        }
        let mut new_ips = Vec::new();
        for s in ips.iter().filter(|s| is_new(s)) {
            let others: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM key_ips WHERE key_id = $1 AND ip <> $2")
                .bind(&s.key_id)
                .bind(&s.ip)
                .fetch_one(&mut *tx)
                .await?;
            if others > 0 {
                new_ips.push(s.clone());
            }
        }
        tx.commit().await?;
        Ok(UsageWritten { new_ips, refused })
    }

    /// Stored counts of `granularity` (`minute`, `hour` or `day`) in `[from, to)`, for one
    /// key or (with `key_id` `None`) every key of the workspace; with `tag`, only the
    /// verifications that named it.
    pub async fn usage_buckets(
        &self,
        granularity: &str,
        workspace_id: &str,
        key_id: Option<&str>,
        tag: Option<&str>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Bucket>, StoreError> {
        self.usage_buckets_in(granularity, workspace_id, key_id, tag, None, from, to).await
    }

    /// [`Store::usage_buckets`], and with `environment` only the keys of that environment
    /// (verifications of unknown keys, which have none, left out).
    #[allow(clippy::too_many_arguments)]
    pub async fn usage_buckets_in(
        &self,
        granularity: &str,
        workspace_id: &str,
        key_id: Option<&str>,
        tag: Option<&str>,
        environment: Option<&str>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Bucket>, StoreError> {
        let mut sql = String::from(match tag {
            None => {
                "SELECT key_id, start, code, count FROM usage_counts WHERE granularity = $1 AND workspace_id = $2 \
                 AND start >= $3 AND start < $4"
            }
            Some(_) => {
                "SELECT key_id, start, code, count FROM usage_tag_counts WHERE granularity = $1 AND workspace_id = $2 \
                 AND start >= $3 AND start < $4 AND tag = $5"
            }
        });
        let mut n = if tag.is_some() { 5 } else { 4 };
        if key_id.is_some() {
            n += 1;
            sql.push_str(&format!(" AND key_id = ${n}"));
        }
        if environment.is_some() {
            n += 1;
            sql.push_str(&format!(
                " AND key_id IN (SELECT id FROM api_keys WHERE workspace_id = $2 AND environment = ${n})"
            ));
        }
        sql.push_str(" ORDER BY start");
        let mut q = sqlx::query_as(&sql).bind(granularity).bind(workspace_id).bind(to_ms(from)).bind(to_ms(to));
        if let Some(t) = tag {
            q = q.bind(t);
        }
        if let Some(k) = key_id {
            q = q.bind(k);
        }
        if let Some(e) = environment {
            q = q.bind(e);
        }
        Ok(q.fetch_all(&self.pool).await?)
    }

    /// Verifications of each of `key_ids` since `since` (minute buckets).
    pub async fn requests_since(
        &self,
        workspace_id: &str,
        key_ids: &[String],
        since: DateTime<Utc>,
    ) -> Result<std::collections::HashMap<String, i64>, StoreError> {
        let mut out = std::collections::HashMap::new();
        if key_ids.is_empty() {
            return Ok(out);
        }
        let marks: Vec<String> = (0..key_ids.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "SELECT key_id, CAST(SUM(count) AS BIGINT) AS n FROM usage_counts WHERE granularity = 'minute' AND workspace_id = $1 \
             AND start >= $2 AND key_id IN ({}) GROUP BY key_id",
            marks.join(", ")
        );
        let mut q = sqlx::query_as::<_, (String, i64)>(&sql).bind(workspace_id).bind(to_ms(since));
        for k in key_ids {
            q = q.bind(k);
        }
        out.extend(q.fetch_all(&self.pool).await?);
        Ok(out)
    }

    /// Takes (or keeps) the lease `name` for `holder` until `now + ttl`; `Some(progress)` when
    /// this holder has it, `None` when another live holder does.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO leases (name, holder, until, progress) VALUES ($1, '', 0, 0) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?;
        let taken = sqlx::query_scalar(
            "UPDATE leases SET holder = $1, until = $2 WHERE name = $3 AND (until <= $4 OR holder = $1) RETURNING progress",
        )
        .bind(holder)
        .bind(to_ms(now + ttl))
        .bind(name)
        .bind(to_ms(now))
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(taken)
    }

    pub async fn set_lease_progress(&self, name: &str, holder: &str, progress: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE leases SET progress = $1 WHERE name = $2 AND holder = $3")
            .bind(progress)
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Recomputes the `coarse` buckets (`hour` from minutes, `day` from hours) starting in
    /// `[from, to)`, each as the sum of its finer buckets: idempotent, so a pass repeated (or
    /// made by two nodes) changes nothing, and counts flushed late are caught by the next.
    pub async fn roll_up(
        &self,
        fine: &str,
        coarse: &str,
        width_ms: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut start = to_ms(from).div_euclid(width_ms) * width_ms;
        let end = to_ms(to);
        let mut tx = self.begin().await?;
        while start < end {
            sqlx::query(
                "INSERT INTO usage_counts (granularity, workspace_id, key_id, start, code, count) \
                 SELECT $1, workspace_id, key_id, CAST($2 AS BIGINT), code, CAST(SUM(count) AS BIGINT) FROM usage_counts \
                 WHERE granularity = $3 AND start >= $2 AND start < $4 GROUP BY workspace_id, key_id, code \
                 ON CONFLICT (granularity, workspace_id, key_id, start, code) DO UPDATE SET count = excluded.count",
            )
            .bind(coarse)
            .bind(start)
            .bind(fine)
            .bind(start + width_ms)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO usage_tag_counts (granularity, workspace_id, key_id, tag, start, code, count) \
                 SELECT $1, workspace_id, key_id, tag, CAST($2 AS BIGINT), code, CAST(SUM(count) AS BIGINT) \
                 FROM usage_tag_counts WHERE granularity = $3 AND start >= $2 AND start < $4 \
                 GROUP BY workspace_id, key_id, tag, code \
                 ON CONFLICT (granularity, workspace_id, key_id, tag, start, code) DO UPDATE SET count = excluded.count",
            )
            .bind(coarse)
            .bind(start)
            .bind(fine)
            .bind(start + width_ms)
            .execute(&mut *tx)
            .await?;
            start += width_ms;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Drops `granularity` buckets that started before `before`.
    pub async fn prune_usage(&self, granularity: &str, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut pruned = 0;
        for sql in [
            "DELETE FROM usage_counts WHERE granularity = $1 AND start < $2",
            "DELETE FROM usage_tag_counts WHERE granularity = $1 AND start < $2",
        ] {
            pruned += sqlx::query(sql).bind(granularity).bind(to_ms(before)).execute(&self.pool).await?.rows_affected();
        }
        Ok(pruned)
    }

    /// Per key of `workspace_id`: verifications and valid ones in `[from, to)` (minute buckets).
    pub async fn key_activity(
        &self,
        workspace_id: &str,
        granularity: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<KeyActivity>, StoreError> {
        let rows = sqlx::query_as::<_, (String, i64, i64)>(
            "SELECT key_id, CAST(SUM(count) AS BIGINT) AS total, \
             CAST(SUM(CASE WHEN code = 'VALID' THEN count ELSE 0 END) AS BIGINT) AS valid \
             FROM usage_counts WHERE granularity = $1 AND workspace_id = $2 AND key_id <> '' AND start >= $3 AND start < $4 \
             GROUP BY key_id",
        )
        .bind(granularity)
        .bind(workspace_id)
        .bind(to_ms(from))
        .bind(to_ms(to))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(key_id, total, valid)| KeyActivity { workspace_id: workspace_id.to_string(), key_id, total, valid })
            .collect())
    }

    /// Live keys of the workspace not verified since `before` (never-used keys count from
    /// their creation): `(key_id, last use or creation)`.
    pub async fn idle_keys(
        &self,
        workspace_id: &str,
        before: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let rows = sqlx::query_as::<_, (String, i64)>(
            "SELECT id, COALESCE(last_used_at, created_at) AS since FROM api_keys WHERE workspace_id = $1 \
             AND status IN ('active', 'pending_update', 'pending_revoke') AND COALESCE(last_used_at, created_at) < $2 \
             ORDER BY id LIMIT 1000",
        )
        .bind(workspace_id)
        .bind(to_ms(before))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id, since)| (id, from_ms(since))).collect())
    }

    /// Raises an alert unless the same one (key, kind, window, subject) was raised already;
    /// when raised, a `usage.alert` system event (and so its webhooks and the key's
    /// callback) goes with it. Answers whether this call raised it.
    pub async fn raise_alert(&self, a: &Alert) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(&format!(
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
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !inserted {
            tx.rollback().await?;
            return Ok(false);
        }
        let name: Option<String> = sqlx::query_scalar("SELECT name FROM api_keys WHERE id = $1")
            .bind(&a.key_id)
            .fetch_optional(&mut *tx)
            .await?;
        let target = AuditTarget { kind: "key".into(), id: Some(a.key_id.clone()), name };
        let what = json!({"alert_id": a.id, "kind": a.kind, "detail": a.detail});
        append(&mut tx, &a.workspace_id, &AuditRecord::system(AuditAction::UsageAlert, target, what), a.created_at)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Alerts of a workspace, newest first; `acknowledged` filters, `key_id` narrows.
    pub async fn list_alerts(
        &self,
        workspace_id: &str,
        acknowledged: Option<bool>,
        key_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Alert>, StoreError> {
        let mut sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE workspace_id = $1");
        match acknowledged {
            Some(true) => sql.push_str(" AND acknowledged_at IS NOT NULL"),
            Some(false) => sql.push_str(" AND acknowledged_at IS NULL"),
            None => {}
        }
        if key_id.is_some() {
            sql.push_str(" AND key_id = $3");
        }
        sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT $2");
        let mut q = sqlx::query_as::<_, AlertRow>(&sql).bind(workspace_id).bind(limit);
        if let Some(k) = key_id {
            q = q.bind(k);
        }
        Ok(q.fetch_all(&self.pool).await?.into_iter().map(Alert::from).collect())
    }

    /// Acknowledges an alert (once; acknowledging again keeps the first); `None` when the
    /// workspace has no such alert.
    pub async fn acknowledge_alert(
        &self,
        workspace_id: &str,
        id: &str,
        by: &str,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<Option<Alert>, StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        let n = sqlx::query(
            "UPDATE alerts SET acknowledged_at = $1, acknowledged_by = $2 \
             WHERE workspace_id = $3 AND id = $4 AND acknowledged_at IS NULL",
        )
        .bind(to_ms(now))
        .bind(by)
        .bind(workspace_id)
        .bind(id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        let r = sqlx::query_as::<_, AlertRow>(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE workspace_id = $1 AND id = $2"
        ))
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        // Acknowledged before (or no such alert): nothing changed, nothing to record.
        if n == 1 {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(r.map(Alert::from))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_rows_number_parameters_on_across_rows() {
        assert_eq!(super::values_rows(1, 2, "($1, CAST($2 AS TEXT))"), "($1, CAST($2 AS TEXT))");
        assert_eq!(super::values_rows(3, 2, "($1, $2, $2)"), "($1, $2, $2), ($3, $4, $4), ($5, $6, $6)");
        assert_eq!(super::values_rows(2, 5, "('minute', $1, $5)"), "('minute', $1, $5), ('minute', $6, $10)");
        assert_eq!(super::values_rows(0, 3, "($1)"), "");
    }
}
