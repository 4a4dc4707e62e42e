"""Retries and timeouts. Keyward does not fail on demand, so a small local HTTP server stands in
for a node that answers 503 or hangs; everything else in the suite talks to a real Keyward."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from keyward import Keyward, KeywardError
from keyward._errors import KeywardConnectionError, KeywardTimeoutError

from conftest import free_port


class Flaky:
    def __init__(self, failures: int, status: int = 503, retry_after: str = "0", delay: float = 0.0):
        self.failures, self.status, self.retry_after, self.delay = failures, status, retry_after, delay
        self.calls: list = []
        flaky = self

        class H(BaseHTTPRequestHandler):
            def _answer(self):
                n = int(self.headers.get("content-length") or 0)
                self.rfile.read(n)
                flaky.calls.append((self.command, self.path, dict(self.headers.items())))
                time.sleep(flaky.delay)
                if len(flaky.calls) <= flaky.failures:
                    body = json.dumps({"error": {"code": "unavailable", "message": "try again"}}).encode()
                    self.send_response(flaky.status)
                    self.send_header("retry-after", flaky.retry_after)
                else:
                    body = json.dumps({"valid": True, "code": "VALID", "items": [], "name": "r", "description": "",
                                       "member_role": False, "keys": 0}).encode()
                    self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *a):
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"

    def close(self):
        self.srv.shutdown()


def test_idempotent_calls_are_retried() -> None:
    f = Flaky(failures=2)
    try:
        kw = Keyward(base_url=f.url, management_key="kw_mk_x", max_retries=2)
        assert kw.keys.list().items == []  # GET
        assert len(f.calls) == 3
        f.calls.clear()
        assert kw.verify("kw_test_sk_x").valid  # verification
        assert len(f.calls) == 3
        f.calls.clear()
        kw.keys.create(name="x")  # POST with an Idempotency-Key (made by the SDK): retried, same key
        keys = {c[2].get("Idempotency-Key") for c in f.calls}
        assert len(f.calls) == 3 and len(keys) == 1 and None not in keys
    finally:
        f.close()


def test_non_idempotent_calls_are_not_retried() -> None:
    f = Flaky(failures=1)
    try:
        kw = Keyward(base_url=f.url, management_key="kw_mk_x")
        with pytest.raises(KeywardError) as e:
            kw.roles.create("r", permissions=["a"])  # a POST without Idempotency-Key
        assert (e.value.status, e.value.code, len(f.calls)) == (503, "unavailable", 1)
    finally:
        f.close()


def test_retries_give_up_and_a_long_retry_after_is_not_waited_for() -> None:
    f = Flaky(failures=10)
    try:
        kw = Keyward(base_url=f.url, max_retries=1)
        with pytest.raises(KeywardError) as e:
            kw.verify("k")
        assert e.value.status == 503 and len(f.calls) == 2
        f2 = Flaky(failures=10, status=429, retry_after="3600")
        try:
            started = time.time()
            with pytest.raises(KeywardError) as e:
                Keyward(base_url=f2.url).verify("k")
            assert e.value.code == "unavailable" and e.value.retry_after == 3600 and time.time() - started < 2
            assert len(f2.calls) == 1
        finally:
            f2.close()
    finally:
        f.close()


def test_timeout_and_connection_errors_are_keyward_errors() -> None:
    f = Flaky(failures=0, delay=1.5)
    try:
        started = time.time()
        with pytest.raises(KeywardTimeoutError) as e:
            Keyward(base_url=f.url, timeout=0.3, max_retries=0).verify("k")
        assert isinstance(e.value, KeywardError) and e.value.code == "timeout" and e.value.status is None
        assert time.time() - started < 1.4
    finally:
        f.close()
    with pytest.raises(KeywardConnectionError) as e:
        Keyward(base_url=f"http://127.0.0.1:{free_port()}", max_retries=0).keys.list()
    assert e.value.code == "connection_error"
