//! What a reported string is. Every secret Keyward issues counts: a secret key, management
//! key, verify token or session token — found by the HMAC of the string when it has the
//! shape and checksum of its kind, one lookup per kind for a whole batch — and a key imported
//! by hash and not used yet, found by the plain SHA-256 of the string when no HMAC matched
//! (an imported secret may have any shape). A registered public key is no secret: reported,
//! it is nothing.

use std::collections::HashMap;

use keyward_core::audit::AuditActor;
use keyward_core::import::{plain_hash, MAX_IMPORTED_SECRET_LEN};
use keyward_core::keyformat::{self, TokenKind};
use keyward_core::model::KeyRecord;
use keyward_core::operator_action::OperatorAction;
use keyward_core::pepper::hex_encode;
use keyward_store::{LeakableCredential, LeakableKind, OperatorRecord, OperatorToken};

use super::credential::credential_leaked;
use super::found::{key_leaked, LeakSource};
use crate::error::ApiResult;
use crate::state::AppState;

/// A credential of this server that a report named.
#[derive(Debug, Clone)]
pub enum Leaked {
    /// An API key: a secret key, or a key imported by hash (boxed: a record is large).
    Key(Box<KeyRecord>),
    /// A management key, verify token or session.
    Credential(LeakableCredential),
    /// An operator token: it belongs to no workspace, so no workspace's `leaked_keys` policy
    /// governs it — a leaked one is always revoked, and the operator log says why.
    Operator(OperatorToken),
}

impl Leaked {
    /// Reported before: a repeat does nothing.
    pub fn reported(&self) -> bool {
        match self {
            Leaked::Key(k) => k.leak.is_some(),
            Leaked::Credential(c) => c.leak.is_some(),
            Leaked::Operator(o) => o.revoked_at.is_some(),
        }
    }

    /// One name per credential, so a batch handles each once.
    pub fn identity(&self) -> (&'static str, &str) {
        match self {
            Leaked::Key(k) => ("key", &k.id),
            Leaked::Credential(c) => (c.kind.as_str(), &c.hash),
            Leaked::Operator(o) => ("operator_token", &o.id),
        }
    }

    /// Applies the report: what the workspace's `leaked_keys` policy says.
    pub async fn report(&self, state: &AppState, from: &LeakSource<'_>) -> ApiResult<()> {
        match self {
            Leaked::Key(k) => key_leaked(state, k, from).await.map(|_| ()),
            Leaked::Credential(c) => credential_leaked(state, c, from).await,
            Leaked::Operator(o) => {
                let now = state.clock.now();
                let rec = OperatorRecord {
                    id: keyward_core::ids::new_id("opl", now, state.random.as_ref()),
                    actor: AuditActor { kind: "system".into(), id: None, name: Some(from.reporter.into()) },
                    action: OperatorAction::OperatorTokenRevoke,
                    workspace_id: None,
                    changes: serde_json::json!({"id": o.id, "reason": "leaked", "source": from.source, "url": from.url}),
                    origin: from.origin.clone(),
                };
                // `None`: revoked a moment ago by someone else; nothing is left to do.
                state.store.revoke_operator_token(&o.id, now, &rec).await?;
                Ok(())
            }
        }
    }
}

/// The table a kind of token is looked up in (`None`: API keys').
fn leakable(kind: TokenKind) -> Option<LeakableKind> {
    match kind {
        TokenKind::Secret => None,
        TokenKind::Management => Some(LeakableKind::ManagementKey),
        TokenKind::Verify => Some(LeakableKind::VerifyToken),
        TokenKind::Session => Some(LeakableKind::Session),
        // Looked up on their own in `find_leaked`.
        TokenKind::Operator => None,
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort_unstable();
    v.dedup();
    v
}

impl AppState {
    /// The credential each of `tokens` is (in any state), in order: one storage lookup per
    /// kind of token present, and one among imported keys for what no HMAC found. Never a
    /// verification: no usage, no last-used mark, no cache entry.
    pub(crate) async fn find_leaked(&self, tokens: &[&str]) -> ApiResult<Vec<Option<Leaked>>> {
        let now = self.clock.now();
        // Only strings of a token's shape and checksum are hashed with the pepper at all.
        let hmacs: Vec<Option<(TokenKind, String)>> =
            tokens.iter().map(|t| keyformat::parse(t).map(|p| (p.kind, self.pepper.hash(t)))).collect();
        let mut by_hmac: HashMap<String, Leaked> = HashMap::new();
        for kind in
            [TokenKind::Secret, TokenKind::Management, TokenKind::Verify, TokenKind::Session, TokenKind::Operator]
        {
            let wanted = sorted(hmacs.iter().flatten().filter(|(k, _)| *k == kind).map(|(_, h)| h.clone()).collect());
            if wanted.is_empty() {
                continue;
            }
            if kind == TokenKind::Operator {
                // Operators hold few tokens and report them rarely: one lookup each.
                for h in &wanted {
                    if let Some(o) = self.store.operator_token_by_hash(h).await? {
                        by_hmac.insert(h.clone(), Leaked::Operator(o));
                    }
                }
                continue;
            }
            match leakable(kind) {
                None => {
                    for k in self.store.keys_by_hashes(&wanted).await? {
                        if let Some(h) = k.hash.clone() {
                            by_hmac.insert(h, Leaked::Key(Box::new(k)));
                        }
                    }
                }
                Some(kind) => {
                    for c in self.store.credentials_by_hashes(kind, &wanted, now).await? {
                        by_hmac.insert(c.hash.clone(), Leaked::Credential(c));
                    }
                }
            }
        }
        let mut out: Vec<Option<Leaked>> =
            hmacs.iter().map(|h| h.as_ref().and_then(|(_, h)| by_hmac.get(h).cloned())).collect();
        // What no HMAC found may be an imported key not used yet. The set of imported
        // hashes in memory is not asked: one imported on another node a moment ago counts.
        let plains: Vec<Option<String>> = tokens
            .iter()
            .zip(&out)
            .map(|(t, found)| {
                (found.is_none() && !t.is_empty() && t.len() <= MAX_IMPORTED_SECRET_LEN)
                    .then(|| hex_encode(&plain_hash(t)))
            })
            .collect();
        let wanted = sorted(plains.iter().flatten().cloned().collect());
        if !wanted.is_empty() {
            let imported: HashMap<String, KeyRecord> =
                self.store.keys_by_import_hashes(&wanted).await?.into_iter().collect();
            for (slot, plain) in out.iter_mut().zip(&plains) {
                if let Some(k) = plain.as_ref().and_then(|p| imported.get(p)) {
                    *slot = Some(Leaked::Key(Box::new(k.clone())));
                }
            }
        }
        Ok(out)
    }
}
