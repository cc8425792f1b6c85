"""A real ``pricecalc serve`` process (SPEC §11, issue 23): signals, concurrent keys,
several workers on one store, and a SIGKILL under load followed by a restart."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_support import split

from pricecalc.service import tokens as tokens_file

PRICECALC = str(Path(sys.executable).with_name("pricecalc"))
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, folder: Path, *extra: str) -> None:
        self.folder = folder
        self.store = folder / "audit.jsonl"
        self.tokens = folder / "tokens.json"
        if not self.tokens.exists():
            self.secret = tokens_file.add(self.tokens, "all", "op-all", ["decide", "read", "void"])
            (folder / "secret").write_text(self.secret)
        self.secret = (folder / "secret").read_text()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "access.log"
        self.stderr = (folder / "stderr.txt").open("ab")
        self.process = subprocess.Popen(
            [PRICECALC, "--audit", str(self.store), "serve", "--tokens", str(self.tokens),
             "--port", str(self.port), "--access-log", str(self.log), *extra],
            stdout=subprocess.DEVNULL, stderr=self.stderr, env={**os.environ, "CI": ""},
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"serve did not start: {(folder / 'stderr.txt').read_text()}")
            time.sleep(0.1)

    def headers(self, key: str | None = None, secret: str | None = None) -> dict[str, str]:
        out = {"Authorization": f"Bearer {secret or self.secret}"}
        if key is not None:
            out["Idempotency-Key"] = f'"{key}"'
        return out

    def decide(self, key: str, request: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.post(f"{self.url}/v1/decisions", json=request or split(),
                          headers=self.headers(key), timeout=30)  # fmt: skip

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout=60)
        self.stderr.close()
        return code


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    made = Server(tmp_path)
    yield made
    if made.process.poll() is None:
        made.stop(signal.SIGKILL)


def keys_in_store(store: Path) -> list[str]:
    keys = []
    for line in store.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("key") is not None:
            keys.append(record["key"])
    return keys


def verify(store: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PRICECALC, "--audit", str(store), "audit", "verify"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_concurrent_same_key_is_one_record(server: Server) -> None:
    """SPEC §11: concurrent requests with one key → 201 once, the rest 409 or a 200
    replay; never two records."""
    answers: list[int] = []

    def send() -> None:
        answers.append(server.decide("same").status_code)

    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers.count(201) == 1
    assert set(answers) <= {200, 201, 409}
    assert keys_in_store(server.store).count("same") == 1
    assert server.stop() == 0


def test_sighup_reloads_tokens_and_sigterm_exits_0(server: Server) -> None:
    """SPEC §11: the server re-reads the tokens file on SIGHUP; SIGTERM finishes what is
    in flight and exits 0; the access log holds no token and no body."""
    fresh = tokens_file.add(server.tokens, "new", "op-new", ["read"])
    url = f"{server.url}/v1/consistency?from=0"
    assert httpx.get(url, headers=server.headers(secret=fresh)).status_code == 401
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while httpx.get(url, headers=server.headers(secret=fresh)).status_code != 200:
        assert time.monotonic() < deadline, "the new token was not loaded"
        time.sleep(0.1)
    assert server.decide("k-1").status_code == 201
    assert server.stop() == 0
    log = server.log.read_text(encoding="utf-8")
    assert server.secret not in log and fresh not in log and "100.00" not in log
    assert [json.loads(line)["status"] for line in log.splitlines()][-1] == 201


def test_workers_share_one_store(tmp_path: Path) -> None:
    """SPEC §11: several server processes share one store (the file store's lock): every
    decision is recorded once and the chain verifies."""
    server = Server(tmp_path, "--workers", "2")
    try:
        statuses: list[int] = []

        def send(start: int) -> None:
            with httpx.Client(timeout=30) as client:
                for n in range(start, start + 10):
                    response = client.post(f"{server.url}/v1/decisions", json=split(),
                                           headers=server.headers(f"w-{n}"))  # fmt: skip
                    statuses.append(response.status_code)

        threads = [threading.Thread(target=send, args=(i * 10,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [201] * 40
    finally:
        assert server.stop() == 0
    assert sorted(keys_in_store(server.store)) == sorted(f"w-{n}" for n in range(40))
    assert verify(server.store).returncode == 0


def test_sigkill_under_load_then_restart(tmp_path: Path) -> None:
    """Issue 23: SIGKILL under concurrent load, restart: every decision that got a 2xx is
    in the store, the chain verifies, clients retrying with their keys get the same
    decisions, none recorded twice."""
    server = Server(tmp_path)
    answered: dict[str, dict[str, Any]] = {}
    tried: list[str] = []
    stop = threading.Event()

    def load(worker: int) -> None:
        with httpx.Client(timeout=30) as client:
            n = 0
            while not stop.is_set():
                key = f"c{worker}-{n}"
                n += 1
                tried.append(key)
                try:
                    response = client.post(f"{server.url}/v1/decisions", json=split(),
                                           headers=server.headers(key))  # fmt: skip
                except httpx.TransportError:
                    return
                if response.status_code in (200, 201):
                    answered[key] = response.json()

    threads = [threading.Thread(target=load, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(answered) < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=30)
    stop.set()
    for thread in threads:
        thread.join()
    assert len(answered) >= 50
    stored = keys_in_store(server.store)
    assert len(stored) == len(set(stored))
    assert set(answered) <= set(stored)
    result = verify(server.store)
    assert result.returncode == 0, result.stdout + result.stderr
    again = Server(tmp_path)
    try:
        for key in tried:
            response = again.decide(key)
            assert response.status_code in (200, 201), response.text
            if key in answered:
                assert response.status_code == 200
                body = response.json()
                assert body["audit"] == answered[key]["audit"]
                assert body["result"] == answered[key]["result"]
    finally:
        assert again.stop() == 0
    stored = keys_in_store(again.store)
    assert len(stored) == len(set(stored)) == len(set(tried))
    assert verify(again.store).returncode == 0


def test_sigterm_finishes_what_is_in_flight(tmp_path: Path) -> None:
    """Issue 23: SIGTERM under load stops accepting, answers the requests in flight with
    their recorded decisions, and exits 0; every 2xx is in the store."""
    server = Server(tmp_path)
    answered: dict[str, int] = {}
    started = threading.Barrier(9)

    def load(worker: int) -> None:
        started.wait()
        with httpx.Client(timeout=30) as client:
            for n in range(1000):
                key = f"t{worker}-{n}"
                try:
                    response = client.post(f"{server.url}/v1/decisions", json=split(),
                                           headers=server.headers(key))  # fmt: skip
                except httpx.TransportError:
                    return
                answered[key] = response.status_code

    threads = [threading.Thread(target=load, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    started.wait()
    time.sleep(1.0)
    assert server.stop(signal.SIGTERM) == 0
    for thread in threads:
        thread.join()
    assert answered and set(answered.values()) == {201}
    assert set(answered) <= set(keys_in_store(server.store))
    assert verify(server.store).returncode == 0


def _raw_exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


MALFORMED_REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n",
    b"NOT HTTP AT ALL\r\n\r\n",
    b"POST /v1/decisions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
]


@pytest.mark.parametrize("data", MALFORMED_REQUESTS)
def test_malformed_http_is_a_problem_document(server: Server, data: bytes) -> None:
    """SPEC §11: errors are RFC 9457 problem documents — uvicorn's own 400 for a request
    it cannot parse too (pricecalc/service/protocols.py), and the connection is closed."""
    answer = _raw_exchange(server.port, data)
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "HTTP/1.1 400 Bad Request"
    split_lines = (line.partition(":") for line in lines[1:])
    fields = {name.lower(): value.strip() for name, _, value in split_lines}
    assert fields["content-type"] == "application/problem+json"
    assert fields["connection"] == "close"
    assert int(fields["content-length"]) == len(body)
    assert json.loads(body) == {
        "type": "https://example.invalid/pricecalc/problems/bad-request",
        "title": "The request could not be read",
        "status": 400,
        "detail": "the request is not valid HTTP/1.1 (uvicorn could not parse it)",
    }
    assert server.decide("after-malformed").status_code == 201  # the server goes on
