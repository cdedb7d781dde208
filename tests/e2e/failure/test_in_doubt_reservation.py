"""A reservation written although its review was denied on a store error is released once the
store answers. The write's answer can be lost after the store committed it (a PostgreSQL
restart between COMMIT and its reply, a connection cut by the review budget): the strategy was
told STORE_UNAVAILABLE and placed nothing, yet the reservation held its capital OPEN for good.
The soak (tests/soak.py, 30 simulated minutes on PostgreSQL) ended with one such reservation."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lyra_governor.config import load_settings
from lyra_governor.governor import Governor
from lyra_governor.invariants import check_invariants
from lyra_governor.ledger import Ledger
from lyra_governor.models import DenialCode
from tests.standing_mandate import StandingMandate
from tests.store_faults import proposal
from tests.watched import watch


@pytest.mark.timeout(120)
def test_a_reservation_committed_behind_a_store_error_is_released_on_the_heartbeat(lyra_home: Path) -> None:
    cfg = load_settings(None, use_env=False, db_url=f"sqlite:///{lyra_home / 'lyra.db'}")
    ledger = Ledger.open(cfg)
    ledger.set_phase(3, "test", "paper trading under test")
    gov = Governor.from_settings(cfg, "bot-doubt", mandates=StandingMandate())  # type: ignore[arg-type]
    watch(gov, "binance_paper_trade", "BTC-USDT", Decimal("60010"))
    try:
        real_commit = gov.store._commit
        lost = {"once": True}

        def commit_then_lose_the_answer(cur: Any) -> None:
            real_commit(cur)
            if lost.pop("once", False):
                raise sqlite3.OperationalError("disk I/O error")  # committed; the answer never came back

        gov.store._commit = commit_then_lose_the_answer  # type: ignore[method-assign]
        decision = gov.review(proposal("bot-doubt"))
        assert decision.code is DenialCode.STORE_UNAVAILABLE, decision.message
        assert len(ledger.open_reservations("bot-doubt")) == 1  # written, though the strategy was denied
        assert ledger.exposure("paper").total.reserved_usd > 0

        gov.heartbeats.last = float("-inf")  # the next tick's heartbeat
        gov.heartbeat()
        assert ledger.open_reservations("bot-doubt") == []
        assert ledger.exposure("paper").total.reserved_usd == 0
        assert check_invariants(ledger.engine, chain=True) == []
        assert gov.review(proposal("bot-doubt")).allowed  # trading goes on
    finally:
        gov.close()
        ledger.close()
