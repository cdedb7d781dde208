"""The counts the breakers read, kept by one governor (no I/O here: the governor feeds the
board from its events and the store's fill rows, and audits what the board returns). The loss
limits' books are the store's (`shared.SharedBooks`: one set for the governors sharing it)."""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal
from typing import Any

from lyra_governor.breakers import Action, Trip
from lyra_governor.breakers.duplicate import LookupKey, RecentOrders, check_duplicate
from lyra_governor.breakers.loss import TOTAL, BookMarks, check_loss
from lyra_governor.breakers.quantity import check_quantity
from lyra_governor.breakers.shared import SharedBooks
from lyra_governor.breakers.storm import OutcomeTally, check_storm
from lyra_governor.config import BreakerSettings
from lyra_governor.models import DenialCode, Order, TradingState

DECIDED_KEPT = 50_000  # reservations remembered as answered (a bot's last 50,000 orders)


class BreakerBoard:
    def __init__(self, settings: BreakerSettings, loss: SharedBooks | None = None) -> None:
        self.settings = settings
        self.loss = loss if loss is not None else SharedBooks()  # the loss limits' books, state and memo
        self.tallies: dict[str, OutcomeTally] = {}  # exchange -> this bot's order outcomes there
        self.blocked: dict[str, tuple[float, Trip]] = {}  # exchange -> (until, trip)
        self.recent = RecentOrders()
        self.books: dict[str, BookMarks] = self.loss.books  # the same dict
        self.trips: dict[str, int] = {}  # code -> trips by this governor
        # reservations whose outcome was counted, oldest first: past DECIDED_KEPT the oldest is
        # forgotten, never the lot (a clear made a duplicate of any recent answer count twice)
        self._decided: OrderedDict[str, None] = OrderedDict()
        self._last_key: tuple[Order, LookupKey] | None = None  # `pre_trade`'s, for `allowed`

    # --- per order ----------------------------------------------------------------------

    def pre_trade(self, p: Order, exchange: str, now: float) -> Trip | None:
        """Order-level breakers, cheapest first: quantity, this bot's storm block, duplicate
        (`p`: the review's copy of the proposal, `checks.Review.o`)."""
        cfg = self.settings
        pair = p.trading_pair
        trip = check_quantity(p.amount, cfg.max_amount(pair), pair)
        if trip is not None:
            return trip
        if p.reduce_only:
            # closes are bounded by the position they close, and two executors closing equal
            # fills at once are two closes, not a duplicate (nor blocked by this bot's storm)
            return None
        blocked = self.blocked.get(exchange)
        if blocked is not None:
            if now < blocked[0]:
                return blocked[1]
            del self.blocked[exchange]
            self.tallies.pop(exchange, None)  # the cool-down is over: count afresh
        key = self.order_key(p)
        self._last_key = (p, key)  # the same proposal's `allowed` takes it, not a second one
        last = self.recent.last(key)
        if last is None:
            return None
        shown = (p.connector, p.trading_pair, str(p.side), p.price, p.amount)
        return check_duplicate(shown, last, now, cfg.duplicate_window_s)

    @staticmethod
    def order_key(p: Order) -> LookupKey:
        """The order's `OrderKey`: its price and amount as exact fractions (`duplicate.LookupKey`), str(side):
        cheaper than `.value`."""
        price, amount = p.price, p.amount
        return (p.connector, p.trading_pair, str(p.side),
                price.as_integer_ratio() if price is not None and price.is_finite() else price,
                amount.as_integer_ratio() if amount.is_finite() else amount)  # fmt: skip

    def allowed(self, p: Order, now: float, reservation_id: str) -> None:
        last = self._last_key
        key = last[1] if last is not None and last[0] is p else self.order_key(p)
        self.recent.add(key, now, self.settings.duplicate_window_s, reservation_id)

    def closed(self, reservation_id: str) -> None:
        self.recent.closed(reservation_id)

    def outcome(self, reservation_id: str, exchange: str, failed: bool, now: float) -> Trip | None:
        """The exchange's answer to one allowed order (counted once per reservation)."""
        decided = self._decided
        if reservation_id in decided:
            return None
        decided[reservation_id] = None
        if len(decided) > DECIDED_KEPT:
            decided.popitem(last=False)
        cfg = self.settings
        tally = self.tallies.setdefault(exchange, OutcomeTally())
        tally.record(now, failed)
        if not failed or exchange in self.blocked:
            return None
        failures, orders = tally.window(now, cfg.storm_window_s)
        trip = check_storm(
            exchange, tally.consecutive_failures, failures, orders,
            cfg.storm_consecutive, cfg.storm_rate, cfg.storm_min_samples, cfg.storm_window_s,
        )  # fmt: skip
        if trip is not None:
            self.blocked[exchange] = (now + cfg.storm_cooldown_s, trip)
            self._count(trip)
        return trip

    def restore(self, record: dict[str, Any], until: float) -> None:
        """A trip this bot recorded before a restart (its audit payload), still in force."""
        if record.get("action") != Action.BOT_REDUCE_ONLY.value or not isinstance(record.get("scope"), str):
            return
        exchange = str(record["scope"])
        trip = Trip(DenialCode(str(record.get("code"))), Action.BOT_REDUCE_ONLY, exchange, str(record.get("message")))
        if until > self.blocked.get(exchange, (float("-inf"), trip))[0]:
            self.blocked[exchange] = (until, trip)

    # --- loss limits --------------------------------------------------------------------

    def book(self, name: str) -> BookMarks:
        marks = self.books.get(name)  # not setdefault: that builds a BookMarks on every call
        if marks is None:
            marks = self.books[name] = BookMarks()
        return marks

    def loss_trips(
        self,
        book: str,
        state: TradingState,
        now: float,
        total_cap_usd: Decimal,
        exchange_caps_usd: dict[str, Decimal],
        per_exchange: bool,
    ) -> list[Trip]:
        """Trips of the loss limits on `book` (none unless trading is ACTIVE: a stop already in
        force needs no second one). A resume seen since the last call re-bases the baselines."""
        marks, loss = self.book(book), self.loss
        resumed = loss.last_state is not None and loss.last_state is not TradingState.ACTIVE
        loss.last_state = state
        if state is not TradingState.ACTIVE:
            return []
        if resumed:
            marks.rebase()
        day = int(now // 86_400)
        if marks.day is None or day > marks.day:
            marks.roll_day(day)
        pnls = marks.note_peaks()  # each scope's `pnl`, worked out once for the peaks and the limits
        cfg = self.settings
        trips: list[Trip] = []
        scopes = [(TOTAL, total_cap_usd, False)]
        if per_exchange:
            scopes += [(ex, cap, True) for ex, cap in exchange_caps_usd.items() if ex in marks.cash]
        for scope, cap, demote in scopes:
            trip = check_loss(
                f"{book}:{scope}", pnls[scope], marks.day_start.get(scope, Decimal(0)),
                marks.peak.get(scope, Decimal(0)), cap, cfg.daily_loss_pct, cfg.drawdown_pct, demote,
            )  # fmt: skip
            if trip is not None:
                trips.append(trip)
                self._count(trip)
        if trips:
            loss.last_state = TradingState.REDUCING  # the governor applies the stop
        return trips

    def note_state(self, state: TradingState) -> None:
        """Every review passes the state it saw, so a resume between two loss checks is seen
        (by the next check, which then evaluates: no memo of an ACTIVE evaluation covers it)."""
        if state is not TradingState.ACTIVE:
            loss = self.loss
            loss.last_state, loss.evaluated = state, None

    # --- reporting ----------------------------------------------------------------------

    def _count(self, trip: Trip) -> None:
        self.trips[trip.code.value] = self.trips.get(trip.code.value, 0) + 1

    def snapshot(self, now: float) -> dict[str, Any]:
        return {
            "trips": dict(self.trips),
            "blocked": {ex: round(until - now, 1) for ex, (until, _) in self.blocked.items() if until > now},
            "pnl_usd": {book: str(m.pnl().quantize(Decimal("0.01"))) for book, m in self.books.items()},
        }


__all__ = ["Action", "BreakerBoard", "Trip"]
