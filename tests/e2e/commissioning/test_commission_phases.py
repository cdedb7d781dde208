"""Commission phases 2-5 end to end: real ccxt against the fake exchange, real ledger, the
real (local) council, evidence replayed through the real Governor on a simulated clock."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lyra_governor import audit
from lyra_governor.checkpoints import CheckpointRunner
from lyra_governor.commissioning.runner import CommissionRunner, council_from_settings
from lyra_governor.config import Settings
from lyra_governor.exchanges import Credentials
from lyra_governor.ledger import Ledger
from lyra_governor.models import Verdict
from tests.e2e.commissioning.conftest import make_credentials
from tests.e2e.commissioning.fake_exchange import FakeExchange
from tests.e2e.commissioning.seed import FakeClock, seed_paper, trade_round_trips


def runner(settings: Settings, ledger: Ledger, creds: dict[str, Credentials], clock: FakeClock) -> CommissionRunner:
    return CommissionRunner(settings, ledger, council_from_settings(settings), credentials=creds, clock=clock)


@pytest.mark.timeout(90)
def test_phase2_passes_records_evidence_and_lets_the_ladder_promote(fast_settings: Settings, clock: FakeClock) -> None:
    ledger = Ledger.open(fast_settings, clock=clock)
    ledger.set_phase(2, "test", "phase 1 commissioned elsewhere")
    report = runner(fast_settings, ledger, make_credentials(list(fast_settings.exchanges)), clock).run(2)
    assert report.verdict in (Verdict.PROCEED, Verdict.PROCEED_WITH_CAUTION), report.to_dict()
    assert report.passed
    out = report.to_dict()
    assert out["phase"] == 2 and {"name", "passed", "detail"} <= set(out["checks"][0])
    assert out["exchanges"] == {"binance": "validated", "okx": "validated", "gate_io": "validated"}
    evidence = ledger.latest_evidence("phase2")
    assert evidence is not None and evidence.passed and evidence.audit_seq == report.evidence_seq
    tail = audit.tail(ledger.engine, 5)
    assert [r.event for r in tail][-3:] == ["council_verdict", "evidence", "commission"]
    assert audit.verify(ledger.engine).ok
    # the ladder's own gate now sees phase-2 evidence
    assert not any("phase-2" in b for b in ledger.promote("operator", None).blockers)


@pytest.mark.timeout(90)
def test_phase2_with_too_few_exchanges_holds(
    fast_settings: Settings, fake_exchange: FakeExchange, clock: FakeClock
) -> None:
    ledger = Ledger.open(fast_settings, clock=clock)
    fake_exchange.play("gate", "maintenance")
    report = runner(fast_settings, ledger, make_credentials(list(fast_settings.exchanges)), clock).run(2)
    assert report.verdict is Verdict.HOLD_OR_INVESTIGATE and not report.passed
    gate = next(c for c in report.checks if c.name == "exchanges validated")
    assert not gate.passed and "2 of 3" in gate.detail
    assert ledger.latest_evidence("phase2") is not None and not ledger.latest_evidence("phase2").passed  # type: ignore[union-attr]


@pytest.mark.timeout(90)
def test_phase2_withdrawal_key_aborts(fast_settings: Settings, fake_exchange: FakeExchange, clock: FakeClock) -> None:
    ledger = Ledger.open(fast_settings, clock=clock)
    fake_exchange.play("okx", "withdraw")
    report = runner(fast_settings, ledger, make_credentials(list(fast_settings.exchanges)), clock).run(2)
    assert report.verdict is Verdict.ABORT


@pytest.mark.timeout(60)
def test_phase3_reads_the_paper_evidence(fake_settings: Settings, clock: FakeClock) -> None:
    ledger = Ledger.open(fake_settings, clock=clock)
    ledger.set_phase(3, "test", "paper")
    run = runner(fake_settings, ledger, {}, clock)
    missing = run.run(3)
    assert not missing.passed and any("paper" in c.detail for c in missing.checks if not c.passed)
    seed_paper(ledger, success_rate=0.90)
    low = run.run(3)
    rate = next(c for c in low.checks if c.name == "paper success rate")
    assert not rate.passed and "90.0%" in rate.detail
    seed_paper(ledger, success_rate=0.98)
    good = run.run(3)
    assert good.passed, good.to_dict()
    assert ledger.latest_evidence("phase3") is not None


@pytest.mark.timeout(120)
def test_phases_4_and_5_from_replayed_trading(
    fast_settings: Settings, fake_exchange: FakeExchange, clock: FakeClock
) -> None:
    for ccxt_id in ("binance", "okx"):
        fake_exchange.play(ccxt_id, "trade")  # a live phase needs keys that can trade
    creds = make_credentials(list(fast_settings.exchanges))
    ledger = Ledger.open(fast_settings, clock=clock)
    ledger.set_phase(4, "test", "controlled live under test")
    run = runner(fast_settings, ledger, creds, clock)

    early = run.run(4)
    assert not early.passed
    assert any("h at rung" in c.detail and not c.passed for c in early.checks)

    trade_round_trips(fast_settings, ledger, clock, Decimal("1.0"))
    review = CheckpointRunner(fast_settings, ledger, clock).run("performance_review")
    # three exchanges, each a 60 USD buy and a 60.60 USD sell
    assert review.data["fills"] == 6 and review.data["notional_usd"] == "361.80", review.summary
    clock.advance(25 * 3600)
    assert ledger.drill("operator")
    report = run.run(4)
    assert report.passed, [c.to_dict() for c in report.checks if not c.passed]
    assert all(c.passed for c in report.checks if c.name.startswith("rung "))

    # promote through the rungs to phase 5 on the ledger, then commission phase 5
    council = council_from_settings(fast_settings)
    ledger.set_phase(5, "test", "full production under test")
    trade_round_trips(fast_settings, ledger, clock, Decimal("0.5"))
    final = CommissionRunner(fast_settings, ledger, council, credentials=creds, clock=clock).run(5)
    assert final.passed, [c.to_dict() for c in final.checks if not c.passed]
    assert ledger.latest_evidence("phase5") is not None
    assert audit.verify(ledger.engine).ok
