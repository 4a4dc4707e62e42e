//! The audit trail: list (newest first, filters, cursor), export (NDJSON, oldest first,
//! streamed page by page), verify (recompute the chain).

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use keyward_core::audit::{AuditList, ChainCheck};
use keyward_core::roles::Action;
use keyward_store::AuditFilter;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Caller;
use crate::state::SharedState;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// An action (`key.create`) or a prefix ending in `*` (`key.*`).
    pub action: Option<String>,
    /// A member id.
    pub actor: Option<String>,
    /// A key, member, role, service account or approval id.
    pub target: Option<String>,
    /// RFC 3339.
    pub since: Option<String>,
    /// RFC 3339.
    pub until: Option<String>,
    /// 1-200, default 50
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

use super::paging::time;

fn short(field: &str, v: Option<String>) -> ApiResult<Option<String>> {
    match v {
        Some(s) if s.len() > 128 || s.chars().any(char::is_control) => {
            Err(ApiError::invalid(field, format!("{field} must be at most 128 characters")))
        }
        other => Ok(other),
    }
}

#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = AuditList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn list_audit(
    State(state): State<SharedState>,
    caller: Caller,
    params: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<AuditList>> {
    let Query(p) = params.map_err(|e| ApiError::Invalid { field: None, message: e.body_text() })?;
    caller.require(Action::ReadAudit)?;
    let limit = super::paging::limit(p.limit.as_deref())?;
    let before_seq = p
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::invalid("cursor", "cursor must be a next_cursor from an earlier page"))
        })
        .transpose()?;
    let f = AuditFilter {
        action: short("action", p.action)?,
        actor: short("actor", p.actor)?,
        target: short("target", p.target)?,
        since: time("since", p.since.as_deref())?,
        until: time("until", p.until.as_deref())?,
        before_seq,
        limit,
    };
    let mut items = state.store.list_audit(&caller.0.workspace_id, &f).await?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = if more { items.last().map(|e| e.seq.to_string()) } else { None };
    Ok(Json(AuditList { items, next_cursor }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// RFC 3339.
    pub since: Option<String>,
    /// RFC 3339.
    pub until: Option<String>,
}

#[utoipa::path(get, path = "/v1/audit/export", tag = "audit", params(ExportParams),
    responses((status = 200, description = "NDJSON, one event per line, oldest first", content_type = "application/x-ndjson", body = String),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn export_audit(
    State(state): State<SharedState>,
    caller: Caller,
    params: Result<Query<ExportParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(p) = params.map_err(|e| ApiError::Invalid { field: None, message: e.body_text() })?;
    caller.require(Action::ReadAudit)?;
    let (since, until) = (time("since", p.since.as_deref())?, time("until", p.until.as_deref())?);
    let ws = caller.0.workspace_id.clone();
    // One page in memory at a time, however long the log.
    let pages = futures_util::stream::unfold(Some(0i64), move |after| {
        let (state, ws) = (state.clone(), ws.clone());
        async move {
            let after = after?;
            match state.store.audit_after(&ws, after, 500).await {
                Ok(page) if page.is_empty() => None,
                Ok(page) => {
                    let next = page.last().map(|e| e.seq);
                    let mut out = String::new();
                    for e in
                        page.iter().filter(|e| since.is_none_or(|s| e.time >= s) && until.is_none_or(|u| e.time < u))
                    {
                        out.push_str(&serde_json::to_string(e).unwrap_or_default());
                        out.push('\n');
                    }
                    Some((Ok::<_, std::io::Error>(out), next))
                }
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(pages))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit",
    responses((status = 200, description = "`{ok: true, events, head}` or `{ok: false, broken_at, reason}`", body = ChainCheck),
        (status = 403, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn verify_audit(State(state): State<SharedState>, caller: Caller) -> ApiResult<Json<ChainCheck>> {
    caller.require(Action::ReadAudit)?;
    Ok(Json(state.store.verify_audit(&caller.0.workspace_id).await?))
}
