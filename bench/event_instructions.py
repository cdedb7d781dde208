"""Instructions per order event, counted by valgrind's callgrind (exact, as
bench/review_instructions.py counts reviews): the governor, settings and loop of
review_instructions.py, but what is counted is what follows each allowed review: the
strategy's cancel request and the exchange's CANCELLED event (`--path cancel`, what a quote
replaced by the market-making script costs), the CANCELLED event alone (`--path release`), or
a FILLED event of the whole order (`--path fill`); or, `--path deny`, a review refused by its
checks (a price far from the mid: PRICE_COLLAR), its decision audited in its own transaction.
The reviews themselves are not counted, nor the first 20 orders.

Usage: python bench/event_instructions.py [--quick] [--n N] [--path cancel|release|fill|deny] [TREE ...]
Needs valgrind on PATH. Prints one line per tree and, last, one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
from decimal import Decimal
from pathlib import Path

from _callgrind import count_instructions

ROOT = Path(__file__).resolve().parents[1]
WARM_UP = 20


def worker(n: int, path: str) -> None:
    """The order loop (run under callgrind by `main`), on the tree first on sys.path."""
    sys.path.insert(0, os.getcwd())
    sys.path.insert(0, str(ROOT / "bench"))
    from governor_review import counted_governor, observed_proposal

    from lyra_governor.models import OrderEvent, OrderEventKind

    with counted_governor() as gov:

        def cancel(rid: str) -> None:
            if path == "fill":  # the whole order at its price
                gov.on_order_event(OrderEvent(kind=OrderEventKind.FILLED, reservation_id=rid,
                                              filled_amount=Decimal("0.0001"), fill_price=Decimal(60000)))  # fmt: skip
                return
            if path == "cancel":
                gov.cancel_requested(rid)
            gov.on_order_event(OrderEvent(kind=OrderEventKind.CANCELLED, reservation_id=rid))

        for i in range(n + WARM_UP):
            proposal = observed_proposal(gov, i)
            decision = gov.review(proposal)
            if not decision.allowed:
                raise SystemExit(f"bench proposal was refused: {decision.code} {decision.message}")
            rid = decision.reservation_id or ""
            if path == "deny":  # a proposal priced far from the mid: refused, its decision audited
                far = proposal.model_copy(update={"price": Decimal(30000), "proposal_id": f"far-{i}"})
                if i < WARM_UP:
                    refused = gov.review(far)
                else:  # counted
                    (refused,) = itertools.starmap(gov.review, ((far,),))
                if refused.allowed or refused.audit_seq is None:
                    raise SystemExit(f"the far proposal was not refused and audited: {refused}")
                gov.on_order_event(OrderEvent(kind=OrderEventKind.CANCELLED, reservation_id=rid))
            elif i < WARM_UP:
                cancel(rid)
            else:  # counted: callgrind collects inside starmap_next only
                list(itertools.starmap(cancel, ((rid,),)))
            if i % 500 == 499:
                gov.store.checkpoint()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=0, help="orders counted per tree (default 500, quick 100)")
    parser.add_argument("--quick", action="store_true", help="fewer orders (under 60 s a tree)")
    paths = ("cancel", "release", "fill", "deny")
    parser.add_argument("--path", choices=paths, default="cancel", help="what is counted")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("trees", nargs="*", type=Path, help="checkouts of Lyra (default: this one)")
    args = parser.parse_args()
    args.n = args.n or (100 if args.quick else 500)
    if args.worker:
        worker(args.n, args.path)
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    figures: dict[str, float | str] = {"n": args.n, "path": args.path}
    first = None
    for tree in args.trees or [ROOT]:
        per_order = count_instructions(__file__, tree.resolve(), ["--n", str(args.n), "--path", args.path]) / args.n
        figures[str(tree)] = round(per_order)
        first = first or per_order  # the baseline: the first tree named, counted in this run
        ratio = per_order / first
        print(f"{tree}: {per_order:,.0f} instructions per order ({args.path}), {ratio:.3f}x the first tree's")
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
