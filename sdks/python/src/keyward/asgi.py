"""An ASGI middleware for any ASGI app (Starlette, FastAPI, Quart, Litestar, …).

    from keyward import AsyncKeyward
    from keyward.asgi import KeywardMiddleware

    app = KeywardMiddleware(app, AsyncKeyward(), permissions="invoices.read")

Every HTTP request needs a valid key (``X-API-Key``, ``Authorization: Bearer`` or a signed
request's ``Biz-Api-*`` headers) and the given permissions; a refused one is answered here with
Keyward's error shape (401, 403, 429; 503 when Keyward cannot be reached) and never reaches
the app. An accepted one reaches it with the verification in ``scope["keyward"]`` and in
``scope["state"]["keyward"]`` (Starlette's ``request.state.keyward``). ``exclude`` lists path
prefixes let through unchecked (e.g. ``["/healthz"]``); WebSocket and lifespan pass through.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, List, MutableMapping, Optional, Sequence, Union

from . import _auth
from ._errors import KeywardError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

__all__ = ["KeywardMiddleware"]


class KeywardMiddleware:
    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        client: Any = None,
        permissions: Union[None, str, Sequence[str]] = None,
        scope: Optional[str] = None,
        *,
        workspace_id: Optional[str] = None,
        environment: Optional[str] = None,
        cost: Optional[int] = None,
        exclude: Sequence[str] = (),
        client_ip: bool = True,
    ) -> None:
        self.app = app
        self._check = _auth.Check(
            client, permissions, scope, workspace_id=workspace_id, environment=environment, cost=cost
        )
        self.exclude = tuple(exclude)
        self.client_ip = client_ip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(self.exclude) and self.exclude:
            await self.app(scope, receive, send)
            return
        headers = _auth.lower(scope.get("headers") or [])
        chunks: List[Message] = []

        async def read_body() -> bytes:
            body = b""
            while True:
                msg = await receive()
                chunks.append(msg)
                if msg["type"] == "http.request":
                    body += msg.get("body", b"")
                    if not msg.get("more_body"):
                        return body
                else:
                    return body

        ip = None
        if self.client_ip and scope.get("client"):
            ip = scope["client"][0]
        raw_path = scope.get("path", "")
        query = (scope.get("query_string") or b"").decode("latin-1")
        try:
            v = await self._check.arun(headers, scope.get("method", "GET"), raw_path, query, read_body, ip)
        except KeywardError as e:
            await _answer(send, _auth.unavailable(e))
            return
        if v is None:
            await _answer(send, _auth.missing())
            return
        if not v.valid:
            await _answer(send, _auth.refusal(v))
            return
        scope["keyward"] = v
        scope.setdefault("state", {})["keyward"] = v

        replay = list(chunks)

        async def replayed() -> Message:
            if replay:
                return replay.pop(0)
            return await receive()

        await self.app(scope, replayed if chunks else receive, send)


async def _answer(send: Send, answer: Any) -> None:
    status, body, headers = answer
    data = _auth.dumps(body)
    raw: List[Any] = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})
