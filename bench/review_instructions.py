"""Instructions per allowed review, counted by valgrind's callgrind: exact and repeatable on a
shared, loaded machine, where the timings of bench/governor_review.py move by 20 % between runs.

The loop is bench/governor_review.py's (the same governor, settings, held mandate, ticks and
cancels), but each review is called through `itertools.starmap`, and callgrind counts only
inside `starmap_next` (--collect-atstart=no --toggle-collect=starmap_next): the reviews
themselves, not the start-up, the ticks, the cancels or the checkpoints. The first 20 reviews
(the first mandate, the first rate count) are not counted. Repeat runs agree within ~0.5 %.
SQLite's own instructions are included; the kernel's (the WAL's writes) are not, and OpenSSL's
SHA-256 runs without its SHA-NI path under valgrind, so the hash counts more than it costs.

Usage: python bench/review_instructions.py [--quick] [--n N] [TREE ...]   (default: this checkout)
Needs valgrind on PATH. Prints one line per tree and, last, one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
from pathlib import Path

from _callgrind import count_instructions

ROOT = Path(__file__).resolve().parents[1]
WARM_UP = 20


def worker(n: int) -> None:
    """The review loop (run under callgrind by `main`), on the tree first on sys.path."""
    sys.path.insert(0, os.getcwd())
    sys.path.insert(0, str(ROOT / "bench"))
    from governor_review import counted_governor, observed_proposal

    from lyra_governor.models import OrderEvent, OrderEventKind

    with counted_governor() as gov:
        for i in range(n + WARM_UP):
            proposal = observed_proposal(gov, i)
            if i < WARM_UP:
                decision = gov.review(proposal)
            else:  # counted: callgrind collects inside starmap_next only
                (decision,) = itertools.starmap(gov.review, ((proposal,),))
            if not decision.allowed:
                raise SystemExit(f"bench proposal was refused: {decision.code} {decision.message}")
            gov.on_order_event(OrderEvent(kind=OrderEventKind.CANCELLED, reservation_id=decision.reservation_id or ""))
            if i % 500 == 499:
                gov.store.checkpoint()


def count(tree: Path, n: int) -> int:
    """Instructions of `n` reviews of `tree`'s governor."""
    return count_instructions(__file__, tree, ["--n", str(n)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=0, help="reviews counted per tree (default 500, quick 100)")
    parser.add_argument("--quick", action="store_true", help="fewer reviews (under 60 s a tree)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("trees", nargs="*", type=Path, help="checkouts of Lyra (default: this one)")
    args = parser.parse_args()
    args.n = args.n or (100 if args.quick else 500)
    if args.worker:
        worker(args.n)
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    figures: dict[str, float] = {"n": args.n}
    first = None
    for tree in args.trees or [ROOT]:
        per_review = count(tree.resolve(), args.n) / args.n
        figures[str(tree)] = round(per_review)
        first = first or per_review  # the baseline: the first tree named, counted in this run
        print(f"{tree}: {per_review:,.0f} instructions per review, {per_review / first:.3f}x the first tree's")
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
