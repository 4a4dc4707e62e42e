-- The audit chain is keyed with the pepper (HMAC-SHA-256). `keyed_from` is the seq from which a
-- workspace's chain is keyed; null for a chain written before, with plain SHA-256, which the
-- server switches (an `audit.chain_keyed` event) when it next opens the database.
ALTER TABLE audit_heads ADD COLUMN keyed_from BIGINT;
