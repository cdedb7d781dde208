"""Hole 6 of issue 14 across governors: a mandate ends with the conditions it was granted in,
whoever changed them. A gradual stop written by another governor (another bot's loss limit,
an operator) ends this governor's mandates when it reads the stop, so after the resume its
first order asks the council again; a governor's new settings reach its breakers."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from lyra_governor.config import Settings
from lyra_governor.governor import Governor
from lyra_governor.ladder import LadderState
from lyra_governor.ladder_view import changed
from lyra_governor.models import DecisionStatus, DenialCode, OrderProposal, TradingState

from .conftest import Clock, WideMandates, bought_and_filled, decide, make_governor, watch

Propose = Callable[..., OrderProposal]


def _state(
    phase: int = 3, trading: TradingState = TradingState.ACTIVE, rungs: dict[str, int] | None = None
) -> LadderState:
    return LadderState(phase, trading, "", rungs or {}, phase_since=0.0, updated_at=0.0)


def test_what_ends_a_mandate() -> None:
    active = _state()
    assert changed(None, active) is None  # a governor's first read: nothing granted yet to end
    assert changed(active, active) is None
    assert changed(active, _state(trading=TradingState.REDUCING)) == "trading is REDUCING"
    assert changed(None, _state(trading=TradingState.HALTED)) == "trading is HALTED"
    # an answer to a question asked before the stop may have landed during it
    assert changed(_state(trading=TradingState.REDUCING), active) == "trading resumed after REDUCING"
    assert changed(_state(4, rungs={"binance": 1}), _state(5, rungs={"binance": 1})) == "the phase moved from 4 to 5"
    assert changed(_state(4, rungs={"binance": 1}), _state(4, rungs={"binance": 2})) == "a phase-4 rung moved"


def test_a_stop_written_by_another_governor_ends_this_ones_mandates(
    settings: Settings, clock: Clock, propose: Propose
) -> None:
    ours, theirs = WideMandates(), WideMandates()
    gov, other = make_governor(settings, clock, "bot-1", ours), make_governor(settings, clock, "bot-2", theirs)
    try:
        watch(gov, "binance_paper_trade", "BTC-USDT", 60010, clock.now - 30, 30)
        assert decide(gov, propose()).allowed  # the council granted this market's mandate
        assert ("binance_paper_trade", "BTC-USDT") in ours.approved
        # the other bot's loss limit (or an operator) stops trading gradually, then it is resumed
        other.ledger.reduce_only("breaker BREAKER_DAILY_LOSS: test", "breaker")
        assert gov.ladder_state(fresh=True).trading_state is TradingState.REDUCING
        assert ours.approved == set()  # read here: this governor's mandates are gone too
        ours.approved.add(("binance_paper_trade", "BTC-USDT"))  # an answer to a question asked before the stop
        other.ledger.resume("operator", "loss reviewed")
        assert gov.ladder_state(fresh=True).trading_state is TradingState.ACTIVE
        assert ours.approved == set()  # nothing granted before the resume outlives it
        clock.advance(1)
        watch(gov, "binance_paper_trade", "BTC-USDT", 60010, clock.now, 0)
        first = gov.review(propose(price=Decimal(59990), mid_price_ts=clock.now))
        # the mandate granted before the stop is not used after it: the council is asked again
        assert first.status is DecisionStatus.PENDING and first.code is DenialCode.NO_MANDATE
        assert gov.review(propose(price=Decimal(59990), mid_price_ts=clock.now)).allowed
    finally:
        gov.close()
        other.close()


def test_new_settings_reach_the_loss_limits(governor: Governor, propose: Propose, clock: Clock) -> None:
    bought_and_filled(governor, propose(amount=Decimal("0.004"), price=Decimal(60000)))
    # the market falls 10 %: 0.004 BTC loses 24 USD, 2.4 % of the 1,000 USD paper book
    clock.advance(20)
    watch(governor, "binance_paper_trade", "BTC-USDT", 54000, clock.now - 5, 5)
    assert governor.check_loss_limits() == []  # within the default 5 % daily limit
    strict = governor.settings.breakers.model_copy(update={"daily_loss_pct": 2.0})
    governor.settings = governor.settings.model_copy(update={"breakers": strict})
    clock.advance(1)
    trips = governor.check_loss_limits()
    assert [trip.code for trip in trips] == [DenialCode.BREAKER_DAILY_LOSS]
    assert governor.ladder_state(fresh=True).trading_state is TradingState.REDUCING
