"""Duplicate-order prevention (SEC 15c3-5): the same bot, market, side, price and amount
within a short window, while the first is still live, is a double send, not a new decision.
(Re-sending an order the exchange refused or that was cancelled is a retry: the rejection
storm breaker watches those.)"""

from __future__ import annotations

from decimal import Decimal

from lyra_governor.breakers import Action, Trip
from lyra_governor.models import DenialCode

OrderKey = tuple[str, str, str, Decimal | None, Decimal]  # connector, pair, side, price, amount
# How `RecentOrders` keys an order (`BreakerBoard.order_key`): a finite price and amount as their
# exact fractions (`Decimal.as_integer_ratio`: equal exactly when the Decimals are equal, as the
# Decimals' own keys were), not the Decimals: a Decimal's first hash costs ~6.6k instructions
# with a negative exponent (0.0001: a modular power), its fraction ~2.2k and a cheap hash.
Exact = tuple[int, int] | Decimal
LookupKey = tuple[str, str, str, Exact | None, Exact]


class RecentOrders:
    """The live orders this bot was allowed in the last `window_s` seconds, by `LookupKey`."""

    __slots__ = ("_keys", "_seen")

    def __init__(self) -> None:
        self._seen: dict[LookupKey, tuple[float, str]] = {}
        self._keys: dict[str, LookupKey] = {}  # reservation -> its key

    def last(self, key: LookupKey) -> float | None:
        seen = self._seen.get(key)
        return seen[0] if seen is not None else None

    def add(self, key: LookupKey, now: float, window_s: float, reservation_id: str) -> None:
        seen = self._seen
        seen[key] = (now, reservation_id)
        self._keys[reservation_id] = key
        if len(seen) > 256:  # bounded: forget what is older than the window
            for old in [k for k, (t, _) in seen.items() if t <= now - window_s]:
                self._keys.pop(seen.pop(old)[1], None)

    def closed(self, reservation_id: str) -> None:
        """The order ended (cancelled, failed, filled): the same order again is no duplicate."""
        key = self._keys.pop(reservation_id, None)
        if key is not None and self._seen.get(key, (0.0, ""))[1] == reservation_id:
            del self._seen[key]


def check_duplicate(key: OrderKey, last_allowed: float | None, now: float, window_s: float) -> Trip | None:
    """Pure: a trip when the identical order was allowed less than `window_s` seconds ago."""
    if last_allowed is None or now - last_allowed >= window_s:
        return None
    connector, pair, side, price, amount = key
    return Trip(
        DenialCode.DUPLICATE_ORDER,
        Action.DENY,
        f"{connector}:{pair}",
        f"the same {side.lower()} of {amount} {pair} at {price if price is not None else 'market'} was allowed "
        f"{now - last_allowed:.2f} s ago (duplicate window {window_s:g} s); change the order or wait",
    )
