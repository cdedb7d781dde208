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
from lyra_governor.checks import Limits, Review, bot_reducing, cap_denial, decision_json, halted, reducing
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
    collided with odds of 1 in 500 per million ids. A process's ids sort in the order it made them.

    `entropy(n)` gives the prefix's n random bytes: os.urandom live; a seeded simulation passes
    its own (`random.Random(seed).randbytes`, one `ReservationIds` for all its governors, handed
    to each as `Governor(reservation_ids=ids.new)`), so that a seed replays the same ids."""

    __slots__ = ("_count", "_entropy", "_prefix")

    def __init__(self, entropy: Callable[[int], bytes] = os.urandom) -> None:
        self._prefix, self._count, self._entropy = "", itertools.count(), entropy
        self.draw()

    def draw(self) -> None:
        self._prefix, self._count = f"res-{self._entropy(8).hex()}", itertools.count()

    def new(self) -> str:
        """A new reservation id, such as ``res-3f2a9c0d1b4e5a6b00002a``."""
        return f"{self._prefix}{next(self._count):06x}"


_IDS = ReservationIds()
os.register_at_fork(after_in_child=_IDS.draw)
reservation_id = _IDS.new


def reservation_row(r: Review, bot_id: str, new_id: Callable[[], str] = reservation_id) -> ReservationRow:
    """The review's new reservation (its id `new_id()`: this process's `reservation_id` unless
    the governor was given its own). Its fields by position, in `ReservationRow`'s order (a
    slotted dataclass called with 17 keywords cost ~12k instructions, by position ~3.7k)."""
    p, mandate = r.o, r.mandate
    reserve = not r.closing or p.side is Side.BUY
    return ReservationRow(
        new_id(),  # reservation_id
        bot_id,  # bot_id
        p.connector,  # connector
        r.book,  # book
        r.exchange,  # exchange
        p.trading_pair,  # trading_pair
        str(p.side),  # side; not `.value`: see `checks.decision_payload`
        p.reduce_only,  # reduce_only
        str(p.amount),  # amount
        str(r.price),  # price
        str(r.rate),  # usd_per_quote
        to_musd(r.notional_usd) if reserve else 0,  # reserved_musd
        "0",  # filled_amount
        OPEN,  # status
        p.client_order_id,  # client_order_id
        mandate.mandate_id if mandate else None,  # mandate_id
        r.now,  # created_at
    )


def reserve(
    store: OrderStore,
    r: Review,
    row: ReservationRow,
    limits: Limits,
    clock: Callable[[], float],
    exposure: Callable[[str], Exposure],
    state_changed: Callable[[], object],
) -> int | Refused:
    """Write `row` with its decision record; returns the audit sequence number, or why not.
    `limits`: the settings' (`checks.Limits`, plain attributes: a pydantic section's field costs
    ~400 instructions to read)."""
    p = r.o
    payload_json = decision_json(p, ALLOWED, None, "", r.notional_usd, row.reservation_id, r)

    def fresh() -> bool:  # the market data's age, asked again once the write lock is held
        age = clock() - p.mid_price_ts
        return -limits.future_tolerance_s <= age <= limits.stale_price_s

    try:  # the exchange-wide order-rate budget is checked under the lock
        return store.reserve(
            row,
            payload_json,
            row.bot_id,
            r.now,
            r.closing,
            limits.close_tolerance,
            fresh,
            (r.now - limits.exchange_order_rate_window_s, limits.exchange_order_rate_max),
        )
    except RateBudgetSpent as spent:
        window = limits.exchange_order_rate_window_s
        trip = check_exchange_rate(r.exchange, spent.orders, limits.exchange_order_rate_max, window)
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
