"""`--strategies` and the Phase-3 criterion "all trading strategies tested" (pure)."""

from __future__ import annotations

import pytest

from lyra_governor.commissioning.gates import GateFacts, _paper_checks
from lyra_governor.config import Settings
from lyra_strategies.paper.replay import ALLOCATION_USD, SCRIPTS, pick_strategies
from lyra_strategies.paper.report import untested_strategies


def test_the_paper_run_has_eight_strategies_each_on_its_own_account() -> None:
    assert list(SCRIPTS) == ["market_making", "arbitrage", "rebalancer", "dynamic_market_making", "bollinger",
                             "grid", "xemm", "dca"]  # fmt: skip
    assert set(ALLOCATION_USD) == set(SCRIPTS)
    total = sum(v for per in ALLOCATION_USD.values() for assets in per.values() for v in assets.values())
    assert 990 <= total <= 1010  # $1,000 of virtual capital in all (sized at the data's prices)


def test_pick_strategies() -> None:
    assert pick_strategies(None) == pick_strategies("all") == list(SCRIPTS)
    assert pick_strategies("dca, grid") == ["grid", "dca"]  # in the run's order
    assert pick_strategies(["xemm"]) == ["xemm"]
    with pytest.raises(ValueError, match="unknown strategy twap; choose from market_making"):
        pick_strategies("grid,twap")
    with pytest.raises(ValueError, match="none given"):
        pick_strategies(" , ")


def test_a_strategy_is_tested_when_it_proposed_was_approved_and_filled() -> None:
    per = {
        "grid": {"proposed": 3, "approved": 2, "fills": 1},
        "dca": {"proposed": 3, "approved": 0, "fills": 0},  # every order refused
        "xemm": {"proposed": 2, "approved": 2, "fills": 0},  # never filled
        "bollinger": {"proposed": 0, "approved": 0, "fills": 0},  # never proposed
    }
    assert untested_strategies(per) == ["dca", "xemm", "bollinger"]


def test_the_phase3_criteria_have_an_all_strategies_tested_row(settings: Settings) -> None:
    def row(paper: dict[str, object]) -> tuple[bool, str]:
        facts = GateFacts(3, False, None, [], paper)  # type: ignore[arg-type]
        check = next(c for c in _paper_checks(facts, settings) if c.name == "all trading strategies tested")
        return check.passed, check.detail

    base = {"success_rate": 0.99, "limits_respected": True, "arbitrage_seen": 3}
    assert row({**base, "strategies": {"grid": {}, "dca": {}}, "strategies_untested": []}) == (
        True, "2 strategies each proposed, approved and filled: grid, dca")  # fmt: skip
    passed, detail = row({**base, "strategies": {"grid": {}, "dca": {}}, "strategies_untested": ["dca"]})
    assert not passed and "dca" in detail
    passed, detail = row(base)  # evidence from before the per-strategy figures
    assert not passed and "re-run" in detail
