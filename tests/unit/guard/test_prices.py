"""Holes 1, 2 and 12 of issue 14: a LIMIT needs its own price, a MARKET order is valued at its
worst price, the flash-move reference is time-weighted and never absent, and an observed FX
rate is trusted only near the configured one. Through `Governor.review` on a real store."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from lyra_governor import risk
from lyra_governor.config import Settings
from lyra_governor.governor import Governor
from lyra_governor.models import DecisionStatus, DenialCode, MarketSnapshot, Order, OrderProposal, OrderType, Side

from .conftest import Clock, decide, make_governor, watch

Propose = Callable[..., OrderProposal]


# --- hole 1: prices by order type -------------------------------------------------------------


@pytest.mark.parametrize("order_type", [OrderType.LIMIT, OrderType.LIMIT_MAKER])
@pytest.mark.parametrize(
    ("price", "code"),
    [
        (None, DenialCode.LIMIT_PRICE_MISSING),
        (Decimal("NaN"), DenialCode.INVALID_PRICE),
        (Decimal("sNaN"), DenialCode.INVALID_PRICE),
        (Decimal(0), DenialCode.INVALID_PRICE),
        (Decimal(-5), DenialCode.INVALID_PRICE),
        (Decimal("Infinity"), DenialCode.INVALID_PRICE),
    ],
)
def test_a_limit_order_without_a_valid_price_is_denied_by_name(
    governor: Governor, propose: Propose, order_type: OrderType, price: Decimal | None, code: DenialCode
) -> None:
    decision = decide(governor, propose(order_type=order_type, price=price))
    assert decision.status is DecisionStatus.DENIED and decision.code is code, decision.message
    assert governor.ledger.exposure("paper").total.used_usd == 0


def test_a_market_order_is_valued_at_its_worst_price(governor: Governor, propose: Propose) -> None:
    buy = decide(governor, propose(order_type=OrderType.MARKET, price=None, amount=Decimal("0.002")))
    assert buy.allowed, buy.message
    # mid 60,010 plus the 3 % collar: 61,810.30 per BTC, not 60,010
    assert buy.notional_usd == Decimal("0.002") * Decimal(60010) * Decimal("1.03")
    row = governor.ledger.open_reservations("bot-1")[0]
    assert Decimal(row["price"]) == Decimal(60010) * Decimal("1.03")
    sell = decide(governor, propose(order_type=OrderType.MARKET, price=None, side=Side.SELL))
    assert sell.allowed and sell.notional_usd == Decimal("0.001") * Decimal(60010)


def test_a_market_buy_near_the_notional_limit_is_refused_at_its_worst_price(
    governor: Governor, propose: Propose
) -> None:
    # 0.0041 BTC x 60,010 = 246 USD (under the 250 USD limit at mid), x 1.03 = 253 USD
    decision = decide(governor, propose(order_type=OrderType.MARKET, price=None, amount=Decimal("0.0041")))
    assert decision.code is DenialCode.MAX_ORDER_NOTIONAL


def test_pure_valuation() -> None:
    p = OrderProposal(bot_id="b", connector="c", trading_pair="BTC-USDT", side=Side.SELL, order_type=OrderType.MARKET,
                      amount=Decimal(1), mid_price=Decimal(100), mid_price_ts=0)  # fmt: skip
    assert risk.valuation_price(Order.of(p), 3.0) == Decimal(97)
    assert risk.notional_price(Order.of(p), 3.0) == Decimal(100)
    assert risk.valuation_price(Order.of(p.model_copy(update={"side": Side.BUY})), 3.0) == Decimal(103)


def test_a_book_from_the_future_is_refused_beyond_the_tolerance(
    governor: Governor, propose: Propose, clock: Clock
) -> None:
    assert decide(governor, propose(mid_price_ts=clock.now + 1.5)).allowed
    late = decide(governor, propose(mid_price_ts=clock.now + 3, price=Decimal(60001)))
    assert late.code is DenialCode.STALE_PRICE and "future" in late.message


# --- hole 2: the flash-move reference -------------------------------------------------------


def test_a_burst_of_observations_cannot_outvote_the_reference(
    settings: Settings, clock: Clock, propose: Propose
) -> None:
    gov = make_governor(settings, clock)
    watch(gov, "binance_paper_trade", "BTC-USDT", 60000, clock.now - 40, 38)  # 38 s of a calm market
    # a 10 % crash observed at 10 Hz over the last two seconds: 20 samples against 38
    for i in range(20):
        gov.observe_market(MarketSnapshot(connector="binance_paper_trade", trading_pair="BTC-USDT",
                                          timestamp=clock.now - 1.95 + i / 10, mid_price=Decimal(54000)))  # fmt: skip
    decision = decide(gov, propose(price=Decimal(54000), mid_price=Decimal(54000)))
    assert decision.code is DenialCode.PRICE_COLLAR and "time-weighted" in decision.message
    gov.close()


def test_a_new_bot_waits_for_history_instead_of_passing(settings: Settings, clock: Clock, propose: Propose) -> None:
    gov = make_governor(settings, clock)
    assert decide(gov, propose()).code is DenialCode.REFERENCE_WARMUP  # never observed
    watch(gov, "binance_paper_trade", "BTC-USDT", 60010, clock.now - 3, 3)  # 3 s < the 5 s needed
    assert decide(gov, propose()).code is DenialCode.REFERENCE_WARMUP
    clock.advance(3)
    watch(gov, "binance_paper_trade", "BTC-USDT", 60010, clock.now - 2, 2)
    assert decide(gov, propose(mid_price_ts=clock.now)).allowed
    gov.close()


def test_a_close_passes_without_history(settings: Settings, clock: Clock, propose: Propose) -> None:
    """Reduce-only closes never wait: refusing a stop-loss for lack of history traps a position."""
    gov = make_governor(settings, clock)
    gov.ledger.reduce_only("gradual stop under test", "test")
    gov.ladder_state(fresh=True)
    decision = gov.review(propose(side=Side.SELL, reduce_only=True))
    assert decision.code is not DenialCode.REFERENCE_WARMUP
    gov.close()


def test_the_proposals_own_mid_must_match_what_the_governor_saw(governor: Governor, propose: Propose) -> None:
    decision = decide(governor, propose(price=Decimal(64000), mid_price=Decimal(64000)))  # governor saw 60,010
    assert decision.code is DenialCode.MID_MISMATCH


def test_a_governor_that_stopped_watching_makes_orders_wait(
    governor: Governor, propose: Propose, clock: Clock
) -> None:
    clock.advance(12)  # the last observation is 12 s old (stale limit 10 s); the proposal is fresh
    decision = decide(governor, propose(mid_price_ts=clock.now))
    assert decision.code is DenialCode.REFERENCE_WARMUP and "observe_market" in decision.message


def test_time_weighted_median_is_pure_and_weighs_each_second() -> None:
    buckets = [(100, Decimal(10)), (150, Decimal(20))]  # 10 for 50 s, then 20 for 10 s
    assert risk.time_weighted_median(buckets, 159.5, 60, 5) == Decimal(10)
    assert risk.time_weighted_median(buckets, 200, 60, 5) == Decimal(20)  # 10 is out of the window
    assert risk.time_weighted_median(buckets, 103, 60, 5) is None  # 3 s of history
    assert risk.time_weighted_median([], 103, 60, 5) is None
    history = risk.MidHistory(60)
    for t in range(0, 200):
        history.observe(t, Decimal(t))
    assert len(history._buckets) <= 62  # bounded by the window, whatever the rate


# --- hole 12: observed FX -------------------------------------------------------------------


def test_an_observed_fx_rate_outside_the_band_is_denied(settings: Settings, clock: Clock, propose: Propose) -> None:
    gov = make_governor(settings, clock)
    watch(gov, "btc_markets_paper_trade", "BTC-AUD", 90000, clock.now - 10, 10)
    aud = {"connector": "btc_markets_paper_trade", "trading_pair": "BTC-AUD", "price": Decimal(90000),
           "mid_price": Decimal(90000)}  # fmt: skip
    gov.observe_fx("AUD", Decimal(4900))  # a broken feed: 4,900 USD per AUD
    decision = decide(gov, propose(**aud))
    assert decision.code is DenialCode.FX_RATE_OUT_OF_BAND
    assert gov.usd_per_quote("AUD") == Decimal("0.65")  # and it is never used to value anything
    gov.observe_fx("AUD", Decimal("0.66"))  # inside the 10 % band: accepted, it wins
    ok = decide(gov, propose(**aud))
    assert ok.allowed and ok.notional_usd == Decimal("0.001") * 90000 * Decimal("0.66")
    gov.close()
