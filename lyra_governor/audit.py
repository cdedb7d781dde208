"""Hash-chained, append-only audit trail: the only reader of the audit table.

Each record's hash (`chain.record_hash`) covers its sequence number, time, actor, event,
payload and the previous record's hash, so editing, deleting, inserting or reordering any
record breaks the chain from that record on. `verify` names the first broken record. Records
cut off the end are caught by the head: on PostgreSQL (and a SQLite store made before
`store.CHAIN_VERSION`) the head row, moved in the same transaction as each append; on SQLite the
tip, a flag only the last record carries (each append moves it from the record before), with
the head row as a floor the chain must still reach (moved by the ladder's records and after
WAL copies: that catches a chain cut down to nothing).

Records are written by `order_store` only (`order_store.append_audit` inside a `write_tx` for
the ladder's records, its own transactions for per-order ones), so a state change and the
record describing it commit together or not at all. Everything that reads records (status,
metrics, checkpoints, the ladder's promotion facts) goes through `records`, `head`,
`hash_at`, `tail` or `verify` here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lyra_governor import chain
from lyra_governor.chain import GENESIS_HASH, record_hash
from lyra_governor.store import FREQUENT_EVENTS, RARE_EVENT_TERM, audit_head, audit_log, chain_by_tip, read_tx

canonical_json = chain.canonical_json  # what callers hash and store (one definition, in chain)
# what a record is (its `tip` flag is the store's, read by `_walk` only where it is kept)
RECORD_COLUMNS = [audit_log.c[name] for name in ("seq", "ts_us", "actor", "event", "payload", "prev_hash", "hash")]


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of `verify`: `first_broken` is the sequence number of the first bad record."""

    ok: bool
    count: int
    first_broken: int | None
    head_seq: int
    head_hash: str
    problem: str = ""


def _head(conn: Connection) -> tuple[int, str]:
    """The chain's head: its last record on a SQLite store that keeps a tip (`_tip_problem`
    checks it is flagged so), else the head row."""
    if chain_by_tip(conn):
        last = conn.execute(
            sa.select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
        ).first()
        return (int(last.seq), str(last.hash)) if last else (0, GENESIS_HASH)
    return _head_row(conn)


def _head_row(conn: Connection) -> tuple[int, str]:
    head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).first()
    return (int(head.seq), str(head.hash)) if head else (0, GENESIS_HASH)


def _tip_problem(conn: Connection, head_seq: int) -> tuple[int | None, str]:
    """SQLite's tip and floor (`store.CHAIN_VERSION`): the last record must be flagged as the
    tip (else records after it were cut off), and the chain must reach its floor, the record the
    head row names, with that hash. (The first broken record, the problem), or (None, "")."""
    if not chain_by_tip(conn):
        return None, ""
    if head_seq:
        tip = conn.execute(sa.select(audit_log.c.tip).where(audit_log.c.seq == head_seq)).scalar()
        if tip != 1:
            return head_seq + 1, (
                f"record {head_seq}, the chain's last, is not flagged as its tip: the records after it were removed"
            )
    floor_seq, floor_hash = _head_row(conn)
    if floor_seq > head_seq:
        return head_seq + 1, (
            f"the chain ends at record {head_seq} but had reached record {floor_seq}: records were removed"
        )
    if floor_seq:
        found = conn.execute(sa.select(audit_log.c.hash).where(audit_log.c.seq == floor_seq)).scalar()
        if found != floor_hash:
            return floor_seq, f"record {floor_seq} is not the record the chain's floor names: records were replaced"
    return None, ""


def _walk(
    conn: Connection, seq: int, digest: str, head_seq: int, batch: int, tip_at: int | None = None
) -> tuple[int, str, int | None, str]:
    """Check the records after `seq` (whose hash is `digest`) up to `head_seq`, in batches.
    Returns the last verified (sequence number, hash) and, at the first record whose number,
    link or hash does not hold, that record's number and the problem (else None, "").
    `tip_at`: the chain's last record, the only one that may be flagged as its tip (SQLite)."""
    columns = [*RECORD_COLUMNS, audit_log.c.tip] if tip_at is not None else RECORD_COLUMNS
    while seq < head_seq:
        rows = conn.execute(
            sa.select(*columns)
            .where(audit_log.c.seq > seq, audit_log.c.seq <= head_seq)
            .order_by(audit_log.c.seq)
            .limit(batch)
        ).all()
        if not rows:
            break
        for row in rows:
            at = int(row.seq)
            problem = ""
            if at != seq + 1:
                at, problem = seq + 1, f"record {seq + 1} is missing"
            elif row.prev_hash != digest:
                problem = f"record {at} does not link to record {at - 1}"
            elif record_hash(at, int(row.ts_us), row.actor, row.event, row.payload, row.prev_hash) != row.hash:
                problem = f"record {at} was altered (hash mismatch)"
            elif tip_at is not None and row.tip and at != tip_at:
                problem = f"record {at} is flagged as the chain's tip but records follow it"
            if problem:
                return seq, digest, at, problem
            seq, digest = at, str(row.hash)
    return seq, digest, None, ""


def _tip_at(conn: Connection, head_seq: int) -> int | None:
    return head_seq if chain_by_tip(conn) else None


PER_SNAPSHOT = 20_000  # records walked per short snapshot (about half a second at 27 us each)


@dataclass(frozen=True)
class Verified:
    """How far `verify_prefix` got: the last verified record and its hash, or the first failure."""

    seq: int
    digest: str
    failure: VerifyResult | None = None


def verify_prefix(engine: Engine, batch: int = 5000, per_snapshot: int = PER_SNAPSHOT) -> Verified:
    """Verify the chain up to its head in short snapshots of at most `per_snapshot` records.

    Why not one snapshot: on SQLite a reader's snapshot pins the WAL, and the writers keep the
    WAL's bound (store_budget.WalBound) by refusing to write past it: one snapshot over a
    million records (about 27 s) would have the bots denied STORE_BUSY until it ended. Short
    snapshots are enough because records are append-only and each snapshot holds every record
    up to the head it read; what is appended meanwhile is walked by the next snapshot, and the
    caller's final snapshot (`verify(..., start=)`) checks the head and the ledger together."""
    seq, digest = 0, GENESIS_HASH
    while True:
        with read_tx(engine) as conn:
            head_seq, head_hash = _head(conn)
            goal = min(head_seq, seq + per_snapshot)
            reached, reached_digest, broken, problem = _walk(conn, seq, digest, goal, batch, _tip_at(conn, head_seq))
        if broken is not None:
            return Verified(reached, reached_digest, VerifyResult(False, reached, broken, head_seq, head_hash, problem))
        progressed = reached > seq
        seq, digest = reached, reached_digest
        if goal >= head_seq or reached != goal or not progressed:
            return Verified(seq, digest)  # caught up (or records missing: the final snapshot names it)


def verify(
    engine: Engine, batch: int = 5000, conn: Connection | None = None, start: Verified | None = None
) -> VerifyResult:
    """Walk the whole chain up to the head and stop at the first record whose link or hash does
    not hold. The head, the records past it and the last records are checked in one snapshot
    (`store.read_tx`, or the caller's `conn`): bots appending meanwhile are neither seen nor
    mistaken for damage, and no write lock is taken. The long part of the walk runs before, in
    short snapshots (`verify_prefix`, or the caller's `start`), so that no reader pins a SQLite
    WAL for as long as a long chain takes to walk."""
    if start is None:
        start = verify_prefix(engine, batch)
    if start.failure is not None:
        return start.failure
    if conn is None:
        with read_tx(engine) as own:
            return verify(engine, batch, own, start)
    head_seq, head_hash = _head(conn)
    if head_seq < start.seq:  # the store was replaced meanwhile: walk it all in this snapshot
        start = Verified(0, GENESIS_HASH)
    count, prev_hash, broken, problem = _walk(conn, start.seq, start.digest, head_seq, batch, _tip_at(conn, head_seq))
    if broken is None:
        broken, problem = _tip_problem(conn, head_seq)
    if broken is not None:
        return VerifyResult(False, count, broken, head_seq, head_hash, problem)
    beyond = conn.execute(sa.select(sa.func.count()).where(audit_log.c.seq > head_seq)).scalar() or 0
    if beyond:  # in one snapshot a record past the head was written without moving it
        return VerifyResult(
            False,
            count,
            head_seq + 1,
            head_seq,
            head_hash,
            f"{beyond} record(s) lie beyond the head (record {head_seq}): records were added without it",
        )
    if count != head_seq or prev_hash != head_hash:
        first = min(count, head_seq) + 1
        return VerifyResult(
            False,
            count,
            first,
            head_seq,
            head_hash,
            f"the chain holds {count} records but its head says {head_seq}: records were removed or added",
        )
    return VerifyResult(True, count, None, head_seq, head_hash)


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    ts: float
    actor: str
    event: str
    payload: dict[str, Any]
    hash: str


def _payload(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _record(row: Any) -> AuditRecord:
    return AuditRecord(int(row.seq), row.ts_us / 1_000_000, row.actor, row.event, _payload(row.payload), row.hash)


CRITICAL_EVENTS = ("alert", "council_verdict")


def is_critical(record: AuditRecord) -> bool:
    """A CRITICAL alert or a council ABORT: what blocks a promotion and counts in the gates."""
    return record.event in CRITICAL_EVENTS and (
        record.payload.get("level") == "CRITICAL" or record.payload.get("verdict") == "ABORT"
    )


def records(
    engine: Engine,
    events: Iterable[str] | None = None,
    since: float | None = None,
    after_seq: int | None = None,
    limit: int | None = None,
    newest: bool = False,
) -> list[AuditRecord]:
    """Audit records, oldest first, parsed (an unparseable payload reads as ``{}``).

    `events` keeps only those event types, `since` only records at or after that time,
    `after_seq` only records after that sequence number; `limit` caps how many: the first
    ones, or with `newest=True` the last ones (still returned oldest first).
    """
    query = sa.select(*RECORD_COLUMNS)
    if events is not None:
        events = tuple(events)
        query = query.where(audit_log.c.event.in_(events))
        if not set(events) & set(FREQUENT_EVENTS):  # the index of rare events (store.audit_by_rare_event)
            query = query.where(sa.text(RARE_EVENT_TERM))
    if since is not None:
        query = query.where(audit_log.c.ts_us >= int(since * 1_000_000))
    if after_seq is not None:
        query = query.where(audit_log.c.seq > after_seq)
    query = query.order_by(audit_log.c.seq.desc() if newest else audit_log.c.seq)
    if limit is not None:
        query = query.limit(limit)
    with read_tx(engine) as conn:
        rows = conn.execute(query).all()
    found = [_record(r) for r in rows]
    return found[::-1] if newest else found


def head(engine: Engine) -> tuple[int, str]:
    """(sequence number, hash) of the chain's last record; (0, genesis) for an empty chain."""
    with read_tx(engine) as conn:
        return _head(conn)


def hash_at(engine: Engine, seq: int) -> str | None:
    """The hash of record `seq`, or None if the chain has no such record."""
    with read_tx(engine) as conn:
        row = conn.execute(sa.select(audit_log.c.hash).where(audit_log.c.seq == seq)).first()
    return None if row is None else str(row.hash)


def tail(engine: Engine, n: int = 20, event: str | None = None) -> list[AuditRecord]:
    """The last `n` records (oldest first), optionally of one event type."""
    return records(engine, events=(event,) if event else None, limit=n, newest=True)


def verify_since(engine: Engine, seq: int, digest: str, batch: int = 5000) -> tuple[VerifyResult, int, str]:
    """Verify only the records after `seq` (whose hash is `digest`, already verified), up to
    the head, in one short snapshot: what a long-running reader (the server) does on each check.
    Returns the result and the last verified (sequence number, hash)."""
    with read_tx(engine) as conn:
        head_seq, head_hash = _head(conn)
        if head_seq < seq:  # a new store: start over
            seq, digest = 0, GENESIS_HASH
        seq, digest, broken, problem = _walk(conn, seq, digest, head_seq, batch, _tip_at(conn, head_seq))
        if broken is None and seq == head_seq:
            broken, problem = _tip_problem(conn, head_seq)
        if broken is not None:
            return VerifyResult(False, seq, broken, head_seq, head_hash, problem), seq, digest
    if seq != head_seq or digest != head_hash:
        problem = f"the chain holds {seq} records but its head says {head_seq}: records were removed or added"
        return VerifyResult(False, seq, min(seq, head_seq) + 1, head_seq, head_hash, problem), seq, digest
    return VerifyResult(True, seq, None, head_seq, head_hash), seq, digest
