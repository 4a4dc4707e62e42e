-- A public key identifies one API key across the server: signed requests carry only the
-- public key, so it must lead to exactly one record.
CREATE UNIQUE INDEX api_keys_public_key ON api_keys (public_key);
