//! Unkey's v2 API served by Keyward under `/v2/` (`docs/UNKEY.md`): Unkey's SDKs pointed at
//! Keyward work unchanged. Each route is a thin adapter: it authenticates the root key (a
//! management key or session, the `Caller` of the native routes), translates the body and
//! calls the native route in-process through the API router, so audit, approvals, events,
//! webhooks and idempotency are the native ones; verification calls the hot path directly.
//! Answers go in Unkey's envelope `{"meta":{"requestId"},"data":…}`; refusals in its error
//! shape (`errors.rs`, the one place).

mod apis;
mod codes;
mod errors;
mod idempotency;
mod identities;
mod keys;
mod permissions;
mod ratelimit;
mod shapes;
mod verify;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::{header, HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tower::ServiceExt;

use keyward_store::Principal;

use crate::extract::{Caller, RawBody};
use crate::state::SharedState;
pub(crate) use errors::UnkeyError;

/// What every `/v2` handler shares: the API router to call the native routes through, the
/// state, and the window of answered verifications (`idempotency.rs`).
#[derive(Clone)]
pub(crate) struct V2 {
    api: Router,
    state: SharedState,
    answered: Arc<idempotency::Answered>,
}

/// The headers a native call is given from the `/v2` request: the credential, the request
/// id (the same in the audit trail and in `meta.requestId`), the client's address as
/// proxies tell it, and an idempotency key for the native routes that honour one.
const PASSED_ON: [HeaderName; 7] = [
    header::AUTHORIZATION,
    crate::http::request_id::HEADER,
    header::USER_AGENT,
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-real-ip"),
    header::FORWARDED,
    HeaderName::from_static("idempotency-key"),
];

/// One `/v2` request once authenticated.
pub(crate) struct Ctx {
    pub(crate) principal: Principal,
    pub(crate) headers: axum::http::HeaderMap,
    peer: Option<ConnectInfo<SocketAddr>>,
}

impl Ctx {
    /// Refuses an `apiId` other than the caller's workspace id.
    pub(crate) fn check_api(&self, api_id: &str) -> Result<(), UnkeyError> {
        if api_id == self.principal.workspace_id {
            Ok(())
        } else {
            Err(UnkeyError::api_not_found())
        }
    }
}

/// A native route's answer: its status and body.
pub(crate) struct Native {
    status: StatusCode,
    body: Bytes,
}

impl Native {
    /// The body as `T` when the route accepted, else its refusal in Unkey's shape.
    pub(crate) fn json<T: DeserializeOwned>(self) -> Result<T, UnkeyError> {
        self.accepted()?;
        serde_json::from_slice(&self.body).map_err(|e| {
            tracing::error!(error = %e, "a native answer did not parse");
            UnkeyError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        })
    }

    pub(crate) fn accepted(&self) -> Result<(), UnkeyError> {
        if self.status.is_success() {
            Ok(())
        } else {
            Err(UnkeyError::from_native(self.status, &self.body))
        }
    }
}

/// How much of a native answer is read (a page of keys is the largest).
const NATIVE_ANSWER_LIMIT: usize = 16 << 20;

impl V2 {
    /// Calls a native route in-process with this request's credential and origin.
    pub(crate) async fn call(
        &self,
        ctx: &Ctx,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Native, UnkeyError> {
        let mut req = Request::builder().method(method).uri(path);
        for name in &PASSED_ON {
            if let Some(v) = ctx.headers.get(name) {
                req = req.header(name, v);
            }
        }
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(serde_json::to_vec(&v).map_err(|e| internal(&e))?)
            }
            None => Body::empty(),
        };
        let mut req = req.body(body).map_err(|e| internal(&e))?;
        if let Some(peer) = ctx.peer {
            req.extensions_mut().insert(peer);
        }
        let Ok(resp) = self.api.clone().oneshot(req).await;
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), NATIVE_ANSWER_LIMIT).await.map_err(|e| internal(&e))?;
        Ok(Native { status, body })
    }
}

pub(crate) fn internal(e: &dyn std::fmt::Display) -> UnkeyError {
    tracing::error!(error = %e, "internal error in /v2");
    UnkeyError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// Authenticates, reads the body and runs `f`; answers with `reply` (Unkey's envelope) or
/// in Unkey's error shape.
async fn run<T, F, Fut>(v2: V2, req: Request, f: F, reply: fn(&str, T) -> Response) -> Response
where
    F: FnOnce(V2, Ctx, Bytes) -> Fut,
    Fut: Future<Output = Result<T, UnkeyError>>,
{
    let request_id = req
        .headers()
        .get(crate::http::request_id::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let outcome = async {
        let (parts, body) = req.into_parts();
        // Not the native extractor: a suspended workspace's root key still verifies keys
        // here; the native routes it calls refuse its changes.
        let Caller(principal) = Caller::authenticate(&parts, &v2.state).await?;
        let ctx = Ctx {
            principal,
            headers: parts.headers.clone(),
            peer: parts.extensions.get::<ConnectInfo<SocketAddr>>().copied(),
        };
        let RawBody(body) = RawBody::from_request(Request::from_parts(parts, body), &()).await?;
        f(v2, ctx, body).await
    }
    .await;
    match outcome {
        Ok(data) => reply(&request_id, data),
        Err(e) => e.into_response(&request_id),
    }
}

/// `{"meta":{"requestId"},"data":…}`.
pub(crate) fn envelope<T: Serialize>(request_id: &str, data: T) -> Response {
    let body = serde_json::json!({"meta": {"requestId": request_id}, "data": data});
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// `{"meta":{"requestId"}}`: an answer with nothing more (`identities.deleteIdentity`).
fn meta_only(request_id: &str, (): ()) -> Response {
    (StatusCode::OK, axum::Json(serde_json::json!({"meta": {"requestId": request_id}}))).into_response()
}

/// A list's envelope: `pagination` beside `data`.
fn listed(request_id: &str, list: permissions::Listed) -> Response {
    let body = serde_json::json!({"meta": {"requestId": request_id}, "data": list.data, "pagination": list.pagination});
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Parses a `/v2` body: a field-named 400 (`body.<field>`) when it does not fit.
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, UnkeyError> {
    Ok(crate::extract::parse_json(body)?)
}

/// An id as Unkey shapes them (`^[a-zA-Z0-9_]+$`, 3-255): checked before it goes into a
/// native path, so nothing in it can change the path.
pub(crate) fn id<'a>(field: &str, v: &'a str) -> Result<&'a str, UnkeyError> {
    let ok = (3..=255).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(v)
    } else {
        Err(UnkeyError::invalid(format!("body.{field}"), format!("{field} must be 3-255 letters, digits or _")))
    }
}

/// A path segment or query value percent-encoded (role names, cursors).
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

macro_rules! route {
    ($router:expr, $path:literal, $f:path) => {
        $router.route($path, post(|State(v2): State<V2>, req: Request| run(v2, req, $f, envelope)))
    };
    ($router:expr, $path:literal, $f:path, $reply:ident) => {
        $router.route($path, post(|State(v2): State<V2>, req: Request| run(v2, req, $f, $reply)))
    };
}

/// The `/v2` routes (nested at `/v2`) over `api`, the API router that serves the native
/// routes.
pub(crate) fn router(state: &SharedState, api: Router) -> Router {
    let v2 = V2 { api, state: state.clone(), answered: Arc::new(idempotency::Answered::default()) };
    let r = Router::new();
    let r = route!(r, "/keys.verifyKey", verify::verify_key);
    let r = route!(r, "/keys.whoami", keys::whoami);
    let r = route!(r, "/keys.createKey", keys::create_key);
    let r = route!(r, "/keys.getKey", keys::get_key);
    let r = route!(r, "/keys.updateKey", keys::update_key);
    let r = route!(r, "/keys.deleteKey", keys::delete_key);
    let r = route!(r, "/keys.rerollKey", keys::reroll_key);
    let r = route!(r, "/keys.updateCredits", keys::update_credits);
    let r = route!(r, "/keys.migrateKeys", keys::migrate_keys);
    let r = route!(r, "/keys.addPermissions", permissions::add_permissions);
    let r = route!(r, "/keys.removePermissions", permissions::remove_permissions);
    let r = route!(r, "/keys.setPermissions", permissions::set_permissions);
    let r = route!(r, "/keys.addRoles", permissions::add_roles);
    let r = route!(r, "/keys.removeRoles", permissions::remove_roles);
    let r = route!(r, "/keys.setRoles", permissions::set_roles);
    let r = route!(r, "/apis.listKeys", apis::list_keys, listed);
    let r = route!(r, "/identities.createIdentity", identities::create_identity);
    let r = route!(r, "/identities.getIdentity", identities::get_identity);
    let r = route!(r, "/identities.listIdentities", identities::list_identities, listed);
    let r = route!(r, "/identities.updateIdentity", identities::update_identity);
    let r = route!(r, "/identities.deleteIdentity", identities::delete_identity, meta_only);
    let r = route!(r, "/permissions.createRole", permissions::create_role);
    let r = route!(r, "/permissions.getRole", permissions::get_role);
    let r = route!(r, "/permissions.listRoles", permissions::list_roles, listed);
    let r = route!(r, "/permissions.deleteRole", permissions::delete_role);
    let r = route!(r, "/permissions.createPermission", permissions::create_permission);
    let r = route!(r, "/permissions.getPermission", permissions::get_permission);
    let r = route!(r, "/permissions.listPermissions", permissions::list_permissions, listed);
    let r = route!(r, "/ratelimit.limit", ratelimit::limit);
    let r = route!(r, "/ratelimit.multiLimit", ratelimit::multi_limit);
    r.fallback(unknown_route).method_not_allowed_fallback(wrong_method).with_state(v2)
}

fn request_id(req: &Request) -> String {
    req.headers().get(crate::http::request_id::HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

async fn unknown_route(req: Request) -> Response {
    UnkeyError::not_found("application/invalid_input", "no such route in Keyward's Unkey v2 API (see docs/UNKEY.md)")
        .into_response(&request_id(&req))
}

async fn wrong_method(req: Request) -> Response {
    UnkeyError::new(StatusCode::METHOD_NOT_ALLOWED, "Unkey's v2 routes take POST").into_response(&request_id(&req))
}
