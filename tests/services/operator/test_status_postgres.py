"""Status and metrics on a PostgreSQL store shared by several hosts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from lyra_governor.config import load_settings
from lyra_governor.ledger import Ledger
from lyra_governor.metrics import LyraCollector, build_registry
from lyra_governor.order_store import OrderStore
from lyra_governor.status import collect_status


@pytest.mark.timeout(90)
def test_status_and_metrics_on_postgresql(lyra_home: Path, pg_url: str) -> None:
    settings = load_settings(None, use_env=False, db_url=pg_url, data_dir=str(lyra_home))
    ledger = Ledger.open(settings)
    try:
        ledger.set_phase(4, "test", "live")
        OrderStore(ledger.engine).heartbeat("bot-pg", time.time(), "host", 1)
        ledger.audit_append("council_verdict", {"verdict": "PROCEED", "cost_usd": 0.25, "latency_s": 1.5}, "council")
        ledger.halt("pg test", "ops")  # phase 4: every exchange drops a rung (already the first)
        s = collect_status(settings, ledger=ledger)
        assert s["phase"] == 4 and s["halted"] and s["rung"] == 1 and s["cap_usd"] == 500.0  # 5 live x $100
        assert s["audit_ok"] is True and [b["bot_id"] for b in s["bots"]] == ["bot-pg"]
        assert s["council"]["spend_today_usd"] == 0.25 and s["council"]["verdicts_today"] == {"PROCEED": 1}
        text = generate_latest(build_registry(LyraCollector(settings, ledger))).decode()
        assert 'lyra_consensus_latency_seconds_bucket{le="2.0"} 1.0' in text
        assert "lyra_consensus_cost_usd_total 0.25" in text and "lyra_halted 1.0" in text
    finally:
        ledger.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")} | {"LYRA_DB_URL": pg_url}
    cli = subprocess.run(
        [str(Path(sys.executable).with_name("lyra-governor")), "status", "--json"],
        check=False, capture_output=True, text=True, timeout=60, cwd=lyra_home, env=env,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    body = json.loads(cli.stdout)
    assert body["halted"] is True and body["reason"] == "pg test" and "postgresql" in body["store"]
    assert "password" not in cli.stdout
