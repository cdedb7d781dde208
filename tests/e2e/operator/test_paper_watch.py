"""The issue's finish line: watch a paper run from another terminal, then stop it with `halt`."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from lyra_governor import audit
from tests.e2e.operator.conftest import EXE, cli_env, run_cli


def _audit_head(path: Path) -> int:
    if not path.exists():
        return 0
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT max(seq) FROM lyra_audit")).scalar() or 0)  # the chain's tip
    except sa.exc.OperationalError:  # the run is still creating its tables
        return 0
    finally:
        engine.dispose()


@pytest.mark.timeout(150)
def test_watch_and_halt_a_running_paper_run(lyra_home: Path) -> None:
    out = lyra_home / "paper"
    log = (lyra_home / "paper.log").open("w")  # a file, not a pipe nobody reads while it runs
    paper = subprocess.Popen(
        [EXE, "paper", "--hours", "2", "--out", str(out), "--json"],
        stdout=log, stderr=log, text=True, cwd=lyra_home, env=cli_env(lyra_home),
    )  # fmt: skip
    store = {"LYRA_DB_URL": f"sqlite:///{out / 'lyra_paper.db'}"}
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and paper.poll() is None:
            if _audit_head(out / "lyra_paper.db") > 30:
                break
            time.sleep(0.05)
        # the other terminal: `status --json` on the paper run's store while it trades
        result = run_cli(lyra_home, "status", "--json", "--no-verify", **store)
        assert result.returncode == 0, result.stderr
        watched = json.loads(result.stdout)
        assert paper.poll() is None, "the paper run ended before it could be watched"  # 2 h take ~25 s
        assert watched["phase"] == 3 and watched["book"] == "paper" and watched["cap_usd"] == 1000.0
        assert watched["bots"] and watched["reserved_usd"] + watched["deployed_usd"] <= 1000.0

        halted = run_cli(lyra_home, "halt", "--reason", "operator stops the paper run", **store)
        assert halted.returncode == 0, halted.stderr
        # The run reads the trading state at most 0.25 s (wall clock) late, stops proposing,
        # cancels its orders and ends with the halt as the reason its gate did not pass.
        returncode = paper.wait(timeout=30)
    finally:
        if paper.poll() is None:
            paper.kill()
            paper.communicate()
        log.close()
    assert returncode == 1, (lyra_home / "paper.log").read_text()[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["halted"] == "operator stops the paper run" and summary["gate_passed"] is False
    assert summary["gate_reasons"][0].startswith("trading was halted after")
    assert summary["simulated_hours"] < 2.0

    final = json.loads(run_cli(lyra_home, "status", "--json", **store).stdout)
    assert final["halted"] is True and final["audit_ok"] is True
    engine = sa.create_engine(store["LYRA_DB_URL"])
    try:
        halt = audit.tail(engine, 1, "halt")[0]
    finally:
        engine.dispose()
    assert halt.payload["reason"] == "operator stops the paper run" and halt.actor.startswith("operator:")
    with engine.connect() as conn:  # nothing was approved after the halt was written
        after = conn.execute(
            sa.text("SELECT payload FROM lyra_audit WHERE seq > :seq AND event = 'decision'"), {"seq": halt.seq}
        ).scalars().all()
    engine.dispose()
    assert all(json.loads(p)["status"] != "ALLOWED" for p in after), after[:3]
