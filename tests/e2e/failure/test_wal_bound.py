"""The SQLite WAL never passes its bound (issue 17 point 5: `store.WAL_GOAL_BYTES`, 64 MB) under
sustained writes while readers always hold a snapshot inside it, and no write is lost.

Two Lyra writer processes append to the store as fast as they are let, each at up to 160 commits
a second of large rows (several MB of WAL a second between them): one through `store.write_tx`
(what the ladder and the evidence use), one through the order path's `OrderStore.audit` (each
commit an audit record). Meanwhile 16 reader threads each hold a `read_tx` snapshot for 150 ms,
one after the other, so some reader is always inside the WAL (a server computing scrapes).

A reader on the WAL keeps it from starting over, and a checkpoint that waits for the readers
must first win the write lock and the checkpoint lock from the writers. The old periodic
checkpointer thread did not (0 restarts and 240.5 MB in some idle-machine runs; on this test:
see the commit that made it pass). The writers now keep the bound themselves
(`store_budget.WalBound`): past the hard bound they start the WAL over before writing again.
The file is sampled every 5 ms; every write a writer was told had committed must be there, and
the order path's writer was only ever refused with STORE_BUSY (then it tries again)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from lyra_governor.config import load_settings
from lyra_governor.ledger import Ledger
from lyra_governor.store import WAL_GOAL_BYTES, read_tx
from lyra_governor.store_budget import acquire_checkpointer, release_checkpointer

WRITER = """
import json, sys, time
import sqlalchemy as sa
from lyra_governor.store import create_store_engine, evidence, write_tx
from lyra_governor.order_store import OrderStore
from lyra_governor.store_budget import StoreBusy

path, kind, seconds, rate = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
engine = create_store_engine(f"sqlite:///{path}")
store = OrderStore(engine)
actor = f"wal-test-{kind}"
big = "x" * 32768
committed = refused = 0
end = time.monotonic() + seconds
start = time.monotonic()
while time.monotonic() < end:
    if kind == "ledger":  # a big row and its marker; the previous big row goes (the file stays small)
        with write_tx(engine) as conn:
            conn.execute(evidence.delete().where(evidence.c.kind == "wal-big", evidence.c.actor == actor))
            for what, payload in (("wal-big", big), ("wal-mark", "")):
                conn.execute(evidence.insert().values(kind=what, passed=True, payload=payload, actor=actor,
                                                      ts=time.time(), audit_seq=committed))
    else:
        try:
            store.audit("wal_test", json.dumps({"n": committed, "pad": big[:16384]}), actor, time.time())
        except StoreBusy:
            refused += 1
            continue
    committed += 1
    time.sleep(max(0.0, start + committed / rate - time.monotonic()))
bound = getattr(store, "_wal", None)  # the process's bound on the WAL, shared with write_tx
counters = {name: getattr(bound, name, -1) for name in ("truncated", "waited", "refused", "overruns")}
store.close()
engine.dispose()
print(json.dumps({"committed": committed, "refused": refused, **counters}), flush=True)
"""

SECONDS = 12.0
RATE = 1e6  # commits a second per writer: as fast as they are let (back to back)
WRITERS = ("ledger", "orders", "orders-2")
READERS = 16
HOLD_S = 0.15  # each reader's snapshot


@pytest.mark.timeout(180)
def test_the_wal_never_passes_its_bound_with_readers_always_inside_it(lyra_home: Path) -> None:
    db = lyra_home / "lyra.db"
    ledger = Ledger.open(load_settings(None, use_env=False, db_url=f"sqlite:///{db}"))
    wal = Path(str(db) + "-wal")
    stop = threading.Event()
    peak = [0]
    reads = [0]

    def watch() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                peak[0] = max(peak[0], os.path.getsize(wal))
            time.sleep(0.005)

    def read(i: int) -> None:
        time.sleep(i * HOLD_S / READERS)  # staggered: a new snapshot every ~10 ms, each held 150 ms
        while not stop.is_set():
            with read_tx(ledger.engine) as conn:
                conn.execute(sa.text("SELECT count(*) FROM lyra_audit")).scalar_one()
                time.sleep(HOLD_S)
            reads[0] += 1

    key = acquire_checkpointer(str(db))  # what `serve` runs beside its readers
    threads = [threading.Thread(target=watch, daemon=True)] + [
        threading.Thread(target=read, args=(i,), daemon=True) for i in range(READERS)
    ]
    for t in threads:
        t.start()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[3]), *sys.path])}
    writers = {
        kind: subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), kind, str(SECONDS), str(RATE)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for kind in WRITERS
    }
    try:
        done = {kind: w.communicate(timeout=150) for kind, w in writers.items()}
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        release_checkpointer(key)
    results: dict[str, dict[str, int]] = {}
    for kind, (out, _err) in done.items():
        assert writers[kind].returncode == 0, f"the {kind} writer failed"
        results[kind] = json.loads(out.strip().splitlines()[-1])
    with read_tx(ledger.engine) as conn:
        marks = conn.execute(
            sa.text("SELECT count(*) FROM lyra_evidence WHERE kind = 'wal-mark' AND actor = 'wal-test-ledger'")
        ).scalar_one()
        audited = {
            kind: conn.execute(sa.text(f"SELECT count(*) FROM lyra_audit WHERE actor = 'wal-test-{kind}'")).scalar_one()
            for kind in WRITERS
            if kind != "ledger"
        }
    ledger.close()
    print(
        f"\nlargest WAL {peak[0] / 2**20:.1f} MB (goal {WAL_GOAL_BYTES / 2**20:.0f} MB) while {len(WRITERS)} writers "
        f"committed {sum(r['committed'] for r in results.values())} times and {READERS} readers took "
        f"{reads[0]} snapshots of {HOLD_S * 1000:.0f} ms; writers: {results}"
    )
    assert reads[0] > 100  # the readers did read throughout
    assert all(r["committed"] > 200 for r in results.values()), results  # they wrote throughout
    assert marks == results["ledger"]["committed"], "a write_tx the writer was told had committed is missing"
    for kind, found in audited.items():
        assert found == results[kind]["committed"], f"an audit record the order path ({kind}) committed is missing"
    assert peak[0] <= WAL_GOAL_BYTES, f"the WAL reached {peak[0] / 2**20:.1f} MB"
