//! Approval requests. A governed key action writes the key in a pending state and an approval
//! request in one transaction; approving to quorum, rejecting, cancelling or expiring it
//! applies or undoes the change in one transaction, with change events for every node's cache.

use chrono::{DateTime, Utc};
use keyward_core::approval_change::{ApprovalChange, Subject, SubjectKind};
use keyward_core::audit_action::AuditAction;
use keyward_core::clock::{from_ms, to_ms};
use keyward_core::model::{KeyRecord, KeyStatus};
use keyward_core::policy::KeyAction;
use keyward_core::policy::PolicyRules;
use keyward_core::roles::Role;
use keyward_core::validate::UpdateKeyRules;
use sqlx::any::AnyRow;
use sqlx::FromRow;

use crate::audit::{append, AuditRecord};
use crate::events::emit;
use crate::key_state::{apply_changes, emit_all, refusal, retire, set_key_status};
use crate::member_state::{remove_in, settle_member_request};
use crate::policies::{read_policy, write_policy};
use crate::roles::{hold_role, release_role, role_event, write_role, StoredRole};
use crate::rows::{key_from_row, KEY_COLUMNS};
use crate::tx::Tx;
use crate::{Conflict, Store, StoreError};
use keyward_core::audit::AuditTarget;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
    Cancelled,
    Expired,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::Cancelled => "cancelled",
            ApprovalStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Approved, Self::Rejected, Self::Cancelled, Self::Expired]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewApproval {
    pub id: String,
    pub workspace_id: String,
    /// What it would change: its action and typed payload.
    pub change: ApprovalChange,
    /// What it is about (for a rotation: the successor key).
    pub subject: Subject,
    pub requested_by: String,
    pub required: u32,
    pub approver_roles: Vec<Role>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl NewApproval {
    pub fn action(&self) -> KeyAction {
        self.change.action()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    pub member_id: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    pub request: NewApproval,
    pub status: ApprovalStatus,
    pub reason: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub votes: Vec<Vote>,
}

#[derive(Debug)]
pub enum Decision {
    /// The vote counts; more are needed.
    Recorded(Approval),
    /// Quorum reached (or the request closed): the change is applied (or undone).
    Done(Approval, Vec<KeyRecord>),
    AlreadyVoted,
    /// The request is no longer pending (it may just have expired).
    Closed(Approval),
    NotFound,
}

/// Changing a key under approval.
#[derive(Debug)]
pub enum RequestOutcome {
    Pending(Box<KeyRecord>),
    NotFound,
    Refused(Conflict),
}

const APPROVAL_COLUMNS: &str =
    "id, workspace_id, action, subject_kind, subject_id, requested_by, status, required, approver_roles, \
     payload, reason, decided_by, created_at, expires_at, decided_at";

fn bad(what: &str) -> StoreError {
    StoreError::Internal(format!("unreadable {what} in approvals row"))
}

/// An `approvals` row as stored ([`APPROVAL_COLUMNS`]).
#[derive(sqlx::FromRow)]
struct ApprovalRow {
    id: String,
    workspace_id: String,
    action: String,
    subject_kind: String,
    subject_id: String,
    requested_by: String,
    status: String,
    required: i64,
    approver_roles: String,
    payload: String,
    reason: Option<String>,
    decided_by: Option<String>,
    created_at: i64,
    expires_at: i64,
    decided_at: Option<i64>,
}

fn approval_from_row(r: &AnyRow) -> Result<Approval, StoreError> {
    let r = ApprovalRow::from_row(r)?;
    let roles: Vec<String> = serde_json::from_str(&r.approver_roles).map_err(|_| bad("roles"))?;
    let action = KeyAction::parse(&r.action).ok_or_else(|| bad("action"))?;
    let payload: serde_json::Value = serde_json::from_str(&r.payload).map_err(|_| bad("payload"))?;
    let change = ApprovalChange::from_parts(action, &payload).map_err(|e| bad(&format!("payload ({e})")))?;
    let kind = SubjectKind::parse(&r.subject_kind)
        .filter(|k| *k == SubjectKind::of(action))
        .ok_or_else(|| bad("subject_kind"))?;
    Ok(Approval {
        request: NewApproval {
            id: r.id,
            workspace_id: r.workspace_id,
            change,
            subject: Subject { kind, id: r.subject_id },
            requested_by: r.requested_by,
            required: u32::try_from(r.required).map_err(|_| bad("required"))?,
            approver_roles: roles
                .iter()
                .map(|s| Role::parse(s).ok_or_else(|| bad("role")))
                .collect::<Result<_, _>>()?,
            created_at: from_ms(r.created_at),
            expires_at: from_ms(r.expires_at),
        },
        status: ApprovalStatus::parse(&r.status).ok_or_else(|| bad("status"))?,
        reason: r.reason,
        decided_by: r.decided_by,
        decided_at: r.decided_at.map(from_ms),
        votes: Vec::new(),
    })
}

pub(crate) async fn insert_approval(tx: &mut Tx, a: &NewApproval) -> Result<(), StoreError> {
    let roles: Vec<&str> = a.approver_roles.iter().map(|r| r.as_str()).collect();
    sqlx::query(&format!(
        "INSERT INTO approvals ({APPROVAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, NULL, NULL, $10, $11, NULL)"
    ))
    .bind(&a.id)
    .bind(&a.workspace_id)
    .bind(a.action().as_str())
    .bind(a.subject.kind.as_str())
    .bind(&a.subject.id)
    .bind(&a.requested_by)
    .bind(i64::from(a.required))
    .bind(serde_json::to_string(&roles).unwrap_or_else(|_| "[]".into()))
    .bind(a.change.payload().to_string())
    .bind(to_ms(a.created_at))
    .bind(to_ms(a.expires_at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn votes(ex: &mut sqlx::AnyConnection, id: &str) -> Result<Vec<Vote>, StoreError> {
    let rows = sqlx::query_as::<_, (String, i64)>(
        "SELECT member_id, created_at FROM approval_votes WHERE approval_id = $1 ORDER BY created_at, member_id",
    )
    .bind(id)
    .fetch_all(ex)
    .await?;
    Ok(rows.into_iter().map(|(member_id, at)| Vote { member_id, at: from_ms(at) }).collect())
}

/// Carries out an approved request.
async fn apply(tx: &mut Tx, a: &NewApproval, now: DateTime<Utc>) -> Result<Vec<KeyRecord>, StoreError> {
    let mut changed = Vec::new();
    let subject = a.subject.id.as_str();
    match &a.change {
        ApprovalChange::KeyCreate => changed.extend(set_key_status(tx, subject, &a.id, KeyStatus::Active, now).await?),
        ApprovalChange::KeyRevoke => changed.extend(set_key_status(tx, subject, &a.id, KeyStatus::Revoked, now).await?),
        ApprovalChange::KeyUpdate { changes } => {
            // Checked when the request was made, against the same time.
            let c = changes.validate(a.created_at).map_err(|e| StoreError::Internal(format!("stored changes: {e}")))?;
            changed.extend(apply_changes(tx, &a.workspace_id, subject, &c, now, Some(&a.id)).await?);
        }
        ApprovalChange::KeyRotate { old_key_id, grace_period_seconds } => {
            changed.extend(set_key_status(tx, subject, &a.id, KeyStatus::Active, now).await?);
            let grace = *grace_period_seconds;
            let end = (grace > 0).then(|| now + chrono::Duration::seconds(grace));
            changed.extend(retire(tx, old_key_id, end, now).await?);
        }
        ApprovalChange::MemberInvite { .. } | ApprovalChange::MemberRole { .. } => {
            settle_member_request(tx, a.action(), subject, &a.id, true).await?
        }
        ApprovalChange::MemberRemove { .. } => {
            // Only while the member is still marked with this request.
            let marked = sqlx::query("SELECT id FROM members WHERE id = $1 AND approval_id = $2")
                .bind(subject)
                .bind(&a.id)
                .fetch_optional(&mut **tx)
                .await?;
            if marked.is_some() {
                remove_in(tx, &a.workspace_id, subject).await?;
            }
        }
        ApprovalChange::PolicyUpdate { changes, basis, .. } => {
            // The change is applied to the policy in force now, checked as when asked for.
            let current = read_policy(tx, &a.workspace_id).await?;
            // Judged against another policy (a stricter one may be in force now, which this
            // request's smaller quorum must not undo): refused, to be asked again.
            if basis.as_ref().is_some_and(|b| **b != current) {
                return Err(StoreError::Conflict(Conflict::PolicyChangedMeanwhile));
            }
            let next =
                current.patched(changes).map_err(|e| StoreError::Internal(format!("stored policy change: {e}")))?;
            write_policy(tx, &a.workspace_id, &next, now).await?;
        }
        ApprovalChange::ServiceAccountRole { role, .. } => {
            sqlx::query("UPDATE service_accounts SET role = $1, updated_at = $2 WHERE workspace_id = $3 AND id = $4")
                .bind(role)
                .bind(to_ms(now))
                .bind(&a.workspace_id)
                .bind(subject)
                .execute(&mut **tx)
                .await?;
            emit(tx, &crate::service_accounts::event(subject), now).await?;
        }
        ApprovalChange::AppInstall { .. } => crate::apps::activate(tx, subject, &a.id, now).await?,
        ApprovalChange::RoleUpdate { permissions, description } => {
            let current = crate::roles::read_role(tx, &a.workspace_id, subject).await?;
            if let Some(current) = current {
                let (description, permissions) = (description.as_deref(), permissions.as_deref());
                write_role(tx, &a.workspace_id, &current, description, permissions, Some(&a.id), now).await?;
                emit(tx, &role_event(&a.workspace_id, subject), now).await?;
            }
        }
    }
    Ok(changed)
}

/// Undoes what a request put in place: the key returns to how it was (a create ends rejected).
async fn undo(tx: &mut Tx, a: &NewApproval, now: DateTime<Utc>) -> Result<Vec<KeyRecord>, StoreError> {
    let mut changed = Vec::new();
    let subject = a.subject.id.as_str();
    match &a.change {
        ApprovalChange::KeyCreate | ApprovalChange::KeyRotate { .. } => {
            changed.extend(set_key_status(tx, subject, &a.id, KeyStatus::Rejected, now).await?);
            if let ApprovalChange::KeyRotate { old_key_id, .. } = &a.change {
                sqlx::query("UPDATE api_keys SET replaced_by = NULL WHERE id = $1 AND replaced_by = $2")
                    .bind(old_key_id)
                    .bind(subject)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        ApprovalChange::KeyUpdate { .. } | ApprovalChange::KeyRevoke => {
            changed.extend(set_key_status(tx, subject, &a.id, KeyStatus::Active, now).await?)
        }
        ApprovalChange::MemberInvite { .. }
        | ApprovalChange::MemberRole { .. }
        | ApprovalChange::MemberRemove { .. } => settle_member_request(tx, a.action(), subject, &a.id, false).await?,
        ApprovalChange::RoleUpdate { .. } => release_role(tx, &a.workspace_id, &a.id).await?,
        ApprovalChange::AppInstall { .. } => crate::apps::reject(tx, subject, &a.id, now).await?,
        // Nothing was held: the policy and the account stayed as they were.
        ApprovalChange::PolicyUpdate { .. } | ApprovalChange::ServiceAccountRole { .. } => {}
    }
    Ok(changed)
}

/// Takes the request's row lock (PostgreSQL) or the write lock (SQLite) before anything is
/// read, so concurrent votes are counted one after another.
async fn lock(tx: &mut Tx, workspace_id: &str, id: &str) -> Result<Option<Approval>, StoreError> {
    let sql = format!(
        "UPDATE approvals SET status = status WHERE workspace_id = $1 AND id = $2 RETURNING {APPROVAL_COLUMNS}"
    );
    let row = sqlx::query(&sql).bind(workspace_id).bind(id).fetch_optional(&mut **tx).await?;
    row.as_ref().map(approval_from_row).transpose()
}

async fn close(
    tx: &mut Tx,
    id: &str,
    status: ApprovalStatus,
    by: Option<&str>,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE approvals SET status = $1, decided_by = $2, reason = $3, decided_at = $4 WHERE id = $5")
        .bind(status.as_str())
        .bind(by)
        .bind(reason)
        .bind(to_ms(now))
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// Records a request that holds nothing while it waits (a policy change, a service
    /// account's role): what it would change stays as it is until it is approved.
    pub async fn request_approval(&self, a: &NewApproval, audit: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.audited(&a.workspace_id, audit, a.created_at).await?;
        insert_approval(&mut tx, a).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a request to change `current` and holds the role until it is decided.
    pub async fn request_role_update(
        &self,
        a: &NewApproval,
        current: &StoredRole,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.audited(&a.workspace_id, audit, a.created_at).await?;
        hold_role(&mut tx, &a.workspace_id, current, &a.id).await?;
        insert_approval(&mut tx, a).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Puts an active key in `pending_update` or `pending_revoke` and records the request.
    pub async fn request_change(
        &self,
        key_status: KeyStatus,
        a: &NewApproval,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<RequestOutcome, StoreError> {
        let mut tx = self.audited(&a.workspace_id, audit, now).await?;
        let sql = format!(
            "UPDATE api_keys SET status = $1, approval_id = $2, updated_at = $3 WHERE workspace_id = $4 AND id = $5 \
             AND status = 'active' AND (expires_at IS NULL OR expires_at > $3) RETURNING {KEY_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(key_status.as_str())
            .bind(&a.id)
            .bind(to_ms(now))
            .bind(&a.workspace_id)
            .bind(&a.subject.id)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(match self.get_key(&a.workspace_id, &a.subject.id).await? {
                None => RequestOutcome::NotFound,
                Some(k) => RequestOutcome::Refused(refusal(&k, now)),
            });
        };
        let rec = key_from_row(&row)?;
        insert_approval(&mut tx, a).await?;
        emit_all(&mut tx, std::slice::from_ref(&rec), now).await?;
        tx.commit().await?;
        Ok(RequestOutcome::Pending(Box::new(rec)))
    }

    pub async fn get_approval(&self, workspace_id: &str, id: &str) -> Result<Option<Approval>, StoreError> {
        let sql = format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE workspace_id = $1 AND id = $2");
        let mut conn = self.pool.acquire().await?;
        let row = sqlx::query(&sql).bind(workspace_id).bind(id).fetch_optional(&mut *conn).await?;
        let Some(row) = row else { return Ok(None) };
        let mut a = approval_from_row(&row)?;
        a.votes = votes(&mut conn, id).await?;
        Ok(Some(a))
    }

    /// One page, newest first; `limit + 1` rows at most.
    pub async fn list_approvals(
        &self,
        workspace_id: &str,
        status: Option<ApprovalStatus>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Approval>, StoreError> {
        let sql = format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE workspace_id = $1 AND ($2 = '' OR status = $2) \
             AND ($3 = '' OR id < $3) ORDER BY id DESC LIMIT $4"
        );
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(&sql)
            .bind(workspace_id)
            .bind(status.map(ApprovalStatus::as_str).unwrap_or(""))
            .bind(cursor.unwrap_or(""))
            .bind(i64::from(limit) + 1)
            .fetch_all(&mut *conn)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut a = approval_from_row(r)?;
            a.votes = votes(&mut conn, &a.request.id).await?;
            out.push(a);
        }
        Ok(out)
    }

    /// Counts one approver's vote; at quorum the change is applied in the same transaction.
    pub async fn approve(
        &self,
        workspace_id: &str,
        id: &str,
        member_id: &str,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<Decision, StoreError> {
        let (mut tx, a) = match self.open_pending(workspace_id, id, now).await? {
            Ok(open) => open,
            Err(d) => return Ok(d),
        };
        let fresh = sqlx::query(
            "INSERT INTO approval_votes (approval_id, member_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (approval_id, member_id) DO NOTHING",
        )
        .bind(id)
        .bind(member_id)
        .bind(to_ms(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if fresh == 0 {
            tx.rollback().await?;
            return Ok(Decision::AlreadyVoted);
        }
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) AS n FROM approval_votes WHERE approval_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let done = n >= i64::from(a.request.required);
        append(&mut tx, workspace_id, audit, now).await?;
        let mut changed = Vec::new();
        if done {
            let applied = serde_json::json!({"action": a.request.action().as_str(), "subject": a.request.subject.id});
            append(
                &mut tx,
                workspace_id,
                &audit.with(AuditAction::ApprovalApproved, audit.target.clone(), applied),
                now,
            )
            .await?;
            changed = apply(&mut tx, &a.request, now).await?;
            emit_all(&mut tx, &changed, now).await?;
            close(&mut tx, id, ApprovalStatus::Approved, Some(member_id), None, now).await?;
        }
        tx.commit().await?;
        let a = self
            .get_approval(workspace_id, id)
            .await?
            .ok_or_else(|| StoreError::Internal("approval vanished".into()))?;
        Ok(if done { Decision::Done(a, changed) } else { Decision::Recorded(a) })
    }

    /// Rejects or cancels a pending request and undoes its pending state; the audit record's
    /// actor is who decided it.
    pub async fn close_approval(
        &self,
        workspace_id: &str,
        id: &str,
        status: ApprovalStatus,
        reason: Option<&str>,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<Decision, StoreError> {
        let (mut tx, a) = match self.open_pending(workspace_id, id, now).await? {
            Ok(open) => open,
            Err(d) => return Ok(d),
        };
        let changed = end(&mut tx, &a, status, audit.actor.id.as_deref(), reason, now).await?;
        append(&mut tx, workspace_id, audit, now).await?;
        tx.commit().await?;
        let a = self
            .get_approval(workspace_id, id)
            .await?
            .ok_or_else(|| StoreError::Internal("approval vanished".into()))?;
        Ok(Decision::Done(a, changed))
    }

    /// A transaction holding the lock of a request that is still pending, or the answer when
    /// it is missing or closed (expiring it first when its time is up).
    async fn open_pending(
        &self,
        workspace_id: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<(Tx, Approval), Decision>, StoreError> {
        let mut tx = self.begin().await?;
        let Some(a) = lock(&mut tx, workspace_id, id).await? else {
            tx.rollback().await?;
            return Ok(Err(Decision::NotFound));
        };
        if settle(&mut tx, &a, now).await? {
            tx.commit().await?;
            return Ok(Err(Decision::Closed(self.reload(&a).await?)));
        }
        Ok(Ok((tx, a)))
    }

    async fn reload(&self, a: &Approval) -> Result<Approval, StoreError> {
        self.get_approval(&a.request.workspace_id, &a.request.id)
            .await?
            .ok_or_else(|| StoreError::Internal("approval vanished".into()))
    }

    /// Expires every pending request past its time (in one workspace, or all); returns the
    /// keys whose state changed.
    pub async fn expire_approvals(
        &self,
        workspace_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query_as::<_, (String, String)>(
            "SELECT workspace_id, id FROM approvals WHERE status = 'pending' AND expires_at <= $1 AND ($2 = '' OR workspace_id = $2)",
        )
        .bind(to_ms(now))
        .bind(workspace_id.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        let mut changed = Vec::new();
        for (ws, id) in rows {
            let mut tx = self.begin().await?;
            if let Some(a) = lock(&mut tx, &ws, &id).await? {
                if a.status == ApprovalStatus::Pending {
                    changed.extend(end(&mut tx, &a, ApprovalStatus::Expired, None, None, now).await?);
                    let target = AuditTarget { kind: "approval".into(), id: Some(id.clone()), name: None };
                    let what =
                        serde_json::json!({"action": a.request.action().as_str(), "subject": a.request.subject.id});
                    append(&mut tx, &ws, &AuditRecord::system(AuditAction::ApprovalExpired, target, what), now).await?;
                }
            }
            tx.commit().await?;
        }
        Ok(changed)
    }
}

/// Closes the request in `tx` if it is no longer pending, expiring it (and undoing its key
/// change) when its time is up. `true`: it is closed, go no further.
async fn settle(tx: &mut Tx, a: &Approval, now: DateTime<Utc>) -> Result<bool, StoreError> {
    if a.status != ApprovalStatus::Pending {
        return Ok(true);
    }
    if a.request.expires_at > now {
        return Ok(false);
    }
    end(tx, a, ApprovalStatus::Expired, None, None, now).await?;
    Ok(true)
}

/// Closes a pending request without applying it: its key change is undone, with events.
async fn end(
    tx: &mut Tx,
    a: &Approval,
    status: ApprovalStatus,
    by: Option<&str>,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<KeyRecord>, StoreError> {
    let changed = undo(tx, &a.request, now).await?;
    emit_all(tx, &changed, now).await?;
    close(tx, &a.request.id, status, by, reason, now).await?;
    Ok(changed)
}

/// Cancels the pending requests about a key (it was revoked directly).
pub(crate) async fn cancel_for_key(tx: &mut Tx, key_id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE approvals SET status = 'cancelled', reason = 'the key was revoked', decided_at = $1 \
         WHERE subject_kind = 'key' AND subject_id = $2 AND status = 'pending'",
    )
    .bind(to_ms(now))
    .bind(key_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
