"""Keyward's Python SDK: manage and verify API keys, protect routes, verify webhooks.

    from keyward import Keyward
    kw = Keyward(base_url="http://127.0.0.1:5399", management_key="kw_mk_…")
    key = kw.keys.create(name="billing", permissions=["invoices.read"])
    v = kw.verify(key.secret, permissions="invoices.read")
    assert v.valid and v.key_id == key.id
"""

from . import models
from ._base import NOT_GIVEN
from ._client import AsyncKeyward, Keyward
from ._convert import to_dict
from ._errors import KeywardConnectionError, KeywardError, KeywardOAuthError, KeywardTimeoutError
from ._version import __version__
from .apps import AsyncTokenSource, TokenSource
from .models import KeyView, VerifyResponse

__all__ = [
    "Keyward",
    "AsyncKeyward",
    "KeywardError",
    "KeywardTimeoutError",
    "KeywardConnectionError",
    "KeywardOAuthError",
    "TokenSource",
    "AsyncTokenSource",
    "KeyView",
    "VerifyResponse",
    "NOT_GIVEN",
    "to_dict",
    "models",
    "__version__",
]
