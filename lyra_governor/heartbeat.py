"""The governor's heartbeat and the housekeeping that rides on it.

A strategy calls `Governor.heartbeat()` every tick; the store hears from this bot every
`HEARTBEAT_EVERY_S` of the governor's clock (so a silent bot's reservations can be told apart
from a live one's), and every `HOUSEKEEPING_EVERY` beats the sweep of silent bots and the WAL
checkpoint run. The first beat after a start takes back this bot's orphaned reservations.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

from lyra_governor.config import HEARTBEAT_INTERVAL_S
from lyra_governor.order_events import OrderEvents
from lyra_governor.seat import Seat
from lyra_governor.store import STORE_ERRORS

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = HEARTBEAT_INTERVAL_S  # governor-clock seconds between heartbeat writes (config checks the timeout)
HOUSEKEEPING_EVERY = 4  # heartbeats between expiry sweeps and WAL checkpoints
_HOST = socket.gethostname()


@dataclass(eq=False)
class Heartbeat:
    """One governor's heartbeats: throttled, and never raising (a store error is logged)."""

    seat: Seat
    events: OrderEvents
    timeout_s: Callable[[], float]  # the current settings' heartbeat timeout
    check_loss_limits: Callable[[float], object]
    last: float = float("-inf")
    beats: int = 0

    def beat(self) -> None:
        now = self.seat.clock()
        if now - self.last < HEARTBEAT_EVERY_S:
            return
        self.last = now
        self.beats += 1
        store, bot_id = self.seat.store, self.seat.bot_id
        try:
            if self.beats == 1:  # back after a silence: its orphaned reservations are its own again
                store.reclaim_orphans(bot_id, bot_id, now)
            store.heartbeat(bot_id, now, _HOST, os.getpid())
            self.events.settle_in_doubt(now)
            if self.beats % HOUSEKEEPING_EVERY == 1:
                store.orphan_silent_bots(self.timeout_s(), now)
                store.checkpoint()
            self.check_loss_limits(now)
        except STORE_ERRORS as exc:
            log.error("heartbeat failed: %s", exc)
