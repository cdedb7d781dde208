"""The one store: SQLAlchemy Core tables, engine set-up and the write-transaction discipline.

Who writes what: `order_store` is the only writer of reservations, fills, capital and
per-order audit records; `ladder` moves the phase, rungs and trading state; `audit` is the only
reader of the audit table. This module only describes the tables and opens the store.

Why it is built this way:
- Money is stored as integer micro-dollars (``*_musd``, see `money`). A conditional ``UPDATE ...
  WHERE reserved + deployed + :x <= cap`` on integers is exact on SQLite and PostgreSQL alike;
  floats or SQLite's lossy NUMERIC would let rounding decide whether a cap holds.
- Every write transaction takes the database's write lock before it reads anything it will
  change: ``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` of the audit head on
  PostgreSQL. That makes "read the audit head, append the next record" safe across processes.
- SQLite runs in WAL mode with ``synchronous=NORMAL``: a commit survives a killed process (the
  WAL is in the OS page cache), which is the failure `kill -9` tests; only a power loss can drop
  the last transactions, and never tears one.
- The WAL file stays under `WAL_GOAL_BYTES` because the writers keep it there
  (`store_budget.WalBound`: every commit measures it; `write_tx` and the order store copy it or
  start it over as it grows); no connection checkpoints inside a commit (``wal_autocheckpoint=0``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lyra_governor.chain import GENESIS_HASH
from lyra_governor.errors import StoreUnavailable
from lyra_governor.store_budget import WAL_SIZE_LIMIT, wal_bound

# What a store failure looks like to callers that must not import SQLAlchemy (the governor).
STORE_ERRORS: tuple[type[Exception], ...] = (sa.exc.SQLAlchemyError, StoreUnavailable)

metadata = sa.MetaData()

ladder = sa.Table(
    "lyra_ladder",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("phase", sa.Integer, nullable=False),
    sa.Column("trading_state", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("phase_since", sa.Float, nullable=False),
)

rungs = sa.Table(
    "lyra_rungs",
    metadata,
    sa.Column("exchange", sa.String(64), primary_key=True),
    sa.Column("rung", sa.Integer, nullable=False),
    sa.Column("since", sa.Float, nullable=False),
)

capital = sa.Table(
    "lyra_capital",
    metadata,
    # scope: "<book>:<exchange>" or "<book>:TOTAL"; book is "paper" or "live".
    sa.Column("scope", sa.String(80), primary_key=True),
    sa.Column("cap_musd", sa.BigInteger, nullable=False),
    sa.Column("reserved_musd", sa.BigInteger, nullable=False),
    sa.Column("deployed_musd", sa.BigInteger, nullable=False),
    # Held by ORPHANED reservations (a silent bot's orders that may still be live): still counted
    # against the cap until the bot comes back or an operator releases them.
    sa.Column("orphaned_musd", sa.BigInteger, nullable=False, server_default="0"),
)

reservations = sa.Table(
    "lyra_reservations",
    metadata,
    sa.Column("reservation_id", sa.String(40), primary_key=True),
    sa.Column("bot_id", sa.String(128), nullable=False),
    sa.Column("connector", sa.String(64), nullable=False),
    sa.Column("book", sa.String(8), nullable=False),
    sa.Column("exchange", sa.String(64), nullable=False),
    sa.Column("trading_pair", sa.String(64), nullable=False),
    sa.Column("side", sa.String(8), nullable=False),
    sa.Column("reduce_only", sa.Boolean, nullable=False),
    sa.Column("amount", sa.String(64), nullable=False),
    sa.Column("price", sa.String(64), nullable=False),
    sa.Column("usd_per_quote", sa.String(64), nullable=False),
    sa.Column("reserved_musd", sa.BigInteger, nullable=False),
    sa.Column("filled_amount", sa.String(64), nullable=False, default="0"),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("client_order_id", sa.String(128)),
    sa.Column("mandate_id", sa.String(40)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("closed_at", sa.Float),
    # The strategy asked the exchange to cancel it: a resting close being cancelled no longer
    # counts against the closes that may follow (a stop-loss replacing its take-profit).
    sa.Column("cancel_requested_at", sa.Float),
)


# The one index of reservations besides their key. Every read by state or bot names the state
# (OPEN, ORPHANED: the held ones, a few at any time however long the store's history): then the
# bot, market and side are read off those few. The exchange-wide order-rate budget counts one
# exchange's recent reservations in every state (`order_store.Statements.orders_since`: one
# search per state), covered by the index. A store made before had three (status; bot; exchange
# and time): each reservation written now changes one b-tree, and one WAL page, where it changed
# three (`create_schema` drops them).
reservations_by_state = sa.Index(
    "ix_lyra_reservations_state",
    reservations.c.status,
    reservations.c.exchange,
    reservations.c.book,
    reservations.c.created_at,
)
SUPERSEDED_INDEXES = (
    "ix_lyra_reservations_status", "ix_lyra_reservations_bot_id", "ix_lyra_reservations_exchange_created",
    "ix_lyra_audit_event",  # by `audit_by_rare_event`
)  # fmt: skip

fills = sa.Table(
    "lyra_fills",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("reservation_id", sa.String(40), nullable=False),
    sa.Column("bot_id", sa.String(128), nullable=False),
    sa.Column("book", sa.String(8), nullable=False),
    sa.Column("exchange", sa.String(64), nullable=False),
    sa.Column("trading_pair", sa.String(64), nullable=False),
    sa.Column("side", sa.String(8), nullable=False),
    sa.Column("amount", sa.String(64), nullable=False),
    sa.Column("price", sa.String(64), nullable=False),
    sa.Column("notional_musd", sa.BigInteger, nullable=False),
    sa.Column("fee_musd", sa.BigInteger, nullable=False),
    sa.Column("ts", sa.Float, nullable=False, index=True),
    # The exchange's trade id (or, without one, the fill's own facts): each fill is applied once.
    sa.Column("trade_key", sa.String(160)),
)

fills_by_trade = sa.Index("uq_lyra_fills_trade", fills.c.reservation_id, fills.c.trade_key, unique=True)

bots = sa.Table(
    "lyra_bots",
    metadata,
    sa.Column("bot_id", sa.String(128), primary_key=True),
    sa.Column("last_heartbeat", sa.Float, nullable=False),
    sa.Column("host", sa.String(128), nullable=False, default=""),
    sa.Column("pid", sa.Integer, nullable=False, default=0),
    # Set when this bot may only reduce its positions (it reported an impossible order event);
    # an operator lifts it with `lyra-governor resume --bot`.
    sa.Column("reduce_only_reason", sa.Text),
)

evidence = sa.Table(
    "lyra_evidence",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(64), nullable=False, index=True),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("audit_seq", sa.BigInteger, nullable=False),
)

audit_log = sa.Table(
    "lyra_audit",
    metadata,
    # On SQLite an INTEGER key is the table's rowid: each append then writes one b-tree (and one
    # WAL page) less than with a separate BIGINT key index (a store made before keeps that one).
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=False),
    sa.Column("ts_us", sa.BigInteger, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    # SQLite (`CHAIN_VERSION`): 1 on the chain's last record only, the tip, 0 on every other
    # (each append moves it); the head is the record flagged so. PostgreSQL keeps it 0.
    sa.Column("tip", sa.SmallInteger, nullable=False, server_default="0"),
)

# Records read by their event are the rare ones (alerts, breakers, verdicts, halts...): only those
# are indexed by event. A decision's and an order event's record, most of the chain, are not (one
# b-tree, and one WAL page, less per review and per release); reads of them go by sequence
# number (a cursor), as they did in effect (every decision ever had to be walked by the index).
# SQLite uses a partial index only for a query holding its WHERE term as it is written:
# `audit.records` adds `RARE_EVENT_TERM` to a read of rare events.
FREQUENT_EVENTS = ("decision", "order_event")
RARE_EVENT_TERM = f"event NOT IN ({', '.join(repr(event) for event in FREQUENT_EVENTS)})"
audit_by_rare_event = sa.Index(
    "ix_lyra_audit_rare_event",
    audit_log.c.event,
    sqlite_where=sa.text(RARE_EVENT_TERM),
    postgresql_where=sa.text(RARE_EVENT_TERM),
)

# The audit chain's head. PostgreSQL: moved with each append, and its row is the store's write
# lock (``FOR UPDATE``). SQLite from `CHAIN_VERSION` on: a floor, the chain must reach it (moved
# by the ladder's records and after each WAL copy, not by every decision: a page, and a WAL frame,
# less per commit); the head itself is the tip record. Both catch records cut off the end.
audit_head = sa.Table(
    "lyra_audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)


# SQLite's ``PRAGMA user_version``: 1 from the store whose audit chain carries its tip on its last
# record (`audit_log.tip`); 0 before (the head row moved with each append). `create_schema` upgrades.
CHAIN_VERSION = 1


def chain_by_tip(conn: Connection) -> bool:
    """Whether this store's audit head is its tip record (SQLite from `CHAIN_VERSION` on), not
    the head row (PostgreSQL, or a SQLite store not yet upgraded)."""
    if conn.dialect.name != "sqlite":
        return False
    return int(conn.exec_driver_sql("PRAGMA user_version").scalar() or 0) >= CHAIN_VERSION


WAL_GOAL_BYTES = 64 * 2**20  # the largest WAL file allowed (issue 17), kept by the writers: store_budget.WalBound


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN IMMEDIATE ourselves
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")  # a restarted WAL is cut back to this
    # no checkpoint inside a commit: the WAL's bound decides when (store_budget.WalBound), and an
    # autocheckpoint would hold the checkpoint lock that the bound's TRUNCATE needs
    cur.execute("PRAGMA wal_autocheckpoint=0")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # a reader (`read_tx`) takes a snapshot, never the write lock; everything else may write
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


READ_ONLY = "lyra_read_only"


def _sqlite_query_only(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA query_only=ON")  # after the pragmas above: any write now fails


def _pg_read_only(dbapi_conn: Any, _record: Any) -> None:
    autocommit = dbapi_conn.autocommit
    dbapi_conn.autocommit = True
    with dbapi_conn.cursor() as cur:
        cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    dbapi_conn.autocommit = autocommit


def create_store_engine(url: str, read_only: bool = False) -> Engine:
    """An engine for `url` with Lyra's transaction discipline; creates the SQLite folder.

    `read_only` (the operator's reads: status, phase, audit verify/tail, serve): every
    connection refuses writes (SQLite ``query_only``, PostgreSQL read-only transactions), so a
    read can never change the store nor need the write lock, and works on a read-only file."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # every governor in a process keeps its own connections (a dedicated one, its WAL
        # checkpointer): the paper run's eight bots need more than QueuePool's default 5 + 10
        engine = sa.create_engine(
            url, pool_size=8, max_overflow=56, connect_args={"timeout": 10, "check_same_thread": False}
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
        if read_only:
            sa.event.listen(engine, "connect", _sqlite_query_only)
            return engine.execution_options(**{READ_ONLY: True})  # a deferred BEGIN: never the write lock
        return engine
    from lyra_governor.store_budget import PG_CONNECT_ARGS

    engine = sa.create_engine(
        url, pool_pre_ping=True, pool_size=2, max_overflow=2, connect_args=dict(PG_CONNECT_ARGS)
    )
    if read_only:
        sa.event.listen(engine, "connect", _pg_read_only)
    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def create_schema(engine: Engine, now: float, phase: int = 1) -> None:
    """Create the tables and their single rows if missing (idempotent, safe to race)."""
    try:
        metadata.create_all(engine, checkfirst=True)
    except sa.exc.IntegrityError:  # another process created them at the same moment
        pass
    except sa.exc.ProgrammingError as exc:  # PostgreSQL: concurrent CREATE TABLE
        if "already exists" not in str(exc):
            raise
    _add_missing_columns(engine)
    for index in (fills_by_trade, reservations_by_state, audit_by_rare_event):
        try:  # a store created before the index existed gets it now
            index.create(engine, checkfirst=True)
        except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError) as exc:
            if "already exists" not in str(exc):
                raise
    with engine.begin() as conn:
        if conn.execute(sa.select(ladder.c.id).where(ladder.c.id == 1)).first() is None:
            conn.execute(
                ladder.insert().values(
                    id=1, phase=phase, trading_state="ACTIVE", reason="", updated_at=now, phase_since=now
                )
            )
        if conn.execute(sa.select(audit_head.c.id).where(audit_head.c.id == 1)).first() is None:
            conn.execute(audit_head.insert().values(id=1, seq=0, hash=GENESIS_HASH))
    with engine.begin() as conn:  # superseded by `reservations_by_state`
        for name in SUPERSEDED_INDEXES:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
    if is_sqlite(engine):
        _upgrade_chain(engine)


def _upgrade_chain(engine: Engine) -> None:
    """A SQLite store made before `CHAIN_VERSION`: its last record becomes the chain's tip, in
    one transaction under the write lock (safe to race, idempotent). Only if the head row and
    the last record agree: a store whose chain does not end where its head says (records cut
    off, or added without it) is not upgraded, it is refused, before any order is placed."""
    with engine.begin() as conn:
        version = int(conn.exec_driver_sql("PRAGMA user_version").scalar() or 0)
        if version > CHAIN_VERSION:
            raise StoreUnavailable(
                f"the store at {engine.url.database} was made by a newer Lyra (schema version {version}, "
                f"this one knows {CHAIN_VERSION}); upgrade Lyra to use it"
            )
        if version == CHAIN_VERSION:
            return
        head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).first()
        last = conn.execute(
            sa.select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
        ).first()
        found = (int(last.seq), str(last.hash)) if last is not None else (0, GENESIS_HASH)
        expected = (int(head.seq), str(head.hash)) if head is not None else (0, GENESIS_HASH)
        if found != expected:
            raise StoreUnavailable(
                f"the store at {engine.url.database} cannot be upgraded: its audit head says record "
                f"{expected[0]} and its last record is {found[0]} (or their hashes differ), so records were "
                "removed or added; run `lyra-governor audit verify` to see where, and restore it from a backup"
            )
        if last is not None:
            conn.execute(audit_log.update().where(audit_log.c.seq == found[0]).values(tip=1))
        conn.exec_driver_sql(f"PRAGMA user_version={CHAIN_VERSION}")


def _add_missing_columns(engine: Engine) -> None:
    """Bring a store made by an older Lyra up to these tables: the columns added since are
    nullable or have a server default, so adding them is all it takes (idempotent, safe to race)."""
    inspector = sa.inspect(engine)
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in (c for c in table.columns if c.name not in present):
            kind = column.type.compile(dialect=engine.dialect)
            default = column.server_default
            extra = f" NOT NULL DEFAULT {default.arg}" if isinstance(default, sa.DefaultClause) else ""
            try:
                with engine.begin() as conn:
                    conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}{extra}")
            except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:  # another process added it
                if "duplicate" not in str(exc).lower() and "already exists" not in str(exc).lower():
                    raise


@contextmanager
def read_tx(engine: Engine) -> Iterator[Connection]:
    """One consistent snapshot for a reader that never takes the write lock: a deferred BEGIN on
    SQLite (WAL: the snapshot is fixed at the first read, writers go on), REPEATABLE READ READ
    ONLY on PostgreSQL. What is read inside agrees with itself (a chain and its head, reserved
    capital and the open reservations) however many bots write meanwhile."""
    with engine.connect() as conn:
        conn.execution_options(**{READ_ONLY: True})
        if not is_sqlite(engine):
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            if not is_sqlite(engine):
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            yield conn


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A write transaction holding the store's write lock (see module docstring). On SQLite it
    keeps the WAL's bound like the order path does (store_budget.WalBound): past the hard bound
    the WAL starts over first (its writes are ladder changes and evidence, facts: written even
    if that takes longer than `WAL_FACT_WAIT_S`), and the commit is measured."""
    bound = wal_bound(engine.url.database) if is_sqlite(engine) else None
    if bound is not None and bound.over:
        bound.make_room(WAL_FACT_WAIT_S, fact=True)
    with engine.begin() as conn:
        if not is_sqlite(engine):
            conn.execute(sa.select(audit_head.c.seq).where(audit_head.c.id == 1).with_for_update())
        yield conn
    if bound is not None:
        bound.committed(between=True, always=True)


WAL_FACT_WAIT_S = 2.0  # how long a ladder change or evidence waits for the WAL to start over


def describe_store_error(url: str, exc: BaseException) -> StoreUnavailable:
    """A user-facing error for a store that cannot be reached or used."""
    safe = sa.engine.make_url(url).render_as_string(hide_password=True) if "://" in url else url
    reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
    return StoreUnavailable(
        f"the store at {safe} is unavailable ({reason}); check that the database is running and that "
        "db_url / LYRA_DB_URL points at it"
    )
