-- A key can be disabled and enabled again (`PATCH /v1/keys/{id} {"enabled": false}`): when it
-- was disabled, NULL while it is enabled. Beside `status`, which keeps its meaning.
ALTER TABLE api_keys ADD COLUMN disabled_at BIGINT;
