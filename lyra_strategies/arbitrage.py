"""Cross-exchange arbitrage detection (pure): both directions, taker fees on both legs,
quantization, minimum notional, quotes in different currencies converted to USD."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal


@dataclass(frozen=True)
class Venue:
    connector: str
    trading_pair: str
    best_bid: Decimal
    best_ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    taker_fee: Decimal  # fraction, e.g. 0.001
    usd_per_quote: Decimal  # 1 for USDT, ~0.65 for AUD
    amount_step: Decimal = Decimal("0.000001")
    min_notional_usd: Decimal = Decimal(5)


@dataclass(frozen=True)
class Opportunity:
    buy: Venue
    sell: Venue
    amount: Decimal
    buy_price: Decimal
    sell_price: Decimal
    profit_usd: Decimal
    profit_pct: Decimal  # of the USD spent on the buy leg

    @property
    def direction(self) -> str:
        return f"buy {self.buy.connector} -> sell {self.sell.connector}"


def _valid(v: Venue) -> bool:
    values = (v.best_bid, v.best_ask, v.bid_size, v.ask_size, v.usd_per_quote)
    return all(x.is_finite() and x > 0 for x in values) and v.best_bid < v.best_ask


def _one_way(buy: Venue, sell: Venue, max_amount: Decimal, min_profit_pct: Decimal) -> Opportunity | None:
    cost_per_unit = buy.best_ask * buy.usd_per_quote * (1 + buy.taker_fee)
    proceeds_per_unit = sell.best_bid * sell.usd_per_quote * (1 - sell.taker_fee)
    if proceeds_per_unit <= cost_per_unit:
        return None
    step = max(buy.amount_step, sell.amount_step)
    amount = min(max_amount, buy.ask_size, sell.bid_size)
    amount = (amount / step).to_integral_value(rounding=ROUND_DOWN) * step
    if amount <= 0:
        return None
    spend = amount * cost_per_unit
    if amount * buy.best_ask * buy.usd_per_quote < max(buy.min_notional_usd, sell.min_notional_usd):
        return None
    profit = amount * (proceeds_per_unit - cost_per_unit)
    pct = profit / spend * 100
    if pct < min_profit_pct:
        return None
    return Opportunity(buy, sell, amount, buy.best_ask, sell.best_bid, profit, pct)


def find_opportunity(a: Venue, b: Venue, max_amount: Decimal, min_profit_pct: Decimal) -> Opportunity | None:
    """The better of the two directions after fees, or None (also for unusable books)."""
    if not (_valid(a) and _valid(b)) or max_amount <= 0:
        return None
    candidates = [
        o
        for o in (_one_way(a, b, max_amount, min_profit_pct), _one_way(b, a, max_amount, min_profit_pct))
        if o is not None
    ]
    return max(candidates, key=lambda o: o.profit_usd, default=None)


#: How far (relative) a float comparison must clear the break-even for `no_edge` to trust it:
#: floats are exact to ~1e-16, so this leaves the close calls to the Decimal arithmetic.
FLOAT_MARGIN = 1e-9


def no_edge(a_bid: float, a_ask: float, b_bid: float, b_ask: float, taker_fee: float) -> bool:
    """True when neither direction can pay both taker fees, judged on float tops of book in the
    same quote currency, with a margin so wide that the exact Decimal check (`find_opportunity`)
    could not find otherwise. False means "maybe": run the exact check. Most seconds the two
    books are a spread apart, and this spares building two venues in Decimal each second."""
    up, down = 1 + taker_fee, 1 - taker_fee
    return (
        b_bid * down < a_ask * up * (1 - FLOAT_MARGIN)  # buy a, sell b
        and a_bid * down < b_ask * up * (1 - FLOAT_MARGIN)  # buy b, sell a
    )
