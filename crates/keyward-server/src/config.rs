use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use keyward_core::secret::Secret;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// How a server runs. `Default` is the one definition of every default: `keyward serve`
/// without flags, config file or environment runs with exactly these.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Also serve Envoy's gRPC external authorization (`envoy.service.auth.v3.Authorization`)
    /// on this address.
    pub ext_authz_listen: Option<SocketAddr>,
    /// When set, the verification endpoints also require `Keyward-Verify-Token`.
    pub verify_token: Option<Secret>,
    /// Shares limits, credits, replay memory and login throttles through Redis.
    pub redis_url: Option<Secret>,
    /// What verification answers for a key's rate limits while Redis is away.
    pub ratelimit_on_error: crate::limits::redis::OnError,
    /// What verification answers for a key's credits while Redis is away (credits are
    /// money: refused by default).
    pub credits_on_error: crate::limits::redis::OnError,
    /// Peers whose `X-Forwarded-For` / `X-Real-IP` are believed (forward-auth).
    pub trusted_proxies: Vec<IpNet>,
    /// Most key records (and misses) held by the verification cache.
    pub cache_capacity: u64,
    /// Most keys read into the cache at start, the most recently used first (never past
    /// `cache_capacity`; 0 warms nothing), and how recently they must have been used.
    pub warm: (u64, chrono::Duration),
    /// Threads serving connections, each with a runtime of its own (default: one per core).
    pub http_threads: usize,
    /// How often last-used marks are written.
    pub flush_interval: Duration,
    /// How often nodes sharing an SQLite file look for change events.
    pub poll_interval: Duration,
    /// Largest accepted request body.
    pub body_limit: usize,
    /// How far a signed request's nonce (its time) may be from this server's clock.
    pub signature_window: Duration,
    /// How long a session token from a password login lasts.
    pub session_ttl: Duration,
    /// How long an invitation's setup token lasts.
    pub invite_ttl: Duration,
    /// Failed logins in a row that lock an account, and for how long.
    pub account_lockout: (u32, Duration),
    /// Failed logins from one IP address within a window that block it, and the window.
    pub ip_lockout: (u32, Duration),
    /// How often expired approval requests are closed and old sessions dropped.
    pub sweep_interval: Duration,
    /// A connection must send a request's headers within this (idle connections too).
    pub header_read_timeout: Duration,
    /// A request body must keep arriving: a pause this long ends the request (408).
    pub body_read_timeout: Duration,
    /// Connections open at once; more are refused (logged and counted in `/healthz`).
    pub max_connections: usize,
    /// How often every cached key is compared with storage in the background (a backstop
    /// for a missed change event; never a read on the verify path).
    pub cache_revalidate_interval: Duration,
    /// Serve HTTPS with this certificate chain and private key (PEM files).
    pub tls: Option<TlsFiles>,
    /// Audit events older than this many days are pruned (the chain keeps a checkpoint);
    /// `None` keeps them all.
    pub audit_retention_days: Option<u32>,
    /// Waits before each retry of a failed webhook delivery (the first attempt is at once).
    pub webhook_retry_schedule: Vec<chrono::Duration>,
    /// Let deliveries reach loopback, private and link-local addresses (tests, closed
    /// networks). Off: such destinations are refused after resolving the host.
    pub webhook_allow_private: bool,
    /// How long a receiver has to answer one delivery.
    pub webhook_timeout: Duration,
    /// How often each node looks for due deliveries.
    pub webhook_poll_interval: Duration,
    /// An endpoint that has failed every delivery for this long is disabled.
    pub webhook_disable_after: chrono::Duration,
    /// How long minute, hour and day buckets of verification counts are kept.
    pub usage_retention: (chrono::Duration, chrono::Duration, chrono::Duration),
    /// How often the node holding the usage lease rolls counts up and evaluates alerts.
    pub rollup_interval: Duration,
    /// Where the public keys that sign GitHub's secret-scanning calls are fetched from
    /// (`{"public_keys": [{"key_identifier", "key", "is_current"}]}`).
    pub secret_scanning_keys_url: String,
    /// Leak reports (`POST /v1/leaks`) one address may send within a window, and the window.
    pub leak_report_limit: (u32, Duration),
    /// How long GitHub's secret-scanning call waits for its leaks to be handled before it is
    /// answered (the rest go on after the answer): GitHub allows 30 s.
    pub github_answer_within: Duration,
    /// Tokens the token endpoint issues to one installation within a window, and the window.
    pub oauth_token_limit: (u32, Duration),
    /// Where people and clients reach this server (scheme, host, optional port and path
    /// prefix, no trailing slash): redirect URIs and token audiences are built from it.
    /// `None` when unset; the features that need it say so.
    pub public_url: Option<String>,
    /// Single sign-on for the console through an OpenID provider; `None`: passwords only.
    pub oidc: Option<OidcConfig>,
}

/// The console's OpenID Connect client (docs/SSO.md). The redirect URI is
/// `public_url` + [`OIDC_CALLBACK`].
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The provider's issuer URL; its metadata is discovered from
    /// `ISSUER/.well-known/openid-configuration` on first use.
    pub issuer: String,
    pub client_id: String,
    /// Sent with `client_secret_basic`; never logged (`Secret` redacts itself).
    pub client_secret: Secret,
    /// A verified email that is no member's joins this workspace with this role; without
    /// it such an email is refused.
    pub auto_join: Option<AutoJoin>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoJoin {
    pub workspace_id: String,
    pub role: keyward_core::roles::Role,
}

/// Where the provider sends the browser back, under `public_url`.
pub const OIDC_CALLBACK: &str = "/console/oidc/callback";

/// GitHub's published signing keys for secret-scanning partner calls.
pub const GITHUB_SECRET_SCANNING_KEYS: &str = "https://api.github.com/meta/public_keys/secret_scanning";

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 5399)),
            ext_authz_listen: None,
            verify_token: None,
            redis_url: None,
            ratelimit_on_error: crate::limits::redis::OnError::Allow,
            credits_on_error: crate::limits::redis::OnError::Deny,
            trusted_proxies: vec![
                IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8)),
                IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128)),
            ],
            cache_capacity: 1_000_000,
            warm: (20_000, chrono::Duration::days(1)),
            http_threads: crate::http::workers::Workers::default_threads(),
            flush_interval: Duration::from_secs(2),
            poll_interval: Duration::from_millis(200),
            body_limit: 64 * 1024,
            signature_window: Duration::from_secs(30),
            session_ttl: Duration::from_secs(12 * 3600),
            invite_ttl: Duration::from_secs(7 * 24 * 3600),
            account_lockout: (5, Duration::from_secs(15 * 60)),
            ip_lockout: (20, Duration::from_secs(15 * 60)),
            sweep_interval: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 8192,
            cache_revalidate_interval: Duration::from_secs(300),
            tls: None,
            audit_retention_days: None,
            webhook_retry_schedule: keyward_core::webhooks::default_schedule(),
            webhook_allow_private: false,
            webhook_timeout: Duration::from_secs(10),
            webhook_poll_interval: Duration::from_millis(500),
            webhook_disable_after: chrono::Duration::days(5),
            usage_retention: (chrono::Duration::hours(48), chrono::Duration::days(90), chrono::Duration::days(730)),
            rollup_interval: Duration::from_secs(60),
            secret_scanning_keys_url: GITHUB_SECRET_SCANNING_KEYS.to_string(),
            leak_report_limit: (30, Duration::from_secs(60)),
            github_answer_within: Duration::from_secs(20),
            oauth_token_limit: (30, Duration::from_secs(60)),
            public_url: None,
            oidc: None,
        }
    }
}
