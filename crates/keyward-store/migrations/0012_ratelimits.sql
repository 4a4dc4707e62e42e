-- Rate limits and credits per key (docs/RATELIMITS.md). `ratelimits`: a JSON list of
-- {name, limit, duration_ms}. Credits: NULL `credits_remaining` means none; the remaining
-- count is written in batches by the nodes that spend it; `credits_period` is the refill
-- period it was counted in; `credits_set_at` changes only when credits are set (create or
-- override), which is when a node's running count starts again from the stored one.
ALTER TABLE api_keys ADD COLUMN ratelimits TEXT NOT NULL DEFAULT '[]';
ALTER TABLE api_keys ADD COLUMN credits_refill TEXT;
ALTER TABLE api_keys ADD COLUMN credits_remaining BIGINT;
ALTER TABLE api_keys ADD COLUMN credits_period BIGINT;
ALTER TABLE api_keys ADD COLUMN credits_set_at BIGINT;
