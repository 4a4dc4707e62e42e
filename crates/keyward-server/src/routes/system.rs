//! Health and the OpenAPI document.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::state::SharedState;

#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, description = "the process is up"), (status = 503, description = "the database is unreachable")))]
pub async fn healthz(State(state): State<SharedState>) -> Response {
    if state.store.ping().await {
        Json(json!({"status": "ok"})).into_response()
    } else {
        ApiError::Unavailable.into_response()
    }
}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "system", responses((status = 200, description = "this document")))]
pub async fn openapi_json(State(state): State<SharedState>) -> Response {
    ([(CONTENT_TYPE, "application/json")], state.openapi.to_string()).into_response()
}
