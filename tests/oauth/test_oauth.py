"""Apps' OAuth tokens (docs/APPS.md) checked by a held-out JWT library, PyJWT with
cryptography (pinned in requirements.txt), against a running `keyward serve --public-url`:
KEYWARD_URL (also the public URL) and KEYWARD_MANAGEMENT_KEY (an owner's). For each of ES256K
and EdDSA: an app registered with a key pair made here, installed with less than it asks for,
an assertion signed by PyJWT buys a token, PyJWT verifies the token offline against the JWKS,
Keyward's verify accepts it with the granted permissions, and the assertion's replay is
refused. .ci/run starts the server and runs this with pytest."""

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

URL = os.environ["KEYWARD_URL"].rstrip("/")
MK = os.environ["KEYWARD_MANAGEMENT_KEY"]
TOKEN_URL = URL + "/v1/oauth/token"


def call(method, path, body=None, form=None, token=MK):
    data, headers = None, {}
    if body is not None:
        data, headers["content-type"] = json.dumps(body).encode(), "application/json"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["content-type"] = "application/x-www-form-urlencoded"
    if token:
        headers["authorization"] = "Bearer " + token
    req = urllib.request.Request(URL + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def ed25519_pair():
    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return private, raw.hex(), "ed25519", "EdDSA"


def secp256k1_pair():
    private = ec.generate_private_key(ec.SECP256K1())
    point = private.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    return private, point.hex(), "secp256k1", "ES256K"


@pytest.mark.parametrize("make_pair", [secp256k1_pair, ed25519_pair], ids=["ES256K", "EdDSA"])
def test_assertion_token_offline_and_online(make_pair):
    private, public_hex, algorithm, alg = make_pair()
    st, app = call("POST", "/v1/apps", {
        "name": "py " + alg, "public_key": public_hex, "algorithm": algorithm,
        "permissions": ["ledger.read", "ledger.write"], "scopes": ["ledger:*"],
    })
    assert st == 201, app
    st, inst = call("POST", "/v1/installations", {
        "app_id": app["id"], "permissions": ["ledger.read"], "scopes": ["ledger:l_1"],
    })
    assert st == 201 and inst["status"] == "active", inst
    workspace = inst["workspace_id"]

    now = int(time.time())
    claims = {"iss": app["id"], "sub": inst["id"], "aud": TOKEN_URL, "iat": now, "exp": now + 120,
              "jti": str(uuid.uuid4())}
    assertion = jwt.encode(claims, private, algorithm=alg)
    grant = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
    st, tokens = call("POST", "/v1/oauth/token", form=grant, token=None)
    assert st == 200, tokens
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
    access = tokens["access_token"]

    # Offline, as any service would: the JWKS, the issuer, its own workspace as audience.
    assert jwt.get_unverified_header(access)["typ"] == "at+jwt"
    key = jwt.PyJWKClient(URL + "/.well-known/jwks.json").get_signing_key_from_jwt(access)
    verified = jwt.decode(access, key, algorithms=["EdDSA"], audience=workspace, issuer=URL)
    assert verified["permissions"] == ["ledger.read"]
    assert verified["client_id"] == app["id"] and verified["sub"] == inst["id"]
    assert verified["scope"] == "ledger:l_1"
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(access, key, algorithms=["EdDSA"], audience="ws_someone_else", issuer=URL)

    # Online, where a key would be.
    st, v = call("POST", "/v1/keys/verify", {"key": access, "permissions": "ledger.read"}, token=None)
    assert st == 200 and v["code"] == "VALID" and v["kind"] == "app_token", v
    assert v["permissions"] == ["ledger.read"]
    st, v = call("POST", "/v1/keys/verify", {"key": access, "permissions": "ledger.write"}, token=None)
    assert v["code"] == "INSUFFICIENT_PERMISSIONS", v

    # The same assertion twice: refused.
    st, e = call("POST", "/v1/oauth/token", form=grant, token=None)
    assert st == 400 and e["error"] == "invalid_grant", e
    # Signed by another key: refused.
    stranger = make_pair()[0]
    forged = jwt.encode(dict(claims, jti=str(uuid.uuid4())), stranger, algorithm=alg)
    st, e = call("POST", "/v1/oauth/token", form=dict(grant, assertion=forged), token=None)
    assert st == 401 and e["error"] == "invalid_client", e


def test_metadata_names_the_endpoints():
    st, meta = call("GET", "/.well-known/oauth-authorization-server", token=None)
    assert st == 200, meta
    assert meta["issuer"] == URL and meta["token_endpoint"] == TOKEN_URL
    assert set(meta["token_endpoint_auth_signing_alg_values_supported"]) == {"EdDSA", "ES256K"}
