"""The launcher's two layouts: a pip-installed Hummingbot (Lyra's shim) and a source checkout
such as the official Docker image's /home/hummingbot (its own bin/, unchanged)."""

from __future__ import annotations

from pathlib import Path

from lyra_governor.config import Settings
from lyra_governor.hbclient import (
    ROOT_ENV,
    SHIM_DIR,
    hummingbot_package_dir,
    is_source_checkout,
    prepare_root,
    quickstart_command,
)


def test_pip_install_root_runs_the_installed_quickstart_through_lyras_shim(tmp_path: Path, settings: Settings) -> None:
    root = tmp_path / "hbot"
    done = prepare_root(root, settings)
    assert (root / "hummingbot").resolve() == hummingbot_package_dir() and not is_source_checkout(root)
    assert "lyra_market_making.py" in done.scripts and "conf_lyra_market_making.yml" in done.configs
    client = (root / "conf" / "conf_client.yml").read_text()
    assert "okx" in client and "mqtt_bridge" not in client  # mqtt.enabled is false in these settings
    argv, env = quickstart_command(root, True, "conf_lyra_arbitrage.yml", settings)
    assert argv[1].endswith("hummingbot_quickstart.py") and Path(argv[1]).parent != root / "bin"
    assert argv[2:] == ["--v2", "conf_lyra_arbitrage.yml", "--headless"]
    assert env[ROOT_ENV] == str(root.resolve()) and env["PYTHONPATH"].split(":")[0] == str(SHIM_DIR)
    assert env["LYRA_DB_URL"].startswith("sqlite:////")  # absolute: Hummingbot runs in the root
    assert prepare_root(root, settings).created == []  # idempotent


def test_source_checkout_runs_its_own_quickstart(tmp_path: Path, settings: Settings) -> None:
    root = tmp_path / "home-hummingbot"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "hummingbot_quickstart.py").write_text("# the checkout's own\n")
    (root / "hummingbot").symlink_to(hummingbot_package_dir(), target_is_directory=True)  # as if built in place
    assert is_source_checkout(root)
    done = prepare_root(root, settings)
    assert not any(line.startswith("hummingbot ->") for line in done.created)
    argv, env = quickstart_command(root, True, None, settings)
    assert argv[1] == str(root.resolve() / "bin" / "hummingbot_quickstart.py") and argv[2:] == ["--headless"]
    assert ROOT_ENV not in env and str(SHIM_DIR) not in env.get("PYTHONPATH", "")


def test_an_existing_client_config_is_never_edited_but_a_bridge_that_cannot_stop_the_bot_is_said(
    tmp_path: Path, settings: Settings
) -> None:
    root = tmp_path / "hbot"
    (root / "conf").mkdir(parents=True)
    mine = "instance_id: mine\nmqtt_bridge:\n  mqtt_port: 1884\n  mqtt_commands: true\n"
    (root / "conf" / "conf_client.yml").write_text(mine)
    with_mqtt = settings.model_copy(update={"mqtt": settings.mqtt.model_copy(update={"enabled": True})})
    done = prepare_root(root, with_mqtt)
    assert (root / "conf" / "conf_client.yml").read_text() == mine
    assert len(done.notes) == 1 and "mqtt_port is 1884, Lyra's 1883" in done.notes[0]
    assert "mqtt_autostart is not true" in done.notes[0]
    (root / "conf" / "conf_client.yml").write_text(
        "mqtt_bridge:\n  mqtt_port: 1883\n  mqtt_namespace: hbot\n  mqtt_commands: true\n  mqtt_autostart: true\n"
    )
    assert prepare_root(root, with_mqtt).notes == []
