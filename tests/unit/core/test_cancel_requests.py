"""A cancel request (`OrderStore.cancel_requested`) is no transaction of its own: its mark is
written at the start of the connection's next write transaction, before anything that
transaction reads, and kept for the one after if that transaction rolls back. The mark only
changes what the bot's next closes are judged against (its own reviews, on this connection)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lyra_governor.audit import verify
from lyra_governor.config import Settings
from lyra_governor.governor import Governor
from lyra_governor.models import (
    Decision,
    DenialCode,
    OrderEvent,
    OrderEventKind,
    OrderProposal,
    ReservationStatus,
    Side,
)
from lyra_governor.order_store import OrderStore, ReservationRow
from lyra_governor.store import create_schema, create_store_engine, reservations
from lyra_governor.store_budget import MarketMovedOn

from .conftest import EnvelopeMandates, FakeClock, allowed

Propose = Callable[..., OrderProposal]


def _mark(settings: Settings, reservation_id: str) -> float | None:
    """The reservation's ``cancel_requested_at`` as another connection reads it (committed only)."""
    side = sqlite3.connect(Path(str(settings.db_url).removeprefix("sqlite:///")))
    try:
        row = side.execute(
            "SELECT cancel_requested_at FROM lyra_reservations WHERE reservation_id = ?", (reservation_id,)
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])
    finally:
        side.close()


def _long(governor: Governor, propose: Propose, amount: str) -> None:
    bought = allowed(governor, propose(amount=Decimal(amount)))
    governor.on_order_event(
        OrderEvent(kind=OrderEventKind.FILLED, reservation_id=bought.reservation_id,
                   filled_amount=Decimal(amount), fill_price=Decimal(60000))
    )  # fmt: skip


def _resting_close_in_a_gradual_stop(governor: Governor, propose: Propose) -> tuple[dict[str, Any], Decision]:
    """A long of 0.002, then a gradual stop, and the close of the whole position allowed and
    resting: (the close's proposal fields, its decision)."""
    _long(governor, propose, "0.002")
    governor.ledger.reduce_only("gradual stop", "council")
    governor.ladder_state(fresh=True)
    close: dict[str, Any] = {"side": Side.SELL, "amount": Decimal("0.002"), "reduce_only": True}
    first = governor.review(propose(**close))
    assert first.allowed and first.reservation_id
    return close, first


def test_a_cancel_request_runs_no_statement_and_rides_on_the_next_write(
    governor: Governor, propose: Propose, clock: FakeClock, settings: Settings
) -> None:
    """The old code wrote the mark in a transaction of its own (BEGIN, the head, the UPDATE,
    COMMIT): 90 of a paper replay's 456 commits per simulated hour."""
    resting = allowed(governor, propose())
    rid = resting.reservation_id or ""
    seen: list[str] = []
    driver = governor.store._raw.driver_connection
    driver.set_trace_callback(seen.append)
    try:
        asked_at = clock.now
        governor.cancel_requested(rid)
        assert seen == []  # nothing run: no lock, no commit
        assert _mark(settings, rid) is None
        clock.advance(1)
        governor.store.heartbeat("bot-1", clock.now, "host", 1)  # the next write of this connection
    finally:
        driver.set_trace_callback(None)
    assert seen[0] == "BEGIN IMMEDIATE" and seen[-1] == "COMMIT"
    assert _mark(settings, rid) == asked_at  # the request's own instant
    assert governor.store._marks == []
    # the cancel's event then releases the reservation as before
    governor.on_order_event(OrderEvent(kind=OrderEventKind.CANCELLED, reservation_id=rid))
    assert governor.store.reservation_status(rid) is not None
    assert governor.ledger.totals_agree()[0]
    assert verify(governor.ledger.engine).ok


def test_a_close_after_a_cancel_request_is_judged_without_it_even_after_a_rollback(
    governor: Governor, propose: Propose, clock: FakeClock, settings: Settings
) -> None:
    """In a gradual stop the store judges each close under the lock against the resting closes
    it holds: the cancelled one no longer counts, though its mark was not committed when the
    close was reviewed, nor by a write rolled back in between."""
    close, first = _resting_close_in_a_gradual_stop(governor, propose)
    assert governor.review(propose(**close)).code is DenialCode.REDUCE_ONLY  # it would stack
    governor.cancel_requested(first.reservation_id)
    # a write transaction that rolls back (the market data found stale under the lock) rolls the
    # mark back with it: it is kept, and written by the next
    row = ReservationRow("res-rolled-back", "bot-1", "binance_paper_trade", "paper", "binance", "BTC-USDT", "BUY",
                         False, "0.001", "60000", "1", 60_000_000, "0", "OPEN", None, None, clock.now)  # fmt: skip
    with pytest.raises(MarketMovedOn):
        governor.store.reserve(row, "{}", "bot-1", clock.now, False, Decimal(1), fresh=lambda: False)
    assert _mark(settings, first.reservation_id) is None
    assert governor.store._marks != []
    replacing = governor.review(propose(**close))  # the stop-loss replacing the cancelled take-profit
    assert replacing.allowed, replacing.message
    assert _mark(settings, first.reservation_id) is not None


def test_a_cancel_request_lost_in_a_crash_leaves_the_close_counted(
    governor: Governor, propose: Propose, clock: FakeClock, settings: Settings
) -> None:
    """A mark not yet written is lost with the process the safe way: the close still counts."""
    close, first = _resting_close_in_a_gradual_stop(governor, propose)
    governor.cancel_requested(first.reservation_id)  # then the process dies
    restarted = Governor.from_settings(settings, "bot-1", mandates=EnvelopeMandates(), clock=clock)
    assert restarted.review(propose(**close)).code is DenialCode.REDUCE_ONLY
    restarted.close()


def test_the_cancels_release_writes_its_mark_with_the_close(
    governor: Governor, propose: Propose, clock: FakeClock, settings: Settings
) -> None:
    """The cancel's own event right after the request: the close's one UPDATE of the row writes
    the mark too (the row ends as the old code left it: CANCELLED, marked at the request)."""
    resting = allowed(governor, propose())
    rid = resting.reservation_id or ""
    asked_at = clock.now
    governor.cancel_requested(rid)
    clock.advance(1)
    seen: list[str] = []
    driver = governor.store._raw.driver_connection
    driver.set_trace_callback(seen.append)
    try:
        governor.on_order_event(OrderEvent(kind=OrderEventKind.CANCELLED, reservation_id=rid))
    finally:
        driver.set_trace_callback(None)
    assert len([s for s in seen if s.startswith("UPDATE lyra_reservations")]) == 1
    assert _mark(settings, rid) == asked_at
    assert str(governor.store.reservation_status(rid)) == "CANCELLED"
    assert governor.store._marks == []
    assert governor.ledger.totals_agree()[0]
    assert verify(governor.ledger.engine).ok


def _row(rid: str, now: float) -> ReservationRow:
    """A sell of this bot's that reserves nothing (no capital rows needed)."""
    return ReservationRow(rid, "bot-m", "binance_paper_trade", "paper", "binance", "BTC-USDT", "SELL", False,
                          "0.001", "60000", "1", 0, "0", "OPEN", None, None, now)  # fmt: skip


def assert_marks_ride_on_writes(url: str) -> None:
    """On the store at `url`: a cancel request is written by the connection's next write that
    commits (not by one rolled back), and a release closing the reservation writes it with the
    close; the audit chain verifies."""
    engine = create_store_engine(url)
    create_schema(engine, 0.0)
    store = OrderStore(engine)

    def mark(rid: str) -> tuple[Any, Any]:
        with engine.connect() as conn:
            found = conn.execute(
                sa.select(reservations.c.cancel_requested_at, reservations.c.status).where(
                    reservations.c.reservation_id == rid
                )
            ).one()
        return found[0], found[1]

    try:
        store.reserve(_row("res-a", 1.0), "{}", "bot-m", 1.0, False, Decimal(1))
        store.cancel_requested("res-a", 2.0)
        assert mark("res-a") == (None, "OPEN")
        with pytest.raises(MarketMovedOn):
            store.reserve(_row("res-b", 3.0), "{}", "bot-m", 3.0, False, Decimal(1), fresh=lambda: False)
        assert mark("res-a") == (None, "OPEN")  # rolled back with the review's transaction: kept
        store.audit("note", "{}", "test", 4.0)
        assert mark("res-a") == (2.0, "OPEN")
        store.reserve(_row("res-c", 5.0), "{}", "bot-m", 5.0, False, Decimal(1))
        store.cancel_requested("res-c", 6.0)
        store.cancel_requested("res-a", 6.5)  # a second request: the later instant, as before
        released = store.release("res-c", ReservationStatus.CANCELLED, {"kind": "CANCELLED"}, "bot-m", 7.0)
        assert released.status == "CANCELLED"
        assert mark("res-c") == (6.0, "CANCELLED")
        assert mark("res-a") == (6.5, "OPEN")
        assert store._marks == []
        assert verify(engine).ok
    finally:
        store.close()
        engine.dispose()


def test_marks_ride_on_writes_on_sqlite(tmp_path: Path) -> None:
    assert_marks_ride_on_writes(f"sqlite:///{tmp_path / 'lyra.db'}")

