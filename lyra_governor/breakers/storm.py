"""Rejection/failure storm per bot and exchange: consecutive failures, or a failure rate over a
window with a minimum sample size (one failure among two orders must not stop anything)."""

from __future__ import annotations

from collections import deque

from lyra_governor.breakers import Action, Trip
from lyra_governor.models import DenialCode


class OutcomeTally:
    """What the exchange made of this bot's allowed orders on one exchange: each order counts
    once, as a failure (rejected or failed) or a success (acknowledged, filled or cancelled)."""

    __slots__ = ("_events", "consecutive_failures")

    def __init__(self) -> None:
        self._events: deque[tuple[float, bool]] = deque()
        self.consecutive_failures = 0

    def record(self, now: float, failed: bool) -> None:
        self._events.append((now, failed))
        self.consecutive_failures = self.consecutive_failures + 1 if failed else 0
        if len(self._events) > 10_000:
            self._events.popleft()

    def window(self, now: float, window_s: float) -> tuple[int, int]:
        """(failures, orders) decided within the last `window_s` seconds."""
        events = self._events
        while events and events[0][0] < now - window_s:
            events.popleft()
        return sum(1 for _, failed in events if failed), len(events)


def check_storm(
    scope: str,
    consecutive_failures: int,
    failures_in_window: int,
    orders_in_window: int,
    consecutive_max: int,
    rate_max: float,
    min_samples: int,
    window_s: float,
) -> Trip | None:
    """Pure: a trip when `consecutive_max` orders in a row failed, or when at least
    `min_samples` orders were decided in the window and a fraction >= `rate_max` failed."""
    if consecutive_failures >= consecutive_max:
        return Trip(
            DenialCode.BREAKER_REJECT_STORM,
            Action.BOT_REDUCE_ONLY,
            scope,
            f"{consecutive_failures} orders in a row were rejected or failed on {scope}; this bot is reduce-only "
            "there until the cool-down ends (check the exchange's error messages and the bot's parameters)",
        )
    if orders_in_window >= min_samples and failures_in_window >= rate_max * orders_in_window:
        return Trip(
            DenialCode.BREAKER_REJECT_STORM,
            Action.BOT_REDUCE_ONLY,
            scope,
            f"{failures_in_window} of the last {orders_in_window} orders on {scope} within {window_s:g} s were "
            f"rejected or failed (limit {rate_max:.0%}); this bot is reduce-only there until the cool-down ends",
        )
    return None
