-- Keys imported by the plain SHA-256 of their secrets (POST /v1/keys/import), until their
-- first use: that verification re-keys the key under the HMAC (`api_keys.hash`) and deletes
-- its row here, so the plain hash is kept only while it is still needed. Unique server-wide,
-- like `api_keys.hash`: a presented secret names one key.
CREATE TABLE key_imports (
    import_hash TEXT PRIMARY KEY,
    key_id TEXT NOT NULL REFERENCES api_keys(id),
    workspace_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX key_imports_key_id ON key_imports (key_id);
