"""`OrderStore._move`'s statements (UPDATE ... RETURNING, GREATEST for the floors) on the
machine's PostgreSQL: the same rows after as when it read them first."""

from __future__ import annotations

from tests.unit.core.test_order_store import assert_moves_as_by_reading


def test_capital_moves_without_a_read_as_they_did_with_one_on_postgresql(pg_url: str) -> None:
    assert_moves_as_by_reading(pg_url)
