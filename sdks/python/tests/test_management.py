"""Management against a real server: keys, roles, service accounts, usage, errors."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from keyward import NOT_GIVEN, Keyward, KeywardError, to_dict
from keyward.models import KeyList, KeyView

from conftest import unique


def test_keys_create_get_list_update_rotate_revoke(kw: Keyward, created: list) -> None:
    name = unique("billing")
    key = kw.keys.create(name=name, environment="live", permissions=["invoices.read"], meta={"team": "billing"})
    created.append(key.id)
    assert isinstance(key, KeyView)
    assert key.id.startswith("key_") and key.secret and key.secret.startswith(key.start)
    assert (key.name, key.environment, key.permissions, key.meta) == (name, "live", ["invoices.read"], {"team": "billing"})
    assert key.kind == "secret" and key.status == "active"

    got = kw.keys.get(key.id)
    assert got.id == key.id and got.secret is None  # the secret is never shown again

    page = kw.keys.list(q=name)
    assert isinstance(page, KeyList) and [k.id for k in page.items] == [key.id]
    assert any(k.id == key.id for k in kw.keys.iter(q=name, page_size=1))

    expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3)
    up = kw.keys.update(key.id, name=name + "-2", permissions=["invoices.read", "invoices.write"], expires_at=expires)
    assert up.name == name + "-2" and up.permissions == ["invoices.read", "invoices.write"] and up.expires_at
    cleared = kw.keys.update(key.id, expires_at=None)  # None clears; NOT_GIVEN (the default) keeps
    assert cleared.expires_at is None and cleared.name == name + "-2"
    assert kw.keys.update(key.id, meta=NOT_GIVEN).meta == {"team": "billing"}

    assert kw.verify(key.secret, permissions="invoices.write").valid
    new = kw.keys.rotate(key.id, grace_period="0s")
    created.append(new.id)
    assert new.id != key.id and new.secret and new.secret != key.secret
    assert kw.verify(new.secret).code == "VALID"
    assert kw.verify(key.secret).code in ("REVOKED", "EXPIRED")

    revoked = kw.keys.revoke(new.id)
    assert revoked.status == "revoked" and revoked.revoked_at
    assert kw.verify(new.secret).code == "REVOKED"
    assert kw.keys.revoke(new.id).status == "revoked"  # idempotent


def test_create_with_an_idempotency_key_replays_the_first_answer(kw: Keyward, created: list) -> None:
    ik = unique("idem")
    a = kw.keys.create(name=unique(), idempotency_key=ik)
    b = kw.keys.create(name=a.name, idempotency_key=ik)
    created.append(a.id)
    assert (a.id, a.secret) == (b.id, b.secret)
    with pytest.raises(KeywardError) as e:
        kw.keys.create(name=a.name + "x", idempotency_key=ik)
    assert (e.value.status, e.value.code, e.value.field) == (409, "conflict", "Idempotency-Key")


def test_roles_grant_permissions_to_keys(kw: Keyward, created: list) -> None:
    role = unique("auditor")
    r = kw.roles.create(role, permissions=["audit.read"], description="reads audit")
    assert (r.name, r.permissions, r.member_role) == (role, ["audit.read"], False)
    assert role in {x.name for x in kw.roles.list().items}
    key = kw.keys.create(name=unique(), roles=[role])
    created.append(key.id)
    assert kw.verify(key.secret, permissions="audit.read").valid
    assert kw.verify(key.secret, permissions="audit.write").code == "INSUFFICIENT_PERMISSIONS"
    kw.roles.update(role, permissions=["audit.read", "audit.write"])
    assert kw.roles.get(role).permissions == ["audit.read", "audit.write"]
    deadline = time.time() + 5
    while not kw.verify(key.secret, permissions="audit.write").valid:
        assert time.time() < deadline, "role change not in force"
        time.sleep(0.2)
    with pytest.raises(KeywardError) as e:
        kw.roles.delete(role)
    assert e.value.status == 409 and e.value.code == "conflict"
    assert kw.roles.delete(role, force=True) is None
    with pytest.raises(KeywardError) as e:
        kw.roles.get(role)
    assert e.value.status == 404 and e.value.code == "not_found"


def test_service_accounts_own_keys(kw: Keyward) -> None:
    role = unique("svc")
    kw.roles.create(role, permissions=["reports.read"])
    sa = kw.service_accounts.create(unique("reporter"), role=role, description="nightly")
    assert sa.id.startswith("sa_") and sa.kind == "service" and sa.role == role
    key = kw.service_accounts.create_key(sa.id, name=unique(), permissions=["reports.export"])
    assert key.secret and key.owner and key.owner.id == sa.id
    v = kw.verify(key.secret, permissions="reports.read AND reports.export")
    assert v.valid, v
    assert kw.service_accounts.get(sa.id).keys == 1
    assert sa.id in {a.id for a in kw.service_accounts.list().items}
    assert kw.service_accounts.update(sa.id, disabled=True).disabled
    assert kw.verify(key.secret).code == "DISABLED"
    kw.service_accounts.update(sa.id, disabled=False, description="daily")
    assert kw.verify(key.secret).valid
    kw.service_accounts.delete(sa.id)
    assert kw.verify(key.secret).code == "REVOKED"
    kw.roles.delete(role, force=True)


def test_usage_counts_verifications(kw: Keyward, created: list) -> None:
    key = kw.keys.create(name=unique())
    created.append(key.id)
    for _ in range(3):
        kw.verify(key.secret)
    kw.verify(key.secret, permissions="nope")
    deadline = time.time() + 10
    while True:
        u = kw.usage.key(key.id, granularity="minute")
        if u.total >= 4:
            break
        assert time.time() < deadline, to_dict(u)
        time.sleep(0.3)
    assert u.key_id == key.id and u.by_code.get("VALID") == 3 and u.by_code.get("INSUFFICIENT_PERMISSIONS") == 1
    assert u.from_ and u.to and u.buckets
    assert kw.keys.usage(key.id).total == 4
    ws = kw.usage.workspace(from_=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
    assert ws.total >= 4 and ws.top_keys  # other suites may share the server: ours need not be in the top 10
    assert any(t.key_id == key.id for t in ws.top_keys) or len(ws.top_keys) == 10


def test_errors_carry_status_code_and_field(kw: Keyward, server) -> None:
    with pytest.raises(KeywardError) as e:
        kw.keys.get("key_doesnotexist")
    assert (e.value.status, e.value.code) == (404, "not_found") and e.value.request_id
    with pytest.raises(KeywardError) as e:
        kw.keys.create(name="   ")
    assert (e.value.status, e.value.code, e.value.field) == (400, "invalid_request", "name")
    assert "name" in str(e.value)
    with pytest.raises(KeywardError) as e:
        kw.keys.create(name=unique(), environment="staging")
    assert e.value.field == "environment"
    with Keyward(base_url=server.url, management_key="kw_mk_wrong") as bad:
        with pytest.raises(KeywardError) as e:
            bad.keys.list()
    assert (e.value.status, e.value.code) == (401, "unauthenticated")
    with Keyward(base_url=server.url, management_key=None) as none:
        none.management_key = None
        with pytest.raises(KeywardError) as e:
            none.roles.list()
    assert e.value.status == 401
