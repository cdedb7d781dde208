"""Holes 5 and 14 of issue 14: deterministic circuit breakers (pure functions first, then
through `Governor.review`/`on_order_event` on a real store, audited with their code)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from lyra_governor import audit
from lyra_governor.breakers import Action
from lyra_governor.breakers.board import DECIDED_KEPT, BreakerBoard
from lyra_governor.breakers.duplicate import check_duplicate
from lyra_governor.breakers.exchange_rate import check_exchange_rate
from lyra_governor.breakers.loss import BookMarks, check_loss
from lyra_governor.breakers.quantity import check_quantity
from lyra_governor.breakers.storm import check_storm
from lyra_governor.config import BreakerSettings, Settings
from lyra_governor.governor import Governor
from lyra_governor.models import DenialCode, Order, OrderEvent, OrderEventKind, OrderProposal, Side, TradingState

from .conftest import Clock, WideMandates, bought_and_filled, decide, make_governor, watch

Propose = Callable[..., OrderProposal]


def _breaker_records(gov: Governor) -> list[dict[str, object]]:
    return [r.payload for r in audit.tail(gov.ledger.engine, 500) if r.event == "breaker"]


# --- pure ---------------------------------------------------------------------------------------


def test_storm_needs_a_minimum_sample() -> None:
    # one failure among two decisions stops nothing (per-order mode's reject_rate did)
    assert check_storm("binance", 1, 1, 2, 5, 0.5, 10, 300) is None
    assert check_storm("binance", 4, 4, 9, 5, 0.5, 10, 300) is None
    consecutive = check_storm("binance", 5, 5, 5, 5, 0.5, 10, 300)
    assert consecutive is not None and consecutive.action is Action.BOT_REDUCE_ONLY
    rate = check_storm("binance", 1, 6, 12, 5, 0.5, 10, 300)
    assert rate is not None and rate.code is DenialCode.BREAKER_REJECT_STORM


def test_a_repeated_answer_counts_once_however_many_orders_came_before() -> None:
    # the board forgot every answered reservation at once past its bound (a clear), so a
    # rejection delivered twice just after it counted twice toward the storm breaker
    board = BreakerBoard(BreakerSettings())
    for i in range(DECIDED_KEPT):
        board.outcome(f"res-{i}", "binance", False, float(i))
    board.outcome("res-last", "binance", True, float(DECIDED_KEPT))
    board.outcome("res-last", "binance", True, float(DECIDED_KEPT) + 1)  # the same rejection again
    assert board.tallies["binance"].consecutive_failures == 1
    board.outcome("res-1", "binance", True, float(DECIDED_KEPT) + 2)  # the oldest left is still known
    assert board.tallies["binance"].consecutive_failures == 1


def test_loss_limits_are_pure_and_measured_from_the_peak() -> None:
    cap = Decimal(1000)
    assert check_loss("paper:TOTAL", Decimal(-49), Decimal(0), Decimal(0), cap, 5, 10) is None
    daily = check_loss("paper:TOTAL", Decimal(-50), Decimal(0), Decimal(0), cap, 5, 10)
    assert daily is not None and daily.code is DenialCode.BREAKER_DAILY_LOSS
    # up 80 yesterday, down 20 from there today: daily fine, drawdown 100 from the peak of 80
    drawdown = check_loss("paper:TOTAL", Decimal(-20), Decimal(-10), Decimal(80), cap, 5, 10, demote=True)
    assert drawdown is not None and drawdown.code is DenialCode.BREAKER_DRAWDOWN
    assert drawdown.action is Action.DEMOTE_AND_STOP
    marks = BookMarks()
    marks.apply_fill("binance", "BTC-USDT", True, Decimal(1), Decimal(100), Decimal("0.1"), 0.0)
    marks.mark("binance", "BTC-USDT", Decimal(90))
    assert marks.pnl() == Decimal("-10.1") and marks.pnl("binance") == Decimal("-10.1") and marks.pnl("okx") == 0


def test_every_scopes_pnl_in_one_pass_is_the_same_decimal_as_pnl_gives() -> None:
    """`BookMarks.pnls` (what the peaks and the limits use) sums each scope's terms in `pnl`'s
    order: the same Decimal, digits and exponent, also where the order of the sums would round
    differently (28-digit marks, as a rate worked out by division gives)."""
    marks = BookMarks()
    third = Decimal(1) / Decimal(3)
    for i, (exchange, pair) in enumerate([("okx", "BTC-USDT"), ("binance", "BTC-USDT"), ("okx", "ETH-USDT"),
                                          ("binance", "SOL-USDT"), ("kraken", "BTC-USD")]):  # fmt: skip
        marks.apply_fill(exchange, pair, i % 2 == 0, Decimal("0.123456789") * (i + 1), Decimal("7407.40734") * (i + 1),
                         Decimal("0.000001") * i, float(i))  # fmt: skip
        marks.mark(exchange, pair, Decimal(60000 + i) * third)
    marks.apply_fill("kraken", "BTC-USD", False, Decimal("0.61728394"), Decimal("37037.1"), Decimal(0), 9.0)  # flat
    marks.cash["bitstamp"] = Decimal("-0.00")  # cash and no position
    pnls = marks.pnls()
    assert list(pnls) == marks.scopes()
    for scope, pnl in pnls.items():
        assert (pnl, str(pnl)) == (marks.pnl(scope), str(marks.pnl(scope)))
    assert marks.note_peaks() == pnls and all(marks.peak.get(s, Decimal(0)) >= pnls[s] for s in pnls)
    assert BookMarks().pnls() == {"TOTAL": Decimal(0)}


def test_duplicate_quantity_and_rate_are_pure() -> None:
    key = ("binance", "BTC-USDT", "BUY", Decimal(1), Decimal(1))
    assert check_duplicate(key, None, 10.0, 1.0) is None
    assert check_duplicate(key, 9.5, 10.0, 1.0) is not None
    assert check_duplicate(key, 9.0, 10.0, 1.0) is None
    assert check_quantity(Decimal("0.01"), Decimal("0.01"), "BTC-USDT") is None
    assert check_quantity(Decimal("0.011"), Decimal("0.01"), "BTC-USDT") is not None
    assert check_quantity(Decimal("0.001"), None, "BTC-USDT") is not None  # no limit: fail closed
    assert check_exchange_rate("binance", 49, 50, 1.0) is None
    assert check_exchange_rate("binance", 50, 50, 1.0) is not None


# --- through the governor -------------------------------------------------------------------


def test_the_duplicate_key_matches_equal_decimals_however_written() -> None:
    """`BreakerBoard.order_key` keys a price and an amount by their exact fractions: an order is a
    duplicate of an equal one (0.10 and 0.1, 6E+4 and 60000), never of one that differs at all."""
    board = BreakerBoard(BreakerSettings(max_order_amount={"BTC": Decimal(10)}))
    p = OrderProposal(bot_id="b", connector="binance", trading_pair="BTC-USDT", side=Side.BUY,
                      amount=Decimal("0.10"), price=Decimal(60000), mid_price=Decimal(60000), mid_price_ts=1.0)
    first = Order.of(p)
    assert board.pre_trade(first, "binance", 1.0) is None
    board.allowed(first, 1.0, "res-1")
    for amount, price, duplicate in ((Decimal("0.1"), Decimal("6E+4"), True), (Decimal("0.1000"), None, False),
                                     (Decimal("0.1000000000000000000000000000001"), Decimal(60000), False)):
        again = Order.of(p.model_copy(update={"amount": amount, "price": price}))
        trip = board.pre_trade(again, "binance", 1.5)
        assert (trip is not None and trip.code is DenialCode.DUPLICATE_ORDER) is duplicate, (amount, price)
        if duplicate:
            assert f"of {amount} BTC-USDT at {price}" in trip.message  # the proposal's own figures
    board.closed("res-1")
    assert board.pre_trade(Order.of(p), "binance", 1.5) is None


def test_ten_rejections_in_a_row_make_the_bot_reduce_only_there(
    governor: Governor, propose: Propose, clock: Clock, mandates: WideMandates
) -> None:
    codes = []
    for i in range(10):
        clock.advance(1)
        watch(governor, "binance_paper_trade", "BTC-USDT", 60010, clock.now, 0)
        decision = decide(governor, propose(price=Decimal(60000 - i), mid_price_ts=clock.now))
        codes.append(decision.code)
        if decision.allowed:
            governor.on_order_event(OrderEvent(kind=OrderEventKind.FAILED, reservation_id=decision.reservation_id))
    assert codes[:5] == [None] * 5
    assert set(codes[5:]) == {DenialCode.BREAKER_REJECT_STORM}
    trips = _breaker_records(governor)
    assert len(trips) == 1 and trips[0]["code"] == "BREAKER_REJECT_STORM" and trips[0]["action"] == "BOT_REDUCE_ONLY"
    # the storm's revocation, after the one of the fixture's promotion to phase 3 (`LadderView.changed`)
    assert [exchange for exchange, _ in mandates.revoked] == [None, "binance"]
    # the other exchange is untouched, and a close still passes on this one
    watch(governor, "okx_paper_trade", "BTC-USDT", 60010, clock.now - 10, 10)
    assert decide(governor, propose(connector="okx_paper_trade", mid_price_ts=clock.now)).allowed
    # after the cool-down the bot trades again
    clock.advance(governor.settings.breakers.storm_cooldown_s + 1)
    watch(governor, "binance_paper_trade", "BTC-USDT", 60010, clock.now - 10, 10)
    assert decide(governor, propose(mid_price_ts=clock.now, price=Decimal(59000))).allowed
    assert audit.verify(governor.ledger.engine).ok


def test_one_rejection_among_two_orders_stops_nothing(governor: Governor, propose: Propose, clock: Clock) -> None:
    first = decide(governor, propose())
    governor.on_order_event(OrderEvent(kind=OrderEventKind.FAILED, reservation_id=first.reservation_id))
    clock.advance(1)
    watch(governor, "binance_paper_trade", "BTC-USDT", 60010, clock.now, 0)
    assert decide(governor, propose(mid_price_ts=clock.now)).allowed
    assert governor.trading_state() is TradingState.ACTIVE and not _breaker_records(governor)


def test_a_duplicate_order_is_denied(governor: Governor, propose: Propose, clock: Clock) -> None:
    assert decide(governor, propose()).allowed
    assert decide(governor, propose()).code is DenialCode.DUPLICATE_ORDER
    assert decide(governor, propose(price=Decimal(59999))).allowed  # a different order
    clock.advance(1.0)
    again = decide(governor, propose(mid_price_ts=clock.now))
    assert again.allowed  # outside the window
    # an order the exchange refused may be sent again at once: a retry, not a duplicate
    governor.on_order_event(OrderEvent(kind=OrderEventKind.FAILED, reservation_id=again.reservation_id))
    assert decide(governor, propose(mid_price_ts=clock.now)).allowed


def test_max_order_quantity_in_base_units(governor: Governor, propose: Propose) -> None:
    # a broken price makes 0.5 BTC look like 25 USD: the notional check alone would pass it
    decision = decide(governor, propose(amount=Decimal("0.5"), price=Decimal(50), mid_price=Decimal(50)))
    assert decision.code in (DenialCode.PRICE_COLLAR, DenialCode.MID_MISMATCH, DenialCode.MAX_ORDER_QUANTITY)
    assert decide(governor, propose(amount=Decimal("0.011"), price=Decimal(60000))).code in (
        DenialCode.MAX_ORDER_QUANTITY,
        DenialCode.MAX_ORDER_NOTIONAL,
    )
    local = governor.settings.model_copy(
        update={"risk": governor.settings.risk.model_copy(update={"max_order_notional_usd": Decimal(5000)})}
    )
    governor.settings = local
    assert decide(governor, propose(amount=Decimal("0.011"))).code is DenialCode.MAX_ORDER_QUANTITY
    assert decide(governor, propose(amount=Decimal("0.01"))).allowed


def test_a_daily_loss_stops_trading_gradually_and_can_be_resumed(
    governor: Governor, propose: Propose, clock: Clock
) -> None:
    bought_and_filled(governor, propose(amount=Decimal("0.004"), price=Decimal(60000)))
    # the market falls 25 %: 0.004 BTC loses 60 USD, 6 % of the 1,000 USD paper book (limit 5 %)
    clock.advance(20)
    watch(governor, "binance_paper_trade", "BTC-USDT", 45000, clock.now - 5, 5)
    trips = governor.check_loss_limits()
    assert trips and trips[0].code is DenialCode.BREAKER_DAILY_LOSS
    assert governor.ladder_state(fresh=True).trading_state is TradingState.REDUCING
    assert _breaker_records(governor)[0]["code"] == "BREAKER_DAILY_LOSS"
    assert governor.review(propose(mid_price=Decimal(45000), price=Decimal(45000))).code is DenialCode.REDUCE_ONLY
    # an operator resumes: the loss so far is accepted, trading goes on, no immediate re-trip
    governor.ledger.resume("operator", "loss reviewed")
    governor.ladder_state(fresh=True)
    clock.advance(60)  # and the market has settled at its new level (the reference follows it)
    watch(governor, "binance_paper_trade", "BTC-USDT", 45000, clock.now - 60, 60)
    # the trip revoked the council's mandates (hole 6): the first order asks again
    assert decide(governor, propose(mid_price=Decimal(45000), price=Decimal(45000), mid_price_ts=clock.now)).allowed
    assert governor.check_loss_limits() == []


def test_the_exchange_wide_rate_budget_counts_every_bot(settings: Settings, clock: Clock, propose: Propose) -> None:
    local = settings.model_copy(
        update={"breakers": settings.breakers.model_copy(update={"exchange_order_rate_max": 3})}
    )
    bots = [make_governor(local, clock, f"bot-{i}") for i in range(3)]
    for gov in bots:
        watch(gov, "binance_paper_trade", "BTC-USDT", 60010, clock.now - 10, 10)
    codes = [decide(gov, propose(bot_id=gov.bot_id)).code for gov in bots]
    assert codes == [None, None, None]
    extra = decide(bots[0], propose(bot_id="bot-0", price=Decimal(59999)))
    assert extra.code is DenialCode.EXCHANGE_ORDER_RATE
    # a restart does not reset it: the count is in the store
    restarted = make_governor(local, clock, "bot-0")
    watch(restarted, "binance_paper_trade", "BTC-USDT", 60010, clock.now - 10, 10)
    assert decide(restarted, propose(bot_id="bot-0", price=Decimal(59998))).code is DenialCode.EXCHANGE_ORDER_RATE
    clock.advance(1.5)
    assert decide(restarted, propose(bot_id="bot-0", price=Decimal(59998), mid_price_ts=clock.now)).allowed
    for gov in [*bots, restarted]:
        gov.close()


def test_sell_side_reject_storm_leaves_closes_alone(governor: Governor, propose: Propose, clock: Clock) -> None:
    bought_and_filled(governor, propose(amount=Decimal("0.002")))
    for i in range(5):
        clock.advance(1)
        watch(governor, "binance_paper_trade", "BTC-USDT", 60010, clock.now, 0)
        d = decide(governor, propose(price=Decimal(59000 + i), mid_price_ts=clock.now))
        governor.on_order_event(OrderEvent(kind=OrderEventKind.FAILED, reservation_id=d.reservation_id))
    close = governor.review(propose(side=Side.SELL, amount=Decimal("0.002"), reduce_only=True, mid_price_ts=clock.now))
    assert close.allowed, close.message


def test_a_trip_shows_in_status_and_metrics(governor: Governor, propose: Propose, clock: Clock) -> None:
    from prometheus_client import generate_latest

    from lyra_governor.metrics import LyraCollector, build_registry
    from lyra_governor.status import collect_status

    for i in range(5):
        clock.advance(1)
        watch(governor, "binance_paper_trade", "BTC-USDT", 60010, clock.now, 0)
        d = decide(governor, propose(price=Decimal(60000 - i), mid_price_ts=clock.now))
        governor.on_order_event(OrderEvent(kind=OrderEventKind.FAILED, reservation_id=d.reservation_id))
    status = collect_status(governor.settings, ledger=governor.ledger, now=clock.now)
    assert status["breakers"]["by_code"] == {"BREAKER_REJECT_STORM": 1}
    assert status["breakers"]["latest"][0]["scope"] == "binance"
    text = generate_latest(build_registry(LyraCollector(governor.settings, governor.ledger, clock=clock))).decode()
    assert 'lyra_breaker_trips_total{action="BOT_REDUCE_ONLY",code="BREAKER_REJECT_STORM"} 1.0' in text


def test_in_phase_four_a_loss_on_one_exchange_demotes_its_rung_and_stops(
    settings: Settings, clock: Clock, propose: Propose
) -> None:
    gov = make_governor(settings, clock)
    gov.ledger.set_phase(4, "test", "live micro capital")
    gov.ladder_state(fresh=True)
    watch(gov, "binance", "BTC-USDT", 60010, clock.now - 30, 30)
    bought_and_filled(gov, propose(connector="binance", amount=Decimal("0.0015")))  # 90 USD of a 100 USD rung
    clock.advance(10)
    watch(gov, "binance", "BTC-USDT", 55000, clock.now - 3, 3)  # -7.5 USD: 7.5 % of the rung (limit 5 %)
    trips = gov.check_loss_limits()
    scopes = {t.scope: t.action.value for t in trips}
    assert scopes.get("live:binance") == "DEMOTE_AND_STOP", scopes
    assert gov.ladder_state(fresh=True).trading_state is TradingState.REDUCING
    records = [r for r in audit.tail(gov.ledger.engine, 50) if r.event in ("demote", "breaker")]
    assert {r.event for r in records} == {"demote", "breaker"}
    gov.close()


def test_a_restart_does_not_lift_a_storm_block(settings: Settings, clock: Clock, propose: Propose) -> None:
    gov = make_governor(settings, clock)
    watch(gov, "binance_paper_trade", "BTC-USDT", 60010, clock.now - 30, 30)
    for i in range(5):
        d = decide(gov, propose(price=Decimal(60000 - i)))
        gov.on_order_event(OrderEvent(kind=OrderEventKind.FAILED, reservation_id=d.reservation_id))
    assert decide(gov, propose(price=Decimal(59000))).code is DenialCode.BREAKER_REJECT_STORM
    gov.close()
    restarted = make_governor(settings, clock)  # a crash-looping bot does not escape its block
    watch(restarted, "binance_paper_trade", "BTC-USDT", 60010, clock.now - 30, 30)
    assert decide(restarted, propose(price=Decimal(59001))).code is DenialCode.BREAKER_REJECT_STORM
    clock.advance(settings.breakers.storm_cooldown_s + 1)
    watch(restarted, "binance_paper_trade", "BTC-USDT", 60010, clock.now - 30, 30)
    assert decide(restarted, propose(price=Decimal(59002), mid_price_ts=clock.now)).allowed
    restarted.close()


def test_the_rate_budget_counts_again_after_another_writer(settings: Settings, clock: Clock, propose: Propose) -> None:
    """A writer that skips counting (its own orders since its last count keep it under the
    budget) must count again once another bot has written: that bot's orders count too."""
    local = settings.model_copy(
        update={"breakers": settings.breakers.model_copy(update={"exchange_order_rate_max": 3})}
    )
    first, second = make_governor(local, clock, "bot-0"), make_governor(local, clock, "bot-1")
    for gov in (first, second):
        watch(gov, "binance_paper_trade", "BTC-USDT", 60010, clock.now - 10, 10)
    assert decide(first, propose(bot_id="bot-0")).allowed  # counted 0, then 1 of its own
    assert decide(second, propose(bot_id="bot-1")).allowed
    assert decide(second, propose(bot_id="bot-1", price=Decimal(59999))).allowed
    refused = decide(first, propose(bot_id="bot-0", price=Decimal(59998)))
    assert refused.code is DenialCode.EXCHANGE_ORDER_RATE, refused.message
    for gov in (first, second):
        gov.close()
