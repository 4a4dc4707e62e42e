//! Who made a change and from where, as the audit trail records it.

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use keyward_core::audit_action::AuditAction;
use serde_json::Value;
use std::net::SocketAddr;

use keyward_core::audit::{AuditActor, AuditTarget};
use keyward_core::operator_action::OperatorAction;
use keyward_store::{AuditRecord, CredentialKind, OperatorRecord, Origin};

use crate::error::ApiError;
use crate::extract::{Caller, Operator};
use crate::state::{AppState, SharedState};

/// The request's origin: the client address (through trusted proxies), its user agent and
/// its request id (`X-Request-Id` when the client sent a short one).
pub struct RequestOrigin(pub Origin);

impl FromRequestParts<SharedState> for RequestOrigin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| *peer);
        Ok(RequestOrigin(origin_of(state, &parts.headers, peer)))
    }
}

/// The origin of a request with these headers from `peer` (the console's single sign-on
/// hands them over from the browser's request).
pub(crate) fn origin_of(state: &AppState, headers: &HeaderMap, peer: Option<SocketAddr>) -> Origin {
    let header = |name: &str, max: usize| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= max && !v.chars().any(char::is_control))
            .map(str::to_string)
    };
    let ip = peer.map(|peer| state.client_ip(peer.ip(), headers).to_string());
    let request_id = header("x-request-id", 128)
        .unwrap_or_else(|| keyward_core::ids::new_id("req", state.clock.now(), state.random.as_ref()));
    Origin { ip, user_agent: header("user-agent", 512), request_id: Some(request_id) }
}

pub(crate) fn target(kind: &str, id: &str, name: Option<&str>) -> AuditTarget {
    AuditTarget { kind: kind.into(), id: Some(id.into()), name: name.map(str::to_string) }
}

impl Caller {
    /// An audit record of this caller doing `action` to `target`.
    pub(crate) fn audit(
        &self,
        origin: &RequestOrigin,
        action: AuditAction,
        target: AuditTarget,
        changes: Value,
    ) -> AuditRecord {
        let kind = match self.0.kind {
            CredentialKind::ManagementKey => "management_key",
            CredentialKind::Session => "member",
        };
        AuditRecord {
            actor: AuditActor {
                kind: kind.into(),
                id: Some(self.0.member_id.clone()),
                name: Some(self.0.email.clone()),
            },
            action,
            target,
            changes,
            origin: origin.0.clone(),
        }
    }
}

impl Operator {
    /// An operator-log record (and, for a workspace's action, its audit record) of this
    /// operator doing `action`, with a new line id.
    pub(crate) fn record(&self, state: &SharedState, origin: &RequestOrigin, action: OperatorAction) -> OperatorRecord {
        let id = keyward_core::ids::new_id("opl", state.clock.now(), state.random.as_ref());
        OperatorRecord::by_token(id, (&self.0.id, &self.0.name), action, origin.0.clone())
    }
}

/// What `changes` (an object of the fields a request sets) replaced: each of its fields'
/// value in `current` (`null` where `current` has none), so an event reads as before → after.
pub(crate) fn before(current: &Value, changes: &Value) -> Value {
    let fields = changes.as_object().map(|c| {
        c.keys().map(|k| (k.clone(), current.get(k).cloned().unwrap_or(Value::Null))).collect::<serde_json::Map<_, _>>()
    });
    Value::Object(fields.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn before_holds_the_old_value_of_each_changed_field() {
        let current = json!({"name": "a", "roles": ["x"], "meta": {}});
        let changes = json!({"name": "b", "scopes": ["s"]});
        assert_eq!(super::before(&current, &changes), json!({"name": "a", "scopes": null}));
        assert_eq!(super::before(&current, &json!(null)), json!({}));
    }
}
