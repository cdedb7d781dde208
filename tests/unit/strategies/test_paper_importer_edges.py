"""Recordings at the importer's edges (found in review): non-finite timestamps, a spreadsheet's
decimal commas that its first row does not show, a run cut inside a silence, a last line cut
short."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lyra_governor.errors import ConfigError
from lyra_strategies.paper import importer

T0 = 1_656_633_600  # 2022-07-01 00:00:00 UTC
HEADER = "timestamp,connector,trading_pair,best_bid,best_ask,bid_size\n"


@pytest.mark.parametrize("stamp", ["inf", "-inf", "Infinity"])
def test_an_infinite_timestamp_is_an_empty_field_not_a_crash(tmp_path: Path, stamp: str) -> None:
    """`inf` in the timestamp column (a logger's division by zero) passed every check and
    crashed load_csv with OverflowError (cannot convert float infinity to integer), a
    traceback through `lyra-governor paper --data`; it is now left out as an empty field, as
    an `inf` price already was."""
    path = tmp_path / "inf.csv"
    path.write_text(HEADER + f"{stamp},binance,BTC-USDT,100,101,1\n{T0},binance,BTC-USDT,100,101,1\n"
                    f"{T0 + 2},binance,BTC-USDT,102,103,1\n")
    feed = importer.load_csv(path)
    assert (feed.start, feed.seconds) == (T0, 3)
    assert feed.rows_dropped == {"rows_read": 3, importer.DROP_EMPTY: 1}
    assert feed.markets[0].mid.tolist() == [100.5, 100.5, 102.5]


def test_decimal_commas_after_a_first_row_of_whole_numbers(tmp_path: Path) -> None:
    """A spreadsheet's `;` file whose first row holds whole numbers only (epoch milliseconds,
    prices 20066 and 20067, size 1): the decimal mark was sniffed on that row alone, so the
    file was read with decimal points and the second row's `20066,5` was "not a number" (a
    ConfigError on a well-formed file). Semicolons with decimal points, and text with a comma
    but no decimal comma, read as before."""
    ms = T0 * 1000
    semi = tmp_path / "semi.csv"
    semi.write_text("timestamp;connector;trading_pair;best_bid;best_ask;bid_size\n"
                    f"{ms};binance;BTC-USDT;20066;20067;1\n{ms + 1000};binance;BTC-USDT;20066,5;20067,25;0,5\n")
    feed = importer.load_csv(semi)
    assert (feed.start, feed.seconds) == (T0, 2)
    market = feed.markets[0]
    assert market.mid.tolist() == [20066.5, 20066.875]
    assert market.bid is not None and market.ask is not None
    assert (market.bid.tolist(), market.ask.tolist()) == ([20066.0, 20066.5], [20067.0, 20067.25])
    points = tmp_path / "points.csv"
    points.write_text("timestamp;connector;trading_pair;best_bid;best_ask;note\n"
                      f"{T0}.25;binance;BTC-USDT;20066.5;20067.5;a,b\n"
                      f"{T0 + 1}.5;binance;BTC-USDT;20066.25;20067.25;x\n")
    read = importer.load_csv(points)
    np.testing.assert_array_equal(read.markets[0].mid, [20067.0])  # the row at .25 s, seen at 1 s


def test_a_silence_that_the_runs_end_cuts_is_a_gap_not_the_recordings_end(tmp_path: Path) -> None:
    """A run cut short with --hours inside a market's silence: the report said "(its recording
    ends there)" (`to_end`) though the recording goes on (every market of a minute-bar
    recording replayed for 0.15 h: three such false ends). It is now a gap like the others, to
    the run's end (the run's share of the silence, 39 of its 80 s: the report's gap time stays
    within the run); a market whose rows do end keeps `to_end`."""
    rows = [f"{T0 + t},binance,BTC-USDT,100,101,1" for t in [*range(0, 21), *range(100, 200)]]
    rows += [f"{T0 + t},okx,BTC-USDT,100,101,1" for t in range(0, 200)]
    rows += [f"{T0 + t},kraken,BTC-USDT,100,101,1" for t in range(0, 31)]
    path = tmp_path / "cut.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n")
    cut = importer.load_csv(path, hours=60 / 3600)
    assert cut.seconds == 60
    assert cut.gaps == [
        {"connector": "binance_paper_trade", "trading_pair": "BTC-USDT", "at": T0 + 20.0, "seconds": 39.0},
        {"connector": "kraken_paper_trade", "trading_pair": "BTC-USDT", "at": T0 + 30.0, "seconds": 29.0,
         "to_end": True},
    ]
    whole = importer.load_csv(path)
    assert [(g["connector"], g["seconds"], g.get("to_end", False)) for g in whole.gaps] == [
        ("binance_paper_trade", 80.0, False), ("kraken_paper_trade", 169.0, True)]


def test_a_last_line_cut_short_does_not_reject_a_millisecond_recording(tmp_path: Path) -> None:
    """A recorder killed mid-line leaves `16566336` of `1656633600123` as the last row, its
    other fields empty. Its number took part in the unit decision: "timestamps mix units
    (16566336 looks like seconds, 1656633609000 like milliseconds)", and the whole recording
    was refused. A row missing a field is left out as empty anyway: it now decides nothing."""
    ms = T0 * 1000
    path = tmp_path / "killed.csv"
    path.write_text(HEADER + "".join(f"{ms + 1000 * k},binance,BTC-USDT,100,101,1\n" for k in range(10))
                    + str(ms)[:8])
    feed = importer.load_csv(path)
    assert (feed.start, feed.seconds) == (T0, 10)
    assert feed.rows_dropped == {"rows_read": 11, importer.DROP_EMPTY: 1}
    (tmp_path / "zero.csv").write_text(HEADER + f"{T0},binance,BTC-USDT,100,101,1\n0,binance,BTC-USDT,100,101,1\n")
    with pytest.raises(ConfigError, match="data row 2: timestamp '0' is not a Unix time after 1970"):
        importer.load_csv(tmp_path / "zero.csv")  # a whole row with a bad time is still damage
