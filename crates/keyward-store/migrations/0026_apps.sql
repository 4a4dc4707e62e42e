-- Apps (docs/APPS.md): registered by a developer's workspace with the public half of an APP
-- key pair, installed by other workspaces (organisations), buying OAuth access tokens with
-- assertions they sign. Lists (`permissions`, `scopes`) are JSON arrays.
CREATE TABLE apps (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    homepage_url TEXT,
    permissions TEXT NOT NULL DEFAULT '[]',
    scopes TEXT NOT NULL DEFAULT '[]',
    created_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE INDEX apps_workspace ON apps (workspace_id);

-- The keys that may sign an app's assertions: the current one (`expires_at` NULL) and, for a
-- rotation's overlap, those before it.
CREATE TABLE app_keys (
    app_id TEXT NOT NULL REFERENCES apps(id),
    public_key TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    PRIMARY KEY (app_id, public_key)
);

-- An app in an organisation's workspace, with what it was granted (within what the app asked
-- for). `status`: pending (waiting on `app.install` approvals), active, rejected, uninstalled.
CREATE TABLE app_installations (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id),
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    app_workspace_id TEXT NOT NULL,
    status TEXT NOT NULL,
    permissions TEXT NOT NULL DEFAULT '[]',
    scopes TEXT NOT NULL DEFAULT '[]',
    environment TEXT NOT NULL,
    approval_id TEXT,
    installed_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    uninstalled_at BIGINT
);
CREATE INDEX app_installations_workspace ON app_installations (workspace_id);
CREATE INDEX app_installations_app ON app_installations (app_id);

-- Each workspace's Ed25519 keys signing its access tokens, sealed; made on first use. A
-- rotation retires the current one: it stays published until the last token it signed
-- has expired.
CREATE TABLE app_signing_keys (
    kid TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    sealed TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
CREATE INDEX app_signing_keys_workspace ON app_signing_keys (workspace_id);

-- The `jti` of every assertion accepted, until its `exp` has passed (then swept): a second
-- use is refused on every node.
CREATE TABLE app_assertion_ids (
    app_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, jti)
);
CREATE INDEX app_assertion_ids_expiry ON app_assertion_ids (expires_at);

-- Tokens descend from one assertion through refreshes: a family. A refresh token reused
-- revokes its family (RFC 9700), and with it every access token of the family.
CREATE TABLE app_token_families (
    id TEXT PRIMARY KEY,
    installation_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revoked_reason TEXT
);
CREATE INDEX app_token_families_installation ON app_token_families (installation_id);

-- Refresh tokens, by their HMAC only; `used_at` set by their one use.
CREATE TABLE app_refresh_tokens (
    hash TEXT PRIMARY KEY,
    family_id TEXT NOT NULL,
    installation_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX app_refresh_tokens_family ON app_refresh_tokens (family_id);

-- Access tokens issued (never the token: its `jti`), for revocation and introspection.
CREATE TABLE app_access_tokens (
    jti TEXT PRIMARY KEY,
    family_id TEXT NOT NULL,
    installation_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX app_access_tokens_family ON app_access_tokens (family_id);
CREATE INDEX app_access_tokens_expiry ON app_access_tokens (expires_at);
