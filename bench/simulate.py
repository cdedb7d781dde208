"""The stateful simulation, long: several bots against one store through random interleavings
(tests/simulation.py), every invariant checked after every step. Reports steps and violations
(those in the core engineer's holes 3/4/7/8/9/10 apart), on SQLite and optionally PostgreSQL.

Usage: python bench/simulate.py [--quick] [--steps N] [--seed S] [--bots B] [--pg-url URL] [--pg-only]
       python bench/simulate.py --kill9 N [--workers W] [--seed S] [--pg-url URL] [--pg-only]
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lyra_governor import audit
from tests.simulation import SIM_BUDGET_MS, Simulation


def run(db_url: str, steps: int, seed: int, bots: int, budget_ms: int | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    sim = Simulation(db_url, seed=seed, bots=bots, verify_every=5000, budget_ms=budget_ms)

    shown = 0

    def progress(report: Any) -> None:
        nonlocal shown
        for v in report.violations[shown:]:  # as they happen: a long run that fails says so early
            print("   violation:", v, flush=True)
        shown = len(report.violations)
        print(f"  {db_url.split(':', maxsplit=1)[0]}: {report.steps} steps, {report.allowed} ALLOWED, "
              f"{len(report.violations)} violations ({len(report.core_violations)} in holes 3/4/7/8/9/10), "
              f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip

    try:
        report = sim.run(steps, progress)
        head_seq, head_hash = audit.head(sim.operator.engine)
    finally:
        sim.close()
    figures = report.as_dict()
    # the audit chain's head: every decision, fill and stop of the run in one hash, the same for
    # the same seed on every run (tests/simulation.py: the run is a pure function of its seed)
    figures["trail_head"] = f"{head_seq}:{head_hash[:16]}"
    figures["wall_s"] = round(time.perf_counter() - started, 1)
    figures["seed"] = seed
    figures["store_budget_ms"] = sim.settings.store.budget_ms
    return figures


def commit() -> str:
    """The commit measured (with `+dirty` when the work tree differs from it)."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def summary(name: str, f: dict[str, Any]) -> None:
    """The figures of one run, as the closing note quotes them."""
    print(f"{name}: seed {f['seed']}, {f['steps']} steps in {f['wall_s']} s (store budget {f['store_budget_ms']} ms), "
          f"{f['proposals']} proposals, "
          f"{f['allowed']} ALLOWED ({f['allowed'] / max(1, f['proposals']):.0%}), {f['fills']} fills booked, "
          f"{f['violations']} violations ({f['violations_core_holes']} in holes 3/4/7/8/9/10), "
          f"trail head {f['trail_head']}")  # fmt: skip
    print(f"  denials by code: {json.dumps(f['denials'], sort_keys=True)}")
    for v in f["first_violations"]:
        print("  ", v)


def pg_schema_url(base: str) -> tuple[str, Any]:
    """A fresh schema on `base` (dropped by the returned callable), as the services tests do."""
    import sqlalchemy as sa

    schema = f"lyra_sim_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return f"{base}?options=-csearch_path%3D{schema}", drop


def kill9(args: argparse.Namespace) -> int:
    """kill -9 of real bot processes (tests/kill9.py), on SQLite and optionally PostgreSQL."""
    from tests.kill9 import KillNine

    out: dict[str, Any] = {"seed": args.seed, "commit": commit()}

    def progress(report: Any) -> None:
        print(f"  {report.kills} kills, {len(report.violations)} violations", flush=True)

    def one(name: str, url: str) -> None:
        lo, hi = (float(x) for x in args.kill_gap.split(","))
        report = KillNine(url, seed=args.seed, workers=args.workers).run(args.kill9, gap_s=(lo, hi), progress=progress)
        f = out[name] = report.as_dict()
        print(f"{name} kill -9: seed {f['seed']}, {f['workers']} bot processes, {f['kills']} kills "
              f"({f['left_dead']} left dead past the heartbeat timeout, {f['orphaned_seen']} reservations orphaned), "
              f"{f['restarts']} restarts, {f['checks']} checks, {f['proposals']} proposals, {f['allowed']} ALLOWED, "
              f"{f['fills']} fills, {f['violations']} violations, {f['wall_s']} s")  # fmt: skip
        for v in f["first_violations"]:
            print("  ", v)

    if not args.pg_only:
        with tempfile.TemporaryDirectory() as tmp:
            one("sqlite", f"sqlite:///{Path(tmp) / 'kill9.db'}")
    if args.pg_url:
        url, drop = pg_schema_url(args.pg_url)
        try:
            one("postgresql", url)
        finally:
            drop()
    print(json.dumps(out, sort_keys=True))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 steps (under 60 s)")
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bots", type=int, default=3)
    parser.add_argument("--pg-url", default=os.environ.get("LYRA_BENCH_PG_URL", ""))
    parser.add_argument("--pg-only", action="store_true", help="skip the SQLite run")
    parser.add_argument("--budget-ms", type=int, default=0,
                        help=f"store budget per call (default {SIM_BUDGET_MS} ms, which no healthy run meets: "
                             "the run is a pure function of its seed; 200, the production budget, is missed on a "
                             "loaded machine, and the run then differs from one run to the next)")
    parser.add_argument("--kill9", type=int, default=0, metavar="N",
                        help="instead: N kill -9 of real bot processes on one store (tests/kill9.py)")
    parser.add_argument("--workers", type=int, default=3, help="bot processes for --kill9")
    parser.add_argument("--kill-gap", default="0.3,1.5", metavar="LO,HI",
                        help="wall seconds between kills for --kill9, drawn uniformly (PostgreSQL starts bots slower)")
    args = parser.parse_args()
    logging.disable(logging.ERROR)  # breakers trip and impossible fills are refused by design
    # a stopped run still drops its PostgreSQL schema (SIGTERM runs the `finally` blocks)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    steps = args.steps or (2000 if args.quick else 100_000)
    if args.kill9:
        return kill9(args)
    out: dict[str, Any] = {"seed": args.seed, "bots": args.bots, "commit": commit()}
    if not args.pg_only:
        with tempfile.TemporaryDirectory() as tmp:
            out["sqlite"] = run(f"sqlite:///{Path(tmp) / 'sim.db'}", steps, args.seed, args.bots, args.budget_ms)
        summary("SQLite", out["sqlite"])
    if args.pg_url:
        url, drop = pg_schema_url(args.pg_url)
        try:
            out["postgresql"] = run(url, steps, args.seed, args.bots, args.budget_ms)
        finally:
            drop()
        summary("PostgreSQL", out["postgresql"])
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
