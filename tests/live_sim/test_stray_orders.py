"""A stray resting order: one the exchange reports open that no reservation holds (placed
before a crash by a run the store never heard of, or by hand). Issue 14 leftover: before, a bot
with no open reservation never even read the exchange on start, and one with reservations only
listed such orders in its reconciliation record: never counted against the caps, never in
`status`, never cancelled.

Now, on real Hummingbot connectors against the simulators: the governed bot's start-up
reconciliation books each stray as a reservation (counted against the caps while it rests),
names it in `status`, adopts it into Hummingbot's tracker, and cancels the one Hummingbot's ids
say it placed (the "cancel" policy) while the one placed by hand is kept and counted until it
ends. An order another bot's reservation holds is not a stray and is left alone.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lyra_governor.config import Settings
from lyra_governor.governor import Governor
from lyra_governor.models import DecisionStatus, MarketSnapshot, OrderProposal, OrderType, Side
from lyra_governor.status import collect_status
from tests.live_sim.governed_rig import live_settings, phase4_governor, probe_strategy
from tests.live_sim.harness import PAIR, Rig


@pytest.fixture(params=["binance", "okx"])
def venue(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue("sim" if request.param == "binance" else "okx_sim")


def _reserved_by(settings: Settings, sim: Any, bot_id: str, amount: str, price: str) -> Governor:
    """Another bot's governor holding one OPEN reservation for a BUY of `amount` at `price`."""
    gov = phase4_governor(settings, bot_id=bot_id)
    for age in (8, 6, 4, 2, 0):  # the governor's reference warm-up
        gov.observe_market(MarketSnapshot(connector=sim.name, trading_pair=PAIR, timestamp=time.time() - age,
                                          mid_price=Decimal(60000), best_bid=Decimal(59994),
                                          best_ask=Decimal(60006), spread_pct=0.02, data_age_s=0.0))  # fmt: skip
    proposal = OrderProposal(bot_id=bot_id, strategy="live_sim", connector=sim.name, trading_pair=PAIR,
                             side=Side.BUY, order_type=OrderType.LIMIT, amount=Decimal(amount),
                             price=Decimal(price), mid_price=Decimal(60000), mid_price_ts=time.time())  # fmt: skip
    decision = gov.review(proposal)
    if decision.status is DecisionStatus.PENDING:  # the council's first answer
        time.sleep(0.5)
        decision = gov.review(proposal.model_copy(update={"mid_price_ts": time.time()}))
    assert decision.allowed, decision
    return gov


def test_a_stray_resting_order_is_counted_named_and_cancelled(venue: Any, lyra_home: Path) -> None:
    sim = venue
    symbol = "BTCUSDT" if sim.name == "binance" else "BTC-USDT"
    settings = live_settings(lyra_home)
    other = _reserved_by(settings, sim, "other-bot", "0.0002", "58800")
    sim.place(symbol, "BUY", "0.0002", "58800", "other-bots-order")  # what the other bot's reservation holds
    gov = phase4_governor(settings, bot_id="stray-finder")  # no reservation of its own
    rig = Rig(sim)
    from lyra_strategies.paper.replay import start_markets_recorder

    async def recorder_on_loop() -> object:  # StrategyV2Base reads its executors from Hummingbot's recorder
        return start_markets_recorder([rig.connector], lyra_home / "hb.sqlite")

    recorder = rig.run(recorder_on_loop())
    try:
        prefix = rig.connector.client_order_id_prefix
        sim.place(symbol, "BUY", "0.0003", "59000", f"{prefix}leftover1")  # a crashed, ungoverned run's
        sim.place(symbol, "BUY", "0.0002", "58900", "by-hand-1")  # the account's owner, by hand
        before = gov.exposure("live").exchanges[sim.name].reserved_usd
        strategy = probe_strategy(rig, gov)
        rig.start(strategy)
        rig.wait(lambda: strategy.reconciliation is not None, 30, "reconciliation on start")
        found = strategy.reconciliation
        actions = {s["client_order_id"]: s["action"] for s in found["strays"]}
        assert actions == {f"{prefix}leftover1": "cancel_sent", "by-hand-1": "kept"}, found

        rig.wait(lambda: not sim.order(f"{prefix}leftover1").is_open, 10, "the leftover cancelled on the exchange")
        rig.wait(lambda: len(gov.ledger.open_reservations("stray-finder")) == 1, 10, "the cancel released")
        by_hand = Decimal("0.0002") * 58900
        exposure = gov.exposure("live").exchanges[sim.name]
        assert exposure.reserved_usd == before + by_hand  # the kept stray is counted against the cap
        assert gov.capacity_usd(sim.name) == exposure.cap_usd - exposure.used_usd
        named = collect_status(settings, verify_audit=False)["stray_orders"]
        assert [(s["client_order_id"], s["bot_id"], s["reserved_usd"]) for s in named] == [
            ("by-hand-1", "stray-finder", float(by_hand))
        ]
        assert sim.order("other-bots-order").is_open  # another bot's order is not touched

        sim.cancel_by_exchange("by-hand-1")  # its owner cancels it: the tracker hears, the capital is back
        rig.wait(lambda: not gov.ledger.open_reservations("stray-finder"), 15, "the kept stray released")
        assert gov.exposure("live").exchanges[sim.name].reserved_usd == before
        assert collect_status(settings, verify_audit=False)["stray_orders"] == []
        assert gov.ledger.totals_agree()[0]
    finally:
        recorder.stop()  # type: ignore[attr-defined]
        rig.close()
        gov.close()
        other.close()
