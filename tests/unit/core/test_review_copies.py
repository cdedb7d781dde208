"""The review's plain copies: `models.Order` of the proposal (what the checks read instead of
the pydantic model's fields) and `checks.Limits` of the settings (taken once per settings
object). Each must hold exactly the values it copies."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from lyra_governor.checks import Limits
from lyra_governor.config import Settings
from lyra_governor.governor import Governor
from lyra_governor.models import Order, OrderProposal, OrderType, Side
from lyra_governor.risk import tolerance_factor

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


def test_new_settings_bring_their_limits(governor: Governor) -> None:
    local = governor.settings.model_copy(
        update={"risk": governor.settings.risk.model_copy(update={"max_order_notional_usd": Decimal(7)})}
    )
    governor.settings = local
    assert governor.checks.settings is local
    assert governor.checks.limits == Limits.of(local)
    assert governor.checks.limits.max_order_notional_usd == Decimal(7)
