from __future__ import annotations

import asyncio
import time
from typing import Any, Mapping, Optional, Union

import httpx

from ._async_resources import (
    AsyncKeys,
    AsyncRateLimits,
    AsyncRoles,
    AsyncServiceAccounts,
    AsyncUsage,
    AsyncVerification,
    AsyncVerifyTokens,
    AsyncWebhooks,
)
from ._base import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, BaseClient, Req
from ._errors import KeywardConnectionError, KeywardError, KeywardTimeoutError
from ._resources import Keys, RateLimits, Roles, ServiceAccounts, Usage, Verification, VerifyTokens, Webhooks


def _transport_error(e: httpx.TransportError, req: Req) -> KeywardError:
    if isinstance(e, httpx.TimeoutException):
        return KeywardTimeoutError(f"no answer from Keyward in time ({req.method} {req.path})", code="timeout")
    return KeywardConnectionError(f"cannot reach Keyward ({req.method} {req.path}): {e}", code="connection_error")


class Keyward(BaseClient, Verification):
    """The synchronous client.

    ``Keyward()`` reads ``KEYWARD_URL``, ``KEYWARD_MANAGEMENT_KEY`` and ``KEYWARD_VERIFY_TOKEN``
    from the environment when the arguments are left out; verification needs no management key.

    >>> kw = Keyward(base_url="http://127.0.0.1:5399", management_key="…")
    >>> key = kw.keys.create(name="billing", permissions=["invoices.read"])
    >>> kw.verify(key.secret, permissions="invoices.read").valid
    True
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        management_key: Optional[str] = None,
        *,
        verify_token: Optional[str] = None,
        workspace_id: Optional[str] = None,
        environment: Optional[str] = None,
        timeout: Union[float, httpx.Timeout, None] = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        headers: Optional[Mapping[str, str]] = None,
        http_client: Optional[httpx.Client] = None,
    ) -> None:
        super().__init__(
            base_url, management_key, verify_token=verify_token, workspace_id=workspace_id,
            environment=environment, timeout=timeout, max_retries=max_retries, headers=headers,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)
        self._c = self
        self.keys = Keys(self)
        self.roles = Roles(self)
        self.service_accounts = ServiceAccounts(self)
        self.usage = Usage(self)
        self.verify_tokens = VerifyTokens(self)
        self.webhooks = Webhooks(self)
        self.ratelimit = RateLimits(self)

    def _call(self, req: Req) -> Any:
        retryable = self._retryable(req)
        attempt = 0
        while True:
            try:
                resp = self._http.request(
                    req.method, self.base_url + req.path, json=req.json, params=req.params,
                    headers=self._headers_for(req), timeout=self.timeout,
                )
            except httpx.TransportError as e:
                wait = self._wait(attempt, None) if retryable else None
                if wait is None:
                    raise _transport_error(e, req) from e
            else:
                if not (retryable and resp.status_code in _RETRY):
                    return self._result(req, resp)
                err = KeywardError._from_response(resp)
                wait = self._wait(attempt, err)
                if wait is None:
                    raise err
            time.sleep(wait)
            attempt += 1

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> "Keyward":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncKeyward(BaseClient, AsyncVerification):
    """The asyncio client: the same resources and arguments as :class:`Keyward`, awaited.

    >>> async with AsyncKeyward() as kw:
    ...     v = await kw.verify(secret, permissions="invoices.read")
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        management_key: Optional[str] = None,
        *,
        verify_token: Optional[str] = None,
        workspace_id: Optional[str] = None,
        environment: Optional[str] = None,
        timeout: Union[float, httpx.Timeout, None] = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        headers: Optional[Mapping[str, str]] = None,
        http_client: Optional[httpx.AsyncClient] = None,
    ) -> None:
        super().__init__(
            base_url, management_key, verify_token=verify_token, workspace_id=workspace_id,
            environment=environment, timeout=timeout, max_retries=max_retries, headers=headers,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        self._c = self
        self.keys = AsyncKeys(self)
        self.roles = AsyncRoles(self)
        self.service_accounts = AsyncServiceAccounts(self)
        self.usage = AsyncUsage(self)
        self.verify_tokens = AsyncVerifyTokens(self)
        self.webhooks = AsyncWebhooks(self)
        self.ratelimit = AsyncRateLimits(self)

    async def _call(self, req: Req) -> Any:
        retryable = self._retryable(req)
        attempt = 0
        while True:
            try:
                resp = await self._http.request(
                    req.method, self.base_url + req.path, json=req.json, params=req.params,
                    headers=self._headers_for(req), timeout=self.timeout,
                )
            except httpx.TransportError as e:
                wait = self._wait(attempt, None) if retryable else None
                if wait is None:
                    raise _transport_error(e, req) from e
            else:
                if not (retryable and resp.status_code in _RETRY):
                    return self._result(req, resp)
                err = KeywardError._from_response(resp)
                wait = self._wait(attempt, err)
                if wait is None:
                    raise err
            await asyncio.sleep(wait)
            attempt += 1

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> "AsyncKeyward":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


from ._base import RETRY_STATUSES as _RETRY  # noqa: E402
