//! `POST|GET /v1/verify-tokens`, `DELETE /v1/verify-tokens/{id}`: tokens a verifying service
//! sends as `Keyward-Verify-Token`, so that only keys of this workspace verify for it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use keyward_core::audit_action::AuditAction;

use keyward_core::roles::Action;
use keyward_core::wire::keys::{NewVerifyTokenRequest, VerifyTokenList, VerifyTokenView};
use keyward_core::{ids, keyformat, validate};
use keyward_store::VerifyToken;

use crate::audit::{target as audit_target, RequestOrigin};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, Caller};
use crate::state::SharedState;

fn view(t: VerifyToken) -> VerifyTokenView {
    VerifyTokenView {
        id: t.id,
        name: t.name,
        workspace_id: t.workspace_id,
        start: t.start,
        created_at: t.created_at,
        revoked_at: t.revoked_at,
        leaked_at: t.leak.as_ref().map(|l| l.at),
        leak_source: t.leak.as_ref().map(|l| l.source.clone()),
        leak_url: t.leak.and_then(|l| l.url),
        token: None,
    }
}

#[utoipa::path(post, path = "/v1/verify-tokens", tag = "verification", request_body = NewVerifyTokenRequest,
    responses((status = 201, description = "created; `token` is shown only here", body = VerifyTokenView),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn create_verify_token(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    ApiJson(req): ApiJson<NewVerifyTokenRequest>,
) -> ApiResult<(StatusCode, Json<VerifyTokenView>)> {
    caller.require(Action::ManagePolicies)?;
    let p = &caller.0;
    let name = match req.name.as_deref() {
        Some(n) => validate::name(n)?,
        None => "verify token".to_string(),
    };
    let now = state.clock.now();
    let rng = state.random.as_ref();
    let token = keyformat::generate_verify_token(&p.prefix, rng);
    let start = keyformat::parse(&token)
        .map(|t| t.start.to_string())
        .ok_or_else(|| ApiError::Internal("generated verify token failed to parse".into()))?;
    let t = VerifyToken {
        id: ids::new_id("vt", now, rng),
        workspace_id: p.workspace_id.clone(),
        name,
        hash: state.pepper.hash(&token),
        start,
        created_by: Some(p.member_id.clone()),
        created_at: now,
        revoked_at: None,
        leak: None,
    };
    let what = serde_json::json!({"name": t.name, "start": t.start});
    let audit =
        caller.audit(&origin, AuditAction::VerifyTokenCreate, audit_target("verify_token", &t.id, Some(&t.name)), what);
    state.store.insert_verify_token(&t, &audit).await?;
    state.cache.invalidate(&format!("{}{}", keyward_store::VERIFY_TOKEN_EVENT_PREFIX, t.hash));
    let mut v = view(t);
    v.token = Some(token);
    Ok((StatusCode::CREATED, Json(v)))
}

#[utoipa::path(get, path = "/v1/verify-tokens", tag = "verification",
    responses((status = 200, body = VerifyTokenList)), security(("management_key" = [])))]
pub async fn list_verify_tokens(State(state): State<SharedState>, caller: Caller) -> ApiResult<Json<VerifyTokenList>> {
    let items = state.store.list_verify_tokens(&caller.0.workspace_id).await?;
    Ok(Json(VerifyTokenList { items: items.into_iter().map(view).collect() }))
}

#[utoipa::path(delete, path = "/v1/verify-tokens/{id}", tag = "verification", params(("id" = String, Path)),
    responses((status = 200, description = "revoked at once, on every node", body = VerifyTokenView),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn revoke_verify_token(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<Json<VerifyTokenView>> {
    caller.require(Action::ManagePolicies)?;
    let t = state
        .store
        .revoke_verify_token(
            &caller.0.workspace_id,
            &id,
            state.clock.now(),
            &caller.audit(
                &origin,
                AuditAction::VerifyTokenRevoke,
                audit_target("verify_token", &id, None),
                serde_json::json!({}),
            ),
        )
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no verify token with id {id:?}")))?;
    state.cache.invalidate(&format!("{}{}", keyward_store::VERIFY_TOKEN_EVENT_PREFIX, t.hash));
    Ok(Json(view(t)))
}
