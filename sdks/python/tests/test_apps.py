"""TokenSource and AsyncTokenSource (keyward.apps) against a real server of their own, started
with --public-url (the token endpoint answers 503 without one) on a port chosen beforehand so
the public URL is the address it listens at. A developer workspace (the server's first)
registers an app; another workspace, provisioned with the operator token, installs it with
less than it asks for; the sources buy, keep, refresh and re-buy that installation's tokens."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.parse
from typing import Any, Dict, Iterator, List, Optional

import httpx
import pytest

from conftest import Server, free_port, start_server, unique
from keyward import AsyncKeyward, AsyncTokenSource, Keyward, KeywardOAuthError, TokenSource
from keyward.apps import JWT_BEARER
from keyward.signing import Signer

PASSWORD = "correct horse battery staple"


def api(s: Server, token: str, method: str, path: str, body: Any = None) -> Any:
    r = httpx.request(method, s.url + path, json=body, headers={"authorization": f"Bearer {token}"})
    assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
    return r.json() if r.content else None


@pytest.fixture(scope="module")
def oauth() -> Iterator[Dict[str, Any]]:
    """The server, its developer (first) workspace's key, and an organisation's session."""
    err: Optional[Exception] = None
    for _ in range(3):  # the port chosen may be taken before the server binds it
        port = free_port()
        try:
            s = start_server("--public-url", f"http://127.0.0.1:{port}", listen=f"127.0.0.1:{port}")
            break
        except RuntimeError as e:
            err = e
    else:
        raise RuntimeError(f"no server: {err}")
    try:
        assert s.operator_token, "serve printed no operator token"
        email = f"{unique('owner')}@org.example"
        ws = api(s, s.operator_token, "POST", "/v1/workspaces", {"name": "Org", "owner_email": email})
        r = httpx.post(s.url + "/v1/members/setup", json={"setup_token": ws["owner"]["setup_token"], "password": PASSWORD})
        assert r.status_code == 200, r.text
        r = httpx.post(s.url + "/v1/sessions", json={"email": email, "password": PASSWORD, "workspace_id": ws["id"]})
        assert r.status_code == 201, r.text
        yield {"server": s, "org": r.json()["token"], "org_id": ws["id"]}
    finally:
        s.stop()


def install(oauth: Dict[str, Any], algorithm: str) -> Dict[str, Any]:
    """An app of the developer, with a new APP pair, installed by the organisation."""
    s: Server = oauth["server"]
    signer = Signer.generate(algorithm)
    app = api(s, s.management_key, "POST", "/v1/apps", {
        "name": unique("ledger"), "public_key": signer.public_key, "algorithm": algorithm,
        "permissions": ["ledger.read", "ledger.write"], "scopes": ["ledger:*"],
    })
    inst = api(s, oauth["org"], "POST", "/v1/installations", {
        "app_id": app["id"], "permissions": ["ledger.read"], "scopes": ["ledger:l_1"],
    })
    assert inst["status"] == "active" and inst["workspace_id"] == oauth["org_id"], inst
    return {"app": app["id"], "inst": inst["id"], "secret": signer.secret_hex, "algorithm": algorithm}


class Recorder:
    """What the token endpoint was asked (grant types) and answered (bodies)."""

    def __init__(self) -> None:
        self.grants: List[str] = []
        self.answers: List[Dict[str, Any]] = []

    def request(self, request: httpx.Request) -> None:
        self.grants.append(urllib.parse.parse_qs(request.content.decode())["grant_type"][0])

    def response(self, response: httpx.Response) -> None:
        response.read()
        self.answers.append(response.json())

    async def arequest(self, request: httpx.Request) -> None:
        self.request(request)

    async def aresponse(self, response: httpx.Response) -> None:
        await response.aread()
        self.answers.append(response.json())


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def check_valid(s: Server, token: str, app: Dict[str, Any]) -> None:
    with Keyward(base_url=s.url) as kw:
        v = kw.verify(token, permissions="ledger.read")
        assert v.valid and v.code == "VALID", v
        assert v.kind == "app_token" and v.app_id == app["app"] and v.installation_id == app["inst"], v
        assert v.permissions == ["ledger.read"] and v.scopes == ["ledger:l_1"], v
        assert kw.verify(token, permissions="ledger.write").code == "INSUFFICIENT_PERMISSIONS"


@pytest.mark.parametrize("algorithm", ["ed25519", "secp256k1"])
def test_a_source_buys_keeps_refreshes_and_rebuys(oauth: Dict[str, Any], algorithm: str) -> None:
    s: Server = oauth["server"]
    app = install(oauth, algorithm)
    rec, clock = Recorder(), Clock()
    http = httpx.Client(event_hooks={"request": [rec.request], "response": [rec.response]})
    with Keyward(base_url=s.url) as kw:  # a client works as the base URL too
        tokens = TokenSource(kw, app["app"], app["inst"], app["secret"], algorithm=algorithm,
                             http_client=http, clock=clock)
    first = tokens.token()
    check_valid(s, first, app)
    assert tokens.authorization() == f"Bearer {first}" and tokens.token() == first
    assert rec.grants == [JWT_BEARER], "a held token is not bought again"

    # A minute before its hour is up the token is replaced with the refresh token.
    clock.now += 3600 - 61
    assert tokens.token() == first
    clock.now += 2
    second = tokens.token()
    assert second != first and rec.grants == [JWT_BEARER, "refresh_token"]
    check_valid(s, second, app)

    # The refresh token's family revoked: the refresh is refused, a new assertion buys one.
    r = httpx.post(s.url + "/v1/oauth/revoke", data={"token": rec.answers[-1]["refresh_token"]})
    assert r.status_code == 200, r.text
    clock.now += 3600
    third = tokens.token()
    assert rec.grants == [JWT_BEARER, "refresh_token", "refresh_token", JWT_BEARER]
    assert rec.answers[-2]["error"] == "invalid_grant"
    check_valid(s, third, app)

    # forget(): the next call signs a new assertion.
    tokens.forget()
    assert tokens.token() not in (first, second, third) and rec.grants[-1] == JWT_BEARER
    tokens.close()
    http.close()


def test_threads_share_one_purchase(oauth: Dict[str, Any]) -> None:
    app = install(oauth, "ed25519")
    rec = Recorder()
    http = httpx.Client(event_hooks={"request": [rec.request]})
    tokens = TokenSource(oauth["server"].url, app["app"], app["inst"], Signer.from_hex(app["secret"]), http_client=http)
    got: List[str] = []
    barrier = threading.Barrier(8)

    def take() -> None:
        barrier.wait()
        got.append(tokens.token())

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and len(set(got)) == 1 and rec.grants == [JWT_BEARER]
    http.close()


@pytest.mark.parametrize("algorithm", ["ed25519", "secp256k1"])
def test_a_wrong_key_is_invalid_client(oauth: Dict[str, Any], algorithm: str) -> None:
    app = install(oauth, algorithm)
    stranger = Signer.generate(algorithm)
    with TokenSource(oauth["server"].url, app["app"], app["inst"], stranger) as tokens:
        with pytest.raises(KeywardOAuthError) as e:
            tokens.token()
    assert e.value.status == 401 and e.value.code == "invalid_client" and e.value.error == "invalid_client"
    assert e.value.message  # the server's error_description


def test_an_uninstalled_app_gets_invalid_grant(oauth: Dict[str, Any]) -> None:
    s: Server = oauth["server"]
    app = install(oauth, "secp256k1")
    clock = Clock()
    with TokenSource(s.url, app["app"], app["inst"], app["secret"], algorithm="secp256k1", clock=clock) as tokens:
        tokens.token()
        api(s, oauth["org"], "DELETE", f"/v1/installations/{app['inst']}")
        clock.now += 3600  # the refresh is refused, and so is the new assertion
        with pytest.raises(KeywardOAuthError) as e:
            tokens.token()
    assert e.value.status == 400 and e.value.code == "invalid_grant", repr(e.value)


def test_a_server_without_public_url_answers_server_error(server: Server) -> None:
    """The CI run's shared server has no --public-url: the typed error names the cause."""
    with TokenSource(server.url, "app_x", "inst_x", Signer.generate().secret_hex) as tokens:
        with pytest.raises(KeywardOAuthError) as e:
            tokens.token()
    if e.value.status != 503:
        pytest.skip("this server has a public URL")
    assert e.value.code == "server_error", repr(e.value)


async def test_async_tasks_share_one_purchase(oauth: Dict[str, Any]) -> None:
    s: Server = oauth["server"]
    app = install(oauth, "secp256k1")
    rec, clock = Recorder(), Clock()
    async with httpx.AsyncClient(event_hooks={"request": [rec.arequest], "response": [rec.aresponse]}) as http:
        tokens = AsyncTokenSource(s.url, app["app"], app["inst"], app["secret"], algorithm="secp256k1",
                                  http_client=http, clock=clock)
        got = await asyncio.gather(*(tokens.token() for _ in range(6)))
        assert len(set(got)) == 1 and rec.grants == [JWT_BEARER]
        async with AsyncKeyward(base_url=s.url) as kw:
            v = await kw.verify(got[0], permissions="ledger.read")
        assert v.valid and v.kind == "app_token" and v.permissions == ["ledger.read"], v
        clock.now += 3600
        refreshed = await tokens.token()
        assert refreshed != got[0] and rec.grants == [JWT_BEARER, "refresh_token"]
        stranger = AsyncTokenSource(s.url, app["app"], app["inst"], Signer.generate("secp256k1"), http_client=http)
        with pytest.raises(KeywardOAuthError) as e:
            await stranger.token()
        assert e.value.code == "invalid_client"
