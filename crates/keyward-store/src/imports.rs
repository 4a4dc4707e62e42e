//! Keys imported by the plain SHA-256 of their secrets (`key_imports`, migration 0017). An
//! import is one transaction: every key's row, its plain hash, the change events that tell
//! every node the hashes exist, and one audit event. A key's first use re-keys it under the
//! HMAC and deletes its plain hash.

use chrono::{DateTime, Utc};
use keyward_core::clock::to_ms;
use keyward_core::model::KeyRecord;

use crate::audit::AuditRecord;
use crate::events::emit;
use crate::key_state::insert_row;
use crate::rows::{key_from_row, KEY_COLUMNS};
use crate::{Conflict, Store, StoreError};

/// Change events naming imported hashes: `im:` and, for each, the first 16 hex characters of
/// its plain hash (the 8 bytes nodes keep in their set of imported hashes), run together.
pub const IMPORT_EVENT_PREFIX: &str = "im:";

/// Hashes per import event: 6.4 kB, under PostgreSQL's 8 kB `NOTIFY` payload.
const IDS_PER_EVENT: usize = 400;

/// Rows per statement for the lookups and inserts of an import: 2,000 binds, well under
/// both backends' limits.
const CHUNK: usize = 500;

/// One key to import: its record (without `hash`) and its plain hash, lower-case hex.
#[derive(Debug, Clone)]
pub struct ImportedKey {
    pub record: KeyRecord,
    pub import_hash: String,
}

/// The change events announcing these plain hashes (lower-case hex) to every node.
pub fn import_events<'a>(hashes: impl Iterator<Item = &'a str>) -> Vec<String> {
    let ids: Vec<&str> = hashes.filter_map(|h| h.get(..16)).collect();
    ids.chunks(IDS_PER_EVENT).map(|c| format!("{IMPORT_EVENT_PREFIX}{}", c.concat())).collect()
}

fn marks(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

impl Store {
    /// Imports `keys` into `workspace_id`, all or none. A plain hash stored already (by an
    /// earlier import, in any workspace, not yet used) refuses the whole call, naming the
    /// first such item.
    pub async fn import_keys(
        &self,
        workspace_id: &str,
        keys: &[ImportedKey],
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        for (n, chunk) in keys.chunks(CHUNK).enumerate() {
            let sql = format!("SELECT import_hash FROM key_imports WHERE import_hash IN ({})", marks(1, chunk.len()));
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for k in chunk {
                q = q.bind(&k.import_hash);
            }
            let taken: std::collections::HashSet<String> = q.fetch_all(&mut **tx).await?.into_iter().collect();
            if let Some(i) = chunk.iter().position(|k| taken.contains(&k.import_hash)) {
                tx.rollback().await?;
                return Err(StoreError::Conflict(Conflict::ImportHashTaken(Some(n * CHUNK + i))));
            }
        }
        // Keys naming an unknown identity create it here, once per external id.
        let mut identities: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
        for k in keys {
            match k.record.external_id.as_deref() {
                None => insert_row(&mut tx, &k.record).await?,
                Some(x) => {
                    let id = match identities.get(x) {
                        Some(id) => id.clone(),
                        None => {
                            let id = crate::identities::ensure_identity(&mut tx, workspace_id, x, now).await?;
                            identities.insert(x, id.clone());
                            id
                        }
                    };
                    let mut record = k.record.clone();
                    record.identity_id = Some(id);
                    insert_row(&mut tx, &record).await?;
                }
            }
        }
        for chunk in keys.chunks(CHUNK) {
            let rows: Vec<String> = (0..chunk.len()).map(|i| format!("({})", marks(4 * i + 1, 4))).collect();
            let sql = format!(
                "INSERT INTO key_imports (import_hash, key_id, workspace_id, created_at) VALUES {}",
                rows.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for k in chunk {
                q = q.bind(&k.import_hash).bind(&k.record.id).bind(workspace_id).bind(to_ms(now));
            }
            q.execute(&mut **tx).await?;
        }
        for event in import_events(keys.iter().map(|k| k.import_hash.as_str())) {
            emit(&mut tx, &event, now).await?;
        }
        tx.commit().await
    }

    /// The verify path's second lookup, after the HMAC found nothing: an imported key not
    /// used yet, by the plain hash of the presented secret (lower-case hex), or — re-keyed
    /// since the HMAC was looked up, by another request's first use — by its HMAC `hash`.
    /// One round trip; a record with no `hash` is still waiting to be re-keyed.
    pub async fn key_by_import_hash(&self, import_hash: &str, hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE (id = (SELECT key_id FROM key_imports WHERE import_hash = $1) \
             AND hash IS NULL) OR hash = $2"
        );
        let row = sqlx::query(&sql).bind(import_hash).bind(hash).fetch_optional(&self.pool).await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// Imported keys not used yet whose plain hashes (lower-case hex) are among `hashes`,
    /// each with its plain hash, in as few statements as the batch allows (a batch of leak
    /// reports).
    pub async fn keys_by_import_hashes(&self, hashes: &[String]) -> Result<Vec<(String, KeyRecord)>, StoreError> {
        let mut out = Vec::new();
        for chunk in hashes.chunks(CHUNK) {
            let sql =
                format!("SELECT import_hash, key_id FROM key_imports WHERE import_hash IN ({})", marks(1, chunk.len()));
            let mut q = sqlx::query_as::<_, (String, String)>(&sql);
            for h in chunk {
                q = q.bind(h);
            }
            let pairs = q.fetch_all(&self.pool).await?;
            if pairs.is_empty() {
                continue;
            }
            let sql =
                format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE hash IS NULL AND id IN ({})", marks(1, pairs.len()));
            let mut q = sqlx::query(&sql);
            for (_, id) in &pairs {
                q = q.bind(id);
            }
            let mut keys: std::collections::HashMap<String, KeyRecord> = std::collections::HashMap::new();
            for row in q.fetch_all(&self.pool).await? {
                let k = key_from_row(&row)?;
                keys.insert(k.id.clone(), k);
            }
            out.extend(pairs.into_iter().filter_map(|(h, id)| keys.remove(&id).map(|k| (h, k))));
        }
        Ok(out)
    }

    /// Re-keys an imported key under the HMAC of its secret (`hash`, hex) once a presented
    /// secret matched its plain hash, and forgets the plain hash. Safe to run on several
    /// nodes at once: the row is claimed by deleting it, so one of them re-keys and the
    /// others find nothing (`Ok(false)`). The key's `updated_at` is left alone (its settings
    /// did not change), and the change event tells every node the HMAC now exists.
    pub async fn rekey_imported(&self, import_hash: &str, hash: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let claimed: Option<String> =
            sqlx::query_scalar("DELETE FROM key_imports WHERE import_hash = $1 RETURNING key_id")
                .bind(import_hash)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(id) = claimed else {
            tx.rollback().await?;
            return Ok(false);
        };
        let done = sqlx::query("UPDATE api_keys SET hash = $1 WHERE id = $2 AND hash IS NULL")
            .bind(hash)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        emit(&mut tx, hash, now).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Plain hashes of imported keys not used yet, streamed (to fill a node's set of
    /// imported hashes).
    pub fn import_hashes(&self) -> crate::Column<'_> {
        crate::column(&self.pool, "SELECT import_hash FROM key_imports")
    }

    /// Is the plain hash of this imported key still kept (it has not been used yet)?
    pub async fn import_pending(&self, key_id: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) AS n FROM key_imports WHERE key_id = $1")
            .bind(key_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_each_hash_prefix_within_the_payload_limit() {
        let hashes: Vec<String> = (0..1001).map(|i| format!("{i:064x}")).collect();
        let events = import_events(hashes.iter().map(String::as_str));
        assert_eq!(events.len(), 3);
        assert!(events.iter().all(|e| e.starts_with(IMPORT_EVENT_PREFIX) && e.len() < 7000));
        let ids: usize = events.iter().map(|e| (e.len() - IMPORT_EVENT_PREFIX.len()) / 16).sum();
        assert_eq!(ids, 1001);
        assert!(events[0].ends_with(&hashes[399][..16]));
    }
}
