"""Latency and throughput of Governor.review (checks + reservation + audit, committed).

Two baselines, measured in the same run on the same kind of file:
- the same review loop on an older commit (`--against`, default bc56119, the store before the
  one-writer refactor of issue 15), run in alternating rounds with this tree's loop (each round
  a fresh process and store), so that the load of a shared machine falls on both alike;
  `vs_*` is this tree's figure over the older one's (p99 and throughput within 10 % is the goal);
- one bare SQLite INSERT + COMMIT in WAL mode with synchronous=NORMAL (the least any durable
  decision can cost): p99(review) / p99(baseline) is what to compare across machines.
Each review's CPU time (`time.thread_time`) is printed beside its wall time: on a shared
machine the wall p99 is mostly the core being taken away, the CPU p99 what the review costs.
With --pg-url (or LYRA_BENCH_PG_URL) the same review loop also runs on PostgreSQL.

The council is stood in for by a mandate per market held for its 15 minutes, as the council's
provider holds one for many orders (`consensus.mandates`: a lookup and `Mandate.covers`). Both
trees use it. `--fresh-mandate` builds a new mandate inside every review instead (the test
fixture `StandingMandate` as it is, a pydantic model and an id each time: about 15-20 us of
each review that is the fixture's, not the governor's); figures before 2026-12-02 were so.

Usage: python bench/governor_review.py [--quick] [--n N] [--against REV] [--pg-url URL] [--fresh-mandate]
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BASE_REV = "bc56119"  # the store before the one-writer refactor (issue 15)


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


@contextlib.contextmanager
def counted_governor() -> Iterator[Any]:
    """The governor the callgrind benches count (review_instructions, event_instructions), of
    the tree first on sys.path: a fresh SQLite store in a temporary folder, phase 3, throttles
    off, one held standing mandate per market; closed on the way out."""
    from lyra_governor.config import load_settings
    from lyra_governor.governor import Governor
    from tests.standing_mandate import StandingMandate
    from tests.watched import UNTHROTTLED

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(None, use_env=False, db_url=f"sqlite:///{Path(tmp) / 'lyra.db'}", **UNTHROTTLED)
        gov = Governor.from_settings(settings, "bench", mandates=held_mandates(StandingMandate)())
        gov.ledger.set_phase(3, "bench", "benchmark")
        try:
            yield gov
        finally:
            gov.close()


def observed_proposal(gov: Any, i: int) -> Any:
    """The counted benches' i-th order: the market observed at its last two instants (a fresh
    book and a reference), then a 0.0001 BTC limit order at 60,000 against a mid of 60,005,
    buying and selling in turn."""
    from lyra_governor.models import MarketSnapshot, OrderProposal, Side

    now = time.time()
    for t in (now - 10, now):
        gov.observe_market(MarketSnapshot(connector="binance_paper_trade", trading_pair="BTC-USDT", timestamp=t,
                                          mid_price=Decimal(60005)))  # fmt: skip
    return OrderProposal(
        bot_id="bench", connector="binance_paper_trade", trading_pair="BTC-USDT",
        side=Side.BUY if i % 2 else Side.SELL, amount=Decimal("0.0001"), price=Decimal(60000),
        mid_price=Decimal(60005), mid_price_ts=time.time(),
    )  # fmt: skip


def held_mandates(standing: type) -> type:
    """`standing` (the tree's `StandingMandate`) holding one mandate per market until a minute
    before it expires, each use checked with `Mandate.covers` as the council's provider does."""

    class Held(standing):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.held: dict[tuple[str, str], Any] = {}

        def find(self, proposal: Any, notional_usd: Decimal, now: float) -> Any:
            key = (proposal.connector, proposal.trading_pair)
            mandate = self.held.get(key)
            if mandate is None or mandate.expires_at - now < 60:
                mandate = self.held[key] = super().find(proposal, notional_usd, now)
            return mandate if mandate is not None and mandate.covers(proposal, notional_usd, now) else None

    return Held


def bench_review(db_url: str, n: int, fresh_mandate: bool = False) -> tuple[list[float], float, list[float]]:
    """The review loop of the tree first on sys.path (this one, or an older commit's): each
    review's wall time, the loop's wall time, and each review's CPU time (this thread's: what
    the review costs when the machine's load does not take the core away)."""
    from lyra_governor.config import load_settings
    from lyra_governor.governor import Governor
    from lyra_governor.models import MarketSnapshot, OrderEvent, OrderEventKind, OrderProposal, Side
    from tests.standing_mandate import StandingMandate

    try:  # every check on, the throttles at the highest rates the settings accept
        from tests.watched import UNTHROTTLED as overrides
    except ImportError:  # an older tree: its settings took any rate
        overrides = {"risk": {"order_rate_max": 10**9, "max_open_orders": 10**9}}
    settings = load_settings(None, use_env=False, db_url=db_url, **overrides)
    provider = StandingMandate() if fresh_mandate else held_mandates(StandingMandate)()
    gov = Governor.from_settings(settings, "bench", mandates=provider)
    gov.ledger.set_phase(3, "bench", "benchmark")
    store = getattr(gov, "store", None) or gov.hot  # type: ignore[attr-defined]  # older trees: `hot`
    out: list[float] = []
    cpu: list[float] = []
    started = time.perf_counter()
    for i in range(n):
        now = time.time()  # the strategy's tick (untimed): the market watched for 10 s
        for t in (now - 10, now):
            snap = MarketSnapshot(connector="binance_paper_trade", trading_pair="BTC-USDT", timestamp=t,
                                  mid_price=Decimal(60005))  # fmt: skip
            gov.observe_market(snap)
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
        t0, c0 = time.perf_counter(), time.thread_time()
        decision = gov.review(proposal)
        out.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
        if not decision.allowed:
            raise SystemExit(f"bench proposal was refused: {decision.code} {decision.message}")
        # release it again (not timed) so the cap never fills
        gov.on_order_event(OrderEvent(kind=OrderEventKind.CANCELLED, reservation_id=decision.reservation_id or ""))
        if i % 500 == 499:
            store.checkpoint()  # what the bot's heartbeat does every few seconds (untimed here)
    wall = time.perf_counter() - started
    gov.close()
    return out, wall, cpu


def worker(tree: Path, n: int, fresh_mandate: bool = False) -> int:
    """One round in this process: `tree`'s review loop on a fresh store; prints the samples."""
    sys.path.insert(0, str(tree))
    with tempfile.TemporaryDirectory() as tmp:
        reviews, wall, cpu = bench_review(f"sqlite:///{Path(tmp) / 'lyra.db'}", n, fresh_mandate)
    print(json.dumps({"us": [round(r * 1e6, 2) for r in reviews], "cpu_us": [round(c * 1e6, 2) for c in cpu],
                      "wall": wall}))  # fmt: skip
    return 0


def rounds(
    trees: dict[str, Path], n: int, count: int, fresh_mandate: bool = False
) -> dict[str, tuple[list[float], list[float]]]:
    """`count` alternating rounds of n / count decisions per tree, each in a fresh process:
    per tree, the reviews' wall times and CPU times."""
    samples: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in trees}
    per_round = max(100, n // count)
    for i in range(count):
        order = list(trees.items()) if i % 2 == 0 else list(reversed(trees.items()))
        for name, tree in order:
            env = {**os.environ, "PYTHONPATH": str(tree)}
            fresh = ["--fresh-mandate"] if fresh_mandate else []
            done = subprocess.run(
                [sys.executable, __file__, "--worker", str(tree), "--n", str(per_round), *fresh],
                env=env, cwd=tree, capture_output=True, text=True, check=True,
            )  # fmt: skip
            found = json.loads(done.stdout.strip().splitlines()[-1])
            samples[name][0].extend(us / 1e6 for us in found["us"])
            samples[name][1].extend(us / 1e6 for us in found["cpu_us"])
    return samples


def summary(reviews: list[float], cpu: list[float] | None = None) -> dict[str, float]:
    figures = {
        "p50_us": round(statistics.median(reviews) * 1e6, 1),
        "p99_us": round(percentile(reviews, 0.99) * 1e6, 1),
        # throughput of review alone (the loop also releases each reservation, untimed)
        "decisions_per_s": round(len(reviews) / sum(reviews), 1),
    }
    if cpu:
        figures["cpu_p50_us"] = round(statistics.median(cpu) * 1e6, 1)
        figures["cpu_p99_us"] = round(percentile(cpu, 0.99) * 1e6, 1)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (under 60 s)")
    parser.add_argument("--n", type=int, default=0, help="decisions to time")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("LYRA_BENCH_PG_URL", ""),
        help="also run on this PostgreSQL URL (postgresql+psycopg://...)",
    )
    parser.add_argument("--against", default=BASE_REV, help="the older commit measured alongside ('' for none)")
    parser.add_argument("--fresh-mandate", action="store_true", help="a new mandate in every review (the old basis)")
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = args.n or (3000 if args.quick else 20000)
    if args.worker:
        return worker(Path(args.worker), n, args.fresh_mandate)
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this": ROOT}
        if args.against:
            old = Path(tmp) / "against"
            old.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.against], capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
            trees["against"] = old
        measured = rounds(trees, n, 4 if args.quick else 8, args.fresh_mandate)
        base = bench_baseline(Path(tmp) / "baseline.db", n)
    this = summary(*measured["this"])
    figures: dict[str, float] = {"n": len(measured["this"][0]), **this}
    figures["baseline_p50_us"] = round(statistics.median(base) * 1e6, 1)
    figures["baseline_p99_us"] = round(percentile(base, 0.99) * 1e6, 1)
    figures["ratio_p99"] = round(this["p99_us"] / figures["baseline_p99_us"], 2)
    figures["ratio_p50"] = round(this["p50_us"] / figures["baseline_p50_us"], 2)
    print(
        f"SQLite review: p50 {this['p50_us']} us, p99 {this['p99_us']} us, "
        f"{this['decisions_per_s']} decisions/s over {len(measured['this'][0])} decisions; CPU time of the "
        f"same reviews (the core taken away excluded): p50 {this['cpu_p50_us']} us, p99 {this['cpu_p99_us']} us"
    )
    if "against" in measured:
        then = summary(*measured["against"])
        figures.update({f"against_{key}": value for key, value in then.items()})
        figures["vs_against_p50"] = round(this["p50_us"] / then["p50_us"], 2)
        figures["vs_against_p99"] = round(this["p99_us"] / then["p99_us"], 2)
        figures["vs_against_throughput"] = round(this["decisions_per_s"] / then["decisions_per_s"], 2)
        figures["vs_against_cpu_p50"] = round(this["cpu_p50_us"] / then["cpu_p50_us"], 2)
        figures["vs_against_cpu_p99"] = round(this["cpu_p99_us"] / then["cpu_p99_us"], 2)
        print(
            f"SQLite review at {args.against} (same run, alternating rounds): p50 {then['p50_us']} us, "
            f"p99 {then['p99_us']} us, {then['decisions_per_s']} decisions/s; this tree / {args.against}: "
            f"p50 {figures['vs_against_p50']}x, p99 {figures['vs_against_p99']}x, "
            f"throughput {figures['vs_against_throughput']}x; CPU p50 {then['cpu_p50_us']} us, p99 "
            f"{then['cpu_p99_us']} us ({figures['vs_against_cpu_p50']}x, {figures['vs_against_cpu_p99']}x)"
        )
    print(
        f"SQLite bare insert+commit baseline: p50 {figures['baseline_p50_us']} us, "
        f"p99 {figures['baseline_p99_us']} us; ratio p99 {figures['ratio_p99']}x, p50 {figures['ratio_p50']}x"
    )
    if args.pg_url:
        sys.path.insert(0, str(ROOT))
        pg_wall, _, pg_cpu = bench_review(args.pg_url, max(500, n // 4), args.fresh_mandate)
        pg = summary(pg_wall, pg_cpu)
        figures.update({f"pg_{key}": value for key, value in pg.items()})
        print(f"PostgreSQL review: p50 {pg['p50_us']} us, p99 {pg['p99_us']} us, {pg['decisions_per_s']} decisions/s")
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
