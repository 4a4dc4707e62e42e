"""What the framework helpers share: reading the credential, the refusal answers."""

from __future__ import annotations

import json
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .models import VerifyResponse

SIGNED_HEADERS = ("biz-api-key", "biz-api-nonce", "biz-api-signature")

# Refusals of a known, live key that lacks something: 403; limits: 429; the rest: 401
# (as Keyward's forward-auth and gateway answer them).
FORBIDDEN_CODES = frozenset({"IP_NOT_ALLOWED", "INSUFFICIENT_PERMISSIONS", "WRONG_ENVIRONMENT", "SUSPENDED"})
LIMIT_CODES = frozenset({"RATE_LIMITED", "USAGE_EXCEEDED"})

MESSAGES = {
    "MALFORMED": "missing or malformed API key",
    "NOT_FOUND": "unknown API key",
    "REVOKED": "API key revoked",
    "EXPIRED": "API key expired",
    "PENDING": "API key awaits approval",
    "IP_NOT_ALLOWED": "request IP not allowed for this key",
    "INSUFFICIENT_PERMISSIONS": "API key lacks the required permissions",
    "INVALID_SIGNATURE": "request signature does not match",
    "NONCE_EXPIRED": "Biz-Api-Nonce is outside the accepted time window",
    "REPLAYED": "this signed request was already used",
    "DISABLED": "API key is disabled (or its service account is)",
    "WRONG_ENVIRONMENT": "API key belongs to another environment",
    "SUSPENDED": "API key's workspace is suspended",
    "RATE_LIMITED": "API key rate limit reached",
    "USAGE_EXCEEDED": "API key has no credits left",
}


def lower(headers: Any) -> Dict[str, str]:
    """Headers as a dict with lower-case names (from any mapping or list of pairs)."""
    items = headers.items() if hasattr(headers, "items") else headers
    out: Dict[str, str] = {}
    for k, v in items:
        if isinstance(k, bytes):
            k = k.decode("latin-1")
        if isinstance(v, bytes):
            v = v.decode("latin-1")
        out[k.lower()] = v
    return out


def secret_key(headers: Mapping[str, str]) -> Optional[str]:
    """The key from ``X-API-Key`` or ``Authorization: Bearer`` (``headers`` lower-cased)."""
    key = headers.get("x-api-key", "").strip()
    if key:
        return key
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def signed(headers: Mapping[str, str]) -> Optional[Dict[str, str]]:
    """The ``Biz-Api-*`` headers of a signed request, when it has its key header."""
    if "biz-api-key" not in headers:
        return None
    return {h: headers[h] for h in SIGNED_HEADERS if h in headers}


def error_body(status: int, message: str, verification_code: Optional[str] = None) -> Dict[str, Any]:
    code = {401: "unauthenticated", 403: "forbidden", 429: "rate_limited"}.get(status, "unavailable")
    err: Dict[str, Any] = {"code": code, "message": message}
    if verification_code:
        err["verification_code"] = verification_code
    return {"error": err}


def missing() -> Tuple[int, Dict[str, Any], List[Tuple[str, str]]]:
    """No credential at all: 401, like an unknown key's ``MALFORMED``."""
    return 401, error_body(401, "missing API key: send X-API-Key or Authorization: Bearer"), [
        ("www-authenticate", 'Bearer realm="keyward"'),
    ]


def refusal(v: VerifyResponse) -> Tuple[int, Dict[str, Any], List[Tuple[str, str]]]:
    """The status, Keyward error body and headers for a refused verification."""
    code = str(v.code)
    if code in LIMIT_CODES:
        status = 429
    elif code in FORBIDDEN_CODES:
        status = 403
    else:
        status = 401
    headers = [("x-keyward-code", code)]
    if status == 401:
        headers.append(("www-authenticate", 'Bearer realm="keyward"'))
    if status == 429:
        wait = 1
        if v.ratelimit is not None:
            wait = max(1, int((v.ratelimit.reset - time.time() * 1000 + 999) // 1000))
            headers.append(("ratelimit", f'"{v.ratelimit.name}";r={v.ratelimit.remaining};t={wait}'))
        headers.append(("retry-after", str(wait)))
    return status, error_body(status, MESSAGES.get(code, "request refused"), code), headers


def unavailable(err: Exception) -> Tuple[int, Dict[str, Any], List[Tuple[str, str]]]:
    """Keyward itself could not answer: 503 (fail closed)."""
    return 503, {"error": {"code": "unavailable", "message": "API key verification is unavailable"}}, [
        ("retry-after", "1")
    ]


def dumps(body: Dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


class Check:
    """One route's requirements, and the verification of a request against them."""

    def __init__(
        self,
        client: Any,
        permissions: Any = None,
        scope: Optional[str] = None,
        *,
        workspace_id: Optional[str] = None,
        environment: Optional[str] = None,
        cost: Optional[int] = None,
    ) -> None:
        if client is None:
            from ._client import Keyward

            client = Keyward()
        self.client = client
        self.permissions = permissions
        self.scope = scope
        self.workspace_id = workspace_id
        self.environment = environment
        self.cost = cost

    @property
    def is_async(self) -> bool:
        from ._client import AsyncKeyward

        return isinstance(self.client, AsyncKeyward)

    def _args(self, scope: Optional[str], ip: Optional[str]) -> Dict[str, Any]:
        return dict(
            permissions=self.permissions, scope=scope if scope is not None else self.scope, ip=ip,
            workspace_id=self.workspace_id, environment=self.environment, cost=self.cost,
        )

    def run(
        self, headers: Mapping[str, str], method: str, path: str, query: str, body: bytes,
        ip: Optional[str], scope: Optional[str] = None,
    ) -> Optional[VerifyResponse]:
        """Sync: the verification, or None when the request carries no credential."""
        key = secret_key(headers)
        if key is not None:
            return self.client.verify(key, **self._args(scope, ip))
        sig = signed(headers)
        if sig is not None:
            return self.client.verify_signed(method, path, sig, query=query, body=body, **self._args(scope, ip))
        return None

    async def arun(
        self, headers: Mapping[str, str], method: str, path: str, query: str, body: Any,
        ip: Optional[str], scope: Optional[str] = None,
    ) -> Optional[VerifyResponse]:
        """Async (``body`` may be an awaitable returning bytes; read only for signed requests)."""
        key = secret_key(headers)
        sig = signed(headers) if key is None else None
        if key is None and sig is None:
            return None
        if sig is not None and callable(body):
            body = await body()
        if self.is_async:
            if key is not None:
                return await self.client.verify(key, **self._args(scope, ip))
            return await self.client.verify_signed(method, path, sig, query=query, body=body, **self._args(scope, ip))
        import functools

        import anyio.to_thread

        fn = functools.partial(self.run, headers, method, path, query, body or b"", ip, scope)
        return await anyio.to_thread.run_sync(fn)
