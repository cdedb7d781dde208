"""Lyra DCA on real Hummingbot: its DCAExecutor's slices and closes pass the governor."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from lyra_governor.models import DenialCode
from tests.hummingbot.strategies.world import book, build, decisions, fills, gradual_stop, run, warm_mandates, world

__all__ = ["world"]
BINANCE = "binance_paper_trade"


def _dca(world: dict[str, Any], **overrides: Any) -> Any:
    warm_mandates(world, [BINANCE])
    return build(world, "lyra_dca.py", [BINANCE], **{"cooldown_s": 10_000, **overrides})


def _executor(strategy: Any) -> Any:
    return strategy.executor_orchestrator.active_executors["main"][-1]


def test_dca_buys_in_slices_and_takes_profit_reduce_only(world: dict[str, Any]) -> None:
    strategy = _dca(world, levels=3, level_step_pct=Decimal("0.002"), total_amount_quote=Decimal(90))
    run(world, strategy, 5)
    resting = world["exchanges"][BINANCE].limit_orders
    assert len(resting) == 3 and all(o.client_order_id in strategy._reservation_of for o in resting)
    assert sorted(float(o.price) for o in resting) == [59_640.0, 59_760.0, 59_880.0]
    book(world, BINANCE, 59_700)  # through the first two slices
    run(world, strategy, 3)
    assert [f["side"] for f in fills(world)] == ["BUY", "BUY"]
    book(world, BINANCE, 60_200)  # +0.8 % over the average entry: take profit
    run(world, strategy, 12)
    executor = _executor(strategy)
    assert executor.close_type is not None and executor.close_type.name == "TAKE_PROFIT"
    sides = [f["side"] for f in fills(world)]
    assert sides == ["BUY", "BUY", "SELL"]
    closes = [d for d in decisions(world) if d["reduce_only"]]
    assert len(closes) == 1 and closes[0]["status"] == "ALLOWED"
    assert abs(world["gov"].orders.position(("paper", "binance", "BTC-USDT"))) < Decimal("1e-9")


def test_dca_slices_outside_the_collar_never_reach_the_exchange(world: dict[str, Any]) -> None:
    strategy = _dca(world, levels=3, level_step_pct=Decimal("0.02"))  # -2 %, -4 %, -6 %
    run(world, strategy, 8)
    assert strategy.decisions.get("PRICE_COLLAR", 0) >= 1
    prices = [float(o.price) for o in world["exchanges"][BINANCE].limit_orders]
    assert prices == [58_800.0]  # only the slice inside the 3 % collar rests


def test_dca_sizes_from_the_governors_capacity(world: dict[str, Any]) -> None:
    strategy = _dca(world, levels=2, total_amount_quote=Decimal(100_000))
    world["exchanges"][BINANCE].set_balance("USDT", 100_000)
    run(world, strategy, 5)
    resting = world["exchanges"][BINANCE].limit_orders
    assert len(resting) == 2
    max_order = world["gov"].settings.risk.max_order_notional_usd
    assert all(Decimal(o.quantity) * Decimal(o.price) <= max_order for o in resting)
    assert strategy.decisions.get("MAX_ORDER_NOTIONAL", 0) == 0  # sized to pass, not refused
    direct = strategy.buy(BINANCE, "BTC-USDT", Decimal("0.05"), _limit(), Decimal(59_900))
    assert direct.startswith("lyra-denied-") and strategy.last_decision.code is DenialCode.MAX_ORDER_NOTIONAL


def test_dca_in_a_gradual_stop_cancels_its_slices_and_closes_reduce_only(world: dict[str, Any]) -> None:
    strategy = _dca(world, levels=3, level_step_pct=Decimal("0.002"))
    run(world, strategy, 5)
    book(world, BINANCE, 59_850)  # the first slice fills
    run(world, strategy, 3)
    assert [f["side"] for f in fills(world)] == ["BUY"]
    gradual_stop(world)
    run(world, strategy, 12)
    assert [f["side"] for f in fills(world)] == ["BUY", "SELL"]  # closed through the governor
    assert not world["exchanges"][BINANCE].limit_orders  # the other slices were cancelled
    assert not [e for e in strategy.executor_orchestrator.active_executors["main"] if e.is_active]
    assert strategy.dca_config() is None  # no new DCA in a gradual stop
    refused = strategy.buy(BINANCE, "BTC-USDT", Decimal("0.0005"), _limit(), Decimal(59_800))
    assert refused.startswith("lyra-denied-") and strategy.last_decision.code is DenialCode.REDUCE_ONLY


def _limit() -> Any:
    from hummingbot.core.data_type.common import OrderType

    return OrderType.LIMIT


def _running_dca(world: dict[str, Any], mid: int) -> tuple[Any, Any]:
    """A three-slice DCA strategy run 5 s, the book moved to `mid`, run 3 s more: it and its executor."""
    strategy = _dca(world, levels=3, level_step_pct=Decimal("0.002"), total_amount_quote=Decimal(90))
    run(world, strategy, 5)
    book(world, BINANCE, mid)
    run(world, strategy, 3)
    return strategy, _executor(strategy)


def _count_average_price(monkeypatch: Any) -> list[int]:
    """From now on, how often Hummingbot's DCA executor averages its fills (`[count]`)."""
    from hummingbot.strategy_v2.executors.dca_executor.dca_executor import DCAExecutor

    hummingbots = DCAExecutor.current_position_average_price
    averaged = [0]

    def counted(self: Any) -> Any:
        averaged[0] += 1
        return hummingbots.fget(self)

    monkeypatch.setattr(DCAExecutor, "current_position_average_price", property(counted))
    return averaged


def test_a_dca_control_step_derives_its_average_price_once(world: dict[str, Any], monkeypatch: Any) -> None:
    """Offline, a running DCA executor's step averages its fills once (stop loss, take profit
    and PnL each re-read it: 6 times a step before); outside a step each read is Hummingbot's."""
    from hummingbot.strategy_v2.executors.dca_executor.dca_executor import DCAExecutor

    _, executor = _running_dca(world, 59_700)  # through the first two slices
    averaged = _count_average_price(monkeypatch)
    executor._kept = None  # nothing carried over from the last step (see the next test)
    step = executor.control_task()  # one step, on its own
    with pytest.raises(StopIteration):
        step.send(None)
    assert averaged[0] == 1, averaged
    assert executor.status.name == "RUNNING" and executor._step_memo is None
    assert executor.net_pnl_pct == DCAExecutor.get_net_pnl_pct(executor)  # Hummingbot's, read outside a step


def test_a_dca_steps_average_price_carries_over_while_its_orders_stand(world: dict[str, Any], monkeypatch: Any) -> None:
    """The figures a DCA step derived from its slices (filled amount, average price, fees) are
    the next step's too while no slice or close changed: averaged once over five steps (five
    times before); a slice that fills makes the next step derive them again."""
    from hummingbot.strategy_v2.executors.dca_executor.dca_executor import DCAExecutor

    from lyra_strategies.paper.backtest import _orders_key

    strategy, executor = _running_dca(world, 59_830)  # through the first slice only
    averaged = _count_average_price(monkeypatch)
    for _ in range(5):
        step = executor.control_task()
        with pytest.raises(StopIteration):
            step.send(None)
    assert averaged[0] <= 1, averaged  # 5 on the old code
    assert executor.status.name == "RUNNING"
    kept = executor._kept
    assert kept is not None and kept[0] == _orders_key(executor._tracked_orders())
    assert executor.net_pnl_pct == DCAExecutor.get_net_pnl_pct(executor)
    averaged[0] = 0
    book(world, BINANCE, 59_700)  # the second slice fills
    run(world, strategy, 1, yields=0)  # the engine fills it (the loop may run the executor's step too)
    assert _orders_key(executor._tracked_orders()) != kept[0]
    step = executor.control_task()
    with pytest.raises(StopIteration):
        step.send(None)
    assert averaged[0] == 1  # derived once again, from the slices as they are now, then carried over
    assert executor.net_pnl_pct == DCAExecutor.get_net_pnl_pct(executor)
