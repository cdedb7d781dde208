"""The governor's heartbeat and the housekeeping that rides on it.

A strategy calls `Governor.heartbeat()` every tick; the store hears from this bot every
`HEARTBEAT_EVERY_S` of the governor's clock (so a silent bot's reservations can be told apart
from a live one's), and every `HOUSEKEEPING_EVERY` beats the sweep of silent bots and the WAL
checkpoint run. The first beat after a start takes back this bot's orphaned reservations.

Governors that share one store (a paper replay's: one connection for the process) write their
beats of one instant together (`BeatGroup`): each governor's beat is its own, stamped with its
own clock, but the rows of one instant wait for the first heartbeat call at a later instant (the
next tick) and go in one transaction, not one each. A beat is still written only for a bot that
called `heartbeat` itself (a silent bot's row ages as before and its reservations are orphaned
after the timeout); a sweep of silent bots first writes what is waiting if a waiting bot's last
written beat is past its cutoff (it never takes a live bot for a silent one); a bot's first beat
(its row created, its orphans reclaimed) is written at once. A crash loses at most the beats of
one instant: the safe side, those bots look older.
"""

from __future__ import annotations

import logging
import os
import socket
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from lyra_governor.config import HEARTBEAT_INTERVAL_S
from lyra_governor.order_events import OrderEvents
from lyra_governor.order_store import OrderStore
from lyra_governor.seat import Seat
from lyra_governor.store import STORE_ERRORS

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = HEARTBEAT_INTERVAL_S  # governor-clock seconds between heartbeat writes (config checks the timeout)
HOUSEKEEPING_EVERY = 4  # heartbeats between expiry sweeps and WAL checkpoints
_HOST = socket.gethostname()


class BeatGroup:
    """The beats waiting to be written, of the governors sharing one store (see the module
    docstring). With one member (a live bot: a store of its own) every beat is written at once."""

    _of: ClassVar[weakref.WeakKeyDictionary[OrderStore, BeatGroup]] = weakref.WeakKeyDictionary()

    def __init__(self, store: OrderStore) -> None:
        self.store = store
        self.members = 0
        self.at: float | None = None  # the instant of the beats waiting (None: none waiting)
        self.rows: list[tuple[str, float, str, int]] = []  # (bot id, beat, host, pid)
        self.written: dict[str, float] = {}  # bot id -> its last beat written (by this group)

    @classmethod
    def of(cls, store: OrderStore) -> BeatGroup:
        """The store's group, one member more."""
        group = cls._of.get(store)
        if group is None:
            group = cls._of[store] = cls(store)
        group.members += 1
        return group

    def leave(self) -> None:
        self.flush()
        self.members -= 1

    def beat(self, bot_id: str, now: float, host: str, pid: int) -> None:
        """This bot's beat at `now`: written at once alone, else kept with this instant's others."""
        if self.members <= 1:
            self.store.heartbeat(bot_id, now, host, pid)
            self.written[bot_id] = now
            return
        if self.at is not None and self.at != now:
            self.flush()
        self.at = now
        self.rows.append((bot_id, now, host, pid))

    def flush(self) -> None:
        """Write the beats waiting (one transaction). A store error is raised once, the beats
        dropped: those bots look a beat older, the safe side."""
        rows, self.rows, self.at = self.rows, [], None
        if rows:
            self.store.heartbeats(rows)
            self.written.update((bot_id, beat) for bot_id, beat, _host, _pid in rows)

    def before_sweep(self, cutoff: float) -> None:
        """Before a sweep of the bots last heard before `cutoff`: the beats waiting written if
        one of their bots' last written beat is that old (it would be taken for silent)."""
        written = self.written
        if any(written.get(bot_id, float("-inf")) < cutoff for bot_id, *_ in self.rows):
            self.flush()


@dataclass(eq=False)
class Heartbeat:
    """One governor's heartbeats: throttled, and never raising (a store error is logged)."""

    seat: Seat
    events: OrderEvents
    timeout_s: Callable[[], float]  # the current settings' heartbeat timeout
    check_loss_limits: Callable[[float], object]
    last: float = float("-inf")
    beats: int = 0
    group: BeatGroup = field(init=False)

    def __post_init__(self) -> None:
        self.group = BeatGroup.of(self.seat.store)

    def beat(self) -> None:
        now = self.seat.clock()
        group = self.group
        if group.at is not None and group.at != now:  # the beats of an earlier instant: written now
            try:
                group.flush()
            except STORE_ERRORS as exc:
                log.error("heartbeat failed: %s", exc)
        if now - self.last < HEARTBEAT_EVERY_S:
            return
        self.last = now
        self.beats += 1
        store, bot_id = self.seat.store, self.seat.bot_id
        try:
            if self.beats == 1:  # back after a silence: its orphaned reservations are its own again
                store.reclaim_orphans(bot_id, bot_id, now)
                store.heartbeat(bot_id, now, _HOST, os.getpid())  # its row at once (created on a first start)
                group.written[bot_id] = now
            else:
                group.beat(bot_id, now, _HOST, os.getpid())
            self.events.settle_in_doubt(now)
            if self.beats % HOUSEKEEPING_EVERY == 1:
                timeout = self.timeout_s()
                group.before_sweep(now - timeout)  # no live bot's beat still waiting is taken for silence
                store.orphan_silent_bots(timeout, now)
                store.checkpoint()
            self.check_loss_limits(now)
        except STORE_ERRORS as exc:
            log.error("heartbeat failed: %s", exc)

    def close(self) -> None:
        """The beats waiting written (a store error logged), this governor out of the group."""
        try:
            self.group.leave()
        except STORE_ERRORS as exc:
            log.error("heartbeat failed: %s", exc)
