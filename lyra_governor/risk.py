"""Deterministic pre-trade checks: pure functions, microseconds each, no I/O.

Each returns None when the proposal passes, or a `Denial` (a machine-readable code and a human
sentence that says what to do). The governor runs them cheapest first and stops at the first
denial, in the manner of NautilusTrader's RiskEngine.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from decimal import Decimal

from lyra_governor.models import DenialCode, OrderProposal


@dataclass(frozen=True)
class Denial:
    code: DenialCode
    message: str


def _finite_positive(value: Decimal | None) -> bool:
    return value is not None and value.is_finite() and value > 0


def check_inputs(proposal: OrderProposal, pairs: list[str] | None, now: float, stale_after_s: float) -> Denial | None:
    """NaN, infinity, zero or negative numbers, unknown pairs and stale books are refused."""
    if pairs is None:
        return Denial(
            DenialCode.UNKNOWN_EXCHANGE,
            f"{proposal.connector!r} is not a configured exchange; add it under `exchanges` in the config",
        )
    if proposal.trading_pair not in pairs:
        return Denial(
            DenialCode.UNKNOWN_PAIR,
            f"{proposal.trading_pair!r} is not an allowed pair on {proposal.connector}; allowed: {', '.join(pairs)}",
        )
    if not _finite_positive(proposal.amount):
        return Denial(DenialCode.INVALID_AMOUNT, f"amount {proposal.amount} must be a finite number above zero")
    if proposal.price is not None and not _finite_positive(proposal.price):
        return Denial(DenialCode.INVALID_PRICE, f"price {proposal.price} must be a finite number above zero")
    if not _finite_positive(proposal.mid_price):
        return Denial(
            DenialCode.INVALID_MID_PRICE,
            f"mid price {proposal.mid_price} is not usable; the order book is empty or broken",
        )
    age = now - proposal.mid_price_ts
    if math.isnan(age) or age > stale_after_s or age < -stale_after_s:  # NaN-safe
        return Denial(
            DenialCode.STALE_PRICE,
            f"the mid price is {age:.1f} s old (limit {stale_after_s:g} s); the market data feed has stalled",
        )
    return None


def check_collar(price: Decimal, mid: Decimal, reference: Decimal | None, collar_pct: float) -> Denial | None:
    """Limit price within `collar_pct` of mid, and mid within `collar_pct` of the recent reference.

    The second half catches a flash move: a strategy that quotes around a mid that just jumped
    would pass a collar against that same mid.
    """
    limit = Decimal(str(collar_pct))
    deviation = abs(price - mid) / mid * 100
    if deviation > limit:
        return Denial(
            DenialCode.PRICE_COLLAR,
            f"price {price} is {deviation:.2f} % from mid {mid} (collar {collar_pct:g} %)",
        )
    if reference is not None and reference > 0:
        jump = abs(mid - reference) / reference * 100
        if jump > limit:
            return Denial(
                DenialCode.PRICE_COLLAR,
                f"mid {mid} moved {jump:.2f} % from the recent reference {reference} (collar {collar_pct:g} %); "
                "waiting for the market to settle",
            )
    return None


def check_notional(notional_usd: Decimal, max_usd: Decimal) -> Denial | None:
    if notional_usd > max_usd:
        return Denial(
            DenialCode.MAX_ORDER_NOTIONAL,
            f"order notional {notional_usd:.2f} USD is above the {max_usd} USD per-order limit",
        )
    return None


class RateWindow:
    """Sliding-window counter of recent orders for one (bot, exchange)."""

    __slots__ = ("_times",)

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def count(self, now: float, window_s: float) -> int:
        times = self._times
        while times and times[0] <= now - window_s:
            times.popleft()
        return len(times)

    def add(self, now: float) -> None:
        self._times.append(now)


def check_rate(window: RateWindow, now: float, window_s: float, max_orders: int) -> Denial | None:
    if window.count(now, window_s) >= max_orders:
        return Denial(
            DenialCode.ORDER_RATE,
            f"more than {max_orders} orders in {window_s:g} s from this bot on this exchange; slow down",
        )
    return None


def check_open_orders(open_orders: int, max_open: int) -> Denial | None:
    if open_orders >= max_open:
        return Denial(
            DenialCode.MAX_OPEN_ORDERS,
            f"{open_orders} orders already open from this bot on this exchange (limit {max_open})",
        )
    return None
