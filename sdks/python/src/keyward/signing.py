"""Signed requests: the ``Biz-Api-Key`` / ``Biz-Api-Nonce`` / ``Biz-Api-Signature`` scheme.

A client keeps a private key (Ed25519, or secp256k1) and registers only its public key
(``kw.keys.create(name=…, public_key=signer.public_key, algorithm=signer.algorithm)``). Each
request is signed over ``METHOD|PATH|NONCE|QUERY|BODY``: the signature is over
SHA-256(SHA-256(that string)), hex (secp256k1: DER, low-S). Needs ``cryptography``
(``pip install keyward[signing]``).

    signer = Signer.from_hex(secret_hex)
    http = httpx.Client(base_url="https://api.example.com", auth=signer)   # signs every request
    headers = signer.headers("GET", "/v2/wallets", query="limit=10")      # or by hand

Your service checks them with ``kw.verify_signed(...)`` (the framework helpers do it for you).
"""

from __future__ import annotations

import hashlib
import time
from typing import Dict, Generator, Optional, Union

import httpx

__all__ = ["Signer", "string_to_sign", "digest"]

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def string_to_sign(method: str, path: str, nonce: Union[str, int], query: str = "", body: Union[str, bytes] = "") -> str:
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8")
    return f"{method.upper()}|{path}|{nonce}|{query.lstrip('?')}|{body}"


def digest(text: str) -> bytes:
    return hashlib.sha256(hashlib.sha256(text.encode("utf-8")).digest()).digest()


class Signer(httpx.Auth):
    """Signs requests with one private key; also an ``httpx.Auth`` (``auth=signer``)."""

    requires_request_body = True

    def __init__(self, private_key: object, algorithm: str = "ed25519") -> None:
        self._key = private_key
        self.algorithm = algorithm

    @classmethod
    def from_hex(cls, secret_hex: str, algorithm: str = "ed25519") -> "Signer":
        """From the private key's hex (Ed25519: the 32-byte seed; secp256k1: the scalar), as
        ``keyward keys generate`` writes ``api_secret``."""
        raw = bytes.fromhex(secret_hex.strip())
        if algorithm == "ed25519":
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

            return cls(Ed25519PrivateKey.from_private_bytes(raw), "ed25519")
        if algorithm == "secp256k1":
            from cryptography.hazmat.primitives.asymmetric import ec

            return cls(ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256K1()), "secp256k1")
        raise ValueError(f"unknown algorithm {algorithm!r} (ed25519 or secp256k1)")

    @classmethod
    def generate(cls, algorithm: str = "ed25519") -> "Signer":
        """A new key pair; ``.public_key`` is what to register, ``.secret_hex`` what to keep."""
        if algorithm == "ed25519":
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

            return cls(Ed25519PrivateKey.generate(), "ed25519")
        if algorithm == "secp256k1":
            from cryptography.hazmat.primitives.asymmetric import ec

            return cls(ec.generate_private_key(ec.SECP256K1()), "secp256k1")
        raise ValueError(f"unknown algorithm {algorithm!r} (ed25519 or secp256k1)")

    @property
    def public_key(self) -> str:
        """The public key's hex (Ed25519: 64 characters; secp256k1: 66, compressed)."""
        from cryptography.hazmat.primitives import serialization

        pub = self._key.public_key()  # type: ignore[attr-defined]
        if self.algorithm == "ed25519":
            return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
        return pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint).hex()

    @property
    def secret_hex(self) -> str:
        from cryptography.hazmat.primitives import serialization

        if self.algorithm == "ed25519":
            return self._key.private_bytes(  # type: ignore[attr-defined]
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            ).hex()
        return self._key.private_numbers().private_value.to_bytes(32, "big").hex()  # type: ignore[attr-defined]

    def sign(self, text: str) -> str:
        """The hex signature of a string to sign."""
        d = digest(text)
        if self.algorithm == "ed25519":
            return self._key.sign(d).hex()  # type: ignore[attr-defined]
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, utils

        der = self._key.sign(d, ec.ECDSA(utils.Prehashed(hashes.SHA256())))  # type: ignore[attr-defined]
        r, s = utils.decode_dss_signature(der)
        if s > _SECP256K1_N // 2:
            s = _SECP256K1_N - s
        return utils.encode_dss_signature(r, s).hex()

    @property
    def jws_algorithm(self) -> str:
        """The JWS ``alg`` this key signs with: ``EdDSA`` (Ed25519) or ``ES256K`` (secp256k1)."""
        return "EdDSA" if self.algorithm == "ed25519" else "ES256K"

    def sign_jws(self, signing_input: bytes) -> bytes:
        """A JWS signature of ``header.payload`` (an app's assertion, :mod:`keyward.apps`):
        Ed25519 over the bytes; ES256K: ECDSA over their SHA-256, low-S, ``r ‖ s`` (RFC 8812)."""
        if self.algorithm == "ed25519":
            return self._key.sign(signing_input)  # type: ignore[attr-defined,no-any-return]
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, utils

        der = self._key.sign(signing_input, ec.ECDSA(hashes.SHA256()))  # type: ignore[attr-defined]
        r, s = utils.decode_dss_signature(der)
        if s > _SECP256K1_N // 2:
            s = _SECP256K1_N - s
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def headers(
        self, method: str, path: str, *, query: str = "", body: Union[str, bytes] = "", nonce: Optional[int] = None
    ) -> Dict[str, str]:
        """``Biz-Api-Key``, ``Biz-Api-Nonce`` (Unix milliseconds unless given) and
        ``Biz-Api-Signature`` for one request."""
        n = str(nonce if nonce is not None else int(time.time() * 1000))
        return {
            "Biz-Api-Key": self.public_key,
            "Biz-Api-Nonce": n,
            "Biz-Api-Signature": self.sign(string_to_sign(method, path, n, query, body)),
        }

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        target = request.url.raw_path.decode("ascii")
        path, _, query = target.partition("?")
        request.headers.update(self.headers(request.method, path, query=query, body=request.content))
        yield request
