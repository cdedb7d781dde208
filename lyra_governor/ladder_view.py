"""The ladder state as one governor sees it, cached between looks.

Every review reads the trading state and the phase, so the full read (`Ledger.state`: the ladder
row and every exchange's rung) is taken only when the store's raw ladder row differs from the
cache, and the row itself only every `refresh_s` of `clock`, and then only if the store's version
(`OrderStore.version_at`: SQLite's `PRAGMA data_version` and the connection's own commits) is
not the one the cache was read at: an unchanged store costs a look one compare. A halt written
by another process is therefore seen within `refresh_s`; one written here drops the cache at
once (`drop`).

The look a review would take is taken between reviews when it is due (`ahead`, on each market
fact): the review still looks itself whenever its cache is older than `refresh_s`, but then
seldom has to (the look, ~45 us warm and 100-200 us after 0.25 s away, was in ~0.6 % of the
reviews of bench/governor_review.py, most of its p99).

Governors sharing one store (a paper replay's) that look at the same instant of `clock` (its
simulated second) share one `PRAGMA data_version` (`OrderStore._cached`'s `at`): a halt written
elsewhere after it is seen by the next look, within `refresh_s` as before; a stop written from
here (`drop`) makes the next look, any governor's, read afresh at once.

A full read that finds the conditions changed (`changed`: trading not ACTIVE, or ACTIVE again
after a stop, or a phase or rung other than the last full read's) tells the governor
(`on_change`), which drops its council mandates: a mandate was granted for one phase's
threshold and caps and for trading that was ACTIVE, and a stop or promotion written by another
governor or process must end it here too, not only in the governor whose breaker tripped
(issue 14, hole 6).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from lyra_governor.ladder import LadderState
from lyra_governor.ledger import Ledger
from lyra_governor.models import TradingState
from lyra_governor.order_store import OrderStore
from lyra_governor.store import STORE_ERRORS

STATE_REFRESH_S = 0.25  # wall-clock: a halt written by another process is seen within this


class LadderView:
    """One governor's cached ladder state and this bot's own restriction (read with it)."""

    #: When the cache is checked: wall clock live; a replay sets its simulated one.
    clock: Callable[[], float] = time.monotonic
    refresh_s: float = STATE_REFRESH_S

    def __init__(self, ledger: Ledger, store: OrderStore, bot_id: str) -> None:
        self.ledger, self.store, self.bot_id = ledger, store, bot_id
        self.cached: LadderState | None = None
        self.read_at = -1.0  # on `clock`; -1 makes the next `state()` look again
        # the store's version (`OrderStore.version_at`) the cache and the restriction were read at:
        # while it is the store's, a look costs one compare, no read (None: read)
        self.version: tuple[int, int] | None = None
        self.bot_reduce_only: str | None = None  # this bot's own restriction (refreshed with the state)
        # told, with why, when a full read finds the conditions changed (`changed`): the governor
        # drops its mandates. The last full read is kept across `drop` to compare with.
        self.on_change: Callable[[str], object] | None = None
        self._last_read: LadderState | None = None

    def state(self, fresh: bool = False) -> LadderState:
        """The review path's read: the cache, checked against the store every `refresh_s`."""
        wall = self.clock()
        if fresh or self.cached is None or wall - self.read_at > self.refresh_s:
            return self._look(wall, fresh)
        return self.cached

    def ahead(self, wall: float | None = None) -> None:
        """Between reviews: the look the next review would take (its cache older than
        `refresh_s`, or `look_again`; with nothing cached, a new governor's or after `drop`, the
        full read), taken now so that the review does not wait for it. A store error is left to
        the review, which looks again itself and fails closed.

        Also when another governor on this store has looked at this very instant (`looked_at`):
        the look then costs no PRAGMA, and it keeps the governors' looks on the same instants
        (a fresh read shifts one governor's cadence; without this it would keep its own).

        `wall`: `clock()` as the caller has just read it (`Governor.on_tick`: one reading a tick)."""
        if wall is None:
            wall = self.clock()
        if (
            self.cached is None
            or wall - self.read_at > self.refresh_s
            or (wall != self.read_at and self.store.looked_at(wall))
        ):
            with contextlib.suppress(*STORE_ERRORS):
                self._look(wall, False)

    def _look(self, wall: float, fresh: bool) -> LadderState:
        cached = self.cached
        if fresh or cached is None:
            self.version = None  # the authoritative read: no version taken, the next look reads
            cached = self.cached = self._read()
            self.bot_reduce_only = self.store.bot_restriction(self.bot_id)
        else:
            # the version first (a commit after it makes the next look read), then, unless it is
            # the one the cache was read at: the raw row and this bot's restriction in one read,
            # the full read if the row moved
            version = self.store.version_at(wall)
            if version is None or version != self.version:
                row, self.bot_reduce_only = self.store.ladder_look(self.bot_id, wall)
                if not _matches(row, cached):
                    cached = self.cached = self._read()
            self.version = version
        self.read_at = wall
        return cached

    def _read(self) -> LadderState:
        """The full read (`Ledger.state`), compared with the last one (`changed`)."""
        state = self.ledger.state()
        before, self._last_read = self._last_read, state
        why = changed(before, state)
        if why is not None and self.on_change is not None:
            self.on_change(why)
        return state

    def now(self) -> LadderState:
        """The store's ladder state now, without the review path's rhythm (and without touching
        the cache): the cached state if the raw row still matches it, else the full read."""
        cached = self.cached
        if cached is not None:
            version = self.version
            if version is not None and self.store.version_at(self.clock()) == version:
                return cached  # nothing committed since the cache was read
            if self._unchanged(cached):
                return cached
        return self.ledger.state()

    def drop(self) -> None:
        """The store's trading state was changed from here: read it again on the next look (and
        the other governors on this store too, at this very instant: `forget_instant`)."""
        self.cached = None
        self.version = None
        self.store.forget_instant()

    def look_again(self) -> None:
        """This bot's restriction may have changed: re-read it on the next review."""
        self.read_at = -1.0
        self.version = None

    def _unchanged(self, cached: LadderState) -> bool:
        return _matches(self.store.ladder_row(self.clock()), cached)


def changed(before: LadderState | None, after: LadderState) -> str | None:
    """Why the conditions a council mandate was granted in no longer hold, or None: trading
    is not ACTIVE (a stop, a halt: whoever wrote it), or was not at the last full read (a
    resume: a question asked before the stop may have been answered during it), or the phase
    or a rung differs from the last full read's (a promotion or demotion: another threshold,
    other caps)."""
    if after.trading_state is not TradingState.ACTIVE:
        return f"trading is {after.trading_state.value}"
    if before is None:
        return None
    if before.trading_state is not TradingState.ACTIVE:
        return f"trading resumed after {before.trading_state.value}"
    if after.phase != before.phase:
        return f"the phase moved from {before.phase} to {after.phase}"
    if after.rungs != before.rungs:
        return "a phase-4 rung moved"
    return None


def _matches(row: tuple[int, str, str, dict[str, int]], cached: LadderState) -> bool:
    """Whether the store's raw ladder row is the one `cached` was read from."""
    return row == (cached.phase, cached.trading_state.value, cached.reason, cached.rungs)
