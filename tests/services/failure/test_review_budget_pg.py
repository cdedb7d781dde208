"""`review` on PostgreSQL never waits longer than the store budget: not on a row lock another
connection holds (STORE_BUSY), not on a server whose packets go nowhere (a blackholed TCP proxy:
STORE_UNAVAILABLE), and it recovers once the server answers again. Worst times are printed."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
import sqlalchemy as sa

from lyra_governor.config import load_settings
from lyra_governor.governor import Governor
from lyra_governor.ledger import Ledger
from lyra_governor.models import DenialCode
from tests.standing_mandate import StandingMandate
from tests.store_faults import BlackholeProxy, proposal, timed_reviews
from tests.watched import watch


def _governor(url: str, bot: str) -> Governor:
    cfg = load_settings(None, use_env=False, db_url=url)
    gov = Governor.from_settings(cfg, bot, mandates=StandingMandate())  # type: ignore[arg-type]
    watch(gov, "binance_paper_trade", "BTC-USDT", Decimal("60010"))  # a market the bot has watched
    return gov


def _prepare(url: str) -> None:
    ledger = Ledger.open(load_settings(None, use_env=False, db_url=url))
    ledger.set_phase(3, "test", "paper trading under test")
    ledger.close()


@pytest.mark.timeout(120)
def test_a_held_row_lock_is_store_busy_within_the_budget(pg_url: str) -> None:
    _prepare(pg_url)
    gov = _governor(pg_url, "bot-pg-lock")
    holder = sa.create_engine(pg_url)
    try:
        assert gov.review(proposal("bot-pg-lock")).allowed
        with holder.connect() as conn:
            trans = conn.begin()
            conn.execute(sa.text("SELECT seq FROM lyra_audit_head WHERE id = 1 FOR UPDATE"))  # the store's write lock
            worst, decisions = timed_reviews(gov, "bot-pg-lock", 5)
            trans.rollback()
        print(f"\nworst review with the PostgreSQL write lock held by another connection: {worst * 1000:.0f} ms")
        assert [d.code for d in decisions] == [DenialCode.STORE_BUSY] * 5, [d.message for d in decisions]
        assert worst < 1.0
        assert gov.review(proposal("bot-pg-lock")).allowed
    finally:
        gov.close()
        holder.dispose()


@pytest.mark.timeout(180)
def test_a_blackholed_store_is_denied_within_the_budget_and_recovers(pg_url: str) -> None:
    _prepare(pg_url)
    proxy = BlackholeProxy(("127.0.0.1", 5432))
    url = sa.engine.make_url(pg_url).set(port=proxy.port).render_as_string(hide_password=False)
    gov = _governor(url, "bot-blackhole")
    try:
        assert gov.review(proposal("bot-blackhole")).allowed
        proxy.blackhole()
        worst, decisions = timed_reviews(gov, "bot-blackhole", 8)
        print(f"\nworst review with PostgreSQL blackholed: {worst * 1000:.0f} ms")
        assert all(not d.allowed for d in decisions)
        assert {d.code for d in decisions} == {DenialCode.STORE_UNAVAILABLE}, [d.message for d in decisions]
        assert worst < 1.0  # before: 60 s, until the kernel gave up on the connection
        proxy.restore()
        deadline = time.monotonic() + 30
        while not gov.review(proposal("bot-blackhole")).allowed:  # reconnects in the background
            assert time.monotonic() < deadline, "the governor did not recover once the store answered again"
            time.sleep(0.2)
    finally:
        gov.close()
        proxy.close()
