"""`lyra-governor serve` answers on one event loop (issue 17 point 5): clients that connect and
send nothing neither hold a thread each nor delay the others' answers, and what the loop
writes is HTTP that clients and Prometheus read."""

from __future__ import annotations

import gc
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from lyra_governor import audit
from lyra_governor.config import load_settings
from lyra_governor.ledger import Ledger
from lyra_governor.server import make_server
from tests.e2e.operator.conftest import Served, start_server, stop_server
from tests.e2e.operator.conftest import samples_of as samples

STALLED = 24


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count in /proc")


def _raw(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


@pytest.mark.timeout(120)
def test_stalled_clients_hold_no_thread_and_delay_no_answer(served: Served) -> None:
    assert httpx.get(f"{served.url}/metrics", timeout=10).status_code == 200  # the first answer is made
    host, port = served.url.removeprefix("http://").rsplit(":", 1)
    before = _threads(served.process.pid)
    stalled = [socket.create_connection((host, int(port)), timeout=10) for _ in range(STALLED)]
    try:
        for conn in stalled[: STALLED // 2]:
            conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # half a request, never finished
        time.sleep(0.5)  # the server has accepted them all
        started = time.perf_counter()
        for route in ("/metrics", "/forensic/status", "/healthz"):
            assert httpx.get(f"{served.url}{route}", timeout=10).status_code == 200, route
        took = time.perf_counter() - started
        during = _threads(served.process.pid)
    finally:
        for conn in stalled:
            conn.close()
    # a thread per connection (the ThreadingHTTPServer before) had 24 more here
    assert during < before + STALLED // 2, (before, during)
    assert took < 5.0


@pytest.mark.timeout(120)
def test_the_loop_speaks_http(served: Served) -> None:
    head = httpx.head(f"{served.url}/metrics", timeout=10)
    got = httpx.get(f"{served.url}/metrics", timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert got.headers["cache-control"] == "no-store" and int(got.headers["content-length"]) == len(got.content)
    assert httpx.get(f"{served.url}/forensic/status/?x=1", timeout=10).json()["phase"] == 1
    assert httpx.post(f"{served.url}/metrics", timeout=10).status_code == 501
    assert _raw(served.url, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.0 400 ")
    assert _raw(served.url, b"GET / HTTP/1.1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n").startswith(b"HTTP/1.0 431 ")
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: `make test` installs Debian's prometheus package as root")
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=got.content, capture_output=True, timeout=60, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.timeout(120)
def test_serving_freezes_what_lives_as_long_as_it_and_verifies_each_second(lyra_home: Path) -> None:
    """The audit chain's figures follow the head within a few seconds: at most 2 s of cache
    (`METRICS_CACHE_S`) plus the 1 s between two checks (`VERIFY_EVERY_S`; 5 s before, walked
    in one ~95 ms piece with two bots trading); and serving freezes the objects made before it."""
    settings = load_settings(None, use_env=False, db_url=f"sqlite:///{lyra_home / 'lyra.db'}")
    writer = Ledger.open(settings)
    server = make_server(settings, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        for i in range(3):
            samples(server.metrics().decode())  # the server in use: its check was just made
            writer.audit_append("decision", {"status": "DENIED", "code": "HALTED", "n": i}, "bot-1")
            head = audit.head(writer.engine)[0]
            written = time.monotonic()
            while samples(server.metrics().decode())[("lyra_audit_records", ())] != head:
                assert time.monotonic() - written < 3.5, f"lyra_audit_records still behind {head}"
                time.sleep(0.05)
        assert gc.get_freeze_count() > 0
    finally:
        server.shutdown()
        server.server_close()
        server.ledger.close()
        writer.close()
        thread.join(timeout=10)


@pytest.mark.timeout(120)
def test_answers_are_paced_so_readers_cannot_take_the_bots_cores(lyra_home: Path) -> None:
    """At most `server.max_answers_per_s` answers a second, however many clients ask at once:
    16 readers asking as fast as they could took a core from the bots beside the server (their
    review p99 3.35x while the readers read, bench/store_readers.py). A client waiting its turn
    costs neither side CPU. On the old server there was no such setting (the server refused to
    start on it) and the ten answers came back at once."""
    rate, clients = 20, 10
    served = start_server(lyra_home, "--no-checkpoints", LYRA_SERVER__MAX_ANSWERS_PER_S=str(rate))
    try:
        assert httpx.get(f"{served.url}/metrics", timeout=10).status_code == 200  # the first answer is made
        time.sleep(1.0 / rate)  # its slot has passed
        codes: list[int] = []
        done: list[float] = []

        def ask() -> None:
            codes.append(httpx.get(f"{served.url}/metrics", timeout=30).status_code)
            done.append(time.perf_counter())

        started = time.perf_counter()
        askers = [threading.Thread(target=ask) for _ in range(clients)]
        for asker in askers:
            asker.start()
        for asker in askers:
            asker.join(timeout=60)
        assert codes == [200] * clients
        # one answer every 1/rate s: the last of ten at least nine slots after the first
        assert max(done) - started >= (clients - 1) / rate * 0.9, max(done) - started
    finally:
        stop_server(served)
