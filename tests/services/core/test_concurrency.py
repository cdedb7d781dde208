"""Many processes, one ladder: the conditional reservation keeps every cap, on SQLite and on
the machine's PostgreSQL; a bot killed with SIGKILL leaves a ledger that agrees with its audit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from lyra_governor import audit
from lyra_governor.config import load_settings
from lyra_governor.ledger import Ledger

WORKER = Path(__file__).with_name("hammer_worker.py")


def _prepare(db_url: str) -> Ledger:
    ledger = Ledger.open(load_settings(None, use_env=False, db_url=db_url))
    ledger.set_phase(3, "test", "hammer")
    return ledger


def _spawn(db_url: str, bot: str, n: int, seed: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), db_url, bot, str(n), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _assert_caps_hold(ledger: Ledger) -> None:
    exposure = ledger.exposure("paper")
    for name, scope in [*exposure.exchanges.items(), ("TOTAL", exposure.total)]:
        assert scope.used_usd <= scope.cap_usd, f"{name}: {scope.used_usd} > {scope.cap_usd}"
    ok, detail = ledger.totals_agree()
    assert ok, detail
    result = audit.verify(ledger.engine)
    assert result.ok, result.problem


def _hammer(db_url: str) -> None:
    ledger = _prepare(db_url)
    workers = [_spawn(db_url, f"bot-{i}", 60, seed=i) for i in range(8)]
    outputs = [w.communicate(timeout=240) for w in workers]
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err[-2000:]
        assert "allowed=" in out
        assert "DENIED" not in out and "PENDING" not in out, out  # each bot may close its own buys
    allowed = sum(int(out.split("allowed=")[1]) for out, _ in outputs)
    exposure = ledger.exposure("paper")
    assert allowed > 8  # the bots really traded
    assert exposure.total.used_usd <= Decimal(1000)
    assert exposure.total.used_usd > Decimal(700)  # and really pushed against the cap together
    _assert_caps_hold(ledger)
    assert {b.bot_id for b in ledger.bots()} >= {f"bot-{i}" for i in range(8)}  # heartbeats landed
    ledger.close()


@pytest.mark.timeout(300)
def test_eight_processes_on_sqlite_never_exceed_a_cap(tmp_path: Path) -> None:
    _hammer(f"sqlite:///{tmp_path / 'shared.db'}")


@pytest.mark.timeout(300)
def test_eight_processes_on_postgresql_never_exceed_a_cap(pg_url: str) -> None:
    _hammer(pg_url)


@pytest.mark.timeout(120)
def test_kill_minus_nine_mid_stream_leaves_ledger_and_audit_in_agreement(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'killed.db'}"
    ledger = _prepare(db_url)
    victim = _spawn(db_url, "bot-victim", 100_000, seed=1)
    deadline = time.time() + 60
    while time.time() < deadline and audit.verify(ledger.engine).count < 200:
        time.sleep(0.2)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    _assert_caps_hold(ledger)
    before = audit.verify(ledger.engine).count
    # the restarted bot carries on on the same store
    survivor = _spawn(db_url, "bot-victim", 20, seed=2)
    _, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, err[-2000:]
    _assert_caps_hold(ledger)
    assert audit.verify(ledger.engine).count > before
    ledger.close()
