-- Where and when a management key, verify token or session was first reported leaked (as
-- api_keys' since 0022): NULL for one never reported. Never the secret.
ALTER TABLE management_keys ADD COLUMN leaked_at BIGINT;
ALTER TABLE management_keys ADD COLUMN leak_source TEXT;
ALTER TABLE management_keys ADD COLUMN leak_url TEXT;
ALTER TABLE verify_tokens ADD COLUMN leaked_at BIGINT;
ALTER TABLE verify_tokens ADD COLUMN leak_source TEXT;
ALTER TABLE verify_tokens ADD COLUMN leak_url TEXT;
ALTER TABLE sessions ADD COLUMN leaked_at BIGINT;
ALTER TABLE sessions ADD COLUMN leak_source TEXT;
ALTER TABLE sessions ADD COLUMN leak_url TEXT;
