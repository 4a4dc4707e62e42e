//! The token endpoint's two grants: an app's signed assertion (RFC 7523) and a refresh
//! (RFC 6749 §6, used once, reuse revoking the family as RFC 9700 says). Each issues an
//! access token (RFC 9068, signed by the organisation's workspace key) and a refresh token
//! (stored as its HMAC only), with the audit event in the same transaction.

use keyward_core::audit::{AuditActor, AuditTarget};
use keyward_core::audit_action::AuditAction;
use keyward_core::oauth::{self, Assertion, OAuthCode, OAuthRefusal};
use keyward_core::signing::PublicKey;
use keyward_core::wire::apps::{TokenResponse, ACCESS_TOKEN_SECONDS, ACCESS_TOKEN_TYP};
use keyward_core::wire::jwt;
use keyward_core::{ids, keyformat, signing::Algorithm};
use keyward_store::{AuditRecord, Installation, Issue, NewTokens, Origin, Redeemed};

use crate::error::ApiError;
use crate::state::AppState;

/// A refusal of the token endpoint: RFC 6749's, or the API's (storage away, say).
pub(crate) enum Refusal {
    OAuth(OAuthRefusal),
    Api(ApiError),
    /// This server has no `--public-url`: it cannot name itself as issuer or audience.
    NoPublicUrl,
    /// Too many tokens for one installation in the window: try again after these seconds.
    SlowDown(u64),
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal::Api(e)
    }
}

impl From<keyward_store::StoreError> for Refusal {
    fn from(e: keyward_store::StoreError) -> Self {
        Refusal::Api(e.into())
    }
}

fn refuse<T>(code: OAuthCode, why: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal::OAuth(OAuthRefusal::new(code, why)))
}

/// The server's public URL without a trailing slash: the tokens' issuer.
pub(crate) fn issuer(state: &AppState) -> Option<&str> {
    state.config.public_url.as_deref().map(|u| u.trim_end_matches('/')).filter(|u| !u.is_empty())
}

/// A token request's form, read once: the one value of each name (a name twice is refused,
/// RFC 6749 §3.2).
pub(crate) fn form(body: &[u8]) -> Result<std::collections::HashMap<String, String>, OAuthRefusal> {
    let mut out = std::collections::HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(OAuthRefusal::new(OAuthCode::InvalidRequest, format!("{k} is given more than once")));
        }
    }
    Ok(out)
}

/// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`.
pub(crate) async fn assertion_grant(
    state: &AppState,
    assertion: &str,
    origin: &Origin,
) -> Result<TokenResponse, Refusal> {
    let Some(iss) = issuer(state) else { return Err(Refusal::NoPublicUrl) };
    let token_url = oauth::token_url(iss);
    let Some(jws) = jwt::decode(assertion) else {
        return refuse(OAuthCode::InvalidGrant, "assertion is not a signed JWT (header.payload.signature)");
    };
    let Some(claims) = jws.claims::<Assertion>() else {
        return refuse(OAuthCode::InvalidGrant, "the assertion's claims need iss, sub, aud, exp and jti");
    };
    let now = state.clock.now();
    oauth::check_assertion(&claims, &token_url, now).map_err(Refusal::OAuth)?;
    let app = match state.store.get_app(&claims.iss).await? {
        Some(a) if a.deleted_at.is_none() => a,
        _ => return refuse(OAuthCode::InvalidClient, "no such app (iss)"),
    };
    let signed = app.live_keys(now).any(|k| {
        Algorithm::parse(&k.algorithm)
            .and_then(|alg| PublicKey::parse(alg, &k.public_key).ok())
            .is_some_and(|pk| jws.verify(&pk))
    });
    if !signed {
        return refuse(OAuthCode::InvalidClient, "the assertion is not signed by the app's key");
    }
    let inst = match state.store.get_installation(&claims.sub).await? {
        Some(i) if i.app_id == app.id => i,
        _ => return refuse(OAuthCode::InvalidGrant, "the app is not installed there (sub)"),
    };
    match inst.status {
        keyward_store::InstallationStatus::Active => {}
        keyward_store::InstallationStatus::Pending => {
            return refuse(OAuthCode::InvalidGrant, "the installation awaits approval")
        }
        _ => return refuse(OAuthCode::InvalidGrant, "the app is no longer installed there"),
    }
    in_standing(state, &inst)?;
    throttled(state, &inst).await?;
    let (kid, key) = super::signing::current(state, &inst.workspace_id).await?;
    let redeemed = Redeemed {
        app_id: app.id.clone(),
        jti: claims.jti.clone(),
        // Remembered until it could no longer be accepted anyway.
        expires_at: chrono::DateTime::from_timestamp(claims.exp + oauth::CLOCK_LEEWAY_SECONDS, 0).unwrap_or(now),
        family_id: ids::new_id("tfam", now, state.random.as_ref()),
    };
    let (tokens, refresh) = new_tokens(state, &inst.id);
    let audit = issued(&inst, &app.name, origin, "jwt-bearer", &tokens);
    match state.store.issue_for_assertion(&inst.workspace_id, &redeemed, &tokens, &audit).await? {
        Issue::Issued(inst) => Ok(answer(iss, &inst, &kid, &key, tokens, refresh)),
        Issue::Replayed => refuse(OAuthCode::InvalidGrant, "this assertion was used before (jti)"),
        _ => refuse(OAuthCode::InvalidGrant, "the app is no longer installed there"),
    }
}

/// `grant_type=refresh_token`.
pub(crate) async fn refresh_grant(state: &AppState, refresh: &str, origin: &Origin) -> Result<TokenResponse, Refusal> {
    let Some(iss) = issuer(state) else { return Err(Refusal::NoPublicUrl) };
    let unknown = || refuse(OAuthCode::InvalidGrant, "unknown or expired refresh token");
    if !keyformat::is_refresh_token(refresh.trim()) {
        return unknown();
    }
    let hash = state.pepper.hash(refresh.trim());
    let Some((installation_id, workspace_id)) = state.store.refresh_token_owner(&hash).await? else {
        return unknown();
    };
    let Some(inst) = state.store.get_installation(&installation_id).await? else { return unknown() };
    in_standing(state, &inst)?;
    throttled(state, &inst).await?;
    let (kid, key) = super::signing::current(state, &workspace_id).await?;
    let (tokens, new_refresh) = new_tokens(state, &inst.id);
    let audit = issued(&inst, &inst.app_name, origin, "refresh_token", &tokens);
    let reuse = AuditRecord {
        actor: app_actor(&inst),
        action: AuditAction::AppTokenReuse,
        target: AuditTarget { kind: "token_family".into(), id: None, name: Some(inst.app_name.clone()) },
        changes: serde_json::json!({"installation_id": inst.id, "app_id": inst.app_id}),
        origin: origin.clone(),
    };
    match state.store.refresh(&workspace_id, &hash, &tokens, &audit, &reuse).await? {
        Issue::Issued(inst) => Ok(answer(iss, &inst, &kid, &key, tokens, new_refresh)),
        Issue::Reused(family) => {
            // This node at once; the others by the family's event.
            state.app_tokens.apply(&format!("fam:{family}"));
            refuse(OAuthCode::InvalidGrant, "this refresh token was used before: every token of its family is revoked")
        }
        Issue::NotActive => refuse(OAuthCode::InvalidGrant, "the app is no longer installed there"),
        _ => unknown(),
    }
}

/// Refused while the organisation's workspace, or the app developer's, is suspended or
/// deleted: its tokens would be refused at verification anyway (this node's standings, kept
/// by `ws:` events, as verification reads them).
fn in_standing(state: &AppState, inst: &Installation) -> Result<(), Refusal> {
    if state.standings.of(&inst.workspace_id).refusal().is_some() {
        return refuse(OAuthCode::InvalidGrant, "the organisation's workspace is suspended or deleted");
    }
    if state.standings.of(&inst.app_workspace_id).refusal().is_some() {
        return refuse(OAuthCode::UnauthorizedClient, "the app's developer workspace is suspended or deleted");
    }
    Ok(())
}

/// Tokens issued per installation within `--oauth-token-limit` (across nodes through Redis
/// when it is configured): a runaway client cannot fill storage with assertion ids.
async fn throttled(state: &AppState, inst: &Installation) -> Result<(), Refusal> {
    match state.token_issue_refused(&inst.id, state.clock.now()).await {
        Some(wait) => Err(Refusal::SlowDown(wait)),
        None => Ok(()),
    }
}

fn app_actor(inst: &Installation) -> AuditActor {
    AuditActor { kind: "app".into(), id: Some(inst.app_id.clone()), name: Some(inst.app_name.clone()) }
}

/// The audit record of tokens issued: who, for which installation, which grant, the access
/// token's `jti` and end (never a token).
fn issued(inst: &Installation, app_name: &str, origin: &Origin, grant: &str, t: &NewTokens) -> AuditRecord {
    AuditRecord {
        actor: AuditActor { kind: "app".into(), id: Some(inst.app_id.clone()), name: Some(app_name.to_string()) },
        action: AuditAction::AppTokenIssue,
        target: AuditTarget {
            kind: "installation".into(),
            id: Some(inst.id.clone()),
            name: Some(app_name.to_string()),
        },
        changes: serde_json::json!({
            "app_id": inst.app_id, "installation_id": inst.id, "grant_type": grant,
            "jti": t.jti, "expires_at": t.access_expires_at,
        }),
        origin: origin.clone(),
    }
}

/// A new access token's `jti` and a new refresh token (the secret, and what is stored).
fn new_tokens(state: &AppState, installation_id: &str) -> (NewTokens, String) {
    let now = state.clock.now();
    let refresh = keyformat::generate_refresh_token("kw", state.random.as_ref());
    let t = NewTokens {
        installation_id: installation_id.to_string(),
        refresh_hash: state.pepper.hash(&refresh),
        refresh_expires_at: now + chrono::Duration::days(oauth::REFRESH_TOKEN_DAYS),
        jti: ids::new_id("tok", now, state.random.as_ref()),
        access_expires_at: now + chrono::Duration::seconds(ACCESS_TOKEN_SECONDS),
        now,
    };
    (t, refresh)
}

fn answer(
    iss: &str,
    inst: &Installation,
    kid: &str,
    key: &keyward_core::signing::SecretKey,
    t: NewTokens,
    refresh: String,
) -> TokenResponse {
    let grant = oauth::Grant {
        issuer: iss,
        installation_id: &inst.id,
        app_id: &inst.app_id,
        workspace_id: &inst.workspace_id,
        permissions: &inst.permissions,
        scopes: &inst.scopes,
    };
    let claims = oauth::access_claims(&grant, t.jti, t.now);
    TokenResponse {
        access_token: jwt::sign(key, Some(ACCESS_TOKEN_TYP), Some(kid), &claims),
        token_type: "Bearer".into(),
        expires_in: ACCESS_TOKEN_SECONDS,
        refresh_token: refresh,
        scope: claims.scope,
    }
}
