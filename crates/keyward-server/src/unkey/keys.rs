//! `keys.*` over the native key routes: create, get, update (enabled ↔ the native disabled
//! state), delete (a revocation), reroll (a rotation with a grace), credits, migrate (an
//! import by hash), whoami.

use axum::body::Bytes;
use axum::http::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use keyward_core::wire::import::ImportAnswer;
use keyward_core::wire::keys::{CreditsSpec, KeyStatus, KeyView};

use keyward_core::wire::identities::IdentityView;

use super::shapes::{duration_secs, rfc3339, specs, CreditsData, KeyData, RatelimitRequest, RefillData};
use super::{id, parse, seg, Ctx, UnkeyError, V2};

/// A key of the caller's workspace that Unkey would still show: a revoked key is one Unkey
/// would have deleted, so it is not found.
pub(super) async fn fetch(v2: &V2, ctx: &Ctx, key_id: &str) -> Result<KeyView, UnkeyError> {
    let key_id = id("keyId", key_id)?;
    let native = v2.call(ctx, Method::GET, &format!("/v1/keys/{key_id}"), None).await?;
    if native.status == axum::http::StatusCode::NOT_FOUND {
        return Err(UnkeyError::key_not_found());
    }
    let view: KeyView = native.json()?;
    if view.status == KeyStatus::Revoked || view.status == KeyStatus::Rejected {
        return Err(UnkeyError::key_not_found());
    }
    Ok(view)
}

/// The identity `id` (an id or an external id) of the caller's workspace, or `None` when
/// there is none.
pub(super) async fn identity(v2: &V2, ctx: &Ctx, id: &str) -> Result<Option<IdentityView>, UnkeyError> {
    let native = v2.call(ctx, Method::GET, &format!("/v1/identities/{}", seg(id)), None).await?;
    if native.status == axum::http::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    native.json().map(Some)
}

/// A key in Unkey's shape, with its identity (one more read for a key that has one).
pub(super) async fn key_data(v2: &V2, ctx: &Ctx, view: KeyView) -> Result<KeyData, UnkeyError> {
    let found = match view.identity_id.as_deref() {
        Some(i) => identity(v2, ctx, i).await?,
        None => None,
    };
    Ok(KeyData::of(view, found.as_ref()))
}

/// `PATCH /v1/keys/{id}` with `patch`; a key not found is Unkey's 404.
pub(super) async fn patch(v2: &V2, ctx: &Ctx, key_id: &str, patch: Value) -> Result<KeyView, UnkeyError> {
    let key_id = id("keyId", key_id)?;
    let native = v2.call(ctx, Method::PATCH, &format!("/v1/keys/{key_id}"), Some(patch)).await?;
    if native.status == axum::http::StatusCode::NOT_FOUND {
        return Err(UnkeyError::key_not_found());
    }
    native.json()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateKey {
    api_id: String,
    #[allow(dead_code)]
    prefix: Option<String>,
    name: Option<String>,
    #[allow(dead_code)]
    byte_length: Option<u32>,
    external_id: Option<String>,
    meta: Option<Map<String, Value>>,
    roles: Option<Vec<String>>,
    permissions: Option<Vec<String>>,
    expires: Option<i64>,
    credits: Option<CreditsData>,
    ratelimits: Option<Vec<RatelimitRequest>>,
    enabled: Option<bool>,
    #[allow(dead_code)]
    recoverable: Option<bool>,
}

/// The native settings shared by create and update.
fn settings(
    out: &mut Map<String, Value>,
    name: Option<&str>,
    meta: Option<&Map<String, Value>>,
    roles: Option<&Vec<String>>,
    permissions: Option<&Vec<String>>,
    ratelimits: Option<&Vec<RatelimitRequest>>,
) -> Result<(), UnkeyError> {
    if let Some(n) = name {
        out.insert("name".into(), n.into());
    }
    if let Some(m) = meta {
        out.insert("meta".into(), Value::Object(m.clone()));
    }
    if let Some(r) = roles {
        out.insert("roles".into(), json!(r));
    }
    if let Some(p) = permissions {
        out.insert("permissions".into(), json!(p));
    }
    if let Some(limits) = ratelimits {
        out.insert("ratelimits".into(), json!(specs("body.ratelimits", limits)?));
    }
    Ok(())
}

/// A native refusal naming `external_id` as Unkey names it (`body.externalId`).
fn external_id_named(e: UnkeyError) -> UnkeyError {
    e.renamed("external_id", "externalId")
}

/// The name of a key created or migrated without one.
const DEFAULT_NAME: &str = "unnamed";

pub(super) async fn create_key(v2: V2, ctx: Ctx, body: Bytes) -> Result<Value, UnkeyError> {
    let req: CreateKey = parse(&body)?;
    ctx.check_api(&req.api_id)?;
    let mut native = Map::new();
    if let Some(x) = &req.external_id {
        native.insert("external_id".into(), x.as_str().into());
    }
    // Unkey's name is optional, Keyward's is not.
    settings(
        &mut native,
        Some(req.name.as_deref().unwrap_or(DEFAULT_NAME)),
        req.meta.as_ref(),
        req.roles.as_ref(),
        req.permissions.as_ref(),
        req.ratelimits.as_ref(),
    )?;
    if let Some(ms) = req.expires {
        native.insert("expires_at".into(), rfc3339("body.expires", ms)?.into());
    }
    if let Some(c) = req.credits.as_ref().and_then(CreditsData::spec) {
        native.insert("credits".into(), json!(c));
    }
    if let Some(e) = req.enabled {
        native.insert("enabled".into(), e.into());
    }
    let view: KeyView = v2
        .call(&ctx, Method::POST, "/v1/keys", Some(Value::Object(native)))
        .await?
        .json()
        .map_err(external_id_named)?;
    Ok(json!({"keyId": view.id, "key": view.secret}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct KeyIdOnly {
    pub(super) key_id: String,
    /// Keyward never keeps a secret: there is nothing to decrypt.
    #[serde(default)]
    #[allow(dead_code)]
    decrypt: Option<bool>,
    /// `keys.deleteKey`: Keyward keeps a revoked key's record (the audit trail names it).
    #[serde(default)]
    #[allow(dead_code)]
    permanent: Option<bool>,
}

pub(super) async fn get_key(v2: V2, ctx: Ctx, body: Bytes) -> Result<KeyData, UnkeyError> {
    let req: KeyIdOnly = parse(&body)?;
    key_data(&v2, &ctx, fetch(&v2, &ctx, &req.key_id).await?).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Whoami {
    key: String,
}

pub(super) async fn whoami(v2: V2, ctx: Ctx, body: Bytes) -> Result<KeyData, UnkeyError> {
    let req: Whoami = parse(&body)?;
    if req.key.is_empty() || req.key.len() > 512 {
        return Err(UnkeyError::invalid("body.key", "key must be 1-512 characters"));
    }
    // The key by its HMAC; another workspace's is not found (the native read checks that).
    let hash = v2.state.pepper.hash(&req.key);
    let rec = v2.state.store.key_by_hash(&hash).await.map_err(crate::error::ApiError::from)?;
    let rec = rec.filter(|r| r.workspace_id == ctx.principal.workspace_id).ok_or_else(UnkeyError::key_not_found)?;
    key_data(&v2, &ctx, fetch(&v2, &ctx, &rec.id).await?).await
}

/// A field that may be `null` (clear) or left out (keep).
pub(super) fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UpdateKey {
    key_id: String,
    #[serde(default, deserialize_with = "nullable")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    meta: Option<Option<Map<String, Value>>>,
    #[serde(default, deserialize_with = "nullable")]
    expires: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    credits: Option<Option<UpdateCredits>>,
    ratelimits: Option<Vec<RatelimitRequest>>,
    enabled: Option<bool>,
    roles: Option<Vec<String>>,
    permissions: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateCredits {
    #[serde(default, deserialize_with = "nullable")]
    remaining: Option<Option<u64>>,
    refill: Option<RefillData>,
}

pub(super) async fn update_key(v2: V2, ctx: Ctx, body: Bytes) -> Result<Value, UnkeyError> {
    let req: UpdateKey = parse(&body)?;
    let current = fetch(&v2, &ctx, &req.key_id).await?;
    let mut native = Map::new();
    // `null` detaches the key from its identity.
    if let Some(x) = &req.external_id {
        native.insert("external_id".into(), x.as_deref().map_or(Value::Null, Value::from));
    }
    // `null` clears a name or meta: Keyward's are an empty name and an empty object.
    let name = req.name.as_ref().map(|n| n.clone().unwrap_or_default());
    let meta = req.meta.as_ref().map(|m| m.clone().unwrap_or_default());
    settings(
        &mut native,
        name.as_deref(),
        meta.as_ref(),
        req.roles.as_ref(),
        req.permissions.as_ref(),
        req.ratelimits.as_ref(),
    )?;
    match req.expires {
        Some(Some(ms)) => {
            native.insert("expires_at".into(), rfc3339("body.expires", ms)?.into());
        }
        Some(None) => {
            native.insert("expires_at".into(), Value::Null);
        }
        None => {}
    }
    match &req.credits {
        Some(None) => {
            native.insert("credits".into(), Value::Null);
        }
        Some(Some(c)) => {
            // What is left out keeps the key's current value.
            let remaining = match c.remaining {
                Some(r) => r,
                None => Some(current.credits.as_ref().map_or(0, |c| c.remaining)),
            };
            let refill = match &c.refill {
                Some(r) => Some(r.spec()),
                None => current.credits.as_ref().and_then(|c| c.refill),
            };
            let credits = remaining.map(|remaining| CreditsSpec { remaining, refill });
            native.insert("credits".into(), json!(credits));
        }
        None => {}
    }
    if let Some(e) = req.enabled {
        native.insert("enabled".into(), e.into());
    }
    if !native.is_empty() {
        patch(&v2, &ctx, &current.id, Value::Object(native)).await.map_err(external_id_named)?;
    }
    Ok(json!({}))
}

pub(super) async fn delete_key(v2: V2, ctx: Ctx, body: Bytes) -> Result<Value, UnkeyError> {
    let req: KeyIdOnly = parse(&body)?;
    let current = fetch(&v2, &ctx, &req.key_id).await?;
    v2.call(&ctx, Method::POST, &format!("/v1/keys/{}/revoke", current.id), Some(json!({}))).await?.accepted()?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Reroll {
    key_id: String,
    expiration: u64,
}

pub(super) async fn reroll_key(v2: V2, ctx: Ctx, body: Bytes) -> Result<Value, UnkeyError> {
    let req: Reroll = parse(&body)?;
    let current = fetch(&v2, &ctx, &req.key_id).await?;
    // Keyward's grace is in whole seconds: a part second is rounded up, so the old key is
    // never stopped earlier than asked.
    let grace = if req.expiration == 0 {
        "0s".to_string()
    } else {
        duration_secs("body.expiration", req.expiration.div_ceil(1000) * 1000)?
    };
    let path = format!("/v1/keys/{}/rotate", current.id);
    let view: KeyView = v2.call(&ctx, Method::POST, &path, Some(json!({"grace_period": grace}))).await?.json()?;
    Ok(json!({"keyId": view.id, "key": view.secret}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UpdateCreditsReq {
    key_id: String,
    #[serde(default)]
    value: Option<u64>,
    operation: String,
}

pub(super) async fn update_credits(v2: V2, ctx: Ctx, body: Bytes) -> Result<CreditsData, UnkeyError> {
    let req: UpdateCreditsReq = parse(&body)?;
    // The written count is behind this node's by what it spent since its last flush: written
    // first, so an increment adds to what is left (other nodes' unwritten spending is not
    // seen: docs/UNKEY.md).
    crate::app::flush_credits(&v2.state).await;
    let current = fetch(&v2, &ctx, &req.key_id).await?;
    let refill = current.credits.as_ref().and_then(|c| c.refill);
    let now = current.credits.as_ref().map(|c| c.remaining);
    let remaining = match (req.operation.as_str(), req.value) {
        ("set", v) => v,
        ("increment", Some(v)) => Some(now.unwrap_or(0).saturating_add(v)),
        ("decrement", Some(v)) => Some(now.unwrap_or(0).saturating_sub(v)),
        ("increment" | "decrement", None) => {
            return Err(UnkeyError::invalid("body.value", "increment and decrement need a value"))
        }
        _ => return Err(UnkeyError::invalid("body.operation", "operation must be set, increment or decrement")),
    };
    let credits = remaining.map(|remaining| CreditsSpec { remaining, refill });
    let view = patch(&v2, &ctx, &current.id, json!({"credits": credits})).await?;
    Ok(view.credits.map_or(CreditsData { remaining: None, refill: None }, CreditsData::of))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Migrate {
    migration_id: String,
    api_id: String,
    keys: Vec<MigrateKey>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MigrateKey {
    hash: String,
    name: Option<String>,
    external_id: Option<String>,
    meta: Option<Map<String, Value>>,
    roles: Option<Vec<String>>,
    permissions: Option<Vec<String>>,
    expires: Option<i64>,
    enabled: Option<bool>,
    credits: Option<CreditsData>,
    ratelimits: Option<Vec<RatelimitRequest>>,
}

/// `migrationId` names how the old system hashed its keys (Keyward has no migrations set up
/// by a vendor): `sha256_hex` or `sha256_base64` (`sha256` is hex).
fn variant(migration_id: &str) -> Result<&'static str, UnkeyError> {
    match migration_id {
        "sha256_hex" | "sha256" => Ok("sha256_hex"),
        "sha256_base64" => Ok("sha256_base64"),
        _ => Err(UnkeyError::invalid("body.migrationId", "migrationId must be sha256_hex or sha256_base64")),
    }
}

pub(super) async fn migrate_keys(v2: V2, ctx: Ctx, body: Bytes) -> Result<Value, UnkeyError> {
    let req: Migrate = parse(&body)?;
    ctx.check_api(&req.api_id)?;
    let variant = variant(&req.migration_id)?;
    let mut items = Vec::with_capacity(req.keys.len());
    for (i, k) in req.keys.iter().enumerate() {
        let mut item = Map::new();
        if let Some(x) = &k.external_id {
            item.insert("external_id".into(), x.as_str().into());
        }
        item.insert("hash".into(), json!({"variant": variant, "value": k.hash}));
        settings(
            &mut item,
            k.name.as_deref(),
            k.meta.as_ref(),
            k.roles.as_ref(),
            k.permissions.as_ref(),
            k.ratelimits.as_ref(),
        )?;
        if let Some(ms) = k.expires {
            item.insert("expires_at".into(), rfc3339(&format!("body.keys[{i}].expires"), ms)?.into());
        }
        if let Some(c) = k.credits.as_ref().and_then(CreditsData::spec) {
            item.insert("credits".into(), json!(c));
        }
        items.push(Value::Object(item));
    }
    let native = v2.call(&ctx, Method::POST, "/v1/keys/import", Some(Value::Array(items))).await?;
    // The native import names `keys[i].field`, as Unkey's body does.
    let answer: ImportAnswer = native.json().map_err(external_id_named)?;
    // Imports are created enabled; the ones asked disabled are disabled right after.
    for (k, key_id) in req.keys.iter().zip(&answer.ids) {
        if k.enabled == Some(false) {
            patch(&v2, &ctx, key_id, json!({"enabled": false})).await?;
        }
    }
    let migrated: Vec<Value> =
        req.keys.iter().zip(&answer.ids).map(|(k, key_id)| json!({"hash": k.hash, "keyId": key_id})).collect();
    Ok(json!({"migrated": migrated, "failed": []}))
}
