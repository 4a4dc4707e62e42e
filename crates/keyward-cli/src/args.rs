//! Command-line shape. Every server flag can also be set as `KEYWARD_<FLAG>` or in the
//! config file (see `settings.rs`).

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

pub use crate::datadir::StorageArgs;
use crate::settings::{GatewaySettings, ServerSettings};

#[derive(Debug, Parser)]
#[command(name = "keyward", version, about = "Self-hosted API key management")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the storage, a workspace, its owner, and print the owner's management key once.
    Init(InitArgs),
    /// Run the server (initialises an empty data dir first).
    Serve(ServeArgs),
    /// Run a reverse proxy that lets through only requests with a valid key or signature.
    Gateway(GatewayArgs),
    /// Save a server URL and management key in ~/.keyward/config.toml.
    Login(LoginArgs),
    /// End the saved session (a password login) and forget the saved credentials.
    Logout(LogoutArgs),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Verify a secret key (exit status 0 when valid, 1 when not).
    Verify(VerifyArgs),
    /// Send a request signed with the configured key pair to the environment's api_host.
    Request(RequestArgs),
    /// Manage workspaces (tenants) directly in the database.
    #[command(subcommand)]
    Workspaces(WorkspacesCommand),
    /// Operator tokens (kw_op_…: the operator API, docs/OPERATORS.md), directly in the database.
    #[command(subcommand, name = "operator-tokens")]
    OperatorTokens(OperatorTokensCommand),
    /// Members, their roles and your own password and MFA.
    #[command(subcommand)]
    Members(MembersCommand),
    /// Approval requests: list, show, approve, reject, cancel.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// The workspace policy: approvals per key action, key lifetimes, required MFA.
    #[command(subcommand)]
    Policies(PoliciesCommand),
    /// Roles that grant keys permissions (the member roles among them).
    #[command(subcommand)]
    Roles(RolesCommand),
    /// Service accounts: integration users that own keys and cannot log in.
    #[command(subcommand, name = "service-accounts")]
    ServiceAccounts(ServiceAccountsCommand),
    /// The tamper-evident audit trail: list, export, verify, head.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Webhook endpoints and their deliveries, and the callback signing key.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Identities: customers whose limits and credits their keys share.
    #[command(subcommand)]
    Identities(IdentitiesCommand),
    /// Management keys: credentials acting as a member, for scripts (yours; owners and
    /// admins see and revoke every member's).
    #[command(subcommand, name = "management-keys")]
    ManagementKeys(ManagementKeysCommand),
    /// Verify tokens: bind verification calls to this workspace (`Keyward-Verify-Token`).
    #[command(subcommand, name = "verify-tokens")]
    VerifyTokens(VerifyTokensCommand),
    /// Apps: register one with the configured APP pair, install others', buy tokens.
    #[command(subcommand)]
    Apps(AppsCommand),
    /// The server's configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Rate limiting as a service (limits not about keys) and its overrides per identifier.
    #[command(subcommand)]
    Ratelimit(RatelimitCommand),
    /// Find Keyward keys in files or a git history (exit 1 when one is found, 0 when none,
    /// 2 on errors); a key's start is printed, never the whole key.
    Scan(ScanArgs),
}

/// `keyward scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files and folders to scan [default: .]; with --git, the repository [default: .].
    pub paths: Vec<PathBuf>,
    /// Scan every blob in the repository's history (needs `git` on PATH).
    #[arg(long)]
    pub git: bool,
    /// Print the findings as a JSON array.
    #[arg(long)]
    pub json: bool,
    /// Send each key found to this server's `POST /v1/leaks` (its base URL).
    #[arg(long, value_name = "URL")]
    pub report: Option<String>,
    /// Print a gitleaks rule for Keyward keys and exit.
    #[arg(long)]
    pub gitleaks_config: bool,
}

/// `keyward ratelimit …`.
#[derive(Debug, Subcommand)]
pub enum RatelimitCommand {
    /// Spend `--cost` of an identifier's limit in a namespace (exit status 1 when refused).
    Limit {
        #[command(flatten)]
        remote: Remote,
        /// e.g. `login`, `sms`
        #[arg(long)]
        namespace: String,
        /// Whom it counts, e.g. a user id, an email or an address.
        #[arg(long)]
        identifier: String,
        /// Uses allowed per duration.
        #[arg(long)]
        limit: u64,
        /// The window, e.g. 60s, 15m, 1h.
        #[arg(long)]
        duration: String,
        /// Uses this request spends (0: look only; default 1).
        #[arg(long)]
        cost: Option<u64>,
    },
    /// Overrides: another limit for one identifier (or a `*` pattern) of a namespace.
    #[command(subcommand)]
    Overrides(OverridesCommand),
}

#[derive(Debug, Subcommand)]
pub enum OverridesCommand {
    /// List overrides, by id.
    List {
        #[command(flatten)]
        remote: Remote,
        /// Only this namespace's.
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Set (create or replace) the override of a namespace's identifier.
    Set {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        identifier: String,
        #[arg(long)]
        limit: u64,
        /// e.g. 60s, 15m, 1h.
        #[arg(long)]
        duration: String,
    },
    /// Delete an override by id.
    Delete {
        #[command(flatten)]
        remote: Remote,
        id: String,
    },
}

/// `keyward management-keys …`.
#[derive(Debug, Subcommand)]
pub enum ManagementKeysCommand {
    /// List management keys, never their secrets.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Create a management key acting as you, with your role; printed once.
    Create {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        name: Option<String>,
        /// e.g. 90d (default: the longest the policy allows).
        #[arg(long)]
        expires_in: Option<String>,
        /// A fresh code from your authenticator (needed when you have MFA).
        #[arg(long)]
        otp: Option<String>,
    },
    /// Revoke a management key at once, on every node.
    Revoke {
        #[command(flatten)]
        remote: Remote,
        id: String,
    },
}

/// `keyward verify-tokens …`.
#[derive(Debug, Subcommand)]
pub enum VerifyTokensCommand {
    /// List verify tokens, never the tokens themselves.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Create a verify token; printed once.
    Create {
        #[command(flatten)]
        remote: Remote,
        /// What it is for, e.g. "billing-api gateway".
        #[arg(long)]
        name: Option<String>,
    },
    /// Revoke a verify token at once, on every node.
    Revoke {
        #[command(flatten)]
        remote: Remote,
        id: String,
    },
}

/// How the CLI gets a password: never from a flag, so it stays out of shell history.
#[derive(Debug, Args, Clone)]
pub struct PasswordInput {
    /// Read the password from the first line of stdin (else KEYWARD_PASSWORD, else a prompt).
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// List the workspace's members.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Invite a member; prints the one-time setup token to hand them.
    Invite {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        email: String,
        /// owner, admin, manager, developer, operator or viewer
        #[arg(long)]
        role: String,
    },
    /// Accept an invitation: set your password with the setup token.
    Setup {
        #[command(flatten)]
        remote: Remote,
        #[arg(long = "setup-token", env = "KEYWARD_SETUP_TOKEN", hide_env_values = true)]
        setup_token: String,
        #[command(flatten)]
        password: PasswordInput,
    },
    /// Change a member's role.
    SetRole {
        #[command(flatten)]
        remote: Remote,
        id: String,
        role: String,
    },
    /// Remove a member with their sessions and management keys.
    Remove {
        #[command(flatten)]
        remote: Remote,
        id: String,
    },
    /// Show who you are.
    Me {
        #[command(flatten)]
        remote: Remote,
    },
    /// Set your password (asks for the current one when there is one: KEYWARD_CURRENT_PASSWORD).
    Password {
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        password: PasswordInput,
    },
    /// Start TOTP enrolment: prints the secret and otpauth:// URI for your authenticator app.
    MfaEnrol {
        #[command(flatten)]
        remote: Remote,
    },
    /// Finish TOTP enrolment with a code; prints your recovery codes once.
    MfaConfirm {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        otp: String,
    },
    /// Turn TOTP off (needs a code).
    MfaDisable {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        otp: String,
    },
    /// Create a management key acting as you (for scripts); printed once.
    CreateKey {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        name: Option<String>,
        /// e.g. 90d (default: until revoked).
        #[arg(long)]
        expires_in: Option<String>,
        /// A fresh code from your authenticator (needed when you have MFA).
        #[arg(long)]
        otp: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// List requests (default: pending).
    List {
        #[command(flatten)]
        remote: Remote,
        /// pending, approved, rejected, cancelled, expired, or all
        #[arg(long, default_value = "pending")]
        status: String,
    },
    /// Show one request.
    Show {
        #[command(flatten)]
        remote: Remote,
        id: String,
    },
    /// Approve a request with a fresh code from your authenticator.
    Approve {
        #[command(flatten)]
        remote: Remote,
        id: String,
        #[arg(long)]
        otp: String,
    },
    /// Reject a request with a fresh code from your authenticator.
    Reject {
        #[command(flatten)]
        remote: Remote,
        id: String,
        #[arg(long)]
        otp: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Cancel your own request.
    Cancel {
        #[command(flatten)]
        remote: Remote,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PoliciesCommand {
    /// Print the workspace policy.
    Show {
        #[command(flatten)]
        remote: Remote,
    },
    /// Change the policy: a JSON object of the fields to change, and/or flags.
    Set {
        #[command(flatten)]
        remote: Remote,
        /// e.g. '{"key.create": {"approvals": 2}, "temporary_max_days": 7}'
        body: Option<String>,
        /// ACTION=N or ACTION=half_of_admins, e.g. key.create=2 (repeatable).
        #[arg(long = "approvals")]
        approvals: Vec<String>,
        /// ACTION=ROLE,ROLE, e.g. key.create=owner,admin (repeatable).
        #[arg(long = "approver-roles")]
        approver_roles: Vec<String>,
        #[arg(long)]
        require_mfa: Option<bool>,
        #[arg(long)]
        temporary_max_days: Option<u32>,
        #[arg(long)]
        permanent_requires_ip_allowlist: Option<bool>,
    },
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Every endpoint of the workspace.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Register an endpoint; its secret is printed once.
    Create {
        #[command(flatten)]
        remote: Remote,
        /// Where deliveries go.
        url: String,
        /// Event types, `group.*` or `*` (repeat or separate by commas).
        #[arg(long = "event", alias = "events", value_delimiter = ',', required = true)]
        events: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    Show {
        #[command(flatten)]
        remote: Remote,
        id: String,
    },
    /// Change the URL, events or description; disable or enable.
    Update {
        #[command(flatten)]
        remote: Remote,
        id: String,
        #[arg(long)]
        url: Option<String>,
        #[arg(long = "event", alias = "events", value_delimiter = ',')]
        events: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        #[arg(long)]
        enable: bool,
    },
    Delete {
        #[command(flatten)]
        remote: Remote,
        id: String,
    },
    /// A new secret, printed once; the old one keeps signing during the overlap.
    RotateSecret {
        #[command(flatten)]
        remote: Remote,
        id: String,
        /// e.g. 24h (the default), 0s to end the old secret at once.
        #[arg(long)]
        overlap: Option<String>,
    },
    /// Send a `webhook.test` event.
    Test {
        #[command(flatten)]
        remote: Remote,
        id: String,
    },
    /// Deliveries to an endpoint, newest first, with their attempts.
    Deliveries {
        #[command(flatten)]
        remote: Remote,
        id: String,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Try one delivery again now (same webhook-id).
    Retry {
        #[command(flatten)]
        remote: Remote,
        id: String,
        delivery_id: String,
    },
    /// The public key (whpk_…) per-key callbacks are signed with.
    SigningKey {
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Events, newest first.
    List {
        #[command(flatten)]
        remote: Remote,
        /// An action (key.create) or a prefix (key.*).
        #[arg(long)]
        action: Option<String>,
        /// A member id.
        #[arg(long)]
        actor: Option<String>,
        /// A key, member, role, service account or approval id.
        #[arg(long)]
        target: Option<String>,
        /// RFC 3339.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Every event as NDJSON, oldest first.
    Export {
        #[command(flatten)]
        remote: Remote,
        /// RFC 3339.
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339.
        #[arg(long)]
        until: Option<String>,
    },
    /// Recompute every workspace's chain from the database itself, with the pepper (exit 1
    /// when broken, or when the chain no longer holds the --anchor head).
    Verify {
        #[command(flatten)]
        storage: StorageArgs,
        /// Only this workspace.
        #[arg(long)]
        workspace: Option<String>,
        /// A signed head written earlier by `audit head --signed`: the chain must still hold it.
        #[arg(long)]
        anchor: Option<PathBuf>,
    },
    /// Print each workspace's chain head (seq and hash), to record elsewhere.
    Head {
        #[command(flatten)]
        storage: StorageArgs,
        #[arg(long)]
        workspace: Option<String>,
        /// Print the head as a JSON document signed with the workspace's anchor key (from the
        /// pepper), for `audit verify --anchor`; one workspace (--workspace when there are several).
        #[arg(long)]
        signed: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// List the workspace's roles, member roles first.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one role.
    Show {
        #[command(flatten)]
        remote: Remote,
        name: String,
    },
    /// Create a role.
    Create {
        #[command(flatten)]
        remote: Remote,
        name: String,
        /// Repeatable, or comma-separated; wildcards as in queries (`wallet.*`).
        #[arg(long = "permission", alias = "permissions", value_delimiter = ',')]
        permissions: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Change what a role grants (every key holding it, on every node).
    Update {
        #[command(flatten)]
        remote: Remote,
        name: String,
        /// The role's whole new list of permissions (repeatable, or comma-separated).
        #[arg(long = "permission", alias = "permissions", value_delimiter = ',')]
        permissions: Option<Vec<String>>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a role; refused while keys hold it unless --force (which takes it off them).
    Delete {
        #[command(flatten)]
        remote: Remote,
        name: String,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
// Parsed once per process; boxing variants would only make the matches noisier.
#[allow(clippy::large_enum_variant)]
pub enum ServiceAccountsCommand {
    /// List service accounts.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one service account.
    Show {
        #[command(flatten)]
        remote: Remote,
        id: String,
    },
    /// Create a service account with a role.
    Create {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        name: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// Change a service account's name, role or description.
    Update {
        #[command(flatten)]
        remote: Remote,
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Stop every key of the account at once (they answer DISABLED).
    Disable {
        #[command(flatten)]
        remote: Remote,
        id: String,
    },
    /// Let the account's keys work again.
    Enable {
        #[command(flatten)]
        remote: Remote,
        id: String,
    },
    /// Delete the account and revoke its keys.
    Delete {
        #[command(flatten)]
        remote: Remote,
        id: String,
    },
    /// Create a key owned by the account (its secret is shown once).
    CreateKey {
        #[command(flatten)]
        remote: Remote,
        id: String,
        #[command(flatten)]
        fields: KeyFields,
        #[arg(long = "env", alias = "environment", default_value = "test")]
        environment: String,
        /// e.g. 30d, 12h, 6mo, 1y
        #[arg(long)]
        expires_in: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkspacesCommand {
    /// Create a workspace with its owner; prints the owner's management key once.
    Create {
        #[command(flatten)]
        storage: StorageArgs,
        #[arg(long)]
        name: String,
        /// Key prefix of this workspace's keys.
        #[arg(long, default_value = "kw")]
        prefix: String,
        #[arg(long, default_value = "owner@localhost")]
        owner_email: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OperatorTokensCommand {
    /// Create an operator token; prints it once.
    Create {
        #[command(flatten)]
        storage: StorageArgs,
        /// What it is for, e.g. `billing automation`.
        #[arg(long, default_value = "operator token")]
        name: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List operator tokens (never their secrets).
    List {
        #[command(flatten)]
        storage: StorageArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an operator token by id: its calls are refused (401) at once.
    Revoke {
        #[command(flatten)]
        storage: StorageArgs,
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Where a key pair lives.
#[derive(Debug, Args, Clone)]
pub struct PairArgs {
    /// The config section (environment) of the pair.
    #[arg(long = "env", default_value = "test")]
    pub env: String,
    /// Config file (default ~/.keyward/config.toml, or KEYWARD_CONFIG).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// API or APP
    #[arg(long = "key-type", default_value = "API")]
    pub key_type: String,
}

#[derive(Debug, Args)]
pub struct RequestArgs {
    /// GET, POST, …
    pub method: String,
    /// e.g. /v2/wallets
    pub path: String,
    /// A query parameter K=V (repeatable), sent in this order.
    #[arg(long = "query")]
    pub query: Vec<String>,
    /// A JSON body.
    #[arg(long)]
    pub data: Option<String>,
    #[command(flatten)]
    pub pair: PairArgs,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Workspace name.
    #[arg(long, env = "KEYWARD_WORKSPACE", default_value = "default")]
    pub workspace: String,
    /// Key prefix, e.g. `caibo` gives `caibo_live_sk_…`.
    #[arg(long, env = "KEYWARD_PREFIX", default_value = "kw")]
    pub prefix: String,
    #[arg(long, env = "KEYWARD_OWNER_EMAIL", default_value = "owner@localhost")]
    pub owner_email: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the API listens [default: 127.0.0.1:5399].
    #[arg(long, env = "KEYWARD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Also serve Envoy's gRPC external authorization (ext_authz) here, e.g. 127.0.0.1:5398
    /// (`[ext_authz] listen` in the file; docs/ENVOY.md).
    #[arg(long, env = "KEYWARD_EXT_AUTHZ_LISTEN")]
    pub ext_authz_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub server: ServerSettings,
    #[command(flatten)]
    pub config: ConfigFileArg,
}

/// `--config FILE`: a TOML file of settings, below flags and `KEYWARD_*` variables.
#[derive(Debug, Args)]
pub struct ConfigFileArg {
    #[arg(long = "config", env = "KEYWARD_SERVER_CONFIG")]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GatewayArgs {
    #[command(flatten)]
    pub gateway: GatewaySettings,
    #[command(flatten)]
    pub server: ServerSettings,
    #[command(flatten)]
    pub config: ConfigFileArg,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective server configuration (flags, environment, file, defaults), secrets
    /// redacted.
    Show(ServeArgs),
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// e.g. http://127.0.0.1:5399
    #[arg(long)]
    pub server: String,
    /// A management key.
    #[arg(long, conflicts_with = "email", required_unless_present = "email")]
    pub token: Option<String>,
    /// Log in as a member with a password instead (a session token is saved).
    #[arg(long)]
    pub email: Option<String>,
    /// A TOTP code (or recovery code), when your account has MFA.
    #[arg(long, requires = "email")]
    pub otp: Option<String>,
    /// When your email is a member of several workspaces.
    #[arg(long, requires = "email")]
    pub workspace_id: Option<String>,
    /// A PEM CA certificate to trust for an https:// server with a private CA.
    #[arg(long, env = "KEYWARD_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    #[command(flatten)]
    pub password: PasswordInput,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    #[command(flatten)]
    pub remote: Remote,
}

/// Where the CLI sends management calls; defaults come from `keyward login`.
#[derive(Debug, Args, Clone)]
pub struct Remote {
    /// e.g. https://keyward.internal:5399 (a private CA: KEYWARD_CA_CERT=ca.pem).
    #[arg(long, global = true, env = "KEYWARD_SERVER")]
    pub server: Option<String>,
    #[arg(long, global = true, env = "KEYWARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A PEM CA certificate to trust for an https:// server with a private CA.
    #[arg(long, global = true, env = "KEYWARD_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `keyward keys …`: local key pairs and keys on the server, under one word.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    #[command(flatten)]
    Pair(PairCommand),
    #[command(flatten)]
    Server(ServerKeyCommand),
}

/// Key pairs for signed requests, kept on this machine.
#[derive(Debug, Subcommand)]
// Parsed once per process; boxing variants would only make the matches noisier.
#[allow(clippy::large_enum_variant)]
pub enum PairCommand {
    /// Generate a key pair for signed requests and save it; prints the public key only.
    Generate {
        #[command(flatten)]
        pair: PairArgs,
        /// ed25519 or secp256k1
        #[arg(long, default_value = "ed25519")]
        alg: String,
        /// Replace an existing pair.
        #[arg(long)]
        force: bool,
        /// Write a dotenv file (KEYWARD_API_KEY / KEYWARD_API_SECRET) instead of the config.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Where `keyward request` sends this environment's requests.
        #[arg(long)]
        api_host: Option<String>,
    },
    /// Check that a private key and a public key belong together (exit 0 when they do).
    Validate {
        #[arg(long)]
        alg: String,
        /// The private key, hex.
        #[arg(long, env = "KEYWARD_API_SECRET", hide_env_values = true)]
        secret: String,
        /// The public key, hex.
        #[arg(long)]
        pubkey: String,
    },
    /// Register the configured public key with the server.
    Register {
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        pair: PairArgs,
        #[command(flatten)]
        flags: RegisterFlags,
    },
}

/// What `keys register` sends besides the public key: every setting `keys create` takes.
#[derive(Debug, Args)]
pub struct RegisterFlags {
    #[command(flatten)]
    pub fields: KeyFields,
    /// test or live (default: --env when it is one of them, else test).
    #[arg(long)]
    pub environment: Option<String>,
    /// temporary or permanent (the pair's own --key-type is API or APP).
    #[arg(long = "type", id = "lifetime")]
    pub key_type: Option<String>,
    /// e.g. 30d, 12h, 6mo, 1y
    #[arg(long)]
    pub expires_in: Option<String>,
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

/// Keys on the server.
#[derive(Debug, Subcommand)]
pub enum ServerKeyCommand {
    /// Create a secret key (its secret is shown once).
    Create {
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        fields: KeyFields,
        #[arg(long = "env", alias = "environment", default_value = "test")]
        environment: String,
        /// temporary or permanent
        #[arg(long = "type")]
        key_type: Option<String>,
        /// e.g. 30d, 12h, 6mo, 1y
        #[arg(long)]
        expires_in: Option<String>,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// List keys, newest first.
    List {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        status: Option<String>,
        #[arg(long = "env", alias = "environment")]
        environment: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        /// Search name, id and start.
        #[arg(long)]
        q: Option<String>,
        /// Only the keys of the identity with this external id.
        #[arg(long)]
        external_id: Option<String>,
        /// Only the keys of this service account, or of this member (those no account owns).
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one key.
    Show {
        #[command(flatten)]
        remote: Remote,
        id: String,
    },
    /// Change a key's settings.
    Update {
        #[command(flatten)]
        remote: Remote,
        id: String,
        #[command(flatten)]
        fields: KeyFields,
        /// Remove the expiry.
        #[arg(long, conflicts_with = "expires_at")]
        no_expiry: bool,
        /// Disable the key: it answers DISABLED until enabled again (unlike revoking).
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        /// Enable a disabled key again.
        #[arg(long)]
        enable: bool,
        /// Detach the key from its identity.
        #[arg(long, conflicts_with = "external_id")]
        no_identity: bool,
    },
    /// Revoke a key at once.
    Revoke {
        #[command(flatten)]
        remote: Remote,
        id: String,
    },
    /// Verifications of a key over time: totals by code, a sparkline and a table.
    Usage {
        #[command(flatten)]
        remote: Remote,
        id: String,
        /// How far back, e.g. 90m, 24h (default), 7d.
        #[arg(long, default_value = "24h")]
        since: String,
        /// minute, hour (default) or day.
        #[arg(long)]
        granularity: Option<String>,
        /// Only the verifications whose request named this tag.
        #[arg(long)]
        tag: Option<String>,
    },
    /// Replace a key by a new one with the same settings.
    Rotate {
        #[command(flatten)]
        remote: Remote,
        id: String,
        /// How long the old key keeps working, e.g. 24h (default 0s: stops at once).
        #[arg(long, alias = "grace-period")]
        grace: Option<String>,
    },
    /// Import keys made elsewhere by the hashes of their secrets (docs/IMPORT.md): a file of a
    /// JSON array or NDJSON, at most 10,000 keys, all or none. Prints how many were imported.
    Import {
        #[command(flatten)]
        remote: Remote,
        file: PathBuf,
        /// json (an array) or ndjson (one key a line); default: an array when the file starts
        /// with `[`.
        #[arg(long, value_parser = ["json", "ndjson"])]
        format: Option<String>,
    },
}

#[derive(Debug, Args, Clone, Default)]
pub struct KeyFields {
    #[arg(long)]
    pub name: Option<String>,
    /// Repeatable, or comma-separated.
    #[arg(long = "role", alias = "roles", value_delimiter = ',')]
    pub roles: Option<Vec<String>>,
    #[arg(long = "permission", alias = "permissions", value_delimiter = ',')]
    pub permissions: Option<Vec<String>>,
    #[arg(long = "scope", alias = "scopes", value_delimiter = ',')]
    pub scopes: Option<Vec<String>>,
    /// ROLE=SCOPE[,SCOPE…]: the role holds only in these scopes, e.g. operator=wallet:w_1,wallet:w_2
    /// (repeatable).
    #[arg(long = "grant", alias = "grants")]
    pub grants: Option<Vec<String>>,
    /// Allowed client IPs or CIDR ranges.
    #[arg(long = "ip", alias = "ip-allowlist", value_delimiter = ',')]
    pub ip_allowlist: Option<Vec<String>>,
    /// A JSON object.
    #[arg(long)]
    pub meta: Option<String>,
    /// RFC 3339 time.
    #[arg(long)]
    pub expires_at: Option<String>,
    #[arg(long)]
    pub callback_url: Option<String>,
    /// A rate limit LIMIT/DURATION or NAME=LIMIT/DURATION, e.g. 100/1m or burst=10/1s, with
    /// :fast after it for a fast limit (e.g. 1000/1s:fast) (repeatable; on update it
    /// replaces the key's limits).
    #[arg(long = "ratelimit", alias = "ratelimits")]
    pub ratelimits: Option<Vec<String>>,
    /// Uses the key may spend (an override on update: the count starts again).
    #[arg(long)]
    pub credits: Option<u64>,
    /// Refill the credits: daily or monthly, to the --credits amount (monthly on day 1, or
    /// monthly:DAY).
    #[arg(long, requires = "credits")]
    pub refill: Option<String>,
    /// The identity (customer) the key belongs to, by its external id (created when unknown).
    #[arg(long)]
    pub external_id: Option<String>,
}

/// `keyward apps …`.
#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// Register an app with the APP pair of `--env` (`keyward keys generate --key-type APP`).
    Create {
        #[command(flatten)]
        remote: Remote,
        /// The config section (environment) holding the APP pair.
        #[arg(long = "env", default_value = "test")]
        env: String,
        /// Config file (default ~/.keyward/config.toml, or KEYWARD_CONFIG).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// A permission the app asks for (repeatable).
        #[arg(long = "permission")]
        permissions: Vec<String>,
        /// A resource scope the app asks for (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[arg(long)]
        homepage_url: Option<String>,
    },
    /// The workspace's apps.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Delete an app: every token of its installations stops at once.
    Delete {
        #[command(flatten)]
        remote: Remote,
        id: String,
    },
    /// Where an app of yours is installed.
    Installations {
        #[command(flatten)]
        remote: Remote,
        id: String,
    },
    /// Install another workspace's app here, granting some of what it asks for.
    Install {
        #[command(flatten)]
        remote: Remote,
        app_id: String,
        /// A permission granted (repeatable; each within what the app asks for).
        #[arg(long = "permission")]
        permissions: Vec<String>,
        /// A resource scope granted (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// test or live (default live).
        #[arg(long)]
        environment: Option<String>,
    },
    /// The apps installed in this workspace.
    Installed {
        #[command(flatten)]
        remote: Remote,
    },
    /// Uninstall an app: every token of the installation stops at once.
    Uninstall {
        #[command(flatten)]
        remote: Remote,
        installation_id: String,
    },
    /// Print an access token for an installation, bought with an assertion signed by the
    /// APP pair of `--env`.
    Token {
        /// The server's base URL (its token endpoint is the assertion's audience unless
        /// --audience says otherwise).
        #[arg(long, env = "KEYWARD_SERVER")]
        server: String,
        #[arg(long = "env", default_value = "test")]
        env: String,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        app: String,
        #[arg(long)]
        installation: String,
        /// The token endpoint's URL under the server's --public-url.
        #[arg(long)]
        audience: Option<String>,
    },
}

/// `keyward identities …`.
#[derive(Debug, Subcommand)]
pub enum IdentitiesCommand {
    /// Create an identity.
    Create {
        #[command(flatten)]
        remote: Remote,
        external_id: String,
        #[command(flatten)]
        fields: IdentityFields,
    },
    /// List identities, newest first.
    List {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        external_id: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show an identity (by id or external id).
    Get {
        #[command(flatten)]
        remote: Remote,
        id: String,
    },
    /// Change an identity's meta, limits or credits (by id or external id).
    Update {
        #[command(flatten)]
        remote: Remote,
        id: String,
        #[command(flatten)]
        fields: IdentityFields,
        /// Remove its credits.
        #[arg(long, conflicts_with = "credits")]
        no_credits: bool,
    },
    /// Delete an identity (by id or external id); its keys keep working without it.
    Delete {
        #[command(flatten)]
        remote: Remote,
        id: String,
    },
}

#[derive(Debug, Args, Clone, Default)]
pub struct IdentityFields {
    /// A JSON object.
    #[arg(long)]
    pub meta: Option<String>,
    /// A shared limit LIMIT/DURATION or NAME=LIMIT/DURATION, :fast after it for a fast limit
    /// (repeatable; on update it replaces the identity's limits).
    #[arg(long = "ratelimit", alias = "ratelimits")]
    pub ratelimits: Option<Vec<String>>,
    /// Shared credits (an override on update: the count starts again).
    #[arg(long)]
    pub credits: Option<u64>,
    /// Refill the credits: daily, monthly or monthly:DAY.
    #[arg(long, requires = "credits")]
    pub refill: Option<String>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// The secret key to check.
    pub key: String,
    #[arg(long)]
    pub ip: Option<String>,
    /// A permission query, e.g. "wallet.read AND (tx.create OR tx.approve)".
    #[arg(long = "permission", alias = "permissions")]
    pub permissions: Option<String>,
    #[arg(long)]
    pub scope: Option<String>,
    /// Uses this check spends of the key's limits and credits (0: look only).
    #[arg(long)]
    pub cost: Option<u32>,
    /// A label to count the verification under in the key's usage (repeatable, up to 10).
    #[arg(long = "tag", alias = "tags")]
    pub tags: Vec<String>,
    /// Only a key of this workspace counts (another's is NOT_FOUND).
    #[arg(long, alias = "workspace-id")]
    pub workspace: Option<String>,
    /// Only a key of this environment, test or live, counts (another's is WRONG_ENVIRONMENT).
    #[arg(long, alias = "env")]
    pub environment: Option<String>,
}

#[cfg(test)]
mod tests {
    /// clap's own consistency checks (unique argument ids across flattened groups, …) run
    /// only when a command is built; build every one here rather than at a user's prompt.
    #[test]
    fn every_command_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
