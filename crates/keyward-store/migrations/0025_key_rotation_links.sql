-- A rotation links the two keys both ways: the old key's `replaced_by` (since 0001) names its
-- successor, and the successor's `rotated_from` names the key it replaced. Filled in for the
-- rotations made before, through a temporary index on `replaced_by`.
ALTER TABLE api_keys ADD COLUMN rotated_from TEXT;
CREATE INDEX api_keys_replaced_by ON api_keys (replaced_by);
UPDATE api_keys SET rotated_from = (SELECT o.id FROM api_keys o WHERE o.replaced_by = api_keys.id)
    WHERE id IN (SELECT replaced_by FROM api_keys WHERE replaced_by IS NOT NULL);
DROP INDEX api_keys_replaced_by;
