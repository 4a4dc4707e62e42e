"""Signed requests: the shared vectors, and verification through a real server."""

from __future__ import annotations

import json
import os

import httpx

from keyward import Keyward
from keyward.signing import Signer, digest, string_to_sign

from conftest import unique

VECTORS = json.load(open(os.path.join(os.path.dirname(__file__), "data", "request-signing.json")))


def test_ed25519_vectors() -> None:
    v = VECTORS["ed25519"]
    signer = Signer.from_hex(v["secret_seed_hex"])
    assert signer.public_key == v["public_key_hex"]
    for c in v["cases"]:
        s = string_to_sign(c["method"], c["path"], c["nonce"], c["params"], c["body"])
        assert s == c["string_to_sign"]
        assert digest(s).hex() == c["digest_hex"]
        assert signer.sign(s) == c["signature_hex"]  # Ed25519 is deterministic


def test_secp256k1_public_key_matches_the_vectors() -> None:
    v = VECTORS["secp256k1"]
    signer = Signer.from_hex(v["secret_hex"], "secp256k1")
    assert signer.public_key == v["public_key_hex"]


def _register(kw: Keyward, signer: Signer, created: list, **kwargs) -> str:
    key = kw.keys.create(name=unique("signed"), public_key=signer.public_key, algorithm=signer.algorithm, **kwargs)
    created.append(key.id)
    assert key.kind == "public" and key.secret is None
    return key.id


def test_signed_requests_verify_through_the_server(kw: Keyward, created: list) -> None:
    for algorithm in ("ed25519", "secp256k1"):
        signer = Signer.generate(algorithm)
        key_id = _register(kw, signer, created, permissions=["wallet.read"])
        body = '{"amount":"1.5","note":"café"}'
        h = signer.headers("POST", "/v2/transfers", query="dry_run=true", body=body)
        v = kw.verify_signed("POST", "/v2/transfers", h, query="dry_run=true", body=body.encode(), permissions="wallet.read")
        assert (v.valid, v.code, v.key_id) == (True, "VALID", key_id), (algorithm, v)
        assert kw.verify_signed("POST", "/v2/transfers", h, query="dry_run=true", body=body).code == "REPLAYED"
        h2 = signer.headers("POST", "/v2/transfers", body=body)
        assert kw.verify_signed("POST", "/v2/transfers", h2, body=body + " ").code == "INVALID_SIGNATURE"
        h3 = signer.headers("GET", "/v2/wallets")
        assert kw.verify_signed("GET", "/v2/wallets", h3, permissions="wallet.write").code == "INSUFFICIENT_PERMISSIONS"
        old = signer.headers("GET", "/v2/wallets", nonce=1)
        assert kw.verify_signed("GET", "/v2/wallets", old).code == "NONCE_EXPIRED"


def test_signer_as_httpx_auth(kw: Keyward, created: list) -> None:
    signer = Signer.generate()
    _register(kw, signer, created)
    seen = []

    def app(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    with httpx.Client(transport=httpx.MockTransport(app), auth=signer, base_url="https://api.example.com") as http:
        http.post("/v2/wallets", params={"limit": "10"}, content=b'{"name":"w"}')
    req = seen[0]
    v = kw.verify_signed(req.method, req.url.path, dict(req.headers), query=req.url.query.decode(), body=req.content)
    assert v.valid, v
