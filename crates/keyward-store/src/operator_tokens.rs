//! Operator tokens: the credentials of the service's operators, above every workspace.
//! Stored as their HMAC under the pepper; made and revoked with a line in the operator log.

use chrono::{DateTime, Utc};
use keyward_core::clock::{from_ms, to_ms};

use crate::operator_log::{write as log, OperatorRecord};
use crate::tx::Tx;
use crate::{Store, StoreError};

/// An operator token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorToken {
    pub id: String,
    pub name: String,
    pub start: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewOperatorToken {
    pub id: String,
    pub name: String,
    /// The token's HMAC under the pepper.
    pub hash: String,
    pub start: String,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    name: String,
    start: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl From<TokenRow> for OperatorToken {
    fn from(r: TokenRow) -> OperatorToken {
        OperatorToken {
            id: r.id,
            name: r.name,
            start: r.start,
            created_at: from_ms(r.created_at),
            revoked_at: r.revoked_at.map(from_ms),
        }
    }
}

const COLUMNS: &str = "id, name, start, created_at, revoked_at";

/// Inserts `t` inside `tx` (with `init`'s first workspace, or alone).
pub(crate) async fn insert(tx: &mut Tx, t: &NewOperatorToken) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO operator_tokens (id, name, hash, start, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.hash)
        .bind(&t.start)
        .bind(to_ms(t.created_at))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    pub async fn create_operator_token(&self, t: &NewOperatorToken, rec: &OperatorRecord) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        insert(&mut tx, t).await?;
        log(&mut tx, rec, t.created_at).await?;
        tx.commit().await
    }

    /// Every operator token, revoked ones included, oldest first.
    pub async fn list_operator_tokens(&self) -> Result<Vec<OperatorToken>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM operator_tokens ORDER BY id");
        Ok(sqlx::query_as::<_, TokenRow>(&sql).fetch_all(&self.pool).await?.into_iter().map(Into::into).collect())
    }

    /// Revokes a live token; `None` when there is no such token or it is revoked already.
    pub async fn revoke_operator_token(
        &self,
        id: &str,
        now: DateTime<Utc>,
        rec: &OperatorRecord,
    ) -> Result<Option<OperatorToken>, StoreError> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "UPDATE operator_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING {COLUMNS}"
        );
        let Some(row) = sqlx::query_as::<_, TokenRow>(&sql).bind(to_ms(now)).bind(id).fetch_optional(&mut *tx).await?
        else {
            tx.rollback().await?;
            return Ok(None);
        };
        log(&mut tx, rec, now).await?;
        tx.commit().await?;
        Ok(Some(row.into()))
    }

    /// The token with this HMAC in any state, revoked included (a leak report names it).
    pub async fn operator_token_by_hash(&self, hash: &str) -> Result<Option<OperatorToken>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM operator_tokens WHERE hash = $1");
        Ok(sqlx::query_as::<_, TokenRow>(&sql).bind(hash).fetch_optional(&self.pool).await?.map(Into::into))
    }

    /// The live token with this HMAC, if any (operator routes' authentication).
    pub async fn operator_by_hash(&self, hash: &str) -> Result<Option<OperatorToken>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM operator_tokens WHERE hash = $1 AND revoked_at IS NULL");
        Ok(sqlx::query_as::<_, TokenRow>(&sql).bind(hash).fetch_optional(&self.pool).await?.map(Into::into))
    }
}
