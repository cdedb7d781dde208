"""Bollinger mean reversion on real Hummingbot: a DirectionalTradingControllerBase controller
reading candles resampled from the paper book, its PositionExecutors' orders governed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from lyra_governor.models import DenialCode
from tests.hummingbot.strategies.world import book, build, decisions, fills, gradual_stop, run, warm_mandates, world

__all__ = ["world"]
BINANCE = "binance_paper_trade"


def _bollinger(world: dict[str, Any], **overrides: Any) -> Any:
    """1 s candles, a 5-candle band one deviation wide (a 5-close window can never put its
    last close two deviations out), sells off unless asked for."""
    warm_mandates(world, [BINANCE])
    strategy = build(world, "lyra_bollinger.py", [BINANCE],
                     **{"interval": "1s", "bb_length": 5, "bb_std": 1.0, "bb_short_threshold": 50.0,
                        "cooldown_s": 1, "max_executors_per_side": 1, **overrides})  # fmt: skip
    run(world, strategy, 1)
    strategy.start(None, world["now"][0])  # offline: starts the controller's loop
    run(world, strategy, 6)  # a flat book: a band of zero width, no signal
    assert strategy.controller.processed_data["percent_b"] is None and not strategy.decisions
    return strategy


def _positions(strategy: Any) -> list[Any]:
    return list(strategy.executor_orchestrator.active_executors.get("lyra_bollinger", []))


def test_a_close_under_the_band_opens_a_long_that_takes_profit_reduce_only(world: dict[str, Any]) -> None:
    strategy = _bollinger(world)
    book(world, BINANCE, 59_700)  # 0.5 % under four closes at 60,000: %B about -0.39
    run(world, strategy, 3)
    assert strategy.controller.processed_data["percent_b"] < 0 and strategy.controller.signals == 1
    run(world, strategy, 6)  # the MARKET open executes 5 s after it is placed
    assert [f["side"] for f in fills(world)] == ["BUY"]
    position = _positions(strategy)[0]
    assert position.config.triple_barrier_config.take_profit == Decimal("0.004")
    book(world, BINANCE, 60_000)  # +0.5 % over the entry: through the take profit
    run(world, strategy, 4)
    assert position.close_type is not None and position.close_type.name == "TAKE_PROFIT"
    assert [f["side"] for f in fills(world)] == ["BUY", "SELL"]
    closes = [d for d in decisions(world) if d["reduce_only"]]
    assert len(closes) == 1 and closes[0]["status"] == "ALLOWED"


def test_a_signal_into_a_flash_move_is_refused_by_the_collar(world: dict[str, Any]) -> None:
    strategy = _bollinger(world)
    book(world, BINANCE, 56_000)  # -6.7 % in one second
    run(world, strategy, 4)
    assert strategy.controller.signals >= 1
    assert strategy.decisions.get("PRICE_COLLAR", 0) >= 1 and strategy.decisions.get("ALLOWED", 0) == 0
    run(world, strategy, 6)
    assert not fills(world)


def test_positions_are_sized_from_the_governors_capacity(world: dict[str, Any]) -> None:
    world["exchanges"][BINANCE].set_balance("USDT", 100_000)
    strategy = _bollinger(world, total_amount_quote=Decimal(100_000))
    book(world, BINANCE, 59_700)
    run(world, strategy, 9)
    max_order = world["gov"].settings.risk.max_order_notional_usd
    bought = fills(world)
    assert len(bought) == 1 and Decimal(bought[0]["amount"]) * Decimal(bought[0]["price"]) <= max_order
    assert strategy.decisions.get("MAX_ORDER_NOTIONAL", 0) == 0


def test_in_a_gradual_stop_no_new_position_opens_and_the_stop_loss_still_closes(world: dict[str, Any]) -> None:
    strategy = _bollinger(world, stop_loss=Decimal("0.003"), cooldown_s=1, max_executors_per_side=3)
    book(world, BINANCE, 59_700)
    run(world, strategy, 9)
    assert [f["side"] for f in fills(world)] == ["BUY"]
    gradual_stop(world)
    assert strategy.budget_quote(_buy()) == 0
    book(world, BINANCE, 59_400)  # a fresh signal (under the band again) and through the stop loss
    run(world, strategy, 9)
    assert [f["side"] for f in fills(world)] == ["BUY", "SELL"]  # the stop loss passed, nothing new opened
    assert _positions(strategy)[0].close_type.name == "STOP_LOSS" and len(_positions(strategy)) == 1
    refused = strategy.buy(BINANCE, "BTC-USDT", Decimal("0.0005"), _market(), Decimal("NaN"))
    assert refused.startswith("lyra-denied-") and strategy.last_decision.code is DenialCode.REDUCE_ONLY


def test_executor_reports_are_rebuilt_when_an_executor_changes_not_every_tick(
    world: dict[str, Any], monkeypatch: Any
) -> None:
    """Hummingbot rebuilt every executor's report (its PnL, the controller's performance) each
    tick; the controller only counts its executors by side and status, so the reports are
    rebuilt when one starts, changes status or ends, and offline (nothing shows them) at least
    every 60 s, not 10 (live `status` shows their PnL: 10 s there)."""
    from lyra_strategies import governed

    strategy = _bollinger(world)
    assert strategy.offline
    orchestrator = strategy.executor_orchestrator
    built: list[float] = []
    rebuild = orchestrator.get_all_reports
    monkeypatch.setattr(orchestrator, "get_all_reports", lambda: built.append(world["now"][0]) or rebuild())
    book(world, BINANCE, 59_700)
    run(world, strategy, 30)  # a long opens (its executor starts, runs, fills) and stays open
    position = _positions(strategy)[0]
    assert [f["side"] for f in fills(world)] == ["BUY"] and position.is_active
    assert [e.id for e in strategy.controller.executors_info] == [position.config.id]  # the controller sees it
    changes = len(built)
    run(world, strategy, 130)  # nothing starts, changes status or ends: only the 60 s floor
    print(f"reports rebuilt {changes} times in the first 30 simulated s, {len(built) - changes} in the next 130")
    assert position.is_active and 1 <= changes <= 12  # every tick before: 30 or more
    assert 2 <= len(built) - changes <= 3  # a 10 s floor: 13
    assert governed.REPORTS_EVERY_S == 10.0  # live `status` keeps its PnL as fresh as before


def _buy() -> Any:
    from hummingbot.core.data_type.common import TradeType

    return TradeType.BUY


def _market() -> Any:
    from hummingbot.core.data_type.common import OrderType

    return OrderType.MARKET


def test_finished_positions_beyond_the_newest_two_go_to_hummingbots_database(world: dict[str, Any]) -> None:
    """StrategyV2Base keeps 100 finished executors by default and every report rebuild walks
    them all (the paper run's hour cost grew until 100 had closed): the script keeps 2."""
    strategy = _bollinger(world, time_limit_s=2)
    mid = 60_000.0
    for _ in range(45):  # a steady decline: every candle's close is under its band, a long each time
        mid *= 0.999
        book(world, BINANCE, mid)
        run(world, strategy, 2)
    done = [e for e in _positions(strategy) if e.is_closed]  # terminated (not shutting down)
    print(f"{strategy.controller.signals} signals, {len(done)} finished executors kept")
    assert strategy.controller.signals > 15
    assert len(done) == 2
