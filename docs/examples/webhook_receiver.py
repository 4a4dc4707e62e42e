#!/usr/bin/env python3
"""A Keyward webhook receiver: verifies each delivery before trusting it.

Endpoints (`POST /v1/webhooks`) sign with their `whsec_...` secret, checked here with the
Standard Webhooks library (`pip install standardwebhooks`). Per-key callbacks sign with the
workspace's Ed25519 key, published as `whpk_...` by `GET /v1/webhooks/signing-key`, checked
with `cryptography` (`pip install cryptography`).

    KEYWARD_WEBHOOK_TRUST=whsec_... python3 webhook_receiver.py --port 8088

`--count N` exits after N verified deliveries (CI uses it); a delivery that does not verify
is answered 400 and the script exits 1 when --count is given.
"""
import argparse
import base64
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

TOLERANCE = 5 * 60


def verify_callback(public_key: str, headers, body: bytes) -> dict:
    """`v1a,<base64 Ed25519 signature>` over `{id}.{timestamp}.{body}`."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    msg_id, ts = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(ts)) > TOLERANCE:
        raise ValueError("stale timestamp")
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key.removeprefix("whpk_")))
    content = f"{msg_id}.{ts}.".encode() + body
    for sig in headers["webhook-signature"].split(" "):
        if sig.startswith("v1a,"):
            try:
                key.verify(base64.b64decode(sig[4:]), content)
                return json.loads(body)
            except Exception:
                continue
    raise ValueError("no valid v1a signature")


def verify(trust: str, headers, body: bytes) -> dict:
    if trust.startswith("whpk_"):
        return verify_callback(trust, headers, body)
    from standardwebhooks.webhooks import Webhook

    return Webhook(trust).verify(body, headers)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8088)
    ap.add_argument("--count", type=int, default=0)
    args = ap.parse_args()
    trust = os.environ["KEYWARD_WEBHOOK_TRUST"]
    seen = {"ok": 0, "bad": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                event = verify(trust, headers, body)
            except Exception as e:
                seen["bad"] += 1
                print(f"refused {headers.get('webhook-id')}: {e}", flush=True)
                self.send_response(400)
                self.end_headers()
                return
            seen["ok"] += 1
            # webhook-id is the same on every retry: use it to drop duplicates.
            print(f"verified {headers['webhook-id']} {event['type']} {json.dumps(event['data'])}", flush=True)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", args.port), Handler)
    while args.count == 0 or seen["ok"] + seen["bad"] < args.count:
        server.handle_request()
    return 1 if seen["bad"] else 0


if __name__ == "__main__":
    sys.exit(main())
