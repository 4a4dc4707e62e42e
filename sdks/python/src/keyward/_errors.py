from __future__ import annotations

from typing import Any, Optional

import httpx


class KeywardError(Exception):
    """Every failure of the SDK: an API refusal, a timeout or a connection error.

    ``status`` is the HTTP status (``None`` when no answer came), ``code`` the API's error code
    (``invalid_request``, ``unauthenticated``, ``forbidden``, ``not_found``, ``conflict``,
    ``rate_limited``, …; ``timeout`` and ``connection_error`` when no answer came), ``field`` the
    input at fault when there is one, ``verification_code`` for verification refusals.
    """

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        code: str = "unknown",
        field: Optional[str] = None,
        verification_code: Optional[str] = None,
        request_id: Optional[str] = None,
        retry_after: Optional[float] = None,
        response: Optional[httpx.Response] = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field
        self.verification_code = verification_code
        self.request_id = request_id
        self.retry_after = retry_after
        self.response = response
        self.body = body

    def __str__(self) -> str:
        parts = [f"{self.status} {self.code}" if self.status else self.code]
        if self.field:
            parts.append(f"field={self.field}")
        return f"{self.message} ({', '.join(parts)})"

    def __repr__(self) -> str:
        return (
            f"KeywardError(status={self.status!r}, code={self.code!r}, field={self.field!r}, "
            f"message={self.message!r})"
        )

    @classmethod
    def _from_response(cls, resp: httpx.Response) -> "KeywardError":
        try:
            body = resp.json()
        except ValueError:
            body = resp.text
        err = body.get("error") if isinstance(body, dict) else None
        if not isinstance(err, dict):
            err = {}
        return cls(
            str(err.get("message") or resp.reason_phrase or f"HTTP {resp.status_code}"),
            status=resp.status_code,
            code=str(err.get("code") or _code_for(resp.status_code)),
            field=err.get("field"),
            verification_code=err.get("verification_code"),
            request_id=resp.headers.get("x-request-id"),
            retry_after=_retry_after(resp),
            response=resp,
            body=body,
        )


class KeywardTimeoutError(KeywardError):
    """No answer within the client's timeout (``code`` ``"timeout"``)."""


class KeywardConnectionError(KeywardError):
    """The server could not be reached (``code`` ``"connection_error"``)."""


class KeywardOAuthError(KeywardError):
    """The token endpoint refused a grant (RFC 6749 §5.2): ``code`` (also ``error``) is
    ``invalid_request``, ``invalid_client`` (401: no such app, or not signed by its key),
    ``invalid_grant`` (claims wrong or expired, ``jti`` used before, not installed or pending,
    a refresh token unknown, ended or reused), ``unsupported_grant_type`` or ``server_error``
    (503: the server has no ``--public-url``); ``message`` is its ``error_description``."""

    @property
    def error(self) -> str:
        return self.code

    @classmethod
    def _from_response(cls, resp: httpx.Response) -> "KeywardOAuthError":
        try:
            body = resp.json()
        except ValueError:
            body = resp.text
        err = body if isinstance(body, dict) else {}
        code = err.get("error") if isinstance(err.get("error"), str) else None
        return cls(
            str(err.get("error_description") or code or resp.reason_phrase or f"HTTP {resp.status_code}"),
            status=resp.status_code,
            code=code or _code_for(resp.status_code),
            request_id=resp.headers.get("x-request-id"),
            retry_after=_retry_after(resp),
            response=resp,
            body=body,
        )


def _code_for(status: int) -> str:
    return {
        400: "invalid_request",
        401: "unauthenticated",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        413: "payload_too_large",
        429: "rate_limited",
        502: "bad_gateway",
        503: "unavailable",
        504: "gateway_timeout",
    }.get(status, "internal" if status >= 500 else "http_error")


def _retry_after(resp: httpx.Response) -> Optional[float]:
    raw = resp.headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        from email.utils import parsedate_to_datetime
        import datetime as dt

        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())
