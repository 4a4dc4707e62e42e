-- Verify tokens bind verification to one workspace. Only the HMAC of a token is stored.
CREATE TABLE verify_tokens (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    start TEXT NOT NULL,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE INDEX verify_tokens_workspace ON verify_tokens (workspace_id);
