"""Import real recordings: a CSV of top-of-book snapshots, one row per market per update.

Columns (header required): ``timestamp,connector,trading_pair,best_bid,best_ask`` and optional
``bid_size``. Rows are resampled to one per second (last value carried forward; `updated_at`
keeps the time of the row actually seen, so a gap in the recording shows up as a stale feed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lyra_governor.errors import ConfigError
from lyra_strategies.paper.feed import Feed, MarketSeries

REQUIRED = ("timestamp", "connector", "trading_pair", "best_bid", "best_ask")


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
    start = float(np.floor(frame.timestamp.min()))
    end = float(np.ceil(frame.timestamp.max()))
    seconds = int(end - start) + 1
    if hours is not None:
        seconds = min(seconds, int(hours * 3600))
    grid = start + np.arange(seconds, dtype=np.float64)
    feed = Feed(start=start, seconds=seconds)
    for (connector, pair), group in frame.groupby(["connector", "trading_pair"], sort=True):
        rows = group.sort_values("timestamp")
        idx = np.searchsorted(rows.timestamp.to_numpy(), grid, side="right") - 1
        idx = np.clip(idx, 0, len(rows) - 1)
        bid = rows.best_bid.to_numpy(dtype=np.float64)[idx]
        ask = rows.best_ask.to_numpy(dtype=np.float64)[idx]
        mid = (bid + ask) / 2
        size = rows.bid_size.to_numpy(dtype=np.float64)[idx] if "bid_size" in rows else np.full(seconds, 0.01)
        feed.markets.append(
            MarketSeries(
                str(connector),
                str(pair),
                mid,
                (ask - bid) / mid * 1e4,
                np.clip(size, 1e-6, None),
                rows.timestamp.to_numpy(dtype=np.float64)[idx],
            )
        )
    return feed


def save_csv(feed: Feed, path: Path, every_s: int = 1) -> None:
    """Write a feed in the importer's format (for sharing a generated day, or tests)."""
    rows = []
    for m in feed.markets:
        for i in range(0, feed.seconds, every_s):
            half = m.mid[i] * m.spread_bps[i] / 2e4
            rows.append(
                (m.updated_at[i], m.connector, m.trading_pair, m.mid[i] - half, m.mid[i] + half, m.depth_step[i])
            )
    pd.DataFrame(rows, columns=[*REQUIRED, "bid_size"]).to_csv(path, index=False)
