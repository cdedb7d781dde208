"""Real store faults for the review-budget tests: a TCP proxy on 127.0.0.1 that can stop
forwarding (a blackhole: the client's packets are accepted, nothing answers), a process that
holds SQLite's write lock, and a governor proposal stamped with the real clock."""

from __future__ import annotations

import contextlib
import itertools
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from lyra_governor.models import OrderProposal, Side


class BlackholeProxy:
    """Forwards 127.0.0.1:<port> to `upstream`; `blackhole()` stops forwarding in both
    directions (sockets stay open, bytes are left unread), `restore()` resumes."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._open = threading.Event()
        self._open.set()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def blackhole(self) -> None:
        self._open.clear()

    def restore(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._stop.set()
        self._open.set()
        for s in [self._listener, *self._sockets]:
            with contextlib.suppress(OSError):
                s.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._sockets.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self._open.wait()  # a blackholed proxy accepts connections but never forwards them
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        server.settimeout(None)
        self._sockets.append(server)
        for a, b in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                self._open.wait()
                src.settimeout(0.05)
                try:
                    data = src.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                while not self._open.is_set():  # blackholed between read and write: hold the bytes
                    time.sleep(0.01)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE lyra_bots SET pid = pid")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
print("released", flush=True)
"""


@contextlib.contextmanager
def sqlite_write_lock_held(path: str, seconds: float) -> Any:
    """Another process holds the SQLite store's write lock for `seconds` (or until the block ends)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, path, str(seconds)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    line = holder.stdout.readline()
    assert line.strip() == "locked", holder.stderr.read() if holder.stderr else line
    try:
        yield holder
    finally:
        holder.kill()
        holder.communicate(timeout=10)


_SIZES = itertools.count(1)


def proposal(bot_id: str, **overrides: Any) -> OrderProposal:
    fields: dict[str, Any] = {
        "proposal_id": f"p-{uuid.uuid4().hex[:10]}",
        "bot_id": bot_id,
        "connector": "binance_paper_trade",
        "trading_pair": "BTC-USDT",
        "side": Side.BUY,
        "amount": Decimal("0.0001") + Decimal(next(_SIZES)) * Decimal("0.0000001"),  # never a duplicate order
        "price": Decimal("60000"),
        "mid_price": Decimal("60010"),
        "mid_price_ts": time.time(),
    }
    fields.update(overrides)
    return OrderProposal(**fields)


def timed_reviews(governor: Any, bot_id: str, n: int) -> tuple[float, list[Any]]:
    """`n` reviews; the worst wall time in seconds and the decisions."""
    worst, decisions = 0.0, []
    for _ in range(n):
        p = proposal(bot_id)
        started = time.perf_counter()
        decisions.append(governor.review(p))
        worst = max(worst, time.perf_counter() - started)
    return worst, decisions


class PinnedSnapshot:
    """A reader thread holding one read snapshot inside a SQLite WAL until `leave()`: while it
    is inside, no writer can start the WAL over (what the WAL-bound tests need to provoke)."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._inside, self._leave = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        import sqlalchemy as sa

        from lyra_governor.store import read_tx

        with read_tx(self._engine) as conn:
            conn.execute(sa.text("SELECT count(*) FROM lyra_audit")).scalar_one()  # a snapshot in the WAL
            self._inside.set()
            self._leave.wait(10)

    def start(self) -> PinnedSnapshot:
        self._thread.start()
        assert self._inside.wait(10), "the reader never got its snapshot"
        return self

    def leave(self) -> None:
        self._leave.set()

    def join(self) -> None:
        self._thread.join(10)


class WriteLockInThread:
    """Another connection of this process holds the SQLite store's write lock until
    `release_after(seconds)` has passed (`join` waits for its COMMIT)."""

    def __init__(self, path: Path | str) -> None:
        self._held, self._release = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._hold, args=(str(path),), daemon=True)
        self._thread.start()
        assert self._held.wait(10), "the lock holder did not start"

    def _hold(self, path: str) -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        self._held.set()
        self._release.wait(10)
        other.execute("COMMIT")
        other.close()

    def release_after(self, seconds: float) -> None:
        threading.Timer(seconds, self._release.set).start()

    def join(self) -> None:
        self._release.set()
        self._thread.join(10)
