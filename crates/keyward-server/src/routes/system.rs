//! Health and the OpenAPI document.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::state::SharedState;

#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, description = "the node can serve: the database is reachable and takes writes; with `--redis-url`, `redis` says whether Redis answers: `ok`, `degraded` (it does, but a check was answered without it in the last 5 s) or `unavailable` (limits and credits are then answered as `--ratelimit-on-error` and `--credits-on-error` say)"),
        (status = 503, description = "the database is unreachable or read-only (`unavailable`), or its disk is full (`storage_full`, with `Retry-After`)")))]
pub async fn healthz(State(state): State<SharedState>) -> Response {
    let redis = async {
        match &state.shared {
            Some(shared) => Some(shared.health().await),
            None => None,
        }
    };
    // Redis away is not a 503: the node still serves, answering limits and credits as its
    // settings say, and a load balancer taking every node out would stop that too.
    match tokio::join!(state.store.health(), redis) {
        (Ok(()), redis) => {
            let c = &state.connections;
            let open = c.open.load(std::sync::atomic::Ordering::Relaxed);
            let refused = c.refused.load(std::sync::atomic::Ordering::Relaxed);
            let mut body = json!({"status": "ok", "connections": {"open": open, "refused": refused}});
            if let Some(r) = redis {
                body["redis"] = r.into();
            }
            Json(body).into_response()
        }
        (Err(e), _) => ApiError::not_ready(&e).into_response(),
    }
}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "system", responses((status = 200, description = "this document")))]
pub async fn openapi_json(State(state): State<SharedState>) -> Response {
    ([(CONTENT_TYPE, "application/json")], state.openapi.to_string()).into_response()
}
