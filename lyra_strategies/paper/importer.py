"""Import real recordings: a CSV of top-of-book snapshots, one row per market per update.

Columns (header required): ``timestamp,connector,trading_pair,best_bid,best_ask`` and optional
``bid_size``. Timestamps are Unix seconds and may be fractional (receive times). Rows are
resampled to one per simulated second: each second shows the last row at or before it (a row
at 12.7 s is first seen at 13 s), `updated_at` keeps that row's own time, so a gap in the
recording shows up as a stale feed, and before a market's first row it has no book at all.
A connector named by its exchange (``binance``) is that exchange's paper connector
(``binance_paper_trade``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lyra_governor.config import PAPER_SUFFIX
from lyra_governor.errors import ConfigError
from lyra_strategies.paper.feed import Feed, MarketSeries

REQUIRED = ("timestamp", "connector", "trading_pair", "best_bid", "best_ask")
GAP_S = 10.0  # a longer silence between two rows of one market is reported as a gap


def paper_connector(name: str) -> str:
    """`binance` -> `binance_paper_trade`; a paper connector name is kept."""
    name = name.strip()
    return name if name.endswith(PAPER_SUFFIX) else f"{name}{PAPER_SUFFIX}"


def load_csv(path: Path, hours: float | None = None) -> Feed:
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such recording; record one with `lyra-governor record`") from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ConfigError(f"{path}: not a readable CSV ({exc})") from None
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ConfigError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(REQUIRED)}")
    frame = frame.dropna(subset=list(REQUIRED))
    frame = frame[(frame.best_bid > 0) & (frame.best_ask > frame.best_bid)]
    if frame.empty:
        raise ConfigError(f"{path}: no usable rows (need positive bids below asks)")
    frame = frame.assign(connector=frame.connector.astype(str).map(paper_connector))
    start = float(np.ceil(frame.timestamp.min()))  # the first whole second with a quote behind it
    end = float(np.floor(frame.timestamp.max()))
    seconds = max(1, int(end - start) + 1)
    if hours is not None:
        seconds = min(seconds, max(1, int(hours * 3600)))
    grid = start + np.arange(seconds, dtype=np.float64)
    feed = Feed(start=start, seconds=seconds, source=str(path))
    for (connector, pair), group in frame.groupby(["connector", "trading_pair"], sort=True):
        rows = group.sort_values("timestamp", kind="stable")
        stamps = rows.timestamp.to_numpy(dtype=np.float64)
        idx = np.searchsorted(stamps, grid, side="right") - 1  # the last row at or before each second
        before = idx < 0  # no row yet: no book (no look-ahead)
        idx = np.clip(idx, 0, len(rows) - 1)
        bid = rows.best_bid.to_numpy(dtype=np.float64)[idx]
        ask = rows.best_ask.to_numpy(dtype=np.float64)[idx]
        mid = (bid + ask) / 2
        size = rows.bid_size.to_numpy(dtype=np.float64)[idx] if "bid_size" in rows else np.full(seconds, 0.01)
        updated = stamps[idx]
        mid[before] = np.nan
        updated[before] = np.nan
        feed.markets.append(
            MarketSeries(str(connector), str(pair), mid, (ask - bid) / mid * 1e4, np.clip(size, 1e-6, None), updated)
        )
        inside = stamps[(stamps >= start) & (stamps <= grid[-1])]
        silent = np.diff(inside)
        for at, length in zip(inside[:-1][silent > GAP_S], silent[silent > GAP_S], strict=True):
            feed.gaps.append({"connector": str(connector), "trading_pair": str(pair), "at": float(at),
                              "seconds": round(float(length), 3)})
    return feed


def save_csv(feed: Feed, path: Path, every_s: int = 1) -> None:
    """Write a feed in the importer's format (for sharing a generated day, or tests)."""
    rows = []
    for m in feed.markets:
        for i in range(0, feed.seconds, every_s):
            if not m.has_book(i):
                continue
            half = m.mid[i] * m.spread_bps[i] / 2e4
            rows.append(
                (m.updated_at[i], m.connector, m.trading_pair, m.mid[i] - half, m.mid[i] + half, m.depth_step[i])
            )
    pd.DataFrame(rows, columns=[*REQUIRED, "bid_size"]).to_csv(path, index=False)
