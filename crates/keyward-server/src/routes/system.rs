//! Health and the OpenAPI document.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::state::SharedState;

#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, description = "the node can serve: the database is reachable and takes writes"),
        (status = 503, description = "the database is unreachable or read-only (`unavailable`), or its disk is full (`storage_full`, with `Retry-After`)")))]
pub async fn healthz(State(state): State<SharedState>) -> Response {
    match state.store.health().await {
        Ok(()) => {
            let c = &state.connections;
            let open = c.open.load(std::sync::atomic::Ordering::Relaxed);
            let refused = c.refused.load(std::sync::atomic::Ordering::Relaxed);
            Json(json!({"status": "ok", "connections": {"open": open, "refused": refused}})).into_response()
        }
        Err(e) => ApiError::not_ready(&e).into_response(),
    }
}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "system", responses((status = 200, description = "this document")))]
pub async fn openapi_json(State(state): State<SharedState>) -> Response {
    ([(CONTENT_TYPE, "application/json")], state.openapi.to_string()).into_response()
}
