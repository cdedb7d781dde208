"""The paper run on recordings these tests build themselves, shaped like real captures:
fractional receive times, plain exchange names, 2022 prices, a market that starts late, a
gap, a market missing. (The project's generator hides every one of these.)"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import subprocess
import sys
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from lyra_governor.config import Settings, load_settings
from lyra_governor.store import audit_log, create_store_engine, fills
from lyra_strategies.paper import importer, replay, report
from lyra_strategies.paper.replay import SCRIPTS, ReplayResult, run_replay

T0 = 1_656_633_600.0  # 2022-07-01 00:00:00 UTC: BTC near 20,000, ETH near 1,070
SECONDS = 900
ETH_STARTS = 120.4  # the okx ETH recording starts two minutes late
GAP = (600.0, 660.0)  # binance BTC sends nothing for a minute


ALL_MARKETS = ("binance BTC", "okx BTC", "okx ETH")


def build_recording(path: Path, markets: tuple[str, ...] = ALL_MARKETS, seed: int = 5) -> None:
    """Top-of-book rows at irregular fractional times (about 1.4 per second per market)."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[float, str, str, float, float, float]] = []
    n = int(SECONDS * 1.4)
    btc = 20_000 * np.exp(np.cumsum(rng.normal(0, 4e-4, n)))
    basis = np.zeros(n)
    basis[int(n * 0.3) : int(n * 0.36)] = 0.004  # okx dear for a while: arbitrage
    for name in markets:
        exchange, base = name.split()
        times = np.sort(T0 + rng.uniform(0, SECONDS, n))
        if base == "ETH":
            times = times[times >= T0 + ETH_STARTS]
        if exchange == "binance":
            times = times[(times < T0 + GAP[0]) | (times >= T0 + GAP[1])]
        for k, ts in enumerate(times):
            j = min(n - 1, int((ts - T0) / SECONDS * n))
            mid = btc[j] * (1 + (basis[j] if exchange == "okx" else 0.0))
            if base == "ETH":
                mid = mid * 0.0535
            half = round(mid * 1e-4, 2) or 0.01
            mid = round(mid, 2)
            rows.append((round(float(ts), 6), exchange, f"{base}-USDT", mid - half, mid + half, 0.05 + k % 3 * 0.01))
    frame = pd.DataFrame(rows, columns=["timestamp", "connector", "trading_pair", "best_bid", "best_ask", "bid_size"])
    frame.sample(frac=1.0, random_state=seed).to_csv(path, index=False)  # row order must not matter


TINY = 1e-9  # `build_tiny_recording`'s scale: BTC near 20,000 priced near 0.00002


def build_tiny_recording(folder: Path) -> tuple[Path, Settings]:
    """`build_recording`'s capture (folder/capture.csv) priced `TINY` times lower, its sizes as
    many times higher (folder/tiny.csv), and settings on a store in `folder` whose per-order
    amount caps allow that many coins. A SHIB-like market, for the tests of tiny prices."""
    build_recording(folder / "capture.csv")
    capture = pd.read_csv(folder / "capture.csv")
    tiny = capture.assign(best_bid=capture.best_bid * TINY, best_ask=capture.best_ask * TINY,
                          bid_size=capture.bid_size / TINY)
    tiny.to_csv(folder / "tiny.csv", index=False)
    settings = load_settings(None, use_env=False, db_url=f"sqlite:///{folder / 'lyra.db'}", data_dir=str(folder),
                             breakers={"max_order_amount": {"BTC": 1e12, "ETH": 1e12}})
    return folder / "tiny.csv", settings


def expected_mids(path: Path, connector: str, pair: str, grid: np.ndarray) -> list[float]:
    """Per second: the mid of the last row at or before it (NaN before the first row)."""
    frame = pd.read_csv(path)
    rows = frame[(frame.connector == connector) & (frame.trading_pair == pair)].sort_values("timestamp")
    idx = np.searchsorted(rows.timestamp.to_numpy(), grid, side="right") - 1
    mids = ((rows.best_bid + rows.best_ask) / 2).to_numpy()
    return [float(mids[i]) if i >= 0 else math.nan for i in idx]


def _settings(home: Path) -> Settings:
    return load_settings(None, use_env=False, db_url=f"sqlite:///{home / 'lyra.db'}", data_dir=str(home))


class Seen:
    """What the strategies see each simulated second, and how many quotes rest per level."""

    def __init__(self) -> None:
        self.mm: list[float] = []
        self.eth: list[float] = []
        self.resting_per_level = 0
        self.store_budgets: set[int] = set()
        self.stores: set[int] = set()  # id() of each governor's OrderStore (the run keeps them all alive)
        self.books: list[Any] = []  # every distinct book object market making read (held: no id reuse)

    def __call__(self, _i: int, _t: float, strategies: dict[str, Any]) -> None:
        mm, rebalancer = strategies["market_making"], strategies["rebalancer"]
        self.store_budgets |= {int(s.lyra.settings.store.budget_ms) for s in strategies.values()}
        self.store_budgets |= {int(s.lyra.store.budget_ms) for s in strategies.values()}
        self.stores |= {id(s.lyra.store) for s in strategies.values()}
        self.mm.append(float(mm._mid("binance_paper_trade", "BTC-USDT")))
        self.eth.append(float(rebalancer._mid("okx_paper_trade", "ETH-USDT")))
        books = mm.connectors["binance_paper_trade"].order_books
        book = books.get("BTC-USDT")
        if book is not None and not any(book is b for b in self.books):
            self.books.append(book)
        resting = {o.client_order_id for o in mm.connectors["binance_paper_trade"].limit_orders}
        quotes: dict[str, int] = {}  # level -> entry orders resting on the exchange
        for executors in mm.executor_orchestrator.active_executors.values():
            for executor in executors:
                entry = getattr(executor, "_open_order", None)
                if entry is not None and entry.order_id in resting:
                    quotes[executor.config.level_id] = quotes.get(executor.config.level_id, 0) + 1
        self.resting_per_level = max(self.resting_per_level, *quotes.values(), 0)


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ReplayResult, Seen, dict[str, Any]]:
    home = tmp_path_factory.mktemp("recording")
    path = home / "capture.csv"
    build_recording(path)
    feed = importer.load_csv(path)
    seen = Seen()
    settings = _settings(home)
    result = run_replay(settings, feed, home / "out", on_tick=seen)
    return path, result, seen, report.summarize(result, settings)


def test_fractional_timestamps_replay_a_moving_book(replayed: tuple[Path, ReplayResult, Seen, dict[str, Any]]) -> None:
    path, result, seen, _ = replayed
    grid = result.feed.start + np.arange(result.ticks_run)
    expected = expected_mids(path, "binance", "BTC-USDT", grid)
    # each simulated second sees the last quote at or before it, so the strategies see exactly
    # the recording's distinct per-second quotes (the old replay froze on the first row)
    assert [round(m, 4) for m in seen.mm] == [round(m, 4) for m in expected]
    assert len({round(m, 4) for m in seen.mm}) == len({round(m, 4) for m in expected}) > 300


def test_a_book_is_refilled_not_rebuilt_each_second(replayed: tuple[Path, ReplayResult, Seen, dict[str, Any]]) -> None:
    """Hundreds of distinct quotes go through two book objects: the account's own first book,
    then the one every account on binance shares, refilled in place when its quote changes (a
    new CompositeOrderBook and 80 rows each second were a tenth of a replay)."""
    _, _, seen, _ = replayed
    assert len({round(m, 4) for m in seen.mm if not math.isnan(m)}) > 300
    assert 1 <= len(seen.books) <= 2


def test_a_late_market_has_no_book_before_its_first_row(
    replayed: tuple[Path, ReplayResult, Seen, dict[str, Any]],
) -> None:
    path, result, seen, _ = replayed
    grid = result.feed.start + np.arange(result.ticks_run)
    expected = expected_mids(path, "okx", "ETH-USDT", grid)
    first = next(i for i, m in enumerate(expected) if not math.isnan(m))
    assert first >= ETH_STARTS - 1
    assert all(math.isnan(m) for m in seen.eth[:first]) and not math.isnan(seen.eth[first])
    assert [round(m, 4) for m in seen.eth[first:]] == [round(m, 4) for m in expected[first:]]
    engine = create_store_engine(f"sqlite:///{result.db_path}")
    with engine.connect() as conn:
        records = conn.execute(sa.select(audit_log.c.ts_us, audit_log.c.payload).where(audit_log.c.event == "decision"))
        decisions = [(ts / 1e6, json.loads(p)) for ts, p in records]
    engine.dispose()
    eth = [(ts, d) for ts, d in decisions if d["pair"] == "ETH-USDT"]
    assert eth and min(ts for ts, _ in eth) >= grid[first]
    assert not any(re.search(r"-\d+(\.\d+)? s old", d["message"]) for _, d in decisions)


def test_the_whole_recording_is_replayed_at_its_own_prices(
    replayed: tuple[Path, ReplayResult, Seen, dict[str, Any]],
) -> None:
    path, result, _, summary = replayed
    frame = pd.read_csv(path)
    assert result.ticks_run == int(math.floor(frame.timestamp.max()) - math.ceil(frame.timestamp.min())) + 1
    assert {m.connector for m in result.feed.markets} == {"binance_paper_trade", "okx_paper_trade"}
    assert not result.unmatched
    # $1,000 at 2022 prices, not a 2026 coin count worth half of it
    assert abs(result.start_equity_usd - 1000.0) < 0.05
    assert summary["data"]["source"] == str(path)
    assert summary["data"]["gaps_total"] >= 1 and summary["data"]["stale_periods_total"] >= 1
    gap = summary["data"]["gaps"][0]
    assert gap["connector"] == "binance_paper_trade" and gap["seconds"] >= GAP[1] - GAP[0]


def test_fills_pay_each_exchanges_fee_in_exact_decimals(
    replayed: tuple[Path, ReplayResult, Seen, dict[str, Any]],
) -> None:
    _, result, _, summary = replayed
    engine = create_store_engine(f"sqlite:///{result.db_path}")
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(fills)).all()]
    engine.dispose()
    assert rows
    rates = {"binance": {Decimal("0.001")}, "okx": {Decimal("0.0008"), Decimal("0.001")}}
    for row in rows:
        assert len(Decimal(row["amount"]).as_tuple().digits) <= 17, row["amount"]
        assert len(Decimal(row["price"]).as_tuple().digits) <= 17, row["price"]
        rate = Decimal(row["fee_musd"]) / Decimal(row["notional_musd"])
        assert any(abs(rate - r) < Decimal("0.00002") for r in rates[row["exchange"]]), (row, rate)
    assert summary["pnl"]["fees_usd"] > 0
    pnl = summary["pnl"]
    assert abs(pnl["market_move_usd"] + pnl["trading_pnl_usd"] - pnl["total_usd"]) < 0.01


def test_no_wall_clock_store_budget_in_a_simulated_run(
    replayed: tuple[Path, ReplayResult, Seen, dict[str, Any]],
) -> None:
    """A store call cut short after 200 ms of wall time (a loaded machine, the WAL checkpointer)
    raised STORE_BUSY out of a script's tick and Hummingbot skipped the tick: the run depended
    on the machine. Every governor of the replay has the longest budget the config allows."""
    _, _, seen, _ = replayed
    assert seen.store_budgets == {replay.PAPER_STORE_BUDGET_MS}


def test_the_governors_of_a_run_share_one_writer(replayed: tuple[Path, ReplayResult, Seen, dict[str, Any]]) -> None:
    """One OrderStore (one SQLite connection) for every governor of the run: with a connection
    each, SQLite emptied a connection's page cache after every other governor's commit, and
    the store's read cache (`OrderStore._cached`) was read again after each other's heartbeat."""
    _, _, seen, _ = replayed
    assert len(seen.stores) == 1


def test_one_quote_per_level(replayed: tuple[Path, ReplayResult, Seen, dict[str, Any]]) -> None:
    _, _, seen, summary = replayed
    assert summary["per_script"]["market_making"]["orders_approved"] > 5  # refreshed quotes
    assert seen.resting_per_level == 1  # the old script rested two quotes on a level for up to a minute


def test_the_report_stands_on_its_own(replayed: tuple[Path, ReplayResult, Seen, dict[str, Any]]) -> None:
    _, result, _, summary = replayed
    files = report.write_report(summary, result, result.out_dir)
    names = {f.name for f in files}
    assert {"summary.json", "run.json", "summary.md", "report.html", "equity.png", "exposure.png"} <= names
    md = (result.out_dir / "summary.md").read_text()
    for needle in ("Phase-3 criteria", "success rate > 95 %", "every limit respected", "arbitrage detection",
                   "AI consensus", "market move", "trading PnL", "Per script", "Per exchange", "Stale periods",
                   "Circuit breakers tripped"):
        assert needle in md, needle
    page = (result.out_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "<table>" in page
    assert "Circuit breakers tripped" in page and isinstance(summary["breaker_trips"], dict)
    for role in ("market_making", "arbitrage", "rebalancer"):
        row = summary["per_script"][role]
        for key in ("fill_rate", "turnover_usd", "fees_usd", "max_drawdown_usd", "sharpe", "sortino", "win_rate"):
            assert key in row


class _Page(HTMLParser):
    """What a self-contained page must be checked for: its images, every outside reference,
    its tables' first cells."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.outside: list[str] = []
        self.first_cells: list[str] = []
        self._row_start = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "img":
            self.images.append(found.get("src") or "")
        for name in ("src", "href"):
            value = found.get(name) or ""
            if value and not value.startswith(("data:", "#")) and not (tag == "img" and name == "src"):
                self.outside.append(f"{tag} {name}={value[:80]}")
        if tag == "link" or (tag == "script" and found.get("src")):
            self.outside.append(tag)
        if tag == "tr":
            self._row_start = True
        elif tag in ("td", "th") and self._row_start:
            self._cell, self._row_start = [], False

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.first_cells.append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_report_html_is_self_contained_and_renders(
    replayed: tuple[Path, ReplayResult, Seen, dict[str, Any]], tmp_path: Path
) -> None:
    """report.html alone carries the run: both plots embedded as PNG data, nothing fetched from
    outside, the criteria table and one line per script for all eight (and, where a headless
    Chromium is installed, it renders to a non-empty picture)."""
    _, result, _, summary = replayed
    report.write_report(summary, result, result.out_dir)
    html = result.out_dir / "report.html"
    page = _Page()
    page.feed(html.read_text())
    assert page.outside == []
    assert len(page.images) == 2
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    criteria = [c["criterion"] for c in summary["criteria"]]
    assert "all trading strategies tested" in criteria and "success rate > 95 %" in criteria
    for needed in [*criteria, *SCRIPTS]:
        assert needed in page.first_cells, needed
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return  # no headless browser on this machine: the parse above is the check
    shot = tmp_path / "report.png"
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,3000",
         f"--screenshot={shot}", html.as_uri()],
        capture_output=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", done.stderr[-500:]
    assert shot.stat().st_size > 50_000  # a blank page of that size compresses to a few kB


def test_markets_without_data_are_named(lyra_home: Path) -> None:
    path = lyra_home / "binance_only.csv"
    build_recording(path, markets=("binance BTC",))
    settings = _settings(lyra_home)
    result = run_replay(settings, importer.load_csv(path, hours=0.05), lyra_home / "out")
    missing = {(m["script"], m["connector"], m["trading_pair"]) for m in result.unmatched}
    assert missing == {
        ("arbitrage", "okx_paper_trade", "BTC-USDT"),
        ("rebalancer", "okx_paper_trade", "BTC-USDT"),
        ("rebalancer", "okx_paper_trade", "ETH-USDT"),
        ("xemm", "okx_paper_trade", "BTC-USDT"),
    }
    note = result.unmatched_note
    assert note.count(".") == 1 and "arbitrage" in note and "rebalancer" in note and "ETH-USDT" in note
    summary = report.summarize(result, settings)
    assert not summary["gate_passed"] and note in summary["gate_reasons"]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lyra-governor")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LYRA_", "OPENROUTER", "PYTHONHASHSEED"))}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600, check=False)


@pytest.mark.timeout(600)
def test_two_runs_of_one_command_give_identical_summaries(lyra_home: Path) -> None:
    build_recording(lyra_home / "capture.csv")
    outputs = []
    for _ in range(2):
        done = run_cli("paper", "--data", "capture.csv", "--out", "rep", cwd=lyra_home)
        assert "Traceback" not in done.stderr, done.stderr[-2000:]
        outputs.append((lyra_home / "rep" / "summary.json").read_text())
    assert re.search(r"replaying 0\.24\d* simulated h of capture\.csv \(2022-07-01 00:00:0\d UTC", done.stderr)
    assert outputs[0] == outputs[1]
    summary = json.loads(outputs[0])
    assert 0.24 < summary["simulated_hours"] <= 0.25 and summary["fills"] > 0  # the whole recording
