"""What one allowed decision writes to a SQLite store's WAL: every page it changes is one more
frame written inside the review's COMMIT (about 5 us each on this machine, the largest part
of the review's own cost; issue 14). A real store file, a real governor, the WAL read by
SQLite's own checkpoint counters."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

from lyra_governor.config import load_settings
from lyra_governor.governor import Governor
from lyra_governor.models import OrderEvent, OrderEventKind
from tests.standing_mandate import StandingMandate
from tests.store_faults import PinnedSnapshot, proposal
from tests.watched import UNTHROTTLED, watch

# capital (both scopes share a page), the reservation row and its key, bot, status and
# exchange-time indexes, the audit record and its event index, the audit head
DECISION_FRAMES = 9


def _frames_of_one_decision(gov: Governor, db: Path) -> int:
    """WAL frames the next allowed decision writes: the WAL is copied back first, so the
    decision's commit starts it over and its frame count is that decision's alone."""
    side = sqlite3.connect(db, isolation_level=None)
    try:
        side.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        decision = gov.review(proposal("bot-w"))
        assert decision.allowed, decision.message
        _busy, frames, _copied = side.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        gov.on_order_event(OrderEvent(kind=OrderEventKind.CANCELLED, reservation_id=decision.reservation_id or ""))
        return int(frames)
    finally:
        side.close()


def _paper_governor(db: Path) -> Governor:
    """A governor in phase 3 on the SQLite file `db`, watching binance BTC-USDT at 60,010."""
    cfg = load_settings(None, use_env=False, db_url=f"sqlite:///{db}", **UNTHROTTLED)
    gov = Governor.from_settings(cfg, "bot-w", mandates=StandingMandate())
    gov.ledger.set_phase(3, "test", "paper trading under test")
    watch(gov, "binance_paper_trade", "BTC-USDT", Decimal("60010"))
    return gov


def test_an_allowed_decision_writes_one_wal_frame_per_changed_page(lyra_home: Path) -> None:
    db = lyra_home / "lyra.db"
    gov = _paper_governor(db)
    try:
        seen = [_frames_of_one_decision(gov, db) for _ in range(5)]
        # the fewest: another connection of the process (the WAL checkpointer) may hold the WAL
        # for a moment, and then the commit appends to it instead of starting it over
        assert min(seen) <= DECISION_FRAMES, seen
        with sqlite3.connect(db) as conn:  # the audit table is keyed by its rowid: no separate key index
            indexes = [row[1] for row in conn.execute("PRAGMA index_list('lyra_audit')")]
        assert not [name for name in indexes if name.startswith("sqlite_autoindex")], indexes
    finally:
        gov.close()


def test_past_the_wal_bound_a_review_is_refused_before_it_writes(lyra_home: Path) -> None:
    """The review's own write transaction (`OrderStore.reserve`, which opens it itself on
    SQLite) keeps the WAL's hard bound like every other writer (store_budget.WalBound): while a
    reader pins the WAL past the bound the review is denied STORE_BUSY and nothing is reserved;
    once the reader is gone the next review starts the WAL over and is allowed."""
    from lyra_governor.models import DenialCode
    from lyra_governor.store_budget import WalBound

    db = lyra_home / "lyra.db"
    gov = _paper_governor(db)
    try:
        assert gov.review(proposal("bot-w")).allowed
        gov.store._wal = bound = WalBound(str(db), soft_bytes=2**40, hard_bytes=256 * 2**10)  # no thread
        pinned = PinnedSnapshot(gov.ledger.engine).start()
        pad = "x" * 8192
        while not bound.over:
            gov.store.audit("wal_test", f'{{"pad": "{pad}"}}', "test", 2.0)
        held = gov.exposure("paper").total.used_usd
        refused = gov.review(proposal("bot-w"))
        assert refused.code is DenialCode.STORE_BUSY, refused.message
        assert gov.exposure("paper").total.used_usd == held  # nothing reserved
        pinned.leave()
        pinned.join()
        assert gov.review(proposal("bot-w")).allowed
        assert bound.truncated >= 1
    finally:
        gov.close()
