"""The held-out FastAPI app (tests/apps/fastapi_app.py) run for real under uvicorn on a free port."""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest

from keyward import Keyward
from keyward.signing import Signer

from conftest import HERE, PYTHON, free_port, unique, wait_port


@pytest.fixture(scope="module")
def app_url(server):
    port = free_port()
    env = dict(os.environ, KEYWARD_URL=server.url)
    env.pop("KEYWARD_MANAGEMENT_KEY", None)  # the app verifies only: it needs no management key
    proc = subprocess.Popen(
        [PYTHON, "-m", "uvicorn", "fastapi_app:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=os.path.join(HERE, "apps"), env=env,
    )
    try:
        wait_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def _error(resp: httpx.Response, status: int, code: str, verification_code=None) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"}, body  # Keyward's error shape, not FastAPI's {"detail": …}
    assert body["error"]["code"] == code and body["error"]["message"]
    assert body["error"].get("verification_code") == verification_code
    return body["error"]


def test_no_key_is_401(app_url) -> None:
    r = httpx.get(app_url + "/invoices")
    _error(r, 401, "unauthenticated")
    assert r.headers["www-authenticate"].startswith("Bearer")
    _error(httpx.get(app_url + "/invoices", headers={"Authorization": "Basic abc"}), 401, "unauthenticated")


def test_bad_or_revoked_key_is_401(kw: Keyward, app_url) -> None:
    _error(httpx.get(app_url + "/invoices", headers={"X-API-Key": "garbage"}), 401, "unauthenticated", "MALFORMED")
    key = kw.keys.create(name=unique(), permissions=["invoices.read"])
    kw.keys.revoke(key.id)
    r = httpx.get(app_url + "/invoices", headers={"X-API-Key": key.secret})
    _error(r, 401, "unauthenticated", "REVOKED")
    assert r.headers["x-keyward-code"] == "REVOKED"


def test_key_lacking_the_permission_is_403(kw: Keyward, app_url, created: list) -> None:
    key = kw.keys.create(name=unique(), permissions=["invoices.write"])
    created.append(key.id)
    _error(httpx.get(app_url + "/invoices", headers={"X-API-Key": key.secret}), 403, "forbidden", "INSUFFICIENT_PERMISSIONS")


def test_good_key_reaches_the_handler_with_the_verification(kw: Keyward, app_url, created: list) -> None:
    key = kw.keys.create(name=unique(), permissions=["invoices.read"])
    created.append(key.id)
    for headers in ({"X-API-Key": key.secret}, {"Authorization": f"Bearer {key.secret}"}):
        r = httpx.get(app_url + "/invoices", headers=headers)
        assert r.status_code == 200, r.text
        assert r.json() == {"invoices": [], "key_id": key.id, "permissions": ["invoices.read"]}
    assert httpx.get(app_url + "/health").status_code == 200


def test_async_client_and_a_scope_from_the_path(kw: Keyward, app_url, created: list) -> None:
    key = kw.keys.create(name=unique(), permissions=["invoices.read"], scopes=["invoice:inv_1"])
    created.append(key.id)
    ok = httpx.get(app_url + "/async/invoices/inv_1", headers={"X-API-Key": key.secret})
    assert ok.status_code == 200 and ok.json() == {"invoice": "inv_1", "key_id": key.id}
    _error(httpx.get(app_url + "/async/invoices/inv_2", headers={"X-API-Key": key.secret}), 403, "forbidden",
           "INSUFFICIENT_PERMISSIONS")


def test_rate_limited_key_is_429(kw: Keyward, app_url, created: list) -> None:
    key = kw.keys.create(name=unique(), permissions=["invoices.read"], ratelimits=[{"name": "rl", "limit": 1, "duration": "1m"}])
    created.append(key.id)
    assert httpx.get(app_url + "/invoices", headers={"X-API-Key": key.secret}).status_code == 200
    r = httpx.get(app_url + "/invoices", headers={"X-API-Key": key.secret})
    _error(r, 429, "rate_limited", "RATE_LIMITED")
    assert int(r.headers["retry-after"]) >= 1


def test_signed_request_through_keyauth(kw: Keyward, app_url, created: list) -> None:
    signer = Signer.generate()
    key = kw.keys.create(name=unique(), public_key=signer.public_key, permissions=["invoices.write"])
    created.append(key.id)
    body = b'{"amount": 3}'
    r = httpx.post(app_url + "/signed", content=body, headers=signer.headers("POST", "/signed", body=body))
    assert r.status_code == 200 and r.json() == {"key_id": key.id}, r.text
    tampered = signer.headers("POST", "/signed", body=body)
    r = httpx.post(app_url + "/signed", content=b'{"amount": 300}', headers=tampered)
    _error(r, 401, "unauthenticated", "INVALID_SIGNATURE")
