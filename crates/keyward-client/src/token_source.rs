//! An app's access tokens, kept fresh: [`TokenSource`] signs an assertion (RFC 7523) with the
//! app's APP private key — `EdDSA` for Ed25519, `ES256K` for secp256k1 (with the crate's
//! `secp256k1` feature) — buys an access token at the token endpoint, refreshes it before it
//! expires, and falls back to a new assertion when a refresh is refused. An answer of 429,
//! 502, 503 or 504 is tried again after its `Retry-After` up to 10 s (else a doubling wait), twice by
//! default; an assertion is also tried again when no answer came, but a refresh token is
//! never sent again after no answer or a proxy's 502/504 (the server may have spent it, and a
//! second use revokes its family): a new assertion is bought instead.
//!
//! ```no_run
//! # async fn demo() -> Result<(), keyward_client::ClientError> {
//! use keyward_client::signer::{Algorithm, PrivateKey};
//! use keyward_client::token_source::TokenSource;
//! let key = PrivateKey::from_hex(Algorithm::Ed25519, "…app_secret hex…").expect("a key");
//! let tokens = TokenSource::new("https://keyward.example.com", "app_01J…", "inst_01J…", key)?;
//! let bearer = tokens.access_token().await?; // send as Authorization: Bearer …
//! # Ok(()) }
//! ```

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keyward_proto::apps::{AssertionClaims, OAuthError, TokenResponse, JWT_BEARER, REFRESH_TOKEN, TOKEN_PATH};
use keyward_proto::jwt;
use keyward_proto::signing::SecretKey;

use crate::ClientError;

/// How long before its end an access token is replaced.
const REFRESH_AHEAD_SECONDS: i64 = 60;
/// How far ahead an assertion's `exp` is set (the server takes at most five minutes).
const ASSERTION_SECONDS: i64 = 120;

/// Tries after the first of a grant the server was too busy for (or, for an assertion, did
/// not answer).
const DEFAULT_RETRIES: u32 = 2;
/// The first wait between tries; it doubles each time (with jitter).
const DEFAULT_BACKOFF: Duration = Duration::from_millis(250);
/// The longest `Retry-After` waited for; past it the answer is the error.
const MAX_WAIT: Duration = Duration::from_secs(10);
/// Largest token endpoint answer read (a grant is well under a kilobyte), as the Go SDK's.
const MAX_ANSWER: usize = 1 << 20;

/// The time in Unix seconds (the system's unless a test sets its own).
pub type Now = Arc<dyn Fn() -> i64 + Send + Sync>;

struct Held {
    access: String,
    refresh: Option<String>,
    /// Unix seconds.
    expires_at: i64,
}

/// Keeps one installation's access token fresh; clone-free, share it behind an `Arc`.
pub struct TokenSource {
    http: reqwest::Client,
    endpoint: String,
    audience: String,
    app_id: String,
    installation_id: String,
    key: SecretKey,
    now: Now,
    held: tokio::sync::Mutex<Option<Held>>,
    sequence: AtomicU64,
    retries: u32,
    backoff: Duration,
}

/// What one call of the token endpoint came to.
enum Outcome {
    Granted(TokenResponse),
    /// A final answer (`invalid_grant`, `invalid_client`, …).
    Refused(ClientError),
    /// 429, 502, 503 or 504: nothing was granted or spent; `Retry-After` when given.
    Busy(ClientError, Option<Duration>),
    /// No answer (or a cut one): the server may have acted on the request.
    Unanswered(ClientError),
}

#[derive(Clone, Copy)]
enum Grant<'a> {
    Assertion,
    Refresh(&'a str),
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("app_id", &self.app_id)
            .field("installation", &self.installation_id)
            .finish()
    }
}

fn system_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl TokenSource {
    /// A source for `installation_id` of `app_id`, buying tokens at `base_url`'s token
    /// endpoint, whose URL is also the assertions' audience (see [`TokenSource::audience`]
    /// when the server's public URL differs from the one used to reach it).
    pub fn new(
        base_url: &str,
        app_id: impl Into<String>,
        installation_id: impl Into<String>,
        key: SecretKey,
    ) -> Result<Self, ClientError> {
        let endpoint = format!("{}{TOKEN_PATH}", base_url.trim_end_matches('/'));
        let http = reqwest::Client::builder().build().map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(TokenSource {
            http,
            audience: endpoint.clone(),
            endpoint,
            app_id: app_id.into(),
            installation_id: installation_id.into(),
            key,
            now: Arc::new(system_now),
            held: tokio::sync::Mutex::new(None),
            sequence: AtomicU64::new(0),
            retries: DEFAULT_RETRIES,
            backoff: DEFAULT_BACKOFF,
        })
    }

    /// How many times a grant is tried again after a 429, 502, 503 or 504 (or, for an
    /// assertion, no answer); default 2, 0 tries once.
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// The first wait between tries when the answer names none (default 250 ms; it doubles
    /// each time, with jitter).
    pub fn retry_backoff(mut self, first: Duration) -> Self {
        self.backoff = first;
        self
    }

    /// The assertions' `aud`: the token endpoint's URL under the server's `--public-url`.
    pub fn audience(mut self, token_url: impl Into<String>) -> Self {
        self.audience = token_url.into();
        self
    }

    /// Another clock (tests).
    pub fn clock(mut self, now: Now) -> Self {
        self.now = now;
        self
    }

    /// Another HTTP client (a custom CA, proxies).
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// A new signed assertion: `iss` the app, `sub` the installation, `aud` the token
    /// endpoint, two minutes to live, a `jti` never used before.
    pub fn assertion(&self) -> String {
        let now = (self.now)();
        let claims = AssertionClaims {
            iss: self.app_id.clone(),
            sub: self.installation_id.clone(),
            aud: self.audience.clone(),
            exp: now + ASSERTION_SECONDS,
            iat: Some(now),
            nbf: None,
            jti: self.jti(),
        };
        jwt::sign(&self.key, Some("JWT"), None, &claims)
    }

    /// 128 bits unique to this assertion: the process's random hasher keys over the time,
    /// a counter and the process id (uniqueness is what a `jti` needs, not secrecy).
    fn jti(&self) -> String {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let mut out = String::with_capacity(32);
        for salt in [0u8, 1] {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u8(salt);
            h.write_u128(nanos);
            h.write_u64(n);
            h.write_u32(std::process::id());
            out.push_str(&format!("{:016x}", h.finish()));
        }
        out
    }

    /// A fresh access token: the one held while it has more than a minute left, else a
    /// refreshed one, else one bought with a new assertion. Concurrent callers wait for one
    /// refresh (two would spend one refresh token twice, which revokes its family).
    pub async fn access_token(&self) -> Result<String, ClientError> {
        let mut held = self.held.lock().await;
        let now = (self.now)();
        if let Some(h) = held.as_ref() {
            if h.expires_at - REFRESH_AHEAD_SECONDS > now {
                return Ok(h.access.clone());
            }
        }
        // A refresh that is refused, or not answered, gives way to a new assertion; one still
        // answered 429 or 503 after its retries fails the call and keeps its unspent token
        // (an assertion would meet the same limit or outage).
        let refreshed = match held.as_ref().and_then(|h| h.refresh.clone()) {
            Some(r) => match self.grant_with_retries(Grant::Refresh(&r)).await {
                Ok(t) => Some(t),
                Err(e) if matches!(e.status(), Some(429 | 503)) => return Err(e),
                Err(_) => {
                    // Perhaps spent: never sent again.
                    if let Some(h) = held.as_mut() {
                        h.refresh = None;
                    }
                    None
                }
            },
            None => None,
        };
        let t = match refreshed {
            Some(t) => t,
            None => self.grant_with_retries(Grant::Assertion).await?,
        };
        let access = t.access_token.clone();
        *held = Some(Held { access: t.access_token, refresh: Some(t.refresh_token), expires_at: now + t.expires_in });
        Ok(access)
    }

    /// `Authorization`'s value: `Bearer <access token>`.
    pub async fn authorization(&self) -> Result<String, ClientError> {
        Ok(format!("Bearer {}", self.access_token().await?))
    }

    /// Drops the held tokens: the next call buys new ones with an assertion.
    pub async fn forget(&self) {
        *self.held.lock().await = None;
    }

    /// Tries `grant` until it is granted or refused, or the retries run out. Each try of an
    /// assertion signs a new one (a `jti` is spent once).
    async fn grant_with_retries(&self, grant: Grant<'_>) -> Result<TokenResponse, ClientError> {
        let mut attempt = 0;
        loop {
            let outcome = match grant {
                Grant::Refresh(r) => self.grant(&[("grant_type", REFRESH_TOKEN), ("refresh_token", r)]).await,
                Grant::Assertion => {
                    let assertion = self.assertion();
                    self.grant(&[("grant_type", JWT_BEARER), ("assertion", &assertion)]).await
                }
            };
            let (error, after) = match (outcome, grant) {
                (Outcome::Granted(t), _) => return Ok(t),
                (Outcome::Refused(e), _) => return Err(e),
                // The server may have spent it: sent again, it would revoke its family. A
                // proxy's 502 or 504 may also come after the server spent it.
                (Outcome::Unanswered(e), Grant::Refresh(_)) => return Err(e),
                (Outcome::Busy(e, _), Grant::Refresh(_)) if matches!(e.status(), Some(502 | 504)) => return Err(e),
                (Outcome::Unanswered(e), Grant::Assertion) => (e, None),
                (Outcome::Busy(e, after), _) => (e, after),
            };
            // A longer Retry-After is not waited for: the caller is better told than held.
            if attempt >= self.retries || after.is_some_and(|a| a > MAX_WAIT) {
                return Err(error);
            }
            tokio::time::sleep(after.unwrap_or_else(|| self.wait(attempt))).await;
            attempt += 1;
        }
    }

    /// The backoff before try `attempt + 1`: between half and all of the doubled first wait.
    fn wait(&self, attempt: u32) -> Duration {
        let full = self.backoff.saturating_mul(1 << attempt.min(16));
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(self.sequence.fetch_add(1, Ordering::Relaxed));
        full / 2 + full.mul_f64((h.finish() % 1000) as f64 / 2000.0)
    }

    async fn grant(&self, form: &[(&str, &str)]) -> Outcome {
        let r = match self.http.post(&self.endpoint).form(form).send().await {
            Ok(r) => r,
            Err(e) => return Outcome::Unanswered(ClientError::Transport(e.to_string())),
        };
        let status = r.status();
        let after = r
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = match read_bounded(r).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                let e = format!("the token endpoint's answer is larger than {} bytes", MAX_ANSWER);
                return Outcome::Refused(ClientError::Decode(e));
            }
            Err(e) => return Outcome::Unanswered(ClientError::Transport(e.to_string())),
        };
        if status.is_success() {
            return match serde_json::from_slice(&bytes) {
                Ok(t) => Outcome::Granted(t),
                Err(e) => Outcome::Refused(ClientError::Decode(e.to_string())),
            };
        }
        // A proxy's or the server's own error body is not RFC 6749's: the status speaks.
        let error = match serde_json::from_slice::<OAuthError>(&bytes) {
            Ok(e) => {
                ClientError::Api { status: status.as_u16(), code: e.error, message: e.error_description, field: None }
            }
            Err(_) => ClientError::Api {
                status: status.as_u16(),
                code: status.canonical_reason().unwrap_or("error").to_ascii_lowercase().replace(' ', "_"),
                message: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
                field: None,
            },
        };
        match status.as_u16() {
            429 | 502 | 503 | 504 => Outcome::Busy(error, after),
            _ => Outcome::Refused(error),
        }
    }
}

/// The answer's body, or `None` once it passes [`MAX_ANSWER`] (nothing more is read: a
/// broken or hostile endpoint cannot make the caller hold an unbounded answer).
async fn read_bounded(mut r: reqwest::Response) -> reqwest::Result<Option<Vec<u8>>> {
    if r.content_length().is_some_and(|n| n > MAX_ANSWER as u64) {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = r.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_proto::signing::Algorithm;
    use std::collections::VecDeque;
    use std::sync::atomic::AtomicI64;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// What the fake token endpoint does with one request.
    #[derive(Clone, Copy)]
    enum Reply {
        Token,
        Busy(u16),
        /// 429 with `Retry-After: 3600`.
        Later,
        Refuse,
        /// Closes the connection without an answer, the request read.
        Drop,
        /// A 200 whose chunked body (no length said) runs past a mebibyte.
        Huge,
    }

    /// A token endpoint answering each request with the next of its replies (then tokens);
    /// the form bodies it was sent, in order.
    struct Fake {
        base: String,
        seen: Arc<Mutex<Vec<String>>>,
    }

    impl Fake {
        async fn start(replies: Vec<Reply>) -> Fake {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let seen = Arc::new(Mutex::new(Vec::new()));
            let replies = Arc::new(Mutex::new(VecDeque::from(replies)));
            let all = Arc::clone(&seen);
            tokio::spawn(async move {
                while let Ok((sock, _)) = listener.accept().await {
                    tokio::spawn(serve(sock, Arc::clone(&all), Arc::clone(&replies)));
                }
            });
            Fake { base, seen }
        }

        fn seen(&self) -> Vec<String> {
            self.seen.lock().unwrap().clone()
        }
    }

    async fn serve(
        mut sock: tokio::net::TcpStream,
        seen: Arc<Mutex<Vec<String>>>,
        replies: Arc<Mutex<VecDeque<Reply>>>,
    ) {
        let mut buf = Vec::new();
        loop {
            let Some(body) = read_request(&mut sock, &mut buf).await else { return };
            let n = {
                let mut seen = seen.lock().unwrap();
                seen.push(body);
                seen.len()
            };
            let reply = replies.lock().unwrap().pop_front().unwrap_or(Reply::Token);
            let (status, text, extra) = match reply {
                Reply::Drop => return,
                Reply::Huge => {
                    let head =
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                    let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
                    // The client stops reading past its bound; a write then failing ends this.
                    let _ = sock.write_all(head.as_bytes()).await;
                    for _ in 0..64 {
                        if sock.write_all(chunk.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    let _ = sock.write_all(b"0\r\n\r\n").await;
                    return;
                }
                Reply::Token => (
                    200,
                    format!(
                        r#"{{"access_token":"at{n}","token_type":"Bearer","expires_in":3600,"refresh_token":"rt{n}","scope":""}}"#
                    ),
                    "",
                ),
                Reply::Busy(s) => {
                    (s, r#"{"error":"server_error","error_description":"busy"}"#.into(), "retry-after: 0\r\n")
                }
                Reply::Later => {
                    (429, r#"{"error":"slow_down","error_description":"later"}"#.into(), "retry-after: 3600\r\n")
                }
                Reply::Refuse => (400, r#"{"error":"invalid_grant","error_description":"no"}"#.into(), ""),
            };
            let out = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n{text}",
                text.len()
            );
            if sock.write_all(out.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    /// One request's body (the head read up to its blank line, then Content-Length bytes).
    async fn read_request(sock: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<String> {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                    buf.drain(..end + 4 + len);
                    return Some(body);
                }
            }
            let mut chunk = [0u8; 4096];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// A source of the fake's tokens on a clock the test moves (Unix seconds).
    fn source(fake: &Fake, now: &Arc<AtomicI64>) -> TokenSource {
        let key = SecretKey::from_hex(Algorithm::Ed25519, &"11".repeat(32)).unwrap();
        let clock = Arc::clone(now);
        TokenSource::new(&fake.base, "app_1", "inst_1", key)
            .unwrap()
            .clock(Arc::new(move || clock.load(Ordering::Relaxed)))
            .retry_backoff(Duration::from_millis(1))
    }

    fn assertion_of(body: &str) -> Option<&str> {
        body.split('&').find_map(|p| p.strip_prefix("assertion="))
    }

    fn is_refresh(body: &str, token: &str) -> bool {
        body.contains("grant_type=refresh_token") && body.contains(&format!("refresh_token={token}"))
    }

    #[tokio::test]
    async fn busy_answers_are_tried_again_each_with_a_new_assertion() {
        let fake = Fake::start(vec![Reply::Busy(503), Reply::Busy(429)]).await;
        let now = Arc::new(AtomicI64::new(1_000_000));
        assert_eq!(source(&fake, &now).access_token().await.unwrap(), "at3");
        let seen = fake.seen();
        let assertions: std::collections::HashSet<_> = seen.iter().filter_map(|b| assertion_of(b)).collect();
        assert_eq!((seen.len(), assertions.len()), (3, 3), "three tries, three assertions: {seen:?}");
    }

    #[tokio::test]
    async fn an_answer_past_a_mebibyte_is_refused_not_read_whole() {
        let fake = Fake::start(vec![Reply::Huge]).await;
        let now = Arc::new(AtomicI64::new(1_000_000));
        let e = source(&fake, &now).access_token().await.unwrap_err();
        assert!(matches!(&e, ClientError::Decode(m) if m.contains("larger than 1048576 bytes")), "{e}");
        assert_eq!(fake.seen().len(), 1, "not retried");
    }

    #[tokio::test]
    async fn the_retries_run_out_and_the_last_answer_is_the_error() {
        let fake = Fake::start(vec![Reply::Busy(503); 3]).await;
        let now = Arc::new(AtomicI64::new(1_000_000));
        let e = source(&fake, &now).access_token().await.unwrap_err();
        assert_eq!(e.status(), Some(503), "{e}");
        assert_eq!(fake.seen().len(), 3, "the first try and two retries");
        let fake = Fake::start(vec![Reply::Busy(502)]).await;
        assert_eq!(source(&fake, &now).retries(0).access_token().await.unwrap_err().status(), Some(502));
        assert_eq!(fake.seen().len(), 1, "0 retries: one try");
    }

    #[tokio::test]
    async fn a_retry_after_past_ten_seconds_is_not_waited_for() {
        let fake = Fake::start(vec![Reply::Later]).await;
        let now = Arc::new(AtomicI64::new(1_000_000));
        let e = source(&fake, &now).access_token().await.unwrap_err();
        assert_eq!(e.status(), Some(429), "{e}");
        assert_eq!(fake.seen().len(), 1);
    }

    #[tokio::test]
    async fn refusals_are_not_tried_again() {
        let fake = Fake::start(vec![Reply::Refuse]).await;
        let now = Arc::new(AtomicI64::new(1_000_000));
        match source(&fake, &now).access_token().await {
            Err(ClientError::Api { status: 400, code, .. }) => assert_eq!(code, "invalid_grant"),
            other => panic!("{other:?}"),
        }
        assert_eq!(fake.seen().len(), 1);
    }

    #[tokio::test]
    async fn an_unanswered_assertion_is_tried_again() {
        let fake = Fake::start(vec![Reply::Drop]).await;
        let now = Arc::new(AtomicI64::new(1_000_000));
        assert_eq!(source(&fake, &now).access_token().await.unwrap(), "at2");
        assert_eq!(fake.seen().iter().filter(|b| assertion_of(b).is_some()).count(), 2);
    }

    /// Buys a token (the fake's first reply must grant it), moves past its refresh and asks
    /// again, the refresh meeting `then`: that answer, and the bodies the fake was sent.
    async fn refreshed(then: Reply) -> (String, Vec<String>) {
        let fake = Fake::start(vec![Reply::Token, then]).await;
        let now = Arc::new(AtomicI64::new(1_000_000));
        let tokens = source(&fake, &now);
        assert_eq!(tokens.access_token().await.unwrap(), "at1");
        now.fetch_add(3_600, Ordering::Relaxed);
        (tokens.access_token().await.unwrap(), fake.seen())
    }

    #[tokio::test]
    async fn an_unanswered_refresh_or_a_proxys_502_is_never_sent_again() {
        for then in [Reply::Drop, Reply::Busy(502), Reply::Busy(504)] {
            let (token, seen) = refreshed(then).await;
            assert_eq!(token, "at3", "bought with a new assertion");
            assert_eq!(seen.iter().filter(|b| is_refresh(b, "rt1")).count(), 1, "{seen:?}");
            assert!(assertion_of(&seen[2]).is_some(), "{seen:?}");
        }
    }

    #[tokio::test]
    async fn a_busy_refresh_is_tried_again_with_its_token() {
        for then in [Reply::Busy(503), Reply::Busy(429)] {
            let (token, seen) = refreshed(then).await;
            assert_eq!(token, "at3");
            assert!(is_refresh(&seen[1], "rt1") && is_refresh(&seen[2], "rt1"), "{seen:?}");
            assert_eq!(seen.len(), 3, "no assertion needed: {seen:?}");
        }
    }

    #[tokio::test]
    async fn a_refresh_busy_past_its_retries_fails_and_keeps_its_token() {
        let fake = Fake::start(vec![Reply::Token, Reply::Busy(503), Reply::Busy(503)]).await;
        let now = Arc::new(AtomicI64::new(1_000_000));
        let tokens = source(&fake, &now).retries(1);
        tokens.access_token().await.unwrap();
        now.fetch_add(3_600, Ordering::Relaxed);
        assert_eq!(tokens.access_token().await.unwrap_err().status(), Some(503));
        assert_eq!(tokens.access_token().await.unwrap(), "at4", "the same refresh token, next call");
        let seen = fake.seen();
        assert_eq!(seen.iter().filter(|b| is_refresh(b, "rt1")).count(), 3, "{seen:?}");
        assert_eq!(seen.len(), 4, "no assertion: {seen:?}");
    }

    #[tokio::test]
    async fn an_unanswered_refresh_is_dropped_even_when_no_assertion_buys_a_token() {
        let fake = Fake::start(vec![Reply::Token, Reply::Drop, Reply::Refuse]).await;
        let now = Arc::new(AtomicI64::new(1_000_000));
        let tokens = source(&fake, &now);
        tokens.access_token().await.unwrap();
        now.fetch_add(3_600, Ordering::Relaxed);
        assert!(tokens.access_token().await.is_err(), "the assertion was refused");
        assert_eq!(tokens.access_token().await.unwrap(), "at4");
        let seen = fake.seen();
        assert_eq!(seen.iter().filter(|b| is_refresh(b, "rt1")).count(), 1, "{seen:?}");
    }

    #[test]
    fn waits_double_with_jitter() {
        let key = SecretKey::from_hex(Algorithm::Ed25519, &"11".repeat(32)).unwrap();
        let s = TokenSource::new("http://127.0.0.1:9", "a", "i", key).unwrap();
        for attempt in 0..4 {
            let full = DEFAULT_BACKOFF * (1 << attempt);
            let w = s.wait(attempt);
            assert!(w >= full / 2 && w <= full, "{attempt}: {w:?}");
        }
    }
}
