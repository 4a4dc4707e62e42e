-- Webhooks. An endpoint's secrets are stored sealed (the server holds the key). Each audit
-- event that is a webhook event writes one `webhook_messages` row and one
-- `webhook_deliveries` row per receiver (endpoint or key callback) in the event's own
-- transaction: the outbox. A node claims a due delivery by taking its lease; a crash leaves
-- the lease to run out, and another node (or the restarted one) delivers it.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    url TEXT NOT NULL,
    description TEXT,
    events TEXT NOT NULL,
    secret_sealed TEXT NOT NULL,
    previous_secret_sealed TEXT,
    previous_secret_until BIGINT,
    disabled INTEGER NOT NULL DEFAULT 0,
    disabled_reason TEXT,
    failing_since BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_workspace ON webhook_endpoints (workspace_id);

CREATE TABLE webhook_messages (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    endpoint_id TEXT,
    callback_url TEXT,
    key_id TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT,
    last_status INTEGER,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);

CREATE TABLE webhook_attempts (
    id {{SERIAL_PRIMARY_KEY}},
    delivery_id TEXT NOT NULL,
    time BIGINT NOT NULL,
    status INTEGER,
    error TEXT,
    duration_ms BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id);

-- Each workspace's Ed25519 key for per-key callbacks, sealed; created on first use.
CREATE TABLE webhook_signing_keys (
    workspace_id TEXT PRIMARY KEY,
    sealed TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The expiry (`expires_at`) a key was told is coming (`key.expiring`) and told has passed
-- (`key.expired`): each at most once per expiry, whichever node's sweeper gets there
-- first. A changed expiry is told again.
ALTER TABLE api_keys ADD COLUMN expiry_warned_for BIGINT;
ALTER TABLE api_keys ADD COLUMN expiry_announced_for BIGINT;
