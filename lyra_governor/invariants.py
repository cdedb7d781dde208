"""The store's invariants, checked from the store alone (for `audit verify`, the gates and the
stateful simulation): `check_invariants(engine)` returns every violation as a sentence.

- every scope (each exchange and the TOTAL, per book): deployed + reserved + orphaned <= cap,
  unless trading is not ACTIVE (a real overfill or slippage past a cap is booked, it happened,
  and the order store stops trading at once in the same transaction);
- the TOTAL row of a book is the sum of its exchanges' rows (reserved, deployed, orphaned), so
  the total cap bounds the sum over exchanges (no netting of one exchange against another);
- each scope's reserved equals the sum of its OPEN reservations, its orphaned the sum of its
  ORPHANED ones; a terminal reservation holds nothing;
- optionally (`chain=True`, it reads every record) the audit chain verifies.

`stopped_but_allowed(engine)` replays the audit trail: no ALLOWED decision is recorded after a
committed halt (before the resume that ends it), and in a gradual stop only reduce-only orders
are allowed. Both are written in the transaction that decides, so the trail's order is the
order the store saw.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lyra_governor import audit
from lyra_governor.models import ReservationStatus, TradingState
from lyra_governor.money import TOTAL, from_musd, scope
from lyra_governor.store import capital, ladder, read_tx, reservations


@contextmanager
def _snapshot(engine: Engine, conn: Connection | None) -> Iterator[Connection]:
    if conn is not None:
        yield conn
    else:
        with read_tx(engine) as own:
            yield own


def check_invariants(engine: Engine, chain: bool = False, conn: Connection | None = None) -> list[str]:
    """Every invariant the store breaks right now, as sentences (empty: all hold), read in one
    snapshot (`store.read_tx`, or the caller's `conn`) so writers meanwhile raise no false alarm."""
    problems: list[str] = []
    with _snapshot(engine, conn) as snap:
        state = snap.execute(sa.select(ladder.c.trading_state).where(ladder.c.id == 1)).scalar()
        rows = {
            r.scope: (int(r.cap_musd), int(r.reserved_musd), int(r.deployed_musd), int(r.orphaned_musd))
            for r in snap.execute(sa.select(capital)).all()
        }
        held: dict[str, list[int]] = {}
        held_or_holding = sa.or_(  # terminal rows that hold nothing cannot break anything: not read
            reservations.c.status.in_((ReservationStatus.OPEN.value, ReservationStatus.ORPHANED.value)),
            reservations.c.reserved_musd != 0,
        )
        for r in snap.execute(
            sa.select(reservations.c.book, reservations.c.exchange, reservations.c.status, reservations.c.reserved_musd)
            .where(held_or_holding)
        ).all():
            left = int(r.reserved_musd)
            if r.status in (ReservationStatus.OPEN.value, ReservationStatus.ORPHANED.value):
                column = 0 if r.status == ReservationStatus.OPEN.value else 1
                for key in (scope(r.book, r.exchange), scope(r.book, TOTAL)):
                    held.setdefault(key, [0, 0])[column] += left
            elif left:
                problems.append(f"a {r.status} reservation on {r.book}:{r.exchange} still holds {from_musd(left)} USD")
    stopped = state != TradingState.ACTIVE.value
    sums: dict[str, list[int]] = {}
    for key, (cap, reserved, deployed, orphaned) in sorted(rows.items()):
        used = reserved + deployed + orphaned
        if used > cap and not stopped:
            problems.append(f"{key}: deployed + reserved + orphaned {from_musd(used)} USD > cap {from_musd(cap)} USD")
        book, name = key.split(":", 1)
        if name != TOTAL:
            total = sums.setdefault(book, [0, 0, 0])
            total[0], total[1], total[2] = total[0] + reserved, total[1] + deployed, total[2] + orphaned
        open_sum, orphan_sum = held.get(key, [0, 0])
        if reserved != open_sum:
            problems.append(
                f"{key}: reserved {from_musd(reserved)} USD but open reservations sum to {from_musd(open_sum)}"
            )
        if orphaned != orphan_sum:
            problems.append(
                f"{key}: orphaned {from_musd(orphaned)} USD but orphaned reservations sum to {from_musd(orphan_sum)}"
            )
    for book, (reserved, deployed, orphaned) in sorted(sums.items()):
        total_row = rows.get(scope(book, TOTAL))
        if total_row is not None and (total_row[1], total_row[2], total_row[3]) != (reserved, deployed, orphaned):
            problems.append(
                f"{book}:TOTAL (reserved, deployed, orphaned) = {tuple(map(from_musd, total_row[1:]))} USD is not "
                f"the sum over its exchanges {tuple(map(from_musd, (reserved, deployed, orphaned)))}"
            )
    if chain:
        verified = audit.verify(engine)
        if not verified.ok:
            problems.append(f"audit chain: {verified.problem}")
    return problems


#: Audit events that change the trading state (their payload's "to" is the new state).
STATE_EVENTS = ("halt", "reduce_only", "resume", "drill_restore")


@dataclass
class TrailCursor:
    """Where a replay of the audit trail stopped (to go on from there on the next call)."""

    seq: int = 0
    state: str = TradingState.ACTIVE.value
    allowed: int = 0  # ALLOWED decisions seen so far
    problems: list[str] = field(default_factory=list)


def stopped_but_allowed(engine: Engine, cursor: TrailCursor | None = None) -> TrailCursor:
    """Replay the decisions and trading-state changes recorded after `cursor` (from the start
    without one); every ALLOWED decision under a halt, and every allowed order that does not
    reduce under a gradual stop, is added to `cursor.problems`."""
    cursor = cursor or TrailCursor()
    for record in audit.records(engine, events=(*STATE_EVENTS, "decision"), after_seq=cursor.seq):
        cursor.seq = record.seq
        payload = record.payload
        if record.event != "decision":
            cursor.state = str(payload.get("to", cursor.state))
            continue
        if payload.get("status") != "ALLOWED":
            continue
        cursor.allowed += 1
        what = f"audit seq {record.seq}: {payload.get('side')} {payload.get('amount')} on {payload.get('connector')}"
        if cursor.state == TradingState.HALTED.value:
            cursor.problems.append(f"{what} ALLOWED after a committed halt")
        elif cursor.state == TradingState.REDUCING.value and not payload.get("reduce_only"):
            cursor.problems.append(f"{what} ALLOWED in a gradual stop without reduce_only")
    return cursor
