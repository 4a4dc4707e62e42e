"""Django: a middleware that verifies API keys and a decorator that requires them.

    # settings.py
    MIDDLEWARE = [..., "keyward.django.KeywardMiddleware"]
    KEYWARD = {"base_url": "http://127.0.0.1:5399"}        # optional; else KEYWARD_URL

    # views.py
    from keyward.django import require_key

    @require_key(permissions="invoices.read")
    def invoices(request):
        return JsonResponse({"key_id": request.keyward.key_id})

The middleware verifies a request that carries a key (``X-API-Key``, ``Authorization: Bearer``,
or a signed request's ``Biz-Api-*`` headers) and sets ``request.keyward`` (the verification, or
``None`` without a credential); with ``KEYWARD["protect"] = ["/api/"]`` it refuses requests
under those path prefixes that lack a valid key. ``@require_key`` refuses what its view must
not see: 401 without a key or with a bad one, 403 lacking a permission, 429 over the key's
limits, in Keyward's error shape. Settings (``KEYWARD`` dict): ``base_url``, ``verify_token``,
``workspace_id``, ``environment``, ``timeout``, ``protect``, ``permissions`` (for ``protect``),
``client_ip`` (default True: ``REMOTE_ADDR`` is sent for keys with an IP allowlist).
Install with ``pip install keyward[django]``.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable, Dict, Optional, Sequence, Union

from django.http import HttpRequest, HttpResponse, JsonResponse

from . import _auth
from ._client import Keyward
from ._errors import KeywardError
from .models import VerifyResponse

__all__ = ["KeywardMiddleware", "require_key", "get_client"]

_client: Optional[Keyward] = None
_lock = threading.Lock()


def _settings() -> Dict[str, Any]:
    from django.conf import settings

    return dict(getattr(settings, "KEYWARD", {}) or {})


def get_client() -> Keyward:
    """The process's client, made once from ``settings.KEYWARD`` (and the environment)."""
    global _client
    with _lock:
        if _client is None:
            s = _settings()
            kwargs = {k: s[k] for k in ("base_url", "verify_token", "workspace_id", "environment", "timeout") if k in s}
            _client = Keyward(**kwargs)
        return _client


def _response(answer: Any) -> HttpResponse:
    status, body, headers = answer
    resp = JsonResponse(body, status=status)
    for k, v in headers:
        resp[k] = v
    return resp


def _check(
    request: HttpRequest, client: Optional[Keyward], permissions: Any, scope: Optional[str]
) -> Union[VerifyResponse, HttpResponse]:
    s = _settings()
    check = _auth.Check(
        client or get_client(), permissions, scope,
        workspace_id=s.get("workspace_id"), environment=s.get("environment"),
    )
    headers = _auth.lower(request.headers.items())
    ip = request.META.get("REMOTE_ADDR") if s.get("client_ip", True) else None
    try:
        v = check.run(headers, request.method or "GET", request.path, request.META.get("QUERY_STRING", ""),
                      request.body if "biz-api-key" in headers else b"", ip)
    except KeywardError as e:
        return _response(_auth.unavailable(e))
    if v is None:
        return _response(_auth.missing())
    if not v.valid:
        return _response(_auth.refusal(v))
    return v


class KeywardMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        s = _settings()
        protect = tuple(s.get("protect") or ())
        request.keyward = None  # type: ignore[attr-defined]
        guarded = bool(protect) and request.path.startswith(protect)
        has_credential = any(h in request.headers for h in ("X-Api-Key", "Authorization", "Biz-Api-Key"))
        if guarded or has_credential:
            out = _check(request, None, s.get("permissions") if guarded else None, None)
            if isinstance(out, HttpResponse):
                if guarded:
                    return out
            else:
                request.keyward = out  # type: ignore[attr-defined]
        return self.get_response(request)


def require_key(
    view: Optional[Callable[..., HttpResponse]] = None,
    *,
    permissions: Union[None, str, Sequence[str]] = None,
    scope: Union[None, str, Callable[..., Optional[str]]] = None,
    client: Optional[Keyward] = None,
) -> Any:
    """Decorator: the view runs only for a valid key holding ``permissions`` (in ``scope``, a
    string or a callable ``(request, *args, **kwargs) -> scope``); ``request.keyward`` is the
    verification. Usable bare (``@require_key``) or with arguments."""

    def decorate(fn: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(fn)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            sc = scope(request, *args, **kwargs) if callable(scope) else scope
            done = getattr(request, "keyward", None)
            if done is not None and permissions is None and sc is None and client is None:
                v: Union[VerifyResponse, HttpResponse] = done
            else:
                v = _check(request, client, permissions, sc)
            if isinstance(v, HttpResponse):
                return v
            request.keyward = v  # type: ignore[attr-defined]
            return fn(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate
