"""Unkey's official Python SDK (unkey.py, pinned in requirements.txt) pointed at a running
`keyward serve`: KEYWARD_URL, KEYWARD_ROOT_KEY (a management key) and KEYWARD_WORKSPACE_ID
(the apiId). .ci/run starts the server and runs this with pytest."""

import hashlib
import os
import time

import pytest
from unkey.py import Unkey, errors

URL = os.environ["KEYWARD_URL"]
ROOT_KEY = os.environ["KEYWARD_ROOT_KEY"]
API_ID = os.environ["KEYWARD_WORKSPACE_ID"]


@pytest.fixture
def unkey():
    with Unkey(root_key=ROOT_KEY, server_url=URL) as client:
        yield client


def code(c):
    return getattr(c, "value", c)


def verify(unkey, key, **extra):
    return unkey.keys.verify_key(key=key, **extra).data


def test_key_lifecycle(unkey):
    made = unkey.keys.create_key(
        api_id=API_ID,
        name="py-sdk",
        permissions=["documents.read"],
        ratelimits=[{"name": "requests", "limit": 3, "duration": 60000, "auto_apply": True}],
        credits={"remaining": 3},
    )
    assert made.meta.request_id
    key_id, key = made.data.key_id, made.data.key

    v = verify(unkey, key, permissions="documents.read")
    assert (v.valid, code(v.code), v.key_id, v.credits) == (True, "VALID", key_id, 2)
    v = verify(unkey, key, permissions="documents.write")
    assert (v.valid, code(v.code)) == (False, "INSUFFICIENT_PERMISSIONS")
    assert verify(unkey, key).credits == 1
    assert verify(unkey, key).credits == 0
    assert code(verify(unkey, key).code) == "RATE_LIMITED"
    unkey.keys.update_key(key_id=key_id, ratelimits=[{"name": "requests", "limit": 100, "duration": 60000}])
    assert code(verify(unkey, key).code) == "USAGE_EXCEEDED"
    assert unkey.keys.update_credits(key_id=key_id, operation="increment", value=4).data.remaining == 4
    assert code(verify(unkey, key).code) == "VALID"

    unkey.keys.update_key(key_id=key_id, enabled=False)
    assert code(verify(unkey, key).code) == "DISABLED"
    unkey.keys.update_key(key_id=key_id, enabled=True)
    assert code(verify(unkey, key).code) == "VALID"
    assert unkey.keys.get_key(key_id=key_id).data.name == "py-sdk"

    rolled = unkey.keys.reroll_key(key_id=key_id, expiration=1000).data
    assert rolled.key_id != key_id
    assert code(verify(unkey, rolled.key).code) == "VALID"
    assert code(verify(unkey, key).code) == "VALID"
    time.sleep(2.5)
    assert verify(unkey, key).valid is False

    unkey.keys.delete_key(key_id=rolled.key_id)
    v = verify(unkey, rolled.key)
    assert (v.valid, code(v.code)) == (False, "NOT_FOUND")


def test_retry_with_idempotency_key_spends_once(unkey):
    key = unkey.keys.create_key(api_id=API_ID, credits={"remaining": 10}).data.key
    headers = {"Idempotency-Key": f"py-{time.time_ns()}"}
    first = unkey.keys.verify_key(key=key, credits={"cost": 4}, http_headers=headers).data
    again = unkey.keys.verify_key(key=key, credits={"cost": 4}, http_headers=headers).data
    assert first.credits == again.credits == 6


def test_migrated_sha256_key_verifies(unkey):
    secret = f"legacy_{time.time_ns()}_py"
    digest = hashlib.sha256(secret.encode()).hexdigest()
    m = unkey.keys.migrate_keys(api_id=API_ID, migration_id="sha256_hex", keys=[{"hash": digest, "name": "legacy"}]).data
    assert m.migrated[0].hash == digest and m.failed == []
    assert code(verify(unkey, secret).code) == "VALID"


def test_ratelimit_limit(unkey):
    ident = f"user_{time.time_ns()}"
    results = [
        unkey.ratelimit.limit(namespace="sdk.py", identifier=ident, limit=2, duration=60000).data.success
        for _ in range(3)
    ]
    assert results == [True, True, False]


def test_errors(unkey):
    with pytest.raises(errors.UnkeyError) as e:
        unkey.keys.create_key(api_id="api_not_mine")
    assert e.value.status_code == 404
    with Unkey(root_key="not_a_root_key", server_url=URL) as stranger:
        with pytest.raises(errors.UnkeyError) as e:
            stranger.keys.get_key(key_id="key_123")
        assert e.value.status_code == 401


def test_identity_limits_shared(unkey):
    external_id = f"py_team_{time.time_ns()}"
    made = unkey.identities.create_identity(
        external_id=external_id,
        meta={"tier": "free"},
        ratelimits=[
            {"name": "team", "limit": 3, "duration": 60000, "auto_apply": True},
            {"name": "exports", "limit": 2, "duration": 60000},
        ],
    )
    identity_id = made.data.identity_id
    got = unkey.identities.get_identity(identity=external_id).data
    assert got.id == identity_id and got.meta == {"tier": "free"}
    assert [(l.name, l.auto_apply) for l in got.ratelimits] == [("team", True), ("exports", False)]

    a = unkey.keys.create_key(api_id=API_ID, external_id=external_id, credits={"remaining": 10}).data
    b = unkey.keys.create_key(api_id=API_ID, external_id=external_id).data
    assert unkey.keys.get_key(key_id=a.key_id).data.identity.external_id == external_id

    # credits.cost spends credits only; the shared limit spends 1; a named limit its cost.
    v = verify(unkey, a.key, credits={"cost": 4}, ratelimits=[{"name": "exports", "cost": 2}])
    assert (code(v.code), v.credits, v.identity.id) == ("VALID", 6, identity_id)
    by_name = {l.name: l for l in v.ratelimits}
    assert (by_name["team"].remaining, by_name["exports"].remaining) == (2, 0)
    # The team limit is shared: three uses between the two keys, then both are limited.
    assert code(verify(unkey, b.key).code) == "VALID"
    assert code(verify(unkey, a.key).code) == "VALID"
    v = verify(unkey, b.key)
    assert code(v.code) == "RATE_LIMITED" and v.ratelimits[0].exceeded is True
    assert code(verify(unkey, a.key).code) == "RATE_LIMITED"

    up = unkey.identities.update_identity(identity=identity_id, meta={"tier": "pro"}).data
    assert up.meta == {"tier": "pro"}
    unkey.identities.delete_identity(identity=external_id)
    with pytest.raises(errors.UnkeyError) as e:
        unkey.identities.get_identity(identity=external_id)
    assert e.value.status_code == 404
    assert verify(unkey, b.key).identity is None
