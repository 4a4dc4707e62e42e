-- Where and when a key was first reported leaked (GitHub's secret scanning or
-- `POST /v1/leaks`): NULL for a key never reported. Never the secret.
ALTER TABLE api_keys ADD COLUMN leaked_at BIGINT;
ALTER TABLE api_keys ADD COLUMN leak_source TEXT;
ALTER TABLE api_keys ADD COLUMN leak_url TEXT;
