//! Server settings in layers: flag > `KEYWARD_*` variable > config file > default. Each
//! setting is defined once, here: its flag, its variable and its file key (the same name);
//! its default lives only in `keyward_server::ServerConfig::default()`.

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keyward_core::secret::{Secret, REDACTED};
use keyward_server::ServerConfig;

use crate::datadir::{StorageArgs, DEFAULT_DATA_DIR};

/// A length of time: `200ms`, `30s`, `15m`, `12h`, `7d`, or a bare number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl std::str::FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let bad = || format!("{s:?} is not a duration (e.g. 200ms, 30s, 15m, 12h, 7d)");
        let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
        let n: u64 = num.parse().map_err(|_| bad())?;
        let per = match unit {
            "ms" => return Ok(Span(Duration::from_millis(n))),
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        n.checked_mul(per).map(|s| Span(Duration::from_secs(s))).ok_or_else(bad)
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.as_millis();
        if !ms.is_multiple_of(1000) {
            return write!(f, "{ms}ms");
        }
        let s = ms / 1000;
        match s {
            0 => write!(f, "0s"),
            s if s.is_multiple_of(86_400) => write!(f, "{}d", s / 86_400),
            s if s.is_multiple_of(3600) => write!(f, "{}h", s / 3600),
            s if s.is_multiple_of(60) => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Seconds(n) => Ok(Span(Duration::from_secs(n))),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A database URL whose password is never shown.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(pub String);

impl DatabaseUrl {
    /// The URL with any password replaced.
    pub fn redacted(&self) -> String {
        let u = &self.0;
        let Some(scheme_end) = u.find("://").map(|i| i + 3) else { return u.clone() };
        let rest = &u[scheme_end..];
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        match rest[..auth_end].rfind('@') {
            Some(at) => match rest[..at].find(':') {
                Some(colon) => format!("{}{}:{REDACTED}{}", &u[..scheme_end], &rest[..colon], &rest[at..]),
                None => u.clone(),
            },
            None => u.clone(),
        }
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(DatabaseUrl(s.to_string()))
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

/// The settings `serve` and `gateway` share. Every field is optional in every layer; what no
/// layer sets takes its default.
#[derive(Debug, Clone, Default, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Where the embedded database and the pepper file live [default: ./keyward-data].
    #[arg(long, env = "KEYWARD_DATA_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Use PostgreSQL (postgres://…) instead of the embedded SQLite database.
    #[arg(long, env = "KEYWARD_DATABASE_URL", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<DatabaseUrl>,
    /// Database connections this node keeps at most (default: 16 for PostgreSQL, 8 for
    /// SQLite); PostgreSQL's change listener takes one more.
    #[arg(long, env = "KEYWARD_DATABASE_POOL_SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_pool_size: Option<u32>,
    /// Require `Keyward-Verify-Token: TOKEN` on the verification endpoints.
    #[arg(long, env = "KEYWARD_VERIFY_TOKEN", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_token: Option<Secret>,
    /// Share rate limits, credits, signed-request replay memory and login throttles with
    /// every node through Redis (redis://[:PASSWORD@]HOST:PORT[/DB]; a Redis Cluster: its
    /// nodes' redis:// URLs comma-separated; Sentinel:
    /// redis+sentinel://[:PASSWORD@]HOST[:PORT][,HOST[:PORT]…]/SERVICE[/DB]); without it each
    /// node keeps its own.
    #[arg(long, env = "KEYWARD_REDIS_URL", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<Secret>,
    /// While Redis is away: allow (answer as if a key had room) or deny (RATE_LIMITED)
    /// [default: allow].
    #[arg(long, env = "KEYWARD_RATELIMIT_ON_ERROR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratelimit_on_error: Option<String>,
    /// While Redis is away: deny (a key with credits is RATE_LIMITED: credits are money) or
    /// allow (answer as if it had credits left) [default: deny].
    #[arg(long, env = "KEYWARD_CREDITS_ON_ERROR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits_on_error: Option<String>,
    /// Peers (IP or CIDR) whose X-Forwarded-For is believed [default: loopback]. Repeatable.
    #[arg(long = "trusted-proxy", env = "KEYWARD_TRUSTED_PROXY", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_proxies: Option<Vec<String>>,
    /// Most key records kept in the verification cache.
    #[arg(long, env = "KEYWARD_CACHE_CAPACITY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_capacity: Option<u64>,
    /// Most keys read into the cache at start, the most recently used first (0: none).
    #[arg(long, env = "KEYWARD_WARM_KEYS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_keys: Option<u64>,
    /// Only keys used within this long before start are read into the cache at start.
    #[arg(long, env = "KEYWARD_WARM_WITHIN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_within: Option<Span>,
    /// Between writes of last-used marks (a number of seconds, or 500ms, 2s, …).
    #[arg(long, env = "KEYWARD_FLUSH_INTERVAL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_interval: Option<Span>,
    /// How often nodes sharing an SQLite file look for other nodes' key changes.
    #[arg(long, env = "KEYWARD_POLL_INTERVAL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<Span>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "KEYWARD_BODY_LIMIT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_limit: Option<usize>,
    /// How far a signed request's Biz-Api-Nonce may be from the server's clock.
    #[arg(long, env = "KEYWARD_SIGNATURE_WINDOW")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_window: Option<Span>,
    /// How long a session from a password login lasts.
    #[arg(long, env = "KEYWARD_SESSION_TTL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_ttl: Option<Span>,
    /// How long an invitation's setup token lasts.
    #[arg(long, env = "KEYWARD_INVITE_TTL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invite_ttl: Option<Span>,
    /// Failed logins in a row that lock an account.
    #[arg(long, env = "KEYWARD_LOCKOUT_ATTEMPTS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lockout_attempts: Option<u32>,
    /// How long a locked account stays locked.
    #[arg(long, env = "KEYWARD_LOCKOUT_DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lockout_duration: Option<Span>,
    /// Failed logins from one IP address, within the window, that block it (this node).
    #[arg(long, env = "KEYWARD_IP_LOCKOUT_ATTEMPTS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_lockout_attempts: Option<u32>,
    /// The window of --ip-lockout-attempts, and how long the block lasts.
    #[arg(long, env = "KEYWARD_IP_LOCKOUT_WINDOW")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_lockout_window: Option<Span>,
    /// How often expired approval requests are closed and ended sessions dropped.
    #[arg(long, env = "KEYWARD_SWEEP_INTERVAL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep_interval: Option<Span>,
    /// A connection must send a request's headers within this, idle ones too.
    #[arg(long, env = "KEYWARD_HEADER_READ_TIMEOUT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_read_timeout: Option<Span>,
    /// A request body that stops arriving for this long ends the request (408).
    #[arg(long, env = "KEYWARD_BODY_READ_TIMEOUT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_read_timeout: Option<Span>,
    /// Connections open at once; more are refused, logged and counted in /healthz.
    #[arg(long, env = "KEYWARD_MAX_CONNECTIONS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Threads that serve connections, each with its own runtime (default: one per core).
    #[arg(long, env = "KEYWARD_HTTP_THREADS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_threads: Option<usize>,
    /// How often every cached key is compared with storage, in the background.
    #[arg(long, env = "KEYWARD_CACHE_REVALIDATE_INTERVAL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_revalidate_interval: Option<Span>,
    /// Audit events older than this many days are pruned, keeping a checkpoint (default: kept).
    #[arg(long, env = "KEYWARD_AUDIT_RETENTION_DAYS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_retention_days: Option<u32>,
    /// How long per-minute verification counts are kept [default: 48h].
    #[arg(long, env = "KEYWARD_USAGE_MINUTES_KEPT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_minutes_kept: Option<Span>,
    /// How long per-hour verification counts are kept [default: 90d].
    #[arg(long, env = "KEYWARD_USAGE_HOURS_KEPT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_hours_kept: Option<Span>,
    /// How long per-day verification counts are kept [default: 730d].
    #[arg(long, env = "KEYWARD_USAGE_DAYS_KEPT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_days_kept: Option<Span>,
    /// Where the public keys signing GitHub's secret-scanning calls are fetched from
    /// [default: https://api.github.com/meta/public_keys/secret_scanning].
    #[arg(long, env = "KEYWARD_SECRET_SCANNING_KEYS_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_scanning_keys_url: Option<String>,
    /// Leak reports (`POST /v1/leaks`) one address may send per window, as N/WINDOW
    /// [default: 30/1m]; more answer 429.
    #[arg(long, env = "KEYWARD_LEAK_REPORT_LIMIT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leak_report_limit: Option<String>,
    /// Tokens `POST /v1/oauth/token` issues to one app installation per window, as N/WINDOW
    /// [default: 30/1m]; more answer 429.
    #[arg(long, env = "KEYWARD_OAUTH_TOKEN_LIMIT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth_token_limit: Option<String>,
    /// Where people and clients reach Keyward, e.g. `https://keys.example.com` (SSO redirect
    /// URIs and OAuth token audiences are built from it).
    #[arg(long, env = "KEYWARD_PUBLIC_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Log lines as `text` (the default) or `json` (one object a line, with the request id).
    #[arg(long, env = "KEYWARD_LOG_FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    /// Waits before each retry of a failed webhook delivery, e.g. `5s,5m,30m,2h,5h,10h,10h`
    /// (the default; the first attempt is at once). `[webhooks] retry_schedule` in the file.
    #[arg(long, env = "KEYWARD_WEBHOOK_RETRY_SCHEDULE")]
    #[serde(skip)]
    pub webhook_retry_schedule: Option<String>,
    /// Let webhook deliveries reach loopback, private and link-local addresses (`[webhooks]
    /// allow_private`).
    #[arg(long, env = "KEYWARD_WEBHOOK_ALLOW_PRIVATE", num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip)]
    pub webhook_allow_private: Option<bool>,
    /// How long a webhook receiver has to answer [default: 10s] (`[webhooks] timeout`).
    #[arg(long, env = "KEYWARD_WEBHOOK_TIMEOUT")]
    #[serde(skip)]
    pub webhook_timeout: Option<Span>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key; `[tls] cert` in the file).
    #[arg(long, env = "KEYWARD_TLS_CERT")]
    #[serde(skip)]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (`[tls] key` in the file).
    #[arg(long, env = "KEYWARD_TLS_KEY")]
    #[serde(skip)]
    pub tls_key: Option<PathBuf>,
    /// Console single sign-on: the OpenID provider's issuer URL, e.g.
    /// `https://login.example.com/realms/staff` (needs --public-url; `[oidc] issuer`).
    #[arg(long, env = "KEYWARD_OIDC_ISSUER")]
    #[serde(skip)]
    pub oidc_issuer: Option<String>,
    /// The client id registered at the provider (`[oidc] client_id`).
    #[arg(long, env = "KEYWARD_OIDC_CLIENT_ID")]
    #[serde(skip)]
    pub oidc_client_id: Option<String>,
    /// The client's secret (`[oidc] client_secret`); or use --oidc-client-secret-file.
    #[arg(long, env = "KEYWARD_OIDC_CLIENT_SECRET", hide_env_values = true)]
    #[serde(skip)]
    pub oidc_client_secret: Option<Secret>,
    /// A file holding the client's secret (`[oidc] client_secret_file`).
    #[arg(long, env = "KEYWARD_OIDC_CLIENT_SECRET_FILE")]
    #[serde(skip)]
    pub oidc_client_secret_file: Option<PathBuf>,
    /// A verified email that is no member's joins --oidc-auto-join-workspace with this role
    /// (admin, manager, developer, operator or viewer; `[oidc] auto_join_role`). Without it
    /// such an email is refused.
    #[arg(long, env = "KEYWARD_OIDC_AUTO_JOIN_ROLE")]
    #[serde(skip)]
    pub oidc_auto_join_role: Option<String>,
    /// The workspace id those members join (`[oidc] auto_join_workspace`).
    #[arg(long, env = "KEYWARD_OIDC_AUTO_JOIN_WORKSPACE")]
    #[serde(skip)]
    pub oidc_auto_join_workspace: Option<String>,
}

/// `[tls]` in the config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// `[webhooks]` in the config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksSection {
    pub retry_schedule: Option<String>,
    pub allow_private: Option<bool>,
    pub timeout: Option<Span>,
}

/// `[oidc]` in the config file: the console's single sign-on.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Shown redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_join_role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_join_workspace: Option<String>,
}

impl OidcSection {
    /// The `[oidc]` settings among `s`, for `config show`: `None` when single sign-on is off.
    pub fn of(s: &ServerSettings) -> Option<OidcSection> {
        let section = OidcSection {
            issuer: s.oidc_issuer.clone(),
            client_id: s.oidc_client_id.clone(),
            client_secret: s.oidc_client_secret.clone(),
            client_secret_file: s.oidc_client_secret_file.clone(),
            auto_join_role: s.oidc_auto_join_role.clone(),
            auto_join_workspace: s.oidc_auto_join_workspace.clone(),
        };
        s.oidc_issuer.is_some().then_some(section)
    }
}

/// `[ext_authz]` in the config file: `serve`'s gRPC external authorization for Envoy.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExtAuthzSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
}

/// The gateway's own settings (`[gateway]` in the config file).
#[derive(Debug, Clone, Default, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// Where the gateway listens [default: 127.0.0.1:8000].
    #[arg(long = "listen", env = "KEYWARD_GATEWAY_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// The API to protect, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "KEYWARD_UPSTREAM")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// A TOML file of `[[route]]` rules: a `prefix` or `path` template, the `permissions` query
    /// and/or `scope` it requires (docs/GATEWAY.md).
    #[arg(long, env = "KEYWARD_RULES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<PathBuf>,
    /// Largest request body passed to the upstream, in bytes (413 beyond) [default: 1 MiB].
    #[arg(long, env = "KEYWARD_MAX_BODY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body: Option<usize>,
    /// An upstream silent this long (connecting, or between reads) answers 504 [default: 30s].
    #[arg(long, env = "KEYWARD_UPSTREAM_TIMEOUT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_timeout: Option<Span>,
    /// Let through only keys of this workspace (another's is refused as NOT_FOUND).
    #[arg(long, env = "KEYWARD_GATEWAY_WORKSPACE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Let through only keys of this environment, test or live (another's is refused as
    /// WRONG_ENVIRONMENT, 403).
    #[arg(long, env = "KEYWARD_GATEWAY_ENVIRONMENT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// A PEM CA certificate trusted for an https:// upstream (a private CA).
    #[arg(long = "ca-cert", env = "KEYWARD_CA_CERT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    /// The upstream takes `;` in a path as an ordinary character (no servlet-style path
    /// parameters): pass such paths on instead of refusing them with 400 [default: false].
    #[arg(long, env = "KEYWARD_ALLOW_PATH_PARAMETERS", num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_path_parameters: Option<bool>,
}

pub const GATEWAY_LISTEN: &str = "127.0.0.1:8000";

/// Takes each field from `self` when set, else from `lower`.
macro_rules! layered {
    ($t:ty { $($f:ident),* $(,)? }) => {
        impl $t {
            pub fn or(self, lower: $t) -> $t {
                Self { $($f: self.$f.or(lower.$f)),* }
            }
        }
    };
}

layered!(ServerSettings {
    data_dir,
    database_url,
    database_pool_size,
    verify_token,
    redis_url,
    ratelimit_on_error,
    credits_on_error,
    trusted_proxies,
    cache_capacity,
    warm_keys,
    warm_within,
    flush_interval,
    poll_interval,
    body_limit,
    signature_window,
    session_ttl,
    invite_ttl,
    lockout_attempts,
    lockout_duration,
    ip_lockout_attempts,
    ip_lockout_window,
    sweep_interval,
    header_read_timeout,
    body_read_timeout,
    max_connections,
    http_threads,
    cache_revalidate_interval,
    audit_retention_days,
    usage_minutes_kept,
    usage_hours_kept,
    usage_days_kept,
    secret_scanning_keys_url,
    leak_report_limit,
    oauth_token_limit,
    public_url,
    log_format,
    webhook_retry_schedule,
    webhook_allow_private,
    webhook_timeout,
    tls_cert,
    tls_key,
    oidc_issuer,
    oidc_client_id,
    oidc_client_secret,
    oidc_client_secret_file,
    oidc_auto_join_role,
    oidc_auto_join_workspace,
});
layered!(GatewaySettings {
    listen,
    upstream,
    rules,
    max_body,
    upstream_timeout,
    workspace,
    environment,
    ca_cert,
    allow_path_parameters
});

/// The config file: the shared settings at the top level, `listen` and `[ext_authz]` for
/// `serve`, `[gateway]`.
#[derive(Debug, Default)]
pub struct ConfigFile {
    pub listen: Option<SocketAddr>,
    pub ext_authz: ExtAuthzSection,
    pub server: ServerSettings,
    pub gateway: GatewaySettings,
}

impl ConfigFile {
    /// Reads and checks a config file; an unknown key is an error naming it.
    pub fn load(path: &Path) -> Result<ConfigFile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("config file {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<ConfigFile> {
        let mut table: toml::Table = text.parse()?;
        let listen = match table.remove("listen") {
            Some(v) => Some(v.try_into::<String>()?.parse().context("listen must be HOST:PORT")?),
            None => None,
        };
        let gateway = match table.remove("gateway") {
            Some(v) => v.try_into::<GatewaySettings>().context("[gateway]")?,
            None => GatewaySettings::default(),
        };
        let ext_authz = match table.remove("ext_authz") {
            Some(v) => v.try_into::<ExtAuthzSection>().context("[ext_authz]")?,
            None => ExtAuthzSection::default(),
        };
        let tls = match table.remove("tls") {
            Some(v) => v.try_into::<TlsSection>().context("[tls]")?,
            None => TlsSection::default(),
        };
        let webhooks = match table.remove("webhooks") {
            Some(v) => v.try_into::<WebhooksSection>().context("[webhooks]")?,
            None => WebhooksSection::default(),
        };
        let oidc = match table.remove("oidc") {
            Some(v) => v.try_into::<OidcSection>().context("[oidc]")?,
            None => OidcSection::default(),
        };
        let mut server = toml::Value::Table(table).try_into::<ServerSettings>()?;
        server.oidc_issuer = oidc.issuer;
        server.oidc_client_id = oidc.client_id;
        server.oidc_client_secret = oidc.client_secret;
        server.oidc_client_secret_file = oidc.client_secret_file;
        server.oidc_auto_join_role = oidc.auto_join_role;
        server.oidc_auto_join_workspace = oidc.auto_join_workspace;
        server.webhook_retry_schedule = webhooks.retry_schedule;
        server.webhook_allow_private = webhooks.allow_private;
        server.webhook_timeout = webhooks.timeout;
        server.tls_cert = tls.cert;
        server.tls_key = tls.key;
        Ok(ConfigFile { listen, ext_authz, server, gateway })
    }

    /// The file named by `--config` / `KEYWARD_SERVER_CONFIG`, or none.
    pub fn from_arg(path: Option<&Path>) -> Result<ConfigFile> {
        path.map(Self::load).transpose().map(Option::unwrap_or_default)
    }
}

/// `N/WINDOW` (`30/1m`): at least one per window of at least a second.
fn per_window(s: &str) -> Option<(u32, Duration)> {
    let (n, window) = s.trim().split_once('/')?;
    let n: u32 = n.trim().parse().ok().filter(|n| *n >= 1)?;
    let Span(window) = window.trim().parse().ok()?;
    (window >= Duration::from_secs(1)).then_some((n, window))
}

impl ServerSettings {
    /// The defaults, in this form (for `config show`).
    pub fn defaults() -> ServerSettings {
        let d = ServerConfig::default();
        ServerSettings {
            data_dir: Some(PathBuf::from(DEFAULT_DATA_DIR)),
            database_url: None,
            database_pool_size: None,
            verify_token: None,
            redis_url: None,
            ratelimit_on_error: Some("allow".into()),
            credits_on_error: Some(d.credits_on_error.as_str().into()),
            trusted_proxies: Some(d.trusted_proxies.iter().map(ToString::to_string).collect()),
            cache_capacity: Some(d.cache_capacity),
            warm_keys: Some(d.warm.0),
            warm_within: d.warm.1.to_std().ok().map(Span),
            flush_interval: Some(Span(d.flush_interval)),
            poll_interval: Some(Span(d.poll_interval)),
            body_limit: Some(d.body_limit),
            signature_window: Some(Span(d.signature_window)),
            session_ttl: Some(Span(d.session_ttl)),
            invite_ttl: Some(Span(d.invite_ttl)),
            lockout_attempts: Some(d.account_lockout.0),
            lockout_duration: Some(Span(d.account_lockout.1)),
            ip_lockout_attempts: Some(d.ip_lockout.0),
            ip_lockout_window: Some(Span(d.ip_lockout.1)),
            sweep_interval: Some(Span(d.sweep_interval)),
            header_read_timeout: Some(Span(d.header_read_timeout)),
            body_read_timeout: Some(Span(d.body_read_timeout)),
            max_connections: Some(d.max_connections),
            http_threads: Some(d.http_threads),
            cache_revalidate_interval: Some(Span(d.cache_revalidate_interval)),
            audit_retention_days: d.audit_retention_days,
            usage_minutes_kept: d.usage_retention.0.to_std().ok().map(Span),
            usage_hours_kept: d.usage_retention.1.to_std().ok().map(Span),
            usage_days_kept: d.usage_retention.2.to_std().ok().map(Span),
            secret_scanning_keys_url: Some(d.secret_scanning_keys_url.clone()),
            leak_report_limit: Some(format!("{}/{}", d.leak_report_limit.0, Span(d.leak_report_limit.1))),
            oauth_token_limit: Some(format!("{}/{}", d.oauth_token_limit.0, Span(d.oauth_token_limit.1))),
            public_url: None,
            log_format: Some("text".into()),
            webhook_retry_schedule: None,
            webhook_allow_private: Some(d.webhook_allow_private),
            webhook_timeout: Some(Span(d.webhook_timeout)),
            tls_cert: None,
            tls_key: None,
            oidc_issuer: None,
            oidc_client_id: None,
            oidc_client_secret: None,
            oidc_client_secret_file: None,
            oidc_auto_join_role: None,
            oidc_auto_join_workspace: None,
        }
    }

    /// Are log lines JSON? (`log_format` is `text` or `json`.)
    pub fn json_logs(&self) -> Result<bool> {
        match self.log_format.as_deref() {
            None | Some("text") => Ok(false),
            Some("json") => Ok(true),
            Some(other) => bail!("log_format: {other:?} is neither text nor json"),
        }
    }

    /// Where the database is.
    pub fn storage(&self) -> StorageArgs {
        StorageArgs {
            data_dir: self.data_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            database_url: self.database_url.as_ref().map(|u| u.0.clone()),
            pool_size: self.database_pool_size,
        }
    }

    /// The server's configuration: what is set here, the default for the rest.
    pub fn resolve(&self, listen: SocketAddr) -> Result<ServerConfig> {
        // Not part of ServerConfig (the store is opened with it, `storage()`): checked here,
        // before anything is opened.
        if self.database_pool_size.is_some_and(|n| n == 0 || n > 1000) {
            bail!("database_pool_size must be between 1 and 1000");
        }
        let mut c = ServerConfig { listen, ..ServerConfig::default() };
        let positive = |name: &str, s: Option<Span>| -> Result<Option<Duration>> {
            match s {
                Some(Span(d)) if d.is_zero() => bail!("{name} must be more than 0"),
                other => Ok(other.map(|s| s.0)),
            }
        };
        if let Some(t) = &self.verify_token {
            if t.expose().is_empty() {
                bail!("verify_token must not be empty");
            }
            c.verify_token = Some(t.clone());
        }
        if let Some(u) = &self.redis_url {
            let url = u.expose().trim();
            let cluster_or_one = url.split(',').all(|part| part.trim().starts_with("redis://"));
            if !cluster_or_one && !url.starts_with("redis+sentinel://") {
                bail!("redis_url must be redis://…, several redis://… comma-separated (a Redis Cluster), or redis+sentinel://…");
            }
            c.redis_url = Some(u.clone());
        }
        if let Some(m) = &self.ratelimit_on_error {
            c.ratelimit_on_error = keyward_server::limits::redis::OnError::parse(m)
                .with_context(|| format!("ratelimit_on_error: {m:?} is neither allow nor deny"))?;
        }
        if let Some(m) = &self.credits_on_error {
            c.credits_on_error = keyward_server::limits::redis::OnError::parse(m)
                .with_context(|| format!("credits_on_error: {m:?} is neither deny nor allow"))?;
        }
        if let Some(list) = &self.trusted_proxies {
            c.trusted_proxies = list
                .iter()
                .map(|s| {
                    keyward_core::ip::parse_entry(s)
                        .with_context(|| format!("trusted_proxies: {s:?} is not an IP or CIDR"))
                })
                .collect::<Result<_>>()?;
        }
        if let Some(n) = self.cache_capacity {
            c.cache_capacity = n;
        }
        if let Some(n) = self.body_limit {
            c.body_limit = n;
        }
        if let Some(n) = self.warm_keys {
            c.warm.0 = n;
        }
        if let Some(d) = positive("warm_within", self.warm_within)? {
            c.warm.1 = chrono::Duration::from_std(d).context("warm_within is too long")?;
        }
        let set = |slot: &mut Duration, v: Option<Duration>| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set(&mut c.flush_interval, positive("flush_interval", self.flush_interval)?);
        set(&mut c.poll_interval, positive("poll_interval", self.poll_interval)?);
        set(&mut c.signature_window, positive("signature_window", self.signature_window)?);
        set(&mut c.session_ttl, positive("session_ttl", self.session_ttl)?);
        set(&mut c.invite_ttl, positive("invite_ttl", self.invite_ttl)?);
        set(&mut c.account_lockout.1, positive("lockout_duration", self.lockout_duration)?);
        set(&mut c.ip_lockout.1, positive("ip_lockout_window", self.ip_lockout_window)?);
        set(&mut c.sweep_interval, positive("sweep_interval", self.sweep_interval)?);
        set(&mut c.header_read_timeout, positive("header_read_timeout", self.header_read_timeout)?);
        set(&mut c.body_read_timeout, positive("body_read_timeout", self.body_read_timeout)?);
        set(&mut c.cache_revalidate_interval, positive("cache_revalidate_interval", self.cache_revalidate_interval)?);
        set(&mut c.webhook_timeout, positive("webhook_timeout", self.webhook_timeout)?);
        self.json_logs()?;
        let kept =
            |name: &str, s: Option<Span>, slot: &mut chrono::Duration, at_least: chrono::Duration| -> Result<()> {
                if let Some(Span(d)) = s {
                    let d = chrono::Duration::from_std(d).with_context(|| format!("{name} is too long"))?;
                    if d < at_least {
                        bail!("{name} must be at least {}h", at_least.num_hours());
                    }
                    *slot = d;
                }
                Ok(())
            };
        // Hours are rolled from minutes and days from hours: each must outlive its bucket.
        kept("usage_minutes_kept", self.usage_minutes_kept, &mut c.usage_retention.0, chrono::Duration::hours(2))?;
        kept("usage_hours_kept", self.usage_hours_kept, &mut c.usage_retention.1, chrono::Duration::hours(48))?;
        kept("usage_days_kept", self.usage_days_kept, &mut c.usage_retention.2, chrono::Duration::days(2))?;
        if let Some(sched) = &self.webhook_retry_schedule {
            c.webhook_retry_schedule = keyward_core::webhooks::parse_schedule(sched).with_context(|| {
                format!("webhook_retry_schedule: {sched:?} is not a list of durations like 5s,5m,30m (at most 20)")
            })?;
        }
        if let Some(v) = self.webhook_allow_private {
            c.webhook_allow_private = v;
        }
        if let Some(u) = &self.secret_scanning_keys_url {
            match reqwest::Url::parse(u) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => c.secret_scanning_keys_url = u.clone(),
                _ => bail!("secret_scanning_keys_url: {u:?} is not an http(s) URL"),
            }
        }
        if let Some(l) = &self.leak_report_limit {
            c.leak_report_limit = per_window(l).ok_or_else(|| {
                anyhow::anyhow!(
                    "leak_report_limit: {l:?} is not N/WINDOW with N at least 1 and WINDOW at least 1s, e.g. 30/1m"
                )
            })?;
        }
        if let Some(l) = &self.oauth_token_limit {
            c.oauth_token_limit = per_window(l).ok_or_else(|| {
                anyhow::anyhow!(
                    "oauth_token_limit: {l:?} is not N/WINDOW with N at least 1 and WINDOW at least 1s, e.g. 30/1m"
                )
            })?;
        }
        if let Some(u) = &self.public_url {
            match reqwest::Url::parse(u) {
                Ok(url)
                    if matches!(url.scheme(), "http" | "https")
                        && url.query().is_none()
                        && url.fragment().is_none() =>
                {
                    c.public_url = Some(u.trim_end_matches('/').to_string())
                }
                _ => bail!("public_url: {u:?} is not an http(s) URL without a query"),
            }
        }
        c.oidc = self.oidc(c.public_url.as_deref())?;
        c.tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(keyward_server::config::TlsFiles { cert: cert.clone(), key: key.clone() }),
            (None, None) => None,
            _ => bail!("tls_cert and tls_key go together"),
        };
        if let Some(days) = self.audit_retention_days {
            if days == 0 {
                bail!("audit_retention_days must be more than 0 (leave it out to keep every event)");
            }
            c.audit_retention_days = Some(days);
        }
        if let Some(n) = self.max_connections {
            if n == 0 {
                bail!("max_connections must be more than 0");
            }
            c.max_connections = n;
        }
        if let Some(n) = self.http_threads {
            if n == 0 || n > 1024 {
                bail!("http_threads must be between 1 and 1024");
            }
            c.http_threads = n;
        }
        if let Some(n) = self.lockout_attempts {
            c.account_lockout.0 = n.max(1);
        }
        if let Some(n) = self.ip_lockout_attempts {
            c.ip_lockout.0 = n.max(1);
        }
        Ok(c)
    }
}

impl ServerSettings {
    /// The console's single sign-on, when `oidc_issuer` is set; every other `oidc_*`
    /// setting needs it, and each error names the setting at fault.
    fn oidc(&self, public_url: Option<&str>) -> Result<Option<keyward_server::config::OidcConfig>> {
        let Some(issuer) = &self.oidc_issuer else {
            let others = [
                ("oidc_client_id", self.oidc_client_id.is_some()),
                ("oidc_client_secret", self.oidc_client_secret.is_some()),
                ("oidc_client_secret_file", self.oidc_client_secret_file.is_some()),
                ("oidc_auto_join_role", self.oidc_auto_join_role.is_some()),
                ("oidc_auto_join_workspace", self.oidc_auto_join_workspace.is_some()),
            ];
            if let Some((name, _)) = others.iter().find(|(_, set)| *set) {
                bail!("{name} is set but oidc_issuer is not: single sign-on needs the provider's issuer URL");
            }
            return Ok(None);
        };
        match reqwest::Url::parse(issuer) {
            Ok(url)
                if url.query().is_none()
                    && url.fragment().is_none()
                    && (url.scheme() == "https" || (url.scheme() == "http" && is_loopback(&url))) => {}
            _ => bail!("oidc_issuer: {issuer:?} is not an https:// URL without a query (http:// only on the loopback)"),
        }
        if public_url.is_none() {
            bail!(
                "oidc_issuer needs public_url: the provider sends people back to PUBLIC_URL{}",
                keyward_server::config::OIDC_CALLBACK
            );
        }
        let client_id = match self.oidc_client_id.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => bail!("oidc_client_id is required with oidc_issuer"),
        };
        let client_secret = match (&self.oidc_client_secret, &self.oidc_client_secret_file) {
            (Some(_), Some(_)) => {
                bail!("oidc_client_secret and oidc_client_secret_file are two ways to say one thing: set one")
            }
            (Some(s), None) => s.expose().to_string(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| format!("oidc_client_secret_file: cannot read {}", path.display()))?
                .trim()
                .to_string(),
            (None, None) => bail!("oidc_client_secret (or oidc_client_secret_file) is required with oidc_issuer"),
        };
        if client_secret.is_empty() {
            bail!("oidc_client_secret must not be empty");
        }
        let auto_join = match (&self.oidc_auto_join_role, &self.oidc_auto_join_workspace) {
            (None, None) => None,
            (Some(_), None) => bail!("oidc_auto_join_role needs oidc_auto_join_workspace (the workspace id to join)"),
            (None, Some(_)) => bail!("oidc_auto_join_workspace needs oidc_auto_join_role (the role to join with)"),
            (Some(role), Some(ws)) => {
                let role = match keyward_core::roles::Role::parse(role.trim()) {
                    Some(keyward_core::roles::Role::Owner) => {
                        bail!("oidc_auto_join_role: nobody joins as owner by signing in; invite owners")
                    }
                    Some(r) => r,
                    None => bail!("oidc_auto_join_role: {role:?} is not admin, manager, developer, operator or viewer"),
                };
                let ws = ws.trim();
                if ws.is_empty() {
                    bail!("oidc_auto_join_workspace must not be empty");
                }
                Some(keyward_server::config::AutoJoin { workspace_id: ws.to_string(), role })
            }
        };
        Ok(Some(keyward_server::config::OidcConfig {
            // As given: it must equal the provider's `issuer` (some end in a slash).
            issuer: issuer.clone(),
            client_id,
            client_secret: Secret::from(client_secret),
            auto_join,
        }))
    }
}

/// Is `url`'s host this machine (where plain HTTP to a provider may be allowed: tests, a
/// provider beside the server)?
fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        for (s, d) in [("200ms", 200), ("2", 2000), ("2s", 2000), ("15m", 900_000), ("12h", 43_200_000)] {
            assert_eq!(s.parse::<Span>().ok(), Some(Span(Duration::from_millis(d))), "{s}");
        }
        assert!("2x".parse::<Span>().is_err());
        assert!("".parse::<Span>().is_err());
        assert_eq!(Span(Duration::from_secs(7 * 86_400)).to_string(), "7d");
        assert_eq!(Span(Duration::from_millis(1500)).to_string(), "1500ms");
    }

    #[test]
    fn redis_urls_one_a_cluster_or_sentinel() {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let set =
            |u: &str| ServerSettings { redis_url: Some(Secret::new(u)), ..ServerSettings::default() }.resolve(listen);
        for good in ["redis://h:6379", "redis://a:1, redis://b:2,redis://c:3", "redis+sentinel://s1,s2:5000/kw"] {
            assert!(set(good).is_ok(), "{good}");
        }
        for bad in ["http://h", "redis://a:1,http://b", "h:6379"] {
            let e = set(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("redis_url"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_database_pool_size_is_set_and_bounded() {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let set = |n| ServerSettings { database_pool_size: Some(n), ..ServerSettings::default() };
        assert_eq!(set(4).storage().pool_size, Some(4));
        assert_eq!(ServerSettings::default().storage().pool_size, None, "the backend's default");
        for bad in [0, 1001] {
            let e = set(bad).resolve(listen).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("database_pool_size"), "{bad}: {e}");
        }
    }

    #[test]
    fn http_threads_are_set_and_bounded() {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let set = |n| ServerSettings { http_threads: Some(n), ..ServerSettings::default() }.resolve(listen);
        assert_eq!(set(3).map(|c| c.http_threads).ok(), Some(3));
        for bad in [0, 1025] {
            let e = set(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("http_threads"), "{bad}: {e}");
        }
        let default = ServerSettings::default().resolve(listen).map(|c| c.http_threads).ok();
        assert_eq!(default, Some(ServerConfig::default().http_threads));
    }

    #[test]
    fn warming_at_start_is_set_by_count_and_age() {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let set = |n: Option<u64>, within: Option<&str>| {
            let within = within.map(|w| w.parse::<Span>()).transpose().ok().flatten();
            ServerSettings { warm_keys: n, warm_within: within, ..ServerSettings::default() }.resolve(listen)
        };
        assert_eq!(set(None, None).map(|c| c.warm).ok(), Some(ServerConfig::default().warm));
        let c = set(Some(0), Some("6h")).map(|c| c.warm).ok();
        assert_eq!(c, Some((0, chrono::Duration::hours(6))), "0 keys turns warming off");
        let e = set(None, Some("0s")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("warm_within"), "{e}");
        // The defaults, as `config show` prints them, resolve to the server's.
        let shown = ServerSettings::defaults();
        let c = ServerSettings { warm_keys: shown.warm_keys, warm_within: shown.warm_within, ..Default::default() };
        assert_eq!(c.resolve(listen).map(|c| c.warm).ok(), Some(ServerConfig::default().warm));
    }

    #[test]
    fn leak_report_limits_are_n_per_window() {
        assert_eq!(per_window("30/1m"), Some((30, Duration::from_secs(60))));
        assert_eq!(per_window(" 5 / 10s "), Some((5, Duration::from_secs(10))));
        assert_eq!(per_window("1/1"), Some((1, Duration::from_secs(1))));
        for bad in ["0/1m", "30", "30/", "/1m", "30/500ms", "30/0s", "x/1m", "30/1x", "-1/1m", "30/1m/2"] {
            assert_eq!(per_window(bad), None, "{bad}");
        }
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let set =
            |l: &str| ServerSettings { leak_report_limit: Some(l.into()), ..ServerSettings::default() }.resolve(listen);
        assert_eq!(set("9/2h").map(|c| c.leak_report_limit).ok(), Some((9, Duration::from_secs(7200))));
        let e = set("lots").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("leak_report_limit"), "{e}");
        // The default, as `config show` prints it, parses back to the server's default.
        let shown = ServerSettings::defaults().leak_report_limit.unwrap_or_default();
        assert_eq!(per_window(&shown), Some(ServerConfig::default().leak_report_limit));
        // Tokens per installation take the same form, and name their own field.
        let set =
            |l: &str| ServerSettings { oauth_token_limit: Some(l.into()), ..ServerSettings::default() }.resolve(listen);
        assert_eq!(set("4/1h").map(|c| c.oauth_token_limit).ok(), Some((4, Duration::from_secs(3600))));
        let e = set("0/1m").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("oauth_token_limit"), "{e}");
        let shown = ServerSettings::defaults().oauth_token_limit.unwrap_or_default();
        assert_eq!(per_window(&shown), Some(ServerConfig::default().oauth_token_limit));
    }

    #[test]
    fn passwords_in_database_urls_are_hidden() {
        let u = DatabaseUrl("postgres://kw:s3cr3t@db:5432/keyward?sslmode=require".into());
        assert_eq!(u.redacted(), "postgres://kw:<redacted>@db:5432/keyward?sslmode=require");
        assert!(!format!("{u:?}").contains("s3cr3t"));
        assert_eq!(DatabaseUrl("postgres://kw@db/k".into()).redacted(), "postgres://kw@db/k");
    }

    #[test]
    fn file_layers_and_unknown_keys() {
        let f = ConfigFile::parse(
            "listen = \"127.0.0.1:7000\"\nflush_interval = 5\nsession_ttl = \"1h\"\n[gateway]\nupstream = \"http://u\"\n",
        )
        .map_err(|e| e.to_string());
        let f = f.as_ref().map_err(String::as_str);
        assert!(f.is_ok(), "{f:?}");
        let Ok(f) = f else { return };
        assert_eq!(f.listen, "127.0.0.1:7000".parse().ok());
        assert_eq!(f.server.flush_interval, Some(Span(Duration::from_secs(5))));
        assert_eq!(f.gateway.upstream.as_deref(), Some("http://u"));
        let err = ConfigFile::parse("flush_intervall = 5\n").map(|_| ()).map_err(|e| format!("{e:#}"));
        assert!(err.as_ref().is_err_and(|e| e.contains("flush_intervall")), "{err:?}");
        let err = ConfigFile::parse("[gateway]\nupstreem = \"x\"\n").map(|_| ()).map_err(|e| format!("{e:#}"));
        assert!(err.as_ref().is_err_and(|e| e.contains("upstreem")), "{err:?}");
    }

    #[test]
    fn ext_authz_listen_from_its_section() {
        let f = ConfigFile::parse("[ext_authz]\nlisten = \"127.0.0.1:5398\"\n").map(|f| f.ext_authz.listen).ok();
        assert_eq!(f, Some("127.0.0.1:5398".parse().ok()));
        let err = ConfigFile::parse("[ext_authz]\nlisen = \"x\"\n").map(|_| ()).map_err(|e| format!("{e:#}"));
        assert!(err.as_ref().is_err_and(|e| e.contains("lisen")), "{err:?}");
    }

    #[test]
    fn path_parameters_are_allowed_by_flag_or_file() {
        use clap::Parser;
        #[derive(Parser)]
        struct Flags {
            #[command(flatten)]
            gateway: GatewaySettings,
        }
        let flag = |args: &[&str]| Flags::try_parse_from(args).map(|f| f.gateway.allow_path_parameters).ok();
        assert_eq!(flag(&["gw"]), Some(None));
        assert_eq!(flag(&["gw", "--allow-path-parameters"]), Some(Some(true)));
        assert_eq!(flag(&["gw", "--allow-path-parameters=false"]), Some(Some(false)));
        let file = ConfigFile::parse("[gateway]\nallow_path_parameters = true\n").map(|f| f.gateway).ok();
        assert_eq!(file.as_ref().and_then(|g| g.allow_path_parameters), Some(true));
        let file = file.unwrap_or_default();
        assert_eq!(GatewaySettings::default().or(file.clone()).allow_path_parameters, Some(true));
        let off = GatewaySettings { allow_path_parameters: Some(false), ..Default::default() };
        assert_eq!(off.or(file).allow_path_parameters, Some(false), "the flag wins over the file");
    }

    #[test]
    fn single_sign_on_settings_are_checked_by_name() {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let full = || ServerSettings {
            public_url: Some("https://keys.example.com".into()),
            oidc_issuer: Some("https://login.example.com/realms/staff".into()),
            oidc_client_id: Some("keyward".into()),
            oidc_client_secret: Some(Secret::from("s3cr3t-value")),
            ..ServerSettings::default()
        };
        let err = |s: ServerSettings| s.resolve(listen).err().map(|e| format!("{e:#}")).unwrap_or_default();
        let c = full().resolve(listen).map_err(|e| e.to_string());
        let oidc = c.as_ref().ok().and_then(|c| c.oidc.clone());
        assert_eq!(oidc.as_ref().map(|o| o.client_id.as_str()), Some("keyward"), "{c:?}");
        assert_eq!(oidc.as_ref().map(|o| o.client_secret.expose()), Some("s3cr3t-value"));
        assert!(!format!("{c:?}").contains("s3cr3t-value"), "the secret is never shown");
        assert!(ServerSettings::default().resolve(listen).is_ok_and(|c| c.oidc.is_none()));
        for (bad, field) in [
            (ServerSettings { public_url: None, ..full() }, "public_url"),
            (ServerSettings { oidc_issuer: Some("http://login.example.com".into()), ..full() }, "oidc_issuer"),
            (ServerSettings { oidc_issuer: Some("not a url".into()), ..full() }, "oidc_issuer"),
            (ServerSettings { oidc_client_id: None, ..full() }, "oidc_client_id"),
            (ServerSettings { oidc_client_secret: None, ..full() }, "oidc_client_secret"),
            (ServerSettings { oidc_client_secret: Some(Secret::from("")), ..full() }, "oidc_client_secret"),
            (ServerSettings { oidc_client_secret_file: Some("/x".into()), ..full() }, "oidc_client_secret_file"),
            (ServerSettings { oidc_auto_join_role: Some("developer".into()), ..full() }, "oidc_auto_join_workspace"),
            (ServerSettings { oidc_auto_join_workspace: Some("ws_1".into()), ..full() }, "oidc_auto_join_role"),
            (
                ServerSettings {
                    oidc_auto_join_role: Some("owner".into()),
                    oidc_auto_join_workspace: Some("ws_1".into()),
                    ..full()
                },
                "oidc_auto_join_role",
            ),
            (
                ServerSettings {
                    oidc_auto_join_role: Some("boss".into()),
                    oidc_auto_join_workspace: Some("ws_1".into()),
                    ..full()
                },
                "oidc_auto_join_role",
            ),
            (ServerSettings { oidc_issuer: None, ..full() }, "oidc_client_id"),
        ] {
            let e = err(bad);
            assert!(e.contains(field), "{field}: {e}");
        }
        // Plain HTTP only to a provider on this machine; the secret from a file, trimmed.
        let dir = std::env::temp_dir().join(format!("kw-oidc-secret-{}", std::process::id()));
        std::fs::write(&dir, "from-a-file\n").unwrap();
        let local = ServerSettings {
            oidc_issuer: Some("http://127.0.0.1:9000".into()),
            oidc_client_secret: None,
            oidc_client_secret_file: Some(dir.clone()),
            oidc_auto_join_role: Some("viewer".into()),
            oidc_auto_join_workspace: Some("ws_1".into()),
            ..full()
        };
        let oidc = local.resolve(listen).ok().and_then(|c| c.oidc);
        std::fs::remove_file(&dir).ok();
        assert_eq!(oidc.as_ref().map(|o| o.client_secret.expose()), Some("from-a-file"));
        let join = oidc.and_then(|o| o.auto_join);
        assert_eq!(join.map(|j| (j.workspace_id, j.role)), Some(("ws_1".into(), keyward_core::roles::Role::Viewer)));
    }

    #[test]
    fn the_oidc_section_of_the_file() {
        let text = "public_url = \"https://k.example\"\n[oidc]\nissuer = \"https://idp.example\"\nclient_id = \"kw\"\n\
                    client_secret = \"shh\"\nauto_join_role = \"viewer\"\nauto_join_workspace = \"ws_1\"\n";
        let f = ConfigFile::parse(text).map_err(|e| e.to_string());
        let s = f.as_ref().map(|f| f.server.clone()).unwrap_or_default();
        assert_eq!(s.oidc_issuer.as_deref(), Some("https://idp.example"), "{f:?}");
        assert_eq!(s.oidc_client_secret.as_ref().map(Secret::expose), Some("shh"));
        let shown = toml::to_string(&OidcSection::of(&s)).unwrap_or_default();
        assert!(shown.contains("client_id = \"kw\"") && !shown.contains("shh"), "{shown}");
        let err = ConfigFile::parse("[oidc]\nisuer = \"x\"\n").map(|_| ()).map_err(|e| format!("{e:#}"));
        assert!(err.as_ref().is_err_and(|e| e.contains("isuer")), "{err:?}");
    }

    #[test]
    fn flags_over_file_over_defaults() {
        let flags = ServerSettings { cache_capacity: Some(10), ..Default::default() };
        let file = ServerSettings { cache_capacity: Some(20), body_limit: Some(30), ..Default::default() };
        let merged = flags.or(file);
        let listen = SocketAddr::from(([127, 0, 0, 1], 1));
        let c = merged.resolve(listen).map_err(|e| e.to_string());
        assert!(c.is_ok(), "{c:?}");
        let Ok(c) = c else { return };
        assert_eq!((c.cache_capacity, c.body_limit), (10, 30));
        assert_eq!(c.session_ttl, ServerConfig::default().session_ttl);
    }
}
