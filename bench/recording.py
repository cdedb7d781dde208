"""A real-shaped recording for the paper run's benches: tick-level top-of-book captures the way a
bookTicker-like recorder writes them, not the project's generator's one row per second.

Shape (seeded, numpy only): the three markets the original scripts trade (binance BTC-USDT,
okx BTC-USDT, okx ETH-USDT), 2022-like prices (BTC near 20,000, ETH near 1,500), rows at
fractional receive times in time order across markets; per market the rate changes every
minute (quiet stretches of one row in several seconds, normal minutes of a few rows a second,
bursts of tens a second), silences of 10-60 s in quiet minutes, a few gaps of minutes (the
recorder's connection lost), and okx ETH starts late. Prices move by a random walk with a
shared BTC factor (okx a few bps off binance, now and then more: arbitrage), quoted on a
0.01 tick with a spread of 1-4 ticks, bid sizes from 0.001 to a few coins.

Usage: python bench/recording.py OUT.csv [--hours 24] [--seed 16]
(or `make_recording(path, hours, seed)`; the rows written are returned). 24 h is ~3 million
rows, ~190 MB: write it to a temporary directory, never commit it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

T0 = 1_656_633_600.0  # 2022-07-01 00:00:00 UTC
#: (exchange, pair, mean rows per second in a normal minute, price scale to BTC, first row at (share of the span))
MARKETS = (
    ("binance", "BTC-USDT", 14.0, 1.0, 0.0),
    ("okx", "BTC-USDT", 8.0, 1.0, 0.0),
    ("okx", "ETH-USDT", 6.0, 0.075, 0.0465),  # ETH near 1,500; starts late (67 min in a day)
)
QUIET, BURST = 0.08, 0.04  # share of quiet and burst minutes
GAPS_PER_DAY = 6  # per market: the recorder lost the connection for 1-8 minutes


def _times(rng: np.random.Generator, seconds: float, rate: float, start: float) -> np.ndarray:
    """Receive times (s from T0, sorted, fractional) of one market's rows."""
    minutes = int(np.ceil(seconds / 60))
    kind = rng.choice(3, size=minutes, p=[QUIET, BURST, 1 - QUIET - BURST])
    per_s = np.where(kind == 0, rate / 100, np.where(kind == 1, rate * 8, rate * rng.uniform(0.5, 1.5, minutes)))
    counts = rng.poisson(per_s * 60)
    minute = np.repeat(np.arange(minutes), counts)
    times = np.sort((minute + rng.random(minute.size)) * 60.0)
    times = times[(times >= start * seconds) & (times < seconds)]
    lost = rng.uniform(start * seconds, seconds, max(1, round(GAPS_PER_DAY * seconds / 86_400)))
    for at, length in zip(lost, rng.uniform(60, 480, lost.size), strict=True):
        times = times[(times < at) | (times >= at + length)]
    return times


def make_recording(path: Path, hours: float = 24.0, seed: int = 16) -> int:
    """Write the recording to `path` (CSV, the `paper --data` format); the number of rows."""
    rng = np.random.default_rng(seed)
    seconds = hours * 3600 + 2  # rows from T0 - 1 s to T0 + hours + 1 s: the replay's grid holds every hour
    n = int(seconds) + 1
    btc = 20_000.0 * np.exp(np.cumsum(rng.normal(0, 1.2e-4, n)))  # ~3.5 % a day
    frames = []
    for exchange, pair, rate, scale, start in MARKETS:
        times = _times(rng, seconds, rate, start)
        at = times.astype(np.int64)  # the second of each row, for the price walks
        own = np.exp(np.cumsum(rng.normal(0, 2e-5, n)))  # its own drift around the shared factor
        basis = np.zeros(n)
        if exchange == "okx":  # a few bps off binance; now and then a 30-60 bps dislocation for minutes
            basis += rng.normal(0, 2e-4)
            for k in rng.integers(0, n, 4):
                basis[k : k + int(rng.integers(120, 600))] += rng.uniform(0.003, 0.006)
        mid = btc[at] * scale * own[at] * (1 + basis[at]) * (1 + rng.normal(0, 2e-5, at.size))
        ticks = rng.integers(1, 5, at.size) * 0.01
        bid = np.round(mid - ticks / 2, 2)
        ask = np.round(bid + ticks, 2)
        size = np.round(rng.lognormal(-1.5 if scale == 1.0 else 1.0, 1.2, at.size), 4).clip(0.001)
        frames.append(pd.DataFrame({
            "timestamp": np.round(T0 - 1 + times, 3), "connector": exchange, "trading_pair": pair,
            "best_bid": bid, "best_ask": ask, "bid_size": size,
        }))
    frame = pd.concat(frames, ignore_index=True).sort_values("timestamp", kind="stable")
    frame.to_csv(path, index=False)
    return len(frame)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    rows = make_recording(args.out, args.hours, args.seed)
    print(f"{args.out}: {rows:,} rows, {args.hours:g} h, {len(MARKETS)} markets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
