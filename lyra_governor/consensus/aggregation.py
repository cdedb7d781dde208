"""From ballots to a verdict: the council's emergency rules and thresholds (pure).

Rules, strictest first (DESIGN.md section 4):
1. any CRITICAL risk                    -> ABORT (cancel all, halt)
2. HIGH risk from > 50 % of the weight  -> GRADUAL_STOP (reduce-only)
3. MEDIUM risk from > 30 % of the weight -> HOLD_OR_INVESTIGATE
4. fewer than the quorum answered       -> HOLD_OR_INVESTIGATE, the result marked degraded
5. agreement below the phase threshold  -> HOLD_OR_INVESTIGATE
6. mean confidence < 70 %               -> PROCEED_WITH_CAUTION, sizes scaled by the confidence
7. otherwise                            -> PROCEED

Agreement is weighted approvals over the weight of ALL configured voters: a voter that does not
answer counts against, so an outage can only make the council more careful. Rule 5 applies only
once the threshold is met — low confidence never turns a refusal into a trade.

Quorum (honest quorum): when the voters that answered carry less than `quorum` of the weight,
the consultation is degraded: it can never PROCEED (the emergency rules, ABORT included, still
apply to the answers there are), and the reason names who did not answer and why (a 402 is
billing, a 404 a retired model), so an outage is not mistaken for a cautious council.
"""

from __future__ import annotations

from collections.abc import Sequence

from lyra_governor.models import Ballot, RiskLevel, Verdict, VoteDecision

HIGH_SHARE = 0.5
MEDIUM_SHARE = 0.3
CONFIDENCE_FLOOR = 0.7


def is_degraded(response_rate: float, quorum: float) -> bool:
    return response_rate + 1e-9 < quorum


def reachable_rate(ballots: Sequence[Ballot], weights: dict[str, float]) -> float:
    """Weight that answered or was still out when the outcome was already final (an early ABORT
    stops waiting: those voters did not fail), over the weight of all configured voters."""
    total = sum(weights.values()) or 1.0
    return sum(b.weight for b in ballots if b.vote is not None or b.error_kind == "not_awaited") / total


def missing_voters(ballots: Sequence[Ballot]) -> str:
    """'a (billing), b (timeout)': who did not answer, and why in one word."""
    return ", ".join(f"{b.role} ({b.error_kind or 'no answer'})" for b in ballots if b.vote is None)


def aggregate(
    ballots: Sequence[Ballot], weights: dict[str, float], threshold: float, quorum: float = 0.0
) -> tuple[Verdict, float, float, float, float, list[str]]:
    """(verdict, agreement, response_rate, mean_confidence, size_scale, reasons)."""
    total = sum(weights.values()) or 1.0
    answered = [b for b in ballots if b.vote is not None]
    approve = sum(b.weight for b in answered if b.vote and b.vote.decision is VoteDecision.APPROVE)
    agreement = approve / total
    response_rate = sum(b.weight for b in answered) / total
    confidence = sum(b.vote.confidence * b.weight for b in answered if b.vote) / (
        sum(b.weight for b in answered) or 1.0
    )
    share = {level: sum(b.weight for b in answered if b.vote and b.vote.risk is level) / total for level in RiskLevel}
    reasons: list[str] = []
    critical = [b.role for b in answered if b.vote and b.vote.risk is RiskLevel.CRITICAL]
    if critical:
        reasons.append(f"CRITICAL risk from {', '.join(critical)}")
        return Verdict.ABORT, agreement, response_rate, confidence, 0.0, reasons
    if share[RiskLevel.HIGH] > HIGH_SHARE:
        reasons.append(f"HIGH risk from {share[RiskLevel.HIGH]:.0%} of the council")
        return Verdict.GRADUAL_STOP, agreement, response_rate, confidence, 0.0, reasons
    if share[RiskLevel.MEDIUM] > MEDIUM_SHARE:
        reasons.append(f"MEDIUM risk from {share[RiskLevel.MEDIUM]:.0%} of the council")
        return Verdict.HOLD_OR_INVESTIGATE, agreement, response_rate, confidence, 0.0, reasons
    if is_degraded(response_rate, quorum):
        reasons.append(
            f"degraded: only {response_rate:.0%} of the council answered (quorum {quorum:.0%}); "
            f"no answer from {missing_voters(ballots)}"
        )
        return Verdict.HOLD_OR_INVESTIGATE, agreement, response_rate, confidence, 0.0, reasons
    if agreement < threshold:
        missing = [b.role for b in ballots if b.vote is None]
        reasons.append(f"agreement {agreement:.0%} below the {threshold:.0%} threshold")
        if missing:
            reasons.append(f"no answer from {', '.join(missing)}")
        return Verdict.HOLD_OR_INVESTIGATE, agreement, response_rate, confidence, 0.0, reasons
    if confidence < CONFIDENCE_FLOOR:
        reasons.append(f"mean confidence {confidence:.0%} below {CONFIDENCE_FLOOR:.0%}: sizes scaled")
        return Verdict.PROCEED_WITH_CAUTION, agreement, response_rate, confidence, round(confidence, 4), reasons
    reasons.append(f"agreement {agreement:.0%} meets the {threshold:.0%} threshold")
    return Verdict.PROCEED, agreement, response_rate, confidence, 1.0, reasons


def settled(ballots: Sequence[Ballot], weights: dict[str, float], threshold: float) -> bool:
    """True once waiting for the remaining voters cannot change the verdict: only a CRITICAL
    (ABORT is final). A refusal that approvals can no longer overturn is *not* settled: a voter
    still out may report CRITICAL or HIGH, and the emergency rules must hear it. Waiting costs
    nothing that matters: the order already waits as PENDING and the council runs in the
    background. `weights` and `threshold` stay in the signature for callers that weigh."""
    del weights, threshold
    return any(b.vote is not None and b.vote.risk is RiskLevel.CRITICAL for b in ballots)
