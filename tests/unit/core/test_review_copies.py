"""The review's plain copies: `models.Order` of the proposal (what the checks read instead of
the pydantic model's fields) and `checks.Limits` of the settings (taken once per settings
object). Each must hold exactly the values it copies."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lyra_governor.checks import Limits, Review
from lyra_governor.config import Settings
from lyra_governor.governor import Governor
from lyra_governor.ladder import LadderState
from lyra_governor.models import Mandate, Order, OrderProposal, OrderType, Side, TradingState
from lyra_governor.money import to_musd
from lyra_governor.order_store import ReservationRow
from lyra_governor.reservation import reservation_row
from lyra_governor.risk import tolerance_factor
from tests.fixtures import START, proposal, wide_mandate

TEXT = st.text(min_size=1, max_size=20)
DECIMALS = st.decimals(allow_nan=True, allow_infinity=True)


@settings(max_examples=200, deadline=None)
@given(
    bot=TEXT, connector=TEXT, pair=TEXT, strategy=TEXT, side=st.sampled_from(list(Side)),
    order_type=st.sampled_from(list(OrderType)), amount=DECIMALS, price=st.none() | DECIMALS, mid=DECIMALS,
    ts=st.floats(allow_nan=True), reduce_only=st.booleans(), cid=st.none() | TEXT,
)  # fmt: skip
def test_the_order_holds_the_proposals_own_values(
    bot: str, connector: str, pair: str, strategy: str, side: Side, order_type: OrderType, amount: Decimal,
    price: Decimal | None, mid: Decimal, ts: float, reduce_only: bool, cid: str | None,
) -> None:  # fmt: skip
    p = OrderProposal(bot_id=bot, connector=connector, trading_pair=pair, strategy=strategy, side=side,
                      order_type=order_type, amount=amount, price=price, mid_price=mid, mid_price_ts=ts,
                      reduce_only=reduce_only, client_order_id=cid, note="not copied")  # fmt: skip
    o = Order.of(p)
    assert set(Order._fields) == set(OrderProposal.model_fields) - {"note"}
    for name in Order._fields:
        assert getattr(o, name) is getattr(p, name), name  # the very objects, not equal ones
    assert (o.base, o.quote) == (p.base, p.quote)


def test_the_limits_are_the_settings_values(settings: Settings) -> None:
    limits, risk = Limits.of(settings), settings.risk
    for name in ("price_collar_pct", "stale_price_s", "future_tolerance_s", "reference_min_history_s",
                 "max_order_notional_usd", "order_rate_window_s", "order_rate_max", "max_open_orders"):  # fmt: skip
        assert getattr(limits, name) == getattr(risk, name), name
    assert limits.close_tolerance == tolerance_factor(risk.close_tolerance_pct)
    assert limits.pairs == {name: config.pairs for name, config in settings.exchanges.items()}
    breakers = settings.breakers
    assert limits.exchange_order_rate_window_s == breakers.exchange_order_rate_window_s
    assert limits.exchange_order_rate_max == breakers.exchange_order_rate_max


@pytest.mark.parametrize(("closing", "side", "with_mandate", "cid"),
                         [(False, Side.BUY, True, None), (True, Side.SELL, False, "c-1"), (True, Side.BUY, True, "c")])
def test_the_reservation_row_holds_each_value_in_its_column(
    closing: bool, side: Side, with_mandate: bool, cid: str | None
) -> None:  # fmt: skip
    """`reservation.reservation_row` builds the row by position: each value in its own field."""
    p = proposal(START, side=side, client_order_id=cid, reduce_only=closing)
    r = Review(p, START, LadderState(3, TradingState.ACTIVE, "", {}, START, START), "binance")
    r.rate, r.price, r.notional_usd, r.closing = Decimal("1.0001"), Decimal("59999.5"), Decimal("6.0000005"), closing
    r.mandate = wide_mandate(p, START) if with_mandate else None
    row = reservation_row(r, "bot-7")
    reserved = 0 if closing and side is Side.SELL else to_musd(r.notional_usd)
    assert row == ReservationRow(
        reservation_id=row.reservation_id, bot_id="bot-7", connector=p.connector, book=r.book, exchange="binance",
        trading_pair=p.trading_pair, side=str(side), reduce_only=closing, amount=str(p.amount), price="59999.5",
        usd_per_quote="1.0001", reserved_musd=reserved, filled_amount="0", status="OPEN", client_order_id=cid,
        mandate_id=r.mandate.mandate_id if r.mandate else None, created_at=START,
    )  # fmt: skip
    assert row.reservation_id.startswith("res-")


def test_new_settings_bring_their_limits(governor: Governor) -> None:
    local = governor.settings.model_copy(
        update={"risk": governor.settings.risk.model_copy(update={"max_order_notional_usd": Decimal(7)})}
    )
    governor.settings = local
    assert governor.checks.settings is local
    assert governor.checks.limits == Limits.of(local)
    assert governor.checks.limits.max_order_notional_usd == Decimal(7)


@settings(max_examples=200, deadline=None)
@given(
    side=st.sampled_from(list(Side)), sides=st.frozensets(st.sampled_from(list(Side))),
    pair=st.sampled_from(["BTC-USDT", "ETH-USDT"]), connector=st.sampled_from(["binance", "kraken"]),
    price=st.none() | st.decimals(min_value=1, max_value=200, places=2),
    mid=st.decimals(min_value=1, max_value=200, places=2), notional=st.decimals(min_value=0, max_value=300, places=2),
    now=st.floats(min_value=0, max_value=200),
)  # fmt: skip
def test_mandate_covers_reads_the_same_fields(
    side: Side, sides: frozenset[Side], pair: str, connector: str, price: Decimal | None, mid: Decimal,
    notional: Decimal, now: float,
) -> None:  # fmt: skip
    """`Mandate.covers` reads both models' fields from their ``__dict__``: the same answer as the
    attributes give."""
    p = OrderProposal(bot_id="b", connector=connector, trading_pair=pair, side=side, amount=Decimal(1), price=price,
                      mid_price=mid, mid_price_ts=0.0)  # fmt: skip
    m = Mandate(consensus_id="c", connector="binance", trading_pair="BTC-USDT", sides=sides,
                max_order_notional_usd=Decimal(150), max_total_notional_usd=Decimal(1000), price_low=Decimal(50),
                price_high=Decimal(150), issued_at=0.0, expires_at=100.0)  # fmt: skip
    expected = (
        now < m.expires_at and p.connector == m.connector and p.trading_pair == m.trading_pair and p.side in m.sides
        and notional <= m.max_order_notional_usd and m.price_low <= p.reference_price <= m.price_high
    )  # fmt: skip
    assert m.covers(p, notional, now) is expected
