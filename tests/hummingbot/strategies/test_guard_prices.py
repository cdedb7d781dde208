"""Hole 1 of issue 14 at the level a user hits it: a script's `buy`/`sell` on real Hummingbot
(GovernedStrategyV2Base, the paper engine, a back-test Clock). A LIMIT with a NaN price (the
default of Hummingbot's `buy`) or no price is refused by name and never reaches the exchange
(upstream hummingbot#7823: it would become a MARKET order there); a MARKET order is valued at
its worst price."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from lyra_governor.models import DenialCode
from tests.hummingbot.strategies.test_governed_scripts import _market_making, world  # noqa: F401
from tests.hummingbot.strategies.world import run


def _order_type(name: str) -> Any:
    from hummingbot.core.data_type.common import OrderType

    return getattr(OrderType, name)


@pytest.mark.parametrize(
    ("order_type", "price", "code"),
    [
        ("LIMIT", Decimal("NaN"), DenialCode.INVALID_PRICE),
        ("LIMIT", None, DenialCode.LIMIT_PRICE_MISSING),
        ("LIMIT_MAKER", Decimal("NaN"), DenialCode.INVALID_PRICE),
        ("LIMIT", Decimal(0), DenialCode.INVALID_PRICE),
    ],
)
def test_a_limit_without_a_price_never_reaches_the_exchange(
    world: dict[str, Any], order_type: str, price: Decimal | None, code: DenialCode  # noqa: F811
) -> None:
    strategy = _market_making(world)
    run(world, strategy, 8)  # the governor has watched the market for a while
    exchange = world["exchanges"]["binance_paper_trade"]
    before = {o.client_order_id for o in exchange.limit_orders}
    kwargs = {} if price is None else {"price": price}
    if price is None:
        kwargs["price"] = None  # type: ignore[assignment]
    order_id = strategy.buy("binance_paper_trade", "BTC-USDT", Decimal("0.001"), _order_type(order_type), **kwargs)
    assert order_id.startswith("lyra-denied-")
    assert strategy.last_decision.code is code, strategy.last_decision.message
    assert {o.client_order_id for o in exchange.limit_orders} == before
    run(world, strategy, 2)  # the denial reaches the script as an order failure, nothing more
    assert all(o.client_order_id != order_id for o in exchange.limit_orders)


def test_the_default_price_of_a_limit_buy_is_refused(world: dict[str, Any]) -> None:  # noqa: F811
    strategy = _market_making(world)
    run(world, strategy, 8)
    order_id = strategy.buy("binance_paper_trade", "BTC-USDT", Decimal("0.001"), _order_type("LIMIT"))
    assert order_id.startswith("lyra-denied-") and strategy.last_decision.code is DenialCode.INVALID_PRICE


def test_a_market_order_is_valued_at_its_worst_price(world: dict[str, Any]) -> None:  # noqa: F811
    strategy = _market_making(world)
    run(world, strategy, 8)
    mid = strategy._mid("binance_paper_trade", "BTC-USDT")
    strategy.buy("binance_paper_trade", "BTC-USDT", Decimal("0.001"), _order_type("MARKET"))
    decision = strategy.last_decision
    assert decision.allowed, decision.message
    assert decision.notional_usd == Decimal("0.001") * mid * Decimal("1.03")
