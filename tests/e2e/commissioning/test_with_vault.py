"""Phases 1 and 2 with a real vault: the scratch rotation, vault integrity, and exchange keys
read from the vault by `lyra-governor commission --phase 2` as a user runs it."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from lyra_governor.commissioning.runner import CommissionRunner, council_from_settings, open_settings_vault
from lyra_governor.config import Settings, load_settings
from lyra_governor.ledger import Ledger
from lyra_governor.models import Verdict
from lyra_governor.server import make_server
from lyra_governor.vault import Vault
from tests.e2e.commissioning.conftest import FAST, make_credentials
from tests.e2e.commissioning.fake_exchange import FakeExchange
from tests.e2e.commissioning.test_cli import cli

PASSWORD = "correct horse battery staple 42"


def make_vault(settings: Settings, names: list[str]) -> Path:
    path = Path(settings.vault_path)
    vault = Vault.create(path, PASSWORD)
    for name, creds in make_credentials(names).items():
        vault.set(f"exchange/{name}/api_key", creds.api_key or "")
        vault.set(f"exchange/{name}/secret", creds.secret or "")
        vault.set(f"exchange/{name}/passphrase", creds.passphrase or "")
    return path


@pytest.mark.timeout(90)
def test_phase1_passes_with_vault_and_server(fake_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LYRA_VAULT_PASSWORD", PASSWORD)
    make_vault(fake_settings, ["okx"])
    server = make_server(fake_settings, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        data = fake_settings.model_dump(mode="json", exclude={"source"})
        data["server"] = {"port": int(server.server_address[1])}
        # headroom limits relaxed: this test must not depend on what else the CI machine runs
        data["commissioning"].update(max_load_per_cpu=1000, min_free_memory_pct=0, min_free_disk_gb=0)
        settings = load_settings(None, use_env=False, **data)
        ledger = Ledger.open(settings)
        vault = open_settings_vault(settings)
        report = CommissionRunner(settings, ledger, council_from_settings(settings, vault), vault=vault).run(1)
    finally:
        server.shutdown()
        server.server_close()
        server.ledger.close()
    checks = {c.name: c for c in report.checks}
    assert all(c.passed for c in report.checks), [c.to_dict() for c in report.checks if not c.passed]
    assert "old password refused" in checks["key rotation"].detail
    assert "3 secrets" in checks["vault integrity"].detail
    assert report.verdict in (Verdict.PROCEED, Verdict.PROCEED_WITH_CAUTION) and report.passed
    assert ledger.latest_evidence("phase1").passed  # type: ignore[union-attr]


@pytest.mark.timeout(120)
def test_commission_phase2_cli_reads_keys_from_the_vault(
    lyra_home: Path, fake_settings: Settings, fake_exchange: FakeExchange
) -> None:
    conf = lyra_home / "conf"
    conf.mkdir()
    (conf / "lyra_governor.yml").write_text(
        "exchanges:\n"
        + "".join(f"  {n}: {json.dumps(fake_settings.exchanges[n].model_dump())}\n" for n in FAST)
        + "commissioning:\n  min_exchanges: 3\n"
    )
    settings = load_settings(
        conf / "lyra_governor.yml", use_env=False, vault_path=str(lyra_home / "data/vault/lyra.vault")
    )
    make_vault(settings, list(FAST))
    routed = {
        "LYRA_COMMISSIONING__EXCHANGE_API_URL": fake_exchange.url,
        "LYRA_COMMISSIONING__TIMEOUT_S": "2",
        "LYRA_VAULT_PASSWORD": PASSWORD,
    }
    done = cli(lyra_home, "commission", "--phase", "2", "--json", extra=routed)
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout)
    assert out["phase"] == 2 and out["passed"] and out["exchanges"] == dict.fromkeys(FAST, "validated")
    for secret in ("key-okx-0123", "pass-okx", "secret-okx"):
        assert secret not in done.stdout and secret not in done.stderr
    wrong = cli(lyra_home, "commission", "--phase", "2", extra={**routed, "LYRA_VAULT_PASSWORD": "wrong"})
    assert wrong.returncode == 4 and "Traceback" not in wrong.stderr
