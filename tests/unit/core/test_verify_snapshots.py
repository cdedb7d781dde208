"""`audit verify` walks a long chain in short snapshots (audit.verify_prefix): one snapshot over
the whole chain pins a SQLite WAL for as long as the walk takes, and the writers, who keep the
WAL's bound, then refuse orders STORE_BUSY until it ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lyra_governor import audit
from lyra_governor.governor import Governor
from lyra_governor.order_store import append_audit
from lyra_governor.store import audit_log, read_tx, write_tx


def _append(engine: Engine, n: int) -> None:
    with write_tx(engine) as conn:
        for i in range(n):
            append_audit(conn, "note", {"i": i}, "test", 1_700_000_000.0 + i)


def _head(engine: Engine) -> int:
    return audit.head(engine)[0]


def test_the_walk_is_cut_into_short_snapshots_while_bots_append(
    governor: Governor, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = governor.ledger.engine
    _append(engine, 95)
    walked: list[int] = []

    @contextmanager
    def counted(eng: Engine) -> Iterator[Connection]:
        _append(eng, 2)  # a bot appends between the verifier's snapshots
        with read_tx(eng) as conn:
            yield conn
        walked.append(1)

    monkeypatch.setattr(audit, "read_tx", counted)
    prefix = audit.verify_prefix(engine, batch=7, per_snapshot=10)
    assert prefix.failure is None
    assert len(walked) >= 10  # about 100 records at 10 per snapshot (the old verify: one snapshot)
    monkeypatch.undo()
    result = audit.verify(engine)
    assert result.ok, result.problem
    assert result.count == _head(engine)


def test_a_record_altered_early_is_named(governor: Governor) -> None:
    engine = governor.ledger.engine
    _append(engine, 60)
    first = _head(engine) - 55
    with write_tx(engine) as conn:
        conn.execute(sa.update(audit_log).where(audit_log.c.seq == first).values(payload='{"i": -1}'))
    prefix = audit.verify_prefix(engine, per_snapshot=10)
    assert prefix.failure is not None and prefix.failure.first_broken == first
    result = audit.verify(engine)
    assert not result.ok and result.first_broken == first
    assert "altered" in result.problem


def test_a_removed_last_record_is_still_named_in_the_final_snapshot(governor: Governor) -> None:
    engine = governor.ledger.engine
    _append(engine, 30)
    last = _head(engine)
    with write_tx(engine) as conn:
        conn.execute(sa.delete(audit_log).where(audit_log.c.seq == last))
    result = audit.verify(engine, start=audit.verify_prefix(engine, per_snapshot=8))
    assert not result.ok and result.first_broken == last
    assert "removed" in result.problem
