//! The OpenID provider as this server sees it: its metadata and signing keys, discovered
//! from the issuer on first use and kept an hour (fetched again at once, at most once a
//! minute, when an ID token names a key not held: the provider rotated its keys); the
//! authorization URL of a new flow (code flow, PKCE S256, scopes `openid email`); and the
//! way back — the code exchanged with `client_secret_basic`, the ID token checked
//! (signature with the provider's keys, issuer, audience, expiry, nonce), the email and
//! `email_verified` read from it or, where the provider keeps them out of ID tokens as the
//! specification allows, from its UserInfo endpoint for the same subject.
//!
//! A provider that cannot be reached is a 502 naming it, never held against the password
//! sign-in; a failed discovery is not kept, so the next attempt tries again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward_core::{Clock, Random};
use openidconnect::core::{
    CoreClient, CoreIdTokenClaims, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreResponseType, CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AuthenticationFlow, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, SignatureVerificationError, TokenResponse,
};

use super::flow::Flow;
use crate::config::{OidcConfig, OIDC_CALLBACK};
use crate::error::{ApiError, ApiResult};

/// How long discovered metadata and keys are used before they are fetched again.
const FRESH_FOR: Duration = Duration::from_secs(3600);
/// The least time between two fetches asked for by an unknown signing key.
const REFETCH_EVERY: Duration = Duration::from_secs(60);
/// How long the provider has to answer one request.
const TIMEOUT: Duration = Duration::from_secs(10);

type Client =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// What discovery found.
struct Held {
    client: Arc<Client>,
    /// The algorithms the provider signs ID tokens with, `none` left out.
    algs: Vec<CoreJwsSigningAlgorithm>,
    fetched: Instant,
}

pub struct Provider {
    issuer: String,
    client_id: ClientId,
    client_secret: ClientSecret,
    redirect: RedirectUrl,
    http: reqwest::Client,
    // A tokio mutex: a burst of sign-ins waits for the one discovery in progress.
    held: tokio::sync::Mutex<Option<Arc<Held>>>,
}

/// The provider's answer could not be had: a 502 that names it (the detail goes to the log).
fn unreachable(issuer: &str, what: &str, detail: impl std::fmt::Display) -> ApiError {
    tracing::warn!(issuer, error = %detail, "single sign-on: {what}");
    ApiError::BadGateway(format!(
        "single sign-on is unavailable: the provider at {issuer} could not be reached or answered wrongly ({what}); \
         sign in with your password, or try again later"
    ))
}

/// The sign-in was refused by the provider or failed a check: a 403 (detail in the log).
fn refused(message: impl Into<String>, detail: impl std::fmt::Display) -> ApiError {
    let message = message.into();
    tracing::warn!(error = %detail, "single sign-on refused: {message}");
    ApiError::Forbidden(message)
}

impl Provider {
    /// The provider of `config`, whose redirect URI is `public_url` + [`OIDC_CALLBACK`].
    /// Nothing is fetched yet.
    pub fn new(config: &OidcConfig, public_url: &str) -> std::io::Result<Provider> {
        let redirect = RedirectUrl::new(format!("{public_url}{OIDC_CALLBACK}")).map_err(std::io::Error::other)?;
        // Redirects are not followed (a provider's answer never needs one, and following
        // them would let a bad answer point the client secret elsewhere).
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .user_agent(concat!("Keyward/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Provider {
            issuer: config.issuer.clone(),
            client_id: ClientId::new(config.client_id.clone()),
            client_secret: ClientSecret::new(config.client_secret.expose().to_string()),
            redirect,
            http,
            held: tokio::sync::Mutex::new(None),
        })
    }

    /// The provider's metadata and keys: the ones held while fresh, else discovered. With
    /// `refetch` (a key not held), fetched again unless that was done within a minute. When
    /// a fetch fails, metadata held before is used still.
    async fn held(&self, refetch: bool) -> ApiResult<Arc<Held>> {
        let mut held = self.held.lock().await;
        if let Some(h) = held.as_ref() {
            let age = h.fetched.elapsed();
            if age < FRESH_FOR && !(refetch && age >= REFETCH_EVERY) {
                return Ok(h.clone());
            }
        }
        match self.discover().await {
            Ok(h) => {
                let h = Arc::new(h);
                *held = Some(h.clone());
                Ok(h)
            }
            Err(e) => match held.as_ref() {
                Some(stale) => Ok(stale.clone()),
                None => Err(e),
            },
        }
    }

    async fn discover(&self) -> ApiResult<Held> {
        let issuer = IssuerUrl::new(self.issuer.clone()).map_err(|e| unreachable(&self.issuer, "issuer URL", e))?;
        let meta = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| unreachable(&self.issuer, "discovery", e))?;
        let algs = meta
            .id_token_signing_alg_values_supported()
            .iter()
            .filter(|a| **a != CoreJwsSigningAlgorithm::None)
            .cloned()
            .collect();
        let client = CoreClient::from_provider_metadata(meta, self.client_id.clone(), Some(self.client_secret.clone()))
            .set_redirect_uri(self.redirect.clone());
        tracing::info!(issuer = %self.issuer, "single sign-on: provider metadata and keys fetched");
        Ok(Held { client: Arc::new(client), algs, fetched: Instant::now() })
    }

    /// A new flow and the provider's authorization URL for it.
    pub async fn start(&self, random: &dyn Random, clock: &dyn Clock) -> ApiResult<(String, Flow)> {
        let held = self.held(false).await?;
        let flow = Flow::new(random, clock.now());
        let (state, nonce) = (flow.state.clone(), flow.nonce.clone());
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(flow.verifier.clone()));
        let (url, _, _) = held
            .client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge)
            .url();
        Ok((url.to_string(), flow))
    }

    /// The email the provider verified for the person back with `code` from `flow` (whose
    /// `state` the caller has matched already).
    pub async fn finish(&self, flow: &Flow, code: &str, clock: Arc<dyn Clock>) -> ApiResult<String> {
        let held = self.held(false).await?;
        let request = held
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| unreachable(&self.issuer, "no token endpoint", e))?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier.clone()));
        let token = request.request_async(&self.http).await.map_err(|e| match e {
            RequestTokenError::ServerResponse(r) => {
                refused(format!("the sign-in provider refused the sign-in ({}); start again", r.error().as_ref()), r)
            }
            other => unreachable(&self.issuer, "token request", other),
        })?;
        let id_token =
            token.id_token().ok_or_else(|| unreachable(&self.issuer, "no ID token", "the token answer has none"))?;
        let nonce = Nonce::new(flow.nonce.clone());
        let check = |held: &Held| -> Result<CoreIdTokenClaims, ClaimsVerificationError> {
            let clock = clock.clone();
            let verifier =
                held.client.id_token_verifier().set_allowed_algs(held.algs.clone()).set_time_fn(move || clock.now());
            id_token.claims(&verifier, &nonce).cloned()
        };
        let claims = match check(&held) {
            // A key not held: the provider may have rotated its keys since they were fetched.
            Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey)) => {
                check(&*self.held(true).await?)
            }
            other => other,
        }
        .map_err(|e| refused("the sign-in provider's ID token was not accepted; start again", e))?;
        let (email, verified) = match claims.email() {
            Some(email) => (email.to_string(), claims.email_verified()),
            None => self.user_info(&held, token.access_token(), &claims).await?,
        };
        if verified != Some(true) {
            return Err(refused(
                format!("the sign-in provider has not verified the email {email}; verify it there first"),
                "email_verified is not true",
            ));
        }
        Ok(email)
    }

    /// The email and its `email_verified` from the UserInfo endpoint, for the ID token's
    /// subject.
    async fn user_info(
        &self,
        held: &Held,
        access: &AccessToken,
        claims: &CoreIdTokenClaims,
    ) -> ApiResult<(String, Option<bool>)> {
        let request = held.client.user_info(access.clone(), Some(claims.subject().clone())).map_err(|_| {
            refused("the sign-in provider gave no email for this account", "no email claim, no UserInfo")
        })?;
        let info: CoreUserInfoClaims =
            request.request_async(&self.http).await.map_err(|e| unreachable(&self.issuer, "UserInfo", e))?;
        let email = info
            .email()
            .map(|e| e.to_string())
            .ok_or_else(|| refused("the sign-in provider gave no email for this account", "no email claim"))?;
        Ok((email, info.email_verified()))
    }
}
