//! `POST /v1/keys/import`: keys brought from another system as the hashes of their secrets
//! (docs/IMPORT.md). All or none per call: every item is checked before anything is
//! written, then one transaction writes them with one `key.import` audit event. [`import`]
//! is the route's work without HTTP, for other ways in (Unkey's `keys.migrateKeys`).

use std::collections::{HashMap, HashSet};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use keyward_core::approval_change::ApprovalChange;
use keyward_core::audit_action::AuditAction;
use keyward_core::ids;
use keyward_core::import::{ImportRules, NewImport, MAX_KEYS_PER_IMPORT};
use keyward_core::roles::Action;
use keyward_core::wire::import::{ImportAnswer, ImportKey};
use keyward_store::{import_events, ImportedKey};
use serde::de::DeserializeOwned;

use crate::audit::{target, RequestOrigin};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::escalation::Gift;
use crate::extract::Caller;
use crate::http::pipeline::{read_body, too_large};
use crate::quorum::approval_for;
use crate::state::{AppState, SharedState};

/// The body an import may have (10,000 keys with their settings), whatever the API's body
/// limit for other routes.
pub const MAX_IMPORT_BODY: usize = 16 * 1024 * 1024;

#[utoipa::path(post, path = "/v1/keys/import", tag = "keys",
    request_body(description = "a JSON array of keys, or NDJSON (one key a line) with `Content-Type: application/x-ndjson`; at most 10,000 keys",
        content((Vec<ImportKey> = "application/json"), (String = "application/x-ndjson"))),
    responses((status = 201, description = "every key imported", body = ImportAnswer),
        (status = 400, description = "a bad item (`field` `keys[i].…`), none or more than 10,000 keys", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "not an owner or admin, or a permission or role beyond the caller's", body = ErrorBody),
        (status = 409, description = "a hash imported already and not used yet (`keys[i].hash`), or the policy needs approvals to create keys", body = ErrorBody),
        (status = 413, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn import_keys(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<ImportAnswer>)> {
    caller.require(Action::ImportKeys)?;
    let raw = read_body(body, state.config.body_limit.max(MAX_IMPORT_BODY), too_large).await?;
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-ndjson"));
    let items = if ndjson { parse_ndjson(&raw)? } else { parse_array(&raw)? };
    let answer = import(&state, &caller, &origin, &items).await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

/// Imports `items` for the caller, all or none: the route's work once the body is parsed.
/// Refusals name `keys[i].<field>`.
pub(crate) async fn import(
    state: &AppState,
    caller: &Caller,
    origin: &RequestOrigin,
    items: &[ImportKey],
) -> ApiResult<ImportAnswer> {
    caller.require(Action::ImportKeys)?;
    count(items.len())?;
    let p = &caller.0;
    // Imported keys cannot wait on approvals one by one; an import under a rule that would
    // make each created key wait is refused rather than let past it.
    if approval_for(state, caller, ApprovalChange::KeyCreate, &p.workspace_id).await?.is_some() {
        return Err(ApiError::Conflict {
            field: None,
            message: "the workspace policy needs approvals for key.create, which imports cannot wait on: \
                      create these keys through POST /v1/keys, or import them while no approvals are needed"
                .into(),
        });
    }
    let now = state.clock.now();
    let mut checked: Vec<NewImport> = Vec::with_capacity(items.len());
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let new = item
            .validate(now, &p.policy)
            .map_err(|e| ApiError::invalid(format!("keys[{i}].{}", e.field()), e.to_string()))?;
        if seen.insert(new.import_hash.clone(), i).is_some() {
            return Err(ApiError::Conflict {
                field: Some(format!("keys[{i}].hash")),
                message: "this hash is given twice in the call".into(),
            });
        }
        checked.push(new);
    }
    // What each key gets must be the caller's to give, as for a created key: checked once
    // for each distinct set of permissions and roles.
    let mut gifts: HashSet<(&[String], &[String])> = HashSet::new();
    for (i, n) in checked.iter().enumerate() {
        if gifts.insert((n.key.permissions.as_slice(), n.key.roles.as_slice())) {
            let gift = Gift { permissions: &n.key.permissions, roles: &n.key.roles, grants: &[] };
            state.may_give(&p.workspace_id, p.role, gift).await.map_err(|e| in_item(i, e))?;
        }
    }
    let keys: Vec<ImportedKey> = checked
        .into_iter()
        .map(|n| {
            let id = ids::new_id("key", now, state.random.as_ref());
            let (mut record, _unused_secret) = state.new_key_record(p, id, n.key, None, now);
            record.hash = None;
            record.start = n.start;
            ImportedKey { record, import_hash: n.import_hash }
        })
        .collect();
    let ids: Vec<String> = keys.iter().map(|k| k.record.id.clone()).collect();
    let changes = serde_json::json!({
        "count": ids.len(), "first_id": ids.first(), "last_id": ids.last(),
    });
    let audit = caller.audit(origin, AuditAction::KeyImport, target("workspace", &p.workspace_id, None), changes);
    state.store.import_keys(&p.workspace_id, &keys, now, &audit).await?;
    // This node knows the hashes at once; others hear the same events.
    for event in import_events(keys.iter().map(|k| k.import_hash.as_str())) {
        state.cache.invalidate(&event);
    }
    Ok(ImportAnswer { imported: ids.len(), ids })
}

fn count(n: usize) -> ApiResult<()> {
    match n {
        0 => Err(ApiError::invalid("keys", "no keys to import")),
        n if n > MAX_KEYS_PER_IMPORT => Err(ApiError::invalid(
            "keys",
            format!("at most {MAX_KEYS_PER_IMPORT} keys a call: split bigger imports into several calls"),
        )),
        _ => Ok(()),
    }
}

/// A refusal about item `i`: a named field is named inside it.
fn in_item(i: usize, e: ApiError) -> ApiError {
    match e {
        ApiError::Invalid { field: Some(f), message } => {
            ApiError::Invalid { field: Some(format!("keys[{i}].{f}")), message }
        }
        other => other,
    }
}

/// A JSON array of keys.
fn parse_array(raw: &[u8]) -> ApiResult<Vec<ImportKey>> {
    let items: Vec<ImportKey> = parse(raw, "keys")?;
    count(items.len())?;
    Ok(items)
}

/// NDJSON: one key a line, blank lines skipped; `keys[i]` counts the keys, not the lines.
fn parse_ndjson(raw: &[u8]) -> ApiResult<Vec<ImportKey>> {
    let mut items = Vec::new();
    for line in raw.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)) {
        count(items.len() + 1)?;
        items.push(parse(line, &format!("keys[{}]", items.len()))?);
    }
    count(items.len())?;
    Ok(items)
}

/// Parses JSON, naming the field at fault under `at` (`keys`, `keys[3]`).
fn parse<T: DeserializeOwned>(raw: &[u8], at: &str) -> ApiResult<T> {
    let de = &mut serde_json::Deserializer::from_slice(raw);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::Invalid { field: Some(at.to_string()), message: format!("malformed JSON: {msg}") };
        }
        let mut field = match path.as_str() {
            "." => at.to_string(),
            p if p.starts_with('[') => format!("{at}{p}"),
            p => format!("{at}.{p}"),
        };
        // serde names an unknown or missing field in its message, not always in the path.
        let named = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|m| msg.strip_prefix(m).and_then(|r| r.split('`').next()));
        if let Some(name) = named {
            if !field.ends_with(&format!(".{name}")) {
                field = format!("{field}.{name}");
            }
        }
        ApiError::Invalid { field: Some(field), message: msg }
    })?;
    de.end().map_err(|e| ApiError::Invalid { field: Some(at.to_string()), message: format!("malformed JSON: {e}") })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(r: ApiResult<Vec<ImportKey>>) -> String {
        match r {
            Err(ApiError::Invalid { field, .. }) => field.unwrap_or_default(),
            Err(e) => format!("{e:?}"),
            Ok(v) => format!("accepted {}", v.len()),
        }
    }

    const HEX: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn refusals_name_the_item_and_field() {
        let ok = format!(r#"{{"hash": {{"variant": "sha256_hex", "value": "{HEX}"}}}}"#);
        assert_eq!(field(parse_array(format!("[{ok}, {ok}]").as_bytes())), "accepted 2");
        assert_eq!(field(parse_array(b"[]")), "keys");
        assert_eq!(field(parse_array(b"{}")), "keys");
        assert_eq!(field(parse_array(b"[")), "keys");
        let bad_variant = r#"{"hash": {"variant": "md5", "value": "00"}}"#;
        assert_eq!(field(parse_array(format!("[{ok}, {bad_variant}]").as_bytes())), "keys[1].hash.variant");
        let extra = format!(r#"{{"hash": {{"variant": "sha256_hex", "value": "{HEX}"}}, "secret": "x"}}"#);
        assert_eq!(field(parse_array(format!("[{extra}]").as_bytes())), "keys[0].secret");
        assert_eq!(field(parse_array(br#"[{"name": "a"}]"#)), "keys[0].hash");
        let nd = format!("{ok}\n\n{ok}\n{bad_variant}\n");
        assert_eq!(field(parse_ndjson(nd.as_bytes())), "keys[2].hash.variant");
        assert_eq!(field(parse_ndjson(format!("{ok}\n{ok}\r\n").as_bytes())), "accepted 2");
        assert_eq!(field(parse_ndjson(b"\n \n")), "keys");
        assert_eq!(field(parse_ndjson(format!("{ok}\nnope\n").as_bytes())), "keys[1]");
    }

    #[test]
    fn more_than_the_limit_is_refused_by_count() {
        let ok = format!(r#"{{"hash": {{"variant": "sha256_hex", "value": "{HEX}"}}}}"#);
        let many = vec![ok.as_str(); MAX_KEYS_PER_IMPORT + 1].join("\n");
        assert_eq!(field(parse_ndjson(many.as_bytes())), "keys");
        let array = format!("[{}]", vec![ok.as_str(); MAX_KEYS_PER_IMPORT + 1].join(","));
        assert_eq!(field(parse_array(array.as_bytes())), "keys");
    }
}
