"""Governor.review end to end on a real SQLite store: every check, cheapest first, audited."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from lyra_governor import audit
from lyra_governor.config import Settings
from lyra_governor.governor import Governor
from lyra_governor.ledger import Ledger
from lyra_governor.models import (
    Decision,
    DecisionStatus,
    DenialCode,
    MarketSnapshot,
    OrderEvent,
    OrderEventKind,
    OrderProposal,
    Side,
    TradingState,
)
from lyra_governor.store import audit_log

from .conftest import EnvelopeMandates, FakeClock, allowed

Propose = Callable[..., OrderProposal]


def test_allowed_order_reserves_capital_and_is_audited(governor: Governor, propose: Propose) -> None:
    decision = allowed(governor, propose())
    assert decision.allowed, decision.message
    assert decision.reservation_id and decision.mandate_id and decision.audit_seq
    assert decision.notional_usd == Decimal("60.000")
    exposure = governor.ledger.exposure("paper")
    assert exposure.exchanges["binance"].reserved_usd == Decimal("60")
    assert exposure.total.reserved_usd == Decimal("60")
    assert audit.verify(governor.ledger.engine).ok


def test_an_allowed_decision_is_the_model_its_fields_construct(governor: Governor, propose: Propose) -> None:
    """`Decisions.allowed` builds the model without validating it again (`decisions.built`):
    the same model as `Decision(...)`, the same fields set, frozen as ever."""
    decision = allowed(governor, propose())
    fields = {name: getattr(decision, name) for name in decision.model_fields_set}
    built = Decision(**fields)
    assert type(decision) is Decision and decision == built
    assert decision.model_fields_set == built.model_fields_set == set(Decision.model_fields) - {"code"}
    with pytest.raises(ValidationError):
        decision.message = "changed"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"amount": Decimal("NaN")}, DenialCode.INVALID_AMOUNT),
        ({"amount": Decimal("Infinity")}, DenialCode.INVALID_AMOUNT),
        ({"amount": Decimal(0)}, DenialCode.INVALID_AMOUNT),
        ({"amount": Decimal("-0.1")}, DenialCode.INVALID_AMOUNT),
        ({"price": Decimal("NaN")}, DenialCode.INVALID_PRICE),
        ({"price": Decimal("-1")}, DenialCode.INVALID_PRICE),
        ({"price": Decimal(0)}, DenialCode.INVALID_PRICE),
        ({"mid_price": Decimal("NaN")}, DenialCode.INVALID_MID_PRICE),
        ({"mid_price": Decimal(0)}, DenialCode.INVALID_MID_PRICE),
        ({"trading_pair": "DOGE-USDT"}, DenialCode.UNKNOWN_PAIR),
        ({"connector": "mystery_paper_trade"}, DenialCode.UNKNOWN_EXCHANGE),
        ({"price": Decimal("70000")}, DenialCode.PRICE_COLLAR),
        ({"amount": Decimal("0.01")}, DenialCode.MAX_ORDER_NOTIONAL),
        ({"connector": "binance"}, DenialCode.LIVE_NOT_PERMITTED),
    ],
)
def test_bad_input_is_denied_with_its_code(
    governor: Governor, propose: Propose, overrides: dict[str, Any], code: DenialCode
) -> None:
    decision = governor.review(propose(**overrides))
    assert decision.status is DecisionStatus.DENIED
    assert decision.code is code, decision.message
    assert decision.message
    assert governor.ledger.exposure("paper").total.reserved_usd == 0
    last = audit.tail(governor.ledger.engine, 1)[0]
    assert last.event == "decision" and last.payload["code"] == code.value


def test_stale_mid_price_is_denied(governor: Governor, propose: Propose, clock: FakeClock) -> None:
    proposal = propose(mid_price_ts=clock.now - 31)
    assert governor.review(proposal).code is DenialCode.STALE_PRICE


def test_missing_fx_rate_is_denied(
    settings: Settings, clock: FakeClock, mandates: EnvelopeMandates, propose: Propose
) -> None:
    rates = {k: v for k, v in settings.fx_usd.items() if k != "AUD"}
    exchanges = {k: v for k, v in settings.exchanges.items() if k not in ("btc_markets", "digital_surge")}
    exchanges["btc_markets"] = settings.exchanges["btc_markets"]
    local = settings.model_copy(update={"fx_usd": rates, "exchanges": exchanges})
    gov = Governor.from_settings(local, "bot-1", mandates=mandates, clock=clock)
    gov.ledger.set_phase(3, "test", "paper")
    decision = gov.review(
        propose(
            connector="btc_markets_paper_trade", trading_pair="BTC-AUD", price=Decimal(90000), mid_price=Decimal(90000)
        )
    )
    assert decision.code is DenialCode.FX_RATE_MISSING
    gov.close()


def test_aud_quote_converts_to_usd(governor: Governor, propose: Propose) -> None:
    decision = allowed(
        governor,
        propose(
            connector="btc_markets_paper_trade", trading_pair="BTC-AUD", price=Decimal(90000), mid_price=Decimal(90000)
        ),
    )
    assert decision.allowed
    assert decision.notional_usd == Decimal("0.001") * 90000 * Decimal("0.65")


@pytest.mark.parametrize("phase", [1, 2])
def test_phases_one_and_two_place_no_orders(governor: Governor, propose: Propose, phase: int) -> None:
    governor.ledger.set_phase(phase, "test", "back to the start")
    assert governor.ladder_state(fresh=True).phase == phase
    assert governor.review(propose()).code is DenialCode.PHASE_FORBIDS_ORDERS


def test_phase_four_refuses_paper_and_enforces_the_first_rung(
    governor: Governor, propose: Propose, clock: FakeClock
) -> None:
    governor.ledger.set_phase(4, "test", "live micro capital")
    governor.ladder_state(fresh=True)
    assert governor.review(propose()).code is DenialCode.PAPER_NOT_PERMITTED
    assert governor.capacity_usd("binance") == Decimal(100)
    first = allowed(governor, propose(connector="binance", amount=Decimal("0.0015")))  # 90 USD
    assert first.allowed
    clock.advance(1)
    second = governor.review(propose(connector="binance", amount=Decimal("0.0005")))  # 30 more > 100
    assert second.code is DenialCode.EXCHANGE_CAP
    assert "100.00 USD cap" in second.message


def test_total_cap_holds_across_exchanges(governor: Governor, propose: Propose, clock: FakeClock) -> None:
    # phase 3: 1,000 virtual in total; 4 x 240 on two exchanges, then the fifth is refused
    codes = []
    for i in range(5):
        connector = "binance_paper_trade" if i % 2 else "okx_paper_trade"
        clock.advance(1)
        decision = allowed(governor, propose(connector=connector, amount=Decimal("0.004")))
        codes.append(decision.code)
    assert codes[:4] == [None] * 4
    assert codes[4] is DenialCode.TOTAL_CAP


def test_flash_move_trips_the_collar(governor: Governor, propose: Propose, clock: FakeClock) -> None:
    for _ in range(10):
        clock.advance(1)
        governor.observe_market(
            MarketSnapshot(
                connector="binance_paper_trade", trading_pair="BTC-USDT", timestamp=clock.now, mid_price=Decimal(60000)
            )
        )
    clock.advance(1)
    governor.observe_market(
        MarketSnapshot(
            connector="binance_paper_trade", trading_pair="BTC-USDT", timestamp=clock.now, mid_price=Decimal(54000)
        )
    )
    decision = governor.review(propose(price=Decimal(54000), mid_price=Decimal(54000), mid_price_ts=clock.now))
    assert decision.code is DenialCode.PRICE_COLLAR
    assert "reference" in decision.message


def test_a_stop_loss_close_passes_the_flash_move_check_but_not_a_fat_finger_price(
    governor: Governor, propose: Propose, clock: FakeClock
) -> None:
    bought = allowed(governor, propose())
    governor.on_order_event(
        OrderEvent(kind=OrderEventKind.FILLED, reservation_id=bought.reservation_id,
                   filled_amount=Decimal("0.001"), fill_price=Decimal(60000))
    )  # fmt: skip
    for mid in [60000] * 10 + [54000]:  # a 10 % flash move
        clock.advance(1)
        governor.observe_market(
            MarketSnapshot(connector="binance_paper_trade", trading_pair="BTC-USDT", timestamp=clock.now,
                           mid_price=Decimal(mid))
        )  # fmt: skip
    close = {"side": Side.SELL, "mid_price": Decimal(54000), "mid_price_ts": clock.now, "reduce_only": True}
    assert governor.review(propose(price=Decimal(53990), **close)).allowed
    fat_finger = governor.review(propose(price=Decimal(40000), **close))
    assert fat_finger.code is DenialCode.PRICE_COLLAR and "from mid" in fat_finger.message


def test_reduce_only_is_judged_on_the_bots_own_position(
    governor: Governor, propose: Propose, clock: FakeClock, settings: Settings
) -> None:
    # a close that reduces nothing is an ordinary order (here: it waits for a mandate) ...
    assert governor.review(propose(side=Side.SELL, reduce_only=True)).code is DenialCode.NO_MANDATE
    # ... and in a gradual stop it is refused
    governor.ledger.reduce_only("gradual stop", "council")
    governor.ladder_state(fresh=True)
    flat = governor.review(propose(side=Side.SELL, reduce_only=True))
    assert flat.code is DenialCode.REDUCE_ONLY and "(flat)" in flat.message
    governor.ledger.resume("operator")
    governor.ladder_state(fresh=True)
    bought = allowed(governor, propose(amount=Decimal("0.002")))
    governor.on_order_event(
        OrderEvent(kind=OrderEventKind.FILLED, reservation_id=bought.reservation_id,
                   filled_amount=Decimal("0.002"), fill_price=Decimal(60000))
    )  # fmt: skip
    # another bot on the same exchange sells: its trades do not block this bot's close
    other = Governor.from_settings(settings, "bot-2", mandates=EnvelopeMandates(), clock=clock)
    sold = allowed(other, propose(bot_id="bot-2", side=Side.SELL, amount=Decimal("0.002")))
    other.on_order_event(
        OrderEvent(kind=OrderEventKind.FILLED, reservation_id=sold.reservation_id,
                   filled_amount=Decimal("0.002"), fill_price=Decimal(60000))
    )  # fmt: skip
    assert governor.ledger.exposure("paper").exchanges["binance"].deployed_usd == 0  # the shared figure
    governor.ledger.reduce_only("gradual stop", "council")
    governor.ladder_state(fresh=True)
    first = governor.review(propose(side=Side.SELL, amount=Decimal("0.002"), reduce_only=True))
    assert first.allowed
    too_much = governor.review(propose(side=Side.SELL, amount=Decimal("0.003"), reduce_only=True))
    assert too_much.code is DenialCode.REDUCE_ONLY and "long 0.002" in too_much.message
    # a fresh governor for the same bot (a restart) reads the position back from the fills, and
    # the close already resting from the store: a second one would stack (issue 14 hole 3)
    restarted = Governor.from_settings(settings, "bot-1", mandates=EnvelopeMandates(), clock=clock)
    stacked = restarted.review(propose(side=Side.SELL, amount=Decimal("0.002"), reduce_only=True))
    assert stacked.code is DenialCode.REDUCE_ONLY
    restarted.on_order_event(OrderEvent(kind=OrderEventKind.CANCELLED, reservation_id=first.reservation_id or ""))
    assert restarted.review(propose(side=Side.SELL, amount=Decimal("0.002"), reduce_only=True)).allowed
    other.close()
    restarted.close()


def test_order_rate_and_open_order_limits(
    settings: Settings, clock: FakeClock, mandates: EnvelopeMandates, propose: Propose
) -> None:
    local = settings.model_copy(
        update={"risk": settings.risk.model_copy(update={"order_rate_max": 3, "max_open_orders": 5})}
    )
    gov = Governor.from_settings(local, "bot-1", mandates=mandates, clock=clock)
    gov.ledger.set_phase(3, "test", "paper")
    small = {"amount": Decimal("0.0001")}
    # each a different price: the same order again within a second is a duplicate (DUPLICATE_ORDER)
    codes = [allowed(gov, propose(**small, price=Decimal(60000 - i))).code for i in range(4)]
    assert codes == [None, None, None, DenialCode.ORDER_RATE]
    clock.advance(2)
    codes = [allowed(gov, propose(**small, mid_price_ts=clock.now, price=Decimal(59990 - i))).code for i in range(3)]
    assert codes == [None, None, DenialCode.MAX_OPEN_ORDERS]
    gov.close()


def test_without_a_mandate_the_order_waits_and_the_council_is_asked(
    settings: Settings, clock: FakeClock, propose: Propose
) -> None:
    refusing = EnvelopeMandates(refuse=True)
    gov = Governor.from_settings(settings, "bot-1", mandates=refusing, clock=clock)
    gov.ledger.set_phase(3, "test", "paper")
    decision = gov.review(propose())
    assert decision.status is DecisionStatus.PENDING and decision.code is DenialCode.NO_MANDATE
    assert len(refusing.requests) == 1
    context = refusing.requests[0]
    assert context.phase == 3 and context.cap_usd == Decimal(1000) and context.now == clock.now
    assert gov.ledger.exposure("paper").total.reserved_usd == 0
    gov.close()


def test_fill_deploys_and_cancel_releases(governor: Governor, propose: Propose, clock: FakeClock) -> None:
    buy = allowed(governor, propose())
    clock.advance(1)
    cancel = allowed(governor, propose(mid_price_ts=clock.now))
    assert buy.reservation_id and cancel.reservation_id
    governor.on_order_event(
        OrderEvent(
            kind=OrderEventKind.FILLED,
            reservation_id=buy.reservation_id,
            filled_amount=Decimal("0.0004"),
            fill_price=Decimal(60000),
        )
    )
    exposure = governor.ledger.exposure("paper").exchanges["binance"]
    assert exposure.deployed_usd == Decimal(24) and exposure.reserved_usd == Decimal(96)
    governor.on_order_event(
        OrderEvent(
            kind=OrderEventKind.FILLED,
            reservation_id=buy.reservation_id,
            filled_amount=Decimal("0.0006"),
            fill_price=Decimal(60000),
        )
    )
    governor.on_order_event(OrderEvent(kind=OrderEventKind.CANCELLED, reservation_id=cancel.reservation_id))
    exposure = governor.ledger.exposure("paper").exchanges["binance"]
    assert exposure.deployed_usd == Decimal(60) and exposure.reserved_usd == 0
    ok, why = governor.ledger.totals_agree()
    assert ok, why
    # a sell that reduces exposure passes as reduce-only, and its fill lowers deployed capital
    governor.ledger.reduce_only("gradual stop under test", "test")
    governor.ladder_state(fresh=True)
    assert governor.review(propose(side=Side.SELL, mid_price_ts=clock.now)).code is DenialCode.REDUCE_ONLY
    close = governor.review(propose(side=Side.SELL, reduce_only=True, mid_price_ts=clock.now))
    assert close.allowed and close.reservation_id
    governor.on_order_event(
        OrderEvent(
            kind=OrderEventKind.FILLED,
            reservation_id=close.reservation_id,
            filled_amount=Decimal("0.001"),
            fill_price=Decimal(60000),
        )
    )
    assert governor.ledger.exposure("paper").exchanges["binance"].deployed_usd == 0
    assert audit.verify(governor.ledger.engine).ok


def test_halt_from_another_process_is_seen_within_a_tick(
    governor: Governor, propose: Propose, settings: Settings
) -> None:
    assert allowed(governor, propose()).allowed
    operator = Ledger.open(settings)
    operator.halt("operator emergency stop", "operator")
    governor.ladder_state(fresh=True)  # what the next tick does after STATE_REFRESH_S
    decision = governor.review(propose(price=Decimal(59999)))
    assert decision.code is DenialCode.HALTED and "operator emergency stop" in decision.message
    assert governor.trading_state() is TradingState.HALTED
    operator.resume("operator")
    governor.ladder_state(fresh=True)
    assert governor.review(propose(price=Decimal(59998))).allowed
    operator.close()


def test_no_reservation_is_written_after_a_halt_even_with_a_cached_state(
    governor: Governor, propose: Propose, settings: Settings
) -> None:
    assert allowed(governor, propose()).allowed  # the governor now holds an ACTIVE state in its cache
    operator = Ledger.open(settings)
    try:
        before = governor.ledger.exposure("paper").total.used_usd
        operator.halt("halt between two ticks", "operator")
        decision = governor.review(propose(price=Decimal(59999)))  # no refresh: the reservation re-reads the ladder
        assert decision.code is DenialCode.HALTED and "halt between two ticks" in decision.message
        assert governor.ledger.exposure("paper").total.used_usd == before
        assert governor.trading_state() is TradingState.HALTED  # and the cache was refreshed
        operator.resume("operator")
        governor.ladder_state(fresh=True)  # ACTIVE again in the cache ...
        governor.ladder_view.read_at = float("inf")  # ... and kept there on purpose
        operator.reduce_only("gradual stop between two ticks", "council")
        assert governor.review(propose(price=Decimal(59998))).code is DenialCode.REDUCE_ONLY
    finally:
        operator.close()


def test_a_restriction_written_elsewhere_is_read_with_the_ladder_row(governor: Governor, propose: Propose) -> None:
    """Each refresh of the cached ladder state reads the raw ladder row and this bot's own
    restriction in one look (`OrderStore.ladder_look`); a restriction another process wrote is
    seen on the next refresh, the cached state kept while the row is unchanged."""
    from lyra_governor.store import bots

    assert allowed(governor, propose()).allowed  # an ACTIVE state in the cache
    cached = governor.ladder_view.cached
    with governor.ledger.engine.begin() as conn:  # another process restricts this bot
        conn.execute(bots.update().where(bots.c.bot_id == "bot-1").values(reduce_only_reason="overfill elsewhere"))
    assert governor.store.ladder_look("bot-1") == (governor.store.ladder_row(), "overfill elsewhere")
    assert governor.store.ladder_look("no-such-bot")[1] is None
    governor.ladder_view.look_again()
    assert governor.ladder_state() is cached and governor.ladder_view.bot_reduce_only == "overfill elsewhere"
    assert governor.review(propose(price=Decimal(59990))).code is DenialCode.BOT_REDUCE_ONLY


def test_the_ladder_look_is_taken_between_reviews(
    governor: Governor, propose: Propose, settings: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A market fact takes the ladder look the next review would take once the cache is older
    than `refresh_s` (`LadderView.ahead`): a halt written elsewhere is seen, and the review
    itself reads no ladder row. Within `refresh_s` a fact looks at nothing; a store error in the
    look is left to the review, which looks again and fails closed."""
    from lyra_governor.store_budget import StoreBusy

    assert allowed(governor, propose()).allowed  # an ACTIVE state in the cache
    view, store = governor.ladder_view, governor.store
    wall = [100.0]
    monkeypatch.setattr(view, "clock", lambda: wall[0])
    view.read_at = wall[0]
    looks: list[str] = []
    look = store.ladder_look
    monkeypatch.setattr(store, "ladder_look", lambda bot_id, at=None: looks.append(bot_id) or look(bot_id, at))
    fact = MarketSnapshot(connector="binance_paper_trade", trading_pair="BTC-USDT", timestamp=clock.now,
                          mid_price=Decimal(60000))  # fmt: skip
    operator = Ledger.open(settings)
    try:
        operator.halt("halt seen between reviews", "operator")
        wall[0] += view.refresh_s / 2
        governor.observe_market(fact)
        assert looks == [] and view.cached is not None and view.cached.trading_state is TradingState.ACTIVE
        wall[0] += view.refresh_s
        governor.observe_market(fact)
        assert looks == ["bot-1"] and governor.trading_state() is TradingState.HALTED
        decision = governor.review(propose(price=Decimal(59999)))
        assert decision.code is DenialCode.HALTED and looks == ["bot-1"]  # the review took no look of its own
        operator.resume("operator")
        wall[0] += 2 * view.refresh_s

        def busy(bot_id: str, at: float | None = None) -> Any:
            raise StoreBusy("held")

        monkeypatch.setattr(store, "ladder_look", busy)
        governor.observe_market(fact)  # the error is not the market fact's
        monkeypatch.setattr(store, "ladder_look", lambda bot_id, at=None: looks.append(bot_id) or look(bot_id, at))
        assert governor.review(propose(price=Decimal(59998))).allowed  # the review looked again: ACTIVE
        assert looks == ["bot-1", "bot-1"]
    finally:
        operator.close()


def test_the_first_ladder_read_is_taken_by_a_market_fact_not_by_the_review(
    governor: Governor, propose: Propose, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing cached (a new governor, or a state changed from here: `drop`), the next
    market fact takes the ladder's full read (`LadderView.ahead`), not the review: in
    bench/governor_review.py that read was 330 us of the first review's ~1 ms. On the old code
    `ahead` looked only at a cache that was there, and the review read the ladder itself."""
    view = governor.ladder_view
    view.drop()
    reads: list[str] = []
    state = governor.ledger.state

    def counted(*conn: Any) -> Any:
        if not conn:  # the outer call (it reads again on its own connection)
            reads.append("state")
        return state(*conn)

    monkeypatch.setattr(governor.ledger, "state", counted)
    for t in (clock.now - 30, clock.now):  # the history the reference check wants
        governor.observe_market(MarketSnapshot(connector="binance_paper_trade", trading_pair="BTC-USDT",
                                               timestamp=t, mid_price=Decimal(60010)))  # fmt: skip
    assert reads == ["state"] and view.cached is not None
    assert allowed(governor, propose()).allowed and reads == ["state"]  # the review read no ladder


def test_sizing_and_loss_limits_read_only_the_capital_rows_they_use(governor: Governor, propose: Propose) -> None:
    """Sizing reads the exchange's row and its book's total (`capital_pair_rows`), the loss
    limits the caps (`caps`): the same figures as the whole book's rows give."""
    assert allowed(governor, propose()).allowed  # 60 USD reserved on binance
    rows = governor.store.capital_rows("paper")
    pair = governor.store.capital_pair_rows("paper", "binance")
    assert sorted(pair) == sorted(r for r in rows if r[0] in ("paper:binance", "paper:TOTAL"))
    assert governor.store.caps("paper") == {r[0].split(":", 1)[1]: r[1] for r in rows}
    exposure = governor.exposure("paper")
    expected = min(exposure.exchanges["binance"].remaining_usd, exposure.total.remaining_usd)
    assert governor.capacity_usd("binance") == expected == Decimal(1000) - Decimal(60)
    assert governor.capacity_usd("no-such-exchange") == Decimal(0)
    assert governor.check_loss_limits() == []
    # the council's question: the exchange's figures from its pair of rows (old code: the whole
    # book's rows, read with a LIKE), the same Decimals
    assert governor.exchange_exposure("paper", "binance") == exposure.exchanges["binance"]
    assert governor.exchange_exposure("paper", "no-such-exchange") is None
    assert governor.exchange_exposure("paper", "TOTAL") is None  # the total is no exchange's


def test_silent_bot_reservations_expire(settings: Settings, clock: FakeClock, propose: Propose) -> None:
    mandates = EnvelopeMandates()
    dead = Governor.from_settings(settings, "bot-dead", mandates=mandates, clock=clock)
    dead.ledger.set_phase(3, "test", "paper")
    assert allowed(dead, propose(bot_id="bot-dead")).allowed
    assert dead.ledger.exposure("paper").total.reserved_usd > 0
    clock.advance(settings.risk.heartbeat_timeout_s + 10)
    alive = Governor.from_settings(settings, "bot-alive", mandates=mandates, clock=clock)
    alive.heartbeat()
    # issue 14 hole 7: the silent bot's orders may still be live, so its capital stays counted
    # (ORPHANED, old code: released as EXPIRED and free for another bot)
    total = alive.ledger.exposure("paper").total
    assert total.reserved_usd == 0 and total.orphaned_usd == Decimal("60") and total.used_usd == Decimal("60")
    assert alive.capacity_usd("binance") == Decimal(1000) - Decimal(60)
    assert any(r.event == "reservations_orphaned" for r in audit.tail(alive.ledger.engine, 5))
    assert [o["bot_id"] for o in alive.store.orphans()] == ["bot-dead"]
    ok, why = alive.ledger.totals_agree()
    assert ok, why
    # the bot comes back: its reservations are its own again (reserved), to reconcile
    back = Governor.from_settings(settings, "bot-dead", mandates=mandates, clock=clock)
    assert back.ledger.exposure("paper").total.reserved_usd == Decimal("60") and not back.store.orphans()
    clock.advance(settings.risk.heartbeat_timeout_s + 10)
    alive.heartbeats.last, alive.heartbeats.beats = float("-inf"), 0
    alive.heartbeat()  # silent again; now an operator checks the exchange and releases them
    assert alive.store.release_orphans("bot-dead", "operator", clock(), "checked on binance: no open orders")
    assert alive.ledger.exposure("paper").total.used_usd == 0
    assert any(r.event == "orphans_released" for r in audit.tail(alive.ledger.engine, 5))
    dead.close()
    back.close()
    alive.close()


def test_dead_database_fails_closed(governor: Governor, propose: Propose) -> None:
    allowed(governor, propose())  # the mandate is in place
    governor.store.close()
    governor.ledger.engine.dispose()
    path = governor.settings.db_path
    assert path is not None
    for suffix in ("", "-wal", "-shm"):
        p = path.with_name(path.name + suffix)
        if p.exists():
            p.unlink()
    path.mkdir()  # the database path is now a folder: nothing can open it
    decision = governor.review(propose())
    assert decision.status is DecisionStatus.DENIED
    assert decision.code is DenialCode.STORE_UNAVAILABLE
    assert not decision.allowed and decision.reservation_id is None


def test_edited_audit_row_is_found(governor: Governor, propose: Propose, clock: FakeClock) -> None:
    for _ in range(5):
        clock.advance(1)
        allowed(governor, propose(mid_price_ts=clock.now))
    result = audit.verify(governor.ledger.engine)
    assert result.ok and result.count >= 5
    with governor.ledger.engine.begin() as conn:
        conn.execute(sa.update(audit_log).where(audit_log.c.seq == 4).values(payload='{"edited":true}'))
    broken = audit.verify(governor.ledger.engine)
    assert not broken.ok and broken.first_broken == 4
    with governor.ledger.engine.begin() as conn:
        conn.execute(sa.delete(audit_log).where(audit_log.c.seq == 2))
    assert audit.verify(governor.ledger.engine).first_broken == 2


def test_exchanges_hummingbot_cannot_trade_get_no_live_rung_or_cap(governor: Governor) -> None:
    state = governor.ledger.set_phase(4, "test", "live micro capital")
    assert "whitebit" not in state.rungs and "digital_surge" not in state.rungs
    assert set(state.rungs) == {"binance", "okx", "kraken", "gate_io", "btc_markets"}
    exposure = governor.ledger.exposure("live")
    assert exposure.exchanges["whitebit"].cap_usd == 0 and exposure.exchanges["binance"].cap_usd == 100
    assert exposure.total.cap_usd == 500  # five tradable exchanges at the $100 rung
