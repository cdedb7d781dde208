"""Lyra XEMM on real Hummingbot: its XEMMExecutor's maker and hedge orders pass the governor;
a hedge that cannot be placed ends in a reduce-only close of the maker fill."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.hummingbot.strategies.world import (
    book,
    build,
    count_capacity_reads,
    decisions,
    fills,
    gradual_stop,
    run,
    warm_mandates,
    world,
)

__all__ = ["world"]
BINANCE, OKX = "binance_paper_trade", "okx_paper_trade"


def _xemm(world: dict[str, Any], **overrides: Any) -> Any:
    warm_mandates(world, [BINANCE, OKX])
    return build(world, "lyra_xemm.py", [BINANCE, OKX], **{"cooldown_s": 10_000, **overrides})


def _resting(world: dict[str, Any], connector: str = BINANCE) -> list[tuple[float, bool]]:
    return sorted((float(o.price), bool(o.is_buy)) for o in world["exchanges"][connector].limit_orders)


def _legs(world: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["exchange"], f["side"]) for f in fills(world)]


def test_xemm_quotes_on_the_maker_venue_and_hedges_a_fill_on_the_taker_venue(world: dict[str, Any]) -> None:
    strategy = _xemm(world)
    run(world, strategy, 4)
    # both sides quoted 0.15 % inside what the okx book would pay, and left alone while the edge holds
    assert _resting(world) == [(59_905.1, True), (60_095.1, False)]
    assert strategy.decisions == {"ALLOWED": 2}
    book(world, BINANCE, 59_850)  # binance falls through the maker bid
    run(world, strategy, 8)  # the okx MARKET hedge executes 5 s after it is placed
    assert _legs(world) == [("binance", "BUY"), ("okx", "SELL")]
    assert strategy.hedged == 1 and strategy.unwinds == 0
    assert all(d["status"] == "ALLOWED" for d in decisions(world) if d["status"] != "PENDING")


def test_xemm_maker_orders_outside_the_collar_never_reach_the_exchange(world: dict[str, Any]) -> None:
    strategy = _xemm(world)
    run(world, strategy, 2)
    book(world, OKX, 62_600)  # okx 4.3 % over binance: the bid it implies is far over binance's mid
    run(world, strategy, 6)
    assert strategy.decisions.get("PRICE_COLLAR", 0) >= 1
    assert not [p for p, buy in _resting(world) if buy and p > 61_000]
    assert not _legs(world)


def test_xemm_sizes_from_the_governors_capacity(world: dict[str, Any]) -> None:
    for exchange in world["exchanges"].values():
        exchange.set_balance("USDT", 100_000)
        exchange.set_balance("BTC", 2)
    strategy = _xemm(world, order_amount_quote=Decimal(100_000))
    run(world, strategy, 4)
    max_order = world["gov"].settings.risk.max_order_notional_usd
    resting = world["exchanges"][BINANCE].limit_orders
    assert len(resting) == 2 and all(Decimal(o.quantity) * Decimal(o.price) <= max_order for o in resting)
    assert strategy.decisions.get("MAX_ORDER_NOTIONAL", 0) == 0
    book(world, BINANCE, 59_850)  # the bid fills: its MARKET hedge, valued at mid + the collar, fits too
    run(world, strategy, 8)
    assert _legs(world) == [("binance", "BUY"), ("okx", "SELL")]
    assert strategy.decisions.get("MAX_ORDER_NOTIONAL", 0) == 0


def test_xemm_in_a_gradual_stop_cancels_its_quotes_and_closes_an_unhedged_fill(world: dict[str, Any]) -> None:
    strategy = _xemm(world)
    run(world, strategy, 4)
    gradual_stop(world)
    book(world, BINANCE, 59_850)  # the bid fills in the same second: its okx hedge is not reduce-only
    run(world, strategy, 30)
    assert strategy.decisions.get("REDUCE_ONLY", 0) >= 1  # the hedge was refused ...
    assert strategy.unwinds == 1  # ... so the binance buy was closed on binance, reduce-only
    assert _legs(world) == [("binance", "BUY"), ("binance", "SELL")]
    closes = [d for d in decisions(world) if d["reduce_only"]]
    assert [d["status"] for d in closes] == ["ALLOWED"]
    assert not _resting(world)  # the ask was cancelled, nothing new quoted
    assert abs(world["gov"].orders.position(("paper", "binance", "BTC-USDT"))) < Decimal("1e-9")
    from hummingbot.core.data_type.common import TradeType

    assert strategy.xemm_config(TradeType.BUY) is None and strategy.xemm_config(TradeType.SELL) is None


def test_without_the_balance_for_either_side_xemm_reads_no_capacity(world: dict[str, Any]) -> None:
    """No BTC on either venue: neither side can be hedged (a maker buy needs base to sell on
    okx, a maker sell base to sell on binance), so no executor starts and the governor's
    capacity is never read for it (twice per side every 5 s on the old code)."""
    strategy = _xemm(world)
    for connector in (BINANCE, OKX):
        world["exchanges"][connector].set_balance("BTC", 0)
    reads = count_capacity_reads(world)
    run(world, strategy, 12)
    assert not strategy.executor_orchestrator.active_executors.get("main") and reads[0] == 0, reads
    world["exchanges"][OKX].set_balance("BTC", 0.01)  # a maker buy can be hedged again: sized, started
    run(world, strategy, 6)
    assert strategy.executor_orchestrator.active_executors.get("main") and reads[0] > 0
