"""Verification against a real server: codes, answer fields, limits, credits, bindings, tokens."""

from __future__ import annotations

import time

import pytest

from keyward import AsyncKeyward, Keyward, KeywardError, VerifyResponse

from conftest import start_server, unique


def test_verify_needs_no_management_key_and_returns_every_field(kw: Keyward, server, created: list) -> None:
    key = kw.keys.create(
        name=unique(), environment="live", permissions=["wallet.read", "tx.create"], scopes=["wallet:*"],
        meta={"plan": "pro"},
    )
    created.append(key.id)
    with Keyward(base_url=server.url) as anon:
        v = anon.verify(key.secret, permissions="wallet.read AND (tx.create OR tx.approve)", scope="wallet:w_1")
    assert isinstance(v, VerifyResponse)
    assert (v.valid, v.code, v.key_id, v.name, v.environment) == (True, "VALID", key.id, key.name, "live")
    assert v.workspace_id and v.permissions == ["wallet.read", "tx.create"] and v.scopes == ["wallet:*"]
    assert v.meta == {"plan": "pro"} and v.roles == [] and v.expires_at is None
    assert kw.verify(key.secret, permissions=["wallet.read", "tx.create"]).valid  # a list: all of them
    assert kw.verify(key.secret, ip="198.51.100.7").valid


def test_refusals_are_answers_not_exceptions(kw: Keyward, created: list) -> None:
    key = kw.keys.create(name=unique(), permissions=["a.read"], scopes=["wallet:w_1"], ip_allowlist=["203.0.113.0/24"])
    created.append(key.id)
    v = kw.verify(key.secret, permissions="a.write", ip="203.0.113.9")
    assert (v.valid, v.code, v.key_id) == (False, "INSUFFICIENT_PERMISSIONS", key.id)
    assert kw.verify(key.secret, ip="198.51.100.1").code == "IP_NOT_ALLOWED"
    assert kw.verify(key.secret, ip="203.0.113.9", scope="wallet:w_2", permissions="a.read").code == "INSUFFICIENT_PERMISSIONS"
    assert kw.verify(key.secret, ip="203.0.113.9", scope="wallet:w_1", permissions="a.read").valid
    assert kw.verify("not a key").code == "MALFORMED"


def test_a_key_this_server_does_not_know_is_not_found(kw: Keyward, token_server) -> None:
    elsewhere = Keyward(base_url=token_server.url, management_key=token_server.management_key)
    foreign = elsewhere.keys.create(name=unique())  # well-formed, but made by another server
    nf = kw.verify(foreign.secret)
    assert (nf.valid, nf.code, nf.key_id) == (False, "NOT_FOUND", None)


def test_rate_limit_fields_and_rate_limited(kw: Keyward, created: list) -> None:
    key = kw.keys.create(name=unique(), ratelimits=[{"name": "burst", "limit": 2, "duration": "1m"}])
    created.append(key.id)
    a = kw.verify(key.secret)
    assert a.valid and a.ratelimit is not None
    assert (a.ratelimit.name, a.ratelimit.limit, a.ratelimit.remaining) == ("burst", 2, 1)
    assert a.ratelimit.reset > time.time() * 1000
    assert kw.verify(key.secret).ratelimit.remaining == 0
    c = kw.verify(key.secret)
    assert (c.valid, c.code, c.ratelimit.remaining) == (False, "RATE_LIMITED", 0)


def test_credits_and_cost(kw: Keyward, created: list) -> None:
    key = kw.keys.create(name=unique(), credits={"remaining": 5})
    created.append(key.id)
    assert kw.verify(key.secret).credits.remaining == 4
    assert kw.verify(key.secret, cost=0).credits.remaining == 4
    assert kw.verify(key.secret, cost=4).credits.remaining == 0
    last = kw.verify(key.secret)
    assert (last.valid, last.code) == (False, "USAGE_EXCEEDED")


def test_workspace_and_environment_binding(kw: Keyward, server, created: list) -> None:
    key = kw.keys.create(name=unique(), environment="test")
    created.append(key.id)
    v = kw.verify(key.secret, workspace_id=server.workspace_id)
    assert v.valid and v.workspace_id == server.workspace_id
    other = "ws_" + "0" * 26
    assert kw.verify(key.secret, workspace_id=other).code == "NOT_FOUND"
    assert kw.verify(key.secret, environment="live").code == "WRONG_ENVIRONMENT"
    bound = Keyward(base_url=server.url, workspace_id=other, environment="test")
    assert bound.verify(key.secret).code == "NOT_FOUND"  # the client's binding applies by default
    assert bound.verify(key.secret, workspace_id=server.workspace_id).valid
    with pytest.raises(KeywardError) as e:
        kw.verify(key.secret, workspace_id="not-a-workspace")
    assert (e.value.status, e.value.field) == (400, "workspace_id")


@pytest.fixture(scope="module")
def token_server():
    s = start_server("--verify-token", "operator-token-123")
    yield s
    s.stop()


def test_verify_tokens_on_a_server_that_requires_one(token_server) -> None:
    s = token_server
    kw = Keyward(base_url=s.url, management_key=s.management_key)
    key = kw.keys.create(name=unique())
    with pytest.raises(KeywardError) as e:
        kw.verify(key.secret)
    assert e.value.status == 401 and e.value.code == "unauthenticated"
    assert Keyward(base_url=s.url, verify_token="operator-token-123").verify(key.secret).valid
    vt = kw.verify_tokens.create(unique("svc"))
    assert vt.token and vt.token.startswith("kw_vt_") and vt.workspace_id == s.workspace_id
    assert vt.id in {t.id for t in kw.verify_tokens.list().items}
    with_token = Keyward(base_url=s.url, verify_token=vt.token)
    assert with_token.verify(key.secret).valid
    # a workspace's token binds verification to it
    assert with_token.verify(key.secret, workspace_id="ws_" + "1" * 26).code == "NOT_FOUND"
    kw.verify_tokens.revoke(vt.id)
    deadline = time.time() + 5
    while True:
        try:
            with_token.verify(key.secret)
        except KeywardError as err:
            assert err.status == 401
            break
        assert time.time() < deadline, "revoked verify token still accepted"
        time.sleep(0.2)


async def test_async_client_creates_verifies_and_revokes(server) -> None:
    async with AsyncKeyward(base_url=server.url, management_key=server.management_key) as kw:
        key = await kw.keys.create(name=unique("async"), permissions=["x.read"])
        assert key.secret
        v = await kw.verify(key.secret, permissions="x.read")
        assert v.valid and v.key_id == key.id
        assert (await kw.verify(key.secret, permissions="x.write")).code == "INSUFFICIENT_PERMISSIONS"
        assert any([k.id == key.id async for k in kw.keys.iter(q=key.name)])
        assert (await kw.keys.get(key.id)).name == key.name
        await kw.keys.revoke(key.id)
        assert (await kw.verify(key.secret)).code == "REVOKED"
        with pytest.raises(KeywardError) as e:
            await kw.keys.get("key_nope")
        assert e.value.status == 404
