//! The route table. Routes are registered through utoipa-axum, so a route cannot exist
//! without its OpenAPI description.

pub mod approvals;
pub mod apps;
pub mod audit;
pub mod identities;
pub mod key_imports;
pub mod keys;
pub mod leaks;
pub mod management_keys;
pub mod members;
pub mod oauth;
pub mod operators;
mod paging;
pub mod policies;
pub mod ratelimit;
pub mod roles;
pub mod service_accounts;
pub mod sessions;
pub mod system;
pub mod usage;
pub mod verify;
pub mod verify_tokens;
pub mod webhooks;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::SharedState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Keyward", description = "Self-hosted API key management: issue, verify, rotate and revoke API keys."),
    modifiers(&ManagementAuth),
    paths(verify::forward_auth_path),
    tags((name = "keys", description = "manage keys (management key required)"),
         (name = "verification", description = "verify keys; the key is the credential"),
         (name = "members", description = "members, sessions and MFA"),
         (name = "governance", description = "policies and approval requests"),
         (name = "roles", description = "roles that grant permissions, and service accounts"),
         (name = "audit", description = "the tamper-evident audit trail"),
         (name = "webhooks", description = "signed webhooks and per-key callbacks"),
         (name = "usage", description = "verification counts per key, and alerts on unusual use"),
         (name = "identities", description = "customers of the operator whose limits and credits their keys share"),
         (name = "leaks", description = "leaked keys reported by GitHub's secret scanning or by anyone who found one"),
         (name = "ratelimit", description = "rate limiting as a service: limits not about keys, and overrides per identifier"),
         (name = "operators", description = "the service's operator: workspaces provisioned, suspended, resumed and deleted (operator token required)"),
         (name = "apps", description = "apps installed in other workspaces, and their OAuth access tokens"),
         (name = "system"))
)]
pub struct ApiDoc;

struct ManagementAuth;

impl Modify for ManagementAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "management_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "operator_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every API route with its documentation.
pub fn api() -> OpenApiRouter<SharedState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(keys::create_key, keys::list_keys))
        .routes(routes!(keys::get_key, keys::update_key))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(keys::rotate_key))
        .routes(routes!(key_imports::import_keys))
        .routes(routes!(leaks::github))
        .routes(routes!(leaks::report))
        .routes(routes!(members::invite_member, members::list_members))
        .routes(routes!(members::setup_member))
        .routes(routes!(members::me))
        .routes(routes!(members::set_password))
        .routes(routes!(members::enrol_totp))
        .routes(routes!(members::confirm_totp))
        .routes(routes!(members::disable_totp))
        .routes(routes!(management_keys::create_management_key))
        .routes(routes!(management_keys::list_management_keys))
        .routes(routes!(management_keys::revoke_management_key))
        .routes(routes!(members::get_member, members::change_role, members::remove_member))
        .routes(routes!(sessions::login))
        .routes(routes!(sessions::logout))
        .routes(routes!(sessions::logout_everywhere))
        .routes(routes!(policies::get_policies, policies::put_policies))
        .routes(routes!(roles::list_roles, roles::create_role))
        .routes(routes!(roles::get_role, roles::update_role, roles::delete_role))
        .routes(routes!(service_accounts::create_service_account, service_accounts::list_service_accounts))
        .routes(routes!(
            service_accounts::get_service_account,
            service_accounts::update_service_account,
            service_accounts::delete_service_account
        ))
        .routes(routes!(service_accounts::create_account_key))
        .routes(routes!(audit::list_audit))
        .routes(routes!(audit::export_audit))
        .routes(routes!(audit::verify_audit))
        .routes(routes!(approvals::list_approvals))
        .routes(routes!(approvals::get_approval))
        .routes(routes!(approvals::approve))
        .routes(routes!(approvals::reject))
        .routes(routes!(approvals::cancel))
        .routes(routes!(verify::verify_key))
        .routes(routes!(verify::verify_request))
        .routes(routes!(verify::forward_auth))
        // Every method, and a path of any depth (`{*path}`), which `routes!` cannot register;
        // documented through `ApiDoc`'s `paths`.
        .route("/v1/auth/", axum::routing::any(verify::forward_auth_path))
        .route("/v1/auth/{*path}", axum::routing::any(verify::forward_auth_path))
        .routes(routes!(verify_tokens::create_verify_token, verify_tokens::list_verify_tokens))
        .routes(routes!(verify_tokens::revoke_verify_token))
        .routes(routes!(usage::key_usage))
        .routes(routes!(usage::workspace_usage))
        .routes(routes!(usage::list_alerts))
        .routes(routes!(usage::acknowledge_alert))
        .routes(routes!(usage::metrics))
        .routes(routes!(webhooks::create_webhook, webhooks::list_webhooks))
        .routes(routes!(webhooks::signing_key))
        .routes(routes!(webhooks::get_webhook, webhooks::update_webhook, webhooks::delete_webhook))
        .routes(routes!(webhooks::rotate_webhook_secret))
        .routes(routes!(webhooks::test_webhook))
        .routes(routes!(webhooks::list_deliveries))
        .routes(routes!(webhooks::retry_delivery))
        .routes(routes!(webhooks::list_callbacks))
        .routes(routes!(identities::create_identity, identities::list_identities))
        .routes(routes!(identities::get_identity, identities::update_identity, identities::delete_identity))
        .routes(routes!(ratelimit::limit))
        .routes(routes!(ratelimit::set_override, ratelimit::list_overrides))
        .routes(routes!(ratelimit::delete_override))
        .routes(routes!(operators::create_workspace, operators::list_workspaces))
        .routes(routes!(operators::get_workspace, operators::update_workspace, operators::delete_workspace))
        .routes(routes!(operators::suspend_workspace))
        .routes(routes!(operators::resume_workspace))
        .routes(routes!(operators::operator_log))
        .routes(routes!(apps::create_app, apps::list_apps))
        .routes(routes!(apps::get_app, apps::update_app, apps::delete_app))
        .routes(routes!(apps::rotate_app_key))
        .routes(routes!(apps::app_installations))
        .routes(routes!(apps::app_listing))
        .routes(routes!(apps::install, apps::list_installations))
        .routes(routes!(apps::get_installation, apps::uninstall))
        .routes(routes!(oauth::token))
        .routes(routes!(oauth::introspect))
        .routes(routes!(oauth::revoke))
        .routes(routes!(oauth::jwks))
        .routes(routes!(oauth::metadata))
        .routes(routes!(oauth::rotate_signing_key))
        .routes(routes!(system::healthz))
        .routes(routes!(system::openapi_json))
}

/// The OpenAPI document of [`api`], every operation listing the refusals any route can give.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api().into_openapi();
    add_common_refusals(&mut doc);
    name_each_method(&mut doc, "/v1/auth/{path}");
    doc
}

/// One handler documented for several methods shares one operation id, which generated
/// clients (the TypeScript SDK's types) refuse as a duplicate: each method gets its own.
fn name_each_method(doc: &mut utoipa::openapi::OpenApi, path: &str) {
    let Some(item) = doc.paths.paths.get_mut(path) else { return };
    let ops = [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("patch", &mut item.patch),
    ];
    for (method, op) in ops {
        if let Some(op) = op {
            if let Some(id) = &op.operation_id {
                op.operation_id = Some(format!("{id}_{method}"));
            }
        }
    }
}

/// Refusals that do not depend on the route (bad input, credentials, limits, outages) are
/// documented once here for every operation, in the one error shape.
fn add_common_refusals(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    const COMMON: [(&str, &str); 10] = [
        ("400", "malformed input; `field` names it"),
        ("401", "missing or invalid credentials"),
        ("403", "not allowed for this caller"),
        ("404", "no such resource"),
        ("409", "conflicts with the stored state"),
        ("413", "body too large"),
        ("408", "the request body stopped arriving"),
        ("429", "too many attempts; see Retry-After"),
        ("500", "internal error (no detail)"),
        ("503", "the database is unavailable or read-only"),
    ];
    for item in doc.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ];
        for op in ops.into_iter().flatten() {
            for (code, why) in COMMON {
                op.responses.responses.entry(code.to_string()).or_insert_with(|| {
                    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
                    RefOr::T(ResponseBuilder::new().description(why).content("application/json", content).build())
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// The SDKs' models are generated from `sdks/openapi.json`: it must be this server's
    /// document, or an SDK drifts from the server unnoticed.
    #[test]
    fn the_sdks_openapi_document_is_the_servers() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdks/openapi.json");
        let now = super::openapi().to_pretty_json().expect("the document serializes") + "\n";
        if std::env::var_os("KEYWARD_UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &now).expect("sdks/openapi.json is writable");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == now,
            "sdks/openapi.json is not the server's document: run `KEYWARD_UPDATE_OPENAPI=1 cargo test -p \
             keyward-server --lib openapi_document`, then regenerate the SDKs' models (sdks/README.md)"
        );
    }
}
