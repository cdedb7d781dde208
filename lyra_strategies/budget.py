"""What a strategy may still commit, read from the governor: its remaining capacity on the
exchange, the per-order limit, and nothing at all in a gradual stop or a halt (new positions
are refused then, so a strategy that sizes from here proposes none)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from lyra_governor.models import TradingState

HEADROOM = Decimal("0.98")  # a little room for the price to move between sizing and review


def split_budget_usd(capacity_usd: Decimal, max_order_usd: Decimal, n_orders: int) -> Decimal:
    """USD per order when `n_orders` orders share the capacity, each under the per-order limit
    (pure); 0 when nothing fits."""
    if n_orders <= 0 or capacity_usd <= 0 or max_order_usd <= 0:
        return Decimal(0)
    return min(capacity_usd / n_orders, max_order_usd) * HEADROOM


def per_order_quote(
    strategy: Any, connector_name: str, quote_asset: str, n_orders: int, market: bool = False
) -> Decimal:
    """Quote currency each of `n_orders` new orders may commit on `connector_name` so that
    together they fit the governor's remaining capacity, each under its per-order limit; 0 in a
    gradual stop or a halt, or without a USD rate for the quote currency. `market`: MARKET
    orders, which the governor values at their worst price (mid plus the collar), get that
    much less."""
    gov = strategy.lyra
    if gov.trading_state() is not TradingState.ACTIVE:
        return Decimal(0)
    usd = gov.usd_per_quote(quote_asset)
    if not usd or usd <= 0:
        return Decimal(0)
    capacity = Decimal(gov.capacity_usd(gov.settings.exchange_of(connector_name)))
    quote = split_budget_usd(capacity, Decimal(gov.settings.risk.max_order_notional_usd), n_orders) / Decimal(usd)
    if market:
        quote /= 1 + Decimal(str(gov.settings.risk.price_collar_pct)) / 100
    return quote
