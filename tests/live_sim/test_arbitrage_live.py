"""Arbitrage on two simulated venues: scripts/lyra_arbitrage.py in phase 4 at rung $100 through
Hummingbot's real Binance and OKX connectors, each leg governed. Three fault scripts, one after
the other on the same bot: a partial fill on one leg, an exchange rejection of the other leg, a
fill racing the cancel of a leg that missed the market. After each, on both venues, the ledger
(reserved, deployed), the bot's position and the simulator's balances and open orders agree, no
cap is exceeded (checked on every poll) and every decision and fill is in the audit trail; the
two venues' positions net to zero (what the script's unwinds are for)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lyra_governor.models import Side
from tests.live_sim.binance_sim import BinanceSim
from tests.live_sim.engine import Fault
from tests.live_sim.governed_rig import (
    Bot,
    agree_all,
    cap_monitor,
    governed_order,
    live_settings,
    phase4_governor,
    ready_to_trade,
)
from tests.live_sim.harness import PAIR, Rig
from tests.live_sim.okx_sim import CANCEL_PATH, PLACE_PATH, OkxSim

OKX = "BTC-USDT"
EDGE_MID = "60400"  # okx's bid 60,394 against binance's ask 60,006: 0.44 % after both taker fees
FLAT_MID = "60000"  # no edge either way


class Arb:
    def __init__(self, rig: Rig, gov: Any, strategy: Any, binance: Bot, okx: Bot) -> None:
        self.rig, self.gov, self.strategy, self.binance, self.okx = rig, gov, strategy, binance, okx

    def take(self) -> None:
        """Open an edge on okx, wait until the script takes it (both legs sent), close it."""
        before = self.strategy.taken
        self.strategy._last_trade = -1e18  # the script's cooldown is long: one pair per call
        self.okx.sim.move(OKX, EDGE_MID)
        self.rig.wait(lambda: self.strategy.taken > before, 15, "the script to take the edge")
        self.okx.sim.move(OKX, FLAT_MID)

    def settled(self, timeout: float = 20.0) -> None:
        """The pair is over (both legs done, any imbalance closed) and both venues agree."""
        self.rig.wait(lambda: not self.strategy._legs and not self._open_closes(), timeout, "the pair to settle")
        agree_all([self.binance, self.okx], timeout)

    def _open_closes(self) -> bool:
        return any(not o.is_done for c in self.rig.connectors.values() for o in c.in_flight_orders.values())

    def position(self, exchange: str) -> Decimal:
        return Decimal(self.gov.store.bot_position(self.gov.bot_id, "live", exchange, PAIR))


@pytest.fixture
def arb(sim: BinanceSim, okx_sim: OkxSim, lyra_home: Path, tmp_path: Path) -> Iterator[Arb]:
    from lyra_strategies.paper.replay import load_script, start_markets_recorder

    rig = Rig(sim, okx_sim)
    connectors = list(rig.connectors.values())
    recorder = rig.run(_async(lambda: start_markets_recorder(connectors, tmp_path / "hb.sqlite")))
    gov = phase4_governor(live_settings(lyra_home), bot_id="live-sim-arbitrage")
    strategy_cls, config_cls = load_script("lyra_arbitrage.py")
    config = config_cls(connector_a="binance", connector_b="okx", max_amount=Decimal("0.001"), cooldown_s=1000,
                        leg_timeout_s=3)  # fmt: skip
    strategy_cls.init_markets(config)
    strategy = rig.run(_async(lambda: strategy_cls(dict(rig.connectors), config, governor=gov)))
    rig.monitors.append(cap_monitor(gov))
    try:
        rig.start(strategy)
        ready_to_trade(rig, strategy)
        for exchange in rig.connectors:  # the council's mandate on both markets, as the script's first
            order = governed_order(rig, strategy, Side.BUY, "0.0002", "59900", exchange=exchange)  # proposals
            rig.wait(lambda o=order, c=rig.connectors[exchange]: o in c.in_flight_orders, what="the warm-up order")
            strategy.cancel(exchange, PAIR, order)
        binance, okx = Bot(rig, sim, gov, strategy), Bot(rig, okx_sim, gov, strategy)
        a = Arb(rig, gov, strategy, binance, okx)
        rig.wait(lambda: not sim.open_orders() and not okx_sim.open_orders(), what="the warm-up orders cancelled")
        a.settled()
        yield a
    finally:
        recorder.stop()
        rig.close()
        gov.close()


def _book(bids: dict[str, str], asks: dict[str, str], sim: OkxSim) -> Callable[[], None]:
    return lambda: sim.set_book(OKX, bids, asks)


def test_arbitrage_on_two_live_venues_under_faults(arb: Arb) -> None:
    binance, okx = arb.binance, arb.okx
    # 1. a partial fill on one leg: the okx bid thins out while the sell is on its way; the sell
    # takes 0.0004 and rests; after leg_timeout_s it is cancelled and the binance excess closed
    okx.sim.add_fault(Fault("POST", PLACE_PATH, before=_book({"60394": "0.0004", "59990": "0.5"}, {"60406": "0.5"},
                                                             okx.sim)))  # fmt: skip
    arb.take()
    arb.settled()
    assert arb.strategy.unwinds == 1
    assert [t.qty for t in okx.sim.trades_of(OKX)] == [Decimal("0.0004")]
    assert [(t.side, t.qty) for t in binance.sim.trades_of("BTCUSDT")] == [("BUY", Decimal("0.001")),
                                                                          ("SELL", Decimal("0.0006"))]  # fmt: skip
    assert arb.position("binance") + arb.position("okx") == 0
    # 2. the exchange rejects the other leg (OKX sCode 51008 in an HTTP 200 answer): the filled
    # binance buy is closed again
    okx.sim.add_fault(Fault("POST", PLACE_PATH, status=200, body={"code": "1", "msg": "All operations failed",
                      "data": [{"clOrdId": "", "ordId": "", "tag": "", "sCode": "51008",
                                "sMsg": "Order failed. Insufficient BTC balance in account."}]}))  # fmt: skip
    arb.take()
    arb.settled()
    assert arb.strategy.unwinds == 2 and arb.rig.named("OrderFailure")
    assert arb.position("binance") + arb.position("okx") == 0
    # 3. a fill racing a cancel: the okx sell misses the market and rests; the script cancels it
    # after leg_timeout_s, but the fill gets there first (OKX answers 51400): hedged, no unwind
    okx.sim.add_fault(Fault("POST", PLACE_PATH, before=_book({"60300": "0.5"}, {"60406": "0.5"}, okx.sim)))
    okx.sim.add_fault(Fault("POST", CANCEL_PATH, fill_on_cancel=True))
    arb.take()
    arb.settled()
    assert arb.strategy.unwinds == 2 and any(code == "51400" for *_, code in okx.sim.errors)
    assert arb.position("binance") == Decimal("0.0014") and arb.position("okx") == Decimal("-0.0014")
    peak = arb.rig.monitors[0].peak[0]  # type: ignore[attr-defined]
    print(f"arbitrage live: 3 pairs, 2 unwinds, peak use of one exchange's $100 cap {peak} USD")


async def _async(fn: Callable[[], Any]) -> Any:
    return fn()
