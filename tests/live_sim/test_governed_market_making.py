"""Point 3: scripts/lyra_market_making.py (Hummingbot PositionExecutors, every order governed)
on the real Binance connector in phase 4 at rung $100, through a fault script; then a halt,
and the ledger, the bot and the simulator agree."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lyra_governor.config import Settings
from lyra_governor.ledger import Ledger
from tests.live_sim.binance_sim import BinanceSim, too_many_requests
from tests.live_sim.governed_rig import EXCHANGE, Bot, cap_monitor, live_settings, phase4_governor
from tests.live_sim.harness import PAIR, SYMBOL, Rig


@pytest.fixture
def mm_settings(lyra_home: Path) -> Settings:
    return live_settings(lyra_home)


@pytest.fixture
def mm_bot(rig: Rig, sim: BinanceSim, mm_settings: Settings, tmp_path: Path) -> Iterator[Bot]:
    from lyra_strategies.paper.replay import load_script, start_markets_recorder

    recorder = rig.run(_async(lambda: start_markets_recorder([rig.connector], tmp_path / "hb.sqlite")))
    gov = phase4_governor(mm_settings, bot_id="live-sim-mm")
    strategy_cls, config_cls = load_script("lyra_market_making.py")
    config = config_cls(
        connector_name=EXCHANGE,
        trading_pair=PAIR,
        order_amount=Decimal("0.001"),
        spread_bps=Decimal(20),
        refresh_s=60,
        levels=1,
        time_limit_s=600,
    )
    strategy_cls.init_markets(config)
    strategy_cls.offline = False
    strategy_cls.book_timestamp = None
    strategy = rig.run(_async(lambda: strategy_cls({EXCHANGE: rig.connector}, config, governor=gov)))
    bot = Bot(rig, sim, gov, strategy)
    rig.monitors.append(cap_monitor(gov))
    rig.start(strategy)
    try:
        yield bot
    finally:
        recorder.stop()
        gov.close()


async def _async(fn: Any) -> Any:
    return fn()


def _bot_open(bot: Bot) -> list[Any]:
    return [o for o in bot.sim.open_orders() if o.client_id.startswith("x-")]


def test_market_making_through_faults_then_halt(mm_bot: Bot, mm_settings: Settings) -> None:
    bot, sim = mm_bot, mm_bot.sim
    bot.rig.wait(lambda: {o.side for o in _bot_open(bot)} == {"BUY", "SELL"}, 20, "a bid and an ask quoted")
    bot.agree()
    bid = next(o for o in _bot_open(bot) if o.side == "BUY")
    assert bid.qty * bid.price <= 50  # sized from the $100 rung: half the capacity per side
    # partial fill of the bid, each user event delivered twice
    sim.duplicate_events = True
    sim.fill(bid.client_id, "0.0003")
    bot.rig.wait(lambda: bot.gov.ledger.fill_rows(book="live"), what="the partial fill booked")
    bot.agree()
    sim.duplicate_events = False
    # the market falls through the bid; the take-profit order meets a 429 first
    sim.add_fault(too_many_requests(retry_after_s=1))
    sim.move(SYMBOL, "59800")
    bot.rig.wait(lambda: sim.order(bid.client_id).status == "FILLED", what="the bid filled")
    bot.rig.wait(
        lambda: (
            any(o.side == "SELL" and o.price > 60_000 and o.client_id != bid.client_id for o in _bot_open(bot))
            and len(sim.errors) > 0
        ),
        20,
        "a take-profit sell resting",
    )
    bot.agree()
    # the user stream drops; the market rises through the asks; polling finds the fills
    sim.stream_down()
    sim.move(SYMBOL, "60400")
    bot.rig.wait(lambda: not [o for o in _bot_open(bot) if o.side == "SELL"], 20, "the asks filled")
    bot.rig.wait(lambda: not bot.problems(), 20, lambda: "; ".join(bot.problems()))
    sim.stream_up()
    # halt: every open order cancelled on the simulator, nothing new proposed
    operator = Ledger.open(mm_settings)
    operator.halt("live_sim drill", "operator")
    operator.close()
    bot.rig.wait(lambda: not _bot_open(bot), 10, "every order cancelled after the halt")
    bot.agree()
    decisions = dict(bot.strategy.decisions)
    bot.rig.sleep(1.5)
    # after the halt the strategy may still propose (an executor's refresh can race the stop), but
    # the only new decisions are HALTED denials: nothing ALLOWED, nothing open on the exchange
    after = dict(bot.strategy.decisions)
    new = {code: after[code] - decisions.get(code, 0) for code in after if after[code] != decisions.get(code, 0)}
    assert set(new) <= {"HALTED"}, new
    assert not _bot_open(bot)
