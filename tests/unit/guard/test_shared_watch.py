"""Governors of one process sharing one `MarketWatch` (the paper replay's eight): each sees the
others' observations, the flash-move reference stays time-weighted and is never absent where a
governor of its own would have had it, and a snapshot taken in twice counts once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest

from lyra_governor.breakers.board import BreakerBoard
from lyra_governor.breakers.desk import BreakerDesk
from lyra_governor.config import Settings
from lyra_governor.governor import Governor
from lyra_governor.models import DenialCode, MarketSnapshot, OrderProposal
from lyra_governor.store_budget import release_checkpointer

from .conftest import Clock, WideMandates, decide, make_governor, watch

Propose = Callable[..., OrderProposal]
BTC = ("binance_paper_trade", "BTC-USDT")


@pytest.fixture
def pair(settings: Settings, clock: Clock) -> Iterator[tuple[Governor, Governor]]:
    """Two governors on one store and one watch (as `replay.run_replay` builds them)."""
    first = make_governor(settings, clock)
    second = Governor(settings, first.ledger, "bot-2", WideMandates(), clock, "s", first.store, first.watch)
    second.ladder_state(fresh=True)
    yield first, second
    release_checkpointer(second._wal)  # the store and the ledger are the first's
    first.close()


def _snapshot(ts: float, mid: int) -> MarketSnapshot:
    return MarketSnapshot(connector=BTC[0], trading_pair=BTC[1], timestamp=ts, mid_price=Decimal(mid))


def _observe_by_all(governors: tuple[Governor, ...], clock: Clock, seconds: int, mid: Callable[[int], int]) -> None:
    """One snapshot a second for the last `seconds`, the very same object handed to every governor
    (as the replay's scripts hand theirs)."""
    for i in range(seconds):
        snapshot = _snapshot(clock.now - seconds + i, mid(i))
        for governor in governors:
            governor.observe_market(snapshot)


def test_one_governors_observations_are_the_others_reference(
    pair: tuple[Governor, Governor], clock: Clock, propose: Propose
) -> None:
    first, second = pair
    assert first.watch is second.watch
    assert decide(second, propose()).code is DenialCode.REFERENCE_WARMUP  # nobody has watched yet
    watch(first, *BTC, 60010, clock.now - 30, 30)  # only the first governor observes
    assert decide(second, propose(mid_price_ts=clock.now)).allowed  # the second's review has the reference
    # a 10 % crash that only the second governor saw, over the last two seconds: the first's
    # review sees it too, and the time-weighted reference (28 calm seconds) still holds
    for ts in (clock.now - 1, clock.now):
        second.observe_market(_snapshot(ts, 54000))
    decision = decide(first, propose(price=Decimal(54000), mid_price=Decimal(54000), mid_price_ts=clock.now))
    assert decision.code is DenialCode.PRICE_COLLAR and "time-weighted" in decision.message


def test_a_snapshot_observed_by_every_governor_counts_once(pair: tuple[Governor, Governor], clock: Clock) -> None:
    """The replay's scripts hand their governors the very same snapshot of a market each second:
    the shared history takes it in once, and holds what one governor's own history would."""
    first, second = pair
    alone = make_governor(first.settings, clock, "bot-3")  # its own watch
    try:
        _observe_by_all((first, second, alone), clock, 40, lambda i: 60000 + (i % 7) * 10)
        shared, own = first.watch.history(*BTC), alone.watch.history(*BTC)
        assert shared is second.watch.history(*BTC) and shared is not None and own is not None
        assert list(shared._buckets) == list(own._buckets)
        assert shared.reference(clock.now, 5) == own.reference(clock.now, 5) is not None
        assert first.watch.snapshot(*BTC) is second.watch.snapshot(*BTC)
    finally:
        alone.close()


def test_governors_sharing_the_store_mark_one_loss_book(pair: tuple[Governor, Governor], clock: Clock) -> None:
    """The loss limits' book is the store's (`breakers.shared.SharedBooks`): a market one governor
    observed marks the book both check (each held its own, the other's markets at their first
    fill price, until the books were shared)."""
    first, second = pair
    first.observe_market(_snapshot(clock.now, 60000))
    second.check_loss_limits(), first.check_loss_limits()  # where the marks are read (folded in)
    assert first.breakers.book("paper") is second.breakers.book("paper")
    assert second.breakers.book("paper").marks == {("binance", "BTC-USDT"): Decimal(60000)}


def test_the_loss_marks_folded_at_the_check_are_the_ones_marked_each_tick(settings: Settings, clock: Clock) -> None:
    """Observations keep their loss mark for the next loss check (its only reader), the latest per
    market: the marks it then reads are those `BreakerDesk.mark` on every observation would have
    left, an unusable observation (no rate, a NaN or non-positive mid) replacing nothing."""
    gov = make_governor(settings, clock)
    try:
        eager = BreakerBoard(settings.breakers)
        desk = BreakerDesk(gov.desk.seat, eager, gov.mandates, lambda: settings.breakers)
        binance, okx, btc_markets = "binance_paper_trade", "okx_paper_trade", "btc_markets_paper_trade"
        seen = [(binance, "BTC-USDT", Decimal(60000)), (okx, "ETH-USDT", Decimal(3000)),
                (binance, "BTC-USDT", Decimal(60100)), (binance, "BTC-USDT", Decimal("NaN")),
                (okx, "ETH-USDT", Decimal(0)), (btc_markets, "BTC-JPY", Decimal(9000000)),
                (btc_markets, "BTC-AUD", Decimal(90000))]  # fmt: skip
        for i, (connector, pair, mid) in enumerate(seen):
            snapshot = MarketSnapshot.model_construct(
                connector=connector, trading_pair=pair, timestamp=clock.now - 10 + i, mid_price=mid
            )
            gov.observe_market(snapshot)
            desk.mark(snapshot, gov.watch.usd_per_quote_of(pair))
        assert gov.breakers.book("paper").marks == {}  # not read yet
        gov.check_loss_limits()
        assert gov.breakers.book("paper").marks == eager.book("paper").marks == {
            ("binance", "BTC-USDT"): Decimal(60100), ("okx", "ETH-USDT"): Decimal(3000),
            ("btc_markets", "BTC-AUD"): Decimal(90000) * Decimal("0.65"),
        }  # fmt: skip
        assert gov._marks_due == {}
    finally:
        gov.close()


def test_usd_rates_follow_observed_fx_and_new_settings(settings: Settings, clock: Clock) -> None:
    """The watch keeps `usd_per_quote`'s answers: an observed rate and new settings replace them."""
    gov = make_governor(settings, clock)
    try:
        assert gov.usd_per_quote("AUD") == gov.watch.usd_per_quote_of("BTC-AUD") == Decimal("0.65")
        gov.observe_fx("AUD", Decimal("0.66"))  # inside the band: it wins at once
        assert gov.usd_per_quote("AUD") == gov.watch.usd_per_quote_of("BTC-AUD") == Decimal("0.66")
        gov.observe_fx("AUD", Decimal(4900))  # outside it: the configured rate again
        assert gov.watch.usd_per_quote_of("BTC-AUD") == Decimal("0.65")
        gov.settings = settings.model_copy(update={"fx_usd": {**settings.fx_usd, "AUD": Decimal(4800)}})
        assert gov.usd_per_quote("AUD") == gov.watch.usd_per_quote_of("BTC-AUD") == Decimal(4900)
        assert gov.usd_per_quote("JPY") is gov.watch.usd_per_quote_of("BTC-JPY") is None
    finally:
        gov.close()


def test_the_councils_sampled_mids_are_the_watchs_the_fills_each_governors_own(
    pair: tuple[Governor, Governor], clock: Clock
) -> None:
    """The council's market context: the sampled mids are the shared watch's (each observation
    sampled once, as one governor alone samples it), spread, depth and fills stay each governor's."""
    first, second = pair
    alone = make_governor(first.settings, clock, "bot-3")  # its own watch and history
    try:
        _observe_by_all((first, second, alone), clock, 120, lambda i: 60000 + (i % 11) * 5)
        first.market_history.observe_fill("BTC-USDT", "BUY", 0.001, 60000.0, clock.now - 5)
        assert first.market_history._points is second.market_history._points is first.watch.points
        assert list(first.watch.points[BTC]) == list(alone.watch.points[BTC])
        own = alone.market_history.context(*BTC, clock.now)
        assert own is not None and second.market_history.context(*BTC, clock.now) == own
        with_fill = first.market_history.context(*BTC, clock.now)
        assert with_fill is not None and with_fill != own  # the first's fill is its own
        second.market_history.observe_book(*BTC, 0.5, 123.0)
        assert first.market_history.book[BTC] != second.market_history.book[BTC]
    finally:
        alone.close()
