"""The five-phase commissioning ladder: caps, connector permissions and promotion gates.

Pure functions over plain values, no I/O: the ledger computes the facts from the store and
asks this module what they mean. That keeps the rules readable in one place and testable
without a database.

| phase | may place orders        | capital limit (USD)                              | threshold |
|-------|-------------------------|--------------------------------------------------|-----------|
| 1     | no                      | 0                                                | 70 %      |
| 2     | no (read-only calls)    | 0                                                | 75 %      |
| 3     | paper connectors only   | 1,000 virtual                                    | 80 %      |
| 4     | live, per-exchange rung | 100 -> 500 -> 1,000 -> 2,500 each, <= 13,947.76  | 85 %      |
| 5     | live                    | 13,947.76 total, per-exchange share cap          | 90 %      |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from lyra_governor import money
from lyra_governor.config import LadderSettings
from lyra_governor.models import ConsensusResult, Denial, DenialCode, Verdict

PHASES = (1, 2, 3, 4, 5)
PHASE_NAMES = {
    1: "foundation and AI consensus",
    2: "exchange connectivity",
    3: "paper trading",
    4: "controlled live",
    5: "full production",
}
PAPER_BOOK = "paper"
LIVE_BOOK = "live"
TOTAL = money.TOTAL  # the scope name of a book's total capital row


def book_for_phase(phase: int) -> str | None:
    """Which capital book a phase trades from: none, paper or live."""
    if phase == 3:
        return PAPER_BOOK
    if phase >= 4:
        return LIVE_BOOK
    return None


def connector_denial(phase: int, is_paper: bool) -> Denial | None:
    """Why this phase forbids an order on this kind of connector, or None when it permits it."""
    if phase <= 2:
        return Denial(
            DenialCode.PHASE_FORBIDS_ORDERS,
            f"phase {phase} ({PHASE_NAMES[phase]}) places no orders; commission phases 1-2 and promote to phase 3",
        )
    if phase == 3 and not is_paper:
        return Denial(
            DenialCode.LIVE_NOT_PERMITTED,
            "phase 3 trades paper connectors only (<exchange>_paper_trade); live orders need phase 4",
        )
    if phase >= 4 and is_paper:
        return Denial(
            DenialCode.PAPER_NOT_PERMITTED,
            f"phase {phase} counts live capital; paper connectors belong to phase 3",
        )
    return None


def exchange_cap_usd(ladder: LadderSettings, phase: int, rung: int) -> Decimal:
    """The per-exchange cap in USD for a phase and (phase 4) the exchange's rung index."""
    if phase == 3:
        return ladder.paper_virtual_usd
    if phase == 4:
        return ladder.rungs_usd[max(0, min(rung, len(ladder.rungs_usd) - 1))]
    if phase == 5:
        return (ladder.full_capital_usd * Decimal(str(ladder.phase5_exchange_share))).quantize(Decimal("0.01"))
    return Decimal(0)


def total_cap_usd(ladder: LadderSettings, phase: int, exchange_caps: list[Decimal]) -> Decimal:
    """The total cap: 1,000 virtual in phase 3; the sum of rungs (never above full) in phase 4."""
    if phase == 3:
        return ladder.paper_virtual_usd
    if phase == 4:
        return min(sum(exchange_caps, Decimal(0)), ladder.full_capital_usd)
    if phase == 5:
        return ladder.full_capital_usd
    return Decimal(0)


def threshold(ladder: LadderSettings, phase: int) -> float:
    return ladder.thresholds[phase]


@dataclass(frozen=True)
class RungFacts:
    """What the ledger knows about one exchange's current Phase-4 rung."""

    exchange: str
    rung: int
    hours_at_rung: float
    pnl_usd: Decimal
    fills: int


@dataclass(frozen=True)
class PromotionFacts:
    """Evidence computed from the ledger and audit trail, never typed in by anyone."""

    phase: int
    halted: bool
    evidence_passed: dict[str, bool] = field(default_factory=dict)
    paper_success_rate: float | None = None
    paper_limits_respected: bool | None = None
    rungs: list[RungFacts] = field(default_factory=list)
    critical_alerts_since_rung: int = 0
    drill_passed_since_rung: bool = False


@dataclass(frozen=True)
class Promotion:
    """What promotion would do: a new phase, or in phase 4 new rungs for named exchanges."""

    to_phase: int
    rung_up: list[str] = field(default_factory=list)


def next_step(facts: PromotionFacts, n_rungs: int) -> Promotion | None:
    """The next step up the ladder, or None at the top."""
    if facts.phase < 4:
        return Promotion(facts.phase + 1)
    if facts.phase == 4:
        below_top = [r.exchange for r in facts.rungs if r.rung < n_rungs - 1]
        return Promotion(4, below_top) if below_top else Promotion(5)
    return None


def promotion_blockers(facts: PromotionFacts, ladder: LadderSettings, consensus: ConsensusResult | None) -> list[str]:
    """Every reason the ladder may not go up now; empty means evidence and council agree."""
    blockers: list[str] = []
    if facts.halted:
        blockers.append("trading is halted; resolve the cause and `lyra-governor resume` first")
    step = next_step(facts, len(ladder.rungs_usd))
    if step is None:
        return [*blockers, "phase 5 is the top of the ladder"]
    if facts.phase == 1 and not facts.evidence_passed.get("phase1"):
        blockers.append("no passed phase-1 commissioning (run `lyra-governor commission --phase 1`)")
    if facts.phase == 2 and not facts.evidence_passed.get("phase2"):
        blockers.append("no passed phase-2 exchange validation (run `lyra-governor commission --phase 2`)")
    if facts.phase == 3:
        rate = facts.paper_success_rate
        if rate is None:
            blockers.append("no paper run recorded (run `lyra-governor paper`)")
        else:
            if rate <= ladder.paper_success_rate_min:
                blockers.append(f"paper success rate {rate:.1%} is not above {ladder.paper_success_rate_min:.0%}")
            if not facts.paper_limits_respected:
                blockers.append("the last paper run broke a limit")
    if facts.phase == 4:
        for rung in facts.rungs:
            if rung.exchange not in step.rung_up and step.to_phase == 4:
                continue
            if rung.hours_at_rung < ladder.rung_min_hours:
                blockers.append(
                    f"{rung.exchange}: {rung.hours_at_rung:.1f} h at rung ${ladder.rungs_usd[rung.rung]:,}, "
                    f"needs {ladder.rung_min_hours:g} h"
                )
            if rung.pnl_usd <= 0:
                blockers.append(f"{rung.exchange}: not profitable at this rung (PnL {rung.pnl_usd:.2f} USD)")
        if facts.critical_alerts_since_rung:
            blockers.append(f"{facts.critical_alerts_since_rung} CRITICAL alert(s) at this rung")
        if not facts.drill_passed_since_rung:
            blockers.append("no emergency-stop drill passed at this rung (run `lyra-governor halt --drill`)")
    target_phase = step.to_phase
    needed = threshold(ladder, target_phase)
    if consensus is None:
        blockers.append("no council verdict on the evidence")
    elif consensus.verdict is not Verdict.PROCEED:
        blockers.append(f"the council's verdict is {consensus.verdict.value} (agreement {consensus.agreement:.0%})")
    elif consensus.agreement < needed:
        blockers.append(f"council agreement {consensus.agreement:.0%} is below the {needed:.0%} threshold")
    return blockers


def demoted_rung(rung: int) -> int:
    """An emergency stop drops a Phase-4 exchange one rung (never below the first)."""
    return max(0, rung - 1)
