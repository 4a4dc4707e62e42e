//! `Idempotency-Key` on creates and rotations: a retry with the same key and body gets the
//! first answer (sealed, since it may hold a secret); with another body, 409.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use keyward_core::clock;
use keyward_core::pepper::hex_encode;
use keyward_store::{IdempotencyRecord, Principal};

use crate::error::{ApiError, ApiResult};
use crate::manage::seal;
use crate::state::AppState;

const IDEMPOTENCY_HEADER: &str = "idempotency-key";
const MAX_IDEMPOTENCY_KEY: usize = 255;

pub(crate) fn json_response(status: StatusCode, body: Vec<u8>, replayed: bool) -> Response {
    let mut r = (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response();
    if replayed {
        r.headers_mut().insert("idempotent-replayed", axum::http::HeaderValue::from_static("true"));
    }
    r
}

/// The client's idempotency key, checked.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get(IDEMPOTENCY_HEADER) else { return Ok(None) };
    let s = v.to_str().unwrap_or("");
    if s.is_empty() || s.len() > MAX_IDEMPOTENCY_KEY || !s.is_ascii() {
        return Err(ApiError::invalid("Idempotency-Key", "Idempotency-Key must be 1-255 ASCII characters"));
    }
    Ok(Some(s.to_string()))
}

/// Idempotency for one request: what is stored, and how to answer a retry.
pub(crate) struct Idem {
    raw: String,
    key_hash: String,
    request_hash: String,
}

impl Idem {
    /// Bound to the member: another member reusing the same `Idempotency-Key` gets an
    /// answer of their own, never the first one (which may hold a secret).
    pub(crate) fn new(state: &AppState, caller: &Principal, raw: String, scope: &str, body: &[u8]) -> Self {
        let bound = format!("{}\0{}\0{raw}", caller.workspace_id, caller.member_id);
        let key_hash = hex_encode(&state.pepper.derive("idempotency-key", &bound));
        let mut h = Sha256::new();
        h.update(scope.as_bytes());
        h.update([0]);
        h.update(body);
        Idem { raw, key_hash, request_hash: hex_encode(&h.finalize()) }
    }

    pub(crate) fn record(
        &self,
        state: &AppState,
        workspace_id: &str,
        status: StatusCode,
        body: &[u8],
    ) -> ApiResult<IdempotencyRecord> {
        let sealed = seal::seal(&state.pepper, state.random.as_ref(), workspace_id, &self.raw, body)
            .ok_or_else(|| ApiError::Internal("sealing failed".into()))?;
        Ok(IdempotencyRecord {
            workspace_id: workspace_id.to_string(),
            key_hash: self.key_hash.clone(),
            request_hash: self.request_hash.clone(),
            status: i64::from(status.as_u16()),
            sealed_body: sealed,
            created_at: clock::to_ms(state.clock.now()),
        })
    }

    pub(crate) fn replay(&self, state: &AppState, rec: &IdempotencyRecord) -> ApiResult<Response> {
        if rec.request_hash != self.request_hash {
            return Err(ApiError::Conflict {
                field: Some("Idempotency-Key".into()),
                message: "this Idempotency-Key was used with a different request".into(),
            });
        }
        let body = seal::open(&state.pepper, &rec.workspace_id, &self.raw, &rec.sealed_body)
            .ok_or_else(|| ApiError::Internal("stored idempotent answer cannot be opened".into()))?;
        let status =
            u16::try_from(rec.status).ok().and_then(|s| StatusCode::from_u16(s).ok()).unwrap_or(StatusCode::OK);
        Ok(json_response(status, body, true))
    }

    pub(crate) async fn earlier(&self, state: &AppState, workspace_id: &str) -> ApiResult<Option<Response>> {
        match state.store.idempotency(workspace_id, &self.key_hash).await? {
            Some(r) => self.replay(state, &r).map(Some),
            None => Ok(None),
        }
    }
}
