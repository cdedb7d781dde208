"""Phases 3-5: the evidence gates of DESIGN section 3, read from the ledger, never typed in.

The gate logic itself is the core's (`phases.promotion_blockers` over `Ledger.promotion_facts`);
this module lays it out as a checklist and adds what a commissioning run should also see:
exposure inside its caps, reserved capital matching open reservations, an intact audit chain,
recent CRITICAL alerts and the last emergency-stop drill. `gate_checks` is pure;
`collect_gates` reads the ledger.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lyra_governor import audit, phases
from lyra_governor.commissioning.report import Check
from lyra_governor.config import Settings

DAY_S = 86_400.0


@dataclass
class GateFacts:
    ledger_phase: int
    halted: bool
    promotion: phases.PromotionFacts
    blockers: list[str]
    paper: dict[str, Any] | None = None
    over_cap: list[str] = field(default_factory=list)
    totals_ok: bool = True
    totals_detail: str = ""
    audit_ok: bool = True
    audit_detail: str = ""
    critical_alerts_24h: int = 0
    drill_age_h: float | None = None
    drill_passed: bool = False


def _paper_checks(facts: GateFacts, settings: Settings) -> list[Check]:
    paper = facts.paper
    if paper is None:
        return [Check("paper run recorded", False, "no paper run in the ledger; run `lyra-governor paper`")]
    need = settings.ladder.paper_success_rate_min
    rate = float(paper.get("success_rate", 0.0))
    checks = [
        Check(
            "paper run recorded",
            True,
            f"{paper.get('orders_proposed', '?')} orders proposed, {paper.get('fills', '?')} fills in the last run",
        ),
        Check("paper success rate", rate > need, f"{rate:.1%} (need more than {need:.0%})"),
        Check(
            "limits respected",
            bool(paper.get("limits_respected")),
            "every limit held in the paper run" if paper.get("limits_respected") else "the paper run broke a limit",
        ),
    ]
    arb = paper.get("arbitrage_seen")
    if arb is None:
        detail = (
            "the paper evidence does not say whether arbitrage was detected (no arbitrage_seen); "
            "re-run `lyra-governor paper` with the arbitrage strategy"
        )
    elif not arb:
        detail = "the paper run detected no arbitrage opportunity; check the arbitrage strategy and its data"
    else:
        detail = f"{arb} arbitrage opportunities detected, {paper.get('arbitrage_taken', '?')} taken"
    checks.append(Check("arbitrage detection", bool(arb), detail))
    tested = paper.get("strategies")
    untested = paper.get("strategies_untested") or []
    if tested is None:
        detail = "the paper evidence has no per-strategy figures; re-run `lyra-governor paper` (all strategies)"
    elif untested:
        detail = f"not proposed, approved and filled at least once: {', '.join(untested)}"
    else:
        detail = f"{len(tested)} strategies each proposed, approved and filled: {', '.join(tested)}"
    checks.append(Check("all trading strategies tested", tested is not None and not untested, detail))
    return checks


def _ladder_check(phase: int, facts: GateFacts) -> Check:
    if phase >= 4 and facts.ledger_phase < phase:
        return Check(
            f"ladder at phase {phase}",
            False,
            f"the ladder is in phase {facts.ledger_phase}; phase-{phase} evidence comes from trading at phase {phase} "
            "(`lyra-governor promote` first)",
        )
    return Check(f"ladder at phase {phase}", True, f"ladder in phase {facts.ledger_phase}")


def gate_checks(phase: int, facts: GateFacts, settings: Settings) -> list[Check]:
    """The phase-3/4/5 checklist from ledger facts."""
    checks: list[Check] = []
    checks.append(_ladder_check(phase, facts))
    checks.append(
        Check("trading not halted", not facts.halted, "trading is active" if not facts.halted else
              "trading is halted; resolve the cause and `lyra-governor resume`")
    )  # fmt: skip
    if phase == 3:
        checks.extend(_paper_checks(facts, settings))
    if phase == 4:
        for rung in facts.promotion.rungs:
            amount = settings.ladder.rungs_usd[min(rung.rung, len(settings.ladder.rungs_usd) - 1)]
            ok = rung.hours_at_rung >= settings.ladder.rung_min_hours and rung.pnl_usd > 0
            checks.append(
                Check(
                    f"rung {rung.exchange}",
                    ok,
                    f"${amount:,} for {rung.hours_at_rung:.1f} h (need {settings.ladder.rung_min_hours:g} h), "
                    f"PnL {rung.pnl_usd:.2f} USD over {rung.fills} fills",
                    gating=False,
                )
            )
        checks.append(
            Check(
                "no CRITICAL alert at this rung",
                facts.promotion.critical_alerts_since_rung == 0,
                f"{facts.promotion.critical_alerts_since_rung} CRITICAL alert(s) since the rung began",
            )
        )
    if phase >= 4:
        drill = (
            f"last drill {'passed' if facts.drill_passed else 'FAILED'} {facts.drill_age_h:.1f} h ago"
            if facts.drill_age_h is not None
            else "no emergency-stop drill recorded; run `lyra-governor halt --drill`"
        )
        fresh = facts.drill_age_h is not None and facts.drill_age_h <= settings.ladder.rung_min_hours
        checks.append(Check("emergency-stop drill", facts.drill_passed and fresh, drill))
    if phase in (3, 4):
        shown = list(facts.blockers)
        checks.append(
            Check(
                f"promotion gate {phase} -> {phase + 1 if phase == 3 else '4/5'}",
                not shown,
                "evidence meets the gate" if not shown else "; ".join(shown),
                data={"blockers": shown},
            )
        )
    if phase == 5:
        checks.append(
            Check(
                "no CRITICAL alert in 24 h",
                facts.critical_alerts_24h == 0,
                f"{facts.critical_alerts_24h} CRITICAL alert(s) or ABORT verdict(s) in the last 24 h",
            )
        )
    checks.append(
        Check(
            "exposure within caps",
            not facts.over_cap,
            "every scope at or under its cap" if not facts.over_cap else "over cap: " + ", ".join(facts.over_cap),
            critical=bool(facts.over_cap),
        )
    )
    checks.append(Check("reserved capital reconciles", facts.totals_ok, facts.totals_detail))
    checks.append(Check("audit chain intact", facts.audit_ok, facts.audit_detail, critical=not facts.audit_ok))
    return checks


# --- adapter ---------------------------------------------------------------------------------


def collect_gates(ledger: Any, phase: int, now: float) -> GateFacts:
    """Read the gate facts for commissioning `phase` from the ledger and the audit trail."""
    state = ledger.state()
    promotion = ledger.promotion_facts()
    as_phase = dataclasses.replace(promotion, phase=phase) if phase < 5 else promotion
    blockers: list[str] = []
    if phase < 5:
        # consensus=None adds exactly one blocker ("no council verdict"): the runner asks the
        # council separately, so that last line is dropped here.
        blockers = phases.promotion_blockers(as_phase, ledger.settings.ladder, None)[:-1]
        if phase >= 4 and state.phase < 4:
            blockers = [b for b in blockers if "rung" not in b and "drill" not in b]
    paper = ledger.latest_evidence("phase3_paper")
    facts = GateFacts(state.phase, state.halted, as_phase, blockers, paper.payload if paper else None)

    for book in (phases.PAPER_BOOK, phases.LIVE_BOOK):
        exposure = ledger.exposure(book)
        for name, scope in [*exposure.exchanges.items(), ("TOTAL", exposure.total)]:
            if scope.used_usd > scope.cap_usd and scope.used_usd > 0:
                facts.over_cap.append(f"{book}:{name} {scope.used_usd} > {scope.cap_usd} USD")
    facts.totals_ok, facts.totals_detail = ledger.totals_agree()
    result = audit.verify(ledger.engine)
    facts.audit_ok = result.ok
    facts.audit_detail = (
        f"{result.count} records, head {result.head_hash[:16]}…"
        if result.ok
        else f"{result.problem}; first broken record {result.first_broken}"
    )
    for record in audit.tail(ledger.engine, 2000):
        if record.ts >= now - DAY_S and audit.is_critical(record):
            facts.critical_alerts_24h += 1
    drill = ledger.latest_evidence("drill")
    if drill is not None:
        facts.drill_age_h = max(0.0, (now - drill.ts) / 3600)
        facts.drill_passed = drill.passed
    return facts
