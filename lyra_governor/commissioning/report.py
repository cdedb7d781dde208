"""The shape of a commissioning result and how checks and the council combine into a verdict.

Pure: no I/O. Why a verdict is the most restrictive of two opinions: the checks are facts and
the council is judgement; neither may overrule the other upwards. A failed check can never be
talked into PROCEED, and a council that says HOLD is never outvoted by green checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lyra_governor.models import ConsensusResult, Verdict

SEVERITY = [
    Verdict.PROCEED,
    Verdict.PROCEED_WITH_CAUTION,
    Verdict.HOLD_OR_INVESTIGATE,
    Verdict.GRADUAL_STOP,
    Verdict.ABORT,
]


@dataclass(frozen=True)
class Check:
    """One line of a phase's checklist. `warning` = passed, but with a caveat to read.

    `critical` failures (a key that can withdraw, a broken audit chain) make the verdict ABORT.
    A non-`gating` check is reported (never as a pass when it failed) but only a gate decides:
    e.g. one exchange that fails validation while five others pass.
    """

    name: str
    passed: bool
    detail: str
    warning: bool = False
    critical: bool = False
    gating: bool = True
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "passed": self.passed, "detail": self.detail}
        if self.warning:
            out["warning"] = True
        if self.critical and not self.passed:
            out["critical"] = True
        if not self.gating:
            out["gating"] = False
        if self.data:
            out["data"] = self.data
        return out


def most_restrictive(*verdicts: Verdict) -> Verdict:
    return max(verdicts, key=SEVERITY.index)


def checks_verdict(checks: list[Check]) -> Verdict:
    """What the checks alone allow: ABORT on a critical failure, HOLD on a failed gate,
    CAUTION on a warning or a failed non-gating check, else PROCEED."""
    if any(c.critical and not c.passed for c in checks):
        return Verdict.ABORT
    if any(not c.passed and c.gating for c in checks):
        return Verdict.HOLD_OR_INVESTIGATE
    if any(c.warning or not c.passed for c in checks):
        return Verdict.PROCEED_WITH_CAUTION
    return Verdict.PROCEED


def final_verdict(checks: list[Check], council: ConsensusResult | None) -> Verdict:
    """Checks and council combined; no council answer at all means HOLD (fail closed)."""
    from_checks = checks_verdict(checks)
    if council is None:
        return most_restrictive(from_checks, Verdict.HOLD_OR_INVESTIGATE)
    return most_restrictive(from_checks, council.verdict)


def summarize_council(council: ConsensusResult | None) -> dict[str, Any] | None:
    if council is None:
        return None
    return {
        "consensus_id": council.consensus_id,
        "verdict": council.verdict.value,
        "agreement": round(council.agreement, 4),
        "threshold": council.threshold,
        "response_rate": round(council.response_rate, 4),
        "mean_confidence": round(council.mean_confidence, 4),
        "reasons": list(council.reasons)[:8],
    }


@dataclass
class PhaseReport:
    """The result of `lyra-governor commission --phase N` (what `--json` prints)."""

    phase: int
    verdict: Verdict
    checks: list[Check]
    council: dict[str, Any] | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    evidence_seq: int | None = None
    audit_seq: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Evidence counts as passed when every check passed and the verdict permits going on."""
        return all(c.passed for c in self.checks if c.gating) and self.verdict.permits_new_exposure

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "verdict": self.verdict.value,
            "passed": self.passed,
            "checks": [c.to_dict() for c in self.checks],
            "council": self.council,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "evidence_seq": self.evidence_seq,
            "audit_seq": self.audit_seq,
            **self.extra,
        }
