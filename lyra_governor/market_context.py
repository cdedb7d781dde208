"""Market context for every consultation: returns, realised volatility and its percentile over
the day, spread and depth, RSI, Bollinger position, trend slope, and the strategy's own fills,
PnL and drawdown — computed in Lyra from what it already sees.

Where the data comes from: every `Governor.observe_market` snapshot (the replay feed offline,
the connector's order books live) goes into a `MarketHistory`, which keeps one mid per 10 s per
market for a day; every fill the governor records goes in too. When the council is asked, the
history is resampled to one-minute closes and the pure functions below turn it into a
`MarketContext`. Nothing here does I/O; the numbers are data for the voters (local rules use
them, OpenRouter voters see them quoted inside the <data> document), never instructions, and
no deterministic pre-trade check depends on them.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SAMPLE_S = 10.0  # one stored mid per 10 s per market
DAY_S = 86_400.0
BAR_S = 60.0  # indicators run on one-minute closes
RETURN_MINUTES = (1, 5, 15, 60)
VOL_WINDOW = 60  # realised volatility over the last hour of one-minute returns
MIN_VOL_WINDOWS = 120  # a percentile over fewer hourly windows than this is not reported
HIGH_VOL_PCT = 1.5  # hourly realised volatility that is high on its own
EXTREME_VOL_PCT = 4.0
HIGH_PERCENTILE = 90.0
CALM_PERCENTILE = 20.0
TREND_PCT_PER_HOUR = 1.0
RSI_PERIOD = 14
BOLLINGER_PERIOD = 20
MAX_FILLS = 500
MIN_RATE_SAMPLES = 20  # an error or reject rate over fewer decisions than this is not given to voters

# the sampled mids per (connector, pair): (time, mid), one per `SAMPLE_S`
SampledMids = dict[tuple[str, str], deque[tuple[float, Decimal | float]]]

Regime = Literal["unknown", "calm", "normal", "high", "extreme"]
Trend = Literal["unknown", "down", "flat", "up"]


class FillSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    ts: float
    side: str
    amount: float
    price: float


class MarketContext(BaseModel):
    """Indicators for one market at one moment. Fields are None when there is too little data."""

    model_config = ConfigDict(frozen=True)

    connector: str
    trading_pair: str
    at: float
    bars: int = 0  # one-minute closes the indicators were computed from
    mid_price: float | None = None
    return_1m_pct: float | None = None
    return_5m_pct: float | None = None
    return_15m_pct: float | None = None
    return_60m_pct: float | None = None
    realised_vol_1h_pct: float | None = None  # stdev of 1-min returns over the last hour, x sqrt(60)
    vol_percentile_day: float | None = None  # where that sits among the day's hourly windows (0-100)
    vol_regime: Regime = "unknown"
    spread_pct: float | None = None
    depth_usd: float | None = None
    rsi_14: float | None = None
    bollinger_position: float | None = None  # 0 = lower band, 1 = upper band (20 bars, 2 sigma)
    trend_slope_pct_per_hour: float | None = None  # least-squares slope of log price, last hour
    trend: Trend = "unknown"
    recent_fills: list[FillSummary] = Field(default_factory=list)  # newest last, at most 10
    fills_today: int = 0
    position_base: float = 0.0
    realised_pnl: float = 0.0  # in the quote currency, average-cost method, fees deducted
    unrealised_pnl: float = 0.0
    drawdown_pct: float = 0.0  # fall of the strategy's PnL from its peak, % of the capital it may use


# --- pure functions ---------------------------------------------------------------------------


def minute_closes(points: Sequence[tuple[float, float]], now: float, span_s: float = DAY_S) -> list[float]:
    """One close per minute ending at `now` (last price in each minute, carried forward over
    minutes without a price). Minutes before the first point are left out. A point whose time
    is not a number falls in no minute.

    In numpy, not a loop over the points: the council's context is built on the order path
    (a review that needs a mandate) over up to a day of points (8,642 a market), and the loop's
    cost grew with the history (issue 16: the same cost per hour at hour 1 and hour 24): a
    day's closes 1.73 ms by the loop, 0.82 ms here, of a ~4.2 ms context (most of the rest:
    the points' Decimal mids made floats). tests/unit/consensus/test_market_context.py checks
    it against the loop on random points. The loop also failed (IndexError) on points out of
    order whose first lies after `now`; those give no minute here."""
    if not points:
        return []
    start = max(points[0][0], now - span_s)
    n = int((now - start) // BAR_S) + 1
    if n <= 0:
        return []
    # here, not at the top: the operator's `halt`, `resume` and `status` import this module and
    # must start without numpy (tests/unit/cli/test_lazy_commands.py); after the first context
    # the import is a dictionary lookup
    import numpy as np

    base = now - (n - 1) * BAR_S
    table = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    ts = table[:, 0]
    inside = np.flatnonzero((ts >= start - BAR_S) & (ts <= now))
    if not inside.size:
        return []
    # bar i ends at base + i * BAR_S; the same float arithmetic as the loop's math.ceil
    bar = np.clip(np.ceil((ts[inside] - base) / BAR_S - 1e-9), 0, n - 1).astype(np.intp)
    last = np.full(n, -1, dtype=np.intp)
    np.maximum.at(last, bar, inside)  # each bar's last point in the order given
    carried = np.maximum.accumulate(np.where(last >= 0, np.arange(n), -1))  # a bar without one: the one before
    closes: list[float] = table[last[carried[carried >= 0]], 1].tolist()
    return closes


def pct_return(closes: Sequence[float], bars: int) -> float | None:
    if len(closes) <= bars or closes[-1 - bars] <= 0:
        return None
    return (closes[-1] / closes[-1 - bars] - 1.0) * 100.0


def log_returns(closes: Sequence[float]) -> list[float]:
    return [math.log(b / a) for a, b in itertools.pairwise(closes) if a > 0 and b > 0]


def realised_vol_pct(returns: Sequence[float], window: int = VOL_WINDOW) -> float | None:
    """Standard deviation of the last `window` one-bar log returns, scaled to the window."""
    tail = list(returns[-window:])
    if len(tail) < max(10, window // 2):
        return None
    mean = sum(tail) / len(tail)
    var = sum((r - mean) ** 2 for r in tail) / (len(tail) - 1)
    return math.sqrt(var) * math.sqrt(window) * 100.0


def rolling_vols(returns: Sequence[float], window: int = VOL_WINDOW) -> list[float]:
    """The realised volatility of every full window in `returns` (rolling sums: O(n))."""
    if len(returns) < window:
        return []
    s = sum(returns[:window])
    q = sum(r * r for r in returns[:window])
    out: list[float] = []
    for i in range(window, len(returns) + 1):
        if i > window:
            old, new = returns[i - window - 1], returns[i - 1]
            s += new - old
            q += new * new - old * old
        var = max(0.0, (q - s * s / window) / (window - 1))
        out.append(math.sqrt(var) * math.sqrt(window) * 100.0)
    return out


def percentile_rank(value: float, population: Sequence[float]) -> float | None:
    """Share of `population` at or below `value`, in percent."""
    if not population:
        return None
    return 100.0 * sum(1 for p in population if p <= value + 1e-12) / len(population)


def rsi(closes: Sequence[float], period: int = RSI_PERIOD) -> float | None:
    """Wilder's RSI over the closes (needs period + 1 of them)."""
    if len(closes) <= period:
        return None
    changes = [b - a for a, b in itertools.pairwise(closes)]
    gain = sum(max(c, 0.0) for c in changes[:period]) / period
    loss = sum(max(-c, 0.0) for c in changes[:period]) / period
    for c in changes[period:]:
        gain = (gain * (period - 1) + max(c, 0.0)) / period
        loss = (loss * (period - 1) + max(-c, 0.0)) / period
    if loss == 0:
        return 100.0 if gain > 0 else 50.0
    return 100.0 - 100.0 / (1.0 + gain / loss)


def bollinger_position(closes: Sequence[float], period: int = BOLLINGER_PERIOD, k: float = 2.0) -> float | None:
    """%B: where the last close sits between the lower (0) and upper (1) band."""
    if len(closes) < period:
        return None
    tail = closes[-period:]
    mean = sum(tail) / period
    sd = math.sqrt(sum((c - mean) ** 2 for c in tail) / period)
    if sd == 0:
        return 0.5
    return (closes[-1] - (mean - k * sd)) / (2 * k * sd)


def trend_slope_pct_per_hour(closes: Sequence[float], window: int = VOL_WINDOW) -> float | None:
    """Least-squares slope of log price over the last `window` one-minute closes, % per hour."""
    tail = [c for c in closes[-window:] if c > 0]
    n = len(tail)
    if n < 10:
        return None
    ys = [math.log(c) for c in tail]
    mx, my = (n - 1) / 2, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in range(n))
    sxy = sum((x - mx) * (y - my) for x, y in zip(range(n), ys, strict=True))
    return (math.exp(sxy / sxx * 60.0) - 1.0) * 100.0


def vol_regime(vol: float | None, percentile: float | None) -> Regime:
    if vol is None:
        return "unknown"
    if vol >= EXTREME_VOL_PCT:
        return "extreme"
    if vol >= HIGH_VOL_PCT or (percentile is not None and percentile >= HIGH_PERCENTILE and vol >= HIGH_VOL_PCT / 3):
        return "high"
    if percentile is not None and percentile <= CALM_PERCENTILE:
        return "calm"
    return "normal"


def trend_of(slope: float | None) -> Trend:
    if slope is None:
        return "unknown"
    return "up" if slope >= TREND_PCT_PER_HOUR else "down" if slope <= -TREND_PCT_PER_HOUR else "flat"


@dataclass(frozen=True)
class Fill:
    ts: float
    side: str  # BUY | SELL
    amount: float
    price: float
    fee: float = 0.0  # in the quote currency


@dataclass(frozen=True)
class Pnl:
    position: float
    realised: float
    unrealised: float
    drawdown_pct: float


def fills_pnl(fills: Sequence[Fill], mark: float | None, capital_floor: float = 0.0) -> Pnl:
    """Average-cost PnL of a fill sequence marked at `mark`, and the drawdown of its running PnL
    from the peak, as a percentage of the capital at stake (never < 0): the most the position
    ever held, or `capital_floor` (the capital the bot may deploy there) when that is larger.

    Why the floor: a market maker holds one small level at a time, so one stop-loss of a $25
    position in a flash move was a "10 % drawdown" of the strategy; the risk assessor refused
    every mandate on it, and with no trades the figure could never recover (the paper run's
    market making quoted nothing after its first flash move)."""
    position = cost = realised = 0.0
    peak = 0.0
    worst = 0.0
    capital = 0.0
    for f in fills:
        signed = f.amount if f.side.upper() == "BUY" else -f.amount
        if position == 0 or (position > 0) == (signed > 0):  # opening or adding
            cost += signed * f.price
            position += signed
        else:  # reducing (and maybe flipping)
            closing = min(abs(signed), abs(position))
            avg = cost / position
            realised += closing * (f.price - avg) * (1 if position > 0 else -1)
            position_after = position + signed
            # flipped: the rest opens at this price; else the remainder keeps its average cost
            cost = position_after * f.price if abs(signed) > abs(position) else avg * position_after
            position = position_after
        realised -= f.fee
        capital = max(capital, abs(cost))
        equity = realised + (position * f.price - cost)
        peak = max(peak, equity)
        worst = max(worst, peak - equity)
    unrealised = position * mark - cost if mark is not None and position else 0.0
    equity = realised + unrealised
    peak = max(peak, equity)
    worst = max(worst, peak - equity)
    capital = max(capital, capital_floor)
    drawdown = 100.0 * worst / capital if capital > 0 else 0.0
    return Pnl(position, realised, unrealised, round(drawdown, 4))


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def build_context(
    connector: str,
    pair: str,
    now: float,
    points: Sequence[tuple[float, float]],
    fills: Sequence[Fill] = (),
    spread_pct: float | None = None,
    depth_usd: float | None = None,
    capital: float = 0.0,
) -> MarketContext:
    """Everything above for one market: `points` are (ts, mid) in time order; `capital` (in the
    quote currency) is what the bot may deploy on the market's exchange (see `fills_pnl`)."""
    closes = minute_closes(points, now)
    returns = log_returns(closes)
    vol = realised_vol_pct(returns)
    windows = rolling_vols(returns)
    percentile = percentile_rank(vol, windows) if vol is not None and len(windows) >= MIN_VOL_WINDOWS else None
    slope = trend_slope_pct_per_hour(closes)
    mark = closes[-1] if closes else None
    pnl = fills_pnl(fills, mark, capital)
    day = [f for f in fills if f.ts >= now - DAY_S]
    return MarketContext(
        connector=connector,
        trading_pair=pair,
        at=now,
        bars=len(closes),
        mid_price=_r(mark, 8),
        return_1m_pct=_r(pct_return(closes, 1)),
        return_5m_pct=_r(pct_return(closes, 5)),
        return_15m_pct=_r(pct_return(closes, 15)),
        return_60m_pct=_r(pct_return(closes, 60)),
        realised_vol_1h_pct=_r(vol),
        vol_percentile_day=_r(percentile, 1),
        vol_regime=vol_regime(vol, percentile),
        spread_pct=_r(spread_pct),
        depth_usd=_r(depth_usd, 2) if depth_usd else None,  # 0: the book was not measured
        rsi_14=_r(rsi(closes), 2),
        bollinger_position=_r(bollinger_position(closes), 3),
        trend_slope_pct_per_hour=_r(slope),
        trend=trend_of(slope),
        recent_fills=[FillSummary(ts=f.ts, side=f.side, amount=f.amount, price=f.price) for f in list(fills)[-10:]],
        fills_today=len(day),
        position_base=round(pnl.position, 10),
        realised_pnl=round(pnl.realised, 6),
        unrealised_pnl=round(pnl.unrealised, 6),
        drawdown_pct=pnl.drawdown_pct,
    )


def sampled_rate(events: int, samples: int, min_samples: int = MIN_RATE_SAMPLES) -> float:
    """events / samples, or 0.0 below `min_samples`: one failure out of one decision is not a
    100 % error rate that should halt trading."""
    if samples < min_samples or samples <= 0:
        return 0.0
    return min(1.0, events / samples)


# --- the history the governor feeds ------------------------------------------------------------


_INF = math.inf


class FloatMids:
    """One market's sampled mids as floats, kept in step with its deque of points from one
    context to the next: only what changed since is converted.

    Why: `float(Decimal)` of a day's 8,642 points was 1.9 ms of a 4.2 ms context, built on the
    order path when a review needs a mandate, and the points change by little between two
    contexts (a point every `SAMPLE_S`, the last one's price every observation).

    How a deque of points changes (`MarketHistory.observe`, `MarketWatch.take_in`): points are
    appended at its end (the oldest then fall off its front) and its last point is replaced in
    its slot. Both make new tuple objects, and the points are matched by identity (`objs` holds
    them, so no id is reused): the front trimmed to the deque's first point, the last point
    converted again if its slot holds another tuple, the points after it converted. Anything
    else (a deque cleared or another one, its first point nowhere here) converts it whole."""

    __slots__ = ("items", "objs", "source")

    def __init__(self) -> None:
        self.source: object = None  # the deque the items were taken from
        self.objs: deque[tuple[float, Decimal | float]] = deque()  # its points, as they were
        self.items: deque[tuple[float, float]] = deque()  # the same, each price made a float

    def valid(self, points: deque[tuple[float, Decimal | float]]) -> list[tuple[float, float]]:
        """(time, price) of every point whose price is finite and positive, in the deque's order:
        the list `[(ts, float(mid)) for ts, mid in points if finite and > 0]` would be."""
        objs, items = self.objs, self.items
        if self.source is points and objs and points:
            first = points[0]
            while objs and objs[0] is not first:  # fallen off the front
                objs.popleft()
                items.popleft()
            kept = len(objs)
            if kept and kept <= len(points):
                at = kept - 1
                last = points[at]
                if last is not objs[at]:  # the last point's slot, replaced since
                    items[at] = (last[0], float(last[1]))  # (converted first: a price float() refuses
                    objs[at] = last                        # raises with the two still in step)
                for point in itertools.islice(points, kept, None):
                    item = (point[0], float(point[1]))
                    objs.append(point)
                    items.append(item)
                return [item for item in items if 0.0 < item[1] < _INF]
        self.source = None  # until the whole deque is converted
        converted = [(ts, float(mid)) for ts, mid in points]
        objs.clear()
        items.clear()
        objs.extend(points)
        items.extend(converted)
        self.source = points
        return [item for item in items if 0.0 < item[1] < _INF]


class MarketHistory:
    """Bounded in-memory history per (connector, pair): one mid per `SAMPLE_S` for a day, the
    latest spread and depth, and this bot's fills per pair. O(1) per observation."""

    def __init__(
        self, sample_s: float = SAMPLE_S, span_s: float = DAY_S, points: SampledMids | None = None
    ) -> None:
        self.sample_s = sample_s
        self.span_s = span_s
        # the sampled mids, or the ones of a market watch that governors share (`MarketWatch.points`:
        # what one of them observed of a market the others would have; their fills stay their own)
        self._points: SampledMids = {} if points is None else points
        #: per market, the latest (spread %, depth USD): written by `observe`, `observe_book`, and
        #: by `Governor._observe` directly for a snapshot the shared watch took in already (a dict
        #: write a tick instead of a call)
        self.book: dict[tuple[str, str], tuple[float, float]] = {}
        self._fills: dict[str, deque[Fill]] = {}
        self._floats: dict[tuple[str, str], FloatMids] = {}  # the points as floats, per market (`context`)

    def observe(self, connector: str, pair: str, ts: float, mid: Decimal | float, spread_pct: float = 0.0,
                depth_usd: float = 0.0) -> None:  # fmt: skip
        """O(1) and cheap (it runs every tick): the price is kept as given and converted and
        validated only when a context is built."""
        key = (connector, pair)
        points = self._points.get(key)
        if points is None:
            points = self._points[key] = deque(maxlen=int(self.span_s / self.sample_s) + 2)
        if points and ts < points[-1][0] + self.sample_s:
            if ts >= points[-1][0]:
                points[-1] = (points[-1][0], mid)  # same sample slot: keep its latest price
        else:
            points.append((ts, mid))
        self.book[key] = (spread_pct, depth_usd)

    def observe_book(self, connector: str, pair: str, spread_pct: float = 0.0, depth_usd: float = 0.0) -> None:
        """`observe` of an observation whose mid the (shared) points already hold."""
        self.book[(connector, pair)] = (spread_pct, depth_usd)

    def observe_fill(self, pair: str, side: str, amount: Decimal | float, price: Decimal | float, ts: float,
                     fee: Decimal | float = 0) -> None:  # fmt: skip
        fills = self._fills.setdefault(pair, deque(maxlen=MAX_FILLS))
        fills.append(Fill(ts=ts, side=str(side).upper(), amount=float(amount), price=float(price), fee=float(fee)))

    def context(self, connector: str, pair: str, now: float, capital: float = 0.0) -> MarketContext | None:
        key = (connector, pair)
        points = self._points.get(key)
        if not points:
            return None
        floats = self._floats.get(key)
        if floats is None:
            floats = self._floats[key] = FloatMids()
        valid = floats.valid(points)
        if not valid:
            return None
        spread, depth = self.book.get(key, (0.0, 0.0))
        return build_context(connector, pair, now, valid, list(self._fills.get(pair, ())), spread, depth, capital)
