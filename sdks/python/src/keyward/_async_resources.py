"""The API's resources for the async client. Made from ``_resources.py`` by ``generate.sh``
(``tools/unasync.py``): do not edit."""

from __future__ import annotations

import datetime as dt
from typing import Any, AsyncIterator, Dict, List, Mapping, Optional, Sequence, Union

from . import models as m
from ._base import NOT_GIVEN, Req, body, new_idempotency_key, params, patch, permission_query, seg, tags_list

Time = Union[str, dt.datetime]
Json = Dict[str, Any]


class AsyncKeys:
    """``kw.keys``: create, list, get, update, rotate and revoke keys (``/v1/keys``)."""

    def __init__(self, client: Any) -> None:
        self._c = client

    async def create(
        self,
        *,
        name: Optional[str] = None,
        environment: Optional[str] = None,
        permissions: Optional[Sequence[str]] = None,
        roles: Optional[Sequence[str]] = None,
        scopes: Optional[Sequence[str]] = None,
        grants: Optional[Sequence[Union[m.KeyGrant, Json]]] = None,
        type: Optional[str] = None,
        expires_at: Optional[Time] = None,
        expires_in: Optional[str] = None,
        ip_allowlist: Optional[Sequence[str]] = None,
        meta: Optional[Json] = None,
        callback_url: Optional[str] = None,
        ratelimits: Optional[Sequence[Union[m.RateLimitSpec, Json]]] = None,
        credits: Optional[Union[m.CreditsSpec, Json]] = None,
        enabled: Optional[bool] = None,
        public_key: Optional[str] = None,
        algorithm: Optional[str] = None,
        otp: Optional[str] = None,
        idempotency_key: Optional[str] = None,
        extra_body: Optional[Json] = None,
    ) -> m.KeyView:
        """Creates a secret key (its ``.secret`` is in this answer only), or registers a public
        key with ``public_key``. Retried safely: an ``Idempotency-Key`` is sent (one is made
        when none is given), so a retry returns the first answer."""
        b = body(
            name=name, environment=environment, permissions=permissions, roles=roles, scopes=scopes,
            grants=grants, type=type, expires_at=expires_at, expires_in=expires_in,
            ip_allowlist=ip_allowlist, meta=meta, callback_url=callback_url, ratelimits=ratelimits,
            credits=credits, enabled=enabled, public_key=public_key, algorithm=algorithm, otp=otp,
        )
        b.update(extra_body or {})
        h = {"Idempotency-Key": idempotency_key or new_idempotency_key()}
        return await self._c._call(Req("POST", "/v1/keys", json=b, model=m.KeyView, headers=h))

    async def list(
        self,
        *,
        status: Optional[str] = None,
        environment: Optional[str] = None,
        kind: Optional[str] = None,
        q: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> m.KeyList:
        """One page: ``.items`` and ``.next_cursor``. ``iter()`` walks every page."""
        p = params(status=status, environment=environment, kind=kind, q=q, limit=limit, cursor=cursor)
        return await self._c._call(Req("GET", "/v1/keys", params=p, model=m.KeyList))

    async def iter(
        self,
        *,
        status: Optional[str] = None,
        environment: Optional[str] = None,
        kind: Optional[str] = None,
        q: Optional[str] = None,
        page_size: int = 100,
    ) -> AsyncIterator[m.KeyView]:
        """Every key matching the filters, page after page."""
        cursor: Optional[str] = None
        while True:
            page = await self.list(status=status, environment=environment, kind=kind, q=q, limit=page_size, cursor=cursor)
            for item in page.items:
                yield item
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def get(self, id: str) -> m.KeyView:
        return await self._c._call(Req("GET", f"/v1/keys/{seg(id)}", model=m.KeyView))

    async def update(
        self,
        id: str,
        *,
        name: Any = NOT_GIVEN,
        permissions: Any = NOT_GIVEN,
        roles: Any = NOT_GIVEN,
        scopes: Any = NOT_GIVEN,
        grants: Any = NOT_GIVEN,
        ip_allowlist: Any = NOT_GIVEN,
        meta: Any = NOT_GIVEN,
        expires_at: Any = NOT_GIVEN,
        callback_url: Any = NOT_GIVEN,
        ratelimits: Any = NOT_GIVEN,
        credits: Any = NOT_GIVEN,
        enabled: Any = NOT_GIVEN,
        extra_body: Optional[Json] = None,
    ) -> m.KeyView:
        """Changes the given fields only; ``None`` clears a nullable one (``expires_at=None``)."""
        b = patch(
            name=name, permissions=permissions, roles=roles, scopes=scopes, grants=grants,
            ip_allowlist=ip_allowlist, meta=meta, expires_at=expires_at, callback_url=callback_url,
            ratelimits=ratelimits, credits=credits, enabled=enabled,
        )
        b.update(extra_body or {})
        return await self._c._call(Req("PATCH", f"/v1/keys/{seg(id)}", json=b, model=m.KeyView))

    async def rotate(
        self, id: str, *, grace_period: Optional[str] = None, idempotency_key: Optional[str] = None
    ) -> m.KeyView:
        """A new key with the same settings and its ``.secret``; the old one works for
        ``grace_period`` (``"0s"``, the default, stops it at once)."""
        h = {"Idempotency-Key": idempotency_key or new_idempotency_key()}
        b = body(grace_period=grace_period)
        return await self._c._call(Req("POST", f"/v1/keys/{seg(id)}/rotate", json=b, model=m.KeyView, headers=h))

    async def revoke(self, id: str) -> m.KeyView:
        """Revokes the key (idempotent: a revoked key is returned unchanged)."""
        return await self._c._call(Req("POST", f"/v1/keys/{seg(id)}/revoke", model=m.KeyView, idempotent=True))

    async def usage(
        self,
        id: str,
        *,
        from_: Optional[Time] = None,
        to: Optional[Time] = None,
        granularity: Optional[str] = None,
        tag: Optional[str] = None,
    ) -> m.KeyUsage:
        """Verifications of the key per ``minute``, ``hour`` (default) or ``day``, by code."""
        p = params(from_=from_, to=to, granularity=granularity, tag=tag)
        return await self._c._call(Req("GET", f"/v1/keys/{seg(id)}/usage", params=p, model=m.KeyUsage))


class AsyncRoles:
    """``kw.roles``: the workspace's roles and the permissions they grant."""

    def __init__(self, client: Any) -> None:
        self._c = client

    async def create(
        self, name: str, *, permissions: Optional[Sequence[str]] = None, description: Optional[str] = None
    ) -> m.RoleView:
        b = body(name=name, description=description, permissions=permissions)
        return await self._c._call(Req("POST", "/v1/roles", json=b, model=m.RoleView))

    async def list(self) -> m.RoleList:
        return await self._c._call(Req("GET", "/v1/roles", model=m.RoleList))

    async def get(self, name: str) -> m.RoleView:
        return await self._c._call(Req("GET", f"/v1/roles/{seg(name)}", model=m.RoleView))

    async def update(self, name: str, *, permissions: Any = NOT_GIVEN, description: Any = NOT_GIVEN) -> m.RoleView:
        b = patch(description=description, permissions=permissions)
        return await self._c._call(Req("PATCH", f"/v1/roles/{seg(name)}", json=b, model=m.RoleView))

    async def delete(self, name: str, *, force: bool = False) -> None:
        """Deletes the role; ``force=True`` takes it off the keys holding it."""
        p = params(force=force or None)
        return await self._c._call(Req("DELETE", f"/v1/roles/{seg(name)}", params=p))


class AsyncServiceAccounts:
    """``kw.service_accounts``: integration users that own keys."""

    def __init__(self, client: Any) -> None:
        self._c = client

    async def create(self, name: str, *, role: str, description: Optional[str] = None) -> m.ServiceAccountView:
        b = body(name=name, role=role, description=description)
        return await self._c._call(Req("POST", "/v1/service-accounts", json=b, model=m.ServiceAccountView))

    async def list(self) -> m.ServiceAccountList:
        return await self._c._call(Req("GET", "/v1/service-accounts", model=m.ServiceAccountList))

    async def get(self, id: str) -> m.ServiceAccountView:
        return await self._c._call(Req("GET", f"/v1/service-accounts/{seg(id)}", model=m.ServiceAccountView))

    async def update(
        self,
        id: str,
        *,
        name: Any = NOT_GIVEN,
        role: Any = NOT_GIVEN,
        description: Any = NOT_GIVEN,
        disabled: Any = NOT_GIVEN,
    ) -> m.ServiceAccountView:
        """``disabled=True`` stops every key of the account at once (they answer ``DISABLED``)."""
        b = patch(name=name, role=role, description=description, disabled=disabled)
        return await self._c._call(Req("PATCH", f"/v1/service-accounts/{seg(id)}", json=b, model=m.ServiceAccountView))

    async def delete(self, id: str) -> None:
        """Deletes the account and revokes its keys."""
        return await self._c._call(Req("DELETE", f"/v1/service-accounts/{seg(id)}"))

    async def create_key(
        self,
        id: str,
        *,
        name: Optional[str] = None,
        environment: Optional[str] = None,
        permissions: Optional[Sequence[str]] = None,
        scopes: Optional[Sequence[str]] = None,
        expires_in: Optional[str] = None,
        meta: Optional[Json] = None,
        ratelimits: Optional[Sequence[Union[m.RateLimitSpec, Json]]] = None,
        credits: Optional[Union[m.CreditsSpec, Json]] = None,
        idempotency_key: Optional[str] = None,
        extra_body: Optional[Json] = None,
    ) -> m.KeyView:
        """A key owned by the account, holding its role (``.secret`` in this answer only)."""
        b = body(
            name=name, environment=environment, permissions=permissions, scopes=scopes,
            expires_in=expires_in, meta=meta, ratelimits=ratelimits, credits=credits,
        )
        b.update(extra_body or {})
        h = {"Idempotency-Key": idempotency_key or new_idempotency_key()}
        return await self._c._call(Req("POST", f"/v1/service-accounts/{seg(id)}/keys", json=b, model=m.KeyView, headers=h))


class AsyncUsage:
    """``kw.usage``: verification counts per key and per workspace."""

    def __init__(self, client: Any) -> None:
        self._c = client

    async def workspace(
        self,
        *,
        from_: Optional[Time] = None,
        to: Optional[Time] = None,
        granularity: Optional[str] = None,
        tag: Optional[str] = None,
    ) -> m.WorkspaceUsage:
        """The workspace's totals, buckets and ``top_keys`` (default: the last 24 h by hour)."""
        p = params(from_=from_, to=to, granularity=granularity, tag=tag)
        return await self._c._call(Req("GET", "/v1/usage", params=p, model=m.WorkspaceUsage))

    async def key(
        self,
        id: str,
        *,
        from_: Optional[Time] = None,
        to: Optional[Time] = None,
        granularity: Optional[str] = None,
        tag: Optional[str] = None,
    ) -> m.KeyUsage:
        p = params(from_=from_, to=to, granularity=granularity, tag=tag)
        return await self._c._call(Req("GET", f"/v1/keys/{seg(id)}/usage", params=p, model=m.KeyUsage))


class AsyncVerifyTokens:
    """``kw.verify_tokens``: tokens your services send as ``Keyward-Verify-Token``; each binds
    verification to its workspace."""

    def __init__(self, client: Any) -> None:
        self._c = client

    async def create(self, name: str) -> m.VerifyTokenView:
        """``.token`` (``kw_vt_…``) is in this answer only."""
        return await self._c._call(Req("POST", "/v1/verify-tokens", json=body(name=name), model=m.VerifyTokenView))

    async def list(self) -> m.VerifyTokenList:
        return await self._c._call(Req("GET", "/v1/verify-tokens", model=m.VerifyTokenList))

    async def revoke(self, id: str) -> m.VerifyTokenView:
        return await self._c._call(Req("DELETE", f"/v1/verify-tokens/{seg(id)}", model=m.VerifyTokenView))


class AsyncWebhooks:
    """``kw.webhooks``: endpoints that receive Keyward's events (Standard Webhooks)."""

    def __init__(self, client: Any) -> None:
        self._c = client

    async def create(self, url: str, *, events: Sequence[str], description: Optional[str] = None) -> m.WebhookView:
        """``.secret`` (``whsec_…``) is in this answer only."""
        b = body(url=url, events=list(events), description=description)
        return await self._c._call(Req("POST", "/v1/webhooks", json=b, model=m.WebhookView))

    async def list(self) -> m.WebhookList:
        return await self._c._call(Req("GET", "/v1/webhooks", model=m.WebhookList))

    async def get(self, id: str) -> m.WebhookView:
        return await self._c._call(Req("GET", f"/v1/webhooks/{seg(id)}", model=m.WebhookView))

    async def update(
        self,
        id: str,
        *,
        url: Any = NOT_GIVEN,
        events: Any = NOT_GIVEN,
        description: Any = NOT_GIVEN,
        disabled: Any = NOT_GIVEN,
    ) -> m.WebhookView:
        b = patch(url=url, events=events, description=description, disabled=disabled)
        return await self._c._call(Req("PATCH", f"/v1/webhooks/{seg(id)}", json=b, model=m.WebhookView))

    async def delete(self, id: str) -> None:
        return await self._c._call(Req("DELETE", f"/v1/webhooks/{seg(id)}"))

    async def rotate_secret(self, id: str, *, overlap: Optional[str] = None) -> m.WebhookView:
        b = body(overlap=overlap)
        return await self._c._call(Req("POST", f"/v1/webhooks/{seg(id)}/rotate-secret", json=b, model=m.WebhookView))

    async def test(self, id: str) -> m.DeliveryView:
        return await self._c._call(Req("POST", f"/v1/webhooks/{seg(id)}/test", model=m.DeliveryView))

    async def deliveries(self, id: str, *, limit: Optional[int] = None) -> m.DeliveryList:
        p = params(limit=limit)
        return await self._c._call(Req("GET", f"/v1/webhooks/{seg(id)}/deliveries", params=p, model=m.DeliveryList))

    async def signing_key(self) -> str:
        """The workspace's ``whpk_…`` key that per-key callbacks are signed with."""
        view = await self._c._call(Req("GET", "/v1/webhooks/signing-key", model=m.SigningKeyView))
        return view.public_key


class AsyncVerification:
    """``kw.verify`` and ``kw.verify_signed`` (mixed into the client)."""

    _c: Any

    async def verify(
        self,
        key: str,
        permissions: Union[None, str, Sequence[str]] = None,
        scope: Optional[str] = None,
        ip: Optional[str] = None,
        *,
        workspace_id: Optional[str] = None,
        environment: Optional[str] = None,
        cost: Optional[int] = None,
        tags: Optional[Sequence[str]] = None,
    ) -> m.VerifyResponse:
        """Verifies a secret key: always an answer with ``.valid`` and ``.code`` (``VALID``,
        ``NOT_FOUND``, ``INSUFFICIENT_PERMISSIONS``, ``RATE_LIMITED``, …), never an exception
        for a refused key. ``permissions`` is a query (``"a AND (b OR c)"``) or a list (all of
        them). ``workspace_id``/``environment`` default to the client's binding."""
        b = body(
            key=key, permissions=permission_query(permissions), scope=scope, ip=ip, cost=cost,
            tags=tags_list(tags), **self._c._bind(workspace_id, environment),
        )
        return await self._c._call(Req("POST", "/v1/keys/verify", json=b, model=m.VerifyResponse, auth="verify", idempotent=True))

    async def verify_signed(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        *,
        query: str = "",
        body: Union[str, bytes] = "",
        permissions: Union[None, str, Sequence[str]] = None,
        scope: Optional[str] = None,
        ip: Optional[str] = None,
        workspace_id: Optional[str] = None,
        environment: Optional[str] = None,
        cost: Optional[int] = None,
    ) -> m.VerifyResponse:
        """Verifies a signed request (``Biz-Api-Key``/``-Nonce``/``-Signature``) as your service
        received it: ``path`` without the query, ``query`` and ``body`` exactly as sent."""
        wanted = {"biz-api-key", "biz-api-nonce", "biz-api-signature"}
        signed = {k: v for k, v in headers.items() if k.lower() in wanted}
        raw = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else body
        b = {
            "method": method.upper(), "path": path, "query": query.lstrip("?"), "body": raw, "headers": signed,
        }
        b.update(
            _body_of(
                permissions=permission_query(permissions), scope=scope, ip=ip, cost=cost,
                **self._c._bind(workspace_id, environment),
            )
        )
        return await self._c._call(
            Req("POST", "/v1/requests/verify", json=b, model=m.VerifyResponse, auth="verify", idempotent=True)
        )


_body_of = body


class AsyncRateLimits:
    """``kw.ratelimit``: rate limiting as a service (``POST /v1/ratelimit``)."""

    def __init__(self, client: Any) -> None:
        self._c = client

    async def limit(
        self, namespace: str, identifier: str, *, limit: int, duration: int, cost: Optional[int] = None
    ) -> m.LimitAnswer:
        """``duration`` in milliseconds; ``.success`` is False when over the limit."""
        b = body(namespace=namespace, identifier=identifier, limit=limit, duration=duration, cost=cost)
        return await self._c._call(Req("POST", "/v1/ratelimit", json=b, model=m.LimitAnswer))


__all__ = ["AsyncKeys", "AsyncRoles", "AsyncServiceAccounts", "AsyncUsage", "AsyncVerifyTokens", "AsyncWebhooks", "AsyncVerification", "AsyncRateLimits"]
