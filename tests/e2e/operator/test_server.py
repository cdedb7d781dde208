"""`lyra-governor serve` as a live process, driven with httpx."""

from __future__ import annotations

import json
import socket
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from lyra_governor.config import load_settings
from lyra_governor.governor import Governor
from lyra_governor.models import OrderProposal, Side
from tests.e2e.operator.conftest import Served, no_traceback, run_cli, start_server, stop_server
from tests.e2e.operator.conftest import samples_of as samples


def outside_address() -> str:
    """This machine's own non-loopback address (no packet leaves: UDP connect only routes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("10.255.255.255", 9))
        address = str(probe.getsockname()[0])
    assert not address.startswith("127."), "this machine has no non-loopback IPv4 address to test remote access"
    return address


@pytest.mark.timeout(120)
def test_status_metrics_health_over_http(lyra_home: Path, served: Served) -> None:
    health = httpx.get(f"{served.url}/healthz", timeout=10)
    assert health.status_code == 200 and health.json() == {"ok": True, "trading_state": "ACTIVE"}

    settings = load_settings(None, use_env=False, db_url=f"sqlite:///{lyra_home / 'lyra.db'}")
    gov = Governor.from_settings(settings, "bot-http")
    gov.ledger.set_phase(3, "test", "paper")
    for price in ("NaN", "60000", "60000"):
        gov.review(
            OrderProposal(
                bot_id="bot-http",
                connector="binance_paper_trade" if price != "60000" else "binance",
                trading_pair="BTC-USDT",
                side=Side.BUY,
                amount=Decimal("0.001"),
                price=Decimal(price),
                mid_price=Decimal(60000),
                mid_price_ts=time.time(),
            )
        )
    gov.ledger.halt("http test", "tester")
    gov.close()

    status = httpx.get(f"{served.url}/forensic/status", timeout=10)
    assert status.status_code == 200
    body = status.json()
    cli = json.loads(run_cli(lyra_home, "status", "--json").stdout)
    for key in ("phase", "rung", "halted", "reason", "deployed_usd", "reserved_usd", "cap_usd", "exchanges"):
        assert body[key] == cli[key], key
    assert body["phase"] == 3 and body["halted"] is True and body["cap_usd"] == 1000.0
    assert [b["bot_id"] for b in body["bots"]] == ["bot-http"]
    assert body["activity"]["by_outcome"] == {"INVALID_PRICE": 1, "LIVE_NOT_PERMITTED": 2}

    metrics = httpx.get(f"{served.url}/metrics", timeout=10)
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    m = samples(metrics.text)
    assert m[("lyra_up", ())] == 1 and m[("lyra_phase", ())] == 3 and m[("lyra_halted", ())] == 1
    assert m[("lyra_decisions_total", (("code", "LIVE_NOT_PERMITTED"), ("status", "DENIED")))] == 2
    assert m[("lyra_decisions_total", (("code", "INVALID_PRICE"), ("status", "DENIED")))] == 1
    assert m[("lyra_capital_usd", (("book", "paper"), ("exchange", "TOTAL"), ("kind", "cap")))] == 1000
    assert m[("lyra_checkpoint_age_seconds", (("checkpoint", "ai_health"),))] == float("inf")
    assert m[("lyra_audit_ok", ())] == 1 and m[("lyra_bots_alive", ())] == 1
    assert ("lyra_consensus_latency_seconds_count", ()) in m

    missing = httpx.get(f"{served.url}/nope", timeout=10)
    assert missing.status_code == 404 and "/forensic/status" in missing.json()["error"]


@pytest.mark.timeout(120)
def test_checkpoints_run_while_serving(lyra_home: Path) -> None:
    server = start_server(lyra_home)
    try:
        deadline = time.monotonic() + 30
        ages: dict[str, float] = {}
        while time.monotonic() < deadline:
            m = samples(httpx.get(f"{server.url}/metrics", timeout=10).text)
            ages = {dict(k[1])["checkpoint"]: v for k, v in m.items() if k[0] == "lyra_checkpoint_age_seconds"}
            if ages and all(v < 60 for v in ages.values()):
                break
            time.sleep(0.3)
        assert set(ages) == {"ai_health", "performance_review", "risk_update", "system_audit", "forensic_report"}
        assert all(v < 60 for v in ages.values()), ages
        council = httpx.get(f"{server.url}/forensic/status", timeout=10).json()["council"]
        assert council["voters_up"] == 8 and council["response_rate"] == 1.0
        m = samples(httpx.get(f"{server.url}/metrics", timeout=10).text)
        assert m[("lyra_consensus_requests_total", (("verdict", "PROCEED"),))] >= 1  # the AI health check
        assert m[("lyra_council_response_rate", ())] == 1.0
    finally:
        stop_server(server)


@pytest.mark.timeout(120)
def test_remote_requests_need_the_flag_and_a_token(lyra_home: Path) -> None:
    refused = run_cli(lyra_home, "serve", "--host", "0.0.0.0", "--port", "0")
    assert refused.returncode == 2 and "--allow-remote" in refused.stderr
    no_traceback(refused)
    no_token = run_cli(lyra_home, "serve", "--host", "0.0.0.0", "--port", "0", "--allow-remote")
    assert no_token.returncode == 2 and "LYRA_SERVER_TOKEN" in no_token.stderr

    address = outside_address()
    server = start_server(
        lyra_home, "--host", "0.0.0.0", "--allow-remote", "--no-checkpoints", LYRA_SERVER_TOKEN="s3cret-token"
    )
    try:
        port = server.url.rsplit(":", 1)[1]
        remote = f"http://{address}:{port}"
        assert httpx.get(f"{remote}/healthz", timeout=10).status_code == 401
        wrong = httpx.get(f"{remote}/forensic/status", headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401
        right = httpx.get(f"{remote}/forensic/status", headers={"Authorization": "Bearer s3cret-token"}, timeout=10)
        assert right.status_code == 200 and right.json()["phase"] == 1
        assert "s3cret-token" not in right.text
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200  # loopback: no token
    finally:
        stop_server(server)


@pytest.mark.timeout(120)
def test_token_from_the_vault_and_a_locked_vault_on_loopback(lyra_home: Path) -> None:
    from lyra_governor.vault import Vault

    vault = Vault.create(lyra_home / "data" / "vault" / "lyra.vault", "correct horse battery")
    vault.set("server/token", "vault-held-token")
    # loopback never needs the token, so a locked vault (no password) does not stop the server
    local = start_server(lyra_home, "--no-checkpoints")
    try:
        assert httpx.get(f"{local.url}/healthz", timeout=10).status_code == 200
    finally:
        stop_server(local)
    locked = run_cli(lyra_home, "serve", "--host", "0.0.0.0", "--port", "0", "--allow-remote")
    assert locked.returncode != 0 and "LYRA_VAULT_PASSWORD" in locked.stderr
    no_traceback(locked)
    remote = start_server(
        lyra_home,
        "--host",
        "0.0.0.0",
        "--allow-remote",
        "--no-checkpoints",
        LYRA_VAULT_PASSWORD="correct horse battery",
    )
    try:
        url = f"http://{outside_address()}:{remote.url.rsplit(':', 1)[1]}/healthz"
        assert httpx.get(url, timeout=10).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer vault-held-token"}, timeout=10).status_code == 200
    finally:
        stop_server(remote)
