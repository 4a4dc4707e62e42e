//! `identities.*` over the native identity routes (`/v1/identities…`). An identity is named
//! by `identity`, its id or its external id, as Unkey's requests take it; its limits have
//! made-up ids (`shapes::limit_id`). `credits` on an identity is Keyward's addition (Unkey's
//! identities have none): taken by create and update, shown by get and list.

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use keyward_core::wire::identities::{IdentityList, IdentityView};

use super::keys::nullable;
use super::permissions::Listed;
use super::shapes::{specs, CreditsData, IdentityData, RatelimitRequest};
use super::{parse, seg, Ctx, UnkeyError, V2};

/// What a refusal of a native identity route names, as Unkey names it.
fn named(e: UnkeyError) -> UnkeyError {
    e.renamed("external_id", "externalId")
}

fn identity_not_found() -> UnkeyError {
    UnkeyError::not_found("data/identity_not_found", "the requested identity does not exist")
}

/// `identity` checked before it goes into a native path (any value is percent-encoded; this
/// keeps a huge one from being sent on at all).
fn identity_path(identity: &str) -> Result<String, UnkeyError> {
    if identity.is_empty() || identity.len() > keyward_core::validate::MAX_EXTERNAL_ID {
        return Err(UnkeyError::invalid("body.identity", "identity must be 1-255 bytes: an id or an external id"));
    }
    Ok(format!("/v1/identities/{}", seg(identity)))
}

/// A native identity route's answer, 404 as Unkey's `identity_not_found`.
async fn call(v2: &V2, ctx: &Ctx, method: Method, path: &str, body: Option<Value>) -> Result<IdentityView, UnkeyError> {
    let native = v2.call(ctx, method, path, body).await?;
    if native.status == StatusCode::NOT_FOUND {
        return Err(identity_not_found());
    }
    native.json().map_err(named)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateIdentity {
    external_id: String,
    meta: Option<Map<String, Value>>,
    ratelimits: Option<Vec<RatelimitRequest>>,
    /// Keyward's addition: credits shared by the identity's keys.
    credits: Option<CreditsData>,
}

pub(super) async fn create_identity(v2: V2, ctx: Ctx, body: Bytes) -> Result<Value, UnkeyError> {
    let req: CreateIdentity = parse(&body)?;
    let mut native = Map::new();
    native.insert("external_id".into(), req.external_id.into());
    if let Some(m) = req.meta {
        native.insert("meta".into(), Value::Object(m));
    }
    if let Some(l) = &req.ratelimits {
        native.insert("ratelimits".into(), json!(specs("body.ratelimits", l)?));
    }
    if let Some(c) = req.credits.as_ref().and_then(CreditsData::spec) {
        native.insert("credits".into(), json!(c));
    }
    let native = v2.call(&ctx, Method::POST, "/v1/identities", Some(Value::Object(native))).await?;
    if native.status == StatusCode::CONFLICT {
        return Err(UnkeyError::new(StatusCode::CONFLICT, "an identity with this externalId exists in this workspace")
            .kind("data/identity_already_exists"));
    }
    let view: IdentityView = native.json().map_err(named)?;
    Ok(json!({"identityId": view.id}))
}

#[derive(Deserialize)]
pub(super) struct IdentityOnly {
    identity: String,
}

pub(super) async fn get_identity(v2: V2, ctx: Ctx, body: Bytes) -> Result<IdentityData, UnkeyError> {
    let req: IdentityOnly = parse(&body)?;
    let view = call(&v2, &ctx, Method::GET, &identity_path(&req.identity)?, None).await?;
    Ok(IdentityData::of(&view))
}

pub(super) async fn delete_identity(v2: V2, ctx: Ctx, body: Bytes) -> Result<(), UnkeyError> {
    let req: IdentityOnly = parse(&body)?;
    call(&v2, &ctx, Method::DELETE, &identity_path(&req.identity)?, None).await?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UpdateIdentity {
    identity: String,
    meta: Option<Map<String, Value>>,
    ratelimits: Option<Vec<RatelimitRequest>>,
    /// Keyward's addition: an override of the identity's credits; `null` removes them.
    #[serde(default, deserialize_with = "nullable")]
    credits: Option<Option<CreditsData>>,
}

pub(super) async fn update_identity(v2: V2, ctx: Ctx, body: Bytes) -> Result<IdentityData, UnkeyError> {
    let req: UpdateIdentity = parse(&body)?;
    let path = identity_path(&req.identity)?;
    let mut native = Map::new();
    if let Some(m) = req.meta {
        native.insert("meta".into(), Value::Object(m));
    }
    if let Some(l) = &req.ratelimits {
        native.insert("ratelimits".into(), json!(specs("body.ratelimits", l)?));
    }
    if let Some(c) = &req.credits {
        native.insert("credits".into(), json!(c.as_ref().and_then(CreditsData::spec)));
    }
    let view = call(&v2, &ctx, Method::PATCH, &path, Some(Value::Object(native))).await?;
    Ok(IdentityData::of(&view))
}

#[derive(Deserialize)]
pub(super) struct ListIdentities {
    limit: Option<u32>,
    cursor: Option<String>,
    search: Option<String>,
}

/// Native pages read for one `search` page at most: a search that matches little in a large
/// workspace answers a short page (`hasMore` and a cursor to go on) rather than reading it all.
const SEARCH_PAGES: usize = 10;
/// A native page's size while searching.
const SEARCH_PAGE: usize = 200;

pub(super) async fn list_identities(v2: V2, ctx: Ctx, body: Bytes) -> Result<Listed, UnkeyError> {
    let req: ListIdentities = parse(&body)?;
    let limit = req.limit.unwrap_or(100);
    if !(1..=100).contains(&limit) {
        return Err(UnkeyError::invalid("body.limit", "limit must be 1-100"));
    }
    let limit = limit as usize;
    let search = match req.search.as_deref() {
        Some(s) if s.len() > 256 => return Err(UnkeyError::invalid("body.search", "search must be at most 256 bytes")),
        Some(s) if !s.is_empty() => Some(s.to_lowercase()),
        _ => None,
    };
    // Unkey's `search`: the identities whose id or external id holds it, in any case.
    let matches = |i: &IdentityView| {
        search.as_deref().is_none_or(|s| i.id.to_lowercase().contains(s) || i.external_id.to_lowercase().contains(s))
    };
    let page = if search.is_some() { SEARCH_PAGE } else { limit };
    let mut cursor = req.cursor;
    let mut data: Vec<Value> = Vec::with_capacity(limit);
    let mut more = false;
    for _ in 0..SEARCH_PAGES {
        let mut path = format!("/v1/identities?limit={page}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", seg(c)));
        }
        let list: IdentityList = v2.call(&ctx, Method::GET, &path, None).await?.json()?;
        more = list.next_cursor.is_some();
        for i in &list.items {
            if data.len() == limit {
                more = true;
                break;
            }
            // The native cursor is the last identity's id: a page may end anywhere in it.
            cursor = Some(i.id.clone());
            if matches(i) {
                data.push(serde_json::to_value(IdentityData::of(i)).unwrap_or_default());
            }
        }
        if data.len() == limit || !more {
            break;
        }
    }
    let mut pagination = json!({"hasMore": more});
    if let Some(c) = cursor.filter(|_| more) {
        pagination["cursor"] = c.into();
    }
    Ok(Listed { data, pagination })
}
