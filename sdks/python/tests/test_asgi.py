"""The ASGI middleware around a plain Starlette app, served for real by uvicorn."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from keyward import AsyncKeyward, Keyward
from keyward.asgi import KeywardMiddleware
from keyward.signing import Signer

from conftest import free_port, unique, wait_port


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"key_id": request.state.keyward.key_id, "body": body.decode()})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


@pytest.fixture(scope="module")
def url(server):
    inner = Starlette(routes=[Route("/echo", echo, methods=["GET", "POST"]), Route("/healthz", health)])
    app = KeywardMiddleware(inner, AsyncKeyward(base_url=server.url), permissions="echo.use", exclude=["/healthz"])
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    wait_port(port)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    t.join(10)


def test_asgi_middleware(kw: Keyward, url: str, created: list) -> None:
    assert httpx.get(url + "/healthz").status_code == 200
    r = httpx.get(url + "/echo")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    weak = kw.keys.create(name=unique(), permissions=["other"])
    good = kw.keys.create(name=unique(), permissions=["echo.use"])
    created += [weak.id, good.id]
    r = httpx.get(url + "/echo", headers={"X-API-Key": weak.secret})
    assert r.status_code == 403 and r.json() == {
        "error": {"code": "forbidden", "message": "API key lacks the required permissions",
                  "verification_code": "INSUFFICIENT_PERMISSIONS"}
    }
    r = httpx.post(url + "/echo", headers={"Authorization": "Bearer " + good.secret}, content=b"hello")
    assert r.status_code == 200 and r.json() == {"key_id": good.id, "body": "hello"}


def test_asgi_middleware_signed_request_body_reaches_the_app(kw: Keyward, url: str, created: list) -> None:
    signer = Signer.generate()
    key = kw.keys.create(name=unique(), public_key=signer.public_key, permissions=["echo.use"])
    created.append(key.id)
    body = b'{"x": "y"}' * 1000
    h = signer.headers("POST", "/echo", query="a=1", body=body)
    r = httpx.post(url + "/echo?a=1", headers=h, content=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"key_id": key.id, "body": body.decode()}
