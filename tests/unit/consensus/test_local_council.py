"""The local council: each role judges its own concern; aggregation applies the emergency rules."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from lyra_governor.config import Settings
from lyra_governor.consensus import Council, mandate_provider
from lyra_governor.consensus.aggregation import aggregate, settled
from lyra_governor.governor import Governor
from lyra_governor.models import (
    Ballot,
    CouncilContext,
    DecisionStatus,
    MarketSnapshot,
    OrderProposal,
    RiskLevel,
    Side,
    TradingState,
    Verdict,
    Vote,
    VoteDecision,
)


def market(**overrides: object) -> MarketSnapshot:
    fields: dict[str, object] = {
        "connector": "binance_paper_trade",
        "trading_pair": "BTC-USDT",
        "timestamp": 1.0,
        "mid_price": Decimal(60000),
        "spread_pct": 0.05,
        "volatility_pct": 1.0,
        "depth_usd": 50_000,
        "data_age_s": 1.0,
    }
    fields.update(overrides)
    return MarketSnapshot(**fields)  # type: ignore[arg-type]


def proposal(**overrides: object) -> OrderProposal:
    fields: dict[str, object] = {
        "bot_id": "b",
        "connector": "binance_paper_trade",
        "trading_pair": "BTC-USDT",
        "side": Side.BUY,
        "amount": Decimal("0.001"),
        "price": Decimal(59990),
        "mid_price": Decimal(60000),
        "mid_price_ts": 1.0,
    }
    fields.update(overrides)
    return OrderProposal(**fields)  # type: ignore[arg-type]


def context(**overrides: object) -> CouncilContext:
    fields: dict[str, object] = {
        "phase": 3,
        "question": "mandate",
        "proposal": proposal(),
        "market": market(),
        "cap_usd": Decimal(1000),
        "now": 10.0,
    }
    fields.update(overrides)
    return CouncilContext(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "worst", "verdict"),
    [
        ({}, RiskLevel.LOW, Verdict.PROCEED),
        ({"market": market(volatility_pct=5.0, spread_pct=1.5, depth_usd=500)}, RiskLevel.MEDIUM, None),
        (
            {"market": market(data_age_s=120.0, clock_skew_s=9.0, volatility_pct=12.0), "drawdown_pct": 12.0},
            RiskLevel.HIGH,
            None,
        ),
        ({"error_rate": 0.6}, RiskLevel.CRITICAL, Verdict.ABORT),
        ({"drawdown_pct": 25.0}, RiskLevel.CRITICAL, Verdict.ABORT),
    ],
)
def test_local_voters_differ_across_inputs(
    settings: Settings, overrides: dict[str, object], worst: RiskLevel, verdict: Verdict | None
) -> None:
    result = Council.from_settings(settings).decide(context(**overrides))
    risks = [b.vote.risk for b in result.ballots if b.vote]
    order = list(RiskLevel)
    assert max(risks, key=order.index) is worst
    if verdict is not None:
        assert result.verdict is verdict, result.reasons


def test_medium_and_high_shares_trigger_their_rules(settings: Settings) -> None:
    result = Council.from_settings(settings).decide(
        context(market=market(volatility_pct=5.0, spread_pct=1.5, depth_usd=500, data_age_s=20.0), drawdown_pct=6.0)
    )
    assert result.verdict is Verdict.HOLD_OR_INVESTIGATE
    high = Council.from_settings(settings).decide(
        context(
            market=market(volatility_pct=12.0, data_age_s=120.0),
            drawdown_pct=12.0,
            error_rate=0.3,
            proposal=proposal(connector="binance"),
        )
    )
    assert high.verdict is Verdict.GRADUAL_STOP, high.reasons


def ballot(
    role: str, decision: VoteDecision | None, risk: RiskLevel = RiskLevel.LOW, confidence: float = 0.9
) -> Ballot:
    vote = Vote(decision=decision, risk=risk, confidence=confidence, rationale="r") if decision else None
    return Ballot(role=role, model="m", weight=1.0, vote=vote)


def test_aggregation_rules() -> None:
    weights = {f"r{i}": 1.0 for i in range(8)}
    approve_all = [ballot(f"r{i}", VoteDecision.APPROVE) for i in range(8)]
    assert aggregate(approve_all, weights, 0.8)[0] is Verdict.PROCEED
    # non-answers count against: 6 of 8 approve = 75 % < 80 %
    six = [*approve_all[:6], ballot("r6", None), ballot("r7", None)]
    assert aggregate(six, weights, 0.8)[0] is Verdict.HOLD_OR_INVESTIGATE
    assert aggregate(six, weights, 0.7)[0] is Verdict.PROCEED
    low_conf = [ballot(f"r{i}", VoteDecision.APPROVE, confidence=0.5) for i in range(8)]
    verdict, *_, scale, _ = aggregate(low_conf, weights, 0.8)
    assert verdict is Verdict.PROCEED_WITH_CAUTION and scale == 0.5
    one_critical = [*approve_all[:7], ballot("r7", VoteDecision.APPROVE, RiskLevel.CRITICAL)]
    assert aggregate(one_critical, weights, 0.8)[0] is Verdict.ABORT
    # settled: only a CRITICAL ends the wait; a refusal out of reach of approval still waits,
    # because a voter still out may turn it into ABORT or a gradual stop
    assert settled([ballot("r0", VoteDecision.REJECT, RiskLevel.CRITICAL)], weights, 0.8)
    assert not settled([ballot("r0", VoteDecision.REJECT), ballot("r1", VoteDecision.REJECT)], weights, 0.8)
    assert not settled([ballot("r0", VoteDecision.REJECT)], weights, 0.8)


def test_governor_with_local_council_decides_real_proposals(settings: Settings) -> None:
    now = time.time()
    gov = Governor.from_settings(settings, "bot-local")  # mandates=None -> the local council
    gov.ledger.set_phase(3, "test", "paper")
    for i in range(6):
        gov.observe_market(market(timestamp=now - 6 + i))
    first = gov.review(proposal(mid_price_ts=now))
    assert first.status is DecisionStatus.PENDING
    second = gov.review(proposal(mid_price_ts=now))
    assert second.allowed, second.message
    assert second.mandate_id and second.consensus_id
    # a CRITICAL from the council halts the governor
    gov.apply_verdict(Council.from_settings(settings).decide(context(error_rate=0.9)))
    assert gov.ladder_state(fresh=True).trading_state is TradingState.HALTED
    gov.close()


def test_mandate_provider_remembers_refusals(settings: Settings) -> None:
    book = mandate_provider(settings)
    live = proposal(trading_pair="ETH-USDT")
    choppy = market(volatility_pct=5.0, spread_pct=1.5, depth_usd=500, data_age_s=20.0)
    book.request(live, context(proposal=live, market=choppy, drawdown_pct=6.0, now=100.0))
    assert book.results[-1].verdict is Verdict.HOLD_OR_INVESTIGATE
    assert book.find(live, Decimal(60), 100.0) is None
    book.request(live, context(proposal=live, now=110.0))  # inside the backoff: not asked again
    assert book.requests == 1
    ok = proposal()
    book.request(ok, context(proposal=ok, now=100.0))
    mandate = book.find(ok, Decimal(60), 100.0)
    assert mandate is not None and mandate.expires_at - mandate.issued_at <= 900
    assert book.find(ok, Decimal(60), 100.0 + 901) is None


def test_per_order_mode_asks_the_council_for_every_order(settings: Settings) -> None:
    now = time.time()
    per_order = settings.model_copy(
        update={"consensus": settings.consensus.model_copy(update={"per_order": True})}
    )
    gov = Governor.from_settings(per_order, "bot-per-order")
    gov.ledger.set_phase(3, "test", "paper")
    for i in range(6):
        gov.observe_market(market(timestamp=now - 6 + i))
    decisions = [gov.review(proposal(mid_price_ts=now, price=Decimal(59990 - i))) for i in range(3)]
    # local voters answer inline, so each order is decided on its first proposal, by its own vote
    assert all(d.allowed for d in decisions), [d.message for d in decisions]
    assert len({d.consensus_id for d in decisions}) == 3
    assert gov.mandates.requests == 3  # type: ignore[attr-defined]
    # the mandate is that one order: the other side is a new question
    sell = gov.review(proposal(mid_price_ts=now, side=Side.SELL, price=Decimal(60010)))
    assert sell.allowed and sell.consensus_id not in {d.consensus_id for d in decisions}
    gov.close()


def test_honest_quorum_never_proceeds_below_it() -> None:
    weights = {f"r{i}": 1.0 for i in range(8)}
    missing = [
        Ballot(role="r5", model="m", weight=1.0, error="402", error_kind="billing"),
        Ballot(role="r6", model="m", weight=1.0, error="404", error_kind="model_gone"),
        Ballot(role="r7", model="m", weight=1.0, error="late", error_kind="timeout"),
    ]
    five = [*(ballot(f"r{i}", VoteDecision.APPROVE) for i in range(5)), *missing]
    # 5 of 8 approve = 62.5 %: meets a 60 % threshold, but 62.5 % answered is below a 75 % quorum
    assert aggregate(five, weights, 0.6)[0] is Verdict.PROCEED  # without a quorum (old behaviour)
    verdict, _, rate, _, scale, reasons = aggregate(five, weights, 0.6, quorum=0.75)
    assert verdict is Verdict.HOLD_OR_INVESTIGATE and scale == 0.0 and rate == 0.625
    assert "degraded" in reasons[0] and "r5 (billing), r6 (model_gone), r7 (timeout)" in reasons[0]
    # degraded can still ABORT on the answers there are
    critical = [ballot("r0", VoteDecision.REJECT, RiskLevel.CRITICAL), *missing]
    assert aggregate(critical, weights, 0.6, quorum=0.75)[0] is Verdict.ABORT
    # exactly at the quorum is not degraded: 6 of 8 = 75 %
    six = [*(ballot(f"r{i}", VoteDecision.APPROVE) for i in range(6)), *missing[:2]]
    assert aggregate(six, weights, 0.7, quorum=0.75)[0] is Verdict.PROCEED


def test_council_marks_a_degraded_consultation(settings: Settings) -> None:
    from lyra_governor.consensus.local import LocalVoter

    class Silent(LocalVoter):
        def vote_now(self, context: CouncilContext) -> Ballot:
            return Ballot(role=self.role.name, model="m", weight=self.role.weight, error="x", error_kind="timeout")

    roles = settings.consensus.roles
    council = Council(settings, [*(LocalVoter(r) for r in roles[:5]), *(Silent(r) for r in roles[5:])])
    result = council.decide(CouncilContext(phase=1, question="health", now=time.time()))
    assert result.degraded and result.quorum == 0.75 and result.verdict is Verdict.HOLD_OR_INVESTIGATE
    assert not Council.from_settings(settings).decide(CouncilContext(phase=1, question="health")).degraded
