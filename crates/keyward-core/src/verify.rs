//! The verification decision for a key that storage has found. Pure: the caller supplies the
//! record, the time, the client IP and what the request needs.

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use std::net::IpAddr;

pub use crate::codes::VerifyCode;
use crate::model::{KeyRecord, KeyStatus};
use crate::permissions::Query;
use crate::wire::verify::VerifyResponse;

/// What the verification cache keeps of a key: only the fields a decision or an answer needs
/// (a node may cache a million of these), its allowlist parsed once, and the part of its
/// verify answer that names the key serialized once.
#[derive(Debug, Clone)]
pub struct VerifiableKey {
    pub id: Box<str>,
    pub workspace_id: Box<str>,
    pub environment: Box<str>,
    pub status: KeyStatus,
    pub expires_at: Option<DateTime<Utc>>,
    /// When the stored record last changed: the cache's backstop compares it with storage.
    pub updated_at: DateTime<Utc>,
    pub roles: Box<[String]>,
    pub permissions: Box<[String]>,
    pub scopes: Box<[String]>,
    pub nets: Box<[IpNet]>,
    /// For a registered public key: the key, parsed once, that its requests are signed with.
    pub public_key: Option<crate::signing::PublicKey>,
    /// `"key_id":…,"expires_at":…}`: the answer's fields after `valid` and `code`.
    identity_json: Box<str>,
}

impl VerifiableKey {
    pub fn new(record: KeyRecord) -> Self {
        let nets = record.ip_allowlist.iter().filter_map(|e| crate::ip::parse_entry(e)).collect();
        // Serialized by the answer type itself, so the spliced answer cannot drift from it.
        let full = serde_json::to_string(&VerifyResponse::about(&record, VerifyCode::Valid)).unwrap_or_default();
        let identity_json = full.strip_prefix(VALID_HEAD).unwrap_or_default().into();
        let public_key =
            match (record.algorithm.as_deref().and_then(crate::signing::Algorithm::parse), &record.public_key) {
                (Some(alg), Some(hex)) => crate::signing::PublicKey::parse(alg, hex).ok(),
                _ => None,
            };
        VerifiableKey {
            id: record.id.into(),
            workspace_id: record.workspace_id.into(),
            environment: record.environment.into(),
            status: record.status,
            expires_at: record.expires_at,
            updated_at: record.updated_at,
            roles: record.roles.into(),
            permissions: record.permissions.into(),
            scopes: record.scopes.into(),
            nets,
            public_key,
            identity_json,
        }
    }

    /// The JSON of `VerifyResponse::about(record, code)`, without building one.
    pub fn answer_json(&self, code: VerifyCode) -> String {
        let mut out = String::with_capacity(self.identity_json.len() + 48);
        out.push_str(r#"{"valid":"#);
        out.push_str(if code == VerifyCode::Valid { "true" } else { "false" });
        out.push_str(r#","code":""#);
        out.push_str(code.as_str());
        out.push_str("\",");
        out.push_str(&self.identity_json);
        out
    }
}

const VALID_HEAD: &str = r#"{"valid":true,"code":"VALID","#;

/// What a request asks of the key.
#[derive(Debug, Default)]
pub struct Requirements<'a> {
    /// Only keys of this workspace count; another's answers `NOT_FOUND` (checked by the
    /// verifier before anything else is decided, so it reveals nothing of the key).
    pub workspace: Option<&'a str>,
    pub ip: Option<IpAddr>,
    pub permissions: Option<&'a Query>,
    pub scope: Option<&'a str>,
}

pub fn decide(key: &VerifiableKey, now: DateTime<Utc>, req: &Requirements<'_>) -> VerifyCode {
    match key.status {
        KeyStatus::Revoked => return VerifyCode::Revoked,
        KeyStatus::PendingCreate => return VerifyCode::Pending,
        KeyStatus::Rejected => return VerifyCode::NotFound,
        KeyStatus::Expired => return VerifyCode::Expired,
        // A pending update keeps the old settings in force; a pending revoke keeps the key working.
        KeyStatus::Active | KeyStatus::PendingUpdate | KeyStatus::PendingRevoke => {}
    }
    if matches!(key.expires_at, Some(t) if t <= now) {
        return VerifyCode::Expired;
    }
    if !key.nets.is_empty() {
        // With an allowlist, a caller that cannot say where the request came from is refused.
        match req.ip {
            Some(ip) if crate::ip::allowed(&key.nets, ip) => {}
            _ => return VerifyCode::IpNotAllowed,
        }
    }
    if let Some(q) = req.permissions {
        if !q.allows(&key.permissions) {
            return VerifyCode::InsufficientPermissions;
        }
    }
    if let Some(s) = req.scope {
        if !crate::scopes::any_covers(&key.scopes, s) {
            return VerifyCode::InsufficientPermissions;
        }
    }
    VerifyCode::Valid
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::KeyKind;
    use chrono::Duration;

    fn rec() -> KeyRecord {
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        KeyRecord {
            id: "key_1".into(),
            workspace_id: "ws_1".into(),
            name: "n".into(),
            kind: KeyKind::Secret,
            algorithm: None,
            public_key: None,
            key_type: None,
            environment: "test".into(),
            status: KeyStatus::Active,
            hash: Some("h".into()),
            start: "kw_test_sk_abcd".into(),
            roles: vec![],
            permissions: vec!["wallet.*".into()],
            scopes: vec!["wallet:*".into()],
            ip_allowlist: vec![],
            meta: Default::default(),
            callback_url: None,
            expires_at: None,
            created_at: t,
            updated_at: t,
            created_by: None,
            last_used_at: None,
            last_used_ip: None,
            revoked_at: None,
            approval_id: None,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_100, 0).unwrap()
    }

    #[test]
    fn spliced_answer_equals_the_serialized_one() {
        let mut with_all = rec();
        with_all.name = "quote \" and \u{e9}".into();
        with_all.meta.insert("plan".into(), serde_json::json!({"tier": 2}));
        with_all.expires_at = Some(now());
        with_all.roles = vec!["admin".into()];
        for r in [rec(), with_all] {
            let k = VerifiableKey::new(r.clone());
            for code in [VerifyCode::Valid, VerifyCode::Revoked, VerifyCode::InsufficientPermissions] {
                let want = serde_json::to_string(&VerifyResponse::about(&r, code)).unwrap();
                assert_eq!(k.answer_json(code), want);
            }
        }
    }

    #[test]
    fn codes_in_order() {
        let none = Requirements::default();
        assert_eq!(decide(&VerifiableKey::new(rec()), now(), &none), VerifyCode::Valid);

        let mut r = rec();
        r.status = KeyStatus::Revoked;
        assert_eq!(decide(&VerifiableKey::new(r), now(), &none), VerifyCode::Revoked);

        let mut r = rec();
        r.expires_at = Some(now() - Duration::seconds(1));
        assert_eq!(decide(&VerifiableKey::new(r), now(), &none), VerifyCode::Expired);

        let mut r = rec();
        r.status = KeyStatus::PendingCreate;
        assert_eq!(decide(&VerifiableKey::new(r), now(), &none), VerifyCode::Pending);
    }

    #[test]
    fn ip_permissions_scope() {
        let mut r = rec();
        r.ip_allowlist = vec!["10.0.0.0/8".into()];
        let k = VerifiableKey::new(r);
        let inside = Requirements { ip: Some("10.1.1.1".parse().unwrap()), ..Default::default() };
        let outside = Requirements { ip: Some("11.1.1.1".parse().unwrap()), ..Default::default() };
        assert_eq!(decide(&k, now(), &inside), VerifyCode::Valid);
        assert_eq!(decide(&k, now(), &outside), VerifyCode::IpNotAllowed);
        assert_eq!(decide(&k, now(), &Requirements::default()), VerifyCode::IpNotAllowed);

        let k = VerifiableKey::new(rec());
        let q = Query::parse("wallet.read AND tx.create").unwrap();
        let need = Requirements { permissions: Some(&q), ..Default::default() };
        assert_eq!(decide(&k, now(), &need), VerifyCode::InsufficientPermissions);
        let q = Query::parse("wallet.read").unwrap();
        let need = Requirements { permissions: Some(&q), scope: Some("wallet:w_1"), ..Default::default() };
        assert_eq!(decide(&k, now(), &need), VerifyCode::Valid);
        let need = Requirements { scope: Some("vault:v_1"), ..Default::default() };
        assert_eq!(decide(&k, now(), &need), VerifyCode::InsufficientPermissions);
    }
}
