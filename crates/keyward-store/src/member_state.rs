//! A member's state changed inside the transaction of another change: an approval request
//! about a member ended, a member removed (never the last owner).

use keyward_core::policy::KeyAction;

use crate::tx::Tx;
use crate::{Conflict, StoreError};

/// Approved, an invitation's setup token starts working or the pending role becomes the
/// role; not approved, the invitation goes (it holds no credential yet) or the pending role
/// is dropped. Only rows still waiting on `approval_id` change.
pub(crate) async fn settle_member_request(
    tx: &mut Tx,
    action: KeyAction,
    member_id: &str,
    approval_id: &str,
    approved: bool,
) -> Result<(), StoreError> {
    let sql = match (action, approved) {
        (KeyAction::MemberInvite, true) => "UPDATE members SET approval_id = NULL WHERE id = $1 AND approval_id = $2",
        (KeyAction::MemberInvite, false) => "DELETE FROM members WHERE id = $1 AND approval_id = $2",
        (_, true) => {
            "UPDATE members SET role = pending_role, pending_role = NULL, approval_id = NULL \
             WHERE id = $1 AND approval_id = $2 AND pending_role IS NOT NULL"
        }
        (_, false) => "UPDATE members SET pending_role = NULL, approval_id = NULL WHERE id = $1 AND approval_id = $2",
    };
    sqlx::query(sql).bind(member_id).bind(approval_id).execute(&mut **tx).await?;
    Ok(())
}

/// Removes a member with every credential they hold, inside `tx`; `false` when there is no
/// such member, refused when it is the last owner.
pub(crate) async fn remove_in(tx: &mut Tx, workspace_id: &str, id: &str) -> Result<bool, StoreError> {
    lock_owners(tx, workspace_id).await?;
    let exists = sqlx::query("SELECT id FROM members WHERE workspace_id = $1 AND id = $2")
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .is_some();
    if !exists {
        return Ok(false);
    }
    for table in ["sessions", "management_keys", "recovery_codes"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE member_id = $1")).bind(id).execute(&mut **tx).await?;
    }
    sqlx::query("DELETE FROM members WHERE id = $1").bind(id).execute(&mut **tx).await?;
    if owners(tx, workspace_id).await? == 0 {
        return Err(StoreError::Conflict(Conflict::LastOwner));
    }
    Ok(true)
}

/// Serialises changes that may remove an owner, per workspace: the workspace's row lock on
/// PostgreSQL (under READ COMMITTED two transactions would each count the other's owner),
/// the database's write lock on SQLite. Taken before the owners are counted.
pub(crate) async fn lock_owners(tx: &mut Tx, workspace_id: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE workspaces SET name = name WHERE id = $1").bind(workspace_id).execute(&mut **tx).await?;
    Ok(())
}

/// Owners who can act: an owner invited but never set up (a pending setup token) does not
/// count, or the last active owner could leave the workspace to an unanswered invitation.
pub(crate) async fn owners(tx: &mut Tx, workspace_id: &str) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) AS n FROM members WHERE workspace_id = $1 AND role = 'owner' AND setup_hash IS NULL",
    )
    .bind(workspace_id)
    .fetch_one(&mut **tx)
    .await?)
}
