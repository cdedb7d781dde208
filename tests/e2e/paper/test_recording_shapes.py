"""Recordings in the shapes real captures come in, which neither the generator nor
`test_recordings.build_recording` makes: epoch milliseconds, microseconds and nanoseconds,
ISO-8601 dates, exchange tools' spellings of exchanges and pairs, empty and damaged fields,
crossed books, a market whose recording ends before the others'."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from lyra_governor.errors import ConfigError
from lyra_governor.store import audit_log, create_store_engine, fills
from lyra_strategies.paper import importer, report
from lyra_strategies.paper.feed import Feed
from lyra_strategies.paper.replay import run_replay
from tests.e2e.paper.test_recordings import T0, _settings, build_recording, run_cli


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """`build_recording`'s rows (epoch seconds, three markets, shuffled)."""
    path = tmp_path_factory.mktemp("shapes") / "capture.csv"
    build_recording(path)
    return pd.read_csv(path)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def _same_feed(a: Feed, b: Feed) -> None:
    assert (a.start, a.seconds) == (b.start, b.seconds)
    assert [(m.connector, m.trading_pair) for m in a.markets] == [(m.connector, m.trading_pair) for m in b.markets]
    for x, y in zip(a.markets, b.markets, strict=True):
        np.testing.assert_array_equal(x.mid, y.mid)
        np.testing.assert_allclose(x.updated_at, y.updated_at, rtol=0, atol=2e-6)  # a date to the microsecond


def test_epoch_units_and_iso_dates_give_the_recordings_own_seconds(capture: pd.DataFrame, tmp_path: Path) -> None:
    """The old importer read epoch milliseconds as seconds: a 15-minute capture became 899,832
    simulated seconds (250 h) with a gap every second row; microseconds did not fit in memory;
    ISO-8601 dates raised a TypeError traceback."""
    seconds = importer.load_csv(_write(capture, tmp_path / "s.csv"))
    assert seconds.seconds == 899
    stamps = capture.timestamp.to_numpy()
    for unit, scale in (("ms", 1e3), ("us", 1e6), ("ns", 1e9)):
        ticks = np.round(stamps * scale).astype(np.int64)
        same = importer.load_csv(_write(capture.assign(timestamp=ticks / scale), tmp_path / f"{unit}_s.csv"))
        assert (same.start, same.seconds) == (seconds.start, seconds.seconds)
        _same_feed(importer.load_csv(_write(capture.assign(timestamp=ticks), tmp_path / f"{unit}.csv")), same)
    dates = pd.to_datetime(stamps, unit="s", utc=True)
    iso_z = capture.assign(timestamp=dates.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    _same_feed(importer.load_csv(_write(iso_z, tmp_path / "iso.csv")), seconds)
    offset = capture.assign(timestamp=dates.tz_convert("Europe/Paris").strftime("%Y-%m-%d %H:%M:%S.%f%z"))
    _same_feed(importer.load_csv(_write(offset, tmp_path / "offset.csv")), seconds)
    stray = capture.copy()
    stray.loc[stray.index[7], "timestamp"] = T0 + 9 * 86_400.0  # a clock nine days off
    with pytest.raises(ConfigError, match=r"the rows span 216\.0 h \(2022-07-01 00:00:01 UTC to 2022-07-10 00:00:00 "
                                          r"UTC\), more than the 168 h one run replays; .*data rows \d+ and 8 hold"):
        importer.load_csv(_write(stray, tmp_path / "stray.csv"))
    assert importer.load_csv(tmp_path / "stray.csv", hours=0.25).seconds == 900  # or the start of it
    mixed = capture.assign(timestamp=np.where(np.arange(len(capture)) % 2, stamps, stamps * 1e3))
    with pytest.raises(ConfigError, match="timestamps mix units"):
        importer.load_csv(_write(mixed, tmp_path / "mixed.csv"))


def test_exchange_and_pair_spellings_map_to_hummingbots(capture: pd.DataFrame, tmp_path: Path) -> None:
    """`Binance`, `BTC/USDT`, `btc_usdt`, `ETHUSDT`: the old importer kept them as written, so
    no script found its market (`Binance_paper_trade`, `BTC/USDT`)."""
    spelled = capture.assign(
        connector=capture.connector.str.upper().radd(" "),
        trading_pair=capture.trading_pair.map({"BTC-USDT": "BTC/USDT", "ETH-USDT": "ETHUSDT"}),
    )
    spelled.loc[spelled.index[::3], "trading_pair"] = spelled.trading_pair[::3].str.replace("/", "_").str.lower()
    spelled.loc[spelled.index[::3], "trading_pair"] = spelled.trading_pair[::3].str.replace("ethusdt", "eth_usdt")
    feed = importer.load_csv(_write(spelled, tmp_path / "spelled.csv"))
    _same_feed(feed, importer.load_csv(_write(capture, tmp_path / "s.csv")))


def test_rows_that_cannot_be_a_book_are_left_out_and_counted(capture: pd.DataFrame, tmp_path: Path) -> None:
    """Crossed books, zero prices and empty fields are left out and counted in the report;
    an empty bid_size is the default depth, not a NaN volume on every level of Hummingbot's
    book (the old importer put NaN depth on 139 of 899 seconds of binance BTC)."""
    shaped = capture.copy()
    rows = shaped.index
    shaped.loc[rows[0:40:4], "best_bid"] = shaped.best_ask[rows[0:40:4]] * 1.001  # crossed
    shaped.loc[rows[1:40:4], "best_ask"] = shaped.best_bid[rows[1:40:4]]  # locked
    shaped.loc[rows[2:40:4], "best_bid"] = 0.0
    shaped.loc[rows[3:40:4], "best_ask"] = np.nan
    shaped.loc[rows[40:50], "connector"] = np.nan
    shaped.loc[rows[50:60], "timestamp"] = np.nan
    shaped.loc[rows[60::7], "bid_size"] = np.nan
    path = tmp_path / "damaged.csv"
    path.write_bytes(b"\xef\xbb\xbf" + shaped.to_csv(index=False).replace("\n", "\r\n").encode())  # BOM, CRLF
    feed = importer.load_csv(path)
    assert feed.rows_dropped == {"rows_read": len(capture), importer.DROP_EMPTY: 30, importer.DROP_PRICE: 10,
                                 importer.DROP_CROSSED: 20}
    for market in feed.markets:
        assert np.isfinite(market.depth_step).all() and (market.spread_bps[np.isfinite(market.mid)] > 0).all()
    settings = _settings(tmp_path)
    result = run_replay(settings, importer.load_csv(path, hours=0.02), tmp_path / "out")
    summary = report.summarize(result, settings)
    assert summary["data"]["rows_dropped"] == feed.rows_dropped
    md = report.markdown(summary)
    assert f"Rows read: {len(capture):,}; left out: 30 with an empty field, 10 with a price at or below zero, " \
           "20 with a crossed or locked book (bid at or above ask)." in md


@pytest.mark.parametrize(
    ("row", "column", "value", "expected"),
    [
        (6, "best_bid", "abc", "data row 6: best_bid 'abc' is not a number; correct that row or delete it"),
        (9, "bid_size", "0.01.2", "data row 9: bid_size '0.01.2' is not a number"),
        (3, "timestamp", "yesterday", "data row 3: timestamp 'yesterday' is not a time"),
        (2, "timestamp", "-5", "data row 2: timestamp '-5.0' is not a Unix time after 1970"),
    ],
)
def test_a_damaged_field_is_an_error_naming_its_row(
    capture: pd.DataFrame, tmp_path: Path, row: int, column: str, value: str, expected: str
) -> None:
    """The old importer raised TypeError or ValueError tracebacks (`'>' not supported between
    instances of 'str' and 'int'`, `could not convert string to float`)."""
    shaped = capture.astype({column: object})
    shaped.loc[shaped.index[row - 1], column] = value
    with pytest.raises(ConfigError, match=expected.replace(".", r"\.")):
        importer.load_csv(_write(shaped, tmp_path / "damaged.csv"))


def test_dates_and_a_damaged_file_through_the_command(capture: pd.DataFrame, lyra_home: Path) -> None:
    dates = pd.to_datetime(capture.timestamp, unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    shaped = capture.assign(timestamp=dates).astype({"best_ask": object})
    shaped.loc[shaped.index[4], "best_ask"] = "#N/A!"
    _write(shaped, lyra_home / "dated.csv")
    done = run_cli("paper", "--data", "dated.csv", "--out", "rep", cwd=lyra_home)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "dated.csv: data row 5: best_ask '#N/A!' is not a number" in " ".join(done.stderr.split())
    (lyra_home / "header.csv").write_text("timestamp,connector,trading_pair,best_bid,best_ask\r\n")
    done = run_cli("paper", "--data", "header.csv", "--out", "rep", cwd=lyra_home)
    assert done.returncode == 2 and "no usable rows (the file has no rows)" in " ".join(done.stderr.split())


def test_a_recording_of_other_markets_names_them_in_the_sentence(capture: pd.DataFrame, lyra_home: Path) -> None:
    kraken = capture[capture.trading_pair == "BTC-USDT"].assign(connector="kraken", trading_pair="XBT/USD")
    path = _write(kraken, lyra_home / "kraken.csv")
    settings = _settings(lyra_home)
    result = run_replay(settings, importer.load_csv(path, hours=0.02), lyra_home / "out", strategies="grid,dca")
    note = result.unmatched_note
    assert note == ("No data in this feed for grid (BTC-USDT on binance_paper_trade); dca (BTC-USDT on "
                    "binance_paper_trade): those scripts cannot trade those markets (the feed has XBT-USD on "
                    "kraken_paper_trade, which no script trades).")
    assert note in report.summarize(result, settings)["gate_reasons"]


STOPS = 120.0  # binance's recording ends two minutes in; okx's runs on


def test_a_market_whose_recording_ends_is_a_gap_to_the_end_and_trades_no_more(
    capture: pd.DataFrame, lyra_home: Path
) -> None:
    """Its last quote stays on the book (nothing newer is known) but goes stale: the governor
    refuses every order on it from the stale limit on, and the report names the silence as a
    gap to the end (the old importer reported no gap at all)."""
    ended = capture[(capture.connector != "binance") | (capture.timestamp < T0 + STOPS)]
    ended = ended[ended.timestamp < T0 + 240]
    path = _write(ended, lyra_home / "ended.csv")
    feed = importer.load_csv(path)
    last = float(ended[ended.connector == "binance"].timestamp.max())
    assert feed.gaps == [{"connector": "binance_paper_trade", "trading_pair": "BTC-USDT", "at": last,
                          "seconds": round(feed.start + feed.seconds - 1 - last, 3), "to_end": True}]
    settings = _settings(lyra_home)
    result = run_replay(settings, feed, lyra_home / "out", strategies="market_making,grid,arbitrage")
    summary = report.summarize(result, settings)
    stale = settings.risk.stale_price_s
    assert [(p["connector"], p["at"]) for p in summary["data"]["stale_periods"]] == [
        ("binance_paper_trade", math.floor(last + stale) + 1)]
    assert "(its recording ends there)" in report.markdown(summary)
    engine = create_store_engine(f"sqlite:///{result.db_path}")
    with engine.connect() as conn:
        late = [json.loads(p) for ts, p in conn.execute(sa.select(audit_log.c.ts_us, audit_log.c.payload)
                                                        .where(audit_log.c.event == "decision"))
                if ts / 1e6 > last + stale and json.loads(p)["connector"] == "binance_paper_trade"]
        late_fills = conn.execute(sa.select(sa.func.count()).select_from(fills).where(
            fills.c.exchange == "binance", fills.c.ts > last + stale)).scalar_one()
    engine.dispose()
    assert late and {d["status"] for d in late} == {"DENIED"} and {d["code"] for d in late} == {"STALE_PRICE"}
    assert late_fills == 0



def test_a_strategy_approved_but_never_filled_is_explained(capture: pd.DataFrame, lyra_home: Path) -> None:
    """Why dynamic market making never fills on `build_recording`'s 15 minutes (and the gate is
    not passed): its NATR reads 15 closed one-minute candles, which a 15-minute recording
    never holds (the replay's candles come from the replayed books only: nothing before the
    recording's start is known), so it quotes its widest spread (60 bps, 30 a side) and
    re-places a quote whenever mid moves 10 bps: the market never reaches one. (On 45 minutes
    of the same shape its NATR is known from minute 15 on and it fills.) The gate reason said
    only "strategies not tested: dynamic_market_making"; it now says why."""
    path = _write(capture, lyra_home / "capture.csv")
    settings = _settings(lyra_home)
    result = run_replay(settings, importer.load_csv(path, hours=0.05), lyra_home / "out",
                        strategies="dynamic_market_making")
    summary = report.summarize(result, settings)
    approved = result.per_strategy["dynamic_market_making"]["approved"]
    assert approved > 10 and result.fills == 0
    [reason] = [r for r in summary["gate_reasons"] if r.startswith("strategies not tested")]
    found = re.search(r"dynamic_market_making \((\d+) orders approved, none filled: its opening orders were "
                      r"priced a median (\d+\.\d) bps from mid \(nearest (\d+\.\d) bps\), and the market never "
                      r"reached them before they were replaced; its 1m candles of BTC-USDT on binance_paper_trade "
                      r"never reached the 15 it reads \((\d) closed in 180 s of data\), so its indicator was never "
                      r"known\)$", reason)
    assert found, reason
    assert int(found[1]) == approved and 25 < float(found[2]) < 35 and float(found[3]) > 20
    assert int(found[4]) in (2, 3)


def test_fills_take_the_recordings_own_prices(capture: pd.DataFrame, lyra_home: Path) -> None:
    """Prices to the cent, as exchanges send them: the book's best levels are the recorded bid
    and ask exactly, so a MARKET fill is at a recorded price (the old books, mid -/+ half the
    spread in doubles, filled grid's and bollinger's closes at 20066.439999999995 and
    20120.180000000004 for 20066.44 and 20120.18)."""
    cents = capture.assign(best_bid=capture.best_bid.round(2), best_ask=capture.best_ask.round(2))
    feed = importer.load_csv(_write(cents, lyra_home / "cents.csv"))
    binance = feed.markets[0]
    rows = cents[cents.connector == "binance"].sort_values("timestamp", kind="stable")
    last = np.searchsorted(rows.timestamp.to_numpy(), feed.start + np.arange(feed.seconds), side="right") - 1
    assert binance.bid is not None and binance.ask is not None
    np.testing.assert_array_equal(binance.bid[last >= 0], rows.best_bid.to_numpy()[last[last >= 0]])
    np.testing.assert_array_equal(binance.ask[last >= 0], rows.best_ask.to_numpy()[last[last >= 0]])
    result = run_replay(_settings(lyra_home), feed, lyra_home / "out", strategies="grid,bollinger")
    engine = create_store_engine(f"sqlite:///{result.db_path}")
    with engine.connect() as conn:
        prices = [str(p) for (p,) in conn.execute(sa.select(fills.c.price))]
    engine.dispose()
    assert len(prices) > 10
    assert [p for p in prices if len(p.partition(".")[2]) > 2] == []


def test_a_spreadsheets_semicolons_and_decimal_commas(capture: pd.DataFrame, tmp_path: Path) -> None:
    """A recording saved by a spreadsheet in a locale whose decimal mark is the comma: `;`
    between fields and `20066,44`. The old importer read one column named
    "timestamp;connector;..." and said every column was missing."""
    plain = importer.load_csv(_write(capture, tmp_path / "plain.csv"))
    (tmp_path / "semi.csv").write_text(capture.to_csv(index=False, sep=";", decimal=","))
    (tmp_path / "semi_points.csv").write_text(capture.to_csv(index=False, sep=";"))
    (tmp_path / "tabs.csv").write_text(capture.to_csv(index=False, sep="\t"))
    for name in ("semi.csv", "semi_points.csv", "tabs.csv"):
        _same_feed(importer.load_csv(tmp_path / name), plain)


def test_of_two_rows_at_one_time_the_later_in_the_file_is_the_quote(tmp_path: Path) -> None:
    """Duplicate timestamps (an exchange's two updates in one millisecond, a file appended
    twice): the later row in the file is the market's quote from that time on, whatever
    order the other rows come in; two loads give the same feed."""
    rows = [(T0 + 0.5, "binance", "BTC-USDT", 100.0, 101.0), (T0 + 3.0, "binance", "BTC-USDT", 104.0, 105.0),
            (T0 + 2.0, "binance", "BTC-USDT", 102.0, 103.0), (T0 + 2.0, "binance", "BTC-USDT", 106.0, 107.0)]
    frame = pd.DataFrame(rows, columns=list(importer.REQUIRED))
    feed = importer.load_csv(_write(frame, tmp_path / "dup.csv"))
    assert feed.start == T0 + 1 and feed.markets[0].mid.tolist() == [100.5, 106.5, 104.5]
    again = importer.load_csv(tmp_path / "dup.csv")
    assert again.markets[0].mid.tolist() == feed.markets[0].mid.tolist()


def test_minute_bars_are_named_with_their_cadence_and_the_way_out(capture: pd.DataFrame, lyra_home: Path) -> None:
    """A recording of one-minute quote bars (the issue's second kind of real data): a book is
    older than the governor's 10 s stale limit for 49 of every 60 s, so the scripts are refused
    STALE_PRICE most of the time. The old report showed a gap and a stale period per bar and no
    word on why; it now gives each market's quote cadence and one sentence naming the markets,
    the limit and the two ways out. With `risk.stale_price_s` at 60 the same bars are fresh."""
    bars = (capture.assign(minute=capture.timestamp // 60).sort_values("timestamp", kind="stable")
            .groupby(["connector", "trading_pair", "minute"], as_index=False).last())
    bars = bars.assign(timestamp=(bars.minute + 1) * 60.0).drop(columns="minute")  # stamped at the bar's close
    path = _write(bars, lyra_home / "bars.csv")
    settings = _settings(lyra_home)
    feed = importer.load_csv(path, hours=0.15)
    result = run_replay(settings, feed, lyra_home / "out", strategies="market_making")
    summary = report.summarize(result, settings)
    assert {m["refresh_interval_s"] for m in summary["data"]["markets"]} == {60.0}
    note = summary["data"]["sparse_quotes_note"]
    assert note.startswith("Quotes further apart than the governor's stale limit of 10 s: BTC-USDT on "
                           "binance_paper_trade (a new quote every 60 s), ")
    assert "raise `risk.stale_price_s` (at most 120)" in note and "`lyra-governor record`" in note
    markdown = report.markdown(summary)
    assert note in markdown and "| 60 s |" in markdown
    assert result.decisions.get("STALE_PRICE", 0) > 0

    tolerant = settings.model_copy(update={"risk": settings.risk.model_copy(update={"stale_price_s": 60.0})})
    calm = report.summarize(run_replay(tolerant, feed, lyra_home / "out60", strategies="market_making"), tolerant)
    assert calm["data"]["sparse_quotes_note"] == "" and calm["data"]["stale_periods_total"] == 0

    ticks = report.summarize(run_replay(settings, importer.load_csv(_write(capture, lyra_home / "ticks.csv"),
                                                                    hours=0.05), lyra_home / "outt",
                                        strategies="market_making"), settings)
    assert ticks["data"]["sparse_quotes_note"] == ""
    assert all(m["refresh_interval_s"] is not None and m["refresh_interval_s"] < 1.5 for m in ticks["data"]["markets"])


def test_the_whole_recordings_missing_candle_is_named_though_the_close_out_closes_it(
    capture: pd.DataFrame, lyra_home: Path
) -> None:
    """On the whole 899 s the 15th one-minute candle closes only at the close-out tick, after the
    last second any strategy trades: the report counted it and left out why the indicator was
    never known (the candles were taken after the close-out)."""
    path = _write(capture, lyra_home / "capture.csv")
    settings = _settings(lyra_home)
    result = run_replay(settings, importer.load_csv(path), lyra_home / "out", strategies="dynamic_market_making")
    [reason] = [r for r in report.summarize(result, settings)["gate_reasons"] if r.startswith("strategies not tested")]
    assert "never reached the 15 it reads (14 closed in 899 s of data)" in reason, reason
