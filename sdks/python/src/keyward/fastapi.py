"""FastAPI: protect a route in three lines.

    from keyward import Keyward
    from keyward.fastapi import KeyAuth

    @app.get("/invoices")
    def invoices(key = Depends(KeyAuth(Keyward(), permissions="invoices.read"))):
        return {"key_id": key.key_id}

``KeyAuth`` reads the key from ``X-API-Key`` or ``Authorization: Bearer`` (or a signed request's
``Biz-Api-*`` headers), verifies it with Keyward and returns the verification
(:class:`keyward.models.VerifyResponse`). Refusals answer in Keyward's error shape,
``{"error": {"code", "message", "verification_code"}}``: 401 without a key or with a bad one,
403 for a key lacking the permission (or IP, environment), 429 over its limits (with
``Retry-After``), 503 when Keyward cannot be reached. Install with ``pip install keyward[fastapi]``.
"""

# No `from __future__ import annotations`: FastAPI must see `Request` itself in `__call__`
# (string annotations of a callable instance are not resolved on every version it supports).

from typing import Any, Callable, Dict, Optional, Sequence, Union

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse

from . import _auth
from ._errors import KeywardError
from .models import VerifyResponse

__all__ = ["KeyAuth", "KeywardAuthError", "keyward_exception_handler", "install"]


class KeywardAuthError(HTTPException):
    """A refusal by :class:`KeyAuth`; answered as ``body`` (Keyward's error shape)."""

    def __init__(self, status: int, body: Dict[str, Any], headers: Dict[str, str]) -> None:
        super().__init__(status_code=status, detail=body["error"], headers=headers)
        self.body = body


async def keyward_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KeywardAuthError)
    return JSONResponse(exc.body, status_code=exc.status_code, headers=exc.headers)


def install(app: Any) -> None:
    """Registers the handler that answers refusals in Keyward's error shape. ``KeyAuth`` does
    this by itself on its first refusal; call it at start-up to not depend on that."""
    app.add_exception_handler(KeywardAuthError, keyward_exception_handler)


def _ensure_handler(request: Request) -> None:
    # Starlette (0.28+) keeps the live exception handlers in the scope; adding ours there makes
    # FastAPI answer `{"error": …}` instead of `{"detail": …}` without a line in the user's app.
    handlers = request.scope.get("starlette.exception_handlers")
    if isinstance(handlers, tuple) and handlers and isinstance(handlers[0], dict):
        handlers[0].setdefault(KeywardAuthError, keyward_exception_handler)


class KeyAuth:
    """A FastAPI dependency that verifies the request's API key and returns the verification.

    ``client`` is a :class:`keyward.Keyward` or :class:`keyward.AsyncKeyward` (``None``: a
    ``Keyward()`` from the environment). ``permissions`` is a permission query
    (``"invoices.read AND invoices.write"``) or a list of permissions all required; ``scope``
    a resource scope, or a callable ``(request) -> scope`` (e.g. from a path parameter).
    ``ip`` (default: the connection's client address) is sent for keys with an IP allowlist;
    pass a callable ``(request) -> str | None`` to read it elsewhere, or ``False`` to send none.
    ``optional=True`` returns ``None`` for a request without any credential instead of 401.
    """

    def __init__(
        self,
        client: Any = None,
        permissions: Union[None, str, Sequence[str]] = None,
        scope: Union[None, str, Callable[[Request], Optional[str]]] = None,
        *,
        workspace_id: Optional[str] = None,
        environment: Optional[str] = None,
        cost: Optional[int] = None,
        ip: Union[None, bool, Callable[[Request], Optional[str]]] = None,
        optional: bool = False,
    ) -> None:
        self._check = _auth.Check(
            client, permissions, None if callable(scope) else scope,
            workspace_id=workspace_id, environment=environment, cost=cost,
        )
        self._scope_fn = scope if callable(scope) else None
        self._ip = ip
        self.optional = optional

    def _client_ip(self, request: Request) -> Optional[str]:
        if self._ip is False:
            return None
        if callable(self._ip):
            return self._ip(request)
        return request.client.host if request.client else None

    async def __call__(self, request: Request) -> VerifyResponse:
        headers = _auth.lower(request.headers.items())
        scope = self._scope_fn(request) if self._scope_fn else None
        try:
            v = await self._check.arun(
                headers, request.method, request.url.path, request.url.query, request.body,
                self._client_ip(request), scope,
            )
        except KeywardError as e:
            self._refuse(request, _auth.unavailable(e))
        if v is None:
            if self.optional:
                return None  # type: ignore[return-value]
            self._refuse(request, _auth.missing())
        if not v.valid:
            self._refuse(request, _auth.refusal(v))
        request.state.keyward = v
        return v

    @staticmethod
    def _refuse(request: Request, answer: Any) -> Any:
        status, body, headers = answer
        _ensure_handler(request)
        raise KeywardAuthError(status, body, dict(headers))
