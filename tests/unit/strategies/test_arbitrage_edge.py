"""The float pre-check of the arbitrage script (`arbitrage.no_edge`) never hides an
opportunity the exact Decimal check (`find_opportunity`) would find: the script skips the
exact check on the seconds `no_edge` says there is none."""

from __future__ import annotations

import random
from decimal import Decimal

from lyra_strategies.arbitrage import Venue, find_opportunity, no_edge

FEE = Decimal("0.001")


def _venue(name: str, bid: float, ask: float) -> Venue:
    return Venue(name, "BTC-USDT", Decimal(str(bid)), Decimal(str(ask)), Decimal(1), Decimal(1), FEE, Decimal(1))


def test_no_edge_never_hides_an_opportunity() -> None:
    rng = random.Random(3)
    skipped = found = 0
    for _ in range(20_000):
        mid = rng.uniform(100, 100_000)
        spread = mid * rng.uniform(0, 0.0005)
        # the other book sits anywhere from well inside to just past the two fees' width
        other = mid * (1 + rng.choice((-1, 1)) * rng.uniform(0, 0.0035))
        a = (round(mid - spread, 2), round(mid + spread, 2))
        b = (round(other - spread, 2), round(other + spread, 2))
        exact = find_opportunity(_venue("a", *a), _venue("b", *b), Decimal("0.002"), Decimal(0))
        if no_edge(a[0], a[1], b[0], b[1], float(FEE)):
            skipped += 1
            assert exact is None, (a, b, exact)
        found += exact is not None
    assert skipped > 5_000 and found > 1_000  # both cases were exercised


def test_a_book_past_both_fees_is_worth_the_exact_check() -> None:
    # sell at 10,030 what costs 10,000: 0.3 % over two 0.1 % fees
    assert not no_edge(9_999.0, 10_000.0, 10_030.0, 10_031.0, 0.001)
    assert no_edge(9_999.0, 10_000.0, 10_010.0, 10_011.0, 0.001)  # 0.1 %: the fees eat it
