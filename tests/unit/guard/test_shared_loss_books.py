"""Governors sharing one store evaluate the loss limits once per beat instant, over one book
per store (`breakers.shared.SharedBooks`): every limit is still seen and applied, by whichever
governor checks first, never later than one beat after a governor's own check would have; a
store object of its own (another process, a restart) evaluates for itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from lyra_governor import audit
from lyra_governor.breakers.board import BreakerBoard
from lyra_governor.config import Settings
from lyra_governor.governor import Governor
from lyra_governor.ledger import Ledger
from lyra_governor.models import DenialCode, MarketSnapshot, OrderEvent, OrderEventKind, OrderProposal, TradingState
from lyra_governor.store_budget import release_checkpointer

from .conftest import Clock, WideMandates, bought_and_filled, decide, make_governor, watch

Propose = Callable[..., OrderProposal]
BTC = ("binance_paper_trade", "BTC-USDT")


@pytest.fixture
def trio(settings: Settings, clock: Clock) -> Iterator[list[Governor]]:
    """Three governors on one store and one watch (as `replay.run_replay` builds them)."""
    first = make_governor(settings, clock)
    others = [Governor(settings, first.ledger, f"bot-{i}", WideMandates(), clock, "s", first.store, first.watch)
              for i in (2, 3)]  # fmt: skip
    for gov in others:
        gov.ladder_state(fresh=True)
    yield [first, *others]
    for gov in others:
        release_checkpointer(gov._wal)  # the store and the ledger are the first's
    first.close()


@pytest.fixture
def elsewhere(trio: list[Governor], settings: Settings, clock: Clock) -> Iterator[Governor]:
    """A governor on the trio's file with a store object of its own: another process, or a
    restarted bot (its own books, read from the store's fills)."""
    gov = make_governor(settings, clock, "bot-9")
    yield gov
    gov.close()


@pytest.fixture
def evaluations(monkeypatch: pytest.MonkeyPatch) -> list[BreakerBoard]:
    """The board of each loss-limit evaluation, in order."""
    seen: list[BreakerBoard] = []
    loss_trips = BreakerBoard.loss_trips

    def counted(board: BreakerBoard, *args: Any, **kwargs: Any) -> Any:
        seen.append(board)
        return loss_trips(board, *args, **kwargs)

    monkeypatch.setattr(BreakerBoard, "loss_trips", counted)
    return seen


def _buy(gov: Governor, propose: Propose, clock: Clock, amount: str = "0.004") -> None:
    """A filled buy of `amount` BTC at 60,000 by `gov` (its market watched long enough first)."""
    watch(gov, *BTC, 60010, clock.now - 30, 30)
    bought_and_filled(gov, propose(bot_id=gov.bot_id, amount=Decimal(amount), mid_price_ts=clock.now))


def _snapshot(ts: float, mid: int) -> MarketSnapshot:
    return MarketSnapshot(connector=BTC[0], trading_pair=BTC[1], timestamp=ts, mid_price=Decimal(mid))


def _trips(gov: Governor) -> list[dict[str, object]]:
    return [r.payload for r in audit.tail(gov.ledger.engine, 500) if r.event == "breaker"]


def test_one_evaluation_per_instant_for_the_governors_of_a_store(
    trio: list[Governor], clock: Clock, evaluations: list[BreakerBoard]
) -> None:
    first, second, third = trio
    assert first.breakers.loss is second.breakers.loss is third.breakers.loss
    assert first.breakers.book("paper") is third.breakers.book("paper")
    first.observe_market(_snapshot(clock.now, 60000))
    for gov in trio:  # the replay's order: each governor's beat, then its observations
        assert gov.check_loss_limits() == []
        gov.observe_market(_snapshot(clock.now, 60100))
    assert evaluations == [first.breakers]
    # the marks observed after the evaluation wait for the next one (at the next instant)
    assert first.breakers.book("paper").marks == {("binance", "BTC-USDT"): Decimal(60000)}
    assert first._marks_due == {BTC: Decimal(60100)}
    clock.advance(15)
    for gov in trio:
        gov.check_loss_limits()
    assert evaluations == [first.breakers] * 2
    assert first.breakers.book("paper").marks == {("binance", "BTC-USDT"): Decimal(60100)}


def test_a_check_with_nothing_new_evaluates_nothing_and_anything_new_is_evaluated(
    settings: Settings, clock: Clock, evaluations: list[BreakerBoard]
) -> None:
    gov = make_governor(settings, clock)
    try:
        gov.check_loss_limits()
        clock.advance(15)
        gov.check_loss_limits()  # no mark, no commit, the same day: the same evaluation
        assert len(evaluations) == 1
        gov.observe_market(_snapshot(clock.now, 60000))
        gov.check_loss_limits()  # its own mark at the instant it evaluated: evaluated
        assert len(evaluations) == 2
        with gov.ledger.engine.begin() as conn:  # a cap written elsewhere
            conn.exec_driver_sql("UPDATE lyra_capital SET cap_musd = cap_musd + 1 WHERE scope = 'paper:TOTAL'")
        clock.advance(15)
        gov.check_loss_limits()
        assert len(evaluations) == 3
        clock.advance(86_400)  # a new UTC day re-bases the daily loss
        gov.check_loss_limits()
        assert len(evaluations) == 4
        gov.breakers.note_state(TradingState.REDUCING)  # a review saw a stop: the next check looks
        gov.check_loss_limits()
        assert len(evaluations) == 5
    finally:
        gov.close()


def test_the_first_check_of_an_instant_trips_on_any_governors_marks(
    trio: list[Governor], clock: Clock, propose: Propose
) -> None:
    """The first governor holds the position and never watched the fall; the third saw it: the
    first governor's check trips (its own book, before, marked BTC at the fill price: no trip
    until the third's check), once for the store, and every governor then reads the stop."""
    first, second, third = trio
    _buy(first, propose, clock)
    clock.advance(20)
    watch(third, *BTC, 45000, clock.now - 5, 5)  # -60 USD: 6 % of the 1,000 USD paper book (limit 5 %)
    trips = first.check_loss_limits()
    assert [t.code for t in trips] == [DenialCode.BREAKER_DAILY_LOSS]
    assert second.check_loss_limits() == [] and third.check_loss_limits() == []
    assert [t["code"] for t in _trips(first)] == ["BREAKER_DAILY_LOSS"]  # one audited trip for the store
    assert all(gov.ladder_state(fresh=True).trading_state is TradingState.REDUCING for gov in trio)


def test_a_fill_between_two_governors_checks_is_evaluated_by_the_second(
    trio: list[Governor], clock: Clock, propose: Propose
) -> None:
    first, second, _third = trio
    watch(second, *BTC, 60010, clock.now - 30, 30)
    bought = decide(second, propose(bot_id="bot-2", amount=Decimal("0.004")))
    assert bought.allowed, bought.message
    clock.advance(20)
    watch(second, *BTC, 45000, clock.now - 5, 5)
    assert first.check_loss_limits() == []  # not filled yet: no position
    second.on_order_event(OrderEvent(kind=OrderEventKind.FILLED, reservation_id=bought.reservation_id,
                                     filled_amount=Decimal("0.004"), fill_price=Decimal(60000)))  # fmt: skip
    trips = second.check_loss_limits()  # the same instant, nothing due: the store moved, so it evaluates
    assert [t.code for t in trips] == [DenialCode.BREAKER_DAILY_LOSS]


def test_a_resume_rebases_the_shared_books_once(trio: list[Governor], clock: Clock, propose: Propose) -> None:
    first, second, third = trio
    _buy(first, propose, clock)
    clock.advance(20)
    watch(first, *BTC, 45000, clock.now - 5, 5)
    assert first.check_loss_limits() and first.trading_state() is TradingState.REDUCING
    first.ledger.resume("operator", "loss reviewed")
    clock.advance(15)
    for gov in trio:
        gov.ladder_state(fresh=True)
        assert gov.check_loss_limits() == []  # the loss so far accepted: no second trip
    book = first.breakers.book("paper")
    assert book.day_start["TOTAL"] == book.peak["TOTAL"] == book.pnl() <= Decimal(-60)
    # a further fall of 5 % of the cap from the resumed level trips again, once
    clock.advance(15)
    watch(third, *BTC, 32000, clock.now - 5, 5)
    assert [t.code for t in second.check_loss_limits()] == [DenialCode.BREAKER_DAILY_LOSS]
    assert first.check_loss_limits() == [] and third.check_loss_limits() == []
    assert [t["code"] for t in _trips(first)] == ["BREAKER_DAILY_LOSS"] * 2


def test_a_store_of_its_own_evaluates_for_itself(
    trio: list[Governor], elsewhere: Governor, clock: Clock, propose: Propose, evaluations: list[BreakerBoard]
) -> None:
    """Another process (or a restarted bot): a store object of its own, its own books from the
    store's fills, its own evaluation at the same instant, the same limit seen."""
    first = trio[0]
    _buy(first, propose, clock)
    clock.advance(20)
    assert elsewhere.breakers.loss is not first.breakers.loss
    watch(first, *BTC, 45000, clock.now - 5, 5)
    watch(elsewhere, *BTC, 45000, clock.now - 5, 5)
    assert [t.code for t in elsewhere.check_loss_limits()] == [DenialCode.BREAKER_DAILY_LOSS]
    assert first.check_loss_limits() == []  # the stop is in force: nothing to trip twice
    assert evaluations[-2:] == [elsewhere.breakers, first.breakers]
    assert first.ladder_state(fresh=True).trading_state is TradingState.REDUCING
    assert len(_trips(first)) == 1


def test_a_fill_from_another_process_is_evaluated_at_the_next_instant_at_the_latest(
    trio: list[Governor], elsewhere: Governor, clock: Clock, propose: Propose
) -> None:
    first, second, _third = trio
    watch(first, *BTC, 60010, clock.now - 30, 30)
    assert first.check_loss_limits() == []
    _buy(elsewhere, propose, clock)  # committed on another connection, at the same instant
    clock.advance(1)
    watch(first, *BTC, 45000, clock.now - 1, 1)
    assert [t.code for t in second.check_loss_limits()] == [DenialCode.BREAKER_DAILY_LOSS]


def test_a_governor_with_stricter_limits_evaluates_with_its_own(
    trio: list[Governor], settings: Settings, clock: Clock, propose: Propose
) -> None:
    first, second, _third = trio
    _buy(first, propose, clock)
    clock.advance(20)
    watch(first, *BTC, 50000, clock.now - 5, 5)  # -40 USD: 4 % of the cap
    strict = settings.breakers.model_copy(update={"daily_loss_pct": 3.0})
    second.breakers.settings = strict
    assert first.check_loss_limits() == []
    assert [t.code for t in second.check_loss_limits()] == [DenialCode.BREAKER_DAILY_LOSS]




def _count(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[object]:
    """Each call of `owner.name` (a class's method or an object's), counted and passed on."""
    calls: list[object] = []
    method = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0] if args else None)
        return method(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def _on_the_governors_clock(trio: list[Governor], clock: Clock) -> None:
    """The ladder views on the governors' clock (as `replay.run_replay` sets them), each having
    looked at this instant (one PRAGMA for the three: `OrderStore._cached`'s `at`)."""
    for gov in trio:
        gov.ladder_view.clock = clock
        gov.ladder_view.look_again()
        gov.ladder_view.ahead()
    assert trio[0].ladder_view.version is not None
    assert all(gov.ladder_view.version == trio[0].ladder_view.version for gov in trio)


def test_a_covered_check_at_an_instant_already_looked_at_reads_nothing(
    trio: list[Governor], clock: Clock, evaluations: list[BreakerBoard], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second and third governors' checks after the first's evaluation at this instant: the
    store's version at the instant is known and is their views' caches', so neither the state
    (`LadderView.now`) nor the version is asked, no statement runs, and no trip; an instant not
    looked at yet, or an own commit since the look, and the check reads as before."""
    first, second, third = trio
    _on_the_governors_clock(trio, clock)
    first.observe_market(_snapshot(clock.now, 60000))
    assert first.check_loss_limits() == [] and evaluations == [first.breakers]
    first.observe_market(_snapshot(clock.now, 60100))  # due, after the evaluation of this instant
    statements: list[str] = []
    first.store._raw.driver_connection.set_trace_callback(statements.append)
    looks = _count(monkeypatch, type(first.ladder_view), "now")
    try:
        assert second.check_loss_limits() == [] and third.check_loss_limits() == []
        assert looks == [] and statements == [] and evaluations == [first.breakers]
        clock.advance(15)  # nothing has looked at this instant: the state and the version are read
        assert second.check_loss_limits() == []
        assert looks == [second.ladder_view] and evaluations == [first.breakers, second.breakers]
        assert statements == ["PRAGMA data_version"]  # the one of this instant; the fills and caps kept
        first.store.heartbeat("bot-new", clock.now, "host", 1)  # a commit that counts (a bot's row created)
        third.observe_market(_snapshot(clock.now, 60200))
        assert third.check_loss_limits() == [] and looks == [second.ladder_view, third.ladder_view]
        assert evaluations[-1] is third.breakers
        assert first.breakers.book("paper").marks[("binance", "BTC-USDT")] == 60200
    finally:
        first.store._raw.driver_connection.set_trace_callback(None)


def test_an_evaluation_at_the_version_of_the_last_reads_reads_no_fill_and_no_cap_again(
    trio: list[Governor], clock: Clock, propose: Propose, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Marks move every instant, the store does not: the evaluations after the first read neither
    the book's fills nor its caps (`shared.Read`), and a fill (this connection's) or a cap written
    by another connection is read by the next evaluation, which trips on it."""
    first, second, _third = trio
    _buy(first, propose, clock)
    fills = _count(monkeypatch, type(first.store), "book_fills")
    caps = _count(monkeypatch, type(first.store), "caps")
    clock.advance(1)
    first.observe_market(_snapshot(clock.now, 60000))
    assert first.check_loss_limits() == [] and len(fills) == len(caps) == 1  # the fill folded in
    book = first.breakers.book("paper")
    assert book.positions[("binance", "BTC-USDT")] == Decimal("0.004")
    for mid in (59900, 59800, 59700):
        clock.advance(15)
        second.observe_market(_snapshot(clock.now, mid))
        assert second.check_loss_limits() == []
    assert len(fills) == len(caps) == 1 and book.marks[("binance", "BTC-USDT")] == 59700
    _buy(second, propose, clock)  # a second position, committed through the store
    clock.advance(15)
    second.observe_market(_snapshot(clock.now, 54000))
    assert second.check_loss_limits() == [] and len(fills) == len(caps) == 2
    assert book.positions[("binance", "BTC-USDT")] == Decimal("0.008")  # -48 USD: 4.8 % of 1,000
    clock.advance(15)
    first.observe_market(_snapshot(clock.now, 54000))
    assert first.check_loss_limits() == [] and len(fills) == len(caps) == 2
    other = Ledger.open(settings, clock)  # another connection, as another process would write
    try:
        with other.engine.begin() as conn:  # the book's cap cut to 900 USD elsewhere: -48 is 5.3 %
            conn.exec_driver_sql("UPDATE lyra_capital SET cap_musd = 900000000 WHERE scope = 'paper:TOTAL'")
    finally:
        other.close()
    clock.advance(15)
    first.observe_market(_snapshot(clock.now, 54000))
    assert [t.code for t in first.check_loss_limits()] == [DenialCode.BREAKER_DAILY_LOSS] and len(caps) == 3
