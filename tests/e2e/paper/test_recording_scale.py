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
from lyra_strategies.paper import importer, report
from lyra_strategies.paper.replay import run_replay
from tests.e2e.paper.test_recordings import _settings

LISTED = 10  # periods the report's summary.md lists one by one


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


def test_a_report_of_many_gaps_names_them_per_market_and_lists_the_longest(hour: Path, tmp_path: Path) -> None:
    """A capture's quiet minutes make dozens of short silences an hour (hundreds a day: 708 on
    `bench/recording.py`'s day) beside the few lost connections of minutes. The old report
    listed the first ten (summary.json: the first 50) in market order: the binance ones, the
    okx lost connection was not named. Now: each market's count, time in all and longest, and
    the ten longest, in their own order."""
    feed = importer.load_csv(hour)
    assert len(feed.gaps) > 3 * LISTED
    settings = _settings(tmp_path)
    result = run_replay(settings, feed, tmp_path / "out", strategies="market_making")
    summary = report.summarize(result, settings)
    data = summary["data"]
    by_length = sorted(feed.gaps, key=lambda g: -float(g["seconds"]))
    line = next(ln for ln in report.markdown(summary).splitlines() if ln.startswith("Gaps in the recording"))
    for g in by_length[:LISTED]:
        assert f"{g['trading_pair']} on {g['connector']} at {report._utc(float(g['at']))}" in line
    assert line.count(" at 2022-") == LISTED
    markets = {f"{g['trading_pair']} on {g['connector']}" for g in feed.gaps}
    assert set(data["gaps_by_market"]) == markets and len(markets) == 3
    assert sum(row["count"] for row in data["gaps_by_market"].values()) == data["gaps_total"] == len(feed.gaps)
    for name, row in data["gaps_by_market"].items():
        own = [float(g["seconds"]) for g in feed.gaps if f"{g['trading_pair']} on {g['connector']}" == name]
        assert row["longest_s"] == max(own) and row["seconds"] == pytest.approx(sum(own))
        assert f"{name} {row['count']:,.0f} (" in line
    assert report.longest(feed.gaps, 5) == [g for g in feed.gaps if g in by_length[:5]]  # summary.json: 50
