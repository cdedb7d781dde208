"""Market-making quotes: spread around mid, inventory skew, levels (pure, no Hummingbot).

The skew moves both quotes away from the side that would grow an unwanted inventory: with too
much base, bids step down and asks step down (sell sooner); with too little, both step up.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

BPS = Decimal(10_000)
MAX_PRICE_STEP = Decimal("0.01")  # the coarsest step a quote takes (the connector rounds to a coarser market's)
SIGNIFICANT_DIGITS = 6  # a price's digits when the market's step is unknown (Hummingbot's paper precision)


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
    price_step: Decimal | None = None  # the market's price step (None: unknown; see quote_step)
    amount_step: Decimal = Decimal("0.000001")


def quantize(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=rounding) * step


def quote_step(market_step: Decimal | None, price: Decimal) -> Decimal:
    """The step quotes are rounded to at `price` (> 0): the market's own step, or when it is
    unknown or unusable (not a positive number below the price) one keeping
    `SIGNIFICANT_DIGITS` digits of the price; never coarser than `MAX_PRICE_STEP`, the fixed step
    quotes had before (where a market's step is coarser, as the paper BTC's 0.1 at 20,000, the
    connector rounds the order to it). A fixed 0.01 rounded a SHIB-like bid (0.00002) to 0."""
    if market_step is not None and market_step.is_finite() and 0 < market_step < price:
        return min(market_step, MAX_PRICE_STEP)
    return min(Decimal(1).scaleb(price.adjusted() - SIGNIFICANT_DIGITS + 1), MAX_PRICE_STEP)


def market_price_step(connector: Any, trading_pair: str, price: Decimal) -> Decimal | None:
    """The market's price step at `price` as a Hummingbot connector gives it
    (`get_order_price_quantum`, else `trading_rules[pair].min_price_increment`); None when the
    connector knows none."""
    step: Any = None
    try:
        step = connector.get_order_price_quantum(trading_pair, price)
    except Exception:  # a connector without the rule (or a pair it has not loaded)
        try:
            step = connector.trading_rules[trading_pair].min_price_increment
        except Exception:
            return None
    try:
        found = Decimal(str(step))
    except ArithmeticError:  # not a number
        return None
    return found if found.is_finite() and found > 0 else None


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
    """Bid and ask ladders around `mid` on the market's price step (`quote_step`); empty when
    mid is not a usable number; a level whose bid would be 0 or less has its ask alone."""
    if not mid.is_finite() or mid <= 0 or params.order_amount <= 0:
        return []
    skew = inventory_skew_bps(base_value, quote_value, params)
    center = mid * (1 - skew / BPS)
    amount = quantize(params.order_amount, params.amount_step, ROUND_DOWN)
    if amount <= 0:
        return []
    step = quote_step(params.price_step, mid)
    quotes: list[Quote] = []
    half = params.spread_bps / 2
    for level in range(params.levels):
        offset = (half + params.level_step_bps * level) / BPS
        bid = quantize(center * (1 - offset), step, ROUND_DOWN)
        ask = quantize(center * (1 + offset), step, ROUND_UP)
        if bid >= mid:  # never cross the book on the maker side
            bid = quantize(mid * (1 - half / BPS), step, ROUND_DOWN)
        if ask <= mid:
            ask = quantize(mid * (1 + half / BPS), step, ROUND_UP)
        if bid > 0:  # no bid at a spread of 100 % or more (a price of 0 is no order)
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
