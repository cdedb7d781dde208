"""lyra_strategies.reconcile.plan: how each reservation a crash left behind is settled."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from lyra_strategies.reconcile import ExchangeOrder, ExchangeTrade, applied_trades, in_doubt, plan

T0 = 1_800_000_000.0


def _row(rid: str, side: str = "BUY", amount: str = "0.0003", price: str = "59000", filled: str = "0",
         at: float = T0) -> dict[str, Any]:  # fmt: skip
    return {"reservation_id": rid, "trading_pair": "BTC-USDT", "side": side, "amount": amount, "price": price,
            "filled_amount": filled, "created_at": at, "client_order_id": None}  # fmt: skip


def _order(cid: str, status: str, trades: tuple[str, ...] = (), side: str = "BUY", price: str = "59000",
           at: float = T0 + 0.2) -> ExchangeOrder:  # fmt: skip
    return ExchangeOrder(
        cid, cid.upper(), "BTC-USDT", side, "LIMIT", Decimal("0.0003"), Decimal(price), status, at,
        tuple(ExchangeTrade(f"{cid}-{i}", Decimal(q), Decimal(price), Decimal(0), "BTC", at + i + 1)
              for i, q in enumerate(trades)),
    )  # fmt: skip


def test_missed_fills_are_booked_after_the_ones_the_ledger_has() -> None:
    found = plan([_row("r1", filled="0.0001")], [_order("x-1", "FILLED", ("0.0001", "0.0002"))])
    (s,) = found.settlements
    assert s.outcome == "FILLED" and [t.amount for t in s.book] == [Decimal("0.0002")]


def test_each_order_settles_one_reservation_and_unknown_ones_fail() -> None:
    rows = [_row("r1"), _row("r2", at=T0 + 1), _row("r3", price="58000", at=T0 + 2)]
    orders = [_order("x-1", "OPEN"), _order("x-2", "CANCELLED", at=T0 + 1.5)]
    found = plan(rows, orders)
    assert [(s.reservation_id, s.outcome, s.order and s.order.client_order_id) for s in found.settlements] == [
        ("r1", "OPEN", "x-1"), ("r2", "CANCELLED", "x-2"), ("r3", "FAILED", None),
    ]  # fmt: skip


def test_an_order_placed_long_before_the_reservation_or_on_the_other_side_does_not_match() -> None:
    found = plan([_row("r1")], [_order("x-old", "OPEN", at=T0 - 600), _order("x-sell", "OPEN", side="SELL")])
    assert found.settlements[0].outcome == "FAILED"
    assert sorted(o.client_order_id for o in found.unaccounted) == ["x-old", "x-sell"]


def test_a_bound_client_order_id_wins_over_the_attributes() -> None:
    row = _row("r1") | {"client_order_id": "x-2"}
    found = plan([row], [_order("x-1", "OPEN"), _order("x-2", "FILLED", ("0.0003",))])
    assert found.settlements[0].order.client_order_id == "x-2"  # type: ignore[union-attr]
    assert [o.client_order_id for o in found.unaccounted] == ["x-1"]


def test_fills_are_known_by_trade_id_so_one_seen_out_of_order_does_not_hide_a_missed_one() -> None:
    """The bot heard the order's second fill (0.0002) but never its first (0.0001): by amount
    alone the first looks counted and the second is booked again (then dropped as a duplicate
    by its trade id), so the first never reaches the ledger. By trade id the first is booked."""
    fills = [{"reservation_id": "r1", "trade_key": "id:x-1-1", "amount": "0.0002"}]
    found = plan([_row("r1", filled="0.0002")], [_order("x-1", "FILLED", ("0.0001", "0.0002"))], "",
                 applied_trades(fills))  # fmt: skip
    assert [t.trade_id for t in found.settlements[0].book] == ["x-1-0"]


def test_fills_recorded_without_a_trade_id_still_count_by_amount() -> None:
    fills = [{"reservation_id": "r1", "trade_key": "at:1800000001.2:0.0001@59000", "amount": "0.0001"}]
    found = plan([_row("r1", filled="0.0001")], [_order("x-1", "FILLED", ("0.0001", "0.0002"))], "",
                 applied_trades(fills))  # fmt: skip
    assert [t.trade_id for t in found.settlements[0].book] == ["x-1-1"]


def test_a_failed_placement_is_in_doubt_only_when_the_exchange_may_have_the_order() -> None:
    url = "Error executing request POST http://127.0.0.1:1/api/v5/trade/order."
    assert in_doubt(f"{url} HTTP status is 503. Error: {{...}}", "OSError")
    assert in_doubt("", "TimeoutError") and in_doubt(None, "ServerDisconnectedError")
    assert not in_doubt(f"{url} HTTP status is 429. Error: {{...}}", "OSError")  # refused: nothing placed
    assert not in_doubt("Error submitting order x: Order failed. Insufficient balance in account.", "OSError")
    assert not in_doubt(None, None)


def test_an_order_another_bots_reservation_holds_is_not_a_stray() -> None:
    """`strays`: of the orders this bot's reservations left unexplained, those no other bot's
    held reservation explains (bound id first, else the same figures; one order each)."""
    from lyra_strategies.reconcile import strays

    orders = [_order("x-1", "OPEN"), _order("x-2", "OPEN", price="58000"), _order("x-3", "OPEN", price="58000"),
              _order("web-1", "OPEN", price="57000")]  # fmt: skip
    others = [_row("b1", price="58000") | {"bot_id": "other"}, _row("b2", price="1") | {"client_order_id": "x-1"}]
    found = strays(orders, others)
    assert sorted(o.client_order_id for o in found) == ["web-1", "x-3"]  # x-1 bound to b2, x-2 matched b1, once
