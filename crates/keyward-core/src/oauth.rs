//! Apps and their OAuth tokens, as rules: an app's registration checked, an installation's
//! grant held within what the app asks for, an assertion's claims judged (RFC 7523 §3), an
//! access token's claims made (RFC 9068), and the key record a verified token stands as, so
//! it meets the same decision as a key. The refusals are RFC 6749 §5.2's.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Map;

use crate::error::CoreError;
use crate::model::{KeyKind, KeyRecord, KeyStatus};
use crate::signing::{Algorithm, PublicKey};
use crate::validate;
use crate::wire::apps::{AccessClaims, NewAppRequest, ACCESS_TOKEN_SECONDS, MAX_ASSERTION_SECONDS, TOKEN_PATH};

/// How far the app's clock may be from ours, in seconds, when its assertion's times are read.
pub const CLOCK_LEEWAY_SECONDS: i64 = 30;
/// Longest `jti` remembered.
pub const MAX_JTI_LEN: usize = 128;
/// How long a refresh token lives unused, in days.
pub const REFRESH_TOKEN_DAYS: i64 = 30;

/// An RFC 6749 §5.2 error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
}

impl OAuthCode {
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthCode::InvalidRequest => "invalid_request",
            OAuthCode::InvalidClient => "invalid_client",
            OAuthCode::InvalidGrant => "invalid_grant",
            OAuthCode::UnauthorizedClient => "unauthorized_client",
            OAuthCode::UnsupportedGrantType => "unsupported_grant_type",
            OAuthCode::InvalidScope => "invalid_scope",
        }
    }

    /// 401 for a client that could not be authenticated, else 400 (RFC 6749 §5.2).
    pub fn status(self) -> u16 {
        if self == OAuthCode::InvalidClient {
            401
        } else {
            400
        }
    }
}

/// A refusal of the token endpoint, with what to tell the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthRefusal {
    pub code: OAuthCode,
    pub description: String,
}

impl OAuthRefusal {
    pub fn new(code: OAuthCode, description: impl Into<String>) -> Self {
        OAuthRefusal { code, description: description.into() }
    }
}

/// An app's registration, checked.
#[derive(Debug, Clone)]
pub struct CheckedApp {
    pub name: String,
    pub description: String,
    pub public_key: PublicKey,
    pub permissions: Vec<String>,
    pub scopes: Vec<String>,
    pub homepage_url: Option<String>,
}

/// The public key of an app, checked: `algorithm` (default `ed25519`) and the hex key.
pub fn app_key(algorithm: Option<&str>, public_key: &str) -> Result<PublicKey, CoreError> {
    let alg = match algorithm {
        None => Algorithm::Ed25519,
        Some(a) => Algorithm::parse(a)
            .ok_or_else(|| CoreError::invalid("algorithm", "algorithm must be ed25519 or secp256k1"))?,
    };
    PublicKey::parse(alg, public_key.trim()).map_err(|e| CoreError::invalid("public_key", e.to_string()))
}

/// Resource scopes (as a key's: letters, digits and `. _ - : * /`), each once.
pub fn scope_list(field: &str, list: &[String]) -> Result<Vec<String>, CoreError> {
    // A scope is a permission-shaped name: the same characters, never a space (the OAuth
    // `scope` claim joins them with spaces).
    validate::permission_list(field, list)
}

pub fn check_app(req: &NewAppRequest) -> Result<CheckedApp, CoreError> {
    Ok(CheckedApp {
        name: validate::name(&req.name)?,
        description: validate::description(req.description.as_deref())?,
        public_key: app_key(req.algorithm.as_deref(), &req.public_key)?,
        permissions: validate::permission_list("permissions", &req.permissions)?,
        scopes: scope_list("scopes", &req.scopes)?,
        homepage_url: req.homepage_url.as_deref().map(|u| validate::http_url("homepage_url", u)).transpose()?,
    })
}

/// Refuses a grant of anything the app does not ask for: each granted entry must be covered
/// by one the app asks for (`wallet.*` asked covers `wallet.read` granted, never the reverse).
pub fn within(field: &str, granted: &[String], asked: &[String]) -> Result<(), CoreError> {
    for (i, g) in granted.iter().enumerate() {
        if !asked.iter().any(|a| crate::permissions::permission_covers(a, g)) {
            return Err(CoreError::invalid(
                format!("{field}[{i}]"),
                format!("{g:?} is more than the app asks for: grant only what it asks ({})", asked.join(", ")),
            ));
        }
    }
    Ok(())
}

/// The token endpoint's URL, an assertion's `aud`: the public URL and the token path.
pub fn token_url(public_url: &str) -> String {
    format!("{}{TOKEN_PATH}", public_url.trim_end_matches('/'))
}

/// `aud` as a string or a list of them (RFC 7519 §4.1.3).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, want: &str) -> bool {
        match self {
            Audience::One(a) => a == want,
            Audience::Many(v) => v.iter().any(|a| a == want),
        }
    }
}

/// An assertion's claims as they may arrive (times as numbers, `aud` either way).
#[derive(Debug, Clone, Deserialize)]
pub struct Assertion {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    #[serde(default)]
    pub iat: Option<i64>,
    #[serde(default)]
    pub nbf: Option<i64>,
    pub jti: String,
}

/// Judges an assertion's claims (its signature is the caller's to check): for this token
/// endpoint, live now, at most five minutes ahead, with a `jti` worth remembering. The app
/// (`iss`) and installation (`sub`) are only shaped here; the caller finds them.
pub fn check_assertion(a: &Assertion, token_url: &str, now: DateTime<Utc>) -> Result<(), OAuthRefusal> {
    let grant = |m: &str| Err(OAuthRefusal::new(OAuthCode::InvalidGrant, m));
    if !crate::ids::is_id("app", &a.iss) {
        return Err(OAuthRefusal::new(OAuthCode::InvalidClient, "iss must be the app's id (app_…)"));
    }
    if !crate::ids::is_id("inst", &a.sub) {
        return grant("sub must be the installation's id (inst_…)");
    }
    if !a.aud.contains(token_url) {
        return grant(&format!("aud must be this token endpoint's URL, {token_url}"));
    }
    let t = now.timestamp();
    if a.exp <= t - CLOCK_LEEWAY_SECONDS {
        return grant("the assertion has expired (exp)");
    }
    if a.exp > t + MAX_ASSERTION_SECONDS + CLOCK_LEEWAY_SECONDS {
        return grant(&format!("exp must be at most {MAX_ASSERTION_SECONDS} seconds ahead"));
    }
    if a.nbf.is_some_and(|n| n > t + CLOCK_LEEWAY_SECONDS) {
        return grant("the assertion is not valid yet (nbf)");
    }
    if a.iat.is_some_and(|i| i > t + CLOCK_LEEWAY_SECONDS) {
        return grant("the assertion was issued in the future (iat)");
    }
    if a.jti.is_empty() || a.jti.len() > MAX_JTI_LEN || !a.jti.bytes().all(|b| b.is_ascii_graphic()) {
        return grant(&format!("jti must be 1-{MAX_JTI_LEN} printable ASCII characters"));
    }
    Ok(())
}

/// What an access token is made for.
#[derive(Debug, Clone)]
pub struct Grant<'a> {
    pub issuer: &'a str,
    pub installation_id: &'a str,
    pub app_id: &'a str,
    pub workspace_id: &'a str,
    pub permissions: &'a [String],
    pub scopes: &'a [String],
}

/// The claims of a new access token, living [`ACCESS_TOKEN_SECONDS`] from `now`.
pub fn access_claims(g: &Grant<'_>, jti: String, now: DateTime<Utc>) -> AccessClaims {
    AccessClaims {
        iss: g.issuer.to_string(),
        sub: g.installation_id.to_string(),
        aud: g.workspace_id.to_string(),
        client_id: g.app_id.to_string(),
        scope: g.scopes.join(" "),
        exp: now.timestamp() + ACCESS_TOKEN_SECONDS,
        iat: now.timestamp(),
        jti,
        workspace_id: g.workspace_id.to_string(),
        permissions: g.permissions.to_vec(),
    }
}

/// How a verified access token stands before the verification decision: as a key of the
/// organisation's workspace whose id is the installation's, named for the app, holding the
/// granted permissions and scopes, expiring with the token, revoked when the installation
/// or the token is.
pub fn token_record(
    claims: &AccessClaims,
    app_name: &str,
    environment: &str,
    revoked: bool,
    issued: DateTime<Utc>,
) -> KeyRecord {
    let expires_at = DateTime::from_timestamp(claims.exp, 0);
    KeyRecord {
        id: claims.sub.clone(),
        workspace_id: claims.workspace_id.clone(),
        name: app_name.to_string(),
        kind: KeyKind::Secret,
        algorithm: None,
        public_key: None,
        key_type: None,
        environment: environment.to_string(),
        status: if revoked { KeyStatus::Revoked } else { KeyStatus::Active },
        hash: None,
        start: String::new(),
        roles: Vec::new(),
        permissions: claims.permissions.clone(),
        scopes: claims.scope.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect(),
        grants: Vec::new(),
        ip_allowlist: Vec::new(),
        meta: Map::new(),
        callback_url: None,
        expires_at,
        created_at: issued,
        updated_at: issued,
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).single().unwrap_or_default()
    }

    fn assertion(exp_in: i64) -> Assertion {
        Assertion {
            iss: "app_01JAAAAAAAAAAAAAAAAAAAAAAA".into(),
            sub: "inst_01JAAAAAAAAAAAAAAAAAAAAAAA".into(),
            aud: Audience::One("https://kw.example/v1/oauth/token".into()),
            exp: now().timestamp() + exp_in,
            iat: Some(now().timestamp()),
            nbf: None,
            jti: "j-1".into(),
        }
    }

    const URL: &str = "https://kw.example/v1/oauth/token";

    #[test]
    fn a_fresh_assertion_for_this_endpoint_passes() {
        assert_eq!(check_assertion(&assertion(60), URL, now()), Ok(()));
        let mut many = assertion(60);
        many.aud = Audience::Many(vec!["x".into(), URL.into()]);
        assert_eq!(check_assertion(&many, URL, now()), Ok(()));
    }

    #[test]
    fn each_claim_is_held_to_its_rule() {
        let code = |a: &Assertion| check_assertion(a, URL, now()).err().map(|r| r.code);
        assert_eq!(code(&assertion(-60)), Some(OAuthCode::InvalidGrant), "expired");
        assert_eq!(code(&assertion(3600)), Some(OAuthCode::InvalidGrant), "an hour ahead");
        assert_eq!(code(&assertion(MAX_ASSERTION_SECONDS)), None, "five minutes ahead");
        let mut a = assertion(60);
        a.aud = Audience::One("https://elsewhere.example/v1/oauth/token".into());
        assert_eq!(code(&a), Some(OAuthCode::InvalidGrant), "another audience");
        let mut a = assertion(60);
        a.iss = "key_01JAAAAAAAAAAAAAAAAAAAAAAA".into();
        assert_eq!(code(&a), Some(OAuthCode::InvalidClient), "not an app");
        let mut a = assertion(60);
        a.jti = String::new();
        assert_eq!(code(&a), Some(OAuthCode::InvalidGrant), "no jti");
        a.jti = "x".repeat(MAX_JTI_LEN + 1);
        assert_eq!(code(&a), Some(OAuthCode::InvalidGrant), "a jti too long to remember");
        let mut a = assertion(60);
        a.nbf = Some(now().timestamp() + 600);
        assert_eq!(code(&a), Some(OAuthCode::InvalidGrant), "not yet valid");
    }

    #[test]
    fn a_grant_never_exceeds_what_the_app_asks() {
        let asked = vec!["wallet.*".to_string(), "tx.read".to_string()];
        assert!(within("permissions", &["wallet.read".into(), "tx.read".into()], &asked).is_ok());
        let e = within("permissions", &["tx.read".into(), "tx.write".into()], &asked).unwrap_err();
        assert_eq!(e.field(), "permissions[1]");
        // A wildcard granted is more than a name asked.
        assert!(within("permissions", &["*".into()], &["tx.read".into()]).is_err());
    }

    #[test]
    fn a_token_stands_as_a_key_of_the_organisation() {
        let g = Grant {
            issuer: "https://kw.example",
            installation_id: "inst_1",
            app_id: "app_1",
            workspace_id: "ws_1",
            permissions: &["wallet.read".into()],
            scopes: &["wallet:w_1".into(), "wallet:w_2".into()],
        };
        let c = access_claims(&g, "j".into(), now());
        assert_eq!(c.scope, "wallet:w_1 wallet:w_2");
        assert_eq!(c.exp - c.iat, ACCESS_TOKEN_SECONDS);
        let r = token_record(&c, "My app", "live", false, now());
        assert_eq!((r.id.as_str(), r.workspace_id.as_str(), r.status), ("inst_1", "ws_1", KeyStatus::Active));
        assert_eq!(r.scopes, vec!["wallet:w_1", "wallet:w_2"]);
        assert_eq!(r.expires_at.map(|t| t.timestamp()), Some(c.exp));
        assert_eq!(token_record(&c, "My app", "live", true, now()).status, KeyStatus::Revoked);
    }
}
