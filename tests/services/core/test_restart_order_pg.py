"""tests/unit/core/test_bot_restart.py's order of a restarted bot's orders, on PostgreSQL: there a
row written again moves in the heap, and rows read without an ORDER BY come in the heap's order."""

from __future__ import annotations

from pathlib import Path

from lyra_governor.config import load_settings
from tests.unit.core.test_bot_restart import assert_a_restarted_bot_adopts_its_orders_oldest_first


def test_a_restarted_bot_adopts_its_orders_oldest_first_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    assert_a_restarted_bot_adopts_its_orders_oldest_first(
        load_settings(None, use_env=False, db_url=pg_url, data_dir=str(tmp_path))
    )
