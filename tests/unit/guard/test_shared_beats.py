"""Governors of one process sharing one store (the paper replay's) write their beats of one
instant together (`heartbeat.BeatGroup`): one transaction at the next tick, each bot's own beat
and stamp, and none for a bot that stopped calling (its reservations are still orphaned after the
timeout); a sweep never takes a live bot whose beat is waiting for a silent one."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from lyra_governor.config import Settings
from lyra_governor.governor import Governor
from lyra_governor.heartbeat import HEARTBEAT_EVERY_S, BeatGroup
from lyra_governor.models import OrderProposal, ReservationStatus
from lyra_governor.order_store import Sql
from lyra_governor.store_budget import release_checkpointer

from .conftest import Clock, WideMandates, decide, make_governor, watch

Propose = Callable[..., OrderProposal]
BTC = ("binance_paper_trade", "BTC-USDT")


@pytest.fixture
def pair(settings: Settings, clock: Clock) -> Iterator[tuple[Governor, Governor]]:
    """Two governors on one store and one watch (as `replay.run_replay` builds them)."""
    first = make_governor(settings, clock)  # its first beat written (`from_settings`)
    second = Governor(settings, first.ledger, "bot-2", WideMandates(), clock, "s", first.store, first.watch)
    second.ladder_state(fresh=True)
    yield first, second
    second.heartbeats.close()
    release_checkpointer(second._wal)  # the store and the ledger are the first's
    first.close()


def _beats(gov: Governor) -> dict[str, float]:
    return {b.bot_id: b.last_heartbeat for b in gov.ledger.bots()}


def _count_writes(gov: Governor, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    writes: list[list[str]] = []
    store = gov.store
    many, one = store.heartbeats, store.heartbeat

    def heartbeats(rows: list[tuple[str, float, str, int]]) -> None:
        writes.append([r[0] for r in rows])
        many(rows)

    def heartbeat(bot_id: str, now: float, host: str, pid: int) -> None:
        writes.append([bot_id])
        one(bot_id, now, host, pid)

    monkeypatch.setattr(store, "heartbeats", heartbeats)
    monkeypatch.setattr(store, "heartbeat", heartbeat)
    return writes


def test_one_instants_beats_go_in_one_write_at_the_next_tick(
    pair: tuple[Governor, Governor], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = pair
    assert first.heartbeats.group is second.heartbeats.group and first.heartbeats.group.members == 2
    second.heartbeat()  # its first beat: its row at once
    writes = _count_writes(first, monkeypatch)
    clock.advance(HEARTBEAT_EVERY_S)
    beat_at = clock.now
    first.heartbeat(), second.heartbeat()
    assert writes == [] and _beats(first)["bot-1"] < beat_at  # waiting for the next tick
    clock.advance(1)
    second.heartbeat()  # any member's next call writes the instant's beats
    assert writes == [["bot-1", "bot-2"]]
    assert _beats(first) == {"bot-1": beat_at, "bot-2": beat_at}  # each stamped with its own beat


def test_a_governor_alone_writes_each_beat_at_once(governor: Governor, clock: Clock) -> None:
    assert governor.heartbeats.group.members == 1
    clock.advance(HEARTBEAT_EVERY_S)
    governor.heartbeat()
    assert _beats(governor)["bot-1"] == clock.now


def second_reserves(first: Governor, second: Governor, clock: Clock, propose: Propose) -> str:
    """The market watched (through the first: the watch is shared), the second beats and holds
    one reservation: its id."""
    watch(first, *BTC, 60010, clock.now - 30, 30)
    second.heartbeat()
    decision = decide(second, propose(bot_id="bot-2", mid_price_ts=clock.now))
    assert decision.allowed and decision.reservation_id is not None
    return decision.reservation_id


def test_a_silent_bots_reservations_are_still_orphaned_after_the_timeout(
    pair: tuple[Governor, Governor], clock: Clock, propose: Propose
) -> None:
    first, second = pair
    reservation_id = second_reserves(first, second, clock, propose)
    timeout = first.settings.risk.heartbeat_timeout_s
    for _ in range(int(timeout / HEARTBEAT_EVERY_S) + 6):  # the second stops calling; the first beats on
        clock.advance(HEARTBEAT_EVERY_S)
        first.heartbeat()
    assert second.store.reservation_status(reservation_id) is ReservationStatus.ORPHANED
    assert [o["bot_id"] for o in first.store.orphans()] == ["bot-2"]


def test_a_sweep_writes_a_waiting_beat_before_it_would_take_its_bot_for_silent(
    pair: tuple[Governor, Governor], clock: Clock, propose: Propose
) -> None:
    """The second bot was silent longer than the timeout and beats again at the very instant of
    the first's sweep, before it: as when each beat is written at once, it is not orphaned."""
    first, second = pair
    reservation_id = second_reserves(first, second, clock, propose)
    timeout = first.settings.risk.heartbeat_timeout_s
    beats = first.heartbeats.beats  # 1: `from_settings`'s, at this instant
    # the first beats on alone until the instant of its next sweep past the timeout (every 4th beat)
    while True:
        clock.advance(HEARTBEAT_EVERY_S)
        beats += 1
        if beats % 4 == 1 and (beats - 1) * HEARTBEAT_EVERY_S > timeout:
            break
        first.heartbeat()
    second.heartbeat()  # back, before the sweep at this instant: its beat waits in the group
    assert first.heartbeats.group.rows and first.heartbeats.group.at == clock.now
    first.heartbeat()  # the sweep
    assert second.store.reservation_status(reservation_id) is ReservationStatus.OPEN
    assert _beats(first)["bot-2"] == clock.now


def test_closing_writes_the_beat_still_waiting(pair: tuple[Governor, Governor], clock: Clock) -> None:
    first, second = pair
    second.heartbeat()
    clock.advance(HEARTBEAT_EVERY_S)
    second.heartbeat()
    assert isinstance(second.heartbeats.group, BeatGroup) and second.heartbeats.group.rows
    second.heartbeats.close()
    assert _beats(first)["bot-2"] == clock.now and not first.heartbeats.group.rows


def test_one_instants_beats_are_bound_as_tuples_in_one_statement_a_lost_row_written_again(
    pair: tuple[Governor, Governor], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group's write binds its rows as they are (`BEAT_ORDER`), no parameter dict built per
    row (`Sql.params`: what the old code did, a beat each), in one `executemany`; a bot whose row
    went missing since its first beat (none, but for a row deleted) is written on its own, row
    and all, and the others' beats stay written."""
    first, second = pair
    second.heartbeat()
    built: list[object] = []
    params = Sql.params

    def counted(sql: Sql, **values: object) -> tuple[object, ...]:
        if sql in (first.store.sql.beat, first.store.sql.new_bot):
            built.append(sql)
        return params(sql, **values)

    monkeypatch.setattr(Sql, "params", counted)
    clock.advance(HEARTBEAT_EVERY_S)
    first.heartbeat(), second.heartbeat()
    clock.advance(1)
    first.heartbeat()
    assert built == [] and _beats(first) == {"bot-1": clock.now - 1, "bot-2": clock.now - 1}
    with first.ledger.engine.begin() as conn:  # bot-2's row deleted behind the group's back
        conn.exec_driver_sql("DELETE FROM lyra_bots WHERE bot_id = 'bot-2'")
    clock.advance(HEARTBEAT_EVERY_S - 1)
    first.heartbeat(), second.heartbeat()
    clock.advance(1)
    second.heartbeat()
    assert _beats(first) == {"bot-1": clock.now - 1, "bot-2": clock.now - 1}
