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
- Arming and disarming are a dict update each (no lock but for a call due before the thread's
  planned wake); the watchdog sleeps until the earliest deadline (it does not poll: see
  `Watchdog`), so a call overruns its deadline by the thread's wake-up latency.
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
import sqlite3
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

    Why arming takes no lock: the order path arms and disarms once per store call, and a lock
    taken twice around them cost more than the rest (~10k instructions a call, ~2.5 us on this
    machine). A call due no earlier than the thread's planned wake (the order path's own, once
    its budget is known) is one dict store under the GIL (`arm`), its end one dict pop
    (`disarm`): the thread reads a copy of the armed calls (`dict.copy`, one step under the
    GIL) and plans from it. A call armed just after the thread took its copy is due no earlier
    than the wake it plans (at most `_idle_s` after its clock read, and that budget is at least
    `_idle_s`), and is in the next copy; only a call due sooner takes the lock and wakes the
    thread to plan again, as every call did before. A call the thread finds due is cut only
    if it was still armed when the thread took it out (`dict.pop`): one that ended meanwhile
    is not, and `_fired` keeps no token of it.
    """

    def __init__(self, tick_s: float = TICK_S) -> None:
        self.tick_s = tick_s  # the shortest sleep with nothing armed (a floor for `_idle_s`)
        self._lock = threading.Lock()  # the thread's planning, and a call that must wake it
        self._armed: dict[int, tuple[float, Callable[[], None]]] = {}
        self._fired: set[int] = set()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._wake_at = math.inf  # when the thread looks next (monotonic); written under _lock
        self._idle_s = math.inf  # the shortest budget armed so far; written under _lock
        self.wakes = 0  # how often the thread looked (tests check it does not poll)

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="lyra-store-watchdog", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            due: list[Callable[[], None]] = []
            with self._lock:
                now = time.monotonic()
                earliest = math.inf
                for token, (deadline, cut) in self._armed.copy().items():  # arm/disarm take no lock
                    if deadline > now:
                        earliest = min(earliest, deadline)
                        continue
                    self._fired.add(token)  # before the pop: a disarm after it discards the token
                    if self._armed.pop(token, None) is not None:
                        due.append(cut)
                    else:  # it ended meanwhile: nothing to cut
                        self._fired.discard(token)
                self._wake_at = min(earliest, now + max(self._idle_s, self.tick_s))
                self._wake.clear()  # under the lock: a `_plan` that sets it after this is not lost
                wait = self._wake_at - now
            for cut in due:
                with contextlib.suppress(Exception):  # the call ended meanwhile: nothing to cut
                    cut()
            self._wake.wait(None if wait == math.inf else max(0.0, wait))
            self.wakes += 1

    def guard(self, budget_s: float, cut: Callable[[], None]) -> Guard:
        """Run the block with `cut` called if it is still running after `budget_s`; the block
        gets a function telling whether the watchdog fired (``with guard(...) as fired:``)."""
        return Guard(self, budget_s, cut)

    def arm(self, budget_s: float, cut: Callable[[], None]) -> int:
        """`guard` without its object: a token, to `disarm` when the call is over (the store's
        own context manager, `order_store._Call`, arms one on every store call). No lock unless
        the call is due before the thread's planned wake (see the class docstring)."""
        token = next(self._ids)
        deadline = time.monotonic() + budget_s
        self._armed[token] = (deadline, cut)
        if deadline < self._wake_at or budget_s < self._idle_s:
            self._plan(deadline, budget_s)
        return token

    def _plan(self, deadline: float, budget_s: float) -> None:
        """A call due before the thread looks (or the first call, or a shorter budget than any
        before): the thread is started or woken to plan again."""
        with self._lock:
            if self._thread is None:
                self._start()
            self._idle_s = min(self._idle_s, budget_s)
            if deadline < self._wake_at:  # due before the thread looks: wake it to plan again
                self._wake_at = deadline
                self._wake.set()

    def has_fired(self, token: int) -> bool:
        return token in self._fired

    def disarm(self, token: int) -> None:
        self._armed.pop(token, None)
        if self._fired:
            self._fired.discard(token)


class Guard:
    """`Watchdog.guard`'s context manager (a class: a generator-based one costs more per call)."""

    __slots__ = ("_budget_s", "_cut", "_dog", "_token")

    def __init__(self, dog: Watchdog, budget_s: float, cut: Callable[[], None]) -> None:
        self._dog, self._budget_s, self._cut, self._token = dog, budget_s, cut, 0

    def __enter__(self) -> Callable[[], bool]:
        self._token = self._dog.arm(self._budget_s, self._cut)
        return self.fired

    def fired(self) -> bool:
        return self._token in self._dog._fired

    def __exit__(self, *_exc: object) -> None:
        self._dog.disarm(self._token)


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


LOCK_POLL_S = 0.0002  # how often a waiting writer tries SQLite's write lock again


def begin_immediate(cur: Any, wait_s: float) -> None:
    """SQLite's write lock (BEGIN IMMEDIATE) on a connection whose busy_timeout is 0, tried again
    every `LOCK_POLL_S` until `wait_s` has passed; then SQLite's 'database is locked' is raised
    (`is_lock_timeout`: STORE_BUSY). Why not busy_timeout: SQLite's own busy handler sleeps 1, 2,
    5, 10, 15, 20, 25 ... ms between tries, so a bot that finds another bot's decision (about
    0.2 ms) holding the lock sleeps up to 25 ms more. Measured with two bots on one store
    (bench/store_readers.py, load 3.5-4.8): review p99 19-40 ms with the busy handler, 9-17 ms
    polling. A try that finds the lock free costs one statement, as before (no clock read)."""
    deadline: float | None = None  # set by the first busy answer
    while True:
        try:
            cur.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not is_lock_timeout(exc):
                raise
            now = time.monotonic()
            if deadline is None:
                deadline = now + wait_s
            elif now >= deadline:
                raise
        time.sleep(LOCK_POLL_S)


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


class WalBound:
    """The bound on one SQLite file's WAL (`store.WAL_GOAL_BYTES`, 64 MB), kept by its writers.

    Why the writers and not a background thread: the WAL starts over only when it is completely
    copied into the database file and no reader holds a snapshot inside it, and a checkpoint
    that waits for that (RESTART, TRUNCATE) first needs the write lock and the checkpoint lock.
    SQLite's locks are not fair, and the checkpoint lock is not waited for at all: the old
    thread (a PASSIVE round every 0.1 s, RESTART past 8 MB, TRUNCATE past 24 MB) lost both to
    writers committing back to back (and to their own autocheckpoints) and in some idle-machine
    runs never started the WAL over (240.5 MB; tests/e2e/failure/test_wal_bound.py). Its rounds
    also cost the order path: review p99 1,717 us with them, 533 us without
    (bench/governor_review.py). So:

    - No Lyra connection checkpoints inside a commit (``wal_autocheckpoint=0`` everywhere).
    - After its commits the writer measures the WAL file (`committed`: one ``stat``; the file is
      what the goal bounds): after every ladder change (`always`), after every commit once past
      the soft bound, otherwise (reviews, heartbeats, order events) after every
      `measure_every`-th (16th) commit of the process's writers: a stat is ~10 us, over 100 us
      behind another connection's fsync, and 16 commits' staleness per writer process (a review
      adds 23 KB to the WAL on average, at most 45 KB; an order event 7-29 KB, at most 41 KB:
      measured) fit the hard bound's margin (an order event measured every time spent ~13 us
      of its ~300 us on the stat in a paper replay). ``journal_size_limit`` cuts a WAL that
      started over back to `store.WAL_SIZE_LIMIT` (16 MB) at its next commit, so a file above
      `soft_bytes` (24 MB) means that many bytes are in use.
    - Past `soft_bytes` the writer copies the WAL into the database file (PASSIVE: no lock
      taken, no reader waited for) when it is between decisions: after an order event's or a
      ladder change's commit, and on the heartbeat (`OrderStore.checkpoint`), never inside a
      review. None of its own writes can land during the copy, so with no reader inside, its
      next write finds the WAL all copied and starts it over by itself (a copy by another
      thread, concurrent with writes, seldom finishes between two of them: in
      bench/governor_review.py the thread ran 31 rounds in 3,000 reviews that way, 0 now).
    - Past `restart_bytes` (32 MB: copies did not get it started over, because a reader pinned
      it or writers never paused) the writer wakes this object's thread: a PASSIVE copy, then a
      RESTART, which holds the write lock (writers wait) while it copies what is left and waits
      at most `wait_ms` (50 ms) for the readers inside. At most one round every `every_s`, less
      often while RESTARTs fail (up to once a second); the thread exits after `idle_s` without
      a wake, so a store whose WAL starts over by itself never sees it run.
    - Past `hard_bytes` (48 MB) no Lyra writer adds to the WAL before it has started over
      (`make_room`). A review waits at most its lock wait for the thread's TRUNCATE (waiting up
      to `hard_wait_ms` for the readers) and is denied STORE_BUSY otherwise (fail closed); it
      never runs a copy itself, so its budget holds however much is left to copy. A fact (an
      order event, a ladder change) runs the TRUNCATE itself within its longer budget and is then
      written anyway (`overruns` counts it): a fill is never dropped for the bound. Since every
      writer has stopped, the readers that pinned the WAL finish and new ones read the database
      file: a TRUNCATE wins (several processes take turns on the checkpoint lock). The WAL can
      pass `hard_bytes` only by the transactions already under way and those facts: the 16 MB
      left below the goal.

    Readers must keep their snapshots short (a reader inside the WAL delays the TRUNCATE that
    every writer is waiting for): `store.read_tx` is one consistent read, not a session."""

    def __init__(
        self,
        db_path: str,
        soft_bytes: int = 24 * 2**20,
        restart_bytes: int = 32 * 2**20,
        hard_bytes: int = 48 * 2**20,
        wait_ms: int = 50,
        hard_wait_ms: int = 200,
        every_s: float = 0.1,
        idle_s: float = 5.0,
        measure_every: int = 16,
    ) -> None:
        self.db_path = db_path
        self.wal_path = db_path + "-wal"
        self.soft_bytes = soft_bytes
        self.restart_bytes = restart_bytes
        self.hard_bytes = hard_bytes
        self.wait_ms = wait_ms
        self.hard_wait_ms = hard_wait_ms
        self.every_s = every_s
        self.idle_s = idle_s
        self.measure_every = measure_every
        self.size = 0  # the WAL file's size at the last measure
        self._raw: Any = None  # this object's own connection, for its checkpoints (under `_lock`)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._last_round = float("-inf")
        self._last_copy = float("-inf")
        self._unmeasured = 0  # commits since the last measure
        self._pause = every_s  # between two rounds
        # what it did (read by tests and benchmarks)
        self.rounds = 0  # the thread's rounds (each a PASSIVE, perhaps a RESTART)
        self.truncated = 0  # times the WAL was started over (RESTART or TRUNCATE that succeeded)
        self.waited = 0  # writes that waited past the hard bound for the WAL to start over
        self.refused = 0  # reviews denied STORE_BUSY for it
        self.overruns = 0  # facts written past the hard bound (the WAL did not start over in time)
        self.all_copied = False  # the last checkpoint left every frame of the WAL copied (none busy)

    @property
    def over(self) -> bool:
        """Whether the last measure was past the hard bound (the next write makes room first)."""
        return self.size >= self.hard_bytes

    def measure(self) -> int:
        try:
            self.size = os.stat(self.wal_path).st_size
        except OSError:  # no WAL (yet, or truncated away by a checkpoint)
            self.size = 0
        return self.size

    def committed(self, between: bool = False, start_over: bool = True, always: bool = False) -> bool:
        """A writer committed (`always`: measured whatever the cadence). Past the soft bound a
        writer `between` its decisions (an order event, a ladder change: not a review) copies
        the WAL itself, at most every `every_s`:
        none of its own writes can land during the copy, so with no reader inside its next write
        starts the WAL over. Past `restart_bytes` the thread is woken (copies did not do it).
        Returns whether it copied and left the WAL all copied: with `start_over=False` the
        caller then starts it over on its own connection (see `copy`)."""
        if not always and self.size < self.soft_bytes:
            # a commit below the soft bound measures every `measure_every`-th time only: a stat costs ~10 us
            # and, behind another connection's fsync or ftruncate of the file, over 100 us
            # (p99's measure in bench/governor_review.py: ~200 us of review CPU p99). The
            # staleness is bounded: 16 commits (reviews or order events, at most 45 KB each,
            # measured) per writer process, ~6 MB for eight bots, inside the 16 MB between the
            # hard bound and the goal
            self._unmeasured += 1
            if self._unmeasured < self.measure_every:
                return False
        self._unmeasured = 0
        size = self.measure()
        if size < self.soft_bytes:
            return False
        if size >= self.restart_bytes:
            self.wake()
        elif between and time.monotonic() - self._last_copy >= self.every_s:
            self._last_copy = time.monotonic()
            return self.copy(start_over) and self.all_copied
        return False

    def wake(self) -> None:
        if self._wake.is_set() and self._thread is not None and self._thread.is_alive():
            return  # already asked (every commit past the bound asks)
        self._wake.set()
        if self._thread is None or not self._thread.is_alive():
            with self._thread_lock:
                if self._stop.is_set():
                    return
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="lyra-wal-checkpoint", daemon=True)
                    self._thread.start()

    def make_room(self, wait_s: float, fact: bool) -> None:
        """Before a write past the hard bound: wait at most `wait_s` for the WAL to start over.
        A fact (an order event, a ladder change) runs the TRUNCATE itself and is then written
        anyway; anything else (a review) leaves the checkpoint to the thread, so that no copy's
        I/O ever runs inside a review's budget, and raises `StoreBusy` if the WAL did not start
        over in time."""
        self.waited += 1
        deadline = time.monotonic() + wait_s
        while self.measure() >= self.hard_bytes:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if not fact:
                self.wake()
                time.sleep(min(left, 0.005))
                continue
            if not self._lock.acquire(timeout=left):
                break
            try:
                if self.measure() < self.hard_bytes:  # the thread or another writer did it
                    return
                # tries of at most `hard_wait_ms`: a reader joining an old snapshot's slot (SQLite has
                # four; a 17th concurrent reader shares one) can keep one try waiting for its whole
                # wait (measured: a 2 s TRUNCATE failed while a 200 ms one after it won)
                wait_ms = min(self.hard_wait_ms, int((deadline - time.monotonic()) * 1000))
                busy = self._checkpoint("TRUNCATE", max(1, wait_ms))
            finally:
                self._lock.release()
            if not busy:
                self.size = 0
                return
            time.sleep(0.005)  # another process checkpoints (its lock is not waited for): look again
        else:
            return
        if fact:
            self.overruns += 1
            return
        self.refused += 1
        raise StoreBusy(
            f"the store's WAL is past {self.hard_bytes / 2**20:g} MB and readers kept it from starting over "
            f"within {int(wait_s * 1000)} ms; no order is placed until it does"
        )

    def _checkpoint(self, mode: str, wait_ms: int, start_over: bool = False) -> bool:
        """One checkpoint on this object's connection (the caller holds `_lock`); True if busy.
        `start_over`: if it left the WAL all copied, this connection writes first (`_start_over`)."""
        try:
            if self._raw is None:
                self._raw = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False)
                self._raw.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")  # as every Lyra connection
            cur = self._raw.cursor()
            cur.execute(f"PRAGMA busy_timeout={int(wait_ms)}")
            cur.execute(f"PRAGMA wal_checkpoint({mode})")
            busy, frames, copied = cur.fetchone()
            cur.close()
            self.all_copied = not busy and frames > 0 and frames == copied
            if start_over and self.all_copied:
                self._start_over()
        except sqlite3.Error:  # a vanished or broken store: a new connection next time
            self.all_copied = False
            self._close()
            return True
        if not busy and mode in ("RESTART", "TRUNCATE"):
            self.truncated += 1
        return bool(busy)

    def _close(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            with contextlib.suppress(Exception):
                raw.close()

    def _start_over(self) -> None:
        """After a copy that left the WAL all copied: write nothing (the database header's
        user_version set to itself), so that this connection, not the next review, is the
        first writer of the WAL started over. That writer fsyncs the new WAL's header and cuts
        the file back to `WAL_SIZE_LIMIT`: measured, the first review after a copy took 0.8-5 ms
        (once 100 ms) against ~0.25 ms. If a writer or a reader is in the way (no wait), it
        does nothing: the next writer starts the WAL over, or a later copy does."""
        cur = self._raw.cursor()
        cur.execute("PRAGMA busy_timeout=0")
        try:
            cur.execute("BEGIN IMMEDIATE")
            try:
                version = int(cur.execute("PRAGMA user_version").fetchone()[0])
                cur.execute(f"PRAGMA user_version={version}")
                cur.execute("COMMIT")
            except sqlite3.Error:
                cur.execute("ROLLBACK")
                raise
        except sqlite3.Error:  # the write lock is held: that writer starts the WAL over
            pass
        finally:
            cur.close()

    def copy(self, start_over: bool = True) -> bool:
        """Copy the WAL into the database file (PASSIVE: waits for no lock and no reader), on
        this object's connection: the heartbeat's checkpoint (`OrderStore.checkpoint`), outside
        any review's budget (a large copy on a loaded machine takes longer than a review may).
        With no reader inside, the next writer starts the WAL over by itself. Skipped (False)
        while the thread is at it. `start_over=False`: this object does not write first into
        the WAL it left all copied (`all_copied`); the caller does, on its own connection
        (`OrderStore._start_over`: another connection's write makes SQLite drop the caller's
        whole page cache)."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self._checkpoint("PASSIVE", 0, start_over=start_over)
        finally:
            self._lock.release()
        return True

    def _round(self) -> None:
        self.rounds += 1
        with self._lock:
            size = self.measure()
            if size >= self.hard_bytes:
                # reviews are waiting (`make_room`), no Lyra writer adds to the WAL: the readers
                # inside finish and new ones read the database file, so a TRUNCATE wins
                self._checkpoint("TRUNCATE", self.hard_wait_ms)
                return
            if size < self.soft_bytes:
                return
            # the copy, without any lock (writers go on meanwhile): with no reader inside, the
            # next writer that finds it all copied starts the WAL over by itself
            self._checkpoint("PASSIVE", 0, start_over=True)
            if size < self.restart_bytes:
                return
            # still growing after copies: a reader pinned it, or writers never let a copy finish
            # between two of their transactions. RESTART holds the write lock (writers wait) while
            # it copies what is left and waits at most `wait_ms` for the readers inside.
            if self._checkpoint("RESTART", self.wait_ms, start_over=True):
                # the readers stay longer than `wait_ms`: each try held the writers up for nothing,
                # so try less often (up to once a second; past the hard bound the writers act)
                self._pause = min(1.0, self._pause * 2)
            else:
                self._pause = self.every_s

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._wake.wait(self.idle_s):
                break  # nothing asked for a while: the thread ends (`wake` starts a new one)
            self._wake.clear()
            if self._stop.is_set():
                break
            pause = self._last_round + self._pause - time.monotonic() if not self.over else 0.0
            if pause > 0 and self._stop.wait(pause):
                break
            self._last_round = time.monotonic()
            self._round()
        with self._lock:
            self._close()

    def stop(self) -> None:
        with self._thread_lock:
            self._stop.set()
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout=5)
        with self._lock:
            self._close()
        self._stop.clear()


WAL_SIZE_LIMIT = 16 * 2**20  # a WAL started over is cut back to this at its next commit (journal_size_limit)

_SHARED: dict[str, list[Any]] = {}  # path -> [bound, users of acquire_checkpointer]
_SHARED_LOCK = threading.Lock()


def wal_bound(path: str | None) -> WalBound | None:
    """The process's one `WalBound` for the SQLite file at `path` (None for no file): every
    writer of the file in this process (the order store, `store.write_tx`) shares it."""
    if not path or path == ":memory:":
        return None
    key = os.path.abspath(path)
    with _SHARED_LOCK:
        entry = _SHARED.get(key)
        if entry is None:
            entry = _SHARED[key] = [WalBound(key), 0]
    bound: WalBound = entry[0]
    return bound


def acquire_checkpointer(path: str | None) -> str | None:
    """A long-lived user of the file at `path` (a governor, `serve`): returns the key to
    `release_checkpointer`; when the last one releases it, the bound's thread stops."""
    bound = wal_bound(path)
    if bound is None:
        return None
    with _SHARED_LOCK:
        _SHARED[bound.db_path][1] += 1
    return bound.db_path


def checkpointer_of(key: str | None) -> WalBound | None:
    """The bound behind `key` (its counters say how often the WAL was started over)."""
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
    entry[0].stop()
