"""Verifying Keyward's webhook deliveries (Standard Webhooks).

    from keyward import webhooks

    event = webhooks.verify(body, request.headers, "whsec_…")   # the decoded JSON, or raises

Endpoints are signed ``v1,<base64 HMAC-SHA256>`` under the endpoint's ``whsec_`` secret (two
signatures while a rotated secret overlaps); a key's ``callback_url`` gets ``v1a,<base64
Ed25519>`` under the workspace's ``whpk_`` public key (``kw.webhooks.signing_key()``; needs
``cryptography``). The signed content is ``{webhook-id}.{webhook-timestamp}.{body}``; the
timestamp must be within ``tolerance`` seconds (5 minutes) of now. Pass the raw body, exactly
as received, not re-serialised JSON. Drop duplicates by ``webhook-id``: delivery is at least once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, Mapping, Optional, Union

from ._auth import lower
from ._errors import KeywardError

__all__ = ["verify", "sign", "WebhookVerificationError", "DEFAULT_TOLERANCE"]

DEFAULT_TOLERANCE = 300


class WebhookVerificationError(KeywardError):
    """The delivery's signature, timestamp or headers are not right (``code``
    ``webhook_verification_failed``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="webhook_verification_failed")


def _b64decode(s: str) -> bytes:
    s = s.strip()
    return base64.b64decode(s + "=" * (-len(s) % 4))


def _hmac_key(secret: str) -> bytes:
    return _b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)


def sign(payload: Union[bytes, str], secret: str, msg_id: str, timestamp: Optional[int] = None) -> str:
    """The ``webhook-signature`` value (``v1,…``) for a payload: for tests of your receiver."""
    body = payload.encode() if isinstance(payload, str) else payload
    ts = int(time.time()) if timestamp is None else int(timestamp)
    mac = hmac.new(_hmac_key(secret), f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(
    payload: Union[bytes, str],
    headers: Any,
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: Optional[float] = None,
) -> Any:
    """Checks a delivery and returns its decoded JSON body.

    ``headers`` is any mapping (or list of pairs) holding ``webhook-id``, ``webhook-timestamp``
    and ``webhook-signature`` (any case). ``secret`` is the endpoint's ``whsec_…`` or, for
    per-key callbacks, the workspace's ``whpk_…``. Raises :class:`WebhookVerificationError`.
    """
    h = lower(headers)
    msg_id = h.get("webhook-id")
    ts = h.get("webhook-timestamp")
    sigs = h.get("webhook-signature")
    if not msg_id or not ts or not sigs:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        ts_int = int(ts)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a number") from None
    current = time.time() if now is None else now
    if ts_int < current - tolerance:
        raise WebhookVerificationError("webhook-timestamp too old")
    if ts_int > current + tolerance:
        raise WebhookVerificationError("webhook-timestamp too new")
    body = payload.encode() if isinstance(payload, str) else bytes(payload)
    content = f"{msg_id}.{ts_int}.".encode() + body
    if secret.startswith("whpk_"):
        ok = _check_v1a(_b64decode(secret[len("whpk_"):]), sigs, content)
    else:
        expected = hmac.new(_hmac_key(secret), content, hashlib.sha256).digest()
        ok = False
        for part in sigs.split(" "):
            version, _, sig = part.partition(",")
            if version != "v1":
                continue
            try:
                given = _b64decode(sig)
            except ValueError:
                continue
            if hmac.compare_digest(given, expected):
                ok = True
    if not ok:
        raise WebhookVerificationError("no matching signature")
    try:
        return json.loads(body)
    except ValueError:
        raise WebhookVerificationError("the body is not JSON") from None


def _check_v1a(public: bytes, sigs: str, content: bytes) -> bool:
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError as e:  # pragma: no cover
        raise WebhookVerificationError("v1a signatures need cryptography: pip install keyward[signing]") from e
    key = Ed25519PublicKey.from_public_bytes(public)
    for part in sigs.split(" "):
        version, _, sig = part.partition(",")
        if version != "v1a":
            continue
        try:
            key.verify(_b64decode(sig), content)
            return True
        except (InvalidSignature, ValueError):
            continue
    return False
