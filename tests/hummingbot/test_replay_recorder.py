"""The paper replay's Hummingbot recorder: finished executors written once, when it stops."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any


def _executor(executor_id: str, pnl: float) -> Any:
    fields = {
        "id": executor_id, "timestamp": 1_700_000_000.0, "type": "position_executor", "close_type": 3,
        "close_timestamp": 1_700_000_060, "status": 3, "config": {"id": executor_id}, "net_pnl_pct": pnl,
        "net_pnl_quote": pnl, "cum_fees_quote": 0.01, "filled_amount_quote": 10.0, "is_active": False,
        "is_trading": False, "custom_info": {}, "controller_id": "main",
    }
    info = SimpleNamespace(model_dump_json=lambda: json.dumps(fields))
    return SimpleNamespace(config=SimpleNamespace(id=executor_id), executor_info=info)


def test_finished_executors_are_written_with_one_select_per_500_not_one_each(tmp_path: Path) -> None:
    """A day's paper run hands Hummingbot's recorder thousands of finished executors; the stop
    read each one's row with its own SELECT (1,200 here). Now one SELECT per 500 ids: the
    same rows, a row already there updated."""
    import sqlalchemy as sa
    from hummingbot.model.executors import Executors

    from lyra_strategies.paper.replay import start_markets_recorder

    loop = asyncio.new_event_loop()
    try:
        recorder = loop.run_until_complete(_in_loop(lambda: start_markets_recorder([], tmp_path / "hb.sqlite",
                                                                                    record_orders=False)))
        recorder.store_or_update_executor(_executor("ex-0", 1.0))
        recorder.flush_executors()  # ex-0 is in the file before the run's end
        for i in range(1_200):
            recorder.store_or_update_executor(_executor(f"ex-{i}", 2.0))
        selects: list[str] = []
        engine = recorder._sql_manager.engine

        def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT") and '"Executors"' in statement:
                selects.append(statement)

        sa.event.listen(engine, "before_cursor_execute", count)
        recorder.stop()
        sa.event.remove(engine, "before_cursor_execute", count)
        print(f"{len(selects)} SELECTs on Executors for 1,200 executors")
        assert len(selects) == 3  # one per executor before: 1,200
        with recorder._sql_manager.get_new_session() as session:
            rows = {row.id: row.net_pnl_quote for row in session.query(Executors)}
        assert len(rows) == 1_200 and set(rows.values()) == {2.0}  # ex-0 updated, not doubled
    finally:
        loop.close()


async def _in_loop(make: Any) -> Any:
    return make()
