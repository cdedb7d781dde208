"""Point 4: reconciliation on start. A governed bot (its own process) is killed with SIGKILL
while its orders rest on the simulator; while it is dead the exchange fills one, part-fills
another and cancels a third; a fourth reservation never reached the exchange. The bot
restarts on the same store: it asks the exchange for its orders and fills, books the missed
fills, releases or cancels each reservation (audited), and the three pictures agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lyra_governor.config import Settings, load_settings
from lyra_governor.governor import Governor
from lyra_governor.models import DecisionStatus, MarketSnapshot, OrderProposal, OrderType, Side
from tests.live_sim.governed_rig import RISK, Bot, audit_rows, cap_monitor, phase4_governor, probe_strategy
from tests.live_sim.harness import PAIR, Rig

BOT_ID = "live-sim-crashy"
ROOT = Path(__file__).parents[2]


@pytest.fixture
def store(lyra_home: Path) -> tuple[Settings, dict[str, str]]:
    url = f"sqlite:///{lyra_home / 'lyra.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")} | {
        "LYRA_DB_URL": url, "LYRA_DATA_DIR": str(lyra_home / "data"), "LYRA_RISK__REFERENCE_MIN_HISTORY_S": "2",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }  # fmt: skip
    settings = load_settings(None, use_env=False, db_url=url, data_dir=str(lyra_home / "data"), risk=RISK)
    return settings, env


@pytest.fixture(params=[("binance", False), ("okx", True)], ids=["binance", "okx-orphaned"])
def venue(request: pytest.FixtureRequest) -> tuple[Any, bool]:
    """The simulator the bot trades on, and whether it stays silent until ORPHANED."""
    name, orphaned = request.param
    return request.getfixturevalue("sim" if name == "binance" else "okx_sim"), orphaned


def _start_bot(sim: Any, env: dict[str, str], cwd: Path, orders: list[str]) -> tuple[subprocess.Popen[str], list[str]]:
    args = [sys.executable, "-m", "tests.live_sim.bot_process", "--venue", sim.name, "--url", sim.url,
            "--key", sim.api_key, "--secret", sim.api_secret, "--passphrase", getattr(sim, "passphrase", ""),
            "--bot-id", BOT_ID]  # fmt: skip
    for order in orders:
        args += ["--order", order]
    log_file = (cwd / "bot.log").open("w")
    proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=log_file, text=True)
    log_file.close()  # the child holds its own descriptor
    deadline = time.monotonic() + 90
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("READY "):
            return proc, json.loads(line[6:])["orders"]
        if not line and proc.poll() is not None:
            break
    proc.kill()
    log = (cwd / "bot.log").read_text()[-3000:]
    raise AssertionError(f"the bot process did not get its orders onto the simulator; its log ends:\n{log}")


@pytest.fixture
def crashed(
    venue: tuple[Any, bool], store: tuple[Settings, dict[str, str]], lyra_home: Path
) -> Iterator[dict[str, object]]:
    sim, orphaned = venue
    settings, env = store
    proc, orders = _start_bot(sim, env, lyra_home, ["BUY:0.0003:59000", "BUY:0.0003:58990", "SELL:0.0003:61000"])
    try:
        buy1, buy2, sell = orders
        sim.fill(buy1, "0.0001")  # seen live: booked by the running bot
        probe = Governor.from_settings(settings, bot_id="live-sim-observer")
        deadline = time.monotonic() + 15
        while not probe.ledger.fill_rows(book="live") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert probe.ledger.fill_rows(book="live"), "the live fill never reached the ledger"
        probe.close()
    finally:
        proc.kill()  # SIGKILL: no shutdown code runs
        proc.wait(10)
    # while the bot is dead
    sim.fill(buy1)  # the rest of the first buy
    sim.fill(buy2, "0.0001")  # part of the second
    sim.cancel_by_exchange(sell)  # the exchange cancels the sell (say, maintenance)
    # a reservation whose order never left the bot (killed between reserve and place)
    ghost = Governor.from_settings(settings, bot_id=BOT_ID)
    for age in (8, 6, 4, 2, 0):  # the governor's own look at the market (its reference warm-up)
        ghost.observe_market(_snapshot(sim.name, time.time() - age))
    decision = ghost.review(OrderProposal(
        bot_id=BOT_ID, strategy="live_sim", connector=sim.name, trading_pair=PAIR, side=Side.BUY,
        order_type=OrderType.LIMIT, amount=Decimal("0.0002"), price=Decimal("59100"),
        mid_price=Decimal("60000"), mid_price_ts=time.time()))  # fmt: skip
    if decision.status is DecisionStatus.PENDING:  # the council's first answer
        time.sleep(0.5)
        decision = ghost.review(OrderProposal(
            bot_id=BOT_ID, strategy="live_sim", connector=sim.name, trading_pair=PAIR, side=Side.BUY,
            order_type=OrderType.LIMIT, amount=Decimal("0.0002"), price=Decimal("59100"),
            mid_price=Decimal("60000"), mid_price_ts=time.time()))  # fmt: skip
    assert decision.allowed, decision
    held = ghost.exposure("live").exchanges[sim.name].reserved_usd
    if orphaned:  # silent past the heartbeat timeout, by the store's clock
        timeout = settings.risk.heartbeat_timeout_s
        assert ghost.store.orphan_silent_bots(timeout, time.time() + timeout + 1) == 4
        exposure = ghost.exposure("live").exchanges[sim.name]
        assert (exposure.reserved_usd, exposure.orphaned_usd) == (0, held)  # still counted against the cap
        assert not ghost.ledger.open_reservations(BOT_ID) and len(ghost.store.orphans(BOT_ID)) == 4
    ghost.close()
    yield {"orders": orders, "ghost": decision.reservation_id, "settings": settings, "sim": sim,
           "orphaned": orphaned, "held": held}  # fmt: skip


def _snapshot(connector: str, at: float) -> MarketSnapshot:
    return MarketSnapshot(
        connector=connector,
        trading_pair=PAIR,
        timestamp=at,
        mid_price=Decimal(60000),
        best_bid=Decimal(59994),
        best_ask=Decimal(60006),
        spread_pct=0.02,
        data_age_s=0.0,
    )


def test_restart_after_kill_9_reconciles_with_the_exchange(crashed: dict[str, Any], lyra_home: Path) -> None:
    settings, sim = crashed["settings"], crashed["sim"]
    gov = phase4_governor(settings, bot_id=BOT_ID)  # its first heartbeat takes its orphans back
    assert len(gov.ledger.open_reservations(BOT_ID)) == 4  # what the crash left behind
    assert gov.exposure("live").exchanges[sim.name].reserved_usd == crashed["held"]
    events = [r["event"] for r in audit_rows(gov)]
    assert ("reservations_orphaned" in events and "orphans_reclaimed" in events) is crashed["orphaned"]
    rig = Rig(sim)
    from lyra_strategies.paper.replay import start_markets_recorder

    async def recorder_on_loop() -> object:
        return start_markets_recorder([rig.connector], lyra_home / "hb-restart.sqlite")

    recorder = rig.run(recorder_on_loop())
    try:
        strategy = probe_strategy(rig, gov)
        rig.monitors.append(cap_monitor(gov))
        bot = Bot(rig, sim, gov, strategy)
        bot.base0, bot.quote0 = Decimal("0.01"), Decimal(1000)  # the account before the first process traded
        rig.start(strategy)
        rig.wait(lambda: strategy.reconciliation is not None, 20, "reconciliation on start")
        found = strategy.reconciliation
        assert found["reservations"] == 4 and found["booked_fills"] == 2, found
        assert (found["filled"], found["cancelled"], found["failed"], found["adopted"]) == (1, 1, 1, 1), found
        rig.wait(lambda: not sim.open_orders(), 10, "the adopted order cancelled on the exchange")
        bot.agree()
        assert not gov.ledger.open_reservations(BOT_ID)
        fills = gov.ledger.fill_rows(book="live")
        assert sorted(Decimal(f["amount"]) for f in fills) == [Decimal("0.0001")] * 2 + [Decimal("0.0002")]
        events = [r for r in audit_rows(gov) if r["event"] == "reconciliation"]
        assert len(events) == 1 and events[0]["bot_id"] == BOT_ID
        released = {r["reservation_id"]: r.get("kind") for r in audit_rows(gov) if r["event"] == "order_event"}
        assert released[crashed["ghost"]] == "FAILED"
    finally:
        recorder.stop()  # type: ignore[attr-defined]
        rig.close()
        gov.close()
