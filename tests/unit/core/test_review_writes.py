"""What one allowed decision writes to a SQLite store's WAL: every page it changes is one more
frame written inside the review's COMMIT (about 5 us each on this machine, the largest part
of the review's own cost; issue 14). A real store file, a real governor, the WAL read by
SQLite's own checkpoint counters."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

from lyra_governor.config import load_settings
from lyra_governor.governor import Governor
from lyra_governor.models import OrderEvent, OrderEventKind
from tests.standing_mandate import StandingMandate
from tests.store_faults import PinnedSnapshot, proposal
from tests.watched import UNTHROTTLED, watch

# capital (both scopes share a page), the reservation row, its key and its one index
# (store.reservations_by_state), the audit record (the tip, store.CHAIN_VERSION; a decision's
# record is not indexed by event, store.audit_by_rare_event). 9 frames before 2026-12-03: the
# audit head row, the event index, and three indexes (status; bot; exchange and time) for one
DECISION_FRAMES = 5
# what releasing it writes: capital, the reservation row, its index entry, the audit record
# (6 before: the head row, the event index)
RELEASE_FRAMES = 4


def _frames_of_one_decision(gov: Governor, db: Path) -> tuple[int, int]:
    """WAL frames the next allowed decision writes, and its release: the WAL is copied back
    first, so each commit starts it over and its frame count is that commit's alone."""
    side = sqlite3.connect(db, isolation_level=None)
    try:
        side.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        decision = gov.review(proposal("bot-w"))
        assert decision.allowed, decision.message
        _busy, frames, _copied = side.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        gov.on_order_event(OrderEvent(kind=OrderEventKind.CANCELLED, reservation_id=decision.reservation_id or ""))
        _busy, released, _copied = side.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(frames), int(released)
    finally:
        side.close()


def _paper_governor(db: Path) -> Governor:
    """A governor in phase 3 on the SQLite file `db`, watching binance BTC-USDT at 60,010."""
    cfg = load_settings(None, use_env=False, db_url=f"sqlite:///{db}", **UNTHROTTLED)
    gov = Governor.from_settings(cfg, "bot-w", mandates=StandingMandate())
    gov.ledger.set_phase(3, "test", "paper trading under test")
    watch(gov, "binance_paper_trade", "BTC-USDT", Decimal("60010"))
    return gov


def test_an_allowed_decision_writes_one_wal_frame_per_changed_page(lyra_home: Path) -> None:
    db = lyra_home / "lyra.db"
    gov = _paper_governor(db)
    try:
        seen = [_frames_of_one_decision(gov, db) for _ in range(5)]
        # the fewest: another connection of the process (the WAL checkpointer) may hold the WAL
        # for a moment, and then the commit appends to it instead of starting it over
        assert min(review for review, _ in seen) <= DECISION_FRAMES, seen
        assert min(release for _, release in seen) <= RELEASE_FRAMES, seen
        with sqlite3.connect(db) as conn:  # the audit table is keyed by its rowid: no separate key index
            indexes = [row[1] for row in conn.execute("PRAGMA index_list('lyra_audit')")]
        assert not [name for name in indexes if name.startswith("sqlite_autoindex")], indexes
    finally:
        gov.close()


def test_past_the_wal_bound_a_review_is_refused_before_it_writes(lyra_home: Path) -> None:
    """The review's own write transaction (`OrderStore.reserve`, which opens it itself on
    SQLite) keeps the WAL's hard bound like every other writer (store_budget.WalBound): while a
    reader pins the WAL past the bound the review is denied STORE_BUSY and nothing is reserved;
    once the reader is gone the next review starts the WAL over and is allowed."""
    from lyra_governor.models import DenialCode
    from lyra_governor.store_budget import WalBound

    db = lyra_home / "lyra.db"
    gov = _paper_governor(db)
    try:
        assert gov.review(proposal("bot-w")).allowed
        gov.store._wal = bound = WalBound(str(db), soft_bytes=2**40, hard_bytes=256 * 2**10)  # no thread
        pinned = PinnedSnapshot(gov.ledger.engine).start()
        pad = "x" * 8192
        while not bound.over:
            gov.store.audit("wal_test", f'{{"pad": "{pad}"}}', "test", 2.0)
        held = gov.exposure("paper").total.used_usd
        refused = gov.review(proposal("bot-w"))
        assert refused.code is DenialCode.STORE_BUSY, refused.message
        assert gov.exposure("paper").total.used_usd == held  # nothing reserved
        pinned.leave()
        pinned.join()
        assert gov.review(proposal("bot-w")).allowed
        assert bound.truncated >= 1
    finally:
        gov.close()


def test_every_read_of_reservations_by_state_or_bot_searches_an_index(lyra_home: Path) -> None:
    """The one index (store.reservations_by_state) stands for the three it replaced: no read of
    reservations by state, bot or exchange (the order path's, the rate budget's, the sweeps',
    status' and reconcile's) scans the whole table, which on a store of millions of reservations
    would take seconds."""
    import sqlalchemy as sa

    from lyra_governor import order_store
    from lyra_governor.ledger import Ledger

    db = lyra_home / "lyra.db"
    cfg = load_settings(None, use_env=False, db_url=f"sqlite:///{db}")
    ledger = Ledger.open(cfg)
    seen: list[tuple[str, tuple[object, ...]]] = []

    def keep(_conn: object, _cur: object, statement: str, parameters: object, *_args: object) -> None:
        if "lyra_reservations" in statement and statement.lstrip().startswith("SELECT"):
            seen.append((statement, tuple(parameters) if isinstance(parameters, (list, tuple)) else ()))

    try:
        sa.event.listen(ledger.engine, "before_cursor_execute", keep)
        ledger.open_reservations()
        ledger.open_reservations("bot-1")
        ledger.held_reservations("binance_paper_trade", "BTC-USDT")
        ledger.stray_reservations()
        sa.event.remove(ledger.engine, "before_cursor_execute", keep)
        assert len(seen) == 4, seen
        stmts = order_store.statements(ledger.engine.dialect)
        for name in ("resting_closes", "held_of_bot", "silent", "open_of_silent", "orphans", "orders_since"):
            sql = getattr(stmts, name)
            seen.append((sql.text, sql.params(**{key: "x" for key in sql.order if key not in sql.fixed})))
        with ledger.engine.connect() as conn:
            for statement, params in seen:
                plan = [str(row[3]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)]
                assert not [step for step in plan if step.startswith("SCAN lyra_reservations")], (statement, plan)
    finally:
        ledger.close()


def test_the_rate_budget_counts_the_reservations_of_every_state(lyra_home: Path) -> None:
    """The exchange-wide order-rate count searches the index one state at a time: an order
    counts whatever its reservation's state now is, and only its exchange, book and window."""
    from lyra_governor.models import ReservationStatus
    from lyra_governor.order_store import OrderStore
    from lyra_governor.store import create_schema, create_store_engine, reservations

    engine = create_store_engine(f"sqlite:///{lyra_home / 'lyra.db'}")
    try:
        create_schema(engine, 0.0)
        row = {"bot_id": "b", "connector": "binance_paper_trade", "book": "paper", "exchange": "binance",
               "trading_pair": "BTC-USDT", "side": "BUY", "reduce_only": False, "amount": "1", "price": "1",
               "usd_per_quote": "1", "reserved_musd": 0, "filled_amount": "0", "created_at": 100.0}  # fmt: skip
        with engine.begin() as conn:
            for i, state in enumerate(ReservationStatus):
                conn.execute(reservations.insert().values(**row, reservation_id=f"res-{i}", status=state.value))
            others = ({"book": "live"}, {"exchange": "okx"}, {"created_at": 10.0})
            for i, other in enumerate(others):
                conn.execute(reservations.insert().values(**{**row, **other}, reservation_id=f"x-{i}", status="OPEN"))
        store = OrderStore(engine)
        try:
            assert store.orders_since("paper", "binance", 50.0) == len(ReservationStatus)
        finally:
            store.close()
    finally:
        engine.dispose()


def test_reads_of_rare_events_search_their_index_and_find_them(lyra_home: Path) -> None:
    """Only rare events are indexed (store.audit_by_rare_event): a read of them searches that
    index (SQLite uses it only with its WHERE term, which `audit.records` adds), and finds
    them among the decisions and order events, which are not in it."""
    import sqlalchemy as sa

    from lyra_governor import audit
    from lyra_governor.order_store import append_audit
    from lyra_governor.store import create_schema, create_store_engine, write_tx

    engine = create_store_engine(f"sqlite:///{lyra_home / 'lyra.db'}")
    try:
        create_schema(engine, 0.0)
        with write_tx(engine) as conn:
            for i in range(30):
                event = ("decision", "order_event", "breaker" if i % 10 == 0 else "decision")[i % 3]
                append_audit(conn, event, {"i": i}, "test", 100.0 + i)
        seen: list[tuple[str, object]] = []
        sa.event.listen(engine, "before_cursor_execute", lambda _c, _k, sql, params, *_: seen.append((sql, params)))
        found = audit.records(engine, events=("breaker",), since=105.0)
        assert [r.payload["i"] for r in found] == [20]
        assert [r.payload["i"] for r in audit.records(engine, events=("breaker", "decision"), since=118.0)][:2] == [
            18, 20
        ]  # fmt: skip
        query, params = next((sql, p) for sql, p in seen if "FROM lyra_audit" in sql)
        with engine.connect() as conn:
            plan = [str(row[3]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}", params)]
        assert plan == ["SEARCH lyra_audit USING INDEX ix_lyra_audit_rare_event (event=?)"], plan
    finally:
        engine.dispose()
