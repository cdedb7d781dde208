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
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lyra_governor.config import Settings
from lyra_governor.governor import Governor
from lyra_governor.models import DecisionStatus, MarketSnapshot, OrderProposal, OrderType, Side
from lyra_governor.status import collect_status
from tests.live_sim.governed_rig import Bot, live_settings, phase4_governor, probe_strategy, ready_to_trade
from tests.live_sim.harness import PAIR, SYMBOLS, Rig


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


@contextmanager
def _rig(sim: Any, lyra_home: Path) -> Iterator[Rig]:
    """A rig on `sim` with Hummingbot's markets recorder (StrategyV2Base reads its executors there)."""
    from lyra_strategies.paper.replay import start_markets_recorder

    rig = Rig(sim)

    async def recorder_on_loop() -> object:
        return start_markets_recorder([rig.connector], lyra_home / "hb.sqlite")

    recorder = rig.run(recorder_on_loop())
    try:
        yield rig
    finally:
        recorder.stop()  # type: ignore[attr-defined]
        rig.close()


def test_a_stray_resting_order_is_counted_named_and_cancelled(venue: Any, lyra_home: Path) -> None:
    sim = venue
    symbol = SYMBOLS[sim.name]
    settings = live_settings(lyra_home)
    other = _reserved_by(settings, sim, "other-bot", "0.0002", "58800")
    sim.place(symbol, "BUY", "0.0002", "58800", "other-bots-order")  # what the other bot's reservation holds
    gov = phase4_governor(settings, bot_id="stray-finder")  # no reservation of its own
    try:
        with _rig(sim, lyra_home) as rig:
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
        gov.close()
        other.close()


def test_a_stray_placed_while_the_bot_runs_is_found_by_the_sweep(venue: Any, lyra_home: Path) -> None:
    """Placed by hand after the start's reconciliation: the next sweep books it (kept, counted);
    the bot's own governed order, resting through every sweep, is never taken for one."""
    sim = venue
    gov = phase4_governor(live_settings(lyra_home), bot_id="sweeper")
    try:
        with _rig(sim, lyra_home) as rig:
            strategy = probe_strategy(rig, gov)
            rig.start(strategy)
            ready_to_trade(rig, strategy)
            strategy.stray_sweep_s, strategy._sweep_at = 0.5, 0.0  # sweep every half second from now on
            bot = Bot(rig, sim, gov, strategy)
            own = bot.buy("0.0002", "59000")
            bot.acked(own)
            sim.place(SYMBOLS[sim.name], "BUY", "0.0002", "58900", "by-hand-late")
            rig.wait(gov.ledger.stray_reservations, 15, "the sweep booked the stray")
            rig.sleep(2.0)  # a few more sweeps: nothing is booked twice, the bot's own order never
            assert [r["client_order_id"] for r in gov.ledger.stray_reservations()] == ["by-hand-late"]
            assert sim.order("by-hand-late").is_open and sim.order(own).is_open  # placed by hand: kept
            exposure = gov.exposure("live").exchanges[sim.name]
            assert exposure.reserved_usd == Decimal("0.0002") * 59000 + Decimal("0.0002") * 58900
            assert gov.ledger.totals_agree()[0]
    finally:
        gov.close()
