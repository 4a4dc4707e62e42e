-- Identities (docs/IDENTITIES.md): a customer of the operator, named by its own
-- `external_id` (unique per workspace, never changed), whose limits and credits its keys
-- share. Limits and credits are kept as a key's are (0012). A key names its identity by
-- `identity_id` and keeps its `external_id` beside it (lists filter by it without a join);
-- deleting an identity clears both on its keys, which keep working.
CREATE TABLE identities (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    external_id TEXT NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}',
    ratelimits TEXT NOT NULL DEFAULT '[]',
    credits_refill TEXT,
    credits_remaining BIGINT,
    credits_period BIGINT,
    credits_set_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (workspace_id, external_id)
);
ALTER TABLE api_keys ADD COLUMN identity_id TEXT;
ALTER TABLE api_keys ADD COLUMN external_id TEXT;
CREATE INDEX api_keys_identity_id ON api_keys (identity_id);
CREATE INDEX api_keys_external_id ON api_keys (workspace_id, external_id);
