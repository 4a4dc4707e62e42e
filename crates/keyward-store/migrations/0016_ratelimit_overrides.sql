-- Rate limiting as a service (`POST /v1/ratelimit`): per-identifier overrides of the limit a
-- request names. `identifier` is exact, or a pattern where `*` stands for any run of
-- characters (`is_pattern` 1). Limits themselves are counted in memory or in Redis.
CREATE TABLE ratelimit_overrides (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    namespace TEXT NOT NULL,
    identifier TEXT NOT NULL,
    is_pattern INTEGER NOT NULL,
    rate_limit BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (workspace_id, namespace, identifier)
);
