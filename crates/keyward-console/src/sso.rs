//! Single sign-on as the console sees it: three steps the server takes (it holds the
//! provider, the keys that seal what the browser carries, the members), given through the
//! [`Sso`] trait when `--oidc-issuer` is set. The console keeps what the server sealed in
//! short-lived cookies and draws the pages (`pages/sso.rs`). A refusal comes back as the
//! API would answer it, so it reads like every other refusal in the console.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use axum::http::HeaderMap;
use axum::response::Response;

/// A step's answer: its result, or the API-shaped refusal (status and error body).
pub type SsoFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Response>> + Send + 'a>>;

/// Where the browser goes to sign in, and the sealed flow (state, nonce, PKCE verifier) it
/// keeps in a cookie until it comes back.
pub struct SsoStart {
    pub url: String,
    pub flow: String,
}

/// The provider verified an email: the sealed proof the browser keeps for the second step.
pub struct SsoProof {
    pub proof: String,
    pub email: String,
}

/// The browser's request, for the audit trail and the login throttle.
pub struct Browser<'a> {
    pub peer: Option<SocketAddr>,
    pub headers: &'a HeaderMap,
}

pub trait Sso: Send + Sync {
    /// A new flow (the provider's metadata is fetched on first use).
    fn start(&self) -> SsoFuture<'_, SsoStart>;
    /// The provider sent the browser back with `state` and `code`: both checked against
    /// the sealed `flow`, the code exchanged, the ID token checked.
    fn finish<'a>(&'a self, flow: &'a str, state: &'a str, code: &'a str) -> SsoFuture<'a, SsoProof>;
    /// The email a sealed proof holds, while it is good.
    fn proven(&self, proof: &str) -> Option<String>;
    /// Signs in the member the proof names (`workspace_id` when the email is in several,
    /// `otp` when the member has MFA): the session token.
    fn sign_in<'a>(
        &'a self,
        proof: &'a str,
        workspace_id: Option<&'a str>,
        otp: Option<&'a str>,
        browser: Browser<'a>,
    ) -> SsoFuture<'a, String>;
}
