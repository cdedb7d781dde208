"""`lyra-governor paper` as the README's main command runs it: offline, embedded defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from lyra_governor import audit
from lyra_governor.store import audit_log, create_store_engine, evidence, fills


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lyra-governor")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LYRA_", "OPENROUTER"))}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600, check=False)


@pytest.mark.timeout(600)
def test_short_paper_run_passes_the_gate_and_reconciles_with_the_ledger(lyra_home: Path) -> None:
    done = run_cli("paper", "--hours", "0.5", "--out", "report", "--json", cwd=lyra_home)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    for key in (
        "success_rate",
        "orders_proposed",
        "orders_approved",
        "orders_denied",
        "fills",
        "pnl_usd",
        "max_exposure_usd",
        "cap_usd",
        "arbitrage_seen",
        "arbitrage_taken",
        "ai_calls",
        "audit_ok",
        "gate_passed",
        "strategies",
        "all_strategies_tested",
    ):
        assert key in summary, key
    # all eight strategies ran on their own accounts, each proposed, was approved and filled
    assert len(summary["strategies"]) == 8 and summary["all_strategies_tested"], summary["strategies"]
    assert sum(c["fills"] for c in summary["strategies"].values()) == summary["fills"]
    assert summary["gate_passed"] and summary["audit_ok"] and summary["success_rate"] > 0.95
    assert summary["max_exposure_usd"] <= summary["cap_usd"] == 1000.0
    assert summary["denied_by_code"].get("PRICE_COLLAR", 0) > 0  # the flash move was refused
    report = lyra_home / "report"
    for name in ("summary.json", "summary.md", "equity.png", "exposure.png"):
        assert (report / name).stat().st_size > 0, name

    # the report's numbers are the ledger's numbers
    engine = create_store_engine(f"sqlite:///{report / 'lyra_paper.db'}")
    assert audit.verify(engine).ok
    with engine.connect() as conn:
        n_fills = conn.execute(sa.select(sa.func.count()).select_from(fills)).scalar_one()
        decisions = [
            json.loads(p)
            for (p,) in conn.execute(sa.select(audit_log.c.payload).where(audit_log.c.event == "decision")).all()
        ]
        verdicts = [
            json.loads(p)
            for (p,) in conn.execute(sa.select(audit_log.c.payload).where(audit_log.c.event == "council_verdict"))
        ]
    engine.dispose()
    assert n_fills == summary["fills"]
    # every council consultation is itself an audited decision, with what /metrics reports
    assert len(verdicts) == summary["ai_calls"] > 0
    assert all(v["verdict"] and "latency_s" in v and "cost_usd" in v and v["trading_pair"] for v in verdicts)
    assert sum(d["status"] == "ALLOWED" for d in decisions) == summary["orders_approved"]
    assert sum(d["status"] == "DENIED" for d in decisions) == summary["orders_denied"]
    assert sum(d["code"] == "PRICE_COLLAR" for d in decisions) == summary["denied_by_code"]["PRICE_COLLAR"]

    # the evidence landed in the operator's ledger for `promote`
    main = create_store_engine(f"sqlite:///{lyra_home / 'data' / 'lyra.db'}")
    with main.connect() as conn:
        kinds = [r.kind for r in conn.execute(sa.select(evidence.c.kind)).all()]
    main.dispose()
    assert "phase3_paper" in kinds


def test_recorded_csv_replays_and_bad_csv_is_a_clear_error(lyra_home: Path) -> None:
    from lyra_strategies.paper import generator, importer

    feed = generator.generate(0.05, seed=3)
    importer.save_csv(feed, lyra_home / "rec.csv")
    done = run_cli("paper", "--data", "rec.csv", "--hours", "0.05", "--out", "rep", "--json", cwd=lyra_home)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["orders_proposed"] > 0 and summary["audit_ok"]
    (lyra_home / "bad.csv").write_text("when,what\n1,2\n")
    bad = run_cli("paper", "--data", "bad.csv", cwd=lyra_home)
    assert bad.returncode == 2
    assert "missing column" in bad.stderr and "Traceback" not in bad.stderr


def test_strategies_option_names_the_valid_ones(lyra_home: Path) -> None:
    done = run_cli("paper", "--hours", "0.1", "--strategies", "grid,twap", cwd=lyra_home)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "unknown strategy twap; choose from market_making" in done.stderr + done.stdout
