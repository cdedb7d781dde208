"""Cancel requests written with the connection's next write (`OrderStore.cancel_requested`) on
the machine's PostgreSQL: kept across a rolled-back transaction, written with a release's close."""

from __future__ import annotations

from tests.unit.core.test_cancel_requests import assert_marks_ride_on_writes


def test_marks_ride_on_writes_on_postgresql(pg_url: str) -> None:
    assert_marks_ride_on_writes(pg_url)
