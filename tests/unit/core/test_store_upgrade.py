"""A SQLite store made before `store.CHAIN_VERSION` (its audit head a row moved with every
append; three indexes on reservations: status, bot, exchange and time; every record indexed by
its event) opens, is upgraded in place
and keeps its data and its chain; one whose chain does not end where its head says, or made by
a newer Lyra, is refused before anything is written. Then the tip (the flag only the chain's
last record carries): records cut off the end are found by `audit.verify`, and no writer
appends after them."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from lyra_governor import audit
from lyra_governor.chain import GENESIS_HASH, canonical_json, record_hash
from lyra_governor.config import load_settings
from lyra_governor.errors import StoreUnavailable
from lyra_governor.governor import Governor
from lyra_governor.models import DenialCode
from lyra_governor.order_store import append_audit
from lyra_governor.store import CHAIN_VERSION, audit_log, create_schema, create_store_engine, write_tx
from tests.standing_mandate import StandingMandate
from tests.store_faults import proposal
from tests.watched import UNTHROTTLED, watch

# What `create_schema` made at 9f9fd21 (the tables' DDL as SQLite keeps it, the indexes it had).
OLD_DDL = """
CREATE TABLE lyra_ladder (id INTEGER NOT NULL, phase INTEGER NOT NULL, trading_state VARCHAR(16) NOT NULL,
    reason TEXT NOT NULL, updated_at FLOAT NOT NULL, phase_since FLOAT NOT NULL, PRIMARY KEY (id));
CREATE TABLE lyra_rungs (exchange VARCHAR(64) NOT NULL, rung INTEGER NOT NULL, since FLOAT NOT NULL,
    PRIMARY KEY (exchange));
CREATE TABLE lyra_capital (scope VARCHAR(80) NOT NULL, cap_musd BIGINT NOT NULL, reserved_musd BIGINT NOT NULL,
    deployed_musd BIGINT NOT NULL, orphaned_musd BIGINT DEFAULT '0' NOT NULL, PRIMARY KEY (scope));
CREATE TABLE lyra_reservations (reservation_id VARCHAR(40) NOT NULL, bot_id VARCHAR(128) NOT NULL,
    connector VARCHAR(64) NOT NULL, book VARCHAR(8) NOT NULL, exchange VARCHAR(64) NOT NULL,
    trading_pair VARCHAR(64) NOT NULL, side VARCHAR(8) NOT NULL, reduce_only BOOLEAN NOT NULL,
    amount VARCHAR(64) NOT NULL, price VARCHAR(64) NOT NULL, usd_per_quote VARCHAR(64) NOT NULL,
    reserved_musd BIGINT NOT NULL, filled_amount VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL,
    client_order_id VARCHAR(128), mandate_id VARCHAR(40), created_at FLOAT NOT NULL, closed_at FLOAT,
    cancel_requested_at FLOAT, PRIMARY KEY (reservation_id));
CREATE INDEX ix_lyra_reservations_bot_id ON lyra_reservations (bot_id);
CREATE INDEX ix_lyra_reservations_status ON lyra_reservations (status);
CREATE INDEX ix_lyra_reservations_exchange_created ON lyra_reservations (exchange, created_at);
CREATE TABLE lyra_fills (id INTEGER NOT NULL, reservation_id VARCHAR(40) NOT NULL, bot_id VARCHAR(128) NOT NULL,
    book VARCHAR(8) NOT NULL, exchange VARCHAR(64) NOT NULL, trading_pair VARCHAR(64) NOT NULL,
    side VARCHAR(8) NOT NULL, amount VARCHAR(64) NOT NULL, price VARCHAR(64) NOT NULL,
    notional_musd BIGINT NOT NULL, fee_musd BIGINT NOT NULL, ts FLOAT NOT NULL, trade_key VARCHAR(160),
    PRIMARY KEY (id));
CREATE UNIQUE INDEX uq_lyra_fills_trade ON lyra_fills (reservation_id, trade_key);
CREATE INDEX ix_lyra_fills_ts ON lyra_fills (ts);
CREATE TABLE lyra_bots (bot_id VARCHAR(128) NOT NULL, last_heartbeat FLOAT NOT NULL, host VARCHAR(128) NOT NULL,
    pid INTEGER NOT NULL, reduce_only_reason TEXT, PRIMARY KEY (bot_id));
CREATE TABLE lyra_evidence (id INTEGER NOT NULL, kind VARCHAR(64) NOT NULL, passed BOOLEAN NOT NULL,
    payload TEXT NOT NULL, actor VARCHAR(128) NOT NULL, ts FLOAT NOT NULL, audit_seq BIGINT NOT NULL,
    PRIMARY KEY (id));
CREATE INDEX ix_lyra_evidence_kind ON lyra_evidence (kind);
CREATE TABLE lyra_audit (seq INTEGER NOT NULL, ts_us BIGINT NOT NULL, actor VARCHAR(128) NOT NULL,
    event VARCHAR(64) NOT NULL, payload TEXT NOT NULL, prev_hash VARCHAR(64) NOT NULL, hash VARCHAR(64) NOT NULL,
    PRIMARY KEY (seq));
CREATE INDEX ix_lyra_audit_event ON lyra_audit (event);
CREATE TABLE lyra_audit_head (id INTEGER NOT NULL, seq BIGINT NOT NULL, hash VARCHAR(64) NOT NULL, PRIMARY KEY (id));
"""

RECORDS = 5


def _old_store(db: Path, head_says: int = RECORDS) -> None:
    """An old-schema store: the ladder in phase 3, one OPEN reservation holding 6 USD, `RECORDS`
    chained audit records and the head row at record `head_says` (`RECORDS`: intact)."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.executescript(OLD_DDL)
        conn.execute("BEGIN")
        conn.execute("INSERT INTO lyra_ladder VALUES (1, 3, 'ACTIVE', '', 1.0, 1.0)")
        for scope in ("paper:binance", "paper:TOTAL"):
            conn.execute("INSERT INTO lyra_capital VALUES (?, 1000000000, 6000000, 0, 0)", (scope,))
        conn.execute(
            "INSERT INTO lyra_reservations (reservation_id, bot_id, connector, book, exchange, trading_pair, side, "
            "reduce_only, amount, price, usd_per_quote, reserved_musd, filled_amount, status, created_at) VALUES "
            "('res-old', 'bot-old', 'binance_paper_trade', 'paper', 'binance', 'BTC-USDT', 'BUY', 0, '0.0001', "
            "'60000', '1', 6000000, '0', 'OPEN', 1.0)"
        )
        digest, hashes = GENESIS_HASH, {0: GENESIS_HASH}
        for seq in range(1, RECORDS + 1):
            payload = canonical_json({"i": seq})
            prev, digest = digest, record_hash(seq, seq * 1_000_000, "old", "note", payload, digest)
            conn.execute("INSERT INTO lyra_audit VALUES (?, ?, 'old', 'note', ?, ?, ?)",
                         (seq, seq * 1_000_000, payload, prev, digest))  # fmt: skip
            hashes[seq] = digest
        conn.execute("INSERT INTO lyra_audit_head VALUES (1, ?, ?)", (head_says, hashes[head_says]))
        conn.execute("COMMIT")
    finally:
        conn.close()


def _governor(db: Path) -> Governor:
    cfg = load_settings(None, use_env=False, db_url=f"sqlite:///{db}", **UNTHROTTLED)
    gov = Governor.from_settings(cfg, "bot-w", mandates=StandingMandate())
    if gov.ledger.state().phase != 3:
        gov.ledger.set_phase(3, "test", "paper trading under test")
    watch(gov, "binance_paper_trade", "BTC-USDT", Decimal("60010"))
    return gov


def _facts(db: Path) -> dict[str, object]:
    conn = sqlite3.connect(db)
    try:
        return {
            "version": conn.execute("PRAGMA user_version").fetchone()[0],
            "tips": conn.execute("SELECT seq FROM lyra_audit WHERE tip = 1").fetchall(),
            "indexes": sorted(r[1] for r in conn.execute("PRAGMA index_list('lyra_reservations')")),
            "audit_indexes": sorted(r[1] for r in conn.execute("PRAGMA index_list('lyra_audit')")),
            "records": conn.execute("SELECT count(*) FROM lyra_audit").fetchone()[0],
        }
    finally:
        conn.close()


def test_an_old_store_is_upgraded_in_place_and_keeps_its_data_and_chain(lyra_home: Path) -> None:
    db = lyra_home / "lyra.db"
    _old_store(db)
    gov = _governor(db)  # opening it is what upgrades it
    try:
        facts = _facts(db)
        assert facts["version"] == CHAIN_VERSION
        assert facts["tips"] == [(RECORDS,)]  # the last record is the tip
        assert [n for n in facts["indexes"] if n.startswith("ix_")] == ["ix_lyra_reservations_state"]  # type: ignore[attr-defined]
        assert facts["audit_indexes"] == ["ix_lyra_audit_rare_event"]  # the rare events only
        assert gov.ledger.open_reservations("bot-old")[0]["reservation_id"] == "res-old"  # its data kept
        assert gov.exposure("paper").total.reserved_usd == Decimal(6)
        verified = audit.verify(gov.ledger.engine)
        assert verified.ok and verified.count == RECORDS, verified.problem
        decision = gov.review(proposal("bot-w"))  # the order path appends after the old records
        assert decision.allowed, decision.message
        after = audit.verify(gov.ledger.engine)
        assert after.ok and after.count > RECORDS, after.problem
        assert _facts(db)["tips"] == [(after.head_seq,)]
    finally:
        gov.close()


def test_an_old_store_whose_chain_does_not_end_at_its_head_is_refused(lyra_home: Path) -> None:
    """Its last records were cut off before it was upgraded (the head row says more): flagging
    its last record as the tip would hide that, so it is not upgraded, and says why."""
    db = lyra_home / "lyra.db"
    _old_store(db)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DELETE FROM lyra_audit WHERE seq = ?", (RECORDS,))
    conn.close()
    engine = create_store_engine(f"sqlite:///{db}")
    try:
        with pytest.raises(StoreUnavailable, match=rf"cannot be upgraded: its audit head says record {RECORDS}"):
            create_schema(engine, 2.0)
    finally:
        engine.dispose()
    assert _facts(db)["version"] == 0 and _facts(db)["tips"] == []  # left as it was


def test_a_store_of_a_newer_schema_is_refused(lyra_home: Path) -> None:
    db = lyra_home / "lyra.db"
    engine = create_store_engine(f"sqlite:///{db}")
    try:
        create_schema(engine, 1.0)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"PRAGMA user_version={CHAIN_VERSION + 1}")
        with pytest.raises(StoreUnavailable, match="made by a newer Lyra"):
            create_schema(engine, 2.0)
    finally:
        engine.dispose()


def test_records_cut_off_the_end_are_found_and_nothing_is_appended_after_them(lyra_home: Path) -> None:
    """Two records cut off the end of an upgraded store's chain: `verify` names the first one
    missing, and the next review is denied (STORE_UNAVAILABLE) without writing any record that
    would link to the cut chain and so hide the cut."""
    db = lyra_home / "lyra.db"
    gov = _governor(db)
    try:
        for _ in range(3):
            assert gov.review(proposal("bot-w")).allowed
        last = audit.verify(gov.ledger.engine).head_seq
        with write_tx(gov.ledger.engine) as conn:
            conn.execute(sa.delete(audit_log).where(audit_log.c.seq >= last - 1))
        result = audit.verify(gov.ledger.engine)
        assert not result.ok and result.first_broken == last - 1, result
        assert "removed" in result.problem
        refused = gov.review(proposal("bot-w"))
        assert refused.code is DenialCode.STORE_UNAVAILABLE, refused.message
        assert _facts(db)["records"] == last - 2  # nothing appended
    finally:
        gov.close()


def test_a_chain_cut_down_to_nothing_is_found_by_its_floor(lyra_home: Path) -> None:
    """Every record deleted: the chain looks new, but the head row still names the last ladder
    record (the floor, moved by `append_audit`), so `verify` reports the records removed."""
    db = lyra_home / "lyra.db"
    engine = create_store_engine(f"sqlite:///{db}")
    try:
        create_schema(engine, 1.0)
        with write_tx(engine) as conn:
            for i in range(3):
                append_audit(conn, "note", {"i": i}, "test", 1.0)
        assert audit.verify(engine).ok
        with write_tx(engine) as conn:
            conn.execute(sa.delete(audit_log))
        result = audit.verify(engine)
        assert not result.ok and result.first_broken == 1, result
        assert "had reached record 3" in result.problem
    finally:
        engine.dispose()


def test_a_record_flagged_as_the_tip_before_the_end_is_named(lyra_home: Path) -> None:
    db = lyra_home / "lyra.db"
    engine = create_store_engine(f"sqlite:///{db}")
    try:
        create_schema(engine, 1.0)
        with write_tx(engine) as conn:
            for i in range(4):
                append_audit(conn, "note", {"i": i}, "test", 1.0)
            conn.execute(audit_log.update().where(audit_log.c.seq == 2).values(tip=1))
        result = audit.verify(engine)
        assert not result.ok and result.first_broken == 2
        assert "flagged as the chain's tip but records follow it" in result.problem
    finally:
        engine.dispose()
