"""The bots table shows where each bot runs now: a restart updates host and pid; a restarted
bot learns its open orders from the store in the order they were made."""

from __future__ import annotations

import os
import socket
from decimal import Decimal

from lyra_governor.config import Settings
from lyra_governor.governor import Governor
from lyra_governor.models import MarketSnapshot, OrderEvent, OrderEventKind
from tests import fixtures
from tests.fixtures import Clock
from tests.standing_mandate import StandingMandate


def test_a_restart_updates_host_and_pid(settings: Settings) -> None:
    gov = Governor.from_settings(settings, "bot-r")
    try:
        gov.store.heartbeat("bot-r", 1.0, "old-host", 1)  # the bot's previous life
        assert [(b.host, b.pid) for b in gov.ledger.bots()] == [("old-host", 1)]
        gov.store.heartbeat("bot-r", 2.0, "new-host", 4242)  # restarted elsewhere (the governor's hot path)
        assert [(b.host, b.pid) for b in gov.ledger.bots()] == [("new-host", 4242)]
        gov.heartbeats.last = float("-inf")
        gov.heartbeat()  # the governor's own heartbeat: this process
        assert [(b.host, b.pid) for b in gov.ledger.bots()] == [(socket.gethostname(), os.getpid())]
    finally:
        gov.close()


def assert_a_restarted_bot_adopts_its_orders_oldest_first(settings: Settings) -> None:
    """What a restarted bot learns from the store (`Ledger.open_reservations`) comes oldest first,
    whatever was written to the rows since: on PostgreSQL a row updated (a partial fill) lies
    after the others in the heap, and without an ORDER BY it came last (a seeded simulation's
    restarted bots then adopted their orders in another order on each run)."""
    clock = Clock()
    gov = Governor.from_settings(settings, "bot-o", mandates=StandingMandate(), clock=clock)
    try:
        gov.ledger.set_phase(3, "test", "paper trading under test")
        for t in (clock.now - 30, clock.now):
            gov.observe_market(MarketSnapshot(connector="binance_paper_trade", trading_pair="BTC-USDT", timestamp=t,
                                              mid_price=Decimal(60010)))  # fmt: skip
        made = []
        for i in range(3):
            decision = gov.review(fixtures.proposal(clock.now, bot_id="bot-o", price=Decimal(60000 - i)))
            assert decision.allowed and decision.reservation_id, decision.message
            made.append(decision.reservation_id)
            clock.advance(0.5)
        for rid in made[:2]:  # the two oldest partly filled: their rows written again
            gov.on_order_event(OrderEvent(kind=OrderEventKind.FILLED, reservation_id=rid,
                                          filled_amount=Decimal("0.0004"), fill_price=Decimal(60000)))  # fmt: skip
        assert [r["reservation_id"] for r in gov.ledger.open_reservations("bot-o")] == made
        assert [r["reservation_id"] for r in gov.ledger.held_reservations("binance_paper_trade", "BTC-USDT")] == made
    finally:
        gov.close()


def test_a_restarted_bot_adopts_its_orders_oldest_first(settings: Settings) -> None:
    assert_a_restarted_bot_adopts_its_orders_oldest_first(settings)
