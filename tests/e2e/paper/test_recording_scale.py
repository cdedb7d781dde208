"""Recordings at the scale real captures come in: tick-level rows, several a second per market
(`bench/recording.py`: bursts, quiet stretches, gaps of minutes, a market starting late).
A day is ~3 million rows; these tests use an hour of the same shape (~100,000 rows)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.recording import MARKETS, make_recording
from lyra_strategies.paper import importer


@pytest.fixture(scope="module")
def hour(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scale") / "hour.csv"
    make_recording(path, hours=1.0, seed=16)
    return path


def test_an_hours_capture_is_every_second_of_the_hour_in_every_market(hour: Path) -> None:
    """The shape the bench replays: three markets, one late, fractional times, the last row at
    or before each second."""
    feed = importer.load_csv(hour, hours=1.0)
    assert feed.seconds == 3600
    assert [(m.connector, m.trading_pair) for m in feed.markets] == [
        (importer.paper_connector(exchange), pair) for exchange, pair, *_ in sorted(MARKETS)]
    late = feed.market("okx_paper_trade", "ETH-USDT").first_tick()
    assert late is not None and 150 < late < 200  # 4.65 % of the hour
    frame = pd.read_csv(hour)
    rows = frame[(frame.connector == "binance")].sort_values("timestamp", kind="stable")
    grid = feed.start + np.arange(feed.seconds)
    idx = np.searchsorted(rows.timestamp.to_numpy(), grid, side="right") - 1
    mids = ((rows.best_bid + rows.best_ask) / 2).to_numpy()[idx]
    np.testing.assert_array_equal(feed.market("binance_paper_trade", "BTC-USDT").mid, mids)
    assert len(frame) > 90_000 and feed.gaps  # quiet minutes and lost connections: gaps


def test_the_importer_holds_a_capture_in_little_more_than_its_numbers(hour: Path) -> None:
    """The old importer kept a Python string per row for the connector and the pair (several
    copies: read, stripped, respelled row by row): 42 MB at its peak for this 5.9 MB file
    (7x; a day of 2.7 million rows, 148 MB, peaked at 1.2 GB of RSS) and 0.5 s of CPU, most of
    it calling the spelling functions 100,000 times. Read as categories: 9 MB (1.6x)."""
    size = hour.stat().st_size
    importer.load_csv(hour)  # imports and caches warm
    tracemalloc.start()
    try:
        importer.load_csv(hour)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * size, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB recording"
