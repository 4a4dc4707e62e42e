//! Validation of management input. Each rule answers with the field it concerns.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

use crate::authority::KeyGrant;
use crate::error::CoreError;
use crate::model::{KeyType, ENVIRONMENTS};
use crate::policy::Policy;
use crate::ratelimit::{KeyCredits, RateLimit, RefillRules, MAX_CREDITS};
use crate::wire::keys::{CreateKeyRequest, CreditsSpec, RateLimitSpec, UpdateKeyRequest};
use crate::{duration, ip, permissions};

pub const MAX_NAME_CHARS: usize = 64;
pub const MAX_META_BYTES: usize = 4096;
pub const MAX_LIST_ENTRIES: usize = 100;
pub const MAX_URL_LEN: usize = 2048;

/// A validated create request for a secret key.
#[derive(Debug, Clone, PartialEq)]
pub struct NewKey {
    pub name: String,
    pub environment: String,
    pub key_type: Option<KeyType>,
    pub expires_at: Option<DateTime<Utc>>,
    pub ip_allowlist: Vec<String>,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    pub scopes: Vec<String>,
    pub grants: Vec<KeyGrant>,
    pub meta: Map<String, Value>,
    pub callback_url: Option<String>,
    /// A public key to register (normalised to lower-case hex) instead of generating a secret.
    pub public_key: Option<(crate::signing::Algorithm, String)>,
    pub ratelimits: Vec<RateLimit>,
    pub credits: Option<KeyCredits>,
    /// `false`: the key starts disabled.
    pub enabled: bool,
    /// The identity the key belongs to, by its `external_id`.
    pub external_id: Option<String>,
}

/// A validated patch: `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyChanges {
    pub name: Option<String>,
    pub roles: Option<Vec<String>>,
    pub permissions: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub grants: Option<Vec<KeyGrant>>,
    pub ip_allowlist: Option<Vec<String>>,
    pub meta: Option<Map<String, Value>>,
    pub expires_at: Option<Option<DateTime<Utc>>>,
    pub callback_url: Option<Option<String>>,
    pub ratelimits: Option<Vec<RateLimit>>,
    pub credits: Option<Option<KeyCredits>>,
    /// `Some(false)` disables the key, `Some(true)` enables it.
    pub enabled: Option<bool>,
    /// `Some(None)` detaches the key from its identity; `Some(Some(x))` moves it to the
    /// identity with `external_id` x (created when unknown).
    pub external_id: Option<Option<String>>,
}

impl KeyChanges {
    pub fn is_empty(&self) -> bool {
        *self == KeyChanges::default()
    }
}

/// Emails are compared without case or surrounding spaces: every place that takes one
/// (invitations, logins, `init`) keeps it in this form.
pub fn email(raw: &str) -> Result<String, CoreError> {
    let e = raw.trim().to_lowercase();
    let ok = (3..=254).contains(&e.len())
        && e.split_once('@').is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(e)
    } else {
        Err(CoreError::invalid("email", "email must be an email address"))
    }
}

pub fn name(raw: &str) -> Result<String, CoreError> {
    let n = raw.trim();
    if n.is_empty() {
        return Err(CoreError::invalid("name", "name must not be empty"));
    }
    if n.chars().count() > MAX_NAME_CHARS {
        return Err(CoreError::invalid("name", format!("name must be at most {MAX_NAME_CHARS} characters")));
    }
    if let Some(why) = crate::text::refusal(n) {
        return Err(CoreError::invalid("name", format!("name {why}")));
    }
    Ok(n.to_string())
}

/// A workspace's key prefix, as every key of it starts (`caibo` gives `caibo_live_sk_…`).
pub fn prefix(raw: &str) -> Result<String, CoreError> {
    if crate::keyformat::valid_prefix(raw) {
        Ok(raw.to_string())
    } else {
        Err(CoreError::invalid(
            "prefix",
            format!("prefix {raw:?} must be 1-16 lowercase letters or digits, starting with a letter"),
        ))
    }
}

/// Longest reason an operator may give for suspending a workspace.
pub const MAX_REASON_CHARS: usize = 500;

/// Why a workspace is suspended: shown to its members and in its audit trail.
pub fn reason(raw: &str) -> Result<String, CoreError> {
    let r = raw.trim();
    if r.is_empty() || r.chars().count() > MAX_REASON_CHARS {
        return Err(CoreError::invalid("reason", format!("reason must be 1-{MAX_REASON_CHARS} characters")));
    }
    if let Some(why) = crate::text::refusal(r) {
        return Err(CoreError::invalid("reason", format!("reason {why}")));
    }
    Ok(r.to_string())
}

/// Most tags one verification is counted under.
pub const MAX_TAGS: usize = 10;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 64;

/// A verify request's `tags`: at most [`MAX_TAGS`], each 1-[`MAX_TAG_CHARS`] characters
/// without control characters (they end up in storage and in usage answers).
pub fn tags(list: &[std::borrow::Cow<'_, str>]) -> Result<(), CoreError> {
    if list.len() > MAX_TAGS {
        return Err(CoreError::invalid("tags", format!("at most {MAX_TAGS} tags")));
    }
    for (i, t) in list.iter().enumerate() {
        if t.is_empty() || t.chars().count() > MAX_TAG_CHARS || t.chars().any(char::is_control) {
            return Err(CoreError::invalid(
                format!("tags[{i}]"),
                format!("a tag is 1-{MAX_TAG_CHARS} characters without control characters"),
            ));
        }
    }
    Ok(())
}

/// A workspace id a caller binds verification to (`workspace_id`, `?workspace=`, the
/// gateway's `--workspace`): shaped like the ids workspaces get, so nothing else (a NUL, a
/// 3,000-character string) reaches the usage counts or storage.
pub fn workspace_id<'a>(field: &str, raw: &'a str) -> Result<&'a str, CoreError> {
    if crate::ids::is_id("ws", raw) {
        Ok(raw)
    } else {
        Err(CoreError::invalid(field, "not a workspace id: expected \"ws_\" and 26 characters (as in ws_01J…)"))
    }
}

pub fn environment(raw: Option<&str>) -> Result<String, CoreError> {
    let e = raw.unwrap_or("test");
    known_environment(e)?;
    Ok(e.to_string())
}

/// `e` names an environment keys can have (`test` or `live`); checked without a copy, since
/// verification binds to one on the hot path.
pub fn known_environment(e: &str) -> Result<(), CoreError> {
    if ENVIRONMENTS.contains(&e) {
        Ok(())
    } else {
        // A stranger's value is named back only while it is short.
        let named = if e.len() <= 32 { format!(" {e:?}") } else { String::new() };
        Err(CoreError::invalid("environment", format!("unknown environment{named}: use \"test\" or \"live\"")))
    }
}

fn names(field: &str, list: &[String], valid: fn(&str) -> bool) -> Result<Vec<String>, CoreError> {
    if list.len() > MAX_LIST_ENTRIES {
        return Err(CoreError::invalid(field, format!("at most {MAX_LIST_ENTRIES} entries")));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        if !valid(item) {
            return Err(CoreError::invalid(
                format!("{field}[{i}]"),
                format!("{item:?} is not valid: use letters, digits and . _ - : * / (1-128 characters)"),
            ));
        }
        if !out.contains(item) {
            out.push(item.clone());
        }
    }
    Ok(out)
}

pub const MAX_DESCRIPTION_CHARS: usize = 256;

/// A role's name: like a permission (letters, digits, `. _ - : /`), without wildcards.
pub fn role_name(field: &str, raw: &str) -> Result<String, CoreError> {
    let ok = permissions::valid_name(raw) && raw.len() <= MAX_NAME_CHARS && !raw.contains('*');
    if !ok {
        return Err(CoreError::invalid(
            field,
            format!("{raw:?} is not a role name: use 1-{MAX_NAME_CHARS} letters, digits and . _ - : /"),
        ));
    }
    Ok(raw.to_string())
}

pub fn description(raw: Option<&str>) -> Result<String, CoreError> {
    let d = raw.unwrap_or("").trim();
    if d.chars().count() > MAX_DESCRIPTION_CHARS || d.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            "description",
            format!("description must be at most {MAX_DESCRIPTION_CHARS} characters, without control characters"),
        ));
    }
    Ok(d.to_string())
}

/// A list of permission patterns (a role's, or a key's own).
pub fn permission_list(field: &str, list: &[String]) -> Result<Vec<String>, CoreError> {
    names(field, list, permissions::valid_name)
}

/// A key's `grants`: each names a role once, with at least one scope.
pub fn grants(list: &[KeyGrant]) -> Result<Vec<KeyGrant>, CoreError> {
    if list.len() > MAX_LIST_ENTRIES {
        return Err(CoreError::invalid("grants", format!("at most {MAX_LIST_ENTRIES} entries")));
    }
    let mut out: Vec<KeyGrant> = Vec::with_capacity(list.len());
    for (i, g) in list.iter().enumerate() {
        if !permissions::valid_name(&g.role) {
            return Err(CoreError::invalid(format!("grants[{i}].role"), format!("{:?} is not a role name", g.role)));
        }
        if out.iter().any(|o| o.role == g.role) {
            return Err(CoreError::invalid(
                format!("grants[{i}].role"),
                format!("{} is granted twice: list all its scopes in one grant", g.role),
            ));
        }
        let scopes = names(&format!("grants[{i}].scopes"), &g.scopes, crate::scopes::valid_scope)?;
        if scopes.is_empty() {
            return Err(CoreError::invalid(format!("grants[{i}].scopes"), "a grant needs at least one scope"));
        }
        out.push(KeyGrant { role: g.role.clone(), scopes });
    }
    Ok(out)
}

pub fn meta(raw: &Value) -> Result<Map<String, Value>, CoreError> {
    let Value::Object(m) = raw else {
        return Err(CoreError::invalid("meta", "meta must be a JSON object"));
    };
    let size = serde_json::to_vec(raw).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_META_BYTES {
        return Err(CoreError::invalid("meta", format!("meta must be at most {MAX_META_BYTES} bytes of JSON")));
    }
    Ok(m.clone())
}

pub fn callback_url(raw: &str) -> Result<String, CoreError> {
    http_url("callback_url", raw)
}

/// An `http(s)://host…` URL of at most [`MAX_URL_LEN`] bytes, with no spaces or control
/// characters and no credentials before the host (they would be logged and stored).
pub fn http_url(field: &str, raw: &str) -> Result<String, CoreError> {
    let rest = raw.strip_prefix("https://").or_else(|| raw.strip_prefix("http://"));
    let authority = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
    let ok = authority.is_some_and(|a| !a.is_empty() && !a.contains('@'))
        && raw.len() <= MAX_URL_LEN
        && !raw.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(raw.to_string())
    } else {
        Err(CoreError::invalid(field, format!("{field} must be an http(s) URL with a host and no credentials")))
    }
}

fn timestamp(field: &str, raw: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, CoreError> {
    let t = DateTime::parse_from_rfc3339(raw)
        .map_err(|_| CoreError::invalid(field, format!("{field} must be an RFC 3339 time")))?
        .with_timezone(&Utc);
    if t <= now {
        return Err(CoreError::invalid(field, format!("{field} must be in the future")));
    }
    Ok(t)
}

/// What the workspace policy says about a key's lifetime, checked on create and update.
#[derive(Debug, Clone, Copy)]
pub struct Lifetime<'a> {
    pub key_type: Option<KeyType>,
    /// Lifetimes run from creation: an update cannot extend a key past its policy's days.
    pub created_at: DateTime<Utc>,
    pub ip_allowlist: &'a [String],
    /// The input field an expiry error names.
    pub expiry_field: &'a str,
}

impl Lifetime<'_> {
    /// Checks `expires_at` against the policy; with `fill_default`, a key that must expire
    /// and has no expiry gets the longest one allowed (create), otherwise it is refused.
    pub fn check(
        &self,
        expires_at: &mut Option<DateTime<Utc>>,
        policy: &Policy,
        fill_default: bool,
    ) -> Result<(), CoreError> {
        if self.key_type == Some(KeyType::Permanent) {
            if expires_at.is_some() {
                return Err(CoreError::invalid(self.expiry_field, "a permanent key has no expiry"));
            }
            if policy.permanent_requires_ip_allowlist && self.ip_allowlist.is_empty() {
                return Err(CoreError::invalid("ip_allowlist", "a permanent key needs a non-empty ip_allowlist"));
            }
            return Ok(());
        }
        let cap_days = match (self.key_type, policy.max_key_lifetime_days) {
            (Some(KeyType::Temporary), Some(m)) => Some(m.min(policy.temporary_max_days)),
            (Some(KeyType::Temporary), None) => Some(policy.temporary_max_days),
            (_, m) => m,
        };
        let Some(days) = cap_days else { return Ok(()) };
        let limit = self.created_at + Duration::days(i64::from(days));
        match *expires_at {
            None if fill_default => *expires_at = Some(limit),
            None => {
                return Err(CoreError::invalid(
                    self.expiry_field,
                    format!("this key must expire: the workspace policy allows at most {days} days"),
                ))
            }
            Some(t) if t > limit => {
                return Err(CoreError::invalid(
                    self.expiry_field,
                    format!("the workspace policy allows this key at most {days} days from its creation"),
                ))
            }
            Some(_) => {}
        }
        Ok(())
    }
}

/// Checking a create request (the type is the wire crate's).
pub trait CreateKeyRules {
    /// Validates a create: a secret key, or a public key to register. `now` anchors
    /// `expires_in` and the future-time checks.
    fn validate(&self, now: DateTime<Utc>, policy: &Policy) -> Result<NewKey, CoreError>;
}

impl CreateKeyRules for CreateKeyRequest {
    fn validate(&self, now: DateTime<Utc>, policy: &Policy) -> Result<NewKey, CoreError> {
        let public_key = public_key(self)?;
        let name = name(self.name.as_deref().ok_or_else(|| CoreError::invalid("name", "name is required"))?)?;
        let environment = environment(self.environment.as_deref())?;
        let ratelimits = match &self.ratelimits {
            Some(l) => ratelimits(l)?,
            None => ratelimits(policy.default_ratelimits.get(&environment).map_or(&[][..], Vec::as_slice))?,
        };
        let key_type = match self.key_type.as_deref() {
            None => None,
            Some(t) => Some(KeyType::parse(t).ok_or_else(|| {
                CoreError::invalid("type", format!("unknown type {t:?}: use \"temporary\" or \"permanent\""))
            })?),
        };
        let mut expires_at = match (&self.expires_at, &self.expires_in) {
            (Some(_), Some(_)) => {
                return Err(CoreError::invalid("expires_in", "give expires_at or expires_in, not both"))
            }
            (Some(at), None) => Some(timestamp("expires_at", at, now)?),
            (None, Some(d)) => {
                let d = duration::parse(d)
                    .filter(|d| *d > Duration::zero())
                    .ok_or_else(|| CoreError::invalid("expires_in", "expires_in must look like 30d, 12h, 6mo or 1y"))?;
                Some(now + d)
            }
            (None, None) => None,
        };
        let ip_allowlist = ip::normalise(self.ip_allowlist.as_deref().unwrap_or(&[]))?;
        if key_type == Some(KeyType::Permanent) && expires_at.is_some() {
            return Err(CoreError::invalid("type", "a permanent key has no expiry"));
        }
        let expiry_field = if self.expires_in.is_some() { "expires_in" } else { "expires_at" };
        let lifetime = Lifetime { key_type, created_at: now, ip_allowlist: &ip_allowlist, expiry_field };
        lifetime.check(&mut expires_at, policy, true)?;
        Ok(NewKey {
            name,
            environment,
            key_type,
            expires_at,
            ip_allowlist,
            roles: names("roles", self.roles.as_deref().unwrap_or(&[]), permissions::valid_name)?,
            permissions: names("permissions", self.permissions.as_deref().unwrap_or(&[]), permissions::valid_name)?,
            scopes: names("scopes", self.scopes.as_deref().unwrap_or(&[]), crate::scopes::valid_scope)?,
            grants: grants(self.grants.as_deref().unwrap_or(&[]))?,
            meta: self.meta.as_ref().map(meta).transpose()?.unwrap_or_default(),
            callback_url: self.callback_url.as_deref().map(callback_url).transpose()?,
            public_key,
            ratelimits,
            credits: self.credits.as_ref().map(|c| credits(c, now)).transpose()?,
            enabled: self.enabled.unwrap_or(true),
            external_id: self.external_id.as_deref().map(|x| external_id("external_id", x)).transpose()?,
        })
    }
}

fn public_key(req: &CreateKeyRequest) -> Result<Option<(crate::signing::Algorithm, String)>, CoreError> {
    use crate::signing::{Algorithm, PublicKey};
    let algorithm = match req.algorithm.as_deref() {
        None => None,
        Some(a) => Some(Algorithm::parse(a).ok_or_else(|| {
            CoreError::invalid("algorithm", format!("unknown algorithm {a:?}: use \"ed25519\" or \"secp256k1\""))
        })?),
    };
    let Some(hex) = req.public_key.as_deref() else {
        return match algorithm {
            Some(_) => Err(CoreError::invalid("public_key", "algorithm needs a public_key")),
            None => Ok(None),
        };
    };
    let alg = algorithm.unwrap_or(Algorithm::Ed25519);
    let key = PublicKey::parse(alg, hex.trim()).map_err(|e| CoreError::invalid("public_key", e.to_string()))?;
    Ok(Some((alg, key.to_hex())))
}

/// Checking an update request (the type is the wire crate's).
pub trait UpdateKeyRules {
    fn validate(&self, now: DateTime<Utc>) -> Result<KeyChanges, CoreError>;
}

impl UpdateKeyRules for UpdateKeyRequest {
    fn validate(&self, now: DateTime<Utc>) -> Result<KeyChanges, CoreError> {
        Ok(KeyChanges {
            name: self.name.as_deref().map(name).transpose()?,
            roles: self.roles.as_deref().map(|l| names("roles", l, permissions::valid_name)).transpose()?,
            permissions: self
                .permissions
                .as_deref()
                .map(|l| names("permissions", l, permissions::valid_name))
                .transpose()?,
            scopes: self.scopes.as_deref().map(|l| names("scopes", l, crate::scopes::valid_scope)).transpose()?,
            grants: self.grants.as_deref().map(grants).transpose()?,
            ip_allowlist: self.ip_allowlist.as_deref().map(ip::normalise).transpose()?,
            meta: self.meta.as_ref().map(meta).transpose()?,
            expires_at: match &self.expires_at {
                None => None,
                Some(None) => Some(None),
                Some(Some(t)) => Some(Some(timestamp("expires_at", t, now)?)),
            },
            callback_url: match &self.callback_url {
                None => None,
                Some(None) => Some(None),
                Some(Some(u)) => Some(Some(callback_url(u)?)),
            },
            ratelimits: self.ratelimits.as_deref().map(ratelimits).transpose()?,
            credits: self.credits.as_ref().map(|c| c.as_ref().map(|c| credits(c, now)).transpose()).transpose()?,
            enabled: self.enabled,
            external_id: match &self.external_id {
                None => None,
                Some(None) => Some(None),
                Some(Some(x)) => Some(Some(external_id("external_id", x)?)),
            },
        })
    }
}

/// A key's limits, checked (see [`RateLimit::list`]).
pub fn ratelimits(specs: &[RateLimitSpec]) -> Result<Vec<RateLimit>, CoreError> {
    RateLimit::list_full(
        specs.iter().map(|s| (s.name.as_str(), s.limit, s.duration.as_str(), s.auto_apply, s.mode.as_str())),
    )
}

/// Longest `external_id`, in bytes.
pub const MAX_EXTERNAL_ID: usize = 255;

/// An identity's `external_id`: 1-255 bytes, no control characters (NUL included), kept as
/// given otherwise (it is the operator's own id).
pub fn external_id(field: &str, raw: &str) -> Result<String, CoreError> {
    if raw.is_empty() || raw.len() > MAX_EXTERNAL_ID || raw.chars().any(char::is_control) || raw.trim() != raw {
        return Err(CoreError::invalid(
            field,
            format!("{field} is 1-{MAX_EXTERNAL_ID} bytes without control characters or surrounding spaces"),
        ));
    }
    Ok(raw.to_string())
}

/// Credits as set by a create or an override at `now`.
pub fn credits(c: &CreditsSpec, now: DateTime<Utc>) -> Result<KeyCredits, CoreError> {
    if c.remaining > MAX_CREDITS {
        return Err(CoreError::invalid("credits.remaining", format!("at most {MAX_CREDITS}")));
    }
    if let Some(r) = &c.refill {
        r.check()?;
    }
    Ok(KeyCredits {
        remaining: c.remaining,
        refill: c.refill,
        period: c.refill.map_or(0, |r| r.period(now)),
        set_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn create(v: Value) -> Result<NewKey, CoreError> {
        serde_json::from_value::<CreateKeyRequest>(v).unwrap().validate(now(), &Policy::default())
    }

    #[test]
    fn minimal_create_has_defaults() {
        let k = create(json!({"name": "  billing  "})).unwrap();
        assert_eq!(k.name, "billing");
        assert_eq!(k.environment, "test");
        assert_eq!(k.expires_at, None);
        assert!(k.meta.is_empty());
    }

    #[test]
    fn public_key_is_normalised() {
        let pk = crate::signing::SecretKey::generate(crate::signing::Algorithm::Secp256k1, &crate::OsRandom)
            .public_key()
            .to_hex();
        let k = create(json!({"name": "p", "public_key": pk.to_uppercase(), "algorithm": "SECP256K1"})).unwrap();
        assert_eq!(k.public_key, Some((crate::signing::Algorithm::Secp256k1, pk)));
        assert_eq!(create(json!({"name": "s"})).unwrap().public_key, None);
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (json!({}), "name"),
            (json!({"name": "   "}), "name"),
            (json!({"name": "x".repeat(65)}), "name"),
            (json!({"name": "a", "environment": "prod"}), "environment"),
            (json!({"name": "a", "ip_allowlist": ["10.0.0.0/99"]}), "ip_allowlist[0]"),
            (json!({"name": "a", "meta": [1]}), "meta"),
            (json!({"name": "a", "meta": {"x": "y".repeat(5000)}}), "meta"),
            (json!({"name": "a", "expires_in": "soon"}), "expires_in"),
            (json!({"name": "a", "expires_at": "yesterday"}), "expires_at"),
            (json!({"name": "a", "expires_at": "2000-01-01T00:00:00Z"}), "expires_at"),
            (json!({"name": "a", "expires_at": "2099-01-01T00:00:00Z", "expires_in": "1d"}), "expires_in"),
            (json!({"name": "a", "roles": ["ok", "not ok"]}), "roles[1]"),
            (json!({"name": "a", "permissions": ["AND"]}), "permissions[0]"),
            (json!({"name": "a", "scopes": [""]}), "scopes[0]"),
            (json!({"name": "a", "callback_url": "ftp://x"}), "callback_url"),
            (json!({"name": "a", "type": "forever"}), "type"),
            (json!({"name": "a", "type": "permanent"}), "ip_allowlist"),
            (json!({"name": "a", "type": "permanent", "ip_allowlist": ["1.2.3.4"], "expires_in": "1d"}), "type"),
            (json!({"name": "a", "public_key": "ab"}), "public_key"),
            (json!({"name": "a", "public_key": "zz".repeat(32)}), "public_key"),
            (json!({"name": "a", "public_key": "ab".repeat(32), "algorithm": "secp256k1"}), "public_key"),
            (json!({"name": "a", "public_key": "ab".repeat(32), "algorithm": "rsa"}), "algorithm"),
            (json!({"name": "a", "algorithm": "ed25519"}), "public_key"),
        ];
        for (input, field) in cases {
            let e = create(input.clone()).unwrap_err();
            assert_eq!(e.field(), field, "{input}");
        }
    }

    #[test]
    fn name_of_64_unicode_chars_is_fine() {
        assert!(create(json!({"name": "é".repeat(64)})).is_ok());
    }

    #[test]
    fn expiry_forms() {
        let k = create(json!({"name": "a", "expires_in": "12h"})).unwrap();
        assert_eq!(k.expires_at, Some(now() + Duration::hours(12)));
        let k = create(json!({"name": "a", "type": "temporary"})).unwrap();
        assert_eq!(k.expires_at, Some(now() + Duration::days(30)));
    }

    #[test]
    fn policy_limits_lifetimes() {
        let p = Policy { temporary_max_days: 7, max_key_lifetime_days: Some(90), ..Policy::default() };
        let v = |j: Value| serde_json::from_value::<CreateKeyRequest>(j).unwrap().validate(now(), &p);
        assert_eq!(v(json!({"name": "a", "type": "temporary"})).unwrap().expires_at, Some(now() + Duration::days(7)));
        assert_eq!(v(json!({"name": "a", "type": "temporary", "expires_in": "8d"})).unwrap_err().field(), "expires_in");
        assert_eq!(v(json!({"name": "a"})).unwrap().expires_at, Some(now() + Duration::days(90)));
        assert_eq!(v(json!({"name": "a", "expires_in": "1y"})).unwrap_err().field(), "expires_in");
        let k = v(json!({"name": "a", "type": "permanent", "ip_allowlist": ["10.0.0.1"]})).unwrap();
        assert_eq!(k.expires_at, None, "the lifetime cap does not apply to permanent keys");
        let open = Policy { permanent_requires_ip_allowlist: false, ..Policy::default() };
        let k = serde_json::from_value::<CreateKeyRequest>(json!({"name": "a", "type": "permanent"})).unwrap();
        assert!(k.validate(now(), &open).is_ok());
        let l = Lifetime {
            key_type: Some(KeyType::Temporary),
            created_at: now(),
            ip_allowlist: &[],
            expiry_field: "expires_at",
        };
        assert_eq!(
            l.check(&mut None, &p, false).unwrap_err().field(),
            "expires_at",
            "a temporary key cannot lose its expiry"
        );
    }

    #[test]
    fn patch_null_clears_and_absent_keeps() {
        let u: UpdateKeyRequest = serde_json::from_value(json!({"expires_at": null})).unwrap();
        assert_eq!(u.validate(now()).unwrap().expires_at, Some(None));
        let u: UpdateKeyRequest = serde_json::from_value(json!({"name": "x"})).unwrap();
        let c = u.validate(now()).unwrap();
        assert_eq!(c.expires_at, None);
        assert_eq!(c.name.as_deref(), Some("x"));
        assert!(UpdateKeyRequest::default().validate(now()).unwrap().is_empty());
    }

    #[test]
    fn duplicates_in_lists_are_dropped() {
        let k = create(json!({"name": "a", "roles": ["x", "x", "y"]})).unwrap();
        assert_eq!(k.roles, vec!["x", "y"]);
    }
}
