"""Hash-chained, append-only audit trail.

Each record's hash covers its sequence number, time, actor, event, payload and the previous
record's hash, so editing, deleting, inserting or reordering any record breaks the chain from
that record on. `verify` names the first broken record; the head row (updated in the same
transaction as each append) also catches records cut off the end.

Appends happen inside the caller's write transaction (`store.write_tx`), so a state change and
the record describing it commit together or not at all.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lyra_governor.store import GENESIS_HASH, audit_head, audit_log


def canonical_json(payload: dict[str, Any]) -> str:
    """Deterministic JSON: sorted keys, no spaces, Decimals and enums as strings."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def record_hash(seq: int, ts_us: int, actor: str, event: str, payload_json: str, prev_hash: str) -> str:
    material = "\x1f".join((str(seq), str(ts_us), actor, event, payload_json, prev_hash))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def append(conn: Connection, event: str, payload: dict[str, Any], actor: str, now: float | None = None) -> int:
    """Append one record inside the caller's write transaction; return its sequence number."""
    head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()
    seq = int(head.seq) + 1
    ts_us = int((time.time() if now is None else now) * 1_000_000)
    payload_json = canonical_json(payload)
    digest = record_hash(seq, ts_us, actor, event, payload_json, head.hash)
    conn.execute(
        audit_log.insert().values(
            seq=seq, ts_us=ts_us, actor=actor, event=event, payload=payload_json, prev_hash=head.hash, hash=digest
        )
    )
    updated = conn.execute(
        audit_head.update().where(audit_head.c.id == 1, audit_head.c.seq == head.seq).values(seq=seq, hash=digest)
    )
    if updated.rowcount != 1:  # pragma: no cover - the write lock makes this unreachable
        raise RuntimeError("audit head moved during an append; the transaction is rolled back")
    return seq


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of `verify`: `first_broken` is the sequence number of the first bad record."""

    ok: bool
    count: int
    first_broken: int | None
    head_seq: int
    head_hash: str
    problem: str = ""


def verify(engine: Engine, batch: int = 5000) -> VerifyResult:
    """Walk the whole chain; stop at the first record whose link or hash does not hold."""
    prev_hash = GENESIS_HASH
    expected_seq = 1
    count = 0
    with engine.connect() as conn:
        head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).first()
        head_seq, head_hash = (int(head.seq), str(head.hash)) if head else (0, GENESIS_HASH)
        last = 0
        while True:
            rows = conn.execute(
                sa.select(audit_log).where(audit_log.c.seq > last).order_by(audit_log.c.seq).limit(batch)
            ).all()
            if not rows:
                break
            for row in rows:
                seq = int(row.seq)
                if seq != expected_seq:
                    return VerifyResult(
                        False, count, expected_seq, head_seq, head_hash, f"record {expected_seq} is missing"
                    )
                if row.prev_hash != prev_hash:
                    return VerifyResult(
                        False, count, seq, head_seq, head_hash, f"record {seq} does not link to record {seq - 1}"
                    )
                digest = record_hash(seq, int(row.ts_us), row.actor, row.event, row.payload, row.prev_hash)
                if digest != row.hash:
                    return VerifyResult(
                        False, count, seq, head_seq, head_hash, f"record {seq} was altered (hash mismatch)"
                    )
                prev_hash = row.hash
                expected_seq += 1
                count += 1
                last = seq
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


def tail(engine: Engine, n: int = 20, event: str | None = None) -> list[AuditRecord]:
    """The last `n` records (oldest first), optionally of one event type."""
    query = sa.select(audit_log).order_by(audit_log.c.seq.desc()).limit(n)
    if event:
        query = query.where(audit_log.c.event == event)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        AuditRecord(int(r.seq), r.ts_us / 1_000_000, r.actor, r.event, json.loads(r.payload), r.hash)
        for r in reversed(rows)
    ]
