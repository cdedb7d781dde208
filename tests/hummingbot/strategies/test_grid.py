"""Lyra grid on real Hummingbot: its GridExecutor's levels, take profits and stop pass the
governor; closes are reduce-only."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from lyra_governor.models import DenialCode
from tests.hummingbot.strategies.world import book, build, decisions, fills, gradual_stop, run, warm_mandates, world

__all__ = ["world"]
BINANCE = "binance_paper_trade"


def _grid(world: dict[str, Any], **overrides: Any) -> Any:
    warm_mandates(world, [BINANCE])
    return build(world, "lyra_grid.py", [BINANCE], **{"cooldown_s": 10_000, **overrides})


def _resting(world: dict[str, Any]) -> list[tuple[float, bool]]:
    return sorted((float(o.price), bool(o.is_buy)) for o in world["exchanges"][BINANCE].limit_orders)


def test_grid_buys_levels_sells_them_a_step_higher_and_stops_outside_the_range(world: dict[str, Any]) -> None:
    strategy = _grid(world, levels=3, lower_pct=Decimal("0.006"), upper_pct=Decimal("0.003"))
    run(world, strategy, 6)
    grid = strategy.cycle.executors()[-1]
    assert [float(level.price) for level in grid.grid_levels] == [59_640.0, 59_910.0, 60_180.0]
    assert all(buy for _, buy in _resting(world)) and len(_resting(world)) == 3
    book(world, BINANCE, 59_800)  # through the two upper levels' buys
    run(world, strategy, 6)
    assert [f["side"] for f in fills(world)] == ["BUY", "BUY"]
    sells = [p for p, buy in _resting(world) if not buy]
    assert len(sells) == 2 and min(sells) > 60_000  # each bought level's take profit, one step higher
    takes = [d for d in decisions(world) if d["reduce_only"]]
    assert len(takes) == 2 and all(d["status"] == "ALLOWED" and d["side"] == "SELL" for d in takes)
    book(world, BINANCE, 59_300)  # under the stop (0.5 % under the 59,640 low end)
    run(world, strategy, 12)
    assert grid.close_type is not None and grid.close_type.name == "STOP_LOSS"
    assert [f["side"] for f in fills(world)] == ["BUY", "BUY", "SELL"]  # the stop closed both levels at once
    assert not _resting(world)
    assert abs(world["gov"].orders.position(("paper", "binance", "BTC-USDT"))) < Decimal("1e-9")


def test_grid_levels_outside_the_collar_never_reach_the_exchange(world: dict[str, Any]) -> None:
    strategy = _grid(world, levels=4, lower_pct=Decimal("0.09"), upper_pct=Decimal("0"))  # down to -9 %
    run(world, strategy, 6)
    assert strategy.decisions.get("PRICE_COLLAR", 0) >= 1
    assert [p for p, _ in _resting(world)] and min(p for p, _ in _resting(world)) >= 60_000 * 0.97


def test_grid_sizes_its_levels_from_the_governors_capacity(world: dict[str, Any]) -> None:
    world["exchanges"][BINANCE].set_balance("USDT", 100_000)
    strategy = _grid(world, levels=2, total_amount_quote=Decimal(100_000))
    run(world, strategy, 6)
    max_order = world["gov"].settings.risk.max_order_notional_usd
    resting = world["exchanges"][BINANCE].limit_orders
    assert len(resting) == 2 and all(Decimal(o.quantity) * Decimal(o.price) <= max_order for o in resting)
    assert strategy.decisions.get("MAX_ORDER_NOTIONAL", 0) == 0


def test_grid_in_a_gradual_stop_cancels_its_buys_and_closes_reduce_only(world: dict[str, Any]) -> None:
    strategy = _grid(world, levels=3)
    run(world, strategy, 6)
    book(world, BINANCE, 59_850)  # the upper levels' buys fill
    run(world, strategy, 6)
    bought = [f["side"] for f in fills(world)]
    assert bought and set(bought) == {"BUY"}
    gradual_stop(world)
    run(world, strategy, 30)
    assert [f["side"] for f in fills(world)] == [*bought, "SELL"]  # one reduce-only close for all
    assert not _resting(world) and not strategy.cycle.running()
    assert strategy.grid_config() is None  # no new grid in a gradual stop
    refused = strategy.buy(BINANCE, "BTC-USDT", Decimal("0.0005"), _limit(), Decimal(59_800))
    assert refused.startswith("lyra-denied-") and strategy.last_decision.code is DenialCode.REDUCE_ONLY


def _limit() -> Any:
    from hummingbot.core.data_type.common import OrderType

    return OrderType.LIMIT
