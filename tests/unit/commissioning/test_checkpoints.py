"""The compliance schedule on a simulated clock, against a real SQLite ledger."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from lyra_governor import audit
from lyra_governor.checkpoints import (
    SCHEDULE,
    CheckpointRunner,
    key_paths,
    missed_slots,
    next_due,
    verify_reports,
)
from lyra_governor.config import Settings
from lyra_governor.ledger import Ledger
from lyra_governor.store import audit_log

T0 = 1_800_000_000.0
NAMES = [s.name for s in SCHEDULE]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(settings: Settings, clock: Clock) -> Ledger:
    return Ledger.open(settings, clock=clock)


def ran(results: list) -> list[str]:  # type: ignore[type-arg]
    return [r.name for r in results]


def alerts(ledger: Ledger) -> list[dict]:  # type: ignore[type-arg]
    return [r.payload for r in audit.tail(ledger.engine, 500, event="alert")]


def test_schedule_intervals_are_the_designed_ones() -> None:
    assert {s.name: s.interval_s for s in SCHEDULE} == {
        "ai_health": 900,
        "performance_review": 1800,
        "risk_update": 3600,
        "system_audit": 14400,
        "forensic_report": 86400,
    }


def test_missed_slot_arithmetic() -> None:
    assert next_due(None, T0, 900) == T0
    assert next_due(T0, T0, 900) == T0 + 900
    assert missed_slots(T0, 900, T0 + 449) == 0  # inside the grace half-interval: on time
    assert missed_slots(T0, 900, T0 + 451) == 1
    assert missed_slots(T0, 900, T0 + 900 + 451) == 2


def test_first_run_is_a_baseline_then_each_checkpoint_on_its_interval(
    settings: Settings, ledger: Ledger, clock: Clock
) -> None:
    runner = CheckpointRunner(settings, ledger, clock)
    first = runner.run_due()
    assert ran(first) == NAMES
    assert all(r.ok for r in first), [(r.name, r.summary) for r in first]
    assert all(r.missed == 0 for r in first) and not alerts(ledger)
    for name in NAMES:
        record = ledger.latest_evidence(f"checkpoint.{name}")
        assert record is not None and record.passed and record.payload["ran_at"] == T0
    assert runner.run_due() == []  # nothing is due twice

    clock.now = T0 + 900
    assert ran(runner.run_due()) == ["ai_health"]
    clock.now = T0 + 1800
    assert ran(runner.run_due()) == ["ai_health", "performance_review"]
    clock.now = T0 + 2700
    assert ran(runner.run_due()) == ["ai_health"]
    clock.now = T0 + 3600
    assert ran(runner.run_due()) == ["ai_health", "performance_review", "risk_update"]
    counts = dict.fromkeys(NAMES, 0)
    for tick in range(5, 24 * 4 + 1):  # a day of 15-minute ticks, as serve would drive it
        clock.now = T0 + tick * 900
        for name in ran(runner.run_due()):
            counts[name] += 1
    assert counts == {"ai_health": 92, "performance_review": 46, "risk_update": 23, "system_audit": 6,
                      "forensic_report": 1}  # fmt: skip
    assert not alerts(ledger)
    assert audit.verify(ledger.engine).ok


def test_missed_checkpoints_are_alerts(settings: Settings, ledger: Ledger, clock: Clock) -> None:
    runner = CheckpointRunner(settings, ledger, clock)
    runner.run_due()
    clock.now = T0 + 2 * 3600  # the server was down for two hours
    results = {r.name: r for r in runner.run_due()}
    assert results["ai_health"].missed == 7  # slots at 15, 30, ..., 105 min; 120 min runs now
    assert results["performance_review"].missed == 3
    assert results["risk_update"].missed == 1
    raised = {a["checkpoint"]: a for a in alerts(ledger)}
    assert set(raised) == {"ai_health", "performance_review", "risk_update"}
    assert raised["ai_health"]["level"] == "WARNING" and raised["ai_health"]["missed"] == 7
    # a missed slot is a gap in oversight, not a trading fault: it does not block promotion
    assert ledger.promotion_facts().critical_alerts_since_rung == 0


def test_restart_reads_the_schedule_from_the_ledger(settings: Settings, ledger: Ledger, clock: Clock) -> None:
    CheckpointRunner(settings, ledger, clock).run_due()
    clock.now = T0 + 600
    restarted = CheckpointRunner(settings, Ledger.open(settings, clock=clock), clock)
    assert restarted.run_due() == []
    assert restarted.due()["ai_health"] == T0 + 900


def test_forensic_report_is_signed_over_the_chain_head(settings: Settings, ledger: Ledger, clock: Clock) -> None:
    runner = CheckpointRunner(settings, ledger, clock)
    result = runner.run("forensic_report")
    assert result.ok and result.report_path
    private, public = key_paths(settings)
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(private.parent.stat().st_mode) == 0o700
    envelope = json.loads(Path(result.report_path).read_text())
    head = envelope["report"]["audit"]
    assert head["ok"] and head["head_seq"] >= 1 and len(head["head_hash"]) == 64
    assert [c.ok for c in verify_reports(settings, ledger.engine)] == [True]
    # the key is created once and its fingerprint audited
    created = [r for r in audit.tail(ledger.engine, 100) if r.event == "forensic_key_created"]
    assert len(created) == 1 and created[0].payload["fingerprint"] == envelope["key_fingerprint"]
    assert "PRIVATE" not in Path(result.report_path).read_text()


def test_altered_report_fails_verification(settings: Settings, ledger: Ledger, clock: Clock) -> None:
    path = Path(CheckpointRunner(settings, ledger, clock).run("forensic_report").report_path or "")
    envelope = json.loads(path.read_text())
    envelope["report"]["state"]["phase"] = 5
    path.write_text(json.dumps(envelope))
    [check] = verify_reports(settings, ledger.engine)
    assert not check.ok and "altered" in check.problem


def test_rewritten_history_fails_verification(settings: Settings, ledger: Ledger, clock: Clock) -> None:
    CheckpointRunner(settings, ledger, clock).run("forensic_report")
    with ledger.engine.begin() as conn:  # an attacker rewrites the record the report vouched for
        seq = conn.execute(sa.select(sa.func.max(audit_log.c.seq))).scalar_one() - 1
        conn.execute(audit_log.update().where(audit_log.c.seq == seq).values(hash="0" * 64))
    [check] = verify_reports(settings, ledger.engine)
    assert not check.ok and "history changed" in check.problem


def test_system_audit_fails_on_a_broken_chain(settings: Settings, ledger: Ledger, clock: Clock) -> None:
    ledger.audit_append("note", {"x": 1}, "test")
    with ledger.engine.begin() as conn:
        conn.execute(audit_log.update().where(audit_log.c.seq == 1).values(payload='{"x": 2}'))
    result = CheckpointRunner(settings, ledger, clock).run("system_audit")
    assert not result.ok and "audit chain broken at record 1" in result.summary
    assert ledger.latest_evidence("checkpoint.system_audit") is not None


def test_no_reports_is_not_a_failure(settings: Settings) -> None:
    assert verify_reports(settings) == []


@pytest.mark.timeout(30)
def test_run_forever_ticks_until_stopped(settings: Settings, ledger: Ledger, clock: Clock) -> None:
    import threading

    runner = CheckpointRunner(settings, ledger, clock)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run_forever, args=(stop, 0.01), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while ledger.latest_evidence("checkpoint.forensic_report") is None and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert all(ledger.latest_evidence(f"checkpoint.{n}") is not None for n in NAMES)


@pytest.mark.timeout(30)
def test_arun_forever_stops_on_its_event(settings: Settings, ledger: Ledger, clock: Clock) -> None:
    import asyncio

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(CheckpointRunner(settings, ledger, clock).arun_forever(stop, 0.01))
        for _ in range(500):
            if ledger.latest_evidence("checkpoint.forensic_report") is not None:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert ledger.latest_evidence("checkpoint.ai_health") is not None


def test_signing_key_can_live_in_the_vault(settings: Settings, ledger: Ledger, clock: Clock) -> None:
    from lyra_governor.vault import Vault

    vault = Vault.create(Path(settings.data_dir) / "vault" / "lyra.vault", "a long test password")
    result = CheckpointRunner(settings, ledger, clock, vault=vault).run("forensic_report")
    assert result.ok, result.summary
    private, public = key_paths(settings)
    assert not private.exists() and public.exists()
    assert "forensic/ed25519" in vault.names()
    assert [c.ok for c in verify_reports(settings, ledger.engine)] == [True]
    # without the vault the key is unavailable: the checkpoint fails rather than re-keying
    clock.now += 86_400
    locked = CheckpointRunner(settings, ledger, clock).run("forensic_report")
    assert not locked.ok and "LYRA_VAULT_PASSWORD" in locked.summary
    assert [c.ok for c in verify_reports(settings, ledger.engine)] == [True]


def test_ai_health_fails_a_degraded_council_and_says_why(settings: Settings, ledger: Ledger, clock: Clock) -> None:
    from lyra_governor.consensus import Council
    from lyra_governor.consensus.local import LocalVoter
    from lyra_governor.models import Ballot, CouncilContext

    class Broke(LocalVoter):
        def vote_now(self, context: CouncilContext) -> Ballot:
            return Ballot(role=self.role.name, model="m", weight=self.role.weight, error="402", error_kind="billing")

    roles = settings.consensus.roles
    # 6 of 8 answer: 75 % is above phase 1's 70 % but a 0.8 quorum makes it degraded
    strict = settings.model_copy(update={"consensus": settings.consensus.model_copy(update={"quorum": 0.8})})
    council = Council(strict, [*(LocalVoter(r) for r in roles[:6]), *(Broke(r) for r in roles[6:])])
    results = {r.name: r for r in CheckpointRunner(strict, ledger, clock, council=council).run_due()}
    health = results["ai_health"]
    assert not health.ok and "degraded (quorum 80%)" in health.summary and "2 billing" in health.summary
    record = ledger.latest_evidence("checkpoint.ai_health")
    assert record is not None and record.payload["degraded"] is True
