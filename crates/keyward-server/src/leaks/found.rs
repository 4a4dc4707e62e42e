//! What a reported leak does to an API key, whoever reported it (GitHub's secret scanning or
//! anyone through `POST /v1/leaks`): under the workspace's `leaked_keys` policy the key is
//! revoked at once — every node drops it through the change event, as for a manual revoke —
//! or left valid; either way the leak is marked on the key, audited as `key.leaked` (with
//! the source and URL, never the secret; a `key.leaked` webhook event and the key's
//! callback follow from it) and raised as an alert of kind `leaked`. Only the first report
//! of a key does anything: repeats change and store nothing. Other credentials are
//! `credential.rs`'.

use chrono::{DateTime, Utc};
use keyward_core::audit::{AuditActor, AuditTarget};
use keyward_core::audit_action::AuditAction;
use keyward_core::model::{KeyLeak, KeyRecord, KeyStatus};
use keyward_core::policy::LeakedKeys;
use keyward_store::{Alert, AuditRecord, LeakFound, LeakOutcome, Origin};
use serde_json::{json, Value};

use crate::error::ApiResult;
use crate::state::AppState;

/// The longest URL kept from a report (a longer one is cut).
pub const MAX_LEAK_URL: usize = 2048;
/// The longest `source` kept from GitHub's call.
const MAX_SOURCE: usize = 64;

/// Who reported a leak, and where they found the key.
pub struct LeakSource<'a> {
    /// `github:<source>` or `report`.
    pub source: String,
    pub url: Option<&'a str>,
    /// Who to name as the actor of the audit event.
    pub reporter: &'static str,
    pub origin: Origin,
}

impl LeakSource<'_> {
    /// GitHub's `source` for a match (`commit`, `content`, …), kept short and printable.
    pub fn github_source(source: &str) -> String {
        let s: String = source
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .take(MAX_SOURCE)
            .collect::<String>()
            .to_ascii_lowercase();
        format!("github:{}", if s.is_empty() { "unknown" } else { &s })
    }
}

/// A URL as it may be stored: printable, at most [`MAX_LEAK_URL`] characters; none if empty.
pub(super) fn clean_url(url: Option<&str>) -> Option<String> {
    let u: String = url?.chars().filter(|c| !c.is_control()).take(MAX_LEAK_URL).collect();
    (!u.trim().is_empty()).then_some(u)
}

/// The alert of kind `leaked` a first report raises, on the credential `id` names.
pub(super) fn leak_alert(
    state: &AppState,
    workspace_id: &str,
    id: &str,
    from: &LeakSource<'_>,
    detail: Value,
    now: DateTime<Utc>,
) -> Alert {
    Alert {
        id: keyward_core::ids::new_id("alr", now, state.random.as_ref()),
        workspace_id: workspace_id.to_string(),
        key_id: id.to_string(),
        kind: "leaked".into(),
        window_start: now,
        subject: from.source.clone(),
        detail,
        created_at: now,
        acknowledged_at: None,
        acknowledged_by: None,
    }
}

/// Applies a leak report to `rec` (found by its secret's hash, or an imported key's plain
/// hash). Answers the key as it is afterwards.
pub async fn key_leaked(state: &AppState, rec: &KeyRecord, from: &LeakSource<'_>) -> ApiResult<KeyRecord> {
    if rec.leak.is_some() {
        return Ok(rec.clone());
    }
    let now = state.clock.now();
    let policy = state.store.policy(&rec.workspace_id).await?.leaked_keys;
    let revoke = policy == LeakedKeys::Revoke && !matches!(rec.status, KeyStatus::Revoked | KeyStatus::Rejected);
    let url = clean_url(from.url);
    let leak = KeyLeak { at: now, source: from.source.clone(), url: url.clone() };
    let target = AuditTarget { kind: "key".into(), id: Some(rec.id.clone()), name: Some(rec.name.clone()) };
    let actor = AuditActor { kind: "system".into(), id: None, name: Some(from.reporter.into()) };
    let what = json!({"source": from.source, "url": url, "policy": policy, "revoked": revoke});
    let audit = AuditRecord {
        actor: actor.clone(),
        action: AuditAction::KeyLeaked,
        target: target.clone(),
        changes: what.clone(),
        origin: from.origin.clone(),
    };
    let revoke_audit = revoke.then(|| audit.with(AuditAction::KeyRevoke, target, json!({"reason": "leaked"})));
    let alert = leak_alert(state, &rec.workspace_id, &rec.id, from, what, now);
    let found = LeakFound {
        workspace_id: &rec.workspace_id,
        key_id: &rec.id,
        leak: &leak,
        audit: &audit,
        revoke: revoke_audit.as_ref(),
        alert: &alert,
        now,
    };
    Ok(match state.store.record_leak(&found).await? {
        LeakOutcome::Recorded(after) => {
            tracing::warn!(key = %after.id, source = %from.source, revoked = revoke, "a key was reported leaked");
            state.forget(&after);
            after
        }
        LeakOutcome::Already(after) => after,
        LeakOutcome::Gone => rec.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_urls_are_kept_printable_and_short() {
        assert_eq!(LeakSource::github_source("Commit"), "github:commit");
        assert_eq!(LeakSource::github_source("\u{0}\n"), "github:unknown");
        assert_eq!(LeakSource::github_source(&"x".repeat(1000)).len(), "github:".len() + MAX_SOURCE);
        assert_eq!(clean_url(Some("https://e.x/a\u{0}b")), Some("https://e.x/ab".into()));
        assert_eq!(clean_url(Some("  ")), None);
        assert_eq!(clean_url(Some(&"u".repeat(10_000))).map(|u| u.len()), Some(MAX_LEAK_URL));
    }
}
