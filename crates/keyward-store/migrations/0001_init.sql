-- Times are Unix milliseconds; lists and meta are JSON text. Secrets are never stored: keys
-- keep only the HMAC-SHA-256 of the token under the server pepper.
CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE members (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (workspace_id, email)
);

CREATE TABLE management_keys (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    member_id TEXT NOT NULL REFERENCES members(id),
    hash TEXT NOT NULL UNIQUE,
    start TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    algorithm TEXT,
    public_key TEXT,
    key_type TEXT,
    environment TEXT NOT NULL,
    status TEXT NOT NULL,
    hash TEXT UNIQUE,
    start TEXT NOT NULL,
    roles TEXT NOT NULL,
    permissions TEXT NOT NULL,
    scopes TEXT NOT NULL,
    ip_allowlist TEXT NOT NULL,
    meta TEXT NOT NULL,
    callback_url TEXT,
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    created_by TEXT,
    last_used_at BIGINT,
    last_used_ip TEXT,
    revoked_at BIGINT,
    replaced_by TEXT
);
CREATE INDEX api_keys_workspace_id ON api_keys (workspace_id, id);

CREATE TABLE idempotency (
    workspace_id TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status BIGINT NOT NULL,
    sealed_body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, key_hash)
);

-- Cache invalidations for nodes sharing an SQLite file (PostgreSQL nodes also get NOTIFY).
CREATE TABLE key_events (
    seq {{SERIAL_PRIMARY_KEY}},
    key_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
