-- Management keys get a name and an optional expiry; revoked_at is now written too.
ALTER TABLE management_keys ADD COLUMN name TEXT;
ALTER TABLE management_keys ADD COLUMN expires_at BIGINT;
