//! The verification decision for a key that storage has found. Pure: the caller supplies the
//! record, the time, the client IP and what the request needs.

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::Serialize;
use serde_json::{Map, Value};
use std::net::IpAddr;

use crate::authority::{Access, Basis, RoleDefs};
pub use crate::codes::VerifyCode;
use crate::model::{KeyRecord, KeyStatus};
use crate::permissions::Query;

/// What a key's cached copy is derived from besides its record: the permissions of the
/// roles it holds, and the state of the service account that owns it (if any).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyContext {
    pub defs: RoleDefs,
    pub owner: Option<OwnerState>,
    /// The identity the key belongs to (read with the key: its limits, credits and meta
    /// are cached with it, so a verification reads nothing more).
    pub identity: Option<crate::identity::IdentityRecord>,
}

/// A key-owning service account as verification needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerState {
    pub role: String,
    /// Disabled, or deleted: its keys answer `DISABLED`.
    pub disabled: bool,
}

impl KeyContext {
    /// Every role `rec` holds: its own, its grants' and its owner's, each once.
    pub fn roles_of(rec: &KeyRecord, owner_role: Option<&str>) -> Vec<String> {
        let mut roles = rec.roles.clone();
        for r in rec.grants.iter().map(|g| g.role.as_str()).chain(owner_role) {
            if !roles.iter().any(|x| x == r) {
                roles.push(r.to_string());
            }
        }
        roles
    }
}

/// What the verification cache keeps of a key: only the fields a decision or an answer needs
/// (a node may cache a million of these), its allowlist parsed once, its authority derived
/// once, and its verify answer kept as parts written out one after the other: the part its
/// workspace and environment decide and the part its authority decides are shared by the
/// keys that have the same (`intern`), so a key keeps only its id (16 bytes), its name and,
/// when they are not the usual empty ones, its meta, expiry and identity. Kept to 96 bytes,
/// so that with its `Arc` it fits the allocator's 112-byte blocks: what most keys lack is
/// boxed in `rare`.
#[derive(Debug, Clone)]
pub struct VerifiableKey {
    /// Its workspace and environment, shared by their keys.
    place: std::sync::Arc<crate::place::Place>,
    access: std::sync::Arc<Access>,
    pub expires_at: Option<DateTime<Utc>>,
    /// When the stored record last changed: the cache's backstop compares it with storage.
    pub updated_at: DateTime<Utc>,
    /// Rate limits and credits (`None` and empty for most keys: nothing to check).
    pub limits: Option<Box<Limits>>,
    /// An owner, an allowlist, a public key, an identity, or an id not of Keyward's making;
    /// `None` for most keys.
    rare: Option<Box<Rare>>,
    /// The name's JSON, then the answer's `,"meta":…,"expires_at":…` (and `,"identity":…`)
    /// when they differ from [`PLAIN_TAIL`] (most keys: nothing more).
    text: Box<str>,
    name_len: u32,
    /// The id's ULID (`key_` and these, as text), unless `rare` holds the id.
    id: [u8; 16],
    pub status: KeyStatus,
    /// The key is disabled, or its owner is disabled or deleted: one flag for both, so a
    /// disabled key costs verification nothing more.
    pub disabled: bool,
    /// Its workspace's standing on the node that cached it (active unless the node set it):
    /// the node keeps it true as suspensions come and go, so deciding it reads one byte.
    pub standing: crate::standing::Standing,
}

/// The parts of a cached key that most keys do not have.
#[derive(Debug, Clone, Default)]
struct Rare {
    /// The service account owning the key.
    owner: Option<Box<str>>,
    nets: Box<[IpNet]>,
    /// The id and its JSON, when it is not a key id [`crate::ids::new_id`] made.
    id: Option<(Box<str>, Box<str>)>,
    /// The identity the key belongs to (its id), so that a change to it finds its keys.
    identity: Option<Box<str>>,
    /// For a registered public key: the key, parsed once, that its requests are signed with.
    public_key: Option<Box<crate::signing::PublicKey>>,
}

/// The end of the answer about a key without meta, expiry or identity.
const PLAIN_TAIL: &str = r#","meta":{},"expires_at":null"#;

/// What a key's verifications spend: its own limits and credits, and its identity's,
/// shared with the identity's other keys (checked together, in one step: see
/// `limit_plan` and the server's `limits`).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub ratelimits: Box<[crate::ratelimit::RateLimit]>,
    pub credits: Option<crate::ratelimit::KeyCredits>,
    /// Identifies the set of limits: when an override changes them, their counts restart.
    /// Computed once here, not on every check.
    pub fingerprint: u64,
    /// The identity's (`None` for a key without one, or whose identity has neither).
    pub identity: Option<Box<IdentityLimits>>,
}

/// An identity's limits and credits as its keys' cached copies hold them.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityLimits {
    pub id: Box<str>,
    /// Its limits, credits and fingerprint (`identity` is `None` here).
    pub limits: Limits,
}

impl Limits {
    pub fn new(ratelimits: Vec<crate::ratelimit::RateLimit>, credits: Option<crate::ratelimit::KeyCredits>) -> Self {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for l in &ratelimits {
            (&l.name, l.limit, l.duration_ms).hash(&mut h);
        }
        Limits { ratelimits: ratelimits.into(), credits, fingerprint: h.finish(), identity: None }
    }

    /// These limits with identity `id`'s shared ones.
    pub fn with_identity(mut self, id: &str, limits: Limits) -> Self {
        self.identity = Some(Box::new(IdentityLimits { id: id.into(), limits }));
        self
    }

    /// The identity's limits (empty without one).
    pub fn identity_limits(&self) -> &[crate::ratelimit::RateLimit] {
        self.identity.as_ref().map_or(&[], |i| &i.limits.ratelimits)
    }

    /// The identity's credits, if any.
    pub fn identity_credits(&self) -> Option<&crate::ratelimit::KeyCredits> {
        self.identity.as_ref().and_then(|i| i.limits.credits.as_ref())
    }
}

#[derive(Serialize)]
struct Tail<'a> {
    meta: &'a Map<String, Value>,
    expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<IdentityPart<'a>>,
}

#[derive(Serialize)]
struct IdentityPart<'a> {
    id: &'a str,
    external_id: &'a str,
    meta: &'a Map<String, Value>,
}

/// An object's fields without its braces.
pub(crate) fn json_fields<T: Serialize>(t: &T) -> Box<str> {
    let s = serde_json::to_string(t).unwrap_or_default();
    s.get(1..s.len().saturating_sub(1)).unwrap_or_default().into()
}

impl VerifiableKey {
    pub fn new(record: KeyRecord, ctx: KeyContext) -> Self {
        let nets: Box<[IpNet]> = record.ip_allowlist.iter().filter_map(|e| crate::ip::parse_entry(e)).collect();
        let public_key =
            match (record.algorithm.as_deref().and_then(crate::signing::Algorithm::parse), &record.public_key) {
                (Some(alg), Some(hex)) => crate::signing::PublicKey::parse(alg, hex).ok().map(Box::new),
                _ => None,
            };
        let roles =
            KeyContext::roles_of(&record, ctx.owner.as_ref().map(|o| o.role.as_str()).filter(|r| !r.is_empty()));
        let mut defs = ctx.defs;
        defs.retain(|name, _| roles.contains(name));
        let identity = ctx.identity.as_ref().filter(|i| record.identity_id.as_deref() == Some(i.id.as_str()));
        let tail = json_fields(&Tail {
            meta: &record.meta,
            expires_at: record.expires_at,
            identity: identity.map(|i| IdentityPart { id: &i.id, external_id: &i.external_id, meta: &i.meta }),
        });
        let mut text = serde_json::to_string(&record.name).unwrap_or_default();
        let name_len = u32::try_from(text.len()).unwrap_or(u32::MAX);
        if PLAIN_TAIL.get(1..) != Some(&*tail) {
            text.push(',');
            text.push_str(&tail);
        }
        let access = crate::intern::access(Basis {
            permissions: crate::intern::list(record.permissions),
            scopes: crate::intern::list(record.scopes),
            roles: roles.into(),
            grants: record.grants.into(),
            defs,
        });
        let compact = crate::ids::compact_key_id(&record.id);
        let shared = identity
            .filter(|i| !i.ratelimits.is_empty() || i.credits.is_some())
            .map(|i| (i.id.clone(), Limits::new(i.ratelimits.clone(), i.credits)));
        let limits = match (!record.ratelimits.is_empty() || record.credits.is_some(), shared) {
            (false, None) => None,
            (_, None) => Some(Box::new(Limits::new(record.ratelimits, record.credits))),
            (_, Some((id, shared))) => {
                Some(Box::new(Limits::new(record.ratelimits, record.credits).with_identity(&id, shared)))
            }
        };
        let rare = Rare {
            owner: record.service_account_id.map(Into::into),
            nets,
            id: compact.is_none().then(|| {
                let json = serde_json::to_string(&record.id).unwrap_or_default();
                (record.id.as_str().into(), json.into())
            }),
            identity: record.identity_id.map(Into::into),
            public_key,
        };
        let rare = (rare.owner.is_some()
            || !rare.nets.is_empty()
            || rare.id.is_some()
            || rare.identity.is_some()
            || rare.public_key.is_some())
        .then(|| Box::new(rare));
        VerifiableKey {
            place: crate::intern::place(&record.workspace_id, &record.environment),
            access,
            expires_at: record.expires_at,
            updated_at: record.updated_at,
            limits,
            rare,
            text: text.into(),
            name_len,
            id: compact.unwrap_or_default(),
            status: record.status,
            disabled: record.disabled_at.is_some() || ctx.owner.is_some_and(|o| o.disabled),
            standing: crate::standing::Standing::Active,
        }
    }

    /// The key's id: rendered from its 16 bytes (on the stack), or the id `rare` keeps.
    pub fn id(&self) -> crate::ids::KeyId<'_> {
        match self.rare.as_ref().and_then(|r| r.id.as_ref()) {
            Some((id, _)) => crate::ids::KeyId::Other(id),
            None => crate::ids::KeyId::Compact(crate::ids::KeyIdText::new(self.id)),
        }
    }

    /// Its workspace's id, shared by the workspace's cached keys.
    pub fn workspace_id(&self) -> &std::sync::Arc<str> {
        &self.place.workspace_id
    }

    pub fn environment(&self) -> &std::sync::Arc<str> {
        &self.place.environment
    }

    /// The service account owning the key.
    pub fn owner(&self) -> Option<&str> {
        self.rare.as_ref().and_then(|r| r.owner.as_deref())
    }

    /// The identity the key belongs to (its id).
    pub fn identity(&self) -> Option<&str> {
        self.rare.as_ref().and_then(|r| r.identity.as_deref())
    }

    /// The parsed IP allowlist (empty: any address).
    pub fn nets(&self) -> &[IpNet] {
        self.rare.as_ref().map_or(&[], |r| &r.nets)
    }

    /// For a registered public key: the key its requests are signed with.
    pub fn public_key(&self) -> Option<&crate::signing::PublicKey> {
        self.rare.as_ref().and_then(|r| r.public_key.as_deref())
    }

    /// This key with role `name` now granting `permissions` (`None`: the role is gone), or
    /// `None` when the key does not hold the role.
    pub fn with_role(&self, name: &str, permissions: Option<&[String]>) -> Option<VerifiableKey> {
        if !self.holds_role(name) {
            return None;
        }
        let mut basis = self.access.basis.clone();
        match permissions {
            Some(p) => basis.defs.insert(name.to_string(), p.to_vec()),
            None => basis.defs.remove(name),
        };
        // The answer's part for the access comes with it: nothing of the key's own changes.
        Some(VerifiableKey { access: crate::intern::access(basis), ..self.clone() })
    }

    pub fn holds_role(&self, name: &str) -> bool {
        self.access.basis.roles.iter().any(|r| r == name)
    }

    /// What each role the key holds was taken to grant when its authority was derived
    /// (a role absent here grants nothing).
    pub fn role_defs(&self) -> &crate::authority::RoleDefs {
        &self.access.basis.defs
    }

    /// Every role the key holds.
    pub fn roles(&self) -> &[String] {
        &self.access.basis.roles
    }

    /// The key's own resource scopes.
    pub fn scopes(&self) -> &[String] {
        &self.access.basis.scopes
    }

    /// [`VerifiableKey::roles`] and [`VerifiableKey::scopes`], each comma-separated.
    pub fn listed(&self) -> (&str, &str) {
        (&self.access.listed.0, &self.access.listed.1)
    }

    /// Each role with the scopes it applies in (`X-Keyward-Grants`; see
    /// [`crate::authority::Basis::grants_listed`]).
    pub fn grants_listed(&self) -> &str {
        &self.access.grants_listed
    }

    /// Every permission the key holds: its own and its roles'.
    pub fn permissions(&self) -> &[String] {
        self.access.authority.effective()
    }

    /// The answer's JSON with `extra` (`,"ratelimit":{…}`) before its closing brace.
    pub fn answer_json_with(&self, code: VerifyCode, extra: &str) -> String {
        let n = self.name_len as usize;
        let name = self.text.get(..n).unwrap_or_default();
        let tail = match self.text.get(n..).unwrap_or_default() {
            "" => PLAIN_TAIL,
            own => own,
        };
        let rare_id = self.rare.as_ref().and_then(|r| r.id.as_ref()).map(|(_, json)| &**json);
        let id_len = rare_id.map_or(32, str::len);
        let (place, access) = (&*self.place, &*self.access);
        let valid = if code == VerifyCode::Valid { "true" } else { "false" };
        // Written in one allocation, of the exact length, from the parts.
        let len = r#"{"valid":,"code":"","key_id":}"#.len()
            + valid.len()
            + code.as_str().len()
            + id_len
            + place.before_name.len()
            + name.len()
            + place.after_name.len()
            + access.answer.len()
            + tail.len()
            + extra.len();
        let mut out = String::with_capacity(len);
        out.push_str(r#"{"valid":"#);
        out.push_str(valid);
        out.push_str(r#","code":""#);
        out.push_str(code.as_str());
        out.push_str(r#"","key_id":"#);
        match rare_id {
            Some(json) => out.push_str(json),
            None => {
                out.push('"');
                out.push_str(crate::ids::KeyIdText::new(self.id).as_str());
                out.push('"');
            }
        }
        out.push_str(&place.before_name);
        out.push_str(name);
        out.push_str(&place.after_name);
        out.push_str(&access.answer);
        out.push_str(tail);
        out.push_str(extra);
        out.push('}');
        out
    }

    /// The JSON of the answer about this key with `code`, without building one.
    pub fn answer_json(&self, code: VerifyCode) -> String {
        self.answer_json_with(code, "")
    }
}
/// What a request asks of the key.
#[derive(Debug, Default)]
pub struct Requirements<'a> {
    /// Only keys of this workspace count; another's answers `NOT_FOUND` (checked by the
    /// verifier before anything else is decided, so it reveals nothing of the key).
    pub workspace: Option<&'a str>,
    /// Only keys of this environment pass; another's answers `WRONG_ENVIRONMENT` (checked by
    /// the verifier right after the workspace, before anything else is decided).
    pub environment: Option<&'a str>,
    pub ip: Option<IpAddr>,
    pub permissions: Option<&'a Query>,
    pub scope: Option<&'a str>,
    /// Uses spent of the key's limits and credits; `None` is 1.
    pub cost: Option<u32>,
    /// Credits spent when they differ from `cost` (Unkey's `credits.cost`, spent of credits
    /// only, while each limit spends 1 or its named cost); `None` spends `cost`.
    pub credit_cost: Option<u32>,
    /// The answer lists every limit checked even when the request named none and the key
    /// has no identity limits (Unkey's answers always do).
    pub list_limits: bool,
    /// Labels the verification is counted under in the key's usage (checked by the caller).
    pub tags: &'a [std::borrow::Cow<'a, str>],
    /// Limits the request names (empty: only those applied automatically); checked by
    /// `limit_plan::check_named` before.
    pub ratelimits: &'a [crate::wire::verify::VerifyRatelimit<'a>],
}

pub fn decide(key: &VerifiableKey, now: DateTime<Utc>, req: &Requirements<'_>) -> VerifyCode {
    // A suspended workspace's keys answer that, whatever else holds of them.
    if let Some(code) = key.standing.refusal() {
        return code;
    }
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
    if key.disabled {
        return VerifyCode::Disabled;
    }
    let nets = key.nets();
    if !nets.is_empty() {
        // With an allowlist, a caller that cannot say where the request came from is refused.
        match req.ip {
            Some(ip) if crate::ip::allowed(nets, ip) => {}
            _ => return VerifyCode::IpNotAllowed,
        }
    }
    if (req.permissions.is_some() || req.scope.is_some()) && !key.access.authority.allows(req.permissions, req.scope) {
        return VerifyCode::InsufficientPermissions;
    }
    VerifyCode::Valid
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::KeyGrant;
    use crate::model::KeyKind;
    use crate::wire::verify::VerifyResponse;
    use chrono::Duration;

    /// The answer about a known key holding `roles` and, through them, `permissions`, built
    /// as a whole: what the pre-serialized answer must equal.
    trait About {
        fn about(rec: &KeyRecord, code: VerifyCode, roles: &[String], permissions: &[String]) -> Self;
    }

    impl About for VerifyResponse {
        fn about(rec: &KeyRecord, code: VerifyCode, roles: &[String], permissions: &[String]) -> Self {
            VerifyResponse {
                valid: code == VerifyCode::Valid,
                code,
                key_id: Some(rec.id.clone()),
                workspace_id: Some(rec.workspace_id.clone()),
                name: Some(rec.name.clone()),
                environment: Some(rec.environment.clone()),
                roles: Some(roles.to_vec()),
                permissions: Some(permissions.to_vec()),
                grants: Some(rec.grants.clone()),
                scopes: Some(rec.scopes.clone()),
                meta: Some(rec.meta.clone()),
                expires_at: rec.expires_at,
                identity: None,
                ratelimit: None,
                credits: None,
                ratelimits: None,
                kind: None,
                app_id: None,
                installation_id: None,
            }
        }
    }

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
            grants: vec![],
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
            service_account_id: None,
            ratelimits: Vec::new(),
            credits: None,
            disabled_at: None,
            identity_id: None,
            external_id: None,
            leak: None,
            rotated_to: None,
            rotated_from: None,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_100, 0).unwrap()
    }

    /// An id as Keyward makes them (a ULID under `key_`).
    const KEY_ID: &str = "key_01HZY2B3C4D5E6F7G8H9JKMNPQ";

    /// The answer written from a key's parts is the serde output of the whole answer, byte
    /// for byte, for every kind of key: ids kept in 16 bytes or as text (one the JSON must
    /// escape), names, workspaces and environments to escape, roles, grants, scopes, meta,
    /// an expiry (with and without a fraction of a second), and every code.
    #[test]
    fn spliced_answer_equals_the_serialized_one() {
        let mut with_all = rec();
        with_all.id = KEY_ID.into();
        with_all.name = "quote \" and \u{e9}".into();
        with_all.meta.insert("plan".into(), serde_json::json!({"tier": 2}));
        with_all.expires_at = Some(now());
        with_all.roles = vec!["admin".into()];
        with_all.grants = vec![KeyGrant { role: "operator".into(), scopes: vec!["wallet:w_1".into()] }];
        let mut odd = rec();
        odd.id = "key_\"odd\\".into();
        odd.workspace_id = "ws_\"</\u{2028}".into();
        odd.environment = "te\tst".into();
        odd.name = String::new();
        odd.expires_at = DateTime::from_timestamp(1_800_000_000, 123_456_789);
        odd.scopes = vec![];
        odd.permissions = vec![];
        let mut bench = rec();
        bench.id = "key_01JB0000000000000000000000".into();
        bench.name = "bench-3-1234".into();
        bench.permissions = vec!["wallet.read".into(), "tx.create".into()];
        let mut ctx = KeyContext::default();
        ctx.defs.insert("operator".into(), vec!["tx.create".into(), "wallet.read".into()]);
        for r in [rec(), with_all, odd, bench] {
            let k = VerifiableKey::new(r.clone(), ctx.clone());
            assert_eq!(k.id(), r.id.as_str());
            assert_eq!(k.rare.is_none(), r.id.starts_with("key_01"), "{}", r.id);
            let roles = KeyContext::roles_of(&r, None);
            let perms = k.permissions().to_vec();
            assert_eq!(perms.contains(&"tx.create".to_string()), !r.grants.is_empty() || r.id.starts_with("key_01JB"));
            for code in VerifyCode::ALL {
                let want = serde_json::to_string(&VerifyResponse::about(&r, code, &roles, &perms)).unwrap();
                assert_eq!(k.answer_json(code), want);
                // The extra fields go before the closing brace, in a string of the exact size.
                let with = k.answer_json_with(code, r#","kind":"x""#);
                assert_eq!(with, format!(r#"{},"kind":"x"}}"#, &want[..want.len() - 1]));
                assert_eq!(with.capacity(), with.len());
            }
        }
    }

    /// A key of an identity: the answer names it (as the wire type serializes it), and its
    /// cached copy carries the identity's limits beside its own.
    #[test]
    fn an_identity_in_the_answer_and_the_limits() {
        use crate::identity::IdentityRecord;
        let mut r = rec();
        r.identity_id = Some("idn_1".into());
        r.external_id = Some("cus \"1\"".into());
        let mut i = IdentityRecord::bare("idn_1".into(), "ws_1", "cus \"1\"", now());
        i.meta.insert("plan".into(), serde_json::json!("pro"));
        i.ratelimits = vec![crate::ratelimit::RateLimit::new("x", "team", 5, "1m").unwrap()];
        let ctx = KeyContext { identity: Some(i.clone()), ..Default::default() };
        let k = VerifiableKey::new(r.clone(), ctx);
        assert_eq!(k.identity(), Some("idn_1"));
        let mut want = VerifyResponse::about(&r, VerifyCode::Valid, k.roles(), k.permissions());
        want.identity = Some(crate::wire::verify::VerifyIdentity {
            id: i.id.clone(),
            external_id: i.external_id.clone(),
            meta: i.meta.clone(),
        });
        assert_eq!(k.answer_json(VerifyCode::Valid), serde_json::to_string(&want).unwrap());
        let l = k.limits.as_ref().unwrap();
        assert!(l.ratelimits.is_empty() && l.credits.is_none());
        assert_eq!(l.identity_limits().len(), 1);
        // Without limits or credits on either side: nothing to check, still named.
        let mut bare = i;
        bare.ratelimits.clear();
        let k = VerifiableKey::new(r, KeyContext { identity: Some(bare), ..Default::default() });
        assert!(k.limits.is_none());
        assert!(k.answer_json(VerifyCode::Valid).contains(r#""identity":{"id":"idn_1""#));
    }

    #[test]
    fn compact_record_ids_owners_and_shared_access() {
        // With its Arc's two counters, a cached key fits a 112-byte allocation.
        assert!(std::mem::size_of::<VerifiableKey>() <= 96, "{}", std::mem::size_of::<VerifiableKey>());
        let mut r = rec();
        r.id = KEY_ID.into();
        let a = VerifiableKey::new(r, KeyContext::default());
        assert_eq!(a.id(), KEY_ID);
        assert!(a.rare.is_none() && a.owner().is_none() && a.nets().is_empty() && a.public_key().is_none());
        assert_eq!(&*a.text, r#""n""#, "a key without meta, expiry or identity keeps only its name");
        let mut r = rec();
        r.id = "key_01HZY2B3C4D5E6F7G8H9JKMNP0".into();
        r.service_account_id = Some("sa_1".into());
        let b = VerifiableKey::new(r, KeyContext::default());
        assert_eq!(b.id(), "key_01HZY2B3C4D5E6F7G8H9JKMNP0");
        assert_eq!(b.owner(), Some("sa_1"));
        assert!(std::sync::Arc::ptr_eq(&a.access, &b.access), "the same permissions share one access");
        assert!(std::sync::Arc::ptr_eq(&a.place, &b.place), "the same workspace and environment share one place");
        let mut r = rec();
        r.permissions = vec!["other.*".into()];
        assert!(!std::sync::Arc::ptr_eq(&a.access, &VerifiableKey::new(r, KeyContext::default()).access));
        let mut r = rec();
        r.environment = "live".into();
        assert!(!std::sync::Arc::ptr_eq(&a.place, &VerifiableKey::new(r, KeyContext::default()).place));
        // An id the JSON must escape, or not made by Keyward, is kept on its own.
        let mut r = rec();
        r.id = "key_\"odd\\".into();
        let odd = VerifiableKey::new(r.clone(), KeyContext::default());
        assert_eq!(odd.id(), r.id.as_str());
        let want = VerifyResponse::about(&r, VerifyCode::Valid, odd.roles(), odd.permissions());
        assert_eq!(odd.answer_json(VerifyCode::Valid), serde_json::to_string(&want).unwrap());
        assert_eq!(odd.with_role("none", None).map(|k| k.id().to_string()), None);
        let mut r = rec();
        r.roles = vec!["ops".into()];
        r.id = "key_\"r".into();
        let k = VerifiableKey::new(r, KeyContext::default()).with_role("ops", Some(&["ops.*".to_string()])).unwrap();
        assert_eq!(k.id(), "key_\"r");
    }

    /// The standing is decided first: a suspended workspace's keys answer `SUSPENDED`
    /// whatever else holds of them, a deleted one's are not found, an active one's go on.
    #[test]
    fn a_workspace_standing_comes_first() {
        use crate::standing::Standing;
        let none = Requirements::default();
        let mut revoked = rec();
        revoked.status = KeyStatus::Revoked;
        for r in [rec(), revoked] {
            let mut k = VerifiableKey::new(r, KeyContext::default());
            let own = decide(&k, now(), &none);
            k.standing = Standing::Suspended;
            assert_eq!(decide(&k, now(), &none), VerifyCode::Suspended);
            k.standing = Standing::Deleted;
            assert_eq!(decide(&k, now(), &none), VerifyCode::NotFound);
            k.standing = Standing::Active;
            assert_eq!(decide(&k, now(), &none), own);
        }
    }

    #[test]
    fn codes_in_order() {
        let none = Requirements::default();
        assert_eq!(decide(&VerifiableKey::new(rec(), KeyContext::default()), now(), &none), VerifyCode::Valid);

        let mut r = rec();
        r.status = KeyStatus::Revoked;
        assert_eq!(decide(&VerifiableKey::new(r, KeyContext::default()), now(), &none), VerifyCode::Revoked);

        let mut r = rec();
        r.expires_at = Some(now() - Duration::seconds(1));
        assert_eq!(decide(&VerifiableKey::new(r, KeyContext::default()), now(), &none), VerifyCode::Expired);

        let mut r = rec();
        r.status = KeyStatus::PendingCreate;
        assert_eq!(decide(&VerifiableKey::new(r, KeyContext::default()), now(), &none), VerifyCode::Pending);

        // A disabled key: after revocation and expiry, before the allowlist and permissions;
        // a pending update keeps it disabled.
        let mut r = rec();
        r.disabled_at = Some(now());
        r.ip_allowlist = vec!["10.0.0.0/8".into()];
        assert_eq!(decide(&VerifiableKey::new(r.clone(), KeyContext::default()), now(), &none), VerifyCode::Disabled);
        r.status = KeyStatus::PendingUpdate;
        assert_eq!(decide(&VerifiableKey::new(r.clone(), KeyContext::default()), now(), &none), VerifyCode::Disabled);
        r.expires_at = Some(now() - Duration::seconds(1));
        assert_eq!(decide(&VerifiableKey::new(r.clone(), KeyContext::default()), now(), &none), VerifyCode::Expired);
        r.status = KeyStatus::Revoked;
        assert_eq!(decide(&VerifiableKey::new(r, KeyContext::default()), now(), &none), VerifyCode::Revoked);
    }

    #[test]
    fn a_disabled_owner_and_role_changes() {
        let mut r = rec();
        r.roles = vec!["ops".into()];
        let ctx = KeyContext {
            defs: RoleDefs::new(),
            owner: Some(OwnerState { role: "ci".into(), disabled: true }),
            identity: None,
        };
        let k = VerifiableKey::new(r.clone(), ctx);
        assert_eq!(decide(&k, now(), &Requirements::default()), VerifyCode::Disabled);
        assert_eq!(k.roles(), ["ops", "ci"]);
        // The identity headers' lists, joined once for the shared access.
        assert_eq!(k.listed().0, "ops,ci");
        let mut scoped = r.clone();
        scoped.scopes = vec!["wallet:1".into(), "wallet:2".into()];
        assert_eq!(VerifiableKey::new(scoped, KeyContext::default()).listed(), ("ops", "wallet:1,wallet:2"));
        let k = VerifiableKey::new(r.clone(), KeyContext::default());
        let q = Query::parse("ops.run").unwrap();
        let need = Requirements { permissions: Some(&q), ..Default::default() };
        assert_eq!(decide(&k, now(), &need), VerifyCode::InsufficientPermissions);
        let widened = k.with_role("ops", Some(&["ops.*".to_string()])).unwrap();
        assert_eq!(decide(&widened, now(), &need), VerifyCode::Valid);
        assert!(widened.answer_json(VerifyCode::Valid).contains(r#""permissions":["wallet.*","ops.*"]"#));
        let want = VerifyResponse::about(&r, VerifyCode::Valid, widened.roles(), widened.permissions());
        assert_eq!(widened.answer_json(VerifyCode::Valid), serde_json::to_string(&want).unwrap());
        assert!(k.with_role("other", None).is_none(), "a key without the role is left alone");
        let gone = widened.with_role("ops", None).unwrap();
        assert_eq!(decide(&gone, now(), &need), VerifyCode::InsufficientPermissions);
    }

    #[test]
    fn ip_permissions_scope() {
        let mut r = rec();
        r.ip_allowlist = vec!["10.0.0.0/8".into()];
        let k = VerifiableKey::new(r, KeyContext::default());
        let inside = Requirements { ip: Some("10.1.1.1".parse().unwrap()), ..Default::default() };
        let outside = Requirements { ip: Some("11.1.1.1".parse().unwrap()), ..Default::default() };
        assert_eq!(decide(&k, now(), &inside), VerifyCode::Valid);
        assert_eq!(decide(&k, now(), &outside), VerifyCode::IpNotAllowed);
        assert_eq!(decide(&k, now(), &Requirements::default()), VerifyCode::IpNotAllowed);

        let k = VerifiableKey::new(rec(), KeyContext::default());
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
