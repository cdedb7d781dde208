"""Local deterministic voters: the embedded default council, no keys, no network.

Each role judges what it is for, from the same `CouncilContext` the models would see, with
plain rules whose thresholds are written here in one place. They are not a stand-in for the
models' judgement; they are a conservative floor that lets every part of Lyra run offline and
reproducibly (the paper run, CI, a first commissioning).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

from lyra_governor.config import RoleSettings
from lyra_governor.market_context import MIN_RATE_SAMPLES
from lyra_governor.models import Ballot, CouncilContext, RiskLevel, Side, Vote, VoteDecision

Judge = Callable[[CouncilContext], Vote]
NEGATIVE_NEWS = -0.25  # mean VADER score of the window's headlines at or below which buying is questioned

APPROVE, REJECT, ABSTAIN = VoteDecision.APPROVE, VoteDecision.REJECT, VoteDecision.ABSTAIN
LOW, MEDIUM, HIGH, CRITICAL = RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH, RiskLevel.CRITICAL


def _vote(decision: VoteDecision, risk: RiskLevel, confidence: float, rationale: str) -> Vote:
    return Vote(decision=decision, risk=risk, confidence=confidence, rationale=rationale[:600])


def _failed_checks(ctx: CouncilContext) -> list[str]:
    checks = ctx.evidence.get("checks", [])
    return [str(c.get("name")) for c in checks if isinstance(c, dict) and not c.get("passed", False)]


def _order_notional(ctx: CouncilContext) -> Decimal:
    p = ctx.proposal
    if p is None or not p.amount.is_finite() or not p.reference_price.is_finite():
        return Decimal(0)
    return abs(p.amount * p.reference_price)


def primary_analyst(ctx: CouncilContext) -> Vote:
    failed = _failed_checks(ctx)
    if failed:
        share = len(failed) / max(1, len(ctx.evidence.get("checks", [])))
        risk = HIGH if share > 0.5 else MEDIUM
        return _vote(REJECT, risk, 0.8, f"{len(failed)} commissioning check(s) failed: {', '.join(failed)[:200]}")
    if ctx.question == "mandate" and ctx.market is None:
        return _vote(ABSTAIN, LOW, 0.5, "no market snapshot to judge")
    if ctx.market is not None and ctx.market.spread_pct > 2.0:
        return _vote(REJECT, MEDIUM, 0.75, f"spread {ctx.market.spread_pct:.2f} % is too wide to trade soundly")
    news, p = ctx.sentiment, ctx.proposal
    if news is not None and news.mean_score is not None and p is not None and not p.reduce_only:
        hours = news.window_s / 3600
        if p.side is Side.BUY and news.mean_score <= NEGATIVE_NEWS:
            return _vote(
                REJECT, MEDIUM, 0.7,
                f"news on {news.asset} is negative: mean score {news.mean_score:+.2f} over {news.headlines} "
                f"headlines in {hours:g} h ({news.negative} negative)",
            )  # fmt: skip
        return _vote(APPROVE, LOW, 0.85, f"envelope consistent with the evidence; {news.asset} news {news.label}")
    return _vote(APPROVE, LOW, 0.85, "envelope consistent with the evidence")


def _drawdown(ctx: CouncilContext) -> float:
    """The larger of the account's drawdown and the strategy's own (its fills marked to mid)."""
    own = ctx.market_context.drawdown_pct if ctx.market_context is not None else 0.0
    return max(ctx.drawdown_pct, own)


def risk_assessor(ctx: CouncilContext) -> Vote:
    drawdown = _drawdown(ctx)
    if drawdown >= 20:
        return _vote(REJECT, CRITICAL, 0.95, f"drawdown {drawdown:.1f} % breaches the 20 % hard stop")
    if drawdown >= 10:
        return _vote(REJECT, HIGH, 0.9, f"drawdown {drawdown:.1f} % is above 10 %")
    if ctx.question in ("mandate", "order"):
        if ctx.cap_usd <= 0:
            return _vote(REJECT, HIGH, 0.9, "no capital is allowed at this phase")
        used = (ctx.deployed_usd + ctx.reserved_usd) / ctx.cap_usd
        if used > Decimal("0.9"):
            return _vote(APPROVE, MEDIUM, 0.6, f"{used:.0%} of the cap already used")
        if _order_notional(ctx) > ctx.cap_usd:
            return _vote(REJECT, HIGH, 0.85, "one order would exceed the whole cap")
    if drawdown >= 5:
        return _vote(APPROVE, MEDIUM, 0.65, f"drawdown {drawdown:.1f} %: proceed carefully")
    return _vote(APPROVE, LOW, 0.85, "exposure well inside the caps")


def market_analyst(ctx: CouncilContext) -> Vote:
    m = ctx.market
    if m is None:
        return _vote(APPROVE if ctx.question != "mandate" else ABSTAIN, LOW, 0.6, "no market data in question")
    if not m.mid_price.is_finite() or m.mid_price <= 0:
        return _vote(REJECT, CRITICAL, 0.95, "the market has no valid mid price")
    if m.volatility_pct >= 10 or m.spread_pct >= 5:
        return _vote(
            REJECT, HIGH, 0.85, f"disorderly market: volatility {m.volatility_pct:.1f} %, spread {m.spread_pct:.2f} %"
        )
    mc = ctx.market_context
    if mc is not None and mc.vol_regime in ("high", "extreme"):
        where = f" (p{mc.vol_percentile_day:.0f} of the day)" if mc.vol_percentile_day is not None else ""
        return _vote(
            REJECT,
            HIGH if mc.vol_regime == "extreme" else MEDIUM,
            0.8,
            f"volatility regime {mc.vol_regime}: 1 h realised {mc.realised_vol_1h_pct:.2f} %{where}",
        )
    if m.volatility_pct >= 4 or m.spread_pct >= 1 or (0 < m.depth_usd < 1000):
        return _vote(
            APPROVE,
            MEDIUM,
            0.65,
            f"thin or choppy: volatility {m.volatility_pct:.1f} %, spread {m.spread_pct:.2f} %, "
            f"depth {m.depth_usd:,.0f} USD",
        )
    p = ctx.proposal
    if mc is not None and p is not None and not p.reduce_only and mc.trend in ("up", "down"):
        against = (p.side is Side.BUY and mc.trend == "down") or (p.side is Side.SELL and mc.trend == "up")
        if against:
            slope = f"{mc.trend_slope_pct_per_hour:+.2f} %/h"
            return _vote(APPROVE, MEDIUM, 0.65, f"{p.side.value} against a {mc.trend}trend of {slope}")
    return _vote(APPROVE, LOW, 0.85, "orderly market" + (f", {mc.vol_regime} volatility" if mc is not None else ""))


def technical_validator(ctx: CouncilContext) -> Vote:
    m = ctx.market
    if m is None:
        return _vote(APPROVE if ctx.question != "mandate" else ABSTAIN, LOW, 0.6, "no market data to validate")
    if m.data_age_s > 60 or abs(m.clock_skew_s) > 5:
        return _vote(REJECT, HIGH, 0.9, f"data {m.data_age_s:.0f} s old, clock skew {m.clock_skew_s:.1f} s")
    if m.data_age_s > 10 or abs(m.clock_skew_s) > 1:
        return _vote(APPROVE, MEDIUM, 0.6, f"data {m.data_age_s:.0f} s old, clock skew {m.clock_skew_s:.1f} s")
    p = ctx.proposal
    if p is not None and p.price is not None and p.price.is_finite():
        exponent = p.price.normalize().as_tuple().exponent
        decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        if decimals > m.price_decimals:
            return _vote(REJECT, MEDIUM, 0.7, f"price has {decimals} decimals, the market allows {m.price_decimals}")
    return _vote(APPROVE, LOW, 0.9, "data fresh, clocks aligned")


def strategy_optimizer(ctx: CouncilContext) -> Vote:
    p, m = ctx.proposal, ctx.market
    if p is not None and m is not None and p.price is not None and m.mid_price > 0 and p.price.is_finite():
        distance = float(abs(p.price - m.mid_price) / m.mid_price * 100)
        if distance > 2:
            return _vote(REJECT, MEDIUM, 0.7, f"quote {distance:.2f} % from mid: parameters do not fit the market")
        if m.spread_pct > 0 and distance < m.spread_pct / 4:
            return _vote(APPROVE, LOW, 0.65, "quotes inside the spread: thin edge after fees")
    return _vote(APPROVE, LOW, 0.8, "parameters fit current conditions")


def compliance_auditor(ctx: CouncilContext) -> Vote:
    p = ctx.proposal
    if p is not None and ctx.question in ("mandate", "order"):
        paper = p.connector.endswith("_paper_trade")
        if ctx.phase <= 2:
            return _vote(REJECT, HIGH, 0.95, f"phase {ctx.phase} places no orders")
        if ctx.phase == 3 and not paper:
            return _vote(REJECT, HIGH, 0.95, "phase 3 allows paper connectors only")
        if ctx.phase >= 4 and paper:
            return _vote(REJECT, MEDIUM, 0.8, "paper orders do not belong to a live phase")
    return _vote(APPROVE, LOW, 0.9, f"activity permitted in phase {ctx.phase}")


def fault_detector(ctx: CouncilContext) -> Vote:
    if ctx.rate_samples is not None and ctx.rate_samples < MIN_RATE_SAMPLES:  # too few decisions to judge rates
        ctx = ctx.model_copy(update={"error_rate": 0.0, "reject_rate": 0.0})
    critical_alerts = [a for a in ctx.alerts if "CRITICAL" in a.upper()]
    if critical_alerts or ctx.error_rate >= 0.5:
        why = critical_alerts[0][:200] if critical_alerts else f"error rate {ctx.error_rate:.0%}"
        return _vote(REJECT, CRITICAL, 0.95, f"system fault: {why}")
    if ctx.error_rate >= 0.2 or ctx.reject_rate >= 0.8:
        return _vote(REJECT, HIGH, 0.85, f"error rate {ctx.error_rate:.0%}, reject rate {ctx.reject_rate:.0%}")
    if ctx.error_rate >= 0.05 or ctx.reject_rate >= 0.5 or ctx.alerts:
        return _vote(APPROVE, MEDIUM, 0.6, f"error rate {ctx.error_rate:.0%}, {len(ctx.alerts)} alert(s)")
    return _vote(APPROVE, LOW, 0.9, "no recent faults")


def consensus_validator(ctx: CouncilContext) -> Vote:
    failed = _failed_checks(ctx)
    if failed:
        return _vote(REJECT, MEDIUM, 0.75, f"evidence incoherent: {len(failed)} failed check(s)")
    if ctx.question == "mandate" and ctx.proposal is None:
        return _vote(ABSTAIN, LOW, 0.5, "a mandate question without a proposal")
    return _vote(APPROVE, LOW, 0.85, "evidence coherent")


JUDGES: dict[str, Judge] = {
    "primary_analyst": primary_analyst,
    "risk_assessor": risk_assessor,
    "market_analyst": market_analyst,
    "technical_validator": technical_validator,
    "strategy_optimizer": strategy_optimizer,
    "compliance_auditor": compliance_auditor,
    "fault_detector": fault_detector,
    "consensus_validator": consensus_validator,
}


class LocalVoter:
    """One role judged by its local rule; roles with unknown names use the primary analyst's."""

    def __init__(self, role: RoleSettings) -> None:
        self.role = role
        self.judge = JUDGES.get(role.name, primary_analyst)

    def vote_now(self, context: CouncilContext) -> Ballot:
        start = time.perf_counter()
        try:
            vote: Vote | None = self.judge(context)
            error = None
        except Exception as exc:  # a rule bug is a non-answer, never a crash of the council
            vote, error = None, f"local rule failed: {type(exc).__name__}: {exc}"
        return Ballot(
            role=self.role.name,
            model=f"local/{self.role.name}",
            weight=self.role.weight,
            vote=vote,
            error=error,
            latency_s=time.perf_counter() - start,
        )

    async def vote(self, context: CouncilContext, deadline_s: float) -> Ballot:
        return self.vote_now(context)

    async def aclose(self) -> None:
        return None
