"""The one store: SQLAlchemy Core tables, engine set-up and the write-transaction discipline.

Why it is built this way:
- Money is stored as integer micro-dollars (``*_musd``). A conditional ``UPDATE ... WHERE
  reserved + deployed + :x <= cap`` on integers is exact on SQLite and PostgreSQL alike; floats
  or SQLite's lossy NUMERIC would let rounding decide whether a cap holds.
- Every write transaction takes the database's write lock before it reads anything it will
  change: ``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` of the audit head on
  PostgreSQL. That makes "read the audit head, append the next record" safe across processes.
- SQLite runs in WAL mode with ``synchronous=NORMAL``: a commit survives a killed process (the
  WAL is in the OS page cache), which is the failure `kill -9` tests; only a power loss can drop
  the last transactions, and never tears one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lyra_governor.errors import StoreUnavailable

MICRO = Decimal(1_000_000)

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
)

reservations = sa.Table(
    "lyra_reservations",
    metadata,
    sa.Column("reservation_id", sa.String(40), primary_key=True),
    sa.Column("bot_id", sa.String(128), nullable=False, index=True),
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
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("client_order_id", sa.String(128)),
    sa.Column("mandate_id", sa.String(40)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("closed_at", sa.Float),
)

# The exchange-wide order-rate budget counts recent reservations per exchange (all bots).
reservations_by_exchange = sa.Index(
    "ix_lyra_reservations_exchange_created", reservations.c.exchange, reservations.c.created_at
)

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
)

bots = sa.Table(
    "lyra_bots",
    metadata,
    sa.Column("bot_id", sa.String(128), primary_key=True),
    sa.Column("last_heartbeat", sa.Float, nullable=False),
    sa.Column("host", sa.String(128), nullable=False, default=""),
    sa.Column("pid", sa.Integer, nullable=False, default=0),
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
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("ts_us", sa.BigInteger, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("event", sa.String(64), nullable=False, index=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

audit_head = sa.Table(
    "lyra_audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

GENESIS_HASH = "0" * 64


def to_musd(usd: Decimal) -> int:
    """USD -> integer micro-dollars, rounded half-even (banker's rounding, no drift)."""
    return int((usd * MICRO).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def from_musd(musd: int) -> Decimal:
    return Decimal(musd) / MICRO


@dataclass(frozen=True)
class FillEffect:
    """What one fill does to a reservation and its capital rows (pure arithmetic)."""

    notional_musd: int
    release_musd: int  # reserved capital the fill turns over (or gives back)
    deployed_delta_musd: int  # + for a buy, - for a sell (floored at 0 by the store)
    done: Decimal  # filled amount after this fill
    fully: bool  # the reservation is now closed as FILLED


def fill_effect(row: Any, filled_amount: Decimal, fill_price: Decimal) -> FillEffect:
    """The arithmetic of a fill, kept apart from the SQL that applies it (`HotPath.fill`)."""
    usd_per_quote = Decimal(row["usd_per_quote"])
    notional = to_musd(filled_amount * fill_price * usd_per_quote)
    amount = Decimal(row["amount"])
    done = Decimal(row["filled_amount"]) + filled_amount
    left = int(row["reserved_musd"])
    fully = done >= amount
    if fully:
        release = left
    else:
        original = to_musd(amount * Decimal(row["price"]) * usd_per_quote) if not row["reduce_only"] else 0
        release = min(left, to_musd(from_musd(original) * filled_amount / amount)) if amount else left
    sign = 1 if row["side"] == "BUY" else -1
    return FillEffect(notional, release, sign * notional, done, fully)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN IMMEDIATE ourselves
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_store_engine(url: str) -> Engine:
    """An engine for `url` with Lyra's transaction discipline; creates the SQLite folder."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 10, "check_same_thread": False})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)


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
    try:  # a store created before the index existed gets it now
        reservations_by_exchange.create(engine, checkfirst=True)
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


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A write transaction holding the store's write lock (see module docstring)."""
    with engine.begin() as conn:
        if not is_sqlite(engine):
            conn.execute(sa.select(audit_head.c.seq).where(audit_head.c.id == 1).with_for_update())
        yield conn


def describe_store_error(url: str, exc: BaseException) -> StoreUnavailable:
    """A user-facing error for a store that cannot be reached or used."""
    safe = sa.engine.make_url(url).render_as_string(hide_password=True) if "://" in url else url
    reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
    return StoreUnavailable(
        f"the store at {safe} is unavailable ({reason}); check that the database is running and that "
        "db_url / LYRA_DB_URL points at it"
    )


FILL_ROW_COLUMNS = (
    "book", "exchange", "reserved_musd", "status", "amount", "price", "usd_per_quote", "filled_amount",
    "reduce_only", "side", "bot_id", "trading_pair",
)  # fmt: skip


class TradingStopped(Exception):
    """A halt or gradual stop found under the write lock while reserving capital."""

    def __init__(self, state: str, reason: str) -> None:
        super().__init__(f"trading is {state.lower()}: {reason}")
        self.state = state
        self.reason = reason


class HotPath:
    """The governor's per-order writes on one dedicated DBAPI connection with fixed SQL.

    Why: building SQLAlchemy Core statements costs more than the SQLite commit itself (about
    1 ms per decision against a 300 us budget). The statements here are the same ones the
    Core tables describe, written out once per dialect; the transaction discipline is the one
    of `write_tx` (BEGIN IMMEDIATE on SQLite, the audit head row locked on PostgreSQL).
    """

    def __init__(self, engine: Engine) -> None:
        import threading

        self.engine = engine
        self.sqlite = is_sqlite(engine)
        self._raw: Any = None
        self._lock = threading.Lock()
        mark = "?" if self.sqlite else "%s"
        lock_head = "" if self.sqlite else " FOR UPDATE"

        def sql(text: str) -> str:
            return text.replace("?", mark)

        self.sql_head = sql("SELECT seq, hash FROM lyra_audit_head WHERE id = 1" + lock_head)  # noqa: S608
        self.sql_audit = sql(
            "INSERT INTO lyra_audit (seq, ts_us, actor, event, payload, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        self.sql_move_head = sql("UPDATE lyra_audit_head SET seq = ?, hash = ? WHERE id = 1 AND seq = ?")
        self.sql_reserve = sql(
            "UPDATE lyra_capital SET reserved_musd = reserved_musd + ? "
            "WHERE scope IN (?, ?) AND reserved_musd + deployed_musd + ? <= cap_musd"
        )
        self.sql_insert_reservation = sql(
            "INSERT INTO lyra_reservations (reservation_id, bot_id, connector, book, exchange, trading_pair, side, "
            "reduce_only, amount, price, usd_per_quote, reserved_musd, filled_amount, status, client_order_id, "
            "mandate_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '0', 'OPEN', ?, ?, ?)"
        )
        self.sql_get_reservation = sql(
            "SELECT book, exchange, reserved_musd, status FROM lyra_reservations WHERE reservation_id = ?"
        )
        self.sql_capital = sql(
            "SELECT scope, cap_musd, reserved_musd, deployed_musd FROM lyra_capital WHERE scope LIKE ?"
        )
        self.sql_close_reservation = sql(
            "UPDATE lyra_reservations SET status = ?, reserved_musd = 0, closed_at = ? WHERE reservation_id = ?"
        )
        # host and pid too: a restarted bot (new process, maybe another host) is shown as it runs now
        self.sql_beat = sql("UPDATE lyra_bots SET last_heartbeat = ?, host = ?, pid = ? WHERE bot_id = ?")
        self.sql_new_bot = sql("INSERT INTO lyra_bots (bot_id, last_heartbeat, host, pid) VALUES (?, ?, ?, ?)")
        self.sql_silent = sql(
            "SELECT b.bot_id FROM lyra_bots b WHERE b.last_heartbeat < ? AND EXISTS "
            "(SELECT 1 FROM lyra_reservations r WHERE r.bot_id = b.bot_id AND r.status = 'OPEN')"
        )
        self.sql_fill_row = sql(
            f"SELECT {', '.join(FILL_ROW_COLUMNS)} FROM lyra_reservations WHERE reservation_id = ?"  # noqa: S608
        )
        self.sql_adjust = sql(
            "UPDATE lyra_capital SET "
            "reserved_musd = CASE WHEN reserved_musd < ? THEN 0 ELSE reserved_musd - ? END, "
            "deployed_musd = CASE WHEN deployed_musd + ? < 0 THEN 0 ELSE deployed_musd + ? END "
            "WHERE scope IN (?, ?)"
        )
        self.sql_fill_reservation = sql(
            "UPDATE lyra_reservations SET reserved_musd = ?, filled_amount = ?, status = ?, closed_at = ? "
            "WHERE reservation_id = ?"
        )
        self.sql_insert_fill = sql(
            "INSERT INTO lyra_fills (reservation_id, bot_id, book, exchange, trading_pair, side, amount, price, "
            "notional_musd, fee_musd, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self.sql_orders_since = sql(
            "SELECT COUNT(*) FROM lyra_reservations WHERE exchange = ? AND created_at > ? AND book = ?"
        )
        self.sql_bot_fills = sql(
            "SELECT side, amount FROM lyra_fills WHERE bot_id = ? AND book = ? AND exchange = ? AND trading_pair = ?"
        )
        self._writes_since_checkpoint = 0

    def close(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            with contextlib.suppress(Exception):  # a broken connection has nothing left to protect
                raw.close()

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        """A cursor on the dedicated connection; (re)connects, and on any database error rolls
        back, drops the connection (the next call reconnects) and raises `StoreUnavailable`."""
        with self._lock:
            try:
                if self._raw is None:
                    self._raw = self.engine.raw_connection()
                    if self.sqlite:
                        # Checkpoints (which fsync) run from `checkpoint`, called by the governor's
                        # heartbeat, not inside a decision's commit.
                        self._raw.cursor().execute("PRAGMA wal_autocheckpoint=0")
                cur = self._raw.cursor()
            except Exception as exc:
                self.close()
                raise describe_store_error(str(self.engine.url), exc) from exc
            try:
                yield cur
            except (sa.exc.SQLAlchemyError, self._dbapi_error()) as exc:
                self._rollback(cur)
                self.close()
                raise describe_store_error(str(self.engine.url), exc) from exc
            except BaseException:
                self._rollback(cur)
                raise
            finally:
                with contextlib.suppress(Exception):
                    cur.close()

    def _dbapi_error(self) -> type[Exception]:
        error: type[Exception] = self.engine.dialect.loaded_dbapi.Error
        return error

    def _commit(self, cur: Any) -> None:
        if self.sqlite:
            cur.execute("COMMIT")
        else:
            self._raw.commit()
        self._writes_since_checkpoint += 1

    def _end_read(self) -> None:
        if not self.sqlite:
            self._raw.rollback()  # PostgreSQL opened a transaction for the read; end it

    def _begin(self, cur: Any) -> None:
        if self.sqlite:
            cur.execute("BEGIN IMMEDIATE")

    def _begin_write(self, cur: Any) -> None:
        """The store's write lock before anything is read: BEGIN IMMEDIATE on SQLite, the audit
        head row locked on PostgreSQL (as `write_tx` does)."""
        self._begin(cur)
        if not self.sqlite:
            cur.execute(self.sql_head)

    def _append(self, cur: Any, event: str, payload_json: str, actor: str, now: float) -> int:
        from lyra_governor.audit import record_hash

        cur.execute(self.sql_head)
        head_seq, head_hash = cur.fetchone()
        seq = int(head_seq) + 1
        ts_us = int(now * 1_000_000)
        digest = record_hash(seq, ts_us, actor, event, payload_json, head_hash)
        cur.execute(self.sql_audit, (seq, ts_us, actor, event, payload_json, head_hash, digest))
        cur.execute(self.sql_move_head, (seq, digest, head_seq))
        return seq

    def audit(self, event: str, payload_json: str, actor: str, now: float) -> int:
        """Append one audit record in its own transaction."""
        with self._cursor() as cur:
            self._begin(cur)
            seq = self._append(cur, event, payload_json, actor, now)
            self._commit(cur)
            return seq

    def reserve(
        self,
        scopes: tuple[str, str],
        amount_musd: int,
        reservation: tuple[Any, ...],
        payload_json: str,
        actor: str,
        now: float,
        reduce_only: bool = False,
    ) -> int | None:
        """Conditional capital UPDATE + reservation row + audit record, atomically.

        Returns the audit sequence number, or None when a cap would be exceeded (nothing written).
        Raises TradingStopped when a halt (or, for an opening order, a gradual stop) was
        committed since the governor last read the ladder: the state is re-read under the write
        lock, so no reservation is ever written after a halt.
        """
        with self._cursor() as cur:
            self._begin_write(cur)
            cur.execute("SELECT trading_state, reason FROM lyra_ladder WHERE id = 1")
            state, reason = cur.fetchone()
            if state == "HALTED" or (state == "REDUCING" and not reduce_only):
                self._rollback(cur)
                raise TradingStopped(str(state), str(reason or ""))
            if amount_musd:
                cur.execute(self.sql_reserve, (amount_musd, scopes[0], scopes[1], amount_musd))
                if cur.rowcount != 2:
                    self._rollback(cur)
                    return None
            cur.execute(self.sql_insert_reservation, reservation)
            seq = self._append(cur, "decision", payload_json, actor, now)
            self._commit(cur)
            return seq

    def release(self, reservation_id: str, status: str, payload: dict[str, Any], actor: str, now: float) -> bool:
        """Close an OPEN reservation (cancel, failure, expiry) and give its capital back.

        Returns False (and writes nothing) when the reservation is unknown or already closed.
        """
        from lyra_governor.audit import canonical_json

        with self._cursor() as cur:
            self._begin_write(cur)
            cur.execute(self.sql_get_reservation, (reservation_id,))
            row = cur.fetchone()
            if row is None or row[3] != "OPEN":
                self._rollback(cur)
                return False
            book, exchange, left = row[0], row[1], int(row[2])
            if left:
                cur.execute(self.sql_adjust, (left, left, 0, 0, f"{book}:{exchange}", f"{book}:TOTAL"))
            cur.execute(self.sql_close_reservation, (status, now, reservation_id))
            payload = {**payload, "released_usd": str(from_musd(left))}
            self._append(cur, "order_event", canonical_json(payload), actor, now)
            self._commit(cur)
            return True

    def fill(
        self,
        reservation_id: str,
        client_order_id: str | None,
        filled_amount: Decimal,
        fill_price: Decimal,
        fee_musd: int,
        actor: str,
        now: float,
    ) -> dict[str, Any] | None:
        """A fill: capital turned over (`fill_effect`), the reservation updated, the fill row and
        its audit record, in one transaction. None (nothing written) for an unknown reservation."""
        from lyra_governor.audit import canonical_json

        with self._cursor() as cur:
            self._begin_write(cur)
            cur.execute(self.sql_fill_row, (reservation_id,))
            found = cur.fetchone()
            if found is None:
                self._rollback(cur)
                return None
            row = dict(zip(FILL_ROW_COLUMNS, found, strict=True))
            effect = fill_effect(row, filled_amount, fill_price)
            scopes = (f"{row['book']}:{row['exchange']}", f"{row['book']}:TOTAL")
            release, deployed = effect.release_musd, effect.deployed_delta_musd
            cur.execute(self.sql_adjust, (release, release, deployed, deployed, *scopes))
            left = int(row["reserved_musd"]) - release
            closed_at = now if effect.fully else None
            status = "FILLED" if effect.fully else "OPEN"
            late = row["status"] != "OPEN"  # reported after a cancel/failure released the reservation
            if late and not effect.fully:
                status, closed_at = row["status"], now  # booked, but a closed reservation never reopens
            cur.execute(self.sql_fill_reservation, (left, str(effect.done), status, closed_at, reservation_id))
            cur.execute(
                self.sql_insert_fill,
                (reservation_id, row["bot_id"], row["book"], row["exchange"], row["trading_pair"], row["side"],
                 str(filled_amount), str(fill_price), effect.notional_musd, fee_musd, now),
            )  # fmt: skip
            payload = {
                "kind": "FILLED",
                "reservation_id": reservation_id,
                "client_order_id": client_order_id,
                "book": row["book"],
                "exchange": row["exchange"],
                "trading_pair": row["trading_pair"],
                "side": row["side"],
                "notional_usd": str(from_musd(effect.notional_musd)),
                "released_usd": str(from_musd(release)),
                "complete": effect.fully or late,
                "late": late,
                "amount": str(filled_amount),
                "price": str(fill_price),
            }
            self._append(cur, "order_event", canonical_json(payload), actor, now)
            self._commit(cur)
            return payload

    def checkpoint(self, min_writes: int = 256) -> bool:
        """Fold the WAL back into the database file (SQLite; PASSIVE: never waits on readers)
        once `min_writes` commits have accumulated; SQLite's own autocheckpoint would do it
        inside a decision's commit, at about 1,000 pages. Returns whether it ran."""
        if not self.sqlite or self._writes_since_checkpoint < min_writes:
            return False
        with self._cursor() as cur:
            cur.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self._writes_since_checkpoint = 0
        return True

    def heartbeat(self, bot_id: str, now: float, host: str, pid: int) -> None:
        """This bot is alive: one small write, no audit record (heartbeats are not decisions)."""
        with self._cursor() as cur:
            self._begin(cur)
            cur.execute(self.sql_beat, (now, host, pid, bot_id))
            if cur.rowcount == 0:
                cur.execute(self.sql_new_bot, (bot_id, now, host, pid))
            self._commit(cur)

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """One read on the dedicated connection (PostgreSQL's implicit transaction ended)."""
        with self._cursor() as cur:
            cur.execute(sql, params)
            rows = list(cur.fetchall())
            self._end_read()
            return rows

    def silent_bots_holding_capital(self, cutoff: float) -> list[str]:
        """Bots last heard before `cutoff` that still hold open reservations: a read, so the
        common case (none) costs no write lock."""
        return [str(r[0]) for r in self._query(self.sql_silent, (cutoff,))]

    def bot_position(self, bot_id: str, book: str, exchange: str, trading_pair: str) -> Decimal:
        """Net base amount this bot bought (+) or sold (-) on one market, from its fills."""
        rows = self._query(self.sql_bot_fills, (bot_id, book, exchange, trading_pair))
        return sum((Decimal(a) if side == "BUY" else -Decimal(a) for side, a in rows), Decimal(0))

    def orders_since(self, book: str, exchange: str, since: float) -> int:
        """Orders allowed on one exchange of one book by every bot since `since` (the
        exchange-wide order-rate budget)."""
        return int(self._query(self.sql_orders_since, (exchange, since, book))[0][0])

    def reservation_status(self, reservation_id: str) -> str | None:
        rows = self._query(self.sql_get_reservation, (reservation_id,))
        return str(rows[0][3]) if rows else None

    def capital_rows(self, book: str) -> list[tuple[str, int, int, int]]:
        """(scope, cap, reserved, deployed) in micro-dollars for one book, on the dedicated
        connection: what sizing and denial messages read on every tick."""
        return [(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in self._query(self.sql_capital, (f"{book}:%",))]

    def ladder_row(self) -> tuple[int, str, str, dict[str, int]]:
        """(phase, trading state, reason, rungs) read on the dedicated connection: the
        governor's periodic state refresh without SQLAlchemy's per-statement overhead."""
        with self._cursor() as cur:
            cur.execute("SELECT phase, trading_state, reason FROM lyra_ladder WHERE id = 1")
            phase, state, reason = cur.fetchone()
            cur.execute("SELECT exchange, rung FROM lyra_rungs")
            rung_rows = {str(name): int(rung) for name, rung in cur.fetchall()}
            self._end_read()
            return int(phase), str(state), str(reason), rung_rows

    def _rollback(self, cur: Any) -> None:
        try:
            if self.sqlite:
                cur.execute("ROLLBACK")
            elif self._raw is not None:
                self._raw.rollback()
        except Exception:  # noqa: S110 - no transaction open: nothing to roll back
            pass
