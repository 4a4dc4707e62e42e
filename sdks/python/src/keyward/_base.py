"""What the sync and async clients share: configuration, request building, the retry rule."""

from __future__ import annotations

import os
import random
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Type, Union
from urllib.parse import quote

import httpx

from . import _convert
from ._errors import KeywardError
from ._version import __version__

DEFAULT_BASE_URL = "http://127.0.0.1:5399"
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 2
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_WAIT = 20.0  # a longer Retry-After is not waited for: the error is raised


class _Unset:
    _inst: Optional["_Unset"] = None

    def __new__(cls) -> "_Unset":
        if cls._inst is None:
            cls._inst = super().__new__(cls)
        return cls._inst

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> bool:
        return False


NOT_GIVEN: Any = _Unset()
"""Default of ``update`` arguments: left out of the PATCH (``None`` sends ``null``, which clears)."""


@dataclass
class Req:
    method: str
    path: str
    json: Any = None
    params: Optional[Dict[str, Any]] = None
    model: Optional[Type[Any]] = None
    auth: str = "management"  # "management" | "verify" | "none"
    idempotent: bool = False
    headers: Dict[str, str] = field(default_factory=dict)


def seg(value: str) -> str:
    """A path segment, escaped."""
    return quote(str(value), safe="")


def body(**fields: Any) -> Dict[str, Any]:
    """A JSON body without the arguments left out (``None`` for create, NOT_GIVEN for update)."""
    return {k: _convert.to_json(v) for k, v in fields.items() if v is not None and v is not NOT_GIVEN}


def patch(**fields: Any) -> Dict[str, Any]:
    """A PATCH body: NOT_GIVEN left out, ``None`` sent as ``null``."""
    return {k: _convert.to_json(v) for k, v in fields.items() if v is not NOT_GIVEN}


def params(**fields: Any) -> Dict[str, Any]:
    out = {}
    for k, v in fields.items():
        if v is None:
            continue
        k = k.rstrip("_")
        if isinstance(v, bool):
            v = "true" if v else "false"
        out[k] = _convert.to_json(v)
    return out


def permission_query(p: Union[None, str, Sequence[str]]) -> Optional[str]:
    """``["a", "b"]`` means all of them: ``"a AND b"``; a string is a query as written."""
    if p is None or isinstance(p, str):
        return p
    return " AND ".join(p)


def retry_wait(attempt: int, max_retries: int, err: Optional[KeywardError]) -> Optional[float]:
    """Seconds before retry number ``attempt`` (0-based), or None for no retry: the error's
    ``Retry-After`` (one past MAX_RETRY_WAIT is not waited for), else back-off doubling from
    0.25 s, with jitter."""
    if attempt >= max_retries:
        return None
    if err is not None and err.retry_after is not None:
        return err.retry_after if err.retry_after <= MAX_RETRY_WAIT else None
    return min(8.0, 0.25 * (2**attempt)) * (0.75 + random.random() / 2)


def new_idempotency_key() -> str:
    return "kw-py-" + uuid.uuid4().hex


class BaseClient:
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
    ) -> None:
        self.base_url = (base_url or os.environ.get("KEYWARD_URL") or DEFAULT_BASE_URL).rstrip("/")
        if "://" not in self.base_url:
            self.base_url = "http://" + self.base_url
        self.management_key = management_key or os.environ.get("KEYWARD_MANAGEMENT_KEY")
        self.verify_token = verify_token or os.environ.get("KEYWARD_VERIFY_TOKEN")
        self.workspace_id = workspace_id
        self.environment = environment
        self.timeout = timeout
        self.max_retries = max(0, int(max_retries))
        self._headers = {"user-agent": f"keyward-python/{__version__}", "accept": "application/json"}
        self._headers.update(headers or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def _headers_for(self, req: Req) -> Dict[str, str]:
        h = dict(self._headers)
        if req.auth == "management" and self.management_key:
            h["authorization"] = f"Bearer {self.management_key}"
        if req.auth == "verify" and self.verify_token:
            h["keyward-verify-token"] = self.verify_token
        h.update(req.headers)
        return h

    def _retryable(self, req: Req) -> bool:
        return req.idempotent or req.method in ("GET", "HEAD", "DELETE", "PUT") or "Idempotency-Key" in req.headers

    def _wait(self, attempt: int, err: Optional[KeywardError]) -> Optional[float]:
        """Seconds before retry number ``attempt`` (0-based), or None for no retry."""
        return retry_wait(attempt, self.max_retries, err)

    def _result(self, req: Req, resp: httpx.Response) -> Any:
        if resp.status_code >= 400:
            raise KeywardError._from_response(resp)
        if req.model is None or resp.status_code == 204 or not resp.content:
            return None
        data = resp.json()
        return _convert.from_json(req.model, data) if req.model is not Any else data

    def _bind(self, workspace_id: Optional[str], environment: Optional[str]) -> Dict[str, Optional[str]]:
        return {
            "workspace_id": workspace_id if workspace_id is not None else self.workspace_id,
            "environment": environment if environment is not None else self.environment,
        }


def tags_list(tags: Optional[Sequence[str]]) -> Optional[List[str]]:
    return list(tags) if tags is not None else None
