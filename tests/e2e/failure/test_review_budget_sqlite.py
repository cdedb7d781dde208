"""`review` never waits on a SQLite write lock held by another process for longer than the
store budget: the order is denied STORE_BUSY; after any wait the market data's age is checked
again. The worst review time is printed."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from lyra_governor.config import load_settings
from lyra_governor.governor import Governor
from lyra_governor.ledger import Ledger
from lyra_governor.models import DenialCode
from tests.standing_mandate import StandingMandate
from tests.store_faults import proposal, sqlite_write_lock_held, timed_reviews
from tests.watched import watch


def _governor(db: Path, **overrides: object) -> Governor:
    cfg = load_settings(None, use_env=False, db_url=f"sqlite:///{db}", **overrides)
    ledger = Ledger.open(cfg)
    ledger.set_phase(3, "test", "paper trading under test")
    ledger.close()
    gov = Governor.from_settings(cfg, "bot-lock", mandates=StandingMandate())  # type: ignore[arg-type]
    watch(gov, "binance_paper_trade", "BTC-USDT", Decimal("60010"))  # a market the bot has watched
    return gov


@pytest.mark.timeout(120)
def test_a_held_write_lock_is_store_busy_within_the_budget(lyra_home: Path) -> None:
    db = lyra_home / "lyra.db"
    gov = _governor(db)
    try:
        assert gov.review(proposal("bot-lock")).allowed
        with sqlite_write_lock_held(str(db), 60):
            worst, decisions = timed_reviews(gov, "bot-lock", 5)
        print(f"\nworst review with the SQLite write lock held by another process: {worst * 1000:.0f} ms")
        assert [d.code for d in decisions] == [DenialCode.STORE_BUSY] * 5, [d.message for d in decisions]
        assert "write lock" in decisions[0].message
        assert worst < 1.0  # the budget is 200 ms; before, a review waited 10 s for the lock
        assert gov.review(proposal("bot-lock")).allowed  # the lock is gone: trading goes on
    finally:
        gov.close()


@pytest.mark.timeout(120)
def test_the_market_data_age_is_checked_again_after_waiting_for_the_lock(lyra_home: Path) -> None:
    db = lyra_home / "lyra.db"
    gov = _governor(db, store={"budget_ms": 5000}, risk={"stale_price_s": 0.5, "future_tolerance_s": 0.5})
    try:
        assert gov.review(proposal("bot-lock")).allowed
        with sqlite_write_lock_held(str(db), 1.5):
            fresh = proposal("bot-lock", mid_price_ts=time.time())  # fresh now, 1.5 s old once the lock is free
            decision = gov.review(fresh)
        assert decision.code is DenialCode.STALE_PRICE, decision.message
        assert "while waiting for the store" in decision.message
        watch(gov, "binance_paper_trade", "BTC-USDT", Decimal("60010"))  # the next tick
        after = gov.review(proposal("bot-lock"))
        assert after.allowed, after.message
    finally:
        gov.close()
