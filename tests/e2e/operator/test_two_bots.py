"""Status stays right while two bot processes trade on the same SQLite store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from lyra_governor.config import load_settings
from lyra_governor.ledger import Ledger
from tests.e2e.operator.conftest import BOT, Served, run_cli, samples_of

ORDERS = 24  # x 60 USD per bot: 1,440 USD wanted against the 1,000 USD paper cap


@pytest.mark.timeout(180)
def test_status_is_right_while_two_bots_trade(lyra_home: Path, served: Served) -> None:
    db_url = f"sqlite:///{lyra_home / 'lyra.db'}"
    settings = load_settings(None, use_env=False, db_url=db_url)
    ledger = Ledger.open(settings)
    ledger.set_phase(3, "test", "paper run")
    ledger.close()
    start = lyra_home / "start"
    start.mkdir()
    names = (("bot-a", "binance_paper_trade"), ("bot-b", "okx_paper_trade"))
    bots = [
        subprocess.Popen(
            [sys.executable, BOT, db_url, name, connector, str(ORDERS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=lyra_home,
            env={**os.environ, "LYRA_TEST_START_DIR": str(start)},
        )
        for name, connector in names
    ]
    # both bots trade at once: without a common start one of them may fill the cap alone
    deadline = time.monotonic() + 120
    while not all((start / f"{n}.ready").exists() for n, _ in names) and time.monotonic() < deadline:
        assert all(b.poll() is None for b in bots), "a bot process ended before it was ready"
        time.sleep(0.02)
    (start / "go").touch()
    seen_bots: set[str] = set()
    snapshots = 0
    try:
        while any(b.poll() is None for b in bots):
            s = httpx.get(f"{served.url}/forensic/status", timeout=10).json()
            snapshots += 1
            # the invariants an operator relies on, at every moment
            assert s["deployed_usd"] + s["reserved_usd"] <= s["cap_usd"] + 1e-6
            for e in s["exchanges"].values():
                assert e["deployed_usd"] + e["reserved_usd"] <= e["cap_usd"] + 1e-6
            seen_bots |= {b["bot_id"] for b in s["bots"] if b["alive"]}
            time.sleep(0.1)
        results = []
        for b in bots:
            out, err = b.communicate(timeout=30)
            assert b.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for b in bots:
            if b.poll() is None:
                b.kill()
                b.communicate()
    assert snapshots >= 3 and seen_bots == {"bot-a", "bot-b"}

    allowed = sum(r["counts"].get("ALLOWED", 0) for r in results)
    capped = sum(r["counts"].get("TOTAL_CAP", 0) + r["counts"].get("EXCHANGE_CAP", 0) for r in results)
    filled = sum(Decimal(r["filled_usd"]) for r in results)
    # 16 x 60 USD fit under 1,000 USD, together; every other order is refused by a cap
    assert (allowed, capped) == (16, 2 * ORDERS - 16), [r["counts"] for r in results]

    final = json.loads(run_cli(lyra_home, "status", "--json").stdout)
    assert final["deployed_usd"] == float(filled) == 960.0 and final["reserved_usd"] == 0.0
    per_exchange = {r["bot_id"]: Decimal(r["filled_usd"]) for r in results}
    assert final["exchanges"]["binance"]["deployed_usd"] == float(per_exchange["bot-a"])
    assert final["exchanges"]["okx"]["deployed_usd"] == float(per_exchange["bot-b"])
    assert final["audit_ok"] is True and {b["bot_id"] for b in final["bots"]} == {"bot-a", "bot-b"}
    assert final["mandates"]["count"] == 2  # one standing mandate per market, seen through the decisions
    m = samples_of(httpx.get(f"{served.url}/metrics", timeout=10).text)
    assert m[("lyra_decisions_total", (("code", ""), ("status", "ALLOWED")))] == allowed
    assert m[("lyra_capital_usd", (("book", "paper"), ("exchange", "TOTAL"), ("kind", "deployed")))] == 960.0
