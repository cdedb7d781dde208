"""The order store's SQL is built from the Core tables; these tests check that the two agree
(every statement runs against a schema created from `store.metadata`, and the reservation row
type names exactly the columns its INSERT needs)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from lyra_governor import order_store
from lyra_governor.order_store import OrderStore, ReservationRow, Sql, Statements
from lyra_governor.store import capital, create_schema, create_store_engine, fills, reservations
from tests.store_faults import PinnedSnapshot, WriteLockInThread


def _statements(stmts: Statements) -> dict[str, Sql]:
    return {name: value for name, value in vars(stmts).items() if isinstance(value, Sql)}


def test_the_reservation_row_names_every_column_its_insert_needs() -> None:
    fields = {f.name for f in dataclasses.fields(ReservationRow)}
    columns = {c.name for c in reservations.columns}
    assert fields <= columns, f"not columns of lyra_reservations: {fields - columns}"
    required = {c.name for c in reservations.columns if not c.nullable and c.default is None}
    assert required <= fields, f"required columns the INSERT leaves out: {required - fields}"
    insert = order_store.statements(sqlite.dialect()).insert_reservation
    assert insert.order == order_store.RESERVATION_COLUMNS and insert.text.count("?") == len(fields)
    assert [c for c in insert.order] == [c.name for c in reservations.columns if c.name in fields]


def test_the_fill_insert_names_every_required_column() -> None:
    required = {c.name for c in fills.columns if not c.nullable and c.default is None and not c.primary_key}
    assert required <= set(order_store.FILL_COLUMNS)


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()], ids=["sqlite", "postgresql"])
def test_every_statement_binds_every_parameter_by_position(dialect: sa.engine.Dialect) -> None:
    stmts = Statements(dialect)
    found = _statements(stmts)
    assert len(found) >= 15
    mark = "?" if dialect.name == "sqlite" else "%s"
    for name, sql in found.items():
        assert sql.text.count(mark) == len(sql.order), name
        missing = [k for k in sql.order if k not in sql.fixed]
        with pytest.raises(KeyError):  # a call that forgets a parameter fails loudly, never binds NULL
            if missing:
                sql.params()
            else:
                raise KeyError("no caller-supplied parameters")
    head = stmts.head.text
    assert ("FOR UPDATE" in head) is (dialect.name == "postgresql")  # the write lock on PostgreSQL


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()], ids=["sqlite", "postgresql"])
def test_the_decisions_statements_bound_by_tuple_get_what_their_named_parameters_give(
    dialect: sa.engine.Dialect,
) -> None:
    """The statements each decision runs are given tuples in `*_ORDER` (no `Sql.params` dict):
    the same values, in the same places, as binding them by name."""
    stmts = Statements(dialect)
    assert stmts.audit_insert.params(
        seq=7, ts_us=8, actor="a", event="e", payload="{}", prev_hash="p", hash="h", tip=1
    ) == (7, 8, "a", "e", "{}", "p", "h", 1)  # fmt: skip
    assert stmts.move_head.params(new_seq=7, new_hash="h", old_seq=6) == (7, "h", 1, 6)
    assert stmts.untip.params(old_seq=6) == (6,)
    assert stmts.head_and_states.params(bid="bot-1") == ("bot-1", 1)
    assert stmts.reserve_scope.params(amount_musd=5, scope="paper:binance") == (5, "paper:binance", 5)
    assert stmts.audit_insert.order == order_store.AUDIT_INSERT_ORDER


def test_every_statement_runs_against_the_tables(tmp_path: Path) -> None:
    """SQLite's EXPLAIN prepares each statement: an unknown table or column fails here."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'lyra.db'}")
    create_schema(engine, 0.0)
    stmts = order_store.statements(engine.dialect)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for name, sql in _statements(stmts).items():
            params = sql.params(**{key: None for key in sql.order if key not in sql.fixed})
            try:
                cur.execute(f"EXPLAIN {sql.text}", params)
            except Exception as exc:  # pragma: no cover - the assertion names the statement
                pytest.fail(f"statement {name} does not agree with the tables: {exc}")
    finally:
        raw.close()
        engine.dispose()


@pytest.mark.parametrize("reduce_only", [False, True])
@pytest.mark.parametrize("client_order_id", [None, "cid-1"])
@pytest.mark.parametrize("mandate_id", [None, "mnd-1"])
def test_a_reviews_insert_stores_what_the_generic_insert_stores(
    tmp_path: Path, reduce_only: bool, client_order_id: str | None, mandate_id: str | None
) -> None:
    """`Statements.review_inserts` writes a review's constants (nothing filled, OPEN), its flag
    and its absent ids into the statement: the stored row, types included, is the same as the
    generic INSERT binding every value stores."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'lyra.db'}")
    create_schema(engine, 0.0)
    stmts = order_store.statements(engine.dialect)
    row = dataclasses.replace(
        _close_of("bot", "0.002"), reduce_only=reduce_only, client_order_id=client_order_id, mandate_id=mandate_id
    )
    text, pick = stmts.review_inserts[(reduce_only, client_order_id is None, mandate_id is None)]
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(stmts.insert_reservation.text, row.values())
        cur.execute(text, pick(dataclasses.replace(row, reservation_id="res-review")))
        columns = ", ".join(f"{c.name}, typeof({c.name})" for c in reservations.columns if c.name != "reservation_id")
        generic, review = cur.execute(f"SELECT {columns} FROM lyra_reservations ORDER BY reservation_id").fetchall()
        assert review == generic
    finally:
        raw.close()
        engine.dispose()


def test_a_review_reserves_through_its_own_insert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`OrderStore.reserve` of a review's row (OPEN, nothing filled) runs a `review_inserts`
    statement; any other row the generic INSERT."""
    from decimal import Decimal

    from lyra_governor.store import write_tx

    engine = create_store_engine(f"sqlite:///{tmp_path / 'lyra.db'}")
    create_schema(engine, 0.0)
    with write_tx(engine) as conn:
        order_store.set_caps(conn, {"live:binance": 10**12, "live:TOTAL": 10**12})
    store = order_store.OrderStore(engine)
    picked: list[str] = []
    key = (False, True, False)
    text, pick = store.sql.review_inserts[key]
    recording = (text, lambda row: picked.append(row.reservation_id) or pick(row))
    monkeypatch.setitem(store.sql.review_inserts, key, recording)
    try:
        review = dataclasses.replace(_close_of("bot", "0.001", "BUY"), mandate_id="mnd-1")
        store.reserve(review, "{}", "bot", 1.0, False, Decimal(1))
        store.reserve(dataclasses.replace(review, reservation_id="res-2", filled_amount="0.0005"), "{}", "bot", 2.0,
                      False, Decimal(1))  # fmt: skip
        assert picked == [review.reservation_id]
        assert store.reservation_status("res-2") is order_store.ReservationStatus.OPEN
    finally:
        store.close()
        engine.dispose()


def _close_of(bot: str, amount: str, side: str = "SELL") -> ReservationRow:
    return ReservationRow(
        reservation_id=f"res-{bot}-{side}-{amount}", bot_id=bot, connector="binance", book="live",
        exchange="binance", trading_pair="BTC-USDT", side=side, reduce_only=side == "SELL", amount=amount,
        price="60000", usd_per_quote="1", reserved_musd=0 if side == "SELL" else 120_000_000, filled_amount="0",
        status="OPEN", client_order_id=None, mandate_id=None, created_at=1.0,
    )  # fmt: skip


def test_a_position_remembered_under_the_lock_is_read_again_after_another_writer(tmp_path: Path) -> None:
    """The writer memo keeps a market's position between its own transactions; a fill written
    by another connection (another process of the same bot) must be seen by the next close."""
    from decimal import Decimal

    from lyra_governor.store import write_tx

    engine = create_store_engine(f"sqlite:///{tmp_path / 'lyra.db'}")
    create_schema(engine, 0.0)
    with write_tx(engine) as conn:
        order_store.set_caps(conn, {"live:binance": 10**12, "live:TOTAL": 10**12})
    mine, other = order_store.OrderStore(engine), order_store.OrderStore(engine)
    one = Decimal("1.05")
    try:
        bought = _close_of("bot", "0.002", "BUY")
        mine.reserve(bought, "{}", "bot", 1.0, False, one)
        mine.fill(bought.reservation_id, None, Decimal("0.002"), Decimal(60000), 0, "bot", 1.0, "t1")
        first = _close_of("bot", "0.002")
        mine.reserve(first, "{}", "bot", 2.0, True, one)  # position 0.002 read and remembered
        mine.release(first.reservation_id, order_store.ReservationStatus.CANCELLED, {}, "bot", 2.5)
        again = dataclasses.replace(bought, reservation_id="res-bot-again")
        other.reserve(again, "{}", "bot", 3.0, False, one)
        other.fill(again.reservation_id, None, Decimal("0.002"), Decimal(60000), 0, "bot", 3.0, "t2")
        mine.reserve(_close_of("bot", "0.004"), "{}", "bot", 4.0, True, one)  # 0.004 held now: it reduces
        with pytest.raises(order_store.NotReducing):
            mine.reserve(_close_of("bot", "0.0001"), "{}", "bot", 5.0, True, one)  # all of it is resting
    finally:
        mine.close()
        other.close()
        engine.dispose()


def test_the_states_read_under_the_lock_are_kept_only_while_nothing_else_committed(tmp_path: Path) -> None:
    """SQLite: a review's head-and-states read is skipped while no other connection committed
    and this one committed nothing a cached read returns; a halt committed by another
    connection, and a restriction this store wrote itself, are each seen by the next review."""
    from decimal import Decimal

    from lyra_governor import audit
    from lyra_governor.store import ladder, write_tx

    engine = create_store_engine(f"sqlite:///{tmp_path / 'lyra.db'}")
    create_schema(engine, 0.0)
    with write_tx(engine) as conn:
        order_store.set_caps(conn, {"live:binance": 10**12, "live:TOTAL": 10**12})
    store = order_store.OrderStore(engine)
    one, reads = Decimal(1), []
    head_read = store.sql.head_and_states.text.split("?")[0]  # the trace shows the values bound

    def buy(n: int) -> ReservationRow:
        return dataclasses.replace(_close_of("bot", "0.001", "BUY"), reservation_id=f"res-{n}")

    def set_state(state: str) -> None:
        with write_tx(engine) as conn:
            conn.execute(ladder.update().where(ladder.c.id == 1).values(trading_state=state, reason="test"))

    try:
        store.heartbeat("bot", 0.5, "host", 1)  # a known bot: the fill below restricts it
        store.reserve(buy(1), "{}", "bot", 1.0, False, one)
        store._raw.dbapi_connection.set_trace_callback(lambda sql: reads.append(sql.startswith(head_read)))
        store.reserve(buy(2), "{}", "bot", 2.0, False, one)
        store.release("res-2", order_store.ReservationStatus.CANCELLED, {}, "bot", 2.5)
        store.reserve(buy(3), "{}", "bot", 3.0, False, one)
        assert not any(reads)  # the head its own commits left, the states as read for res-1
        set_state("HALTED")
        with pytest.raises(order_store.TradingStopped, match="halted"):
            store.reserve(buy(4), "{}", "bot", 4.0, False, one)
        assert reads.count(True) == 1
        set_state("ACTIVE")
        store.reserve(buy(5), "{}", "bot", 5.0, False, one)
        assert reads.count(True) == 2
        # an impossible fill restricts the bot through this store (a commit that changes a state)
        store.fill("res-5", None, Decimal("0.001"), Decimal(6_000_000), 0, "bot", 6.0, "t1")
        with pytest.raises(order_store.TradingStopped) as stopped:
            store.reserve(buy(6), "{}", "bot", 7.0, False, one)
        assert stopped.value.state == order_store.BOT_REDUCE_ONLY and reads.count(True) == 3
        def other_bot(n: int, **changes: object) -> ReservationRow:
            return dataclasses.replace(buy(n), bot_id="other", **changes)

        store.reserve(other_bot(7), "{}", "other", 8.0, False, one)  # another bot: its states read
        assert reads.count(True) == 4
        # another connection appends; this store reads the head it left, then refuses (over the
        # cap, rolled back): the next review reads again, the one after keeps what that read
        elsewhere = order_store.OrderStore(engine)
        elsewhere.reserve(dataclasses.replace(buy(8), bot_id="else"), "{}", "else", 9.0, False, one)
        elsewhere.close()
        with pytest.raises(order_store.CapExceeded):
            store.reserve(other_bot(9, reserved_musd=10**13), "{}", "other", 10.0, False, one)
        assert reads.count(True) == 5
        store.reserve(other_bot(10), "{}", "other", 11.0, False, one)
        store.reserve(other_bot(11), "{}", "other", 12.0, False, one)
        assert reads.count(True) == 6
        assert audit.verify(engine).ok
    finally:
        store.close()
        engine.dispose()


def test_past_the_wal_bound_a_review_is_refused_and_an_order_event_waits_for_the_wal_to_start_over(
    tmp_path: Path,
) -> None:
    """store_budget.WalBound on the order path, with a 256 KB hard bound: while a reader pins the
    WAL no write may add to it; the order path's own calls are refused STORE_BUSY (fail closed),
    an order event (the longer budget) waits until the reader is gone, starts the WAL over and
    is written. Nothing half-written: the refused calls left no audit record."""
    import threading
    import time

    from lyra_governor.order_store import OrderStore
    from lyra_governor.store_budget import EVENT_BUDGET_MS, StoreBusy, WalBound

    db = tmp_path / "lyra.db"
    engine = create_store_engine(f"sqlite:///{db}")
    create_schema(engine, 0.0)
    store = OrderStore(engine)
    store._wal = bound = WalBound(str(db), soft_bytes=2**40, hard_bytes=256 * 2**10)  # no thread: the writer alone
    pad = "x" * 8192
    store.audit("wal_test", f'{{"pad": "{pad}"}}', "test", 1.0)
    pinned = PinnedSnapshot(engine).start()
    written = 1
    while not bound.over:  # 8 KB a record, until the WAL is past the bound
        store.audit("wal_test", f'{{"n": {written}, "pad": "{pad}"}}', "test", 2.0)
        written += 1
    assert bound.refused == 0
    with pytest.raises(StoreBusy, match="WAL"):
        store.audit("wal_test", '{"refused": true}', "test", 3.0)
    assert bound.refused == 1 and bound.over
    threading.Timer(0.3, pinned.leave).start()  # the reader finishes while the event waits
    started = time.monotonic()
    store.audit("wal_test", '{"event": true}', "test", 4.0, EVENT_BUDGET_MS)
    assert 0.2 < time.monotonic() - started < EVENT_BUDGET_MS / 1000
    pinned.join()
    assert bound.truncated >= 1 and bound.overruns == 0 and bound.size < bound.hard_bytes
    with engine.connect() as conn:
        events = [r[0] for r in conn.execute(sa.text("SELECT payload FROM lyra_audit WHERE actor = 'test'"))]
    assert len(events) == written + 1 and '{"event": true}' in events and '{"refused": true}' not in events
    store.close()
    engine.dispose()


def test_an_order_event_waits_its_longer_budget_for_a_held_write_lock_and_a_review_does_not(tmp_path: Path) -> None:
    """A review waits for the write lock up to its own lock wait (112 ms of 150); an order event
    (2 s budget) tries again until its longer lock wait (1.5 s) has passed: a lock held 0.5 s by another
    connection denies the review STORE_BUSY and delays the event, which is written."""
    import time

    from lyra_governor.order_store import OrderStore
    from lyra_governor.store_budget import EVENT_BUDGET_MS, StoreBusy

    db = tmp_path / "lyra.db"
    engine = create_store_engine(f"sqlite:///{db}")
    create_schema(engine, 0.0)
    store = OrderStore(engine)
    store.audit("warm", "{}", "test", 1.0)
    holder = WriteLockInThread(db)
    started = time.monotonic()
    with pytest.raises(StoreBusy):
        store.audit("review", "{}", "test", 2.0)
    assert time.monotonic() - started < 0.5
    holder.release_after(0.5)
    started = time.monotonic()
    store.audit("event", "{}", "test", 3.0, EVENT_BUDGET_MS)
    assert 0.3 < time.monotonic() - started < 1.5
    holder.join()
    with engine.connect() as conn:
        events = [r[0] for r in conn.execute(sa.text("SELECT event FROM lyra_audit WHERE actor = 'test'"))]
    assert events == ["warm", "event"]
    store.close()
    engine.dispose()


WalStore = tuple[Path, OrderStore]


@pytest.fixture
def wal_store(tmp_path: Path) -> Iterator[WalStore]:
    """A fresh SQLite store's file and its order store (closed after the test)."""
    db = tmp_path / "lyra.db"
    engine = create_store_engine(f"sqlite:///{db}")
    create_schema(engine, 0.0)
    store = OrderStore(engine)
    yield db, store
    store.close()
    engine.dispose()


def test_the_heartbeats_copy_starts_the_wal_over_itself_not_the_next_review(wal_store: WalStore) -> None:
    """`OrderStore.checkpoint` (the heartbeat's copy) leaves the WAL started over: the first
    writer of a WAL started over fsyncs its header and cuts the file back, which cost the
    first review after a copy 0.8-5 ms (once 100 ms) in bench/governor_review.py."""
    import sqlite3

    db, store = wal_store
    for i in range(200):
        store.audit("wal_test", f'{{"n": {i}}}', "test", float(i))
    look = sqlite3.connect(db, isolation_level=None)
    before = look.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert before[1] > 200  # frames in the WAL
    assert store.checkpoint(min_writes=1)
    after = look.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert after[0] == 0 and after[1] <= 2, after  # started over: only the copy's own write is in it
    store.audit("wal_test", '{"next": true}', "test", 300.0)  # the next write goes on in the same WAL
    assert look.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1] <= 12
    look.close()


def test_a_copy_that_starts_the_wal_over_leaves_the_order_stores_page_cache_as_it_was(wal_store: WalStore) -> None:
    """The WAL started over after a copy (the heartbeat's, and an order event's past the soft
    bound) is first written by the order store's own connection: another connection's write
    makes SQLite drop this connection's whole page cache (`PRAGMA data_version` counts those
    resets), and the first review after each copy read every page it touched again (17 reads,
    420-600 us against ~120 us warm in bench/governor_review.py). On the old code the copy's
    own connection wrote first: the version moved."""
    import sqlite3

    from lyra_governor.store_budget import EVENT_BUDGET_MS

    db, store = wal_store
    look = sqlite3.connect(db, isolation_level=None)

    def version() -> int:
        with store._cursor() as cur:
            return store._version(cur)[0]

    for i in range(200):
        store.audit("wal_test", f'{{"n": {i}}}', "test", float(i))
    before = version()
    assert store.checkpoint(min_writes=1)
    assert look.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1] <= 2  # started over
    assert version() == before
    assert store._wal is not None
    store._wal.soft_bytes, store._wal.every_s = 1, 0.0  # an order event's commit copies at once
    store.audit("order_event", '{"n": "event"}', "test", 400.0, budget_ms=EVENT_BUDGET_MS)
    assert store._wal.all_copied and look.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1] <= 2
    assert version() == before
    look.close()


def test_the_heartbeat_copies_only_what_was_written_since_an_order_events_copy(wal_store: WalStore) -> None:
    """An order event's commit past the soft bound copies the WAL and starts it over; the
    heartbeat's copy (`checkpoint`) then counts only the commits since: one right after it
    would copy a few commits for its fsyncs, and the review after each copy runs cold (in
    bench/governor_review.py the copy at review 389 was followed by the heartbeat's at 500).
    On the old code the count went on from the heartbeat's own last copy."""
    from lyra_governor.store_budget import EVENT_BUDGET_MS

    _, store = wal_store
    for i in range(20):
        store.audit("wal_test", f'{{"n": {i}}}', "test", float(i))
    assert store._wal is not None
    store._wal.soft_bytes, store._wal.every_s, store._wal.measure_every = 1, 0.0, 1  # the event copies
    store.audit("order_event", '{"n": "event"}', "test", 20.0, budget_ms=EVENT_BUDGET_MS)
    assert store._wal.all_copied
    assert not store.checkpoint(min_writes=3)  # nothing since the event's copy
    store._wal.soft_bytes = 2**40  # no more copies by the commits themselves
    for i in range(3):
        store.audit("wal_test", f'{{"after": {i}}}', "test", 30.0 + i)
    assert store.checkpoint(min_writes=3)


def test_a_held_write_lock_is_tried_again_every_fraction_of_a_millisecond(tmp_path: Path) -> None:
    """The order path does not sleep in SQLite's busy handler (1, 2, 5, 10, 15, 20, 25 ms between
    tries, invisible to the caller): it tries BEGIN IMMEDIATE itself every 0.2 ms, so a lock held
    60 ms by another bot's connection is tried many times and taken soon after it is released.
    On the old code the statement ran once (the handler's retries are inside it)."""
    from lyra_governor.order_store import OrderStore

    db = tmp_path / "lyra.db"
    engine = create_store_engine(f"sqlite:///{db}")
    create_schema(engine, 0.0)
    store = OrderStore(engine)
    store.audit("warm", "{}", "test", 1.0)
    statements: list[str] = []
    store._raw.driver_connection.set_trace_callback(statements.append)
    holder = WriteLockInThread(db)
    holder.release_after(0.06)
    store.audit("after the lock", "{}", "test", 2.0)
    holder.join()
    tries = sum(s.startswith("BEGIN IMMEDIATE") for s in statements)
    assert tries >= 10, statements
    with engine.connect() as conn:
        events = [r[0] for r in conn.execute(sa.text("SELECT event FROM lyra_audit WHERE actor = 'test'"))]
    assert events == ["warm", "after the lock"]
    store.close()
    engine.dispose()


def _moved_by_reading(ex: list[int] | None, tot: list[int] | None, reserved: int, deployed: int,
                      orphaned: int) -> tuple[list[int], list[int]]:  # fmt: skip
    """What `OrderStore._move` did before it wrote without reading (a read, then the exchange's
    amounts floored at 0 and the total moved by what the exchange's moved): the rows after,
    (cap, reserved, deployed, orphaned), a missing row read as zeros."""
    e, t = ex or [0, 0, 0, 0], tot or [0, 0, 0, 0]
    after_ex = [e[0], max(0, e[1] + reserved), max(0, e[2] + deployed), max(0, e[3] + orphaned)]
    moved = [after_ex[i] - e[i] for i in range(4)]
    return after_ex, [t[0], *(max(0, t[i] + moved[i]) for i in (1, 2, 3))]


def assert_moves_as_by_reading(url: str) -> None:
    """`OrderStore._move` against the arithmetic it had when it read the rows first, on the
    store at `url`: each row with some amounts, deltas that leave them, reach 0 exactly or would
    go below it (a floor engages: the exchange's row then stops at 0 and the total moves by what
    the exchange's moved, not by the delta), and a missing exchange or total row. And
    `OrderStore._give_back` (a release's `_move`, deploying nothing) writes the same rows."""
    engine = create_store_engine(url)
    create_schema(engine, 0.0)
    store = OrderStore(engine)
    cases = [
        ([10, 100, 50, 20], [30, 300, 80, 40], (-40, 25, 0)),  # no floor: the deltas themselves
        ([10, 100, 50, 20], [30, 300, 80, 40], (-100, -50, -20)),  # each reaches 0 exactly
        ([10, 30, 50, 20], [30, 300, 80, 40], (-40, 0, 0)),  # the exchange's floor: the total moves by -30
        ([10, 30, 50, 20], [30, 10, 80, 40], (-40, -60, -5)),  # both floors
        ([10, 0, 0, 5], [30, 0, 0, 0], (7, 0, -5)),  # the total below what the exchange gives back
        (None, [30, 300, 80, 40], (5, -3, 0)),  # no exchange row: the total moves by max(0, delta)
        ([10, 100, 50, 20], None, (-40, 25, 0)),  # no total row: nothing written to it, read as 0s
        (None, None, (5, 0, 0)),
        ([10, 100, 0, 20], [30, 300, 0, 40], (-100, 0, -20)),  # a release's: each reaches 0 exactly
        ([10, 100, 0, 20], [30, 120, 0, 40], (-150, 0, 0)),  # a release's past what is held: floored
    ]
    moves = [(*case, False) for case in cases] + [(*case, True) for case in cases if case[2][1] == 0]
    try:
        for ex, tot, (reserved, deployed, orphaned), quiet in moves:
            with engine.begin() as conn:
                conn.execute(sa.delete(capital))
                for scope, row in (("paper:kraken", ex), ("paper:TOTAL", tot)):
                    if row is not None:
                        names = ("cap_musd", "reserved_musd", "deployed_musd", "orphaned_musd")
                        conn.execute(sa.insert(capital).values(scope=scope, **dict(zip(names, row, strict=True))))
            with store._cursor(write=True) as cur:
                store._begin_write(cur)
                if quiet:  # a release's: the same writes, no rows answered
                    store._give_back(cur, "paper", "kraken", reserved=reserved, orphaned=orphaned)
                    answer = None
                else:
                    answer = store._move(cur, "paper", "kraken", reserved=reserved, orphaned=orphaned,
                                         deployed=deployed)  # fmt: skip
                store._commit(cur)
            after_ex, after_tot = _moved_by_reading(ex, tot, reserved, deployed, orphaned)
            case = (ex, tot, reserved, deployed, orphaned, quiet)
            if not quiet:
                assert answer == [("paper:kraken", *after_ex), ("paper:TOTAL", *after_tot)], case
            with engine.connect() as conn:
                rows = {r[0]: list(r[1:]) for r in conn.execute(sa.select(*capital.c)).all()}
            assert rows == {
                **({"paper:kraken": after_ex} if ex is not None else {}),
                **({"paper:TOTAL": after_tot} if tot is not None else {}),
            }, case
    finally:
        store.close()
        engine.dispose()


def test_capital_moves_without_a_read_as_they_did_with_one(tmp_path: Path) -> None:
    """The exchange's row and the total's written without reading them first (UPDATE ...
    RETURNING) hold what they held when `_move` read them, floors and missing rows included.
    The same check runs on PostgreSQL in tests/services/core/test_capital_moves_pg.py."""
    assert_moves_as_by_reading(f"sqlite:///{tmp_path / 'lyra.db'}")


def test_below_the_soft_bound_order_events_measure_the_wal_on_the_writers_cadence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below the soft bound an order event's commit (`between`) measures the WAL every
    `measure_every`-th commit of the process's writers, as a review's does (one count for
    both); a ladder change (`always`) and any commit once past the soft bound measure it every
    time, so a copy past the soft bound still happens between decisions. On the old code every
    order event ran the stat."""
    from lyra_governor.store_budget import WalBound

    bound = WalBound(str(tmp_path / "lyra.db"), measure_every=4)
    measured: list[int] = []
    monkeypatch.setattr(bound, "measure", lambda: measured.append(1) or bound.size)
    for i in range(8):
        bound.committed(between=i % 2 == 0)  # order events and reviews alike
    assert len(measured) == 2
    bound.committed(between=True, always=True)
    assert len(measured) == 3
    bound.size = bound.soft_bytes  # past the soft bound: every commit (a review's: no copy)
    for _ in range(3):
        bound.committed()
    assert len(measured) == 6
