"""Fixtures: a real Keyward server.

CI (`ci.sh`, called by `.ci/run`) gives one in KEYWARD_URL / KEYWARD_MANAGEMENT_KEY /
KEYWARD_WORKSPACE_ID, and the binary in KEYWARD_BIN for tests that need a server of their own
(e.g. one started with --verify-token). Without KEYWARD_URL, a server is started from
KEYWARD_BIN for the session.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Iterator, List, Optional

import pytest

from keyward import Keyward

HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Server:
    url: str
    management_key: str
    workspace_id: str
    proc: Optional[subprocess.Popen] = None
    operator_token: Optional[str] = None
    data: Optional[str] = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.data:
            shutil.rmtree(self.data, ignore_errors=True)


def start_server(*extra: str, listen: str = "127.0.0.1:0") -> Server:
    """`keyward serve` on a free port (or ``listen``) with a fresh data dir; its URL, owner key,
    workspace and operator token."""
    binary = os.environ.get("KEYWARD_BIN") or shutil.which("keyward")
    if not binary:
        pytest.skip("KEYWARD_BIN is not set")
    data = tempfile.mkdtemp(prefix="kw-py-")
    log = open(os.path.join(data, "serve.log"), "w+")
    proc = subprocess.Popen(
        [binary, "serve", "--data-dir", os.path.join(data, "d"), "--listen", listen,
         "--webhook-allow-private", *extra],
        stdout=subprocess.DEVNULL, stderr=log,
    )
    deadline = time.time() + 30
    text = ""
    while time.time() < deadline:
        log.seek(0)
        text = log.read()
        if "keyward listening" in text:
            break
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    addr = re.search(r"keyward listening.*addr=([0-9.:]+)", text)
    mk = re.search(r"[a-z0-9]+_mk_[A-Za-z0-9]+", text)
    ws = re.search(r"ws_[A-Za-z0-9]+", text)
    op = re.search(r"kw_op_[A-Za-z0-9_]+", text)
    if not (addr and mk and ws):
        proc.kill()
        raise RuntimeError("keyward serve did not start:\n" + text)
    return Server(f"http://{addr.group(1)}", mk.group(0), ws.group(0), proc=proc, data=data, operator_token=op.group(0) if op else None)


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    if os.environ.get("KEYWARD_URL"):
        yield Server(
            os.environ["KEYWARD_URL"], os.environ["KEYWARD_MANAGEMENT_KEY"], os.environ.get("KEYWARD_WORKSPACE_ID", "")
        )
        return
    s = start_server("--webhook-retry-schedule", "1s,1s")
    os.environ["KEYWARD_URL"] = s.url
    os.environ["KEYWARD_MANAGEMENT_KEY"] = s.management_key
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def kw(server: Server) -> Iterator[Keyward]:
    with Keyward(base_url=server.url, management_key=server.management_key) as client:
        yield client


@pytest.fixture
def created(kw: Keyward) -> Iterator[List[str]]:
    """Ids of keys a test made: revoked afterwards."""
    ids: List[str] = []
    yield ids
    for i in ids:
        try:
            kw.keys.revoke(i)
        except Exception:
            pass


def unique(prefix: str = "py") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: Optional[subprocess.Popen] = None, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


PYTHON = sys.executable
