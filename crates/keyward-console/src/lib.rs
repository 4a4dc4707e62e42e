//! The web console: server-rendered pages at `/console`, a person's way to do what the CLI
//! and the API do. It holds no logic of its own: every page is one or more calls to the
//! management API, made in-process through the API's router with the member's session
//! token, so what a role may do is decided by the same code as for every other caller.

mod assets;
mod backend;
mod chart;
mod cookies;
mod error;
mod form;
mod pages;
mod session;
mod sso;
mod view;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

pub use backend::Secrets;
pub use sso::{Browser, Sso, SsoFuture, SsoProof, SsoStart};

/// What every console handler shares.
#[derive(Clone)]
pub struct Console {
    /// The management API (without the console), called in-process.
    api: Router,
    secrets: Arc<dyn Secrets>,
    /// Single sign-on, when the server has a provider configured.
    sso: Option<Arc<dyn Sso>>,
    /// Cookies carry `Secure` when the server speaks TLS.
    secure: bool,
}

/// The console's routes, to be nested at `/console`. `api` answers the management API;
/// `sso`, when given, offers single sign-on on the login page.
pub fn router(api: Router, secrets: Arc<dyn Secrets>, sso: Option<Arc<dyn Sso>>, secure: bool) -> Router {
    use pages::{
        account, approvals, apps, audit, environment, identities, key_detail, keys, management_keys, members, policies,
        roles, service_accounts, sso, usage, verify_tokens, webhooks,
    };
    let console = Console { api, secrets, sso, secure };
    Router::new()
        .route("/", get(pages::home))
        .route("/assets/console.css", get(assets::css))
        .route("/assets/console.js", get(assets::js))
        .route("/login", get(account::login_page).post(account::login))
        .route("/oidc/start", get(sso::start))
        .route("/oidc/callback", get(sso::callback))
        .route("/oidc/continue", post(sso::resume))
        .route("/logout", post(account::logout))
        .route("/logout-everywhere", post(account::logout_everywhere))
        .route("/setup", get(account::setup_page).post(account::setup))
        .route("/account", get(account::page))
        .route("/account/password", post(account::password))
        .route("/account/mfa", post(account::mfa_start))
        .route("/account/mfa/confirm", post(account::mfa_confirm))
        .route("/reveal", get(pages::reveal))
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/new", get(keys::new_secret))
        .route("/keys/register", get(keys::new_public))
        .route("/keys/{id}", get(key_detail::detail).post(key_detail::update))
        .route("/keys/{id}/rotate", post(key_detail::rotate))
        .route("/keys/{id}/enabled", post(key_detail::set_enabled))
        .route("/keys/{id}/revoke", get(key_detail::revoke_page).post(key_detail::revoke))
        .route("/environment", post(environment::switch))
        .route("/identities", get(identities::list))
        .route("/roles", get(roles::list).post(roles::create))
        .route("/roles/{name}", get(roles::edit_page).post(roles::update))
        .route("/roles/{name}/delete", post(roles::delete))
        .route("/service-accounts", get(service_accounts::list).post(service_accounts::create))
        .route("/service-accounts/{id}/enabled", post(service_accounts::set_enabled))
        .route("/management-keys", get(management_keys::list).post(management_keys::create))
        .route("/management-keys/{id}/revoke", post(management_keys::revoke))
        .route("/verify-tokens", get(verify_tokens::list).post(verify_tokens::create))
        .route("/verify-tokens/{id}/revoke", post(verify_tokens::revoke))
        .route("/apps", get(apps::list).post(apps::create))
        .route("/apps/{id}/keys", post(apps::rotate_key))
        .route("/apps/{id}/delete", post(apps::delete))
        .route("/installed-apps", get(apps::installed).post(apps::install))
        .route("/installed-apps/consent", get(apps::consent))
        .route("/installed-apps/{id}/uninstall", post(apps::uninstall))
        .route("/approvals", get(approvals::list))
        .route("/approvals/{id}/{decision}", post(approvals::decide))
        .route("/members", get(members::list).post(members::invite))
        .route("/members/{id}/role", post(members::change_role))
        .route("/members/{id}/remove", post(members::remove))
        .route("/policies", get(policies::page).post(policies::save))
        .route("/audit", get(audit::list))
        .route("/audit/export", get(audit::export))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/webhooks/{id}", get(webhooks::detail))
        .route("/webhooks/{id}/{action}", post(webhooks::act))
        .route("/webhooks/{id}/deliveries/{delivery}/retry", post(webhooks::retry))
        .route("/usage", get(usage::page))
        .route("/alerts/{id}/acknowledge", post(usage::acknowledge))
        .fallback(pages::not_found)
        .layer(axum::middleware::map_response(assets::secure_headers))
        .with_state(console)
}
