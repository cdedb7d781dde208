"""The durable capital ledger: what every bot, the CLI and the server read of the store.

`Ledger` is the ladder (`ladder.Ladder`: trading state, phase and rung moves, evidence) plus
the reads of capital, reservations and bots. It writes no per-order state: reservations,
fills, capital and their audit records are written by `order_store` alone, one conditional
UPDATE over the exchange's row and the book's TOTAL row per reservation, so concurrent bots in
any number of processes can never push deployed + reserved over a cap together.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lyra_governor import phases
from lyra_governor.config import Settings
from lyra_governor.ladder import EvidenceRecord, Ladder, LadderState, PromotionOutcome
from lyra_governor.models import STRAY_PREFIX, ReservationStatus
from lyra_governor.money import from_musd
from lyra_governor.store import bots, capital, create_schema, create_store_engine, metadata, read_tx, reservations

__all__ = [  # the ladder's types are re-exported: callers read them with the ledger
    "BotRecord",
    "EvidenceRecord",
    "Exposure",
    "LadderState",
    "Ledger",
    "PromotionOutcome",
    "ScopeExposure",
    "exposure_from_rows",
    "open_ledger",
    "remaining_from_pair",
]


@dataclass(frozen=True)
class ScopeExposure:
    cap_usd: Decimal
    reserved_usd: Decimal
    deployed_usd: Decimal
    orphaned_usd: Decimal = Decimal(0)  # held by ORPHANED reservations (a silent bot's orders)

    @property
    def used_usd(self) -> Decimal:
        return self.reserved_usd + self.deployed_usd + self.orphaned_usd

    @property
    def remaining_usd(self) -> Decimal:
        return max(Decimal(0), self.cap_usd - self.used_usd)


@dataclass(frozen=True)
class Exposure:
    """Capital of one book (paper or live): per exchange and in total."""

    book: str
    exchanges: dict[str, ScopeExposure]
    total: ScopeExposure


@dataclass(frozen=True)
class BotRecord:
    bot_id: str
    last_heartbeat: float
    host: str
    pid: int


def exposure_from_rows(book: str, rows: list[tuple[str, int, int, int, int]]) -> Exposure:
    """Build an `Exposure` from (scope, cap, reserved, deployed, orphaned) micro-dollar rows."""
    per: dict[str, ScopeExposure] = {}
    total = ScopeExposure(Decimal(0), Decimal(0), Decimal(0))
    for name_scope, cap, reserved, deployed, orphaned in rows:
        value = ScopeExposure(from_musd(cap), from_musd(reserved), from_musd(deployed), from_musd(orphaned))
        name = name_scope.split(":", 1)[1]
        if name == phases.TOTAL:
            total = value
        else:
            per[name] = value
    return Exposure(book, dict(sorted(per.items())), total)


_ZERO = Decimal(0)


def _remaining(cap: int, reserved: int, deployed: int, orphaned: int) -> Decimal:
    """`ScopeExposure.remaining_usd` of one row, by the same Decimal operations in the same
    order (so the same value and the same exponent), without building the objects."""
    return max(_ZERO, from_musd(cap) - (from_musd(reserved) + from_musd(deployed) + from_musd(orphaned)))


def remaining_from_pair(exchange: str, rows: list[tuple[str, int, int, int, int]]) -> Decimal:
    """What may still be reserved on `exchange`: the least of its row's and its book's total's
    remaining USD, from `OrderStore.capital_pair_rows`' two rows; 0 without the exchange's row
    (no total row: its remaining is 0). The same Decimal as
    `min(e.remaining_usd, exposure.total.remaining_usd)` of `exposure_from_rows(book, rows)`'s
    exchange `e` (the sizing read before every quote: two dataclasses, a dict, a sort and a
    split fewer).

    Kept per rows (a pure function of them: the same Decimal object for the same rows): the
    eight divisions of `from_musd` were ~30k of a capacity read's instructions, and the rows of
    a pair seldom move between two quotes (a paper replay's governors ask the same pairs)."""
    return _remaining_of_pair(exchange, tuple(rows))


@functools.lru_cache(maxsize=256)
def _remaining_of_pair(exchange: str, rows: tuple[tuple[str, int, int, int, int], ...]) -> Decimal:
    ex = total = None
    for name_scope, cap, reserved, deployed, orphaned in rows:
        name = name_scope.split(":", 1)[1]
        if name == phases.TOTAL:
            total = (cap, reserved, deployed, orphaned)
        elif name == exchange:
            ex = (cap, reserved, deployed, orphaned)
    if ex is None:
        return _ZERO
    left = _remaining(*ex)
    return min(left, _remaining(*total) if total is not None else _ZERO)


class Ledger(Ladder):
    """Durable state shared by every bot, the CLI and the server (one store, many processes)."""

    @classmethod
    def open(
        cls,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        url: str | None = None,
        *,
        read_only: bool = False,
        write_caps: bool = True,
    ) -> Ledger:
        """Open (and create if needed) the store named by `url` or `settings.db_url`.

        A writer (a bot, an operator's command that changes state) sets every scope's cap from
        its settings. `read_only` (status, phase, audit verify/tail, serve) writes nothing into a
        store that exists, not even the caps, takes no write lock and works on a read-only file:
        its engine refuses writes (`create_store_engine`). Only a missing store (or one made by
        an older Lyra, missing a column) is first created (with its caps) or brought up to
        date, as a writer would. `write_caps=False`: a writer that never changes the caps (the server's
        checkpoint loop) leaves them as the bots set them."""
        from lyra_governor import store_health

        db_url = url or settings.db_url
        try:
            engine = create_store_engine(db_url)
            # never write into a foreign database; True when every Lyra table and column is there
            complete = store_health.check_lyra_store(engine, db_url, metadata)
            if read_only and complete:
                engine.dispose()
                return cls(settings, create_store_engine(db_url, read_only=True), clock)
            create_schema(engine, clock())
            ledger = cls(settings, engine, clock)
            if write_caps or read_only:  # a new store: its caps, as its first bot would set them
                ledger._ensure_caps()
            if read_only:
                engine.dispose()
                return cls(settings, create_store_engine(db_url, read_only=True), clock)
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise store_health.classify(db_url, exc) from None
        return ledger

    def close(self) -> None:
        self.engine.dispose()

    # --- reading ----------------------------------------------------------------------------

    def exposure(self, book: str | None = None, conn: Connection | None = None) -> Exposure:
        """Capital of `book` (default: the book the current phase trades from, else live)."""
        if conn is None:
            with read_tx(self.engine) as own:
                return self.exposure(book, own)
        if book is None:
            book = self.state(conn).book or phases.LIVE_BOOK
        rows = conn.execute(sa.select(capital).where(capital.c.scope.like(f"{book}:%"))).all()
        return exposure_from_rows(
            book,
            [
                (r.scope, int(r.cap_musd), int(r.reserved_musd), int(r.deployed_musd), int(r.orphaned_musd))
                for r in rows
            ],
        )

    def bots(self) -> list[BotRecord]:
        with read_tx(self.engine) as conn:
            rows = conn.execute(sa.select(bots).order_by(bots.c.bot_id)).all()
        return [BotRecord(r.bot_id, float(r.last_heartbeat), r.host, int(r.pid)) for r in rows]

    def open_reservations(self, bot_id: str | None = None) -> list[dict[str, Any]]:
        where = [reservations.c.status == ReservationStatus.OPEN.value]
        if bot_id is not None:
            where.append(reservations.c.bot_id == bot_id)
        return self._reservations(*where)

    def held_reservations(self, connector: str, trading_pair: str) -> list[dict[str, Any]]:
        """Every bot's reservations on one market that still hold capital (OPEN or ORPHANED):
        what explains the orders resting there (`reconcile.strays`)."""
        held = (ReservationStatus.OPEN.value, ReservationStatus.ORPHANED.value)
        c = reservations.c
        return self._reservations(c.status.in_(held), c.connector == connector, c.trading_pair == trading_pair)

    def stray_reservations(self) -> list[dict[str, Any]]:
        """The stray orders still counted (`Governor.book_stray`): every bot's, OPEN or ORPHANED."""
        held = (ReservationStatus.OPEN.value, ReservationStatus.ORPHANED.value)
        c = reservations.c
        return self._reservations(c.status.in_(held), c.reservation_id.startswith(STRAY_PREFIX, autoescape=True))

    def _reservations(self, *where: Any) -> list[dict[str, Any]]:
        """The reservations `where` holds, oldest first (by `created_at`, then id): an order of
        their own, not the table's. PostgreSQL returns rows without ORDER BY in the order they lie
        in the heap, which its updates and autovacuum change as they go: a restarted bot adopted
        its orders in another order from one run to the next (bench/simulate.py on PostgreSQL,
        one seed twice: the runs parted at the 6,659th audit record of 20,000 steps)."""
        c = reservations.c
        query = sa.select(reservations).where(*where).order_by(c.created_at, c.reservation_id)
        with read_tx(self.engine) as conn:
            return [dict(r._mapping) for r in conn.execute(query).all()]

    def totals_agree(self, conn: Connection | None = None) -> tuple[bool, str]:
        """Cross-check the store's invariants (`invariants.check_invariants`, in one snapshot:
        `read_tx`, or the caller's `conn`): every scope's reserved and orphaned capital equal its
        reservations', each total the sum over its exchanges, no cap passed while ACTIVE."""
        from lyra_governor.invariants import check_invariants

        problems = check_invariants(self.engine, conn=conn)
        if problems:
            return False, "; ".join(problems[:3])
        return True, "reserved capital equals the open reservations in every scope"


def open_ledger(settings: Settings, clock: Callable[[], float] = time.time) -> Ledger:
    """`Ledger.open` with the store error turned into a user-facing `StoreUnavailable`."""
    return Ledger.open(settings, clock)
