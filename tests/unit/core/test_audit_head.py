"""An audit record in a transaction of its own (`OrderStore.audit`: a denial's, an orphan
event's) finds the chain's head as the reviews do on SQLite: while no other connection has
committed (`PRAGMA data_version`), the head its own connection left; after another's commit, the
tip record read again. The chain verifies either way."""

from __future__ import annotations

from pathlib import Path

from lyra_governor.audit import verify
from lyra_governor.order_store import OrderStore
from lyra_governor.store import create_schema, create_store_engine


def test_an_own_record_after_an_own_write_reads_no_tip_and_another_connections_write_is_seen(
    tmp_path: Path,
) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'lyra.db'}")
    create_schema(engine, 0.0)
    store, other = OrderStore(engine), OrderStore(engine)
    try:
        first = store.audit("note", "{}", "test", 1.0)  # the head read once
        seen: list[str] = []
        store._raw.driver_connection.set_trace_callback(seen.append)
        second = store.audit("note", "{}", "test", 2.0)
        assert second == first + 1
        assert store.sql.head.text not in seen  # the old code read the tip record each time
        assert "PRAGMA data_version" in seen
        by_other = other.audit("note", "{}", "other", 3.0)  # another connection's commit
        assert by_other == second + 1
        seen.clear()
        after = store.audit("note", "{}", "test", 4.0)
        assert after == by_other + 1  # chained after the other's record, not after its own
        assert store.sql.head.text in seen
        again = store.audit("note", "{}", "test", 5.0)
        assert again == after + 1
        store._raw.driver_connection.set_trace_callback(None)
        result = verify(engine)
        assert result.ok, result
    finally:
        store.close()
        other.close()
        engine.dispose()
