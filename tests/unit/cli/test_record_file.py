"""`lyra-governor record` appending to an existing recording (found in review): a recorder
killed mid-line left a last line without its newline, and the next run's first row was written
onto it (the importer refused the file); an existing empty file got no header."""

from __future__ import annotations

import csv
from pathlib import Path

from lyra_governor.cli.paper_cmd import open_recording
from lyra_strategies.paper import importer

T0 = 1_656_633_600


def _record(out: Path, start: int, n: int) -> None:
    """What record_cmd writes per run: rows through csv.writer on the opened recording."""
    with open_recording(out) as handle:
        writer = csv.writer(handle)
        for i in range(n):
            writer.writerow([start + i, "binance_paper_trade", "BTC-USDT", 20000 + i, 20001 + i, 1.5])


def test_a_row_after_a_killed_recorders_cut_line_starts_its_own_line(tmp_path: Path) -> None:
    out = tmp_path / "rec.csv"
    _record(out, T0, 3)
    out.write_bytes(out.read_bytes() + f"{T0 + 3},binance_paper_trade,BTC-USDT,200".encode())  # killed mid-row
    _record(out, T0 + 10, 2)
    lines = out.read_text().splitlines()
    assert lines[4] == f"{T0 + 3},binance_paper_trade,BTC-USDT,200"  # the cut row stays cut
    assert lines[5].startswith(f"{T0 + 10},binance_paper_trade")
    feed = importer.load_csv(out)
    assert feed.start == T0 and feed.seconds == 12
    assert feed.rows_dropped[importer.DROP_EMPTY] == 1
    assert feed.markets[0].mid[-1] == 20001.5


def test_an_empty_or_missing_file_gets_the_header_once(tmp_path: Path) -> None:
    empty, missing = tmp_path / "empty.csv", tmp_path / "sub" / "missing.csv"
    empty.touch()
    for out in (empty, missing):
        _record(out, T0, 2)
        _record(out, T0 + 2, 2)
        lines = out.read_text().splitlines()
        assert lines[0] == "timestamp,connector,trading_pair,best_bid,best_ask,bid_size"
        assert len(lines) == 5 and lines.count(lines[0]) == 1
        assert importer.load_csv(out).seconds == 4
