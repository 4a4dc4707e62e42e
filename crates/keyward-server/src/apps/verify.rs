//! An app's access token presented where a key would be (`POST /v1/keys/verify`,
//! forward-auth, the gateway, ext_authz): reached only for a credential that is not a
//! Keyward key and has a JWT's shape. Its signature is checked against the workspace's
//! signing key, then its standing read once from storage and kept by `jti`; every later
//! presentation of the same token costs a digest and a map lookup. The token then meets the
//! same decision as a key: revoked (uninstalled, its family or itself revoked, its app
//! deleted) → `REVOKED`, past `exp` → `EXPIRED`, permissions and scope checked against
//! what was granted.

use std::sync::Arc;

use keyward_core::oauth::token_record;
use keyward_core::verify::{decide, KeyContext, Requirements, VerifiableKey, VerifyCode};
use keyward_core::wire::apps::{AccessClaims, ACCESS_TOKEN_TYP};
use keyward_core::wire::jwt::{self, Jws};
use sha2::{Digest, Sha256};

use super::cache::{KnownKey, TokenDecision};
use super::signing::held_key;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::verify::{bounded, Verdict};

impl AppState {
    /// Verifies an app's access token (see the module's doc). `Err` only when storage is
    /// needed and cannot be reached.
    pub(crate) async fn verify_app_token(
        &self,
        token: &str,
        req: &Requirements<'_>,
        started: std::time::Instant,
    ) -> ApiResult<Verdict> {
        let d = match self.token_decision(token).await? {
            Ok(d) => d,
            // Not an access token at all: perhaps an imported key of that shape.
            Err(VerifyCode::Malformed) => return Box::pin(self.verify_unshaped(token, req, started)).await,
            Err(code) => return Ok(self.refused_token(req, code, started)),
        };
        let key = &d.key;
        if req.workspace.is_some_and(|w| **key.workspace_id() != *w) {
            return Ok(self.refused_token(req, VerifyCode::NotFound, started));
        }
        if req.environment.is_some_and(|e| **key.environment() != *e) {
            return Ok(self.refused_token(req, VerifyCode::WrongEnvironment, started));
        }
        // The organisation's standing now, not when the decision was cached: a suspended or
        // deleted workspace's tokens stop with its keys, on every node (`ws:` events).
        if let Some(code) = self.standings.of(key.workspace_id()).refusal() {
            return Ok(self.refused_token(req, code, started));
        }
        let code = decide(key, self.clock.now(), req);
        self.metrics.verified(code, started);
        Ok(Verdict { code, key: Some(key.clone()), spent: None, extra: Some(d.extra.clone()) })
    }

    /// A refusal that says nothing about the token, counted for the workspace verification
    /// is bound to (else server-wide), as for keys.
    fn refused_token(&self, req: &Requirements<'_>, code: VerifyCode, started: std::time::Instant) -> Verdict {
        self.usage.record_unknown(req.workspace, self.clock.now().timestamp_millis(), code);
        self.metrics.verified(code, started);
        Verdict::bare(code)
    }

    /// The decision about `token`: this node's, or made now from its signature and storage.
    async fn token_decision(&self, token: &str) -> ApiResult<Result<Arc<TokenDecision>, VerifyCode>> {
        let malformed = || Ok(Err(VerifyCode::Malformed));
        let Some(jws) = jwt::decode(token) else { return malformed() };
        if !jws.header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP)) {
            return malformed();
        }
        let Some(claims) = jws.claims::<AccessClaims>() else { return malformed() };
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(d) = self.app_tokens.get(&claims.jti) {
            if d.digest == digest {
                return Ok(Ok(d));
            }
        }
        Box::pin(self.decide_token(&jws, claims, digest)).await
    }

    /// The whole check of a token this node has no decision about.
    async fn decide_token(
        &self,
        jws: &Jws<'_>,
        claims: AccessClaims,
        digest: [u8; 32],
    ) -> ApiResult<Result<Arc<TokenDecision>, VerifyCode>> {
        let early = |c| Ok(Err(c));
        let generation = self.app_tokens.generation();
        let Some(kid) = jws.header.kid.as_deref().filter(|k| keyward_core::ids::is_id("tsk", k)) else {
            return early(VerifyCode::NotFound);
        };
        let Some(signer) = self.token_key(kid, generation).await? else { return early(VerifyCode::NotFound) };
        let (workspace, public) = &*signer;
        if !jws.verify(public) {
            return early(VerifyCode::InvalidSignature);
        }
        // Signed by one workspace's key for another: never made here.
        if **workspace != *claims.workspace_id || claims.aud != claims.workspace_id {
            return early(VerifyCode::NotFound);
        }
        if self.config.public_url.as_deref().is_some_and(|iss| iss.trim_end_matches('/') != claims.iss) {
            return early(VerifyCode::NotFound);
        }
        // Concurrent first uses of this very token share one decision (one storage read).
        let read = |generation| self.decide_from_storage(&claims, digest, generation);
        self.app_tokens.decisions.get(&digest, || generation, read).await
    }

    /// The decision about a validly signed token from its row: for every concurrent first
    /// use of it (`cache/inflight.rs`).
    async fn decide_from_storage(
        &self,
        claims: &AccessClaims,
        digest: [u8; 32],
        generation: u64,
    ) -> ApiResult<Result<Arc<TokenDecision>, VerifyCode>> {
        let early = |c| Ok(Err(c));
        // Decided between this request's miss and its taking the lead: no read.
        if let Some(d) = self.app_tokens.get(&claims.jti).filter(|d| d.digest == digest) {
            return Ok(Ok(d));
        }
        self.metrics.storage_read(crate::metrics::Lookup::SecretKey);
        let read = async { Ok(self.store.token_state(&claims.jti).await?) };
        let Some(state) = bounded(read).await? else {
            // Swept a day after it expired: it is ours (the signature says so), and expired.
            if claims.exp < self.clock.now().timestamp() {
                return early(VerifyCode::Expired);
            }
            return early(VerifyCode::NotFound);
        };
        if state.installation_id != claims.sub || state.app_id != claims.client_id {
            return early(VerifyCode::NotFound);
        }
        let record = token_record(claims, &state.app_name, &state.environment, state.revoked, state.created_at);
        let extra = format!(
            r#","kind":"app_token","app_id":{},"installation_id":{}"#,
            serde_json::to_string(&state.app_id).unwrap_or_default(),
            serde_json::to_string(&state.installation_id).unwrap_or_default()
        );
        let d = Arc::new(TokenDecision {
            digest,
            installation: state.installation_id.into(),
            family: state.family_id.into(),
            app: state.app_id.into(),
            key: Arc::new(VerifiableKey::new(record, KeyContext::default())),
            extra: extra.into(),
            exp: claims.exp,
        });
        self.app_tokens.fill(&claims.jti, d.clone(), generation, self.clock.now().timestamp());
        Ok(Ok(d))
    }

    /// The workspace and public key of signing key `kid`: this node's memory, else storage
    /// (a `kid` it does not know, only while the second's budget of such reads lasts).
    async fn token_key(&self, kid: &str, generation: u64) -> ApiResult<KnownKey> {
        if let Some(k) = self.app_tokens.key(kid) {
            return Ok(k);
        }
        let read = |generation| self.read_token_key(kid, generation);
        self.app_tokens.key_reads.get(&Box::from(kid), || generation, read).await
    }

    /// One read of signing key `kid`, for every concurrent miss of it: a key announced since
    /// the node read them all, or else while the second's budget of such reads lasts.
    async fn read_token_key(&self, kid: &str, generation: u64) -> ApiResult<KnownKey> {
        // Filled between this request's miss and its taking the lead: no read.
        if let Some(k) = self.app_tokens.key(kid) {
            return Ok(k);
        }
        if !self.app_tokens.announced(kid) && !self.app_tokens.may_look_up(self.clock.now().timestamp_millis()) {
            return Ok(None);
        }
        let read = async { Ok(self.store.signing_key_by_kid(kid).await?) };
        let found = bounded(read).await?.and_then(|row| held_key(row.workspace_id, &row.public_key));
        self.app_tokens.fill_key(kid, found.clone(), generation);
        Ok(found)
    }
}
