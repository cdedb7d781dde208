"""Lyra's scripts on real Hummingbot: all nine load through Hummingbot's own loader (one
strategy and one config class per file, on the governed base, each with its example conf); the
original four run on the paper engine under a back-test Clock, every order through the governor
(the five executor scripts have a test file each)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lyra_governor.config import Settings
from lyra_governor.models import DenialCode
from tests.hummingbot.strategies.world import build, count_capacity_reads, decisions, paper_world, run

SCRIPTS = ["lyra_market_making", "lyra_arbitrage", "lyra_rebalancer", "lyra_controllers", "lyra_dca", "lyra_grid",
           "lyra_xemm", "lyra_dynamic_market_making", "lyra_bollinger"]  # fmt: skip


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
    """Two paper exchanges with $5,000 and 0.1 BTC each, Hummingbot's recorder, a governor in phase 3."""
    yield from paper_world(settings, tmp_path, usdt=5_000, btc=0.1)


def _market_making(world: dict[str, Any], **overrides: Any) -> Any:
    return build(world, "lyra_market_making.py", ["binance_paper_trade"],
                 **{"order_amount": Decimal("0.001"), "refresh_s": 5, **overrides})  # fmt: skip


def test_market_making_orders_pass_the_governor_and_fills_reach_the_ledger(world: dict[str, Any]) -> None:
    strategy = _market_making(world)
    run(world, strategy, 12)
    assert strategy.decisions.get("ALLOWED", 0) >= 2
    assert strategy.get_active_orders("binance_paper_trade")
    # move the book through the bid: Hummingbot's paper engine fills it, the ledger records it
    world["exchanges"]["binance_paper_trade"].set_balanced_order_book("BTC-USDT", 59_700, 58_700, 60_700, 10, 0.01)
    run(world, strategy, 3)
    fills = world["gov"].ledger.fill_rows(book="paper")
    assert fills and fills[0]["side"] == "BUY"
    assert world["gov"].ledger.exposure("paper").exchanges["binance"].deployed_usd > 0


def test_on_hummingbots_own_paper_connector_market_making_quotes_plain_governed_orders(
    world: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """`binance_paper_trade` in the Hummingbot terminal is this engine without trading rules or
    an order tracker: no executors, so the ladder is quoted as plain governed limit orders."""
    from hummingbot.connector.exchange.paper_trade.paper_trade_exchange import QuantizationParams
    from hummingbot.connector.test_support.mock_paper_exchange import MockPaperExchange

    exchange = MockPaperExchange()
    exchange.set_balanced_order_book("BTC-USDT", 60_000, 59_000, 61_000, 10, 0.01)
    exchange.set_quantization_param(QuantizationParams("BTC-USDT", 6, 6, 6, 6))
    exchange.set_balance("USDT", 5_000)
    exchange.set_balance("BTC", 0.1)
    world["exchanges"] = {"binance_paper_trade": exchange}
    strategy = _market_making(world)
    assert not strategy.executors_supported("binance_paper_trade")
    run(world, strategy, 12)
    assert strategy.decisions.get("ALLOWED", 0) >= 2 and exchange.limit_orders
    assert sum("quoting with plain governed orders" in r.getMessage() for r in caplog.records) == 1
    exchange.set_balanced_order_book("BTC-USDT", 59_700, 58_700, 60_700, 10, 0.01)  # through the bid
    run(world, strategy, 3)
    fills = world["gov"].ledger.fill_rows(book="paper")
    assert fills and fills[0]["side"] == "BUY"


def test_orders_above_the_cap_never_reach_the_exchange(world: dict[str, Any]) -> None:
    strategy = _market_making(world, order_amount=Decimal("0.05"))  # 3,000 USD per quote, cap 1,000
    exchange = world["exchanges"]["binance_paper_trade"]
    run(world, strategy, 8)
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
    run(world, strategy, 6)
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
    run(world, strategy, 8)
    assert strategy.get_active_orders("binance_paper_trade")
    operator = Ledger.open(settings)
    operator.halt("operator stop", "operator")
    operator.close()
    time.sleep(0.3)  # the governor re-reads the store state at most every 0.25 s
    before = dict(strategy.decisions)
    run(world, strategy, 12)
    assert strategy.decisions == before  # nothing proposed while halted
    assert not strategy.get_active_orders("binance_paper_trade")


def test_stale_book_pauses_quoting(world: dict[str, Any]) -> None:
    strategy = _market_making(world)
    type(strategy).book_timestamp = staticmethod(lambda _c, _p, now: now - 120)
    run(world, strategy, 8)
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


# --- risk on every market-making position: Hummingbot's triple barrier ------------------------


def _executors(strategy: Any) -> list[Any]:
    return list(strategy.executor_orchestrator.active_executors.get("main", []))


def _level(strategy: Any, level_id: str) -> Any:
    return next(e for e in reversed(_executors(strategy)) if e.config.level_id == level_id)


def _book(world: dict[str, Any], mid: float) -> None:
    world["exchanges"]["binance_paper_trade"].set_balanced_order_book(
        "BTC-USDT", mid, mid - 1_000, mid + 1_000, 10, 0.01
    )


def _filled_bid(world: dict[str, Any], **overrides: Any) -> tuple[Any, Any]:
    """The market-making script with one level; its bid executor is filled (the book moved
    through it). Returns (strategy, the filled buy_0 executor)."""
    strategy = _market_making(world, refresh_s=10_000, refresh_tolerance_bps=10_000, **overrides)
    run(world, strategy, 8)
    bid = _level(strategy, "buy_0")
    assert bid.config.triple_barrier_config.stop_loss == strategy.config.stop_loss
    resting = world["exchanges"]["binance_paper_trade"].limit_orders
    assert any(o.client_order_id in strategy._reservation_of for o in resting)
    _book(world, 59_900)  # asks at 59,910: through the 59,940 bid
    run(world, strategy, 3)
    assert bid.is_trading and bid.open_filled_amount > 0
    return strategy, bid


def _deployed(world: dict[str, Any]) -> Decimal:
    return Decimal(world["gov"].ledger.exposure("paper").exchanges["binance"].deployed_usd)


def test_stop_loss_closes_a_filled_quote_through_the_governor_in_a_gradual_stop(world: dict[str, Any]) -> None:
    from hummingbot.strategy_v2.models.executor_actions import CreateExecutorAction
    from hummingbot.strategy_v2.models.executors import CloseType

    strategy, bid = _filled_bid(world, stop_loss=Decimal("0.01"), take_profit=Decimal("0.02"))
    deployed = _deployed(world)
    assert deployed > Decimal(50)  # the filled bid: about 0.001 BTC at 59,940
    world["gov"].ledger.reduce_only("operator gradual stop", "operator")
    world["gov"].ladder_state(fresh=True)
    before = dict(strategy.decisions)
    _book(world, 58_900)  # 1.7 % below the entry: through the 1 % stop-loss, inside the 3 % collar
    run(world, strategy, 8)  # the paper engine executes a MARKET order 5 s after it is placed
    assert bid.close_type is CloseType.STOP_LOSS
    close = bid._close_order
    assert close is not None and not close.order_id.startswith("lyra-denied-")
    assert close.is_filled  # Hummingbot's paper engine filled the governed MARKET sell
    assert _deployed(world) < deployed / 10  # its fill released the deployed capital
    # the gradual stop: the script opens no new level, the unfilled ask was stopped ...
    assert not [e for e in _executors(strategy) if e.is_active]
    assert strategy.decisions.get("ALLOWED", 0) > before.get("ALLOWED", 0)  # the close passed
    # ... and a new quote, even from an executor, is refused by the governor
    config = strategy.quote_configs(Decimal(58_900), set())[0]
    strategy.executor_orchestrator.execute_action(CreateExecutorAction(controller_id="main", executor_config=config))
    run(world, strategy, 2)
    assert strategy.decisions.get("REDUCE_ONLY", 0) >= 1
    assert strategy.last_decision is not None and strategy.last_decision.code is DenialCode.REDUCE_ONLY
    assert not [o for o in world["exchanges"]["binance_paper_trade"].limit_orders if o.price > 50_000 and o.is_buy]


def test_time_limit_closes_a_filled_quote_and_releases_the_ledger(world: dict[str, Any]) -> None:
    from hummingbot.strategy_v2.models.executors import CloseType

    strategy, bid = _filled_bid(world, time_limit_s=20)
    deployed = _deployed(world)
    assert deployed > Decimal(50)
    run(world, strategy, 20)  # 20 s after the executor was created, then the MARKET close fills 5 s later
    assert bid.close_type is CloseType.TIME_LIMIT
    assert bid._close_order is not None and bid._close_order.is_filled
    assert _deployed(world) < deployed / 10
    fills = world["gov"].ledger.fill_rows(book="paper")
    assert [f["side"] for f in fills][-1] == "SELL"


# --- an upstream V2 controller, loaded the way Hummingbot loads it, run under the governor ----

CONTROLLER_MODULE = '''
from decimal import Decimal

from hummingbot.strategy_v2.controllers.market_making_controller_base import (
    MarketMakingControllerBase,
    MarketMakingControllerConfigBase,
)
from hummingbot.strategy_v2.executors.position_executor.data_types import PositionExecutorConfig


class LyraTestMMConfig(MarketMakingControllerConfigBase):
    controller_name: str = "lyra_test_mm"


class LyraTestMM(MarketMakingControllerBase):
    """pmm_simple in miniature: one PositionExecutor per spread level."""

    def get_executor_config(self, level_id: str, price: Decimal, amount: Decimal):
        return PositionExecutorConfig(
            timestamp=self.market_data_provider.time(),
            level_id=level_id,
            connector_name=self.config.connector_name,
            trading_pair=self.config.trading_pair,
            entry_price=price,
            amount=amount,
            triple_barrier_config=self.config.triple_barrier_config,
            leverage=self.config.leverage,
            side=self.get_trade_type_from_level_id(level_id),
        )
'''

CONTROLLER_YAML = """
id: lyra_test_mm_1
controller_name: lyra_test_mm
controller_type: market_making
connector_name: binance_paper_trade
trading_pair: BTC-USDT
total_amount_quote: 200
buy_spreads: 0.001,0.05
sell_spreads: 0.001
buy_amounts_pct: 1,1
sell_amounts_pct: 1
leverage: 1
position_mode: ONEWAY
skip_rebalance: true
stop_loss: 0.02
take_profit: 0.01
time_limit: 600
"""


def test_an_upstream_controller_runs_under_the_governor(
    world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A MarketMakingControllerBase subclass in `<root>/controllers/market_making/`, its YAML in
    `<root>/conf/controllers/`, loaded by Hummingbot's own `load_controller_configs`: its
    executors' orders pass the governor; the allowed ones rest on the paper exchange, the one
    the collar refuses (the 5 % bid) never reaches it."""
    from hummingbot.client import settings as hb_settings

    from lyra_strategies.paper.replay import load_script

    package = tmp_path / "controllers" / "market_making"
    package.mkdir(parents=True)
    (tmp_path / "controllers" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "lyra_test_mm.py").write_text(CONTROLLER_MODULE)
    conf_dir = tmp_path / "conf" / "controllers"
    conf_dir.mkdir(parents=True)
    (conf_dir / "lyra_test_mm.yml").write_text(CONTROLLER_YAML)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(hb_settings, "CONTROLLERS_CONF_DIR_PATH", conf_dir)

    strategy_cls, config_cls = load_script("lyra_controllers.py")
    config = config_cls(controllers_config=["lyra_test_mm.yml"])
    strategy_cls.init_markets(config)
    assert strategy_cls.markets == {"binance_paper_trade": {"BTC-USDT"}}
    strategy_cls.offline = True
    strategy_cls.book_timestamp = None

    async def build() -> Any:
        return strategy_cls(
            {"binance_paper_trade": world["exchanges"]["binance_paper_trade"]}, config, governor=world["gov"]
        )

    strategy = world["loop"].run_until_complete(build())
    assert type(strategy.controllers["lyra_test_mm_1"]).__name__ == "LyraTestMM"
    exchange = world["exchanges"]["binance_paper_trade"]
    run(world, strategy, 1)
    strategy.start(None, world["now"][0])  # offline: starts the controllers' loops
    run(world, strategy, 15)

    executors = strategy.executor_orchestrator.active_executors["lyra_test_mm_1"]
    assert {e.config.level_id for e in executors} >= {"buy_0", "buy_1", "sell_0"}
    assert strategy.decisions.get("ALLOWED", 0) >= 2
    assert strategy.decisions.get("PRICE_COLLAR", 0) >= 1  # buy_1, 5 % under mid
    resting = exchange.limit_orders
    assert resting and all(o.client_order_id in strategy._reservation_of for o in resting)  # all governed
    assert not [o for o in resting if o.price < 58_000]  # the refused level never reached the exchange
    prices = sorted(float(o.price) for o in resting)
    assert prices[0] == pytest.approx(59_940, rel=1e-3) and prices[-1] == pytest.approx(60_060, rel=1e-3)


def _arbitrage(world: dict[str, Any]) -> Any:
    strategy = build(world, "lyra_arbitrage.py", list(world["exchanges"]), max_amount=Decimal("0.001"),
                     cooldown_s=10_000)  # fmt: skip
    world["exchanges"]["okx_paper_trade"].set_balanced_order_book("BTC-USDT", 60_100, 59_100, 61_100, 10, 0.01)
    run(world, strategy, 6)  # both markets observed for the reference (5 s of history); no edge after fees
    assert strategy.taken == 0
    return strategy


def _fills(world: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["exchange"], f["side"]) for f in world["gov"].ledger.fill_rows(book="paper")]


def test_arbitrage_cancels_its_first_leg_when_the_governor_refuses_the_hedge(world: dict[str, Any]) -> None:
    """okx jumps 4 %: the binance buy passes, the okx sell is refused by the collar; the buy
    is cancelled before it can fill, so nothing is left unhedged and nothing reaches okx."""
    strategy = _arbitrage(world)
    world["exchanges"]["okx_paper_trade"].set_balanced_order_book("BTC-USDT", 62_500, 61_500, 63_500, 10, 0.01)
    run(world, strategy, 10)
    assert strategy.decisions.get("PRICE_COLLAR", 0) >= 1 and strategy.decisions.get("ALLOWED", 0) >= 1
    assert strategy.taken == 0 and not strategy._legs
    assert not _fills(world)
    assert not world["exchanges"]["binance_paper_trade"].limit_orders



def test_arbitrage_closes_the_filled_leg_when_the_exchange_cancels_the_hedge(world: dict[str, Any]) -> None:
    """okx cannot fill the sell (its BTC went elsewhere after the order was placed): its paper
    engine cancels it. The binance buy has filled, so the script closes it with a governed
    reduce-only MARKET sell: flat again, and the cancel counts as an exchange failure."""
    strategy = _arbitrage(world)
    _warm_mandates(world)
    okx = world["exchanges"]["okx_paper_trade"]
    okx.set_balanced_order_book("BTC-USDT", 60_400, 59_400, 61_400, 10, 0.01)  # +0.5 %: an edge after fees
    run(world, strategy, 1)  # both legs placed
    assert strategy.taken == 1
    okx.set_balance("BTC", 0)
    run(world, strategy, 12)  # the paper engine executes MARKET orders 5 s after they are placed
    assert strategy.unwinds == 1 and strategy.exchange_failures == 1
    assert _fills(world) == [("binance", "BUY"), ("binance", "SELL")]
    closes = [d for d in decisions(world) if d["reduce_only"]]
    assert len(closes) == 1 and closes[0]["status"] == "ALLOWED" and closes[0]["side"] == "SELL"
    assert abs(world["gov"].orders.position(("paper", "binance", "BTC-USDT"))) < Decimal("1e-12")  # flat (float dust)
    assert not strategy._legs


def test_arbitrage_cancels_a_leg_that_missed_the_market(world: dict[str, Any]) -> None:
    """Both legs pass, but okx's book moves away before its sell can cross: after
    `leg_timeout_s` the resting sell is cancelled and the filled buy is closed."""
    strategy = _arbitrage(world)
    _warm_mandates(world)
    strategy.config.leg_timeout_s = 3
    okx = world["exchanges"]["okx_paper_trade"]
    okx.set_balanced_order_book("BTC-USDT", 60_400, 59_400, 61_400, 10, 0.01)
    run(world, strategy, 1)  # both legs placed on this tick
    okx.set_balanced_order_book("BTC-USDT", 60_000, 59_000, 61_000, 10, 0.01)  # the bid falls under the sell
    run(world, strategy, 14)
    assert strategy.taken == 1 and strategy.unwinds == 1
    assert _fills(world) == [("binance", "BUY"), ("binance", "SELL")]
    assert not okx.limit_orders and not strategy._legs


def _warm_mandates(world: dict[str, Any]) -> None:
    """The council's mandate for both markets, as after the script's first (pending) proposals."""
    from lyra_governor.models import OrderProposal, Side

    for connector in ("binance_paper_trade", "okx_paper_trade"):
        proposal = OrderProposal(
            bot_id="hb-test", connector=connector, trading_pair="BTC-USDT", side=Side.BUY, amount=Decimal("0.0001"),
            price=Decimal(60_000), mid_price=Decimal(60_000), mid_price_ts=world["now"][0],
        )  # fmt: skip
        assert world["gov"].review(proposal).code.value == "NO_MANDATE"
        assert world["gov"].mandates.find(proposal, Decimal(6), world["now"][0]) is not None


def test_rebalancer_trades_toward_its_targets_through_the_governor(world: dict[str, Any]) -> None:
    """All cash on okx, targets 40 % BTC / 20 % ETH: governed buys of both, sized under the
    caps, filled by the paper engine into the ledger; stale orders are cancelled each check."""
    from hummingbot.connector.exchange.paper_trade.paper_trade_exchange import QuantizationParams

    okx = world["exchanges"]["okx_paper_trade"]
    okx.set_balanced_order_book("ETH-USDT", 3_000, 2_950, 3_050, 1, 0.1)
    okx.set_quantization_param(QuantizationParams("ETH-USDT", 6, 6, 6, 6))
    okx.set_balance("BTC", 0)
    okx.set_balance("ETH", 0)
    strategy = build(world, "lyra_rebalancer.py", ["okx_paper_trade"], check_every_s=5)
    run(world, strategy, 16)  # first check asks the council (pending), the next ones trade
    assert strategy.decisions.get("ALLOWED", 0) >= 2
    bought = {f["trading_pair"] for f in world["gov"].ledger.fill_rows(book="paper") if f["side"] == "BUY"}
    assert bought == {"BTC-USDT", "ETH-USDT"}
    exposure = world["gov"].ledger.exposure("paper")
    assert 0 < exposure.exchanges["okx"].used_usd <= exposure.exchanges["okx"].cap_usd
    assert Decimal(okx.get_balance("BTC")) > 0 and Decimal(okx.get_balance("ETH")) > 0


def test_a_refused_quote_level_rests_instead_of_retrying_every_second(world: dict[str, Any]) -> None:
    """A 10 % flash move: the collar refuses the quotes. Each level rests `refresh_s` after a
    refusal, so 20 s of the move cost a few denials per level, not one per level per second."""
    strategy = _market_making(world, refresh_s=5)
    run(world, strategy, 8)  # quoting normally; the governor has its reference mid
    world["exchanges"]["binance_paper_trade"].set_balanced_order_book("BTC-USDT", 54_000, 53_000, 55_000, 10, 0.01)
    before = strategy.decisions.get("PRICE_COLLAR", 0)
    run(world, strategy, 20)
    refused = strategy.decisions.get("PRICE_COLLAR", 0) - before
    assert 2 <= refused <= 2 * (20 // 5 + 1), refused  # buy_0 and sell_0, once per rest period at most


def test_arbitrage_sizes_to_what_both_venues_can_settle(world: dict[str, Any]) -> None:
    """Only 0.0003 BTC on okx: the pair is sized to it, not to the 0.001 BTC the edge allows."""
    strategy = _arbitrage(world)
    _warm_mandates(world)
    okx = world["exchanges"]["okx_paper_trade"]
    okx.set_balance("BTC", 0.0003)
    okx.set_balanced_order_book("BTC-USDT", 60_400, 59_400, 61_400, 10, 0.01)
    run(world, strategy, 3)
    assert strategy.taken == 1 and strategy.exchange_failures == 0
    amounts = {f["side"]: Decimal(f["amount"]) for f in world["gov"].ledger.fill_rows(book="paper")}
    assert Decimal("0.0002") < amounts["BUY"] == amounts["SELL"] <= Decimal("0.000294")


def test_the_connectors_book_feeds_the_councils_market_context(world: dict[str, Any]) -> None:
    """Spread and depth come from Hummingbot's own order book; the governor's market history
    turns the observations into the council's market context."""
    from lyra_strategies.governed import _depth_within

    strategy = _market_making(world)
    run(world, strategy, 30)
    snapshot = world["gov"].watch.snapshot("binance_paper_trade", "BTC-USDT")
    book = world["exchanges"]["binance_paper_trade"].get_order_book("BTC-USDT")
    expected = sum(r.price * r.amount for r in book.bid_entries() if r.price >= 60_000 * 0.99) + sum(
        r.price * r.amount for r in book.ask_entries() if r.price <= 60_000 * 1.01
    )
    assert snapshot.depth_usd == pytest.approx(expected) and snapshot.depth_usd > 0
    assert _depth_within(object(), "BTC-USDT", 60_000.0) == 0.0  # a connector without a local book  # type: ignore[arg-type]
    mc = world["gov"].market_history.context("binance_paper_trade", "BTC-USDT", world["now"][0])
    assert mc is not None and mc.depth_usd == pytest.approx(expected) and mc.spread_pct is not None
    assert mc.mid_price == pytest.approx(60_000, rel=0.01)


def test_scripts_reading_one_book_in_one_second_hand_over_one_snapshot(world: dict[str, Any]) -> None:
    """The quote is converted and the snapshot built once per book and second: a second script
    on the same book gets the same (frozen) snapshot, a fresh build's equal; a new quote or a
    new second gives a new one, and every observation still reaches the governor."""
    market_making, arbitrage = _market_making(world), _arbitrage(world)
    watch, now = world["gov"].watch, world["now"][0]
    market_making.observe_markets(now)
    first = watch.snapshot("binance_paper_trade", "BTC-USDT")
    arbitrage.observe_markets(now)
    assert watch.snapshot("binance_paper_trade", "BTC-USDT") is first
    assert watch.snapshot("okx_paper_trade", "BTC-USDT") is not None  # arbitrage's other market
    book = world["exchanges"]["binance_paper_trade"].get_order_book("BTC-USDT")
    bid, ask = Decimal(str(book.get_price(False))), Decimal(str(book.get_price(True)))
    assert (first.best_bid, first.best_ask, first.mid_price, first.timestamp) == (bid, ask, (bid + ask) / 2, now)
    assert first.spread_pct == float((ask - bid) / ((bid + ask) / 2) * 100) and first.depth_usd > 0
    from lyra_strategies.governed import _depth_within

    exchange = world["exchanges"]["binance_paper_trade"]
    assert first.depth_usd == _depth_within(exchange, "BTC-USDT", float(first.mid_price))  # measured once, shared

    arbitrage.observe_markets(now + 1)  # the same quote a second later: a new snapshot, the same prices
    later = watch.snapshot("binance_paper_trade", "BTC-USDT")
    assert later is not first and later.timestamp == now + 1 and later.mid_price == first.mid_price
    history = world["gov"].watch.history("binance_paper_trade", "BTC-USDT")
    assert history is not None and history.latest == (int(now + 1), first.mid_price)

    world["exchanges"]["binance_paper_trade"].set_balanced_order_book("BTC-USDT", 60_500, 59_500, 61_500, 10, 0.01)
    market_making.observe_markets(now + 1)  # a new quote in the same second: built anew
    moved = watch.snapshot("binance_paper_trade", "BTC-USDT")
    assert moved is not later and moved.mid_price == Decimal(60_500)
    assert market_making._mid("binance_paper_trade", "BTC-USDT") == Decimal(60_500)


def test_a_filled_quotes_control_step_derives_its_position_once(world: dict[str, Any]) -> None:
    """Offline, a running position executor's control step rounds its filled amount once (not
    once per read: stop loss, take profit and PnL each re-read it) and reads no mid when it has
    no activation bounds; outside a step, and after the step, every figure is Hummingbot's."""
    from hummingbot.strategy_v2.executors.position_executor.position_executor import PositionExecutor

    _strategy, bid = _filled_bid(world)
    exchange = world["exchanges"]["binance_paper_trade"]
    calls = {"round": 0, "mid": 0}
    round_amount, mid_price = exchange.quantize_order_amount, exchange.get_mid_price

    def counted_round(*args: Any, **kwargs: Any) -> Any:
        calls["round"] += 1
        return round_amount(*args, **kwargs)

    def counted_mid(*args: Any, **kwargs: Any) -> Any:
        calls["mid"] += 1
        return mid_price(*args, **kwargs)

    exchange.quantize_order_amount, exchange.get_mid_price = counted_round, counted_mid
    bid._kept = None  # nothing carried over from the last step (see the next test)
    step = bid.control_task()  # one step, on its own (no other task of the loop runs meanwhile)
    try:
        with pytest.raises(StopIteration):
            step.send(None)
    finally:
        del exchange.quantize_order_amount, exchange.get_mid_price
    assert calls == {"round": 1, "mid": 0}, calls  # 6 roundings and a mid per step before
    assert bid.is_trading and bid._step_memo is None  # nothing remembered outside a step
    assert bid.open_filled_amount == PositionExecutor.open_filled_amount.fget(bid) > 0
    assert bid.net_pnl_pct == PositionExecutor.get_net_pnl_pct(bid)


def _step(executor: Any) -> None:
    step = executor.control_task()  # one step, on its own (no other task of the loop runs meanwhile)
    with pytest.raises(StopIteration):
        step.send(None)


def test_a_filled_quotes_figures_carry_over_to_the_next_step_until_its_orders_change(
    world: dict[str, Any],
) -> None:
    """The figures a step derived from the executor's orders (filled amount, entry price, fees)
    are the next step's too while the orders are as that step left them: its filled amount is
    rounded once over many steps (once a step before), and again as soon as an order changes
    (here the take profit fills); every figure still equals Hummingbot's own."""
    from hummingbot.strategy_v2.executors.position_executor.position_executor import PositionExecutor

    strategy, bid = _filled_bid(world, take_profit=Decimal("0.005"))
    exchange = world["exchanges"]["binance_paper_trade"]
    _step(bid)  # the take profit is placed by now: the orders stand from here on
    assert bid._take_profit_limit_order is not None
    calls = [0]
    round_amount = exchange.quantize_order_amount

    def counted_round(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return round_amount(*args, **kwargs)

    exchange.quantize_order_amount = counted_round
    try:
        for _ in range(5):
            _step(bid)
        assert calls[0] == 0, calls  # 5 on the old code: one a step
        assert bid.open_filled_amount == PositionExecutor.open_filled_amount.fget(bid) > 0
        assert bid.get_cum_fees_quote() == PositionExecutor.get_cum_fees_quote(bid)
        kept = bid._kept
        assert kept is not None and kept[0] == _orders_key_of(bid)
        take_profit = bid._take_profit_limit_order.order
        fills = len(take_profit.order_fills)
        _book(world, 60_400)  # bids at 60,395: through the take profit at 59,940 x 1.005 = 60,239.7
        run(world, strategy, 1, yields=0)  # the engine fills it; no executor step yet
        assert len(take_profit.order_fills) > fills and _orders_key_of(bid) != kept[0]
        seen: list[dict[str, Any]] = []
        step = bid._running_step(lambda: seen.append(dict(bid._step_memo or {})))
        with pytest.raises(StopIteration):
            step.send(None)
        assert seen == [{}]  # the next step derives every figure again, from the orders as they are now
        assert bid.open_filled_amount == PositionExecutor.open_filled_amount.fget(bid)
    finally:
        del exchange.quantize_order_amount


def _orders_key_of(executor: Any) -> Any:
    from lyra_strategies.paper.backtest import _orders_key

    return _orders_key(executor._tracked_orders())


def test_a_filled_quotes_control_step_values_its_position_once(world: dict[str, Any], monkeypatch: Any) -> None:
    """The step's position value (filled amount x entry price) is read three times a step
    (the barriers' guard, twice in the PnL %): computed once, Hummingbot's figure after it."""
    from hummingbot.strategy_v2.executors.position_executor.position_executor import PositionExecutor

    _strategy, bid = _filled_bid(world)
    computed = [0]
    value = PositionExecutor.open_filled_amount_quote.fget

    def counted(self: Any) -> Any:
        computed[0] += 1
        return value(self)

    monkeypatch.setattr(PositionExecutor, "open_filled_amount_quote", property(counted))
    bid._kept = None  # nothing carried over from the last step
    step = bid.control_task()
    with pytest.raises(StopIteration):
        step.send(None)
    assert computed[0] == 1, computed  # 3 on the old code
    assert bid._step_memo is None and bid.open_filled_amount_quote == value(bid) > 0


def test_a_level_too_small_to_quote_is_sized_again_in_a_while_not_every_second(world: dict[str, Any]) -> None:
    """Quotes worth $0.60 (under the $5 minimum): nothing is placed, and the governor's
    capacity is read once per `RETRY_S`, not every second; a level that can be sized is."""
    strategy = _market_making(world, order_amount=Decimal("0.00001"))
    reads = count_capacity_reads(world)
    run(world, strategy, 20)
    assert not strategy.get_active_orders("binance_paper_trade")
    assert 1 <= reads[0] <= 20 // 5 + 1, reads  # 20 reads on the old code
    strategy.config.order_amount = Decimal("0.001")  # worth quoting: placed at the next sizing
    run(world, strategy, 8)
    assert strategy.get_active_orders("binance_paper_trade")


def test_a_level_the_balance_cannot_pay_reads_no_capacity(world: dict[str, Any]) -> None:
    """$1 and no BTC on binance: no level can be paid for, so no quote, and the governor's
    capacity is never read for one (once per sizing on the old code)."""
    exchange = world["exchanges"]["binance_paper_trade"]
    exchange.set_balance("USDT", 1)
    exchange.set_balance("BTC", 0)
    strategy = _market_making(world)
    reads = count_capacity_reads(world)
    run(world, strategy, 12)
    assert not strategy.get_active_orders("binance_paper_trade") and reads[0] == 0, reads
    exchange.set_balance("USDT", 500)  # the bid can be paid for: read, sized, placed at the next sizing
    run(world, strategy, 6)
    assert strategy.get_active_orders("binance_paper_trade") and reads[0] > 0


def test_an_edge_neither_venue_can_settle_reads_no_capacity(world: dict[str, Any]) -> None:
    """An edge, but no BTC on okx to sell there: nothing is sent and the governor's capacity
    is never read (both exchanges' once per second on the old code); funded, the pair goes."""
    strategy = _arbitrage(world)
    _warm_mandates(world)
    okx = world["exchanges"]["okx_paper_trade"]
    okx.set_balance("BTC", 0)
    okx.set_balanced_order_book("BTC-USDT", 60_400, 59_400, 61_400, 10, 0.01)
    reads = count_capacity_reads(world)
    run(world, strategy, 4)
    assert strategy.seen >= 4 and strategy.taken == 0 and reads[0] == 0, (strategy.seen, reads)
    okx.set_balance("BTC", 0.001)
    run(world, strategy, 2)
    assert strategy.taken == 1 and reads[0] == 2
