//! A key's permissions and roles (`keys.add|remove|set Permissions|Roles`) and the
//! `permissions.*` routes over the native roles. Keyward has no registry of permissions:
//! they are the names keys and roles hold, so a permission's id, name and slug are one.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use keyward_core::wire::roles::{RoleList, RoleView};

use super::keys::{fetch, patch};
use super::shapes::permission;
use super::{parse, seg, Ctx, UnkeyError, V2};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct KeyPermissions {
    key_id: String,
    permissions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct KeyRoles {
    key_id: String,
    roles: Vec<String>,
}

#[derive(Clone, Copy)]
enum Change {
    Add,
    Remove,
    Set,
}

/// `have` changed by `given`, in the key's order with additions after.
fn changed(have: Vec<String>, given: Vec<String>, how: Change) -> Vec<String> {
    match how {
        Change::Set => dedup(given),
        Change::Add => dedup(have.into_iter().chain(given).collect()),
        Change::Remove => have.into_iter().filter(|p| !given.contains(p)).collect(),
    }
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    v.into_iter().filter(|x| seen.insert(x.clone())).collect()
}

// A read, then a write of the whole list: two changes to one key's permissions at once
// may lose one (the native PATCH sets the list). docs/UNKEY.md says so.
async fn permissions(v2: V2, ctx: Ctx, body: Bytes, how: Change) -> Result<Vec<Value>, UnkeyError> {
    let req: KeyPermissions = parse(&body)?;
    let current = fetch(&v2, &ctx, &req.key_id).await?;
    let next = changed(current.permissions, req.permissions, how);
    let view = patch(&v2, &ctx, &current.id, json!({"permissions": next})).await?;
    Ok(view.permissions.iter().map(|p| permission(p)).collect())
}

pub(super) async fn add_permissions(v2: V2, ctx: Ctx, body: Bytes) -> Result<Vec<Value>, UnkeyError> {
    permissions(v2, ctx, body, Change::Add).await
}

pub(super) async fn remove_permissions(v2: V2, ctx: Ctx, body: Bytes) -> Result<Vec<Value>, UnkeyError> {
    permissions(v2, ctx, body, Change::Remove).await
}

pub(super) async fn set_permissions(v2: V2, ctx: Ctx, body: Bytes) -> Result<Vec<Value>, UnkeyError> {
    permissions(v2, ctx, body, Change::Set).await
}

async fn roles(v2: V2, ctx: Ctx, body: Bytes, how: Change) -> Result<Vec<Value>, UnkeyError> {
    let req: KeyRoles = parse(&body)?;
    let current = fetch(&v2, &ctx, &req.key_id).await?;
    let next = changed(current.roles, req.roles, how);
    let view = patch(&v2, &ctx, &current.id, json!({"roles": next})).await?;
    let all = role_list(&v2, &ctx).await?;
    Ok(view
        .roles
        .iter()
        .map(|name| all.iter().find(|r| &r.name == name).map_or_else(|| bare_role(name), role))
        .collect())
}

pub(super) async fn add_roles(v2: V2, ctx: Ctx, body: Bytes) -> Result<Vec<Value>, UnkeyError> {
    roles(v2, ctx, body, Change::Add).await
}

pub(super) async fn remove_roles(v2: V2, ctx: Ctx, body: Bytes) -> Result<Vec<Value>, UnkeyError> {
    roles(v2, ctx, body, Change::Remove).await
}

pub(super) async fn set_roles(v2: V2, ctx: Ctx, body: Bytes) -> Result<Vec<Value>, UnkeyError> {
    roles(v2, ctx, body, Change::Set).await
}

/// Unkey's `Role`: Keyward's roles are known by their names, so the id is the name.
fn role(r: &RoleView) -> Value {
    let perms: Vec<Value> = r.permissions.iter().flatten().map(|p| permission(p)).collect();
    let mut v = json!({"id": r.name, "name": r.name, "permissions": perms});
    if !r.description.is_empty() {
        v["description"] = r.description.clone().into();
    }
    v
}

fn bare_role(name: &str) -> Value {
    json!({"id": name, "name": name, "permissions": []})
}

/// The workspace's roles of its own (the member roles are Keyward's, not Unkey's), by name.
async fn role_list(v2: &V2, ctx: &Ctx) -> Result<Vec<RoleView>, UnkeyError> {
    let list: RoleList = v2.call(ctx, Method::GET, "/v1/roles", None).await?.json()?;
    let mut items: Vec<RoleView> = list.items.into_iter().filter(|r| !r.member_role).collect();
    items.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(items)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateRole {
    name: String,
    description: Option<String>,
    permissions: Option<Vec<String>>,
}

pub(super) async fn create_role(v2: V2, ctx: Ctx, body: Bytes) -> Result<Value, UnkeyError> {
    let req: CreateRole = parse(&body)?;
    let native =
        json!({"name": req.name, "description": req.description, "permissions": req.permissions.unwrap_or_default()});
    let created: RoleView = v2.call(&ctx, Method::POST, "/v1/roles", Some(native)).await?.json()?;
    Ok(json!({"roleId": created.name}))
}

#[derive(Deserialize)]
pub(super) struct RoleName {
    role: String,
}

fn role_path(name: &str) -> Result<String, UnkeyError> {
    if name.is_empty() || name.len() > 128 {
        return Err(UnkeyError::invalid("body.role", "role must be 1-128 characters"));
    }
    Ok(format!("/v1/roles/{}", seg(name)))
}

fn role_not_found() -> UnkeyError {
    UnkeyError::not_found("data/role_not_found", "the requested role does not exist")
}

pub(super) async fn get_role(v2: V2, ctx: Ctx, body: Bytes) -> Result<Value, UnkeyError> {
    let req: RoleName = parse(&body)?;
    let native = v2.call(&ctx, Method::GET, &role_path(&req.role)?, None).await?;
    if native.status == StatusCode::NOT_FOUND {
        return Err(role_not_found());
    }
    Ok(role(&native.json::<RoleView>()?))
}

pub(super) async fn delete_role(v2: V2, ctx: Ctx, body: Bytes) -> Result<Value, UnkeyError> {
    let req: RoleName = parse(&body)?;
    // Unkey takes a deleted role off the keys holding it: the native `force`.
    let path = format!("{}?force=true", role_path(&req.role)?);
    let native = v2.call(&ctx, Method::DELETE, &path, None).await?;
    if native.status == StatusCode::NOT_FOUND {
        return Err(role_not_found());
    }
    native.accepted()?;
    Ok(json!({}))
}

#[derive(Deserialize)]
pub(super) struct Page {
    limit: Option<usize>,
    cursor: Option<String>,
    search: Option<String>,
}

impl Page {
    /// One page of `names` (sorted), after the cursor (the last name of the page before).
    fn of<T>(&self, items: Vec<T>, name: impl Fn(&T) -> &str) -> Result<(Vec<T>, Value), UnkeyError> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=100).contains(&limit) {
            return Err(UnkeyError::invalid("body.limit", "limit must be 1-100"));
        }
        let mut rest = items.into_iter().filter(|i| {
            self.cursor.as_deref().is_none_or(|c| name(i) > c)
                && self.search.as_deref().is_none_or(|s| name(i).contains(s))
        });
        let page: Vec<T> = rest.by_ref().take(limit).collect();
        let more = rest.next().is_some();
        let mut pagination = json!({"hasMore": more});
        if let (true, Some(last)) = (more, page.last()) {
            pagination["cursor"] = name(last).into();
        }
        Ok((page, pagination))
    }
}

/// Answers whose `data` is a list: they carry `pagination` beside it, so they build the
/// whole envelope's `data` and `pagination` (see `Listed`).
pub(crate) struct Listed {
    pub(crate) data: Vec<Value>,
    pub(crate) pagination: Value,
}

pub(super) async fn list_roles(v2: V2, ctx: Ctx, body: Bytes) -> Result<Listed, UnkeyError> {
    let page: Page = parse(&body)?;
    let (roles, pagination) = page.of(role_list(&v2, &ctx).await?, |r| r.name.as_str())?;
    Ok(Listed { data: roles.iter().map(role).collect(), pagination })
}

#[derive(Deserialize)]
pub(super) struct CreatePermission {
    #[allow(dead_code)]
    name: String,
    slug: String,
    #[allow(dead_code)]
    description: Option<String>,
}

/// Nothing is stored: a permission exists by being held. The slug is checked as a
/// permission name is.
pub(super) async fn create_permission(_v2: V2, _ctx: Ctx, body: Bytes) -> Result<Value, UnkeyError> {
    let req: CreatePermission = parse(&body)?;
    let ok = !req.slug.is_empty()
        && req.slug.len() <= 128
        && req.slug.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '*'));
    if !ok {
        return Err(UnkeyError::invalid("body.slug", "slug must be 1-128 letters, digits or . _ - : *"));
    }
    Ok(json!({"permissionId": req.slug}))
}

/// The permissions the workspace's roles grant, sorted.
async fn known_permissions(v2: &V2, ctx: &Ctx) -> Result<Vec<String>, UnkeyError> {
    let all: BTreeSet<String> =
        role_list(v2, ctx).await?.into_iter().flat_map(|r| r.permissions.unwrap_or_default()).collect();
    Ok(all.into_iter().collect())
}

pub(super) async fn list_permissions(v2: V2, ctx: Ctx, body: Bytes) -> Result<Listed, UnkeyError> {
    let page: Page = parse(&body)?;
    let (perms, pagination) = page.of(known_permissions(&v2, &ctx).await?, String::as_str)?;
    Ok(Listed { data: perms.iter().map(|p| permission(p)).collect(), pagination })
}

#[derive(Deserialize)]
pub(super) struct PermissionName {
    permission: String,
}

pub(super) async fn get_permission(v2: V2, ctx: Ctx, body: Bytes) -> Result<Value, UnkeyError> {
    let req: PermissionName = parse(&body)?;
    if known_permissions(&v2, &ctx).await?.contains(&req.permission) {
        Ok(permission(&req.permission))
    } else {
        Err(UnkeyError::not_found("data/permission_not_found", "no role grants this permission"))
    }
}
