"""The stray-order bookings of tests/unit/core/test_stray_orders.py, on PostgreSQL: the same
tests (imported, so they are collected here too) on a governor whose store is a fresh schema of
the machine's PostgreSQL (its reservation id column is a real VARCHAR(40), its locks real)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lyra_governor.config import Settings, load_settings
from lyra_governor.governor import Governor
from lyra_governor.mandate_provider import NoCouncil
from tests.fixtures import Clock
from tests.unit.core.test_stray_orders import (  # noqa: F401 - collected here, on PostgreSQL
    test_a_long_exchange_order_id_still_fits_the_reservation_id,
    test_a_stray_is_counted_once_named_in_status_and_released_when_it_ends,
    test_a_stray_past_the_cap_is_counted_all_the_same_and_stops_the_store_gradually,
    test_a_stray_that_cannot_be_valued_is_refused_and_nothing_is_written,
)


@pytest.fixture
def settings(pg_url: str, tmp_path: object) -> Settings:
    return load_settings(None, use_env=False, db_url=pg_url, data_dir=str(tmp_path))


@pytest.fixture
def governor(settings: Settings) -> Iterator[Governor]:
    gov = Governor.from_settings(settings, "bot-1", mandates=NoCouncil(), clock=Clock())
    gov.ledger.set_phase(3, "test", "paper trading under test")
    yield gov
    gov.close()
