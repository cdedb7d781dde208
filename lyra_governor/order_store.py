"""The only writer of reservations, fills, capital and per-order audit records.

Every per-order write happens here, once: reserve, release, fill, heartbeat, expiry of silent
bots, and the audit record that describes each (appended in the same transaction, so the
ledger and the audit trail can never disagree). The ladder's cap changes (`set_caps`) and the
ladder's own audit records (`append_audit` on a `write_tx` connection) go through the same
statements.

Why a dedicated DBAPI connection with precompiled SQL: building SQLAlchemy Core statements
costs more than the SQLite commit itself (about 1 ms per decision against a 300 us budget).
So each statement is built once from the Core tables in `store` and compiled once per dialect
(`Statements`); a decision only executes strings. The transaction discipline is the one of
`store.write_tx`: BEGIN IMMEDIATE on SQLite, the audit head row locked FOR UPDATE on
PostgreSQL, before anything that will change is read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import operator
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from json.encoder import encode_basestring as _quote
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine

from lyra_governor.chain import GENESIS_HASH, canonical_json, record_hash
from lyra_governor.errors import StoreUnavailable
from lyra_governor.models import ReservationStatus, Side, TradingState
from lyra_governor.money import fill_effect, from_musd, scopes, to_musd
from lyra_governor.store import (
    STORE_ERRORS,
    audit_head,
    audit_log,
    bots,
    capital,
    describe_store_error,
    fills,
    is_sqlite,
    ladder,
    reservations,
    rungs,
)
from lyra_governor.store_budget import (
    DEFAULT_BUDGET_MS,
    EVENT_BUDGET_MS,
    WATCHDOG,
    BudgetExceeded,
    MarketMovedOn,
    Reconnector,
    StoreBusy,
    begin_immediate,
    cut_for,
    is_lock_timeout,
    lock_wait_ms,
    pg_session_sql,
    wal_bound,
)

OPEN = ReservationStatus.OPEN.value
ORPHANED = ReservationStatus.ORPHANED.value
HELD = (OPEN, ORPHANED)  # states that still hold capital
# the trade key of what a stray order had filled before it was found: booked once, as one fill
STRAY_FILLED_BEFORE_FOUND = "filled-before-found"
HALTED, REDUCING = TradingState.HALTED.value, TradingState.REDUCING.value
BOT_REDUCE_ONLY = "BOT_REDUCE_ONLY"  # TradingStopped.state when only this bot is restricted

# Order events that cannot have happened are never applied as arithmetic (`OrderStore.fill`):
OVERFILL_TOLERANCE = Decimal("0.05")  # fills beyond the order's amount by more than 5 % are impossible
PRICE_SANITY_FACTOR = Decimal(10)  # a fill at more than 10x (or under 1/10) the order's price is impossible
MAX_FILL_USD = Decimal(10**9)  # no fill of a Lyra order is worth a billion USD


@dataclass(slots=True)
class ReservationRow:
    """One new reservation. Its fields are the columns of the INSERT, in the table's order
    (`Statements` checks it when it compiles), so `values()` is the INSERT's parameters."""

    reservation_id: str
    bot_id: str
    connector: str
    book: str
    exchange: str
    trading_pair: str
    side: str
    reduce_only: bool
    amount: str
    price: str
    usd_per_quote: str
    reserved_musd: int
    filled_amount: str
    status: str
    client_order_id: str | None
    mandate_id: str | None
    created_at: float

    def values(self) -> tuple[Any, ...]:
        values: tuple[Any, ...] = _row_values(self)
        return values


RESERVATION_COLUMNS = tuple(f.name for f in dataclasses.fields(ReservationRow))
_row_values = operator.attrgetter(*RESERVATION_COLUMNS)
FILL_COLUMNS = (
    "reservation_id", "bot_id", "book", "exchange", "trading_pair", "side", "amount", "price", "notional_musd",
    "fee_musd", "ts", "trade_key",
)  # fmt: skip
# What a fill reads of its reservation (`fill_effect`'s inputs and the fill row's copies).
FILL_READ_COLUMNS = (
    "book", "exchange", "reserved_musd", "status", "amount", "price", "usd_per_quote", "filled_amount",
    "reduce_only", "side", "bot_id", "trading_pair",
)  # fmt: skip


@dataclass(frozen=True)
class Sql:
    """One statement compiled for one dialect with positional parameters (``?`` or ``%s``,
    cheaper to bind than named ones); `order` names them, `fixed` holds the values of the
    literals the compiler turned into parameters."""

    text: str
    order: tuple[str, ...]
    fixed: dict[str, Any]
    _pick: Callable[[dict[str, Any]], Any] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        getter = operator.itemgetter(*self.order) if self.order else (lambda _values: ())
        pick = getter if len(self.order) != 1 else (lambda values: (values[self.order[0]],))
        object.__setattr__(self, "_pick", pick)

    def params(self, **values: Any) -> tuple[Any, ...]:
        """The statement's parameters from their names (a missing one raises KeyError)."""
        if self.fixed:
            values = {**self.fixed, **values}
        picked: tuple[Any, ...] = self._pick(values)
        return picked


def _positional(dialect: Dialect) -> Dialect:
    """The dialect with a positional paramstyle: ``qmark`` for sqlite3, ``format`` for psycopg."""
    style = "qmark" if dialect.name == "sqlite" else "format"
    if dialect.paramstyle == style:
        return dialect
    positional: Dialect = type(dialect)(paramstyle=style)  # type: ignore[call-arg]
    return positional


class Statements:
    """Every statement of the order path, built from the Core tables and compiled once."""

    def __init__(self, dialect: Dialect) -> None:
        positional = _positional(dialect)
        self.sqlite = dialect.name == "sqlite"

        def sql(stmt: Any, column_keys: tuple[str, ...] | None = None) -> Sql:
            compiled = stmt.compile(dialect=positional, column_keys=list(column_keys) if column_keys else None)
            fixed = {k: v for k, v in compiled.params.items() if v is not None}
            return Sql(str(compiled), tuple(compiled.positiontup or ()), fixed)

        b = sa.bindparam
        r, c = reservations.c, capital.c
        # SQLite: the head is the tip record (store.CHAIN_VERSION); PostgreSQL: the head row, locked
        a = audit_log.c
        one: Any = sa.literal_column("1")  # literals, not parameters: the statements' orders stay short
        zero: Any = sa.literal_column("0")
        # the last record by max(seq), one seek (ORDER BY seq DESC LIMIT 1 joined to the ladder is
        # materialized first: 9.8 against 5-8 us, measured)
        last = sa.select(sa.func.max(a.seq)).scalar_subquery()
        tip = sa.select(a.seq, a.hash, a.tip).where(a.seq == last)
        head = sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
        self.head = sql(tip if self.sqlite else head.with_for_update())
        self.floor = sql(head)  # SQLite: what the chain must reach (read when it has no record)
        self.audit_insert = sql(audit_log.insert(), tuple(col.name for col in audit_log.columns))
        self.move_head = sql(
            audit_head.update()
            .where(audit_head.c.id == 1, audit_head.c.seq == b("old_seq"))
            .values(seq=b("new_seq"), hash=b("new_hash"))
        )
        self.untip = sql(audit_log.update().where(a.seq == b("old_seq"), a.tip == one).values(tip=zero))
        self.move_floor = sql(
            audit_head.update()
            .where(audit_head.c.id == 1, audit_head.c.seq <= b("new_seq"))
            .values(seq=b("new_seq"), hash=b("new_hash"))
        )
        self.ladder_row = sql(
            sa.select(ladder.c.phase, ladder.c.trading_state, ladder.c.reason).where(ladder.c.id == 1)
        )
        restriction = sa.select(bots.c.reduce_only_reason).where(bots.c.bot_id == b("bid")).scalar_subquery()
        self.ladder_for_bot = sql(  # what `reserve` re-reads under the lock: the store's and this bot's state
            sa.select(ladder.c.trading_state, ladder.c.reason, restriction).where(ladder.c.id == 1)
        )
        # SQLite's `reserve` reads the audit head and the states in one statement: BEGIN IMMEDIATE
        # already holds the write lock, so one read sees them as they are. (PostgreSQL keeps two:
        # its head read waits on the row lock, and only a statement started after that wait sees
        # what the lock's holder committed, a halt included.)
        self.head_and_states = sql(
            sa.select(a.seq, a.hash, a.tip, ladder.c.trading_state, ladder.c.reason, restriction)
            .select_from(ladder.outerjoin(audit_log, a.seq == last))
            .where(ladder.c.id == 1)
        )
        self.set_state = sql(
            ladder.update()
            .where(ladder.c.id == 1)
            .values(trading_state=b("new_state"), reason=b("new_reason"), updated_at=b("at"))
        )
        self.bot_restriction = sql(sa.select(bots.c.reduce_only_reason).where(bots.c.bot_id == b("bid")))
        self.restrict_bot = sql(bots.update().where(bots.c.bot_id == b("bid")).values(reduce_only_reason=b("why")))
        self.rungs = sql(sa.select(rungs.c.exchange, rungs.c.rung))
        pair: list[Any] = [b("scope_exchange"), b("scope_total")]
        used = c.reserved_musd + c.deployed_musd + c.orphaned_musd
        self.reserve = sql(
            capital.update()
            .where(c.scope.in_(pair), used + b("amount_musd") <= c.cap_musd)
            .values(reserved_musd=c.reserved_musd + b("amount_musd"))
        )
        # SQLite: one row per UPDATE. A multi-row UPDATE (the IN above) collects the rows first
        # and then updates them: 13-16 us against 4-7 us for the two single-row ones, measured
        # under the write lock on a bench store. PostgreSQL keeps the one statement (one round trip).
        self.reserve_scope = sql(
            capital.update()
            .where(c.scope == b("scope"), used + b("amount_musd") <= c.cap_musd)
            .values(reserved_musd=c.reserved_musd + b("amount_musd"))
        )
        self.capital_pair = sql(
            sa.select(c.scope, c.cap_musd, c.reserved_musd, c.deployed_musd, c.orphaned_musd).where(c.scope.in_(pair))
        )
        self.capital_row = sql(
            sa.select(c.cap_musd, c.reserved_musd, c.deployed_musd, c.orphaned_musd).where(c.scope == b("scope"))
        )
        self.capital_set = sql(
            capital.update()
            .where(c.scope == b("key"))
            .values(reserved_musd=b("res"), deployed_musd=b("dep"), orphaned_musd=b("orph"))
        )
        # `OrderStore._move` without reading the rows first: the exchange's row moves by the deltas
        # only where no floor would engage (else nothing matches and `_move` reads them), and
        # answers with what it holds after; the total then moves by those same deltas, floored
        # at 0 (SQLite's two-argument max, PostgreSQL's GREATEST)
        after = (c.cap_musd, c.reserved_musd, c.deployed_musd, c.orphaned_musd)
        deltas: dict[str, Any] = {
            "reserved_musd": b("d_res"), "deployed_musd": b("d_dep"), "orphaned_musd": b("d_orph")
        }  # fmt: skip
        self.capital_add = sql(
            capital.update()
            .where(c.scope == b("scope"), *(c[name] + delta >= zero for name, delta in deltas.items()))
            .values({name: c[name] + delta for name, delta in deltas.items()})
            .returning(*after)
        )
        at_least_zero = sa.func.max if self.sqlite else sa.func.greatest
        self.capital_add_floored = sql(
            capital.update()
            .where(c.scope == b("scope"))
            .values({name: at_least_zero(zero, c[name] + delta) for name, delta in deltas.items()})
            .returning(*after)
        )
        # the same two UPDATEs without RETURNING, for a caller that needs no rows after (`_give_back`)
        self.capital_add_quiet = sql(
            capital.update()
            .where(c.scope == b("scope"), *(c[name] + delta >= zero for name, delta in deltas.items()))
            .values({name: c[name] + delta for name, delta in deltas.items()})
        )
        self.capital_add_floored_quiet = sql(
            capital.update()
            .where(c.scope == b("scope"))
            .values({name: at_least_zero(zero, c[name] + delta) for name, delta in deltas.items()})
        )
        self.capital_like = sql(
            sa.select(c.scope, c.cap_musd, c.reserved_musd, c.deployed_musd, c.orphaned_musd).where(
                c.scope.like(b("pattern"))
            )
        )
        self.caps_like = sql(sa.select(c.scope, c.cap_musd).where(c.scope.like(b("pattern"))))
        self.insert_reservation = sql(reservations.insert(), RESERVATION_COLUMNS)
        if self.insert_reservation.order != RESERVATION_COLUMNS:  # pragma: no cover - a test checks it
            raise RuntimeError("ReservationRow's fields must follow lyra_reservations' column order")
        # SQLite: a review's reservation (OPEN, nothing filled) with what is the same in every one
        # of them written into the statement, not bound (`_review_literals`)
        self.review_inserts: dict[tuple[bool, bool, bool], tuple[str, Callable[[ReservationRow], Any]]] = {}
        if self.sqlite:
            for flag, no_client_order_id, no_mandate in itertools.product((False, True), repeat=3):
                literals = _review_literals(flag, no_client_order_id, no_mandate)
                review_insert = reservations.insert().values(
                    {name: sa.literal_column(literals[name]) if name in literals else b(f"v_{name}")
                     for name in RESERVATION_COLUMNS}
                )  # fmt: skip
                bound = tuple(name for name in RESERVATION_COLUMNS if name not in literals)
                compiled = sql(review_insert)
                if compiled.order != tuple(f"v_{name}" for name in bound):  # pragma: no cover - a test checks it
                    raise RuntimeError(f"{compiled.text!r} takes {compiled.order}")
                pick = operator.attrgetter(*bound)
                self.review_inserts[(flag, no_client_order_id, no_mandate)] = (compiled.text, pick)
        # the statements every decision runs get their parameters as tuples in this order
        # (`Sql.params` builds and merges a dict for each: five per decision), checked here
        for stmt, order in (
            (self.audit_insert, AUDIT_INSERT_ORDER),
            (self.move_head, MOVE_HEAD_ORDER),
            (self.untip, UNTIP_ORDER),
            (self.head_and_states, HEAD_AND_STATES_ORDER),
            (self.reserve_scope, RESERVE_SCOPE_ORDER),
            (self.capital_add, CAPITAL_ADD_ORDER),
            (self.capital_add_floored, CAPITAL_ADD_FLOORED_ORDER),
            (self.capital_add_quiet, CAPITAL_ADD_ORDER),
            (self.capital_add_floored_quiet, CAPITAL_ADD_FLOORED_ORDER),
            (self.capital_row, CAPITAL_ROW_ORDER),
            (self.capital_pair, CAPITAL_PAIR_ORDER),
        ):
            if stmt.order != order or any(stmt.fixed.get(name, 1) != 1 for name in order if name.startswith("id_")):
                raise RuntimeError(f"{stmt.text!r} takes {stmt.order}, not {order}")  # pragma: no cover
        self.get_reservation = sql(
            sa.select(r.book, r.exchange, r.reserved_musd, r.status).where(r.reservation_id == b("rid"))
        )
        # a fill's read of its reservation, and whether a fill with its trade key was booked already
        # (the unique index `store.fills_by_trade` answers it: one seek; a NULL key matches none)
        seen: Any = sa.exists().where(fills.c.reservation_id == b("rid"), fills.c.trade_key == b("key"))
        fill_columns = (*(r[name] for name in FILL_READ_COLUMNS), seen)
        self.fill_read = sql(sa.select(*fill_columns).where(r.reservation_id == b("rid")))
        # SQLite: an order event's first read under the write lock, the audit head and its
        # reservation in one statement (as `head_and_states`: BEGIN IMMEDIATE holds the lock, so
        # one read sees both as they are); no such reservation: its columns are NULL
        def head_and(*columns: Any) -> Sql:
            return sql(
                sa.select(a.seq, a.hash, a.tip, *columns)
                .select_from(
                    ladder.outerjoin(audit_log, a.seq == last).outerjoin(reservations, r.reservation_id == b("rid"))
                )
                .where(ladder.c.id == 1)
            )

        self.head_and_reservation = head_and(r.book, r.exchange, r.reserved_musd, r.status)
        self.head_and_fill_read = head_and(*fill_columns)
        # `OrderStore._begin_write_reading` binds the plain read's tuple, and the ladder row's id after it
        for plain, order, joined in (
            (self.get_reservation, GET_RESERVATION_ORDER, self.head_and_reservation),
            (self.fill_read, FILL_READ_ORDER, self.head_and_fill_read),
        ):
            if plain.order != order or joined.order != (*order, "id_1") or joined.fixed != {"id_1": 1}:
                raise RuntimeError(f"{joined.text!r} takes {joined.order}, not {order} and id_1")  # pragma: no cover
        self.close_reservation = sql(
            reservations.update()
            .where(r.reservation_id == b("rid"))
            .values(status=b("new_status"), reserved_musd=zero, closed_at=b("closed"))
        )
        # a release's close that writes the reservation's own cancel request too (`_write_marks`)
        self.close_marked = sql(
            reservations.update()
            .where(r.reservation_id == b("rid"))
            .values(status=b("new_status"), reserved_musd=zero, closed_at=b("closed"), cancel_requested_at=b("at"))
        )
        self.fill_reservation = sql(
            reservations.update()
            .where(r.reservation_id == b("rid"))
            .values(
                reserved_musd=b("left_musd"), filled_amount=b("done"), status=b("new_status"), closed_at=b("closed")
            )
        )
        self.insert_fill = sql(fills.insert(), FILL_COLUMNS)
        # and those of the order events (a dict per statement cost ~1-2k instructions; the fill
        # row's INSERT merged twelve placeholders into it)
        events: tuple[tuple[Sql, tuple[str, ...]], ...] = (
            (self.close_reservation, CLOSE_ORDER),
            (self.close_marked, CLOSE_MARKED_ORDER),
            (self.fill_reservation, FILL_RESERVATION_ORDER),
            (self.insert_fill, FILL_COLUMNS),
        )
        for event_sql, event_order in events:
            if event_sql.order != event_order:
                raise RuntimeError(f"{event_sql.text!r} takes {event_sql.order}, not {event_order}")  # pragma: no cover
        self.resting_closes = sql(  # this bot's open closes on one market and side
            sa.select(r.amount, r.filled_amount).where(
                r.bot_id == b("bid"),
                r.book == b("bk"),
                r.exchange == b("ex"),
                r.trading_pair == b("pair"),
                r.side == b("sd"),
                r.reduce_only.is_(True),
                sa.or_(r.status == OPEN, r.status == ORPHANED),
                r.cancel_requested_at.is_(None),
            )
        )
        self.cancel_requested = sql(
            reservations.update()
            .where(r.reservation_id == b("rid"), r.status == OPEN)
            .values(cancel_requested_at=b("at"))
        )
        mark = self.cancel_requested
        if mark.order != CANCEL_REQUESTED_ORDER or mark.fixed != {"status_1": OPEN}:  # pragma: no cover
            raise RuntimeError(f"{mark.text!r} takes {mark.order}, not {CANCEL_REQUESTED_ORDER}")
        self.set_status = sql(reservations.update().where(r.reservation_id == b("rid")).values(status=b("new_status")))
        self.held_of_bot = sql(
            sa.select(r.reservation_id, r.bot_id, r.book, r.exchange, r.reserved_musd)
            .where(r.bot_id == b("bid"), r.status == b("held"))
            .order_by(r.reservation_id)
        )
        self.orphans = sql(
            sa.select(
                r.reservation_id, r.bot_id, r.connector, r.trading_pair, r.side, r.amount, r.price,
                r.reserved_musd, r.client_order_id, r.created_at,
            )
            .where(r.status == ORPHANED)
            .order_by(r.bot_id, r.created_at)
        )  # fmt: skip
        # the exchange-wide order-rate budget: every state's reservations counted, a state at a time in
        # the index `store.reservations_by_state` (status, exchange, book, created_at), which covers it
        every_state = [sa.literal(state.value) for state in ReservationStatus]
        self.orders_since = sql(
            sa.select(sa.func.count())
            .select_from(reservations)
            .where(r.status.in_(every_state), r.exchange == b("ex"), r.book == b("bk"), r.created_at > b("since"))
        )
        self.bot_fills = sql(
            sa.select(fills.c.side, fills.c.amount).where(
                fills.c.bot_id == b("bid"),
                fills.c.book == b("bk"),
                fills.c.exchange == b("ex"),
                fills.c.trading_pair == b("pair"),
            )
        )
        f = fills.c
        self.book_fills = sql(  # the loss limits' new fills (every bot's) on one book
            sa.select(f.id, f.exchange, f.trading_pair, f.side, f.amount, f.notional_musd, f.fee_musd, f.ts)
            .where(f.book == b("bk"), f.ts >= b("since"), f.id > b("after"))
            .order_by(f.id)
        )
        # host and pid too: a restarted bot (new process, maybe another host) is shown as it runs now
        self.beat = sql(
            bots.update()
            .where(bots.c.bot_id == b("bid"))
            .values(last_heartbeat=b("beat"), host=b("new_host"), pid=b("new_pid"))
        )
        self.new_bot = sql(bots.insert(), ("bot_id", "last_heartbeat", "host", "pid"))
        for beat_sql, beat_order in ((self.beat, BEAT_ORDER), (self.new_bot, NEW_BOT_ORDER)):
            if beat_sql.order != beat_order:
                raise RuntimeError(f"{beat_sql.text!r} takes {beat_sql.order}, not {beat_order}")  # pragma: no cover
        holding = sa.exists().where(r.bot_id == bots.c.bot_id, r.status == OPEN)
        self.silent = sql(sa.select(bots.c.bot_id).where(bots.c.last_heartbeat < b("cutoff"), holding))
        self.open_of_silent = sql(
            sa.select(r.reservation_id, r.bot_id, r.book, r.exchange, r.reserved_musd)
            .select_from(reservations.join(bots, bots.c.bot_id == r.bot_id))
            .where(r.status == OPEN, bots.c.last_heartbeat < b("cutoff"))
            .order_by(r.reservation_id)
        )


def _review_literals(reduce_only: bool, no_client_order_id: bool, no_mandate: bool) -> dict[str, str]:
    """The SQL literals of a review's reservation written into its INSERT (`Statements.review_inserts`):
    what every review's row holds (nothing filled, OPEN), its flag, and its absent ids (NULL).
    sqlite3 binds a str, an int or a float as it is, but a bool or None only after asking the
    adapters' registry, the protocol and the value for an adapter (~3.3k instructions each, two
    in a review's row); a literal stores the same value (a bool is bound as the integer 0 or 1)."""
    literals = {"reduce_only": "1" if reduce_only else "0", "filled_amount": "'0'", "status": f"'{OPEN}'"}
    if no_client_order_id:
        literals["client_order_id"] = "NULL"
    if no_mandate:
        literals["mandate_id"] = "NULL"
    return literals


# The parameters of the statements each decision runs, in their compiled order (`Statements`
# checks it): the audit record (``tip``: 1 on SQLite, 0 on PostgreSQL), then on PostgreSQL the head
# row moved after it (``id_1`` is the head row's id, 1), on SQLite the record before no longer the
# tip; the head (SQLite: the tip record) and states read under the write lock (``id_1``: the
# ladder's row, 1), one capital row's conditional reserve.
AUDIT_INSERT_ORDER = ("seq", "ts_us", "actor", "event", "payload", "prev_hash", "hash", "tip")
MOVE_HEAD_ORDER = ("new_seq", "new_hash", "id_1", "old_seq")
UNTIP_ORDER = ("old_seq",)
HEAD_AND_STATES_ORDER = ("bid", "id_1")
RESERVE_SCOPE_ORDER = ("amount_musd", "scope", "amount_musd")
GET_RESERVATION_ORDER = ("rid",)
CLOSE_ORDER = ("new_status", "closed", "rid")
CLOSE_MARKED_ORDER = ("new_status", "closed", "at", "rid")
FILL_RESERVATION_ORDER = ("left_musd", "done", "new_status", "closed", "rid")
FILL_READ_ORDER = ("rid", "key", "rid")  # whether the trade key was seen, then the reservation
CAPITAL_ADD_ORDER = ("d_res", "d_dep", "d_orph", "scope", "d_res", "d_dep", "d_orph")
CAPITAL_ADD_FLOORED_ORDER = ("d_res", "d_dep", "d_orph", "scope")
CANCEL_REQUESTED_ORDER = ("at", "rid", "status_1")
CAPITAL_ROW_ORDER = ("scope",)
CAPITAL_PAIR_ORDER = ("scope_exchange", "scope_total")  # `scopes`' pair, as `capital_pair_rows` binds it
BEAT_ORDER = ("beat", "new_host", "new_pid", "bid")  # the heartbeats' (`OrderStore.heartbeats`)
NEW_BOT_ORDER = ("bot_id", "last_heartbeat", "host", "pid")

_COMPILED: dict[str, Statements] = {}


def statements(dialect: Dialect) -> Statements:
    """The order path's statements for `dialect` (compiled on first use)."""
    found = _COMPILED.get(dialect.name)
    if found is None:
        found = _COMPILED[dialect.name] = Statements(dialect)
    return found


Execute = Callable[[str, tuple[Any, ...]], Any]


Head = tuple[int, str]  # the audit chain's head: (sequence number, hash)


def _chain(execute: Execute, sql: Statements, head: Head, event: str, payload_json: str, actor: str,
           now: float) -> Head:  # fmt: skip
    """Append one record after `head` (read under the caller's write lock); returns the new head.
    SQLite: the new record is the tip and the one before no longer is (the same page but when
    the new record starts a page: no head row written, store.CHAIN_VERSION); PostgreSQL: the
    head row moves."""
    head_seq, head_hash = head
    seq = head_seq + 1
    ts_us = int(now * 1_000_000)
    digest = record_hash(seq, ts_us, actor, event, payload_json, head_hash)
    tip = 1 if sql.sqlite else 0
    record = (seq, ts_us, actor, event, payload_json, head_hash, digest, tip)  # AUDIT_INSERT_ORDER
    execute(sql.audit_insert.text, record)
    if sql.sqlite:
        moved = execute(sql.untip.text, (head_seq,)) if head_seq else None  # UNTIP_ORDER
    else:
        moved = execute(sql.move_head.text, (seq, digest, 1, head_seq))  # MOVE_HEAD_ORDER
    if moved is not None and moved.rowcount != 1:  # pragma: no cover - the write lock makes this unreachable
        raise RuntimeError("audit head moved during an append; the transaction is rolled back")
    return seq, digest


def _read_head(execute: Execute, sql: Statements) -> Head:
    """The chain's head under the caller's write lock (SQLite: its tip record, `_tip_head`)."""
    if sql.sqlite:
        return _tip_head(execute, sql, execute(sql.head.text, sql.head.params()).fetchone())
    head_seq, head_hash = execute(sql.head.text, sql.head.params()).fetchone()
    return int(head_seq), str(head_hash)


def _tip_head(execute: Execute, sql: Statements, last: Any) -> Head:
    """SQLite: the head from the chain's last record `last` (seq, hash, tip; None: no record).
    Nothing is appended to a chain that does not end at its tip or falls short of its floor:
    records were cut off its end, and a record after them would hide it (`StoreUnavailable`)."""
    if last is not None and last[0] is not None:
        if int(last[2]) != 1:
            raise StoreUnavailable(
                f"the audit chain's last record ({last[0]}) is not its tip: records were removed from its end; "
                "nothing is written until `lyra-governor audit verify` passes (restore the store from a backup)"
            )
        return int(last[0]), str(last[1])
    floor_seq, _floor_hash = execute(sql.floor.text, sql.floor.params()).fetchone()
    if int(floor_seq):
        raise StoreUnavailable(
            f"the audit chain holds no record but reached record {floor_seq} before: its records were removed; "
            "nothing is written until `lyra-governor audit verify` passes (restore the store from a backup)"
        )
    return 0, GENESIS_HASH


def append_audit(conn: Connection, event: str, payload: dict[str, Any], actor: str, now: float) -> int:
    """Append one audit record inside a `store.write_tx` transaction (ladder moves, evidence,
    notes): the same statements and chain arithmetic as the order path's own records. On SQLite
    the chain's floor (`store.audit_head`) moves to it too: ladder records are few."""
    execute, sql = conn.exec_driver_sql, statements(conn.dialect)
    seq, digest = _chain(execute, sql, _read_head(execute, sql), event, canonical_json(payload), actor, now)
    if sql.sqlite:
        execute(sql.move_floor.text, sql.move_floor.params(new_seq=seq, new_hash=digest))
    return seq


def set_caps(conn: Connection, caps_musd: dict[str, int]) -> None:
    """Write each scope's cap (inside a `write_tx`); a new scope starts with nothing used."""
    existing = {row.scope for row in conn.execute(sa.select(capital.c.scope)).all()}
    for key, cap in caps_musd.items():
        if key in existing:
            conn.execute(capital.update().where(capital.c.scope == key).values(cap_musd=cap))
        else:
            conn.execute(capital.insert().values(scope=key, cap_musd=cap, reserved_musd=0, deployed_musd=0))


class RateBudgetSpent(Exception):
    """The exchange-wide order-rate budget was found spent under the write lock."""

    def __init__(self, orders: int) -> None:
        super().__init__(f"{orders} orders already in the window")
        self.orders = orders


class TradingStopped(Exception):
    """A halt or gradual stop found under the write lock while reserving capital."""

    def __init__(self, state: str, reason: str) -> None:
        super().__init__(f"trading is {state.lower()}: {reason}")
        self.state = state
        self.reason = reason


class CapExceeded(Exception):
    """The reservation would pass the exchange's or the total's cap; nothing was written."""


class NotReducing(Exception):
    """A close that would not reduce this bot's position (net of its resting closes)."""

    def __init__(self, position: Decimal, resting: Decimal) -> None:
        super().__init__(f"position {position}, resting closes {resting}")
        self.position = position
        self.resting = resting


@dataclass(frozen=True)
class Filled:
    """What `OrderStore.fill` did: ``applied`` (`payload` is its audit record; `stopped` when it
    took a cap past its limit and started a gradual stop), ``duplicate``, ``anomaly`` (an
    impossible event, not applied) or ``unknown`` (no such reservation)."""

    outcome: str
    payload: dict[str, Any]
    stopped: bool = False


def _impossible_fill(order_amount: Decimal, order_price: Decimal, filled_before: Decimal, usd_per_quote: Decimal,
                     amount: Decimal, price: Decimal, fee_musd: int) -> str:  # fmt: skip
    """Why this fill of `amount` at `price` cannot have happened on an order of `order_amount`
    at `order_price` of which `filled_before` was filled, or "" (pure)."""
    if not (amount.is_finite() and amount > 0):
        return f"fill amount {amount} is not a finite number above zero"
    if not (price.is_finite() and price > 0):
        return f"fill price {price} is not a finite number above zero"
    if fee_musd < 0:
        return f"fee {from_musd(fee_musd)} USD is negative"
    if order_price > 0 and not order_price / PRICE_SANITY_FACTOR <= price <= order_price * PRICE_SANITY_FACTOR:
        return f"fill price {price} is more than {PRICE_SANITY_FACTOR}x away from the order's {order_price}"
    done = filled_before + amount
    if done > order_amount * (1 + OVERFILL_TOLERANCE):
        return f"fills reach {done} on an order of {order_amount} (more than {OVERFILL_TOLERANCE:.0%} over)"
    if amount * price * usd_per_quote > MAX_FILL_USD:
        return f"a fill of {amount} at {price} is worth more than any order Lyra can place"
    return ""


def _net(fill_rows: Iterable[tuple[str, str]]) -> Decimal:
    """Net base amount of (side, amount) fill rows: bought +, sold -."""
    return sum((Decimal(a) if side == Side.BUY.value else -Decimal(a) for side, a in fill_rows), Decimal(0))


def _capital_tuples(rows: Iterable[tuple[Any, ...]]) -> list[tuple[str, int, int, int, int]]:
    """Capital rows as (scope, cap, reserved, deployed, orphaned) in micro-dollars."""
    return [(str(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]


def _breaches(after: list[tuple[str, int, int, int, int]]) -> list[str]:
    """The capital rows (`OrderStore._move`'s answer) whose used capital now passes the cap."""
    return [f"{key} {from_musd(res + dep + orph)} > {from_musd(cap)} USD"
            for key, cap, res, dep, orph in after if res + dep + orph > cap]  # fmt: skip


def released_json(payload: dict[str, Any], released_usd: Decimal) -> str:
    """`canonical_json({**payload, "released_usd": str(released_usd)})`, the same text: a release's
    audit record. An order event's facts (`OrderEvents.on_order_event`: kind, reservation id,
    client order id, strings or None) are written directly, their keys known in their sorted
    order, each string escaped by the encoder's own function (as `checks.decision_json`): ~23.5k
    instructions a record through the general encoder (callgrind), a few thousand so. Any
    other payload goes through `canonical_json`. tests/unit/core/test_event_writes.py compares them."""
    if len(payload) == 3:
        kind, rid = payload.get("kind"), payload.get("reservation_id")
        coid = payload.get("client_order_id", _NOT_GIVEN)
        if type(kind) is str and type(rid) is str and (coid is None or type(coid) is str):
            # a Decimal's text (digits, '.', 'E', '+', '-', 'NaN', 'Infinity') has nothing to escape
            return (
                f'{{"client_order_id":{"null" if coid is None else _quote(coid)},"kind":{_quote(kind)},'
                f'"released_usd":"{released_usd!s}","reservation_id":{_quote(rid)}}}'
            )
    return canonical_json({**payload, "released_usd": str(released_usd)})


_NOT_GIVEN = object()


@dataclass(frozen=True)
class Released:
    """What `OrderStore.release` did: `released_usd` is None when nothing was released
    (`status` then names the state the reservation was already in, or None if unknown)."""

    status: str | None
    released_usd: Decimal | None


MarketOf = tuple[str, str, str, str]  # (bot, book, exchange, trading pair)


class WriterMemo:
    """What this writer learnt under the write lock, kept while no other writer has written.

    Every reservation and every fill is written with an audit record, so the audit head's
    sequence number moves with each of them: when a write transaction finds the head where
    this writer left it, nobody else has written since, and what it read before (plus what it
    wrote itself) is still exact. Any other head clears the memo; so does any failure.
    Kept: an upper bound on the orders counted for each exchange-wide rate budget (the count
    then grows only by this writer's own orders, so a bound below the budget proves the order
    fits without counting again) and each market's net position from the fills.
    """

    def __init__(self) -> None:
        self.seq: int | None = None  # the head this memo is exact at
        self.rates: dict[tuple[str, str], tuple[float, int]] = {}  # (book, exchange) -> (since, at most)
        self.positions: dict[MarketOf, Decimal] = {}

    def at_head(self, seq: int) -> None:
        """A write transaction began with the head at `seq` (read under the write lock)."""
        if seq != self.seq:
            self.forget()
            self.seq = seq

    def forget(self) -> None:
        self.seq = None
        self.rates.clear()
        self.positions.clear()

    def within_rate(self, book: str, exchange: str, since: float, most: int) -> bool:
        """Whether fewer than `most` orders were placed on the exchange since `since`, known
        without counting (False: count them)."""
        bound = self.rates.get((book, exchange))
        return bound is not None and since >= bound[0] and bound[1] < most

    def counted(self, book: str, exchange: str, since: float, orders: int) -> None:
        self.rates[(book, exchange)] = (since, orders)

    def placed(self, book: str, exchange: str) -> None:
        """This writer placed one more order on the exchange (committed)."""
        bound = self.rates.get((book, exchange))
        if bound is not None:
            self.rates[(book, exchange)] = (bound[0], bound[1] + 1)

    def filled(self, market: MarketOf, signed_amount: Decimal) -> None:
        """This writer booked a fill (committed): the market's position moves by it."""
        if market in self.positions:
            self.positions[market] += signed_amount


class _Call:
    """`OrderStore._cursor`'s context manager: `_lock` held, a cursor, the watchdog armed for
    the call's budget; on the way out the cursor closed, the watchdog disarmed, and an error
    turned into `StoreBusy` / `StoreUnavailable` (`OrderStore._failed`). A class, not a
    generator-based context manager: that one cost ~1 us more per store call (4.8 against 3.8
    us, bare), two per decision; the watchdog armed by its token, not through a `Guard` (an
    object and three calls fewer per store call)."""

    __slots__ = ("_budget", "_budget_ms", "_cur", "_store", "_token", "_write")

    def __init__(self, store: OrderStore, budget_ms: int | None, write: bool = False) -> None:
        self._store, self._budget_ms, self._write = store, budget_ms, write

    def __enter__(self) -> Any:
        store = self._store
        store._lock.acquire()
        try:
            self._cur, self._budget = store._open_cursor(self._budget_ms, self._write)
            self._token = WATCHDOG.arm(self._budget / 1000, store._cut)
        except BaseException:
            store._lock.release()
            raise
        return self._cur

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        store, cur, token = self._store, self._cur, self._token
        try:
            try:
                if exc is not None:
                    instead = store._failed(cur, exc, self._budget, WATCHDOG.has_fired(token))
                    if instead is not None:
                        raise instead from exc
            finally:
                # a write call's cursor is kept for the next one (its last statement a COMMIT or
                # ROLLBACK: nothing left running on it), unless the call failed
                if not self._write or exc is not None:
                    if self._write and store._write_cursor is cur:
                        store._write_cursor = None
                    try:  # noqa: SIM105 - not `contextlib.suppress`: three more Python calls per store call
                        cur.close()
                    except Exception:  # noqa: S110 - a broken connection's cursor: nothing left to close
                        pass
                WATCHDOG.disarm(token)
        finally:
            store._lock.release()


class _OneLook:
    """`OrderStore.one_look`'s block: a class, not a generator-based context manager (that one
    cost ~2 us a block: the generator, its frame resumed twice)."""

    __slots__ = ("_mine", "_store")

    def __init__(self, store: OrderStore) -> None:
        self._store = store

    def __enter__(self) -> None:
        store = self._store
        self._mine = store.sqlite and store._look is None
        if self._mine:
            store._look = (threading.get_ident(), [None])

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if self._mine:
            self._store._look = None


class OrderStore:
    """The per-order writes on one dedicated DBAPI connection (see the module docstring)."""

    def __init__(self, engine: Engine, budget_ms: int | None = None) -> None:
        self.engine = engine
        self.sqlite = is_sqlite(engine)
        self.sql = statements(engine.dialect)
        self._raw: Any = None
        self._cut: Any = None
        self._lock = threading.Lock()
        self._writes_since_checkpoint = 0
        # SQLite: the bound on the WAL that every writer keeps (store_budget.WalBound)
        self._wal = wal_bound(engine.url.database) if self.sqlite else None
        self._fact = False  # the call under way records a fact (an order event): never refused for the WAL
        # every call is bounded by the store budget (lyra_governor/store_budget.py)
        self.budget_ms = budget_ms or DEFAULT_BUDGET_MS
        self._lock_budget = self.budget_ms  # what the connection's lock wait is set to
        self._lock_wait_s = lock_wait_ms(self._lock_budget) / 1000  # SQLite: the write lock's wait
        self._write_cursor: Any = None  # the write calls' cursor on this connection (`_Call`)
        self._connected_once = False
        self._reconnector = Reconnector(self._new_raw, self._install)
        self.memo = WriterMemo()
        self._head: Head | None = None  # the audit head inside a write transaction
        # SQLite: the head this connection's last commit left, and the states `reserve` last read
        # under the write lock with the version they were read at (`_begin_write_reading_states`)
        self._committed_head: Head | None = None
        self._states_read: tuple[tuple[int, int], str, tuple[Any, Any, Any]] | None = None
        self._head_version: int | None = None  # the `PRAGMA data_version` `_committed_head` is known at
        # SQLite: the answers of repeated reads, kept while the store is as they were read (`_cached`)
        self._reads: dict[tuple[str, str], tuple[tuple[int, int], tuple[Any, ...], Any]] = {}
        self._epoch = 0  # this connection's commits that may change what `_cached` keeps
        # this connection's commits that may move a capital row (every one but a beat's or an audit
        # record's alone, a cancel request's mark with them or not): what `capital_pair_rows` keeps is keyed on it too
        self._capital_epoch = 0
        self._look: tuple[int, list[tuple[int, int] | None]] | None = None  # inside `one_look`: (thread, version)
        self._seen: tuple[float, tuple[int, int]] | None = None  # (instant, version): `_cached`'s `at`
        self._swept_cutoff: float | None = None  # the last `orphan_silent_bots` sweep's cutoff
        # cancel requests not yet written (`cancel_requested`): (reservation id, instant), and how
        # many of them the transaction under way has written (dropped once it commits)
        self._marks: list[tuple[str, float]] = []
        self._marks_written = 0
        self._own_mark: float | None = None  # the instant of the cancel request left to the caller

    def close(self, broken: bool = False) -> None:
        self.memo.forget()
        self._committed_head = self._states_read = self._head_version = None
        self._write_cursor = None
        self._reads.clear()  # a new connection counts `PRAGMA data_version` afresh
        self._seen = None
        self._epoch += 1  # so no version a reader kept (`version_at`) can equal one of the next connection's
        raw, self._raw = self._raw, None
        if raw is not None:
            with contextlib.suppress(Exception):  # a broken connection has nothing left to protect
                raw.invalidate() if broken else raw.close()

    def _new_raw(self) -> Any:
        """A new dedicated connection with the order path's settings."""
        raw = self.engine.raw_connection()
        cur = raw.cursor()
        if self.sqlite:
            # Checkpoints (which fsync) run from `checkpoint` and the WAL's bound (`_make_room`,
            # store_budget.WalBound), never inside a decision's commit; a held write lock is
            # waited for within the budget only, by `store_budget.begin_immediate`'s polling, not
            # SQLite's busy handler (whose sleeps grow to 25 ms).
            cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.execute("PRAGMA busy_timeout=0")
        else:
            for statement in pg_session_sql(self.budget_ms):
                cur.execute(statement)
            raw.commit()
        cur.close()
        return raw

    def _install(self, raw: Any) -> None:
        with self._lock:
            if self._raw is None:
                self._raw, self._cut = raw, cut_for(raw, self.sqlite)
                self._set_lock_budget(self.budget_ms)
                self._connected_once = True
                return
        with contextlib.suppress(Exception):
            raw.close()

    def _lock_wait(self, cur: Any, budget_ms: int) -> None:
        """Set how long this connection waits for the write lock, when it changes: the review's
        budget, or the longer one of order events (a fill is never dropped for a short wait)."""
        if budget_ms == self._lock_budget:
            return
        if not self.sqlite:  # SQLite: `_begin_immediate` reads `_lock_wait_s`
            cur.execute(f"SET lock_timeout = {lock_wait_ms(budget_ms)}")
            cur.execute(f"SET statement_timeout = {budget_ms}")
            self._raw.commit()
        self._set_lock_budget(budget_ms)

    def _set_lock_budget(self, budget_ms: int) -> None:
        self._lock_budget, self._lock_wait_s = budget_ms, lock_wait_ms(budget_ms) / 1000

    # --- connection and transactions --------------------------------------------------------

    def _cursor(self, budget_ms: int | None = None, write: bool = False) -> _Call:
        """A cursor on the dedicated connection, the whole block bounded by the store budget.

        Connects inline on SQLite and for PostgreSQL's first connection; a lost PostgreSQL
        connection is replaced in the background (connecting cannot be bounded below 2 s) while
        calls fail at once. A held write lock raises `StoreBusy`; a store that does not answer
        within the budget, or any other database error, drops the connection and raises
        `StoreUnavailable` (`BudgetExceeded`). `write`: a call that ends in a COMMIT or ROLLBACK
        (a transaction of `_begin_write`), whose cursor is kept for the next one. See `_Call`."""
        return _Call(self, budget_ms, write)

    def _open_cursor(self, budget_ms: int | None, write: bool = False) -> tuple[Any, int]:
        """`_Call`'s start, under `_lock`: the connection (made if there is none), a cursor (a
        write call's kept one), the call's budget and its lock wait."""
        try:
            if self._raw is None:
                if not self.sqlite and self._connected_once:
                    self._reconnector.start()
                    reason = self._reconnector.last_error or "its connection was lost"
                    raise StoreUnavailable(
                        f"the store at {self.engine.url.render_as_string(hide_password=True)} is reconnecting "
                        f"({reason}); no order is placed until it answers"
                    )
                self._raw = self._new_raw()
                self._set_lock_budget(self.budget_ms)
                self._cut = cut_for(self._raw, self.sqlite)
                self._connected_once = True
            cur = self._write_cursor if write else None
            if cur is None:
                cur = self._raw.dbapi_connection.cursor()  # not the pool proxy's `cursor()`: ~0.9 us less
                if write:
                    self._write_cursor = cur
            if budget_ms is None:  # the order path's own budget
                budget, self._fact = self.budget_ms, False
            else:
                budget = max(budget_ms, self.budget_ms)
                self._fact = budget_ms >= EVENT_BUDGET_MS  # events are given the longer budget
            if budget != self._lock_budget:
                self._lock_wait(cur, budget)
        except StoreUnavailable:
            raise
        except Exception as exc:
            self.close(broken=True)
            raise describe_store_error(str(self.engine.url), exc) from exc
        return cur, budget

    def _failed(self, cur: Any, exc: BaseException, budget: int, fired: bool) -> BaseException | None:
        """`_Call`'s end after the block raised `exc`: the transaction rolled back, and what to
        raise instead (None: `exc` itself)."""
        self.memo.forget()
        self._states_read = self._head_version = None  # read the head and the states again
        self._rollback(cur)
        if not isinstance(exc, (sa.exc.SQLAlchemyError, self._dbapi_error())):
            return None
        if is_lock_timeout(exc) or (fired and self.sqlite):  # SQLite only ever waits on a lock
            return StoreBusy(
                f"another writer held the store's write lock for more than {budget} ms; "
                "no order is placed while it is busy"
            )
        self.close(broken=True)
        if fired:
            return BudgetExceeded(f"the store did not answer within {budget} ms; no order is placed until it does")
        return describe_store_error(str(self.engine.url), exc)

    def _dbapi_error(self) -> type[Exception]:
        error: type[Exception] = self.engine.dialect.loaded_dbapi.Error
        return error

    def _begin_write(self, cur: Any) -> None:
        """The store's write lock before anything is read: BEGIN IMMEDIATE on SQLite, the audit
        head row locked on PostgreSQL (as `write_tx` does); then the head, which tells whether
        another writer wrote since this one's last transaction (`WriterMemo`).

        SQLite: when no other connection has committed since this one last knew the head
        (`PRAGMA data_version`, under the lock, equal to `_head_version`), the head is the one
        its own last commit or read left (`_committed_head`), as `_begin_write_reading_states`
        finds it: the PRAGMA instead of the tip record's read (a denial's own transaction)."""
        if self.sqlite:
            self._make_room()
            self._begin_immediate(cur)
            cur.execute("PRAGMA data_version")
            version = int(cur.fetchone()[0])
            head = self._committed_head
            if head is None or version != self._head_version:
                head = self._committed_head = _read_head(cur.execute, self.sql)
                self._head_version = version
            self._head = head
        else:
            self._head = _read_head(cur.execute, self.sql)
        self.memo.at_head(self._head[0])
        if self._marks:
            self._write_marks(cur)

    def _begin_write_reading_states(self, cur: Any, bot_id: str) -> tuple[Any, Any, Any]:
        """`_begin_write`, then the store's trading state, its reason and this bot's restriction
        (what `reserve` re-reads under the lock). On SQLite the head and the states are one
        statement (see `Statements.head_and_states`); PostgreSQL reads them after the head."""
        if not self.sqlite:
            self._begin_write(cur)
            cur.execute(self.sql.ladder_for_bot.text, self.sql.ladder_for_bot.params(bid=bot_id))
            state, reason, restricted = cur.fetchone()
            return state, reason, restricted
        wal = self._wal
        if wal is not None and wal.over:  # `_make_room`
            wal.make_room(self._lock_wait_s, self._fact)
        try:  # `_begin_immediate`: its first try
            cur.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            begin_immediate(cur, self._lock_wait_s)
        if self._marks:  # before `_position_and_closes` reads the resting closes
            self._write_marks(cur)
        # What the last such read found is still exact when no other connection has committed
        # since (`PRAGMA data_version`, read under the lock: nobody can commit after it) and this
        # one committed nothing a cached read returns (`_epoch`, as `_cached` keeps): the head is
        # then the one its own last commit left. The PRAGMA instead of the read (the tip
        # record's subquery, the ladder, the bot's restriction): 387.1k -> 368.3k instructions
        # an allowed review (bench/review_instructions.py). Any other commit, a halt too, or a
        # failed call (`_failed`), and the next review reads them again.
        cur.execute("PRAGMA data_version")
        version = (int(cur.fetchone()[0]), self._epoch)
        read, head = self._states_read, self._committed_head
        if read is not None and head is not None and read[0] == version and read[1] == bot_id:
            self._head = head
            if head[0] != self.memo.seq:  # `WriterMemo.at_head`
                self.memo.at_head(head[0])
            return read[2]
        cur.execute(self.sql.head_and_states.text, (bot_id, 1))  # HEAD_AND_STATES_ORDER
        head_seq, head_hash, tip, state, reason, restricted = cur.fetchone()
        self._states_read = (version, bot_id, (state, reason, restricted))
        if tip == 1:
            head = self._head = (int(head_seq), str(head_hash))
        else:  # no record yet, or a chain cut short (refused)
            head = self._head = _tip_head(cur.execute, self.sql, (head_seq, head_hash, tip))
        self._committed_head = head  # the store's head at `version`, if this transaction rolls back too
        self._head_version = version[0]
        if head[0] != self.memo.seq:  # `WriterMemo.at_head`
            self.memo.at_head(head[0])
        return state, reason, restricted

    def _begin_write_reading(
        self, cur: Any, sql: Sql, plain: Sql, params: tuple[Any, ...], own: str | None = None
    ) -> Any:
        """`_begin_write`, then the reservation's row as `plain` reads it given `params` (in
        `plain.order`; None: no such reservation). On SQLite the head and the row are one
        statement `sql` (the head's three columns, then `plain`'s, NULL without the reservation:
        its first column is never NULL), whose parameters are `plain`'s and the ladder row's id
        (`Statements` checks it). `own`: the reservation whose pending cancel request the caller
        writes itself (`_own_mark`; SQLite only, `_write_marks`)."""
        if not self.sqlite:
            self._begin_write(cur)
            cur.execute(plain.text, params)
            return cur.fetchone()
        self._make_room()
        self._begin_immediate(cur)
        if self._marks:
            self._own_mark = self._write_marks(cur, own)
        cur.execute(sql.text, (*params, 1))
        found = cur.fetchone()
        if found is None:  # no ladder row (a store not set up by `create_schema`): the two reads
            self._head = _read_head(cur.execute, self.sql)
            self.memo.at_head(self._head[0])
            cur.execute(plain.text, params)
            return cur.fetchone()
        head_seq, head_hash, tip = found[0], found[1], found[2]
        if tip == 1:
            self._head = (int(head_seq), str(head_hash))
        else:  # no record yet, or a chain cut short (refused)
            self._head = _tip_head(cur.execute, self.sql, (head_seq, head_hash, tip))
        self.memo.at_head(self._head[0])
        return None if found[3] is None else found[3:]

    def _begin_immediate(self, cur: Any) -> None:
        """SQLite's write lock, waited for up to this call's lock wait (`begin_immediate`)."""
        begin_immediate(cur, self._lock_wait_s)

    def _make_room(self) -> None:
        """Past the WAL's hard bound, the WAL starts over before this write adds to it, within
        this call's lock wait (store_budget.WalBound.make_room: a review is denied STORE_BUSY, an
        order event is written anyway). Otherwise one attribute read."""
        if self._wal is not None and self._wal.over:
            self._wal.make_room(self._lock_wait_s, self._fact)

    def _commit_keeping_reads(self, cur: Any, capital_moved: bool = True) -> None:
        """`_commit` of a write that changes no column a cached read (`_cached`) returns: not the
        ladder, its rungs, a bot's restriction, a cap or a fill (a known bot's heartbeat, a
        reservation, its release, a cancel request, an audit record alone). What was kept stays kept; if the commit
        raises, it is read again. `capital_moved=False`: nor a capital row's used amounts (a beat, an
        audit record alone, the cancel requests' marks written with them), so what
        `capital_pair_rows` kept stays kept too."""
        epoch, capital_epoch = self._epoch, self._capital_epoch
        self._commit(cur)
        self._epoch = epoch
        if not capital_moved:
            self._capital_epoch = capital_epoch

    def _commit(self, cur: Any) -> None:
        """COMMIT; what `_cached` kept is read again (`_epoch`, `_capital_epoch`)."""
        self._epoch += 1
        self._capital_epoch += 1
        if self.sqlite:
            cur.execute("COMMIT")
            # one stat of the WAL file (an order event may copy it, then this connection starts it over)
            if self._wal is not None and self._wal.committed(self._fact, start_over=False):
                self._start_over(cur)
                # what the heartbeat's `checkpoint` counts: the commits since the WAL started over
                self._writes_since_checkpoint = -1
        else:
            self._raw.commit()
        if self._marks_written:  # written for good
            del self._marks[: self._marks_written]
            self._marks_written = 0
        self._writes_since_checkpoint += 1
        if self._head is not None:  # the memo is exact at the head this transaction left
            self._committed_head = self._head
            self.memo.seq, self._head = self._head[0], None

    def _rollback(self, cur: Any) -> None:
        self._head = None
        self._marks_written = 0  # rolled back with it: written again by the next transaction
        try:
            if self.sqlite:
                cur.execute("ROLLBACK")
            elif self._raw is not None:
                self._raw.rollback()
        except Exception:  # noqa: S110 - no transaction open: nothing to roll back
            pass

    def _end_read(self) -> None:
        if not self.sqlite:
            self._raw.rollback()  # PostgreSQL opened a transaction for the read; end it

    def _append(self, cur: Any, event: str, payload_json: str, actor: str, now: float) -> int:
        """Append one audit record inside a transaction opened by `_begin_write`."""
        assert self._head is not None, "an audit record is appended under the write lock only"
        self._head = _chain(cur.execute, self.sql, self._head, event, payload_json, actor, now)
        return self._head[0]

    def _version(self, cur: Any) -> tuple[int, int]:
        """What tells whether the store changed since a read: SQLite's `PRAGMA data_version`
        (different whenever another connection, of this process or any other, has committed)
        and this connection's own commits (`_epoch`; data_version does not count them)."""
        cur.execute("PRAGMA data_version")
        return int(cur.fetchone()[0]), self._epoch

    def _cached(
        self, name: str, key: str, args: tuple[Any, ...], read: Callable[[Any], Any], at: float | None = None
    ) -> Any:
        """`read(cursor)`'s answer for (`name`, `key`, `args`), read again only if the store may
        have changed since (`_version`; PostgreSQL: always). The version is taken before the read:
        a commit between the two makes the next call read again, never keeps a stale answer. One
        answer is kept per (`name`, `key`), for the last `args` asked. Inside `one_look` an answer
        kept at the version the look took is given without a cursor.

        `at`, an instant of the caller's clock: reads given the same instant see the store as the
        first of them found it (while this connection commits nothing, `forget_instant`), one
        PRAGMA for them all. A paper replay's governors, sharing this store, each look at the
        ladder on the same simulated second: one look, not one each. Whatever another connection
        commits after that PRAGMA is seen by the first read at a later instant, so each caller's
        own bound (`LadderView.refresh_s`) holds; live, instants are the wall clock's and differ."""
        look = self._look[1] if self._look is not None and self._look[0] == threading.get_ident() else None
        kept = self._reads.get((name, key))
        # the version the look took, while this connection has committed nothing since: no cursor at all
        took = look[0] if look is not None and look[0] is not None and look[0][1] == self._epoch else None
        if took is None and at is not None and self._seen is not None and self.looked_at(at):
            took = self._seen[1]  # the version read at this instant
            if look is not None:
                look[0] = took
        if took is not None and kept is not None and kept[:2] == (took, args):
            return kept[2]
        with self._cursor() as cur:
            if not self.sqlite:
                answer = read(cur)
                self._end_read()
                return answer
            version = self._version(cur)
            if look is not None:
                look[0] = version
            if at is not None:
                self._seen = (at, version)
            if kept is not None and kept[:2] == (version, args):
                return kept[2]
            answer = read(cur)
            self._reads[(name, key)] = (version, args, answer)
            return answer

    def version_at(self, at: float | None = None) -> tuple[int, int] | None:
        """The version (`_version`) a cached read (`_cached`) given instant `at` would check the
        store at: inside `one_look` the look's, else the one a read at `at` took while this
        connection committed nothing since (`looked_at`), else a `PRAGMA data_version` of its own
        (kept as the instant's, and the look's). What a reader that keeps its own answer compares
        with the version it read at (`LadderView`): equal, nothing any connection committed since
        can have changed it. None on PostgreSQL (no such version: read again)."""
        if not self.sqlite:
            return None
        look = self._look[1] if self._look is not None and self._look[0] == threading.get_ident() else None
        if look is not None and look[0] is not None and look[0][1] == self._epoch:
            return look[0]
        seen = self._seen
        if at is not None and seen is not None and seen[0] == at and seen[1][1] == self._epoch:
            took = seen[1]
        else:
            with self._cursor() as cur:
                took = self._version(cur)
            if at is not None:
                self._seen = (at, took)
        if look is not None:
            look[0] = took
        return took

    def looked_at(self, at: float) -> bool:
        """Whether a read given instant `at` has checked the store's version, this connection
        committing nothing since (a read at `at` then needs no PRAGMA of its own)."""
        seen = self._seen
        return seen is not None and seen[0] == at and seen[1][1] == self._epoch

    def seen_version(self, at: float) -> tuple[int, int] | None:
        """What `version_at(at)` answers without a cursor outside `one_look`: the version a read
        given instant `at` took, this connection committing nothing since (`looked_at`); None if
        it would take a PRAGMA (or a look is open: ask `version_at`). For a caller that needs no
        read at all when the store is as it last saw it (the loss limits' skipped check)."""
        seen = self._seen
        return seen[1] if seen is not None and self._look is None and self.looked_at(at) else None

    def forget_instant(self) -> None:
        """The next read given an instant (`_cached`'s `at`) takes its own PRAGMA: something this
        process wrote elsewhere (the ledger's connection: a breaker's stop) is to be seen now."""
        self._seen = None

    def one_look(self) -> _OneLook:
        """The block's cached reads (`_cached`) see the store as it was at the version its last
        `PRAGMA data_version` took: while nothing was committed, one PRAGMA serves every read of
        the block, as one read transaction opened there would (each read alone would be a read
        transaction of its own). Any commit through this connection ends that. For a group of
        reads that want one picture (the loss limits' state, fills and caps); this thread only.
        Inside another look (any thread's) the block opens none of its own."""
        return _OneLook(self)

    def _query(self, sql: Sql, **params: Any) -> list[tuple[Any, ...]]:
        """One read on the dedicated connection (PostgreSQL's implicit transaction ended)."""
        with self._cursor() as cur:
            cur.execute(sql.text, sql.params(**params))
            rows = list(cur.fetchall())
            self._end_read()
            return rows

    # --- writes -----------------------------------------------------------------------------

    def audit(self, event: str, payload_json: str, actor: str, now: float, budget_ms: int | None = None) -> int:
        """Append one audit record in its own transaction (no cached read returns the audit
        trail: what `_cached` kept stays kept, e.g. across a denied review's record)."""
        with self._cursor(budget_ms, write=True) as cur:
            self._begin_write(cur)
            seq = self._append(cur, event, payload_json, actor, now)
            self._commit_keeping_reads(cur, capital_moved=False)
            return seq

    def reserve(
        self,
        row: ReservationRow,
        payload_json: str,
        actor: str,
        now: float,
        closing: bool,
        tolerance: Decimal,
        fresh: Callable[[], bool] | None = None,
        rate_budget: tuple[float, int] | None = None,
    ) -> int:
        """Conditional capital UPDATE + reservation row + audit record, atomically; returns the
        audit sequence number. Under the write lock, before anything is written:

        - `MarketMovedOn` when `fresh()` (the market data's age, asked again once the write lock
          is held: the lock may have been waited for) is false;
        - a halt raises `TradingStopped` (no reservation is ever written after a halt commits);
        - in a gradual stop, or when this bot is restricted to reducing, the order must be
          flagged reduce-only AND reduce this bot's position as the store has it (position from
          its fills minus its resting closes on that side, within `tolerance`), else
          `TradingStopped`: the caller's flag alone never lets an order through;
        - a close the caller routed without a mandate (`closing`) is checked the same way, so
          closes can never stack beyond the position (`NotReducing`);
        - `CapExceeded` when the exchange's or the total's deployed + reserved + orphaned would
          pass its cap (nothing written).
        """
        sql = self.sql
        with self._cursor(write=True) as cur:
            state, reason, restricted = self._begin_write_reading_states(cur, row.bot_id)
            if fresh is not None and not fresh():
                self._rollback(cur)
                raise MarketMovedOn()
            if state == HALTED:
                self._rollback(cur)
                raise TradingStopped(str(state), str(reason or ""))
            if rate_budget is not None and not self.memo.within_rate(row.book, row.exchange, *rate_budget):
                since, most = rate_budget  # every bot's orders on this exchange, counted exactly
                cur.execute(sql.orders_since.text, sql.orders_since.params(ex=row.exchange, since=since, bk=row.book))
                placed = int(cur.fetchone()[0])
                self.memo.counted(row.book, row.exchange, since, placed)
                if placed >= most:
                    self._rollback(cur)
                    raise RateBudgetSpent(placed)
            must_reduce = state == REDUCING or restricted is not None
            if must_reduce or closing:
                position, resting = self._position_and_closes(cur, row)
                closable = (position if row.side == Side.SELL.value else -position) - resting
                reduces = row.reduce_only and Decimal(row.amount) <= max(closable, Decimal(0)) * tolerance
                if not reduces:
                    self._rollback(cur)
                    if state == REDUCING:
                        raise TradingStopped(str(state), str(reason or ""))
                    if restricted is not None:
                        raise TradingStopped(BOT_REDUCE_ONLY, str(restricted))
                    raise NotReducing(position, resting)
            if row.reserved_musd:
                exchange_scope, total_scope = scopes(row.book, row.exchange)
                if self.sqlite:
                    amount = row.reserved_musd
                    for scope in (exchange_scope, total_scope):
                        cur.execute(sql.reserve_scope.text, (amount, scope, amount))  # RESERVE_SCOPE_ORDER
                        if cur.rowcount != 1:
                            self._rollback(cur)
                            raise CapExceeded()
                else:
                    cur.execute(
                        sql.reserve.text,
                        sql.reserve.params(
                            amount_musd=row.reserved_musd, scope_exchange=exchange_scope, scope_total=total_scope
                        ),
                    )
                    if cur.rowcount != 2:
                        self._rollback(cur)
                        raise CapExceeded()
            insert = (
                sql.review_inserts.get((row.reduce_only, row.client_order_id is None, row.mandate_id is None))
                if row.status == OPEN and row.filled_amount == "0"
                else None
            )
            if insert is not None:  # SQLite: see `Statements.review_inserts`
                cur.execute(insert[0], insert[1](row))
            else:
                cur.execute(sql.insert_reservation.text, row.values())
            seq = self._append(cur, "decision", payload_json, actor, now)
            self._commit_keeping_reads(cur)  # a reservation, its capital's reserved_musd, its audit record
            self.memo.placed(row.book, row.exchange)
            return seq

    def _position_and_closes(self, cur: Any, row: ReservationRow) -> tuple[Decimal, Decimal]:
        """This bot's net position on the row's market (from its fills) and the amount its
        resting reduce-only orders on the row's side still have to fill."""
        market = {"bid": row.bot_id, "bk": row.book, "ex": row.exchange, "pair": row.trading_pair}
        key = (row.bot_id, row.book, row.exchange, row.trading_pair)
        position = self.memo.positions.get(key)
        if position is None:
            cur.execute(self.sql.bot_fills.text, self.sql.bot_fills.params(**market))
            position = self.memo.positions[key] = _net(cur.fetchall())
        cur.execute(self.sql.resting_closes.text, self.sql.resting_closes.params(**market, sd=row.side))
        resting = sum((Decimal(a) - Decimal(f) for a, f in cur.fetchall()), Decimal(0))
        return position, resting

    def _move(
        self, cur: Any, book: str, exchange: str, reserved: int = 0, orphaned: int = 0, deployed: int = 0
    ) -> list[tuple[str, int, int, int, int]]:
        """Apply signed deltas to the exchange's capital row (each floored at 0), and to the
        book's TOTAL row exactly what the exchange's row changed by: the total is always the
        sum over exchanges, so a sell on one exchange never nets a buy on another.
        Returns both rows after, as (scope, cap, reserved, deployed, orphaned).

        Two statements, not a read and two writes: where no floor engages on the exchange's row
        (its used amounts cover what is given back, as the reservations it sums say) its UPDATE
        adds the deltas themselves and answers with the row after (RETURNING), and the total's
        adds the same deltas, floored. A row missing, or a floor that would engage, matches
        nothing: `_move_floored` then reads both rows and works out what changed.

        SQLite: the two UPDATEs without RETURNING (`_add`), then each row read by its key: per
        move ~92k instructions with RETURNING, ~63k so (callgrind, the statements alone; one
        read of both rows by ``scope IN (?, ?)`` ~88k). PostgreSQL keeps RETURNING (no round
        trip more)."""
        exchange_scope, total_scope = scopes(book, exchange)
        sql = self.sql
        if self.sqlite:
            if not self._add(cur, exchange_scope, total_scope, reserved, orphaned, deployed):
                return self._move_floored(cur, exchange_scope, total_scope, reserved, orphaned, deployed)
            cur.execute(sql.capital_row.text, (exchange_scope,))  # CAPITAL_ROW_ORDER
            ex = cur.fetchone()  # the UPDATE matched it
            cur.execute(sql.capital_row.text, (total_scope,))
            tot = cur.fetchone()
            if tot is None:  # no total row: as below
                tot = (0, max(0, reserved), max(0, deployed), max(0, orphaned))
            return [(exchange_scope, *ex), (total_scope, *tot)]
        cur.execute(sql.capital_add.text, (reserved, deployed, orphaned, exchange_scope, reserved, deployed, orphaned))
        ex = cur.fetchone()  # CAPITAL_ADD_ORDER
        if ex is None:
            return self._move_floored(cur, exchange_scope, total_scope, reserved, orphaned, deployed)
        cur.execute(sql.capital_add_floored.text, (reserved, deployed, orphaned, total_scope))
        tot = cur.fetchone()  # CAPITAL_ADD_FLOORED_ORDER
        if tot is None:  # no total row: it has nothing, against a cap of 0 (as `_move_floored` says)
            tot = (0, max(0, reserved), max(0, deployed), max(0, orphaned))
        return [(exchange_scope, *ex), (total_scope, *tot)]

    def _add(self, cur: Any, exchange_scope: str, total_scope: str, reserved: int, orphaned: int,
             deployed: int) -> bool:  # fmt: skip
        """`_move`'s two UPDATEs without RETURNING: False (nothing written) when the exchange's
        row matched nothing (a row missing, or a floor that would engage: `_move_floored`)."""
        sql = self.sql
        cur.execute(sql.capital_add_quiet.text, (reserved, deployed, orphaned, exchange_scope, reserved, deployed,
                                                 orphaned))  # CAPITAL_ADD_ORDER  # fmt: skip
        if cur.rowcount != 1:
            return False
        # CAPITAL_ADD_FLOORED_ORDER
        cur.execute(sql.capital_add_floored_quiet.text, (reserved, deployed, orphaned, total_scope))
        return True

    def _give_back(self, cur: Any, book: str, exchange: str, reserved: int = 0, orphaned: int = 0) -> None:
        """`_move` for a caller that needs no rows after (a release giving back what a reservation
        held): the same two UPDATEs without RETURNING, whether the exchange's row matched told by
        its row count (none: `_move_floored`, as `_move`). On SQLite a RETURNING clause costs its
        UPDATE far more than the row it answers: 369.8k -> 302.7k instructions a release without
        the two (bench/event_instructions.py --path release, callgrind)."""
        exchange_scope, total_scope = scopes(book, exchange)
        if not self._add(cur, exchange_scope, total_scope, reserved, orphaned, 0):
            self._move_floored(cur, exchange_scope, total_scope, reserved, orphaned, 0)

    def _move_floored(self, cur: Any, exchange_scope: str, total_scope: str, reserved: int, orphaned: int,
                      deployed: int) -> list[tuple[str, int, int, int, int]]:  # fmt: skip
        """`_move` when a floor engages or a row is missing: both rows read, each amount floored
        at 0, the total moved by what the exchange's row moved."""
        sql = self.sql
        cur.execute(
            sql.capital_pair.text, sql.capital_pair.params(scope_exchange=exchange_scope, scope_total=total_scope)
        )
        rows = {str(r[0]): [int(v) for v in r[1:]] for r in cur.fetchall()}
        ex = rows.get(exchange_scope, [0, 0, 0, 0])
        tot = rows.get(total_scope, [0, 0, 0, 0])
        after_ex = [ex[0], max(0, ex[1] + reserved), max(0, ex[2] + deployed), max(0, ex[3] + orphaned)]
        moved = [after_ex[i] - ex[i] for i in range(4)]
        after_tot = [tot[0], *(max(0, tot[i] + moved[i]) for i in (1, 2, 3))]
        for key, values in ((exchange_scope, after_ex), (total_scope, after_tot)):
            params = sql.capital_set.params(key=key, res=values[1], dep=values[2], orph=values[3])
            cur.execute(sql.capital_set.text, params)
        return [(exchange_scope, *after_ex), (total_scope, *after_tot)]  # type: ignore[list-item]

    def _close(self, cur: Any, reservation_id: str, status: ReservationStatus, now: float) -> None:
        cur.execute(self.sql.close_reservation.text, (status.value, now, reservation_id))  # CLOSE_ORDER

    def release(
        self, reservation_id: str, status: ReservationStatus, payload: dict[str, Any], actor: str, now: float
    ) -> Released:
        """The order ended without (more) fills: close an OPEN (or ORPHANED) reservation as
        `status` and give its capital back, with its audit record, in one transaction.

        A reservation already closed is left as it is (states only move forward) and the event
        is audited with a note; an unknown reservation is audited as an ``orphan_event``.
        """
        with self._cursor(EVENT_BUDGET_MS, write=True) as cur:
            sql = self.sql
            self._own_mark = None
            row = self._begin_write_reading(
                cur, sql.head_and_reservation, sql.get_reservation, (reservation_id,), own=reservation_id
            )
            # this reservation's pending cancel request: written with its close below, where it is
            # OPEN; elsewhere its UPDATE (on an OPEN reservation only) would have matched nothing
            mark_at = self._own_mark
            if row is None:
                self._append(cur, "orphan_event", canonical_json(payload), actor, now)
                self._commit_keeping_reads(cur, capital_moved=False)  # an audit record only
                return Released(None, None)
            book, exchange, left, current = row[0], row[1], int(row[2]), str(row[3])
            if current not in HELD:
                note = {**payload, "note": f"reservation already {current}"}
                self._append(cur, "order_event", canonical_json(note), actor, now)
                self._commit_keeping_reads(cur, capital_moved=False)  # an audit record only
                return Released(current, None)
            if left:
                if current == ORPHANED:
                    self._give_back(cur, book, exchange, orphaned=-left)
                else:
                    self._give_back(cur, book, exchange, reserved=-left)
            if mark_at is not None and current == OPEN:
                cur.execute(sql.close_marked.text, (status.value, now, mark_at, reservation_id))  # CLOSE_MARKED_ORDER
            else:
                self._close(cur, reservation_id, status, now)
            released = from_musd(left)
            self._append(cur, "order_event", released_json(payload, released), actor, now)
            self._commit_keeping_reads(cur)  # the reservation, its capital's used amounts, its audit record
            return Released(status.value, released)

    def book_stray(self, row: ReservationRow, facts: dict[str, Any], actor: str, now: float) -> bool:
        """An order resting on the exchange that no reservation holds (placed before a crash, by
        hand, or released while it still rested): its reservation row, its capital and a
        ``stray_order`` record with a WARNING alert, in one transaction. It is exposure whatever
        the caps say, so it is counted even past them, and a cap it passes stops the store
        gradually as a fill past a cap does. What it had filled before it was found
        (`row.filled_amount`, at its limit price: a limit fills there or better) is booked as
        one fill, keyed so that it is booked once: that capital is deployed and that position
        the bot's, as if the fill had been seen. False (nothing written) when the reservation is
        already there: a reconciliation run again books each stray once."""
        sql = self.sql
        with self._cursor(EVENT_BUDGET_MS) as cur:
            self._begin_write(cur)
            cur.execute(sql.get_reservation.text, sql.get_reservation.params(rid=row.reservation_id))
            if cur.fetchone() is not None:
                self._rollback(cur)
                return False
            executed, price = Decimal(row.filled_amount), Decimal(row.price)
            notional = to_musd(executed * price * Decimal(row.usd_per_quote))
            buy = row.side == Side.BUY.value
            deployed = notional if buy else -notional
            after = self._move(cur, row.book, row.exchange, reserved=row.reserved_musd, deployed=deployed)
            cur.execute(sql.insert_reservation.text, row.values())
            if executed > 0:
                cur.execute(
                    sql.insert_fill.text,
                    sql.insert_fill.params(
                        reservation_id=row.reservation_id, bot_id=row.bot_id, book=row.book, exchange=row.exchange,
                        trading_pair=row.trading_pair, side=row.side, amount=str(executed), price=str(price),
                        notional_musd=notional, fee_musd=0, ts=now, trade_key=STRAY_FILLED_BEFORE_FOUND,
                    ),
                )  # fmt: skip
            payload = {
                **facts,
                "reservation_id": row.reservation_id,
                "reserved_usd": str(from_musd(row.reserved_musd)),
                "filled_before_found_usd": str(from_musd(notional)),
            }
            self._append(cur, "stray_order", canonical_json(payload), actor, now)
            message = (f"an order no reservation held rests on {row.connector} {row.trading_pair} "
                       f"({row.client_order_id}): counted against the caps until it ends")  # fmt: skip
            alert = {"level": "WARNING", "source": "order_store", "bot_id": row.bot_id, "message": message}
            self._append(cur, "alert", canonical_json(alert), actor, now)
            breached = _breaches(after)
            if breached:
                self._stop_gradually(cur, f"a stray order took {', '.join(breached)} (it rests)", actor, now)
            self._commit(cur)
            if executed > 0:
                key = (row.bot_id, row.book, row.exchange, row.trading_pair)
                self.memo.filled(key, executed if buy else -executed)
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
        trade_key: str | None = None,
    ) -> Filled:
        """A fill: capital turned over (`money.fill_effect`), the reservation updated, the fill
        row and its audit record, in one transaction, under the write lock. In order:

        - unknown reservation: audited as an ``orphan_event``, nothing applied;
        - the same fill again (same `trade_key`: the exchange's trade id): audited, applied once;
        - an impossible fill (amount or price not finite and positive, a price 10x off the
          order's, more than 5 % beyond the order's amount, an absurd notional): never applied
          as arithmetic; audited as an ``order_anomaly`` with a CRITICAL ``alert``, and the bot
          is restricted to reducing its positions until an operator lifts it;
        - otherwise booked (a late fill after a cancel too, without reopening the reservation);
          if the fill took any capital row past its cap (a real overfill, MARKET slippage) it
          is booked all the same (it happened) and the store goes into a gradual stop at once.
        """
        sql = self.sql
        with self._cursor(EVENT_BUDGET_MS, write=True) as cur:
            # the reservation and whether this trade key was booked for it, in its first read
            found = self._begin_write_reading(
                cur, sql.head_and_fill_read, sql.fill_read, (reservation_id, trade_key, reservation_id)
            )  # FILL_READ_ORDER
            facts = {"kind": "FILLED", "reservation_id": reservation_id, "client_order_id": client_order_id}
            if found is None:
                self._append(cur, "orphan_event", canonical_json(facts), actor, now)
                self._commit(cur)
                return Filled("unknown", {})
            row = dict(zip(FILL_READ_COLUMNS, found[:-1], strict=True))
            if found[-1]:  # a NULL trade key is never seen: such a fill is not deduplicated
                note = {**facts, "trade_key": trade_key, "note": "the same fill again: applied once"}
                self._append(cur, "order_event", canonical_json(note), actor, now)
                self._commit(cur)
                return Filled("duplicate", {})
            # the reservation's figures parsed once, for the checks and the arithmetic
            order_amount, order_price = Decimal(row["amount"]), Decimal(row["price"])
            usd_per_quote, filled_before = Decimal(row["usd_per_quote"]), Decimal(row["filled_amount"])
            impossible = _impossible_fill(
                order_amount, order_price, filled_before, usd_per_quote, filled_amount, fill_price, fee_musd
            )
            if impossible:
                seen = {**facts, "amount": str(filled_amount), "price": str(fill_price)}
                self._anomaly(cur, str(row["bot_id"]), seen, impossible, actor, now)
                self._commit(cur)
                return Filled("anomaly", {"reason": impossible})
            effect = fill_effect(
                side=row["side"],
                amount=order_amount,
                price=order_price,
                usd_per_quote=usd_per_quote,
                reserved_musd=int(row["reserved_musd"]),
                filled_before=filled_before,
                fill_amount=filled_amount,
                fill_price=fill_price,
            )
            release = effect.release_musd
            late = row["status"] not in HELD  # reported after a cancel/failure released the reservation
            held = "orphaned" if row["status"] == ORPHANED else "reserved"
            after = self._move(
                cur, row["book"], row["exchange"], deployed=effect.deployed_delta_musd, **{held: -release}
            )
            status = ReservationStatus.FILLED.value if effect.fully else row["status"]
            closed_at = now if effect.fully else None
            if late and not effect.fully:
                status, closed_at = row["status"], now  # booked, but a closed reservation never reopens
            left = int(row["reserved_musd"]) - release
            cur.execute(sql.fill_reservation.text, (left, str(effect.done), status, closed_at, reservation_id))
            fill_row = (
                reservation_id, row["bot_id"], row["book"], row["exchange"], row["trading_pair"], row["side"],
                str(filled_amount), str(fill_price), effect.notional_musd, fee_musd, now, trade_key,
            )  # FILL_COLUMNS  # fmt: skip
            cur.execute(sql.insert_fill.text, fill_row)
            payload = {
                **facts,
                "book": row["book"],
                "exchange": row["exchange"],
                "trading_pair": row["trading_pair"],
                "side": row["side"],
                "notional_usd": str(from_musd(effect.notional_musd)),
                "released_usd": str(from_musd(release)),
                "complete": effect.fully or late,
                "late": late,
                "overfill": effect.done > order_amount,
                "amount": str(filled_amount),
                "price": str(fill_price),
            }
            self._append(cur, "order_event", canonical_json(payload), actor, now)
            breached = _breaches(after)
            stopped = bool(breached) and self._stop_gradually(
                cur, f"a fill took {', '.join(breached)} (booked: it happened)", actor, now
            )
            self._commit(cur)
            signed = filled_amount if row["side"] == Side.BUY.value else -filled_amount
            self.memo.filled(
                (str(row["bot_id"]), str(row["book"]), str(row["exchange"]), str(row["trading_pair"])), signed
            )
            return Filled("applied", payload, stopped)

    def _anomaly(self, cur: Any, bot_id: str, facts: dict[str, Any], why: str, actor: str, now: float) -> None:
        """An impossible order event: audited (with a CRITICAL alert), never applied; the bot may
        only reduce its positions from now on (`lift_restriction` lifts it)."""
        self._append(cur, "order_anomaly", canonical_json({**facts, "bot_id": bot_id, "reason": why}), actor, now)
        message = f"bot {bot_id} reported an impossible order event ({why}); it may only reduce its positions"
        alert = {"level": "CRITICAL", "source": "order_store", "bot_id": bot_id, "message": message}
        self._append(cur, "alert", canonical_json(alert), actor, now)
        reason = f"impossible order event on {facts.get('reservation_id')}: {why}"[:500]
        cur.execute(self.sql.restrict_bot.text, self.sql.restrict_bot.params(bid=bot_id, why=reason))

    def _stop_gradually(self, cur: Any, why: str, actor: str, now: float) -> bool:
        """A cap was passed by a fill: the store goes reduce-only at once (if it was ACTIVE),
        audited with a CRITICAL alert. Returns whether the state changed."""
        cur.execute(self.sql.ladder_row.text, self.sql.ladder_row.params())
        _, state, _ = cur.fetchone()
        if state != TradingState.ACTIVE.value:
            return False
        reason = f"cap breached: {why}"[:500]
        cur.execute(self.sql.set_state.text, self.sql.set_state.params(new_state=REDUCING, new_reason=reason, at=now))
        record = {"from": state, "to": REDUCING, "reason": reason}
        self._append(cur, "reduce_only", canonical_json(record), actor, now)
        alert = {"level": "CRITICAL", "source": "order_store", "message": reason}
        self._append(cur, "alert", canonical_json(alert), actor, now)
        return True

    def cancel_requested(self, reservation_id: str, now: float) -> None:
        """The strategy asked the exchange to cancel this order: if it is a resting close, the
        closes that follow are no longer judged net of it (its capital stays until the cancel
        is confirmed). No audit record (the cancel itself is audited) and no transaction of
        its own: the mark (the reservation's ``cancel_requested_at``, if it is still OPEN) is
        written at the start of this connection's next write transaction (`_write_marks`),
        before anything it reads: the next review's `_position_and_closes` under the write
        lock, the cancel's own release, the next heartbeat at the latest. Only that read uses
        the mark, and only this bot's reviews (its own governor's, on this connection) read
        it: each sees it as if it had been written at once. A crash before then loses it the
        safe way: the close still counts against the closes that follow (fail closed), until
        the cancel's event or the restart's reconciliation ends the order. Was a transaction
        of its own: 90 of a paper replay's 456 commits per simulated hour, ~40 us each."""
        with self._lock:
            self._marks.append((reservation_id, now))

    def _write_marks(self, cur: Any, own: str | None = None) -> float | None:
        """The cancel requests not yet written (`cancel_requested`), inside the write transaction
        just begun: kept until it commits (`_commit`), written again by the next if it rolls back.
        `own`'s are not written here: its latest instant is returned, for the caller to write
        (a release closing `own`: its close writes the mark, `Statements.close_marked`, one
        UPDATE of the row fewer; ~30k instructions a cancelled order, bench/event_instructions.py)."""
        mark = self.sql.cancel_requested
        own_at = None
        for reservation_id, at in self._marks:
            if reservation_id == own:
                own_at = at
            else:
                cur.execute(mark.text, (at, reservation_id, OPEN))  # CANCEL_REQUESTED_ORDER
        self._marks_written = len(self._marks)
        return own_at

    def lift_restriction(self, bot_id: str, actor: str, now: float) -> str | None:
        """An operator lets a restricted bot open positions again; returns the lifted reason."""
        with self._cursor(EVENT_BUDGET_MS) as cur:
            self._begin_write(cur)
            cur.execute(self.sql.bot_restriction.text, self.sql.bot_restriction.params(bid=bot_id))
            found = cur.fetchone()
            if found is None or found[0] is None:
                self._rollback(cur)
                return None
            cur.execute(self.sql.restrict_bot.text, self.sql.restrict_bot.params(bid=bot_id, why=None))
            self._append(cur, "bot_resume", canonical_json({"bot_id": bot_id, "lifted": found[0]}), actor, now)
            self._commit(cur)
            return str(found[0])

    def bot_restriction(self, bot_id: str) -> str | None:
        """Why this bot may only reduce its positions, or None."""
        rows = self._query(self.sql.bot_restriction, bid=bot_id)
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    def heartbeat(self, bot_id: str, now: float, host: str, pid: int) -> None:
        """This bot is alive: one small write, no audit record (heartbeats are not decisions)."""
        with self._cursor() as cur:
            if self.sqlite:
                self._make_room()
                self._begin_immediate(cur)
            if self._marks:
                self._write_marks(cur)
            cur.execute(self.sql.beat.text, self.sql.beat.params(beat=now, new_host=host, new_pid=pid, bid=bot_id))
            known = cur.rowcount != 0
            if not known:
                new_bot = self.sql.new_bot.params(bot_id=bot_id, last_heartbeat=now, host=host, pid=pid)
                cur.execute(self.sql.new_bot.text, new_bot)
            if known:  # a beat changes no column a cached read returns
                self._commit_keeping_reads(cur, capital_moved=False)
            else:
                self._commit(cur)

    def heartbeats(self, rows: Iterable[tuple[str, float, str, int]]) -> None:
        """`heartbeat` of several bots, (bot id, beat, host, pid) each, in one transaction (the
        governors sharing this store: `heartbeat.BeatGroup`)."""
        beat, new_bot = self.sql.beat, self.sql.new_bot
        beats = [(now, host, pid, bot_id) for bot_id, now, host, pid in rows]  # BEAT_ORDER
        with self._cursor() as cur:
            if self.sqlite:
                self._make_room()
                self._begin_immediate(cur)
            if self._marks:
                self._write_marks(cur)
            # one statement for them all (SQLite counts every row it changed); a bot without its
            # row (none, but for a row deleted since its first beat): each written on its own
            cur.executemany(beat.text, beats)
            known = cur.rowcount == len(beats)
            if not known:
                for now, host, pid, bot_id in beats:
                    cur.execute(beat.text, (now, host, pid, bot_id))
                    if cur.rowcount == 0:
                        cur.execute(new_bot.text, (bot_id, now, host, pid))  # NEW_BOT_ORDER
            if known:  # beats change no column a cached read returns
                self._commit_keeping_reads(cur, capital_moved=False)
            else:
                self._commit(cur)

    def orphan_silent_bots(self, timeout_s: float, now: float, actor: str = "governor") -> int:
        """The open reservations of bots last heard more than `timeout_s` ago become ORPHANED:
        their orders may still be live on the exchange, so their capital stays counted against
        every cap (moved from reserved to orphaned) until the bot comes back (`reclaim_orphans`)
        or an operator releases them (`release_orphans`). The common case (no silent bot
        holding capital) is a read only, so it costs no write lock.

        A sweep with the cutoff this connection has just swept with is not run again (0): the
        governors sharing one store (a paper replay's) sweep at the same simulated second, and
        the first one's sweep stands for theirs. What a silent bot reserves after it is found by
        the next sweep at a later cutoff, as after any sweep."""
        cutoff = now - timeout_s
        if cutoff == self._swept_cutoff:
            return 0
        if not self._query(self.sql.silent, cutoff=cutoff):
            self._swept_cutoff = cutoff  # swept (a store error leaves it to be swept again)
            return 0
        with self._cursor() as cur:
            self._begin_write(cur)
            cur.execute(self.sql.open_of_silent.text, self.sql.open_of_silent.params(cutoff=cutoff))
            rows = list(cur.fetchall())
            for reservation_id, _bot, book, exchange, left in rows:
                if int(left):
                    self._move(cur, book, exchange, reserved=-int(left), orphaned=int(left))
                cur.execute(
                    self.sql.set_status.text, self.sql.set_status.params(rid=reservation_id, new_status=ORPHANED)
                )
            if rows:
                payload = {
                    "bots": sorted({str(r[1]) for r in rows}),
                    "reservations": [str(r[0]) for r in rows],
                    "orphaned_usd": str(from_musd(sum(int(r[4]) for r in rows))),
                }
                self._append(cur, "reservations_orphaned", canonical_json(payload), actor, now)
            self._commit(cur)
            self._swept_cutoff = cutoff
            return len(rows)

    def _move_held(self, bot_id: str, held: str, to: ReservationStatus, event: str, actor: str, now: float,
                   extra: dict[str, Any]) -> list[str]:  # fmt: skip
        with self._cursor(EVENT_BUDGET_MS) as cur:
            self._begin_write(cur)
            cur.execute(self.sql.held_of_bot.text, self.sql.held_of_bot.params(bid=bot_id, held=held))
            rows = list(cur.fetchall())
            if not rows:
                self._rollback(cur)
                return []
            for reservation_id, _bot, book, exchange, left in rows:
                if to is ReservationStatus.OPEN:  # orphaned -> reserved again
                    self._move(cur, book, exchange, reserved=int(left), orphaned=-int(left))
                    cur.execute(
                        self.sql.set_status.text, self.sql.set_status.params(rid=reservation_id, new_status=OPEN)
                    )
                else:  # released: the capital is free
                    self._move(cur, book, exchange, orphaned=-int(left))
                    self._close(cur, reservation_id, to, now)
            ids = [str(r[0]) for r in rows]
            total = str(from_musd(sum(int(r[4]) for r in rows)))
            self._append(cur, event, canonical_json({"bot_id": bot_id, "reservations": ids, "usd": total, **extra}),
                         actor, now)  # fmt: skip
            self._commit(cur)
            return ids

    def reclaim_orphans(self, bot_id: str, actor: str, now: float) -> list[str]:
        """The bot is back: its ORPHANED reservations are OPEN again (counted as reserved), for
        it to reconcile with the exchange (cancel or adopt what it still holds). Audited."""
        return self._move_held(bot_id, ORPHANED, ReservationStatus.OPEN, "orphans_reclaimed", actor, now, {})

    def release_orphans(self, bot_id: str, actor: str, now: float, reason: str) -> list[str]:
        """An operator checked the exchange: the bot's ORPHANED reservations end (EXPIRED) and
        their capital is free again. Audited with who and why."""
        extra = {"reason": reason}
        return self._move_held(bot_id, ORPHANED, ReservationStatus.EXPIRED, "orphans_released", actor, now, extra)

    def orphans(self, bot_id: str | None = None) -> list[dict[str, Any]]:
        """Every ORPHANED reservation (of one bot, or all), oldest first per bot."""
        names = ("reservation_id", "bot_id", "connector", "trading_pair", "side", "amount", "price",
                 "reserved_musd", "client_order_id", "created_at")  # fmt: skip
        found = [dict(zip(names, r, strict=True)) for r in self._query(self.sql.orphans)]
        return [r for r in found if bot_id is None or r["bot_id"] == bot_id]

    def checkpoint(self, min_writes: int = 256) -> bool:
        """Fold the WAL back into the database file (SQLite; PASSIVE: never waits on readers)
        once `min_writes` commits have accumulated since the WAL last started over here (after
        this copy, or an order event's past the soft bound: `_commit`), on the heartbeat: SQLite's own
        autocheckpoint would do it inside a decision's commit. It runs on the WAL bound's own
        connection (`WalBound.copy`), not under this connection's review budget: copying 30 MB
        on a loaded machine took longer than the 200 ms the watchdog allows (measured: cut,
        STORE_BUSY from the heartbeat). Returns whether it ran."""
        if self._wal is None or self._writes_since_checkpoint < min_writes:
            return False
        ran = self._wal.copy(start_over=False)
        if ran and self._wal.all_copied:
            with contextlib.suppress(*STORE_ERRORS), self._cursor(EVENT_BUDGET_MS) as cur:
                self._start_over(cur)
        if ran:
            self._writes_since_checkpoint = 0
        return ran

    def _start_over(self, cur: Any) -> None:
        """After a copy that left the WAL all copied: this connection writes first into it (the
        database header's user_version set to itself, no wait for the write lock), so the WAL
        starts over here, between decisions: that first writer fsyncs the new WAL's header and
        cuts the file back to `WAL_SIZE_LIMIT` (0.8-5 ms, once 100 ms, when it was the next
        review). On this connection, not the copy's (`WalBound._start_over`): another
        connection's write makes SQLite drop this one's page cache, and the next review read
        every page it touched again (17 reads; 420-600 us against ~120 us warm, measured after
        each copy in bench/governor_review.py). A writer in the way: it starts the WAL over.
        The write is the audit chain's floor moved to its tip (`store.audit_head`: records cut
        off below it are found even if the whole chain goes), or, without a tip, the header's
        user_version set to itself."""
        try:
            cur.execute("BEGIN IMMEDIATE")
        except self._dbapi_error():
            return  # another writer holds the lock: its write starts the WAL over
        try:
            last = cur.execute(self.sql.head.text, self.sql.head.params()).fetchone()
            if last is not None and int(last[2]) == 1:
                floor = self.sql.move_floor.params(new_seq=int(last[0]), new_hash=str(last[1]))
                cur.execute(self.sql.move_floor.text, floor)
            else:
                version = int(cur.execute("PRAGMA user_version").fetchone()[0])
                cur.execute(f"PRAGMA user_version={version}")
            cur.execute("COMMIT")  # not `_commit`: nothing a read keeps changed, nothing to measure
        except self._dbapi_error():  # the write it follows is committed: this one is not needed
            self._rollback(cur)

    # --- reads on the dedicated connection (the governor's per-tick facts) ------------------

    def bot_position(self, bot_id: str, book: str, exchange: str, trading_pair: str) -> Decimal:
        """Net base amount this bot bought (+) or sold (-) on one market, from its fills."""
        return _net(self._query(self.sql.bot_fills, bid=bot_id, bk=book, ex=exchange, pair=trading_pair))

    def book_fills(self, book: str, since: float, after_id: int) -> list[tuple[Any, ...]]:
        """Every bot's fills on one book from `since` with an id above `after_id`, in id order:
        (id, exchange, pair, side, amount, notional_musd, fee_musd, ts). Cached (`_cached`)."""
        params = self.sql.book_fills.params(bk=book, since=since, after=after_id)
        return list(self._cached("book_fills", book, params, lambda cur: self._rows(cur, self.sql.book_fills, params)))

    @staticmethod
    def _rows(cur: Any, sql: Sql, params: tuple[Any, ...]) -> tuple[tuple[Any, ...], ...]:
        cur.execute(sql.text, params)
        return tuple(cur.fetchall())

    def orders_since(self, book: str, exchange: str, since: float) -> int:
        """Orders allowed on one exchange of one book by every bot since `since` (the
        exchange-wide order-rate budget)."""
        return int(self._query(self.sql.orders_since, ex=exchange, since=since, bk=book)[0][0])

    def reservation_status(self, reservation_id: str) -> ReservationStatus | None:
        rows = self._query(self.sql.get_reservation, rid=reservation_id)
        return ReservationStatus(rows[0][3]) if rows else None

    def capital_rows(self, book: str) -> list[tuple[str, int, int, int, int]]:
        """(scope, cap, reserved, deployed, orphaned) in micro-dollars for one book: what sizing
        and denial messages read on every tick."""
        return _capital_tuples(self._query(self.sql.capital_like, pattern=f"{book}:%"))

    def capital_pair_rows(self, book: str, exchange: str) -> list[tuple[str, int, int, int, int]]:
        """`capital_rows` of one exchange and its book's total only (the two rows sizing reads
        before every quote; the whole book's rows cost twice as much to read and convert).
        Cached (`_cached`), and kept only while this connection has committed nothing that may
        move a capital row (`_capital_epoch`: a reservation, a release, a fill, a sweep do; a
        beat or an audit record alone does not): between two quotes a store often
        only heard the bots' beats (106 of the 243 capacity reads of an hour's paper replay)."""
        params = scopes(book, exchange)  # CAPITAL_PAIR_ORDER
        rows: tuple[tuple[str, int, int, int, int], ...] = self._cached(
            "capital_pair", params[0], (params, self._capital_epoch),
            lambda cur: tuple(_capital_tuples(self._rows(cur, self.sql.capital_pair, params))),
        )  # fmt: skip
        return list(rows)

    def caps(self, book: str) -> dict[str, int]:
        """Every scope's cap in micro-dollars for one book (scope name without the book): what
        the loss limits measure against on each heartbeat. Cached (`_cached`)."""
        params = self.sql.caps_like.params(pattern=f"{book}:%")
        rows = self._cached("caps", book, params, lambda cur: self._rows(cur, self.sql.caps_like, params))
        return {str(r[0]).split(":", 1)[1]: int(r[1]) for r in rows}

    def ladder_row(self, at: float | None = None) -> tuple[int, str, str, dict[str, int]]:
        """(phase, trading state, reason, rungs): the governor's periodic state refresh. Cached
        (`_cached`, `at` its instant)."""
        row: tuple[int, str, str, dict[str, int]] = self._cached("ladder", "", (), self._ladder_row, at)
        return row[0], row[1], row[2], dict(row[3])

    def ladder_look(
        self, bot_id: str, at: float | None = None
    ) -> tuple[tuple[int, str, str, dict[str, int]], str | None]:
        """`ladder_row` and `bot_restriction` in one read: what each governor looks at every
        `LadderView.refresh_s` (one cursor, not two: each costs a lock and a watchdog guard).
        Cached (`_cached`, `at` its instant): while the store is unchanged, one `PRAGMA
        data_version`, and none for a look at an instant another look has checked."""

        def read(cur: Any) -> tuple[tuple[int, str, str, dict[str, int]], str | None]:
            row = self._ladder_row(cur)
            cur.execute(self.sql.bot_restriction.text, self.sql.bot_restriction.params(bid=bot_id))
            found = cur.fetchone()
            return row, (str(found[0]) if found is not None and found[0] is not None else None)

        (phase, state, reason, rung_rows), restricted = self._cached("ladder_look", bot_id, (), read, at)
        return (phase, state, reason, dict(rung_rows)), restricted

    def _ladder_row(self, cur: Any) -> tuple[int, str, str, dict[str, int]]:
        cur.execute(self.sql.ladder_row.text, self.sql.ladder_row.params())
        phase, state, reason = cur.fetchone()
        cur.execute(self.sql.rungs.text, self.sql.rungs.params())
        rung_rows = {str(name): int(rung) for name, rung in cur.fetchall()}
        return int(phase), str(state), str(reason), rung_rows
