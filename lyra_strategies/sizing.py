"""Position sizing from the governor's remaining capacity, so strategies propose what can pass."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal


def fit_to_capacity(
    amount: Decimal,
    price: Decimal,
    usd_per_quote: Decimal,
    capacity_usd: Decimal,
    max_order_usd: Decimal,
    amount_step: Decimal = Decimal("0.000001"),
    headroom: Decimal = Decimal("0.98"),
) -> Decimal:
    """The largest amount <= `amount` whose USD notional fits both the capacity and the per-order
    limit (with a little headroom for price moves); 0 when nothing fits."""
    if not (price.is_finite() and price > 0 and usd_per_quote > 0 and amount.is_finite() and amount > 0):
        return Decimal(0)
    budget = min(capacity_usd, max_order_usd) * headroom
    if budget <= 0:
        return Decimal(0)
    fitted = min(amount, budget / (price * usd_per_quote))
    return (fitted / amount_step).to_integral_value(rounding=ROUND_DOWN) * amount_step
