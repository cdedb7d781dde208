"""OrderStore's read cache (`_cached`): a repeated read of an unchanged SQLite store costs one
`PRAGMA data_version`, and any commit, by this connection, another one of this process or
another process, is seen by the next read."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from lyra_governor.config import Settings
from lyra_governor.governor import Governor
from lyra_governor.ledger import Ledger, remaining_from_pair
from lyra_governor.models import DenialCode, OrderEvent, OrderEventKind, OrderProposal, TradingState
from lyra_governor.order_store import OrderStore
from lyra_governor.store import bots
from lyra_governor.store_budget import release_checkpointer

from .conftest import FakeClock, allowed

Propose = Callable[..., OrderProposal]


@pytest.fixture
def statements(governor: Governor) -> Iterator[list[str]]:
    """Every statement the governor's own connection runs from now on."""
    seen: list[str] = []
    governor.store.ladder_row()  # connected
    driver = governor.store._raw.driver_connection
    driver.set_trace_callback(seen.append)
    yield seen
    driver.set_trace_callback(None)


def _commit_elsewhere(settings: Settings, clock: FakeClock, sql: str) -> None:
    """`sql` committed by another connection of the store (another process, as far as the
    governor's own connection can tell)."""
    other = Ledger.open(settings, clock)
    try:
        with other.engine.begin() as conn:
            conn.exec_driver_sql(sql)
    finally:
        other.close()


def _reads(store: OrderStore, bot_id: str) -> tuple[Any, ...]:
    return (store.ladder_look(bot_id), store.ladder_row(), store.caps("paper"), store.book_fills("paper", 0.0, 0))


def test_an_unchanged_store_is_read_once(governor: Governor, statements: list[str]) -> None:
    """Four reads again on an unchanged store: four `PRAGMA data_version` and nothing else (the
    old code ran their seven statements each time), and the same answers."""
    first = _reads(governor.store, "bot-1")
    statements.clear()
    again = _reads(governor.store, "bot-1")
    assert again == first
    assert statements == ["PRAGMA data_version"] * 4


def test_a_heartbeat_keeps_the_cache_other_own_writes_do_not(
    governor: Governor, statements: list[str], propose: Propose
) -> None:
    _reads(governor.store, "bot-1")
    governor.store.heartbeat("bot-1", 1.0, "host", 1)  # a known bot's beat: no column a cached read returns
    statements.clear()
    _reads(governor.store, "bot-1")
    assert statements == ["PRAGMA data_version"] * 4
    bought = allowed(governor, propose())  # a reservation through this connection: nothing kept changes
    _reads(governor.store, "bot-1")  # (the review's own first reads)
    statements.clear()
    governor.cancel_requested(bought.reservation_id)
    _reads(governor.store, "bot-1")
    head = governor.store.sql.head.text  # the write's own read of the audit chain's head, under the lock
    assert [s for s in statements if s.startswith("SELECT") and s != head] == []
    assert statements.count("PRAGMA data_version") == 4
    governor.on_order_event(
        OrderEvent(kind=OrderEventKind.FILLED, reservation_id=bought.reservation_id,
                   filled_amount=Decimal("0.001"), fill_price=Decimal(60000))
    )  # fmt: skip
    fills = governor.store.book_fills("paper", 0.0, 0)
    assert [(str(f[3]), str(f[4])) for f in fills] == [("BUY", "0.001")]  # the own fill is read


def test_another_connections_commit_is_seen_at_once(governor: Governor, settings: Settings, clock: FakeClock) -> None:
    """A halt, a restriction, a cap and a fill written elsewhere (another connection: another
    process, or another writer of this one) are each read at once, the cache filled before."""
    store = governor.store
    before = _reads(store, "bot-1")
    assert before[0][1] is None and before[1][1] == "ACTIVE"
    other = Ledger.open(settings, clock)
    try:
        with other.engine.begin() as conn:
            conn.execute(bots.update().where(bots.c.bot_id == "bot-1").values(reduce_only_reason="elsewhere"))
        assert store.ladder_look("bot-1")[1] == "elsewhere"
        other.halt("operator elsewhere", "operator", demote=False)
        assert store.ladder_look("bot-1")[0][1] == "HALTED" and store.ladder_row()[1] == "HALTED"
        with other.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE lyra_capital SET cap_musd = cap_musd + 1 WHERE scope = 'paper:TOTAL'")
        assert store.caps("paper")["TOTAL"] == before[2]["TOTAL"] + 1
    finally:
        other.close()


def test_a_new_connection_reads_afresh(governor: Governor) -> None:
    """`PRAGMA data_version` is counted per connection: a reconnect forgets what was kept, and no
    version kept by a reader (`version_at`, `LadderView.version`) equals one of the new connection."""
    _reads(governor.store, "bot-1")
    assert len(governor.store._reads) == 4
    governor.store.close()
    assert governor.store._reads == {}
    assert governor.store.ladder_row()[1] == "ACTIVE"
    store = OrderStore(governor.ledger.engine, 200)
    try:
        store.ladder_row()
        kept = store.version_at()  # a new connection's data_version, nothing committed since
        assert kept is not None and store.version_at() == kept
        store.close()
        store.ladder_row()
        assert store.version_at() != kept  # the next connection counts from the same number again
    finally:
        store.close()


def test_the_loss_limits_read_with_one_look(governor: Governor, statements: list[str], settings: Settings,
                                            clock: FakeClock) -> None:  # fmt: skip
    """The loss limits' state, fills and caps on an unchanged store: one PRAGMA in all (three
    reads of their own on the old code); a commit elsewhere between two checks is read."""
    governor.check_loss_limits()
    statements.clear()
    assert governor.check_loss_limits() == []
    assert statements == ["PRAGMA data_version"]
    _commit_elsewhere(settings, clock, "UPDATE lyra_capital SET cap_musd = cap_musd + 1 WHERE scope = 'paper:TOTAL'")
    statements.clear()
    governor.check_loss_limits()
    assert statements.count("PRAGMA data_version") >= 2 and any("lyra_capital" in s for s in statements)
    with governor.store.one_look():  # an own commit inside a look ends it: the next read looks again
        governor.store.caps("paper")
        statements.clear()
        governor.store.caps("paper")
        assert statements == []  # a kept answer at the look's version: no cursor at all
        governor.store.heartbeat("a-new-bot", clock.now, "host", 1)  # inserts its row: a commit that counts
        statements.clear()
        governor.store.caps("paper")
        assert statements[0] == "PRAGMA data_version" and "lyra_capital" in statements[1]  # read again


def test_an_audit_record_keeps_the_cache(governor: Governor, statements: list[str]) -> None:
    """An audit record alone (a denied review's) changes nothing a cached read returns: the reads
    after it are one PRAGMA each (the old code read all seven statements again)."""
    first = _reads(governor.store, "bot-1")
    governor.store.audit("decision", "{}", "bot-1", 1.0)
    statements.clear()
    assert _reads(governor.store, "bot-1") == first
    assert statements == ["PRAGMA data_version"] * 4


def test_looks_at_one_instant_share_one_pragma(
    governor: Governor, statements: list[str], settings: Settings, clock: FakeClock
) -> None:
    """Two governors' looks on one store at the same instant (a replay's simulated second): one
    PRAGMA for both. A halt committed elsewhere is seen by the first look at a later instant;
    an own commit, or `forget_instant` (a stop written from here), makes the same instant look
    again. Each assertion fails if the shared look outlived its instant or its version."""
    store = governor.store
    store.ladder_look("bot-1", 5.0), store.ladder_look("bot-2", 5.0)
    statements.clear()
    assert store.ladder_look("bot-1", 10.0)[0][1] == "ACTIVE" and statements == ["PRAGMA data_version"]
    statements.clear()
    assert store.ladder_look("bot-2", 10.0)[0][1] == "ACTIVE" and statements == []  # no cursor at all
    other = Ledger.open(settings, clock)
    try:
        other.halt("operator elsewhere", "operator", demote=False)
        assert store.ladder_look("bot-1", 10.0)[0][1] == "ACTIVE"  # the instant's picture, taken before
        assert store.ladder_look("bot-2", 15.0)[0][1] == "HALTED"  # the next instant: seen
        assert store.ladder_row(15.0)[1] == "HALTED" and store.ladder_look("bot-1", 15.0)[0][1] == "HALTED"
        other.resume("operator")
        store.heartbeat("a-new-bot", clock.now, "host", 1)  # an own commit that counts (its row inserted)
        assert store.ladder_look("bot-1", 15.0)[0][1] == "ACTIVE"
        other.halt("again", "operator", demote=False)
        store.forget_instant()
        assert store.ladder_look("bot-2", 15.0)[0][1] == "HALTED"
        store.close()  # a new connection counts data_version afresh: nothing of the old one is used
        statements.clear()
        assert store.ladder_row(15.0)[1] == "HALTED"
    finally:
        other.close()


def test_a_stop_written_here_is_seen_by_the_other_governors_at_once(
    governor: Governor, settings: Settings, clock: FakeClock, mandates: Any
) -> None:
    """Governors sharing a store, their looks on one simulated clock: a stop one of them writes
    through the ledger (a breaker's: `Seat.state_changed` drops its view) is seen by the others'
    next look at that same instant, as it was before looks shared their PRAGMA."""
    second = Governor(settings, governor.ledger, "bot-2", mandates, clock, "s", governor.store)
    try:
        for view in (governor.ladder_view, second.ladder_view):
            view.clock, view.refresh_s = (lambda: clock.now), 5.0
        assert governor.trading_state() is TradingState.ACTIVE and second.trading_state() is TradingState.ACTIVE
        clock.advance(10)
        governor.ladder_view.ahead(), second.ladder_view.ahead()  # both looks kept at the store's version
        clock.advance(10)
        governor.ladder_view.ahead()  # the first look at this instant: the version unchanged
        governor.ledger.reduce_only("breaker elsewhere", "breaker")  # the ledger's own connection
        governor.ladder_view.drop()  # what `Seat.state_changed` does after it
        assert second.trading_state() is TradingState.REDUCING
    finally:
        release_checkpointer(second._wal)  # the rest (store, ledger) is the fixture governor's


def test_a_sweep_at_the_cutoff_just_swept_is_not_run_again(
    governor: Governor, statements: list[str], settings: Settings, clock: FakeClock, propose: Propose
) -> None:
    """Governors sharing a store sweep for silent bots at the same simulated second: the first
    sweep stands for the others (no statement at all); a sweep at a later cutoff reads again and
    still orphans what a bot that fell silent holds."""
    timeout = settings.risk.heartbeat_timeout_s
    store = governor.store
    assert store.orphan_silent_bots(timeout, clock.now) == 0
    statements.clear()
    assert store.orphan_silent_bots(timeout, clock.now) == 0 and statements == []
    assert allowed(governor, propose()).allowed  # bot-1 holds capital, then falls silent
    clock.advance(timeout + 10)
    assert store.orphan_silent_bots(timeout, clock.now) == 1  # a later cutoff: swept, orphaned
    assert [o["bot_id"] for o in store.orphans()] == ["bot-1"]


def _on_sim_clock(clock: FakeClock, *governors: Governor) -> None:
    for gov in governors:  # as `replay.run_replay` sets them: looks every 5 simulated seconds
        gov.ladder_view.clock, gov.ladder_view.refresh_s = (lambda: clock.now), 5.0


def test_a_look_at_an_unchanged_store_is_one_version_compare(
    governor: Governor, statements: list[str], settings: Settings, clock: FakeClock, mandates: Any
) -> None:
    """`LadderView` keeps the store version its state was read at (`OrderStore.version_at`): a
    look at an unchanged store is one `PRAGMA data_version` (before: the PRAGMA and the kept
    row's copy and comparison), and none for the next governor's look at the same instant."""
    second = Governor(settings, governor.ledger, "bot-2", mandates, clock, "s", governor.store)
    try:
        _on_sim_clock(clock, governor, second)
        assert governor.trading_state() is second.trading_state() is TradingState.ACTIVE
        clock.advance(10)
        governor.trading_state(), second.trading_state()  # the versions kept
        clock.advance(10)
        statements.clear()
        assert governor.trading_state() is TradingState.ACTIVE and statements == ["PRAGMA data_version"]
        statements.clear()
        assert second.trading_state() is TradingState.ACTIVE and statements == []  # no cursor at all
        clock.advance(10)
        governor.store.heartbeat("bot-1", clock.now, "host", 1)  # an own write no kept read returns
        statements.clear()
        assert governor.trading_state() is TradingState.ACTIVE and statements == ["PRAGMA data_version"]
    finally:
        release_checkpointer(second._wal)  # the rest (store, ledger) is the fixture governor's


def test_a_halt_committed_elsewhere_between_two_ticks_is_seen_by_the_next_look_and_review(
    governor: Governor, settings: Settings, clock: FakeClock, mandates: Any, propose: Propose
) -> None:
    """Another process halts between two ticks: the next review is refused at once (the store's
    check under the write lock), the next look of each governor sharing the store sees it (each
    look's version is the store's, not the one the cache was read at), and so does a resume."""
    second = Governor(settings, governor.ledger, "bot-2", mandates, clock, "s", governor.store)
    other = Ledger.open(settings, clock)
    try:
        _on_sim_clock(clock, governor, second)
        assert allowed(governor, propose()).allowed
        clock.advance(10)
        assert governor.trading_state() is second.trading_state() is TradingState.ACTIVE  # versions kept
        other.halt("operator elsewhere", "operator", demote=False)
        decision = governor.review(propose())  # same instant, the cache still fresh: the lock's check
        assert not decision.allowed and decision.code is DenialCode.HALTED
        clock.advance(1)  # within refresh_s the second's cached state may still say ACTIVE
        assert second.trading_state() is TradingState.ACTIVE
        clock.advance(5)
        assert second.trading_state() is TradingState.HALTED
        other.resume("operator")
        clock.advance(6)
        assert governor.trading_state() is second.trading_state() is TradingState.ACTIVE
        governor.store.close()  # a new connection: no version of the old one stands for its versions
        other.halt("again", "operator", demote=False)
        clock.advance(6)
        assert governor.trading_state() is second.trading_state() is TradingState.HALTED
    finally:
        other.close()
        release_checkpointer(second._wal)


def test_the_loss_limits_state_is_the_kept_one_while_the_store_is_unchanged(
    governor: Governor, statements: list[str], settings: Settings, clock: FakeClock
) -> None:
    """`LadderView.now` (the loss limits' state): the cache while its version is the store's, one
    PRAGMA for the whole check; a halt elsewhere is read by the next check."""
    _on_sim_clock(clock, governor)
    governor.trading_state()
    clock.advance(10)
    governor.trading_state()
    statements.clear()
    assert governor.ladder_view.now() is governor.ladder_view.cached and statements == []  # the look's instant
    clock.advance(1)
    assert governor.ladder_view.now() is governor.ladder_view.cached
    assert statements == ["PRAGMA data_version"]
    other = Ledger.open(settings, clock)
    try:
        other.halt("operator elsewhere", "operator", demote=False)
        clock.advance(1)
        assert governor.ladder_view.now().trading_state is TradingState.HALTED
    finally:
        other.close()


def test_a_capacity_read_is_kept_until_a_commit_that_may_move_capital(
    governor: Governor, statements: list[str], settings: Settings, clock: FakeClock, propose: Propose
) -> None:
    """`capital_pair_rows` (every quote's sizing: `capacity_usd`) on a store that only heard beats,
    a cancel request or audit records since: one PRAGMA, no read of the rows (the old code read
    them every time); a reservation, its release, a fill, a cap written elsewhere: read again, and
    the capacity follows each."""
    store = governor.store
    full = governor.capacity_usd("binance")
    governor.store.heartbeats([("bot-1", clock.now, "host", 1)])
    store.audit("decision", "{}", "bot-1", clock.now)
    statements.clear()
    assert governor.capacity_usd("binance") == full and statements == ["PRAGMA data_version"]
    bought = allowed(governor, propose())  # 60 USD reserved: a commit that keeps the other reads
    statements.clear()
    assert governor.capacity_usd("binance") == full - Decimal(60) and "lyra_capital" in statements[-1]
    governor.cancel_requested(bought.reservation_id)
    statements.clear()
    assert governor.capacity_usd("binance") == full - Decimal(60) and statements == ["PRAGMA data_version"]
    governor.on_order_event(OrderEvent(kind=OrderEventKind.CANCELLED, reservation_id=bought.reservation_id))
    assert governor.capacity_usd("binance") == full  # released
    bought = allowed(governor, propose(amount=Decimal("0.002")))
    governor.capacity_usd("binance")
    governor.on_order_event(OrderEvent(kind=OrderEventKind.FILLED, reservation_id=bought.reservation_id,
                                       filled_amount=Decimal("0.002"), fill_price=Decimal(60000)))  # fmt: skip
    assert governor.capacity_usd("binance") == full - Decimal(120)  # deployed by the fill
    _commit_elsewhere(settings, clock,
                      "UPDATE lyra_capital SET cap_musd = cap_musd - 1000000 WHERE scope = 'paper:binance'")
    assert governor.capacity_usd("binance") == full - Decimal(121)  # another connection's cap: seen at once


def test_the_remaining_of_the_same_rows_is_worked_out_once() -> None:
    """`remaining_from_pair` is a pure function of its rows: the same rows give the same Decimal
    object (its eight divisions not done again), other rows their own."""
    rows = [("paper:binance", 100_000_000, 1_500_000, 0, 0), ("paper:TOTAL", 1_000_000_000, 2_000_000, 0, 0)]
    first = remaining_from_pair("binance", rows)
    assert first == Decimal("98.5") and str(first) == "98.5"
    assert remaining_from_pair("binance", [(str(r[0]), *r[1:]) for r in rows]) is first  # equal rows, new objects
    assert remaining_from_pair("binance", [("paper:binance", 100_000_000, 2_000_000, 0, 0), rows[1]]) == Decimal(98)
    assert remaining_from_pair("okx", rows) == Decimal(0)
