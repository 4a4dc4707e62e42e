"""TokenSource's retries (keyward.apps). Keyward's token endpoint does not fail on demand, so a
small local HTTP server stands in for it (as in test_transport.py): it answers from a script —
an error, or a connection closed without an answer — then with tokens, and records each form."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import pytest

from keyward import AsyncTokenSource, Keyward, KeywardOAuthError, TokenSource
from keyward._errors import KeywardConnectionError
from keyward.apps import JWT_BEARER
from keyward.signing import Signer

#: A scripted answer: (status, OAuth error code, Retry-After or None), TOKEN or DROP.
Answer = Union[Tuple[int, str, Optional[str]], str]
TOKEN = "token"  # a new access token and refresh token, numbered by the request (at_3, kw_rt_3)
DROP = "drop"  # read the request, close the connection without answering
UNAVAILABLE: Answer = (503, "server_error", "0")


class TokenEndpoint:
    def __init__(self, *script: Answer) -> None:
        self.script = list(script)
        self.forms: List[Dict[str, str]] = []
        endpoint = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                form = {k: v[0] for k, v in urllib.parse.parse_qs(self.rfile.read(n).decode()).items()}
                endpoint.forms.append(form)
                answer = endpoint.script.pop(0) if endpoint.script else TOKEN
                if answer == DROP:
                    self.close_connection = True
                    return
                headers: Dict[str, str] = {}
                if isinstance(answer, str):
                    i = len(endpoint.forms)
                    status, body = 200, {"access_token": f"at_{i}", "token_type": "Bearer", "expires_in": 3600,
                                         "refresh_token": f"kw_rt_{i}"}
                else:
                    status, code, retry_after = answer
                    body = {"error": code, "error_description": "scripted"}
                    if retry_after is not None:
                        headers["retry-after"] = retry_after
                data = json.dumps(body).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a: Any) -> None:
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"

    def grants(self) -> List[str]:
        return [f["grant_type"] for f in self.forms]

    def jtis(self) -> List[str]:
        out = []
        for f in self.forms:
            if f["grant_type"] == JWT_BEARER:
                claims = f["assertion"].split(".")[1]
                out.append(json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["jti"])
        return out

    def refresh_tokens(self) -> List[str]:
        return [f["refresh_token"] for f in self.forms if f["grant_type"] == "refresh_token"]

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def key() -> str:
    return Signer.generate().secret_hex


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@contextmanager
def serve(*script: Answer) -> Iterator[TokenEndpoint]:
    ep = TokenEndpoint(*script)
    try:
        yield ep
    finally:
        ep.close()


def test_503s_are_retried_each_with_a_new_assertion(key: str) -> None:
    with serve(UNAVAILABLE, UNAVAILABLE) as ep:
        with TokenSource(ep.url, "app_x", "inst_x", key) as tokens:
            assert tokens.token() == "at_3"
        assert ep.grants() == [JWT_BEARER] * 3
        assert len(set(ep.jtis())) == 3, "a jti is single-use: each attempt signs a new assertion"


def test_threads_wait_for_one_retried_purchase(key: str) -> None:
    with serve(UNAVAILABLE, UNAVAILABLE) as ep, TokenSource(ep.url, "app_x", "inst_x", key) as tokens:
        barrier = threading.Barrier(6)
        got: List[str] = []

        def take() -> None:
            barrier.wait()
            got.append(tokens.token())

        threads = [threading.Thread(target=take) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert got == ["at_3"] * 6 and len(ep.forms) == 3


def test_429_past_the_retry_count_raises_the_last_answer(key: str) -> None:
    slow_down: Answer = (429, "slow_down", "0")
    with serve(*[slow_down] * 10) as ep:
        with TokenSource(ep.url, "app_x", "inst_x", key, max_retries=3) as tokens:
            with pytest.raises(KeywardOAuthError) as e:
                tokens.token()
        assert (e.value.status, e.value.code, e.value.retry_after) == (429, "slow_down", 0)
        assert len(ep.forms) == 4
    # Made from a client: the client's max_retries.
    with serve(*[slow_down] * 10) as ep:
        with Keyward(base_url=ep.url, max_retries=1) as kw, TokenSource(kw, "app_x", "inst_x", key) as tokens:
            with pytest.raises(KeywardOAuthError):
                tokens.token()
        assert len(ep.forms) == 2
    # A Retry-After longer than the clients wait for is not waited for.
    with serve((429, "slow_down", "3600")) as ep:
        started = time.time()
        with TokenSource(ep.url, "app_x", "inst_x", key) as tokens:
            with pytest.raises(KeywardOAuthError) as e:
                tokens.token()
        assert e.value.retry_after == 3600 and len(ep.forms) == 1 and time.time() - started < 2


def test_an_unanswered_refresh_is_never_sent_again(key: str, clock: Clock) -> None:
    # Bought; the refresh gets no answer; so does the first new assertion, the second buys.
    with serve(TOKEN, DROP, DROP) as ep:
        with TokenSource(ep.url, "app_x", "inst_x", key, clock=clock) as tokens:
            assert tokens.token() == "at_1"
            clock.now += 3600
            assert tokens.token() == "at_4"
        assert ep.grants() == [JWT_BEARER, "refresh_token", JWT_BEARER, JWT_BEARER]
        assert ep.refresh_tokens() == ["kw_rt_1"]
        assert len(set(ep.jtis())) == 3


def test_an_unanswered_refresh_is_dropped_even_when_no_assertion_buys_a_token(key: str, clock: Clock) -> None:
    with serve(TOKEN, DROP, DROP, DROP) as ep:
        with TokenSource(ep.url, "app_x", "inst_x", key, max_retries=1, clock=clock) as tokens:
            tokens.token()
            clock.now += 3600
            with pytest.raises(KeywardConnectionError):
                tokens.token()
            assert tokens.token() == "at_5"
        assert ep.grants() == [JWT_BEARER, "refresh_token", JWT_BEARER, JWT_BEARER, JWT_BEARER]
        assert ep.refresh_tokens() == ["kw_rt_1"]


def test_a_refresh_answered_503_is_retried_with_the_same_refresh_token(key: str, clock: Clock) -> None:
    with serve(TOKEN, UNAVAILABLE) as ep:
        with TokenSource(ep.url, "app_x", "inst_x", key, clock=clock) as tokens:
            tokens.token()
            clock.now += 3600
            assert tokens.token() == "at_3"
        assert ep.grants() == [JWT_BEARER, "refresh_token", "refresh_token"]
        assert ep.refresh_tokens() == ["kw_rt_1", "kw_rt_1"]


def test_a_refresh_a_proxy_answered_502_is_not_sent_again(key: str, clock: Clock) -> None:
    with serve(TOKEN, (502, "bad_gateway", None)) as ep:
        with TokenSource(ep.url, "app_x", "inst_x", key, clock=clock) as tokens:
            tokens.token()
            clock.now += 3600
            assert tokens.token() == "at_3"
        assert ep.grants() == [JWT_BEARER, "refresh_token", JWT_BEARER]
        assert ep.refresh_tokens() == ["kw_rt_1"]


def test_a_refresh_still_unavailable_raises_and_keeps_its_refresh_token(key: str, clock: Clock) -> None:
    with serve(TOKEN, UNAVAILABLE, UNAVAILABLE) as ep:
        with TokenSource(ep.url, "app_x", "inst_x", key, max_retries=1, clock=clock) as tokens:
            tokens.token()
            clock.now += 3600
            with pytest.raises(KeywardOAuthError) as e:
                tokens.token()
            assert e.value.status == 503
            assert tokens.token() == "at_4"
        assert ep.grants() == [JWT_BEARER] + ["refresh_token"] * 3
        assert ep.refresh_tokens() == ["kw_rt_1"] * 3


def test_invalid_grant_is_not_retried(key: str, clock: Clock) -> None:
    invalid: Answer = (400, "invalid_grant", None)
    with serve(invalid, invalid) as ep:
        with TokenSource(ep.url, "app_x", "inst_x", key, clock=clock) as tokens:
            with pytest.raises(KeywardOAuthError) as e:
                tokens.token()
        assert (e.value.status, e.value.code, ep.grants()) == (400, "invalid_grant", [JWT_BEARER])
    # A refused refresh: once, then a new assertion (refused too, once).
    with serve(TOKEN, invalid, invalid) as ep:
        with TokenSource(ep.url, "app_x", "inst_x", key, clock=clock) as tokens:
            tokens.token()
            clock.now += 3600
            with pytest.raises(KeywardOAuthError) as e:
                tokens.token()
        assert e.value.code == "invalid_grant" and ep.grants() == [JWT_BEARER, "refresh_token", JWT_BEARER]


async def test_async_503s_are_retried_each_with_a_new_assertion(key: str) -> None:
    with serve(UNAVAILABLE, UNAVAILABLE) as ep:
        async with AsyncTokenSource(ep.url, "app_x", "inst_x", key) as tokens:
            assert await tokens.token() == "at_3"
        assert ep.grants() == [JWT_BEARER] * 3 and len(set(ep.jtis())) == 3


async def test_async_unanswered_refresh_is_never_sent_again(key: str, clock: Clock) -> None:
    with serve(TOKEN, DROP, UNAVAILABLE) as ep:
        async with AsyncTokenSource(ep.url, "app_x", "inst_x", key, clock=clock) as tokens:
            await tokens.token()
            clock.now += 3600
            assert await tokens.token() == "at_4"
        assert ep.grants() == [JWT_BEARER, "refresh_token", JWT_BEARER, JWT_BEARER]
        assert ep.refresh_tokens() == ["kw_rt_1"]
