"""The live_sim tier: Hummingbot's real Binance and OKX connectors against tests/live_sim/binance_sim.py
and tests/live_sim/okx_sim.py (one engine, two protocols).

A missing Hummingbot is a failure with the fix in the message, never a silent skip."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live_sim.binance_sim import BinanceSim
from tests.live_sim.governed_rig import Bot, cap_monitor, live_settings, phase4_governor, probe_strategy, ready_to_trade
from tests.live_sim.harness import Rig, binance_pointed_at, okx_pointed_at
from tests.live_sim.okx_sim import OkxSim


@pytest.fixture(autouse=True)
def _require_hummingbot() -> None:
    if importlib.util.find_spec("hummingbot") is None:
        pytest.fail("Hummingbot is not installed in this environment; run `make test`, which installs it into .venv")


@pytest.fixture
def sim() -> Iterator[BinanceSim]:
    simulator = BinanceSim(
        api_key="live-sim-key",
        api_secret="live-sim-secret",
        balances={"USDT": "1000", "BTC": "0.01"},
        mid={"BTCUSDT": "60000"},
    ).start()
    try:
        with binance_pointed_at(simulator):
            yield simulator
    finally:
        simulator.stop()


@pytest.fixture
def okx_sim() -> Iterator[OkxSim]:
    simulator = OkxSim(
        api_key="live-sim-okx-key",
        api_secret="live-sim-okx-secret",
        passphrase="live-sim-okx-passphrase",
        balances={"USDT": "1000", "BTC": "0.01"},
        mid={"BTC-USDT": "60000"},
    ).start()
    try:
        with okx_pointed_at(simulator):
            yield simulator
    finally:
        simulator.stop()


@pytest.fixture
def okx_rig(okx_sim: OkxSim) -> Iterator[Rig]:
    """OKX's connector built, not started."""
    r = Rig(okx_sim)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def rig(sim: BinanceSim) -> Iterator[Rig]:
    """The connector built, not started: a test adds its strategy and calls `rig.start()`."""
    r = Rig(sim)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def bot(rig: Rig, sim: BinanceSim, lyra_home: Path, tmp_path: Path) -> Iterator[Bot]:
    """A governed bot in phase 4 at rung $100 on the real Binance connector, started and ready,
    with Hummingbot's own trade recorder (its executors read it) on its own SQLite file."""
    yield from governed_bot(rig, [sim], lyra_home, tmp_path)


@pytest.fixture
def okx_bot(okx_rig: Rig, okx_sim: OkxSim, lyra_home: Path, tmp_path: Path) -> Iterator[Bot]:
    """The same on the real OKX connector."""
    yield from governed_bot(okx_rig, [okx_sim], lyra_home, tmp_path)


def governed_bot(rig: Rig, sims: list[Any], lyra_home: Path, tmp_path: Path) -> Iterator[Bot]:
    """One governed bot on every connector of `rig`; yields its view of the first venue (the
    others: `Bot(rig, sim, bot.gov, bot.strategy)`)."""
    from lyra_strategies.paper.replay import start_markets_recorder

    connectors = list(rig.connectors.values())
    recorder = rig.run(_async(lambda: start_markets_recorder(connectors, tmp_path / "hb.sqlite")))
    gov = phase4_governor(live_settings(lyra_home))
    strategy = probe_strategy(rig, gov)
    b = Bot(rig, sims[0], gov, strategy)
    rig.monitors.append(cap_monitor(gov))
    rig.start(strategy)
    ready_to_trade(rig, strategy)
    try:
        yield b
    finally:
        recorder.stop()
        gov.close()


async def _async(fn: Callable[[], Any]) -> Any:
    return fn()
