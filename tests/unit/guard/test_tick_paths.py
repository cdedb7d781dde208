"""The per-tick calls' short paths give what the long ones would: `Governor.trading_state` from
the ladder cache (a halt committed by another connection is seen by the first call after
`refresh_s`, as `LadderView.state` sees it), `Governor.heartbeat` between beats, and the loss
marks' USD mid worked out once per snapshot by the watch (`MarketWatch.taken`)."""

from __future__ import annotations

from decimal import Decimal

from lyra_governor.config import Settings
from lyra_governor.governor import Governor
from lyra_governor.heartbeat import HEARTBEAT_EVERY_S
from lyra_governor.ledger import Ledger
from lyra_governor.models import MarketSnapshot, TradingState

from .conftest import Clock


def test_a_halt_committed_elsewhere_is_seen_by_the_first_trading_state_after_refresh(
    governor: Governor, settings: Settings, clock: Clock
) -> None:
    view = governor.ladder_view
    view.clock, view.refresh_s = clock, 5.0
    assert governor.trading_state() is TradingState.ACTIVE
    operator = Ledger.open(settings)
    try:
        operator.halt("operator emergency stop", "operator")
        clock.advance(5.0)
        assert governor.trading_state() is TradingState.ACTIVE  # the cache, `refresh_s` old: not yet
        assert governor.trading_state() is view.state().trading_state
        clock.advance(0.5)
        assert governor.trading_state() is TradingState.HALTED
        operator.resume("operator")
    finally:
        operator.close()


def test_heartbeat_between_beats_writes_nothing_and_the_next_beat_is_written(governor: Governor, clock: Clock) -> None:
    def beat_of(gov: Governor) -> float:
        return next(b.last_heartbeat for b in gov.ledger.bots() if b.bot_id == gov.bot_id)

    first = beat_of(governor)
    clock.advance(HEARTBEAT_EVERY_S - 1)
    governor.heartbeat()
    assert beat_of(governor) == first and governor.heartbeats.last == first
    clock.advance(1)
    governor.heartbeat()
    assert beat_of(governor) == clock.now == governor.heartbeats.last


def test_the_usd_mid_is_worked_out_once_per_snapshot_and_again_after_a_new_rate(governor: Governor) -> None:
    watch, key = governor.watch, ("btc_markets_paper_trade", "BTC-AUD")
    aud = MarketSnapshot(connector="btc_markets_paper_trade", trading_pair="BTC-AUD", timestamp=1.0,
                         mid_price=Decimal(90000))  # fmt: skip
    governor.observe_market(aud)  # taken in: its mark worked out once, kept with it
    assert watch.taken[key][1] == governor._marks_due[key] == Decimal(90000) * Decimal("0.65")
    watch.taken[key] = (aud, Decimal(1), (0.0, 0.0))  # what it kept is what it gives
    governor.observe_market(aud)
    assert governor._marks_due[key] == Decimal(1)
    governor.observe_fx("AUD", Decimal("0.66"))  # a new rate: worked out again
    assert key not in watch.taken
    governor.observe_market(aud)
    assert watch.taken[key][1] == governor._marks_due[key] == Decimal(90000) * Decimal("0.66")
    nan = aud.model_copy(update={"mid_price": Decimal("NaN")})
    governor.observe_market(nan)  # no mark from a NaN mid: the one observed before stays due
    assert watch.taken[key][1] is None
    assert governor._marks_due[key] == Decimal(90000) * Decimal("0.66")
