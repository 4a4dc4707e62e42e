//! `apis.listKeys`: an Unkey API is the caller's workspace, so its keys are the workspace's
//! keys, paged by the native cursor.

use axum::body::Bytes;
use axum::http::Method;
use serde::Deserialize;

use keyward_core::wire::keys::{KeyList, KeyStatus};

use super::permissions::Listed;
use super::shapes::KeyData;
use super::{parse, seg, Ctx, UnkeyError, V2};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListKeys {
    api_id: String,
    limit: Option<u32>,
    cursor: Option<String>,
    external_id: Option<String>,
}

pub(super) async fn list_keys(v2: V2, ctx: Ctx, body: Bytes) -> Result<Listed, UnkeyError> {
    let req: ListKeys = parse(&body)?;
    ctx.check_api(&req.api_id)?;
    if req.external_id.is_some() {
        // TODO(identities): the native list's identity filter once identities land.
        return Err(UnkeyError::invalid("body.externalId", "identities are not supported by this server yet"));
    }
    let limit = req.limit.unwrap_or(100);
    if !(1..=100).contains(&limit) {
        return Err(UnkeyError::invalid("body.limit", "limit must be 1-100"));
    }
    let mut path = format!("/v1/keys?limit={limit}");
    if let Some(c) = &req.cursor {
        path.push_str(&format!("&cursor={}", seg(c)));
    }
    let list: KeyList = v2.call(&ctx, Method::GET, &path, None).await?.json()?;
    // Revoked keys are ones Unkey would have deleted: left out (a page may come out short).
    let data = list
        .items
        .into_iter()
        .filter(|k| !matches!(k.status, KeyStatus::Revoked | KeyStatus::Rejected))
        .map(|k| serde_json::to_value(KeyData::of(k)).unwrap_or_default())
        .collect();
    let mut pagination = serde_json::json!({"hasMore": list.next_cursor.is_some()});
    if let Some(c) = list.next_cursor {
        pagination["cursor"] = c.into();
    }
    Ok(Listed { data, pagination })
}
