//! Members, their credentials (password, TOTP, recovery codes), sessions, and the principal
//! behind a management credential.

use chrono::{DateTime, Utc};
use keyward_core::audit_action::AuditAction;
use keyward_core::clock::{from_ms, to_ms};
use keyward_core::model::KeyLeak;
use keyward_core::policy::Policy;
use keyward_core::roles::Role;
use sqlx::any::AnyRow;
use sqlx::FromRow;

use crate::approvals::{insert_approval, NewApproval};
use crate::audit::{append, AuditRecord, Origin};
use crate::member_state::{lock_owners, owners, remove_in};
use crate::policies::policy_from;
use crate::tx::Tx;
use crate::{Conflict, Store, StoreError};

/// Who is calling the management API.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub workspace_id: String,
    pub member_id: String,
    pub email: String,
    pub role: Role,
    pub prefix: String,
    /// The credential's hash (management key or session token).
    pub hash: String,
    pub kind: CredentialKind,
    pub mfa_enabled: bool,
    /// The workspace's policy, read with the credential.
    pub policy: Policy,
    /// The workspace is suspended by its operator: its members may only read.
    pub suspended: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    ManagementKey,
    Session,
}

/// A management key as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagementKey {
    pub id: String,
    pub member_id: String,
    pub email: String,
    pub member_role: Role,
    pub name: String,
    pub start: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Its first leak report, when there was one (docs/LEAKS.md).
    pub leak: Option<KeyLeak>,
}

/// A member as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub workspace_id: String,
    pub email: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    /// Not waiting on an invitation: set up, or the workspace's first owner.
    pub active: bool,
    pub mfa_enabled: bool,
    /// The approval request the member's invitation or promotion waits on.
    pub approval_id: Option<String>,
    /// The role a pending promotion would give.
    pub pending_role: Option<Role>,
}

#[derive(Debug, Clone)]
pub struct NewMember {
    pub id: String,
    pub workspace_id: String,
    pub email: String,
    pub role: Role,
    pub setup_hash: String,
    pub setup_expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// A member made by signing in ([`Store::join_member`]).
#[derive(Debug, Clone)]
pub struct JoinedMember {
    pub id: String,
    pub workspace_id: String,
    pub email: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// What [`Store::reserve_attempt`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretAttempt {
    /// Counted; judge the secret.
    Reserved,
    /// Locked until then; the secret must not be judged.
    Locked(DateTime<Utc>),
}

/// What a login attempt needs to know about a member.
#[derive(Debug, Clone)]
pub struct LoginRecord {
    pub member: Member,
    /// The workspace's key prefix (session tokens carry it).
    pub prefix: String,
    pub password_hash: Option<String>,
}

/// A member's sealed TOTP secret, and one awaiting confirmation. (The last time step used
/// is only ever compared in the database, by `claim_totp_step`.)
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct TotpState {
    #[sqlx(rename = "totp_secret")]
    pub secret: Option<String>,
    #[sqlx(rename = "totp_pending")]
    pub pending: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub hash: String,
    pub workspace_id: String,
    pub member_id: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The columns a [`Member`] is read from: unqualified (as RETURNING takes them) or, in joins,
/// qualified by the `m` alias.
const MEMBER_COLUMNS: &str =
    "id, workspace_id, email, role, created_at, password_hash, totp_secret, setup_hash, approval_id, pending_role";

fn member_columns(alias: &str) -> String {
    MEMBER_COLUMNS.split(", ").map(|c| format!("{alias}.{c}")).collect::<Vec<_>>().join(", ")
}

fn role(s: &str) -> Result<Role, StoreError> {
    Role::parse(s).ok_or_else(|| StoreError::Internal(format!("unreadable role {s:?} in members row")))
}

/// A `members` row as stored ([`MEMBER_COLUMNS`]).
#[derive(sqlx::FromRow)]
struct MemberRow {
    id: String,
    workspace_id: String,
    email: String,
    role: String,
    created_at: i64,
    password_hash: Option<String>,
    totp_secret: Option<String>,
    setup_hash: Option<String>,
    approval_id: Option<String>,
    pending_role: Option<String>,
}

impl MemberRow {
    fn member(self) -> Result<Member, StoreError> {
        Ok(Member {
            role: role(&self.role)?,
            created_at: from_ms(self.created_at),
            // Active unless an invitation is still waiting to be accepted (the first owner,
            // made by `init`, has a management key and no password, and is active).
            active: self.setup_hash.is_none(),
            mfa_enabled: self.totp_secret.is_some(),
            pending_role: self.pending_role.as_deref().map(role).transpose()?,
            id: self.id,
            workspace_id: self.workspace_id,
            email: self.email,
            approval_id: self.approval_id,
        })
    }
}

fn member_from_row(r: &AnyRow) -> Result<Member, StoreError> {
    MemberRow::from_row(r)?.member()
}

/// A member joined with its credential, workspace and policy (`Store::principal`).
#[derive(sqlx::FromRow)]
struct PrincipalRow {
    #[sqlx(flatten)]
    member: MemberRow,
    prefix: String,
    hash: String,
    body: Option<String>,
    suspended_at: Option<i64>,
}

/// A member joined with its workspace's key prefix (`Store::login_records`).
#[derive(sqlx::FromRow)]
struct LoginRow {
    #[sqlx(flatten)]
    member: MemberRow,
    prefix: String,
}

/// A `management_keys` row joined with its member's email and role.
#[derive(sqlx::FromRow)]
struct ManagementKeyRow {
    id: String,
    member_id: String,
    email: String,
    role: String,
    name: Option<String>,
    start: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    leaked_at: Option<i64>,
    leak_source: Option<String>,
    leak_url: Option<String>,
}

impl Store {
    /// Which of `ids` are workspaces (at most a few dozen at a time: the ids a usage flush
    /// could not place).
    pub async fn existing_workspaces(&self, ids: &[&str]) -> Result<Vec<String>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!("SELECT id FROM workspaces WHERE id IN ({})", marks.join(", "));
        let mut q = sqlx::query_scalar(&sql);
        for id in ids {
            q = q.bind(*id);
        }
        Ok(q.fetch_all(&self.pool).await?)
    }

    /// The principal behind a management key hash, if the key exists, is not revoked and has
    /// not expired.
    pub async fn principal_by_hash(&self, hash: &str, now: DateTime<Utc>) -> Result<Option<Principal>, StoreError> {
        self.principal(
            "FROM management_keys c JOIN members m ON m.id = c.member_id \
             JOIN workspaces w ON w.id = c.workspace_id LEFT JOIN policies p ON p.workspace_id = c.workspace_id \
             WHERE c.hash = $1 AND c.revoked_at IS NULL AND (c.expires_at IS NULL OR c.expires_at > $2) \
             AND w.deleted_at IS NULL",
            hash,
            Some(to_ms(now)),
            CredentialKind::ManagementKey,
        )
        .await
    }

    /// The principal behind a session token hash, if the session is still current.
    pub async fn principal_by_session(&self, hash: &str, now: DateTime<Utc>) -> Result<Option<Principal>, StoreError> {
        self.principal(
            "FROM sessions c JOIN members m ON m.id = c.member_id \
             JOIN workspaces w ON w.id = c.workspace_id LEFT JOIN policies p ON p.workspace_id = c.workspace_id \
             WHERE c.hash = $1 AND c.expires_at > $2 AND w.deleted_at IS NULL",
            hash,
            Some(to_ms(now)),
            CredentialKind::Session,
        )
        .await
    }

    async fn principal(
        &self,
        from: &str,
        hash: &str,
        now: Option<i64>,
        kind: CredentialKind,
    ) -> Result<Option<Principal>, StoreError> {
        let sql = format!("SELECT {}, c.hash, w.prefix, p.body, w.suspended_at {from}", member_columns("m"));
        let mut q = sqlx::query_as::<_, PrincipalRow>(&sql).bind(hash);
        if let Some(n) = now {
            q = q.bind(n);
        }
        let Some(r) = q.fetch_optional(&self.pool).await? else { return Ok(None) };
        let m = r.member.member()?;
        Ok(Some(Principal {
            workspace_id: m.workspace_id,
            member_id: m.id,
            email: m.email,
            role: m.role,
            prefix: r.prefix,
            hash: r.hash,
            kind,
            mfa_enabled: m.mfa_enabled,
            policy: policy_from(r.body)?,
            suspended: r.suspended_at.is_some(),
        }))
    }

    /// Invites a member; under `approval`, the setup token works only once it is approved.
    pub async fn invite_member(
        &self,
        m: &NewMember,
        approval: Option<&NewApproval>,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.audited(&m.workspace_id, audit, m.created_at).await?;
        sqlx::query(
            "INSERT INTO members (id, workspace_id, email, role, created_at, setup_hash, setup_expires_at, approval_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&m.id)
        .bind(&m.workspace_id)
        .bind(&m.email)
        .bind(m.role.as_str())
        .bind(to_ms(m.created_at))
        .bind(&m.setup_hash)
        .bind(to_ms(m.setup_expires_at))
        .bind(approval.map(|a| a.id.as_str()))
        .execute(&mut **tx)
        .await?;
        if let Some(a) = approval {
            insert_approval(&mut tx, a).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A member who joins by signing in through the console's single sign-on: active at
    /// once, with no password (they sign in through the provider), the join on the record
    /// (`audit`, a `member.join`). An email already in the workspace is `EmailTaken`.
    pub async fn join_member(&self, m: &JoinedMember, audit: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.audited(&m.workspace_id, audit, m.created_at).await?;
        sqlx::query("INSERT INTO members (id, workspace_id, email, role, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&m.id)
            .bind(&m.workspace_id)
            .bind(&m.email)
            .bind(m.role.as_str())
            .bind(to_ms(m.created_at))
            .execute(&mut **tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Puts a promotion under an approval request; the role stays until it is approved.
    pub async fn request_role(
        &self,
        a: &NewApproval,
        role: Role,
        audit: &AuditRecord,
    ) -> Result<Option<Member>, StoreError> {
        self.hold_member(a, Some(role), audit).await
    }

    /// Is there an invitation waiting on this setup token?
    pub async fn setup_pending(&self, setup_hash: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "SELECT id FROM members WHERE setup_hash = $1 AND setup_expires_at > $2 AND approval_id IS NULL",
        )
        .bind(setup_hash)
        .bind(to_ms(now))
        .fetch_optional(&self.pool)
        .await?
        .is_some())
    }

    /// Sets a password with a setup token, which dies in the same statement.
    pub async fn complete_setup(
        &self,
        setup_hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
        origin: &Origin,
    ) -> Result<Option<Member>, StoreError> {
        let sql = format!(
            "UPDATE members SET password_hash = $1, setup_hash = NULL, setup_expires_at = NULL \
             WHERE setup_hash = $2 AND setup_expires_at > $3 AND approval_id IS NULL RETURNING {MEMBER_COLUMNS}"
        );
        let mut tx = self.begin().await?;
        let row =
            sqlx::query(&sql).bind(password_hash).bind(setup_hash).bind(to_ms(now)).fetch_optional(&mut *tx).await?;
        let Some(m) = row.as_ref().map(member_from_row).transpose()? else {
            tx.rollback().await?;
            return Ok(None);
        };
        // The one who joins is known only now: the token named them.
        let what = serde_json::json!({"role": m.role.as_str()});
        let rec = AuditRecord::by_member(&m.id, &m.email, AuditAction::MemberJoin, what, origin.clone());
        append(&mut tx, &m.workspace_id, &rec, now).await?;
        tx.commit().await?;
        Ok(Some(m))
    }

    /// Takes up an invitation by signing in through single sign-on instead of a setup
    /// token (the provider verified the invited email): the token dies, the member is
    /// active, without a password. `None` when the invitation has ended or waits on
    /// approvals.
    pub async fn join_invited(
        &self,
        member_id: &str,
        now: DateTime<Utc>,
        origin: &Origin,
    ) -> Result<Option<Member>, StoreError> {
        let sql = format!(
            "UPDATE members SET setup_hash = NULL, setup_expires_at = NULL \
             WHERE id = $1 AND setup_hash IS NOT NULL AND setup_expires_at > $2 AND approval_id IS NULL \
             RETURNING {MEMBER_COLUMNS}"
        );
        let mut tx = self.begin().await?;
        let row = sqlx::query(&sql).bind(member_id).bind(to_ms(now)).fetch_optional(&mut *tx).await?;
        let Some(m) = row.as_ref().map(member_from_row).transpose()? else {
            tx.rollback().await?;
            return Ok(None);
        };
        let what = serde_json::json!({"role": m.role.as_str(), "method": "oidc"});
        let rec = AuditRecord::by_member(&m.id, &m.email, AuditAction::MemberJoin, what, origin.clone());
        append(&mut tx, &m.workspace_id, &rec, now).await?;
        tx.commit().await?;
        Ok(Some(m))
    }

    /// Sets a new password and ends the member's sessions but `keep` (the one that changed
    /// it): whoever logged in with the old password is out.
    pub async fn set_password(
        &self,
        workspace_id: &str,
        member_id: &str,
        password_hash: &str,
        keep: Option<&str>,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        sqlx::query("UPDATE members SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(member_id)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE member_id = $1 AND hash <> $2")
            .bind(member_id)
            .bind(keep.unwrap_or(""))
            .execute(&mut **tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn password_hash(&self, member_id: &str) -> Result<Option<String>, StoreError> {
        let r: Option<Option<String>> = sqlx::query_scalar("SELECT password_hash FROM members WHERE id = $1")
            .bind(member_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.flatten())
    }

    pub async fn get_member(&self, workspace_id: &str, id: &str) -> Result<Option<Member>, StoreError> {
        let sql = format!("SELECT {MEMBER_COLUMNS} FROM members WHERE workspace_id = $1 AND id = $2");
        let r = sqlx::query(&sql).bind(workspace_id).bind(id).fetch_optional(&self.pool).await?;
        r.as_ref().map(member_from_row).transpose()
    }

    /// One page of members in id order; `limit + 1` rows at most.
    pub async fn list_members(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Member>, StoreError> {
        let sql =
            format!("SELECT {MEMBER_COLUMNS} FROM members WHERE workspace_id = $1 AND id > $2 ORDER BY id LIMIT $3");
        let rows = sqlx::query(&sql)
            .bind(workspace_id)
            .bind(cursor.unwrap_or(""))
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(member_from_row).collect()
    }

    /// The ids of the members holding one of `roles`.
    pub async fn members_with_roles(&self, workspace_id: &str, roles: &[Role]) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query_as::<_, (String, String)>("SELECT id, role FROM members WHERE workspace_id = $1")
            .bind(workspace_id)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for (id, r) in rows {
            if roles.contains(&role(&r)?) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Changes a role; refused (Conflict) when it would leave the workspace without an owner.
    pub async fn set_role(
        &self,
        workspace_id: &str,
        id: &str,
        new: Role,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<Option<Member>, StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        lock_owners(&mut tx, workspace_id).await?;
        let n = sqlx::query("UPDATE members SET role = $1 WHERE workspace_id = $2 AND id = $3 AND approval_id IS NULL")
            .bind(new.as_str())
            .bind(workspace_id)
            .bind(id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return match self.get_member(workspace_id, id).await? {
                Some(_) => Err(StoreError::Conflict(Conflict::MemberPendingApproval)),
                None => Ok(None),
            };
        }
        if owners(&mut tx, workspace_id).await? == 0 {
            tx.rollback().await?;
            return Err(StoreError::Conflict(Conflict::LastOwner));
        }
        tx.commit().await?;
        self.get_member(workspace_id, id).await
    }

    /// Removes a member with every credential they hold; refused when it is the last owner.
    pub async fn remove_member(
        &self,
        workspace_id: &str,
        id: &str,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        if !remove_in(&mut tx, workspace_id, id).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Records a request to remove a member who holds an approver role: the member stays,
    /// marked with the request, until it is approved.
    pub async fn request_removal(&self, a: &NewApproval, audit: &AuditRecord) -> Result<Option<Member>, StoreError> {
        self.hold_member(a, None, audit).await
    }

    /// Marks a member with an approval request (and the role it would give, for a role
    /// change); one request at a time per member.
    async fn hold_member(
        &self,
        a: &NewApproval,
        role: Option<Role>,
        audit: &AuditRecord,
    ) -> Result<Option<Member>, StoreError> {
        let mut tx = self.audited(&a.workspace_id, audit, a.created_at).await?;
        let n = sqlx::query(
            "UPDATE members SET pending_role = $1, approval_id = $2 WHERE workspace_id = $3 AND id = $4 \
             AND approval_id IS NULL",
        )
        .bind(role.map(|r| r.as_str()))
        .bind(&a.id)
        .bind(&a.workspace_id)
        .bind(&a.subject.id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return match self.get_member(&a.workspace_id, &a.subject.id).await? {
                Some(_) => Err(StoreError::Conflict(Conflict::MemberPendingApproval)),
                None => Ok(None),
            };
        }
        insert_approval(&mut tx, a).await?;
        tx.commit().await?;
        self.get_member(&a.workspace_id, &a.subject.id).await
    }

    /// Every member with this email, in every workspace, for a login.
    pub async fn login_records(&self, email: &str) -> Result<Vec<LoginRecord>, StoreError> {
        let sql = format!(
            "SELECT {}, w.prefix FROM members m \
             JOIN workspaces w ON w.id = m.workspace_id WHERE m.email = $1 AND w.deleted_at IS NULL ORDER BY m.id",
            member_columns("m")
        );
        let rows = sqlx::query_as::<_, LoginRow>(&sql).bind(email).fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|LoginRow { mut member, prefix }| {
                let password_hash = member.password_hash.take();
                Ok(LoginRecord { member: member.member()?, prefix, password_hash })
            })
            .collect()
    }

    /// Reserves one attempt at a member's secret before it is judged, in one statement (so
    /// concurrent attempts cannot all pass a check made before any was counted): counted as
    /// a failure until [`Store::login_succeeded`] or [`Store::release_attempt`] says
    /// otherwise; the attempt that reaches `limit` locks the account until `lock_until`. A
    /// lock that has ended starts a fresh run. While the lock holds, nothing is reserved.
    pub async fn reserve_attempt(
        &self,
        member_id: &str,
        limit: i64,
        lock_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<SecretAttempt, StoreError> {
        // A reservation and a lock's end can cross; a second look settles it.
        for _ in 0..3 {
            let reserved = sqlx::query(
                "UPDATE members SET \
                 failed_logins = CASE WHEN locked_until IS NULL THEN failed_logins + 1 ELSE 1 END, \
                 locked_until = CASE WHEN (CASE WHEN locked_until IS NULL THEN failed_logins + 1 ELSE 1 END) >= $1 \
                   THEN $2 ELSE NULL END \
                 WHERE id = $3 AND (locked_until IS NULL OR locked_until <= $4) RETURNING failed_logins",
            )
            .bind(limit)
            .bind(to_ms(lock_until))
            .bind(member_id)
            .bind(to_ms(now))
            .fetch_optional(&self.pool)
            .await?;
            if reserved.is_some() {
                return Ok(SecretAttempt::Reserved);
            }
            match self.locked_until(member_id).await? {
                Some(Some(until)) if until > now => return Ok(SecretAttempt::Locked(until)),
                Some(_) => continue,
                // No such member: nothing to count.
                None => return Ok(SecretAttempt::Reserved),
            }
        }
        Ok(SecretAttempt::Locked(lock_until))
    }

    /// Gives back a reserved attempt that was never judged (a code not sent yet, a check
    /// that could not run), lifting the lock it may have set.
    pub async fn release_attempt(&self, member_id: &str, limit: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE members SET failed_logins = failed_logins - 1, \
             locked_until = CASE WHEN failed_logins - 1 >= $1 THEN locked_until ELSE NULL END \
             WHERE id = $2 AND failed_logins > 0",
        )
        .bind(limit)
        .bind(member_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Puts a refused secret on the record (its reserved attempt stays counted): the
    /// account's own failure, not a change.
    pub async fn attempt_failed(
        &self,
        member_id: &str,
        now: DateTime<Utc>,
        failure: (AuditAction, &Origin),
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        if let Some(m) = member_in(&mut tx, member_id).await? {
            let (action, origin) = failure;
            let rec = AuditRecord::by_member(&m.id, &m.email, action, serde_json::json!({}), origin.clone());
            append(&mut tx, &m.workspace_id, &rec, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The member's lock, if there is such a member.
    async fn locked_until(&self, member_id: &str) -> Result<Option<Option<DateTime<Utc>>>, StoreError> {
        let r: Option<Option<i64>> = sqlx::query_scalar("SELECT locked_until FROM members WHERE id = $1")
            .bind(member_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(|u| u.map(from_ms)))
    }

    pub async fn login_succeeded(&self, member_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE members SET failed_logins = 0, locked_until = NULL WHERE id = $1")
            .bind(member_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn create_session(&self, s: &NewSession, audit: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.audited(&s.workspace_id, audit, s.created_at).await?;
        sqlx::query(
            "INSERT INTO sessions (hash, workspace_id, member_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&s.hash)
        .bind(&s.workspace_id)
        .bind(&s.member_id)
        .bind(to_ms(s.created_at))
        .bind(to_ms(s.expires_at))
        .execute(&mut **tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_session(
        &self,
        workspace_id: &str,
        hash: &str,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        sqlx::query("DELETE FROM sessions WHERE hash = $1").bind(hash).execute(&mut **tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends every session of a member ("log out everywhere"); answers how many ended.
    pub async fn delete_member_sessions(
        &self,
        workspace_id: &str,
        member_id: &str,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<u64, StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        let ended = sqlx::query("DELETE FROM sessions WHERE workspace_id = $1 AND member_id = $2")
            .bind(workspace_id)
            .bind(member_id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(ended)
    }

    /// Drops sessions that ended before `now`.
    pub async fn purge_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(to_ms(now))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    pub async fn totp_state(&self, member_id: &str) -> Result<TotpState, StoreError> {
        let r = sqlx::query_as("SELECT totp_secret, totp_pending FROM members WHERE id = $1")
            .bind(member_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.unwrap_or_default())
    }

    /// Keeps a sealed secret awaiting its first code.
    pub async fn set_totp_pending(
        &self,
        workspace_id: &str,
        member_id: &str,
        sealed: &str,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        sqlx::query("UPDATE members SET totp_pending = $1 WHERE id = $2")
            .bind(sealed)
            .bind(member_id)
            .execute(&mut **tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Makes the pending secret the member's TOTP secret and replaces the recovery codes.
    pub async fn confirm_totp(
        &self,
        workspace_id: &str,
        member_id: &str,
        step: i64,
        recovery_hashes: &[String],
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        let n = sqlx::query(
            "UPDATE members SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = $1 \
             WHERE id = $2 AND totp_pending IS NOT NULL",
        )
        .bind(step)
        .bind(member_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("DELETE FROM recovery_codes WHERE member_id = $1").bind(member_id).execute(&mut **tx).await?;
        for h in recovery_hashes {
            sqlx::query("INSERT INTO recovery_codes (member_id, hash) VALUES ($1, $2)")
                .bind(member_id)
                .bind(h)
                .execute(&mut **tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn disable_totp(
        &self,
        workspace_id: &str,
        member_id: &str,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        sqlx::query("UPDATE members SET totp_secret = NULL, totp_pending = NULL, totp_last_step = NULL WHERE id = $1")
            .bind(member_id)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE member_id = $1").bind(member_id).execute(&mut **tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims a TOTP time step: `false` when a code of this step (or a later one) was already
    /// used. One statement, so two nodes cannot both accept the same code.
    pub async fn claim_totp_step(&self, member_id: &str, step: i64) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE members SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
        )
        .bind(step)
        .bind(member_id)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Uses up a recovery code: `false` when it is not (or no longer) one of the member's.
    /// Spends a recovery code (once); the use is on the record.
    pub async fn use_recovery_code(&self, member_id: &str, hash: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let used = sqlx::query("DELETE FROM recovery_codes WHERE member_id = $1 AND hash = $2")
            .bind(member_id)
            .bind(hash)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if let (true, Some(m)) = (used, member_in(&mut tx, member_id).await?) {
            let rec = AuditRecord::by_member(
                &m.id,
                &m.email,
                AuditAction::MemberRecoveryCodeUsed,
                serde_json::json!({}),
                Origin::default(),
            );
            append(&mut tx, &m.workspace_id, &rec, now).await?;
        }
        tx.commit().await?;
        Ok(used)
    }

    pub async fn recovery_codes_left(&self, member_id: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) AS n FROM recovery_codes WHERE member_id = $1")
            .bind(member_id)
            .fetch_one(&self.pool)
            .await?)
    }

    /// A management key for a member (shown once by the caller).
    pub async fn add_management_key(
        &self,
        workspace_id: &str,
        member_id: &str,
        key: &crate::NewManagementKey,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let name = key.name.as_str();
        let mut tx = self.audited(workspace_id, audit, now).await?;
        sqlx::query(
            "INSERT INTO management_keys (id, workspace_id, member_id, hash, start, created_at, name, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&key.id)
        .bind(workspace_id)
        .bind(member_id)
        .bind(&key.hash)
        .bind(&key.start)
        .bind(to_ms(now))
        .bind(name)
        .bind(expires_at.map(to_ms))
        .execute(&mut **tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A workspace's management keys, or one member's.
    pub async fn list_management_keys(
        &self,
        workspace_id: &str,
        member_id: Option<&str>,
    ) -> Result<Vec<ManagementKey>, StoreError> {
        let rows = sqlx::query_as::<_, ManagementKeyRow>(
            "SELECT c.id, c.member_id, m.email, m.role, c.name, c.start, c.created_at, c.expires_at, c.revoked_at, \
             c.leaked_at, c.leak_source, c.leak_url FROM management_keys c JOIN members m ON m.id = c.member_id \
             WHERE c.workspace_id = $1 AND ($2 = '' OR c.member_id = $2) ORDER BY c.id",
        )
        .bind(workspace_id)
        .bind(member_id.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(ManagementKey {
                    member_role: role(&r.role)?,
                    name: r.name.unwrap_or_default(),
                    created_at: from_ms(r.created_at),
                    expires_at: r.expires_at.map(from_ms),
                    revoked_at: r.revoked_at.map(from_ms),
                    leak: r.leaked_at.map(|at| KeyLeak {
                        at: from_ms(at),
                        source: r.leak_source.unwrap_or_default(),
                        url: r.leak_url,
                    }),
                    id: r.id,
                    member_id: r.member_id,
                    email: r.email,
                    start: r.start,
                })
            })
            .collect()
    }

    /// Revokes a management key at once (every node reads keys from storage on each call).
    pub async fn revoke_management_key(
        &self,
        workspace_id: &str,
        id: &str,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = self.audited(workspace_id, audit, now).await?;
        let found = sqlx::query(
            "UPDATE management_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE workspace_id = $2 AND id = $3",
        )
        .bind(to_ms(now))
        .bind(workspace_id)
        .bind(id)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
        if !found {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// A member read inside `tx`.
async fn member_in(tx: &mut Tx, id: &str) -> Result<Option<Member>, StoreError> {
    let row = sqlx::query(&format!("SELECT {MEMBER_COLUMNS} FROM members WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(member_from_row).transpose()
}
