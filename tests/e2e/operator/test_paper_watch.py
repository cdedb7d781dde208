"""The issue's finish line: watch a paper run from another terminal, then stop it with `halt`."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from lyra_governor.store import audit_log
from tests.e2e.operator.conftest import EXE, cli_env, run_cli


def _audit_head(path: Path) -> int:
    if not path.exists():
        return 0
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT seq FROM lyra_audit_head WHERE id = 1")).scalar() or 0)
    except sa.exc.OperationalError:  # the run is still creating its tables
        return 0
    finally:
        engine.dispose()


@pytest.mark.timeout(150)
def test_watch_and_halt_a_running_paper_run(lyra_home: Path) -> None:
    out = lyra_home / "paper"
    paper = subprocess.Popen(
        [EXE, "paper", "--hours", "0.5", "--out", str(out), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=lyra_home, env=cli_env(lyra_home),
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
        assert paper.poll() is None, "the paper run ended before it could be watched"
        assert watched["phase"] == 3 and watched["book"] == "paper" and watched["cap_usd"] == 1000.0
        assert watched["bots"] and watched["reserved_usd"] + watched["deployed_usd"] <= 1000.0

        halted = run_cli(lyra_home, "halt", "--reason", "operator stops the paper run", **store)
        assert halted.returncode == 0, halted.stderr
        paper.communicate(timeout=120)
    finally:
        if paper.poll() is None:
            paper.kill()
            paper.communicate()

    final = json.loads(run_cli(lyra_home, "status", "--json", **store).stdout)
    assert final["halted"] is True and final["audit_ok"] is True
    engine = sa.create_engine(store["LYRA_DB_URL"])
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(audit_log.c.seq, audit_log.c.event, audit_log.c.payload).order_by(audit_log.c.seq)
            ).all()
    finally:
        engine.dispose()
    halt_seq = next(r.seq for r in rows if r.event == "halt")
    after = [(r.event, json.loads(r.payload)) for r in rows if r.seq > halt_seq]
    # the bots were still running after the halt (they recorded order events: cancels, completions),
    # and from the halt on nothing new was allowed: governed scripts stop proposing and cancel
    assert after, "the paper run wrote nothing after the halt"
    assert not [p for e, p in after if e == "decision" and p["status"] == "ALLOWED"]
