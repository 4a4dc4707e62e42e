//! `/v1/webhooks…`: endpoints (register, list, update, delete, rotate the secret, send a test
//! event), their deliveries (list, retry one), and the public key per-key callbacks are signed
//! with. Managing endpoints is an owner's or admin's; reading them an auditor's.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use keyward_core::audit_action::AuditAction;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use keyward_core::roles::Action;
use keyward_core::webhook_signature::new_secret;
use keyward_core::wire::webhooks::{
    AttemptView, DeliveryList, DeliveryView, NewWebhookRequest, RotateSecretRequest, SigningKeyView, WebhookList,
    WebhookPatch, WebhookView,
};
use keyward_core::{duration, ids, validate, webhooks};
use keyward_store::{DeliveriesTo, Delivery, WebhookChanges, WebhookEndpoint};

use crate::audit::{target as audit_target, RequestOrigin};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{parse_json, ApiJson, Caller, RawBody};
use crate::state::SharedState;
use crate::webhooks::destination::refused_url;

/// How long a rotated secret keeps signing when the request names no overlap.
const DEFAULT_OVERLAP: chrono::Duration = chrono::Duration::hours(24);

fn view(ep: WebhookEndpoint) -> WebhookView {
    WebhookView {
        id: ep.id,
        url: ep.url,
        events: ep.events,
        description: ep.description,
        disabled: ep.disabled,
        disabled_reason: ep.disabled_reason,
        previous_secret_until: ep.previous_secret_until,
        created_at: ep.created_at,
        updated_at: ep.updated_at,
        secret: None,
    }
}

fn delivery_view(d: Delivery) -> DeliveryView {
    DeliveryView {
        payload: serde_json::from_str(&d.body).unwrap_or(serde_json::Value::Null),
        id: d.id,
        message_id: d.message_id,
        kind: d.kind,
        status: d.status.as_str().into(),
        endpoint_id: d.endpoint_id,
        key_id: d.key_id,
        attempts: d.attempts,
        next_attempt_at: d.next_attempt_at,
        last_status: d.last_status,
        last_error: d.last_error,
        created_at: d.created_at,
        finished_at: d.finished_at,
        attempt_log: d
            .log
            .into_iter()
            .map(|a| AttemptView { time: a.time, status: a.status, error: a.error, duration_ms: a.duration_ms })
            .collect(),
    }
}

/// The URL checked: an http(s) URL, and not a literal private address (unless allowed).
fn url(state: &SharedState, raw: &str) -> ApiResult<String> {
    let u = validate::http_url("url", raw)?;
    if let Some(why) = refused_url(&u, state.config.webhook_allow_private) {
        return Err(ApiError::invalid("url", why));
    }
    Ok(u)
}

fn description(raw: Option<&str>) -> ApiResult<Option<String>> {
    Ok(raw.map(|d| validate::description(Some(d))).transpose()?.filter(|d| !d.is_empty()))
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no webhook endpoint with id {id:?}"))
}

/// The endpoint, which must be enabled to be sent to (a test, a retry).
async fn enabled(state: &SharedState, workspace_id: &str, id: &str) -> ApiResult<WebhookEndpoint> {
    let ep = state.store.webhook(workspace_id, id).await?.ok_or_else(|| not_found(id))?;
    if ep.disabled {
        return Err(ApiError::Conflict { field: None, message: "the endpoint is disabled; enable it first".into() });
    }
    Ok(ep)
}

/// Deliveries (to an endpoint or a key's callback), newest first.
async fn deliveries(
    state: &SharedState,
    workspace_id: &str,
    to: DeliveriesTo<'_>,
    q: &DeliveryParams,
) -> ApiResult<Json<DeliveryList>> {
    let limit = i64::from(super::paging::limit(q.limit.as_deref())?);
    let items = state.store.list_deliveries(workspace_id, to, limit).await?;
    Ok(Json(DeliveryList { items: items.into_iter().map(delivery_view).collect() }))
}

#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = NewWebhookRequest,
    responses((status = 201, description = "registered; `secret` is shown only here", body = WebhookView),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn create_webhook(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    ApiJson(req): ApiJson<NewWebhookRequest>,
) -> ApiResult<(StatusCode, Json<WebhookView>)> {
    caller.require(Action::ManagePolicies)?;
    let url = url(&state, &req.url)?;
    let events = webhooks::events(&req.events)?;
    let description = description(req.description.as_deref())?;
    let now = state.clock.now();
    let rng = state.random.as_ref();
    let id = ids::new_id("wh", now, rng);
    let secret = new_secret(rng);
    let sealed = crate::seal::seal_webhook_secret(&state.pepper, rng, &id, &secret)
        .ok_or_else(|| ApiError::Internal("could not seal a webhook secret".into()))?;
    let ep = WebhookEndpoint {
        id: id.clone(),
        workspace_id: caller.0.workspace_id.clone(),
        url: url.clone(),
        description,
        events: events.clone(),
        secret_sealed: sealed,
        previous_secret_sealed: None,
        previous_secret_until: None,
        disabled: false,
        disabled_reason: None,
        failing_since: None,
        created_at: now,
        updated_at: now,
    };
    let audit = caller.audit(
        &origin,
        AuditAction::WebhookCreate,
        audit_target("webhook", &id, Some(&url)),
        json!({"url": url, "events": events, "description": ep.description}),
    );
    state.store.insert_webhook(&ep, &audit).await?;
    let mut v = view(ep);
    v.secret = Some(secret);
    Ok((StatusCode::CREATED, Json(v)))
}

#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = WebhookList), (status = 403, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn list_webhooks(State(state): State<SharedState>, caller: Caller) -> ApiResult<Json<WebhookList>> {
    caller.require(Action::ReadAudit)?;
    let items = state.store.list_webhooks(&caller.0.workspace_id).await?;
    Ok(Json(WebhookList { items: items.into_iter().map(view).collect() }))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn get_webhook(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookView>> {
    caller.require(Action::ReadAudit)?;
    let ep = state.store.webhook(&caller.0.workspace_id, &id).await?.ok_or_else(|| not_found(&id))?;
    Ok(Json(view(ep)))
}

#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    request_body = WebhookPatch,
    responses((status = 200, body = WebhookView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn update_webhook(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<WebhookPatch>,
) -> ApiResult<Json<WebhookView>> {
    caller.require(Action::ManagePolicies)?;
    let c = WebhookChanges {
        url: req.url.as_deref().map(|u| url(&state, u)).transpose()?,
        events: req.events.as_deref().map(webhooks::events).transpose()?,
        description: req.description.as_ref().map(|d| description(d.as_deref())).transpose()?,
        disabled: req.disabled,
    };
    let what = json!({"url": c.url, "events": c.events, "description": c.description, "disabled": c.disabled});
    let audit = caller.audit(&origin, AuditAction::WebhookUpdate, audit_target("webhook", &id, None), what);
    let ep = state
        .store
        .update_webhook(&caller.0.workspace_id, &id, &c, state.clock.now(), &audit)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(view(ep)))
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204, description = "deleted; pending deliveries are cancelled"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn delete_webhook(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Action::ManagePolicies)?;
    let audit = caller.audit(&origin, AuditAction::WebhookDelete, audit_target("webhook", &id, None), json!({}));
    if !state.store.delete_webhook(&caller.0.workspace_id, &id, state.clock.now(), &audit).await? {
        return Err(not_found(&id));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks", params(("id" = String, Path)),
    request_body(content = RotateSecretRequest, description = "optional"),
    responses((status = 200, description = "the new `secret`, shown only here; the previous one signs too until \
        `previous_secret_until`", body = WebhookView),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn rotate_webhook_secret(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<WebhookView>> {
    caller.require(Action::ManagePolicies)?;
    let req: RotateSecretRequest =
        if body.iter().all(u8::is_ascii_whitespace) { RotateSecretRequest::default() } else { parse_json(&body)? };
    let overlap = match req.overlap {
        None => DEFAULT_OVERLAP,
        Some(o) => duration::parse(&o)
            .filter(|d| *d <= chrono::Duration::days(30))
            .ok_or_else(|| ApiError::invalid("overlap", "overlap must be a duration of at most 30d, e.g. 24h"))?,
    };
    let now = state.clock.now();
    let rng = state.random.as_ref();
    let secret = new_secret(rng);
    let sealed = crate::seal::seal_webhook_secret(&state.pepper, rng, &id, &secret)
        .ok_or_else(|| ApiError::Internal("could not seal a webhook secret".into()))?;
    let what = json!({"previous_secret_until": now + overlap});
    let audit = caller.audit(&origin, AuditAction::WebhookRotateSecret, audit_target("webhook", &id, None), what);
    let ep = state
        .store
        .rotate_webhook_secret(&caller.0.workspace_id, &id, &sealed, now + overlap, now, &audit)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let mut v = view(ep);
    v.secret = Some(secret);
    Ok(Json(v))
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 202, description = "a `webhook.test` delivery is queued", body = DeliveryView),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn test_webhook(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<DeliveryView>)> {
    caller.require(Action::ManagePolicies)?;
    let ws = &caller.0.workspace_id;
    let ep = enabled(&state, ws, &id).await?;
    let now = state.clock.now();
    let message_id = ids::new_id("msg", now, state.random.as_ref());
    let body = webhooks::test_body(&ep.id, ws, now);
    let audit = caller.audit(&origin, AuditAction::WebhookTest, audit_target("webhook", &id, Some(&ep.url)), json!({}));
    let delivery_id = state.store.enqueue_test(&ep, &message_id, &body, now, &audit).await?;
    let listed = state.store.list_deliveries(ws, DeliveriesTo::Endpoint(&id), 20).await?;
    let d = listed
        .into_iter()
        .find(|d| d.id == delivery_id)
        .ok_or_else(|| ApiError::Internal("a queued test delivery is not listed".into()))?;
    Ok((StatusCode::ACCEPTED, Json(delivery_view(d))))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// 1-200, default 50
    pub limit: Option<String>,
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path), DeliveryParams),
    responses((status = 200, description = "newest first, with every attempt", body = DeliveryList),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn list_deliveries(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<DeliveryParams>,
) -> ApiResult<Json<DeliveryList>> {
    caller.require(Action::ReadAudit)?;
    let ws = &caller.0.workspace_id;
    state.store.webhook(ws, &id).await?.ok_or_else(|| not_found(&id))?;
    deliveries(&state, ws, DeliveriesTo::Endpoint(&id), &q).await
}

#[utoipa::path(get, path = "/v1/keys/{id}/callbacks", tag = "webhooks",
    params(("id" = String, Path), DeliveryParams),
    responses((status = 200, description = "deliveries to the key's callback URL, newest first, with every attempt",
        body = DeliveryList),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn list_callbacks(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<DeliveryParams>,
) -> ApiResult<Json<DeliveryList>> {
    caller.require(Action::ReadAudit)?;
    super::keys::find(&state, &caller, &id).await?;
    deliveries(&state, &caller.0.workspace_id, DeliveriesTo::KeyCallback(&id), &q).await
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/retry", tag = "webhooks",
    params(("id" = String, Path), ("delivery_id" = String, Path)),
    responses((status = 202, description = "due again now (same `webhook-id`)"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn retry_delivery(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(Action::ManagePolicies)?;
    let ws = &caller.0.workspace_id;
    let ep = enabled(&state, ws, &id).await?;
    let audit = caller.audit(
        &origin,
        AuditAction::WebhookRetry,
        audit_target("webhook", &id, Some(&ep.url)),
        json!({"delivery_id": delivery_id}),
    );
    if !state.store.retry_delivery(ws, &id, &delivery_id, state.clock.now(), &audit).await? {
        return Err(ApiError::NotFound(format!("no delivery with id {delivery_id:?} for this endpoint")));
    }
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(get, path = "/v1/webhooks/signing-key", tag = "webhooks",
    responses((status = 200, description = "the public key per-key callbacks (`v1a`) are signed with",
        body = SigningKeyView)),
    security(("management_key" = [])))]
pub async fn signing_key(State(state): State<SharedState>, caller: Caller) -> ApiResult<Json<SigningKeyView>> {
    let key = crate::webhooks::signing_key(&state, &caller.0.workspace_id).await?;
    Ok(Json(SigningKeyView { public_key: key.public_key() }))
}
