"""A paper world for the executor strategies' tests: Hummingbot's paper engine
(`PaperExchange`) on binance and okx, Hummingbot's trade recorder, a governor in phase 3, and
helpers to load a script the way Hummingbot does and tick it on the back-test clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lyra_governor.config import Settings
from lyra_governor.governor import Governor
from lyra_governor.models import MarketSnapshot, OrderProposal, Side
from tests.loops import shut_down

START = 1_767_225_600.0


@pytest.fixture
def world(settings: Settings, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """$500 and 0.01 BTC on each exchange."""
    yield from paper_world(settings, tmp_path, usdt=500, btc=0.01)


def paper_world(settings: Settings, tmp_path: Path, usdt: float, btc: float) -> Iterator[dict[str, Any]]:
    """The world, `usdt` and `btc` on each exchange (a fixture's body: yields it, then closes it)."""
    from hummingbot.connector.exchange.paper_trade.paper_trade_exchange import QuantizationParams

    from lyra_strategies.paper.exchange import PaperExchange
    from lyra_strategies.paper.replay import start_markets_recorder

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    exchanges = {"binance_paper_trade": PaperExchange(), "okx_paper_trade": PaperExchange()}
    for ex in exchanges.values():
        ex.set_balanced_order_book("BTC-USDT", 60_000, 59_000, 61_000, 10, 0.01)
        ex.set_quantization_param(QuantizationParams("BTC-USDT", 6, 6, 6, 6))
        ex.set_balance("USDT", usdt)
        ex.set_balance("BTC", btc)
    now = [START]
    gov = Governor.from_settings(settings, "hb-test", clock=lambda: now[0])
    gov.ledger.set_phase(3, "test", "paper")

    async def recorder_in_loop() -> Any:
        return start_markets_recorder(list(exchanges.values()), tmp_path / "hb.sqlite")

    recorder = loop.run_until_complete(recorder_in_loop())
    yield {"loop": loop, "exchanges": exchanges, "gov": gov, "now": now}
    recorder.stop()
    gov.close()
    shut_down(loop)


def build(world: dict[str, Any], script: str, connectors: list[str], **overrides: Any) -> Any:
    """Load `scripts/<script>` as Hummingbot's loader would, offline, on these connectors."""
    from lyra_strategies.paper.replay import load_script

    strategy_cls, config_cls = load_script(script)
    config = config_cls(**overrides)
    strategy_cls.init_markets(config)
    strategy_cls.offline = True
    strategy_cls.book_timestamp = None

    async def make() -> Any:
        return strategy_cls({c: world["exchanges"][c] for c in connectors}, config, governor=world["gov"])

    return world["loop"].run_until_complete(make())


def run(world: dict[str, Any], strategy: Any, seconds: int, yields: int = 3) -> None:
    """Tick the exchanges then the strategy once per simulated second (Hummingbot's Clock),
    yielding to the event loop after each so executors and controllers take their steps."""
    _drive(world, strategy, seconds, yields, None)


def run_until(world: dict[str, Any], strategy: Any, done: Callable[[], bool], limit_s: int, what: str) -> int:
    """`run` one simulated second at a time until `done()`; the seconds it took. A step that
    waits on Hummingbot (an executor's cancel, its 5 s shutdown retry) is waited for by its
    outcome, not by a guessed number of seconds; `limit_s` bounds it in simulated time."""
    took = _drive(world, strategy, limit_s, 3, done)
    if took is None:
        raise AssertionError(f"{what}: not within {limit_s} simulated seconds")
    print(f"{what}: {took} simulated s")
    return took


def _drive(
    world: dict[str, Any], strategy: Any, seconds: int, yields: int, done: Callable[[], bool] | None
) -> int | None:
    from hummingbot.core.clock import Clock
    from hummingbot.core.clock_mode import ClockMode

    async def drive() -> int | None:
        clock = Clock(ClockMode.BACKTEST, 1.0, world["now"][0], world["now"][0] + seconds + 1)
        for ex in world["exchanges"].values():
            clock.add_iterator(ex)
        clock.add_iterator(strategy)
        for second in range(1, seconds + 1):
            world["now"][0] += 1
            clock.backtest_til(world["now"][0])
            for _ in range(yields):
                await asyncio.sleep(0)
            if done is not None and done():
                return second
        return None

    result: int | None = world["loop"].run_until_complete(drive())
    return result


def book(world: dict[str, Any], connector: str, mid: float, pair: str = "BTC-USDT", step: float = 10) -> None:
    world["exchanges"][connector].set_balanced_order_book(pair, mid, mid - 100 * step, mid + 100 * step, step, 0.01)


def warm_mandates(world: dict[str, Any], connectors: list[str], mid: float = 60_000) -> None:
    """The council's standing mandate for these markets, as after a strategy's first (pending)
    proposals, so a test's first orders are judged on their own merits."""
    for connector in connectors:
        m = Decimal(mid)
        for seen in (world["now"][0] - 10, world["now"][0]):  # watched for 10 s: the reference's history
            world["gov"].observe_market(MarketSnapshot(
                connector=connector, trading_pair="BTC-USDT", timestamp=seen, mid_price=m,
                best_bid=m - 5, best_ask=m + 5, spread_pct=10 / mid * 100, data_age_s=0.0,
            ))  # fmt: skip
        proposal = OrderProposal(
            bot_id="hb-test", connector=connector, trading_pair="BTC-USDT", side=Side.BUY, amount=Decimal("0.0001"),
            price=Decimal(mid), mid_price=Decimal(mid), mid_price_ts=world["now"][0],
        )  # fmt: skip
        world["gov"].review(proposal)
        assert world["gov"].mandates.find(proposal, Decimal(6), world["now"][0]) is not None


def fills(world: dict[str, Any]) -> list[dict[str, Any]]:
    return list(world["gov"].ledger.fill_rows(book="paper"))


def gradual_stop(world: dict[str, Any]) -> None:
    world["gov"].ledger.reduce_only("operator gradual stop", "operator")
    world["gov"].ladder_state(fresh=True)


def decisions(world: dict[str, Any]) -> list[dict[str, Any]]:
    import json

    import sqlalchemy as sa

    from lyra_governor.store import audit_log

    with world["gov"].ledger.engine.connect() as conn:
        rows = conn.execute(sa.select(audit_log.c.payload).where(audit_log.c.event == "decision")).scalars().all()
    return [json.loads(r) for r in rows]


def count_capacity_reads(world: dict[str, Any]) -> list[int]:
    """Count the governor's capacity reads from now on (a one-item list the test reads): sizing
    must read it only for an order the strategy can actually place."""
    reads = [0]
    capacity = world["gov"].capacity_usd

    def counted(*args: Any) -> Any:
        reads[0] += 1
        return capacity(*args)

    world["gov"].capacity_usd = counted
    return reads
