//! `apis.listKeys`: an Unkey API is the caller's workspace, so its keys are the workspace's
//! keys, paged by the native cursor.

use axum::body::Bytes;
use axum::http::Method;
use serde::Deserialize;

use std::collections::BTreeMap;

use keyward_core::wire::identities::IdentityView;
use keyward_core::wire::keys::{KeyList, KeyStatus};

use super::keys::identity;
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
    let limit = req.limit.unwrap_or(100);
    if !(1..=100).contains(&limit) {
        return Err(UnkeyError::invalid("body.limit", "limit must be 1-100"));
    }
    let mut path = format!("/v1/keys?limit={limit}");
    if let Some(c) = &req.cursor {
        path.push_str(&format!("&cursor={}", seg(c)));
    }
    if let Some(x) = &req.external_id {
        path.push_str(&format!("&external_id={}", seg(x)));
    }
    let list: KeyList =
        v2.call(&ctx, Method::GET, &path, None).await?.json().map_err(|e| e.renamed("external_id", "externalId"))?;
    // Each identity of the page read once.
    let mut identities: BTreeMap<String, Option<IdentityView>> = BTreeMap::new();
    let mut data = Vec::with_capacity(list.items.len());
    // Revoked keys are ones Unkey would have deleted: left out (a page may come out short).
    for k in list.items.into_iter().filter(|k| !matches!(k.status, KeyStatus::Revoked | KeyStatus::Rejected)) {
        let found = match k.identity_id.clone() {
            Some(i) => match identities.get(&i) {
                Some(found) => found.clone(),
                None => {
                    let found = identity(&v2, &ctx, &i).await?;
                    identities.insert(i, found.clone());
                    found
                }
            },
            None => None,
        };
        data.push(serde_json::to_value(KeyData::of(k, found.as_ref())).unwrap_or_default());
    }
    let mut pagination = serde_json::json!({"hasMore": list.next_cursor.is_some()});
    if let Some(c) = list.next_cursor {
        pagination["cursor"] = c.into();
    }
    Ok(Listed { data, pagination })
}
