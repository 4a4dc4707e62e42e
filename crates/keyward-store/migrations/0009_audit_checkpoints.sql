-- Where a workspace's chain starts once older events are pruned: the last pruned event's
-- seq and hash, so the rest still verifies.
CREATE TABLE audit_checkpoints (
    workspace_id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
