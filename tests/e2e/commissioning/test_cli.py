"""`lyra-governor commission`, `exchanges validate` and `audit verify` as a user runs them:
a real subprocess, settings by environment, ccxt routed to the fake exchange."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lyra_governor.checkpoints import CheckpointRunner
from lyra_governor.config import load_settings
from lyra_governor.ledger import Ledger
from tests.e2e.commissioning.fake_exchange import FakeExchange


def cli(home: Path, *args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    env.update(
        {
            "LYRA_DB_URL": f"sqlite:///{home / 'lyra.db'}",
            "LYRA_DATA_DIR": str(home / "data"),
            "LYRA_VAULT_PATH": str(home / "data" / "vault" / "lyra.vault"),
            "LYRA_SERVER__PORT": "1",
            **(extra or {}),
        }
    )
    exe = Path(sys.executable).with_name("lyra-governor")
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, cwd=home, env=env, timeout=120, check=False
    )


@pytest.mark.timeout(120)
def test_exchanges_validate_json_without_keys_fails_naming_the_vault(
    lyra_home: Path, fake_exchange: FakeExchange
) -> None:
    routed = {"LYRA_COMMISSIONING__EXCHANGE_API_URL": fake_exchange.url, "LYRA_COMMISSIONING__TIMEOUT_S": "2"}
    done = cli(lyra_home, "exchanges", "validate", "--exchange", "okx", "--exchange", "binance", "--json", extra=routed)
    assert done.returncode == 1, done.stderr
    out = json.loads(done.stdout)
    assert out["phase"] == 2 and out["passed"] is False and out["routed_to"] == fake_exchange.url
    okx = next(c for c in out["checks"] if c["name"] == "exchange okx")
    assert not okx["passed"] and "lyra-governor vault set exchange/okx/api_key" in okx["detail"]
    assert "Traceback" not in done.stderr
    # public calls still reached the fake (through the sandbox host)
    assert {r.host for r in fake_exchange.calls("binance")} == {"testnet.binance.vision"}


@pytest.mark.timeout(60)
def test_unknown_exchange_is_a_clear_error(lyra_home: Path) -> None:
    done = cli(lyra_home, "exchanges", "validate", "--exchange", "mtgox")
    assert done.returncode == 2
    assert "unknown exchange 'mtgox'" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.timeout(120)
def test_commission_phase3_json_and_table(lyra_home: Path) -> None:
    done = cli(lyra_home, "commission", "--phase", "3", "--json")
    assert done.returncode == 1, done.stderr
    out = json.loads(done.stdout)
    assert out["phase"] == 3 and out["verdict"] == "HOLD_OR_INVESTIGATE"
    assert all({"name", "passed", "detail"} <= set(c) for c in out["checks"])
    assert out["council"]["response_rate"] == 1.0
    table = cli(lyra_home, "commission", "--phase", "3")
    assert table.returncode == 1 and "paper run recorded" in table.stdout and "verdict:" in table.stdout


@pytest.mark.timeout(120)
def test_audit_verify_checks_forensic_signatures(lyra_home: Path) -> None:
    settings = load_settings(
        None, use_env=False, db_url=f"sqlite:///{lyra_home / 'lyra.db'}", data_dir=str(lyra_home / "data")
    )
    ledger = Ledger.open(settings)
    report = CheckpointRunner(settings, ledger).run("forensic_report")
    ledger.close()
    good = cli(lyra_home, "audit", "verify", "--json")
    assert good.returncode == 0, good.stdout + good.stderr
    assert json.loads(good.stdout)["reports_checked"] == 1
    path = Path(report.report_path or "")
    envelope = json.loads(path.read_text())
    envelope["report"]["audit"]["count"] += 1
    path.write_text(json.dumps(envelope))
    bad = cli(lyra_home, "audit", "verify")
    assert bad.returncode == 1 and "altered" in bad.stderr
