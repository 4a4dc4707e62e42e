//! Management of keys: create, list, get, patch, revoke, rotate.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use keyward_core::approval_change::ApprovalChange;
use keyward_core::audit_action::AuditAction;
use serde::Deserialize;
use utoipa::IntoParams;

use keyward_core::model::{KeyKind, KeyRecord, KeyStatus, ENVIRONMENTS};
use keyward_core::roles::Action;
use keyward_core::validate::Lifetime;
use keyward_core::validate::{CreateKeyRules, UpdateKeyRules};
use keyward_core::wire::keys::{CreateKeyRequest, KeyList, KeyView, RotateRequest, UpdateKeyRequest};
use keyward_core::{duration, ids};
use keyward_store::{InsertOutcome, KeyFilter, OwnerType, RequestOutcome, RotateOutcome, Rotation, ServiceAccount};

use crate::audit::{target, RequestOrigin};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::escalation::Gift;
use crate::extract::{parse_json, ApiJson, Caller, RawBody};
use crate::idempotency::{idempotency_key, json_response, Idem};
use crate::quorum::approval_for;
use crate::state::{AppState, SharedState};

fn pending_or(outcome: RequestOutcome, id: &str) -> ApiResult<KeyRecord> {
    match outcome {
        RequestOutcome::Pending(rec) => Ok(*rec),
        RequestOutcome::NotFound => Err(ApiError::NotFound(format!("no key with id {id:?}"))),
        RequestOutcome::Refused(c) => Err(c.into()),
    }
}

#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = CreateKeyRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key returns the first answer")),
    responses((status = 201, description = "created; `secret` is shown only here", body = KeyView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn create_key(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    caller.require(Action::CreateKey)?;
    create(&state, &caller, &origin, &headers, &body, None).await
}

/// What the audit trail records of a key's settings (never its secret or hash).
fn settings(rec: &KeyRecord) -> serde_json::Value {
    serde_json::json!({
        "name": rec.name, "environment": rec.environment, "kind": rec.kind.as_str(), "status": rec.status.as_str(),
        "roles": rec.roles, "permissions": rec.permissions, "scopes": rec.scopes, "grants": rec.grants,
        "ip_allowlist": rec.ip_allowlist, "expires_at": rec.expires_at, "callback_url": rec.callback_url,
        "service_account_id": rec.service_account_id, "approval_id": rec.approval_id,
        "enabled": rec.disabled_at.is_none(), "external_id": rec.external_id,
    })
}

/// Creates a key, for the caller or owned by service account `account` (whose role the key
/// then holds).
pub(crate) async fn create(
    state: &AppState,
    caller: &Caller,
    origin: &RequestOrigin,
    headers: &HeaderMap,
    body: &[u8],
    account: Option<&ServiceAccount>,
) -> ApiResult<Response> {
    let p = &caller.0;
    let req: CreateKeyRequest = parse_json(body)?;
    let scope = match account {
        Some(a) => format!("POST /v1/service-accounts/{}/keys", a.id),
        None => "POST /v1/keys".to_string(),
    };
    let idem = idempotency_key(headers)?.map(|raw| Idem::new(state, p, raw, &scope, body));
    let now = state.clock.now();
    let new = req.validate(now, &p.policy)?;
    let mut roles = new.roles.clone();
    roles.extend(account.map(|a| a.role.clone()));
    let gift = Gift { permissions: &new.permissions, roles: &roles, grants: &new.grants };
    state.may_give(&p.workspace_id, p.role, gift).await?;
    // A retry is answered only once the caller is known to be allowed the request itself.
    if let Some(i) = &idem {
        if let Some(r) = i.earlier(state, &p.workspace_id).await? {
            return Ok(r);
        }
    }
    if req.otp.is_some() {
        crate::mfa::check_code(state, &p.member_id, req.otp.as_deref()).await?;
    }
    let rng = state.random.as_ref();
    let id = ids::new_id("key", now, rng);
    let approval = approval_for(state, caller, ApprovalChange::KeyCreate, &id).await?;
    let (mut rec, secret) = state.new_key_record(p, id, new, approval.as_ref(), now);
    rec.service_account_id = account.map(|a| a.id.clone());
    if let Some(x) = &rec.external_id {
        rec.identity_id = Some(state.identity_for(&p.workspace_id, x, now).await?);
    }
    let mut view = rec.view(now);
    view.secret = secret;
    let out = serde_json::to_vec(&view).map_err(|e| ApiError::Internal(e.to_string()))?;
    let stored = idem.as_ref().map(|i| i.record(state, &p.workspace_id, StatusCode::CREATED, &out)).transpose()?;
    let audit = caller.audit(origin, AuditAction::KeyCreate, target("key", &rec.id, Some(&rec.name)), settings(&rec));
    let inserted = state.store.insert_key(&rec, now, stored.as_ref(), approval.as_ref(), &audit).await?;
    match inserted {
        InsertOutcome::Created => {
            state.forget(&rec);
            Ok(json_response(StatusCode::CREATED, out, false))
        }
        InsertOutcome::Replayed(r) => match &idem {
            Some(i) => i.replay(state, &r),
            None => Err(ApiError::Internal("replay without idempotency key".into())),
        },
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// active, revoked, expired, pending_create, pending_update, pending_revoke, rejected
    pub status: Option<String>,
    /// test or live
    pub environment: Option<String>,
    /// secret or public
    pub kind: Option<String>,
    /// searches name, id and start
    pub q: Option<String>,
    /// only the keys of the identity with this external id
    pub external_id: Option<String>,
    /// only the keys of this owner: a service account's id, or a member's (the keys they
    /// made that no service account owns)
    pub owner: Option<String>,
    /// `service_account` or `member`: only the keys a service account owns, or those none does
    pub owner_type: Option<String>,
    /// 1-200, default 50
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

impl ListParams {
    fn filter(self) -> ApiResult<KeyFilter> {
        let status = self
            .status
            .map(|s| KeyStatus::parse(&s).ok_or_else(|| ApiError::invalid("status", format!("unknown status {s:?}"))))
            .transpose()?;
        if let Some(e) = &self.environment {
            if !ENVIRONMENTS.contains(&e.as_str()) {
                return Err(ApiError::invalid("environment", format!("unknown environment {e:?}")));
            }
        }
        let kind = self
            .kind
            .map(|k| KeyKind::parse(&k).ok_or_else(|| ApiError::invalid("kind", format!("unknown kind {k:?}"))))
            .transpose()?;
        let limit = super::paging::limit(self.limit.as_deref())?;
        super::paging::cursor(self.cursor.as_deref(), "key_")?;
        if self.q.as_ref().is_some_and(|q| q.len() > 256) {
            return Err(ApiError::invalid("q", "q must be at most 256 characters"));
        }
        let external_id =
            self.external_id.as_deref().map(|x| keyward_core::validate::external_id("external_id", x)).transpose()?;
        if let Some(o) = &self.owner {
            if o.is_empty() || o.len() > 64 || !o.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(ApiError::invalid("owner", "owner must be a service account's or a member's id"));
            }
        }
        let owner_type = match self.owner_type.as_deref() {
            None => None,
            Some("service_account") => Some(OwnerType::ServiceAccount),
            Some("member") => Some(OwnerType::Member),
            Some(o) => {
                return Err(ApiError::invalid(
                    "owner_type",
                    format!("owner_type must be service_account or member, not {o:?}"),
                ))
            }
        };
        Ok(KeyFilter {
            status,
            environment: self.environment,
            kind,
            external_id,
            owner: self.owner,
            owner_type,
            q: self.q,
            cursor: self.cursor,
            limit,
        })
    }
}

#[utoipa::path(get, path = "/v1/keys", tag = "keys", params(ListParams),
    responses((status = 200, body = KeyList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn list_keys(
    State(state): State<SharedState>,
    caller: Caller,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<KeyList>> {
    let Query(params) = params.map_err(|e| ApiError::Invalid { field: None, message: e.body_text() })?;
    let f = params.filter()?;
    let rows = state.store.list_keys(&caller.0.workspace_id, &f, state.clock.now()).await?;
    let (rows, next_cursor) = super::paging::page(rows, f.limit, |r| r.id.as_str());
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let since = state.clock.now() - chrono::Duration::hours(24);
    let counts = state.store.requests_since(&caller.0.workspace_id, &ids, since).await?;
    let items = rows
        .iter()
        .map(|r| {
            let mut v = state.view(r);
            v.requests_24h = Some(counts.get(&r.id).map_or(0, |n| u64::try_from(*n).unwrap_or(0)));
            v
        })
        .collect();
    Ok(Json(KeyList { items, next_cursor }))
}

/// The caller's workspace's key `id`, or 404.
pub(crate) async fn find(state: &AppState, caller: &Caller, id: &str) -> ApiResult<KeyRecord> {
    state
        .store
        .get_key(&caller.0.workspace_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no key with id {id:?}")))
}

#[utoipa::path(get, path = "/v1/keys/{id}", tag = "keys", params(("id" = String, Path)),
    responses((status = 200, body = KeyView), (status = 404, body = ErrorBody)), security(("management_key" = [])))]
pub async fn get_key(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyView>> {
    Ok(Json(state.view(&find(&state, &caller, &id).await?)))
}

#[utoipa::path(patch, path = "/v1/keys/{id}", tag = "keys", params(("id" = String, Path)), request_body = UpdateKeyRequest,
    responses((status = 200, body = KeyView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)), security(("management_key" = [])))]
pub async fn update_key(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateKeyRequest>,
) -> ApiResult<Json<KeyView>> {
    caller.require(Action::UpdateKey)?;
    let now = state.clock.now();
    let changes = req.validate(now)?;
    let current = find(&state, &caller, &id).await?;
    caller.require_on_key(Action::UpdateKey, &current)?;
    if changes.is_empty() {
        return Ok(Json(state.view(&current)));
    }
    // Disabling is reversible; revocation is not (the store refuses any change of a revoked
    // key too; this names the field).
    if changes.enabled.is_some() && matches!(current.status, KeyStatus::Revoked | KeyStatus::Rejected) {
        let message = format!("key is {} and cannot be enabled or disabled", current.status.as_str());
        return Err(ApiError::Conflict { field: Some("enabled".into()), message });
    }
    let gift = Gift {
        permissions: changes.permissions.as_deref().unwrap_or_default(),
        roles: changes.roles.as_deref().unwrap_or_default(),
        grants: changes.grants.as_deref().unwrap_or_default(),
    };
    state.may_give(&caller.0.workspace_id, caller.0.role, gift).await?;
    if changes.expires_at.is_some() || changes.ip_allowlist.is_some() {
        let mut expires_at = changes.expires_at.unwrap_or(current.expires_at);
        let lifetime = Lifetime {
            key_type: current.key_type,
            created_at: current.created_at,
            ip_allowlist: changes.ip_allowlist.as_deref().unwrap_or(&current.ip_allowlist),
            expiry_field: "expires_at",
        };
        lifetime.check(&mut expires_at, &caller.0.policy, false)?;
    }
    // The old value of each field sent, beside the new ones, so the event reads before → after.
    let sent = serde_json::to_value(&req).unwrap_or_default();
    // A field left out reads as `null` here; one that can be cleared sends `null` to clear it.
    let mut asked = sent.clone();
    if let Some(o) = asked.as_object_mut() {
        o.retain(|k, v| {
            !v.is_null() || matches!(k.as_str(), "expires_at" | "callback_url" | "credits" | "external_id")
        });
    }
    let before = crate::audit::before(&serde_json::to_value(current.view(now)).unwrap_or_default(), &asked);
    let payload = serde_json::json!({ "changes": sent, "before": before });
    let audit = caller.audit(&origin, AuditAction::KeyUpdate, target("key", &id, Some(&current.name)), payload);
    let rec = match approval_for(&state, &caller, ApprovalChange::KeyUpdate { changes: Box::new(req) }, &id).await? {
        // The old settings stay in force until the request is approved.
        Some(a) => {
            let audit = audit.with(AuditAction::ApprovalRequest, target("approval", &a.id, None), a.change.payload());
            pending_or(state.store.request_change(KeyStatus::PendingUpdate, &a, now, &audit).await?, &id)?
        }
        None => state
            .store
            .update_key(&caller.0.workspace_id, &id, &changes, now, &audit)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no key with id {id:?}")))?,
    };
    state.forget(&rec);
    Ok(Json(state.view(&rec)))
}

#[utoipa::path(post, path = "/v1/keys/{id}/revoke", tag = "keys", params(("id" = String, Path)),
    responses((status = 200, body = KeyView), (status = 404, body = ErrorBody)), security(("management_key" = [])))]
pub async fn revoke_key(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyView>> {
    caller.require(Action::RevokeKey)?;
    let now = state.clock.now();
    let current = find(&state, &caller, &id).await?;
    caller.require_on_key(Action::RevokeKey, &current)?;
    if current.status == KeyStatus::Revoked {
        return Ok(Json(state.view(&current)));
    }
    let audit =
        caller.audit(&origin, AuditAction::KeyRevoke, target("key", &id, Some(&current.name)), serde_json::json!({}));
    let rec = match approval_for(&state, &caller, ApprovalChange::KeyRevoke, &id).await? {
        // The key keeps working until the request is approved.
        Some(a) => {
            let what = serde_json::json!({"action": "key.revoke", "key_id": id});
            let audit = audit.with(AuditAction::ApprovalRequest, target("approval", &a.id, None), what);
            pending_or(state.store.request_change(KeyStatus::PendingRevoke, &a, now, &audit).await?, &id)?
        }
        None => state
            .store
            .revoke_key(&caller.0.workspace_id, &id, now, &audit)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no key with id {id:?}")))?,
    };
    state.forget(&rec);
    Ok(Json(state.view(&rec)))
}

#[utoipa::path(post, path = "/v1/keys/{id}/rotate", tag = "keys", params(("id" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key returns the first answer")),
    request_body = RotateRequest,
    responses((status = 201, description = "the successor, with its `secret`", body = KeyView),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("management_key" = [])))]
pub async fn rotate_key(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    caller.require(Action::RotateKey)?;
    let p = &caller.0;
    let req: RotateRequest =
        if body.iter().all(u8::is_ascii_whitespace) { RotateRequest::default() } else { parse_json(&body)? };
    let grace = match req.grace_period.as_deref() {
        None => chrono::Duration::zero(),
        Some(g) => duration::parse(g)
            .ok_or_else(|| ApiError::invalid("grace_period", "grace_period must look like 0s, 15m, 24h or 7d"))?,
    };
    let scope = format!("POST /v1/keys/{id}/rotate");
    let idem = idempotency_key(&headers)?.map(|raw| Idem::new(&state, p, raw, &scope, &body));
    // The successor's secret must exist before the transaction, so it can be sealed into the
    // idempotency record; its environment is known only from the old key, read here.
    let current = find(&state, &caller, &id).await?;
    caller.require_on_key(Action::RotateKey, &current)?;
    // The successor carries the key's permissions and roles: rotating must not hand out more
    // than the caller could give.
    state.may_give(&p.workspace_id, p.role, Gift::of_key(&current)).await?;
    if let Some(i) = &idem {
        if let Some(r) = i.earlier(&state, &p.workspace_id).await? {
            return Ok(r);
        }
    }
    let now = state.clock.now();
    let rng = state.random.as_ref();
    let new_id = ids::new_id("key", now, rng);
    let grace_end = (grace > chrono::Duration::zero()).then(|| now + grace);
    let change = ApprovalChange::KeyRotate { old_key_id: id.clone(), grace_period_seconds: grace.num_seconds() };
    let approval = approval_for(&state, &caller, change, &new_id).await?;
    let (secret, successor) = state.successor_secret(p, &current.environment);
    let make_new = |old: &KeyRecord| successor.record(old, &new_id, approval.as_ref(), now);
    let mut view = make_new(&current).view(now);
    view.secret = Some(secret.clone());
    let out = serde_json::to_vec(&view).map_err(|e| ApiError::Internal(e.to_string()))?;
    let stored = idem.as_ref().map(|i| i.record(&state, &p.workspace_id, StatusCode::CREATED, &out)).transpose()?;
    let what = serde_json::json!({"new_key_id": new_id, "grace_period_seconds": grace.num_seconds(),
        "approval_id": approval.as_ref().map(|a| a.id.clone())});
    let audit = caller.audit(&origin, AuditAction::KeyRotate, target("key", &id, Some(&current.name)), what);
    match state
        .store
        .rotate_key(
            &Rotation {
                workspace_id: &p.workspace_id,
                id: &id,
                now,
                grace_end,
                new_id: &new_id,
                idem: stored.as_ref(),
                approval: approval.as_ref(),
                audit: &audit,
            },
            make_new,
        )
        .await?
    {
        RotateOutcome::Rotated { old, new } => {
            state.forget(&old);
            state.forget(&new);
            // Settings may have changed between the read above and the claim; answer with
            // what was stored.
            let mut view = new.view(now);
            view.secret = Some(secret);
            let out = serde_json::to_vec(&view).map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok(json_response(StatusCode::CREATED, out, false))
        }
        RotateOutcome::Replayed(r) => match &idem {
            Some(i) => i.replay(&state, &r),
            None => Err(ApiError::Internal("replay without idempotency key".into())),
        },
        RotateOutcome::NotFound => Err(ApiError::NotFound(format!("no key with id {id:?}"))),
        RotateOutcome::Refused(c) => Err(c.into()),
    }
}
