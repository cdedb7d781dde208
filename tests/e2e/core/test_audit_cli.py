"""`lyra-governor audit verify|tail` as a user runs them, on a store a governor wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from lyra_governor.config import load_settings
from lyra_governor.governor import Governor
from lyra_governor.models import OrderProposal, Side
from lyra_governor.store import audit_log


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lyra-governor")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    env["LYRA_DB_URL"] = f"sqlite:///{cwd / 'lyra.db'}"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120, check=False)


def test_verify_and_tail_then_detect_an_edit(lyra_home: Path) -> None:
    settings = load_settings(None, use_env=False, db_url=f"sqlite:///{lyra_home / 'lyra.db'}")
    gov = Governor.from_settings(settings, "bot-cli")
    gov.ledger.set_phase(3, "test", "paper")
    import time

    for _ in range(3):
        gov.review(
            OrderProposal(
                bot_id="bot-cli",
                connector="binance_paper_trade",
                trading_pair="BTC-USDT",
                side=Side.BUY,
                amount=Decimal("0.001"),
                price=Decimal("NaN"),
                mid_price=Decimal(60000),
                mid_price_ts=time.time(),
            )
        )
    gov.close()

    ok = run_cli("audit", "verify", "--json", cwd=lyra_home)
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout.strip().splitlines()[-1])
    assert report["ok"] and report["records"] >= 4

    tail = run_cli("audit", "tail", "-n", "2", "--json", cwd=lyra_home)
    assert tail.returncode == 0
    records = json.loads(tail.stdout)["records"]
    assert [r["payload"]["code"] for r in records] == ["INVALID_PRICE", "INVALID_PRICE"]
    assert "INVALID_PRICE" in run_cli("audit", "tail", cwd=lyra_home).stdout

    engine = sa.create_engine(settings.db_url)
    with engine.begin() as conn:
        conn.execute(sa.update(audit_log).where(audit_log.c.seq == 3).values(actor="mallory"))
    engine.dispose()
    broken = run_cli("audit", "verify", cwd=lyra_home)
    assert broken.returncode == 1
    assert "broken at record 3" in broken.stderr
    assert "Traceback" not in broken.stderr
