"""`Governor.on_tick(snapshots)` is a tick's separate calls in one: `heartbeat`, `trading_state`
and, unless halted, `observe_market` of each snapshot. Two worlds driven alike (two governors on
one store and one watch, as the replay builds them; a halt committed by another connection and a
resume on the way), one with the separate calls, one with `on_tick`: the same states tick by
tick, the same store rows, the same watch and histories, the same marks and ladder looks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lyra_governor.config import load_settings
from lyra_governor.governor import Governor
from lyra_governor.ladder import LadderState
from lyra_governor.ledger import Ledger
from lyra_governor.models import MarketSnapshot, TradingState
from lyra_governor.store_budget import release_checkpointer

from .conftest import Clock, WideMandates, make_governor

MARKETS = [("binance_paper_trade", "BTC-USDT"), ("okx_paper_trade", "BTC-USDT"), ("okx_paper_trade", "ETH-USDT")]
PLAN = [[0, 1], [1, 2]]  # the markets each governor observes: one shared, one its own
HALT_AT, RESUME_AT, SECONDS = 47, 83, 130


class World:
    def __init__(self, root: Path) -> None:
        root.mkdir()
        self.settings = load_settings(None, use_env=False, db_url=f"sqlite:///{root / 'lyra.db'}", data_dir=str(root))
        self.clock = Clock()
        first = make_governor(self.settings, self.clock)
        second = Governor(self.settings, first.ledger, "bot-2", WideMandates(), self.clock, "s", first.store,
                          first.watch)  # fmt: skip
        for gov in (first, second):
            gov.ladder_view.clock, gov.ladder_view.refresh_s = self.clock, 5.0
            gov.ladder_state(fresh=True)
        self.governors = (first, second)
        self.operator = Ledger.open(self.settings)

    def snapshots(self, i: int) -> list[MarketSnapshot]:
        return [
            MarketSnapshot(connector=c, trading_pair=p, timestamp=self.clock.now,
                           mid_price=Decimal(60000 + (i * 7 + k) % 40), spread_pct=0.01 + k / 1000,
                           depth_usd=1000.0 + i)
            for k, (c, p) in enumerate(MARKETS)
        ]  # fmt: skip

    def close(self) -> None:
        first, second = self.governors
        self.operator.close()
        second.heartbeats.close()
        release_checkpointer(second._wal)
        first.close()


@pytest.fixture
def worlds(tmp_path: Path) -> Iterator[tuple[World, World]]:
    a, b = World(tmp_path / "separate"), World(tmp_path / "on_tick")
    yield a, b
    a.close()
    b.close()


def separate(gov: Governor, snapshots: list[MarketSnapshot], before: Callable[[], None] | None) -> TradingState:
    """What `GovernedStrategyV2Base.tick` called before `on_tick`."""
    gov.heartbeat()
    if before is not None:
        before()
    state = gov.trading_state()
    if state is not TradingState.HALTED:
        for snapshot in snapshots:
            gov.observe_market(snapshot)
    return state


def together(gov: Governor, snapshots: list[MarketSnapshot], before: Callable[[], None] | None) -> TradingState:
    return gov.on_tick(snapshots, before)


def drive(world: World, tick: Callable[..., TradingState]) -> list[tuple[TradingState, ...]]:
    states = []
    for i in range(SECONDS):
        world.clock.advance(1)
        if i == HALT_AT:
            world.operator.halt("operator emergency stop", "operator")
        if i == RESUME_AT:
            world.operator.resume("operator")
        snapshots = world.snapshots(i)
        row = []
        for n, (gov, markets) in enumerate(zip(world.governors, PLAN, strict=True)):
            # an MQTT halt/resume's fresh read, between the beat and the state, now and then
            before = (lambda g=gov: g.ladder_state(fresh=True) and None) if (i + n) % 29 == 0 else None
            row.append(tick(gov, [snapshots[m] for m in markets], before))
        states.append(tuple(row))
    return states


def facts(world: World) -> dict[str, Any]:
    """Everything the per-tick calls leave behind (the store's rows, the watch, each governor's)."""
    first = world.governors[0]
    watch = first.watch
    out: dict[str, Any] = {
        "bots": sorted((b.bot_id, b.last_heartbeat) for b in first.ledger.bots()),
        "snapshots": {k: f.snapshot.model_dump() for k, f in watch._feeds.items() if f.snapshot is not None},
        "mid_history": {k: list(f.history._buckets) for k, f in watch._feeds.items()},
        "points": {k: list(v) for k, v in first.market_history._points.items()},
        "taken": {k: v[1:] for k, v in watch.taken.items()},
    }
    for gov in world.governors:
        view = gov.ladder_view
        out[gov.bot_id] = {
            "marks_due": dict(gov._marks_due),
            "book": dict(gov.market_history.book),
            "beats": (gov.heartbeats.last, gov.heartbeats.beats),
            "waiting": list(gov.heartbeats.group.rows),
            "ladder": (_ladder(view.cached), view.read_at, view.version),
        }
    return out


def _ladder(state: LadderState | None) -> tuple[Any, ...] | None:
    """The cached ladder but for its wall-clock stamps (the operator's connections write them)."""
    return None if state is None else (state.phase, state.trading_state, state.reason, state.rungs)


def test_on_tick_is_the_separate_calls(worlds: tuple[World, World]) -> None:
    a, b = worlds
    states_a, states_b = drive(a, separate), drive(b, together)
    assert states_a == states_b
    flat = [s for row in states_a for s in row]
    assert TradingState.HALTED in flat and flat[-1] is TradingState.ACTIVE  # the halt and the resume were seen
    # the halt (committed at HALT_AT) is seen by the first call after the ladder's refresh, not later
    first_halted = next(i for i, row in enumerate(states_b) if TradingState.HALTED in row)
    assert HALT_AT <= first_halted <= HALT_AT + 6
    assert facts(a) == facts(b)


def test_before_state_runs_between_the_beat_and_the_state_read(worlds: tuple[World, World]) -> None:
    _, b = worlds
    gov = b.governors[0]
    b.clock.advance(60)
    seen: list[float] = []

    def before() -> None:  # the beat already taken; a halt committed now is this tick's state
        seen.append(gov.heartbeats.last)
        b.operator.halt("operator emergency stop", "operator")
        gov.ladder_state(fresh=True)

    snapshot = b.snapshots(0)[0]
    assert gov.on_tick([snapshot], before) is TradingState.HALTED
    assert seen == [b.clock.now]
    assert gov.watch.snapshot(*MARKETS[0]) is not snapshot  # halted: nothing observed
