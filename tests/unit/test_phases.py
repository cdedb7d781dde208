"""phases.py: the ladder's rules (caps, permissions, promotion blockers) on plain values."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lyra_governor import phases
from lyra_governor.config import LadderSettings
from lyra_governor.models import ConsensusResult, DenialCode, Verdict

LADDER = LadderSettings()


def consensus(verdict: Verdict = Verdict.PROCEED, agreement: float = 0.95) -> ConsensusResult:
    return ConsensusResult(
        phase=1, verdict=verdict, agreement=agreement, threshold=0.7, response_rate=1.0, mean_confidence=0.9
    )


@pytest.mark.parametrize(
    ("phase", "paper", "expected"),
    [
        (1, True, DenialCode.PHASE_FORBIDS_ORDERS),
        (2, False, DenialCode.PHASE_FORBIDS_ORDERS),
        (3, True, None),
        (3, False, DenialCode.LIVE_NOT_PERMITTED),
        (4, True, DenialCode.PAPER_NOT_PERMITTED),
        (4, False, None),
        (5, False, None),
    ],
)
def test_connector_permissions(phase: int, paper: bool, expected: DenialCode | None) -> None:
    denial = phases.connector_denial(phase, paper)
    assert (denial.code if denial else None) is expected


def test_books_per_phase() -> None:
    assert [phases.book_for_phase(p) for p in phases.PHASES] == [None, None, "paper", "live", "live"]


def test_caps_per_phase_and_rung() -> None:
    assert phases.exchange_cap_usd(LADDER, 1, 0) == 0
    assert phases.exchange_cap_usd(LADDER, 3, 0) == Decimal(1000)
    assert [phases.exchange_cap_usd(LADDER, 4, r) for r in range(4)] == [100, 500, 1000, 2500]
    assert phases.exchange_cap_usd(LADDER, 4, 99) == 2500  # clamped to the top rung
    assert phases.exchange_cap_usd(LADDER, 5, 0) == Decimal("4881.72")  # 35 % of 13,947.76
    assert phases.total_cap_usd(LADDER, 4, [Decimal(100)] * 3) == 300
    assert phases.total_cap_usd(LADDER, 4, [Decimal(2500)] * 6) == Decimal("13947.76")  # never above full
    assert phases.total_cap_usd(LADDER, 5, []) == Decimal("13947.76")


def test_next_step() -> None:
    assert phases.next_step(phases.PromotionFacts(phase=2, halted=False), 4) == phases.Promotion(3)
    rungs = [phases.RungFacts("binance", 1, 30, Decimal(5), 10), phases.RungFacts("okx", 3, 30, Decimal(5), 10)]
    assert phases.next_step(phases.PromotionFacts(phase=4, halted=False, rungs=rungs), 4) == phases.Promotion(
        4, ["binance"]
    )
    top = [phases.RungFacts("okx", 3, 30, Decimal(5), 10)]
    assert phases.next_step(phases.PromotionFacts(phase=4, halted=False, rungs=top), 4) == phases.Promotion(5)
    assert phases.next_step(phases.PromotionFacts(phase=5, halted=False), 4) is None


def test_phase_three_needs_a_successful_paper_run_and_the_council() -> None:
    facts = phases.PromotionFacts(phase=3, halted=False, paper_success_rate=0.99, paper_limits_respected=True)
    assert phases.promotion_blockers(facts, LADDER, consensus()) == []
    low = phases.PromotionFacts(phase=3, halted=False, paper_success_rate=0.95, paper_limits_respected=True)
    assert any("not above 95%" in b for b in phases.promotion_blockers(low, LADDER, consensus()))
    assert phases.promotion_blockers(facts, LADDER, None) == ["no council verdict on the evidence"]
    weak = phases.promotion_blockers(facts, LADDER, consensus(agreement=0.79))
    assert weak == ["council agreement 79% is below the 85% threshold"]  # phase 4's threshold


def test_phase_four_rungs_need_time_profit_and_a_drill() -> None:
    rung = phases.RungFacts("binance", 0, 2.0, Decimal(-1), 3)
    facts = phases.PromotionFacts(phase=4, halted=True, rungs=[rung], critical_alerts_since_rung=1)
    blockers = phases.promotion_blockers(facts, LADDER, consensus(Verdict.HOLD_OR_INVESTIGATE))
    joined = " | ".join(blockers)
    for expected in ("halted", "2.0 h at rung", "not profitable", "CRITICAL alert", "drill", "HOLD_OR_INVESTIGATE"):
        assert expected in joined


def test_demotion_never_goes_below_the_first_rung() -> None:
    assert phases.demoted_rung(2) == 1
    assert phases.demoted_rung(0) == 0
