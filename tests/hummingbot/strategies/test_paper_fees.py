"""A paper order's fees: Hummingbot's answer, remembered while no fill is added and no rate
was needed (lyra_strategies.paper.exchange.PaperOrder)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.hummingbot.strategies.test_governed_scripts import _filled_bid
from tests.hummingbot.strategies.world import world

__all__ = ["world"]


def _steps(executor: Any, n: int) -> None:
    for _ in range(n):
        step = executor.control_task()
        with pytest.raises(StopIteration):
            step.send(None)


def test_a_filled_quotes_fees_are_summed_once_not_every_control_step(world: dict[str, Any], monkeypatch: Any) -> None:
    from hummingbot.core.data_type.in_flight_order import InFlightOrder
    from hummingbot.core.data_type.trade_fee import TradeFeeBase

    from lyra_strategies.paper.exchange import PaperOrder

    _strategy, bid = _filled_bid(world)
    order = bid._open_order.order
    assert isinstance(order, PaperOrder) and order.order_fills
    calls = [0]
    fee_in_token = TradeFeeBase.fee_amount_in_token

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return fee_in_token(self, *args, **kwargs)

    monkeypatch.setattr(TradeFeeBase, "fee_amount_in_token", counted)
    _steps(bid, 10)  # ten control steps of a filled quote: stop loss and PnL read its fees each
    print(f"fees of the fill computed {calls[0]} times in 10 steps")
    assert calls[0] <= 1  # 10 on the old code
    quote = order.quote_asset
    assert order.cumulative_fee_paid(quote) == InFlightOrder.cumulative_fee_paid(order, quote)


def test_a_new_fill_or_a_fee_that_needs_a_rate_is_hummingbots_answer(world: dict[str, Any]) -> None:
    from hummingbot.core.data_type.in_flight_order import InFlightOrder, TradeUpdate
    from hummingbot.core.data_type.trade_fee import AddedToCostTradeFee, TokenAmount
    from hummingbot.core.rate_oracle.rate_oracle import RateOracle

    _strategy, bid = _filled_bid(world)
    order = bid._open_order.order
    first = order.cumulative_fee_paid("USDT")
    order.update_with_trade_update(TradeUpdate(  # a second fill, its fee partly in BNB
        trade_id="t-2", client_order_id=order.client_order_id, exchange_order_id=order.exchange_order_id,
        trading_pair=order.trading_pair, fill_timestamp=1.0, fill_price=Decimal(60_000),
        fill_base_amount=Decimal("0.0001"), fill_quote_amount=Decimal(6),
        fee=AddedToCostTradeFee(percent=Decimal("0.001"), flat_fees=[TokenAmount("BNB", Decimal("0.01"))])))
    prices = RateOracle.get_instance()._prices
    old = dict(prices)
    try:
        prices["BNB-USDT"] = Decimal(600)
        at_600 = order.cumulative_fee_paid("USDT")
        prices["BNB-USDT"] = Decimal(700)
        at_700 = order.cumulative_fee_paid("USDT")
        assert at_700 == InFlightOrder.cumulative_fee_paid(order, "USDT")  # Hummingbot's own
    finally:
        prices.clear()
        prices.update(old)
    assert at_600 == first + Decimal("0.006") + Decimal(6)  # the new fill counted
    assert at_700 == first + Decimal("0.006") + Decimal(7)  # the BNB fee at the new rate: not kept
