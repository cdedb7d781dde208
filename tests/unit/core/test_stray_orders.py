"""`Governor.book_stray`: a resting order no reservation holds is counted from the moment it is
found (issue 14 leftover; the live path through Hummingbot is tests/live_sim/test_stray_orders.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lyra_governor.governor import Governor
from lyra_governor.models import OrderEvent, OrderEventKind, Side, StrayOrder, TradingState
from lyra_governor.status import collect_status
from tests.live_sim.governed_rig import audit_rows

CONNECTOR = "binance_paper_trade"


def _stray(amount: str, executed: str = "0", order_id: str = "8812") -> StrayOrder:
    return StrayOrder(connector=CONNECTOR, trading_pair="BTC-USDT", side=Side.BUY, amount=Decimal(amount),
                      executed=Decimal(executed), price=Decimal(60000), client_order_id=f"by-hand-{order_id}",
                      exchange_order_id=order_id)  # fmt: skip


def _reserved(governor: Governor) -> Decimal:
    return governor.exposure("paper").exchanges["binance"].reserved_usd


def test_a_stray_is_counted_once_named_in_status_and_released_when_it_ends(governor: Governor) -> None:
    before = _reserved(governor)
    rid = governor.book_stray(_stray("0.002", executed="0.0005"), Decimal(1))
    assert _reserved(governor) == before + Decimal("0.0015") * 60000  # what still rests
    assert governor.book_stray(_stray("0.002", executed="0.0005"), Decimal(1)) == rid  # found again: once
    assert _reserved(governor) == before + Decimal(90)
    assert governor.orders.open_count("binance") == 1  # and against the open-order limit
    assert [r["event"] for r in audit_rows(governor)].count("stray_order") == 1
    (named,) = collect_status(governor.settings, verify_audit=False)["stray_orders"]
    assert (named["reservation_id"], named["client_order_id"], named["reserved_usd"]) == (rid, "by-hand-8812", 90.0)
    governor.on_order_event(OrderEvent(kind=OrderEventKind.CANCELLED, reservation_id=rid))
    assert _reserved(governor) == before and governor.orders.open_count("binance") == 0
    assert collect_status(governor.settings, verify_audit=False)["stray_orders"] == []
    assert governor.ledger.totals_agree()[0]


def test_a_stray_past_the_cap_is_counted_all_the_same_and_stops_the_store_gradually(governor: Governor) -> None:
    cap = governor.exposure("paper").exchanges["binance"].cap_usd
    amount = str((cap / 60000 * 2).quantize(Decimal("0.00001")))  # twice the cap
    governor.book_stray(_stray(amount), Decimal(1))
    assert _reserved(governor) > cap  # it is exposure whatever the cap says
    assert governor.trading_state() is TradingState.REDUCING
    assert governor.capacity_usd("binance") <= 0
    assert governor.ledger.totals_agree()[0]


def test_a_stray_that_cannot_be_valued_is_refused_and_nothing_is_written(governor: Governor) -> None:
    with pytest.raises(ValueError, match="no USD rate"):
        governor.book_stray(_stray("0.001"), Decimal(0))
    assert not governor.ledger.open_reservations() and "stray_order" not in [r["event"] for r in audit_rows(governor)]


def test_a_long_exchange_order_id_still_fits_the_reservation_id(governor: Governor) -> None:
    rid = governor.book_stray(_stray("0.001", order_id="9" * 60), Decimal(1))
    assert rid.startswith("stray:") and len(rid) <= 40
    assert governor.book_stray(_stray("0.001", order_id="9" * 60), Decimal(1)) == rid


def test_what_a_stray_filled_before_it_was_found_is_deployed_and_the_bots_position(governor: Governor) -> None:
    """The part of a stray that filled before the reconciliation found it is capital spent and a
    position held: booked as one fill (once, however often it is found), not left uncounted."""
    deployed = governor.exposure("paper").exchanges["binance"].deployed_usd
    governor.book_stray(_stray("0.002", executed="0.0005"), Decimal(1))
    governor.book_stray(_stray("0.002", executed="0.0005"), Decimal(1))  # found again: booked once
    assert governor.exposure("paper").exchanges["binance"].deployed_usd == deployed + Decimal(30)
    assert governor.exposure("paper").total.deployed_usd == deployed + Decimal(30)
    assert governor.store.bot_position(governor.bot_id, "paper", "binance", "BTC-USDT") == Decimal("0.0005")
    (stray,) = [r for r in audit_rows(governor) if r["event"] == "stray_order"]
    assert stray["filled_before_found_usd"] == "30"
    assert governor.ledger.totals_agree()[0]
