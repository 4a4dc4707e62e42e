//! Verification: the hot path (here), credentials (`credential`), the request and its
//! answer (`request`, `key`), forward-auth's decision for proxies (`forward`), key hashes and the sets of those that exist, replay memory.
//!
//! The verify hot path is shared by `POST /v1/keys/verify`, `GET /v1/auth` and the gateway.
//! It reads the cache first, storage only on a miss, and never writes: usage goes to an
//! in-memory buffer.

use std::net::IpAddr;
use std::sync::Arc;

use keyward_core::keyformat::{self, TokenKind};
use keyward_core::signing::SignedParts;
use keyward_core::standing::Standing;
use keyward_core::verify::{decide, Requirements, VerifiableKey, VerifyCode};
use keyward_core::wire::verify::VerifyResponse;

pub mod credential;
pub(crate) mod forward;
mod imported;
pub(crate) mod key;
pub(crate) mod keyhash;
pub(crate) mod known;
pub mod replay;
pub(crate) mod request;

use crate::cache::{Entry, KeyHash};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use keyward_core::pepper::hex_encode;
use known::Gate;

/// The outcome of a verification: the code, and the key when one was found.
pub struct Verdict {
    pub code: VerifyCode,
    pub key: Option<Arc<VerifiableKey>>,
    /// What the key's limits and credits said (keys that have them).
    pub spent: Option<Box<crate::limits::local::Spent>>,
    /// More of the answer (`,"kind":"app_token",…` for an app's access token).
    pub extra: Option<Arc<str>>,
}

/// A signed request's key, found and in scope, waiting for its signature to be checked.
pub struct SignedKey {
    pk: String,
    key: Arc<VerifiableKey>,
    now: chrono::DateTime<chrono::Utc>,
    started: std::time::Instant,
}

impl Verdict {
    pub(crate) fn bare(code: VerifyCode) -> Self {
        Verdict { code, key: None, spent: None, extra: None }
    }

    /// `RateLimit-Policy` and `RateLimit` (and `Retry-After` when refused) for the surfaces
    /// that answer by status.
    pub(crate) fn limit_headers(&self) -> Vec<(&'static str, axum::http::HeaderValue)> {
        match (&self.spent, self.key.as_ref().and_then(|k| k.limits.as_ref())) {
            (Some(s), Some(l)) => s.headers(l),
            _ => Vec::new(),
        }
    }

    pub fn valid(&self) -> bool {
        self.code == VerifyCode::Valid
    }

    /// The verified key, or the refusal (401/403 with the code) for the surfaces that refuse
    /// by status: forward-auth and the gateway.
    pub(crate) fn accepted(&self) -> ApiResult<&Arc<VerifiableKey>> {
        match &self.key {
            Some(k) if self.valid() => Ok(k),
            _ if self.code.is_limit() => Err(ApiError::Limited {
                code: self.code,
                message: match self.code {
                    VerifyCode::RateLimited => "API key's rate limit reached; see Retry-After".into(),
                    _ => "API key's credits are spent".into(),
                },
                headers: self.limit_headers(),
            }),
            _ => Err(refused(self.code)),
        }
    }

    /// The answer's JSON; for a found key, spliced from its cached serialization.
    pub fn to_json(&self) -> String {
        match (&self.key, &self.spent, &self.extra) {
            (Some(k), _, Some(e)) => k.answer_json_with(self.code, e),
            (Some(k), Some(s), None) => k.answer_json_with(self.code, &s.json()),
            (Some(k), None, None) => k.answer_json(self.code),
            (None, _, _) => serde_json::to_string(&VerifyResponse::bare(self.code)).unwrap_or_default(),
        }
    }
}

impl AppState {
    /// Verifies a secret key. `Err` only when the key is unknown to this node's cache and
    /// storage cannot be reached.
    pub async fn verify_secret(&self, token: &str, req: &Requirements<'_>) -> ApiResult<Verdict> {
        let started = std::time::Instant::now();
        // The checksum rejects typos and made-up keys before any lookup; only an imported
        // key may have another shape, and the sets in memory say whether one can (cold path).
        match keyformat::parse(token) {
            Some(p) if p.kind == TokenKind::Secret => {}
            // An app's access token: never a key's shape, so keys pay nothing for it.
            _ if keyward_core::wire::jwt::looks_like(token) => {
                return Box::pin(self.verify_app_token(token, req, started)).await
            }
            _ => return Box::pin(self.verify_unshaped(token, req, started)).await,
        }
        let hash = self.pepper.hash_bytes(token);
        self.verify_hashed(token, hash, VerifyCode::NotFound, req, started).await
    }

    /// A secret key by its HMAC `hash`: the cache, storage on a miss, then (when no key has
    /// the HMAC) an imported key by the secret's plain hash. `missing` answers a key not found.
    async fn verify_hashed(
        &self,
        token: &str,
        hash: KeyHash,
        missing: VerifyCode,
        req: &Requirements<'_>,
        started: std::time::Instant,
    ) -> ApiResult<Verdict> {
        let cached = self.cache.get(&hash);
        self.metrics.cache(cached.is_some());
        let entry = match cached {
            Some(e) => e,
            // A hash no key has: looked up only while the second's budget lasts.
            // Boxed, like every storage read below: the hit path's future stays small.
            None => match self.may_read(&self.cache.known, known::prefix(&hash)).await? {
                true => Box::pin(self.load(hash)).await?,
                false => Entry::Missing,
            },
        };
        let key = match entry {
            // The cache and the store are keyed by this hash, so a found entry is this key.
            Entry::Found(k) if found(&k, req) => k,
            Entry::Found(_) => return Ok(self.unknown(req, missing, started)),
            // No key has this HMAC: perhaps an imported key not used yet (cold: `imported.rs`).
            Entry::Missing => match Box::pin(self.find_imported(token, hash)).await? {
                Some(k) if found(&k, req) => k,
                _ => return Ok(self.unknown(req, missing, started)),
            },
        };
        let now = self.clock.now();
        // A key of another environment goes no further (a test key must not pass where live
        // ones are expected): its holder learns only that.
        let code = if in_environment(&key, req) { decide(&key, now, req) } else { VerifyCode::WrongEnvironment };
        self.counted(key, code, now, req, started).await
    }

    /// Verifies a signed request: the key registered for `public_key`, the nonce's freshness,
    /// the signature over `parts`, then the same checks as a secret key. `Err` only when the
    /// key is unknown to this node and storage cannot be reached.
    pub async fn verify_signed(
        &self,
        parts: &SignedParts<'_>,
        public_key: &str,
        signature: &str,
        req: &Requirements<'_>,
    ) -> ApiResult<Verdict> {
        match self.signed_key(public_key, parts.nonce, parts.params, req).await? {
            Ok(found) => Ok(self.signed_check(found, parts, signature, req).await),
            Err(refused) => Ok(refused),
        }
    }

    /// A signed request's check up to what needs no body: the headers' shape, the nonce's
    /// window, the key (another workspace's or environment's refused here). The gateway
    /// reads a body only for a request that gets past this.
    pub async fn signed_key(
        &self,
        public_key: &str,
        nonce: &str,
        params: &str,
        req: &Requirements<'_>,
    ) -> ApiResult<Result<SignedKey, Verdict>> {
        let started = std::time::Instant::now();
        let pk = public_key.trim().to_ascii_lowercase();
        let well_formed = matches!(pk.len(), 64 | 66) && pk.bytes().all(|b| b.is_ascii_hexdigit());
        let Some(nonce_ms) = nonce.trim().parse::<i64>().ok().filter(|_| well_formed) else {
            return Ok(Err(self.unknown(req, VerifyCode::Malformed, started)));
        };
        // `|` separates the signed fields: one raw in the query could move bytes between the
        // query and the body without changing the string signed. Clients send it as %7C.
        if params.contains('|') {
            return Ok(Err(self.unknown(req, VerifyCode::Malformed, started)));
        }
        let now = self.clock.now();
        let window = i64::try_from(self.config.signature_window.as_millis()).unwrap_or(i64::MAX);
        if now.timestamp_millis().abs_diff(nonce_ms) > window.unsigned_abs() {
            return Ok(Err(self.unknown(req, VerifyCode::NonceExpired, started)));
        }
        let cached = self.cache.get_public(&pk);
        self.metrics.cache(cached.is_some());
        let entry = match cached {
            Some(e) => e,
            // A public key none is registered under: looked up only while the second's
            // budget lasts, as for secret keys.
            None => {
                if self.may_read(&self.cache.known_public, self.cache.public_id(&pk)).await? {
                    Box::pin(self.load_public(pk.clone())).await?
                } else {
                    Entry::Missing
                }
            }
        };
        // Another workspace's key is not found, before its signature is looked at.
        let key = match entry {
            Entry::Found(k) if found(&k, req) => k,
            _ => return Ok(Err(self.unknown(req, VerifyCode::NotFound, started))),
        };
        // Then another environment's, also before the signature: the answer is bare, since
        // nothing proves the caller holds the key.
        if !in_environment(&key, req) {
            self.count(&key, VerifyCode::WrongEnvironment, now, req, started);
            return Ok(Err(Verdict::bare(VerifyCode::WrongEnvironment)));
        }
        Ok(Ok(SignedKey { pk, key, now, started }))
    }

    /// The rest of a signed request's check, over the whole request: signature, replay,
    /// then the same decision as for secret keys.
    pub async fn signed_check(
        &self,
        found: SignedKey,
        parts: &SignedParts<'_>,
        signature: &str,
        req: &Requirements<'_>,
    ) -> Verdict {
        let SignedKey { pk, key, now, started } = found;
        if !key.public_key().is_some_and(|k| k.verify(&parts.digest(), signature.trim())) {
            self.count(&key, VerifyCode::InvalidSignature, now, req, started);
            return Verdict::bare(VerifyCode::InvalidSignature);
        }
        if !self.first_use(&pk, parts.nonce, signature.trim()).await {
            self.count(&key, VerifyCode::Replayed, now, req, started);
            return Verdict::bare(VerifyCode::Replayed);
        }
        let code = decide(&key, now, req);
        // A signed request names no limits, so its plan cannot be refused.
        self.counted(key, code, now, req, started).await.unwrap_or_else(|_| Verdict::bare(VerifyCode::Malformed))
    }

    /// Is this signed request new to every node (with Redis) or to this one?
    async fn first_use(&self, public_key: &str, nonce: &str, signature: &str) -> bool {
        if let Some(shared) = &self.shared {
            let digest = crate::verify::replay::digest(public_key, nonce, signature);
            if let Some(first) = Box::pin(shared.first_use(&digest, self.config.signature_window)).await {
                return first;
            }
        }
        self.replays.first_use(public_key, nonce, signature)
    }

    /// A refusal before any key was known, counted for the workspace verification is bound
    /// to (else server-wide).
    fn unknown(&self, req: &Requirements<'_>, code: VerifyCode, started: std::time::Instant) -> Verdict {
        self.usage.record_unknown(req.workspace, self.clock.now().timestamp_millis(), code);
        self.metrics.verified(code, started);
        Verdict::bare(code)
    }

    /// The decision about a found key, after its limits and credits (a valid key only),
    /// counted for it. `Err` only for a request naming a limit neither the key nor its
    /// identity has (400 naming `ratelimits[i].name`).
    async fn counted(
        &self,
        key: Arc<VerifiableKey>,
        code: VerifyCode,
        now: chrono::DateTime<chrono::Utc>,
        req: &Requirements<'_>,
        started: std::time::Instant,
    ) -> ApiResult<Verdict> {
        let spent = if code == VerifyCode::Valid && (key.limits.is_some() || !req.ratelimits.is_empty()) {
            let limits = key.limits.as_deref().unwrap_or(&NO_LIMITS);
            let (cost, credit_cost) = costs(req);
            let (mut plan, list) = planned(&key, limits, req, cost)?;
            // Without Redis the step is synchronous: no future to box on the hit path.
            Some(Box::new(match &self.shared {
                Some(_) => Box::pin(self.spend_shared(&key, limits, &mut plan, now, credit_cost, list)).await,
                None => self.limits.check(&key.id(), limits, &mut plan, now, credit_cost, list),
            }))
        } else {
            None
        };
        let code = spent.as_ref().and_then(|s| s.refused).unwrap_or(code);
        self.count(&key, code, now, req, started);
        Ok(Verdict { code, key: Some(key), spent, extra: None })
    }

    /// Spends the planned limits and the key's and its identity's credits in one Redis
    /// script run, or (fast limits only) the limits from this node's leases and the credits,
    /// if any, in a run of their own.
    async fn spend_shared(
        &self,
        key: &VerifiableKey,
        limits: &keyward_core::verify::Limits,
        plan: &mut [keyward_core::limit_plan::Planned<'_>],
        now: chrono::DateTime<chrono::Utc>,
        cost: u32,
        list: bool,
    ) -> crate::limits::local::Spent {
        let Some(shared) = &self.shared else {
            return self.limits.check(&key.id(), limits, plan, now, cost, list);
        };
        // Fast limits from this node's leases: most checks never reach Redis for them.
        let leased = match crate::limits::lease::Leases::applies(plan) {
            true => self.leases.check(shared, &key.id(), limits, plan, now, list).await,
            false => None,
        };
        let credited = limits.credits.is_some() || limits.identity_credits().is_some();
        match leased {
            Some(spent) if !credited || spent.refused.is_some() => return spent,
            _ => {}
        }
        self.leases.exact_runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Credits Redis does not have start from the database's last written counts.
        let stored = || async {
            let read = async {
                let k = self.store.get_key(key.workspace_id(), &key.id()).await?.and_then(|r| r.credits);
                let i = match limits.identity.as_deref() {
                    Some(i) if i.limits.credits.is_some() => {
                        self.store.identity_by_id(&i.id).await?.and_then(|r| r.credits)
                    }
                    _ => None,
                };
                Ok((k, i))
            };
            bounded(read).await.ok()
        };
        match leased {
            // The limits allowed from leases; the credits stay exact: one run for them alone
            // (spent only now that every limit allowed, as in one run for both).
            Some(limited) => {
                let credits = shared.check(&key.id(), limits, &mut [], now, cost, false, stored).await;
                crate::limits::local::Spent { ratelimit: limited.ratelimit, ratelimits: limited.ratelimits, ..credits }
            }
            None => shared.check(&key.id(), limits, plan, now, cost, list, stored).await,
        }
    }

    /// Counts a verification of a found key: its usage slot and the metrics.
    fn count(
        &self,
        key: &VerifiableKey,
        code: VerifyCode,
        now: chrono::DateTime<chrono::Utc>,
        req: &Requirements<'_>,
        started: std::time::Instant,
    ) {
        self.usage.record(&key.id(), key.workspace_id(), now.timestamp_millis(), code, req.ip);
        if !req.tags.is_empty() {
            self.usage.record_tags(&key.id(), key.workspace_id(), now.timestamp_millis(), code, req.tags);
        }
        self.metrics.verified(code, started);
    }

    /// May a credential the cache does not hold (`id` in `set`) be read from storage
    /// (`known.rs`)? Decided at once unless the set is loading and the budget is spent; then
    /// it waits for the load (boxed: a flood of refused ones allocates nothing).
    pub(crate) async fn may_read(&self, set: &known::KnownHashes, id: u64) -> ApiResult<bool> {
        match set.gate(id, self.clock.now().timestamp_millis()) {
            Gate::Read => Ok(true),
            Gate::Refuse => Ok(false),
            Gate::Wait => Box::pin(self.after_loading(set, id)).await,
        }
    }

    /// After [`Gate::Wait`]: may the credential `id` be read, by `set` once loaded? 503 when
    /// it is still loading after [`known::LOADING_WAIT`] (storage cannot say yet).
    async fn after_loading(&self, set: &known::KnownHashes, id: u64) -> ApiResult<bool> {
        set.after_loading(id, || self.clock.now().timestamp_millis()).await.ok_or_else(|| {
            tracing::debug!("the set of existing credentials is still loading; answering 503");
            ApiError::Unavailable
        })
    }

    /// A public key the cache does not hold, read once for every concurrent miss of it
    /// (`cache/inflight.rs`).
    async fn load_public(&self, public_key: String) -> ApiResult<Entry> {
        let reads = &self.cache.public_reads;
        reads
            .get(&public_key, || self.cache.epoch_public(&public_key), |epoch| self.read_public(&public_key, epoch))
            .await
    }

    async fn read_public(&self, public_key: &str, epoch: crate::cache::Epoch) -> ApiResult<Entry> {
        // Filled between this request's miss and its taking the lead: no read.
        if let Some(e) = self.cache.get_public(public_key) {
            return Ok(e);
        }
        self.metrics.storage_read(crate::metrics::Lookup::PublicKey);
        let read = async {
            Ok(match self.store.key_by_public_key(public_key).await? {
                Some(rec) => Entry::Found(Arc::new(self.verifiable(rec).await?)),
                None => Entry::Missing,
            })
        };
        let entry = bounded(read).await?;
        self.cache.fill_public(public_key.to_string(), entry.clone(), epoch);
        Ok(entry)
    }

    /// A secret key the cache does not hold, read once for every concurrent miss of it
    /// (`cache/inflight.rs`).
    async fn load(&self, hash: KeyHash) -> ApiResult<Entry> {
        self.cache.secret_reads.get(&hash, || self.cache.epoch(&hash), |epoch| self.read_key(hash, epoch)).await
    }

    async fn read_key(&self, hash: KeyHash, epoch: crate::cache::Epoch) -> ApiResult<Entry> {
        // Filled between this request's miss and its taking the lead: no read.
        if let Some(e) = self.cache.get(&hash) {
            return Ok(e);
        }
        self.metrics.storage_read(crate::metrics::Lookup::SecretKey);
        let read = async {
            Ok(match self.store.key_by_hash(&hex_encode(&hash)).await? {
                Some(rec) => Entry::Found(Arc::new(self.verifiable(rec).await?)),
                None => Entry::Missing,
            })
        };
        let entry = bounded(read).await?;
        self.cache.fill(hash, entry.clone(), epoch);
        Ok(entry)
    }
}

impl AppState {
    /// A stored key as the cache keeps it: its roles' permissions and its owner read with it
    /// (no extra read for a key without roles or owner), and its workspace's standing on
    /// this node (read last: a standing change after it bumps the fill's epoch).
    pub(crate) async fn verifiable(&self, rec: keyward_core::model::KeyRecord) -> ApiResult<VerifiableKey> {
        let ctx = self.store.key_context(&rec).await?;
        let mut key = VerifiableKey::new(rec, ctx);
        key.standing = self.standings.of(key.workspace_id());
        Ok(key)
    }
}

/// How long a verification waits for storage on a cache miss. A connection that went silent
/// (a network that dropped packets) would otherwise hold the request forever; after this the
/// answer is 503 and the read is abandoned (its connection closed, not reused).
pub(crate) const STORAGE_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// `read`, or 503 when storage does not answer within [`STORAGE_READ_TIMEOUT`].
pub(crate) async fn bounded<T>(read: impl std::future::Future<Output = ApiResult<T>>) -> ApiResult<T> {
    match tokio::time::timeout(STORAGE_READ_TIMEOUT, read).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!("storage did not answer a verification's read in time; answering 503");
            Err(ApiError::Unavailable)
        }
    }
}

/// The limits of a key that has none (a request may still make one: `ratelimits[i]` with
/// `limit` and `duration`).
static NO_LIMITS: std::sync::LazyLock<keyward_core::verify::Limits> =
    std::sync::LazyLock::new(|| keyward_core::verify::Limits::new(Vec::new(), None));

/// The limits a verification checks ([`keyward_core::limit_plan`]), and whether its answer
/// lists them: when the request named limits, or the key's identity has limits.
fn planned<'a>(
    key: &VerifiableKey,
    limits: &'a keyward_core::verify::Limits,
    req: &Requirements<'_>,
    cost: u32,
) -> ApiResult<(Vec<keyward_core::limit_plan::Planned<'a>>, bool)> {
    let plan = keyward_core::limit_plan::plan(&limits.ratelimits, limits.identity_limits(), req.ratelimits, cost)
        .map_err(|i| {
            let name = req.ratelimits.get(i).map_or("", |n| &*n.name);
            let whose = if key.identity().is_some() { "nor has its identity" } else { "and it has no identity" };
            ApiError::invalid(
                format!("ratelimits[{i}].name"),
                format!("the key has no limit named {name:?}, {whose}; give limit and duration to make one"),
            )
        })?;
    Ok((plan, req.list_limits || !req.ratelimits.is_empty() || !limits.identity_limits().is_empty()))
}

/// What the auto-applied limits spend (`cost`, default 1) and what the credits spend
/// (`credit_cost`, default `cost`).
fn costs(req: &Requirements<'_>) -> (u32, u32) {
    let cost = req.cost.unwrap_or(1);
    (cost, req.credit_cost.unwrap_or(cost))
}

/// Is `key` there for this caller: inside the workspace the caller bound verification to
/// (if any), and of a workspace not deleted (whose keys are as good as gone: not found,
/// and counted as unknown, not as the key's)?
fn found(key: &VerifiableKey, req: &Requirements<'_>) -> bool {
    req.workspace.is_none_or(|w| **key.workspace_id() == *w) && key.standing != Standing::Deleted
}

/// Is `key` of the environment the caller bound verification to (if any)?
fn in_environment(key: &VerifiableKey, req: &Requirements<'_>) -> bool {
    req.environment.is_none_or(|e| **key.environment() == *e)
}

/// The refusal forward-auth and the gateway answer with (401 or 403, by the code).
pub(crate) fn refused(code: VerifyCode) -> ApiError {
    let message = match code {
        VerifyCode::Malformed => "missing or malformed API key",
        VerifyCode::NotFound => "unknown API key",
        VerifyCode::Revoked => "API key revoked",
        VerifyCode::Expired => "API key expired",
        VerifyCode::Pending => "API key awaits approval",
        VerifyCode::IpNotAllowed => "request IP not allowed for this key",
        VerifyCode::InsufficientPermissions => "API key lacks the required permissions",
        VerifyCode::InvalidSignature => "request signature does not match",
        VerifyCode::NonceExpired => "Biz-Api-Nonce is outside the accepted time window",
        VerifyCode::Replayed => "this signed request was already used",
        VerifyCode::Disabled => "API key is disabled (or its service account is)",
        VerifyCode::WrongEnvironment => "API key belongs to another environment",
        VerifyCode::Suspended => "API key's workspace is suspended",
        _ => "request refused",
    };
    ApiError::Refused { code, message: message.into() }
}

/// Parses the optional `ip` of a verify request.
pub fn parse_ip(raw: Option<&str>) -> Result<Option<IpAddr>, ApiError> {
    raw.map(|s| s.trim().parse::<IpAddr>().map_err(|_| ApiError::invalid("ip", format!("{s:?} is not an IP address"))))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_spend_their_own_cost_when_given() {
        assert_eq!(costs(&Requirements::default()), (1, 1));
        assert_eq!(costs(&Requirements { cost: Some(3), ..Default::default() }), (3, 3));
        // Unkey's `credits.cost`: the limits spend 1, the credits 5.
        let unkey = Requirements { cost: Some(1), credit_cost: Some(5), ..Default::default() };
        assert_eq!(costs(&unkey), (1, 5));
        assert_eq!(costs(&Requirements { credit_cost: Some(0), ..Default::default() }), (1, 0));
    }
}
