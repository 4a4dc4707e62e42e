//! Apps' OAuth tokens in storage: each workspace's token-signing keys (sealed), the assertion
//! ids already used, token families, refresh tokens (HMACs only, each used once) and the
//! access tokens issued (their `jti`, never the token). Issuing writes its audit event in the
//! same transaction; a revocation emits `app:` events so every node drops its decisions.

use chrono::{DateTime, Utc};
use keyward_core::clock::{from_ms, to_ms};

use crate::apps::{app_event, installation_in, Installation, InstallationStatus};
use crate::audit::AuditRecord;
use crate::events::emit;
use crate::tx::Tx;
use crate::{Store, StoreError};

/// A token-signing key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRow {
    pub kid: String,
    pub workspace_id: String,
    pub sealed: String,
    /// Hex of the Ed25519 public key.
    pub public_key: String,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

type SigningKeyTuple = (String, String, String, String, i64, Option<i64>);

fn signing_key(t: SigningKeyTuple) -> SigningKeyRow {
    SigningKeyRow {
        kid: t.0,
        workspace_id: t.1,
        sealed: t.2,
        public_key: t.3,
        created_at: from_ms(t.4),
        retired_at: t.5.map(from_ms),
    }
}

const SIGNING_COLUMNS: &str = "kid, workspace_id, sealed, public_key, created_at, retired_at";

/// New tokens for an installation: the refresh token's HMAC and the access token's `jti`,
/// each with its end.
#[derive(Debug, Clone)]
pub struct NewTokens {
    pub installation_id: String,
    pub refresh_hash: String,
    pub refresh_expires_at: DateTime<Utc>,
    pub jti: String,
    pub access_expires_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// An assertion redeemed: its app, `jti` and `exp` (remembered until then), and the family
/// its tokens start.
#[derive(Debug, Clone)]
pub struct Redeemed {
    pub app_id: String,
    pub jti: String,
    pub expires_at: DateTime<Utc>,
    pub family_id: String,
}

/// What issuing came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issue {
    /// Issued for this (active) installation.
    Issued(Box<Installation>),
    /// The assertion's `jti` was used before.
    Replayed,
    /// The installation is not active (or not the app's, or gone).
    NotActive,
    /// The refresh token is not one of ours.
    UnknownRefresh,
    /// The refresh token was used before: its family (this id) is now revoked.
    Reused(String),
    /// The refresh token, or its family, has ended.
    Ended,
}

/// What the verify path needs about an access token's `jti`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenState {
    pub installation_id: String,
    pub family_id: String,
    pub app_id: String,
    pub app_name: String,
    pub environment: String,
    /// The token, its family or its installation is revoked, or its app deleted.
    pub revoked: bool,
    pub created_at: DateTime<Utc>,
}

/// Revokes every live family of an installation and their access tokens.
pub(crate) async fn revoke_families_of(
    tx: &mut Tx,
    installation_id: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE app_access_tokens SET revoked_at = $1 WHERE installation_id = $2 AND revoked_at IS NULL AND expires_at > $1",
    )
    .bind(to_ms(now))
    .bind(installation_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE app_token_families SET revoked_at = $1, revoked_reason = $2 WHERE installation_id = $3 AND revoked_at IS NULL",
    )
    .bind(to_ms(now))
    .bind(reason)
    .bind(installation_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn revoke_family(tx: &mut Tx, family_id: &str, reason: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query("UPDATE app_access_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
        .bind(to_ms(now))
        .bind(family_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE app_token_families SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL",
    )
    .bind(to_ms(now))
    .bind(reason)
    .bind(family_id)
    .execute(&mut **tx)
    .await?;
    emit(tx, &app_event("fam", family_id), now).await
}

/// Holds the installation's row while tokens are issued for it (an uninstall waits, or is
/// seen): its record when it is active and, with `app_id`, that app's, its app not deleted.
async fn active_installation(tx: &mut Tx, id: &str, app_id: Option<&str>) -> Result<Option<Installation>, StoreError> {
    let held = sqlx::query(
        "UPDATE app_installations SET updated_at = updated_at WHERE id = $1 AND status = 'active' \
         AND ($2 = '' OR app_id = $2) AND app_id IN (SELECT id FROM apps WHERE deleted_at IS NULL)",
    )
    .bind(id)
    .bind(app_id.unwrap_or(""))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if held == 0 {
        return Ok(None);
    }
    Ok(installation_in(tx, id).await?.filter(|i| i.status == InstallationStatus::Active))
}

async fn write_signing_key(tx: &mut Tx, k: &SigningKeyRow, retire: bool) -> Result<(), StoreError> {
    sqlx::query(&format!("INSERT INTO app_signing_keys ({SIGNING_COLUMNS}) VALUES ($1, $2, $3, $4, $5, NULL)"))
        .bind(&k.kid)
        .bind(&k.workspace_id)
        .bind(&k.sealed)
        .bind(&k.public_key)
        .bind(to_ms(k.created_at))
        .execute(&mut **tx)
        .await?;
    if retire {
        sqlx::query(
            "UPDATE app_signing_keys SET retired_at = $1 WHERE workspace_id = $2 AND kid <> $3 AND retired_at IS NULL",
        )
        .bind(to_ms(k.created_at))
        .bind(&k.workspace_id)
        .bind(&k.kid)
        .execute(&mut **tx)
        .await?;
    }
    // A node may have cached "no such key" for this kid.
    emit(tx, &app_event("key", &k.kid), k.created_at).await
}

async fn insert_tokens(tx: &mut Tx, family_id: &str, t: &NewTokens) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO app_refresh_tokens (hash, family_id, installation_id, created_at, expires_at, used_at) \
         VALUES ($1, $2, $3, $4, $5, NULL)",
    )
    .bind(&t.refresh_hash)
    .bind(family_id)
    .bind(&t.installation_id)
    .bind(to_ms(t.now))
    .bind(to_ms(t.refresh_expires_at))
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO app_access_tokens (jti, family_id, installation_id, created_at, expires_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, NULL)",
    )
    .bind(&t.jti)
    .bind(family_id)
    .bind(&t.installation_id)
    .bind(to_ms(t.now))
    .bind(to_ms(t.access_expires_at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// The workspace's current token-signing key (the newest not retired), if made yet.
    pub async fn current_signing_key(&self, workspace_id: &str) -> Result<Option<SigningKeyRow>, StoreError> {
        let sql = format!(
            "SELECT {SIGNING_COLUMNS} FROM app_signing_keys WHERE workspace_id = $1 AND retired_at IS NULL \
             ORDER BY created_at DESC, kid DESC LIMIT 1"
        );
        let row: Option<SigningKeyTuple> = sqlx::query_as(&sql).bind(workspace_id).fetch_optional(&self.pool).await?;
        Ok(row.map(signing_key))
    }

    /// A token-signing key by its `kid`, retired or not.
    pub async fn signing_key_by_kid(&self, kid: &str) -> Result<Option<SigningKeyRow>, StoreError> {
        let sql = format!("SELECT {SIGNING_COLUMNS} FROM app_signing_keys WHERE kid = $1");
        let row: Option<SigningKeyTuple> = sqlx::query_as(&sql).bind(kid).fetch_optional(&self.pool).await?;
        Ok(row.map(signing_key))
    }

    /// The newest `limit` token-signing keys, retired or not, as (`kid`, workspace, public
    /// key): what a verifying node holds in memory (never the sealed private key).
    pub async fn newest_signing_public_keys(&self, limit: i64) -> Result<Vec<(String, String, String)>, StoreError> {
        let sql =
            "SELECT kid, workspace_id, public_key FROM app_signing_keys ORDER BY created_at DESC, kid DESC LIMIT $1";
        Ok(sqlx::query_as(sql).bind(limit).fetch_all(&self.pool).await?)
    }

    /// Every key a token alive at `now` may be signed with: the current ones, and those
    /// retired after `oldest_live_token` was issued.
    pub async fn published_signing_keys(
        &self,
        oldest_live_token: DateTime<Utc>,
    ) -> Result<Vec<SigningKeyRow>, StoreError> {
        let sql = format!(
            "SELECT {SIGNING_COLUMNS} FROM app_signing_keys WHERE retired_at IS NULL OR retired_at > $1 \
             ORDER BY created_at, kid LIMIT 10000"
        );
        let rows: Vec<SigningKeyTuple> =
            sqlx::query_as(&sql).bind(to_ms(oldest_live_token)).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(signing_key).collect())
    }

    /// Stores a new token-signing key; with `retire`, the workspace's others are retired in
    /// the same transaction (a rotation, audited when `audit` is given).
    pub async fn put_signing_key(
        &self,
        k: &SigningKeyRow,
        retire: bool,
        audit: Option<&AuditRecord>,
    ) -> Result<(), StoreError> {
        match audit {
            Some(rec) => {
                let mut tx = self.audited(&k.workspace_id, rec, k.created_at).await?;
                write_signing_key(&mut tx, k, retire).await?;
                tx.commit().await
            }
            None => {
                let mut tx = self.begin().await?;
                write_signing_key(&mut tx, k, retire).await?;
                tx.commit().await
            }
        }
    }

    /// Issues tokens for an assertion: its `jti` remembered (a second use answers
    /// [`Issue::Replayed`]), a new family, the tokens, and the audit event — one transaction.
    pub async fn issue_for_assertion(
        &self,
        workspace_id: &str,
        a: &Redeemed,
        t: &NewTokens,
        audit: &AuditRecord,
    ) -> Result<Issue, StoreError> {
        let mut tx = self.audited(workspace_id, audit, t.now).await?;
        let fresh = sqlx::query(
            "INSERT INTO app_assertion_ids (app_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT (app_id, jti) DO NOTHING",
        )
        .bind(&a.app_id)
        .bind(&a.jti)
        .bind(to_ms(a.expires_at))
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if fresh == 0 {
            tx.rollback().await?;
            return Ok(Issue::Replayed);
        }
        let Some(inst) = active_installation(&mut tx, &t.installation_id, Some(&a.app_id)).await? else {
            tx.rollback().await?;
            return Ok(Issue::NotActive);
        };
        if inst.workspace_id != workspace_id {
            tx.rollback().await?;
            return Ok(Issue::NotActive);
        }
        sqlx::query("INSERT INTO app_token_families (id, installation_id, created_at) VALUES ($1, $2, $3)")
            .bind(&a.family_id)
            .bind(&t.installation_id)
            .bind(to_ms(t.now))
            .execute(&mut **tx)
            .await?;
        insert_tokens(&mut tx, &a.family_id, t).await?;
        tx.commit().await?;
        Ok(Issue::Issued(Box::new(inst)))
    }

    /// The installation and workspace a refresh token (by HMAC) was issued for, if any.
    pub async fn refresh_token_owner(&self, hash: &str) -> Result<Option<(String, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT r.installation_id, i.workspace_id FROM app_refresh_tokens r \
             JOIN app_installations i ON i.id = r.installation_id WHERE r.hash = $1",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Uses a refresh token (by HMAC) once: new tokens in its family, audited by `audit`. A
    /// token used before revokes its family (audited by `reuse`, in a transaction of its
    /// own) and answers [`Issue::Reused`]. `t.installation_id` must be the token's (see
    /// [`Store::refresh_token_owner`]).
    pub async fn refresh(
        &self,
        workspace_id: &str,
        used_hash: &str,
        t: &NewTokens,
        audit: &AuditRecord,
        reuse: &AuditRecord,
    ) -> Result<Issue, StoreError> {
        let mut tx = self.audited(workspace_id, audit, t.now).await?;
        let claimed: Option<(String, String, i64)> = sqlx::query_as(
            "UPDATE app_refresh_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL \
             RETURNING family_id, installation_id, expires_at",
        )
        .bind(to_ms(t.now))
        .bind(used_hash)
        .fetch_optional(&mut **tx)
        .await?;
        let Some((family_id, installation_id, expires_at)) = claimed else {
            tx.rollback().await?;
            let family: Option<String> = sqlx::query_scalar("SELECT family_id FROM app_refresh_tokens WHERE hash = $1")
                .bind(used_hash)
                .fetch_optional(&self.pool)
                .await?;
            let Some(family) = family else { return Ok(Issue::UnknownRefresh) };
            // Used before: whoever holds it now, the family is no longer to be trusted.
            let mut tx = self.audited(workspace_id, reuse, t.now).await?;
            tx.target_id(&family);
            revoke_family(&mut tx, &family, "refresh token reused", t.now).await?;
            tx.commit().await?;
            return Ok(Issue::Reused(family));
        };
        if installation_id != t.installation_id || expires_at <= to_ms(t.now) {
            tx.rollback().await?;
            return Ok(Issue::Ended);
        }
        let family_live: Option<i64> =
            sqlx::query_scalar("SELECT created_at FROM app_token_families WHERE id = $1 AND revoked_at IS NULL")
                .bind(&family_id)
                .fetch_optional(&mut **tx)
                .await?;
        if family_live.is_none() {
            tx.rollback().await?;
            return Ok(Issue::Ended);
        }
        let Some(inst) = active_installation(&mut tx, &installation_id, None).await? else {
            tx.rollback().await?;
            return Ok(Issue::NotActive);
        };
        insert_tokens(&mut tx, &family_id, t).await?;
        tx.commit().await?;
        Ok(Issue::Issued(Box::new(inst)))
    }

    /// Revokes a refresh token's family (RFC 7009): its id, or `None` when the token is not
    /// one of ours.
    pub async fn revoke_refresh(
        &self,
        hash: &str,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<Option<String>, StoreError> {
        let Some((installation, workspace)) = self.refresh_token_owner(hash).await? else { return Ok(None) };
        let family: Option<String> = sqlx::query_scalar("SELECT family_id FROM app_refresh_tokens WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        let Some(family) = family else { return Ok(None) };
        let mut tx = self.audited(&workspace, audit, now).await?;
        tx.target_id(&installation);
        revoke_family(&mut tx, &family, "revoked", now).await?;
        tx.commit().await?;
        Ok(Some(family))
    }

    /// Revokes one access token by `jti` (RFC 7009); `false` when it is not one of ours.
    pub async fn revoke_access_token(
        &self,
        jti: &str,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let Some(state) = self.token_state(jti).await? else { return Ok(false) };
        let workspace: Option<String> = sqlx::query_scalar("SELECT workspace_id FROM app_installations WHERE id = $1")
            .bind(&state.installation_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(workspace) = workspace else { return Ok(false) };
        let mut tx = self.audited(&workspace, audit, now).await?;
        tx.target_id(&state.installation_id);
        sqlx::query("UPDATE app_access_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE jti = $2")
            .bind(to_ms(now))
            .bind(jti)
            .execute(&mut **tx)
            .await?;
        emit(&mut tx, &app_event("tok", jti), now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// An access token's standing by `jti`: one read joining its family, installation and app.
    pub async fn token_state(&self, jti: &str) -> Result<Option<TokenState>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            installation_id: String,
            family_id: String,
            token_revoked: Option<i64>,
            family_revoked: Option<i64>,
            status: String,
            environment: String,
            app_id: String,
            app_name: String,
            deleted_at: Option<i64>,
            created_at: i64,
        }
        let row: Option<Row> = sqlx::query_as(
            "SELECT t.installation_id, t.family_id, t.revoked_at AS token_revoked, f.revoked_at AS family_revoked, \
             i.status, i.environment, a.id AS app_id, a.name AS app_name, a.deleted_at, t.created_at \
             FROM app_access_tokens t JOIN app_token_families f ON f.id = t.family_id \
             JOIN app_installations i ON i.id = t.installation_id JOIN apps a ON a.id = i.app_id WHERE t.jti = $1",
        )
        .bind(jti)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| TokenState {
            revoked: r.token_revoked.is_some()
                || r.family_revoked.is_some()
                || r.status != InstallationStatus::Active.as_str()
                || r.deleted_at.is_some(),
            installation_id: r.installation_id,
            family_id: r.family_id,
            app_id: r.app_id,
            app_name: r.app_name,
            environment: r.environment,
            created_at: from_ms(r.created_at),
        }))
    }

    /// Forgets assertion ids past their `exp`, tokens long expired and the families left
    /// without tokens: the tables stay as small as the tokens alive.
    pub async fn sweep_app_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut n = 0;
        for (sql, at) in [
            ("DELETE FROM app_assertion_ids WHERE expires_at < $1", now),
            ("DELETE FROM app_access_tokens WHERE expires_at < $1", now - chrono::Duration::days(1)),
            ("DELETE FROM app_refresh_tokens WHERE expires_at < $1", now - chrono::Duration::days(1)),
        ] {
            n += sqlx::query(sql).bind(to_ms(at)).execute(&self.pool).await?.rows_affected();
        }
        // A family none of whose tokens is kept any more has nothing left to revoke.
        n += sqlx::query(
            "DELETE FROM app_token_families WHERE created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM app_refresh_tokens r WHERE r.family_id = app_token_families.id) \
             AND NOT EXISTS (SELECT 1 FROM app_access_tokens t WHERE t.family_id = app_token_families.id)",
        )
        .bind(to_ms(now - chrono::Duration::days(1)))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n)
    }
}
