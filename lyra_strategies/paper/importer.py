"""Import real recordings: a CSV of top-of-book snapshots, one row per market per update.

Columns (header required, any order, others ignored): ``timestamp,connector,trading_pair,
best_bid,best_ask`` and optional ``bid_size``; separated by commas, or by semicolons or tabs as
a spreadsheet saves them (then with decimal commas or points). Timestamps are Unix epoch
times, in seconds (fractional receive times are fine), milliseconds, microseconds or
nanoseconds (the unit is read off their size: 1.6e9 is seconds, 1.6e12 milliseconds, ...), or
ISO-8601 strings (``2022-07-01T00:00:00.250Z``; without an offset, UTC). Rows may come in any
order.

Rows are resampled to one per simulated second: each second shows the last row at or before it
(a row at 12.7 s is first seen at 13 s; of two rows of one market at the same time, the later
in the file), `updated_at` keeps that row's own time, so a gap in the recording shows up as a
stale feed, and before a market's first row it has no book at all. Rows that cannot be a book
(an empty field, a price at or below zero, a bid at or above the ask) are left out and counted
(`Feed.rows_dropped`, in the report); a field that is not a number at all is a damaged file:
a `ConfigError` naming its row. A connector named by its exchange (``binance``, ``Binance``)
is that exchange's paper connector (``binance_paper_trade``); a pair written ``BTC/USDT``,
``btc_usdt`` or ``BTCUSDT`` is Hummingbot's ``BTC-USDT``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from lyra_governor.config import PAPER_SUFFIX
from lyra_governor.errors import ConfigError
from lyra_strategies.paper.feed import Feed, MarketSeries

REQUIRED = ("timestamp", "connector", "trading_pair", "best_bid", "best_ask")
TEXT = ("connector", "trading_pair")  # read as categories: a recording repeats a few names millions of times
GAP_S = 10.0  # a longer silence between two rows of one market is reported as a gap
DEFAULT_SIZE = 0.01  # base volume per book level when the recording has no (or an empty) bid_size
#: Epoch units by size: below 1e11 seconds (year 5138), below 1e14 milliseconds, below 1e17
#: microseconds, else nanoseconds.
EPOCH_UNITS = ((1e11, 1.0, "seconds"), (1e14, 1e3, "milliseconds"), (1e17, 1e6, "microseconds"),
               (float("inf"), 1e9, "nanoseconds"))
#: Quote assets a pair written without a separator (``BTCUSDT``) may end with, longest first.
QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "DAI", "USD", "EUR", "BTC", "ETH")
MAX_HOURS = 168  # the longest run `lyra-governor paper --hours` allows
DROP_EMPTY = "an empty field"
DROP_PRICE = "a price at or below zero"
DROP_CROSSED = "a crossed or locked book (bid at or above ask)"


def paper_connector(name: str) -> str:
    """`binance` (or `Binance`) -> `binance_paper_trade`; a paper connector name is kept."""
    name = name.strip().lower()
    return name if name.endswith(PAPER_SUFFIX) else f"{name}{PAPER_SUFFIX}"


def hummingbot_pair(name: str) -> str:
    """`BTC/USDT`, `btc_usdt`, `BTCUSDT` -> `BTC-USDT` (Hummingbot's spelling)."""
    pair = name.strip().upper().replace("/", "-").replace("_", "-")
    if "-" not in pair:
        for quote in QUOTES:
            if pair.endswith(quote) and len(pair) > len(quote):
                return f"{pair[: -len(quote)]}-{quote}"
    return pair


def _utc(ts: float) -> str:
    return str(pd.Timestamp(ts, unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M:%S UTC"))


def _row(frame: pd.DataFrame, mask: pd.Series) -> tuple[int, object]:
    """(1-based data row, the index label) of the first row where mask holds."""
    label = mask[mask].index[0]
    return int(label) + 1, label


def _numbers(path: Path, frame: pd.DataFrame, column: str) -> pd.Series:
    """The column as floats (an empty or non-finite field NaN); text that is no number is an error."""
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    bad = raw.notna() & values.isna()
    if bad.any():
        row, label = _row(frame, bad)
        raise ConfigError(
            f"{path}: data row {row}: {column} {str(raw[label])!r} is not a number; "
            "correct that row or delete it (an empty field is skipped)"
        )
    return values.astype(np.float64).where(np.isfinite(values.astype(np.float64)))


def _epoch_seconds(path: Path, frame: pd.DataFrame) -> pd.Series:
    """The timestamp column as Unix seconds (NaN where empty): epoch numbers in any unit, or
    ISO-8601 strings."""
    raw = frame["timestamp"]
    values = pd.to_numeric(raw, errors="coerce")
    text = raw.notna() & values.isna()
    if text.any():
        if text.sum() * 2 < raw.notna().sum():  # mostly epoch numbers: the text is the damage
            row, label = _row(frame, text)
            raise ConfigError(f"{path}: data row {row}: timestamp {str(raw[label])!r} is not a time; "
                              "correct that row or delete it")
        if not text[raw.notna()].all():
            row, label = _row(frame, raw.notna() & ~text)
            raise ConfigError(f"{path}: data row {row}: timestamp {str(raw[label])!r} is a number where the others "
                              "are dates; write every timestamp one way (epoch seconds or ISO-8601)")
        parsed = pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601")
        bad = raw.notna() & parsed.isna()
        if bad.any():
            row, label = _row(frame, bad)
            raise ConfigError(f"{path}: data row {row}: timestamp {str(raw[label])!r} is neither an epoch time "
                              "nor an ISO-8601 date (2022-07-01T00:00:00Z); correct that row or delete it")
        return (parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    seconds = values.astype(np.float64)
    seconds = seconds.where(np.isfinite(seconds))  # `inf`, `-inf`: no time, an empty field (not a crash)
    # a row missing another field is left out as empty anyway (a recorder killed mid-line:
    # `16566336` of `1656633600123`): its number decides no unit and is no damage
    whole = frame[[c for c in REQUIRED if c != "timestamp"]].notna().all(axis=1)
    finite = seconds[np.isfinite(seconds) & whole]
    if finite.empty:
        return seconds
    if (finite <= 0).any():
        row, label = _row(frame, np.isfinite(seconds) & whole & (seconds <= 0))
        raise ConfigError(f"{path}: data row {row}: timestamp {str(raw[label])!r} is not a Unix time after 1970; "
                          "correct that row or delete it")
    units = [next(i for i, (below, _, _) in enumerate(EPOCH_UNITS) if v < below) for v in (finite.min(), finite.max())]
    if units[0] != units[1]:
        low, high = (EPOCH_UNITS[u][2] for u in units)
        raise ConfigError(f"{path}: timestamps mix units ({finite.min():.0f} looks like {low}, {finite.max():.0f} "
                          f"like {high}); write them all in one unit")
    return seconds / EPOCH_UNITS[units[0]][1]


def _dialect(path: Path) -> dict[str, str]:
    """How a spreadsheet saved the file: its header's separator (`;` or a tab where a locale's
    decimal mark is the comma: then the comma is the decimal mark too); {} for a plain CSV
    (or a file that cannot be read: `pd.read_csv` says why)."""
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as handle:
            header = handle.readline()
        for sep in (";", "\t"):
            if sep in header and "," not in header:
                # a decimal comma anywhere (not only in the first row: its prices may be whole
                # numbers, `20066;20067`, and a later row's `20066,5` was then "not a number")
                return {"sep": sep, "decimal": ","} if _decimal_comma(path) else {"sep": sep}
    except OSError:
        pass
    return {}


_DECIMAL_COMMA = re.compile(rb"\d,\d")
_SNIFF_BYTES = 1 << 22  # read a spreadsheet's file this much at a time looking for a decimal comma


def _decimal_comma(path: Path) -> bool:
    """Whether the file holds a digit, a comma and a digit (a decimal comma), read in chunks
    until the first one (a file of decimal commas: in its first row). A chunk without any comma
    (a file of decimal points: all of them) is passed over at memchr speed (157 MB: ~0.1 s)."""
    tail = b""
    with path.open("rb") as handle:
        while chunk := handle.read(_SNIFF_BYTES):
            if b"," in chunk and _DECIMAL_COMMA.search(tail + chunk):
                return True
            tail = chunk[-2:]
    return False


def _spelled(column: pd.Series, spelling: Callable[[str], str]) -> tuple[list[str], np.ndarray]:
    """A name column in Hummingbot's spelling: (the distinct names, sorted; per row the index
    of its name, -1 where empty). Read as categories, each distinct name is spelled once, not
    each of a recording's millions of rows, and no row holds a string of its own."""
    column = column if isinstance(column.dtype, pd.CategoricalDtype) else column.astype("category")
    spelled = [spelling(str(name)) if str(name).strip() else None for name in column.cat.categories]
    names = sorted({name for name in spelled if name is not None})
    recode = np.array([names.index(name) if name is not None else -1 for name in spelled] + [-1], dtype=np.int64)
    return names, recode[column.cat.codes.to_numpy()]  # code -1 (an empty field) -> the last entry, -1


def load_csv(path: Path, hours: float | None = None) -> Feed:
    try:
        frame = pd.read_csv(path, encoding="utf-8-sig", skipinitialspace=True, **_dialect(path),
                            dtype={c: "category" for c in TEXT})
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such recording; record one with `lyra-governor record`") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a folder, not a recording; pass the CSV file itself") from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ConfigError(f"{path}: not a readable CSV ({exc}); expected a header line "
                          f"{','.join(REQUIRED)} and one row per quote") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ConfigError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(REQUIRED)}")
    read = len(frame)
    stamps = _epoch_seconds(path, frame)
    bid, ask = _numbers(path, frame, "best_bid"), _numbers(path, frame, "best_ask")
    size = _numbers(path, frame, "bid_size").fillna(DEFAULT_SIZE) if "bid_size" in frame else None
    connectors, connector = _spelled(frame.connector, paper_connector)
    pairs, pair = _spelled(frame.trading_pair, hummingbot_pair)
    del frame  # the columns needed are out: a recording of millions of rows is not held twice
    empty = (stamps.isna() | bid.isna() | ask.isna()).to_numpy(dtype=bool) | (connector < 0) | (pair < 0)
    price = ~empty & ((bid <= 0) | (ask <= 0)).to_numpy(dtype=bool)
    crossed = ~empty & ~price & (bid >= ask).to_numpy(dtype=bool)
    keep = ~(empty | price | crossed)
    dropped = {DROP_EMPTY: int(empty.sum()), DROP_PRICE: int(price.sum()), DROP_CROSSED: int(crossed.sum())}
    if not keep.any():
        why = "; ".join(f"{n} with {reason}" for reason, n in dropped.items() if n) or "the file has no rows"
        raise ConfigError(f"{path}: no usable rows ({why}); each row needs a timestamp, a connector, a trading "
                          "pair and a positive bid below its ask")
    timestamp = stamps.to_numpy(dtype=np.float64)[keep]
    best_bid, best_ask = bid.to_numpy(dtype=np.float64)[keep], ask.to_numpy(dtype=np.float64)[keep]
    bid_size = size.to_numpy(dtype=np.float64)[keep] if size is not None else np.full(timestamp.size, DEFAULT_SIZE)
    del stamps, bid, ask, size
    market = connector[keep] * len(pairs) + pair[keep]  # (connector, pair) in sorted order
    start = float(np.ceil(timestamp.min()))  # the first whole second with a quote behind it
    end = float(np.floor(timestamp.max()))
    seconds = max(1, int(end - start) + 1)
    if hours is None and seconds > MAX_HOURS * 3600:
        rows = np.flatnonzero(keep) + 1  # the data row of each kept row
        first, last = rows[int(timestamp.argmin())], rows[int(timestamp.argmax())]
        raise ConfigError(
            f"{path}: the rows span {seconds / 3600:,.1f} h ({_utc(start)} to {_utc(end)}), more than the "
            f"{MAX_HOURS} h one run replays; a timestamp far from the others is damage (data rows {first} and "
            f"{last} hold the first and the last: correct or delete it), else replay the start with --hours"
        )
    if hours is not None:
        seconds = min(seconds, max(1, int(hours * 3600)))
    grid = start + np.arange(seconds, dtype=np.float64)
    feed = Feed(start=start, seconds=seconds, source=str(path),
                rows_dropped={"rows_read": read, **{k: v for k, v in dropped.items() if v}})
    order = np.lexsort((timestamp, market))  # by market, then time; stable: at one time, file order
    bounds = np.flatnonzero(np.diff(market[order])) + 1
    for rows in np.split(order, bounds):
        code = int(market[rows[0]])
        connector_name, pair_name = connectors[code // len(pairs)], pairs[code % len(pairs)]
        times = timestamp[rows]
        idx = np.searchsorted(times, grid, side="right") - 1  # the last row at or before each second
        before = idx < 0  # no row yet: no book (no look-ahead)
        idx = rows[np.clip(idx, 0, len(rows) - 1)]
        bids = best_bid[idx]
        asks = best_ask[idx]
        mid = (bids + asks) / 2
        depth = bid_size[idx]
        updated = timestamp[idx]
        mid[before] = np.nan
        updated[before] = np.nan
        bids[before], asks[before] = np.nan, np.nan
        feed.markets.append(MarketSeries(connector_name, pair_name, mid, (asks - bids) / mid * 1e4,
                                         np.clip(depth, 1e-6, None), updated, bids, asks))
        inside = times[(times >= start) & (times <= grid[-1])]
        silent = np.diff(inside)
        for at, length in zip(inside[:-1][silent > GAP_S], silent[silent > GAP_S], strict=True):
            feed.gaps.append({"connector": connector_name, "trading_pair": pair_name, "at": float(at),
                              "seconds": round(float(length), 3)})
        if inside.size and grid[-1] - inside[-1] > GAP_S:
            # a silence to the run's end, counted to it (a report's gap time stays within the run):
            # the market's recording ends there, or the run's end (--hours) cuts a gap like the others
            gap: dict[str, object] = {"connector": connector_name, "trading_pair": pair_name,
                                      "at": float(inside[-1]), "seconds": round(float(grid[-1] - inside[-1]), 3)}
            if int(np.searchsorted(times, grid[-1], side="right")) == times.size:  # no row after the run's end
                gap["to_end"] = True
            feed.gaps.append(gap)
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
