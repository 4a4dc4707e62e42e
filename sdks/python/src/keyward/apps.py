"""Apps' organisation access tokens (docs/APPS.md): an app installed in other workspaces buys
short-lived access tokens for each installation by signing an assertion (RFC 7523) with its
APP private key — ``EdDSA`` for Ed25519, ``ES256K`` for secp256k1 — and sends them as
``Authorization: Bearer …`` wherever a Keyward key would go.

:class:`TokenSource` (and :class:`AsyncTokenSource`) keeps one installation's token fresh: it
signs the assertion, replaces the token a minute before it expires — with the refresh token
first, with a new assertion when the refresh is refused — and lets one caller at a time do so
(two refreshing at once would spend one refresh token twice, which revokes its family).
Answers 429, 502, 503 and 504 are retried as the clients retry (``max_retries``, ``Retry-After``,
back-off); so are assertion grants that got no answer, each with a new assertion. A refresh
token that got no answer, or a proxy's 502 or 504, is never sent again (the server may have
spent it): a new assertion buys the token instead.
Needs ``cryptography`` (``pip install keyward[signing]``).

    tokens = TokenSource("https://keyward.example.com", app_id="app_01J…",
                         installation_id="inst_01J…", private_key=app_secret_hex, algorithm="ed25519")
    httpx.get("https://api.example.com/ledger", headers={"authorization": tokens.authorization()})
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Union

import httpx

from ._base import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, BaseClient, retry_wait
from ._errors import KeywardConnectionError, KeywardError, KeywardOAuthError, KeywardTimeoutError
from ._version import __version__
from .signing import Signer

__all__ = ["TokenSource", "AsyncTokenSource", "KeywardOAuthError", "JWT_BEARER", "TOKEN_PATH"]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_PATH = "/v1/oauth/token"
#: How far ahead an assertion's ``exp`` is set (the server takes at most five minutes).
ASSERTION_SECONDS = 120
#: Answers retried: the rate limit (``slow_down``), the database or a proxy away. Not 500: the
#: server may have failed after spending a refresh token.
TOKEN_RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Those a refresh is retried on with the same refresh token: Keyward's own refusals before
#: spending it. A proxy's 502 or 504 may come after the server spent it, and a second use
#: would revoke its family: such a refresh is treated as unanswered.
REFRESH_RETRY_STATUSES = frozenset({429, 503})


@dataclass
class _Held:
    access: str
    refresh: Optional[str]
    expires_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class _TokenSourceBase:
    def __init__(
        self,
        base_url: Union[str, BaseClient],
        app_id: str,
        installation_id: str,
        private_key: Union[str, Signer],
        *,
        algorithm: str = "ed25519",
        audience: Optional[str] = None,
        refresh_ahead: float = 60.0,
        timeout: Union[float, httpx.Timeout, None] = DEFAULT_TIMEOUT,
        max_retries: Optional[int] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        url = base_url.base_url if isinstance(base_url, BaseClient) else base_url
        if max_retries is None:
            max_retries = base_url.max_retries if isinstance(base_url, BaseClient) else DEFAULT_MAX_RETRIES
        self.max_retries = max(0, int(max_retries))
        self.endpoint = url.rstrip("/") + TOKEN_PATH
        # The server checks `aud` against its --public-url: pass it when that is not the URL
        # this process reaches the server at (a proxy, an internal address).
        self.audience = audience or self.endpoint
        self.app_id = app_id
        self.installation_id = installation_id
        self.signer = private_key if isinstance(private_key, Signer) else Signer.from_hex(private_key, algorithm)
        self.refresh_ahead = refresh_ahead
        self.timeout = timeout
        self._clock = clock
        self._held: Optional[_Held] = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(app_id={self.app_id!r}, installation_id={self.installation_id!r})"

    def assertion(self) -> str:
        """A new signed assertion: ``iss`` the app, ``sub`` the installation, ``aud`` the token
        endpoint, two minutes to live, a ``jti`` never used before."""
        now = int(time.time())  # the server checks iat and exp against its own clock
        header = {"alg": self.signer.jws_algorithm, "typ": "JWT"}
        claims = {
            "iss": self.app_id,
            "sub": self.installation_id,
            "aud": self.audience,
            "iat": now,
            "exp": now + ASSERTION_SECONDS,
            "jti": uuid.uuid4().hex,
        }
        signing_input = _b64(json.dumps(header, separators=(",", ":")).encode()) + "." + _b64(
            json.dumps(claims, separators=(",", ":")).encode()
        )
        return signing_input + "." + _b64(self.signer.sign_jws(signing_input.encode("ascii")))

    def _fresh(self, now: float) -> Optional[str]:
        h = self._held
        return h.access if h is not None and h.expires_at - self.refresh_ahead > now else None

    def _refresh_form(self) -> Optional[Dict[str, str]]:
        h = self._held
        return {"grant_type": "refresh_token", "refresh_token": h.refresh} if h and h.refresh else None

    def _assertion_form(self) -> Dict[str, str]:
        return {"grant_type": JWT_BEARER, "assertion": self.assertion()}

    def _keep(self, resp: httpx.Response, now: float) -> str:
        if resp.status_code >= 400:
            raise KeywardOAuthError._from_response(resp)
        try:
            t = resp.json()
            access, expires_in = str(t["access_token"]), float(t["expires_in"])
        except (ValueError, KeyError, TypeError) as e:
            raise KeywardError(f"the token endpoint's answer is not a token: {e}", status=resp.status_code,
                               code="decode_error", response=resp) from e
        self._held = _Held(access, t.get("refresh_token"), now + expires_in)
        return access

    def _unanswered(self, attempt: int, e: httpx.TransportError, resend: bool) -> float:
        """The wait before trying a grant that got no answer again; raises when it is not tried
        again (``resend`` false: a refresh token the server may have spent)."""
        wait = retry_wait(attempt, self.max_retries, None) if resend else None
        if wait is None:
            raise self._transport_error(e) from e
        return wait

    def _busy(self, attempt: int, resp: httpx.Response, resend: bool) -> float:
        """The wait before trying a grant answered 429, 502, 503 or 504 again; raises the answer
        when it is not tried again."""
        err = KeywardOAuthError._from_response(resp)
        retry = resend or resp.status_code in REFRESH_RETRY_STATUSES
        wait = retry_wait(attempt, self.max_retries, err) if retry else None
        if wait is None:
            raise err
        return wait

    def _transport_error(self, e: httpx.TransportError) -> KeywardError:
        if isinstance(e, httpx.TimeoutException):
            return KeywardTimeoutError(f"no answer from Keyward in time (POST {TOKEN_PATH})", code="timeout")
        return KeywardConnectionError(f"cannot reach Keyward (POST {TOKEN_PATH}): {e}", code="connection_error")

    _headers = {"user-agent": f"keyward-python/{__version__}", "accept": "application/json"}


class TokenSource(_TokenSourceBase):
    """Keeps one installation's access token fresh; safe to share between threads.

    ``base_url`` is the server (or a :class:`~keyward.Keyward` client, whose ``base_url`` is
    used); ``private_key`` the APP secret's hex as ``keyward keys generate --key-type APP``
    writes ``app_secret`` (with ``algorithm`` its ``app_alg``), or a :class:`~keyward.signing.Signer`.
    Refusals raise :class:`~keyward.KeywardOAuthError` (``code`` the RFC 6749 ``error``).
    ``max_retries`` bounds the retries of one grant: left out, the client's when ``base_url`` is
    a client, else ``DEFAULT_MAX_RETRIES`` (2).
    ``clock`` (Unix seconds) decides only when the held token is due (tests); assertions
    always carry the real time, which the server checks.
    """

    def __init__(
        self,
        base_url: Union[str, BaseClient],
        app_id: str,
        installation_id: str,
        private_key: Union[str, Signer],
        *,
        algorithm: str = "ed25519",
        audience: Optional[str] = None,
        refresh_ahead: float = 60.0,
        timeout: Union[float, httpx.Timeout, None] = DEFAULT_TIMEOUT,
        max_retries: Optional[int] = None,
        http_client: Optional[httpx.Client] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(base_url, app_id, installation_id, private_key, algorithm=algorithm, audience=audience,
                         refresh_ahead=refresh_ahead, timeout=timeout, max_retries=max_retries, clock=clock)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)
        self._lock = threading.Lock()

    def token(self) -> str:
        """A fresh access token: the one held while it has more than ``refresh_ahead`` seconds
        left, else a refreshed one, else one bought with a new assertion."""
        with self._lock:
            now = self._clock()
            held = self._fresh(now)
            if held is not None:
                return held
            form = self._refresh_form()
            if form is not None:
                try:
                    return self._grant(lambda: form, resend_unanswered=False)
                except KeywardError as e:
                    if e.status in REFRESH_RETRY_STATUSES:
                        raise  # retries ran out, the refresh token unspent: kept for the next call
                    # Refused (ended, reused, revoked), or unanswered (a proxy's 502/504 too): then
                    # it may be spent, and a second use would revoke its family. Dropped; a new
                    # assertion starts a family.
                    self._held = None
            return self._grant(self._assertion_form, resend_unanswered=True)

    def authorization(self) -> str:
        """``Authorization``'s value: ``Bearer <access token>``."""
        return "Bearer " + self.token()

    def forget(self) -> None:
        """Drops the held tokens: the next call buys new ones with an assertion."""
        with self._lock:
            self._held = None

    def _grant(self, form: Callable[[], Dict[str, str]], *, resend_unanswered: bool) -> str:
        """Posts ``form()`` (called for each attempt: an assertion is single-use) until a token or
        an answer not worth retrying comes back, with the clients' waits."""
        attempt = 0
        while True:
            now = self._clock()
            try:
                resp = self._http.post(self.endpoint, data=form(), headers=self._headers, timeout=self.timeout)
            except httpx.TransportError as e:
                wait = self._unanswered(attempt, e, resend_unanswered)
            else:
                if resp.status_code not in TOKEN_RETRY_STATUSES:
                    return self._keep(resp, now)
                wait = self._busy(attempt, resp, resend_unanswered)
            time.sleep(wait)
            attempt += 1

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> "TokenSource":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncTokenSource(_TokenSourceBase):
    """:class:`TokenSource` for asyncio: ``await tokens.token()``; concurrent tasks share one
    refresh."""

    def __init__(
        self,
        base_url: Union[str, BaseClient],
        app_id: str,
        installation_id: str,
        private_key: Union[str, Signer],
        *,
        algorithm: str = "ed25519",
        audience: Optional[str] = None,
        refresh_ahead: float = 60.0,
        timeout: Union[float, httpx.Timeout, None] = DEFAULT_TIMEOUT,
        max_retries: Optional[int] = None,
        http_client: Optional[httpx.AsyncClient] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(base_url, app_id, installation_id, private_key, algorithm=algorithm, audience=audience,
                         refresh_ahead=refresh_ahead, timeout=timeout, max_retries=max_retries, clock=clock)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        # Made on first use, inside the running loop (Python 3.9 binds a Lock to a loop at birth).
        self._lock: Optional[asyncio.Lock] = None

    async def token(self) -> str:
        """A fresh access token (see :meth:`TokenSource.token`)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            now = self._clock()
            held = self._fresh(now)
            if held is not None:
                return held
            form = self._refresh_form()
            if form is not None:
                try:
                    return await self._grant(lambda: form, resend_unanswered=False)
                except KeywardError as e:
                    if e.status in REFRESH_RETRY_STATUSES:
                        raise  # as in TokenSource.token
                    self._held = None
            return await self._grant(self._assertion_form, resend_unanswered=True)

    async def authorization(self) -> str:
        return "Bearer " + await self.token()

    def forget(self) -> None:
        """Drops the held tokens: the next call buys new ones with an assertion."""
        self._held = None

    async def _grant(self, form: Callable[[], Dict[str, str]], *, resend_unanswered: bool) -> str:
        """:meth:`TokenSource._grant`, sleeping with asyncio."""
        attempt = 0
        while True:
            now = self._clock()
            try:
                resp = await self._http.post(self.endpoint, data=form(), headers=self._headers, timeout=self.timeout)
            except httpx.TransportError as e:
                wait = self._unanswered(attempt, e, resend_unanswered)
            else:
                if resp.status_code not in TOKEN_RETRY_STATUSES:
                    return self._keep(resp, now)
                wait = self._busy(attempt, resp, resend_unanswered)
            await asyncio.sleep(wait)
            attempt += 1

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> "AsyncTokenSource":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
