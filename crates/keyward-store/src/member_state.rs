//! Ending an approval request about a member, inside the transaction that closes it.

use keyward_core::policy::KeyAction;

use crate::dialect::Tx;
use crate::StoreError;

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
