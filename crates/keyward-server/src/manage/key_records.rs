//! Building the stored record of a new key — a created one, or a rotated key's successor —
//! so the handlers only parse, authorize and call.

use chrono::{DateTime, Utc};

use keyward_core::keyformat;
use keyward_core::model::{KeyKind, KeyRecord, KeyStatus};
use keyward_core::validate::NewKey;
use keyward_store::{NewApproval, Principal};

use crate::state::AppState;

/// Characters of a registered public key shown as its display hint.
const PUBLIC_KEY_HINT: usize = 12;

/// What a rotated key's successor gets besides the old key's settings.
pub(crate) struct Successor {
    hash: String,
    start: String,
    created_by: String,
}

impl Successor {
    /// The successor of `old`: its settings, a new secret; pending while `approval` waits.
    /// A disabled key's successor is disabled too: rotating must not enable a key (that is
    /// an update, governed as one).
    pub(crate) fn record(
        &self,
        old: &KeyRecord,
        id: &str,
        approval: Option<&NewApproval>,
        now: DateTime<Utc>,
    ) -> KeyRecord {
        KeyRecord {
            id: id.to_string(),
            hash: Some(self.hash.clone()),
            start: self.start.clone(),
            status: if approval.is_some() { KeyStatus::PendingCreate } else { KeyStatus::Active },
            approval_id: approval.map(|a| a.id.clone()),
            created_at: now,
            updated_at: now,
            created_by: Some(self.created_by.clone()),
            last_used_at: None,
            last_used_ip: None,
            revoked_at: None,
            // The successor's secret is new: the old one's leak is not its.
            leak: None,
            // The old record comes from the claim, which already names this key as its
            // successor.
            rotated_to: None,
            rotated_from: Some(old.id.clone()),
            ..old.clone()
        }
    }
}

fn start_of(secret: &str) -> String {
    keyformat::parse(secret).map(|t| t.start.to_string()).unwrap_or_default()
}

impl AppState {
    /// A created key's record, and its secret (shown once) for a secret key; a public key is
    /// registered as given. Under approval the key exists but does not work yet.
    pub(crate) fn new_key_record(
        &self,
        p: &Principal,
        id: String,
        new: NewKey,
        approval: Option<&NewApproval>,
        now: DateTime<Utc>,
    ) -> (KeyRecord, Option<String>) {
        let (kind, secret, algorithm, public_key) = match new.public_key {
            Some((alg, pk)) => (KeyKind::Public, None, Some(alg.as_str().to_string()), Some(pk)),
            None => {
                let secret = keyformat::generate_secret(&p.prefix, &new.environment, self.random.as_ref());
                (KeyKind::Secret, Some(secret), None, None)
            }
        };
        let start = match (&secret, &public_key) {
            (Some(s), _) => start_of(s),
            (None, Some(pk)) => pk.chars().take(PUBLIC_KEY_HINT).collect(),
            (None, None) => String::new(),
        };
        let rec = KeyRecord {
            id,
            workspace_id: p.workspace_id.clone(),
            name: new.name,
            kind,
            algorithm,
            public_key,
            key_type: new.key_type,
            environment: new.environment,
            status: if approval.is_some() { KeyStatus::PendingCreate } else { KeyStatus::Active },
            hash: secret.as_deref().map(|s| self.pepper.hash(s)),
            start,
            roles: new.roles,
            permissions: new.permissions,
            scopes: new.scopes,
            grants: new.grants,
            ip_allowlist: new.ip_allowlist,
            meta: new.meta,
            callback_url: new.callback_url,
            expires_at: new.expires_at,
            created_at: now,
            updated_at: now,
            created_by: Some(p.member_id.clone()),
            last_used_at: None,
            last_used_ip: None,
            revoked_at: None,
            approval_id: approval.map(|a| a.id.clone()),
            service_account_id: None,
            ratelimits: new.ratelimits,
            credits: new.credits,
            disabled_at: (!new.enabled).then_some(now),
            // The caller finds (or derives) the identity's id.
            identity_id: None,
            external_id: new.external_id,
            leak: None,
            rotated_to: None,
            rotated_from: None,
        };
        (rec, secret)
    }

    /// A new secret for a rotation (it must exist before the transaction, to be sealed into
    /// the idempotency record), and what the successor is built from.
    pub(crate) fn successor_secret(&self, p: &Principal, environment: &str) -> (String, Successor) {
        let secret = keyformat::generate_secret(&p.prefix, environment, self.random.as_ref());
        let successor =
            Successor { hash: self.pepper.hash(&secret), start: start_of(&secret), created_by: p.member_id.clone() };
        (secret, successor)
    }
}
