"""A time budget for every store call on the order path: `review` never waits on the network.

Why it is built this way:
- The database's own timeouts bound what the database sees: SQLite's ``busy_timeout`` (a write
  lock held by another process) and PostgreSQL's ``lock_timeout``/``statement_timeout``. They
  cannot bound what the database never sees: a PostgreSQL whose packets are dropped (a
  blackhole) leaves the driver waiting for an answer that does not come, and TCP keepalives
  or ``tcp_user_timeout`` notice that only after seconds, or never when a proxy acknowledges.
- So a watchdog thread (one per process) bounds the call from outside: `Watchdog.guard` arms
  a deadline around a call; if the call is still running when it passes, the watchdog makes
  it fail at once (PostgreSQL: the connection's socket is shut down; SQLite: the connection is
  interrupted). The caller drops that connection and the governor denies the order.
- Arming and disarming are a dict update under an uncontended lock (well under a microsecond);
  the watchdog sleeps until the earliest deadline (it does not poll: see `Watchdog`), so a
  call overruns its deadline by the thread's wake-up latency.
- Connecting to PostgreSQL cannot be bounded below 2 s (libpq's minimum ``connect_timeout``), so
  the order path never connects inline: after a lost connection `Reconnector` connects in the
  background while reviews are denied at once with STORE_UNAVAILABLE.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from lyra_governor.errors import StoreUnavailable

TICK_S = 0.01
DEFAULT_BUDGET_MS = 200  # with one tick and the review's own work, a review stays under 250 ms
# Order events (fills, cancels) wait longer: they are facts to record, not decisions to make, and
# a fill is never dropped because another bot held the write lock for a moment.
EVENT_BUDGET_MS = 2000


class StoreBusy(StoreUnavailable):
    """Another writer held the store's write lock for longer than the budget."""


class BudgetExceeded(StoreUnavailable):
    """The store did not answer within the budget (the watchdog cut the call short)."""


class MarketMovedOn(Exception):
    """The market data became too old while the store's write lock was waited for."""


class Watchdog:
    """One daemon thread that cuts short the calls whose deadline has passed.

    Why it sleeps until a deadline instead of polling: a thread that wakes on a fixed tick
    (it woke every 10 ms) takes the GIL and the core from the order path 100 times a second
    whether or not anything is due; at 3,000 reviews a second that lands inside a few percent
    of them, which is the p99 (issue 14). So the thread looks at the armed calls, cuts those
    due, and sleeps until the earliest armed deadline, or, with none armed, for the shortest
    budget armed so far (`_idle_s`): a call armed meanwhile with at least that budget is due
    no earlier than that wake. Only a call due before the planned wake (a shorter budget than
    any before, or one armed while a longer one was the earliest) wakes the thread early.
    A call is thus cut at its deadline plus the thread's wake-up latency (no tick quantum).
    """

    def __init__(self, tick_s: float = TICK_S) -> None:
        self.tick_s = tick_s  # the shortest sleep with nothing armed (a floor for `_idle_s`)
        self._lock = threading.Lock()
        self._armed: dict[int, tuple[float, Callable[[], None]]] = {}
        self._fired: set[int] = set()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._wake_at = math.inf  # when the thread looks next (monotonic); guarded by _lock
        self._idle_s = math.inf  # the shortest budget armed so far
        self.wakes = 0  # how often the thread looked (tests check it does not poll)

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="lyra-store-watchdog", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                due = [(token, cut) for token, (deadline, cut) in self._armed.items() if deadline <= now]
                for token, _ in due:
                    del self._armed[token]
                    self._fired.add(token)
                earliest = min((deadline for deadline, _ in self._armed.values()), default=math.inf)
                self._wake_at = min(earliest, now + max(self._idle_s, self.tick_s))
                self._wake.clear()  # under the lock: a `guard` that sets it after this is not lost
                wait = self._wake_at - now
            for _, cut in due:
                with contextlib.suppress(Exception):  # the call ended meanwhile: nothing to cut
                    cut()
            self._wake.wait(None if wait == math.inf else max(0.0, wait))
            self.wakes += 1

    def guard(self, budget_s: float, cut: Callable[[], None]) -> Guard:
        """Run the block with `cut` called if it is still running after `budget_s`; the block
        gets a function telling whether the watchdog fired (``with guard(...) as fired:``)."""
        return Guard(self, budget_s, cut)

    def _arm(self, budget_s: float, cut: Callable[[], None]) -> int:
        token = next(self._ids)
        deadline = time.monotonic() + budget_s
        with self._lock:
            if self._thread is None:
                self._start()
            self._armed[token] = (deadline, cut)
            self._idle_s = min(self._idle_s, budget_s)
            if deadline < self._wake_at:  # due before the thread looks: wake it to plan again
                self._wake_at = deadline
                self._wake.set()
        return token

    def _disarm(self, token: int) -> None:
        with self._lock:
            self._armed.pop(token, None)
            self._fired.discard(token)


class Guard:
    """`Watchdog.guard`'s context manager (a class: a generator-based one costs more per call)."""

    __slots__ = ("_budget_s", "_cut", "_dog", "_token")

    def __init__(self, dog: Watchdog, budget_s: float, cut: Callable[[], None]) -> None:
        self._dog, self._budget_s, self._cut, self._token = dog, budget_s, cut, 0

    def __enter__(self) -> Callable[[], bool]:
        self._token = self._dog._arm(self._budget_s, self._cut)
        return self.fired

    def fired(self) -> bool:
        return self._token in self._dog._fired

    def __exit__(self, *_exc: object) -> None:
        self._dog._disarm(self._token)


WATCHDOG = Watchdog()


def cut_for(raw: Any, sqlite: bool) -> Callable[[], None]:
    """How to make a blocked call on the DBAPI connection `raw` fail at once."""
    driver = getattr(raw, "driver_connection", raw)
    if sqlite:
        return driver.interrupt  # type: ignore[no-any-return]
    fd = int(driver.pgconn.socket)

    def shut() -> None:
        dup = socket.socket(fileno=os.dup(fd))
        try:
            dup.shutdown(socket.SHUT_RDWR)
        finally:
            dup.close()

    return shut


def lock_wait_ms(budget_ms: int) -> int:
    """How long a write lock is waited for: three quarters of the budget, so the database's own
    lock timeout (reported STORE_BUSY) ends the wait before the watchdog's deadline does."""
    return max(1, int(budget_ms * 0.75))


def pg_session_sql(budget_ms: int) -> list[str]:
    """Session settings of the order path's PostgreSQL connection (see `lock_wait_ms`)."""
    return [
        f"SET lock_timeout = {lock_wait_ms(budget_ms)}",
        f"SET statement_timeout = {budget_ms}",
        f"SET idle_in_transaction_session_timeout = {max(1000, budget_ms * 20)}",
    ]


PG_CONNECT_ARGS: dict[str, Any] = {
    # bounded connects and dead-peer detection for every PostgreSQL connection (CLI included)
    "connect_timeout": 2,  # libpq's minimum; the order path connects in the background anyway
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 1,
    "keepalives_count": 3,
    "tcp_user_timeout": 3000,
}


def is_lock_timeout(exc: BaseException) -> bool:
    """SQLite's 'database is locked' / PostgreSQL's lock_timeout (55P03)."""
    orig = getattr(exc, "orig", exc)
    text = str(orig).lower()
    return (
        "database is locked" in text
        or "lock timeout" in text
        or getattr(orig, "sqlstate", None) == "55P03"
        or type(orig).__name__ == "LockNotAvailable"
    )


class Reconnector:
    """Connects in the background (PostgreSQL) so that the order path never waits for it."""

    def __init__(self, connect: Callable[[], Any], install: Callable[[Any], None]) -> None:
        self._connect = connect
        self._install = install
        self._thread: threading.Thread | None = None
        self.last_error = ""

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._thread = threading.Thread(target=self._run, name="lyra-store-reconnect", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            raw = self._connect()
        except Exception as exc:
            self.last_error = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else repr(exc)
            return
        self._install(raw)


class WalCheckpointer:
    """Keeps a SQLite store's WAL small, off the order path, on its own connection.

    Every `every_s` (a tenth of a second) a PASSIVE checkpoint copies the WAL into the database
    file without waiting for anyone. That alone does not bound the file: the WAL starts over
    only when a writer finds it completely copied and no reader inside it, which never happens
    while bots commit continuously. So once the WAL holds more than `restart_bytes`, a RESTART
    checkpoint (little is left to copy by then) starts it over and `journal_size_limit` cuts
    the file back; it waits at most `wait_ms` (bots wait that long at most) and otherwise gives
    up until the next round.

    A reader's snapshot pins the WAL: while readers overlap (16 clients scraping, each read
    taking 150 ms), a 100 ms RESTART gave up every round and the WAL grew by everything written
    (tests/e2e/failure/test_wal_bound.py: 118.6 MB; bench/store_readers.py saw 69.7 MB). So past
    `urgent_bytes` a TRUNCATE checkpoint waits up to `urgent_wait_ms`: new writers wait
    meanwhile (they may be denied STORE_BUSY, fail-closed), new readers read the database file
    (the WAL is all copied), the readers inside finish, and the WAL is cut to nothing. That
    happens only while reads pin the WAL.

    What it does not do yet (issue 17, measured): it does not bound the file. The TRUNCATE must
    win SQLite's write lock, which is not fair, from writers committing back to back; with two
    writers at 128 commits/s each and readers always inside, some runs on an idle machine never
    started the WAL over (240.5 MB against the 64 MB goal, `store.WAL_GOAL_BYTES`;
    tests/e2e/failure/test_wal_bound.py is xfail for it). A bound needs the writer to enforce
    it. And a PASSIVE round every tenth of a second costs the order path: with this thread held
    off, bench/governor_review.py's p99 fell from 1,717 us to 533 us on an idle machine."""

    def __init__(
        self,
        connect: Callable[[], Any],
        every_s: float = 0.1,
        restart_bytes: int = 8 * 2**20,
        wait_ms: int = 100,
        urgent_bytes: int = 24 * 2**20,
        urgent_wait_ms: int = 500,
    ) -> None:
        self._connect = connect
        self.every_s = every_s
        self.restart_bytes = restart_bytes
        self.wait_ms = wait_ms
        self.urgent_bytes = urgent_bytes
        self.urgent_wait_ms = urgent_wait_ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lyra-wal-checkpoint", daemon=True)
        self.runs = 0
        self.truncated = 0
        self.urgent = 0

    def start(self) -> WalCheckpointer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _round(self, cur: Any, page_size: int) -> None:
        cur.execute("PRAGMA wal_checkpoint(PASSIVE)")
        _busy, frames, _done = cur.fetchone()
        self.runs += 1
        held = frames * page_size
        if held > self.urgent_bytes:
            self.urgent += 1
            cur.execute(f"PRAGMA busy_timeout={int(self.urgent_wait_ms)}")
            try:
                cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                busy, _frames, _done = cur.fetchone()
            finally:
                cur.execute(f"PRAGMA busy_timeout={int(self.wait_ms)}")
            self.truncated += int(not busy)
        elif held > self.restart_bytes:
            cur.execute("PRAGMA wal_checkpoint(RESTART)")
            busy, _frames, _done = cur.fetchone()
            self.truncated += int(not busy)

    def _run(self) -> None:
        raw: Any = None
        page_size = 4096
        while not self._stop.wait(self.every_s):
            try:
                if raw is None:
                    raw = self._connect()
                    cur = raw.cursor()
                    cur.execute(f"PRAGMA busy_timeout={int(self.wait_ms)}")
                    cur.execute("PRAGMA page_size")
                    page_size = int(cur.fetchone()[0])
                    cur.close()
                cur = raw.cursor()
                self._round(cur, page_size)
                cur.close()
            except Exception:  # a busy or vanished store: try again on the next round
                with contextlib.suppress(Exception):
                    raw.close()
                raw = None
        with contextlib.suppress(Exception):
            raw.close()


_SHARED: dict[str, list[Any]] = {}  # path -> [checkpointer, users]
_SHARED_LOCK = threading.Lock()


def acquire_checkpointer(path: str | None) -> str | None:
    """The process's one WAL checkpointer for the SQLite file at `path` (started on first use,
    on its own sqlite3 connection outside any pool); returns the key to `release_checkpointer`."""
    if not path or path == ":memory:":
        return None
    import sqlite3

    with _SHARED_LOCK:
        entry = _SHARED.get(path)
        if entry is None:

            def connect() -> Any:
                return sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=1.0)

            entry = _SHARED[path] = [WalCheckpointer(connect).start(), 0]
        entry[1] += 1
    return path


def checkpointer_of(key: str | None) -> WalCheckpointer | None:
    """The running checkpointer behind `key` (its counters say how often it started the WAL over)."""
    with _SHARED_LOCK:
        entry = _SHARED.get(key) if key else None
    return entry[0] if entry else None


def release_checkpointer(key: str | None) -> None:
    if key is None:
        return
    with _SHARED_LOCK:
        entry = _SHARED.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _SHARED[key]
    entry[0].stop()
