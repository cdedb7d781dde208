"""A scrape reads the latest evidence of a dozen kinds (the checkpoints, the council's health
check, the commissioning evidence): `Ladder.latest_evidences` reads them in one statement, with
the same records `latest_evidence` finds one kind at a time."""

from __future__ import annotations

import sqlalchemy as sa

from lyra_governor.governor import Governor
from lyra_governor.metrics import LyraCollector
from lyra_governor.status import collect_status


def test_one_statement_finds_what_each_kind_finds_alone(governor: Governor) -> None:
    ledger = governor.ledger
    for i in range(3):
        ledger.record_evidence("checkpoint.15m", {"ran_at": 100.0 + i, "summary": f"run {i}"}, i != 1, "test")
        ledger.record_evidence("phase1", {"n": i}, True, "test")
    ledger.record_evidence("drill", {"seen_state": "HALTED"}, False, "test")
    kinds = ["checkpoint.15m", "phase1", "drill", "checkpoint.24h", "phase2"]
    statements: list[str] = []
    sa.event.listen(ledger.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    found = ledger.latest_evidences(kinds)
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) == 1, statements
    assert set(found) == {"checkpoint.15m", "phase1", "drill"}  # never recorded: absent
    for kind in kinds:
        assert found.get(kind) == ledger.latest_evidence(kind), kind
    assert found["checkpoint.15m"].payload == {"ran_at": 102.0, "summary": "run 2"}
    assert ledger.latest_evidences([]) == {}


def test_a_scrape_and_a_status_read_the_evidence_once_each(governor: Governor) -> None:
    ledger, settings = governor.ledger, governor.settings
    ledger.record_evidence("checkpoint.ai_health", {"response_rate": 0.8, "ran_at": 5.0}, True, "test")
    asked: list[str] = []
    one_by_one = ledger.latest_evidence

    def counted(kind: str):  # type: ignore[no-untyped-def]
        asked.append(kind)
        return one_by_one(kind)

    ledger.latest_evidence = counted  # type: ignore[method-assign]
    families = {f.name: f for f in LyraCollector(settings, ledger).collect()}
    assert families["lyra_council_response_rate"].samples[0].value == 0.8
    status = collect_status(settings, ledger=ledger)
    assert status["council"]["response_rate"] == 0.8
    # only the promotion facts still ask one kind at a time (phase1, phase2, phase3_paper twice)
    assert all(kind in ("phase1", "phase2", "phase3_paper", "drill") for kind in asked), asked
