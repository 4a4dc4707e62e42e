//! What a reported leak does to a management key, verify token or session token: what it
//! does to an API key (`found.rs`), under the same `leaked_keys` policy. `revoke` ends it at
//! once, as its manual revoke or logout does — a management key or verify token revoked, a
//! session ended; every node reads management keys and sessions from storage on each call,
//! and a verify token's change event drops it from every node's cache. `alert` keeps it.
//! Either way the leak is marked on it, audited as `management_key.leaked`,
//! `verify_token.leaked` or `session.leaked` (a webhook event of the same name follows) and
//! raised as an alert of kind `leaked`. Only the first report does anything.

use keyward_core::audit::{AuditActor, AuditTarget};
use keyward_core::audit_action::AuditAction;
use keyward_core::model::KeyLeak;
use keyward_core::policy::LeakedKeys;
use keyward_store::{AuditRecord, CredentialLeakFound, LeakableCredential, LeakableKind, VERIFY_TOKEN_EVENT_PREFIX};
use serde_json::json;

use super::found::{clean_url, leak_alert, LeakSource};
use crate::error::ApiResult;
use crate::state::AppState;

/// The audit actions of a leak of `kind` and of its ending, and what the events target (a
/// session is its member's: it has no id of its own).
fn actions(c: &LeakableCredential) -> (AuditAction, AuditAction, AuditTarget) {
    let target = |kind: &str| AuditTarget { kind: kind.into(), id: Some(c.id.clone()), name: Some(c.name.clone()) };
    match c.kind {
        LeakableKind::ManagementKey => {
            (AuditAction::ManagementKeyLeaked, AuditAction::ManagementKeyRevoke, target("management_key"))
        }
        LeakableKind::VerifyToken => {
            (AuditAction::VerifyTokenLeaked, AuditAction::VerifyTokenRevoke, target("verify_token"))
        }
        LeakableKind::Session => (AuditAction::SessionLeaked, AuditAction::SessionLogout, target("member")),
    }
}

/// Applies a leak report to `c` (found by its secret's HMAC).
pub async fn credential_leaked(state: &AppState, c: &LeakableCredential, from: &LeakSource<'_>) -> ApiResult<()> {
    if c.leak.is_some() {
        return Ok(());
    }
    let now = state.clock.now();
    let policy = state.store.policy(&c.workspace_id).await?.leaked_keys;
    let end = policy == LeakedKeys::Revoke && !c.dead;
    let url = clean_url(from.url);
    let leak = KeyLeak { at: now, source: from.source.clone(), url: url.clone() };
    let (leaked_action, end_action, target) = actions(c);
    let what = json!({
        "credential": c.kind.as_str(),
        "member_id": c.member_id,
        "source": from.source,
        "url": url,
        "policy": policy,
        "revoked": end,
    });
    let audit = AuditRecord {
        actor: AuditActor { kind: "system".into(), id: None, name: Some(from.reporter.into()) },
        action: leaked_action,
        target: target.clone(),
        changes: what.clone(),
        origin: from.origin.clone(),
    };
    let end_audit = end.then(|| audit.with(end_action, target, json!({"reason": "leaked", "member_id": c.member_id})));
    let alert = leak_alert(state, &c.workspace_id, &c.id, from, what, now);
    let found =
        CredentialLeakFound { credential: c, leak: &leak, audit: &audit, end: end_audit.as_ref(), alert: &alert, now };
    if state.store.record_credential_leak(&found).await? {
        tracing::warn!(credential = c.kind.as_str(), id = %c.id, source = %from.source, revoked = end,
            "a credential was reported leaked");
        // This node at once; the others through the change event.
        if end && c.kind == LeakableKind::VerifyToken {
            state.cache.invalidate(&format!("{VERIFY_TOKEN_EVENT_PREFIX}{}", c.hash));
        }
    }
    Ok(())
}
