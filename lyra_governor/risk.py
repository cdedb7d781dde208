"""Deterministic pre-trade checks: pure functions, microseconds each, no I/O.

Each returns None when the proposal passes, or a `Denial` (a machine-readable code and a human
sentence that says what to do). The governor runs them cheapest first and stops at the first
denial, in the manner of NautilusTrader's RiskEngine. They read the proposal through the
review's plain copy of it (`models.Order`, `Order.of(proposal)`), not the pydantic model.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from decimal import Decimal

from lyra_governor.models import Denial, DenialCode, Order, OrderType, Side

#: No amount or price of a real order comes near this; bigger numbers are typos or attacks, and
#: their products overflow the 28-digit Decimal context (an INTERNAL_ERROR instead of a denial).
MAX_NUMBER = Decimal("1e12")
# the same values as the ints 0 and 100 in Decimal arithmetic, without converting an int each time
_ZERO, _HUNDRED = Decimal(0), Decimal(100)


@functools.lru_cache(maxsize=256)
def decimal_of(setting: float) -> Decimal:
    """A float setting (a percentage) as the Decimal its text reads as, ``Decimal(str(x))``,
    built once per value: every review compares against the same few settings."""
    return Decimal(str(setting))


@functools.lru_cache(maxsize=256)
def tolerance_factor(pct: float) -> Decimal:
    """``1 + pct / 100`` (`decimal_of`), built once per value: the close tolerance of every
    review's reservation."""
    return 1 + decimal_of(pct) / 100


def pct_off(value: Decimal, base: Decimal) -> Decimal:
    """How far `value` is from `base`, in percent of `base`."""
    return abs(value - base) / base * _HUNDRED


def _finite_positive(value: Decimal | None) -> bool:
    return value is not None and value.is_finite() and _ZERO < value <= MAX_NUMBER


def check_inputs(
    proposal: Order,
    pairs: list[str] | None,
    now: float,
    stale_after_s: float,
    future_tolerance_s: float | None = None,
) -> Denial | None:
    """NaN, infinity, zero or negative numbers, unknown pairs and stale books are refused.

    A LIMIT (or LIMIT_MAKER) order needs its own finite positive price: without one it would
    be valued at mid here and reach the exchange as whatever the connector makes of NaN
    (upstream hummingbot#7823: a MARKET order). Only a MARKET order may come without a price.
    A book stamped in the future is a clock problem: accepted only within `future_tolerance_s`.
    """
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
        return Denial(
            DenialCode.INVALID_AMOUNT, f"amount {proposal.amount} must be a finite number above zero and below 1e12"
        )
    price = proposal.price
    if price is not None and not _finite_positive(price):
        return Denial(DenialCode.INVALID_PRICE, f"price {price} must be a finite number above zero and below 1e12")
    if price is None and proposal.order_type is not OrderType.MARKET:
        return Denial(
            DenialCode.LIMIT_PRICE_MISSING,
            f"a {proposal.order_type.value} order needs a limit price; give a finite price above zero "
            "or propose a MARKET order",
        )
    if not _finite_positive(proposal.mid_price):
        return Denial(
            DenialCode.INVALID_MID_PRICE,
            f"mid price {proposal.mid_price} is not usable; the order book is empty or broken",
        )
    age = now - proposal.mid_price_ts
    ahead = stale_after_s if future_tolerance_s is None else future_tolerance_s
    if math.isnan(age) or age > stale_after_s:  # NaN-safe
        return Denial(
            DenialCode.STALE_PRICE,
            f"the mid price is {age:.1f} s old (limit {stale_after_s:g} s); the market data feed has stalled",
        )
    if age < -ahead:
        return Denial(
            DenialCode.STALE_PRICE,
            f"the mid price is stamped {-age:.1f} s in the future (tolerance {ahead:g} s); check the clocks",
        )
    return None


def valuation_price(proposal: Order, collar_pct: float) -> Decimal:
    """The price an order is valued (and its reservation recorded) at.

    A limit order: its own price (validated by `check_inputs`). A MARKET order: its worst
    price, mid plus the collar on the side it crosses (a buy up to mid x (1 + collar), a sell
    down to mid x (1 - collar)); a fill beyond it is slippage past what was vouched for.
    """
    if proposal.price is not None:
        return proposal.price
    collar = decimal_of(collar_pct) / 100
    if proposal.side is Side.BUY:
        return proposal.mid_price * (1 + collar)
    return proposal.mid_price * (1 - collar)


def notional_price(proposal: Order, collar_pct: float) -> Decimal:
    """The price the notional (caps, per-order limit) is counted at: the valuation price, but
    never below mid for a market sell (its worst price is below mid and would count less
    capital than the order can be worth)."""
    price = proposal.price
    if price is not None:  # a limit order: its own price, as `valuation_price` gives it
        return price
    if proposal.side is Side.SELL:
        return proposal.mid_price
    return valuation_price(proposal, collar_pct)


def check_collar(price: Decimal, mid: Decimal, reference: Decimal | None, collar_pct: float) -> Denial | None:
    """Limit price within `collar_pct` of mid, and mid within `collar_pct` of the recent reference.

    The second half catches a flash move: a strategy that quotes around a mid that just jumped
    would pass a collar against that same mid.
    """
    limit = decimal_of(collar_pct)
    deviation = pct_off(price, mid)
    if deviation > limit:
        return Denial(
            DenialCode.PRICE_COLLAR,
            f"price {price} is {deviation:.2f} % from mid {mid} (collar {collar_pct:g} %)",
        )
    if reference is not None and reference > 0:
        jump = pct_off(mid, reference)
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


class MidHistory:
    """The mids one governor saw on one market, one bucket per second (the last mid of that
    second), kept for `window_s` plus the one bucket before it (the mid in force at its start).

    Why buckets: a reference that is the median of the last *samples* is outvoted by a burst
    (ten observations a second make a fresh crash look settled). Here each second of the
    window weighs the same, whatever the observation rate, and a second without an
    observation carries the mid in force (time-weighted)."""

    __slots__ = ("_buckets", "_cache", "window_s")

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._buckets: deque[tuple[int, Decimal]] = deque()
        self._cache: tuple[int, Decimal | None] | None = None  # (second, reference), until a new mid

    def observe(self, ts: float, mid: Decimal) -> None:
        # `_ZERO`, not 0: a Decimal compared with an int converts it first (~400 of this call's
        # ~4.8k instructions); an infinite or NaN `ts` is what `math.floor` refuses
        if not (mid.is_finite() and mid > _ZERO):
            return
        try:
            second = math.floor(ts)
        except (ValueError, OverflowError):  # NaN, +-inf: no second to file it under
            return
        buckets = self._buckets
        if buckets and second <= buckets[-1][0]:
            if second == buckets[-1][0]:
                # the last mid of the second wins; the reference (a median over the window's
                # seconds) is recomputed at most once a second, `latest` at once
                buckets[-1] = (second, mid)
            return  # an observation older than the last bucket changes nothing
        buckets.append((second, mid))
        horizon = second - self.window_s
        while len(buckets) > 1 and buckets[1][0] <= horizon:
            buckets.popleft()  # keep one bucket at or before the window's start
        self._cache = None

    @property
    def latest(self) -> tuple[int, Decimal] | None:
        return self._buckets[-1] if self._buckets else None

    def reference(self, now: float, min_history_s: float) -> Decimal | None:
        """The time-weighted reference at `now`, or None while the history is shorter than
        `min_history_s` (then non-reducing orders wait: see `check_reference`)."""
        second = math.floor(now)
        cached = self._cache
        if cached is not None and cached[0] == second:
            return cached[1]
        value = time_weighted_median(list(self._buckets), now, self.window_s, min_history_s)
        self._cache = (second, value)
        return value


def time_weighted_median(
    buckets: list[tuple[int, Decimal]], now: float, window_s: float, min_history_s: float
) -> Decimal | None:
    """The median over every second of (now - window_s, now] of the mid in force at that
    second (the last bucket at or before it); seconds before the first bucket do not count.

    Pure. Returns None when the first bucket is less than `min_history_s` old, or none is."""
    if not buckets:
        return None
    end = math.floor(now)
    first = buckets[0][0]
    if end - first < min_history_s:
        return None
    start = max(first, end - math.ceil(window_s) + 1)
    n, count = end - start + 1, len(buckets)
    if 0 < n <= count and buckets[-1][0] == end and buckets[count - n][0] == start:
        # every second of the window has its own bucket (n strictly increasing seconds from
        # `start` to `end`: each one's), as when the market is observed every second: the
        # window's mids are the last n buckets', the same list the loop below builds
        values = [mid for _second, mid in buckets[count - n:]]
        values.sort()
        return values[(n - 1) // 2]
    values = []
    i = 0
    current: Decimal | None = None
    for t in range(start, end + 1):
        while i < len(buckets) and buckets[i][0] <= t:
            current = buckets[i][1]
            i += 1
        if current is not None:
            values.append(current)
    if not values:
        return None
    values.sort()
    return values[(len(values) - 1) // 2]  # median_low: an observed value, never an average


def check_reference(
    proposal: Order,
    history: MidHistory | None,
    now: float,
    min_history_s: float,
    stale_after_s: float,
    collar_pct: float,
) -> Denial | None:
    """What the governor itself saw of this market, against the proposal (non-reducing orders).

    - too little history (a new bot, a market never observed): wait, REFERENCE_WARMUP;
    - the governor's last observation is stale or disagrees with the proposal's own mid by
      more than the collar: MID_MISMATCH (the proposal's mid is not the market's);
    - the mid moved more than the collar from the time-weighted reference: PRICE_COLLAR.
    """
    limit = decimal_of(collar_pct)
    latest = history.latest if history is not None else None
    reference = history.reference(now, min_history_s) if history is not None else None
    if latest is None or reference is None:
        return Denial(
            DenialCode.REFERENCE_WARMUP,
            f"the governor has seen less than {min_history_s:g} s of {proposal.trading_pair} on "
            f"{proposal.connector}; feed it with observe_market each tick and propose again shortly",
        )
    seen_at, seen = latest
    if now - seen_at > stale_after_s + 1:
        return Denial(
            DenialCode.REFERENCE_WARMUP,
            f"the governor's last look at {proposal.trading_pair} on {proposal.connector} is "
            f"{now - seen_at:.0f} s old (limit {stale_after_s:g} s); call observe_market each tick",
        )
    mismatch, jump = pct_off(proposal.mid_price, seen), pct_off(proposal.mid_price, reference)
    if mismatch > limit:
        why = f"is {mismatch:.2f} % from the {seen} the governor last observed (tolerance {collar_pct:g} %)"
        return Denial(
            DenialCode.MID_MISMATCH,
            f"the proposal's mid {proposal.mid_price} {why}; propose with the book's current mid",
        )
    if jump > limit:
        why = f"moved {jump:.2f} % from the time-weighted reference {reference} (collar {collar_pct:g} %)"
        return Denial(DenialCode.PRICE_COLLAR, f"mid {proposal.mid_price} {why}; waiting for the market to settle")
    return None


def check_fx(observed: Decimal | None, configured: Decimal | None, band_pct: float, quote: str) -> Denial | None:
    """An observed USD rate is trusted only within `band_pct` of the configured one; outside
    it the configured rate is not trusted either (one of them is wrong): deny."""
    if observed is None or configured is None:
        return None
    deviation = pct_off(observed, configured)
    if deviation > decimal_of(band_pct):
        return Denial(
            DenialCode.FX_RATE_OUT_OF_BAND,
            f"the observed USD rate for {quote} is {deviation:.1f} % from fx_usd.{quote} (band {band_pct:g} %); "
            f"check the FX feed or update fx_usd.{quote}",
        )
    return None
