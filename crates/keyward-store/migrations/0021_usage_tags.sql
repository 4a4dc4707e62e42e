-- Verification counts per tag a verify request named (`tags`), beside `usage_counts` and
-- kept, rolled up and pruned like it; a key's distinct tags are bounded per flush.
CREATE TABLE usage_tag_counts (
    granularity TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    start BIGINT NOT NULL,
    code TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (granularity, workspace_id, key_id, tag, start, code)
);
CREATE INDEX usage_tag_counts_window ON usage_tag_counts (granularity, workspace_id, start);
