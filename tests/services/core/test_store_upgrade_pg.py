"""A PostgreSQL store made before 2026-12-03 (no `tip` column on the audit table; three indexes on
reservations where there is one; every audit record indexed by its event) is brought up to date
when opened, keeps its records, and the order path goes on with its head row (PostgreSQL keeps
the head row moved with each append: its row is the store's write lock)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from lyra_governor import audit
from lyra_governor.config import load_settings
from lyra_governor.governor import Governor
from lyra_governor.ledger import Ledger
from lyra_governor.store import create_store_engine
from tests.standing_mandate import StandingMandate
from tests.store_faults import proposal
from tests.watched import UNTHROTTLED, watch


@pytest.mark.timeout(90)
def test_an_old_postgresql_store_is_brought_up_to_date(lyra_home: Path, pg_url: str) -> None:
    settings = load_settings(None, use_env=False, db_url=pg_url, data_dir=str(lyra_home), **UNTHROTTLED)
    ledger = Ledger.open(settings)
    ledger.set_phase(3, "test", "paper trading under test")
    ledger.close()
    engine = create_store_engine(pg_url)
    try:
        with engine.begin() as conn:  # back to the old schema
            conn.exec_driver_sql("ALTER TABLE lyra_audit DROP COLUMN tip")
            conn.exec_driver_sql("DROP INDEX ix_lyra_reservations_state")
            conn.exec_driver_sql("DROP INDEX ix_lyra_audit_rare_event")
            conn.exec_driver_sql("CREATE INDEX ix_lyra_audit_event ON lyra_audit (event)")
            conn.exec_driver_sql("CREATE INDEX ix_lyra_reservations_status ON lyra_reservations (status)")
            conn.exec_driver_sql("CREATE INDEX ix_lyra_reservations_bot_id ON lyra_reservations (bot_id)")
            conn.exec_driver_sql(
                "CREATE INDEX ix_lyra_reservations_exchange_created ON lyra_reservations (exchange, created_at)"
            )
        before = audit.verify(engine)
        assert before.ok and before.count >= 1, before.problem
    finally:
        engine.dispose()
    gov = Governor.from_settings(settings, "bot-pg", mandates=StandingMandate())  # opening it upgrades it
    try:
        watch(gov, "binance_paper_trade", "BTC-USDT", Decimal("60010"))
        indexes = {i["name"] for i in sa.inspect(gov.ledger.engine).get_indexes("lyra_reservations")}
        assert {i for i in indexes if i.startswith("ix_")} == {"ix_lyra_reservations_state"}
        audit_indexes = {i["name"] for i in sa.inspect(gov.ledger.engine).get_indexes("lyra_audit")}
        assert audit_indexes == {"ix_lyra_audit_rare_event"}
        columns = {c["name"] for c in sa.inspect(gov.ledger.engine).get_columns("lyra_audit")}
        assert "tip" in columns
        for _ in range(3):
            decision = gov.review(proposal("bot-pg"))
            assert decision.allowed, decision.message
        after = audit.verify(gov.ledger.engine)
        assert after.ok and after.count >= before.count + 3, after.problem
        assert gov.store.orders_since("paper", "binance", 0.0) == 3
        gov.ledger.audit_append("alert", {"level": "WARNING", "message": "pg"}, "test")
        assert [r.payload["message"] for r in audit.records(gov.ledger.engine, events=("alert",))] == ["pg"]
    finally:
        gov.close()
