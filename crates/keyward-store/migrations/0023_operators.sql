-- The service's operators, above every workspace (docs/OPERATORS.md). An operator token is
-- stored as its HMAC under the pepper, like every secret.
CREATE TABLE operator_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    start TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- What operators did, across workspaces (a workspace's own chain records it too, and
-- outlives none of its erasure but the checkpoint; this log does).
CREATE TABLE operator_log (
    id TEXT PRIMARY KEY,
    time BIGINT NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id TEXT,
    actor_name TEXT,
    action TEXT NOT NULL,
    workspace_id TEXT,
    changes TEXT NOT NULL,
    ip TEXT,
    user_agent TEXT,
    request_id TEXT
);

-- A workspace's standing: suspended (its keys answer SUSPENDED, its members only read) and
-- why; deleted (its keys are not found, its data is erased in the background, then
-- `erased_at` is set; the row and the audit checkpoint stay).
ALTER TABLE workspaces ADD COLUMN suspended_at BIGINT;
ALTER TABLE workspaces ADD COLUMN suspend_reason TEXT;
ALTER TABLE workspaces ADD COLUMN deleted_at BIGINT;
ALTER TABLE workspaces ADD COLUMN erased_at BIGINT;
