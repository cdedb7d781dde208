"""One bot's orders as its governor tracks them, and the activity tally.

`BotOrders` is the in-memory view of this bot's own open reservations (per exchange, for the
open-orders limit), its net position per market (read from its fills once, then kept up to
date by the fills this governor records), what each mandate has been used for, and the
order-rate windows. The store stays the authority: everything here can be rebuilt from it.
`Tally` counts outcomes and keeps the recent denials and failures the council is told about.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from lyra_governor import risk

MarketKey = tuple[str, str, str]  # (book, exchange, trading pair)
TALLY_HORIZON_S = 300.0  # the council's error and reject rates look this far back
_NONE_USED = Decimal(0)  # `mandate_used`'s default, not a Decimal built on every call


class BotOrders:
    def __init__(self, position_of: Callable[[MarketKey], Decimal]) -> None:
        self._position_of = position_of
        self._open: dict[str, set[str]] = {}  # exchange -> open reservation ids
        self._exchange_of: dict[str, str] = {}
        self._positions: dict[MarketKey, Decimal] = {}
        self._mandate_used: dict[str, Decimal] = {}
        self._rates: dict[str, risk.RateWindow] = {}
        self._closes: dict[str, tuple[MarketKey, str, Decimal]] = {}  # open reduce-only: key, side, left

    def adopt(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """This bot's open reservations found in the store at start (`Ledger.open_reservations`)."""
        for row in rows:
            self.opened(row["reservation_id"], row["exchange"])
            if row["reduce_only"]:  # a resting close: later closes are judged net of it
                key = (row["book"], row["exchange"], row["trading_pair"])
                left = Decimal(row["amount"]) - Decimal(row["filled_amount"])
                self.close_opened(row["reservation_id"], key, row["side"], left)

    def placed(self, reservation_id: str, key: MarketKey, side: str, amount: Decimal, reduce_only: bool,
               now: float, mandate_id: str | None, notional_usd: Decimal) -> None:  # fmt: skip
        """An allowed order: counted in the rate window, open, a resting close if it is one,
        and against its mandate."""
        self.rate_window(key[1]).add(now)
        self.opened(reservation_id, key[1])
        if reduce_only:
            self.close_opened(reservation_id, key, side, amount)
        if mandate_id is not None:
            self.use_mandate(mandate_id, notional_usd)

    def opened(self, reservation_id: str, exchange: str) -> None:
        self._open.setdefault(exchange, set()).add(reservation_id)
        self._exchange_of[reservation_id] = exchange

    def close_opened(self, reservation_id: str, key: MarketKey, side: str, amount: Decimal) -> None:
        """A reduce-only order is resting: it counts against what later closes may close."""
        self._closes[reservation_id] = (key, side, amount)

    def close_cancelling(self, reservation_id: str) -> None:
        """Its cancel was requested: it no longer counts against later closes."""
        self._closes.pop(reservation_id, None)

    def close_filled(self, reservation_id: str, amount: Decimal) -> None:
        found = self._closes.get(reservation_id)
        if found is not None:
            self._closes[reservation_id] = (found[0], found[1], max(Decimal(0), found[2] - amount))

    def resting_closes(self, key: MarketKey, side: str) -> Decimal:
        """What this bot's resting reduce-only orders on one market and side still have to fill."""
        return sum((left for k, s, left in self._closes.values() if k == key and s == side), Decimal(0))

    def closed(self, reservation_id: str) -> None:
        self._closes.pop(reservation_id, None)
        exchange = self._exchange_of.pop(reservation_id, None)
        if exchange is not None:
            self._open.get(exchange, set()).discard(reservation_id)

    def exchange_of(self, reservation_id: str) -> str | None:
        """The exchange of one of this bot's open reservations (None once it ended)."""
        return self._exchange_of.get(reservation_id)

    def open_count(self, exchange: str) -> int:
        return len(self._open.get(exchange, ()))

    def position(self, key: MarketKey) -> Decimal:
        """Net base amount this bot holds on one market (bought +, sold -)."""
        if key not in self._positions:
            self._positions[key] = self._position_of(key)
        return self._positions[key]

    def filled(self, key: MarketKey, signed_amount: Decimal) -> None:
        if key in self._positions:
            self._positions[key] += signed_amount

    def mandate_used(self, mandate_id: str) -> Decimal:
        return self._mandate_used.get(mandate_id, _NONE_USED)

    def use_mandate(self, mandate_id: str, notional_usd: Decimal) -> None:
        self._mandate_used[mandate_id] = self.mandate_used(mandate_id) + notional_usd

    def rate_window(self, exchange: str) -> risk.RateWindow:
        window = self._rates.get(exchange)  # not `setdefault`: it built a window (and a deque) every call
        if window is None:
            window = self._rates[exchange] = risk.RateWindow()
        return window


class Tally:
    """Counts of outcomes (``ALLOWED``, ``PENDING``, each denial code) and recent activity."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._decisions: deque[float] = deque(maxlen=200)
        self._denials: deque[float] = deque(maxlen=200)
        self._failures: deque[float] = deque(maxlen=200)

    def count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def decided(self, now: float) -> None:
        self._decisions.append(now)

    def denied(self, now: float) -> None:
        self._denials.append(now)

    def failed(self, now: float) -> None:
        self._failures.append(now)

    def recent(self, now: float) -> tuple[int, int, int]:
        """(decisions, failures, denials) over the last `TALLY_HORIZON_S`."""
        horizon = now - TALLY_HORIZON_S
        return (
            sum(1 for t in self._decisions if t >= horizon),
            sum(1 for t in self._failures if t >= horizon),
            sum(1 for t in self._denials if t >= horizon),
        )
