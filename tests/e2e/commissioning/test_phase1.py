"""Phase 1 end to end: the real council, real files, a real HTTP probe of /healthz."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from lyra_governor.commissioning.phase1 import file_modes, headroom, probe_monitoring
from lyra_governor.commissioning.runner import CommissionRunner, council_from_settings
from lyra_governor.config import Settings, load_settings
from lyra_governor.ledger import Ledger
from lyra_governor.models import Verdict


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.timeout(60)
def test_phase1_without_vault_or_monitoring_holds_and_names_the_fixes(fake_settings: Settings) -> None:
    settings = load_settings(
        None,
        use_env=False,
        **{**fake_settings.model_dump(mode="json", exclude={"source"}), "server": {"port": closed_port()}},
    )
    ledger = Ledger.open(settings)
    report = CommissionRunner(settings, ledger, council_from_settings(settings)).run(1)
    checks = {c.name: c for c in report.checks}
    assert set(checks) >= {
        "council responsiveness",
        "key rotation",
        "vault integrity",
        "file modes",
        "monitoring server",
        "resource headroom",
    }
    assert checks["council responsiveness"].passed and "100%" in checks["council responsiveness"].detail
    assert not checks["vault integrity"].passed and "lyra-governor vault init" in checks["vault integrity"].detail
    assert not checks["monitoring server"].passed
    assert "start it with `lyra-governor serve`" in checks["monitoring server"].detail
    assert report.verdict is Verdict.HOLD_OR_INVESTIGATE and not report.passed
    record = ledger.latest_evidence("phase1")
    assert record is not None and not record.passed and record.payload["verdict"] == "HOLD_OR_INVESTIGATE"
    # the ladder refuses to leave phase 1 on this evidence
    assert any("phase-1" in b for b in ledger.promote("operator", None).blockers)


def test_file_modes_and_headroom_are_measured(fake_settings: Settings) -> None:
    vault = Path(fake_settings.vault_path)
    vault.parent.mkdir(parents=True)
    vault.write_text("not really a vault")
    os.chmod(vault, 0o644)
    modes = {Path(m.path).name: m for m in file_modes(fake_settings)}
    assert not modes[vault.name].ok and modes[vault.name].mode == 0o644
    os.chmod(vault, 0o600)
    os.chmod(vault.parent, 0o700)
    assert all(m.ok for m in file_modes(fake_settings))
    assert stat.S_IMODE(vault.stat().st_mode) == 0o600
    load, memory, disk = headroom(Path(fake_settings.data_dir))
    assert load is not None and load >= 0
    assert memory is not None and 0 < memory <= 100
    assert disk is not None and disk > 0


def test_monitoring_probe_reports_the_url(fake_settings: Settings) -> None:
    url, ok, why = probe_monitoring(fake_settings, timeout_s=0.5)
    assert url == "http://127.0.0.1:1/healthz" and not ok and why


@pytest.mark.timeout(60)
def test_monitoring_check_passes_against_the_real_server(fake_settings: Settings) -> None:
    import threading

    from lyra_governor.server import make_server

    server = make_server(fake_settings, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = int(server.server_address[1])
        settings = load_settings(
            None,
            use_env=False,
            **{**fake_settings.model_dump(mode="json", exclude={"source"}), "server": {"port": port}},
        )
        url, ok, why = probe_monitoring(settings)
        assert ok, why
        assert url == f"http://127.0.0.1:{port}/healthz"
    finally:
        server.shutdown()
        server.server_close()
        server.ledger.close()
