"""Latency and throughput of Governor.review (checks + reservation + audit, committed).

Baseline, measured in the same run on the same kind of file: one bare SQLite INSERT + COMMIT
in WAL mode with synchronous=NORMAL (the least any durable decision can cost). The ratio
p99(review) / p99(baseline) is what to compare across machines; the absolute figures are
printed too. With --pg-url (or LYRA_BENCH_PG_URL) the same review loop runs on PostgreSQL.

Usage: python bench/governor_review.py [--quick] [--n N] [--pg-url URL]
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lyra_governor.config import load_settings
from lyra_governor.governor import Governor
from lyra_governor.models import OrderEvent, OrderEventKind, OrderProposal, Side
from tests.standing_mandate import StandingMandate
from tests.watched import UNTHROTTLED, watch


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_baseline(path: Path, n: int) -> list[float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT)")
    out = []
    for i in range(n):
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (payload) VALUES (?)", (f"decision {i}",))
        conn.execute("COMMIT")
        out.append(time.perf_counter() - start)
    conn.close()
    return out


def bench_review(db_url: str, n: int) -> tuple[list[float], float]:
    # every check on, the throttles at the highest rates the settings accept
    settings = load_settings(None, use_env=False, db_url=db_url, **UNTHROTTLED)
    gov = Governor.from_settings(settings, "bench", mandates=StandingMandate())
    gov.ledger.set_phase(3, "bench", "benchmark")
    out: list[float] = []
    started = time.perf_counter()
    for i in range(n):
        watch(gov, "binance_paper_trade", "BTC-USDT", Decimal(60005))  # the strategy's tick (untimed)
        proposal = OrderProposal(
            bot_id="bench",
            connector="binance_paper_trade",
            trading_pair="BTC-USDT",
            side=Side.BUY if i % 2 else Side.SELL,
            amount=Decimal("0.0001"),
            price=Decimal(60000),
            mid_price=Decimal(60005),
            mid_price_ts=time.time(),
        )
        t0 = time.perf_counter()
        decision = gov.review(proposal)
        out.append(time.perf_counter() - t0)
        if not decision.allowed:
            raise SystemExit(f"bench proposal was refused: {decision.code} {decision.message}")
        # release it again (not timed) so the cap never fills
        gov.on_order_event(OrderEvent(kind=OrderEventKind.CANCELLED, reservation_id=decision.reservation_id or ""))
        if i % 500 == 499:
            gov.store.checkpoint()  # what the bot's heartbeat does every few seconds (untimed here)
    wall = time.perf_counter() - started
    gov.close()
    return out, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (under 60 s)")
    parser.add_argument("--n", type=int, default=0, help="decisions to time")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("LYRA_BENCH_PG_URL", ""),
        help="also run on this PostgreSQL URL (postgresql+psycopg://...)",
    )
    args = parser.parse_args()
    n = args.n or (3000 if args.quick else 20000)
    with tempfile.TemporaryDirectory() as tmp:
        base = bench_baseline(Path(tmp) / "baseline.db", n)
        reviews, wall = bench_review(f"sqlite:///{Path(tmp) / 'lyra.db'}", n)
    figures = {
        "n": n,
        "p50_us": round(statistics.median(reviews) * 1e6, 1),
        "p99_us": round(percentile(reviews, 0.99) * 1e6, 1),
        # throughput of review alone (the loop also releases each reservation, untimed)
        "decisions_per_s": round(n / sum(reviews), 1),
        "loop_wall_s": round(wall, 3),
        "baseline_p50_us": round(statistics.median(base) * 1e6, 1),
        "baseline_p99_us": round(percentile(base, 0.99) * 1e6, 1),
    }
    figures["ratio_p99"] = round(figures["p99_us"] / figures["baseline_p99_us"], 2)
    figures["ratio_p50"] = round(figures["p50_us"] / figures["baseline_p50_us"], 2)
    print(
        f"SQLite review: p50 {figures['p50_us']} us, p99 {figures['p99_us']} us, "
        f"{figures['decisions_per_s']} decisions/s over {n} decisions"
    )
    print(
        f"SQLite bare insert+commit baseline: p50 {figures['baseline_p50_us']} us, "
        f"p99 {figures['baseline_p99_us']} us; ratio p99 {figures['ratio_p99']}x, p50 {figures['ratio_p50']}x"
    )
    if args.pg_url:
        pg_reviews, _ = bench_review(args.pg_url, max(500, n // 4))
        figures["pg_p50_us"] = round(statistics.median(pg_reviews) * 1e6, 1)
        figures["pg_p99_us"] = round(percentile(pg_reviews, 0.99) * 1e6, 1)
        figures["pg_decisions_per_s"] = round(len(pg_reviews) / sum(pg_reviews), 1)
        print(
            f"PostgreSQL review: p50 {figures['pg_p50_us']} us, p99 {figures['pg_p99_us']} us, "
            f"{figures['pg_decisions_per_s']} decisions/s"
        )
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
