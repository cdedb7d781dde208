"""Market-making quotes: spread around mid, inventory skew, levels (pure, no Hummingbot).

The skew moves both quotes away from the side that would grow an unwanted inventory: with too
much base, bids step down and asks step down (sell sooner); with too little, both step up.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal

BPS = Decimal(10_000)


@dataclass(frozen=True)
class Quote:
    side: str  # "BUY" | "SELL"
    price: Decimal
    amount: Decimal
    level: int


@dataclass(frozen=True)
class QuoteParams:
    spread_bps: Decimal = Decimal(20)
    levels: int = 1
    level_step_bps: Decimal = Decimal(10)
    order_amount: Decimal = Decimal("0.001")
    target_base_ratio: Decimal = Decimal("0.5")
    skew_bps_at_full: Decimal = Decimal(20)
    price_step: Decimal = Decimal("0.01")
    amount_step: Decimal = Decimal("0.000001")


def quantize(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=rounding) * step


def inventory_skew_bps(base_value: Decimal, quote_value: Decimal, params: QuoteParams) -> Decimal:
    """Positive when holding too much base: quotes move down to sell it."""
    total = base_value + quote_value
    if total <= 0:
        return Decimal(0)
    ratio = base_value / total
    deviation = (ratio - params.target_base_ratio) / max(params.target_base_ratio, Decimal("0.01"))
    deviation = max(Decimal(-1), min(Decimal(1), deviation))
    return deviation * params.skew_bps_at_full


def make_quotes(mid: Decimal, base_value: Decimal, quote_value: Decimal, params: QuoteParams) -> list[Quote]:
    """Bid and ask ladders around `mid`; empty when mid is not a usable number."""
    if not mid.is_finite() or mid <= 0 or params.order_amount <= 0:
        return []
    skew = inventory_skew_bps(base_value, quote_value, params)
    center = mid * (1 - skew / BPS)
    amount = quantize(params.order_amount, params.amount_step, ROUND_DOWN)
    if amount <= 0:
        return []
    quotes: list[Quote] = []
    half = params.spread_bps / 2
    for level in range(params.levels):
        offset = (half + params.level_step_bps * level) / BPS
        bid = quantize(center * (1 - offset), params.price_step, ROUND_DOWN)
        ask = quantize(center * (1 + offset), params.price_step, ROUND_UP)
        if bid >= mid:  # never cross the book on the maker side
            bid = quantize(mid * (1 - half / BPS), params.price_step, ROUND_DOWN)
        if ask <= mid:
            ask = quantize(mid * (1 + half / BPS), params.price_step, ROUND_UP)
        quotes.append(Quote("BUY", bid, amount, level))
        quotes.append(Quote("SELL", ask, amount, level))
    return quotes


def needs_refresh(
    placed_mid: Decimal | None, mid: Decimal, age_s: float, refresh_s: float, tolerance_bps: Decimal
) -> bool:
    """Refresh when the quotes are old or the mid moved more than the tolerance since placing."""
    if placed_mid is None or age_s >= refresh_s:
        return True
    return abs(mid - placed_mid) / placed_mid * BPS > tolerance_bps
