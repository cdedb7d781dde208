"""The one write of a review: the reservation, after the last check passed.

Capital reserved (a close that sells reserves none), the reservation row and the decision's
audit record, atomically, under the store's write lock (`OrderStore.reserve`). What the store
finds under the lock that the checks could not know (a halt committed meanwhile, the market
data grown stale while the lock was waited for, the exchange-wide order-rate budget spent by
other bots, a close that no longer reduces, a cap another bot filled) comes back as a `Denial`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from decimal import Decimal

from lyra_governor.breakers.exchange_rate import check_exchange_rate
from lyra_governor.checks import Review, bot_reducing, cap_denial, decision_json, halted, reducing
from lyra_governor.config import Settings
from lyra_governor.ledger import Exposure
from lyra_governor.models import DecisionStatus, Denial, DenialCode, ReservationStatus, Side, TradingState
from lyra_governor.money import to_musd
from lyra_governor.order_store import (
    BOT_REDUCE_ONLY,
    CapExceeded,
    NotReducing,
    OrderStore,
    RateBudgetSpent,
    ReservationRow,
    TradingStopped,
)
from lyra_governor.risk import tolerance_factor
from lyra_governor.store_budget import MarketMovedOn

Refused = tuple[Denial, Decimal]  # the denial and the notional its decision reports
OPEN = str(ReservationStatus.OPEN)
ALLOWED = DecisionStatus.ALLOWED  # read through its class, an enum member costs ~100 ns (EnumType.__getattr__)


class ReservationIds:
    """This process's reservation ids: ``res-`` and 16 hex digits (64 bits from os.urandom, drawn
    once per process: at import, and again in a forked child), then a counter in at least 6 hex
    digits. Unique within the process by the counter (itertools.count: its next is atomic under
    the GIL) and across processes and hosts unless two of them draw the same 64 bits; with one
    random draw per id (48 bits, ~1.5 us: a getrandom call each) two ids of a long-lived store
    collided with odds of 1 in 500 per million ids. A process's ids sort in the order it made them."""

    __slots__ = ("_count", "_prefix")

    def __init__(self) -> None:
        self._prefix, self._count = "", itertools.count()
        self.draw()

    def draw(self) -> None:
        self._prefix, self._count = f"res-{os.urandom(8).hex()}", itertools.count()

    def new(self) -> str:
        """A new reservation id, such as ``res-3f2a9c0d1b4e5a6b00002a``."""
        return f"{self._prefix}{next(self._count):06x}"


_IDS = ReservationIds()
os.register_at_fork(after_in_child=_IDS.draw)
reservation_id = _IDS.new


def reservation_row(r: Review, bot_id: str) -> ReservationRow:
    p, mandate = r.o, r.mandate
    reserve = not r.closing or p.side is Side.BUY
    return ReservationRow(
        reservation_id=reservation_id(),
        bot_id=bot_id,
        connector=p.connector,
        book=r.book,
        exchange=r.exchange,
        trading_pair=p.trading_pair,
        side=str(p.side),  # not `.value`: see `checks.decision_payload`
        reduce_only=p.reduce_only,
        amount=str(p.amount),
        price=str(r.price),
        usd_per_quote=str(r.rate),
        reserved_musd=to_musd(r.notional_usd) if reserve else 0,
        filled_amount="0",
        status=OPEN,
        client_order_id=p.client_order_id,
        mandate_id=mandate.mandate_id if mandate else None,
        created_at=r.now,
    )


def reserve(
    store: OrderStore,
    r: Review,
    row: ReservationRow,
    settings: Settings,
    clock: Callable[[], float],
    exposure: Callable[[str], Exposure],
    state_changed: Callable[[], object],
) -> int | Refused:
    """Write `row` with its decision record; returns the audit sequence number, or why not."""
    p = r.o
    payload_json = decision_json(p, ALLOWED, None, "", r.notional_usd, row.reservation_id, r)
    budget, limits = settings.breakers, settings.risk  # the exchange-wide budget is checked under the lock

    def fresh() -> bool:  # the market data's age, asked again once the write lock is held
        age = clock() - p.mid_price_ts
        return -limits.future_tolerance_s <= age <= limits.stale_price_s

    try:
        return store.reserve(
            row,
            payload_json,
            row.bot_id,
            r.now,
            r.closing,
            tolerance_factor(limits.close_tolerance_pct),
            fresh=fresh,
            rate_budget=(r.now - budget.exchange_order_rate_window_s, budget.exchange_order_rate_max),
        )
    except RateBudgetSpent as spent:
        window = budget.exchange_order_rate_window_s
        trip = check_exchange_rate(r.exchange, spent.orders, budget.exchange_order_rate_max, window)
        assert trip is not None
        return Denial(trip.code, trip.message), r.notional_usd
    except MarketMovedOn:
        stale = (
            f"the mid price became {clock() - p.mid_price_ts:.2f} s old while waiting for the store (limit "
            f"{limits.stale_price_s:g} s); propose again with fresh market data"
        )
        return Denial(DenialCode.STALE_PRICE, stale), r.notional_usd
    except TradingStopped as stopped:
        state_changed()  # the cached state was up to 0.25 s old
        if stopped.state == TradingState.HALTED.value:
            return Denial(DenialCode.HALTED, halted(stopped.reason)), Decimal(0)
        if stopped.state == BOT_REDUCE_ONLY:
            return Denial(DenialCode.BOT_REDUCE_ONLY, bot_reducing(row.bot_id, stopped.reason)), Decimal(0)
        return Denial(DenialCode.REDUCE_ONLY, reducing(stopped.reason)), Decimal(0)
    except NotReducing as short:
        held = f"position {short.position} {p.base}, closes resting {short.resting}"
        message = (
            f"this reduce-only {p.side.value.lower()} of {p.amount} {p.base} would not reduce this bot's "
            f"position on {p.connector} {p.trading_pair} ({held}); propose it as an ordinary order"
        )
        return Denial(DenialCode.CLOSE_EXCEEDS_POSITION, message), r.notional_usd
    except CapExceeded:
        return cap_denial(exposure(r.book), r), r.notional_usd
