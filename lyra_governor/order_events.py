"""What happens to an allowed order afterwards: the exchange's events, booked by the one writer.

A fill becomes deployed capital (`OrderStore.fill`: applied once per trade id, an impossible
one recorded as an anomaly); a cancel, failure, expiry or completion ends the reservation and
gives back what it still holds (`OrderStore.release`). The governor's in-memory views follow
what the store booked: this bot's open orders, positions and resting closes (`BotOrders`),
the storm breaker (`BreakerDesk.outcome`), the council's fills (`MarketHistory`), the tally.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from lyra_governor import audit
from lyra_governor.bot_orders import BotOrders
from lyra_governor.breakers.desk import BreakerDesk
from lyra_governor.config import Settings
from lyra_governor.market_context import MarketHistory
from lyra_governor.models import STRAY_PREFIX, OrderEvent, OrderEventKind, ReservationStatus, Side, StrayOrder
from lyra_governor.money import to_musd
from lyra_governor.order_store import ReservationRow
from lyra_governor.phases import LIVE_BOOK, PAPER_BOOK
from lyra_governor.seat import Seat
from lyra_governor.store_budget import EVENT_BUDGET_MS

log = logging.getLogger(__name__)

RESERVATION_ID_MAX = 40  # lyra_reservations.reservation_id is VARCHAR(40)
IN_DOUBT = "its review was denied on a store error, yet the reservation was written: no order was placed"

ENDS = {  # order events that end an order without (more) fills, and the state they leave
    OrderEventKind.CANCELLED: ReservationStatus.CANCELLED,
    OrderEventKind.FAILED: ReservationStatus.FAILED,
    OrderEventKind.EXPIRED: ReservationStatus.EXPIRED,
    OrderEventKind.COMPLETED: ReservationStatus.FILLED,
}


@dataclass(eq=False)
class OrderEvents:
    """One governor's order events, booked by the one writer and followed by its in-memory views."""

    seat: Seat
    orders: BotOrders
    desk: BreakerDesk
    history: MarketHistory
    restricted: Callable[[], None]  # this bot's restriction changed: re-read it on the next review
    # Reservations whose write failed with a store error: the commit may still have reached the
    # store (its answer lost in a restart or cut by the budget) though the strategy was denied
    # and placed nothing. Settled on the heartbeat once the store answers (`settle_in_doubt`).
    in_doubt: list[str] = field(default_factory=list)

    def on_order_event(self, event: OrderEvent) -> None:
        """Fills become deployed capital; cancels, failures and completions end the reservation
        and give back what it still holds. Events for unknown reservations are audited."""
        now = self.seat.clock() if event.timestamp is None else event.timestamp
        client_order_id = bounded(event.client_order_id)
        facts = {"kind": event.kind.value, "reservation_id": event.reservation_id, "client_order_id": client_order_id}
        if event.kind is not OrderEventKind.EXPIRED:  # the exchange's answer feeds the storm breaker
            failed = event.kind is OrderEventKind.FAILED
            self.desk.outcome(event.reservation_id, self.orders.exchange_of(event.reservation_id), failed, now)
        if event.kind is OrderEventKind.FILLED:
            self._filled(event, client_order_id, now)
        elif event.kind is OrderEventKind.CREATED:
            if self.seat.store.reservation_status(event.reservation_id) is None:
                self.seat.store.audit(
                    "orphan_event", audit.canonical_json(facts), self.seat.bot_id, now, EVENT_BUDGET_MS
                )
        else:
            ended = self.seat.store.release(event.reservation_id, ENDS[event.kind], facts, self.seat.bot_id, now)
            if ended.status is not None:
                self.closed(event.reservation_id)
            if ended.released_usd is not None and event.kind is OrderEventKind.FAILED:
                self.seat.tally.failed(now)

    def _filled(self, event: OrderEvent, client_order_id: str | None, now: float) -> None:
        fee_musd = to_musd(event.fee_usd) if event.fee_usd.is_finite() and abs(event.fee_usd) < 10**12 else -1
        result = self.seat.store.fill(
            event.reservation_id,
            client_order_id,
            event.filled_amount,
            event.fill_price,
            fee_musd,
            self.seat.bot_id,
            now,
            trade_key=trade_key(event),
        )
        if result.outcome == "anomaly":
            log.error("impossible fill for %s: %s", event.reservation_id, result.payload.get("reason"))
            self.restricted()
        if result.stopped:
            self.seat.state_changed()
        if result.outcome != "applied":
            return
        filled = result.payload
        self.orders.close_filled(event.reservation_id, event.filled_amount)
        self.history.observe_fill(
            filled["trading_pair"], filled["side"], event.filled_amount, event.fill_price, now, event.fee_usd
        )
        signed = event.filled_amount if filled["side"] == Side.BUY.value else -event.filled_amount
        self.orders.filled((filled["book"], filled["exchange"], filled["trading_pair"]), signed)
        if filled["complete"]:
            self.closed(event.reservation_id)

    def cancel_requested(self, reservation_id: str) -> None:
        """The strategy asked the exchange to cancel one of its orders (a stop-loss replacing
        its take-profit cancels the take-profit first): a resting close being cancelled no
        longer counts against the closes that may follow. The store writes the mark with its
        next write (`OrderStore.cancel_requested`), on an OPEN reservation only; this view
        drops the close at once (it keeps this bot's placed orders, which the store holds OPEN
        but for an ORPHANED one: the store's own check under the lock still counts that one)."""
        self.seat.store.cancel_requested(reservation_id, self.seat.clock())
        self.orders.close_cancelling(reservation_id)

    def stray(self, order: StrayOrder, usd_per_quote: Decimal) -> str:
        """A resting order no reservation holds (`OrderStore.book_stray`): booked as this bot's
        OPEN reservation, what still rests counted against the caps and the open-order limit
        until the order ends (its events then release it like any other). Returns its
        reservation id, the same for the same order (booked once)."""
        if not usd_per_quote.is_finite() or usd_per_quote <= 0:  # what cannot be valued cannot be counted
            raise ValueError(f"no USD rate for {order.trading_pair}: the stray order cannot be counted")
        now = self.seat.clock()
        connector, exchange = order.connector, Settings.exchange_of(order.connector)
        rid = f"{STRAY_PREFIX}{connector}:{order.exchange_order_id}"
        if len(rid) > RESERVATION_ID_MAX:  # the column's width: a long id is known by its hash
            rid = STRAY_PREFIX + hashlib.sha256(rid.encode()).hexdigest()[: RESERVATION_ID_MAX - len(STRAY_PREFIX)]
        resting = max(Decimal(0), order.amount - order.executed)
        row = ReservationRow(
            reservation_id=rid, bot_id=self.seat.bot_id, connector=connector,
            book=PAPER_BOOK if Settings.is_paper(connector) else LIVE_BOOK, exchange=exchange,
            trading_pair=order.trading_pair, side=order.side.value, reduce_only=False, amount=str(order.amount),
            price=str(order.price), usd_per_quote=str(usd_per_quote),
            reserved_musd=to_musd(resting * order.price * usd_per_quote), filled_amount=str(order.executed),
            status=ReservationStatus.OPEN.value, client_order_id=order.client_order_id, mandate_id=None,
            created_at=now,
        )  # fmt: skip
        self.seat.store.book_stray(row, order.model_dump(mode="json"), self.seat.bot_id, now)
        self.orders.opened(rid, exchange)
        self.seat.state_changed()  # a cap it passed may have stopped the store gradually
        return rid

    def settle_in_doubt(self, now: float) -> None:
        """Release the reservations whose review was denied on a store error but whose write did
        reach the store: no order stands behind them, so their capital goes back at once. Found
        by the soak (tests/soak.py): after a PostgreSQL restart one such reservation held its
        capital OPEN for good. Raises a store error (kept for the next heartbeat) if it is away."""
        store = self.seat.store
        while self.in_doubt:
            rid = self.in_doubt[0]
            if store.reservation_status(rid) is ReservationStatus.OPEN:
                facts = {"kind": "in_doubt", "reservation_id": rid, "reason": IN_DOUBT}
                store.release(rid, ReservationStatus.CANCELLED, facts, self.seat.bot_id, now)
                log.warning("released reservation %s: %s", rid, IN_DOUBT)
            self.in_doubt.pop(0)

    def closed(self, reservation_id: str) -> None:
        self.desk.board.closed(reservation_id)
        self.orders.closed(reservation_id)


def bounded(client_order_id: str | None) -> str | None:
    """What an event's client order id may put in the audit trail: at most 128 characters."""
    return None if client_order_id is None else client_order_id[:128]


def trade_key(event: OrderEvent) -> str | None:
    """What makes a fill the same fill: the exchange's trade id, else (an event without one)
    its own time, amount and price; None when even the time is unknown (then it is not deduplicated)."""
    if event.trade_id:
        return f"id:{event.trade_id}"
    if event.timestamp is None:
        return None
    return f"at:{event.timestamp!r}:{event.filled_amount}@{event.fill_price}"[:160]
