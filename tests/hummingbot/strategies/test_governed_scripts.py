"""The four scripts on real Hummingbot: loaded by Hummingbot's own loader, run on
MockPaperExchange under a back-test Clock, every order through the governor."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lyra_governor.config import Settings
from lyra_governor.governor import Governor
from lyra_governor.models import DenialCode

SCRIPTS = ["lyra_market_making", "lyra_arbitrage", "lyra_rebalancer", "lyra_controllers"]
START = 1_767_225_600.0


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_loads_through_hummingbots_loader(name: str) -> None:
    from hummingbot.core.trading_core import TradingCore

    class Loader:  # TradingCore.load_v2_class only needs this one method of its instance
        def _load_strategy_config(self) -> dict[str, Any]:
            return {}

    strategy_class, config = TradingCore.load_v2_class(Loader(), name)  # type: ignore[arg-type]
    assert strategy_class.__module__ == f"scripts.{name}"
    assert type(config).__module__ == f"scripts.{name}"
    assert strategy_class.__mro__[1].__name__ == "GovernedStrategyV2Base"
    conf = Path(__file__).parents[3] / "conf" / "scripts" / f"conf_{name}.yml"
    assert conf.is_file()


@pytest.fixture
def world(settings: Settings, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A running event loop, two paper exchanges, Hummingbot's recorder, a governor in phase 3."""
    from hummingbot.connector.exchange.paper_trade.paper_trade_exchange import QuantizationParams
    from hummingbot.connector.test_support.mock_paper_exchange import MockPaperExchange

    from lyra_strategies.paper.replay import start_markets_recorder

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    exchanges = {"binance_paper_trade": MockPaperExchange(), "okx_paper_trade": MockPaperExchange()}
    for ex in exchanges.values():
        ex.set_balanced_order_book("BTC-USDT", 60_000, 59_000, 61_000, 10, 0.01)
        ex.set_quantization_param(QuantizationParams("BTC-USDT", 6, 6, 6, 6))
        ex.set_balance("USDT", 5_000)
        ex.set_balance("BTC", 0.1)
    now = [START]
    gov = Governor.from_settings(settings, "hb-test", clock=lambda: now[0])
    gov.ledger.set_phase(3, "test", "paper")
    recorder = loop.run_until_complete(
        _async(lambda: start_markets_recorder(list(exchanges.values()), tmp_path / "hb.sqlite"))
    )
    yield {"loop": loop, "exchanges": exchanges, "gov": gov, "now": now}
    recorder.stop()
    gov.close()
    # Cancel the strategies' background tasks while the loop still runs: a task left to the
    # garbage collector after close() spins in StrategyV2Base's `except Exception` retry loop.
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()
    asyncio.set_event_loop(asyncio.new_event_loop())  # later tests build Hummingbot objects that want one


async def _async(fn: Any) -> Any:
    return fn()


def _run(world: dict[str, Any], strategy: Any, seconds: int) -> None:
    """Tick exchanges then the strategy once per simulated second, as Hummingbot's Clock does."""
    from hummingbot.core.clock import Clock
    from hummingbot.core.clock_mode import ClockMode

    async def drive() -> None:
        clock = Clock(ClockMode.BACKTEST, 1.0, world["now"][0], world["now"][0] + seconds + 1)
        for ex in world["exchanges"].values():
            clock.add_iterator(ex)
        clock.add_iterator(strategy)
        for _ in range(seconds):
            world["now"][0] += 1
            clock.backtest_til(world["now"][0])

    world["loop"].run_until_complete(drive())


def _market_making(world: dict[str, Any], **overrides: Any) -> Any:
    from lyra_strategies.paper.replay import load_script

    strategy_cls, config_cls = load_script("lyra_market_making.py")
    config = config_cls(**{"order_amount": Decimal("0.001"), "refresh_s": 5, **overrides})
    strategy_cls.init_markets(config)
    strategy_cls.offline = True
    strategy_cls.book_timestamp = None

    async def build() -> Any:
        return strategy_cls(
            {"binance_paper_trade": world["exchanges"]["binance_paper_trade"]}, config, governor=world["gov"]
        )

    return world["loop"].run_until_complete(build())


def test_market_making_orders_pass_the_governor_and_fills_reach_the_ledger(world: dict[str, Any]) -> None:
    strategy = _market_making(world)
    _run(world, strategy, 12)
    assert strategy.decisions.get("ALLOWED", 0) >= 2
    assert strategy.get_active_orders("binance_paper_trade")
    # move the book through the bid: Hummingbot's paper engine fills it, the ledger records it
    world["exchanges"]["binance_paper_trade"].set_balanced_order_book("BTC-USDT", 59_700, 58_700, 60_700, 10, 0.01)
    _run(world, strategy, 3)
    fills = world["gov"].ledger.fill_rows(book="paper")
    assert fills and fills[0]["side"] == "BUY"
    assert world["gov"].ledger.exposure("paper").exchanges["binance"].deployed_usd > 0


def test_orders_above_the_cap_never_reach_the_exchange(world: dict[str, Any]) -> None:
    strategy = _market_making(world, order_amount=Decimal("0.05"))  # 3,000 USD per quote, cap 1,000
    exchange = world["exchanges"]["binance_paper_trade"]
    _run(world, strategy, 8)
    placed = [o for o in strategy.get_active_orders("binance_paper_trade")]
    for order in placed:  # sizing fitted them under the per-order limit, or they were refused
        assert order.quantity * order.price <= Decimal(250)
    direct = strategy.buy("binance_paper_trade", "BTC-USDT", Decimal("0.05"), _limit(), Decimal(59_990))
    assert direct.startswith("lyra-denied-")
    assert strategy.last_decision.code is DenialCode.MAX_ORDER_NOTIONAL
    assert all(o.client_order_id != direct for o in exchange.limit_orders)


def test_nan_or_zero_book_prices_produce_no_order(world: dict[str, Any]) -> None:
    strategy = _market_making(world)
    exchange = world["exchanges"]["binance_paper_trade"]
    exchange.set_balanced_order_book("BTC-USDT", 0.0, 0.0, 0.0, 10, 0.01)  # an empty book
    _run(world, strategy, 6)
    assert not strategy.get_active_orders("binance_paper_trade")
    proposal = strategy.proposal(
        __import__("lyra_governor.models", fromlist=["Side"]).Side.BUY,
        "binance_paper_trade",
        "BTC-USDT",
        Decimal("0.001"),
        _limit(),
        Decimal("NaN"),
        False,
    )
    assert world["gov"].review(proposal).code in (DenialCode.INVALID_MID_PRICE, DenialCode.INVALID_PRICE)


def test_halt_stops_new_orders_within_one_tick_and_cancels_open_ones(world: dict[str, Any], settings: Settings) -> None:
    from lyra_governor.ledger import Ledger

    strategy = _market_making(world)
    _run(world, strategy, 8)
    assert strategy.get_active_orders("binance_paper_trade")
    operator = Ledger.open(settings)
    operator.halt("operator stop", "operator")
    operator.close()
    time.sleep(0.3)  # the governor re-reads the store state at most every 0.25 s
    before = dict(strategy.decisions)
    _run(world, strategy, 12)
    assert strategy.decisions == before  # nothing proposed while halted
    assert not strategy.get_active_orders("binance_paper_trade")


def test_stale_book_pauses_quoting(world: dict[str, Any]) -> None:
    strategy = _market_making(world)
    type(strategy).book_timestamp = staticmethod(lambda _c, _p, now: now - 120)
    _run(world, strategy, 8)
    assert strategy.decisions.get("STALE_PRICE", 0) >= 1
    assert not strategy.get_active_orders("binance_paper_trade")
    type(strategy).book_timestamp = None


def _limit() -> Any:
    from hummingbot.core.data_type.common import OrderType

    return OrderType.LIMIT


def test_denied_orders_do_not_break_real_executors(world: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    """A PositionExecutor with a triple barrier, run by Hummingbot's own orchestrator, whose
    open order the governor refuses: the executor sees failed orders, gives up cleanly, and
    nothing reaches the exchange."""
    from hummingbot.connector.exchange.paper_trade.paper_trade_exchange import QuantizationParams
    from hummingbot.connector.test_support.mock_paper_exchange import MockPaperExchange
    from hummingbot.connector.trading_rule import TradingRule
    from hummingbot.core.data_type.common import TradeType
    from hummingbot.strategy_v2.executors.position_executor.data_types import (
        PositionExecutorConfig,
        TripleBarrierConfig,
    )
    from hummingbot.strategy_v2.models.executor_actions import CreateExecutorAction

    class PaperExchangeWithRules(MockPaperExchange):  # executors read trading rules; the mock has none
        @property
        def trading_rules(self) -> dict[str, TradingRule]:
            return {
                "BTC-USDT": TradingRule(
                    "BTC-USDT",
                    min_order_size=Decimal("0.00001"),
                    min_price_increment=Decimal("0.01"),
                    min_base_amount_increment=Decimal("0.000001"),
                    min_notional_size=Decimal(1),
                )
            }

    exchange = PaperExchangeWithRules()
    exchange.set_balanced_order_book("BTC-USDT", 60_000, 59_000, 61_000, 10, 0.01)
    exchange.set_quantization_param(QuantizationParams("BTC-USDT", 6, 6, 6, 6))
    exchange.set_balance("USDT", 5_000)
    exchange.set_balance("BTC", 0.1)
    world["exchanges"]["binance_paper_trade"] = exchange
    world["gov"].ledger.set_phase(2, "test", "phase 2 places no orders")
    world["gov"].ladder_state(fresh=True)
    strategy = _market_making(world, order_amount=Decimal("0.0001"), refresh_s=10_000)
    config = PositionExecutorConfig(
        timestamp=world["now"][0],
        trading_pair="BTC-USDT",
        connector_name="binance_paper_trade",
        side=TradeType.BUY,
        amount=Decimal("0.001"),
        entry_price=Decimal(59_990),
        triple_barrier_config=TripleBarrierConfig(
            stop_loss=Decimal("0.02"), take_profit=Decimal("0.02"), time_limit=600
        ),
    )

    async def drive() -> None:
        from hummingbot.core.clock import Clock
        from hummingbot.core.clock_mode import ClockMode

        clock = Clock(ClockMode.BACKTEST, 1.0, world["now"][0], world["now"][0] + 60)
        clock.add_iterator(exchange)
        clock.add_iterator(strategy)
        world["now"][0] += 1
        clock.backtest_til(world["now"][0])
        strategy.executor_orchestrator.execute_action(
            CreateExecutorAction(controller_id="main", executor_config=config)
        )
        for _ in range(40):
            world["now"][0] += 1
            clock.backtest_til(world["now"][0])
            for _ in range(5):
                await asyncio.sleep(0)

    world["loop"].run_until_complete(drive())
    assert strategy.decisions.get("PHASE_FORBIDS_ORDERS", 0) >= 1  # the executor's order was refused
    # ... and the executor took its own failed-order path (it logs and retries), no exception
    assert any("Open order failed lyra-denied-" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.exc_info]
    assert not exchange.limit_orders  # nothing reached the exchange
    executors = strategy.executor_orchestrator.get_all_reports()["main"]["executors"]
    assert executors and executors[0].filled_amount_quote == 0
