-- Roles that grant permissions, and service accounts (integration users that own keys).
-- A member role's row exists once its permissions or description are set; `permissions`
-- NULL means "not set". `approval_id`: a widening change waiting on an approval request.
CREATE TABLE roles (
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    permissions TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    approval_id TEXT,
    PRIMARY KEY (workspace_id, name)
);

CREATE TABLE service_accounts (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    role TEXT NOT NULL,
    disabled BIGINT NOT NULL DEFAULT 0,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (workspace_id, name)
);

-- Roles given in scopes of their own, and the service account owning a key.
ALTER TABLE api_keys ADD COLUMN grants TEXT NOT NULL DEFAULT '[]';
ALTER TABLE api_keys ADD COLUMN service_account_id TEXT;
CREATE INDEX api_keys_service_account ON api_keys (service_account_id);
