-- Verification counts: per workspace ('' when not known), per key ('' when the key was not
-- known), per bucket start (ms), per code. Nodes add their counts (increments, never
-- overwrites); hour and day buckets are rolled up from the finer ones in the background.
CREATE TABLE usage_counts (
    granularity TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    start BIGINT NOT NULL,
    code TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (granularity, workspace_id, key_id, start, code)
);
CREATE INDEX usage_counts_window ON usage_counts (granularity, workspace_id, start);

-- The addresses each key was verified from (for `new_ip` alerts).
CREATE TABLE key_ips (
    key_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    ip TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (key_id, ip)
);

-- Alerts on unusual use: one per key, kind, window and subject (an address for `new_ip`),
-- so nodes racing to raise one raise it once.
CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    acknowledged_at BIGINT,
    acknowledged_by TEXT,
    UNIQUE (key_id, kind, window_start, subject)
);
CREATE INDEX alerts_workspace ON alerts (workspace_id, created_at);

-- Background work only one node should do at a time (rollups, alert evaluation): the holder
-- and until when; and how far the rollup got.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until BIGINT NOT NULL,
    progress BIGINT NOT NULL DEFAULT 0
);
