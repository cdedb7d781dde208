"""Instructions of the governor's per-tick calls (heartbeat, trading_state, observe_market), counted
by valgrind's callgrind: exact and repeatable where the paper replay's timings move by 20-30 % on
the shared machine.

The loop is the paper replay's three original scripts as their governors see it: three
`TimedGovernor`s sharing one store and one market watch (as `replay.run_replay` builds them),
each simulated second a heartbeat and a trading state per governor and five observations of three
markets (the market maker's one, the arbitrage's two, the rebalancer's two; the same snapshot
object for the scripts that read one book). Each counted call goes through `itertools.starmap`
and callgrind collects inside `starmap_next` only. The first 60 simulated seconds are not
counted; then `--seconds` (900: 60 beats per governor, every 4th with the sweep and checkpoint).
No fills, so the loss-limit checks mark no positions (the replay's cost more).

`--kind on_tick`: the same tick as one `Governor.on_tick(snapshots)` call per governor (a tree
that has it), the beat, the state and the observations in one.

Usage: python bench/tick_instructions.py [--quick] [--seconds S]
           [--kind all|heartbeat|trading_state|observe|on_tick] [TREE ...]
Needs valgrind on PATH. Prints one line per tree and, last, one JSON object (instructions per
simulated second of the three governors).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from _callgrind import count_instructions

ROOT = Path(__file__).resolve().parents[1]
WARM_UP_S = 60
KINDS = ("all", "heartbeat", "trading_state", "observe", "on_tick")
MARKETS = [("binance_paper_trade", "BTC-USDT"), ("okx_paper_trade", "BTC-USDT"), ("okx_paper_trade", "ETH-USDT")]
PLAN = [[0], [0, 1], [1, 2]]  # the markets each governor observes (market making, arbitrage, rebalancer)


def worker(seconds: int, kind: str) -> None:
    """The tick loop (run under callgrind by `main`), on the tree first on sys.path."""
    sys.path.insert(0, os.getcwd())
    from lyra_governor.config import load_settings
    from lyra_governor.ledger import Ledger
    from lyra_governor.mandate_provider import NoCouncil
    from lyra_governor.market_watch import MarketWatch
    from lyra_governor.models import MarketSnapshot
    from lyra_governor.order_store import OrderStore
    from lyra_strategies.paper.replay import STATE_REFRESH_SIM_S, TimedGovernor

    def counted(f: Any, *args: Any) -> None:
        for _ in itertools.starmap(f, (args,)):
            pass

    def plain(f: Any, *args: Any) -> None:
        f(*args)

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(None, use_env=False, db_url=f"sqlite:///{Path(tmp) / 'lyra.db'}", data_dir=tmp)
        sim = [1_700_000_000.0]

        def clock() -> float:
            return sim[0]

        ledger = Ledger.open(settings, clock)
        ledger.set_phase(3, "bench", "benchmark")
        store, watch = OrderStore(ledger.engine, 10_000), MarketWatch(settings)
        governors = [TimedGovernor(settings, ledger, f"bench-{i}", NoCouncil(), clock, "bench", store, watch)
                     for i in range(len(PLAN))]  # fmt: skip
        for gov in governors:
            gov.ladder_view.clock, gov.ladder_view.refresh_s = clock, STATE_REFRESH_SIM_S
        for i in range(seconds + WARM_UP_S):
            sim[0] += 1
            on = i >= WARM_UP_S
            beat, state, observe = (counted if on and kind in ("all", k) else plain
                                    for k in ("heartbeat", "trading_state", "observe"))  # fmt: skip
            snapshots = [
                MarketSnapshot.model_construct(connector=c, trading_pair=p, timestamp=sim[0], spread_pct=0.01,
                                               mid_price=Decimal(60000 + i % 50), depth_usd=1000.0)
                for c, p in MARKETS
            ]  # fmt: skip
            for gov, markets in zip(governors, PLAN, strict=True):
                if kind == "on_tick":
                    (counted if on else plain)(gov.on_tick, [snapshots[m] for m in markets])
                    continue
                beat(gov.heartbeat)
                state(gov.trading_state)
                for m in markets:
                    observe(gov.observe_market, snapshots[m])
        for gov in governors:  # the beats still waiting (a tree with `heartbeat.BeatGroup`)
            close = getattr(gov.heartbeats, "close", None)
            if close is not None:
                close()
        store.close()
        ledger.close()


def count(tree: Path, seconds: int, kind: str) -> int:
    """Instructions of `tree`'s per-tick calls over `seconds` simulated seconds."""
    return count_instructions(__file__, tree, ["--seconds", str(seconds), "--kind", kind])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=0, help="simulated seconds counted per tree (900, quick 60)")
    parser.add_argument("--quick", action="store_true", help="fewer simulated seconds (under 60 s a tree)")
    parser.add_argument("--kind", choices=KINDS, default="all", help="which calls are counted")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("trees", nargs="*", type=Path, help="checkouts of Lyra (default: this one)")
    args = parser.parse_args()
    args.seconds = args.seconds or (60 if args.quick else 900)
    if args.worker:
        worker(args.seconds, args.kind)
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    figures: dict[str, Any] = {"seconds": args.seconds, "kind": args.kind}
    first = None
    for tree in args.trees or [ROOT]:
        per_second = count(tree.resolve(), args.seconds, args.kind) / args.seconds
        figures[str(tree)] = round(per_second)
        first = first or per_second  # the baseline: the first tree named, counted in this run
        print(f"{tree}: {per_second:,.0f} instructions per simulated second ({args.kind}, three governors), "
              f"{per_second / first:.3f}x the first tree's")
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
