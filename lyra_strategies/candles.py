"""Candles from one-second mids, and the indicators the candle strategies read (pure, no I/O).

`CandleBuilder` resamples mid prices into OHLC candles of a fixed interval the way an exchange
does: a candle covers [open time, open time + interval) and is *closed*, so visible, only once
a price at or after its end arrives. The candle still forming is never shown: a strategy reading
candles never sees a price of the future, which is what makes a replay free of look-ahead.

Rows follow Hummingbot's candle columns (`CandlesBase.columns`): timestamp (open time, s), open,
high, low, close, volume, quote_asset_volume, n_trades, taker_buy_base_volume,
taker_buy_quote_volume. Mids carry no traded volume, so the volumes are 0 and `n_trades` counts
the mids sampled in the candle. A gap in the samples (a stale feed) is filled with flat candles
at the last close, so the series stays equidistant, as Hummingbot's feeds check.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

Row = list[float]


class CandleBuilder:
    """Closed candles of `interval_s` seconds from (time, price) samples in time order."""

    def __init__(self, interval_s: int, max_records: int) -> None:
        if interval_s <= 0 or max_records <= 0:
            raise ValueError("candle interval and max_records must be positive")
        self.interval_s = interval_s
        self.closed: deque[Row] = deque(maxlen=max_records)
        self._open_time: float | None = None
        self._ohlc: list[float] = []
        self._samples = 0

    @property
    def max_records(self) -> int:
        return self.closed.maxlen or 0

    def resize(self, max_records: int) -> None:
        """Keep more (never fewer) closed candles from now on, keeping what is there."""
        if max_records > self.max_records:
            self.closed = deque(self.closed, maxlen=max_records)

    def add(self, t: float, price: float) -> bool:
        """Sample `price` at time `t`; True when this sample closed at least one candle.
        Non-finite or non-positive prices, and samples older than the open candle, are ignored."""
        if not (math.isfinite(price) and price > 0):
            return False
        open_time = math.floor(t / self.interval_s) * self.interval_s
        if self._open_time is None:
            self._start(open_time, price)
            return False
        if open_time < self._open_time:
            return False
        if open_time == self._open_time:
            o, h, low, _c = self._ohlc
            self._ohlc = [o, max(h, price), min(low, price), price]
            self._samples += 1
            return False
        self._close()
        last_close = self._ohlc[3]
        gap = self._open_time + self.interval_s
        while gap < open_time:  # no sample in these candles: flat at the last close
            self.closed.append([gap, last_close, last_close, last_close, last_close, 0.0, 0.0, 0.0, 0.0, 0.0])
            gap += self.interval_s
        self._start(open_time, price)
        return True

    def _start(self, open_time: float, price: float) -> None:
        self._open_time = float(open_time)
        self._ohlc = [price, price, price, price]
        self._samples = 1

    def _close(self) -> None:
        assert self._open_time is not None
        o, h, low, c = self._ohlc
        self.closed.append([self._open_time, o, h, low, c, 0.0, 0.0, float(self._samples), 0.0, 0.0])


def candle_columns(
    provider: Any, connector: str, trading_pair: str, interval: str, max_records: int
) -> tuple[list[float], list[float], list[float]]:
    """(highs, lows, closes) of the last `max_records` closed candles, as Hummingbot's
    `get_candles_df(...)["high"].tolist()` (and low, close) give them. A provider that keeps its
    candles as rows (offline: `SimulatedMarketDataProvider.closed_rows`) answers from them: the
    same floats without a pandas DataFrame built per candle (about a millisecond each)."""
    rows_of = getattr(provider, "closed_rows", None)
    if rows_of is not None:
        rows = rows_of(connector, trading_pair, interval, max_records)
        return [r[2] for r in rows], [r[3] for r in rows], [r[4] for r in rows]
    df = provider.get_candles_df(connector, trading_pair, interval, max_records)
    return df["high"].tolist(), df["low"].tolist(), df["close"].tolist()


def natr(highs: Sequence[float], lows: Sequence[float], closes: Sequence[float], length: int) -> float | None:
    """Normalized average true range in percent of the last close: Wilder's ATR over `length`
    candles (as pandas-ta's `natr`), or None with fewer than `length + 1` candles."""
    n = len(closes)
    if length <= 0 or n < length + 1 or len(highs) != n or len(lows) != n:
        return None
    true_ranges = [
        max(highs[i] - lows[i], abs(highs[i] - closes[i - 1]), abs(lows[i] - closes[i - 1])) for i in range(1, n)
    ]
    atr = sum(true_ranges[:length]) / length
    for tr in true_ranges[length:]:
        atr = (atr * (length - 1) + tr) / length
    last = closes[-1]
    return atr / last * 100 if last > 0 else None


def bollinger_percent_b(closes: Sequence[float], length: int, std: float) -> float | None:
    """Where the last close sits in its Bollinger band: 0 at the lower band, 1 at the upper
    (pandas-ta's BBP: population standard deviation over `length` closes); None with too few
    closes or a band of zero width."""
    if length <= 1 or len(closes) < length:
        return None
    window = closes[-length:]
    mean = sum(window) / length
    sd = math.sqrt(sum((c - mean) ** 2 for c in window) / length)
    if sd <= 0:
        return None
    lower, upper = mean - std * sd, mean + std * sd
    return (window[-1] - lower) / (upper - lower)
