"""Holes 6 and 13 of issue 14, with the real local council (`MandateBook`): mandates are
revoked when the conditions they were granted in are gone, and the per-order envelope
covers every price the pre-trade checks admit."""

from __future__ import annotations

from decimal import Decimal

from lyra_governor.config import Settings
from lyra_governor.consensus import mandate_provider
from lyra_governor.consensus.mandates import MandateBook
from lyra_governor.governor import Governor
from lyra_governor.models import (
    CouncilContext,
    DecisionStatus,
    MarketSnapshot,
    OrderEvent,
    OrderEventKind,
    OrderProposal,
    Side,
)

from .conftest import Clock, make_governor

MID = Decimal(60000)


def _market(clock: Clock, mid: Decimal = MID) -> MarketSnapshot:
    return MarketSnapshot(
        connector="binance_paper_trade", trading_pair="BTC-USDT", timestamp=clock.now, mid_price=mid,
        spread_pct=0.05, volatility_pct=1.0, depth_usd=50_000, data_age_s=1.0,
    )  # fmt: skip


def _warm(gov: Governor, clock: Clock, mid: Decimal = MID, seconds: int = 70) -> None:
    clock.advance(-seconds)
    for _ in range(seconds):
        clock.advance(1)
        gov.observe_market(_market(clock, mid))


def _proposal(clock: Clock, price: Decimal, mid: Decimal = MID, side: Side = Side.BUY) -> OrderProposal:
    return OrderProposal(bot_id="bot-1", connector="binance_paper_trade", trading_pair="BTC-USDT", side=side,
                         amount=Decimal("0.001"), price=price, mid_price=mid, mid_price_ts=clock.now)  # fmt: skip


def test_per_order_mode_approves_a_quote_two_percent_from_mid(settings: Settings, clock: Clock) -> None:
    per_order = settings.model_copy(update={"consensus": settings.consensus.model_copy(update={"per_order": True})})
    gov = make_governor(per_order, clock, mandates=mandate_provider(per_order))
    _warm(gov, clock)
    # 2 % below mid: inside the 3 % collar, so the council's envelope must cover it too
    decision = gov.review(_proposal(clock, MID * Decimal("0.98")))
    assert decision.allowed, decision.message
    sell = gov.review(_proposal(clock, MID * Decimal("1.029"), side=Side.SELL))
    assert sell.allowed, sell.message
    gov.close()


def test_a_mandate_is_revoked_when_the_mid_leaves_its_band(settings: Settings, clock: Clock) -> None:
    book = mandate_provider(settings)
    assert isinstance(book, MandateBook)
    first = _proposal(clock, MID)
    book.request(first, CouncilContext(phase=3, proposal=first, market=_market(clock), now=clock.now))
    assert book.find(first, Decimal(60), clock.now) is not None
    moved = MID * Decimal("1.06")  # the market moved 6 %, beyond the 5 % the mandate was granted for
    later = _proposal(clock, moved, mid=moved)
    assert book.find(later, Decimal(64), clock.now + 1) is None
    assert book.revocations == 1 and book.stats()["open_mandates"] == 0


def test_a_breaker_trip_revokes_the_exchanges_mandates(settings: Settings, clock: Clock) -> None:
    gov = make_governor(settings, clock, mandates=mandate_provider(settings))
    book = gov.mandates
    assert isinstance(book, MandateBook)
    _warm(gov, clock)
    allowed = 0
    for i in range(12):
        clock.advance(1)
        gov.observe_market(_market(clock))
        d = gov.review(_proposal(clock, MID - i))
        if d.status is DecisionStatus.PENDING:
            d = gov.review(_proposal(clock, MID - i))
        if d.allowed:
            allowed += 1
            gov.on_order_event(OrderEvent(kind=OrderEventKind.FAILED, reservation_id=d.reservation_id))
    assert allowed == 5  # then the storm breaker trips and this bot is reduce-only on binance
    assert book.revocations >= 1
    assert not any(k[0].startswith("binance") for k in book._mandates)
    gov.close()
