"""Budget splitting and price ladders (pure)."""

from __future__ import annotations

from decimal import Decimal

from lyra_strategies.budget import split_budget_usd
from lyra_strategies.ladders import steps


def test_split_budget_fits_capacity_and_the_per_order_limit() -> None:
    assert split_budget_usd(Decimal(300), Decimal(250), 3) == Decimal(100) * Decimal("0.98")
    assert split_budget_usd(Decimal(3000), Decimal(250), 3) == Decimal(250) * Decimal("0.98")
    assert split_budget_usd(Decimal(0), Decimal(250), 3) == 0
    assert split_budget_usd(Decimal(-5), Decimal(250), 3) == 0
    assert split_budget_usd(Decimal(100), Decimal(250), 0) == 0


def test_steps_walk_away_from_mid() -> None:
    assert steps(Decimal(100), 3, Decimal("0.01"), below=True) == [Decimal(99), Decimal(98), Decimal(97)]
    assert steps(Decimal(100), 2, Decimal("0.01"), below=False) == [Decimal(101), Decimal(102)]
    assert steps(Decimal(100), 0, Decimal("0.01"), below=True) == []
