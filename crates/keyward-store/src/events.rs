//! Change events that keep every node's verification cache honest. Each key change writes a
//! row to `key_events` in its own transaction; on PostgreSQL it also sends `NOTIFY`, which
//! nodes receive at commit (push, well under a second). Nodes sharing an SQLite file read the
//! table instead.

use chrono::{DateTime, Utc};
use keyward_core::clock::to_ms;

use crate::dialect::Subscription;
use crate::key_event::{announcement, KeyEvent};
use crate::tx::Tx;
use crate::{Store, StoreError};

pub(crate) async fn emit(tx: &mut Tx, cache_key: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    let seq: i64 = sqlx::query_scalar("INSERT INTO key_events (key_hash, created_at) VALUES ($1, $2) RETURNING seq")
        .bind(cache_key)
        .bind(to_ms(now))
        .fetch_one(&mut **tx)
        .await?;
    let dialect = tx.dialect;
    dialect.notify(tx, &announcement(seq, cache_key)).await
}

impl Store {
    /// A live stream of changes where the backend pushes them; `None` where nodes must poll
    /// [`Store::events_after`] instead.
    pub async fn subscribe(&self) -> Result<Option<Subscription>, StoreError> {
        self.dialect.subscribe(&self.url).await
    }

    /// The oldest event still kept (0 when none): a node that applied events only up to
    /// before it may have missed pruned ones.
    pub async fn first_event_seq(&self) -> Result<i64, StoreError> {
        let v: Option<i64> = sqlx::query_scalar("SELECT MIN(seq) AS m FROM key_events").fetch_one(&self.pool).await?;
        Ok(v.unwrap_or(0))
    }

    pub async fn last_event_seq(&self) -> Result<i64, StoreError> {
        let v: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) AS m FROM key_events").fetch_one(&self.pool).await?;
        Ok(v.unwrap_or(0))
    }

    pub async fn events_after(&self, seq: i64) -> Result<Vec<KeyEvent>, StoreError> {
        Ok(sqlx::query_as("SELECT seq, key_hash FROM key_events WHERE seq > $1 ORDER BY seq LIMIT 1000")
            .bind(seq)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Events older than `before` have been seen by every live node.
    pub async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let r =
            sqlx::query("DELETE FROM key_events WHERE created_at < $1").bind(to_ms(before)).execute(&self.pool).await?;
        Ok(r.rows_affected())
    }
}
