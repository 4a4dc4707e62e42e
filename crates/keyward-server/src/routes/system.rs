//! Health and the OpenAPI document.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::state::SharedState;

#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, description = "the process is up"), (status = 503, description = "the database is unreachable")))]
pub async fn healthz(State(state): State<SharedState>) -> Response {
    if state.store.ping().await {
        Json(json!({"status": "ok"})).into_response()
    } else {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "database unavailable"}))).into_response()
    }
}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "system", responses((status = 200, description = "this document")))]
pub async fn openapi_json() -> Response {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(|| super::openapi().to_json().unwrap_or_default());
    ([(CONTENT_TYPE, "application/json")], doc.as_str()).into_response()
}
