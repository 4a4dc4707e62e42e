"""Standard Webhooks: a real delivery from Keyward to a local listener, checked by
keyward.webhooks.verify and by the `standardwebhooks` library; and the two agree on forgeries."""

from __future__ import annotations

import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError as SWError

from keyward import Keyward, webhooks
from keyward.webhooks import WebhookVerificationError

from conftest import unique


@pytest.fixture
def listener():
    got: "queue.Queue[tuple]" = queue.Queue()

    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            got.put((self.path, dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = HTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", got
    srv.shutdown()


def _wait(got, path, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            p, h, b = got.get(timeout=0.5)
        except queue.Empty:
            continue
        if p == path:
            return h, b
    raise AssertionError(f"no delivery to {path}")


def test_a_real_delivery_verifies_with_both_libraries(kw: Keyward, listener, created: list) -> None:
    base, got = listener
    hook = kw.webhooks.create(base + "/hook", events=["key.created"], description="sdk test")
    try:
        assert hook.secret and hook.secret.startswith("whsec_")
        key = kw.keys.create(name=unique())
        created.append(key.id)
        headers, body = _wait(got, "/hook")
        event = webhooks.verify(body, headers, hook.secret)
        assert event["type"] == "key.created" and event["data"]["key_id"] == key.id
        assert key.secret not in body.decode()
        assert Webhook(hook.secret).verify(body, headers)["data"]["key_id"] == key.id
        # a tampered body and a foreign secret fail in both
        forged = body.replace(key.id.encode(), b"key_someoneelse")
        with pytest.raises(WebhookVerificationError):
            webhooks.verify(forged, headers, hook.secret)
        with pytest.raises(SWError):
            Webhook(hook.secret).verify(forged, headers)
        other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="
        with pytest.raises(WebhookVerificationError):
            webhooks.verify(body, headers, other)
        # too old: outside the 5-minute tolerance
        with pytest.raises(WebhookVerificationError):
            webhooks.verify(body, headers, hook.secret, now=int(headers["webhook-timestamp"]) + 301)
        deliveries = kw.webhooks.deliveries(hook.id).items
        assert any(d.message_id == headers["webhook-id"] for d in deliveries)
    finally:
        kw.webhooks.delete(hook.id)


def test_rotation_overlap_keeps_both_secrets_valid(kw: Keyward, listener) -> None:
    base, got = listener
    hook = kw.webhooks.create(base + "/rot", events=["*"])
    try:
        rotated = kw.webhooks.rotate_secret(hook.id, overlap="1h")
        assert rotated.secret and rotated.secret != hook.secret
        kw.webhooks.test(hook.id)
        headers, body = _wait(got, "/rot")
        assert len(headers["webhook-signature"].split(" ")) == 2
        assert webhooks.verify(body, headers, hook.secret)["type"] == "webhook.test"
        assert webhooks.verify(body, headers, rotated.secret)["type"] == "webhook.test"
    finally:
        kw.webhooks.delete(hook.id)


def test_per_key_callback_is_signed_v1a(kw: Keyward, listener, created: list) -> None:
    base, got = listener
    key = kw.keys.create(name=unique(), callback_url=base + "/cb")
    created.append(key.id)
    kw.keys.update(key.id, name=key.name + "-renamed")
    headers, body = _wait(got, "/cb")
    assert headers["webhook-signature"].startswith("v1a,")
    whpk = kw.webhooks.signing_key()
    event = webhooks.verify(body, headers, whpk)
    assert event["data"]["key_id"] == key.id
    with pytest.raises(WebhookVerificationError):
        webhooks.verify(body + b" ", headers, whpk)


def test_sign_and_verify_agree_with_standardwebhooks() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    payload = json.dumps({"type": "key.created", "data": {"key_id": "key_1"}}).encode()
    ts = int(time.time())
    ours = webhooks.sign(payload, secret, "msg_1", ts)
    theirs = Webhook(secret).sign("msg_1", __import__("datetime").datetime.fromtimestamp(ts), payload.decode())
    assert ours == theirs
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(ts), "webhook-signature": ours}
    assert webhooks.verify(payload, headers, secret) == Webhook(secret).verify(payload, headers)
    with pytest.raises(WebhookVerificationError):
        webhooks.verify(payload, {**headers, "webhook-id": "msg_2"}, secret)
    with pytest.raises(WebhookVerificationError):
        webhooks.verify(payload, {"webhook-id": "msg_1"}, secret)
